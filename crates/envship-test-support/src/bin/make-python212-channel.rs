//! Writes the channel of `examples/lcls-numpy` (or any directory): the CPython 3.9 built for
//! glibc 2.12 by `scripts/build-python-glibc2.12.sh` (found through
//! `ENVSHIP_TEST_PYTHON_GLIBC212`, else its default path), repackaged as a conda `python`
//! package, and `pip` from the fixture wheel.
//!
//! Usage: make-python212-channel CHANNEL_DIR
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use envship_test_support::python212;

fn main() {
    let Some(out) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: make-python212-channel CHANNEL_DIR");
        std::process::exit(2);
    };
    let build = match python212::build_dir() {
        Ok(b) => b,
        Err(why) => {
            eprintln!("cannot make the channel: {why}");
            std::process::exit(1);
        }
    };
    let channel = python212::python212_channel_at(&out, &build);
    println!("{}", channel.dir.display());
}
