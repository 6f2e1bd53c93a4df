//! The tree record deploy writes beside each version, checked with `envship_pack::tree::verify`
//! over deploys, a forced redeploy and a rollback; and the diff a dry run shows.

use std::path::Path;

use envship_deploy::{self as deploy, live, RollbackOptions};
use envship_pack::tree::{self, TreeError};
use envship_spec::NoProgress;

use crate::{
    common::{packed_env, packed_env_pkg, rhel6, Env, GOOD_TEST},
    deploy::opts,
};

fn assert_clean(path: &Path) {
    let v = tree::verify(path).unwrap();
    assert!(v.clean, "{} drifted: {:?}", path.display(), v.drift);
    assert!(v.files > 0);
}

#[test]
fn deployed_versions_verify_clean_through_rollback_and_force() {
    let dist = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let a1 = packed_env(dist.path(), "psana", "1.0", GOOD_TEST, rhel6());
    let a2 = packed_env(dist.path(), "psana", "1.1", GOOD_TEST, rhel6());
    deploy::deploy(&opts(&a1, root.path()), &NoProgress).unwrap();
    let mut o2 = opts(&a2, root.path());
    o2.test = true;
    let out = deploy::deploy(&o2, &NoProgress).unwrap();
    assert!(
        out.actions
            .iter()
            .any(|a| a.starts_with("recorded the tree")),
        "{:?}",
        out.actions
    );
    let env = root.path().join("psana");
    for v in ["1.0", "1.1"] {
        assert!(live::record_path(&env.join(v)).is_file());
        let kept = envship_pack::Manifest::read(&live::manifest_path(&env.join(v))).unwrap();
        assert_eq!(kept.version, v);
        assert_clean(&env.join(v));
    }
    assert_eq!(
        live::record_path(&env.join("1.1")),
        env.join(".1.1.tree.json")
    );
    let v = tree::verify(&env.join("current")).unwrap();
    assert_eq!(v.tree, env.join("1.1"));
    assert!(v.clean);

    // Drift in the live version: every kind is named.
    let live_dir = env.join("1.1");
    std::fs::write(live_dir.join("bin/hello"), "#!/bin/sh\necho tampered\n").unwrap();
    std::fs::remove_file(live_dir.join("share/payload.bin")).unwrap();
    std::fs::write(live_dir.join("share/added.txt"), "x").unwrap();
    let v = tree::verify(&env.join("current")).unwrap();
    assert!(!v.clean);
    let names = |v: &[tree::Present]| v.iter().map(|p| p.path.clone()).collect::<Vec<_>>();
    assert_eq!(
        v.drift
            .modified
            .iter()
            .map(|m| m.path.as_str())
            .collect::<Vec<_>>(),
        ["bin/hello"]
    );
    assert_eq!(names(&v.drift.missing), ["share/payload.bin"]);
    assert_eq!(names(&v.drift.added), ["share/added.txt"]);

    // Rollback: the earlier version is current and still clean.
    deploy::rollback(&RollbackOptions {
        root: root.path().into(),
        name: "psana".into(),
        to: None,
        ticket: None,
        dry_run: false,
    })
    .unwrap();
    assert_clean(&env.join("current"));
    assert_eq!(
        tree::verify(&env.join("current")).unwrap().tree,
        env.join("1.0")
    );

    // --force replaces the drifted tree and rewrites its record.
    let mut forced = opts(&a2, root.path());
    forced.force = true;
    deploy::deploy(&forced, &NoProgress).unwrap();
    assert_clean(&env.join("1.1"));
    assert_clean(&env.join("current"));
}

