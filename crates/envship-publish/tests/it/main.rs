//! Integration tests of envship-publish: directory drops on real directories, GitHub publishing
//! against a real HTTP server on 127.0.0.1, deploys on real directory trees with real processes.
#![allow(clippy::unwrap_used, clippy::print_stderr, clippy::print_stdout)]

mod common;
mod deploy;
mod dropdir;
mod ghserver;
mod github;
