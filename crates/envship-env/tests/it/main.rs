//! Integration tests of envship-env: real repodata snapshots and freshly built packages in
//! file:// channels, solved and installed offline.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod build;
mod import;
mod lock;

use std::path::Path;

use envship_env::LockRequest;
use envship_spec::EnvironmentFile;

/// Write `text` as `dir/environment.yml` and parse it.
pub fn env_file(dir: &Path, text: &str) -> EnvironmentFile {
    let path = dir.join("environment.yml");
    fs_err::write(&path, text).unwrap();
    EnvironmentFile::from_path(&path).unwrap()
}

/// An offline lock request with its package/repodata cache in `dir/cache`.
pub fn lock_request(dir: &Path) -> LockRequest {
    LockRequest {
        channel_alias: None,
        offline: true,
        exclude_newer: None,
        cache_dir: Some(dir.join("cache")),
        lock_path: None,
        update: false,
        explicit: None,
    }
}
