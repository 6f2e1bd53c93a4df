//! The audit report read as its documented JSON (`envship_audit::report`, schema 1): findings
//! in the order the page shows them (errors first), and the highest `GLIBC_`/`GLIBCXX_` version
//! each ELF file needs.
//!
//! The per-file versions come from the report's `files` inventory (written with
//! `envship audit --inventory`), every version need of every ELF file. A report without it
//! (what `envship ship` writes) still names the needs that broke the limit, in the `needed`
//! field of its `glibc` and `cxx-runtime` findings: then only those files are listed.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::html::dotted;

/// One finding as the page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FindingRow {
    /// `error`, `warning` or `allowed` (an allowlist rule accepted it).
    pub status: &'static str,
    /// The check.
    pub check: String,
    /// The owning package.
    pub package: String,
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// The allowlist's reason, for allowed findings.
    pub allowed: Option<String>,
}

impl FindingRow {
    fn rank(&self) -> u8 {
        match self.status {
            "error" => 0,
            "warning" => 1,
            _ => 2,
        }
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The report's findings: errors, then warnings, then allowed ones; within each by package,
/// path, check and message.
pub fn findings(report: &Value) -> Vec<FindingRow> {
    let list = report.get("findings").and_then(Value::as_array);
    let mut rows: Vec<FindingRow> = list
        .into_iter()
        .flatten()
        .map(|f| {
            let allowed = f.get("allowed").and_then(Value::as_str).map(str::to_string);
            let status = match (&allowed, f.get("severity").and_then(Value::as_str)) {
                (Some(_), _) => "allowed",
                (None, Some("error")) => "error",
                (None, _) => "warning",
            };
            FindingRow {
                status,
                check: text(f, "check"),
                package: text(f, "package"),
                path: text(f, "path"),
                message: text(f, "message"),
                allowed,
            }
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.rank(), &a.package, &a.path, &a.check, &a.message).cmp(&(
            b.rank(),
            &b.package,
            &b.path,
            &b.check,
            &b.message,
        ))
    });
    rows
}

/// The highest symbol versions one ELF file needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileVersions {
    /// The owning package.
    pub package: String,
    /// The highest `GLIBC_x.y` (`2.14`), if any.
    pub glibc: Option<String>,
    /// The highest `GLIBCXX_x.y.z`, if any.
    pub glibcxx: Option<String>,
}

/// Where [`file_versions`] found its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionsSource {
    /// The report's inventory: every ELF file.
    Inventory,
    /// The report's glibc and C++-runtime findings: only files over the limit.
    Findings,
}

/// Keep the higher of `slot` and `candidate` (dotted comparison).
fn keep_highest(slot: &mut Option<String>, candidate: &str) {
    let Some(new) = dotted(candidate) else { return };
    let higher = match slot.as_deref().and_then(dotted) {
        Some(old) => new > old,
        None => true,
    };
    if higher {
        *slot = Some(candidate.to_string());
    }
}

/// Record the version need `name` (`GLIBC_2.14`, `GLIBCXX_3.4.21`) for `entry`.
fn note_need(entry: &mut FileVersions, name: &str) {
    if let Some(v) = name.strip_prefix("GLIBCXX_") {
        keep_highest(&mut entry.glibcxx, v);
    } else if let Some(v) = name.strip_prefix("GLIBC_") {
        keep_highest(&mut entry.glibc, v);
    }
}

/// The highest `GLIBC_`/`GLIBCXX_` versions per file path (sorted by path), and where they came
/// from; files needing neither are left out.
pub fn file_versions(report: &Value) -> (BTreeMap<String, FileVersions>, VersionsSource) {
    let mut out: BTreeMap<String, FileVersions> = BTreeMap::new();
    if let Some(files) = report.get("files").and_then(Value::as_array) {
        for f in files {
            let needs = f.pointer("/elf/version_needs").and_then(Value::as_array);
            let mut entry = FileVersions {
                package: text(f, "package"),
                ..FileVersions::default()
            };
            for need in needs.into_iter().flatten() {
                note_need(&mut entry, &text(need, "name"));
            }
            if entry.glibc.is_some() || entry.glibcxx.is_some() {
                out.insert(text(f, "path"), entry);
            }
        }
        return (out, VersionsSource::Inventory);
    }
    let list = report.get("findings").and_then(Value::as_array);
    for f in list.into_iter().flatten() {
        let check = text(f, "check");
        if check != "glibc" && check != "cxx-runtime" {
            continue;
        }
        let entry = out.entry(text(f, "path")).or_insert_with(|| FileVersions {
            package: text(f, "package"),
            ..FileVersions::default()
        });
        note_need(entry, &text(f, "needed"));
    }
    out.retain(|_, e| e.glibc.is_some() || e.glibcxx.is_some());
    (out, VersionsSource::Findings)
}

