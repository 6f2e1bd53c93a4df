//! Reading an installed prefix: the conda package records in `conda-meta/*.json` (which files
//! carry which placeholder, in which mode), pip's `*.dist-info`, and the file tree with its
//! hardlinks and symlinks. No package cache is needed.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fs,
    os::unix::{ffi::OsStrExt, fs::MetadataExt},
    path::{Path, PathBuf},
};

use envship_spec::conda_meta::{self, CondaMetaRecord};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    error::{PackError, Result},
    relocate::{RelocEntry, RelocMode},
};

/// A conda package installed in the prefix, as recorded in the manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CondaPackage {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Build string.
    pub build: String,
    /// Channel (URL or name) it came from, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Subdir (`linux-64`, `noarch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdir: Option<String>,
    /// sha256 of the package archive, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// License, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license: Option<String>,
}

/// A Python distribution installed by pip (or another non-conda installer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipPackage {
    /// `Name:` from METADATA.
    pub name: String,
    /// `Version:` from METADATA.
    pub version: String,
    /// Content of INSTALLER (`pip`, `uv`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer: Option<String>,
    /// `url` from direct_url.json (VCS, local path or archive installs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direct_url: Option<String>,
    /// Installed with `pip install -e`.
    #[serde(default)]
    pub editable: bool,
    /// The dist-info directory, relative to the prefix.
    pub dist_info: String,
    /// Number of files RECORD lists.
    #[serde(default)]
    pub files: usize,
}

/// What kind of tree entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File {
        size: u64,
        exec: bool,
    },
    Symlink(Vec<u8>),
    /// A second name of a file already stored (relative path of the first).
    Hardlink(Vec<u8>),
}

/// One path of the prefix.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    /// Relative path bytes (`/`-separated).
    pub rel: Vec<u8>,
    pub kind: Kind,
}

/// Everything `pack` needs to know about a prefix.
pub(crate) struct Scan {
    pub root: PathBuf,
    pub entries: Vec<Entry>,
    pub conda: Vec<CondaPackage>,
    pub pip: Vec<PipPackage>,
    pub relocs: BTreeMap<Vec<u8>, RelocEntry>,
    pub env_vars: BTreeMap<String, String>,
    pub missing: BTreeMap<String, Vec<String>>,
    pub modified: BTreeMap<String, Vec<String>>,
}

/// Files we generate: the prefix's own copies are replaced.
pub(crate) const GENERATED: &[&str] = &[
    "bin/activate",
    "bin/deactivate",
    "bin/conda-unpack",
    crate::relocate::RELOCATION_LIST,
];

pub(crate) struct Filter {
    exclude: globset::GlobSet,
    include: globset::GlobSet,
}

impl Filter {
    pub fn new(exclude: &[String], include: &[String]) -> Result<Self> {
        let build = |globs: &[String]| -> Result<globset::GlobSet> {
            let mut b = globset::GlobSetBuilder::new();
            for g in globs {
                let glob = globset::GlobBuilder::new(g)
                    .literal_separator(false)
                    .build()
                    .map_err(|source| PackError::BadGlob {
                        glob: g.clone(),
                        source,
                    })?;
                b.add(glob);
            }
            b.build().map_err(|source| PackError::BadGlob {
                glob: globs.join(" "),
                source,
            })
        };
        Ok(Self {
            exclude: build(exclude)?,
            include: build(include)?,
        })
    }

