//! Replays the saved fuzz corpus (`kernels-tests/fuzz/corpus/<target>/`) through the same
//! target functions `cargo fuzz` runs (`benches/fuzz.sh`): every input the fuzzer kept, and
//! every input that once crashed a parser (`corpus/<target>/crash-*`), must return normally.

#[path = "fuzz/targets.rs"]
mod targets;

use std::path::Path;

#[test]
fn every_saved_fuzz_input_is_parsed_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels-tests/fuzz/corpus");
    let mut total = 0;
    for name in targets::TARGETS {
        let files = targets::corpus_files(&root.join(name));
        assert!(!files.is_empty(), "corpus/{name} is empty");
        for path in &files {
            let data = targets::read(path);
            if let Err(panic) = std::panic::catch_unwind(|| targets::run(name, &data)) {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!(
                    "fuzz target {name} panicked on {}: {message}",
                    path.display()
                );
            }
        }
        total += files.len();
    }
    eprintln!("{total} saved fuzz inputs replayed");
}
