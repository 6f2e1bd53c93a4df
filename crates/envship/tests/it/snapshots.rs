//! Snapshots of what people read: every command's `--help`, the ship summary, the audit table,
//! lock/targets/deployments output and the rendered errors of common mistakes. Paths, times,
//! hashes and versions are filtered so the snapshots hold on any machine.
use std::path::Path;

use crate::{envship, example, filter};

/// Every subcommand (and the top level, as "").
const COMMANDS: &[&str] = &[
    "",
    "check",
    "lock",
    "build",
    "audit",
    "pack",
    "unpack",
    "run",
    "shell-hook",
    "publish",
    "deploy",
    "deployments",
    "verify",
    "verify-release",
    "keygen",
    "diff",
    "ship",
    "matrix",
    "targets",
    "test",
];

/// Snapshot `text` with times, hashes and the version filtered.
pub(crate) fn snap(name: &str, text: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"\b\d+\.\d+ ?s\b", "[TIME]");
    settings.add_filter(r"(?m)^(\S+\s+(?:ok|FAILED)\s+)\s*\d+\.\d+", "$1[SECS]");
    settings.add_filter(r"\b[0-9a-f]{64}\b", "[SHA256]");
    // An archive's size moves with the length of the temp dir it was built in.
    settings.add_filter(r"\b\d+(\.\d+)? (B|KiB|MiB|GiB)\b", "[SIZE]");
    settings.add_filter(&regex_escape(env!("CARGO_PKG_VERSION")), "[VERSION]");
    settings.bind(|| insta::assert_snapshot!(name, text));
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_ascii_alphanumeric() {
                vec![c]
            } else {
                vec!['\\', c]
            }
        })
        .collect()
}

/// Run envship in `dir`; (exit code, stdout, stderr), both with `dir` filtered.
pub(crate) fn run(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = envship()
        .current_dir(dir)
        .env("COLUMNS", "100")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        filter(&String::from_utf8_lossy(&out.stdout), dir),
        filter(&String::from_utf8_lossy(&out.stderr), dir),
    )
}

#[test]
fn help_of_every_command() {
    let dir = tempfile::tempdir().unwrap();
    for command in COMMANDS {
        let mut args: Vec<&str> = command.split_whitespace().collect();
        args.push("--help");
        let (code, stdout, stderr) = run(dir.path(), &args);
        assert_eq!(code, 0, "{command} --help: {stderr}");
        let name = if command.is_empty() {
            "help".to_string()
        } else {
            format!("help_{}", command.replace('-', "_"))
        };
        snap(&name, &stdout);
    }
}

#[test]
fn lock_output_and_the_audit_table() {
    let dir = example("needs-glibc-2.14");
    let (code, stdout, stderr) = run(dir.path(), &["lock", "--offline"]);
    assert_eq!(code, 0, "{stderr}");
    snap("lock_output", &stdout);
    let (code, _, stderr) = run(dir.path(), &["build", "--offline"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(dir.path(), &["audit"]);
    assert_eq!(code, 1, "{stderr}");
    snap("audit_table_fails_for_lcls_rhel6", &stdout);
}

#[test]
fn ship_summary() {
    if let Err(e) = envship_sandbox::namespaces_available() {
        envship_test_support::skip("ship_summary", format!("user namespaces unavailable: {e}"));
        return;
    }
    let dir = example("hello");
    let (code, stdout, stderr) = run(
        dir.path(),
        &["--quiet", "ship", "--offline", "--version", "1.0"],
    );
    assert_eq!(code, 0, "{stderr}");
    snap("ship_summary", &stdout);
}

#[test]
fn deployments_of_an_empty_root() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::create_dir(dir.path().join("envs")).unwrap();
    let (code, stdout, stderr) = run(dir.path(), &["deployments", "--root", "envs"]);
    snap(
        "deployments_empty",
        &format!("exit {code}\n{stdout}{stderr}"),
    );
}

#[test]
fn errors_of_common_mistakes() {
    let dir = example("hello");
    let cases: &[(&str, &[&str])] = &[
        ("error_unknown_target", &["check", "--target", "centos5"]),
        ("error_bad_glibc_override", &["check", "--glibc", "two"]),
        (
            "error_missing_test_script",
            &["ship", "--offline", "--script", "missing.sh"],
        ),
        (
            "error_unknown_format",
            &["ship", "--offline", "--format", "rar"],
        ),
        (
            "error_pack_without_prefix",
            &["pack", "--prefix", "no-such-env"],
        ),
        ("error_audit_without_build", &["audit"]),
    ];
    for (name, args) in cases {
        let (code, stdout, stderr) = run(dir.path(), args);
        snap(name, &format!("exit {code}\n{stdout}{stderr}"));
    }
}

/// A missing environment file is named when -f named it, and its directory when none was named.
#[test]
fn missing_environment_file_errors_fit_the_case() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::create_dir(dir.path().join("empty")).unwrap();
    let cases: &[(&str, &[&str])] = &[
        (
            "error_named_environment_file_missing",
            &["check", "-f", "../nope/environment.yml"],
        ),
        ("error_no_environment_yml_check", &["check"]),
        ("error_no_environment_yml_ship_dir", &["ship", "empty"]),
    ];
    for (name, args) in cases {
        let (code, stdout, stderr) = run(dir.path(), args);
        snap(name, &format!("exit {code}\n{stdout}{stderr}"));
    }
}

/// Run envship in a temp dir whose environment.yml is `text`; the rendered error.
fn error_of(text: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("environment.yml"), text).unwrap();
    let (code, stdout, stderr) = run(dir.path(), args);
    format!("exit {code}\n{stdout}{stderr}")
}

/// A flow sequence left open on line 6 of 7: the parser runs into the end of the file, and the
/// error points at the `[` it could not close.
#[test]
fn yaml_error_points_at_the_unclosed_construct() {
    let text = "name: demo\nchannels:\n  - conda-forge\ndependencies:\n  - numpy\n  - python: [3.9\n  - pip\n";
    snap(
        "error_yaml_unclosed_flow_sequence",
        &error_of(text, &["check"]),
    );
}

/// Every invalid spec is reported in one run, each at its line.
#[test]
fn every_invalid_spec_is_reported_at_once() {
    let text = "name: demo\ndependencies:\n  - numpy\n  - python>=>3\n  - zlib\n  - scipy >=<1.2\n  - openssl <<1.1\n";
    snap("error_three_invalid_specs", &error_of(text, &["check"]));
}

/// check names each pip entry build will refuse (the fixture's `git+https://` entries).
#[test]
fn check_warns_about_pip_entries_build_refuses() {
    let fixture =
        envship_test_support::fixture("envs/slaclab__lcls-python3.8-env__environment.yml");
    let text = fs_err::read_to_string(fixture).unwrap();
    let out = error_of(&text, &["check"]);
    let warnings: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("exit") || l.starts_with("warning:") || *l == "ok")
        .collect();
    snap("check_pip_entries_build_refuses", &warnings.join("\n"));
}
