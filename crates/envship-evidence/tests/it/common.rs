//! A real archive to render: a prefix holding the real zlib 1.2.11 conda package (defaults,
//! 2019; its `info/index.json` and `info/paths.json` become the conda-meta record) and the real
//! bcrypt 4.3.0 manylinux_2_28 wheel installed as pip would (its `_bcrypt.abi3.so` needs
//! GLIBC_2.28), packed with envship-pack and audited with envship-audit against lcls-rhel6
//! (glibc 2.12): the audit has real errors.

use std::path::{Path, PathBuf};

use envship_evidence::{Gate, Verdict};
use envship_pack::Manifest;
use serde_json::{json, Value};

/// The zlib package's archive in the fixtures, and its sha256 (from SOURCES.tsv).
const ZLIB: &str = "packages/linux-64/zlib-1.2.11-h7b6447c_3.tar.bz2";
const ZLIB_SHA256: &str = "1f07873d6aa0cd18760a7b215d9956f7fa63c2f2761b03f293c659fe982923fa";
const BCRYPT: &str = "wheels/bcrypt-4.3.0-cp39-abi3-manylinux_2_28_x86_64.whl";
const SITE: &str = "lib/python3.9/site-packages";

pub struct Fixture {
    /// Holds the prefix and the output directory.
    pub dir: tempfile::TempDir,
    pub prefix: PathBuf,
    pub archive: PathBuf,
    pub manifest: Manifest,
    /// The audit report as `STEM.audit.json` holds it.
    pub audit: Value,
}

/// Install the real zlib package into `prefix` the way conda does: its files, the text
/// placeholder replaced by the prefix, and a conda-meta record made from its `info/`.
fn install_zlib(prefix: &Path, scratch: &Path) {
    let pkg = scratch.join("zlib-pkg");
    rattler_package_streaming::fs::extract_tar_bz2(&envship_test_support::fixture(ZLIB), &pkg)
        .expect("extract zlib");
    let index: Value =
        serde_json::from_slice(&std::fs::read(pkg.join("info/index.json")).unwrap()).unwrap();
    let paths: Value =
        serde_json::from_slice(&std::fs::read(pkg.join("info/paths.json")).unwrap()).unwrap();
    let p = prefix.to_str().unwrap();
    let entries = paths["paths"].as_array().unwrap();
    // This archive's quirk (see the fixtures' README): its two `softlink` entries are stored
    // as empty regular files. Installed as what paths.json says they are: links to the file
    // with the same sha256.
    let link_target = |entry: &Value| {
        let real = entries
            .iter()
            .find(|e| e["path_type"] == "hardlink" && e["sha256"] == entry["sha256"])?;
        let name = Path::new(real["_path"].as_str()?).file_name()?;
        Some(PathBuf::from(name))
    };
    let mut files = Vec::new();
    for entry in entries {
        let rel = entry["_path"].as_str().unwrap();
        files.push(rel.to_string());
        let (from, to) = (pkg.join(rel), prefix.join(rel));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let md = std::fs::symlink_metadata(&from).unwrap();
        if md.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&from).unwrap(), &to).unwrap();
        } else if entry["path_type"] == "softlink" {
            let target = link_target(entry).expect("the softlink's file is in the package");
            std::os::unix::fs::symlink(target, &to).unwrap();
        } else if let Some(ph) = entry["prefix_placeholder"].as_str() {
            assert_eq!(entry["file_mode"], "text", "zlib's placeholders are text");
            let text = std::fs::read_to_string(&from).unwrap();
            std::fs::write(&to, text.replace(ph, p)).unwrap();
        } else {
            std::fs::copy(&from, &to).unwrap();
        }
    }
    let record = json!({
        "name": index["name"], "version": index["version"], "build": index["build"],
        "build_number": index["build_number"], "license": index["license"],
        "subdir": index["subdir"], "depends": index["depends"],
        "channel": "https://repo.anaconda.com/pkgs/main", "sha256": ZLIB_SHA256,
        "files": files,
        "paths_data": {"paths_version": 1, "paths": paths["paths"]},
    });
    let name = format!(
        "{}-{}-{}.json",
        index["name"].as_str().unwrap(),
        index["version"].as_str().unwrap(),
        index["build"].as_str().unwrap()
    );
    std::fs::write(prefix.join("conda-meta").join(name), record.to_string()).unwrap();
}

