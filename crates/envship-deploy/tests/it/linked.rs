//! Linked deploys: the next version takes its unchanged files from the live one by hard link,
//! both versions stay intact through a rollback, and `--no-link` extracts everything.

use std::{os::unix::fs::MetadataExt, path::Path};

use envship_deploy::{self as deploy, RollbackOptions};
use envship_spec::NoProgress;

use crate::{
    common::{bytes, packed_env_with, rhel6, Env, GOOD_TEST},
    deploy::{assert_current_works, current, opts, snapshot},
};

fn release(dist: &Path, version: &str) -> std::path::PathBuf {
    // Unchanged between releases: three small files and a large one; payload.bin and the
    // relocated bin/hello are the package's own.
    let extra = [
        ("lib/stable-a.so", bytes(1, 40_000)),
        ("lib/stable-b.so", bytes(2, 90_000)),
        ("share/doc/README", b"stable text\n".repeat(500)),
        ("lib/big-stable.so", bytes(3, 3 << 20)),
        (
            "lib/changes.so",
            bytes(
                version.len() as u64 * 31 + version.as_bytes()[2] as u64,
                300_000,
            ),
        ),
    ];
    let env = Env {
        name: "psana",
        version,
        test_script: GOOD_TEST,
        extra: &extra,
    };
    packed_env_with(dist, &env, rhel6(), envship_pack::Format::TarGz)
}

fn ino(p: &Path) -> u64 {
    std::fs::symlink_metadata(p).unwrap().ino()
}

fn action<'a>(actions: &'a [String], start: &str) -> Option<&'a String> {
    actions.iter().find(|a| a.starts_with(start))
}

#[test]
fn a_linked_deploy_shares_unchanged_files_and_rolls_back_with_both_versions_intact() {
    let dist = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let (a1, a2, a3) = (
        release(dist.path(), "1.0"),
        release(dist.path(), "1.1"),
        release(dist.path(), "1.2"),
    );
    let first = deploy::deploy(&opts(&a1, root.path()), &NoProgress).unwrap();
    assert!(
        action(&first.actions, "linked ").is_none(),
        "nothing live to link from"
    );
    let v1 = root.path().join("psana/1.0");
    let v1_before = snapshot(&v1);

    let second = deploy::deploy(&opts(&a2, root.path()), &NoProgress).unwrap();
    let line = action(&second.actions, "linked ").expect("a linked deploy");
    let v2 = root.path().join("psana/1.1");
    for shared in [
        "lib/stable-a.so",
        "lib/stable-b.so",
        "share/doc/README",
        "lib/big-stable.so",
    ] {
        assert_eq!(
            ino(&v1.join(shared)),
            ino(&v2.join(shared)),
            "{shared}: {line}"
        );
    }
    for own in ["lib/changes.so", "bin/hello", "share/envship/relocate.txt"] {
        assert_ne!(
            ino(&v1.join(own)),
            ino(&v2.join(own)),
            "{own} is written fresh"
        );
    }
    assert!(line.contains(&v1.display().to_string()), "{line}");
    assert_current_works(root.path(), "psana");
    assert_eq!(
        snapshot(&v1),
        v1_before,
        "the live version was not modified"
    );

    let rb = deploy::rollback(&RollbackOptions {
        root: root.path().into(),
        name: "psana".into(),
        to: None,
        ticket: None,
        dry_run: false,
    })
    .unwrap();
    assert_eq!(rb.version, "1.0");
    assert_eq!(current(root.path(), "psana").as_deref(), Some("1.0"));
    assert_current_works(root.path(), "psana");
    assert_eq!(snapshot(&v1), v1_before);
    // Both versions are still exactly what was deployed.
    for v in [&v1, &v2] {
        let check = envship_pack::tree::verify(v).unwrap();
        assert!(check.clean, "{}: {:?}", v.display(), check.drift);
    }

    // Removing the newer version leaves the older one whole.
    std::fs::remove_dir_all(&v2).unwrap();
    assert_eq!(snapshot(&v1), v1_before);
    assert_current_works(root.path(), "psana");

    let mut o = opts(&a3, root.path());
    o.no_link = true;
    let third = deploy::deploy(&o, &NoProgress).unwrap();
    assert!(
        action(&third.actions, "linked ").is_none(),
        "{:?}",
        third.actions
    );
    let v3 = root.path().join("psana/1.2");
    assert_ne!(
        ino(&v1.join("lib/big-stable.so")),
        ino(&v3.join("lib/big-stable.so"))
    );
    assert_current_works(root.path(), "psana");
}
