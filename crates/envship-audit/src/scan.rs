//! The directory walk, the parallel per-file scan, and the loader walks from every root
//! (library resolution needs every file parsed before any `DT_NEEDED` can be judged); the
//! conclusions are drawn in [`crate::checks`].

use std::{
    collections::{HashMap, HashSet},
    fs::File,
    path::Path,
};

use envship_spec::{Progress, ProgressUnit};
use memchr::memmem;
use rayon::prelude::*;

use crate::{
    checks::{Checks, LinkOutcome},
    elf::{parse_elf, ElfInfo},
    loader::{Loader, LoaderSettings, PrefixView, Resolution, Walk},
    meta::CondaMeta,
    report::{
        AuditReport, Check, FileInventory, Finding, Severity, Summary, TargetSummary,
        SCHEMA_VERSION, UNMANAGED,
    },
    AuditError, AuditOptions,
};

/// Files up to this size are read with one `read`; larger ones are memory-mapped.
const READ_LIMIT: u64 = 64 * 1024;
/// How much of a file decides text vs binary (a NUL byte means binary), as conda does.
const SNIFF: usize = 8192;
/// Where conda's activation scripts live; one that mentions `LD_LIBRARY_PATH` changes what
/// the loader finds in a way the audit cannot evaluate.
const ACTIVATE_D: &str = "etc/conda/activate.d/";
const PHASE: &str = "audit";

struct Entry {
    rel: String,
    size: u64,
}

/// What the scan of one file found.
pub(crate) struct Scanned {
    pub rel: String,
    pub elf: Option<Result<ElfInfo, String>>,
    pub read_error: Option<String>,
    /// The build prefix occurs in the file.
    pub prefix_hit: bool,
    /// A NUL byte in the first [`SNIFF`] bytes.
    pub binary: bool,
    /// `#!` line length and how often the build prefix occurs in it.
    pub shebang: Option<(usize, usize)>,
    /// A static executable that contains glibc's NSS module loader (`libnss_`).
    pub static_nss: bool,
    /// An activation script that mentions `LD_LIBRARY_PATH`.
    pub sets_library_path: bool,
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
        static_nss: false,
        sets_library_path: false,
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
        let parsed = parse_elf(&data)
            .map_err(|e| e.to_string())
            .and_then(|o| o.ok_or_else(|| "not ELF".to_string()));
        if let Ok(info) = &parsed {
            s.static_nss = info.is_static() && memmem::find(&data, b"libnss_").is_some();
        }
        s.elf = Some(parsed);
    }
    if e.rel.starts_with(ACTIVATE_D) && !s.binary {
        s.sets_library_path = memmem::find(&data, b"LD_LIBRARY_PATH").is_some();
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

/// `LD_LIBRARY_PATH` as the environment's activation sets it: conda stores `variables:` in
/// `conda-meta/state` (`env_vars`), and activation exports them. `$CONDA_PREFIX` at the start
/// of an entry is the prefix. Activation *scripts* (`etc/conda/activate.d`) are not run; one
/// that mentions the variable gets a warning instead.
fn activation_library_path(root: &Path, root_str: &str) -> Result<Vec<String>, AuditError> {
    let path = root.join("conda-meta").join("state");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(AuditError::Io { path, source }),
    };
    let state: serde_json::Value =
        serde_json::from_str(&text).map_err(|source| AuditError::CondaMeta { path, source })?;
    let Some(value) = state
        .get("env_vars")
        .and_then(|v| v.get("LD_LIBRARY_PATH"))
        .and_then(|v| v.as_str())
    else {
        return Ok(Vec::new());
    };
    Ok(value
        .split(':')
        .filter(|e| !e.is_empty())
        .map(|e| {
            for var in ["${CONDA_PREFIX}", "$CONDA_PREFIX"] {
                if let Some(rest) = e.strip_prefix(var) {
                    return format!("{root_str}{rest}");
                }
            }
            e.to_string()
        })
        .collect())
}

