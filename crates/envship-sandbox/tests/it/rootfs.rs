//! `--rootfs`: the namespace sandbox over a production userland. Needs a Debian 11 (glibc 2.31)
//! root filesystem made by `debootstrap --variant=minbase bullseye DIR`, named by
//! ENVSHIP_TEST_BULLSEYE_ROOTFS; skipped with a printed reason otherwise.
use envship_test_support::Deadline;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use envship_sandbox::{Isolation, RootfsSource, Step};

use crate::fixtures::{env_files, namespaces_or_skip, run, Project};

fn bullseye_or_skip(test: &str) -> Option<PathBuf> {
    if !namespaces_or_skip(test) {
        return None;
    }
    match std::env::var_os("ENVSHIP_TEST_BULLSEYE_ROOTFS") {
        Some(p) if Path::new(&p).join("etc/debian_version").is_file() => Some(PathBuf::from(p)),
        Some(p) => {
            envship_test_support::skip(
                test,
                format!(
                    "ENVSHIP_TEST_BULLSEYE_ROOTFS={} is not a Debian root filesystem",
                    Path::new(&p).display()
                ),
            );
            None
        }
        None => {
            envship_test_support::skip(
                test,
                "ENVSHIP_TEST_BULLSEYE_ROOTFS is not set (debootstrap --variant=minbase bullseye DIR)",
            );
            None
        }
    }
}

/// Compiles `src` with the host's gcc (Debian 12: any dynamic program needs GLIBC_2.34 for
/// `__libc_start_main`).
fn gcc(dir: &Path, name: &str, src: &str, extra: &[&str]) -> Option<Vec<u8>> {
    let c = dir.join(format!("{name}.c"));
    std::fs::write(&c, src).unwrap();
    let out = dir.join(name);
    let status = Command::new("gcc")
        .args(extra)
        .arg("-O1")
        .arg("-o")
        .arg(&out)
        .arg(&c)
        .status_in_time();
    match status {
        Ok(s) if s.success() => Some(std::fs::read(out).unwrap()),
        other => {
            envship_test_support::skip(
                "rootfs programs",
                format!("gcc {extra:?} failed: {other:?}"),
            );
            None
        }
    }
}

const HELLO_C: &str = "#include <stdio.h>\nint main(void) { puts(\"hello from C\"); return 0; }\n";

fn programs() -> Option<(Vec<u8>, Vec<u8>)> {
    let tmp = tempfile::tempdir().unwrap();
    let dynamic = gcc(tmp.path(), "needs234", HELLO_C, &[])?;
    let fixed = gcc(tmp.path(), "static-hello", HELLO_C, &["-static"])?;
    Some((dynamic, fixed))
}

#[test]
fn new_glibc_binary_fails_in_a_bullseye_rootfs_and_static_passes() {
    let Some(rootfs) = bullseye_or_skip("new_glibc_binary_fails_in_a_bullseye_rootfs") else {
        return;
    };
    let Some((dynamic, fixed)) = programs() else {
        return;
    };
    let files = env_files(&[
        ("bin/needs234", 0o755, &dynamic),
        ("bin/static-hello", 0o755, &fixed),
    ]);

    // The dynamic binary, built against glibc 2.36, cannot load on 2.31.
    let p = Project::new("set -e\ncat /etc/debian_version\nneeds234\n", &files);
    let mut opts = p.options(Isolation::Namespace);
    opts.rootfs = Some(RootfsSource::Dir(rootfs.clone()));
    let (outcome, lines) = run(&opts);
    assert!(!outcome.passed, "{lines:?}");
    assert_eq!(outcome.failed_step, Some(Step::Script));
    assert_eq!(outcome.rootfs_glibc, Some("2.31".parse().unwrap()));
    assert!(lines.iter().any(|l| l.starts_with("11.")), "{lines:?}");
    let log = std::fs::read_to_string(&opts.log_path).unwrap();
    assert!(log.contains("version `GLIBC_2.34' not found"), "{log}");
    assert!(
        outcome.summary().contains("rootfs glibc 2.31"),
        "{}",
        outcome.summary()
    );

    // Control: the same binary runs in the host sandbox (glibc 2.36).
    let mut host = opts.clone();
    host.rootfs = None;
    let (outcome, lines) = run(&host);
    assert!(outcome.passed, "{lines:?}");

    // The static one passes in the old userland.
    let p = Project::new("set -e\nstatic-hello\n", &files);
    let mut opts = p.options(Isolation::Namespace);
    opts.rootfs = Some(RootfsSource::Dir(rootfs));
    let (outcome, lines) = run(&opts);
    assert!(outcome.passed, "{lines:?}");
    assert!(lines.iter().any(|l| l == "hello from C"));
}

