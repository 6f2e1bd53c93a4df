use envship_test_support::Deadline;
use std::{path::Path, process::Command, sync::Arc};

use crate::{env_file, lock_request};
use envship_env::{
    build,
    build::{BuildOutcome, BuildRequest},
    pip::PipOptions,
    BuildError,
};
use envship_spec::{EnvironmentFile, NoProgress, Target};
use envship_test_support::{
    fixture, python::python_unavailable, ArchiveFormat, LocalChannel, PackageBuilder,
};

/// Build `file` for the built-in `target` into `prefix`, offline, with the test's cache in `dir`.
fn build_into(
    dir: &Path,
    file: &EnvironmentFile,
    target: &str,
    prefix: &Path,
) -> Result<BuildOutcome, BuildError> {
    build(
        file,
        &Target::builtin(target).unwrap(),
        &request(dir, prefix),
        Arc::new(NoProgress),
    )
}

fn request(dir: &Path, prefix: &Path) -> BuildRequest {
    BuildRequest {
        prefix: prefix.to_path_buf(),
        lock: lock_request(dir),
        pip: PipOptions {
            find_links: vec![fixture("wheels").display().to_string()],
            no_index: true,
            index_url: None,
            allow_overrides: false,
        },
        link_scripts: Default::default(),
    }
}

fn python_env_text(channel: &LocalChannel, pip: &[&str]) -> String {
    let mut text = format!(
        "name: pyenv\nchannels:\n  - {}\n  - nodefaults\ndependencies:\n  - python 3.11.*\n  - pip\n",
        channel.url()
    );
    if !pip.is_empty() {
        text.push_str("  - pip:\n");
        for p in pip {
            text.push_str(&format!("    - {p}\n"));
        }
    }
    text.push_str("variables:\n  ENVSHIP_TEST_VAR: hello\n");
    text
}

#[test]
fn python_environment_with_pip_section_offline() {
    if let Some(why) = python_unavailable() {
        envship_test_support::skip("python_environment_with_pip_section_offline", why);
        return;
    }
    let channel = envship_test_support::python::python_channel();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    let file = env_file(dir.path(), &python_env_text(&channel, &["psutil==6.1.1"]));
    let out = build_into(dir.path(), &file, "lcls-rhel6", &prefix).unwrap();
    assert_eq!(out.installed, 2);
    assert!(!out.noop);
    let pip = out.pip.as_ref().unwrap();
    let psutil = pip.packages.iter().find(|p| p.name == "psutil").unwrap();
    assert_eq!(psutil.version, "6.1.1");
    assert!(
        psutil
            .tags
            .iter()
            .any(|t| t.ends_with("manylinux2010_x86_64")),
        "{:?}",
        psutil.tags
    );
    assert!(psutil.sha256.is_some());
    assert!(pip.record_path.exists());

    // The environment's python imports the wheel, with the environment activated.
    let env = envship_env::activate::activated_environment(&prefix).unwrap();
    assert_eq!(
        env.get("ENVSHIP_TEST_VAR").map(String::as_str),
        Some("hello")
    );
    let run = Command::new("python")
        .args([
            "-c",
            "import psutil, sys; print(psutil.__version__, sys.prefix)",
        ])
        .env_clear()
        .envs(&env)
        .output_in_time()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.starts_with("6.1.1 "), "{stdout}");
    assert!(
        stdout.trim().ends_with(&prefix.display().to_string()),
        "{stdout}"
    );

    // conda-meta as conda writes it: records, history, state with the variables.
    assert!(prefix.join("conda-meta/history").exists());
    let state = fs_err::read_to_string(prefix.join("conda-meta/state")).unwrap();
    assert!(state.contains("ENVSHIP_TEST_VAR"), "{state}");
    // noarch pip got its entry point.
    assert!(prefix.join("bin/pip").exists());

    // Unchanged lock: nothing to do.
    let again = build_into(dir.path(), &file, "lcls-rhel6", &prefix).unwrap();
    assert!(again.noop, "{again:?}");
    assert_eq!(again.installed, 0);
}

