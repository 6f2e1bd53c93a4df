use crate::{env_file, lock_request};
use envship_env::{lock, LockError};
use envship_spec::{EnvironmentFile, NoProgress, Target};
use envship_test_support::{ArchiveFormat, FixtureChannel, LocalChannel, PackageBuilder};

fn index4() -> FixtureChannel {
    FixtureChannel::from_repodata(&[("repodata/conda-tests_index4.json", "linux-64")])
}

#[test]
fn index4_python36_numpy_for_lcls_rhel6() {
    let channel = index4();
    let dir = tempfile::tempdir().unwrap();
    let file = env_file(
        dir.path(),
        &format!(
            "name: py36\nchannels:\n  - {}\ndependencies:\n  - python=3.6\n  - numpy\n",
            channel.url()
        ),
    );
    let target = Target::builtin("lcls-rhel6").unwrap();
    let mut req = lock_request(dir.path());
    req.explicit = Some(dir.path().join("explicit.txt"));
    let out = lock(&file, &target, &req, &NoProgress).unwrap();
    let names: Vec<String> = out
        .packages
        .iter()
        .map(|p| format!("{}={}", p.name, p.version))
        .collect();
    // A reference solve of the same input (conda's own test data) gives these 21 records.
    assert_eq!(out.packages.len(), 21, "{names:?}");
    assert!(names.contains(&"python=3.6.6".to_string()), "{names:?}");
    assert!(names.contains(&"numpy=1.15.0".to_string()), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("mkl=")), "{names:?}");
    assert!(!out.reused);

    // The lock is a rattler lock file that reads back to the same records.
    let records = envship_env::lock::read_lock_records(&out.lock_path, &target).unwrap();
    assert_eq!(records.len(), 21);
    let text = fs_err::read_to_string(&out.lock_path).unwrap();
    assert!(
        text.contains("__glibc=2.12"),
        "virtual packages recorded:\n{}",
        &text[..600.min(text.len())]
    );

    // The explicit file lists every package once, with its md5.
    let explicit = fs_err::read_to_string(dir.path().join("explicit.txt")).unwrap();
    assert!(explicit.contains("@EXPLICIT"));
    assert_eq!(
        explicit.lines().filter(|l| l.contains(".tar.bz2#")).count(),
        21
    );

    // Unchanged input: the lock is kept, not solved again.
    let again = lock(&file, &target, &lock_request(dir.path()), &NoProgress).unwrap();
    assert!(again.reused);
    assert_eq!(again.packages, out.packages);

    // A different target is a different request.
    let rhel7 = Target::builtin("rhel7").unwrap();
    let other = lock(&file, &rhel7, &lock_request(dir.path()), &NoProgress).unwrap();
    assert!(!other.reused);

    // --update solves again even when up to date.
    let mut upd = lock_request(dir.path());
    upd.update = true;
    assert!(!lock(&file, &rhel7, &upd, &NoProgress).unwrap().reused);
}

/// A small base channel with what libfaiss needs besides the pytorch channel.
fn faiss_base() -> LocalChannel {
    let base = LocalChannel::new();
    for (name, version) in [
        ("libgcc-ng", "11.2.0"),
        ("libstdcxx-ng", "11.2.0"),
        ("mkl", "2021.4.0"),
    ] {
        // Uploaded 2017-01-01, before anything in the pytorch snapshot.
        base.add(
            &PackageBuilder::new(name, version).timestamp_ms(1_483_228_800_000),
            ArchiveFormat::TarBz2,
        );
    }
    base.index();
    base.strip_indexed_timestamps();
    base
}

#[test]
fn pytorch_glibc_217_builds_are_skipped_for_lcls_rhel6() {
    let pytorch =
        FixtureChannel::from_repodata(&[("repodata/pytorch_linux-64.repodata.json", "linux-64")]);
    let base = faiss_base();
    let dir = tempfile::tempdir().unwrap();
    let file = env_file(
        dir.path(),
        &format!(
            "channels:\n  - {}\n  - {}\ndependencies:\n  - libfaiss\n",
            pytorch.url(),
            base.url()
        ),
    );
    let pick = |target: &str| {
        let t = Target::builtin(target).unwrap();
        let mut req = lock_request(dir.path());
        req.lock_path = Some(dir.path().join(format!("{target}.lock")));
        let out = lock(&file, &t, &req, &NoProgress).unwrap();
        let f = out
            .packages
            .iter()
            .find(|p| p.name == "libfaiss")
            .unwrap()
            .clone();
        format!("{}-{}", f.version, f.build)
    };
    assert_eq!(pick("lcls-rhel6"), "1.7.3-h2bc3f7f_0_cpu");
    assert_eq!(pick("rhel7"), "1.7.4-h2bc3f7f_0_cpu");
}

