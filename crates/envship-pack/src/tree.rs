//! The record of a tree as it is on disk (after relocation): every path under a root, its type,
//! permission bits, size, the sha256 of each file's content and each symlink's target. `envship
//! deploy` writes one for each version and `envship unpack` for its destination, so that
//! `envship verify` can later name every file that changed, went missing, appeared or changed
//! type ([`verify`]); `envship diff` compares two of them ([`TreeRecord::diff`]).
//!
//! **Where**: beside the tree, as a hidden file named after it: the record of `PARENT/NAME` is
//! `PARENT/.NAME.tree.json` ([`record_path`]), so a deployed `ROOT/ENV/VERSION` has
//! `ROOT/ENV/.VERSION.tree.json`.
//!
//! # JSON format (`tree_record_version` 1)
//!
//! ```text
//! {
//!   "tree_record_version": 1,
//!   "envship_version": "0.1.0",
//!   "root": "/opt/envs/psana/1.0",      // where the tree was when recorded (informational)
//!   "files": 812, "bytes": 123456789,   // regular files (each name counted) and their bytes
//!   "entries": [                        // sorted by path (bytewise)
//!     { "path": "bin", "type": "dir", "mode": "0755" },
//!     { "path": "bin/python3.11", "type": "file", "mode": "0755", "size": 123, "sha256": "…" },
//!     { "path": "bin/python", "type": "symlink", "target": "python3.11" },
//!     { "path": "run/fifo", "type": "other", "mode": "0644" }
//!   ]
//! }
//! ```
//!
//! Paths are relative to the root, `/`-separated (a name that is not UTF-8 is stored lossily:
//! it then reads as missing and added). `mode` is the permission bits (`st_mode & 07777`) in
//! octal. A new field may be added without changing the version; renaming or removing one bumps
//! it, and a reader refuses versions it does not know.
//!
//! **Speed**: the walk is one thread (it only reads metadata); files are hashed in parallel on
//! rayon's pool, streamed in 1 MiB reads, and a file with several names is hashed once.

use std::{
    collections::{BTreeMap, HashMap},
    io::Read,
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Schema version written by this crate.
pub const TREE_RECORD_VERSION: u32 = 1;
/// What is appended to `.NAME` for a tree's record.
pub const RECORD_SUFFIX: &str = ".tree.json";

/// Errors of recording and verifying trees.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TreeError {
    /// Reading a file or directory of the tree, or writing the record, failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The tree to record or verify is not a directory.
    #[error("{} is not a directory", path.display())]
    #[diagnostic(help(
        "pass a deployed ROOT/NAME/current or ROOT/NAME/VERSION, or a directory made by `envship unpack`"
    ))]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },

    /// The tree has no record beside it.
    #[error("{} has no tree record: {} does not exist", tree.display(), record.display())]
    #[diagnostic(help(
        "`envship deploy` and `envship unpack` write the record; a tree deployed or unpacked by an older envship (or with --no-record) has none"
    ))]
    NoRecord {
        /// The tree.
        tree: PathBuf,
        /// Where its record was looked for.
        record: PathBuf,
    },

    /// A record file is not valid JSON of the record format.
    #[error("bad tree record {}", path.display())]
    #[diagnostic(help(
        "the record was damaged or not written by envship; redeploy to write a new one"
    ))]
    BadRecord {
        /// The record file.
        path: PathBuf,
        /// The JSON error (with line and column).
        #[source]
        source: serde_json::Error,
    },

    /// A record of a format version this envship does not read.
    #[error("tree record {} has format version {found}; this envship reads version {TREE_RECORD_VERSION}", path.display())]
    #[diagnostic(help("use the envship that wrote it, or a newer one"))]
    UnsupportedVersion {
        /// The record file.
        path: PathBuf,
        /// The version it declares.
        found: u32,
    },
}

impl TreeError {
    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_path_buf();
        move |source| TreeError::Io {
            action,
            path,
            source,
        }
    }
}

/// The type of a tree entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryType {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (never followed).
    Symlink,
    /// A fifo, socket or device node.
    Other,
}

impl std::fmt::Display for EntryType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            EntryType::File => "file",
            EntryType::Dir => "dir",
            EntryType::Symlink => "symlink",
            EntryType::Other => "other",
        })
    }
}

