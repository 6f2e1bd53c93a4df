//! A full disk: each command that writes, run with its output on a small tmpfs filled to less
//! than it needs, fails with exit code 2 and a message naming the path and the full disk,
//! leaves nothing partial behind, and succeeds once the space is free again.

use std::path::Path;

use envship_test_support::{current_test, FullDisk};

use super::{
    archive_name, assert_complete, build_cmd, built, channel, current, deploy_cmd, env_file, ok,
    pack_cached_cmd, pack_cmd, run, successes, two_versions,
};

/// Every pack format and its file extension.
const FORMATS: &[(&str, &str)] = &[
    ("tar.gz", "tar.gz"),
    ("tar.zst", "tar.zst"),
    ("zip", "zip"),
    ("dir", "dir"),
    ("sh", "sh"),
    ("squashfs", "squashfs"),
];

/// The tmpfs for a test: room for a few copies of the 1 MiB environment.
const DISK: u64 = 24 << 20;

/// A failed command's output, checked: exit code 2, the disk's path, and the words.
fn assert_disk_full(out: &std::process::Output, disk: &FullDisk, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{what}: exit code on a full disk: {stderr}"
    );
    // The report is wrapped at 80 columns, paths included: compare without the wrapping.
    let flat = unwrapped(&stderr);
    assert!(
        flat.contains("Nospaceleftondevice") && flat.contains("thediskisfull"),
        "{what}: the message does not say the disk is full: {stderr}"
    );
    let mount = disk.path().display().to_string();
    assert!(
        flat.contains(&unwrapped(&mount)),
        "{what}: the message does not name a path on {mount}: {stderr}"
    );
}

/// `text` without spaces, line breaks and the report's frame.
pub fn unwrapped(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && !"│╰─▶×".contains(*c))
        .collect()
}

/// The free-space levels to try below `needed` bytes: nothing, fractions, and one page short
/// (where the big file fits and only the last small one does not).
fn levels_below(needed: u64) -> Vec<u64> {
    let mut v = vec![0, needed / 4, needed / 2, needed * 3 / 4];
    v.extend([3, 2, 1].map(|pages| needed.saturating_sub(pages * 4096)));
    v
}

fn remove(path: &Path) {
    if path.is_dir() {
        fs_err::remove_dir_all(path).unwrap();
    } else if path.exists() {
        fs_err::remove_file(path).unwrap();
    }
}

#[test]
fn pack_on_a_full_disk_fails_naming_the_path_and_leaves_nothing_then_succeeds() {
    let Some(disk) = FullDisk::mount(&current_test("pack_on_a_full_disk"), DISK) else {
        return;
    };
    let env = built("1", 8, 128);
    let dist = disk.join("dist");
    for (format, ext) in FORMATS {
        let out = dist.join(archive_name("1", ext));
        // What a complete pack takes (the lock file stays: it is allowed to).
        let empty = disk.free_all();
        ok(
            pack_cmd(&env.prefix, &out, format, &[]),
            &format!("pack --format {format}"),
        );
        let needed = empty - disk.free_bytes();
        assert_complete(&out, &format!("pack --format {format} on a free disk"));
        let after_success = disk.listing();
        remove(&dist);
        for free in levels_below(needed) {
            let what = format!("pack --format {format} with {free} of {needed} bytes free");
            disk.fill_to(free);
            let got = run(pack_cmd(&env.prefix, &out, format, &[]));
            assert_disk_full(&got, &disk, &what);
            let lock = format!("dist/.{}.envship-lock", archive_name("1", ext));
            let left: Vec<String> = disk
                .listing()
                .into_iter()
                .filter(|p| p != "dist" && *p != lock)
                .collect();
            assert!(left.is_empty(), "{what}: left {left:?} behind");
        }
        // Space freed: the same command succeeds, and leaves what the first success left.
        disk.free_all();
        ok(
            pack_cmd(&env.prefix, &out, format, &[]),
            &format!("pack --format {format} after freeing space"),
        );
        assert_complete(&out, &format!("pack --format {format} after freeing space"));
        assert_eq!(
            disk.listing(),
            after_success,
            "pack --format {format}: the outputs"
        );
        remove(&dist);
    }
}

