//! Integration tests of envship-deploy: deploys and rollbacks of archives packed with
//! envship-pack on real directory trees, with real processes (killed at every step), from
//! paths, drop directories, URLs and a fake GitHub on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::print_stderr, clippy::print_stdout)]

mod common;
mod deploy;
mod linked;
mod tree;
mod trust;