#[test]
fn pip_refuses_wheels_the_target_cannot_run() {
    if let Some(why) = python_unavailable() {
        envship_test_support::skip("pip_refuses_wheels_the_target_cannot_run", why);
        return;
    }
    let channel = envship_test_support::python::python_channel();
    let dir = tempfile::tempdir().unwrap();
    let file = env_file(
        dir.path(),
        &python_env_text(&channel, &["markupsafe==2.1.5"]),
    );

    // manylinux2014 (glibc 2.17) only: refused for lcls-rhel6 even though this host could run it.
    let prefix6 = dir.path().join("rhel6");
    let err = build_into(dir.path(), &file, "lcls-rhel6", &prefix6).unwrap_err();
    match &err {
        BuildError::Pip(envship_env::pip::PipError::Unsatisfiable { entry, target, .. }) => {
            assert_eq!(entry, "markupsafe==2.1.5");
            assert_eq!(target, "lcls-rhel6");
        }
        other => panic!("unexpected {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("markupsafe") && msg.contains("lcls-rhel6"),
        "{msg}"
    );

    // Accepted for rhel7.
    let rhel7 = Target::builtin("rhel7").unwrap();
    let prefix7 = dir.path().join("rhel7");
    let mut req = request(dir.path(), &prefix7);
    req.lock.lock_path = Some(dir.path().join("rhel7.lock"));
    let out = build(&file, &rhel7, &req, Arc::new(NoProgress)).unwrap();
    let pkgs = &out.pip.unwrap().packages;
    assert!(pkgs
        .iter()
        .any(|p| p.name.eq_ignore_ascii_case("markupsafe") && p.version == "2.1.5"));
}

/// A base channel with what defaults' zlib depends on.
fn libgcc_channel() -> LocalChannel {
    let base = LocalChannel::new();
    base.add(
        &PackageBuilder::new("libgcc-ng", "11.2.0"),
        ArchiveFormat::TarBz2,
    );
    base.index();
    base
}

#[test]
fn fixture_zlib_packages_install_or_fail_clearly() {
    let base = libgcc_channel();
    for archive in [
        "zlib-1.2.11-h7b6447c_3.tar.bz2",
        "zlib-1.2.11-h7b6447c_3.conda",
    ] {
        let channel = LocalChannel::new();
        channel.add_file(
            &fixture(&format!("packages/linux-64/{archive}")),
            "linux-64",
        );
        channel.index();
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("prefix");
        let file = env_file(
            dir.path(),
            &format!(
                "channels:\n  - {}\n  - {}\ndependencies:\n  - zlib\n",
                channel.url(),
                base.url()
            ),
        );
        match build_into(dir.path(), &file, "lcls-rhel6", &prefix) {
            Ok(_) => {
                // Installed correctly: placeholder replaced, symlinks as paths.json says.
                let pc = fs_err::read_to_string(prefix.join("lib/pkgconfig/zlib.pc")).unwrap();
                assert!(
                    pc.contains(&prefix.display().to_string()),
                    "{archive}: {pc}"
                );
                assert!(!pc.contains("placehold"), "{archive}: {pc}");
                let link = prefix.join("lib/libz.so");
                assert!(
                    fs_err::symlink_metadata(&link)
                        .unwrap()
                        .file_type()
                        .is_symlink(),
                    "{archive}: lib/libz.so must be a symlink"
                );
                eprintln!("{archive}: installed correctly");
            }
            Err(e) => {
                let msg = format!("{e}");
                assert!(
                    msg.contains("zlib"),
                    "{archive}: the error names the package: {msg}"
                );
                assert!(
                    !prefix.exists(),
                    "{archive}: nothing half-installed at {}",
                    prefix.display()
                );
                eprintln!("{archive}: refused: {msg}");
            }
        }
    }
}

#[test]
fn fixture_noarch_and_linux_packages_install() {
    let channel = LocalChannel::new();
    for (archive, subdir) in [
        (
            "packages/linux-64/xtensor-io-0.10.3-hb585cf6_0.tar.bz2",
            "linux-64",
        ),
        ("packages/noarch/cph_test_data-0.0.1-0.tar.bz2", "noarch"),
        (
            "packages/noarch/_r-mutex-1.0.1-anacondar_1.tar.bz2",
            "noarch",
        ),
    ] {
        channel.add_file(&fixture(archive), subdir);
    }
    channel.index();
    // xtensor-io's dependencies, as empty packages.
    let base = LocalChannel::new();
    for (name, version) in [
        ("blosc", "1.21.0"),
        ("cpp-filesystem", "1.3.8"),
        ("highfive", "2.1.1"),
        ("libgcc-ng", "11.2.0"),
        ("libsndfile", "1.0.31"),
        ("libstdcxx-ng", "11.2.0"),
        ("openimageio", "2.1.20"),
        ("xtensor", "0.21.10"),
        ("zlib", "1.2.13"),
    ] {
        base.add(&PackageBuilder::new(name, version), ArchiveFormat::TarBz2);
    }
    base.index();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    let file = env_file(
        dir.path(),
        &format!(
            "channels:\n  - {}\n  - {}\ndependencies:\n  - xtensor-io\n  - cph_test_data\n  - _r-mutex\n",
            channel.url(),
            base.url()
        ),
    );
    match build_into(dir.path(), &file, "lcls-rhel6", &prefix) {
        Ok(out) => {
            assert!(out.packages >= 3);
            // xtensor-io's text placeholders now hold the prefix.
            let cmake = walk_find(&prefix, "xtensor-ioConfig.cmake");
            if let Some(p) = cmake {
                let text = fs_err::read_to_string(&p).unwrap();
                assert!(!text.contains("placehold"), "{}", p.display());
            }
        }
        Err(BuildError::Lock(e)) => {
            panic!("lock failed (fixture dependency missing from the base channel?): {e:?}")
        }
        Err(e) => panic!("{e:?}"),
    }
}

fn walk_find(root: &Path, name: &str) -> Option<std::path::PathBuf> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs_err::read_dir(&d).ok()? {
            let e = e.ok()?;
            let p = e.path();
            if p.file_name().is_some_and(|n| n == name) {
                return Some(p);
            }
            if e.file_type().ok()?.is_dir() {
                stack.push(p);
            }
        }
    }
    None
}

