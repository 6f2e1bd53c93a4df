//! `lock --from`: other tools' locks from ../shared/fixtures/locks become envship.lock files that
//! py-rattler reads back with the same linux-64 URLs, a lock that cannot run on the target is
//! refused naming the package, and an @EXPLICIT file over a local channel builds offline.
use envship_test_support::Deadline;

use std::{collections::BTreeSet, path::Path, process::Command, sync::Arc};

use envship_env::{
    build,
    build::BuildRequest,
    lock::{import_lock, imported_environment_file, ImportRequest, ImportedFormat},
    pip::PipOptions,
    LockError,
};
use envship_spec::{NoProgress, Target};
use envship_test_support::{fixture, ArchiveFormat, LocalChannel, PackageBuilder};

use crate::lock_request;

fn request(from: &Path, dir: &Path) -> ImportRequest {
    ImportRequest {
        from: from.to_path_buf(),
        environment: None,
        lock_path: dir.join("envship.lock"),
        cache_dir: Some(dir.join("cache")),
    }
}

/// The linux-64 conda URLs of a conda-lock v1 file (`package:` entries) or a pixi.lock
/// (`environments.default.packages.linux-64`), read from the YAML without rattler_lock.
fn source_urls(path: &Path) -> BTreeSet<String> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(&fs_err::read_to_string(path).unwrap()).unwrap();
    let mut urls = BTreeSet::new();
    if let Some(packages) = doc.get("package").and_then(|p| p.as_sequence()) {
        for p in packages {
            if p.get("manager").and_then(|m| m.as_str()) == Some("conda")
                && p.get("platform").and_then(|m| m.as_str()) == Some("linux-64")
            {
                urls.insert(p.get("url").unwrap().as_str().unwrap().to_string());
            }
        }
    } else {
        let linux = &doc["environments"]["default"]["packages"]["linux-64"];
        for p in linux.as_sequence().unwrap() {
            if let Some(url) = p.get("conda").and_then(|u| u.as_str()) {
                urls.insert(url.to_string());
            }
        }
    }
    urls
}

