//! Integration tests of envship-audit on real files: the fixture wheels and conda packages,
//! programs compiled here with gcc/g++, and the host's own binaries. Every version the audit
//! reports is cross-checked against binutils' `readelf`.
#![allow(clippy::unwrap_used, clippy::print_stderr, clippy::print_stdout)]

mod compiled;
mod differential;
mod packages;
mod readelf;
mod snapshots;
mod statics;
mod support;
mod wheels;