    /// Excluded when the path or one of its parent directories matches an exclude glob and the
    /// path does not match an include glob.
    fn excluded(&self, rel: &str) -> bool {
        if self.exclude.is_empty() {
            return false;
        }
        let mut hit = self.exclude.is_match(rel);
        let mut p = rel;
        while !hit {
            match p.rfind('/') {
                Some(i) => {
                    p = &p[..i];
                    hit = self.exclude.is_match(p);
                }
                None => break,
            }
        }
        hit && !self.include.is_match(rel)
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Read every `conda-meta/*.json`.
fn read_records(root: &Path) -> Result<Vec<(PathBuf, CondaMetaRecord)>> {
    let meta = root.join("conda-meta");
    let files = conda_meta::record_paths(root)
        .map_err(PackError::io("listing", &meta))?
        .ok_or_else(|| PackError::NotAPrefix {
            prefix: root.to_path_buf(),
        })?;
    files
        .into_par_iter()
        .map(|p| {
            let text = fs::read(&p).map_err(PackError::io("reading", &p))?;
            let rec: CondaMetaRecord =
                serde_json::from_slice(&text).map_err(|source| PackError::BadRecord {
                    path: p.clone(),
                    source,
                })?;
            Ok((p, rec))
        })
        .collect()
}

fn read_env_vars(root: &Path) -> BTreeMap<String, String> {
    #[derive(Deserialize)]
    struct State {
        #[serde(default)]
        env_vars: BTreeMap<String, String>,
    }
    let p = root.join("conda-meta/state");
    match fs::read(&p) {
        Ok(b) => match serde_json::from_slice::<State>(&b) {
            Ok(s) => s.env_vars,
            Err(e) => {
                tracing::warn!("ignoring {}: {e}", p.display());
                BTreeMap::new()
            }
        },
        Err(_) => BTreeMap::new(),
    }
}

/// The distributions no conda record owns, wherever the interpreter's scheme put them
/// (`envship_spec::python_dists`: conda's `site-packages`, Debian's `dist-packages`, the site
/// directories the build recorded).
fn read_pip(root: &Path, owned: &BTreeSet<Vec<u8>>) -> Vec<PipPackage> {
    let mut out = Vec::new();
    for dist in envship_spec::python_dists::installed(root, &Default::default()) {
        let d = root.join(&dist.path);
        let meta = envship_spec::python_dists::metadata_path(&d).unwrap_or_default();
        let meta_rel = meta.strip_prefix(root).unwrap_or(&meta);
        if owned.contains(meta_rel.as_os_str().as_bytes())
            || dist.installer.as_deref() == Some("conda")
        {
            continue; // a conda package's own distribution
        }
        let files = fs::read_to_string(d.join("RECORD"))
            .map(|r| r.lines().filter(|l| !l.trim().is_empty()).count())
            .unwrap_or(0);
        let (mut direct_url, mut editable) = (None, false);
        if let Ok(b) = fs::read(d.join("direct_url.json")) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&b) {
                direct_url = v.get("url").and_then(|u| u.as_str()).map(String::from);
                editable = v
                    .pointer("/dir_info/editable")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false);
            }
        }
        out.push(PipPackage {
            name: dist.name,
            version: dist.version,
            installer: dist.installer,
            direct_url,
            editable,
            dist_info: dist.path,
            files,
        });
    }
    out
}

/// The relocation of a file no placeholder was recorded for, if its content holds `prefix`:
/// binary files can take a new prefix up to the length of the one found.
fn scan_for_prefix(path: &Path, rel: &[u8], prefix: &[u8]) -> Result<Option<RelocEntry>> {
    Ok(scan_file(path, prefix)?.map(|mode| RelocEntry {
        path: rel.to_vec(),
        mode,
        capacity: if mode == RelocMode::Binary {
            prefix.len()
        } else {
            0
        },
    }))
}

/// Scan a file for `needle`: `Some(binary?)` when found.
fn scan_file(path: &Path, needle: &[u8]) -> Result<Option<RelocMode>> {
    use std::io::Read;
    let mut f = fs::File::open(path).map_err(PackError::io("reading", path))?;
    let finder = memchr::memmem::Finder::new(needle);
    let keep = needle.len().saturating_sub(1);
    let mut buf = vec![0u8; 1 << 20];
    let mut filled = 0;
    let (mut found, mut nul) = (false, false);
    loop {
        let n = f
            .read(&mut buf[filled..])
            .map_err(PackError::io("reading", path))?;
        if n == 0 {
            break;
        }
        let chunk_start = filled;
        filled += n;
        nul = nul || memchr::memchr(0, &buf[chunk_start..filled]).is_some();
        found = found || finder.find(&buf[..filled]).is_some();
        if found && nul {
            break;
        }
        if filled == buf.len() {
            let k = keep.min(filled);
            buf.copy_within(filled - k..filled, 0);
            filled = k;
        }
    }
    Ok(found.then_some(if nul {
        RelocMode::Binary
    } else {
        RelocMode::Text
    }))
}

