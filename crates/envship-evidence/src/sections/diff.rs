//! What changed against the previous release ([`envship_pack::diff::ReleaseDiff`]).

use std::fmt::Write as _;

use envship_pack::diff::{PackageChanges, SideSummary};

use crate::{
    html::{escape, human_bytes, td},
    Evidence,
};

fn label(s: &SideSummary) -> String {
    match (&s.name, &s.version) {
        (Some(n), Some(v)) => format!("{n} {v}"),
        _ => s.path.display().to_string(),
    }
}

fn with_build(version: &str, build: Option<&String>) -> String {
    match build {
        Some(b) => format!("{version} ({b})"),
        None => version.to_string(),
    }
}

fn package_rows(out: &mut String, kind: &str, c: &PackageChanges) {
    let mut row = |change: &str, name: &str, old: &str, new: &str| {
        let _ = writeln!(
            out,
            "<tr data-change=\"{change}\"><td class=\"{change}\">{change}</td>{}{}{}{}</tr>",
            td(kind),
            td(name),
            td(old),
            td(new)
        );
    };
    for p in &c.added {
        row(
            "added",
            &p.name,
            "—",
            &with_build(&p.version, p.build.as_ref()),
        );
    }
    for p in &c.removed {
        row(
            "removed",
            &p.name,
            &with_build(&p.version, p.build.as_ref()),
            "—",
        );
    }
    for p in &c.changed {
        row(
            "changed",
            &p.name,
            &with_build(&p.old_version, p.old_build.as_ref()),
            &with_build(&p.new_version, p.new_build.as_ref()),
        );
    }
}

fn errors_of(summary: Option<&serde_json::Value>) -> Option<u64> {
    summary?.get("errors")?.as_u64()
}

/// The section, or a line saying no previous release is known.
pub fn render(e: &Evidence<'_>) -> String {
    let mut out = String::from("<h2 id=\"changes\">Changes against the previous release</h2>\n");
    let Some(d) = e.diff else {
        out.push_str("<p class=\"note\" id=\"no-previous\">No previous release is known: nothing to compare with.</p>\n");
        return out;
    };
    let _ = writeln!(
        out,
        "<p>From <strong>{}</strong> to <strong>{}</strong>: files {} → {}, bytes {} → {}.</p>",
        escape(&label(&d.old)),
        escape(&label(&d.new)),
        d.old.files,
        d.new.files,
        human_bytes(d.old.bytes),
        human_bytes(d.new.bytes)
    );
    if d.conda.is_empty() && d.pip.is_empty() {
        out.push_str("<p>No package was added, removed or changed.</p>\n");
    } else {
        out.push_str("<table class=\"changes\">\n<thead><tr><th>Change</th><th>Kind</th><th>Package</th><th>Before</th><th>After</th></tr></thead>\n<tbody>\n");
        package_rows(&mut out, "conda", &d.conda);
        package_rows(&mut out, "pip", &d.pip);
        out.push_str("</tbody>\n</table>\n");
    }
    if let Some(f) = &d.files {
        let _ = writeln!(
            out,
            "<p>Files: {}.</p>",
            escape(&envship_pack::diff::file_changes_sentence(f))
        );
    }
    let a = &d.audit;
    let errs = |v: Option<u64>| v.map_or_else(|| "unknown".to_string(), |n| n.to_string());
    let _ = write!(
        out,
        "<p>Audit errors: {} before, {} now",
        errs(errors_of(a.old.as_ref())),
        errs(errors_of(a.new.as_ref()))
    );
    match (&a.appeared, &a.gone) {
        (Some(new), Some(gone)) => {
            let _ = writeln!(
                out,
                "; {} findings appeared, {} went away.</p>",
                new.len(),
                gone.len()
            );
            if !new.is_empty() {
                out.push_str("<ul class=\"appeared\">\n");
                for f in new {
                    let _ = writeln!(
                        out,
                        "<li><span class=\"{sev}\">{sev}</span> {} <code>{}</code>: {}</li>",
                        escape(&f.check),
                        escape(&f.path),
                        escape(&f.message),
                        sev = if f.severity == "error" {
                            "error"
                        } else {
                            "warning"
                        },
                    );
                }
                out.push_str("</ul>\n");
            }
        }
        _ => out.push_str(" (the findings of both reports were not compared).</p>\n"),
    }
    out
}
