//! Shared by the unpack targets: unpack into `WORK/dest` and check that nothing appeared or
//! changed outside it.
//!
//! These targets cannot reach a million executions in 10 minutes: every input is a real unpack,
//! on a real file system. The archive is written to a file; DEST and each entry are created
//! (open, write, chmod, rename, link), relocation reads the files back and rewrites them, a
//! writer thread is started and joined; then WORK is listed and DEST removed again. That is
//! hundreds of system calls per input, whatever the archive holds. To keep it as cheap as that
//! allows, WORK is one directory per process on tmpfs ([`scratch`]), made once and emptied
//! between inputs instead of a new temp dir on disk per input; inputs are capped (-max_len in
//! scripts/fuzz.sh) and the seed archives are small (fuzz/seeds/env.tar is 10 KiB).
use std::{collections::BTreeMap, path::Path};

#[path = "scratch.rs"]
mod scratch;

const VICTIM: &[u8] = b"/prefix victim";

/// Every path under `root` but DEST's, with a regular file's content.
fn listing(root: &Path) -> BTreeMap<std::path::PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let walk = walkdir::WalkDir::new(root).follow_links(false).into_iter();
    for e in walk
        .filter_entry(|e| e.path() != root.join("dest"))
        .flatten()
    {
        let rel = e
            .path()
            .strip_prefix(root)
            .unwrap_or(e.path())
            .to_path_buf();
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
    let work = scratch::dir(name);
    let outside = work.join("outside");
    let archive = work.join(name);
    let dest = work.join("dest");
    // What WORK holds besides DEST, made by the first input: an unpack that changed it fails
    // the assertion below, which ends the process.
    if !outside.exists() {
        std::fs::create_dir_all(&outside).expect("mkdir");
        std::fs::write(outside.join("victim"), VICTIM).expect("write");
    }
    std::fs::write(&archive, archive_bytes).expect("write");
    let before = listing(work);
    let opts = envship_pack::UnpackOptions {
        jobs: 1,
        prefix: Some("/prefix/new".into()),
        ..Default::default()
    };
    let r = envship_pack::unpack(&archive, &dest, &opts, &envship_spec::NoProgress);
    assert_eq!(before, listing(work), "written outside DEST");
    if r.is_err() {
        assert!(!dest.exists(), "a failed unpack left DEST behind");
    }
    scratch::clear(&dest);
}
