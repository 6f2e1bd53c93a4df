//! Real test prefixes: fixture conda packages installed with rattler, plus hand-made files
//! (a gcc-compiled binary with a binary placeholder, symlinks, hardlinks, an empty dir, a
//! non-UTF-8 name, a pip-installed distribution with a script, activation hooks, env vars).
use envship_test_support::Deadline;

use std::{
    collections::BTreeMap,
    fs,
    os::unix::{ffi::OsStrExt, fs::MetadataExt, fs::PermissionsExt},
    path::{Path, PathBuf},
    process::Command,
};

use rattler::{install::Installer, package_cache::PackageCache};
use rattler_conda_types::{package::IndexJson, PackageRecord, RepoDataRecord, Subdir};
use sha2::Digest;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/packages")
}

/// Install fixture packages (paths relative to fixtures/packages) into `prefix` with rattler.
pub fn install(prefix: &Path, cache: &Path, pkgs: &[&str]) {
    let records: Vec<RepoDataRecord> = pkgs
        .iter()
        .map(|rel| {
            let path = fixtures().join(rel).canonicalize().expect("fixture exists");
            let index: IndexJson =
                rattler_package_streaming::seek::read_package_file(&path).expect("index.json");
            let bytes = fs::read(&path).expect("read package");
            let sha = hex::encode(sha2::Sha256::digest(&bytes));
            let record = with_sha256(
                PackageRecord::from_index_json(index, Some(bytes.len() as u64), None, None)
                    .unwrap(),
                &sha,
            );
            let file_name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            RepoDataRecord {
                package_record: record,
                identifier: file_name.parse().expect("archive identifier"),
                url: url::Url::from_file_path(&path).expect("file url"),
                channel: Some("file:///fixtures".to_string()),
            }
        })
        .collect();
    install_records(prefix, cache, records);
}

/// Install every package of a local channel (`linux-64` and `noarch` repodata, with their md5
/// and sha256) into `prefix` with rattler, as from the channel `channel_url`.
pub fn install_channel(prefix: &Path, cache: &Path, channel_dir: &Path, channel_url: &str) {
    let mut records = Vec::new();
    for subdir in ["linux-64", "noarch"] {
        let Ok(text) = fs::read(channel_dir.join(subdir).join("repodata.json")) else {
            continue;
        };
        let repodata: serde_json::Value = serde_json::from_slice(&text).unwrap();
        for key in ["packages", "packages.conda"] {
            let Some(map) = repodata.get(key).and_then(|m| m.as_object()) else {
                continue;
            };
            for (file_name, record) in map {
                let path = channel_dir.join(subdir).join(file_name);
                records.push(RepoDataRecord {
                    package_record: serde_json::from_value(record.clone()).unwrap(),
                    identifier: file_name.parse().expect("archive identifier"),
                    url: url::Url::from_file_path(&path).expect("file url"),
                    channel: Some(channel_url.to_string()),
                });
            }
        }
    }
    install_records(prefix, cache, records);
}

fn install_records(prefix: &Path, cache: &Path, records: Vec<RepoDataRecord>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        Installer::new()
            .with_package_cache(PackageCache::new(cache))
            .with_target_platform(Subdir::Linux64)
            .with_execute_link_scripts(false)
            .install(prefix, records)
            .await
            .expect("rattler install")
    });
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output_in_time()
        .is_ok_and(|o| o.status.success())
}

/// The binary placeholder room the hand-made package claims (conda's placeholders are 255).
pub const HELLO_ROOM: usize = 255;

/// A prefix with real packages and every kind of file conda-pack's tests cover.
pub struct TestEnv {
    pub _tmp: tempfile::TempDir,
    pub prefix: PathBuf,
}

impl TestEnv {
    pub fn prefix_str(&self) -> String {
        self.prefix.to_str().expect("utf8").to_string()
    }
}

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    fs::write(p, data).expect("write");
}

