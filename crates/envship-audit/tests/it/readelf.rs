//! Cross-check of the ELF reader against binutils' readelf.
use envship_test_support::Deadline;

use std::{collections::BTreeSet, path::Path, process::Command};

use envship_audit::{AuditReport, ElfInfo};

/// (library, version, weak flag) from `readelf -V --wide`, plus the defined version names.
pub fn readelf_versions(path: &Path) -> (BTreeSet<(String, String, bool)>, BTreeSet<String>) {
    let out = Command::new("readelf")
        .args(["-V", "--wide"])
        .arg(path)
        .output_in_time()
        .unwrap();
    assert!(out.status.success(), "readelf {}", path.display());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut needs = BTreeSet::new();
    let mut defs = BTreeSet::new();
    let mut section = "";
    let mut file = String::new();
    for line in text.lines() {
        if line.starts_with("Version needs section") {
            section = "r";
        } else if line.starts_with("Version definition section") {
            section = "d";
        } else if line.starts_with("Version symbols section") {
            section = "s";
        }
        let t = line.trim();
        match section {
            "r" => {
                if let Some(pos) = t.find("File: ") {
                    file = t[pos + 6..].split_whitespace().next().unwrap().to_string();
                } else if let Some(pos) = t.find("Name: ") {
                    let rest = &t[pos + 6..];
                    let name = rest.split_whitespace().next().unwrap().to_string();
                    let flags = rest.split("Flags: ").nth(1).unwrap_or("");
                    needs.insert((file.clone(), name, flags.contains("WEAK")));
                }
            }
            "d" => {
                // "0x001c: Rev: 1  Flags: none  Index: 2  Cnt: 1  Name: GLIBCXX_3.4"
                if t.contains("Flags: BASE") {
                    continue;
                }
                if let Some(pos) = t.find("Name: ") {
                    defs.insert(t[pos + 6..].split_whitespace().next().unwrap().to_string());
                }
            }
            _ => {}
        }
    }
    (needs, defs)
}

/// `name@VERSION` of undefined dynamic symbols, from `readelf --dyn-syms --wide`.
pub fn readelf_undefined(path: &Path) -> BTreeSet<String> {
    let out = Command::new("readelf")
        .args(["--dyn-syms", "--wide"])
        .arg(path)
        .output_in_time()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.contains(" UND "))
        .filter_map(|l| l.split_whitespace().nth(7))
        .filter(|s| s.contains('@'))
        .map(|s| s.replace("@@", "@"))
        .collect()
}

/// Compare one file's parsed facts with readelf's.
pub fn cross_check(path: &Path, info: &ElfInfo) {
    let (needs, defs) = readelf_versions(path);
    let ours: BTreeSet<(String, String, bool)> = info
        .version_needs
        .iter()
        .map(|n| (n.library.clone(), n.name.clone(), n.flag_weak))
        .collect();
    assert_eq!(ours, needs, "version needs of {}", path.display());
    let our_defs: BTreeSet<String> = info.version_defs.iter().cloned().collect();
    assert_eq!(our_defs, defs, "version definitions of {}", path.display());
    let undefined = readelf_undefined(path);
    let our_syms: BTreeSet<String> = info
        .version_needs
        .iter()
        .flat_map(|n| n.symbols.iter().cloned())
        .collect();
    assert_eq!(
        our_syms,
        undefined,
        "versioned undefined symbols of {}",
        path.display()
    );
}

/// Cross-check every ELF file of an inventory report and every version a finding names.
pub fn cross_check_report(root: &Path, report: &AuditReport) -> usize {
    if !crate::support::have("readelf") {
        return 0;
    }
    let files = report.files.as_ref().expect("inventory");
    for f in files {
        cross_check(&root.join(&f.path), &f.elf);
    }
    for finding in &report.findings {
        let Some(needed) = finding.needed.as_deref() else {
            continue;
        };
        if !matches!(
            finding.check,
            envship_audit::Check::Glibc | envship_audit::Check::CxxRuntime
        ) {
            continue;
        }
        let (needs, _) = readelf_versions(&root.join(&finding.path));
        assert!(
            needs.iter().any(|(_, n, _)| n == needed),
            "{} reported for {} but readelf does not list it",
            needed,
            finding.path
        );
        let undefined = readelf_undefined(&root.join(&finding.path));
        for s in &finding.symbols {
            assert!(
                undefined.contains(s),
                "{s} not in readelf's symbols of {}",
                finding.path
            );
        }
    }
    files.len()
}
