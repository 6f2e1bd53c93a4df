//! `envship diff`: what changed between two releases of an environment. Each side is an archive
//! (its `.manifest.json` sidecar beside it), a manifest file, a prefix (its `conda-meta/` and pip
//! distributions), or a deployed version (the manifest and [tree record](crate::tree) deploy
//! keeps beside it); see [`Side::open`].
//!
//! The diff ([`ReleaseDiff`]) lists conda packages and pip distributions added, removed and
//! changed (version or build), the file count and byte totals of both sides, the paths added,
//! removed and modified when both sides have a tree (a prefix or a deployed version), and the
//! audit: the summary counts from the manifests and, when an `.audit.json` report is beside both
//! sides, the findings that appear or go away. It renders as a table ([`render_table`]) or a
//! Markdown section for a release body ([`render_markdown`]); it serializes as JSON.
//!
//! This module reads the audit report only as the documented JSON of its `findings` (severity,
//! check, package, path, message): it does not run or interpret the audit.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::{
    format::Sidecar,
    tree::{self, TreeError, TreeRecord},
    CondaPackage, Manifest, PackError, PipPackage,
};

/// Errors of opening a side of a diff.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DiffError {
    /// The path does not exist.
    #[error("{} does not exist", path.display())]
    #[diagnostic(help(
        "pass an archive, a .manifest.json, a prefix or a deployed version directory"
    ))]
    NotFound {
        /// The path given.
        path: PathBuf,
    },

    /// An archive without its manifest sidecar.
    #[error("{} has no manifest beside it: {} does not exist", archive.display(), manifest.display())]
    #[diagnostic(help("`envship pack` writes NAME-VERSION-TARGET-SUBDIR.manifest.json beside the archive; download it with the archive, or pass the manifest itself"))]
    NoManifest {
        /// The archive.
        archive: PathBuf,
        /// Where its manifest was looked for.
        manifest: PathBuf,
    },

    /// A directory that is neither a prefix nor a deployed version.
    #[error("{} is neither a prefix (no conda-meta/) nor a deployed version (no {})", path.display(), manifest.display())]
    #[diagnostic(help("pass an environment prefix, ROOT/NAME/VERSION or ROOT/NAME/current"))]
    UnknownDirectory {
        /// The directory.
        path: PathBuf,
        /// Where a deployed version's manifest was looked for.
        manifest: PathBuf,
    },

    /// Reading a manifest or a prefix's package records failed.
    #[error("reading {}", path.display())]
    Read {
        /// The file or prefix.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<PackError>,
    },

    /// Reading or scanning a tree failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Tree(#[from] TreeError),

    /// An audit report beside a side could not be read.
    #[error("bad audit report {}", path.display())]
    #[diagnostic(help("the report was damaged; re-run `envship audit --json`, or remove it to compare the summaries only"))]
    BadAudit {
        /// The report.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
}

/// What a side of a diff is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SideKind {
    /// An archive, read through its manifest sidecar.
    Archive,
    /// A manifest file.
    Manifest,
    /// An environment prefix.
    Prefix,
    /// A deployed version (`ROOT/NAME/VERSION`).
    Deployed,
}

/// One audit finding, as the audit report's JSON has it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AuditFinding {
    /// `error` or `warning`.
    #[serde(default)]
    pub severity: String,
    /// The check (`glibc`, `linkage`, …).
    #[serde(default)]
    pub check: String,
    /// The package the file belongs to.
    #[serde(default)]
    pub package: String,
    /// The file.
    #[serde(default)]
    pub path: String,
    /// What is wrong.
    #[serde(default)]
    pub message: String,
}

/// One side of a diff, read.
#[derive(Clone, Debug)]
pub struct Side {
    /// What it is.
    pub kind: SideKind,
    /// The path given (a followed `current` resolved).
    pub path: PathBuf,
    /// Environment name and version, when a manifest says.
    pub release: Option<(String, String)>,
    /// Conda packages.
    pub conda: Vec<CondaPackage>,
    /// pip distributions.
    pub pip: Vec<PipPackage>,
    /// Regular files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// The tree, for prefixes and deployed versions.
    pub tree: Option<TreeRecord>,
    /// The manifest's audit summary, once audit ran.
    pub audit: Option<serde_json::Value>,
    /// The findings of an audit report beside it.
    pub findings: Option<Vec<AuditFinding>>,
}

fn read_manifest(path: &Path) -> Result<Manifest, DiffError> {
    Manifest::read(path).map_err(|e| DiffError::Read {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// The audit report at `path`, if there is one.
#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    summary: Option<serde_json::Value>,
    #[serde(default)]
    findings: Vec<AuditFinding>,
}

/// The summary and findings of the audit report at `path`, if there is one.
fn read_findings(path: &Path) -> Result<Option<Report>, DiffError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(_) => return Ok(None),
    };
    let r: Report = serde_json::from_slice(&bytes).map_err(|source| DiffError::BadAudit {
        path: path.to_path_buf(),
        source,
    })?;
    let mut r = r;
    r.findings.sort();
    Ok(Some(r))
}

