//! Integration tests of envship-spec: every real environment file in the fixtures parses (or
//! fails the way it must), and error reports point at the right line and column.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod env_files;
