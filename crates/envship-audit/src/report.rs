//! The audit report: what was checked, what was found, and how to read it.
//!
//! # JSON format (`schema_version` 1)
//!
//! The report is serialized with serde; field names and enum spellings below are stable within a
//! schema version. A new field may be added without changing the version; renaming or removing
//! one bumps it.
//!
//! ```text
//! {
//!   "schema_version": 1,
//!   "tool": "envship-audit 0.1.0",
//!   "root": "/abs/path/of/the/prefix",
//!   "target": { "name": "lcls-rhel6", "glibc": "2.12", "linux": "2.6.32", "policy": "manylinux_2_12" },
//!   "build_prefix": "/abs/build/prefix" | null,   // the string searched for (null: not searched)
//!   "dest_prefix": "/opt/env" | null,             // for shebang and placeholder-length checks
//!   "strict_weak": false,
//!   "summary": {
//!     "files_scanned": 812, "elf_files": 97, "bytes_scanned": 123456789,
//!     "packages": 23,            // conda-meta records read
//!     "errors": 2, "warnings": 1, "allowed": 0,   // allowed: findings an --allow rule accepted
//!     "passed": false            // errors == 0
//!   },
//!   "findings": [ {
//!     "severity": "error" | "warning",
//!     "check": "glibc" | "cxx-runtime" | "linkage" | "kernel" | "unregistered-prefix"
//!              | "shebang" | "placeholder-length" | "unreadable",
//!     "path": "lib/python3.11/site-packages/markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so",
//!     "package": "markupsafe-2.1.5-py311h…_0" | "pip/unmanaged",
//!     "message": "needs GLIBC_2.14 but lcls-rhel6 has glibc 2.12: memcpy@GLIBC_2.14",
//!     "needed": "GLIBC_2.14",        // optional: version, soname, kernel or length needed
//!     "available": "2.12",           // optional: what the target or environment provides
//!     "library": "libc.so.6",        // optional: the library the version is needed from
//!     "symbols": ["memcpy@GLIBC_2.14"],  // optional: symbols bound to the version
//!     "weak": "none" | "symbols-only" | "flagged",  // optional, glibc and cxx-runtime only
//!     "chain": ["bin/python3.9", "lib/…/_multiarray_umath….so", "lib/…/libopenblas….so"],
//!                                    // optional, missing libraries: root → … → the asker
//!     "allowed": "reason from the allowlist"        // present only when a rule accepted it
//!   } ],
//!   "files": [ { "path": …, "package": …, "elf": { … },      // only with the inventory option
//!                "libraries": [ { "name": "libz.so.1", "from": "prefix", "path": "lib/libz.so.1.2.13" },
//!                               { "name": "libc.so.6", "from": "system" },
//!                               { "name": "libgone.so.1", "from": "missing" } ] } ]
//! }
//! ```
//!
//! Findings are sorted by package, path, check and message, so two runs over the same tree give
//! byte-identical JSON. Allowed findings stay in `findings` (with `allowed`) but count neither
//! as errors nor as warnings.
//!
//! `weak` explains glibc and C++-runtime findings: `flagged` means the version need carries
//! `VER_FLG_WEAK`, which the loader tolerates (a warning unless `strict_weak`); `symbols-only`
//! means only weak symbols use the version but the need is not flagged — the program could cope
//! with the symbols missing, but ld.so still refuses to load the file (`version 'GLIBC_2.28' not
//! found`), so it is an error; `none` is an ordinary strong need.

use std::{collections::BTreeMap, fmt::Write as _};

use serde::{Deserialize, Serialize};

use crate::{elf::ElfInfo, loader::LoadedLibrary};

/// The JSON schema version this crate writes.
pub const SCHEMA_VERSION: u32 = 1;

/// The owner name of files no conda package records.
pub const UNMANAGED: &str = "pip/unmanaged";

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Severity {
    /// Fails the audit (exit 1).
    Error,
    /// Reported, does not fail the audit.
    Warning,
}

