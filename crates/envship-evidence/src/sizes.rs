//! Installed bytes per package, which the manifest does not record: read from the prefix the
//! archive was packed from (or an unpacked copy of it).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use envship_pack::Manifest;

/// Size of a regular file (symlinks count nothing; a missing file counts nothing).
fn file_len(p: &Path) -> u64 {
    match std::fs::symlink_metadata(p) {
        Ok(m) if m.is_file() => m.len(),
        _ => 0,
    }
}

/// Bytes of a conda package: the files its `conda-meta/NAME-VERSION-BUILD.json` lists, as they
/// are in the prefix now.
fn conda_bytes(prefix: &Path, record: &Path) -> Option<u64> {
    let text = std::fs::read(record).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    let files = v.get("files")?.as_array()?;
    Some(
        files
            .iter()
            .filter_map(serde_json::Value::as_str)
            .map(|f| file_len(&prefix.join(f)))
            .sum(),
    )
}

/// Bytes of a pip distribution: the files its `RECORD` lists (paths relative to the directory
/// holding the dist-info), as they are in the prefix now.
fn pip_bytes(prefix: &Path, dist_info: &str) -> Option<u64> {
    let dist_info: PathBuf = prefix.join(dist_info);
    let base = dist_info.parent()?;
    let record = std::fs::read_to_string(dist_info.join("RECORD")).ok()?;
    Some(
        record
            .lines()
            .filter_map(|l| l.split(',').next())
            .filter(|p| !p.is_empty())
            .map(|p| file_len(&base.join(p)))
            .sum(),
    )
}

/// Installed bytes of each package of `manifest`, by name, measured in `prefix`: conda packages
/// from their `conda-meta/` records' file lists, pip distributions from their `RECORD`. A
/// package whose record cannot be read is left out (the page shows its size as unknown).
pub fn package_sizes(prefix: &Path, manifest: &Manifest) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for p in &manifest.conda_packages {
        let record = prefix
            .join("conda-meta")
            .join(format!("{}-{}-{}.json", p.name, p.version, p.build));
        if let Some(b) = conda_bytes(prefix, &record) {
            out.insert(p.name.clone(), b);
        }
    }
    for p in &manifest.pip_packages {
        if let Some(b) = pip_bytes(prefix, &p.dist_info) {
            out.insert(p.name.clone(), b);
        }
    }
    out
}
