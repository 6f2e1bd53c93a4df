//! Build small real conda packages: the files, `info/index.json`, `info/paths.json`,
//! `info/files`, `info/has_prefix`, `info/link.json`, written as `.conda` or `.tar.bz2` by
//! rattler_package_streaming (the writer conda-build and rattler-build use).

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use rattler_conda_types::compression_level::CompressionLevel;
use sha2::{Digest, Sha256};

/// The placeholder conda-build writes into files that contain the build prefix: 255 bytes, so
/// any real destination prefix fits in binary files.
pub const PLACEHOLDER: &str = concat!(
    "/opt/envship-build/_h_env_placehold_placehold_placehold_placehold_placehold_placehold",
    "_placehold_placehold_placehold_placehold_placehold_placehold_placehold_placehold",
    "_placehold_placehold_placehold_placehold_placehold_placehold_placehold_placehold_placeho"
);

/// The short legacy placeholder (conda's `/opt/anaconda1anaconda2anaconda3`).
pub const SHORT_PLACEHOLDER: &str = "/opt/anaconda1anaconda2anaconda3";

/// Which archive format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// `.conda` (zip of zstd tarballs).
    Conda,
    /// `.tar.bz2`.
    TarBz2,
}

/// How a placeholder in a file is to be replaced at install time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaceholderMode {
    /// Byte-for-byte text replacement.
    Text,
    /// Replacement inside NUL-terminated strings, padded with NULs.
    Binary,
}

#[derive(Clone, Debug)]
enum Entry {
    File {
        contents: Vec<u8>,
        executable: bool,
        placeholder: Option<(String, PlaceholderMode)>,
    },
    Symlink(String),
}

/// A conda package to build.
#[derive(Clone, Debug)]
pub struct PackageBuilder {
    name: String,
    version: String,
    build: String,
    build_number: u64,
    subdir: String,
    noarch_python: bool,
    depends: Vec<String>,
    constrains: Vec<String>,
    license: Option<String>,
    entry_points: Vec<String>,
    files: BTreeMap<String, Entry>,
    timestamp: u64,
}

