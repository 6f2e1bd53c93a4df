//! envship's minisign keys and signatures against Debian's `minisign`, the reference tool.

use std::process::Command;

use envship_trust::minisig::{keygen, verify_file, SigningKey, TrustedKey};

/// Debian's minisign, or a skip (a failure under CI=true).
fn minisign() -> Option<&'static str> {
    let ok = Command::new("minisign").arg("-v").output().is_ok();
    if !ok {
        envship_test_support::skip::skip(
            "minisign_cli",
            "Debian's minisign is not installed (apt-get install minisign)",
        );
        return None;
    }
    Some("minisign")
}

#[test]
fn debian_minisign_accepts_what_envship_signs_and_refuses_a_changed_file() {
    let Some(tool) = minisign() else { return };
    let d = tempfile::tempdir().unwrap();
    let pair = keygen(&d.path().join("facility"), false).unwrap();
    let file = d.path().join("psana-1.0-linux-64.tar.gz");
    std::fs::write(&file, envship_test_support::random_bytes(7, 3 << 20)).unwrap();
    let key = SigningKey::from_file(&pair.secret).unwrap();
    let sig = key.sign_file(&file).unwrap();
    let out = Command::new(tool)
        .args(["-V", "-m"])
        .arg(&file)
        .arg("-p")
        .arg(&pair.public)
        .output()
        .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "minisign -V refused: {said}");
    assert!(
        said.contains("Signature and comment signature verified"),
        "{said}"
    );
    assert!(said.contains("file:psana-1.0-linux-64.tar.gz"), "{said}");

    // The same key written by minisign's inline `-P` form verifies too.
    let out = Command::new(tool)
        .args(["-V", "-m"])
        .arg(&file)
        .arg("-P")
        .arg(&pair.public_key)
        .output()
        .unwrap();
    assert!(out.status.success());

    std::fs::write(&file, envship_test_support::random_bytes(8, 3 << 20)).unwrap();
    let out = Command::new(tool)
        .args(["-V", "-m"])
        .arg(&file)
        .arg("-p")
        .arg(&pair.public)
        .output()
        .unwrap();
    assert!(!out.status.success(), "minisign accepted a changed file");
    assert!(sig.is_file());
}

#[test]
fn envship_verifies_a_signature_minisign_made() {
    let Some(tool) = minisign() else { return };
    let d = tempfile::tempdir().unwrap();
    let (sk, pk) = (d.path().join("m.key"), d.path().join("m.pub"));
    // -W: an unencrypted key, as a CI secret would be.
    let out = Command::new(tool)
        .args(["-G", "-W", "-s"])
        .arg(&sk)
        .arg("-p")
        .arg(&pk)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = d.path().join("evidence.json");
    std::fs::write(&file, b"{\"ok\": true}\n").unwrap();
    let out = Command::new(tool)
        .args(["-S", "-s"])
        .arg(&sk)
        .arg("-m")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trusted = TrustedKey::from_file(&pk).unwrap();
    let v = verify_file(&file, &[trusted]).unwrap();
    assert!(v.trusted_comment.contains("evidence.json"), "{v:?}");
    // Its public key's id is the one minisign printed into the signature's key line.
    assert_eq!(v.key_id.len(), 16);
}
