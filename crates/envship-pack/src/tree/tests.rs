use std::os::unix::fs::{symlink, PermissionsExt};

use super::*;

/// A small real tree: a directory, an executable, a data file with a second name, a symlink.
fn tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
    std::fs::create_dir_all(dir.join("lib")).expect("mkdir");
    std::fs::write(dir.join("bin/tool"), "#!/bin/sh\necho hi\n").expect("write");
    std::fs::set_permissions(dir.join("bin/tool"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::fs::write(dir.join("lib/data.bin"), vec![7u8; 3 << 20]).expect("write");
    std::fs::hard_link(dir.join("lib/data.bin"), dir.join("lib/data2.bin")).expect("link");
    symlink("data.bin", dir.join("lib/data.so")).expect("symlink");
}

fn paths(v: &[Present]) -> Vec<&str> {
    v.iter().map(|p| p.path.as_str()).collect()
}

#[test]
fn scan_records_types_modes_sizes_and_hashes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("env");
    tree(&root);
    let rec = TreeRecord::scan(&root).expect("scan");
    let names: Vec<&str> = rec.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "bin",
            "bin/tool",
            "lib",
            "lib/data.bin",
            "lib/data.so",
            "lib/data2.bin"
        ]
    );
    let e = |p: &str| rec.entries.iter().find(|e| e.path == p).expect(p);
    assert_eq!(e("bin/tool").mode, Some(0o755));
    assert_eq!(e("bin").kind, EntryType::Dir);
    assert_eq!(e("lib/data.so").kind, EntryType::Symlink);
    assert_eq!(e("lib/data.so").target.as_deref(), Some("data.bin"));
    assert_eq!(e("lib/data.so").mode, None);
    let data = std::fs::read(root.join("lib/data.bin")).expect("read");
    let want = hex::encode(Sha256::digest(&data));
    assert_eq!(e("lib/data.bin").sha256.as_deref(), Some(want.as_str()));
    assert_eq!(e("lib/data2.bin").sha256.as_deref(), Some(want.as_str()));
    assert_eq!(rec.files, 3);
    assert_eq!(rec.bytes, 2 * data.len() as u64 + 18);
    assert!(rec.compare(&root).expect("compare").is_empty());
}

#[test]
fn written_records_read_back_and_name_every_kind_of_drift() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("env");
    tree(&root);
    let (rec, path) = record_tree(&root).expect("record");
    assert_eq!(path, tmp.path().join(".env.tree.json"));
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains("\"mode\": \"0755\""), "{text}");
    assert_eq!(TreeRecord::read(&path).expect("read back"), rec);

    // Same size, other content; removed; added; retyped; chmod.
    std::fs::write(root.join("bin/tool"), "#!/bin/sh\necho ho\n").expect("write");
    std::fs::remove_file(root.join("lib/data2.bin")).expect("rm");
    std::fs::write(root.join("lib/new.txt"), "new").expect("write");
    std::fs::remove_file(root.join("lib/data.so")).expect("rm");
    std::fs::write(root.join("lib/data.so"), "no longer a link").expect("write");
    std::fs::set_permissions(
        root.join("lib/data.bin"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    let v = verify(&root).expect("verify");
    assert!(!v.clean);
    let d = &v.drift;
    assert_eq!(
        d.modified
            .iter()
            .map(|m| m.path.as_str())
            .collect::<Vec<_>>(),
        ["bin/tool"]
    );
    assert_eq!(paths(&d.missing), ["lib/data2.bin"]);
    assert_eq!(paths(&d.added), ["lib/new.txt"]);
    assert_eq!(
        d.retyped,
        [Retyped {
            path: "lib/data.so".into(),
            old: EntryType::Symlink,
            new: EntryType::File
        }]
    );
    assert_eq!(d.mode_changed.len(), 1);
    assert_eq!(d.mode_changed[0].path, "lib/data.bin");
    assert_eq!(d.mode_changed[0].new, Some(0o600));
    assert_eq!(d.len(), 5);
}

#[test]
fn verify_follows_current_and_says_where_it_looked() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("1.0");
    tree(&root);
    symlink("1.0", tmp.path().join("current")).expect("symlink");
    let err = verify(&tmp.path().join("current")).expect_err("no record");
    match &err {
        TreeError::NoRecord { tree, record } => {
            assert_eq!(tree, &root);
            assert_eq!(record, &tmp.path().join(".1.0.tree.json"));
        }
        other => panic!("{other:?}"),
    }
    record_tree(&root).expect("record");
    let v = verify(&tmp.path().join("current")).expect("verify");
    assert!(v.clean, "{v:?}");
    assert_eq!(v.tree, root);

    std::fs::write(
        tmp.path().join(".1.0.tree.json"),
        "{\"tree_record_version\": 1,",
    )
    .expect("w");
    let err = verify(&root).expect_err("bad");
    assert!(matches!(err, TreeError::BadRecord { .. }), "{err:?}");
    assert!(err.to_string().contains(".1.0.tree.json"), "{err}");
    std::fs::write(
        tmp.path().join(".1.0.tree.json"),
        "{\"tree_record_version\": 9}",
    )
    .expect("w");
    let err = verify(&root).expect_err("version");
    assert!(
        matches!(err, TreeError::UnsupportedVersion { found: 9, .. }),
        "{err:?}"
    );
}

#[test]
fn record_path_of_dot_and_trailing_slash() {
    assert_eq!(
        record_path(Path::new("/r/env/1.0/")),
        Path::new("/r/env/.1.0.tree.json")
    );
    let tmp = tempfile::tempdir().expect("tmp");
    let d = tmp.path().join("x");
    std::fs::create_dir(&d).expect("mkdir");
    let canon = std::fs::canonicalize(&d).expect("canon");
    assert_eq!(
        record_path(&d.join("..").join("x").join(".")),
        canon.parent().expect("parent").join(".x.tree.json")
    );
}
