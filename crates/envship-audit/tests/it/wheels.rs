//! The fixture manylinux wheels: exact versions from GLIBC.tsv, and the verdicts per target.

use std::collections::BTreeSet;

use envship_audit::{AuditOptions, Check, Severity, Weakness};

use crate::{
    readelf::cross_check_report,
    support::{audit_for, errors, fixtures, of_check, rel_message, run, target, unzip, wheel},
};

/// One row of GLIBC.tsv.
struct Row {
    wheel: String,
    so: String,
    size: Option<u64>,
    max: String,
    all: Option<BTreeSet<String>>,
    syms_at_max: Option<BTreeSet<String>>,
}

fn bracketed(field: &str, key: &str) -> Option<BTreeSet<String>> {
    field.strip_prefix(key).map(|v| {
        v.trim_matches(|c| c == '[' || c == ']')
            .split_whitespace()
            .map(str::to_string)
            .collect()
    })
}

fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(fixtures().join("wheels/GLIBC.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let mut row = Row {
                wheel: cols[0].to_string(),
                so: cols[1].trim_start_matches("./").to_string(),
                size: None,
                max: String::new(),
                all: None,
                syms_at_max: None,
            };
            for c in &cols[2..] {
                if let Ok(n) = c.parse() {
                    row.size = Some(n);
                } else if let Some(m) = c.strip_prefix("max=") {
                    row.max = m.to_string();
                } else if let Some(a) = bracketed(c, "all=") {
                    row.all = Some(a);
                } else if let Some(s) = bracketed(c, "syms@max=") {
                    row.syms_at_max = Some(s);
                }
            }
            row
        })
        .collect()
}

#[test]
fn every_wheel_gives_the_versions_in_glibc_tsv_and_readelf_agrees() {
    let rows = rows();
    assert!(rows.len() >= 6, "GLIBC.tsv has {} rows", rows.len());
    for row in rows {
        let dir = tempfile::tempdir().unwrap();
        unzip(&fixtures().join("wheels").join(&row.wheel), dir.path());
        let report = audit_for(dir.path(), "rhel9");
        let files = report.files.as_ref().unwrap();
        let f = files
            .iter()
            .find(|f| f.path == row.so)
            .unwrap_or_else(|| panic!("{} not in the inventory of {}", row.so, row.wheel));
        if let Some(size) = row.size {
            assert_eq!(
                std::fs::metadata(dir.path().join(&row.so)).unwrap().len(),
                size
            );
        }
        let glibc: Vec<_> = f
            .elf
            .version_needs
            .iter()
            .filter_map(|n| {
                n.split()
                    .filter(|(ns, _)| *ns == "GLIBC")
                    .map(|(_, v)| (v, n))
            })
            .collect();
        let names: BTreeSet<String> = glibc.iter().map(|(_, n)| n.name.clone()).collect();
        if let Some(all) = &row.all {
            assert_eq!(&names, all, "{}: all GLIBC versions", row.so);
        }
        let (max_v, _) = glibc.iter().max_by(|a, b| a.0.cmp(&b.0)).unwrap();
        assert_eq!(format!("GLIBC_{max_v}"), row.max, "{}: max", row.so);
        if let Some(expected) = &row.syms_at_max {
            let at_max: BTreeSet<String> = glibc
                .iter()
                .filter(|(v, _)| v == max_v)
                .flat_map(|(_, n)| n.symbols.iter())
                .map(|s| s.split('@').next().unwrap().to_string())
                .collect();
            assert_eq!(&at_max, expected, "{}: symbols at max", row.so);
        }
        cross_check_report(dir.path(), &report);
    }
}

fn unpacked(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    unzip(&wheel(prefix), dir.path());
    dir
}

#[test]
fn markupsafe_2_0_1_passes_lcls_rhel6() {
    let dir = unpacked("MarkupSafe-2.0.1-");
    let report = audit_for(dir.path(), "lcls-rhel6");
    assert!(report.passed(), "{}", rel_message(&report));
    assert_eq!(report.summary.elf_files, 1);
}

#[test]
fn markupsafe_2_1_5_fails_lcls_rhel6_on_memcpy_and_passes_rhel7() {
    let dir = unpacked("MarkupSafe-2.1.5-");
    let report = audit_for(dir.path(), "lcls-rhel6");
    let errs = errors(&report);
    assert_eq!(errs.len(), 1, "{}", rel_message(&report));
    let e = errs[0];
    assert_eq!(e.check, Check::Glibc);
    assert_eq!(
        e.path,
        "markupsafe/_speedups.cpython-311-x86_64-linux-gnu.so"
    );
    assert_eq!(e.needed.as_deref(), Some("GLIBC_2.14"));
    assert_eq!(e.available.as_deref(), Some("2.12"));
    assert_eq!(e.symbols, vec!["memcpy@GLIBC_2.14".to_string()]);
    assert!(e.message.contains("memcpy@GLIBC_2.14"), "{}", e.message);
    assert_eq!(e.package, "pip/unmanaged");
    assert!(!report.passed());

    let report = audit_for(dir.path(), "rhel7");
    assert!(report.passed(), "{}", rel_message(&report));
}

