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
fn bad_spec_is_reported_with_file_line_and_exit_2() {
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
        .code(2)
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
        .code(2)
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
    // Without --name, pack names the archive after the prefix directory, as conda-pack does.
    envship()
        .current_dir(dir.path())
        .args(["pack", "--version", "1", "--prefix"])
        .arg(&prefix)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "dist/hello-envship-1-lcls-rhel6-linux-64.cdx.json (3 conda, 0 pip)",
        ));
    assert!(dir
        .path()
        .join("dist/hello-envship-1-lcls-rhel6-linux-64.tar.gz")
        .exists());
    let sbom: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            dir.path()
                .join("dist/hello-envship-1-lcls-rhel6-linux-64.cdx.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(sbom["metadata"]["component"]["name"], "hello-envship");
    assert_eq!(sbom["components"].as_array().unwrap().len(), 3);
}

#[test]
fn ship_the_bundled_example_for_lcls_rhel6() {
    if let Err(e) = envship_sandbox::namespaces_available() {
        envship_test_support::skip(
            "ship_the_bundled_example_for_lcls_rhel6",
            format!("user namespaces unavailable: {e}"),
        );
        return;
    }
    let dir = example("hello");
    let out = envship()
        .current_dir(dir.path())
        .args([
            "ship",
            "--offline",
            "--json",
            "--version",
            "1.0",
            "--cache-dir",
        ])
        .arg(dir.path().join(".cache"))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let json: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(json["passed"], true, "{json:#}");
    let archive = dir
        .path()
        .join("dist/hello-envship-1.0-lcls-rhel6-linux-64.tar.gz");
    assert!(archive.exists());
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs_err::read(
            dir.path()
                .join("dist/hello-envship-1.0-lcls-rhel6-linux-64.manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["test"]["passed"], true);
    assert_eq!(manifest["audit"]["errors"], 0);
    // The evidence page is beside the archive, named in the manifest, and says what passed.
    assert_eq!(
        manifest["evidence"],
        "hello-envship-1.0-lcls-rhel6-linux-64.html"
    );
    let page = fs_err::read_to_string(
        dir.path()
            .join("dist/hello-envship-1.0-lcls-rhel6-linux-64.html"),
    )
    .unwrap();
    assert!(page.contains("hello-envship") && page.contains("lcls-rhel6"));
    assert!(!page.contains("https://"), "the page fetches nothing");

    // `envship test` without ARCHIVE takes the project's newest archive in dist/ and says so.
    envship()
        .current_dir(dir.path())
        .arg("test")
        .assert()
        .success()
        .stderr(predicate::str::contains(format!(
            "testing the newest archive: {}",
            archive.canonicalize().unwrap().display()
        )));

    // Outputs are written through private temp files, but land as ordinary files (0666 minus
    // the umask), readable by whoever deploys them.
    use std::os::unix::fs::PermissionsExt;
    let expected = envship_spec::output::output_file_mode();
    for f in [
        "dist/hello-envship-1.0-lcls-rhel6-linux-64.tar.gz",
        "dist/hello-envship-1.0-lcls-rhel6-linux-64.sha256",
        "dist/hello-envship-1.0-lcls-rhel6-linux-64.manifest.json",
        "dist/hello-envship-1.0-lcls-rhel6-linux-64.audit.json",
        "dist/hello-envship-1.0-lcls-rhel6-linux-64.test.log",
        "dist/hello-envship-1.0-lcls-rhel6-linux-64.html",
        "envship.lock",
    ] {
        let mode = fs_err::metadata(dir.path().join(f))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, expected, "{f} has mode {mode:o}");
    }
}

#[test]
fn the_audit_stops_a_ship_for_lcls_rhel6_and_not_for_rhel8() {
    if let Err(e) = envship_sandbox::namespaces_available() {
        envship_test_support::skip(
            "the_audit_stops_a_ship_for_lcls_rhel6_and_not_for_rhel8",
            format!("user namespaces unavailable: {e}"),
        );
        return;
    }
    let dir = example("needs-glibc-2.14");
    let cache = dir.path().join(".cache");
    envship()
        .current_dir(dir.path())
        .args(["ship", "--offline", "--cache-dir"])
        .arg(&cache)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("NOT shipped"))
        .stderr(predicate::str::contains("memcpy@GLIBC_2.14"));
    envship()
        .current_dir(dir.path())
        .args(["ship", "--offline", "--target", "rhel8", "--cache-dir"])
        .arg(&cache)
        .assert()
        .success()
        .stdout(predicate::str::contains("shipped memcpy-demo"));
}
