//! Shared helpers: fake-but-real artifacts (random bytes, real sha256 sidecars).

use std::path::{Path, PathBuf};

pub use envship_test_support::{random_bytes as bytes, sha256_hex as sha256};

/// Write `STEM.tar.gz` with `data` and a `STEM.sha256` sidecar; return the archive path.
pub fn archive_with_sidecar(dir: &Path, stem: &str, data: &[u8]) -> PathBuf {
    let name = format!("{stem}.tar.gz");
    let a = dir.join(&name);
    std::fs::write(&a, data).unwrap();
    std::fs::write(
        dir.join(format!("{stem}.sha256")),
        format!("{}  {name}\n", sha256(data)),
    )
    .unwrap();
    a
}

/// Every file name in `dir` (not recursive), sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
