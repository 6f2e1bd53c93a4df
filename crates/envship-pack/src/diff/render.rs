//! The diff's readable forms: the table `envship diff` prints and the Markdown section for a
//! release body.

use std::fmt::Write as _;

use super::{AuditFinding, FileChanges, Package, PackageChange, PackageChanges, ReleaseDiff};

/// `1.2 MiB`-style sizes.
pub fn human_bytes(n: u64) -> String {
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

pub(super) fn signed_bytes(old: u64, new: u64) -> String {
    if new >= old {
        format!("+{}", human_bytes(new - old))
    } else {
        format!("-{}", human_bytes(old - new))
    }
}

fn pkg_label(p: &Package) -> String {
    match &p.build {
        Some(b) => format!("{} {} ({b})", p.name, p.version),
        None => format!("{} {}", p.name, p.version),
    }
}

fn change_label(c: &PackageChange) -> (String, String) {
    let side = |v: &str, b: &Option<String>| match b {
        Some(b) => format!("{v} ({b})"),
        None => v.to_string(),
    };
    (
        side(&c.old_version, &c.old_build),
        side(&c.new_version, &c.new_build),
    )
}

/// The audit summary's counts as one phrase (`2 errors, 1 warning`), `not audited` without one.
fn audit_phrase(v: &Option<serde_json::Value>) -> String {
    let Some(v) = v else {
        return "not audited".into();
    };
    let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    let count = |k: &str, one: &str| {
        let c = n(k);
        format!("{c} {one}{}", if c == 1 { "" } else { "s" })
    };
    format!(
        "{}, {}, {} allowed",
        count("errors", "error"),
        count("warnings", "warning"),
        n("allowed")
    )
}

fn finding_label(f: &AuditFinding) -> String {
    format!("{} {} {}: {}", f.severity, f.check, f.path, f.message)
}

/// Rows of `(marker, what, old, new)` for one package kind.
fn package_rows(c: &PackageChanges) -> Vec<(&'static str, String, String, String)> {
    let mut rows = Vec::new();
    for p in &c.added {
        rows.push(("+", p.name.clone(), String::new(), pkg_label(p)));
    }
    for p in &c.removed {
        rows.push(("-", p.name.clone(), pkg_label(p), String::new()));
    }
    for ch in &c.changed {
        let (o, n) = change_label(ch);
        rows.push(("~", ch.name.clone(), o, n));
    }
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    rows
}

fn files_sentence(d: &ReleaseDiff) -> String {
    let mut s = format!(
        "{} -> {} files, {} -> {} ({})",
        d.old.files,
        d.new.files,
        human_bytes(d.old.bytes),
        human_bytes(d.new.bytes),
        signed_bytes(d.old.bytes, d.new.bytes)
    );
    if let Some(f) = &d.files {
        let _ = write!(s, "; {}", file_changes_sentence(f));
    }
    s
}

/// `3 added (1.2 KiB), 1 removed (10 B), 2 modified (4.0 MiB)`: the paths two trees differ in.
pub fn file_changes_sentence(f: &FileChanges) -> String {
    format!(
        "{} added ({}), {} removed ({}), {} modified ({})",
        f.added,
        human_bytes(f.bytes_added),
        f.removed,
        human_bytes(f.bytes_removed),
        f.modified,
        human_bytes(f.bytes_modified)
    )
}

fn audit_lines(d: &ReleaseDiff) -> Vec<String> {
    let mut out = vec![format!(
        "{} -> {}",
        audit_phrase(&d.audit.old),
        audit_phrase(&d.audit.new)
    )];
    if let (Some(a), Some(g)) = (&d.audit.appeared, &d.audit.gone) {
        out.extend(a.iter().map(|f| format!("+ {}", finding_label(f))));
        out.extend(g.iter().map(|f| format!("- {}", finding_label(f))));
    }
    out
}

/// The readable table.
pub fn render_table(d: &ReleaseDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "diff {} -> {}", d.old.label(), d.new.label());
    for (title, c) in [("conda packages", &d.conda), ("pip distributions", &d.pip)] {
        let rows = package_rows(c);
        let _ = writeln!(
            out,
            "\n{title}: {} added, {} removed, {} changed",
            c.added.len(),
            c.removed.len(),
            c.changed.len()
        );
        let w = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
        let ow = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
        for (m, name, o, n) in rows {
            let line = format!("  {m} {name:<w$}  {o:<ow$}  {n}");
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    let _ = writeln!(out, "\nfiles: {}", files_sentence(d));
    let _ = writeln!(out, "\naudit:");
    for l in audit_lines(d) {
        let _ = writeln!(out, "  {l}");
    }
    out
}

/// A Markdown section for a release body.
pub fn render_markdown(d: &ReleaseDiff) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "### Changes since {}\n",
        d.old.version.as_deref().unwrap_or(&d.old.label())
    );
    for (title, c) in [("Conda packages", &d.conda), ("pip distributions", &d.pip)] {
        if c.is_empty() {
            let _ = writeln!(out, "**{title}**: no change\n");
            continue;
        }
        let _ = writeln!(
            out,
            "**{title}**\n\n| | package | old | new |\n|---|---|---|---|"
        );
        for (m, name, o, n) in package_rows(c) {
            let _ = writeln!(out, "| {m} | `{name}` | {o} | {n} |");
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "**Files**: {}\n", files_sentence(d));
    let lines = audit_lines(d);
    let _ = writeln!(out, "**Audit**: {}", lines[0]);
    for l in &lines[1..] {
        let _ = writeln!(out, "- `{l}`");
    }
    out
}
