//! Malicious archives are refused with the entry named; nothing is written outside DEST, and a
//! refused unpack leaves DEST as it found it (the CLI-level suite is crates/envship/tests/it/hostile.rs).
use envship_test_support::Deadline;

use std::{fs, path::Path};

use envship_pack::{unpack, PackError, UnpackOptions};
use envship_spec::NoProgress;
use envship_test_support::raw_tar::{write_tar_gz, RawEntry};

enum E<'a> {
    File(&'a [u8], &'a [u8]),
    Symlink(&'a [u8], &'a [u8]),
    Hardlink(&'a [u8], &'a [u8]),
}

/// Write a tar.gz with raw names (bypassing the tar crate's own path checks).
fn evil_tar(path: &Path, entries: &[E<'_>]) {
    let raw: Vec<RawEntry> = entries
        .iter()
        .map(|e| match e {
            E::File(n, d) => RawEntry::File(n.to_vec(), d.to_vec(), 0o644),
            E::Symlink(n, t) => RawEntry::Symlink(n.to_vec(), t.to_vec()),
            E::Hardlink(n, t) => RawEntry::Hardlink(n.to_vec(), t.to_vec()),
        })
        .collect();
    write_tar_gz(path, &raw);
}

#[track_caller]
fn refused(entries: &[E<'_>], entry: &str, reason_part: &str) {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("evil.tar.gz");
    evil_tar(&archive, entries);
    let dest = work.path().join("a/b/dest");
    let err = unpack(&archive, &dest, &UnpackOptions::default(), &NoProgress).unwrap_err();
    match &err {
        PackError::UnsafeEntry { entry: e, reason } => {
            assert_eq!(e, entry);
            assert!(reason.contains(reason_part), "{reason}");
        }
        other => panic!("expected UnsafeEntry, got {other:?}"),
    }
    for outside in ["evil", "a/evil", "a/b/evil", "etc-link"] {
        assert!(
            !work.path().join(outside).exists(),
            "{outside} written outside DEST"
        );
    }
    // DEST and the parents unpack made for it are gone again.
    assert!(
        !work.path().join("a").exists(),
        "a refused unpack left a/b/dest"
    );
}

#[test]
fn traversal_entries_are_refused_by_name() {
    refused(&[E::File(b"../evil", b"x")], "../evil", "..");
    refused(&[E::File(b"ok/../../evil", b"x")], "ok/../../evil", "..");
    refused(
        &[E::File(b"/tmp/evil-abs", b"x")],
        "/tmp/evil-abs",
        "absolute",
    );
    refused(
        &[E::File(b"t", b"x"), E::Hardlink(b"h", b"../t")],
        "h",
        "outside",
    );
    refused(&[E::Hardlink(b"h", b"/etc/passwd")], "h", "outside");
    refused(&[E::Hardlink(b"h", b"nothing")], "h", "not a regular file");
    refused(
        &[E::Symlink(b"up", b"."), E::File(b"up/evil", b"x")],
        "up/evil",
        "below a symlink",
    );
    // Refused after files were written: everything written is removed again.
    refused(
        &[
            E::File(b"bin/tool", b"x"),
            E::File(b"lib/a/b/c.txt", b"x"),
            E::File(b"../evil", b"x"),
        ],
        "../evil",
        "..",
    );
}

#[test]
fn symlinks_may_point_anywhere_but_are_never_written_through() {
    let work = tempfile::tempdir().unwrap();
    let outside = work.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("victim"), b"keep").unwrap();
    let archive = work.path().join("links.tar.gz");
    let abs = outside.to_str().unwrap().as_bytes().to_vec();
    let mut victim = abs.clone();
    victim.extend_from_slice(b"/victim");
    evil_tar(
        &archive,
        &[
            E::File(b"lib/python3.11/real.py", b"x"),
            E::Symlink(
                b"lib/python3.11/sitecustomize.py",
                b"/etc/python3.11/sitecustomize.py",
            ),
            E::Symlink(b"share/up", b"../../../../.."),
            E::Symlink(b"abs", &abs),
            E::Symlink(b"v", &victim),
        ],
    );
    let dest = work.path().join("dest");
    let out = unpack(&archive, &dest, &UnpackOptions::default(), &NoProgress).unwrap();
    assert_eq!(out.links, 4);
    assert_eq!(
        fs::read_link(dest.join("lib/python3.11/sitecustomize.py")).unwrap(),
        Path::new("/etc/python3.11/sitecustomize.py")
    );
    assert_eq!(fs::read_link(dest.join("abs")).unwrap(), outside);
    // A second, forced unpack of an archive writing through those links is refused.
    let second = work.path().join("second.tar.gz");
    evil_tar(
        &second,
        &[E::File(b"abs/evil", b"x"), E::File(b"v", b"overwritten")],
    );
    let o = UnpackOptions {
        force: true,
        ..Default::default()
    };
    let e = unpack(&second, &dest, &o, &NoProgress).unwrap_err();
    assert!(matches!(e, PackError::UnsafeEntry { .. }), "{e:?}");
    let victim_only = evil_tar_single_file(&work.path().join("third.tar.gz"), b"v");
    unpack(&victim_only, &dest, &o, &NoProgress).unwrap();
    assert_eq!(fs::read(outside.join("victim")).unwrap(), b"keep");
    assert_eq!(
        fs::read_dir(&outside).unwrap().count(),
        1,
        "nothing new outside"
    );
    // `v` itself was replaced by a regular file: the link went, its target stayed.
    assert!(fs::symlink_metadata(dest.join("v")).unwrap().is_file());
}

fn evil_tar_single_file(path: &Path, name: &[u8]) -> std::path::PathBuf {
    evil_tar(path, &[E::File(name, b"replaced")]);
    path.to_path_buf()
}

#[test]
fn non_empty_dest_needs_force() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("ok.tar.gz");
    evil_tar(
        &archive,
        &[
            E::File(b"a.txt", b"hello"),
            E::Symlink(b"b", b"a.txt"),
            E::Hardlink(b"c", b"a.txt"),
        ],
    );
    let dest = work.path().join("dest");
    fs::create_dir_all(&dest).unwrap();
    fs::write(dest.join("existing"), b"x").unwrap();
    let e = unpack(&archive, &dest, &UnpackOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(e, PackError::DestNotEmpty { .. }), "{e:?}");
    let o = UnpackOptions {
        force: true,
        ..Default::default()
    };
    let out = unpack(&archive, &dest, &o, &NoProgress).unwrap();
    assert_eq!((out.files, out.links), (1, 2));
    assert_eq!(fs::read(dest.join("c")).unwrap(), b"hello");
    assert_eq!(fs::read_link(dest.join("b")).unwrap(), Path::new("a.txt"));
    assert!(out.relocation.is_none()); // not an envship archive
}