/// Which check produced a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// A `GLIBC_x.y` version need above the target's glibc.
    Glibc,
    /// A `GLIBCXX_`/`CXXABI_`/`GCC_` need the loaded libstdc++/libgcc_s does not define.
    CxxRuntime,
    /// A `DT_NEEDED` library that cannot be found, or a versioned need an environment library
    /// does not define.
    Linkage,
    /// An `NT_GNU_ABI_TAG` minimum kernel above the target's kernel.
    Kernel,
    /// The build prefix inside a file where no placeholder records it.
    UnregisteredPrefix,
    /// A shebang longer than the kernel's 127-byte limit at the destination prefix.
    Shebang,
    /// A binary placeholder shorter than the destination prefix.
    PlaceholderLength,
    /// A file that could not be read, or that looks like ELF but is malformed.
    Unreadable,
}

impl Check {
    /// Every check, in report order.
    pub const ALL: [Check; 8] = [
        Check::Glibc,
        Check::CxxRuntime,
        Check::Linkage,
        Check::Kernel,
        Check::UnregisteredPrefix,
        Check::Shebang,
        Check::PlaceholderLength,
        Check::Unreadable,
    ];

    /// The kebab-case name used in JSON and allowlists.
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Glibc => "glibc",
            Check::CxxRuntime => "cxx-runtime",
            Check::Linkage => "linkage",
            Check::Kernel => "kernel",
            Check::UnregisteredPrefix => "unregistered-prefix",
            Check::Shebang => "shebang",
            Check::PlaceholderLength => "placeholder-length",
            Check::Unreadable => "unreadable",
        }
    }
}

/// How weak a version need is (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Weakness {
    /// At least one strong symbol uses the version (or none at all), and it is not flagged.
    None,
    /// Only weak symbols use it, but the need is not flagged `VER_FLG_WEAK`: ld.so still fails.
    SymbolsOnly,
    /// The need is flagged `VER_FLG_WEAK`: ld.so loads the file without the version.
    Flagged,
}

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Error or warning (after `strict_weak`, before the allowlist).
    pub severity: Severity,
    /// The check that found it.
    pub check: Check,
    /// Path relative to the audited root, `/`-separated.
    pub path: String,
    /// The owning conda package (`name-version-build`) or [`UNMANAGED`].
    pub package: String,
    /// One line for humans, naming the version and symbols involved.
    pub message: String,
    /// The version, soname, kernel or length that is needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needed: Option<String>,
    /// What the target or environment provides instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<String>,
    /// The library a version is needed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<String>,
    /// Symbols bound to the needed version, as `name@VERSION`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symbols: Vec<String>,
    /// For version needs: how weak the need is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weak: Option<Weakness>,
    /// For a library the loader cannot find: the objects that loaded each other, from the
    /// root (an executable or an extension module's interpreter) to the file that asks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
    /// The reason of the allowlist rule that accepted this finding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<String>,
}

impl Finding {
    pub(crate) fn new(
        severity: Severity,
        check: Check,
        path: &str,
        package: &str,
        message: String,
    ) -> Self {
        Self {
            severity,
            check,
            path: path.to_string(),
            package: package.to_string(),
            message,
            needed: None,
            available: None,
            library: None,
            symbols: Vec::new(),
            weak: None,
            chain: Vec::new(),
            allowed: None,
        }
    }

    /// Whether the finding fails the audit.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error && self.allowed.is_none()
    }
}

/// The target the audit ran against, as recorded in the report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetSummary {
    /// Profile name, with `+override` suffixes.
    pub name: String,
    /// glibc version.
    pub glibc: String,
    /// Kernel version.
    pub linux: String,
    /// The manylinux policy the system-library list comes from.
    pub policy: String,
}

