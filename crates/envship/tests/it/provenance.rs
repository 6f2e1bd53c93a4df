//! `envship verify-release` and `keygen` from the command line: a real conda package with its
//! real GitHub attestation (sigstore-rust's test data), and a minisign signature made by
//! `envship publish --sign-key` into a directory drop.

use std::path::PathBuf;

use crate::envship;

fn sigstore_data(name: &str) -> PathBuf {
    envship_test_support::workspace_root()
        .join("crates/envship-trust/tests/data/sigstore")
        .join(name)
}

#[test]
fn verify_release_checks_real_build_provenance_against_the_identity_asked_for() {
    let d = tempfile::tempdir().unwrap();
    let pkg = d.path().join("signed-package-2.1.0-hb0f4dca_0.conda");
    std::fs::copy(sigstore_data("signed-package-2.1.0-hb0f4dca_0.conda"), &pkg).unwrap();
    std::fs::copy(
        sigstore_data("conda-attestation.sigstore.json"),
        d.path()
            .join("signed-package-2.1.0-hb0f4dca_0.conda.sigstore.json"),
    )
    .unwrap();
    let ok = envship()
        .args([
            "verify-release",
            "--json",
            "--trust-github",
            "prefix-dev/sigstore-example",
        ])
        .arg(&pkg)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["github"]["repo"], "prefix-dev/sigstore-example");
    assert_eq!(v["github"]["instance"], "public-good");

    let other = envship()
        .args(["verify-release", "--trust-github", "slaclab/lcls-env"])
        .arg(&pkg)
        .output()
        .unwrap();
    assert_eq!(other.status.code(), Some(1), "a refusal is a gate");
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(
        err.contains("not trusted") && err.contains("slaclab/lcls-env"),
        "{err}"
    );

    let none = envship()
        .args(["verify-release"])
        .arg(&pkg)
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(2), "no policy is a usage error");
}

#[test]
fn keygen_publish_sign_key_and_verify_release_from_the_command_line() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path();
    let keygen = envship()
        .args(["keygen", "--json", "--output"])
        .arg(p.join("facility"))
        .output()
        .unwrap();
    assert!(
        keygen.status.success(),
        "{}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    let pair: serde_json::Value = serde_json::from_slice(&keygen.stdout).unwrap();
    let again = envship()
        .args(["keygen", "--output"])
        .arg(p.join("facility"))
        .output()
        .unwrap();
    assert_eq!(
        again.status.code(),
        Some(2),
        "an existing key is never replaced"
    );

    // A file with a .sha256 and manifest of its own is signed only when they agree with it.
    let archive = p.join("e-1-lcls-rhel6-linux-64.tar.gz");
    std::fs::write(&archive, b"not really an archive, but bytes to sign").unwrap();
    let sha = envship_test_support::sha256_hex(&std::fs::read(&archive).unwrap());
    std::fs::write(
        p.join("e-1-lcls-rhel6-linux-64.sha256"),
        format!("{sha}  e-1-lcls-rhel6-linux-64.tar.gz\n"),
    )
    .unwrap();
    let drop_dir = p.join("drop");
    std::fs::create_dir(&drop_dir).unwrap();
    let refused = envship()
        .args(["publish", "--to"])
        .arg(&drop_dir)
        .arg("--sign-key")
        .arg(p.join("facility.key"))
        .arg(&archive)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("refusing to sign") && err.contains("manifest"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(&drop_dir).unwrap().count(),
        0,
        "nothing published"
    );

    // Signed with the key in ENVSHIP_SIGNING_KEY (as a CI secret holds it): every file gets
    // its .minisig in the drop.
    let evidence = p.join("notes.txt");
    std::fs::write(&evidence, b"evidence").unwrap();
    let key_text = std::fs::read_to_string(p.join("facility.key")).unwrap();
    let published = envship()
        .args(["publish", "--no-sidecars", "--to"])
        .arg(&drop_dir)
        .arg(&evidence)
        .env("ENVSHIP_SIGNING_KEY", &key_text)
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let out = String::from_utf8_lossy(&published.stdout).into_owned()
        + &String::from_utf8_lossy(&published.stderr);
    assert!(
        !out.contains(key_text.lines().nth(1).unwrap()),
        "the key was printed"
    );
    let dropped = drop_dir.join("notes.txt");
    assert!(drop_dir.join("notes.txt.minisig").is_file());
    let ok = envship()
        .args(["verify-release", "--trust-key"])
        .arg(p.join("facility.pub"))
        .arg(&dropped)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains(pair["key_id"].as_str().unwrap()));
    let inline = envship()
        .args([
            "verify-release",
            "--trust-key",
            pair["public_key"].as_str().unwrap(),
        ])
        .arg(&dropped)
        .output()
        .unwrap();
    assert!(inline.status.success());
    std::fs::write(&dropped, b"evidencE").unwrap();
    let bad = envship()
        .args(["verify-release", "--trust-key"])
        .arg(p.join("facility.pub"))
        .arg(&dropped)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("does not match its signature"));
}
