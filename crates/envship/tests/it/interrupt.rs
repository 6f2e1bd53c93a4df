//! Interrupting `envship build` with SIGINT (what Ctrl-C sends) leaves a prefix that the next
//! build repairs. The interrupt lands at a known point: one package's archive in the channel is
//! a named pipe, so the build blocks reading it while the other package is installed.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use envship_test_support::{ArchiveFormat, LocalChannel, PackageBuilder};

/// A channel with `a` and `b` in versions 1 and 2, each shipping `share/NAME.txt` with its
/// version, and `b`'s archive of version `blocked` swapped for a named pipe.
struct Channel {
    channel: LocalChannel,
    fifo: PathBuf,
}

impl Channel {
    fn new(blocked: &str) -> Self {
        let channel = LocalChannel::new();
        let mut fifo = PathBuf::new();
        for name in ["a", "b"] {
            for v in ["1", "2"] {
                let mut pkg = PackageBuilder::new(name, v);
                for i in 0..50 {
                    pkg = pkg.file(
                        &format!("share/{name}/{i}.txt"),
                        format!("{name} {v} {i}\n"),
                    );
                }
                let path = channel.add(
                    &pkg.file(&format!("share/{name}.txt"), v),
                    ArchiveFormat::Conda,
                );
                if name == "b" && v == blocked {
                    fifo = path;
                }
            }
        }
        channel.index();
        fs_err::rename(&fifo, fifo.with_extension("real")).unwrap();
        let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success(), "mkfifo {}", fifo.display());
        Self { channel, fifo }
    }

    /// Put the real archive back where the pipe was.
    fn unblock(&self) {
        fs_err::remove_file(&self.fifo).unwrap();
        fs_err::rename(self.fifo.with_extension("real"), &self.fifo).unwrap();
    }
}

fn write_env(dir: &Path, channel: &LocalChannel, a: &str, b: &str) -> PathBuf {
    let path = dir.join("environment.yml");
    fs_err::write(
        &path,
        format!(
            "name: interrupted\nchannels: ['{}']\ndependencies: ['a {a}', 'b {b}']\n",
            channel.url()
        ),
    )
    .unwrap();
    path
}

fn build_cmd(env: &Path, prefix: &Path, cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_envship"));
    cmd.env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .arg("--quiet")
        .arg("build")
        .arg("-f")
        .arg(env)
        .arg("--prefix")
        .arg(prefix)
        .arg("--cache-dir")
        .arg(cache)
        .args(["--offline", "--target", "lcls-rhel6", "--json"]);
    cmd
}

/// Wait until `ready` holds (the build reached the blocked package), then SIGINT the build.
fn interrupt_when(mut child: Child, what: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the build ended ({status}) before {what}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the build did not reach {what} in 60 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(!status.success(), "SIGINT must stop the build: {status}");
}

fn records(prefix: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs_err::read_dir(prefix.join("conda-meta"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// Every file each `conda-meta` record lists is on disk.
fn assert_consistent(prefix: &Path) {
    for name in records(prefix) {
        let text = fs_err::read_to_string(prefix.join("conda-meta").join(&name)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        for f in json["files"].as_array().unwrap() {
            let path = prefix.join(f.as_str().unwrap());
            assert!(
                path.exists(),
                "{name} lists {} but it is missing",
                path.display()
            );
        }
    }
}

fn build_ok(env: &Path, prefix: &Path, cache: &Path) -> serde_json::Value {
    let out = build_cmd(env, prefix, cache).output().unwrap();
    assert!(
        out.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn interrupted_first_build_leaves_nothing_and_the_next_build_completes() {
    let channel = Channel::new("1");
    let dir = tempfile::tempdir().unwrap();
    let env = write_env(dir.path(), &channel.channel, "1", "1");
    let prefix = dir.path().join("envs").join("interrupted");
    let cache = dir.path().join("cache");
    fs_err::create_dir_all(prefix.parent().unwrap()).unwrap();

    let child = build_cmd(&env, &prefix, &cache)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let staging_has_a = || {
        fs_err::read_dir(prefix.parent().unwrap())
            .unwrap()
            .flatten()
            .any(|e| e.path().join("conda-meta/a-1-h0_0.json").exists())
    };
    interrupt_when(child, "`a` in the staging directory", staging_has_a);
    assert!(
        !prefix.exists(),
        "an interrupted first build must not leave a half-built prefix at the final path"
    );

    channel.unblock();
    let out = build_ok(&env, &prefix, &cache);
    assert_eq!(out["installed"], 2, "{out}");
    assert_eq!(records(&prefix), ["a-1-h0_0.json", "b-1-h0_0.json"]);
    assert_consistent(&prefix);
    let left: Vec<_> = fs_err::read_dir(prefix.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "interrupted")
        .collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
}

#[test]
fn interrupted_update_is_repaired_by_the_next_build() {
    let channel = Channel::new("2");
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    let cache = dir.path().join("cache");
    let env = write_env(dir.path(), &channel.channel, "1", "1");
    build_ok(&env, &prefix, &cache);
    assert_eq!(records(&prefix), ["a-1-h0_0.json", "b-1-h0_0.json"]);

    // Both packages change; `b` 2 blocks, so the build stops midway through the transaction.
    let env = write_env(dir.path(), &channel.channel, "2", "2");
    let child = build_cmd(&env, &prefix, &cache)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    interrupt_when(child, "`a` 2 linked", || {
        prefix.join("conda-meta/a-2-h0_0.json").exists()
    });
    let midway = records(&prefix);
    assert!(
        midway.contains(&"a-2-h0_0.json".to_string())
            && !midway.contains(&"b-2-h0_0.json".to_string()),
        "the interrupt landed midway: {midway:?}"
    );

    channel.unblock();
    let out = build_ok(&env, &prefix, &cache);
    assert_eq!(
        records(&prefix),
        ["a-2-h0_0.json", "b-2-h0_0.json"],
        "{out}"
    );
    assert_consistent(&prefix);
    for name in ["a", "b"] {
        assert_eq!(
            fs_err::read_to_string(prefix.join(format!("share/{name}.txt"))).unwrap(),
            "2"
        );
    }

    // Unchanged lock: nothing to do.
    let again = build_ok(&env, &prefix, &cache);
    assert_eq!(again["noop"], true, "{again}");
    eprintln!("no-op rebuild took {} s", again["seconds"]);
}