/// One path of a recorded tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeEntry {
    /// Relative to the root, `/`-separated.
    pub path: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// Permission bits (`None` for symlinks).
    #[serde(default, with = "octal", skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
    /// Size in bytes (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// sha256 of the content, lowercase hex (files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The link target as stored (symlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Every path under a root as it is on disk. See the module docs for the JSON format.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeRecord {
    /// Schema version ([`TREE_RECORD_VERSION`]).
    pub tree_record_version: u32,
    /// Version of envship that wrote it.
    pub envship_version: String,
    /// Where the tree was when it was recorded.
    pub root: String,
    /// Number of regular files (every name counted).
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Every path, sorted.
    pub entries: Vec<TreeEntry>,
}

/// A file whose content, size or link target differs from the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Modified {
    /// The path.
    pub path: String,
    /// Its type (file or symlink).
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// Recorded size (files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_size: Option<u64>,
    /// Size now (files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_size: Option<u64>,
    /// Recorded target (symlinks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub old_target: Option<String>,
    /// Target now (symlinks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_target: Option<String>,
}

/// A path that is in one tree only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Present {
    /// The path.
    pub path: String,
    /// Its type.
    #[serde(rename = "type")]
    pub kind: EntryType,
    /// Its size (files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// A path whose type changed (a file that became a symlink, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Retyped {
    /// The path.
    pub path: String,
    /// Recorded type.
    pub old: EntryType,
    /// Type now.
    pub new: EntryType,
}

/// A path whose permission bits changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ModeChanged {
    /// The path.
    pub path: String,
    /// Recorded bits (octal).
    #[serde(with = "octal")]
    pub old: Option<u32>,
    /// Bits now (octal).
    #[serde(with = "octal")]
    pub new: Option<u32>,
}

/// How one tree differs from another (or from its record). Every list is sorted by path.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TreeDiff {
    /// Content, size or link target changed.
    pub modified: Vec<Modified>,
    /// In the old tree (the record) only.
    pub missing: Vec<Present>,
    /// In the new tree only.
    pub added: Vec<Present>,
    /// Type changed.
    pub retyped: Vec<Retyped>,
    /// Permission bits changed (content unchanged or not).
    pub mode_changed: Vec<ModeChanged>,
}

impl TreeDiff {
    /// Nothing differs.
    pub fn is_empty(&self) -> bool {
        self.modified.is_empty()
            && self.missing.is_empty()
            && self.added.is_empty()
            && self.retyped.is_empty()
            && self.mode_changed.is_empty()
    }

    /// Number of paths that differ in any way (a path counted once per way).
    pub fn len(&self) -> usize {
        self.modified.len()
            + self.missing.len()
            + self.added.len()
            + self.retyped.len()
            + self.mode_changed.len()
    }
}

/// The record of the tree `dir`: `PARENT/.NAME.tree.json`.
pub fn record_path(dir: &Path) -> PathBuf {
    let dir = normalized(dir);
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let file = format!(".{}{RECORD_SUFFIX}", name.as_deref().unwrap_or(""));
    match dir.parent() {
        Some(p) => p.join(file),
        None => PathBuf::from(file),
    }
}

/// The copy of its archive's manifest that `envship deploy` keeps beside a version:
/// `PARENT/.NAME.manifest.json`.
pub fn manifest_path(dir: &Path) -> PathBuf {
    record_path(dir).with_file_name(format!(
        ".{}{}",
        normalized(dir)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        crate::Sidecar::Manifest.suffix()
    ))
}

/// `dir` ending in its own name (resolved when it has `..` or ends in `.`).
fn normalized(dir: &Path) -> PathBuf {
    use std::path::Component;
    let last_is_name = matches!(dir.components().next_back(), Some(Component::Normal(_)));
    let has_parent = dir.components().any(|c| c == Component::ParentDir);
    if last_is_name && !has_parent {
        dir.to_path_buf()
    } else {
        std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())
    }
}

/// One walked path, before hashing.
struct Walked {
    entry: TreeEntry,
    full: PathBuf,
    inode: Option<(u64, u64)>,
}

