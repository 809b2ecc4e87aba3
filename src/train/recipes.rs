//! The recipes bundled from `recipes/`, so `hebb train NAME` works from any folder.

use std::path::Path;

use crate::error::{HebbError, Result};
use crate::nn::recipe::Recipe;

/// (name, TOML text) of every bundled recipe; the first is the default.
pub const BUNDLED: &[(&str, &str)] = &[
    ("default", include_str!("../../recipes/default.toml")),
    (
        "softhebb-mnist",
        include_str!("../../recipes/softhebb-mnist.toml"),
    ),
    (
        "softhebb-mnist-100aug",
        include_str!("../../recipes/softhebb-mnist-100aug.toml"),
    ),
    (
        "softhebb-cifar10",
        include_str!("../../recipes/softhebb-cifar10.toml"),
    ),
    (
        "softhebb-cifar10-1layer",
        include_str!("../../recipes/softhebb-cifar10-1layer.toml"),
    ),
    (
        "softhebb-cifar10-2layer",
        include_str!("../../recipes/softhebb-cifar10-2layer.toml"),
    ),
    (
        "softhebb-imagenet",
        include_str!("../../recipes/softhebb-imagenet.toml"),
    ),
    (
        "krotov-mnist",
        include_str!("../../recipes/krotov-mnist.toml"),
    ),
    (
        "krotov-mnist-tanh",
        include_str!("../../recipes/krotov-mnist-tanh.toml"),
    ),
    ("bcm-mnist", include_str!("../../recipes/bcm-mnist.toml")),
    (
        "bcm-mnist-preact",
        include_str!("../../recipes/bcm-mnist-preact.toml"),
    ),
    (
        "lagani-hpca-cifar10",
        include_str!("../../recipes/lagani-hpca-cifar10.toml"),
    ),
    (
        "lagani-hpca-cifar10-1layer",
        include_str!("../../recipes/lagani-hpca-cifar10-1layer.toml"),
    ),
    (
        "lagani-swta-cifar10",
        include_str!("../../recipes/lagani-swta-cifar10.toml"),
    ),
    (
        "lagani-hpca-cifar10-finetune",
        include_str!("../../recipes/lagani-hpca-cifar10-finetune.toml"),
    ),
    (
        "lagani-swta-cifar10-finetune",
        include_str!("../../recipes/lagani-swta-cifar10-finetune.toml"),
    ),
];

/// The recipe a `hebb train` argument names: a file path, or a bundled recipe's name (with or
/// without `.toml`), or the default when None. Returns the recipe, its text and where it came
/// from.
pub fn resolve(arg: Option<&str>) -> Result<(Recipe, String, String)> {
    let invalid = |path: &Path, message: String| HebbError::Format {
        path: path.to_path_buf(),
        message,
    };
    let (text, origin) = match arg {
        None => (
            BUNDLED[0].1.to_string(),
            "bundled recipe default".to_string(),
        ),
        Some(a) if Path::new(a).is_file() => {
            let text = crate::nn::recipe::read_text(Path::new(a))
                .map_err(|message| invalid(Path::new(a), message))?;
            (text, a.to_string())
        }
        Some(a) => {
            let name = a.trim_end_matches(".toml");
            let name = name.rsplit('/').next().unwrap_or(name);
            match BUNDLED.iter().find(|(n, _)| *n == name) {
                Some((n, t)) => (t.to_string(), format!("bundled recipe {n}")),
                None => {
                    let names: Vec<&str> = BUNDLED.iter().map(|(n, _)| *n).collect();
                    return Err(invalid(
                        Path::new(a),
                        format!(
                            "no such file, and no bundled recipe of that name; bundled: {}",
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
    };
    let recipe = Recipe::parse(&text, Path::new(&origin))?;
    Ok((recipe, text, origin))
}
