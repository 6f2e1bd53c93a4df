//! envship-evidence's integration tests: pages of a real packed and audited archive, checked as
//! HTML and in a real headless chromium.
#![allow(clippy::unwrap_used)]

mod browser;
mod common;
mod page;
