use envship_publish::{artifacts, publish_to_dir, DropAction, PublishError};
use envship_spec::NoProgress;

use crate::common::{archive_with_sidecar, bytes, names, sha256};

#[test]
fn publishes_archive_and_sidecars_and_is_idempotent() {
    let src = tempfile::tempdir().unwrap();
    let drop = tempfile::tempdir().unwrap();
    let data = bytes(1, 3 * 1024 * 1024 + 17);
    let a = archive_with_sidecar(src.path(), "env-1.0-linux-64", &data);
    std::fs::write(
        src.path().join("env-1.0-linux-64.manifest.json"),
        b"{\"name\":\"env\"}",
    )
    .unwrap();
    let files = artifacts::collect(&a);
    assert_eq!(files.len(), 3);

    let out = publish_to_dir(&files, drop.path(), &NoProgress).unwrap();
    assert!(out.iter().all(|o| o.action == DropAction::Copied));
    assert_eq!(
        names(drop.path()),
        [
            "env-1.0-linux-64.manifest.json",
            "env-1.0-linux-64.sha256",
            "env-1.0-linux-64.tar.gz"
        ]
    );
    let published = std::fs::read(drop.path().join("env-1.0-linux-64.tar.gz")).unwrap();
    assert_eq!(published, data);
    assert_eq!(out[0].sha256, sha256(&data));
    assert_eq!(out[0].bytes, data.len() as u64);

    // Publishing the identical files again is a no-op success.
    let again = publish_to_dir(&files, drop.path(), &NoProgress).unwrap();
    assert!(again.iter().all(|o| o.action == DropAction::AlreadyPresent));
    assert_eq!(names(drop.path()).len(), 3, "no temp files left behind");
}

#[test]
fn never_overwrites_a_different_file() {
    let src = tempfile::tempdir().unwrap();
    let drop = tempfile::tempdir().unwrap();
    let a = archive_with_sidecar(src.path(), "env-1.0-linux-64", &bytes(2, 1000));
    std::fs::write(
        drop.path().join("env-1.0-linux-64.tar.gz"),
        b"someone else's release",
    )
    .unwrap();
    let err = publish_to_dir(&artifacts::collect(&a), drop.path(), &NoProgress).unwrap_err();
    assert!(matches!(err, PublishError::Conflict { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("env-1.0-linux-64.tar.gz") && msg.contains("different content"),
        "{msg}"
    );
    // Nothing was published, not even the sidecar (checked before copying anything).
    assert_eq!(names(drop.path()), ["env-1.0-linux-64.tar.gz"]);
    assert_eq!(
        std::fs::read(drop.path().join("env-1.0-linux-64.tar.gz")).unwrap(),
        b"someone else's release"
    );
}

#[test]
fn refuses_a_tampered_archive_before_copying() {
    let src = tempfile::tempdir().unwrap();
    let drop = tempfile::tempdir().unwrap();
    let a = archive_with_sidecar(src.path(), "env-1.0-linux-64", &bytes(3, 5000));
    let mut data = std::fs::read(&a).unwrap();
    data[100] ^= 1;
    std::fs::write(&a, &data).unwrap();
    let err = publish_to_dir(&artifacts::collect(&a), drop.path(), &NoProgress).unwrap_err();
    assert!(matches!(err, PublishError::Checksum { .. }), "{err:?}");
    assert!(names(drop.path()).is_empty());
}

#[test]
fn missing_drop_directory_is_a_clear_error() {
    let src = tempfile::tempdir().unwrap();
    let a = archive_with_sidecar(src.path(), "e-1-linux-64", b"x");
    let missing = src.path().join("nope");
    let err = publish_to_dir(&[a], &missing, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn concurrent_publishers_of_the_same_file_both_succeed_with_one_copy() {
    let src = tempfile::tempdir().unwrap();
    let drop = tempfile::tempdir().unwrap();
    let a = archive_with_sidecar(src.path(), "e-2-linux-64", &bytes(4, 4 * 1024 * 1024));
    let files = artifacts::collect(&a);
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..4)
            .map(|_| s.spawn(|| publish_to_dir(&files, drop.path(), &NoProgress)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    assert_eq!(
        names(drop.path()),
        ["e-2-linux-64.sha256", "e-2-linux-64.tar.gz"]
    );
}