/// The objects the loader starts from: executables, and shared objects no ELF file of the
/// prefix names in `DT_NEEDED` (extension modules, plugins, libraries nobody links).
fn roots(scanned: &[Scanned]) -> Vec<&str> {
    let loadable = || {
        scanned.iter().filter_map(|s| match &s.elf {
            Some(Ok(info)) if info.is_loadable() => Some((s.rel.as_str(), info)),
            _ => None,
        })
    };
    let asked: HashSet<&str> = loadable()
        .flat_map(|(_, info)| info.needed.iter())
        .map(|n| n.rsplit('/').next().unwrap_or(n))
        .collect();
    loadable()
        .filter(|(rel, info)| {
            let base = rel.rsplit('/').next().unwrap_or(rel);
            info.is_executable()
                || !(asked.contains(base)
                    || info.soname.as_deref().is_some_and(|so| asked.contains(so)))
        })
        .map(|(rel, _)| rel)
        .collect()
}

/// The interpreter that loads a shared object under `lib/pythonX.Y/` (an extension module
/// in site-packages or lib-dynload): the prefix's `bin/pythonX.Y`, when it is an executable.
fn python_host(view: &PrefixView<'_>, rel: &str) -> Option<String> {
    let version = rel.strip_prefix("lib/python")?.split('/').next()?;
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let (_, module) = view.resolve(rel)?;
    let exe = format!("bin/python{version}");
    let (_, host) = view.resolve(&exe)?;
    (!module.is_executable() && host.is_executable()).then_some(exe)
}

/// Each (asker, name) with its distinct answers over all walks, one chain per answer (the
/// shortest, then the first in path order, so reports are stable).
type Outcomes<'a> = HashMap<&'a str, Vec<LinkOutcome>>;

fn collect_outcomes<'a>(loader: &Loader<'_, 'a>, walks: &[Walk<'a>], out: &mut Outcomes<'a>) {
    for walk in walks {
        for edge in &walk.edges {
            let list = out.entry(walk.objects[edge.asker].path).or_default();
            let chain = || -> Vec<String> {
                walk.chain(edge.asker)
                    .iter()
                    .map(|p| p.to_string())
                    .collect()
            };
            match list
                .iter_mut()
                .find(|o| o.name == edge.name && o.resolution == edge.resolution)
            {
                Some(o) => {
                    // Most edges repeat an answer already kept: compare lengths before
                    // building the chain.
                    let len = walk.chain_len(edge.asker);
                    if len > o.chain.len() {
                        continue;
                    }
                    let c = chain();
                    if (c.len(), &c) < (o.chain.len(), &o.chain) {
                        o.chain = c;
                        if edge.resolution == Resolution::Missing {
                            o.searched = loader.search_list(walk, edge.asker);
                        }
                    }
                }
                None => list.push(LinkOutcome {
                    name: edge.name.clone(),
                    resolution: edge.resolution.clone(),
                    version_only: edge.version_only,
                    chain: chain(),
                    searched: if edge.resolution == Resolution::Missing {
                        loader.search_list(walk, edge.asker)
                    } else {
                        Vec::new()
                    },
                }),
            }
        }
    }
}

/// The regular files (with sizes) and symlinks (with targets) under `root`, by relative path,
/// in name order; `conda-meta/` is left out.
fn list_files(root: &Path) -> Result<(Vec<Entry>, HashMap<String, String>), AuditError> {
    let mut entries = Vec::new();
    let mut symlinks = HashMap::new();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| !(e.depth() == 1 && e.file_name() == "conda-meta"));
    for item in walker {
        let item = item.map_err(|e| {
            let path = e
                .path()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| root.to_path_buf());
            AuditError::Io {
                path,
                source: e
                    .into_io_error()
                    .unwrap_or_else(|| std::io::Error::other("file system loop")),
            }
        })?;
        let Ok(rel) = item.path().strip_prefix(root) else {
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
    Ok((entries, symlinks))
}

/// Every root walked as ld.so would load it, then every loadable object no root reached.
fn walk_everything<'a>(
    loader: &Loader<'_, 'a>,
    view: &PrefixView<'a>,
    scanned: &'a [Scanned],
) -> Vec<Walk<'a>> {
    let walk_root = |rel: &&str| match python_host(view, rel) {
        Some(host) => loader.walk_hosted(&host, rel),
        None => loader.walk(rel),
    };
    let first = roots(scanned);
    let mut walks: Vec<Walk<'_>> = first.par_iter().filter_map(walk_root).collect();
    // Objects no root reached (a library whose only askers cannot find it, a cycle) are
    // judged as if loaded on their own, so no file goes unchecked.
    let reached: HashSet<&str> = walks
        .iter()
        .flat_map(|w| w.objects.iter().map(|o| o.path))
        .collect();
    let rest: Vec<&str> = scanned
        .iter()
        .filter(|s| matches!(&s.elf, Some(Ok(i)) if i.is_loadable()))
        .map(|s| s.rel.as_str())
        .filter(|r| !reached.contains(r))
        .collect();
    walks.extend(rest.par_iter().filter_map(walk_root).collect::<Vec<_>>());
    walks
}

