//! Who owns which file, and which files record a prefix placeholder, read straight from the
//! prefix's `conda-meta/*.json` records (conda's and rattler's `PrefixRecord` layout).
//!
//! The records are parsed by `envship_spec::conda_meta`, which pack shares.

use std::{collections::HashMap, path::Path};

use envship_spec::conda_meta::{self, CondaMetaRecord};

use crate::AuditError;

/// How a file records the prefix (`paths_data.paths[]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedFile {
    /// Index into [`CondaMeta::packages`].
    pub package: usize,
    /// `prefix_placeholder`, when the package registered one.
    pub placeholder: Option<String>,
    /// `file_mode` is `binary`.
    pub binary: bool,
    /// `path_type`, e.g. `hardlink`, `softlink`, `unix_python_entry_point`.
    pub path_type: Option<String>,
}

/// The installed conda packages of a prefix.
#[derive(Clone, Debug, Default)]
pub struct CondaMeta {
    /// `name-version-build` of each record, in file-name order.
    pub packages: Vec<String>,
    /// Prefix-relative path → owner.
    pub files: HashMap<String, OwnedFile>,
}

impl CondaMeta {
    /// Read `root/conda-meta/*.json`; an absent directory gives an empty map.
    pub fn load(root: &Path) -> Result<Self, AuditError> {
        let mut meta = Self::default();
        let paths = conda_meta::record_paths(root)
            .map_err(|source| AuditError::Io {
                path: root.join("conda-meta"),
                source,
            })?
            .unwrap_or_default();
        for path in paths {
            let text = std::fs::read(&path).map_err(|source| AuditError::Io {
                path: path.clone(),
                source,
            })?;
            let record: CondaMetaRecord =
                serde_json::from_slice(&text).map_err(|source| AuditError::CondaMeta {
                    path: path.clone(),
                    source,
                })?;
            let index = meta.packages.len();
            meta.packages.push(record.dist_name());
            for f in &record.files {
                meta.files.entry(f.clone()).or_insert(OwnedFile {
                    package: index,
                    placeholder: None,
                    binary: false,
                    path_type: None,
                });
            }
            for p in record.paths_data.map(|d| d.paths).unwrap_or_default() {
                meta.files.insert(
                    p.path,
                    OwnedFile {
                        package: index,
                        placeholder: p.prefix_placeholder,
                        binary: p.file_mode.as_deref() == Some("binary"),
                        path_type: p.path_type,
                    },
                );
            }
        }
        Ok(meta)
    }

    /// The owner name of a prefix-relative path.
    pub fn owner_name(&self, rel: &str) -> Option<&str> {
        self.files
            .get(rel)
            .and_then(|o| self.packages.get(o.package))
            .map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_records_and_names_bad_ones() {
        let dir = tempfile::tempdir().expect("tmp");
        let meta_dir = dir.path().join("conda-meta");
        std::fs::create_dir(&meta_dir).expect("mkdir");
        std::fs::write(
            meta_dir.join("zlib-1.2.11-h7b6447c_3.json"),
            r#"{"name":"zlib","version":"1.2.11","build":"h7b6447c_3","files":["lib/libz.so.1.2.11","lib/pkgconfig/zlib.pc"],
               "paths_data":{"paths_version":1,"paths":[{"_path":"lib/pkgconfig/zlib.pc","path_type":"hardlink","prefix_placeholder":"/opt/ph","file_mode":"text"},
               {"_path":"lib/libz.so.1.2.11","path_type":"hardlink"}]}}"#,
        )
        .expect("write");
        let m = CondaMeta::load(dir.path()).expect("load");
        assert_eq!(
            m.owner_name("lib/libz.so.1.2.11"),
            Some("zlib-1.2.11-h7b6447c_3")
        );
        assert_eq!(
            m.files["lib/pkgconfig/zlib.pc"].placeholder.as_deref(),
            Some("/opt/ph")
        );
        assert!(m.owner_name("lib/other").is_none());

        std::fs::write(meta_dir.join("broken-1-0.json"), "{\"name\": 3}").expect("write");
        let e = CondaMeta::load(dir.path()).expect_err("bad");
        assert!(e.to_string().contains("broken-1-0.json"), "{e}");
    }
}