/// A `docker save` tarball made from the bullseye directory (one layer), plus a second layer
/// with a whiteout, unpacked into the cache and used as the sandbox's root.
#[test]
fn docker_save_tarball_of_bullseye() {
    let Some(rootfs) = bullseye_or_skip("docker_save_tarball_of_bullseye") else {
        return;
    };
    let Some((_, fixed)) = programs() else { return };
    let files = env_files(&[("bin/static-hello", 0o755, &fixed)]);
    let p = Project::new(
        "set -e\nstatic-hello\ntest ! -e /etc/debian_version\ntest -f /etc/os-release\necho whiteout-ok\n",
        &files,
    );
    let image = p.tmp.path().join("image");
    std::fs::create_dir_all(image.join("l1")).unwrap();
    std::fs::create_dir_all(image.join("l2")).unwrap();
    let status = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        // Unprivileged, a few files (/etc/shadow, /root) cannot be read: not needed here.
        .args([
            "--exclude=./dev/*",
            "--exclude=./proc/*",
            "--ignore-failed-read",
            "--warning=no-failed-read",
            "-cf",
        ])
        .arg(image.join("l1/layer.tar"))
        .arg(".")
        .status_in_time()
        .unwrap();
    assert!(status.success());
    let mut l2 = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o644);
    l2.append_data(&mut h, "etc/.wh.debian_version", &[][..])
        .unwrap();
    std::fs::write(image.join("l2/layer.tar"), l2.into_inner().unwrap()).unwrap();
    std::fs::write(
        image.join("manifest.json"),
        r#"[{"Config":"config.json","RepoTags":["bullseye:test"],"Layers":["l1/layer.tar","l2/layer.tar"]}]"#,
    )
    .unwrap();
    std::fs::write(
        image.join("config.json"),
        r#"{"architecture":"amd64","os":"linux"}"#,
    )
    .unwrap();
    let tarball = p.tmp.path().join("bullseye-image.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&image)
        .arg("-cf")
        .arg(&tarball)
        .args([
            "manifest.json",
            "config.json",
            "l1/layer.tar",
            "l2/layer.tar",
        ])
        .status_in_time()
        .unwrap();
    assert!(status.success());
    std::fs::remove_dir_all(&image).unwrap();

    let mut opts = p.options(Isolation::Namespace);
    opts.rootfs = Some(RootfsSource::from_path(&tarball));
    assert!(matches!(opts.rootfs, Some(RootfsSource::Tarball(_))));
    let (outcome, lines) = run(&opts);
    assert!(outcome.passed, "{lines:?}");
    assert!(lines.iter().any(|l| l == "whiteout-ok"));
    assert_eq!(outcome.rootfs_glibc, Some("2.31".parse().unwrap()));
    let cache = opts.rootfs_cache_dir.clone().unwrap();
    assert_eq!(
        std::fs::read_dir(&cache).unwrap().count(),
        1,
        "one cached unpack"
    );
}

/// The static audit for a glibc 2.31 target and the run in the glibc 2.31 userland agree: the
/// binary built on glibc 2.36 is rejected by both, the static one accepted by both.
#[test]
fn audit_verdict_for_glibc_2_31_agrees_with_the_bullseye_run() {
    let Some(rootfs) =
        bullseye_or_skip("audit_verdict_for_glibc_2_31_agrees_with_the_bullseye_run")
    else {
        return;
    };
    let Some((dynamic, fixed)) = programs() else {
        return;
    };
    let target = envship_spec::Target::builtin("rhel8")
        .unwrap()
        .with_overrides(&envship_spec::TargetOverrides {
            glibc: Some("2.31".into()),
            ..Default::default()
        })
        .unwrap();
    for (name, bytes) in [("needs234", &dynamic), ("static-hello", &fixed)] {
        let files = env_files(&[(&format!("bin/{name}"), 0o755, bytes)]);
        // The audit looks at the files the archive holds.
        let prefix = tempfile::tempdir().unwrap();
        for (path, mode, content) in &files {
            let dst = prefix.path().join(path);
            std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
            std::fs::write(&dst, content).unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        let mut audit_opts = envship_audit::AuditOptions::new(target.clone());
        audit_opts.build_prefix = Some(String::new());
        let report = envship_audit::audit(prefix.path(), &audit_opts, &envship_sandbox::NoProgress)
            .unwrap_or_else(|e| panic!("audit: {:?}", miette::Report::new(e)));

        let p = Project::new(&format!("set -e\n{name}\n"), &files);
        let mut opts = p.options(Isolation::Namespace);
        opts.rootfs = Some(RootfsSource::Dir(rootfs.clone()));
        let (outcome, lines) = run(&opts);
        assert_eq!(
            report.passed(),
            outcome.passed,
            "{name}: audit passed={} ({:?}), run: {} {lines:?}",
            report.passed(),
            report.findings,
            outcome.summary()
        );
        assert_eq!(outcome.passed, name == "static-hello", "{name}");
    }
}
