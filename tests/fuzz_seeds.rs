//! Replays the committed fuzz seeds (`fuzz/seeds/<target>/*`) through the
//! same checks the fuzz targets run, on stable, in `cargo test`.

use std::path::{Path, PathBuf};

fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds").join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable seed directory").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{}: only {} seeds", dir.display(), files.len());
    files
}

fn replay(target: &str, check: fn(&[u8])) {
    for path in seeds(target) {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        eprintln!("{target}: {}", path.display());
        check(&bytes);
    }
}

#[test]
fn nfs_model_seeds_pass() {
    replay("nfs_model", leaseq::check::check_nfs_model);
}

#[test]
fn parser_seeds_pass() {
    replay("parsers", leaseq::check::check_parsers);
}
