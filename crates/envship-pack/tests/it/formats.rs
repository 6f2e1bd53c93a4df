//! The sh installer and squashfs formats, end to end with real tools: the installer run by
//! `dash` and `bash` on this host and by `dash` inside the bullseye rootfs; squashfs images
//! listed and extracted by `unsquashfs` and mounted by `squashfuse`. Each must give the files a
//! tar.gz of the same prefix gives, unpacked at the same prefix.
use envship_test_support::Deadline;

use std::{
    fs,
    path::{Path, PathBuf},
};

use envship_pack::{
    pack, unpack, Format, ManifestTarget, PackError, PackOptions, SquashfsCompression,
    UnpackOptions,
};
use envship_spec::NoProgress;
use envship_test_support::python::{cached_archives, python_unavailable};

use crate::support::*;

fn opts(prefix: &Path, out: &Path, format: Format) -> PackOptions {
    PackOptions {
        prefix: prefix.to_path_buf(),
        output: Some(out.to_path_buf()),
        name: "fmt".into(),
        version: "1.0".into(),
        target: ManifestTarget {
            name: "lcls-rhel6".into(),
            subdir: "linux-64".into(),
            glibc: Some("2.12".into()),
        },
        format,
        force: true,
        ..Default::default()
    }
}

fn rm(p: &Path) {
    if p.exists() {
        fs::remove_dir_all(p).unwrap();
    }
}

/// The Python test environment (the machine's CPython repackaged as conda `python`, and
/// `pip`) installed in `work/build-prefix`; `None` (after a SKIP) without a system python.
fn python_env(test: &str, work: &Path) -> Option<PathBuf> {
    if let Some(why) = python_unavailable() {
        envship_test_support::skip(test, why);
        return None;
    }
    let prefix = work.join("build-prefix");
    let archives: Vec<String> = cached_archives()
        .into_iter()
        .map(|(p, _)| p.to_str().unwrap().to_string())
        .collect();
    let refs: Vec<&str> = archives.iter().map(String::as_str).collect();
    install(&prefix, &work.join("pkgs"), &refs);
    Some(prefix)
}

fn tool(test: &str, cmd: &str) -> bool {
    if have(cmd) {
        return true;
    }
    envship_test_support::skip(test, format!("{cmd} is not installed"));
    false
}

