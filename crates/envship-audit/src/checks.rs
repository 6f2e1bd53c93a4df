//! The checks: what the audit concludes from one file's facts (kernel, glibc, static
//! linking, relocation hazards) and from what the loader emulation ([`crate::loader`]) says
//! each of its `DT_NEEDED` names resolves to (missing libraries, versions the resolved library
//! does not define).

use std::collections::HashMap;

use envship_spec::{DottedVersion, Target};

use crate::{
    elf::{ElfInfo, VersionNeed},
    loader::{PrefixView, Resolution, SearchedDir},
    meta::CondaMeta,
    report::{Check, Finding, Severity, Weakness},
    scan::Scanned,
    AuditOptions, SHEBANG_LIMIT,
};

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

/// What one asker's name resolved to in one loading chain.
#[derive(Clone, Debug)]
pub(crate) struct LinkOutcome {
    /// The `DT_NEEDED` name (or the library of a version need).
    pub name: String,
    /// Where the loader found it.
    pub resolution: Resolution,
    /// The name comes from a version need only.
    pub version_only: bool,
    /// The root, the objects that loaded each other, and the asker last.
    pub chain: Vec<String>,
    /// For a missing name: the directories the loader searched, in order.
    pub searched: Vec<SearchedDir>,
}

/// Everything the checks need besides the file itself.
pub(crate) struct Checks<'a> {
    pub target: &'a Target,
    pub opts: &'a AuditOptions,
    pub build_prefix: Option<&'a str>,
    pub view: &'a PrefixView<'a>,
    /// basename → prefix paths of ELF files (and symlinks to them), for "it exists but is
    /// not on the search path".
    pub copies: &'a HashMap<String, Vec<String>>,
}

