//! Malicious archives are refused with the entry named; nothing is written outside DEST, and a
//! refused unpack leaves DEST as it found it (the CLI-level suite is crates/envship/tests/it/hostile.rs).

use std::{fs, io::Write, path::Path};

use envship_pack::{unpack, PackError, UnpackOptions};
use envship_spec::NoProgress;

enum E<'a> {
    File(&'a [u8], &'a [u8]),
    Symlink(&'a [u8], &'a [u8]),
    Hardlink(&'a [u8], &'a [u8]),
}

/// Write a tar.gz with raw names (bypassing the tar crate's own path checks).
fn evil_tar(path: &Path, entries: &[E<'_>]) {
    let f = fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(0);
        let (name, data, link, kind): (&[u8], &[u8], Option<&[u8]>, tar::EntryType) = match e {
            E::File(n, d) => (n, d, None, tar::EntryType::Regular),
            E::Symlink(n, t) => (n, b"", Some(t), tar::EntryType::Symlink),
            E::Hardlink(n, t) => (n, b"", Some(t), tar::EntryType::Link),
        };
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            gnu.linkname[..l.len()].copy_from_slice(l);
        }
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap().flush().unwrap();
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
        e.to_string().contains("not a tar.gz, tar.zst, tar or zip"),
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
            .output()
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
    let names: Vec<String> = fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with("envship-unpack")),
        "{names:?}"
    );
}