impl TreeRecord {
    /// Record the tree under `root` (a directory; a symlink to one is followed, nothing below
    /// it is). Files are hashed in parallel on rayon's current pool.
    pub fn scan(root: &Path) -> Result<TreeRecord, TreeError> {
        let md = std::fs::metadata(root).map_err(TreeError::io("reading", root))?;
        if !md.is_dir() {
            return Err(TreeError::NotADirectory {
                path: root.to_path_buf(),
            });
        }
        let mut walked = walk(root)?;
        // A file with several names is hashed once.
        let mut first: HashMap<(u64, u64), usize> = HashMap::new();
        let mut todo = Vec::new();
        for (i, w) in walked.iter().enumerate() {
            if let Some(ino) = w.inode {
                if let std::collections::hash_map::Entry::Vacant(v) = first.entry(ino) {
                    v.insert(i);
                    todo.push(i);
                }
            }
        }
        let hashes: Vec<(usize, String)> = todo
            .par_iter()
            .map(|&i| sha256_file(&walked[i].full).map(|h| (i, h)))
            .collect::<Result<_, _>>()?;
        let by_index: HashMap<usize, String> = hashes.into_iter().collect();
        let mut files = 0;
        let mut bytes = 0;
        for w in &mut walked {
            let Some(ino) = w.inode else { continue };
            let h = first.get(&ino).and_then(|f| by_index.get(f)).cloned();
            let e = &mut w.entry;
            e.sha256 = h;
            files += 1;
            bytes += e.size.unwrap_or(0);
        }
        let mut entries: Vec<TreeEntry> = walked.into_iter().map(|w| w.entry).collect();
        entries.sort_by(|a, b| a.path.as_bytes().cmp(b.path.as_bytes()));
        Ok(TreeRecord {
            tree_record_version: TREE_RECORD_VERSION,
            envship_version: env!("CARGO_PKG_VERSION").to_string(),
            root: root.to_string_lossy().into_owned(),
            files,
            bytes,
            entries,
        })
    }

    /// Write the record to `path` atomically (temp file + rename; pretty JSON, trailing
    /// newline).
    pub fn write(&self, path: &Path) -> Result<(), TreeError> {
        let mut s = serde_json::to_vec_pretty(self).map_err(|source| TreeError::BadRecord {
            path: path.to_path_buf(),
            source,
        })?;
        s.push(b'\n');
        envship_spec::output::write_atomic(path, &s).map_err(TreeError::io("writing", path))
    }

    /// Read a record file.
    pub fn read(path: &Path) -> Result<TreeRecord, TreeError> {
        let bytes = std::fs::read(path).map_err(TreeError::io("reading", path))?;
        #[derive(Deserialize)]
        struct Head {
            tree_record_version: u32,
        }
        let bad = |source| TreeError::BadRecord {
            path: path.to_path_buf(),
            source,
        };
        let head: Head = serde_json::from_slice(&bytes).map_err(bad)?;
        if head.tree_record_version != TREE_RECORD_VERSION {
            return Err(TreeError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: head.tree_record_version,
            });
        }
        serde_json::from_slice(&bytes).map_err(bad)
    }

    /// How `new` differs from `self` (the old tree, or the record of a tree).
    pub fn diff(&self, new: &TreeRecord) -> TreeDiff {
        let old: BTreeMap<&str, &TreeEntry> =
            self.entries.iter().map(|e| (e.path.as_str(), e)).collect();
        let new: BTreeMap<&str, &TreeEntry> =
            new.entries.iter().map(|e| (e.path.as_str(), e)).collect();
        let mut d = TreeDiff::default();
        let present = |e: &TreeEntry| Present {
            path: e.path.clone(),
            kind: e.kind,
            size: e.size,
        };
        for (p, o) in &old {
            let Some(n) = new.get(p) else {
                d.missing.push(present(o));
                continue;
            };
            if o.kind != n.kind {
                d.retyped.push(Retyped {
                    path: o.path.clone(),
                    old: o.kind,
                    new: n.kind,
                });
                continue;
            }
            if o.size != n.size || o.sha256 != n.sha256 || o.target != n.target {
                let file = o.kind == EntryType::File;
                d.modified.push(Modified {
                    path: o.path.clone(),
                    kind: o.kind,
                    old_size: o.size.filter(|_| file),
                    new_size: n.size.filter(|_| file),
                    old_target: o.target.clone(),
                    new_target: n.target.clone(),
                });
            }
            if o.mode != n.mode {
                d.mode_changed.push(ModeChanged {
                    path: o.path.clone(),
                    old: o.mode,
                    new: n.mode,
                });
            }
        }
        d.added = new
            .iter()
            .filter(|(p, _)| !old.contains_key(*p))
            .map(|(_, e)| present(e))
            .collect();
        d
    }

    /// Scan `root` and compare it with this record.
    pub fn compare(&self, root: &Path) -> Result<TreeDiff, TreeError> {
        Ok(self.diff(&TreeRecord::scan(root)?))
    }
}