/// Counts over the whole audit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Regular files read (symlinks and `conda-meta/` excluded).
    pub files_scanned: u64,
    /// Of those, ELF files.
    pub elf_files: u64,
    /// Total size of the files read.
    pub bytes_scanned: u64,
    /// conda-meta records read.
    pub packages: u64,
    /// Findings that fail the audit.
    pub errors: u64,
    /// Warnings not accepted by the allowlist.
    pub warnings: u64,
    /// Findings an allowlist rule accepted.
    pub allowed: u64,
    /// `errors == 0`.
    pub passed: bool,
}

/// One ELF file of the inventory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInventory {
    /// Path relative to the root.
    pub path: String,
    /// Owning package or [`UNMANAGED`].
    pub package: String,
    /// What the loader sees.
    pub elf: ElfInfo,
    /// What the target's loader maps when this file is the main program (`ld.so --list
    /// FILE`): each library once, in load order, from the prefix, the system, or missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<LoadedLibrary>,
}

/// The result of [`crate::audit`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReport {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// `envship-audit VERSION`.
    pub tool: String,
    /// The audited directory.
    pub root: String,
    /// The target checked against.
    pub target: TargetSummary,
    /// The build prefix searched for, if any.
    pub build_prefix: Option<String>,
    /// The destination prefix, if given.
    pub dest_prefix: Option<String>,
    /// Whether weak version needs count as errors.
    pub strict_weak: bool,
    /// Counts.
    pub summary: Summary,
    /// Everything found, sorted.
    pub findings: Vec<Finding>,
    /// Every ELF file with what the loader sees (only when asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<FileInventory>>,
}

impl AuditReport {
    /// Whether no error remains.
    pub fn passed(&self) -> bool {
        self.summary.errors == 0
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    }

    /// Findings not accepted by the allowlist.
    pub fn open_findings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.allowed.is_none())
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The human table: a header, then findings grouped by package (conda packages first, then
/// `pip/unmanaged`), then a verdict line.
pub fn render_table(report: &AuditReport) -> String {
    let mut out = String::new();
    let t = &report.target;
    let s = &report.summary;
    let _ = writeln!(
        out,
        "audit of {} for {} (glibc {}, linux {}, {})",
        report.root, t.name, t.glibc, t.linux, t.policy
    );
    let _ = writeln!(
        out,
        "scanned {} files ({} ELF, {}) from {} conda packages",
        s.files_scanned,
        s.elf_files,
        human_bytes(s.bytes_scanned),
        s.packages
    );
    let mut groups: BTreeMap<(bool, &str), Vec<&Finding>> = BTreeMap::new();
    for f in &report.findings {
        groups
            .entry((f.package == UNMANAGED, f.package.as_str()))
            .or_default()
            .push(f);
    }
    for ((_, package), findings) in &groups {
        let _ = writeln!(out);
        let errors = findings.iter().filter(|f| f.is_error()).count();
        let _ = writeln!(
            out,
            "{package} ({} findings, {errors} errors)",
            findings.len()
        );
        let path_w = findings
            .iter()
            .map(|f| f.path.len())
            .max()
            .unwrap_or(4)
            .clamp(4, 60);
        for f in findings {
            let sev = match (&f.allowed, f.severity) {
                (Some(_), _) => "allowed",
                (None, Severity::Error) => "ERROR",
                (None, Severity::Warning) => "warning",
            };
            let _ = write!(
                out,
                "  {sev:<7}  {:<19}  {:<path_w$}  {}",
                f.check.as_str(),
                f.path,
                f.message
            );
            if let Some(reason) = &f.allowed {
                let _ = write!(out, " [allowed: {reason}]");
            }
            let _ = writeln!(out);
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{}: {} errors, {} warnings, {} allowed",
        if s.passed { "PASSED" } else { "FAILED" },
        s.errors,
        s.warnings,
        s.allowed
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_match_serde() {
        for c in Check::ALL {
            let json = serde_json::to_string(&c).expect("json");
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
    }

    #[test]
    fn bytes_are_human() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
