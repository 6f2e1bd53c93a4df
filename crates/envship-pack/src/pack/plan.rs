//! The plan of an archive: the prefix scanned, the refusals conda-pack makes, the relocation
//! list, the generated files, and every entry with its archive name, sorted. Nothing here writes.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    os::unix::ffi::OsStrExt,
    path::PathBuf,
    sync::Arc,
};

use envship_spec::{Progress, ProgressUnit};

use super::PackOptions;
use crate::{
    error::{PackError, Result},
    manifest::RelocationSummary,
    prefix::{self, Entry, Kind, Scan},
    pyc,
    relocate::{self, RelocEntry, RelocMode, RelocationList},
    scripts,
};

/// Where a file's bytes come from.
pub(super) enum Src {
    Disk(PathBuf),
    Mem(Arc<Vec<u8>>),
}

pub(super) enum ItemKind {
    Dir,
    File {
        src: Src,
        exec: bool,
        reloc: Option<RelocEntry>,
        /// For a `__pycache__/*.pyc` whose source is stored unchanged: that source in the prefix.
        pyc_source: Option<PathBuf>,
    },
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
}

/// One archive entry.
pub(super) struct Item {
    /// The name in the archive (below `arcroot`).
    pub name: Vec<u8>,
    pub kind: ItemKind,
}

/// The build prefix, and the destination prefix when relocating at pack time.
pub(super) struct Prefixes {
    /// The prefix, absolute.
    pub root: PathBuf,
    /// The prefix string installed files contain.
    pub build: String,
    /// `--dest-prefix`.
    pub dest: Option<String>,
}

impl Prefixes {
    fn resolve(opts: &PackOptions) -> Result<Self> {
        let root =
            std::path::absolute(&opts.prefix).map_err(PackError::io("resolving", &opts.prefix))?;
        let build = relocate::prefix_string(opts.build_prefix.as_deref(), &root)?;
        check_prefix_str(&build, "the build prefix must be absolute")?;
        let dest = opts
            .dest_prefix
            .as_ref()
            .map(|d| d.trim_end_matches('/').to_string());
        if let Some(d) = &dest {
            check_prefix_str(d, "the destination prefix must be an absolute path")?;
        }
        Ok(Prefixes { root, build, dest })
    }

    /// The prefix the archive's files hold: the destination when baked in, else the build prefix.
    pub fn recorded(&self) -> &str {
        self.dest.as_deref().unwrap_or(&self.build)
    }
}

fn check_prefix_str(p: &str, what: &'static str) -> Result<()> {
    if !p.starts_with('/') {
        return Err(PackError::BadPrefix {
            prefix: p.into(),
            reason: what,
        });
    }
    Ok(())
}

/// Everything to write, and what the manifest says about it.
pub(super) struct Plan {
    pub prefixes: Prefixes,
    /// The scanned prefix (its packages and env vars go into the manifest).
    pub scan: Scan,
    /// Keeps rewritten `.pyc` copies alive until the archive is written.
    pub _pycs: pyc::Rewritten,
    /// Entries sorted by name.
    pub items: Vec<Item>,
    /// The directory the environment is under inside the archive (empty: the root).
    pub arcroot: Vec<u8>,
    pub summary: RelocationSummary,
    /// Regular files stored.
    pub file_count: u64,
    /// Their uncompressed bytes.
    pub bytes: u64,
}

/// Scan the prefix and decide what goes into the archive.
pub(super) fn plan(opts: &PackOptions, progress: &dyn Progress) -> Result<Plan> {
    let prefixes = Prefixes::resolve(opts)?;
    let filter = prefix::Filter::new(&opts.exclude, &opts.include)?;

    progress.start("scan", None, ProgressUnit::Items);
    let mut scan = prefix::scan(&prefixes.root, &prefixes.build, &filter)?;
    progress.finish("scan");
    refuse(&scan, opts)?;
    for bad in scripts::invalid_vars(&scan.env_vars) {
        tracing::warn!(
            "conda-meta/state: env var {bad:?} is not a valid shell name; not set by bin/activate"
        );
    }

    // .pyc files holding the build prefix cannot be byte-relocated (marshal stores lengths):
    // rewritten copies go into the archive instead, or they stay out (see pyc.rs).
    let pyc_rels: Vec<Vec<u8>> = scan
        .relocs
        .keys()
        .filter(|k| k.ends_with(b".pyc"))
        .cloned()
        .collect();
    for r in &pyc_rels {
        scan.relocs.remove(r);
    }
    let pycs = pyc::rewrite(
        &prefixes.root,
        &pyc_rels,
        &prefixes.build,
        prefixes.dest.as_deref(),
    )?;
    for (rel, why) in &pycs.dropped {
        tracing::warn!(
            "leaving {} out of the archive: {why}; Python recompiles it from source on import",
            String::from_utf8_lossy(rel)
        );
    }

    let list = relocation_list(&scan, &prefixes)?;
    let summary = relocation_summary(&scan);
    let generated = generated_files(&scan, &prefixes, &list);
    let arcroot: Vec<u8> = opts
        .arcroot
        .as_deref()
        .map(|a| a.trim_matches('/').as_bytes().to_vec())
        .filter(|a| !a.is_empty())
        .unwrap_or_default();
    let mut items = Items {
        arcroot: &arcroot,
        items: Vec::with_capacity(scan.entries.len() + 8),
        file_count: 0,
        bytes: 0,
    };
    items.arcroot_dirs();
    items.prefix_entries(&scan, &pycs, prefixes.dest.is_some(), &generated)?;
    items.generated(generated);
    let Items {
        mut items,
        file_count,
        bytes,
        ..
    } = items;
    items.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Plan {
        prefixes,
        scan,
        _pycs: pycs,
        items,
        arcroot,
        summary,
        file_count,
        bytes,
    })
}

