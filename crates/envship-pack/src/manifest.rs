//! The `NAME-VERSION-TARGET-SUBDIR.manifest.json` sidecar: what is in an archive. Later stages (test,
//! deploy) read it with [`Manifest::read`] and add their results under `audit`/`test`/`extra`.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

use crate::{
    error::{PackError, Result},
    prefix::{CondaPackage, PipPackage},
};

/// Manifest schema version written by this crate.
pub const MANIFEST_VERSION: u32 = 1;

/// The production target an archive was made for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestTarget {
    /// Profile name (`lcls-rhel6`, …).
    pub name: String,
    /// Conda subdir (`linux-64`).
    pub subdir: String,
    /// glibc version of the target, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub glibc: Option<String>,
}

/// Relocation facts deployers need.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelocationSummary {
    /// Text files containing the prefix.
    pub text_files: usize,
    /// Binary files containing the prefix.
    pub binary_files: usize,
    /// The longest prefix the archive can be relocated to (`None`: no binary file limits it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prefix_len: Option<usize>,
}

/// Everything about one packed archive.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Schema version ([`MANIFEST_VERSION`]).
    pub manifest_version: u32,
    /// Version of envship that packed it.
    pub envship_version: String,
    /// Environment name.
    pub name: String,
    /// Release version.
    pub version: String,
    /// The target.
    pub target: ManifestTarget,
    /// Archive file name (no directory).
    pub archive: String,
    /// `tar.gz`, `tar.zst`, `zip` or `dir`.
    pub format: String,
    /// sha256 of the archive (`None` for `dir`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Top directory inside the archive, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arcroot: Option<String>,
    /// The prefix the environment was built in.
    pub build_prefix: String,
    /// The prefix baked in with `--dest-prefix` (no conda-unpack needed there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dest_prefix: Option<String>,
    /// The prefix the archive's files contain (dest prefix, else build prefix).
    pub recorded_prefix: String,
    /// mtime stored for every entry (seconds since the epoch).
    pub source_date_epoch: u64,
    /// Number of entries that are regular files (hardlinks counted once).
    pub file_count: u64,
    /// Uncompressed bytes of those files.
    pub bytes: u64,
    /// Relocation summary.
    pub relocation: RelocationSummary,
    /// Conda packages, sorted by name.
    pub conda_packages: Vec<CondaPackage>,
    /// pip-installed distributions.
    pub pip_packages: Vec<PipPackage>,
    /// The SBOM sidecar's file name (no directory; `None` in manifests of envship before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<String>,
    /// The block index sidecar (tar.gz and tar.zst), so that a reader can trust it as much as
    /// the manifest (`None` for other formats and in manifests of envship before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_index: Option<BlockIndexRef>,
    /// The evidence page's file name (no directory), once ship wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
    /// Environment variables from `conda-meta/state` applied by `bin/activate`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env_vars: BTreeMap<String, String>,
    /// Audit summary, filled in by the audit stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<serde_json::Value>,
    /// Test result, filled in by the test stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<serde_json::Value>,
    /// Anything else later stages record.
    #[serde(default, flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The manifest's pointer to the block index.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockIndexRef {
    /// The sidecar's file name.
    pub file: String,
    /// Its sha256.
    pub sha256: String,
    /// How many blocks it lists.
    pub blocks: usize,
}

impl Manifest {
    /// Read a manifest file.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(PackError::io("reading", path))?;
        let m: Self = serde_json::from_slice(&bytes).map_err(|source| PackError::BadManifest {
            path: path.to_path_buf(),
            source,
        })?;
        // Deploy joins `arcroot` to the version directory: it keeps the archive path rule.
        if let Some(a) = m.arcroot.as_deref() {
            if let Err(v) = crate::archive_path::ArchivePath::parse(a.as_bytes()) {
                return Err(PackError::BadManifestField {
                    path: path.to_path_buf(),
                    field: "arcroot",
                    reason: format!("{a:?}: {v}"),
                });
            }
        }
        Ok(m)
    }

    /// Write a manifest file atomically (pretty JSON, trailing newline).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.stage(path)?
            .commit()
            .map_err(PackError::io("renaming to", path))
    }

    /// [`Manifest::write`] up to the rename: a temp file next to `path`.
    pub fn stage(&self, path: &Path) -> Result<envship_spec::output::StagedFile> {
        let mut s = serde_json::to_vec_pretty(self).map_err(|source| PackError::BadManifest {
            path: path.to_path_buf(),
            source,
        })?;
        s.push(b'\n');
        crate::relocate::stage_atomic(path, &s)
    }
}