impl Side {
    /// A side from a manifest (read from `path`, an archive's sidecar or a manifest file), with
    /// the audit report `audit` if it exists.
    pub fn from_manifest(
        kind: SideKind,
        path: &Path,
        m: &Manifest,
        audit: Option<&Path>,
    ) -> Result<Side, DiffError> {
        let report = match audit {
            Some(a) => read_findings(a)?,
            None => None,
        };
        let (summary, findings) = match report {
            Some(r) => (r.summary, Some(r.findings)),
            None => (None, None),
        };
        Ok(Side {
            kind,
            path: path.to_path_buf(),
            release: Some((m.name.clone(), m.version.clone())),
            conda: m.conda_packages.clone(),
            pip: m.pip_packages.clone(),
            files: m.file_count,
            bytes: m.bytes,
            tree: None,
            // The manifest's summary (ship puts it there), else the report's.
            audit: m.audit.clone().or(summary),
            findings,
        })
    }

    /// Open `path`: a `.manifest.json`, an archive with its manifest beside it, a deployed
    /// version (its kept manifest and tree record, see [`tree::manifest_path`]; `current`
    /// followed), or a prefix (its packages, and its tree: the record beside it, else scanned).
    pub fn open(path: &Path) -> Result<Side, DiffError> {
        if std::fs::symlink_metadata(path).is_err() {
            return Err(DiffError::NotFound {
                path: path.to_path_buf(),
            });
        }
        if path.is_file() {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let is_manifest = name
                .as_deref()
                .is_some_and(|n| n.ends_with(Sidecar::Manifest.suffix()));
            let manifest = if is_manifest {
                path.to_path_buf()
            } else {
                Sidecar::Manifest.path_for(path)
            };
            if !manifest.is_file() {
                return Err(DiffError::NoManifest {
                    archive: path.to_path_buf(),
                    manifest,
                });
            }
            let m = read_manifest(&manifest)?;
            let stem = name.as_deref().unwrap_or_default();
            let stem = stem
                .strip_suffix(Sidecar::Manifest.suffix())
                .unwrap_or(stem);
            let audit = path.with_file_name(format!(
                "{}{}",
                crate::archive_stem(stem),
                Sidecar::Audit.suffix()
            ));
            let kind = if is_manifest {
                SideKind::Manifest
            } else {
                SideKind::Archive
            };
            return Side::from_manifest(kind, path, &m, Some(&audit));
        }
        let dir = tree::resolve_tree(path)?;
        let kept = tree::manifest_path(&dir);
        let record = tree::record_path(&dir);
        if kept.is_file() {
            let m = read_manifest(&kept)?;
            let mut side = Side::from_manifest(SideKind::Deployed, &dir, &m, None)?;
            if record.is_file() {
                let rec = TreeRecord::read(&record)?;
                side.files = rec.files;
                side.bytes = rec.bytes;
                side.tree = Some(rec);
            }
            return Ok(side);
        }
        if !dir.join("conda-meta").is_dir() {
            return Err(DiffError::UnknownDirectory {
                path: dir,
                manifest: kept,
            });
        }
        let (conda, pip) = crate::prefix::packages(&dir).map_err(|e| DiffError::Read {
            path: dir.clone(),
            source: Box::new(e),
        })?;
        let rec = if record.is_file() {
            TreeRecord::read(&record)?
        } else {
            TreeRecord::scan(&dir)?
        };
        Ok(Side {
            kind: SideKind::Prefix,
            path: dir,
            release: None,
            conda,
            pip,
            files: rec.files,
            bytes: rec.bytes,
            tree: Some(rec),
            audit: None,
            findings: None,
        })
    }
}

/// A side as the diff reports it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SideSummary {
    /// What it is.
    pub kind: SideKind,
    /// Its path.
    pub path: PathBuf,
    /// Environment name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Release version, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Regular files.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl SideSummary {
    fn label(&self) -> String {
        match (&self.name, &self.version) {
            (Some(n), Some(v)) => format!("{n} {v}"),
            _ => self.path.display().to_string(),
        }
    }
}

/// A package in one side only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Package {
    /// Name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Build string (conda only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
}

/// A package in both sides with another version or build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PackageChange {
    /// Name.
    pub name: String,
    /// Old version.
    pub old_version: String,
    /// New version.
    pub new_version: String,
    /// Old build string (conda only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_build: Option<String>,
    /// New build string (conda only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_build: Option<String>,
}

/// Packages added, removed and changed, each sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PackageChanges {
    /// In the new side only.
    pub added: Vec<Package>,
    /// In the old side only.
    pub removed: Vec<Package>,
    /// In both, another version or build.
    pub changed: Vec<PackageChange>,
}

