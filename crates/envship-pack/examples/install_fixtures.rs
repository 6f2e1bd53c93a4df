//! Install the fixture conda packages into a prefix with rattler (used by bench/pack/run.sh to
//! give the benchmark prefix a real rattler-installed part).
//! Usage: cargo run --release -p envship-pack --example install_fixtures -- PREFIX
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::{fs, path::Path};

use rattler::{install::Installer, package_cache::PackageCache};
use rattler_conda_types::{package::IndexJson, PackageRecord, RepoDataRecord, Subdir};
use sha2::Digest;

fn main() {
    let prefix = std::env::args()
        .nth(1)
        .expect("usage: install_fixtures PREFIX");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/packages");
    let pkgs = [
        "linux-64/xtensor-io-0.10.3-hb585cf6_0.tar.bz2",
        "linux-64/bcj-cffi-0.5.1-py310h295c915_0.tar.bz2",
        "noarch/cph_test_data-0.0.1-0.tar.bz2",
        "noarch/conda-forge-repodata-patches-20180828-0.tar.bz2",
    ];
    let records: Vec<RepoDataRecord> = pkgs
        .iter()
        .map(|rel| {
            let path = fixtures.join(rel).canonicalize().expect("fixture exists");
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
    let cache = Path::new(&prefix).with_extension("pkgs");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        Installer::new()
            .with_package_cache(PackageCache::new(cache))
            .with_target_platform(Subdir::Linux64)
            .install(&prefix, records)
            .await
            .unwrap()
    });
    eprintln!("installed {} packages into {prefix}", pkgs.len());
}

/// rattler's digest type comes from another sha2 major version: go through its serde form.
fn with_sha256(record: PackageRecord, sha: &str) -> PackageRecord {
    let mut v = serde_json::to_value(&record).unwrap();
    v["sha256"] = serde_json::Value::String(sha.to_string());
    serde_json::from_value(v).unwrap()
}
