//! Test support for envship: real conda channels for tests, made from the real repodata
//! snapshots in `../shared/fixtures`, and small real conda packages built on the fly (both
//! `.conda` and `.tar.bz2`, with `info/index.json`, `info/paths.json`, text and binary prefix
//! placeholders, noarch python, entry points) indexed with rattler_index; and a fake GitHub
//! REST API on 127.0.0.1 ([`ghserver`]) for publish and deploy tests, and the CycloneDX schema
//! check of SBOMs ([`cyclonedx`]).
//!
//! Test code only: panics with a clear message instead of returning errors. Must not be a
//! dependency of any library crate (dev-dependencies only).
#![allow(clippy::unwrap_used)]

pub mod cyclonedx;
pub mod deadline;
pub mod full_disk;
pub mod ghserver;
pub mod package;
pub mod python;
pub mod python212;
pub mod raw_tar;
pub mod skip;

use std::path::{Path, PathBuf};

pub use deadline::{ChildDeadline, Deadline};
pub use full_disk::FullDisk;
pub use package::{ArchiveFormat, PackageBuilder, PlaceholderMode};
pub use skip::{current_test, in_ci, skip, skip_unavailable_everywhere};

/// The workspace root (where `Cargo.toml` with `[workspace]` is).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate is two levels below the workspace root")
        .to_path_buf()
}

/// `../shared/fixtures` next to the workspace (override with `ENVSHIP_FIXTURES`).
pub fn fixtures_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("ENVSHIP_FIXTURES") {
        return PathBuf::from(p);
    }
    workspace_root().join("../shared/fixtures")
}

/// A fixture file by path relative to the fixtures dir; panics naming it when missing.
pub fn fixture(rel: &str) -> PathBuf {
    let p = fixtures_dir().join(rel);
    assert!(
        p.exists(),
        "fixture {} is missing (expected ../shared/fixtures next to the repo, or set ENVSHIP_FIXTURES)",
        p.display()
    );
    p
}

/// A directory for caches that survive between test runs (e.g. the repackaged python).
pub fn test_cache_dir() -> PathBuf {
    let dir = std::env::var_os("ENVSHIP_TEST_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("target"))
                .join("envship-test-cache")
        });
    fs_err::create_dir_all(&dir).unwrap();
    dir
}

/// Fill the cache entry `dir` once: `fill` writes into a sibling temp dir that is renamed into
/// place, so concurrent test binaries never see a half-written entry.
pub fn build_cache_entry(dir: &Path, fill: impl FnOnce(&Path)) {
    if dir.join(".complete").exists() {
        return;
    }
    let tmp = tempfile::tempdir_in(test_cache_dir()).unwrap();
    fill(tmp.path());
    fs_err::write(tmp.path().join(".complete"), "").unwrap();
    let tmp = tmp.keep();
    if std::fs::rename(&tmp, dir).is_err() {
        // Another process won the race; its copy is as good as ours.
        let _ = std::fs::remove_dir_all(&tmp);
    }
}

/// A `file://` URL for a directory.
pub fn file_url(dir: &Path) -> url::Url {
    url::Url::from_directory_path(dir.canonicalize().unwrap()).unwrap()
}

/// A channel on disk made from a fixture repodata snapshot: `subdir/repodata.json` (bare record
/// maps are wrapped in `info.subdir` + `packages`) and an empty `noarch/repodata.json`.
pub struct FixtureChannel {
    /// The channel directory.
    pub dir: tempfile::TempDir,
}

