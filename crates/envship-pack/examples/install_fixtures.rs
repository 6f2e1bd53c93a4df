//! Install the fixture conda packages into a prefix with rattler (used by bench/pack/run.sh to
//! give the benchmark prefix a real rattler-installed part).
//! Usage: cargo run --release -p envship-pack --example install_fixtures -- PREFIX
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod common;

use std::path::{Path, PathBuf};

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
    let archives: Vec<PathBuf> = pkgs.iter().map(|rel| fixtures.join(rel)).collect();
    common::install_archives(&prefix, &archives);
    eprintln!("installed {} packages into {prefix}", pkgs.len());
}