fn set_exec(p: &Path) {
    fs::set_permissions(p, fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// Build the standard test environment. Returns `None` (after printing SKIP) without gcc.
pub fn build_env() -> Option<TestEnv> {
    if !have("gcc") {
        envship_test_support::skip(
            "build_env",
            "gcc not found; the binary-placeholder test program cannot be built",
        );
        return None;
    }
    let tmp = tempfile::Builder::new()
        .prefix("envship-pack-it")
        .tempdir()
        .expect("tmp");
    let prefix = tmp.path().join("build-prefix");
    let cache = tmp.path().join("pkgs");
    install(
        &prefix,
        &cache,
        &[
            "linux-64/xtensor-io-0.10.3-hb585cf6_0.tar.bz2",
            "linux-64/bcj-cffi-0.5.1-py310h295c915_0.tar.bz2",
            "noarch/cph_test_data-0.0.1-0.tar.bz2",
            "noarch/conda-forge-repodata-patches-20180828-0.tar.bz2",
            "noarch/_r-mutex-1.0.1-anacondar_1.tar.bz2",
        ],
    );
    let p = prefix.to_str().expect("utf8").to_string();

    // A C program with the prefix in a 256-byte NUL-padded string, as conda's binary
    // placeholder replacement leaves it; registered below as a binary placeholder file.
    let src = tmp.path().join("hello.c");
    fs::write(
        &src,
        r#"#include <stdio.h>
char data_path[256] = PREFIX "/share/hello/data.txt";
int main(void) {
    char buf[256];
    FILE *f = fopen(data_path, "r");
    if (!f) { printf("missing %s\n", data_path); return 3; }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    printf("%s: %s", data_path, buf);
    return 0;
}
"#,
    )
    .expect("write c");
    fs::create_dir_all(prefix.join("bin")).expect("bin");
    let out = Command::new("gcc")
        .arg(format!("-DPREFIX=\"{p}\""))
        .arg("-O1")
        .arg("-o")
        .arg(prefix.join("bin/phello"))
        .arg(&src)
        .output_in_time()
        .expect("run gcc");
    assert!(
        out.status.success(),
        "gcc: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    write(&prefix.join("share/hello/data.txt"), b"hello data\n");
    write(
        &prefix.join("etc/hello.conf"),
        format!("data_dir={p}/share/hello\nbin={p}/bin\n").as_bytes(),
    );
    // hardlink, symlinks (relative and absolute-into-prefix), empty dir, non-UTF-8 name
    fs::hard_link(
        prefix.join("share/hello/data.txt"),
        prefix.join("share/hello/data-link.txt"),
    )
    .expect("hardlink");
    std::os::unix::fs::symlink("phello", prefix.join("bin/phello-rel")).expect("symlink");
    std::os::unix::fs::symlink(
        format!("{p}/etc/hello.conf"),
        prefix.join("share/hello/conf-abs"),
    )
    .expect("symlink");
    fs::create_dir_all(prefix.join("share/empty-dir")).expect("empty dir");
    write(
        &prefix.join(std::ffi::OsStr::from_bytes(b"share/hello/caf\xe9.txt")),
        b"latin-1 name\n",
    );
    let hello_size = fs::metadata(prefix.join("bin/phello"))
        .expect("hello")
        .len();
    let record = serde_json::json!({
        "name": "hello", "version": "1.0", "build": "0", "build_number": 0,
        "subdir": "linux-64", "channel": "local", "license": "MIT",
        "sha256": "0000000000000000000000000000000000000000000000000000000000000000",
        "depends": [],
        "files": ["bin/phello", "bin/phello-rel", "etc/hello.conf", "share/hello/data.txt", "share/hello/data-link.txt"],
        "paths_data": {"paths_version": 1, "paths": [
            {"_path": "bin/phello", "path_type": "hardlink", "prefix_placeholder": format!("/opt/{}", "x".repeat(HELLO_ROOM - 5)), "file_mode": "binary", "size_in_bytes": hello_size},
            {"_path": "bin/phello-rel", "path_type": "softlink"},
            {"_path": "etc/hello.conf", "path_type": "hardlink", "prefix_placeholder": "/opt/anaconda1anaconda2anaconda3", "file_mode": "text"},
            {"_path": "share/hello/data.txt", "path_type": "hardlink", "size_in_bytes": 11},
            {"_path": "share/hello/data-link.txt", "path_type": "hardlink", "size_in_bytes": 11}
        ]}
    });
    write(
        &prefix.join("conda-meta/hello-1.0-0.json"),
        serde_json::to_string_pretty(&record)
            .expect("json")
            .as_bytes(),
    );

    // pip-installed distribution with a console script (unowned: found by scanning).
    let site = prefix.join("lib/python3.10/site-packages");
    write(
        &site.join("mypkg/__init__.py"),
        format!("DATA = '{p}/share/mypkg'\n").as_bytes(),
    );
    let di = site.join("mypkg-1.0.dist-info");
    write(
        &di.join("METADATA"),
        b"Metadata-Version: 2.1\nName: mypkg\nVersion: 1.0\n\nlong description\n",
    );
    write(&di.join("INSTALLER"), b"pip\n");
    write(
        &di.join("RECORD"),
        b"mypkg/__init__.py,,\nmypkg-1.0.dist-info/METADATA,,\n../../../bin/mytool,,\n",
    );
    write(
        &prefix.join("bin/mytool"),
        format!("#!{p}/bin/python\nimport mypkg\n").as_bytes(),
    );
    set_exec(&prefix.join("bin/mytool"));

    // environment.yml `variables:` and an activation hook.
    write(
        &prefix.join("conda-meta/state"),
        br#"{"env_vars": {"HELLO_VAR": "it's set", "OTHER": "2"}}"#,
    );
    write(
        &prefix.join("etc/conda/activate.d/hello.sh"),
        b"export HELLO_ACTIVATED=yes\n",
    );
    write(
        &prefix.join("etc/conda/deactivate.d/hello.sh"),
        b"unset HELLO_ACTIVATED\n",
    );
    Some(TestEnv { _tmp: tmp, prefix })
}

/// A snapshot of a tree: path → (kind, mode, content or link target).
pub type Tree = BTreeMap<Vec<u8>, (char, u32, Vec<u8>)>;

pub fn snapshot(root: &Path, skip: &[&str]) -> Tree {
    let mut t = Tree::new();
    for e in walkdir::WalkDir::new(root).min_depth(1) {
        let e = e.expect("walk");
        let rel = e
            .path()
            .strip_prefix(root)
            .expect("rel")
            .as_os_str()
            .as_bytes()
            .to_vec();
        if skip.iter().any(|s| s.as_bytes() == rel.as_slice()) {
            continue;
        }
        let md = e.path().symlink_metadata().expect("md");
        let v = if md.file_type().is_symlink() {
            (
                'l',
                0,
                fs::read_link(e.path())
                    .expect("link")
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
        } else if md.is_dir() {
            ('d', md.mode() & 0o7777, Vec::new())
        } else {
            ('f', md.mode() & 0o7777, fs::read(e.path()).expect("read"))
        };
        t.insert(rel, v);
    }
    t
}

/// Files (by relative path) whose bytes contain `needle`.
pub fn files_containing(tree: &Tree, needle: &[u8]) -> Vec<String> {
    tree.iter()
        .filter(|(_, (k, _, c))| *k == 'f' && memchr::memmem::find(c, needle).is_some())
        .map(|(p, _)| String::from_utf8_lossy(p).into_owned())
        .collect()
}

pub fn sh(script: &str) -> std::process::Output {
    Command::new("bash")
        .arg("-c")
        .arg(script)
        .output_in_time()
        .expect("run bash")
}

#[track_caller]
pub fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// rattler's digest type comes from another sha2 major version: go through its serde form.
fn with_sha256(record: PackageRecord, sha: &str) -> PackageRecord {
    let mut v = serde_json::to_value(&record).unwrap();
    v["sha256"] = serde_json::Value::String(sha.to_string());
    serde_json::from_value(v).unwrap()
}

#[track_caller]
pub fn assert_trees_equal(a: &Tree, b: &Tree, what: &str) {
    let only = |x: &Tree, y: &Tree| -> Vec<String> {
        x.keys()
            .filter(|k| !y.contains_key(*k))
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect()
    };
    let (only_a, only_b) = (only(a, b), only(b, a));
    assert!(
        only_a.is_empty() && only_b.is_empty(),
        "{what}: different paths: only in the first: {only_a:?}; only in the second: {only_b:?}"
    );
    for (k, v) in a {
        if b[k] != *v {
            let show = |t: &(char, u32, Vec<u8>)| {
                format!(
                    "{} {:o} {}",
                    t.0,
                    t.1,
                    String::from_utf8_lossy(&t.2[..t.2.len().min(2000)])
                )
            };
            panic!(
                "{what}: {} differs:\n{}\n---\n{}",
                String::from_utf8_lossy(k),
                show(v),
                show(&b[k])
            );
        }
    }
}