/// Refusals, as conda-pack makes them: managed files missing or modified, editable installs.
fn refuse(scan: &Scan, opts: &PackOptions) -> Result<()> {
    let details = |m: &BTreeMap<String, Vec<String>>| {
        m.iter()
            .map(|(pkg, files)| {
                let shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
                let more = if files.len() > 5 {
                    format!(" (+{} more)", files.len() - 5)
                } else {
                    String::new()
                };
                format!("  {pkg}: {}{more}", shown.join(", "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let pip_damaged = scan.root.join(envship_spec::python_dists::PIP_DAMAGED_FILE);
    if let (Ok(packages), false) = (
        std::fs::read_to_string(&pip_damaged),
        opts.allow_modified_files,
    ) {
        let packages: Vec<&str> = packages.lines().filter(|l| !l.is_empty()).collect();
        return Err(PackError::ManagedFiles {
            what: "deleted or overwritten by pip (the build's check found it)",
            count: packages.len(),
            details: packages
                .iter()
                .map(|p| format!("  {p}"))
                .collect::<Vec<_>>()
                .join("\n"),
            flag: "--ignore-modified-files",
        });
    }
    if !scan.missing.is_empty() && !opts.allow_missing_files {
        return Err(PackError::ManagedFiles {
            what: "missing",
            count: scan.missing.len(),
            details: details(&scan.missing),
            flag: "--ignore-missing-files",
        });
    }
    if !scan.modified.is_empty() && !opts.allow_modified_files {
        return Err(PackError::ManagedFiles {
            what: "modified (size differs from conda-meta)",
            count: scan.modified.len(),
            details: details(&scan.modified),
            flag: "--ignore-modified-files",
        });
    }
    let editable: Vec<String> = scan
        .pip
        .iter()
        .filter(|p| p.editable)
        .map(|p| format!("{} ({})", p.name, p.direct_url.as_deref().unwrap_or("?")))
        .collect();
    if !editable.is_empty() && !opts.allow_editable {
        return Err(PackError::EditableInstalls {
            packages: editable.join(", "),
        });
    }
    Ok(())
}

/// The list `bin/conda-unpack` works from: every file holding the prefix, plus `bin/activate`.
/// With a destination prefix, first checks that every binary file has room for it.
fn relocation_list(scan: &Scan, prefixes: &Prefixes) -> Result<RelocationList> {
    let mut entries: Vec<RelocEntry> = scan.relocs.values().cloned().collect();
    if let Some(d) = &prefixes.dest {
        let list = RelocationList {
            prefix: prefixes.build.as_bytes().to_vec(),
            entries: entries.clone(),
        };
        relocate::check_capacity(&list, d.as_bytes())?;
    }
    entries.push(RelocEntry {
        path: b"bin/activate".to_vec(),
        mode: RelocMode::Text,
        capacity: 0,
    });
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(RelocationList {
        prefix: prefixes.recorded().as_bytes().to_vec(),
        entries,
    })
}

fn relocation_summary(scan: &Scan) -> RelocationSummary {
    let of_mode = |mode| scan.relocs.values().filter(move |r| r.mode == mode);
    RelocationSummary {
        text_files: of_mode(RelocMode::Text).count(),
        binary_files: of_mode(RelocMode::Binary).count(),
        max_prefix_len: of_mode(RelocMode::Binary).map(|r| r.capacity).min(),
    }
}

/// A file pack writes itself: (relative path, content, executable).
type Generated = (Vec<u8>, Vec<u8>, bool);

/// `bin/activate`, `bin/deactivate`, `bin/conda-unpack` and the relocation list, sorted.
fn generated_files(scan: &Scan, prefixes: &Prefixes, list: &RelocationList) -> Vec<Generated> {
    let mut generated: Vec<Generated> = vec![
        (
            b"bin/activate".to_vec(),
            scripts::activate(prefixes.recorded().as_bytes(), &scan.env_vars),
            false,
        ),
        (
            b"bin/deactivate".to_vec(),
            scripts::deactivate(&scan.env_vars),
            false,
        ),
        (b"bin/conda-unpack".to_vec(), scripts::conda_unpack(), true),
        (
            relocate::RELOCATION_LIST.as_bytes().to_vec(),
            list.to_text().into_bytes(),
            false,
        ),
    ];
    generated.sort();
    generated
}

/// Collects the archive's items under `arcroot`, counting the regular files.
struct Items<'a> {
    arcroot: &'a [u8],
    items: Vec<Item>,
    file_count: u64,
    bytes: u64,
}

impl Items<'_> {
    /// The archive name of a path relative to the prefix.
    fn name_of(&self, rel: &[u8]) -> Vec<u8> {
        if self.arcroot.is_empty() {
            rel.to_vec()
        } else {
            let mut n = self.arcroot.to_vec();
            n.push(b'/');
            n.extend_from_slice(rel);
            n
        }
    }

    /// The directories of `arcroot` itself, outermost first.
    fn arcroot_dirs(&mut self) {
        let mut acc = Vec::new();
        for part in self.arcroot.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            if !acc.is_empty() {
                acc.push(b'/');
            }
            acc.extend_from_slice(part);
            self.items.push(Item {
                name: acc.clone(),
                kind: ItemKind::Dir,
            });
        }
    }

    /// The prefix's entries, minus what pack generates and the `.pyc` files left out, plus the
    /// directories the generated files need.
    fn prefix_entries(
        &mut self,
        scan: &Scan,
        pycs: &pyc::Rewritten,
        baked: bool,
        generated: &[Generated],
    ) -> Result<()> {
        let mut entries: Vec<Entry> = scan.entries.clone();
        let dirs: BTreeSet<&[u8]> = scan
            .entries
            .iter()
            .filter(|e| e.kind == Kind::Dir)
            .map(|e| e.rel.as_slice())
            .collect();
        for d in ["bin", "share", "share/envship"] {
            if !dirs.contains(d.as_bytes()) {
                entries.push(Entry {
                    rel: d.as_bytes().to_vec(),
                    kind: Kind::Dir,
                });
            }
        }
        let gen_names: BTreeSet<&[u8]> = generated.iter().map(|g| g.0.as_slice()).collect();
        entries.retain(|e| !gen_names.contains(e.rel.as_slice()));
        for e in entries {
            if pycs.dropped.contains_key(&e.rel) {
                continue;
            }
            let kind = match e.kind {
                Kind::Dir => ItemKind::Dir,
                Kind::Symlink(t) => ItemKind::Symlink(t),
                // another name of a left-out .pyc: left out too
                Kind::Hardlink(first) if pycs.dropped.contains_key(&first) => continue,
                Kind::Hardlink(first) => ItemKind::Hardlink(self.name_of(&first)),
                Kind::File { size, exec } => self.file(scan, pycs, baked, &e.rel, size, exec)?,
            };
            self.items.push(Item {
                name: self.name_of(&e.rel),
                kind,
            });
        }
        Ok(())
    }

    /// A regular file of the prefix (or its rewritten `.pyc` copy).
    fn file(
        &mut self,
        scan: &Scan,
        pycs: &pyc::Rewritten,
        baked: bool,
        rel: &[u8],
        size: u64,
        exec: bool,
    ) -> Result<ItemKind> {
        let (src, size) = match pycs.files.get(rel) {
            Some(p) => (
                Src::Disk(p.clone()),
                fs::metadata(p).map_err(PackError::io("reading", p))?.len(),
            ),
            None => (
                Src::Disk(scan.root.join(std::ffi::OsStr::from_bytes(rel))),
                size,
            ),
        };
        self.file_count += 1;
        self.bytes += size;
        // (a source rewritten for --dest-prefix no longer matches its .pyc)
        let pyc_source = pyc_source_rel(rel)
            .filter(|s| !baked || !scan.relocs.contains_key(s))
            .map(|s| scan.root.join(std::ffi::OsStr::from_bytes(&s)))
            .filter(|s| s.is_file());
        Ok(ItemKind::File {
            src,
            exec,
            reloc: scan.relocs.get(rel).cloned(),
            pyc_source,
        })
    }

    fn generated(&mut self, generated: Vec<Generated>) {
        for (rel, data, exec) in generated {
            self.file_count += 1;
            self.bytes += data.len() as u64;
            self.items.push(Item {
                name: self.name_of(&rel),
                kind: ItemKind::File {
                    src: Src::Mem(Arc::new(data)),
                    exec,
                    reloc: None,
                    pyc_source: None,
                },
            });
        }
    }
}

/// `a/__pycache__/m.cpython-311.pyc` → `a/m.py` (module names hold no dot).
fn pyc_source_rel(rel: &[u8]) -> Option<Vec<u8>> {
    let name_start = rel.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let (dir, name) = rel.split_at(name_start);
    let parent = dir.strip_suffix(b"__pycache__/")?;
    let name = name.strip_suffix(b".pyc")?;
    let stem = &name[..name.iter().position(|&b| b == b'.')?];
    let mut out = parent.to_vec();
    out.extend_from_slice(stem);
    out.extend_from_slice(b".py");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyc_sources() {
        assert_eq!(
            pyc_source_rel(b"lib/p/__pycache__/m.cpython-311.opt-1.pyc"),
            Some(b"lib/p/m.py".to_vec())
        );
        assert_eq!(
            pyc_source_rel(b"__pycache__/m.cpython-311.pyc"),
            Some(b"m.py".to_vec())
        );
        assert_eq!(pyc_source_rel(b"lib/p/m.pyc"), None);
    }
}
