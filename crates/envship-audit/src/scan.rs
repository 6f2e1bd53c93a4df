//! The walk, the parallel per-file scan, and the checks that need the whole tree (library
//! resolution needs to know every file before any `DT_NEEDED` can be judged).

use std::{
    collections::{HashMap, VecDeque},
    fs::File,
    path::Path,
};

use envship_spec::{DottedVersion, Progress, ProgressUnit, Target};
use memchr::memmem;
use rayon::prelude::*;

use crate::{
    elf::{parse_elf, ElfInfo, VersionNeed},
    meta::CondaMeta,
    report::{
        AuditReport, Check, FileInventory, Finding, Severity, Summary, TargetSummary, Weakness,
        SCHEMA_VERSION, UNMANAGED,
    },
    AuditError, AuditOptions, SHEBANG_LIMIT,
};

/// Files up to this size are read with one `read`; larger ones are memory-mapped.
const READ_LIMIT: u64 = 64 * 1024;
/// How much of a file decides text vs binary (a NUL byte means binary), as conda does.
const SNIFF: usize = 8192;
/// Symlink hops before giving up (the kernel's limit).
const MAX_HOPS: usize = 40;
const PHASE: &str = "audit";

struct Entry {
    rel: String,
    size: u64,
}

struct Scanned {
    rel: String,
    elf: Option<Result<ElfInfo, String>>,
    read_error: Option<String>,
    /// The build prefix occurs in the file.
    prefix_hit: bool,
    /// A NUL byte in the first [`SNIFF`] bytes.
    binary: bool,
    /// `#!` line length and how often the build prefix occurs in it.
    shebang: Option<(usize, usize)>,
}

enum Content {
    Owned(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Content {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Content::Owned(v) => v,
            Content::Mapped(m) => m,
        }
    }
}

fn read_content(path: &Path, size: u64, whole: bool) -> std::io::Result<Content> {
    if size <= READ_LIMIT {
        return std::fs::read(path).map(Content::Owned);
    }
    let file = File::open(path)?;
    let mut opts = memmap2::MmapOptions::new();
    if whole {
        // The prefix search reads every byte: fault the pages in with one call.
        opts.populate();
    }
    // SAFETY: the mapping is read-only and private to this scan; a file truncated by another
    // process while mapped would fault, which is the accepted risk of every mmap-based scanner
    // (ripgrep, conda-pack's C extensions); the prefix is not expected to change under an audit.
    let map = unsafe { opts.map(&file) }?;
    Ok(Content::Mapped(map))
}

fn scan_file(root: &Path, e: &Entry, finder: Option<&memmem::Finder<'_>>) -> Scanned {
    let mut s = Scanned {
        rel: e.rel.clone(),
        elf: None,
        read_error: None,
        prefix_hit: false,
        binary: false,
        shebang: None,
    };
    if e.size == 0 {
        return s;
    }
    // Bytecode embeds the source path only for tracebacks; relocation never needs to touch it.
    let search = finder.filter(|_| !e.rel.ends_with(".pyc"));
    let data = match read_content(&root.join(&e.rel), e.size, search.is_some()) {
        Ok(d) => d,
        Err(err) => {
            s.read_error = Some(err.to_string());
            return s;
        }
    };
    s.binary = memchr::memchr(0, &data[..data.len().min(SNIFF)]).is_some();
    if crate::elf::is_elf(&data) {
        s.elf = Some(
            parse_elf(&data)
                .map_err(|e| e.to_string())
                .and_then(|o| o.ok_or_else(|| "not ELF".to_string())),
        );
    }
    if let Some(f) = search {
        s.prefix_hit = f.find(&data).is_some();
        if s.prefix_hit && !s.binary && data.starts_with(b"#!") {
            let line_end = memchr::memchr(b'\n', &data).unwrap_or(data.len());
            let line = &data[..line_end];
            s.shebang = Some((line.len(), f.find_iter(line).count()));
        }
    }
    s
}

/// Where a library the loader looks for comes from.
enum Provider<'a> {
    /// A file in the prefix (its relative path and ELF facts).
    Prefix(&'a str, &'a ElfInfo),
    /// The target's system libraries.
    System,
    /// Nowhere: the loader fails.
    Missing,
}