#[test]
fn unsatisfiable_because_of_glibc_says_so() {
    let pytorch =
        FixtureChannel::from_repodata(&[("repodata/pytorch_linux-64.repodata.json", "linux-64")]);
    let base = faiss_base();
    let dir = tempfile::tempdir().unwrap();
    let file = env_file(
        dir.path(),
        &format!(
            "channels:\n  - {}\n  - {}\ndependencies:\n  - libfaiss=1.7.4\n",
            pytorch.url(),
            base.url()
        ),
    );
    let t = Target::builtin("lcls-rhel6").unwrap();
    let err = lock(&file, &t, &lock_request(dir.path()), &NoProgress).unwrap_err();
    match &err {
        LockError::Unsatisfiable {
            help, explanation, ..
        } => {
            assert!(help.contains("libfaiss"), "{help}");
            assert!(help.contains("__glibc >=2.17"), "{help}");
            assert!(help.contains("target lcls-rhel6 has glibc 2.12"), "{help}");
            assert!(!explanation.is_empty());
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        !dir.path().join("envship.lock").exists(),
        "no lock written on failure"
    );
}

#[test]
fn template_token_file_fails_naming_the_token() {
    let path = envship_test_support::fixture("envs/slac-lcls__relmanage__env_create_py2.yml");
    let err = EnvironmentFile::from_path(&path).unwrap_err();
    let text = format!("{err}");
    assert!(text.contains("PYTHONVER"), "{text}");
}

#[test]
fn exclude_newer_solves_as_of_a_date() {
    let pytorch =
        FixtureChannel::from_repodata(&[("repodata/pytorch_linux-64.repodata.json", "linux-64")]);
    let base = faiss_base();
    let dir = tempfile::tempdir().unwrap();
    let file = env_file(
        dir.path(),
        &format!(
            "channels:\n  - {}\n  - {}\ndependencies:\n  - libfaiss\n",
            pytorch.url(),
            base.url()
        ),
    );
    let t = Target::builtin("rhel7").unwrap();
    let mut req = lock_request(dir.path());
    // libfaiss 1.7.4 was uploaded in April 2023; as of 2023-01-01 only 1.7.3 exists.
    req.exclude_newer = Some(envship_env::lock::parse_exclude_newer("2023-01-01").unwrap());
    let out = lock(&file, &t, &req, &NoProgress).unwrap();
    let f = out.packages.iter().find(|p| p.name == "libfaiss").unwrap();
    assert_eq!(f.version, "1.7.3");
}

/// `chan::pkg` names a channel that is not in `channels:`; with `--channel-alias` pointing at a
/// mirror, that channel must come from the mirror too (rattler resolves it against the public
/// alias at parse time), and the lock must record the mirror's URLs.
#[test]
fn channel_prefixed_specs_follow_the_channel_alias() {
    let channel = index4();
    let mirror = tempfile::tempdir().unwrap();
    for subdir in ["linux-64", "noarch"] {
        let to = mirror.path().join("idx").join(subdir);
        fs_err::create_dir_all(&to).unwrap();
        fs_err::copy(
            channel.dir.path().join(subdir).join("repodata.json"),
            to.join("repodata.json"),
        )
        .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = env_file(
        dir.path(),
        "name: aliased\nchannels:\n  - nodefaults\ndependencies:\n  - idx::python=3.6\n  - idx::numpy\n",
    );
    let target = Target::builtin("lcls-rhel6").unwrap();
    let mut req = lock_request(dir.path());
    let alias = envship_test_support::file_url(mirror.path());
    req.channel_alias = Some(alias.to_string());
    let out = lock(&file, &target, &req, &NoProgress).unwrap();
    assert_eq!(out.packages.len(), 21);
    let mirror_idx = format!("{alias}idx/");
    for p in &out.packages {
        assert!(
            p.url.starts_with(&mirror_idx),
            "{} comes from {} instead of the mirror {mirror_idx}",
            p.name,
            p.url
        );
    }

    // Without the alias, `idx` means the public server, which offline mode cannot reach.
    let err = lock(&file, &target, &lock_request(dir.path()), &NoProgress).unwrap_err();
    assert!(
        err.to_string().contains("conda.anaconda.org/idx"),
        "unexpected error: {err}"
    );
}
