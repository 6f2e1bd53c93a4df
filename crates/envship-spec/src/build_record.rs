//! The build's record in the prefix: `conda-meta/envship`, a small JSON file saying which target
//! (profile and overrides) and which inputs the environment was built for.
//!
//! `pack`, `audit` and `test` read it, so a prefix built for rhel8 is packed and audited for
//! rhel8 without repeating `--target`, and a `--target` that contradicts it is an error rather
//! than a manifest that lies. The file has no `.json` extension on purpose: conda and rattler
//! read every `conda-meta/*.json` as a package record (pixi's `conda-meta/pixi` does the same).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{target::TargetOverrides, Target, TargetError};

/// The record's path inside a prefix.
pub const BUILD_RECORD_PATH: &str = "conda-meta/envship";

/// Errors reading the record or choosing a target from it.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuildRecordError {
    /// The record exists but cannot be read.
    #[error("cannot read the build record {}", path.display())]
    #[diagnostic(code(envship::record::read))]
    Read {
        /// The record.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The record is not the JSON envship writes.
    #[error("the build record {} is not valid", path.display())]
    #[diagnostic(
        code(envship::record::parse),
        help("it is written by `envship build`; rebuild the environment, or delete the file and pass --target")
    )]
    Parse {
        /// The record.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },

    /// The record cannot be written.
    #[error("cannot write the build record {}", path.display())]
    #[diagnostic(code(envship::record::write))]
    Write {
        /// The record.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// `--target` names another profile than the one the prefix was built for.
    #[error("{} was built for target `{recorded}`, not `{requested}`", prefix.display())]
    #[diagnostic(
        code(envship::record::target_mismatch),
        help("drop --target (and ENVSHIP_TARGET) to use `{recorded}`, or rebuild the environment with --target {requested}; --glibc/--linux/--cuda/--archspec still override single fields")
    )]
    TargetMismatch {
        /// The prefix.
        prefix: PathBuf,
        /// The profile in the record.
        recorded: String,
        /// The profile asked for.
        requested: String,
    },

    /// The recorded target does not resolve (an unknown profile or a bad override).
    #[error("the target recorded in {} does not resolve", path.display())]
    #[diagnostic(code(envship::record::target))]
    Target {
        /// The record.
        path: PathBuf,
        /// Why.
        #[source]
        source: TargetError,
    },
}

/// How the target was asked for and what it resolved to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedTarget {
    /// The built-in profile (`lcls-rhel6`, `rhel8`, `host`, …).
    pub profile: String,
    /// Field overrides on top of the profile.
    #[serde(default, skip_serializing_if = "TargetOverrides::is_empty")]
    pub overrides: TargetOverrides,
    /// The resolved name, with its `+override` suffix (for people reading the file).
    pub name: String,
    /// The conda subdir.
    pub subdir: String,
    /// The resolved glibc version.
    pub glibc: String,
    /// The resolved kernel version.
    pub linux: String,
}

/// `conda-meta/envship`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    /// The envship version that built the prefix.
    pub envship_version: String,
    /// The target the environment was solved and built for.
    pub target: RecordedTarget,
    /// The environment file it was built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_file: Option<RecordedInput>,
    /// The lock file it was installed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_file: Option<RecordedInput>,
}

/// An input of the build, by name and content: the record travels inside the archive, so it
/// holds no path of the build machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedInput {
    /// The file's name.
    pub name: String,
    /// The sha256 of its content when it was read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

impl RecordedInput {
    /// The record of the file at `path` (its hash is left out when it cannot be read).
    pub fn of(path: &Path) -> Self {
        Self {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            sha256: crate::digest::sha256_file(path).ok(),
        }
    }
}

impl BuildRecord {
    /// The record of a build for `target`.
    pub fn new(target: &Target, environment_file: Option<&Path>, lock_file: Option<&Path>) -> Self {
        Self {
            envship_version: env!("CARGO_PKG_VERSION").to_string(),
            target: RecordedTarget {
                profile: target.profile().to_string(),
                overrides: target.overrides.clone(),
                name: target.name.clone(),
                subdir: target.subdir.clone(),
                glibc: target.glibc.to_string(),
                linux: target.linux.to_string(),
            },
            environment_file: environment_file.map(RecordedInput::of),
            lock_file: lock_file.map(RecordedInput::of),
        }
    }