/// What conda-meta says about the prefix, checked against the files.
struct Managed {
    /// Every path a package owns.
    owned: BTreeSet<Vec<u8>>,
    /// Files holding a placeholder (or an entry point holding the build prefix).
    relocs: BTreeMap<Vec<u8>, RelocEntry>,
    conda: Vec<CondaPackage>,
    /// Package → its files that are gone.
    missing: BTreeMap<String, Vec<String>>,
    /// Package → its files whose size changed.
    modified: BTreeMap<String, Vec<String>>,
    /// Owned files whose size changed: scanned for the prefix like unowned ones.
    check_again: BTreeSet<Vec<u8>>,
}

/// Whether the file's sha256 differs from the one recorded (unknown: unchanged).
fn content_changed(path: &Path, recorded: Option<&str>) -> bool {
    let Some(recorded) = recorded else {
        return false;
    };
    envship_spec::digest::sha256_file(path).is_ok_and(|h| !h.eq_ignore_ascii_case(recorded))
}

/// Read `conda-meta/*.json` and check every file it lists.
fn read_managed(root: &Path, build_prefix: &str) -> Result<Managed> {
    let records = read_records(root)?;
    let mut owned: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut relocs: BTreeMap<Vec<u8>, RelocEntry> = BTreeMap::new();
    let mut conda = Vec::new();
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut modified: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut check_again: Vec<Vec<u8>> = Vec::new();
    for (_, rec) in &records {
        let pkg = rec.dist_name();
        let paths = rec.path_entries();
        // A post-link script may rewrite its package's own files in place, same size, with
        // the prefix inside (openssl 1.0.2's patches libcrypto's OPENSSLDIR). Such packages
        // are rare, so their files are hashed against the record; the rest only sized.
        let post_link = format!("bin/.{}-post-link.sh", rec.name);
        let rewritten_by_script = paths.iter().any(|p| p.path == post_link);
        for p in paths {
            let rel = p.path.as_bytes().to_vec();
            owned.insert(rel.clone());
            if p.path_type.as_deref() == Some("directory") {
                continue;
            }
            let full = root.join(&p.path);
            let md = match fs::symlink_metadata(&full) {
                Ok(md) => md,
                Err(_) => {
                    missing.entry(pkg.clone()).or_default().push(p.path.clone());
                    continue;
                }
            };
            if let Some(ph) = &p.prefix_placeholder {
                let mode = match p.file_mode.as_deref() {
                    Some("binary") => RelocMode::Binary,
                    _ => RelocMode::Text,
                };
                let capacity = match mode {
                    RelocMode::Binary => ph.len().max(build_prefix.len()),
                    RelocMode::Text => 0,
                };
                relocs.insert(
                    rel.clone(),
                    RelocEntry {
                        path: rel,
                        mode,
                        capacity,
                    },
                );
            } else if p.path_type.as_deref() == Some("unix_python_entry_point") {
                // The installer writes entry points itself (`#!BUILD_PREFIX/bin/python`),
                // so no placeholder is recorded for them: find the prefix in the content.
                if let Some(entry) = scan_for_prefix(&full, &rel, build_prefix.as_bytes())? {
                    relocs.insert(rel, entry);
                }
            } else if md.file_type().is_file() {
                if let Some(size) = p.size_in_bytes {
                    if size != md.len() {
                        modified
                            .entry(pkg.clone())
                            .or_default()
                            .push(p.path.clone());
                        check_again.push(rel);
                        continue;
                    }
                }
                let linked = p.sha256_in_prefix.as_deref().or(p.sha256.as_deref());
                if rewritten_by_script && content_changed(&full, linked) {
                    check_again.push(rel);
                }
            }
        }
        conda.push(CondaPackage {
            name: rec.name.clone(),
            version: rec.version.clone(),
            build: rec.build.clone(),
            channel: rec.channel.clone(),
            subdir: rec.subdir.clone(),
            sha256: rec.sha256.clone(),
            license: rec.license.clone(),
        });
    }
    conda.sort_by(|a, b| (&a.name, &a.version, &a.build).cmp(&(&b.name, &b.version, &b.build)));
    Ok(Managed {
        owned,
        relocs,
        conda,
        missing,
        modified,
        check_again: check_again.into_iter().collect(),
    })
}

