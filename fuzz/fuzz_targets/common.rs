//! Shared by the unpack targets: unpack into `work/dest` and check that nothing appeared or
//! changed outside it.
use std::{collections::BTreeMap, path::Path};

fn listing(root: &Path) -> BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).follow_links(false).into_iter().flatten() {
        let rel = e.path().strip_prefix(root).unwrap_or(e.path()).to_path_buf();
        if rel.starts_with("dest") {
            continue;
        }
        let content = if e.file_type().is_file() {
            std::fs::read(e.path()).unwrap_or_default()
        } else {
            Vec::new()
        };
        out.insert(rel, content);
    }
    out
}

/// Unpack `archive_bytes` (stored as `name`) and assert containment.
pub fn unpack_contained(name: &str, archive_bytes: &[u8]) {
    let work = tempfile::tempdir().expect("tempdir");
    let outside = work.path().join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("victim"), b"/prefix victim").expect("write");
    let archive = work.path().join(name);
    std::fs::write(&archive, archive_bytes).expect("write");
    let before = listing(work.path());
    let dest = work.path().join("dest");
    let opts = envship_pack::UnpackOptions {
        jobs: 1,
        prefix: Some("/prefix/new".into()),
        ..Default::default()
    };
    let r = envship_pack::unpack(&archive, &dest, &opts, &envship_spec::NoProgress);
    assert_eq!(before, listing(work.path()), "written outside DEST");
    if r.is_err() {
        assert!(!dest.exists(), "a failed unpack left DEST behind");
    }
}
