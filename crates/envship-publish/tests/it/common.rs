//! Shared helpers: fake-but-real artifacts (random bytes, real sha256 sidecars).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Deterministic pseudo-random bytes (xorshift), so payloads are incompressible and differ.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

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
