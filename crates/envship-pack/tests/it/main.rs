//! Integration tests of envship-pack on real prefixes (rattler-installed fixture packages plus
//! hand-made binaries and links), using real tar, sh, bash, perl and python3 processes.
#![allow(clippy::unwrap_used, clippy::print_stderr, clippy::print_stdout)]

mod formats;
mod hardening;
mod pack;
mod pyc;
mod reuse;
mod sbom;
mod support;
