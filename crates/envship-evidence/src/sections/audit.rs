//! The audit: its verdict, the findings (errors first), then the highest `GLIBC_`/`GLIBCXX_`
//! version each ELF file needs against the target's limit.

use std::fmt::Write as _;

use serde_json::Value;

use crate::{
    audit::{self, FileVersions, FindingRow, VersionsSource},
    html::{dotted, escape, td, td_code},
    Evidence,
};

/// At most this many findings are listed (errors come first, so they are never the ones cut).
pub const MAX_FINDINGS: usize = 500;

fn summary_line(summary: &Value) -> String {
    let n = |k: &str| summary.get(k).and_then(Value::as_u64).unwrap_or(0);
    let (class, word) = match summary.get("passed").and_then(Value::as_bool) {
        Some(true) => ("pass", "passed"),
        Some(false) => ("fail", "failed"),
        None => ("skipped", "unknown"),
    };
    format!(
        "<p id=\"audit-result\">The audit <span class=\"verdict {class}\">{word}</span>: {} errors, {} warnings, {} allowed; {} files scanned ({} ELF) from {} conda packages.</p>\n",
        n("errors"),
        n("warnings"),
        n("allowed"),
        n("files_scanned"),
        n("elf_files"),
        n("packages")
    )
}

fn findings_table(rows: &[FindingRow]) -> String {
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str("<p class=\"note\">No findings.</p>\n");
        return out;
    }
    out.push_str("<table class=\"findings\">\n<thead><tr><th>Status</th><th>Check</th><th>Package</th><th>File</th><th>Message</th></tr></thead>\n<tbody>\n");
    for r in rows.iter().take(MAX_FINDINGS) {
        let message = match &r.allowed {
            Some(reason) => format!("{} [allowed: {reason}]", r.message),
            None => r.message.clone(),
        };
        let _ = writeln!(
            out,
            "<tr data-status=\"{s}\"><td class=\"{s}\">{s}</td>{}{}{}{}</tr>",
            td(&r.check),
            td(&r.package),
            td_code(&r.path),
            td(&message),
            s = r.status,
        );
    }
    out.push_str("</tbody>\n</table>\n");
    if rows.len() > MAX_FINDINGS {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} more findings are in the audit report.</p>",
            rows.len() - MAX_FINDINGS
        );
    }
    out
}

fn versions_table(
    files: &[(String, FileVersions)],
    limit: Option<&str>,
    cxx_bad: &std::collections::BTreeSet<String>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<table class=\"versions\">\n<thead><tr><th>File</th><th>Package</th><th>Highest GLIBC</th><th>Target glibc {}</th><th>Highest GLIBCXX</th></tr></thead>\n<tbody>",
        escape(limit.unwrap_or("(unknown)"))
    );
    for (path, f) in files {
        let over = match (f.glibc.as_deref(), limit) {
            (Some(v), Some(l)) => audit::above(v, l),
            _ => None,
        };
        let verdict = match over {
            Some(true) => "<td class=\"over\">over the limit</td>",
            Some(false) => "<td class=\"pass\">within</td>",
            None => "<td class=\"note\">—</td>",
        };
        let cxx = match (&f.glibcxx, cxx_bad.contains(path)) {
            (Some(v), true) => format!("<td class=\"over\">{} (not provided)</td>", escape(v)),
            (Some(v), false) => td(v),
            (None, _) => "<td class=\"note\">—</td>".to_string(),
        };
        let _ = writeln!(
            out,
            "<tr>{}{}{}{verdict}{cxx}</tr>",
            td_code(path),
            td(&f.package),
            td(f.glibc.as_deref().unwrap_or("—")),
        );
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// The audit section.
pub fn render(e: &Evidence<'_>) -> String {
    let mut out = String::from("<h2 id=\"audit\">Audit</h2>\n");
    let summary = e
        .audit_report
        .and_then(|r| r.get("summary"))
        .or(e.manifest.audit.as_ref());
    match summary {
        Some(s) => out.push_str(&summary_line(s)),
        None => out
            .push_str("<p class=\"note\">The audit did not run, or its result is not known.</p>\n"),
    }
    let Some(report) = e.audit_report else {
        out.push_str("<p class=\"note\">No audit report was given: findings and symbol versions are not shown.</p>\n");
        return out;
    };
    let rows = audit::findings(report);
    out.push_str("<h3>Findings</h3>\n");
    out.push_str(&findings_table(&rows));

    let limit = report
        .pointer("/target/glibc")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| e.manifest.target.glibc.clone());
    let (files, source) = audit::file_versions(report);
    let mut files: Vec<(String, FileVersions)> = files.into_iter().collect();
    // The highest GLIBC need first (so files over the limit lead), then by path.
    let key = |f: &FileVersions| f.glibc.as_deref().and_then(dotted).unwrap_or_default();
    files.sort_by(|a, b| key(&b.1).cmp(&key(&a.1)).then_with(|| a.0.cmp(&b.0)));
    out.push_str("<h3>Symbol versions per file</h3>\n");
    match source {
        VersionsSource::Inventory => out.push_str("<p class=\"note\">Every ELF file's highest GLIBC and GLIBCXX version need, from the audit's inventory.</p>\n"),
        VersionsSource::Findings => out.push_str("<p class=\"note\">The audit report has no inventory (<code>envship audit --inventory</code>): only files whose needs broke the target's limit are listed.</p>\n"),
    }
    if files.is_empty() {
        out.push_str("<p class=\"note\">No file needs a GLIBC or GLIBCXX version.</p>\n");
    } else {
        out.push_str(&versions_table(
            &files,
            limit.as_deref(),
            &audit::cxx_failures(&rows),
        ));
    }
    out
}