/// Whether `version` is above `limit` (both dotted; unknown when either does not parse).
pub fn above(version: &str, limit: &str) -> Option<bool> {
    Some(dotted(version)? > dotted(limit)?)
}

/// The paths of files with an open (not allowed) `cxx-runtime` error: the C++ runtime the
/// loader would use lacks a version they need.
pub fn cxx_failures(rows: &[FindingRow]) -> std::collections::BTreeSet<String> {
    rows.iter()
        .filter(|r| r.status == "error" && r.check == "cxx-runtime")
        .map(|r| r.path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn finding(sev: &str, check: &str, pkg: &str, path: &str) -> Value {
        json!({"severity": sev, "check": check, "package": pkg, "path": path, "message": "m"})
    }

    #[test]
    fn errors_come_first_then_warnings_then_allowed() {
        let mut allowed = finding("error", "glibc", "a-1-0", "lib/a.so");
        allowed["allowed"] = json!("known, unused on the target");
        let report = json!({"findings": [
            finding("warning", "shebang", "a-1-0", "bin/a"),
            allowed,
            finding("error", "linkage", "z-1-0", "lib/z.so"),
            finding("warning", "unregistered-prefix", "pip/unmanaged", "x.txt"),
            finding("error", "glibc", "b-1-0", "lib/b.so"),
        ]});
        let rows = findings(&report);
        let order: Vec<(&str, &str)> = rows.iter().map(|r| (r.status, r.path.as_str())).collect();
        assert_eq!(
            order,
            [
                ("error", "lib/b.so"),
                ("error", "lib/z.so"),
                ("warning", "bin/a"),
                ("warning", "x.txt"),
                ("allowed", "lib/a.so"),
            ]
        );
        assert_eq!(
            rows[4].allowed.as_deref(),
            Some("known, unused on the target")
        );
    }

    #[test]
    fn the_inventory_gives_the_highest_version_of_every_file() {
        let report = json!({"files": [
            {"path": "lib/libz.so.1", "package": "zlib-1.2.11-0", "elf": {"version_needs": [
                {"library": "libc.so.6", "name": "GLIBC_2.2.5"},
                {"library": "libc.so.6", "name": "GLIBC_2.14"},
                {"library": "libc.so.6", "name": "GLIBC_2.4"},
                {"library": "libc.so.6", "name": "GLIBC_PRIVATE"},
            ]}},
            {"path": "lib/libx.so", "package": "x-1-0", "elf": {"version_needs": [
                {"library": "libstdc++.so.6", "name": "GLIBCXX_3.4.9"},
                {"library": "libstdc++.so.6", "name": "GLIBCXX_3.4.21"},
                {"library": "libstdc++.so.6", "name": "CXXABI_1.3.9"},
            ]}},
            {"path": "lib/static", "package": "s-1-0", "elf": {"version_needs": []}},
        ]});
        let (files, source) = file_versions(&report);
        assert_eq!(source, VersionsSource::Inventory);
        assert_eq!(files.len(), 2, "a file needing no glibc is left out");
        assert_eq!(files["lib/libz.so.1"].glibc.as_deref(), Some("2.14"));
        assert_eq!(files["lib/libz.so.1"].glibcxx, None);
        assert_eq!(files["lib/libx.so"].glibcxx.as_deref(), Some("3.4.21"));
    }

    #[test]
    fn without_inventory_the_findings_name_the_files_over_the_limit() {
        let mut a = finding("error", "glibc", "pip/unmanaged", "lib/b.so");
        a["needed"] = json!("GLIBC_2.28");
        let mut b = finding("error", "glibc", "pip/unmanaged", "lib/b.so");
        b["needed"] = json!("GLIBC_2.18");
        let mut c = finding("error", "linkage", "x-1-0", "lib/c.so");
        c["needed"] = json!("libgone.so.1");
        let (files, source) = file_versions(&json!({"findings": [a, b, c]}));
        assert_eq!(source, VersionsSource::Findings);
        assert_eq!(files.len(), 1);
        assert_eq!(files["lib/b.so"].glibc.as_deref(), Some("2.28"));
    }

    #[test]
    fn above_the_limit_is_numeric() {
        assert_eq!(above("2.14", "2.12"), Some(true));
        assert_eq!(above("2.4", "2.12"), Some(false));
        assert_eq!(above("2.12", "2.12"), Some(false));
        assert_eq!(above("x", "2.12"), None);
    }
}