/// Every entry of the tree, sorted by name, minus what the filter excludes and what pack
/// generates; a second name of a file is a hardlink to the first.
fn walk_tree(
    root: &Path,
    build_prefix: &str,
    filter: &Filter,
    owned: &BTreeSet<Vec<u8>>,
) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut inodes: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let mut walked = Vec::new();
    for item in walkdir::WalkDir::new(root).follow_links(false).min_depth(1) {
        let item = item.map_err(|e| {
            let path = e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.to_path_buf());
            PackError::Io {
                action: "walking",
                path,
                source: e.into(),
            }
        })?;
        let rel = item.path().strip_prefix(root).unwrap_or(item.path());
        let rel_b = rel.as_os_str().as_bytes().to_vec();
        walked.push((rel_b, item));
    }
    walked.sort_by(|a, b| a.0.cmp(&b.0));
    for (rel, item) in walked {
        let rel_s = lossy(&rel);
        if rel == b"CACHEDIR.TAG" && !owned.contains(&rel) {
            continue; // rattler's marker, not part of the environment
        }
        if GENERATED.iter().any(|g| g.as_bytes() == rel.as_slice()) {
            continue;
        }
        if filter.excluded(&rel_s) {
            continue;
        }
        let md = item
            .path()
            .symlink_metadata()
            .map_err(PackError::io("reading metadata of", item.path()))?;
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            let target =
                fs::read_link(item.path()).map_err(PackError::io("reading link", item.path()))?;
            Kind::Symlink(relative_link(
                &rel,
                target.as_os_str().as_bytes(),
                build_prefix.as_bytes(),
            ))
        } else if ft.is_file() {
            let key = (md.dev(), md.ino());
            if md.nlink() > 1 {
                if let Some(first) = inodes.get(&key) {
                    entries.push(Entry {
                        rel,
                        kind: Kind::Hardlink(first.clone()),
                    });
                    continue;
                }
                inodes.insert(key, rel.clone());
            }
            Kind::File {
                size: md.len(),
                exec: md.mode() & 0o111 != 0,
            }
        } else {
            tracing::warn!(
                "skipping {} (not a file, directory or symlink)",
                item.path().display()
            );
            continue;
        };
        entries.push(Entry { rel, kind });
    }
    Ok(entries)
}

/// An absolute link into the build prefix would dangle after a move: made relative to the
/// link's directory (`rel`); other targets are kept.
fn relative_link(rel: &[u8], target: &[u8], build_prefix: &[u8]) -> Vec<u8> {
    let bp = build_prefix;
    let t = target;
    if !(t.starts_with(bp) && (t.len() == bp.len() || t[bp.len()] == b'/')) {
        return t.to_vec();
    }
    let inside = t[bp.len()..].strip_prefix(b"/").unwrap_or(&t[bp.len()..]);
    let depth = rel.iter().filter(|&&b| b == b'/').count();
    let mut r = b"../".repeat(depth);
    r.extend_from_slice(inside);
    if r.is_empty() {
        r = b".".to_vec();
    }
    r
}