impl FixtureChannel {
    /// Make a channel from one or more `(fixture repodata path, subdir)` pairs.
    pub fn from_repodata(parts: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (rel, subdir) in parts {
            let text = fs_err::read_to_string(fixture(rel)).unwrap();
            let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
            let is_wrapped = json.get("packages").is_some() || json.get("packages.conda").is_some();
            if !is_wrapped {
                json = serde_json::json!({ "info": { "subdir": subdir }, "packages": json });
            }
            let sub = dir.path().join(subdir);
            fs_err::create_dir_all(&sub).unwrap();
            fs_err::write(
                sub.join("repodata.json"),
                serde_json::to_vec(&json).unwrap(),
            )
            .unwrap();
        }
        for subdir in ["noarch", "linux-64"] {
            let sub = dir.path().join(subdir);
            if !sub.join("repodata.json").exists() {
                fs_err::create_dir_all(&sub).unwrap();
                fs_err::write(
                    sub.join("repodata.json"),
                    format!(r#"{{"info":{{"subdir":"{subdir}"}},"packages":{{}},"packages.conda":{{}}}}"#),
                )
                .unwrap();
            }
        }
        Self { dir }
    }

    /// The channel's `file://` URL.
    pub fn url(&self) -> url::Url {
        file_url(self.dir.path())
    }
}

/// A channel of freshly built packages, indexed with rattler_index.
pub struct LocalChannel {
    /// The channel directory.
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl LocalChannel {
    /// A new empty channel in a temp dir.
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        Self {
            dir: tmp.path().to_path_buf(),
            _tmp: Some(tmp),
        }
    }

    /// A channel in a given directory (kept after the test).
    pub fn at(dir: &Path) -> Self {
        fs_err::create_dir_all(dir).unwrap();
        Self {
            dir: dir.to_path_buf(),
            _tmp: None,
        }
    }

    /// Build a package into the channel; returns the archive path.
    pub fn add(&self, pkg: &PackageBuilder, format: ArchiveFormat) -> PathBuf {
        pkg.write_to_channel(&self.dir, format)
    }

    /// Copy an existing package archive into the channel.
    pub fn add_file(&self, archive: &Path, subdir: &str) -> PathBuf {
        let sub = self.dir.join(subdir);
        fs_err::create_dir_all(&sub).unwrap();
        let dest = sub.join(archive.file_name().unwrap());
        fs_err::copy(archive, &dest).unwrap();
        dest
    }

    /// Write `repodata.json` for every subdir (plus an empty `noarch`).
    pub fn index(&self) {
        fs_err::create_dir_all(self.dir.join("noarch")).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(rattler_index::index_fs(rattler_index::IndexFsConfig {
            channel: self.dir.clone(),
            target_platform: None,
            repodata_patch: None,
            write_zst: false,
            write_shards: false,
            repodata_revisions: Vec::new(),
            package_revision_assignment: Default::default(),
            force: true,
            max_parallel: 4,
            multi_progress: None,
        }))
        .unwrap();
    }

    /// Drop the `indexed_timestamp` rattler_index stamps on every record (the time of indexing),
    /// so `--exclude-newer` sees the packages' own build timestamps, as in real channels
    /// indexed before that field existed.
    pub fn strip_indexed_timestamps(&self) {
        for entry in walkdir::WalkDir::new(&self.dir).max_depth(2) {
            let entry = entry.unwrap();
            if entry.file_name() != "repodata.json" {
                continue;
            }
            let mut json: serde_json::Value =
                serde_json::from_slice(&fs_err::read(entry.path()).unwrap()).unwrap();
            for key in ["packages", "packages.conda"] {
                if let Some(map) = json.get_mut(key).and_then(|m| m.as_object_mut()) {
                    for record in map.values_mut() {
                        if let Some(r) = record.as_object_mut() {
                            r.remove("indexed_timestamp");
                        }
                    }
                }
            }
            fs_err::write(entry.path(), serde_json::to_vec(&json).unwrap()).unwrap();
        }
    }

    /// The channel's `file://` URL.
    pub fn url(&self) -> url::Url {
        file_url(&self.dir)
    }
}

impl Default for LocalChannel {
    fn default() -> Self {
        Self::new()
    }
}

/// Deterministic pseudo-random bytes (xorshift), so payloads are incompressible and differ.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// The sha256 of `data`, lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
