//! Real conda packages from the fixtures, installed into a prefix the way conda does it
//! (placeholders replaced, `conda-meta/*.json` written from `info/paths.json`).
use envship_test_support::Deadline;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use envship_audit::{AuditOptions, Check, Severity};
use serde_json::{json, Value};

use crate::{
    readelf::cross_check_report,
    support::{audit_for, fixtures, of_check, rel_message, run, target},
};

/// `tar` with bzip2 and zstd support, or a printed SKIP.
pub fn can_extract() -> bool {
    ["tar", "bzip2", "zstd"]
        .iter()
        .all(|t| crate::support::have(t))
}

fn sh(cmd: &mut Command) {
    let out = cmd.output_in_time().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Extract a `.tar.bz2` or `.conda` package into `dir`.
fn extract(archive: &Path, dir: &Path) {
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    if name.ends_with(".tar.bz2") {
        sh(Command::new("tar")
            .arg("-xjf")
            .arg(archive)
            .arg("-C")
            .arg(dir));
    } else {
        let outer = tempfile::tempdir().unwrap();
        crate::support::unzip(archive, outer.path());
        for entry in std::fs::read_dir(outer.path()).unwrap() {
            let p = entry.unwrap().path();
            if p.extension().is_some_and(|e| e == "zst") {
                // The fixture's .conda stores its symlinks with empty targets (malformed in a
                // real-world way): tar reports them and `install` recreates them from paths.json.
                let out = Command::new("tar")
                    .arg("--zstd")
                    .arg("-xf")
                    .arg(&p)
                    .arg("-C")
                    .arg(dir)
                    .output_in_time()
                    .unwrap();
                if !out.status.success() {
                    eprintln!(
                        "note: {}: {}",
                        p.display(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
            }
        }
    }
}

/// Install a package into `prefix` as conda would; returns its `name-version-build`.
pub fn install(archive: &Path, prefix: &Path) -> String {
    let tmp = tempfile::tempdir().unwrap();
    extract(archive, tmp.path());
    let index: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("info/index.json")).unwrap())
            .unwrap();
    let paths: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("info/paths.json")).unwrap())
            .unwrap();
    let prefix_str = prefix.display().to_string();
    let mut files = Vec::new();
    for p in paths["paths"].as_array().unwrap() {
        let rel = p["_path"].as_str().unwrap();
        files.push(rel.to_string());
        let src = tmp.path().join(rel);
        let dst = prefix.join(rel);
        std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
        let Ok(meta) = std::fs::symlink_metadata(&src) else {
            // A softlink the archive lost: point it at the file with the same content.
            assert_eq!(
                p["path_type"],
                "softlink",
                "{rel} missing from {}",
                archive.display()
            );
            let twin = paths["paths"]
                .as_array()
                .unwrap()
                .iter()
                .find(|q| q["path_type"] == "hardlink" && q["sha256"] == p["sha256"])
                .unwrap_or_else(|| panic!("no file for softlink {rel}"));
            let target = twin["_path"].as_str().unwrap().rsplit('/').next().unwrap();
            std::os::unix::fs::symlink(target, &dst).unwrap();
            continue;
        };
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).unwrap(), &dst).unwrap();
            continue;
        }
        let mut data = std::fs::read(&src).unwrap();
        if let Some(ph) = p["prefix_placeholder"].as_str() {
            let binary = p["file_mode"].as_str() == Some("binary");
            data = replace(&data, ph.as_bytes(), prefix_str.as_bytes(), binary);
        }
        std::fs::write(&dst, data).unwrap();
    }
    let name = format!(
        "{}-{}-{}",
        index["name"].as_str().unwrap(),
        index["version"].as_str().unwrap(),
        index["build"].as_str().unwrap()
    );
    let record = json!({
        "name": index["name"], "version": index["version"], "build": index["build"],
        "build_number": index["build_number"], "subdir": index["subdir"],
        "files": files, "paths_data": {"paths_version": 1, "paths": paths["paths"]},
    });
    std::fs::create_dir_all(prefix.join("conda-meta")).unwrap();
    std::fs::write(
        prefix.join(format!("conda-meta/{name}.json")),
        serde_json::to_string_pretty(&record).unwrap(),
    )
    .unwrap();
    name
}