struct Tree<'a> {
    files: HashMap<&'a str, &'a Scanned>,
    symlinks: HashMap<String, String>,
    root_str: String,
    build_prefix: Option<&'a str>,
    /// basename → prefix paths of ELF files (and symlinks to them), for "it exists but is not
    /// on the search path".
    by_name: HashMap<String, Vec<String>>,
}

impl<'a> Tree<'a> {
    /// Map an absolute path that lies in the prefix (under the root or the build prefix) to a
    /// relative one.
    fn absolute_to_rel(&self, abs: &str) -> Option<String> {
        for base in [Some(self.root_str.as_str()), self.build_prefix] {
            let Some(base) = base.filter(|b| !b.is_empty()) else {
                continue;
            };
            if let Some(rest) = abs.strip_prefix(base) {
                if rest.is_empty() || rest.starts_with('/') {
                    return Some(rest.trim_start_matches('/').to_string());
                }
            }
        }
        None
    }

    /// Resolve a prefix-relative path through symlinks (of any component) to a scanned file.
    fn resolve(&self, rel: &str) -> Option<&'a Scanned> {
        let mut queue: VecDeque<String> = rel.split('/').map(str::to_string).collect();
        let mut out: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = queue.pop_front() {
            match part.as_str() {
                "" | "." => {}
                ".." => {
                    out.pop()?;
                }
                name => {
                    out.push(name.to_string());
                    let cur = out.join("/");
                    if let Some(target) = self.symlinks.get(&cur) {
                        hops += 1;
                        if hops > MAX_HOPS {
                            return None;
                        }
                        out.pop();
                        let target_parts: Vec<String> = if target.starts_with('/') {
                            out.clear();
                            self.absolute_to_rel(target)?
                                .split('/')
                                .map(str::to_string)
                                .collect()
                        } else {
                            target.split('/').map(str::to_string).collect()
                        };
                        for p in target_parts.into_iter().rev() {
                            queue.push_front(p);
                        }
                    }
                }
            }
        }
        self.files.get(out.join("/").as_str()).copied()
    }

    /// Directories (prefix-relative) the loader searches for this file's dependencies, with
    /// how each was obtained, in order.
    fn search_dirs(&self, rel: &str, info: &ElfInfo) -> Vec<(String, String)> {
        let origin = rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        let list = if info.runpath.is_empty() {
            &info.rpath
        } else {
            &info.runpath
        };
        let kind = if info.runpath.is_empty() {
            "RPATH"
        } else {
            "RUNPATH"
        };
        let mut dirs = Vec::new();
        for entry in list {
            let expanded = entry.replace("${ORIGIN}", "$ORIGIN");
            let dir = if let Some(rest) = expanded.strip_prefix("$ORIGIN") {
                if rest.contains('$') {
                    continue;
                }
                Some(format!("{origin}{rest}"))
            } else if expanded.starts_with('/') && !expanded.contains('$') {
                self.absolute_to_rel(&expanded)
            } else {
                None
            };
            if let Some(d) = dir.and_then(|d| normalize(&d)) {
                dirs.push((format!("{kind} {entry}"), d));
            }
        }
        dirs.push(("prefix lib/".to_string(), "lib".to_string()));
        dirs
    }

    /// RPATH/RUNPATH entries that point outside the prefix (or use tokens other than
    /// `$ORIGIN`), which the audit cannot follow.
    fn outside_dirs(&self, info: &ElfInfo) -> Vec<String> {
        let (list, kind) = if info.runpath.is_empty() {
            (&info.rpath, "RPATH")
        } else {
            (&info.runpath, "RUNPATH")
        };
        list.iter()
            .filter(|e| {
                let e = e.replace("${ORIGIN}", "$ORIGIN");
                match e.strip_prefix("$ORIGIN") {
                    Some(rest) => rest.contains('$'),
                    None => e.contains('$') || self.absolute_to_rel(&e).is_none(),
                }
            })
            .map(|e| format!("{kind} {e}"))
            .collect()
    }

    fn find(&self, rel: &str, info: &ElfInfo, soname: &str) -> Provider<'a> {
        if soname.contains('/') {
            // A path in DT_NEEDED is used as is, relative to the working directory: it cannot
            // be judged statically; treat it as found rather than invent an error.
            return Provider::System;
        }
        for (_, dir) in self.search_dirs(rel, info) {
            let cand = if dir.is_empty() {
                soname.to_string()
            } else {
                format!("{dir}/{soname}")
            };
            if let Some(s) = self.resolve(&cand) {
                if let Some(Ok(found)) = &s.elf {
                    // The loader skips candidates of the wrong class or machine.
                    if found.class == info.class && found.machine == info.machine {
                        return Provider::Prefix(s.rel.as_str(), found);
                    }
                }
            }
        }
        Provider::Missing
    }
}

