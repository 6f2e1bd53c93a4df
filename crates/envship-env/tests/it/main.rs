//! Integration tests of envship-env: real repodata snapshots and freshly built packages in
//! file:// channels, solved and installed offline.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod build;
mod lock;
