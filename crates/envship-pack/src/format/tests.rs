//! Detection against real archives: tar, gzip, zstd and zip written by the same libraries pack
//! uses, bzip2 and xz by the system tools (the formats unpack refuses).
use envship_test_support::Deadline;

use std::{io::Write, path::Path, process::Command};

use super::*;

/// A one-file tar (`hello.txt`) in memory.
fn tar_bytes() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "hello.txt", &b"hello\n"[..])
        .expect("tar entry");
    b.into_inner().expect("tar")
}

fn write(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, data).expect("write archive");
    p
}

/// Compresses `input` with a system tool (`bzip2`, `xz`); `None` when it is missing.
fn compress_with(tool: &str, input: &Path) -> Option<PathBuf> {
    let out = Command::new(tool)
        .arg("-kf")
        .arg(input)
        .output_in_time()
        .ok()?;
    assert!(out.status.success(), "{tool} failed: {out:?}");
    let ext = if tool == "bzip2" { "bz2" } else { "xz" };
    let mut p = input.as_os_str().to_os_string();
    p.push(format!(".{ext}"));
    Some(PathBuf::from(p))
}

#[test]
fn sniffs_the_formats_unpack_reads() {
    let d = tempfile::tempdir().expect("tempdir");
    let tar = tar_bytes();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).expect("gzip");
    let gz = gz.finish().expect("gzip");
    let zst = zstd::encode_all(&tar[..], 3).expect("zstd");
    let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    zip.start_file("hello.txt", zip::write::SimpleFileOptions::default())
        .expect("zip entry");
    zip.write_all(b"hello\n").expect("zip data");
    let zip = zip.finish().expect("zip").into_inner();
    let empty_zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()))
        .finish()
        .expect("empty zip")
        .into_inner();

    // Names that lie: the bytes decide.
    let cases = [
        ("a.tar", &tar, ArchiveKind::Tar),
        ("a.tar.gz", &gz, ArchiveKind::TarGz),
        ("a.zip", &zst, ArchiveKind::TarZst),
        ("a.bin", &zip, ArchiveKind::Zip),
        ("empty.zip", &empty_zip, ArchiveKind::Zip),
    ];
    for (name, data, want) in cases {
        let p = write(d.path(), name, data);
        assert_eq!(ArchiveKind::sniff_file(&p).expect(name), want, "{name}");
        assert_eq!(ArchiveKind::detect(&p).expect(name), want, "{name}");
    }
    assert_eq!(
        ArchiveKind::detect(d.path()).expect("dir"),
        ArchiveKind::Dir
    );
}

#[test]
fn refuses_bzip2_xz_and_other_files_with_one_error() {
    let d = tempfile::tempdir().expect("tempdir");
    let tar = write(d.path(), "a.tar", &tar_bytes());
    let mut refused = vec![
        (write(d.path(), "x.tar.gz", b"not an archive"), ""),
        (write(d.path(), "empty.tar", b""), ""),
    ];
    for tool in ["bzip2", "xz"] {
        match compress_with(tool, &tar) {
            Some(p) => refused.push((p, tool)),
            None => {
                envship_test_support::skip(
                    "refuses_bzip2_xz_and_other_files_with_one_error",
                    format!("no `{tool}` to make a real {tool} tar"),
                );
                return;
            }
        }
    }
    for (p, tool) in refused {
        let e = ArchiveKind::detect(&p).expect_err("refused");
        assert!(matches!(e, PackError::BadArchive { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(
            msg.contains("not a tar.gz, tar.zst, tar, zip, envship installer or squashfs file"),
            "{msg}"
        );
        if !tool.is_empty() {
            assert!(msg.contains(&format!("{tool}-compressed")), "{msg}");
            let head = fs::read(&p).expect("read");
            assert_eq!(Magic::of(&head).map(Magic::name), Some(tool));
        }
    }
}

#[test]
fn names_and_stems() {
    assert_eq!(
        ArchiveKind::from_file_name("a-1-linux-64.TAR.GZ"),
        Some(ArchiveKind::TarGz)
    );
    assert_eq!(
        ArchiveKind::from_file_name("a.tzst"),
        Some(ArchiveKind::TarZst)
    );
    assert_eq!(ArchiveKind::from_file_name("a.tar"), Some(ArchiveKind::Tar));
    assert_eq!(ArchiveKind::from_file_name("a.zip"), Some(ArchiveKind::Zip));
    assert_eq!(ArchiveKind::from_file_name("a.tar.bz2"), None);
    assert_eq!(ArchiveKind::from_file_name("a.tar.xz"), None);

    assert_eq!(archive_stem("a-1-linux-64.tar.gz"), "a-1-linux-64");
    assert_eq!(archive_stem("a.tar.zst"), "a");
    assert_eq!(archive_stem("a.zip"), "a");
    assert_eq!(archive_stem(".tar.gz"), ".tar.gz");
    assert_eq!(archive_stem("plain"), "plain");
    assert_eq!(
        default_file_name("psana", "1.0", "lcls-rhel6", "linux-64", Format::TarGz),
        "psana-1.0-lcls-rhel6-linux-64.tar.gz"
    );
    assert_eq!(
        default_file_name("psana", "1.0", "rhel8", "linux-64", Format::Dir),
        "psana-1.0-rhel8-linux-64"
    );
    assert_eq!(
        Sidecar::Sha256.path_for(Path::new("d/x-1-linux-64.tar.zst")),
        PathBuf::from("d/x-1-linux-64.sha256")
    );
    assert_eq!(
        Sidecar::Manifest.path_for(Path::new("x-1-linux-64")),
        PathBuf::from("x-1-linux-64.manifest.json")
    );
    assert_eq!(
        Sidecar::Audit.path_for(Path::new("/a/b.tgz")),
        PathBuf::from("/a/b.audit.json")
    );
    assert_eq!("zip".parse::<Format>(), Ok(Format::Zip));
    assert_eq!("sh".parse::<Format>(), Ok(Format::Sh));
    assert_eq!("sqfs".parse::<Format>(), Ok(Format::Squashfs));
    assert_eq!(
        default_file_name("psana", "1.0", "lcls-rhel6", "linux-64", Format::Squashfs),
        "psana-1.0-lcls-rhel6-linux-64.squashfs"
    );
    for name in ["psana-1.0-linux-64.sh", "psana-1.0-linux-64.squashfs"] {
        assert_eq!(archive_stem(name), "psana-1.0-linux-64");
        assert_eq!(
            Sidecar::Manifest.path_for(Path::new(name)),
            Path::new("psana-1.0-linux-64.manifest.json")
        );
    }
    assert_eq!(
        "zstd".parse::<SquashfsCompression>(),
        Ok(SquashfsCompression::Zstd)
    );
    assert!("xz".parse::<SquashfsCompression>().is_err());
    assert!("rar".parse::<Format>().is_err());
}
