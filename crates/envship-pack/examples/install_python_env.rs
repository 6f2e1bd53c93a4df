//! Install a real Python environment with rattler: the machine's CPython repackaged as a conda
//! package (envship-test-support), pip, and the fixture noarch python packages; then compile
//! site-packages as pip does after an install (so .pyc files hold the build prefix). Used by
//! bench/pack/run.sh (`BENCH_PREFIX=python`).
//! Usage: cargo run -p envship-pack --example install_python_env -- PREFIX
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::path::Path;

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
    common::install_archives(&prefix, &pkgs);
    let site = Path::new(&prefix).join("lib/python3.11/site-packages");
    let st = std::process::Command::new(Path::new(&prefix).join("bin/python"))
        .args(["-m", "compileall", "-q"])
        .arg(&site)
        .status()
        .unwrap();
    assert!(st.success(), "compileall failed");
    eprintln!("installed {} packages into {prefix}", pkgs.len());
}
