//! The prefix's own record of what is installed: `conda-meta/*.json` (conda's and rattler's
//! `PrefixRecord` layout), read by the audit (who owns a file, which files carry a placeholder)
//! and by pack (what to relocate, what the manifest lists).
//!
//! Only the fields envship uses are parsed, all but name/version/build optional, so records
//! written by any conda version (or by hand, as conda-pack's tests do) load.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One `conda-meta/NAME-VERSION-BUILD.json`.
#[derive(Clone, Debug, Deserialize)]
pub struct CondaMetaRecord {
    /// Package name.
    pub name: String,
    /// Package version.
    pub version: String,
    /// Build string.
    pub build: String,
    /// Channel the package came from.
    #[serde(default)]
    pub channel: Option<String>,
    /// Subdir of the package.
    #[serde(default)]
    pub subdir: Option<String>,
    /// sha256 of the package archive.
    #[serde(default)]
    pub sha256: Option<String>,
    /// License.
    #[serde(default)]
    pub license: Option<String>,
    /// Installed files, prefix-relative (older records have only this).
    #[serde(default)]
    pub files: Vec<String>,
    /// Installed files with their placeholder facts.
    #[serde(default)]
    pub paths_data: Option<PathsData>,
}

/// `paths_data` of a record.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PathsData {
    /// One entry per installed path.
    #[serde(default)]
    pub paths: Vec<PathEntry>,
}

/// One installed path and how it records the prefix.
#[derive(Clone, Debug, Deserialize)]
pub struct PathEntry {
    /// Prefix-relative path.
    #[serde(rename = "_path")]
    pub path: String,
    /// `hardlink`, `softlink`, `directory`, `unix_python_entry_point`, …
    #[serde(default)]
    pub path_type: Option<String>,
    /// The placeholder the package was built with, when the file carries one.
    #[serde(default)]
    pub prefix_placeholder: Option<String>,
    /// `text` or `binary` (how the placeholder is replaced).
    #[serde(default)]
    pub file_mode: Option<String>,
    /// Size as installed.
    #[serde(default)]
    pub size_in_bytes: Option<u64>,
    /// sha256 of the file as the package ships it (hex).
    #[serde(default)]
    pub sha256: Option<String>,
    /// sha256 of the file as the installer wrote it into the prefix (after placeholders).
    #[serde(default)]
    pub sha256_in_prefix: Option<String>,
}

impl CondaMetaRecord {
    /// `name-version-build`, the record's file stem.
    pub fn dist_name(&self) -> String {
        format!("{}-{}-{}", self.name, self.version, self.build)
    }

    /// `paths_data` when the record has it, else `files` as plain entries.
    pub fn path_entries(&self) -> Vec<PathEntry> {
        match &self.paths_data {
            Some(pd) if !pd.paths.is_empty() => pd.paths.clone(),
            _ => self
                .files
                .iter()
                .map(|f| PathEntry {
                    path: f.clone(),
                    path_type: None,
                    prefix_placeholder: None,
                    file_mode: None,
                    size_in_bytes: None,
                    sha256: None,
                    sha256_in_prefix: None,
                })
                .collect(),
        }
    }
}

/// The record files of `root/conda-meta`, sorted; `Ok(None)` when there is no such directory.
pub fn record_paths(root: &Path) -> std::io::Result<Option<Vec<PathBuf>>> {
    let dir = root.join("conda-meta");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    Ok(Some(paths))
}

/// The readable records of `root/conda-meta` with their paths, sorted; unreadable or malformed
/// ones are left out (for checks that look at what the records own, not for pack, which
/// refuses a malformed record).
pub fn readable_records(root: &Path) -> Vec<(PathBuf, CondaMetaRecord)> {
    let Ok(Some(paths)) = record_paths(root) else {
        return Vec::new();
    };
    paths
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            let record = serde_json::from_str(&text).ok()?;
            Some((p, record))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_records_without_paths_data_list_their_files() {
        let r: CondaMetaRecord = serde_json::from_str(
            r#"{"name":"zlib","version":"1.2.11","build":"0","files":["lib/libz.so"]}"#,
        )
        .expect("parse");
        assert_eq!(r.dist_name(), "zlib-1.2.11-0");
        let e = r.path_entries();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].path, "lib/libz.so");
        assert!(e[0].prefix_placeholder.is_none());
    }

    #[test]
    fn record_paths_are_sorted_json_files_and_none_without_conda_meta() {
        let dir = tempfile::tempdir().expect("tmp");
        assert!(record_paths(dir.path()).expect("io").is_none());
        let meta = dir.path().join("conda-meta");
        std::fs::create_dir(&meta).expect("mkdir");
        for f in ["b-1-0.json", "history", "a-1-0.json"] {
            std::fs::write(meta.join(f), "{}").expect("write");
        }
        let names: Vec<String> = record_paths(dir.path())
            .expect("io")
            .expect("dir")
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a-1-0.json", "b-1-0.json"]);
    }
}
