//! The target a prefix was built for is recorded in it (conda-meta/envship) and used by pack,
//! audit and test without repeating `--target`; an explicit `--target` that contradicts it is
//! an error with help, not a manifest that lies.
use crate::{envship, example, filter};

/// The bundled example, set to build for rhel8 in its envship.toml, built offline.
fn built_for_rhel8() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = example("hello");
    let toml = dir.path().join("envship.toml");
    let config = fs_err::read_to_string(&toml).unwrap();
    fs_err::write(&toml, config.replace("\"lcls-rhel6\"", "\"rhel8\"")).unwrap();
    envship()
        .current_dir(dir.path())
        .args(["build", "--offline", "--cache-dir"])
        .arg(dir.path().join(".cache"))
        .assert()
        .success();
    let prefix = dir.path().join(".envship/build/hello-envship");
    (dir, prefix)
}

#[test]
fn pack_and_audit_use_the_recorded_target_without_flags() {
    let (dir, prefix) = built_for_rhel8();
    let record: serde_json::Value =
        serde_json::from_slice(&fs_err::read(prefix.join("conda-meta/envship")).unwrap()).unwrap();
    assert_eq!(record["target"]["profile"], "rhel8", "{record:#}");
    assert_eq!(record["target"]["glibc"], "2.28", "{record:#}");

    let out = envship()
        .current_dir(dir.path())
        .args(["audit", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["target"]["name"], "rhel8", "{:#}", report["target"]);

    envship()
        .current_dir(dir.path())
        .args(["pack", "--version", "1", "--prefix"])
        .arg(&prefix)
        .assert()
        .success();
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs_err::read(
            dir.path()
                .join("dist/hello-envship-1-rhel8-linux-64.manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["target"]["name"], "rhel8", "{manifest:#}");
    assert_eq!(manifest["target"]["glibc"], "2.28", "{manifest:#}");

    // A field override still applies on top of the recorded profile.
    let out = envship()
        .current_dir(dir.path())
        .args(["audit", "--json", "--glibc", "2.17"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["target"]["name"], "rhel8+glibc2.17");
}

#[test]
fn a_contradicting_target_is_an_error_with_help() {
    let (dir, prefix) = built_for_rhel8();
    let out = envship()
        .current_dir(dir.path())
        .args([
            "pack",
            "--target",
            "lcls-rhel6",
            "--version",
            "1",
            "--prefix",
        ])
        .arg(&prefix)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    insta::assert_snapshot!(
        "pack_contradicting_target",
        filter(&String::from_utf8_lossy(&out.stderr), dir.path())
    );
    assert!(!dir.path().join("dist").exists(), "nothing was packed");
    let out = envship()
        .current_dir(dir.path())
        .args(["audit", "--target", "rhel7"])
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("was built for target `rhel8`"));
}
