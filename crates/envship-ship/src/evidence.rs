//! The evidence page ship writes beside every archive it tested: envship-evidence renders it
//! from what the run produced (the report's gates, the audit report, the test log, the
//! manifest and the package sizes in the build prefix).

use std::path::{Path, PathBuf};

use envship_evidence::{BuildInfo, Evidence};
use envship_pack::{
    diff::{Side, SideKind},
    Manifest, Sidecar,
};

use crate::{report::ShipReport, ShipError};

/// Write `STEM.html` beside `archive` and name it in `manifest` (the caller writes the
/// manifest); returns its path.
pub fn write_page(
    report: &ShipReport,
    prefix: &Path,
    project_dir: &Path,
    archive: &Path,
    manifest: &mut Manifest,
) -> Result<PathBuf, ShipError> {
    let page = Sidecar::Evidence.path_for(archive);
    manifest.evidence = page.file_name().map(|n| n.to_string_lossy().into_owned());
    let report_json = serde_json::to_value(report).unwrap_or_default();
    // The page shows what exists; an unreadable input is a line on it, not a failed ship.
    let audit: Option<serde_json::Value> = report
        .audit_report
        .as_deref()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok());
    let log = report
        .test_log
        .as_deref()
        .and_then(|p| std::fs::read(p).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let mut e = Evidence::new(manifest);
    e.audit_report = audit.as_ref();
    e.test_log = log.as_deref();
    e.test_passed = Some(report.passed);
    e.gates = envship_evidence::gates_from_ship_json(&report_json);
    e.build = BuildInfo {
        commit: git_commit(project_dir),
        time: Some(
            jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        ),
    };
    e.package_sizes = envship_evidence::package_sizes(prefix, manifest);
    let diff = previous_release(archive, manifest).and_then(|old| {
        let audit = report.audit_report.as_deref();
        let new = Side::from_manifest(SideKind::Archive, archive, manifest, audit).ok()?;
        Some(envship_pack::diff::diff(&old, &new))
    });
    e.diff = diff.as_ref();
    envship_evidence::write(&page, &e)?;
    Ok(page)
}

/// The previous release of the same environment and target beside `archive`: the newest other
/// `NAME-VERSION-TARGET-SUBDIR.manifest.json` there (by mtime), read with its audit report.
/// What ship knows of the past is its output directory; a fresh CI runner has none, and the
/// release notes publish writes carry the diff against the previous GitHub release instead.
fn previous_release(archive: &Path, manifest: &Manifest) -> Option<Side> {
    let dir = archive.parent()?;
    let own = Sidecar::Manifest.path_for(archive);
    let subdir = format!("{}-{}", manifest.target.name, manifest.target.subdir);
    let suffix = Sidecar::Manifest.suffix();
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(suffix) else {
            continue;
        };
        if path == own || !crate::project::is_release_stem(stem, &manifest.name, &subdir) {
            continue;
        }
        let mtime = entry.metadata().and_then(|m| m.modified()).ok()?;
        if best.as_ref().is_none_or(|(t, _)| mtime > *t) {
            best = Some((mtime, path));
        }
    }
    // An old manifest that cannot be read leaves the page without a diff, not the ship failed.
    Side::open(&best?.1).ok()
}

/// `git rev-parse HEAD` of `dir`, when it is in a repository.
fn git_commit(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}