/// Resolve `.` and `..` lexically; `None` when the path climbs out of the root.
fn normalize(rel: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            p => out.push(p),
        }
    }
    Some(out.join("/"))
}

fn elide_symbols(symbols: &[String]) -> String {
    const SHOWN: usize = 6;
    let mut s = symbols
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if symbols.len() > SHOWN {
        s.push_str(&format!(", … (+{} more)", symbols.len() - SHOWN));
    }
    if s.is_empty() {
        s.push_str("no symbol uses it");
    }
    s
}

fn weakness(n: &VersionNeed) -> Weakness {
    if n.flag_weak {
        Weakness::Flagged
    } else if n.weak_symbols_only {
        Weakness::SymbolsOnly
    } else {
        Weakness::None
    }
}

fn weak_note(w: Weakness) -> &'static str {
    match w {
        Weakness::None => "",
        Weakness::SymbolsOnly => {
            " (only weak symbols use it, but the need is not flagged weak, so ld.so still refuses to load the file)"
        }
        Weakness::Flagged => " (weak need: ld.so loads the file and leaves the symbols unresolved)",
    }
}

/// glibc version needs that are markers rather than numbered versions, and the glibc release
/// that introduced each.
const GLIBC_ABI_MARKERS: [(&str, [u32; 2]); 1] = [("GLIBC_ABI_DT_RELR", [2, 36])];

const CXX_NAMESPACES: [&str; 4] = ["GLIBCXX", "CXXABI", "GCC", "CXXABI_TM"];

fn max_defined(info: &ElfInfo, ns: &str) -> Option<DottedVersion> {
    info.version_defs
        .iter()
        .filter_map(|d| crate::elf::split_version_name(d))
        .filter(|(n, _)| *n == ns)
        .map(|(_, v)| v)
        .max()
}

struct Ctx<'a> {
    target: &'a Target,
    opts: &'a AuditOptions,
    tree: &'a Tree<'a>,
}

