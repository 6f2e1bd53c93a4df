use predicates::prelude::*;

use crate::{envship, example, filter};

#[test]
fn targets_table() {
    let out = envship()
        .arg("targets")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    // `host` depends on the machine; the built-in profiles do not.
    let stable: String = text
        .lines()
        .filter(|l| !l.starts_with("host"))
        .map(|l| format!("{l}\n"))
        .collect();
    insta::assert_snapshot!(stable);
}

#[test]
fn check_prints_the_normalized_request() {
    let dir = example("hello");
    let out = envship()
        .current_dir(dir.path())
        .arg("check")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    insta::assert_snapshot!(filter(&String::from_utf8(out).unwrap(), dir.path()));
}

#[test]
fn check_json_is_machine_readable() {
    let dir = example("hello");
    let out = envship()
        .current_dir(dir.path())
        .args(["check", "--json", "--target", "rhel7", "--cuda", "11.8"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["target"]["name"], "rhel7+cuda11.8");
    assert_eq!(json["name"], "hello-envship");
    assert!(json["virtual_packages"].to_string().contains("__cuda=11.8"));
}

#[test]
fn bad_spec_is_reported_with_file_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(
        dir.path().join("environment.yml"),
        "dependencies:\n  - python=PYTHONVER\n",
    )
    .unwrap();
    let out = envship()
        .current_dir(dir.path())
        .arg("check")
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("PYTHONVER"), "{text}");
    assert!(text.contains("environment.yml:2:5"), "{text}");
}

#[test]
fn unknown_target_is_an_error() {
    let dir = example("hello");
    envship()
        .current_dir(dir.path())
        .args(["check", "--target", "centos5"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("unknown target `centos5`"));
}

#[test]
fn usage_error_exits_2() {
    envship().arg("--no-such-flag").assert().code(2);
}

#[test]
fn lock_build_run_the_bundled_example() {
    let dir = example("hello");
    let cache = dir.path().join(".cache");
    envship()
        .current_dir(dir.path())
        .args(["lock", "--offline", "--cache-dir"])
        .arg(&cache)
        .assert()
        .success()
        .stdout(predicate::str::contains("locked 3 packages for lcls-rhel6"));
    envship()
        .current_dir(dir.path())
        .args(["build", "--offline", "--cache-dir"])
        .arg(&cache)
        .assert()
        .success();
    envship()
        .current_dir(dir.path())
        .args(["run", "--", "hello"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Hello from libhello 1.0"));
    let prefix = dir.path().join(".envship/build/hello-envship");
    envship()
        .current_dir(dir.path())
        .args([
            "run",
            "--",
            "sh",
            "-c",
            "echo $HELLO_GREETING $HELLO_ACTIVATED $CONDA_PREFIX; hello --prefix",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "from environment.yml 1 {p}\n{p}\n",
            p = prefix.display()
        )));
    envship()
        .current_dir(dir.path())
        .args(["shell-hook"])
        .assert()
        .success()
        .stdout(predicate::str::contains("CONDA_PREFIX"));
}