impl PackageBuilder {
    /// A linux-64 package with build string `h0_0`.
    pub fn new(name: &str, version: &str) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            build: "h0_0".into(),
            build_number: 0,
            subdir: "linux-64".into(),
            noarch_python: false,
            depends: Vec::new(),
            constrains: Vec::new(),
            license: Some("MIT".into()),
            entry_points: Vec::new(),
            files: BTreeMap::new(),
            // 2024-01-01: a fixed time keeps the archives and their hashes reproducible.
            timestamp: 1_704_067_200_000,
        }
    }

    /// Set the build string and number.
    pub fn build(mut self, build: &str, number: u64) -> Self {
        self.build = build.into();
        self.build_number = number;
        self
    }

    /// Set the upload time (milliseconds since the epoch) written to `index.json`.
    pub fn timestamp_ms(mut self, ms: u64) -> Self {
        self.timestamp = ms;
        self
    }

    /// Set the subdir (`linux-64`, `noarch`, …).
    pub fn subdir(mut self, subdir: &str) -> Self {
        self.subdir = subdir.into();
        self
    }

    /// Make it a `noarch: python` package: files under `site-packages/` and `python-scripts/`.
    pub fn noarch_python(mut self) -> Self {
        self.noarch_python = true;
        self.subdir = "noarch".into();
        self
    }

    /// Add a dependency spec (e.g. `__glibc >=2.17`).
    pub fn depends(mut self, spec: &str) -> Self {
        self.depends.push(spec.into());
        self
    }

    /// Add a constraint spec.
    pub fn constrains(mut self, spec: &str) -> Self {
        self.constrains.push(spec.into());
        self
    }

    /// Set the licence (None for no licence field).
    pub fn license(mut self, license: Option<&str>) -> Self {
        self.license = license.map(str::to_string);
        self
    }

    /// Add a noarch python entry point (`name = module:func`).
    pub fn entry_point(mut self, ep: &str) -> Self {
        self.entry_points.push(ep.into());
        self
    }

    /// Add a plain file.
    pub fn file(mut self, path: &str, contents: impl AsRef<[u8]>) -> Self {
        self.files.insert(
            path.into(),
            Entry::File {
                contents: contents.as_ref().to_vec(),
                executable: false,
                placeholder: None,
            },
        );
        self
    }

    /// Add an executable file.
    pub fn executable(mut self, path: &str, contents: impl AsRef<[u8]>) -> Self {
        self.files.insert(
            path.into(),
            Entry::File {
                contents: contents.as_ref().to_vec(),
                executable: true,
                placeholder: None,
            },
        );
        self
    }

    /// Add a file copied from disk: executable when `metadata` (the original's) has an x bit.
    pub fn file_like(self, path: &str, contents: Vec<u8>, metadata: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::PermissionsExt;
        if metadata.permissions().mode() & 0o111 != 0 {
            self.executable(path, contents)
        } else {
            self.file(path, contents)
        }
    }

    /// Add a file whose contents mention `placeholder` (e.g. [`PLACEHOLDER`]), replaced by the
    /// install prefix at install time.
    pub fn file_with_placeholder(
        mut self,
        path: &str,
        contents: impl AsRef<[u8]>,
        placeholder: &str,
        mode: PlaceholderMode,
        executable: bool,
    ) -> Self {
        self.files.insert(
            path.into(),
            Entry::File {
                contents: contents.as_ref().to_vec(),
                executable,
                placeholder: Some((placeholder.into(), mode)),
            },
        );
        self
    }

    /// Add a symlink.
    pub fn symlink(mut self, path: &str, target: &str) -> Self {
        self.files
            .insert(path.into(), Entry::Symlink(target.into()));
        self
    }

    /// The archive's file name stem (`name-version-build`).
    pub fn stem(&self) -> String {
        format!("{}-{}-{}", self.name, self.version, self.build)
    }

    /// Build into `channel_dir/<subdir>/` and return the archive path.
    pub fn write_to_channel(&self, channel_dir: &Path, format: ArchiveFormat) -> PathBuf {
        let out_dir = channel_dir.join(&self.subdir);
        fs_err::create_dir_all(&out_dir).unwrap();
        self.write(&out_dir, format)
    }

    /// `info/index.json` of the package.
    fn index_json(&self) -> serde_json::Value {
        let mut index = serde_json::json!({
            "name": self.name,
            "version": self.version,
            "build": self.build,
            "build_number": self.build_number,
            "depends": self.depends,
            "constrains": self.constrains,
            "subdir": self.subdir,
            "timestamp": self.timestamp,
        });
        if let Some(l) = &self.license {
            index["license"] = l.clone().into();
        }
        if self.subdir == "linux-64" {
            index["arch"] = "x86_64".into();
            index["platform"] = "linux".into();
        }
        if self.noarch_python {
            index["noarch"] = "python".into();
        }
        index
    }

    /// Build into `out_dir` and return the archive path.
    pub fn write(&self, out_dir: &Path, format: ArchiveFormat) -> PathBuf {
        let staging = tempfile::tempdir().unwrap();
        let root = staging.path().canonicalize().unwrap();
        let mut paths_json = Vec::new();
        let mut has_prefix = Vec::new();
        let mut rel_paths: Vec<PathBuf> = Vec::new();

        for (rel, entry) in &self.files {
            let abs = root.join(rel);
            fs_err::create_dir_all(abs.parent().unwrap()).unwrap();
            match entry {
                Entry::File {
                    contents,
                    executable,
                    placeholder,
                } => {
                    fs_err::write(&abs, contents).unwrap();
                    set_mode(&abs, if *executable { 0o755 } else { 0o644 });
                    let mut rec = serde_json::json!({
                        "_path": rel,
                        "path_type": "hardlink",
                        "sha256": hex::encode(Sha256::digest(contents)),
                        "size_in_bytes": contents.len(),
                    });
                    if let Some((ph, mode)) = placeholder {
                        let mode = match mode {
                            PlaceholderMode::Text => "text",
                            PlaceholderMode::Binary => "binary",
                        };
                        rec["prefix_placeholder"] = ph.clone().into();
                        rec["file_mode"] = mode.into();
                        has_prefix.push(format!("{ph} {mode} {rel}"));
                    }
                    paths_json.push(rec);
                }
                Entry::Symlink(target) => {
                    std::os::unix::fs::symlink(target, &abs).unwrap();
                    paths_json.push(serde_json::json!({
                        "_path": rel,
                        "path_type": "softlink",
                        "sha256": hex::encode(Sha256::digest(target.as_bytes())),
                        "size_in_bytes": target.len(),
                    }));
                }
            }
            rel_paths.push(rel.into());
        }

        let info = root.join("info");
        fs_err::create_dir_all(&info).unwrap();
        write_json(&info.join("index.json"), &self.index_json());
        write_json(
            &info.join("paths.json"),
            &serde_json::json!({ "paths": paths_json, "paths_version": 1 }),
        );
        fs_err::write(
            info.join("files"),
            self.files
                .keys()
                .map(|k| format!("{k}\n"))
                .collect::<String>(),
        )
        .unwrap();
        fs_err::write(
            info.join("about.json"),
            serde_json::to_vec(&serde_json::json!({
                "summary": format!("{} built by envship-test-support", self.name),
                "license": self.license,
            }))
            .unwrap(),
        )
        .unwrap();
        let mut info_files = vec![
            "info/index.json",
            "info/paths.json",
            "info/files",
            "info/about.json",
        ];
        if !has_prefix.is_empty() {
            fs_err::write(info.join("has_prefix"), has_prefix.join("\n") + "\n").unwrap();
            info_files.push("info/has_prefix");
        }
        if self.noarch_python {
            write_json(
                &info.join("link.json"),
                &serde_json::json!({
                    "noarch": { "type": "python", "entry_points": self.entry_points },
                    "package_metadata_version": 1
                }),
            );
            info_files.push("info/link.json");
        }
        rel_paths.extend(info_files.into_iter().map(PathBuf::from));
        rel_paths.sort();
        let abs_paths: Vec<PathBuf> = rel_paths.iter().map(|p| root.join(p)).collect();

        let ts = jiff::Timestamp::from_millisecond(self.timestamp as i64).unwrap();
        let stem = self.stem();
        match format {
            ArchiveFormat::TarBz2 => {
                let out = out_dir.join(format!("{stem}.tar.bz2"));
                let f = fs_err::File::create(&out).unwrap();
                rattler_package_streaming::write::write_tar_bz2_package(
                    f,
                    &root,
                    &abs_paths,
                    CompressionLevel::Numeric(1),
                    Some(&ts),
                    None,
                )
                .unwrap();
                out
            }
            ArchiveFormat::Conda => {
                let out = out_dir.join(format!("{stem}.conda"));
                let f = fs_err::File::create(&out).unwrap();
                rattler_package_streaming::write::write_conda_package(
                    f,
                    &root,
                    &abs_paths,
                    CompressionLevel::Numeric(3),
                    Some(1),
                    &stem,
                    Some(&ts),
                    None,
                )
                .unwrap();
                out
            }
        }
    }
}

fn write_json(path: &Path, value: &serde_json::Value) {
    fs_err::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
