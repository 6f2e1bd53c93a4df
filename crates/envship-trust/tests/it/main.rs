//! Integration tests of envship-trust: real minisign keys and signatures (checked by Debian's
//! `minisign` too), real Sigstore bundles and trusted roots nobody on the team wrote.
#![allow(clippy::unwrap_used, clippy::print_stderr, clippy::print_stdout)]

mod minisign;
mod sigstore;