/// Files no package owns (pip installs, generated files), and owned files that changed, may
/// contain the build prefix: their content decides. Then keeps relocation entries only for
/// files that are packed (not excluded, not symlinks).
fn find_unmanaged_relocs(
    root: &Path,
    build_prefix: &str,
    entries: &[Entry],
    m: &mut Managed,
) -> Result<()> {
    let needle = build_prefix.as_bytes();
    let to_scan: Vec<&Entry> = entries
        .iter()
        .filter(|e| matches!(e.kind, Kind::File { .. }))
        .filter(|e| {
            (!m.owned.contains(&e.rel) || m.check_again.contains(&e.rel))
                && !m.relocs.contains_key(&e.rel)
        })
        .collect();
    let found: Vec<Result<Option<RelocEntry>>> = to_scan
        .par_iter()
        .map(|e| {
            let p = root.join(std::ffi::OsStr::from_bytes(&e.rel));
            scan_for_prefix(&p, &e.rel, needle)
        })
        .collect();
    for f in found {
        if let Some(r) = f? {
            m.relocs.insert(r.path.clone(), r);
        }
    }
    // Relocation entries only for files that are packed (not excluded, not symlinks).
    let packed: BTreeSet<&[u8]> = entries
        .iter()
        .filter(|e| matches!(e.kind, Kind::File { .. }))
        .map(|e| e.rel.as_slice())
        .collect();
    m.relocs.retain(|k, _| packed.contains(k.as_slice()));
    Ok(())
}

/// The conda packages (sorted by name) and pip distributions installed in the prefix `root`,
/// as the manifest lists them, without looking at the files (for `envship diff`).
pub(crate) fn packages(root: &Path) -> Result<(Vec<CondaPackage>, Vec<PipPackage>)> {
    let records = read_records(root)?;
    let mut owned: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut conda: Vec<CondaPackage> = records
        .iter()
        .map(|(_, rec)| {
            owned.extend(
                rec.path_entries()
                    .iter()
                    .map(|p| p.path.as_bytes().to_vec()),
            );
            CondaPackage {
                name: rec.name.clone(),
                version: rec.version.clone(),
                build: rec.build.clone(),
                channel: rec.channel.clone(),
                subdir: rec.subdir.clone(),
                sha256: rec.sha256.clone(),
                license: rec.license.clone(),
            }
        })
        .collect();
    conda.sort_by(|a, b| (&a.name, &a.version, &a.build).cmp(&(&b.name, &b.version, &b.build)));
    Ok((conda, read_pip(root, &owned)))
}

/// Scan the prefix. `build_prefix` is the string installed files contain.
pub(crate) fn scan(root: &Path, build_prefix: &str, filter: &Filter) -> Result<Scan> {
    let mut managed = read_managed(root, build_prefix)?;
    let entries = walk_tree(root, build_prefix, filter, &managed.owned)?;
    find_unmanaged_relocs(root, build_prefix, &entries, &mut managed)?;
    let Managed {
        owned,
        relocs,
        conda,
        missing,
        modified,
        ..
    } = managed;
    let pip = read_pip(root, &owned);
    let env_vars = read_env_vars(root);
    Ok(Scan {
        root: root.to_path_buf(),
        entries,
        conda,
        pip,
        relocs,
        env_vars,
        missing,
        modified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_headers() {
        let m = "Metadata-Version: 2.1\nName: MarkupSafe\nVersion: 2.1.5\n\nName: not-this\n";
        let header = envship_spec::python_dists::header;
        assert_eq!(header(m, "Name"), Some("MarkupSafe"));
        assert_eq!(header(m, "Version"), Some("2.1.5"));
    }

    #[test]
    fn filter_matches_parents() {
        let f = Filter::new(
            &["share/doc".into(), "*.pyc".into()],
            &["share/doc/keep".into()],
        )
        .expect("globs");
        assert!(f.excluded("share/doc/x/y"));
        assert!(!f.excluded("share/doc/keep"));
        assert!(f.excluded("lib/a/b.pyc"));
        assert!(!f.excluded("lib/a/b.py"));
    }
}