/// Every path under `root` with its metadata; files not hashed yet.
fn walk(root: &Path) -> Result<Vec<Walked>, TreeError> {
    let mut out = Vec::new();
    for item in walkdir::WalkDir::new(root).follow_links(false).min_depth(1) {
        let item = item.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            TreeError::Io {
                action: "walking",
                source: e.into_io_error().unwrap_or_else(|| {
                    std::io::Error::other("file system loop while walking the tree")
                }),
                path,
            }
        })?;
        let full = item.path().to_path_buf();
        let rel = full.strip_prefix(root).unwrap_or(&full);
        let path = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy())
            .collect::<Vec<_>>()
            .join("/");
        let md = item.metadata().map_err(|e| TreeError::Io {
            action: "reading",
            path: full.clone(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("no metadata")),
        })?;
        let ft = md.file_type();
        let mode = Some(md.permissions().mode() & 0o7777);
        let mut entry = TreeEntry {
            path,
            kind: EntryType::Other,
            mode,
            size: None,
            sha256: None,
            target: None,
        };
        let mut inode = None;
        if ft.is_dir() {
            entry.kind = EntryType::Dir;
        } else if ft.is_file() {
            entry.kind = EntryType::File;
            entry.size = Some(md.len());
            inode = Some((md.dev(), md.ino()));
        } else if ft.is_symlink() {
            entry.kind = EntryType::Symlink;
            entry.mode = None;
            let t = std::fs::read_link(&full).map_err(TreeError::io("reading", &full))?;
            entry.target = Some(t.to_string_lossy().into_owned());
        }
        out.push(Walked { entry, full, inode });
    }
    Ok(out)
}

/// sha256 of a file's content, streamed.
fn sha256_file(path: &Path) -> Result<String, TreeError> {
    let mut f = std::fs::File::open(path).map_err(TreeError::io("reading", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(TreeError::io("reading", path)(e)),
        };
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Scan `dir` and write its record beside it ([`record_path`]). Returns the record and where
/// it was written.
pub fn record_tree(dir: &Path) -> Result<(TreeRecord, PathBuf), TreeError> {
    let rec = TreeRecord::scan(dir)?;
    let path = record_path(dir);
    rec.write(&path)?;
    Ok((rec, path))
}

/// The result of [`verify`].
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// The path given.
    pub path: PathBuf,
    /// The tree checked (`path` with a final symlink such as `current` followed).
    pub tree: PathBuf,
    /// The record it was checked against.
    pub record: PathBuf,
    /// Files in the record.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Whether the tree is exactly as recorded.
    pub clean: bool,
    /// What differs.
    #[serde(flatten)]
    pub drift: TreeDiff,
}

/// `path`, with a last component that is a symlink (like `ROOT/NAME/current`) followed, a few
/// levels deep, relative targets taken from the link's directory.
pub fn resolve_tree(path: &Path) -> Result<PathBuf, TreeError> {
    let mut p = normalized(path);
    for _ in 0..8 {
        let md = std::fs::symlink_metadata(&p).map_err(TreeError::io("reading", &p))?;
        if !md.file_type().is_symlink() {
            break;
        }
        let t = std::fs::read_link(&p).map_err(TreeError::io("reading", &p))?;
        p = match p.parent() {
            Some(dir) => normalized(&dir.join(t)),
            None => t,
        };
    }
    Ok(p)
}

/// Compare the tree at `path` (see [`resolve_tree`]) with its record ([`record_path`]).
pub fn verify(path: &Path) -> Result<Verification, TreeError> {
    let tree = resolve_tree(path)?;
    if !tree.is_dir() {
        return Err(TreeError::NotADirectory { path: tree });
    }
    let record = record_path(&tree);
    if !record.exists() {
        return Err(TreeError::NoRecord { tree, record });
    }
    let rec = TreeRecord::read(&record)?;
    let drift = rec.compare(&tree)?;
    Ok(Verification {
        path: path.to_path_buf(),
        tree,
        record,
        files: rec.files,
        bytes: rec.bytes,
        clean: drift.is_empty(),
        drift,
    })
}

/// `mode` fields as octal strings (`"0755"`).
mod octal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(m) => s.serialize_str(&format!("{m:04o}")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        s.map(|s| u32::from_str_radix(&s, 8).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests;
