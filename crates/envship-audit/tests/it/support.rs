use envship_test_support::Deadline;
use std::{
    path::{Path, PathBuf},
    process::Command,
};

use envship_audit::{audit, AuditOptions, AuditReport, Check, Finding};
use envship_spec::{NoProgress, Target};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

pub fn wheel(prefix: &str) -> PathBuf {
    let dir = fixtures().join("wheels");
    let mut hits: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(hits.len(), 1, "wheel {prefix}: {hits:?}");
    hits.remove(0)
}

/// Unpack a wheel (a zip file) into `dest`, as pip would into site-packages.
pub fn unzip(whl: &Path, dest: &Path) {
    let file = std::fs::File::open(whl).unwrap();
    let mut zip = zip::ZipArchive::new(file).unwrap();
    zip.extract(dest).unwrap();
}

pub fn target(name: &str) -> Target {
    Target::builtin(name).unwrap()
}

pub fn run(root: &Path, opts: &AuditOptions) -> AuditReport {
    audit(root, opts, &NoProgress).unwrap()
}

pub fn audit_for(root: &Path, target_name: &str) -> AuditReport {
    let mut opts = AuditOptions::new(target(target_name));
    opts.inventory = true;
    run(root, &opts)
}

pub fn errors(report: &AuditReport) -> Vec<&Finding> {
    report.findings.iter().filter(|f| f.is_error()).collect()
}

pub fn of_check(report: &AuditReport, check: Check) -> Vec<&Finding> {
    report
        .findings
        .iter()
        .filter(|f| f.check == check)
        .collect()
}

/// Whether `tool --version` runs.
pub fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output_in_time()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Whether `tool` runs; when not, the running test (named by its thread) is skipped.
pub fn have(tool: &str) -> bool {
    let ok = installed(tool);
    if !ok {
        let test = envship_test_support::current_test("audit test");
        envship_test_support::skip(&test, format!("`{tool}` is not installed"));
    }
    ok
}

/// Compile C (or C++ with `g++`) source into `out` with extra arguments.
pub fn compile(compiler: &str, src: &str, ext: &str, out: &Path, args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let src_path = dir.path().join(format!("src.{ext}"));
    std::fs::write(&src_path, src).unwrap();
    let output = Command::new(compiler)
        .arg(&src_path)
        .arg("-o")
        .arg(out)
        .args(args)
        .output_in_time()
        .unwrap();
    assert!(
        output.status.success(),
        "{compiler} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

pub fn rel_message(report: &AuditReport) -> String {
    report
        .findings
        .iter()
        .map(|f| {
            format!(
                "{:?} {} {} {}",
                f.severity,
                f.check.as_str(),
                f.path,
                f.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
