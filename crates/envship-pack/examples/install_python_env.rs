//! Install a real Python environment with rattler: the machine's CPython repackaged as a conda
//! package (envship-test-support), pip, and the fixture noarch python packages; then compile
//! site-packages as pip does after an install (so .pyc files hold the build prefix). Used by
//! bench/pack/run.sh (`BENCH_PREFIX=python`).
//! Usage: cargo run -p envship-pack --example install_python_env -- PREFIX
#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::{fs, path::Path};

use rattler::{install::Installer, package_cache::PackageCache};
use rattler_conda_types::{package::IndexJson, PackageRecord, RepoDataRecord, Subdir};
use sha2::Digest;

fn main() {
    let prefix = std::env::args()
        .nth(1)
        .expect("usage: install_python_env PREFIX");
    if let Some(why) = envship_test_support::python::python_unavailable() {
        panic!("cannot build a python environment: {why}");
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/packages");
    let mut pkgs: Vec<std::path::PathBuf> = envship_test_support::python::cached_archives()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    for rel in [
        "noarch/sample_noarch_python-1.0-py_0.conda",
        "noarch/foobar-0.1.0-pyhbf21a9e_0.conda",
    ] {
        pkgs.push(fixtures.join(rel));
    }
    let records: Vec<RepoDataRecord> = pkgs
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
    let cache = Path::new(&prefix).with_extension("pkgs");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        Installer::new()
            .with_package_cache(PackageCache::new(cache))
            .with_target_platform(Subdir::Linux64)
            .install(&prefix, records)
            .await
            .unwrap()
    });
    let site = Path::new(&prefix).join("lib/python3.11/site-packages");
    let st = std::process::Command::new(Path::new(&prefix).join("bin/python"))
        .args(["-m", "compileall", "-q"])
        .arg(&site)
        .status()
        .unwrap();
    assert!(st.success(), "compileall failed");
    eprintln!("installed {} packages into {prefix}", pkgs.len());
}

/// rattler's digest type comes from another sha2 major version: go through its serde form.
fn with_sha256(record: PackageRecord, sha: &str) -> PackageRecord {
    let mut v = serde_json::to_value(&record).unwrap();
    v["sha256"] = serde_json::Value::String(sha.to_string());
    serde_json::from_value(v).unwrap()
}