impl PackageChanges {
    /// No package changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    fn between(old: BTreeMap<String, Package>, new: BTreeMap<String, Package>) -> Self {
        let mut c = PackageChanges::default();
        for (k, o) in &old {
            match new.get(k) {
                None => c.removed.push(o.clone()),
                Some(n) if n.version != o.version || n.build != o.build => {
                    c.changed.push(PackageChange {
                        name: n.name.clone(),
                        old_version: o.version.clone(),
                        new_version: n.version.clone(),
                        old_build: o.build.clone(),
                        new_build: n.build.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        c.added = new
            .into_iter()
            .filter(|(k, _)| !old.contains_key(k))
            .map(|(_, p)| p)
            .collect();
        c
    }
}

/// Paths added, removed and modified, when both sides have a tree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FileChanges {
    /// Paths in the new tree only.
    pub added: usize,
    /// Paths in the old tree only.
    pub removed: usize,
    /// Paths whose content, link target, type or mode changed.
    pub modified: usize,
    /// Bytes of the files added.
    pub bytes_added: u64,
    /// Bytes of the files removed.
    pub bytes_removed: u64,
    /// Bytes (new size) of the files modified.
    pub bytes_modified: u64,
}

/// Audit summaries and findings of both sides.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AuditChanges {
    /// The old manifest's audit summary.
    pub old: Option<serde_json::Value>,
    /// The new manifest's audit summary.
    pub new: Option<serde_json::Value>,
    /// Findings in the new report only (`None`: no report on one side).
    pub appeared: Option<Vec<AuditFinding>>,
    /// Findings in the old report only.
    pub gone: Option<Vec<AuditFinding>>,
}

/// What changed from `old` to `new`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ReleaseDiff {
    /// The old side.
    pub old: SideSummary,
    /// The new side.
    pub new: SideSummary,
    /// Conda packages.
    pub conda: PackageChanges,
    /// pip distributions (by normalized name).
    pub pip: PackageChanges,
    /// Path-level changes, when both sides have a tree.
    pub files: Option<FileChanges>,
    /// The audit.
    pub audit: AuditChanges,
}

fn summary(s: &Side) -> SideSummary {
    let (name, version) = match &s.release {
        Some((n, v)) => (Some(n.clone()), Some(v.clone())),
        None => (None, None),
    };
    SideSummary {
        kind: s.kind,
        path: s.path.clone(),
        name,
        version,
        files: s.files,
        bytes: s.bytes,
    }
}

fn conda_map(s: &Side) -> BTreeMap<String, Package> {
    s.conda
        .iter()
        .map(|p| {
            let pkg = Package {
                name: p.name.clone(),
                version: p.version.clone(),
                build: Some(p.build.clone()),
            };
            (p.name.clone(), pkg)
        })
        .collect()
}

fn pip_map(s: &Side) -> BTreeMap<String, Package> {
    s.pip
        .iter()
        .map(|p| {
            let pkg = Package {
                name: p.name.clone(),
                version: p.version.clone(),
                build: None,
            };
            (envship_spec::python_dists::normalize(&p.name), pkg)
        })
        .collect()
}

fn file_changes(old: &TreeRecord, new: &TreeRecord) -> FileChanges {
    let d = old.diff(new);
    let mut modified: BTreeSet<&str> = BTreeSet::new();
    modified.extend(d.modified.iter().map(|m| m.path.as_str()));
    modified.extend(d.retyped.iter().map(|m| m.path.as_str()));
    modified.extend(d.mode_changed.iter().map(|m| m.path.as_str()));
    let sizes: BTreeMap<&str, u64> = new
        .entries
        .iter()
        .map(|e| (e.path.as_str(), e.size.unwrap_or(0)))
        .collect();
    FileChanges {
        added: d.added.len(),
        removed: d.missing.len(),
        modified: modified.len(),
        bytes_added: d.added.iter().filter_map(|p| p.size).sum(),
        bytes_removed: d.missing.iter().filter_map(|p| p.size).sum(),
        bytes_modified: modified.iter().filter_map(|p| sizes.get(p)).sum(),
    }
}

/// Compare two sides.
pub fn diff(old: &Side, new: &Side) -> ReleaseDiff {
    let (appeared, gone) = match (&old.findings, &new.findings) {
        (Some(o), Some(n)) => {
            let (os, ns): (BTreeSet<_>, BTreeSet<_>) = (o.iter().collect(), n.iter().collect());
            (
                Some(ns.difference(&os).map(|f| (*f).clone()).collect()),
                Some(os.difference(&ns).map(|f| (*f).clone()).collect()),
            )
        }
        _ => (None, None),
    };
    ReleaseDiff {
        old: summary(old),
        new: summary(new),
        conda: PackageChanges::between(conda_map(old), conda_map(new)),
        pip: PackageChanges::between(pip_map(old), pip_map(new)),
        files: match (&old.tree, &new.tree) {
            (Some(o), Some(n)) => Some(file_changes(o, n)),
            _ => None,
        },
        audit: AuditChanges {
            old: old.audit.clone(),
            new: new.audit.clone(),
            appeared,
            gone,
        },
    }
}

mod render;

pub use render::{file_changes_sentence, human_bytes, render_markdown, render_table};

#[cfg(test)]
mod tests;