/// ELF files and the symlinks that reach one, grouped by file name (to tell apart the copies
/// of one library).
fn copies_by_name(scanned: &[Scanned], view: &PrefixView<'_>) -> HashMap<String, Vec<String>> {
    let mut copies: HashMap<String, Vec<String>> = HashMap::new();
    for s in scanned {
        if matches!(s.elf, Some(Ok(_))) {
            let base = s.rel.rsplit('/').next().unwrap_or(&s.rel);
            copies
                .entry(base.to_string())
                .or_default()
                .push(s.rel.clone());
        }
    }
    for link in view.symlinks() {
        if view.resolve(link).is_some() {
            let base = link.rsplit('/').next().unwrap_or(link);
            copies
                .entry(base.to_string())
                .or_default()
                .push(link.to_string());
        }
    }
    for v in copies.values_mut() {
        v.sort();
    }
    copies
}

/// Everything wrong with one scanned file.
fn file_findings(
    s: &Scanned,
    checks: &Checks<'_>,
    meta: &CondaMeta,
    outcomes: &Outcomes<'_>,
) -> Vec<Finding> {
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
            checks.file_findings(s, info, package, &mut out);
            let links = outcomes
                .get(s.rel.as_str())
                .map(Vec::as_slice)
                .unwrap_or_default();
            checks.link_findings(s, info, package, links, &mut out);
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
    if s.sets_library_path {
        out.push(Finding::new(
            Severity::Warning,
            Check::Linkage,
            &s.rel,
            package,
            "activation script mentions LD_LIBRARY_PATH, which the audit does not evaluate: libraries found only through it are reported missing, and it can shadow the libraries the audit found".to_string(),
        ));
    }
    checks.relocation_findings(s, meta, package, &mut out);
    out
}

/// Applies the allowlist, counts, and sorts the findings (unmanaged files last).
fn summarize(
    findings: &mut [Finding],
    scanned: &[Scanned],
    total: u64,
    meta: &CondaMeta,
    opts: &AuditOptions,
) -> Summary {
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
    for f in findings.iter_mut() {
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
    summary
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
    let (entries, symlinks) = list_files(&root)?;
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

    // The loader's view of the prefix, and every root walked as ld.so would load it.
    let elf_files: HashMap<&str, &ElfInfo> = scanned
        .iter()
        .filter_map(|s| match &s.elf {
            Some(Ok(info)) => Some((s.rel.as_str(), info)),
            _ => None,
        })
        .collect();
    let bases = [Some(root_str.clone()), build_prefix.clone()]
        .into_iter()
        .flatten()
        .collect();
    let view = PrefixView::new(elf_files, symlinks, bases);
    let mut settings = LoaderSettings::for_target(&opts.target);
    settings.library_path = activation_library_path(&root, &root_str)?;
    let loader = Loader::new(&view, &opts.target, &settings);

    let walks = walk_everything(&loader, &view, &scanned);
    let mut outcomes = Outcomes::new();
    collect_outcomes(&loader, &walks, &mut outcomes);

    let copies = copies_by_name(&scanned, &view);
    let checks = Checks {
        target: &opts.target,
        opts,
        build_prefix: build_prefix.as_deref(),
        view: &view,
        copies: &copies,
    };
    let mut findings: Vec<Finding> = scanned
        .par_iter()
        .flat_map_iter(|s| file_findings(s, &checks, &meta, &outcomes))
        .collect();

    let summary = summarize(&mut findings, &scanned, total, &meta, opts);

    let files = opts.inventory.then(|| {
        scanned
            .par_iter()
            .filter_map(|s| match &s.elf {
                Some(Ok(info)) => Some(FileInventory {
                    path: s.rel.clone(),
                    package: meta.owner_name(&s.rel).unwrap_or(UNMANAGED).to_string(),
                    elf: info.clone(),
                    libraries: if info.is_loadable() {
                        loader.walk(&s.rel).map(|w| w.loaded).unwrap_or_default()
                    } else {
                        Vec::new()
                    },
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
