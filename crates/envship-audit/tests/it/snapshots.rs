//! Snapshots of the human table and the JSON report for a small real prefix: a conda package
//! (zlib) plus pip-installed wheels (MarkupSafe 2.0.1 and 2.1.5, bcrypt manylinux_2_28),
//! audited for lcls-rhel6.

use std::path::Path;

use envship_audit::{render_table, Allowlist, AuditOptions};

use crate::support::{run, target, unzip, wheel};

fn build_prefix(root: &Path) {
    crate::packages::install(
        &crate::support::fixtures().join("packages/linux-64/zlib-1.2.11-h7b6447c_3.tar.bz2"),
        root,
    );
    let sp = root.join("lib/python3.11/site-packages");
    std::fs::create_dir_all(&sp).unwrap();
    for w in ["MarkupSafe-2.1.5-", "bcrypt-4.3.0-cp39-abi3-manylinux_2_28"] {
        unzip(&wheel(w), &sp);
    }
    // A conda-owned header edited after install, and an unmanaged script: both carry the
    // build prefix without a placeholder.
    let header = root.join("include/zlib.h");
    let mut text = std::fs::read_to_string(&header).unwrap();
    text.push_str(&format!("/* configured in {} */\n", root.display()));
    std::fs::write(&header, text).unwrap();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::write(
        root.join("bin/tool"),
        format!("#!{}/bin/python3.11\nimport markupsafe\n", root.display()),
    )
    .unwrap();
    let old = root.join("lib/python3.9/site-packages");
    std::fs::create_dir_all(&old).unwrap();
    unzip(&wheel("MarkupSafe-2.0.1-"), &old);
}

#[test]
fn table_and_json_snapshots() {
    if !crate::packages::can_extract() {
        return;
    }
    let prefix = tempfile::tempdir().unwrap();
    let root = prefix.path().canonicalize().unwrap();
    build_prefix(&root);
    let mut opts = AuditOptions::new(target("lcls-rhel6"));
    opts.allowlist = Allowlist::parse(
        r#"
[[allow]]
path = "lib/python3.*/site-packages/bcrypt/*.so"
check = "glibc"
reason = "bcrypt is only imported on the rhel8 analysis nodes"
"#,
        Path::new("allow.toml"),
    )
    .unwrap();
    let report = run(&root, &opts);
    // Deterministic: a second run gives the same JSON.
    assert_eq!(report.to_json(), run(&root, &opts).to_json());

    let mut settings = insta::Settings::clone_current();
    settings.add_filter(&regex_escape(&root.display().to_string()), "[PREFIX]");
    settings.add_filter(r"envship-audit \d+\.\d+\.\d+", "envship-audit [VERSION]");
    settings.add_filter(r"\d+\.\d [KMG]iB|\d+ B\b", "[SIZE]");
    settings.add_filter(r#""bytes_scanned": \d+"#, r#""bytes_scanned": "[SIZE]""#);
    settings.bind(|| {
        insta::assert_snapshot!("table", render_table(&report));
        insta::assert_snapshot!("json", report.to_json());
    });
    assert!(!report.passed());
    assert!(report.summary.allowed >= 2);
}

pub fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