#[test]
fn a_removed_version_takes_its_record_with_it_at_the_next_deploy() {
    let dist = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let a1 = packed_env(dist.path(), "e", "1", GOOD_TEST, rhel6());
    let a2 = packed_env(dist.path(), "e", "2", GOOD_TEST, rhel6());
    let a3 = packed_env(dist.path(), "e", "3", GOOD_TEST, rhel6());
    deploy::deploy(&opts(&a1, root.path()), &NoProgress).unwrap();
    deploy::deploy(&opts(&a2, root.path()), &NoProgress).unwrap();
    let env = root.path().join("e");
    std::fs::remove_dir_all(env.join("1")).unwrap();
    let err = tree::verify(&env.join("1")).unwrap_err();
    assert!(matches!(err, TreeError::Io { .. }), "{err:?}");
    // A half-written record left by a killed deploy.
    std::fs::write(env.join("..2.tree.json.AbC123"), "{").unwrap();
    deploy::deploy(&opts(&a3, root.path()), &NoProgress).unwrap();
    assert!(!live::record_path(&env.join("1")).exists());
    assert!(!live::manifest_path(&env.join("1")).exists());
    assert!(!env.join("..2.tree.json.AbC123").exists());
    assert_clean(&env.join("2"));
    assert_clean(&env.join("3"));

    // No record: the error says where it looked.
    std::fs::remove_file(live::record_path(&env.join("3"))).unwrap();
    match tree::verify(&env.join("current")).unwrap_err() {
        TreeError::NoRecord { tree, record } => {
            assert_eq!(tree, env.join("3"));
            assert_eq!(record, env.join(".3.tree.json"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn dry_run_shows_the_diff_against_current() {
    let dist = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let tgz = envship_pack::Format::TarGz;
    let env = |version| Env {
        name: "e",
        version,
        test_script: GOOD_TEST,
        extra: &[],
    };
    let a1 = packed_env_pkg(dist.path(), &env("1"), rhel6(), tgz, "1.0");
    let a2 = packed_env_pkg(dist.path(), &env("2"), rhel6(), tgz, "1.1");
    deploy::deploy(&opts(&a1, root.path()), &NoProgress).unwrap();
    let mut o = opts(&a2, root.path());
    o.dry_run = true;
    let out = deploy::deploy(&o, &NoProgress).unwrap();
    let d = out.diff.expect("a diff against current");
    assert_eq!(d.old.version.as_deref(), Some("1"));
    assert_eq!(d.new.version.as_deref(), Some("2"));
    assert_eq!(d.conda.changed.len(), 1, "{:?}", d.conda);
    assert_eq!(d.conda.changed[0].name, "hello");
    assert_eq!(
        (
            d.conda.changed[0].old_version.as_str(),
            d.conda.changed[0].new_version.as_str()
        ),
        ("1.0", "1.1")
    );
    assert!(d.conda.added.is_empty() && d.conda.removed.is_empty());
    let table = envship_pack::diff::render_table(&d);
    assert!(table.contains("~ hello"), "{table}");
    // Nothing deployed yet: no diff.
    let fresh = tempfile::tempdir().unwrap();
    let mut o = opts(&a2, fresh.path());
    o.dry_run = true;
    assert!(deploy::deploy(&o, &NoProgress).unwrap().diff.is_none());
}

#[test]
fn a_forced_redeploy_that_fails_its_test_leaves_the_old_tree_with_its_record() {
    let dist = tempfile::tempdir().unwrap();
    let bad_dist = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let good = packed_env(dist.path(), "e", "1", GOOD_TEST, rhel6());
    let bad = packed_env(bad_dist.path(), "e", "1", "exit 3\n", rhel6());
    deploy::deploy(&opts(&good, root.path()), &NoProgress).unwrap();
    let env = root.path().join("e");
    let record = std::fs::read(live::record_path(&env.join("1"))).unwrap();
    let blocks_path = deploy::linked::blocks_path(&env, "1");
    let blocks = std::fs::read(&blocks_path).unwrap();
    let mut o = opts(&bad, root.path());
    o.test = true;
    o.force = true;
    let err = deploy::deploy(&o, &NoProgress).unwrap_err();
    assert!(
        matches!(err, deploy::DeployError::TestFailed { .. }),
        "{err:?}"
    );
    assert_eq!(
        std::fs::read(live::record_path(&env.join("1"))).unwrap(),
        record,
        "the old tree's record is back"
    );
    // And its block index: the failed archive's would let the next deploy link by its hashes.
    assert_eq!(
        std::fs::read(&blocks_path).unwrap(),
        blocks,
        "the old block index is back"
    );
    assert_ne!(
        std::fs::read(envship_pack::Sidecar::Blocks.path_for(&bad)).unwrap(),
        blocks,
        "the two archives' indexes differ (the test script is in them)"
    );
    assert_clean(&env.join("current"));
    let hidden: Vec<String> = std::fs::read_dir(&env)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".old-") || n.contains(".partial-"))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}