    /// The record of `prefix`, or `None` when it has none (an environment not built by envship).
    pub fn read(prefix: &Path) -> Result<Option<Self>, BuildRecordError> {
        let path = prefix.join(BUILD_RECORD_PATH);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(BuildRecordError::Read { path, source }),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| BuildRecordError::Parse { path, source })
    }

    /// Write the record into `prefix` (atomically); returns whether it changed.
    pub fn write(&self, prefix: &Path) -> Result<bool, BuildRecordError> {
        let path = prefix.join(BUILD_RECORD_PATH);
        let mut json = serde_json::to_vec_pretty(self).map_err(|e| BuildRecordError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        json.push(b'\n');
        if std::fs::read(&path).is_ok_and(|old| old == json) {
            return Ok(false);
        }
        crate::output::write_atomic(&path, &json)
            .map_err(|source| BuildRecordError::Write { path, source })?;
        Ok(true)
    }
}

/// The target for working on an existing `prefix`: the one its build recorded, with
/// `overrides` applied on top; `requested` (an explicit `--target`) must agree with the record.
/// Without a record, `requested` or the default target.
pub fn target_for_prefix(
    prefix: &Path,
    requested: Option<&str>,
    overrides: &TargetOverrides,
) -> Result<Target, BuildRecordError> {
    let record_path = prefix.join(BUILD_RECORD_PATH);
    let Some(record) = BuildRecord::read(prefix)? else {
        let name = requested.unwrap_or(crate::target::DEFAULT_TARGET);
        return Target::resolve(name, overrides).map_err(|source| BuildRecordError::Target {
            path: record_path,
            source,
        });
    };
    if let Some(requested) = requested {
        if requested != record.target.profile {
            return Err(BuildRecordError::TargetMismatch {
                prefix: prefix.to_path_buf(),
                recorded: record.target.profile,
                requested: requested.to_string(),
            });
        }
    }
    let merged = record.target.overrides.merged_with(overrides);
    Target::resolve(&record.target.profile, &merged).map_err(|source| BuildRecordError::Target {
        path: record_path,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built_for(target: &Target) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("conda-meta")).expect("conda-meta");
        let record = BuildRecord::new(target, None, None);
        assert!(record.write(dir.path()).expect("write"));
        assert!(!record.write(dir.path()).expect("rewrite"), "unchanged");
        dir
    }

    #[test]
    fn the_recorded_target_wins_without_flags() {
        let rhel8 = Target::resolve("rhel8", &TargetOverrides::default()).expect("rhel8");
        let prefix = built_for(&rhel8);
        let t = target_for_prefix(prefix.path(), None, &TargetOverrides::default()).expect("t");
        assert_eq!(t.name, "rhel8");
        assert_eq!(t.glibc.to_string(), "2.28");
    }

    #[test]
    fn overrides_survive_the_record_and_flags_override_fields() {
        let o = TargetOverrides {
            glibc: Some("2.17".into()),
            ..Default::default()
        };
        let t = Target::resolve("lcls-rhel6", &o).expect("target");
        let prefix = built_for(&t);
        let again = target_for_prefix(prefix.path(), Some("lcls-rhel6"), &Default::default())
            .expect("same profile");
        assert_eq!(again.name, "lcls-rhel6+glibc2.17");
        let flag = TargetOverrides {
            glibc: Some("2.11".into()),
            ..Default::default()
        };
        let lower = target_for_prefix(prefix.path(), None, &flag).expect("flag");
        assert_eq!(lower.glibc.to_string(), "2.11");
    }

    #[test]
    fn a_contradicting_target_is_an_error_and_no_record_means_the_default() {
        let rhel8 = Target::resolve("rhel8", &TargetOverrides::default()).expect("rhel8");
        let prefix = built_for(&rhel8);
        let err = target_for_prefix(prefix.path(), Some("rhel7"), &Default::default())
            .expect_err("mismatch");
        assert!(
            matches!(err, BuildRecordError::TargetMismatch { .. }),
            "{err}"
        );
        let bare = tempfile::tempdir().expect("tempdir");
        let t = target_for_prefix(bare.path(), None, &Default::default()).expect("default");
        assert_eq!(t.name, crate::target::DEFAULT_TARGET);
    }

    #[test]
    fn a_damaged_record_names_its_path() {
        let prefix = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(prefix.path().join("conda-meta")).expect("conda-meta");
        std::fs::write(prefix.path().join(BUILD_RECORD_PATH), "{").expect("write");
        let err = target_for_prefix(prefix.path(), None, &Default::default()).expect_err("bad");
        assert!(err.to_string().contains("conda-meta/envship"), "{err}");
    }
}
