//! `hebb data`: dataset tools.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum DataCommand {
    /// Validate a dataset folder: counts, classes, checksums where known, and the first
    /// unreadable file. Exits non-zero on any problem.
    Check {
        /// The dataset folder: MNIST / Fashion-MNIST IDX files (gzipped or not), CIFAR-10/100 or
        /// STL-10 binary files, or an image folder (`<split>/<class>/*` or `<class>/*`, JPEG and
        /// PNG; every image is decoded).
        #[arg(default_value = "datasets/mnist")]
        dir: PathBuf,
    },
}

/// `hebb data check DIR`: counts, classes, checksums and the first unreadable item.
pub fn run(command: DataCommand) -> Result<ExitCode> {
    let DataCommand::Check { dir } = command;
    let report = hebb::data::check_dir(&dir)?;
    println!("{}: {}", dir.display(), report.format);
    for (split, items, counts) in &report.splits {
        if counts.len() <= 20 {
            println!(
                "  {split}: {items} items, {} classes {counts:?}",
                counts.len()
            );
        } else {
            let min = counts.iter().min().copied().unwrap_or(0);
            let max = counts.iter().max().copied().unwrap_or(0);
            println!(
                "  {split}: {items} items, {} classes, {min}..{max} items per class",
                counts.len()
            );
        }
    }
    if !report.class_names.is_empty() {
        let shown: Vec<&str> = report
            .class_names
            .iter()
            .take(10)
            .map(String::as_str)
            .collect();
        let more = report.class_names.len().saturating_sub(shown.len());
        println!(
            "  classes: {}{}",
            shown.join(" "),
            if more > 0 {
                format!(" … and {more} more")
            } else {
                String::new()
            }
        );
    }
    let mut bad = false;
    for (file, verdict) in &report.checksums {
        println!("  {file}: {verdict}");
        bad |= verdict.starts_with("MISMATCH");
    }
    if report.unreadable > 0 {
        bad = true;
        println!(
            "  UNREADABLE: {} item{}; the first: {}",
            report.unreadable,
            if report.unreadable == 1 { "" } else { "s" },
            report.first_unreadable.as_deref().unwrap_or("?")
        );
    } else if report.format.starts_with("image-folder") {
        println!("  every image decodes");
    }
    Ok(if bad {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