#[test]
fn garbage_is_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let p = work.path().join("x.tar.gz");
    fs::write(&p, b"this is not an archive at all").unwrap();
    let e = unpack(
        &p,
        &work.path().join("d"),
        &UnpackOptions::default(),
        &NoProgress,
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("not a tar.gz, tar.zst, tar, zip, envship installer or squashfs"),
        "{e}"
    );
}

/// Regression (fuzz/unpack_zip found it as a leak): the writer threads of an unpack outlived the
/// call. They are joined before `unpack` returns now, whether it succeeds or fails.
#[test]
fn no_writer_thread_outlives_unpack() {
    // Other tests of this binary unpack on their own threads: look in a process of its own.
    if std::env::var_os("ENVSHIP_THREADS_CHILD").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "hardening::no_writer_thread_outlives_unpack"])
            .args(["--test-threads", "1", "--nocapture"])
            .env("ENVSHIP_THREADS_CHILD", "1")
            .output_in_time()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    let input = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz/unpack_zip-threads-outlive-unpack.zip");
    let work = tempfile::tempdir().unwrap();
    let o = UnpackOptions {
        jobs: 4,
        ..Default::default()
    };
    let _ = unpack(&input, &work.path().join("dest"), &o, &NoProgress);
    let ok = work.path().join("ok.tar.gz");
    evil_tar(&ok, &[E::File(b"a", b"x")]);
    unpack(&ok, &work.path().join("dest2"), &o, &NoProgress).unwrap();
    // A joined thread can still be listed in /proc for a moment (its TID is cleared, which wakes
    // the join, before the kernel drops the task): wait for that. A pool that keeps its threads
    // parked (the bug) never empties.
    let unpack_threads = || -> Vec<String> {
        fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .filter(|n| n.starts_with("envship-unpack"))
            .collect()
    };
    let mut left = unpack_threads();
    for _ in 0..200 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        left = unpack_threads();
    }
    assert!(left.is_empty(), "{left:?}");
}