#[test]
fn corrupted_cache_entry_is_replaced_not_installed() {
    let channel = LocalChannel::new();
    channel.add(
        &PackageBuilder::new("payload", "1.0").file("share/payload.txt", "the real contents\n"),
        ArchiveFormat::Conda,
    );
    channel.index();
    let dir = tempfile::tempdir().unwrap();
    let file = env_file(
        dir.path(),
        &format!("channels: ['{}']\ndependencies: [payload]\n", channel.url()),
    );
    let p1 = dir.path().join("p1");
    build_into(dir.path(), &file, "lcls-rhel6", &p1).unwrap();
    // Damage the extracted package in the shared cache.
    let cached = walk_find(&dir.path().join("cache"), "payload.txt").expect("cache entry");
    let _ = fs_err::remove_file(&cached);
    fs_err::write(&cached, "tampered\n").unwrap();
    let p2 = dir.path().join("p2");
    build_into(dir.path(), &file, "lcls-rhel6", &p2).unwrap();
    assert_eq!(
        fs_err::read_to_string(p2.join("share/payload.txt")).unwrap(),
        "the real contents\n"
    );
    // p1 shares the file through a hardlink only if the cache entry was not tampered through it.
    assert_eq!(
        fs_err::read_to_string(p1.join("share/payload.txt")).unwrap(),
        "the real contents\n"
    );
}

#[test]
fn changed_lock_is_an_incremental_transaction() {
    let channel = LocalChannel::new();
    for (name, v) in [("a", "1.0"), ("a", "2.0"), ("b", "1.0")] {
        channel.add(
            &PackageBuilder::new(name, v).file(&format!("share/{name}.txt"), v),
            ArchiveFormat::Conda,
        );
    }
    channel.index();
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    let f1 = env_file(
        dir.path(),
        &format!(
            "channels: ['{}']\ndependencies: ['a 1.0', b]\n",
            channel.url()
        ),
    );
    let out = build_into(dir.path(), &f1, "lcls-rhel6", &prefix).unwrap();
    assert_eq!(out.installed, 2);
    let f2 = env_file(
        dir.path(),
        &format!(
            "channels: ['{}']\ndependencies: ['a 2.0', b]\n",
            channel.url()
        ),
    );
    let out = build_into(dir.path(), &f2, "lcls-rhel6", &prefix).unwrap();
    assert_eq!((out.installed, out.removed), (1, 1), "only `a` changes");
    assert_eq!(
        fs_err::read_to_string(prefix.join("share/a.txt")).unwrap(),
        "2.0"
    );
}
