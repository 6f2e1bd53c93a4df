//! End-to-end tests of the envship binary: real processes, real files, offline channels.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod cli;
mod container;
mod exit_codes;
mod faults;
mod fleet;
mod hostile;
mod interrupt;
mod kill9;
mod lcls_numpy;
mod link_scripts;
mod old_kernel;
mod pip_conda;
mod provenance;
mod ship_python;
mod snapshots;
mod target_record;
mod user_flow;
mod verify_diff;

use std::path::{Path, PathBuf};

/// The envship binary under test.
pub fn envship() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("envship").unwrap();
    cmd.env_remove("ENVSHIP_TARGET")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        // No test can hang the run: past the deadline assert_cmd kills envship and fails.
        .timeout(envship_test_support::deadline::default_deadline());
    cmd
}

/// The repo's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// Copy a bundled example into a temp dir so tests never write into the checkout.
pub fn example(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&repo_root().join("examples").join(name), dir.path());
    dir
}

/// What running an example in place writes into it (see .gitignore): a test must start from the
/// committed example, even after someone ran the README's command in this checkout.
const EXAMPLE_OUTPUTS: &[&str] = &[
    ".envship",
    "dist",
    "envship.lock",
    "envship-pip.json",
    ".cache",
];

fn copy_dir(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for e in fs_err::read_dir(from).unwrap() {
        let e = e.unwrap();
        if EXAMPLE_OUTPUTS.iter().any(|o| e.file_name() == *o) {
            continue;
        }
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs_err::copy(e.path(), &dest).unwrap();
        }
    }
}

/// Replace machine-specific paths in output for snapshots.
pub fn filter(text: &str, dir: &Path) -> String {
    let real = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    text.replace(&real.display().to_string(), "[DIR]")
        .replace(&dir.display().to_string(), "[DIR]")
}
