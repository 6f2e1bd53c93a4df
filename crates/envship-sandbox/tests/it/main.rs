//! Integration tests of envship-sandbox: real archives, real namespaces, real processes.
#![allow(clippy::print_stderr, clippy::unwrap_used)]

mod container;
mod fixtures;
mod installed;
mod namespace;
mod packed;
mod rootfs;
mod unisolated;
