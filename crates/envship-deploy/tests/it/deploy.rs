use envship_test_support::{ChildDeadline, Deadline};
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use envship_deploy::{self as deploy, record, DeployError, DeployOptions, RollbackOptions, STEPS};
use envship_publish::{GithubConfig, RetryPolicy, Secret};
use envship_spec::NoProgress;

use crate::common::{packed_env, packed_env_as, rhel6, GOOD_TEST};

pub(crate) fn opts(source: &Path, root: &Path) -> DeployOptions {
    DeployOptions {
        source: source.to_str().unwrap().into(),
        root: root.to_path_buf(),
        name: None,
        target: None,
        ticket: Some("CHG-42".into()),
        test: false,
        test_timeout: Some(Duration::from_secs(120)),
        dry_run: false,
        force: false,
        host: None,
        github: GithubConfig {
            api_url: "http://127.0.0.1:9".into(),
            repo: "unused/unused".into(),
            token: None,
            retry: RetryPolicy {
                base_delay: Duration::from_millis(10),
                ..RetryPolicy::default()
            },
        },
        jobs: 2,
        no_link: false,
        trust: Default::default(),
    }
}

pub(crate) fn current(root: &Path, name: &str) -> Option<String> {
    std::fs::read_link(root.join(name).join("current"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// The environment `current` points at is complete and works: its test passes.
pub(crate) fn assert_current_works(root: &Path, name: &str) {
    let env = root.join(name).join("current");
    for f in [
        "bin/activate",
        "bin/hello",
        "share/envship/run-test.sh",
        "share/payload.bin",
        "conda-meta/hello-1.0-0.json",
    ] {
        assert!(env.join(f).exists(), "{} missing in current", f);
    }
    let env = env.canonicalize().unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(r#"source "$1/bin/activate" && bash "$1/share/envship/run-test.sh""#)
        .arg("t")
        .arg(&env)
        .output_in_time()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every path under `root` with its type, content hash or link target, and mtime.
pub(crate) fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let e = e.unwrap();
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mtime = m.modified().unwrap();
            let desc = if m.file_type().is_symlink() {
                format!("link {:?}", std::fs::read_link(&p).unwrap())
            } else if m.is_dir() {
                walk(&p, base, out);
                format!("dir {mtime:?}")
            } else {
                format!(
                    "file {} {mtime:?}",
                    crate::common::sha256(&std::fs::read(&p).unwrap())
                )
            };
            out.insert(p.strip_prefix(base).unwrap().to_path_buf(), desc);
        }
    }
    let mut out = BTreeMap::new();
    out.insert(
        PathBuf::from("."),
        format!(
            "{:?}",
            std::fs::metadata(root).ok().map(|m| m.modified().unwrap())
        ),
    );
    walk(root, root, &mut out);
    out
}

fn leftovers(root: &Path, name: &str) -> Vec<String> {
    let env_dir = root.join(name);
    std::fs::read_dir(&env_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && !deploy::live::is_version_record(&env_dir, n))
        .collect()
}

#[test]
fn deploy_second_deploy_rollback_and_records() {
    let dist = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let a1 = packed_env(dist.path(), "psana", "1.0", GOOD_TEST, rhel6());
    let a2 = packed_env(dist.path(), "psana", "1.1", GOOD_TEST, rhel6());

    let out = deploy::deploy(&opts(&a1, root.path()), &NoProgress).unwrap();
    assert_eq!(
        (
            out.name.as_str(),
            out.version.as_str(),
            out.previous.as_deref()
        ),
        ("psana", "1.0", None)
    );
    assert_eq!(current(root.path(), "psana").as_deref(), Some("1.0"));
    assert_current_works(root.path(), "psana");

    let mut o2 = opts(&a2, root.path());
    o2.test = true;
    let out2 = deploy::deploy(&o2, &NoProgress).unwrap();
    assert_eq!(out2.previous.as_deref(), Some("1.0"));
    assert_eq!(current(root.path(), "psana").as_deref(), Some("1.1"));
    assert!(
        root.path().join("psana/1.0/bin/hello").exists(),
        "previous versions are kept"
    );
    let log = std::fs::read_to_string(out2.test_log.as_ref().unwrap()).unwrap();
    assert!(
        log.contains("test ok in") && log.contains("psana/1.1"),
        "{log}"
    );
    // Run by the sandbox's runner: activated, then the script, each step announced.
    assert!(log.contains("envship: running bash "), "{log}");
    assert_current_works(root.path(), "psana");

    // The same version again is refused without --force, and replaced with it.
    let err = deploy::deploy(&opts(&a2, root.path()), &NoProgress).unwrap_err();
    assert!(matches!(err, DeployError::Exists { .. }), "{err:?}");
    let mut forced = opts(&a2, root.path());
    forced.force = true;
    deploy::deploy(&forced, &NoProgress).unwrap();
    assert_eq!(current(root.path(), "psana").as_deref(), Some("1.1"));
    assert_current_works(root.path(), "psana");

    let rb = deploy::rollback(&RollbackOptions {
        root: root.path().into(),
        name: "psana".into(),
        to: None,
        ticket: Some("CHG-43".into()),
        dry_run: false,
    })
    .unwrap();
    assert_eq!(rb.version, "1.0");
    assert_eq!(current(root.path(), "psana").as_deref(), Some("1.0"));
    assert_current_works(root.path(), "psana");

    let recs = record::read(root.path()).unwrap();
    let summary: Vec<_> = recs
        .iter()
        .map(|r| {
            (
                r.action.as_str(),
                r.version.as_str(),
                r.previous.as_deref(),
                r.result.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("deploy", "1.0", None, "success"),
            ("deploy", "1.1", Some("1.0"), "success"),
            ("deploy", "1.1", Some("1.1"), "failed"),
            ("deploy", "1.1", Some("1.1"), "success"),
            ("rollback", "1.0", Some("1.1"), "success"),
        ]
    );
    let sha = crate::common::sha256(&std::fs::read(&a1).unwrap());
    assert_eq!(recs[0].sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(recs[0].ticket.as_deref(), Some("CHG-42"));
    assert_eq!(recs[4].ticket.as_deref(), Some("CHG-43"));
    assert!(!recs[0].user.is_empty() && !recs[0].host.is_empty());
    assert!(recs[1].test_log.is_some());
    assert!(
        leftovers(root.path(), "psana").is_empty(),
        "{:?}",
        leftovers(root.path(), "psana")
    );
}

#[test]
fn dry_run_changes_nothing() {
    let dist = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let a1 = packed_env(dist.path(), "e", "1", GOOD_TEST, rhel6());
    let a2 = packed_env(dist.path(), "e", "2", GOOD_TEST, rhel6());
    // Into a root that does not exist yet.
    let fresh = root.path().join("not-yet");
    let mut o = opts(&a1, &fresh);
    o.dry_run = true;
    o.test = true;
    let out = deploy::deploy(&o, &NoProgress).unwrap();
    assert!(out.dry_run);
    assert!(!fresh.exists(), "dry run created the root");
    let text = out.actions.join("\n");
    for word in [
        "verified",
        "lock",
        "extract",
        "relocate",
        "rename",
        "run",
        "switch",
        "append a record",
    ] {
        assert!(text.contains(word), "no `{word}` in:\n{text}");
    }
    // Over an existing deployment: nothing changes, not even a directory's mtime.
    deploy::deploy(&opts(&a1, root.path()), &NoProgress).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    let before = snapshot(root.path());
    let mut o = opts(&a2, root.path());
    o.dry_run = true;
    let out = deploy::deploy(&o, &NoProgress).unwrap();
    assert!(
        out.actions.iter().any(|a| a.contains("from 1 to 2")),
        "{:?}",
        out.actions
    );
    let rb = deploy::rollback(&RollbackOptions {
        root: root.path().into(),
        name: "e".into(),
        to: Some("1".into()),
        ticket: None,
        dry_run: true,
    });
    assert!(rb.is_err(), "1 is already current");
    assert_eq!(before, snapshot(root.path()));
}

#[test]
fn tampered_archive_is_refused_and_nothing_is_created() {
    let dist = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let a = packed_env(dist.path(), "e", "1", GOOD_TEST, rhel6());
    let mut data = std::fs::read(&a).unwrap();
    let n = data.len() / 2;
    data[n] ^= 0x40;
    std::fs::write(&a, &data).unwrap();
    let err = deploy::deploy(&opts(&a, root.path()), &NoProgress).unwrap_err();
    assert!(matches!(err, DeployError::Checksum { .. }), "{err:?}");
    assert!(
        err.to_string().contains("does not match its sha256"),
        "{err}"
    );
    assert!(!root.path().join("e").exists());
    // Without its sidecars, an archive cannot be verified.
    let b = packed_env(dist.path(), "f", "1", GOOD_TEST, rhel6());
    std::fs::remove_file(dist.path().join("f-1-lcls-rhel6-linux-64.manifest.json")).unwrap();
    let err = deploy::deploy(&opts(&b, root.path()), &NoProgress).unwrap_err();
    assert!(matches!(err, DeployError::Manifest { .. }), "{err:?}");
}

#[test]
fn incompatible_host_is_refused() {
    let dist = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let t = envship_pack::ManifestTarget {
        name: "rhel9".into(),
        subdir: "linux-64".into(),
        glibc: Some("2.34".into()),
    };
    let a = packed_env(dist.path(), "e", "1", GOOD_TEST, t);
    let mut o = opts(&a, root.path());
    o.host = Some(envship_spec::Target::builtin("lcls-rhel6").unwrap());
    let err = deploy::deploy(&o, &NoProgress).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("glibc 2.12 (older than 2.34)"), "{msg}");
    assert!(!root.path().join("e").exists());
}

#[test]
fn failing_test_does_not_switch() {
    let dist = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let good = packed_env(dist.path(), "e", "1", GOOD_TEST, rhel6());
    let bad = packed_env(
        dist.path(),
        "e",
        "2",
        "echo failing on purpose\nexit 3\n",
        rhel6(),
    );
    deploy::deploy(&opts(&good, root.path()), &NoProgress).unwrap();
    let mut o = opts(&bad, root.path());
    o.test = true;
    let err = deploy::deploy(&o, &NoProgress).unwrap_err();
    let DeployError::TestFailed { log, status, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(status.contains('3'), "{status}");
    assert!(std::fs::read_to_string(log)
        .unwrap()
        .contains("failing on purpose"));
    assert_eq!(current(root.path(), "e").as_deref(), Some("1"));
    assert!(
        !root.path().join("e/2").exists(),
        "the untested version was removed"
    );
    let recs = record::read(root.path()).unwrap();
    assert_eq!(recs.last().unwrap().result, "test-failed");
    // A test that hangs is killed at the timeout.
    let hang = packed_env(dist.path(), "e", "3", "sleep 600\n", rhel6());
    let mut o = opts(&hang, root.path());
    o.test = true;
    o.test_timeout = Some(Duration::from_millis(500));
    let t = Instant::now();
    let err = deploy::deploy(&o, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(t.elapsed() < Duration::from_secs(30));
    assert_eq!(current(root.path(), "e").as_deref(), Some("1"));
}

#[test]
fn concurrent_deploys_are_serialized() {
    let dist = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let archives: Vec<_> = (1..=4)
        .map(|v| packed_env(dist.path(), "e", &format!("{v}.0"), GOOD_TEST, rhel6()))
        .collect();
    let results: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = archives
            .iter()
            .map(|a| s.spawn(|| deploy::deploy(&opts(a, root.path()), &NoProgress)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    let recs = record::read(root.path()).unwrap();
    assert_eq!(recs.len(), 4);
    // Serialized: each deploy saw the previous one's version as current.
    let mut prev: Option<String> = None;
    for r in &recs {
        assert_eq!(r.previous, prev, "{recs:?}");
        prev = Some(r.version.clone());
    }
    assert_eq!(current(root.path(), "e"), prev);
    assert_current_works(root.path(), "e");
}

#[test]
fn deploys_a_squashfs_image_and_an_sh_installer() {
    for format in [envship_pack::Format::Squashfs, envship_pack::Format::Sh] {
        let dist = tempfile::tempdir().unwrap();
        let root = tempfile::tempdir().unwrap();
        let archive = packed_env_as(dist.path(), "gamma", "1", GOOD_TEST, rhel6(), format);
        let out = deploy::deploy(&opts(&archive, root.path()), &NoProgress)
            .unwrap_or_else(|e| panic!("{format}: {:?}", miette::Report::new(e)));
        assert_eq!(out.name, "gamma", "{format}");
        assert_current_works(root.path(), "gamma");
    }
}

#[test]
fn from_a_directory_drop_and_by_name() {
    let dist = tempfile::tempdir().unwrap();
    let drop = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let a = packed_env(dist.path(), "alpha", "1", GOOD_TEST, rhel6());
    let b = packed_env(dist.path(), "beta", "1", GOOD_TEST, rhel6());
    for x in [&a, &b] {
        envship_publish::publish_to_dir(
            &envship_publish::artifacts::collect(x),
            drop.path(),
            &NoProgress,
        )
        .unwrap();
    }
    let err = deploy::deploy(&opts(drop.path(), root.path()), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("several archives"), "{err}");
    let mut o = opts(drop.path(), root.path());
    o.name = Some("beta".into());
    let out = deploy::deploy(&o, &NoProgress).unwrap();
    assert_eq!(out.name, "beta");
    assert_current_works(root.path(), "beta");
}

#[test]
fn from_a_github_release_and_a_url() {
    use envship_test_support::ghserver::GhServer;
    let token = "ghp_deploy_TOKEN_123456";
    let server = GhServer::start(token);
    let dist = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let a = packed_env(dist.path(), "gh", "2.0", GOOD_TEST, rhel6());
    let files = envship_publish::artifacts::collect(&a);
    let mut cfg = GithubConfig {
        api_url: server.api_url.clone(),
        repo: "slac/gh-env".into(),
        token: Some(Secret::new(token)),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
    };
    envship_publish::publish_release(&cfg, "v2.0", &files, false, &NoProgress).unwrap();
    cfg.repo = "ignored/by-deploy".into();
    let mut o = opts(&a, root.path());
    o.source = "github:slac/gh-env@v2.0".into();
    o.github = cfg.clone();
    o.test = true;
    let out = deploy::deploy(&o, &NoProgress).unwrap();
    assert_eq!((out.name.as_str(), out.version.as_str()), ("gh", "2.0"));
    assert_current_works(root.path(), "gh");
    // The downloads were cleaned up.
    let dl = root.path().join(".envship/downloads");
    assert!(std::fs::read_dir(&dl).map(|d| d.count()).unwrap_or(0) == 0);

    // A plain URL: archive and sidecars served as files.
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        server
            .state
            .lock()
            .unwrap()
            .files
            .insert(name, std::fs::read(f).unwrap());
    }
    let root2 = tempfile::tempdir().unwrap();
    let mut o = opts(&a, root2.path());
    o.source = format!(
        "{}/files/{}",
        server.api_url,
        a.file_name().unwrap().to_str().unwrap()
    );
    deploy::deploy(&o, &NoProgress).unwrap();
    assert_current_works(root2.path(), "gh");
    // A release without that tag is a clear error.
    let mut o = opts(&a, root2.path());
    o.source = "github:slac/gh-env@v9".into();
    o.github = cfg;
    let err = deploy::deploy(&o, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("has no release v9"), "{err}");
}

/// Entry point of the helper process `kill_9_at_every_step` spawns (this test binary, re-run
/// with `--exact`); a no-op in a normal test run.
#[test]
fn helper_deploy_process() {
    let Ok(spec) = std::env::var("ENVSHIP_TEST_DEPLOY_HELPER") else {
        return;
    };
    let (source, root) = spec.split_once('\n').unwrap();
    let mut o = opts(Path::new(source), Path::new(root));
    o.test = true;
    o.force = std::env::var("ENVSHIP_TEST_FORCE").is_ok();
    let code = match deploy::deploy(&o, &NoProgress) {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("helper deploy failed: {e:?}");
            1
        }
    };
    std::process::exit(code);
}

fn spawn_helper(
    source: &Path,
    root: &Path,
    pause_at: &str,
    pause_file: &Path,
    force: bool,
) -> std::process::Child {
    helper_command(source, root, pause_at, pause_file, force)
        .spawn_group()
        .unwrap()
}

fn helper_command(
    source: &Path,
    root: &Path,
    pause_at: &str,
    pause_file: &Path,
    force: bool,
) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "deploy::helper_deploy_process",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(
        "ENVSHIP_TEST_DEPLOY_HELPER",
        format!("{}\n{}", source.display(), root.display()),
    )
    .env(deploy::PAUSE_ENV, pause_at)
    .env(deploy::PAUSE_FILE_ENV, pause_file)
    .stdout(std::process::Stdio::null());
    if force {
        cmd.env("ENVSHIP_TEST_FORCE", "1");
    }
    cmd
}

/// Kill the helper once it reached its pause step.
fn kill_when_paused(mut child: std::process::Child, step: &str, flag: &Path) {
    let t = Instant::now();
    while !flag.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("helper exited ({status}) before reaching {step}");
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "helper never reached {step}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait_in_time("the killed deploy helper");
}

/// `--force` over the live version where `renameat2` cannot exchange (kernels before 3.15, as
/// on RHEL 6; NFS): the same end state as with the exchange, nothing left behind.
#[test]
fn force_over_the_live_version_without_renameat2() {
    let dist = tempfile::tempdir().unwrap();
    let a1 = packed_env(dist.path(), "k", "1", GOOD_TEST, rhel6());
    let a2 = packed_env(dist.path(), "k", "2", GOOD_TEST, rhel6());
    let root = tempfile::tempdir().unwrap();
    deploy::deploy(&opts(&a1, root.path()), &NoProgress).unwrap();
    deploy::deploy(&opts(&a2, root.path()), &NoProgress).unwrap();
    let before = std::fs::metadata(root.path().join("k/2")).unwrap();
    let flag = root.path().join("paused");
    let status = helper_command(&a2, root.path(), "never", &flag, true)
        .env(deploy::NO_EXCHANGE_ENV, "1")
        .status_in_time()
        .unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(current(root.path(), "k").as_deref(), Some("2"));
    assert_current_works(root.path(), "k");
    let after = std::fs::metadata(root.path().join("k/2")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_ne!(before.ino(), after.ino(), "2 was replaced by a new tree");
    assert!(
        leftovers(root.path(), "k").is_empty(),
        "{:?}",
        leftovers(root.path(), "k")
    );
    let recs = record::read(root.path()).unwrap();
    assert_eq!(recs.last().unwrap().result, "success");
}

/// Killed inside that replacement, `current` names the staged tree; the next deploy (or
/// rollback) finishes the move under the lock, and the version is complete again.
#[test]
fn kill_9_inside_the_replacement_without_renameat2_is_repaired_by_the_next_deploy() {
    let dist = tempfile::tempdir().unwrap();
    let a1 = packed_env(dist.path(), "k", "1", GOOD_TEST, rhel6());
    let a2 = packed_env(dist.path(), "k", "2", GOOD_TEST, rhel6());
    let a3 = packed_env(dist.path(), "k", "3", GOOD_TEST, rhel6());
    for step in deploy::NO_EXCHANGE_STEPS {
        let root = tempfile::tempdir().unwrap();
        deploy::deploy(&opts(&a1, root.path()), &NoProgress).unwrap();
        deploy::deploy(&opts(&a2, root.path()), &NoProgress).unwrap();
        let flag = root.path().join("paused");
        let mut cmd = helper_command(&a2, root.path(), step, &flag, true);
        cmd.env(deploy::NO_EXCHANGE_ENV, "1");
        kill_when_paused(cmd.spawn_group().unwrap(), step, &flag);

        let cur = current(root.path(), "k").unwrap();
        assert!(
            cur.starts_with(".2.partial-"),
            "step {step}: current = {cur}"
        );
        if *step != "moved-in" {
            // Until the new tree is renamed in, `current` still reaches the complete staged tree
            // (relocated for k/2, so it is not run from there).
            for f in ["bin/activate", "bin/hello", "share/payload.bin"] {
                assert!(
                    root.path().join("k/current").join(f).exists(),
                    "step {step}: {f} missing in current"
                );
            }
        }
        let out = deploy::deploy(&opts(&a3, root.path()), &NoProgress).unwrap();
        assert!(
            out.actions.iter().any(|a| a.contains("pointed")),
            "step {step}: {:#?}",
            out.actions
        );
        assert_eq!(out.previous.as_deref(), Some("2"), "step {step}");
        assert_eq!(current(root.path(), "k").as_deref(), Some("3"));
        assert!(
            leftovers(root.path(), "k").is_empty(),
            "step {step}: {:?}",
            leftovers(root.path(), "k")
        );
        deploy::rollback(&RollbackOptions {
            root: root.path().into(),
            name: "k".into(),
            to: None,
            ticket: None,
            dry_run: false,
        })
        .unwrap();
        assert_eq!(current(root.path(), "k").as_deref(), Some("2"));
        assert_current_works(root.path(), "k");
    }
}

#[test]
fn kill_9_at_every_step_leaves_current_complete() {
    let dist = tempfile::tempdir().unwrap();
    let a1 = packed_env(dist.path(), "k", "1", GOOD_TEST, rhel6());
    let a2 = packed_env(dist.path(), "k", "2", GOOD_TEST, rhel6());
    let a3 = packed_env(dist.path(), "k", "3", GOOD_TEST, rhel6());
    for force in [false, true] {
        for step in STEPS {
            let root = tempfile::tempdir().unwrap();
            deploy::deploy(&opts(&a1, root.path()), &NoProgress).unwrap();
            if force {
                // Replacing the live version itself with --force.
                deploy::deploy(&opts(&a2, root.path()), &NoProgress).unwrap();
            }
            let flag = root.path().join("paused");
            let child = spawn_helper(&a2, root.path(), step, &flag, force);
            kill_when_paused(child, step, &flag);

            let cur = current(root.path(), "k");
            let expected: &[&str] = if force { &["2"] } else { &["1", "2"] };
            assert!(
                cur.as_deref().is_some_and(|c| expected.contains(&c)),
                "step {step} force {force}: current = {cur:?}"
            );
            assert_current_works(root.path(), "k");
            // The log holds only complete records, and the next deploy (lock free again)
            // succeeds and clears what the killed one left.
            record::read(root.path()).unwrap();
            let out = deploy::deploy(&opts(&a3, root.path()), &NoProgress).unwrap();
            assert_eq!(current(root.path(), "k").as_deref(), Some("3"));
            assert!(
                leftovers(root.path(), "k").is_empty(),
                "step {step}: {:?}",
                leftovers(root.path(), "k")
            );
            assert!(!out.actions.is_empty());
        }
    }
}

#[test]
fn relocates_to_the_root_as_given_not_its_resolved_path() {
    let dist = tempfile::tempdir().unwrap();
    let real = tempfile::tempdir().unwrap();
    let links = tempfile::tempdir().unwrap();
    let root = links.path().join("sw");
    std::os::unix::fs::symlink(real.path(), &root).unwrap();
    let a = packed_env(dist.path(), "e", "1", GOOD_TEST, rhel6());
    deploy::deploy(&opts(&a, &root), &NoProgress).unwrap();
    let hello = std::fs::read_to_string(real.path().join("e/1/bin/hello")).unwrap();
    let expected = format!("hello from {}", root.join("e/1").display());
    assert!(hello.contains(&expected), "{hello}");
}