/// Runs `shell installer ARGS` and returns (success, stderr).
fn run_installer(shell: &str, installer: &Path, args: &str) -> (bool, String) {
    let out = sh(&format!("{shell} {} {args}", installer.display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn sh_installer_under_dash_and_bash_installs_what_the_tar_gz_does() {
    let test = "sh_installer_under_dash_and_bash_installs_what_the_tar_gz_does";
    if !tool(test, "dash") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let Some(prefix) = python_env(test, work.path()) else {
        return;
    };
    let tgz = work.path().join("fmt.tar.gz");
    let installer = work.path().join("fmt.sh");
    pack(&opts(&prefix, &tgz, Format::TarGz), &NoProgress).unwrap();
    let packed = pack(&opts(&prefix, &installer, Format::Sh), &NoProgress).unwrap();
    assert_eq!(
        packed.sha256_path.as_deref(),
        Some(work.path().join("fmt.sha256").as_path()),
        "sidecars are named after the stem"
    );
    assert_eq!(packed.manifest.format, "sh");
    // Reproducible: the same bytes again.
    let again = pack(
        &opts(&prefix, &work.path().join("again.sh"), Format::Sh),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(packed.sha256, again.sha256);

    // The reference: the tar.gz unpacked at the same prefix, as the README says.
    let dest = work.path().join("opt/env");
    let d = dest.display();
    ok(&sh(&format!(
        "mkdir -p {d} && tar -xzf {} -C {d} && sh {d}/bin/conda-unpack",
        tgz.display()
    )));
    let reference = snapshot(&dest, &[]);
    rm(&dest);

    for shell in ["dash", "bash"] {
        let (ok_, err) = run_installer(shell, &installer, &format!("-b -p {d}"));
        assert!(ok_, "{shell}: {err}");
        assert_trees_equal(&snapshot(&dest, &[]), &reference, shell);
        let prefix_seen = ok(&sh(&format!(
            "{d}/bin/python -c 'import json, sys; print(sys.prefix)'"
        )));
        assert_eq!(prefix_seen.trim(), d.to_string(), "{shell}");
        // A non-empty DEST is refused and left as it was.
        let (ok_, err) = run_installer(shell, &installer, &format!("--prefix {d}"));
        assert!(!ok_ && err.contains("not empty"), "{shell}: {err}");
        assert_trees_equal(&snapshot(&dest, &[]), &reference, "after the refusal");
        rm(&dest);
    }
    // envship unpack reads the installer too (the payload after the header), as it reads the
    // tar.gz. (Not compared with the reference: conda-unpack's python leaves __pycache__.)
    unpack(&tgz, &dest, &UnpackOptions::default(), &NoProgress).unwrap();
    let unpacked_tgz = snapshot(&dest, &[]);
    rm(&dest);
    unpack(&installer, &dest, &UnpackOptions::default(), &NoProgress).unwrap();
    assert_trees_equal(&snapshot(&dest, &[]), &unpacked_tgz, "envship unpack");
}

/// The standard test environment packed as an installer, for the refusal tests (no python
/// needed: its conda-unpack runs with perl).
fn small_installer(work: &Path) -> Option<(TestEnv, PathBuf)> {
    let env = build_env()?;
    let installer = work.join("small.sh");
    pack(&opts(&env.prefix, &installer, Format::Sh), &NoProgress).unwrap();
    Some((env, installer))
}

#[test]
fn corrupted_or_truncated_installer_installs_nothing() {
    let test = "corrupted_or_truncated_installer_installs_nothing";
    if !tool(test, "dash") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let Some((_env, installer)) = small_installer(work.path()) else {
        return;
    };
    let good = fs::read(&installer).unwrap();
    let dest = work.path().join("dest/env");

    // One flipped byte in the middle of the payload.
    let mut bad = good.clone();
    let mid = good.len() - (good.len() - header_len(&good)) / 2;
    bad[mid] ^= 0x55;
    let corrupted = work.path().join("corrupted.sh");
    fs::write(&corrupted, &bad).unwrap();
    for shell in ["dash", "bash"] {
        let (ok_, err) = run_installer(shell, &corrupted, &format!("-p {}", dest.display()));
        assert!(!ok_, "{shell} installed a corrupted copy");
        assert!(err.contains("is corrupted"), "{shell}: {err}");
        assert!(!dest.exists(), "{shell}: DEST was created");
        assert!(!work.path().join("dest").exists());
    }
    // Without sha256sum and python it refuses, unless --no-verify; then gzip's CRC still
    // catches the corruption and what was extracted is removed.
    let bin = minimal_path(work.path());
    let restricted = |file: &Path, args: &str| {
        let out = std::process::Command::new(bin.join("dash"))
            .arg(file)
            .args(args.split_whitespace())
            .env_clear()
            .env("PATH", &bin)
            .output_in_time()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let dest_arg = format!("-p {}", dest.display());
    let (ok_, err) = restricted(&installer, &dest_arg);
    assert!(
        !ok_ && err.contains("neither sha256sum nor python"),
        "{err}"
    );
    assert!(!dest.exists());
    let (ok_, err) = restricted(&corrupted, &format!("{dest_arg} --no-verify"));
    assert!(!ok_ && err.contains("nothing installed"), "{err}");
    assert!(!dest.exists(), "a failed extraction is removed");
    // The intact copy installs with only sh, tail, gzip, tar (and perl for conda-unpack).
    let (ok_, err) = restricted(&installer, &format!("{dest_arg} --no-verify"));
    assert!(ok_, "{err}");
    assert!(dest.join("bin/conda-unpack").is_file());
    rm(&dest);

    // With python but no sha256sum, python checks the payload.
    if Path::new("/usr/bin/python3").exists() {
        let with_python = minimal_path_with(work.path(), "python-bin");
        std::os::unix::fs::symlink("/usr/bin/python3", with_python.join("python3")).unwrap();
        let run = |file: &Path| {
            std::process::Command::new(with_python.join("dash"))
                .arg(file)
                .args(dest_arg.split_whitespace())
                .env_clear()
                .env("PATH", &with_python)
                .output_in_time()
                .unwrap()
        };
        let out = run(&corrupted);
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("is corrupted"));
        assert!(!dest.exists());
        let out = run(&installer);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        rm(&dest);
    }

    // A truncated copy is refused even with --no-verify.
    let truncated = work.path().join("truncated.sh");
    fs::write(&truncated, &good[..good.len() - 100]).unwrap();
    let (ok_, err) = run_installer("dash", &truncated, &format!("{dest_arg} --no-verify"));
    assert!(!ok_ && err.contains("truncated"), "{err}");
    assert!(!dest.exists());
    // An existing empty DEST is used, and emptied again on failure.
    fs::create_dir_all(&dest).unwrap();
    let (ok_, _) = run_installer("dash", &corrupted, &format!("{dest_arg} --no-verify"));
    assert!(!ok_);
    assert_eq!(fs::read_dir(&dest).unwrap().count(), 0, "DEST left empty");
}

/// The header's length, from its `payload_offset=` line.
fn header_len(installer: &[u8]) -> usize {
    let text = String::from_utf8_lossy(&installer[..installer.len().min(1 << 16)]);
    let offset: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("payload_offset="))
        .expect("offset line")
        .parse()
        .unwrap();
    offset - 1
}

/// A PATH with only what the installer may use: no sha256sum, no python.
fn minimal_path(work: &Path) -> PathBuf {
    minimal_path_with(work, "minimal-bin")
}

/// A minimal PATH directory `name` under `work`.
fn minimal_path_with(work: &Path, name: &str) -> PathBuf {
    let bin = work.join(name);
    fs::create_dir_all(&bin).unwrap();
    for cmd in [
        "sh", "dash", "tail", "gzip", "tar", "wc", "ls", "mkdir", "rm", "dirname", "perl",
    ] {
        let real = ok(&sh(&format!("command -v {cmd}")));
        std::os::unix::fs::symlink(real.trim(), bin.join(cmd)).unwrap();
    }
    bin
}

#[test]
fn sh_installer_under_dash_in_the_bullseye_rootfs() {
    let test = "sh_installer_under_dash_in_the_bullseye_rootfs";
    let rootfs = match std::env::var_os("ENVSHIP_TEST_BULLSEYE_ROOTFS").map(PathBuf::from) {
        Some(p) if p.join("bin/dash").exists() && p.join("mnt").is_dir() => p,
        Some(p) => {
            envship_test_support::skip(test, format!("{} has no bin/dash or mnt/", p.display()));
            return;
        }
        None => {
            envship_test_support::skip(
                test,
                "ENVSHIP_TEST_BULLSEYE_ROOTFS is not set (debootstrap --variant=minbase bullseye DIR)",
            );
            return;
        }
    };
    if !tool(test, "unshare") || !tool(test, "chroot") {
        return;
    }
    if !is_root() {
        envship_test_support::skip(test, "needs root for chroot");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let Some((_env, installer)) = small_installer(work.path()) else {
        return;
    };
    // The work directory is bind-mounted at the rootfs's /mnt in a private mount namespace:
    // nothing is written into the rootfs itself.
    let run_in_rootfs = |script: &str| {
        sh(&format!(
            "unshare --mount --propagation private sh -c 'mount --bind {w} {r}/mnt && chroot {r} /bin/dash -c \"{script}\"'",
            w = work.path().display(),
            r = rootfs.display(),
        ))
    };
    // A corrupted copy is refused there too.
    let mut bad = fs::read(&installer).unwrap();
    let last = bad.len() - 10;
    bad[last] ^= 0xff;
    fs::write(work.path().join("corrupted.sh"), &bad).unwrap();
    let out = run_in_rootfs("dash /mnt/corrupted.sh -p /mnt/env");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is corrupted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!work.path().join("env").exists());

    ok(&run_in_rootfs("dash /mnt/small.sh -b -p /mnt/env"));
    // What envship unpack makes of the same installer for the same prefix.
    let reference = work.path().join("reference");
    let uopts = UnpackOptions {
        prefix: Some("/mnt/env".into()),
        ..Default::default()
    };
    unpack(&installer, &reference, &uopts, &NoProgress).unwrap();
    assert_trees_equal(
        &snapshot(&work.path().join("env"), &[]),
        &snapshot(&reference, &[]),
        "installed in the bullseye rootfs",
    );
}

fn is_root() -> bool {
    ok(&sh("id -u")).trim() == "0"
}

#[test]
fn squashfs_requires_a_dest_prefix() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("x.squashfs");
    let e = pack(&opts(work.path(), &out, Format::Squashfs), &NoProgress).unwrap_err();
    assert!(
        matches!(e, PackError::FormatOptions { .. }),
        "{e:?}: checked before the prefix is read"
    );
    assert!(e.to_string().contains("--dest-prefix"), "{e}");
    assert!(!out.exists());
}

#[test]
fn squashfs_images_list_extract_and_mount_like_the_tar_gz() {
    let test = "squashfs_images_list_extract_and_mount_like_the_tar_gz";
    if !tool(test, "unsquashfs") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let Some(prefix) = python_env(test, work.path()) else {
        return;
    };
    let mount = work.path().join("mnt/env");
    let m = mount.to_str().unwrap().to_string();
    let with_dest = |out: &Path, format: Format| PackOptions {
        dest_prefix: Some(m.clone()),
        ..opts(&prefix, out, format)
    };
    // The reference: the tar.gz baked for the same prefix, unpacked there with tar.
    let tgz = work.path().join("fmt.tar.gz");
    pack(&with_dest(&tgz, Format::TarGz), &NoProgress).unwrap();
    fs::create_dir_all(&mount).unwrap();
    ok(&sh(&format!("tar -xzf {} -C {m}", tgz.display())));
    let reference = snapshot(&mount, &[]);
    rm(&mount);
    fs::create_dir_all(&mount).unwrap();

    for compression in [SquashfsCompression::Gzip, SquashfsCompression::Zstd] {
        let c = compression.as_str();
        let image = work.path().join(format!("fmt-{c}.squashfs"));
        let o = PackOptions {
            squashfs_compression: compression,
            ..with_dest(&image, Format::Squashfs)
        };
        let packed = pack(&o, &NoProgress).unwrap();
        assert_eq!(packed.manifest.format, "squashfs");
        assert_eq!(packed.manifest.dest_prefix.as_deref(), Some(m.as_str()));
        let again = pack(
            &PackOptions {
                output: Some(work.path().join(format!("again-{c}.squashfs"))),
                ..o.clone()
            },
            &NoProgress,
        )
        .unwrap();
        assert_eq!(packed.sha256, again.sha256, "{c}: reproducible");

        let stat = ok(&sh(&format!("unsquashfs -s {}", image.display())));
        assert!(stat.contains(&format!("Compression {c}")), "{stat}");
        let listing = ok(&sh(&format!("unsquashfs -l {}", image.display())));
        assert!(
            listing.contains("squashfs-root/bin/python3.11"),
            "{listing}"
        );
        let extracted = work.path().join(format!("unsquashfs-{c}"));
        ok(&sh(&format!(
            "unsquashfs -q -n -d {} {}",
            extracted.display(),
            image.display()
        )));
        assert_trees_equal(&snapshot(&extracted, &[]), &reference, "unsquashfs");
        rm(&extracted);

        // envship unpack extracts it too (deploy and the sandbox without unsquashfs use this).
        let uopts = UnpackOptions {
            no_relocate: true,
            ..Default::default()
        };
        unpack(&image, &extracted, &uopts, &NoProgress).unwrap();
        assert_trees_equal(&snapshot(&extracted, &[]), &reference, "envship unpack");
        rm(&extracted);

        squashfuse_round_trip(test, &image, &mount, &reference);
    }
}

/// Mounts `image` at `mount` with squashfuse, compares, runs the python from it, unmounts.
fn squashfuse_round_trip(test: &str, image: &Path, mount: &Path, reference: &Tree) {
    if !tool(test, "squashfuse") {
        return;
    }
    if !Path::new("/dev/fuse").exists() {
        envship_test_support::skip(test, "/dev/fuse does not exist");
        return;
    }
    let m = mount.display();
    ok(&sh(&format!("squashfuse {} {m}", image.display())));
    let seen = snapshot(mount, &[]);
    let python = sh(&format!(
        "{m}/bin/python -c 'import json, sys; print(sys.prefix)'"
    ));
    ok(&sh(&format!(
        "fusermount3 -u {m} 2>/dev/null || fusermount -u {m} 2>/dev/null || umount {m}"
    )));
    assert_trees_equal(&seen, reference, "squashfuse mount");
    assert_eq!(ok(&python).trim(), m.to_string());
}