#[test]
fn unpack_on_a_full_disk_fails_and_leaves_nothing_then_succeeds() {
    let Some(disk) = FullDisk::mount(&current_test("unpack_on_a_full_disk"), DISK) else {
        return;
    };
    let env = built("1", 8, 128);
    let archive = env.dir.path().join(archive_name("1", "tar.gz"));
    ok(pack_cmd(&env.prefix, &archive, "tar.gz", &[]), "pack");
    let dest = disk.join("big");
    let unpack = || {
        let mut cmd = super::envship();
        cmd.arg("unpack").arg(&archive).arg(&dest);
        run(cmd)
    };
    let empty = disk.free_all();
    assert!(unpack().status.success(), "unpack on a free disk");
    let needed = empty - disk.free_bytes();
    let after_success = disk.listing();
    fs_err::remove_dir_all(&dest).unwrap();
    fs_err::remove_file(disk.join(".big.tree.json")).unwrap();
    for free in levels_below(needed) {
        let what = format!(
            "unpack into {} with {free} of {needed} bytes free",
            dest.display()
        );
        disk.fill_to(free);
        assert_disk_full(&unpack(), &disk, &what);
        assert_eq!(disk.listing(), Vec::<String>::new(), "{what}: left behind");
    }
    disk.free_all();
    let out = unpack();
    assert!(
        out.status.success(),
        "unpack after freeing space: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(disk.listing(), after_success, "unpack: the tree");
}

#[test]
fn publish_to_a_full_drop_directory_publishes_nothing_then_everything() {
    let Some(disk) = FullDisk::mount(&current_test("publish_to_a_full_drop"), DISK) else {
        return;
    };
    let env = built("1", 8, 128);
    let dist = env.dir.path().join("dist");
    let archive = dist.join(archive_name("1", "tar.gz"));
    ok(pack_cmd(&env.prefix, &archive, "tar.gz", &[]), "pack");
    let mut files: Vec<_> = fs_err::read_dir(&dist)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    files.sort();
    let drop_dir = disk.join("drop");
    fs_err::create_dir(&drop_dir).unwrap();
    let publish = || {
        let mut cmd = super::envship();
        cmd.arg("publish").arg("--to").arg(&drop_dir).args(&files);
        run(cmd)
    };
    let empty = disk.free_all();
    assert!(publish().status.success(), "publish --to on a free disk");
    let needed = empty - disk.free_bytes();
    let after_success = disk.listing();
    for f in fs_err::read_dir(&drop_dir).unwrap() {
        fs_err::remove_file(f.unwrap().path()).unwrap();
    }
    for free in levels_below(needed) {
        let what = format!(
            "publish --to {} with {free} of {needed} bytes free",
            drop_dir.display()
        );
        disk.fill_to(free);
        assert_disk_full(&publish(), &disk, &what);
        assert_eq!(
            disk.listing(),
            vec!["drop".to_string()],
            "{what}: published or left"
        );
    }
    disk.free_all();
    let out = publish();
    assert!(
        out.status.success(),
        "publish --to after freeing space: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(disk.listing(), after_success, "publish --to: the drop");
}

#[test]
fn a_full_block_cache_disk_costs_only_the_cache_and_keeps_no_bad_entry() {
    let Some(disk) = FullDisk::mount(&current_test("a_full_block_cache_disk"), DISK) else {
        return;
    };
    let env = built("1", 8, 128);
    let reference = env.dir.path().join("reference.tar.gz");
    ok(
        pack_cmd(&env.prefix, &reference, "tar.gz", &[]),
        "pack the reference",
    );
    let cache = disk.join("cache");
    let out = env.dir.path().join(archive_name("1", "tar.gz"));
    let cached = |extra: &[&str]| {
        let mut cmd = pack_cached_cmd(&env.prefix, &out, "tar.gz", extra);
        cmd.env("ENVSHIP_CACHE_DIR", &cache);
        run(cmd)
    };
    let pack = |what: &str| {
        let got = cached(&["--force"]);
        let stderr = String::from_utf8_lossy(&got.stderr).into_owned();
        assert!(got.status.success(), "{what}: {stderr}");
        assert_eq!(
            fs_err::read(&out).unwrap(),
            fs_err::read(&reference).unwrap(),
            "{what}: the archive differs from one packed without the cache"
        );
        stderr
    };
    // Room for the directories and a few entries only.
    disk.fill_to(64 << 10);
    let stderr = pack("pack with its block cache on a full disk");
    assert!(
        stderr.contains("could not write the block cache entry")
            && stderr.contains("No space left on device")
            && stderr.contains(&disk.path().display().to_string()),
        "pack with a full cache disk: no warning naming the entry and the full disk: {stderr}"
    );
    let temps: Vec<String> = disk
        .listing()
        .into_iter()
        .filter(|p| p.contains(".tmp-"))
        .collect();
    assert!(
        temps.is_empty(),
        "half-written cache entries left: {temps:?}"
    );
    // Space freed: the next pack fills the cache, the one after reuses it; what a reuse ships
    // is the same archive (an entry the full disk damaged would have changed it).
    disk.free_all();
    pack("pack after freeing the cache's space");
    let reused = cached(&["--force", "--json"]);
    assert!(reused.status.success(), "pack from the cache");
    let json: serde_json::Value = serde_json::from_slice(&reused.stdout).unwrap();
    assert_eq!(
        fs_err::read(&out).unwrap(),
        fs_err::read(&reference).unwrap(),
        "pack from the cache: the archive differs"
    );
    let reused_blocks = json["blocks"]["reused"].as_u64().unwrap_or(0);
    assert!(
        reused_blocks > 0,
        "pack from the cache reused no block: {json}"
    );
}

/// Deploy 1, then 2 at rising levels of free space (with `extra` flags): each failure leaves
/// the root as 1 left it and no record of 2 deployed; 2 deploys once the space is free.
fn deploy_on_a_full_disk(test: &str, extra: &[&str]) {
    let Some(disk) = FullDisk::mount(&current_test(test), DISK) else {
        return;
    };
    let (_env, [v1, v2]) = two_versions(8, 128);
    let root = disk.join("root");
    ok(deploy_cmd(&v1, &root, extra), "deploy big 1");
    let env_dir = root.join("big");
    let before = fs_err::read_dir(&env_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>();
    let mut failures = 0;
    let mut deployed = false;
    for kib in [0u64, 64, 256, 512, 768, 1024, 1280, 1536, 2048, 3072] {
        let free = kib << 10;
        let what = format!("deploy {} {extra:?} with {free} bytes free", v2.display());
        disk.fill_to(free);
        let out = run(deploy_cmd(&v2, &root, extra));
        if out.status.success() {
            deployed = true;
            break;
        }
        failures += 1;
        assert_disk_full(&out, &disk, &what);
        let now = fs_err::read_dir(&env_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect::<std::collections::BTreeSet<_>>();
        assert_eq!(now, before, "{what}: {} changed", env_dir.display());
        assert_eq!(
            current(&root).as_deref(),
            Some("1"),
            "{what}: current moved"
        );
        let done = successes(&root);
        assert_eq!(done, vec![("1".into(), None)], "{what}: the deployment log");
    }
    assert!(
        failures >= 3,
        "deploy {extra:?}: only {failures} levels of free space made it fail"
    );
    disk.free_all();
    if !deployed {
        let out = run(deploy_cmd(&v2, &root, extra));
        assert!(
            out.status.success(),
            "deploy {extra:?} after freeing space: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        current(&root).as_deref(),
        Some("2"),
        "deploy {extra:?}: current"
    );
    assert_eq!(
        successes(&root),
        vec![("1".into(), None), ("2".into(), Some("1".into()))],
        "deploy {extra:?}: the deployment log after freeing space"
    );
    let mut verify = super::envship();
    verify.arg("verify").arg(env_dir.join("current"));
    ok(verify, &format!("verify after the deploy {extra:?}"));
}

#[test]
fn a_linked_deploy_on_a_full_disk_changes_nothing_then_succeeds() {
    deploy_on_a_full_disk("a_linked_deploy_on_a_full_disk", &[]);
}

#[test]
fn a_full_deploy_on_a_full_disk_changes_nothing_then_succeeds() {
    deploy_on_a_full_disk("a_full_deploy_on_a_full_disk", &["--no-link"]);
}

#[test]
fn a_build_on_a_full_disk_leaves_no_prefix_then_succeeds() {
    let Some(disk) = FullDisk::mount(&current_test("a_build_on_a_full_disk"), DISK) else {
        return;
    };
    let channel = channel(8, 128);
    let dir = tempfile::tempdir().unwrap();
    let file = env_file(dir.path(), &channel, "1");
    let cache = dir.path().join("cache");
    let prefix = disk.join("big");
    let build = || run(build_cmd(&file, &prefix, &cache));
    let empty = disk.free_all();
    let first = build();
    assert!(
        first.status.success(),
        "build on a free disk: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    let needed = empty - disk.free_bytes();
    let after_success = disk.listing();
    fs_err::remove_dir_all(&prefix).unwrap();
    for free in levels_below(needed) {
        let what = format!(
            "build --prefix {} with {free} of {needed} bytes free",
            prefix.display()
        );
        disk.fill_to(free);
        assert_disk_full(&build(), &disk, &what);
        let left: Vec<String> = disk
            .listing()
            .into_iter()
            .filter(|p| p != ".big.envship-lock")
            .collect();
        assert!(left.is_empty(), "{what}: left {left:?} behind");
    }
    disk.free_all();
    let out = build();
    assert!(
        out.status.success(),
        "build after freeing space: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(disk.listing(), after_success, "build: the prefix");
}