/// Install the real bcrypt wheel into site-packages as pip would (it adds INSTALLER).
fn install_bcrypt(prefix: &Path) {
    let site = prefix.join(SITE);
    let file = std::fs::File::open(envship_test_support::fixture(BCRYPT)).unwrap();
    let mut zip = zip::ZipArchive::new(file).unwrap();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let Some(rel) = f.enclosed_name() else {
            continue;
        };
        let to = site.join(rel);
        if f.is_dir() {
            std::fs::create_dir_all(&to).unwrap();
            continue;
        }
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let mut out = std::fs::File::create(&to).unwrap();
        std::io::copy(&mut f, &mut out).unwrap();
    }
    std::fs::write(site.join("bcrypt-4.3.0.dist-info/INSTALLER"), "pip\n").unwrap();
}

/// Pack and audit the prefix.
pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("build/evidence-env");
    std::fs::create_dir_all(prefix.join("conda-meta")).unwrap();
    install_zlib(&prefix, dir.path());
    install_bcrypt(&prefix);

    let target = envship_spec::Target::builtin("lcls-rhel6").unwrap();
    let mut opts = envship_audit::AuditOptions::new(target.clone());
    opts.inventory = true;
    let report = envship_audit::audit(&prefix, &opts, &envship_spec::NoProgress).expect("audit");
    assert!(!report.passed(), "bcrypt's GLIBC_2.28 fails lcls-rhel6");

    let out = dir.path().join("dist");
    std::fs::create_dir_all(&out).unwrap();
    let format = envship_pack::Format::TarGz;
    let packed = envship_pack::pack(
        &envship_pack::PackOptions {
            prefix: prefix.clone(),
            output: Some(out.join(envship_pack::default_file_name(
                "evidence-env",
                "2026.12.1",
                &target.name,
                &target.subdir,
                format,
            ))),
            name: "evidence-env".into(),
            version: "2026.12.1".into(),
            target: envship_pack::ManifestTarget {
                name: target.name.clone(),
                subdir: target.subdir.clone(),
                glibc: Some(target.glibc.to_string()),
            },
            format,
            jobs: 2,
            compress_level: Some(1),
            ..Default::default()
        },
        &envship_spec::NoProgress,
    )
    .expect("pack");
    // As ship does after the test: the audit summary and the test outcome go into the manifest
    // (the outcome in envship-sandbox's TestOutcome JSON shape).
    let mut manifest = packed.manifest;
    manifest.audit = serde_json::to_value(&report.summary).ok();
    manifest.test = Some(json!({
        "passed": false, "exit_code": 1, "signal": null, "timed_out": false,
        "failed_step": "test", "duration": 2.5, "log_path": "dist/x.test.log",
        "script": "test.sh", "dest_prefix": "/opt/envship/evidence-env",
        "isolation": "namespace", "rootfs_glibc": null,
    }));
    manifest.write(&packed.manifest_path).unwrap();
    Fixture {
        audit: serde_json::to_value(&report).unwrap(),
        dir,
        prefix,
        archive: packed.archive,
        manifest,
    }
}

/// Gates with a failed audit and a failed test on one page (a real ship run stops at a failed
/// audit; the page must show any mix of verdicts).
pub fn gates() -> Vec<Gate> {
    let g = |name: &str, verdict, seconds: Option<f64>, detail: &str| Gate {
        name: name.into(),
        verdict,
        seconds,
        detail: Some(detail.into()),
    };
    vec![
        g("lock", Verdict::Pass, Some(1.25), "2 packages, lock reused"),
        g(
            "build",
            Verdict::Pass,
            Some(38.4),
            "1 conda packages installed, 1 pip",
        ),
        g(
            "audit",
            Verdict::Fail,
            Some(0.31),
            "bcrypt needs GLIBC_2.28",
        ),
        g("pack", Verdict::Pass, Some(0.9), "packed"),
        g(
            "test",
            Verdict::Fail,
            Some(2.5),
            "failed: the test script exited with 1",
        ),
    ]
}

/// A test log with markup and a terminal escape in it, as test tools print them.
pub const TEST_LOG: &str = "+ python -c 'import bcrypt'\n\u{1b}[31mImportError: /lib64/libc.so.6: version `GLIBC_2.28' not found (required by <site>/bcrypt/_bcrypt.abi3.so)\u{1b}[0m\n<script>alert('log')</script>\nexit status 1\n";