impl Checks<'_> {
    /// The checks that depend on the file alone: minimum kernel, glibc version needs, and what
    /// a static executable brings with it.
    pub(crate) fn file_findings(
        &self,
        s: &Scanned,
        info: &ElfInfo,
        package: &str,
        out: &mut Vec<Finding>,
    ) {
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
        // A static executable needs nothing of the target's glibc. One linked against glibc
        // still carries glibc's NT_GNU_ABI_TAG (checked above), and when it uses NSS it
        // dlopens the target's libnss_* modules, which must come from the very glibc release
        // it was linked with (the link-time warning gcc prints says as much).
        if info.is_static() && info.abi_tag.is_some() && s.static_nss {
            out.push(Finding::new(
                Severity::Warning,
                Check::Linkage,
                &s.rel,
                package,
                format!(
                    "is statically linked with glibc and uses NSS (getpwnam, getaddrinfo, …): at run time it loads {}'s libnss_* modules, which work only with the glibc release it was linked against",
                    t.name
                ),
            ));
        }
        for need in &info.version_needs {
            let Some((ns, version)) = split_need(need) else {
                continue;
            };
            if ns != "GLIBC" || version <= t.glibc {
                continue;
            }
            let weak = weakness(need);
            let syms = elide_symbols(&need.symbols);
            let mut f = self.version_finding(
                s,
                package,
                need,
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
            );
            f.available = Some(t.glibc.to_string());
            out.push(f);
        }
    }

    fn version_finding(
        &self,
        s: &Scanned,
        package: &str,
        need: &VersionNeed,
        check: Check,
        message: String,
    ) -> Finding {
        let weak = weakness(need);
        let severity = if weak == Weakness::Flagged && !self.opts.strict_weak {
            Severity::Warning
        } else {
            Severity::Error
        };
        let mut f = Finding::new(severity, check, &s.rel, package, message);
        f.needed = Some(need.name.clone());
        f.library = Some(need.library.clone());
        f.symbols = need.symbols.clone();
        f.weak = Some(weak);
        f
    }

    /// The checks that depend on what the loader found for the file's names: libraries that
    /// cannot be found, and versions (C++ runtime, other libraries) the library the loader
    /// really uses does not define. `outcomes` holds each distinct answer once, with one chain
    /// that produced it.
    pub(crate) fn link_findings(
        &self,
        s: &Scanned,
        info: &ElfInfo,
        package: &str,
        outcomes: &[LinkOutcome],
        out: &mut Vec<Finding>,
    ) {
        for o in outcomes {
            if o.resolution == Resolution::Missing && !o.version_only {
                out.push(self.missing_finding(s, info, package, o));
            }
        }
        for need in &info.version_needs {
            let Some((ns, version)) = split_need(need) else {
                continue;
            };
            if ns == "GLIBC" {
                continue;
            }
            let check = if CXX_NAMESPACES.contains(&ns) {
                Check::CxxRuntime
            } else {
                Check::Linkage
            };
            let weak = weakness(need);
            let syms = elide_symbols(&need.symbols);
            let mut seen: Vec<&Resolution> = Vec::new();
            for o in outcomes.iter().filter(|o| o.name == need.library) {
                if seen.contains(&&o.resolution) {
                    continue;
                }
                seen.push(&o.resolution);
                match &o.resolution {
                    Resolution::Prefix { path } => {
                        let Some((_, lib)) = self.view.resolve(path) else {
                            continue;
                        };
                        if lib.version_defs.iter().any(|d| d == &need.name) {
                            continue;
                        }
                        let has = max_defined(lib, ns)
                            .map(|m| format!("defines only up to {ns}_{m}"))
                            .unwrap_or_else(|| format!("defines no {ns} versions"));
                        let mut f = self.version_finding(
                            s,
                            package,
                            need,
                            check,
                            format!(
                                "needs {} from {}, but the environment's {path} (the copy the loader will use{}) {has}: {syms}{}",
                                need.name,
                                need.library,
                                chain_note(&o.chain),
                                weak_note(weak)
                            ),
                        );
                        f.available = max_defined(lib, ns).map(|m| format!("{ns}_{m}"));
                        out.push(f);
                    }
                    Resolution::System => {
                        let Some(max) = self.target.max_system_version(ns) else {
                            continue;
                        };
                        if version <= max {
                            continue;
                        }
                        let mut f = self.version_finding(
                            s,
                            package,
                            need,
                            check,
                            format!(
                                "needs {} from {}, which the environment does not ship; the system {} of {} provides up to {ns}_{max}: {syms}{}",
                                need.name, need.library, need.library, self.target.name, weak_note(weak)
                            ),
                        );
                        f.available = Some(format!("{ns}_{max}"));
                        out.push(f);
                    }
                    // Reported as a missing library.
                    Resolution::Missing => {}
                }
            }
        }
    }

    fn missing_finding(
        &self,
        s: &Scanned,
        info: &ElfInfo,
        package: &str,
        o: &LinkOutcome,
    ) -> Finding {
        let t = self.target;
        let name = &o.name;
        let through = if o.chain.len() > 1 {
            format!(" (loaded through {})", o.chain.join(" → "))
        } else {
            String::new()
        };
        let message = if name.contains('/') {
            if name.starts_with('/') {
                format!(
                    "needs {name}{through} by absolute path, which is neither a file of the environment nor a system library of {}: \"cannot open shared object file\"",
                    t.name
                )
            } else {
                format!(
                    "needs {name}{through}, a relative path the loader opens from whatever the working directory is when the program starts: it works from one directory at most"
                )
            }
        } else {
            let mut searched = Vec::new();
            let mut outside = Vec::new();
            let mut on_host = Vec::new();
            for d in &o.searched {
                match d.dir.as_deref() {
                    Some("") => searched.push(format!("{} → ./", d.how)),
                    Some(dir) => searched.push(format!("{} → {dir}/", d.how)),
                    None if d.on_host => on_host.push(d.how.clone()),
                    None => outside.push(d.how.clone()),
                }
            }
            let searched = if searched.is_empty() {
                "no directory of the prefix is on its search path".to_string()
            } else {
                format!("searched {}", searched.join(", "))
            };
            let mut elsewhere = self
                .copies
                .get(name.as_str())
                .map(|v| {
                    format!(
                        "; a copy exists at {} but is not on the search path",
                        v.join(", ")
                    )
                })
                .unwrap_or_default();
            if !on_host.is_empty() {
                elsewhere.push_str(&format!(
                    "; not on this machine either: {}",
                    on_host.join(", ")
                ));
            }
            if !outside.is_empty() {
                elsewhere.push_str(&format!(
                    "; not checked: {} (outside the prefix: the target's own directories)",
                    outside.join(", ")
                ));
            }
            if info.runpath.is_empty() && info.rpath.is_empty() && o.chain.len() == 1 {
                elsewhere.push_str("; the file has no RPATH or RUNPATH");
            }
            format!(
                "needs {name}{through}, which is neither in the environment ({searched}) nor a system library of {} ({}): \"cannot open shared object file\"{elsewhere}",
                t.name, t.system.policy
            )
        };
        let mut f = Finding::new(Severity::Error, Check::Linkage, &s.rel, package, message);
        f.needed = Some(name.clone());
        f.chain = o.chain.clone();
        f
    }

    pub(crate) fn relocation_findings(
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
        let Some(build) = self.build_prefix.filter(|b| !b.is_empty()) else {
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

/// A version need as namespace and number; ABI markers map to the glibc that introduced them.
fn split_need(need: &VersionNeed) -> Option<(&str, DottedVersion)> {
    need.split().or_else(|| {
        // ABI markers are not numbered but tie the file to the glibc that introduced them
        // (2.36 for DT_RELR, what `-z pack-relative-relocs` produces).
        GLIBC_ABI_MARKERS
            .iter()
            .find(|(name, _)| *name == need.name)
            .map(|(_, v)| ("GLIBC", DottedVersion::new(v.to_vec())))
    })
}

fn chain_note(chain: &[String]) -> String {
    if chain.len() > 1 {
        format!(", loaded through {}", chain.join(" → "))
    } else {
        String::new()
    }
}