/// conda's placeholder replacement: text is replaced; binary keeps the length (NUL padding
/// after the C string).
fn replace(data: &[u8], from: &[u8], to: &[u8], binary: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i..].starts_with(from) {
            if binary {
                let end = data[i..]
                    .iter()
                    .position(|&b| b == 0)
                    .map(|p| i + p)
                    .unwrap_or(data.len());
                let mut s = to.to_vec();
                s.extend_from_slice(&data[i + from.len()..end]);
                let pad = (end - i) - s.len().min(end - i);
                s.truncate(end - i);
                out.extend_from_slice(&s);
                out.extend(std::iter::repeat_n(0, pad));
                i = end;
            } else {
                out.extend_from_slice(to);
                i += from.len();
            }
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

fn pkg(subdir: &str, file: &str) -> PathBuf {
    fixtures().join("packages").join(subdir).join(file)
}

#[test]
fn linux_packages_pass_lcls_rhel6_with_the_inspected_versions() {
    if !can_extract() {
        return;
    }
    let prefix = tempfile::tempdir().unwrap();
    let root = prefix.path().canonicalize().unwrap();
    let names: Vec<String> = [
        "zlib-1.2.11-h7b6447c_3.tar.bz2",
        "bcj-cffi-0.5.1-py310h295c915_0.tar.bz2",
        "xtensor-io-0.10.3-hb585cf6_0.tar.bz2",
    ]
    .iter()
    .map(|f| install(&pkg("linux-64", f), &root))
    .collect();
    assert_eq!(names[0], "zlib-1.2.11-h7b6447c_3");

    let report = audit_for(&root, "lcls-rhel6");
    assert!(report.passed(), "{}", rel_message(&report));
    assert!(report.findings.is_empty(), "{}", rel_message(&report));
    assert_eq!(report.summary.packages, 3);
    let files = report.files.as_ref().unwrap();
    // INSPECT.txt: libz and _bcj need at most GLIBC_2.4.
    for (path, owner) in [
        ("lib/libz.so.1.2.11", "zlib-1.2.11-h7b6447c_3"),
        (
            "lib/python3.10/site-packages/_bcj.abi3.so",
            "bcj-cffi-0.5.1-py310h295c915_0",
        ),
    ] {
        let f = files
            .iter()
            .find(|f| f.path == path)
            .unwrap_or_else(|| panic!("{path}"));
        assert_eq!(f.package, owner);
        let max = f
            .elf
            .version_needs
            .iter()
            .filter_map(|n| n.split().filter(|(ns, _)| *ns == "GLIBC").map(|(_, v)| v))
            .max()
            .unwrap();
        assert_eq!(max.to_string(), "2.4", "{path}");
    }
    assert!(cross_check_report(&root, &report) >= 2);

    // The zlib .conda of the same build installs the same files and audits the same.
    let conda = tempfile::tempdir().unwrap();
    install(
        &pkg("linux-64", "zlib-1.2.11-h7b6447c_3.conda"),
        conda.path(),
    );
    assert!(audit_for(conda.path(), "lcls-rhel6").findings.is_empty());

    // A package file changed after install to contain the prefix without a placeholder.
    let header = root.join("include/zlib.h");
    let mut text = std::fs::read_to_string(&header).unwrap();
    text.push_str(&format!("/* built in {} */\n", root.display()));
    std::fs::write(&header, text).unwrap();
    let report = audit_for(&root, "lcls-rhel6");
    let e = of_check(&report, Check::UnregisteredPrefix);
    assert_eq!(e.len(), 1, "{}", rel_message(&report));
    assert_eq!(
        (e[0].path.as_str(), e[0].package.as_str(), e[0].severity),
        ("include/zlib.h", "zlib-1.2.11-h7b6447c_3", Severity::Error)
    );
    assert!(
        e[0].message.contains("records no placeholder"),
        "{}",
        e[0].message
    );
}

#[test]
fn osx_binary_placeholders_are_checked_against_the_destination() {
    if !can_extract() {
        return;
    }
    let prefix = tempfile::tempdir().unwrap();
    let root = prefix.path().canonicalize().unwrap();
    install(&pkg("osx-64", "zlib-1.2.11-h1de35cc_3.conda"), &root);
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("conda-meta/zlib-1.2.11-h1de35cc_3.json")).unwrap(),
    )
    .unwrap();
    let binary: Vec<(String, usize)> = record["paths_data"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        // Symlinks carry the record too, but only the file they point to is scanned.
        .filter(|p| p["file_mode"] == "binary" && p["path_type"] == "hardlink")
        .map(|p| {
            (
                p["_path"].as_str().unwrap().to_string(),
                p["prefix_placeholder"].as_str().unwrap().len(),
            )
        })
        .collect();
    assert!(!binary.is_empty());
    let room = binary.iter().map(|b| b.1).min().unwrap();

    let mut opts = AuditOptions::new(target("lcls-rhel6"));
    opts.dest_prefix = Some("/".to_string() + &"d".repeat(room - 1));
    let ok = run(&root, &opts);
    assert!(
        of_check(&ok, Check::PlaceholderLength).is_empty(),
        "{}",
        rel_message(&ok)
    );
    // Mach-O files are not ELF: nothing else to say about them on a Linux target.
    assert!(ok.passed(), "{}", rel_message(&ok));

    opts.dest_prefix = Some("/".to_string() + &"d".repeat(room + 10));
    let bad = run(&root, &opts);
    let mut got: Vec<String> = of_check(&bad, Check::PlaceholderLength)
        .iter()
        .map(|f| f.path.clone())
        .collect();
    got.sort();
    let mut want: Vec<String> = binary.iter().map(|b| b.0.clone()).collect();
    want.sort();
    assert_eq!(got, want);
    assert!(!bad.passed());
}
