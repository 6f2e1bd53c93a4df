//! Integration tests of envship-publish: directory drops on real directories, GitHub publishing
//! against a real HTTP server on 127.0.0.1 (envship-test-support's fake GitHub).
#![allow(clippy::unwrap_used, clippy::print_stderr, clippy::print_stdout)]

mod common;
mod dropdir;
mod github;
mod notes;