/// The linux-64 conda URLs py-rattler reads from `lock`.
fn pyrattler_urls(python: &Path, lock: &Path) -> BTreeSet<String> {
    let script = "import sys, rattler\n\
        env = rattler.LockFile.from_path(sys.argv[1]).default_environment()\n\
        [p] = [p for p in env.platforms() if p.subdir == rattler.Platform('linux-64')]\n\
        for r in env.conda_repodata_records_for_platform(p): print(r.url)\n";
    let out = Command::new(python)
        .args(["-c", script])
        .arg(lock)
        .output_in_time()
        .unwrap();
    assert!(
        out.status.success(),
        "py-rattler: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn conda_lock_and_pixi_locks_import_with_the_same_urls() {
    let Some(python) = std::env::var_os("ENVSHIP_TEST_PYRATTLER_PYTHON") else {
        envship_test_support::skip(
            "conda_lock_and_pixi_locks_import_with_the_same_urls",
            "ENVSHIP_TEST_PYRATTLER_PYTHON (a python with py-rattler; .ci/run makes one) is not set",
        );
        return;
    };
    let target = Target::builtin("rhel8").unwrap();
    for (name, format, pip) in [
        (
            "locks/condalock_cl_pip-deps.conda-lock.yml",
            ImportedFormat::CondaLock,
            4,
        ),
        (
            "locks/condalock_cl_test-lockfile.conda-lock.yml",
            ImportedFormat::CondaLock,
            3,
        ),
        (
            "locks/pixi_examples_lightgbm.pixi.lock",
            ImportedFormat::Pixi,
            0,
        ),
        (
            "locks/condalock_rattler_v4_numpy-lock.yml",
            ImportedFormat::Pixi,
            0,
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let from = fixture(name);
        let outcome = import_lock(&request(&from, dir.path()), &target).unwrap();
        assert_eq!(outcome.format, format, "{name}");
        assert_eq!(outcome.pip.len(), pip, "{name}: {:?}", outcome.pip);
        let expected = source_urls(&from);
        assert!(!expected.is_empty(), "{name}");
        assert_eq!(outcome.packages.len(), expected.len(), "{name}");
        assert_eq!(
            pyrattler_urls(Path::new(&python), &outcome.lock_path),
            expected,
            "{name}"
        );
        // The project that is only this lock: pip packages pinned to their URLs.
        let env =
            imported_environment_file(&dir.path().join("environment.yml"), &outcome.lock_path)
                .unwrap()
                .expect("an imported lock stands in for environment.yml");
        assert!(env.dependencies.is_empty());
        assert_eq!(env.pip.len(), pip, "{name}");
        assert!(
            env.pip.iter().all(|p| p.raw.contains(" @ https://")),
            "{:?}",
            env.pip
        );
    }
}

#[test]
fn a_lock_for_a_newer_glibc_is_refused_naming_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let from = fixture("locks/condalock_rattler_v4_numpy-lock.yml");
    let err = import_lock(
        &request(&from, dir.path()),
        &Target::builtin("lcls-rhel6").unwrap(),
    )
    .unwrap_err();
    let LockError::ImportTarget {
        package,
        dependency,
        ..
    } = &err
    else {
        panic!("{err:?}");
    };
    assert!(dependency.starts_with("__glibc >=2.17"), "{dependency}");
    assert!(!package.is_empty());
    assert!(!dir.path().join("envship.lock").exists());
    // No linux-64 in the file and an unknown environment are errors that say what there is.
    let pixi = fixture("locks/pixi_examples_lightgbm.pixi.lock");
    let mut req = request(&pixi, dir.path());
    req.environment = Some("gpu".into());
    let err = import_lock(&req, &Target::builtin("rhel8").unwrap()).unwrap_err();
    assert!(err.to_string().contains("(it has: default)"), "{err}");
}

#[test]
fn explicit_file_over_a_local_channel_builds_offline() {
    let dir = tempfile::tempdir().unwrap();
    let channel = LocalChannel::new();
    let lib = channel.add(
        &PackageBuilder::new("libdemo", "1.0").file("lib/libdemo.txt", "demo library\n"),
        ArchiveFormat::Conda,
    );
    let tool = channel.add(
        &PackageBuilder::new("demotool", "2.0")
            .depends("libdemo >=1.0")
            .depends("__glibc >=2.12")
            .file("share/demotool.txt", "demo tool\n"),
        ArchiveFormat::TarBz2,
    );
    let url = |p: &Path| url::Url::from_file_path(p).unwrap().to_string();
    let md5 = |p: &Path| {
        let out = Command::new("md5sum").arg(p).output_in_time().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    let sha = envship_spec::digest::sha256_file(&tool).unwrap();
    let explicit = dir.path().join("spec.txt");
    fs_err::write(
        &explicit,
        format!(
            "# platform: linux-64\n@EXPLICIT\n{}#{}\n{}#sha256:{sha}\n",
            url(&lib),
            md5(&lib),
            url(&tool)
        ),
    )
    .unwrap();
    let target = Target::builtin("lcls-rhel6").unwrap();
    let outcome = import_lock(&request(&explicit, dir.path()), &target).unwrap();
    assert_eq!(outcome.format, ImportedFormat::Explicit);
    let names: Vec<&str> = outcome.packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["demotool", "libdemo"]);

    // The project is only the lock: no environment.yml, offline, nothing solved.
    let env_path = dir.path().join("environment.yml");
    let file = imported_environment_file(&env_path, &outcome.lock_path)
        .unwrap()
        .unwrap();
    let prefix = dir.path().join("prefix");
    let mut lock = lock_request(dir.path());
    lock.lock_path = Some(outcome.lock_path.clone());
    let built = build(
        &file,
        &target,
        &BuildRequest {
            prefix: prefix.clone(),
            lock,
            pip: PipOptions::default(),
            link_scripts: Default::default(),
        },
        Arc::new(NoProgress),
    )
    .unwrap();
    assert_eq!(built.installed, 2);
    assert!(built.lock.reused);
    assert_eq!(
        fs_err::read_to_string(prefix.join("share/demotool.txt")).unwrap(),
        "demo tool\n"
    );

    // A package that is neither local nor cached is named, not fetched.
    let missing = dir.path().join("missing.txt");
    fs_err::write(
        &missing,
        "@EXPLICIT\nhttps://conda.example.invalid/linux-64/ghost-1.0-h0_0.conda\n",
    )
    .unwrap();
    let err = import_lock(&request(&missing, dir.path()), &target).unwrap_err();
    assert!(err.to_string().contains("ghost-1.0-h0_0.conda"), "{err}");
    // A local archive that does not match its checksum is refused.
    let tampered = dir.path().join("tampered.txt");
    fs_err::write(
        &tampered,
        format!("@EXPLICIT\n{}#{}\n", url(&lib), "0".repeat(32)),
    )
    .unwrap();
    let err = import_lock(&request(&tampered, dir.path()), &target).unwrap_err();
    assert!(
        matches!(err, LockError::ExplicitChecksum { line: 2, .. }),
        "{err:?}"
    );
}
