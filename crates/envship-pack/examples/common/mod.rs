//! Shared by the bench examples: install package archives from disk into a prefix with
//! rattler's installer, as if they came from a channel.

use std::{
    fs,
    path::{Path, PathBuf},
};

use rattler::{install::Installer, package_cache::PackageCache};
use rattler_conda_types::{package::IndexJson, PackageRecord, RepoDataRecord, Subdir};
use sha2::Digest;

/// Install `archives` (.conda / .tar.bz2) into `prefix`; the package cache is `PREFIX.pkgs`.
pub fn install_archives(prefix: &str, archives: &[PathBuf]) {
    let records: Vec<RepoDataRecord> = archives
        .iter()
        .map(|p| {
            let path = p.canonicalize().expect("package exists");
            let index: IndexJson =
                rattler_package_streaming::seek::read_package_file(&path).unwrap();
            let bytes = fs::read(&path).unwrap();
            let sha = hex::encode(sha2::Sha256::digest(&bytes));
            RepoDataRecord {
                package_record: with_sha256(
                    PackageRecord::from_index_json(index, Some(bytes.len() as u64), None, None)
                        .unwrap(),
                    &sha,
                ),
                identifier: path.file_name().unwrap().to_string_lossy().parse().unwrap(),
                url: url::Url::from_file_path(&path).unwrap(),
                channel: Some("file:///fixtures".into()),
            }
        })
        .collect();
    let cache = Path::new(prefix).with_extension("pkgs");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        Installer::new()
            .with_package_cache(PackageCache::new(cache))
            .with_target_platform(Subdir::Linux64)
            .install(prefix, records)
            .await
            .unwrap()
    });
}

/// rattler's digest type comes from another sha2 major version: go through its serde form.
fn with_sha256(record: PackageRecord, sha: &str) -> PackageRecord {
    let mut v = serde_json::to_value(&record).unwrap();
    v["sha256"] = serde_json::Value::String(sha.to_string());
    serde_json::from_value(v).unwrap()
}