impl Ctx<'_> {
    fn elf_findings(&self, s: &Scanned, info: &ElfInfo, package: &str, out: &mut Vec<Finding>) {
        let t = self.target;
        if let Some(kernel) = &info.abi_tag {
            if kernel > &t.linux {
                let mut f = Finding::new(
                    Severity::Error,
                    Check::Kernel,
                    &s.rel,
                    package,
                    format!(
                        "requires Linux {kernel} (NT_GNU_ABI_TAG) but {} runs Linux {}: the loader stops with \"FATAL: kernel too old\"",
                        t.name, t.linux
                    ),
                );
                f.needed = Some(kernel.to_string());
                f.available = Some(t.linux.to_string());
                out.push(f);
            }
        }

        let mut providers: HashMap<&str, Provider<'_>> = HashMap::new();
        for soname in &info.needed {
            let p = if t.provides_library(soname) {
                // A library the environment ships wins over the system's (it is found first).
                match self.tree.find(&s.rel, info, soname) {
                    Provider::Missing => Provider::System,
                    found => found,
                }
            } else {
                self.tree.find(&s.rel, info, soname)
            };
            if matches!(p, Provider::Missing) {
                let searched = self
                    .tree
                    .search_dirs(&s.rel, info)
                    .into_iter()
                    .map(|(how, dir)| {
                        if dir.is_empty() {
                            format!("{how} → ./")
                        } else {
                            format!("{how} → {dir}/")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(", ");
                let elsewhere = self
                    .tree
                    .by_name
                    .get(soname.as_str())
                    .map(|v| {
                        format!(
                            "; a copy exists at {} but is not on the search path",
                            v.join(", ")
                        )
                    })
                    .unwrap_or_default();
                let outside = self.tree.outside_dirs(info);
                let elsewhere = if outside.is_empty() {
                    elsewhere
                } else {
                    format!(
                        "{elsewhere}; not checked: {} (outside the prefix: the target's own directories)",
                        outside.join(", ")
                    )
                };
                let mut f = Finding::new(
                    Severity::Error,
                    Check::Linkage,
                    &s.rel,
                    package,
                    format!(
                        "needs {soname}, which is neither in the environment (searched {searched}) nor a system library of {} ({}): \"cannot open shared object file\"{elsewhere}",
                        t.name, t.system.policy
                    ),
                );
                f.needed = Some(soname.clone());
                out.push(f);
            }
            providers.insert(soname.as_str(), p);
        }

        for need in &info.version_needs {
            let split = need.split().or_else(|| {
                // ABI markers are not numbered but tie the file to the glibc that introduced
                // them (2.36 for DT_RELR, what `-z pack-relative-relocs` produces).
                GLIBC_ABI_MARKERS
                    .iter()
                    .find(|(name, _)| *name == need.name)
                    .map(|(_, v)| ("GLIBC", DottedVersion::new(v.to_vec())))
            });
            let Some((ns, version)) = split else {
                continue;
            };
            let weak = weakness(need);
            let severity = if weak == Weakness::Flagged && !self.opts.strict_weak {
                Severity::Warning
            } else {
                Severity::Error
            };
            let syms = elide_symbols(&need.symbols);
            let finding = |check: Check, message: String, available: Option<String>| {
                let mut f = Finding::new(severity, check, &s.rel, package, message);
                f.needed = Some(need.name.clone());
                f.available = available;
                f.library = Some(need.library.clone());
                f.symbols = need.symbols.clone();
                f.weak = Some(weak);
                f
            };
            if ns == "GLIBC" {
                if version > t.glibc {
                    out.push(finding(
                        Check::Glibc,
                        format!(
                            "needs {}{} but {} has glibc {}: {syms}{}",
                            need.name,
                            if need.name.starts_with("GLIBC_ABI_") {
                                format!(" (glibc {version})")
                            } else {
                                String::new()
                            },
                            t.name,
                            t.glibc,
                            weak_note(weak)
                        ),
                        Some(t.glibc.to_string()),
                    ));
                }
                continue;
            }
            let check = if CXX_NAMESPACES.contains(&ns) {
                Check::CxxRuntime
            } else {
                Check::Linkage
            };
            if !providers.contains_key(need.library.as_str()) {
                // A version needed from a library that is not in DT_NEEDED (e.g. the loader
                // itself): resolve it the same way.
                let p = if t.provides_library(&need.library) {
                    match self.tree.find(&s.rel, info, &need.library) {
                        Provider::Missing => Provider::System,
                        found => found,
                    }
                } else {
                    self.tree.find(&s.rel, info, &need.library)
                };
                providers.insert(need.library.as_str(), p);
            }
            let provider = &providers[need.library.as_str()];
            match provider {
                Provider::Prefix(path, lib) => {
                    if !lib.version_defs.iter().any(|d| d == &need.name) {
                        let has = max_defined(lib, ns)
                            .map(|m| format!("defines only up to {ns}_{m}"))
                            .unwrap_or_else(|| format!("defines no {ns} versions"));
                        out.push(finding(
                            check,
                            format!(
                                "needs {} from {}, but the environment's {path} (the copy the loader will use) {has}: {syms}{}",
                                need.name, need.library, weak_note(weak)
                            ),
                            max_defined(lib, ns).map(|m| format!("{ns}_{m}")),
                        ));
                    }
                }
                Provider::System => {
                    if let Some(max) = t.max_system_version(ns) {
                        if version > max {
                            out.push(finding(
                                check,
                                format!(
                                    "needs {} from {}, which the environment does not ship; the system {} of {} provides up to {ns}_{max}: {syms}{}",
                                    need.name, need.library, need.library, t.name, weak_note(weak)
                                ),
                                Some(format!("{ns}_{max}")),
                            ));
                        }
                    }
                }
                // Already reported as a missing library.
                Provider::Missing => {}
            }
        }
    }

    fn relocation_findings(
        &self,
        s: &Scanned,
        meta: &CondaMeta,
        package: &str,
        out: &mut Vec<Finding>,
    ) {
        let owner = meta.files.get(&s.rel);
        let dest = self.opts.dest_prefix.as_deref();
        if let (Some(o), Some(dest)) = (owner, dest) {
            if let Some(ph) = o.placeholder.as_deref().filter(|_| o.binary) {
                if dest.len() > ph.len() {
                    let mut f = Finding::new(
                        Severity::Error,
                        Check::PlaceholderLength,
                        &s.rel,
                        package,
                        format!(
                            "binary placeholder has room for {} bytes but the destination prefix {dest} has {}: binary relocation cannot fit it",
                            ph.len(),
                            dest.len()
                        ),
                    );
                    f.needed = Some(dest.len().to_string());
                    f.available = Some(ph.len().to_string());
                    out.push(f);
                }
            }
        }
        let Some(build) = self.tree.build_prefix.filter(|b| !b.is_empty()) else {
            return;
        };
        if !s.prefix_hit {
            return;
        }
        let registered = owner.is_some_and(|o| {
            o.placeholder.is_some() || o.path_type.as_deref() == Some("unix_python_entry_point")
        });
        if !registered {
            let (severity, why) = match (owner.is_some(), s.binary) {
                (true, _) => (
                    Severity::Error,
                    format!("{package} records no placeholder for it, so relocation leaves it pointing at the build prefix"),
                ),
                (false, false) => (
                    Severity::Warning,
                    "no package owns it; pack rewrites unmanaged text files from their content".to_string(),
                ),
                (false, true) => (
                    Severity::Error,
                    "no package owns it and it is binary: a compiled-in path nobody recorded breaks after relocation".to_string(),
                ),
            };
            let mut f = Finding::new(
                severity,
                Check::UnregisteredPrefix,
                &s.rel,
                package,
                format!("contains the build prefix {build}; {why}"),
            );
            f.needed = Some(build.to_string());
            out.push(f);
        }
        if let Some((len, count)) = s.shebang {
            let at = dest.unwrap_or(build);
            let new_len = len - count * build.len() + count * at.len();
            if new_len > SHEBANG_LIMIT {
                let in_bin = s.rel.starts_with("bin/");
                let mut f = Finding::new(
                    if in_bin { Severity::Warning } else { Severity::Error },
                    Check::Shebang,
                    &s.rel,
                    package,
                    format!(
                        "#! line is {new_len} bytes at {at}, over the kernel's {SHEBANG_LIMIT}-byte limit{}",
                        if in_bin {
                            "; pack rewrites it to #!/usr/bin/env"
                        } else {
                            ": the script cannot be executed directly"
                        }
                    ),
                );
                f.needed = Some(new_len.to_string());
                f.available = Some(SHEBANG_LIMIT.to_string());
                out.push(f);
            }
        }
    }
}

/// Audit the tree at `root` against `opts.target`.
///
/// Errors are reserved for not being able to audit at all (a missing root, unreadable
/// `conda-meta`); everything wrong with the files is a [`Finding`] in the report.
pub fn audit(
    root: &Path,
    opts: &AuditOptions,
    progress: &dyn Progress,
) -> Result<AuditReport, AuditError> {
    if !root.is_dir() {
        return Err(AuditError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let root = root.canonicalize().map_err(|source| AuditError::Io {
        path: root.to_path_buf(),
        source,
    })?;
    let root_str = root.to_string_lossy().into_owned();
    let meta = CondaMeta::load(&root)?;
    let build_prefix: Option<String> = match &opts.build_prefix {
        Some(p) if p.is_empty() => None,
        Some(p) => Some(p.trim_end_matches('/').to_string()),
        None => Some(root_str.clone()),
    }
    .filter(|p| p.len() > 1);

    progress.start(PHASE, None, ProgressUnit::Items);
    progress.message(PHASE, "listing files");
    let mut entries = Vec::new();
    let mut symlinks = HashMap::new();
    let walker = walkdir::WalkDir::new(&root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(e.depth() == 1 && e.file_name() == "conda-meta"));
    for item in walker {
        let item = item.map_err(|e| {
            let path = e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.clone());
            AuditError::Io {
                path,
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("file system loop")),
            }
        })?;
        let Ok(rel) = item.path().strip_prefix(&root) else {
            continue;
        };
        let rel = rel.to_string_lossy().into_owned();
        let ft = item.file_type();
        if ft.is_symlink() {
            if let Ok(target) = std::fs::read_link(item.path()) {
                symlinks.insert(rel, target.to_string_lossy().into_owned());
            }
        } else if ft.is_file() {
            let size = item.metadata().map(|m| m.len()).unwrap_or(0);
            entries.push(Entry { rel, size });
        }
    }
    progress.finish(PHASE);

    let total: u64 = entries.iter().map(|e| e.size).sum();
    progress.start(PHASE, Some(total), ProgressUnit::Bytes);
    let finder = build_prefix
        .as_deref()
        .map(|p| memmem::Finder::new(p.as_bytes()).into_owned());
    let scanned: Vec<Scanned> = entries
        .par_iter()
        .map(|e| {
            let s = scan_file(&root, e, finder.as_ref());
            progress.advance(PHASE, e.size);
            s
        })
        .collect();
    progress.finish(PHASE);

    let mut tree = Tree {
        files: scanned.iter().map(|s| (s.rel.as_str(), s)).collect(),
        symlinks,
        root_str: root_str.clone(),
        build_prefix: build_prefix.as_deref(),
        by_name: HashMap::new(),
    };
    let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
    for s in &scanned {
        if matches!(s.elf, Some(Ok(_))) {
            let base = s.rel.rsplit('/').next().unwrap_or(&s.rel);
            by_name
                .entry(base.to_string())
                .or_default()
                .push(s.rel.clone());
        }
    }
    for link in tree.symlinks.keys() {
        if tree
            .resolve(link)
            .is_some_and(|s| matches!(s.elf, Some(Ok(_))))
        {
            let base = link.rsplit('/').next().unwrap_or(link);
            by_name
                .entry(base.to_string())
                .or_default()
                .push(link.clone());
        }
    }
    for v in by_name.values_mut() {
        v.sort();
    }
    tree.by_name = by_name;
    let ctx = Ctx {
        target: &opts.target,
        opts,
        tree: &tree,
    };
    let mut findings: Vec<Finding> = scanned
        .par_iter()
        .flat_map_iter(|s| {
            let package = meta.owner_name(&s.rel).unwrap_or(UNMANAGED);
            let mut out = Vec::new();
            if let Some(err) = &s.read_error {
                out.push(Finding::new(
                    Severity::Warning,
                    Check::Unreadable,
                    &s.rel,
                    package,
                    format!("could not be read: {err}"),
                ));
            }
            match &s.elf {
                Some(Ok(info)) if info.is_loadable() => {
                    ctx.elf_findings(s, info, package, &mut out)
                }
                Some(Err(err)) => out.push(Finding::new(
                    Severity::Warning,
                    Check::Unreadable,
                    &s.rel,
                    package,
                    format!("starts like ELF but cannot be parsed ({err}); not checked"),
                )),
                _ => {}
            }
            ctx.relocation_findings(s, &meta, package, &mut out);
            out
        })
        .collect();

    let mut summary = Summary {
        files_scanned: scanned.len() as u64,
        elf_files: scanned
            .iter()
            .filter(|s| matches!(s.elf, Some(Ok(_))))
            .count() as u64,
        bytes_scanned: total,
        packages: meta.packages.len() as u64,
        ..Summary::default()
    };
    for f in &mut findings {
        if let Some(rule) = opts.allowlist.matching(f) {
            f.allowed = Some(rule.reason.clone());
            summary.allowed += 1;
        } else {
            match f.severity {
                Severity::Error => summary.errors += 1,
                Severity::Warning => summary.warnings += 1,
            }
        }
    }
    summary.passed = summary.errors == 0;
    findings.sort_by(|a, b| {
        (
            a.package == UNMANAGED,
            &a.package,
            &a.path,
            a.check,
            &a.message,
        )
            .cmp(&(
                b.package == UNMANAGED,
                &b.package,
                &b.path,
                b.check,
                &b.message,
            ))
    });

    let files = opts.inventory.then(|| {
        scanned
            .iter()
            .filter_map(|s| match &s.elf {
                Some(Ok(info)) => Some(FileInventory {
                    path: s.rel.clone(),
                    package: meta.owner_name(&s.rel).unwrap_or(UNMANAGED).to_string(),
                    elf: info.clone(),
                }),
                _ => None,
            })
            .collect()
    });

    let t = &opts.target;
    Ok(AuditReport {
        schema_version: SCHEMA_VERSION,
        tool: format!("envship-audit {}", env!("CARGO_PKG_VERSION")),
        root: root_str,
        target: TargetSummary {
            name: t.name.clone(),
            glibc: t.glibc.to_string(),
            linux: t.linux.to_string(),
            policy: t.system.policy.clone(),
        },
        build_prefix,
        dest_prefix: opts.dest_prefix.clone(),
        strict_weak: opts.strict_weak,
        summary,
        findings,
        files,
    })
}
