//! What the archive is, and the one-line verdict at the top.

use std::fmt::Write as _;

use crate::{
    html::{escape, human_bytes},
    Evidence, Verdict,
};

/// The overall verdict: (class, sentence).
fn banner(e: &Evidence<'_>) -> (&'static str, String) {
    let failed: Vec<&str> = e
        .gates
        .iter()
        .filter(|g| g.verdict == Verdict::Fail)
        .map(|g| g.name.as_str())
        .collect();
    if !failed.is_empty() {
        return (
            "fail",
            format!(
                "Not fit for production: failed gate(s): {}",
                failed.join(", ")
            ),
        );
    }
    let skipped: Vec<&str> = e
        .gates
        .iter()
        .filter(|g| g.verdict == Verdict::Skipped)
        .map(|g| g.name.as_str())
        .collect();
    if !skipped.is_empty() {
        return (
            "skipped",
            format!("Incomplete: gate(s) not run: {}", skipped.join(", ")),
        );
    }
    if !e.gates.is_empty() {
        return ("pass", "Every gate passed".to_string());
    }
    let audit = e
        .manifest
        .audit
        .as_ref()
        .and_then(|a| a.get("passed"))
        .and_then(serde_json::Value::as_bool);
    match (audit, super::test_passed(e)) {
        (Some(true), Some(true)) => ("pass", "Audit and test passed".to_string()),
        (Some(false), _) | (_, Some(false)) => (
            "fail",
            "Not fit for production: the audit or the test failed".to_string(),
        ),
        _ => (
            "skipped",
            "No gate results are known for this archive".to_string(),
        ),
    }
}

fn row(out: &mut String, label: &str, value: Option<&str>) {
    let v = match value {
        Some(v) if !v.is_empty() => format!("<code>{}</code>", escape(v)),
        _ => "<span class=\"note\">unknown</span>".to_string(),
    };
    let _ = writeln!(out, "<tr><th>{}</th><td>{v}</td></tr>", escape(label));
}

/// Heading, verdict banner and the facts table.
pub fn render(e: &Evidence<'_>) -> String {
    let m = e.manifest;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<h1>{} {}</h1>\n<p class=\"note\">Evidence for the archive <code>{}</code></p>",
        escape(&m.name),
        escape(&m.version),
        escape(&m.archive)
    );
    let (class, sentence) = banner(e);
    let _ = writeln!(
        out,
        "<div class=\"banner {class}\" id=\"verdict\">{}</div>",
        escape(&sentence)
    );
    let kernel = e.kernel.clone().or_else(|| {
        e.audit_report
            .and_then(|r| r.pointer("/target/linux"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    });
    let glibc = m.target.glibc.clone().or_else(|| {
        e.audit_report
            .and_then(|r| r.pointer("/target/glibc"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    });
    out.push_str("<h2 id=\"what\">What it is</h2>\n<table class=\"facts\">\n");
    row(&mut out, "Name", Some(&m.name));
    row(&mut out, "Version", Some(&m.version));
    row(&mut out, "Target", Some(&m.target.name));
    row(&mut out, "Target glibc", glibc.as_deref());
    row(&mut out, "Target kernel", kernel.as_deref());
    row(&mut out, "Platform", Some(&m.target.subdir));
    row(&mut out, "Build commit", e.build.commit.as_deref());
    row(&mut out, "Build time", e.build.time.as_deref());
    row(
        &mut out,
        "Archive",
        Some(&format!("{} ({})", m.archive, m.format)),
    );
    row(&mut out, "sha256", m.sha256.as_deref());
    let contents = format!(
        "{} files, {}; {} conda packages, {} pip",
        m.file_count,
        human_bytes(m.bytes),
        m.conda_packages.len(),
        m.pip_packages.len()
    );
    row(&mut out, "Contents", Some(&contents));
    row(&mut out, "Prefix in the files", Some(&m.recorded_prefix));
    row(
        &mut out,
        "Packed by",
        Some(&format!("envship {}", m.envship_version)),
    );
    out.push_str("</table>\n");
    out
}