#[test]
fn bcrypt_2_34_fails_rhel8_and_passes_rhel9() {
    let dir = unpacked("bcrypt-4.3.0-cp39-abi3-manylinux_2_34");
    let report = audit_for(dir.path(), "rhel8");
    let needed: BTreeSet<_> = of_check(&report, Check::Glibc)
        .iter()
        .filter(|f| f.is_error())
        .filter_map(|f| f.needed.clone())
        .collect();
    assert_eq!(
        needed,
        ["GLIBC_2.33", "GLIBC_2.34"].map(String::from).into(),
        "{}",
        rel_message(&report)
    );
    let f = of_check(&report, Check::Glibc)
        .into_iter()
        .find(|f| f.needed.as_deref() == Some("GLIBC_2.34"))
        .unwrap();
    for s in ["dlsym@GLIBC_2.34", "pthread_key_create@GLIBC_2.34"] {
        assert!(
            f.symbols.contains(&s.to_string()) && f.message.contains(s),
            "{}",
            f.message
        );
    }
    assert!(audit_for(dir.path(), "rhel9").passed());
}

/// bcrypt's manylinux_2_28 build needs GLIBC_2.18 and GLIBC_2.28 only through weak symbols
/// (`__cxa_thread_atexit_impl`, `statx`), but the version needs are not flagged weak, so
/// ld.so refuses the file on an older glibc all the same (see compiled::weak_policy_matches_the_loader
/// for the runtime proof). The report says so, and `--strict-weak` changes nothing for them;
/// flagging the needs weak (as a linker could) turns them into warnings.
#[test]
fn bcrypt_2_28_shows_the_weak_policy() {
    let dir = unpacked("bcrypt-4.3.0-cp39-abi3-manylinux_2_28");
    let report = audit_for(dir.path(), "rhel7");
    let by_version = |r: &envship_audit::AuditReport, v: &str| {
        of_check(r, Check::Glibc)
            .into_iter()
            .find(|f| f.needed.as_deref() == Some(v))
            .cloned()
            .unwrap_or_else(|| panic!("no finding for {v}: {}", rel_message(r)))
    };
    let statx = by_version(&report, "GLIBC_2.28");
    assert_eq!(statx.weak, Some(Weakness::SymbolsOnly));
    assert_eq!(statx.severity, Severity::Error);
    assert_eq!(statx.symbols, vec!["statx@GLIBC_2.28".to_string()]);
    assert!(
        statx.message.contains("only weak symbols"),
        "{}",
        statx.message
    );
    let tls = by_version(&report, "GLIBC_2.18");
    assert_eq!(tls.weak, Some(Weakness::SymbolsOnly));
    assert_eq!(
        tls.symbols,
        vec!["__cxa_thread_atexit_impl@GLIBC_2.18".to_string()]
    );
    // GLIBC_2.14 is within rhel7's 2.17; on RHEL 6 it is an ordinary strong need (memcpy).
    assert!(of_check(&report, Check::Glibc)
        .iter()
        .all(|f| f.needed.as_deref() != Some("GLIBC_2.14")));
    let rhel6 = audit_for(dir.path(), "lcls-rhel6");
    let memcpy = by_version(&rhel6, "GLIBC_2.14");
    assert_eq!(
        (memcpy.weak, memcpy.severity),
        (Some(Weakness::None), Severity::Error)
    );
    assert_eq!(memcpy.symbols, vec!["memcpy@GLIBC_2.14".to_string()]);

    // Flag the two weak-only needs VER_FLG_WEAK in a copy: now the loader would accept the
    // file, so they become warnings, and errors again with strict_weak.
    let so = dir.path().join("bcrypt/_bcrypt.abi3.so");
    crate::compiled::flag_needs_weak(&so, &["GLIBC_2.18", "GLIBC_2.28"]);
    let report = audit_for(dir.path(), "rhel7");
    for v in ["GLIBC_2.18", "GLIBC_2.28"] {
        let f = by_version(&report, v);
        assert_eq!(f.weak, Some(Weakness::Flagged), "{v}");
        assert_eq!(f.severity, Severity::Warning, "{v}");
    }
    let mut opts = AuditOptions::new(target("rhel7"));
    opts.strict_weak = true;
    let strict = run(dir.path(), &opts);
    for v in ["GLIBC_2.18", "GLIBC_2.28"] {
        assert_eq!(by_version(&strict, v).severity, Severity::Error, "{v}");
    }
    // Still readelf-consistent after patching (readelf shows Flags: WEAK).
    cross_check_report(dir.path(), &report);
}
