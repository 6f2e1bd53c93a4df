//! Interrupting `envship build` with SIGINT (what Ctrl-C sends) ends it within seconds with exit
//! code 130, releases the package cache's lock, and leaves a prefix that the next build repairs.
//!
//! Two interrupts land at a known point: one package's archive in the channel is a named pipe,
//! so the build blocks opening it (where no cancellation check can reach) while the other
//! package is installed. A third sweep sends the signal at every 50 ms of a build instead.
//! Every child has a deadline: a build that ignores its interrupt fails the test naming it.

use std::{
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use envship_test_support::{ArchiveFormat, ChildDeadline, Deadline, LocalChannel, PackageBuilder};

/// envship's grace period after the first signal (`interrupt::GRACE`), plus room for a loaded
/// machine: an interrupted build must be gone by then.
const STOPPED_WITHIN: Duration = Duration::from_secs(15);

/// A channel with `a` and `b` in versions 1 and 2, each shipping `share/NAME.txt` with its
/// version and `files` more files.
fn channel(files: usize) -> LocalChannel {
    let channel = LocalChannel::new();
    for name in ["a", "b"] {
        for v in ["1", "2"] {
            let mut pkg = PackageBuilder::new(name, v);
            for i in 0..files {
                pkg = pkg.file(
                    &format!("share/{name}/{i}.txt"),
                    format!("{name} {v} {i}\n"),
                );
            }
            channel.add(
                &pkg.file(&format!("share/{name}.txt"), v),
                ArchiveFormat::Conda,
            );
        }
    }
    channel.index();
    channel
}

/// [`channel`] with `b`'s archive of version `blocked` swapped for a named pipe.
struct Blocked {
    channel: LocalChannel,
    fifo: PathBuf,
}

impl Blocked {
    fn new(blocked: &str) -> Self {
        let channel = channel(50);
        let fifo = channel.dir.join(format!("linux-64/b-{blocked}-h0_0.conda"));
        fs_err::rename(&fifo, fifo.with_extension("real")).unwrap();
        let made = Command::new("mkfifo").arg(&fifo).status_in_time().unwrap();
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

/// The same build started the way a non-interactive shell starts `cmd &`: with SIGINT ignored,
/// which envship inherits (CI's test run once hung for an hour on builds started so).
fn build_cmd_ignoring_sigint(env: &Path, prefix: &Path, cache: &Path) -> Command {
    let inner = build_cmd(env, prefix, cache);
    let mut cmd = Command::new("sh");
    cmd.env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .arg("-c")
        .arg("trap '' INT; exec \"$@\"")
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args());
    cmd
}

fn spawn_quiet(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn_group()
        .unwrap()
}

fn sigint(child: &Child) {
    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status_in_time()
        .unwrap();
    assert!(killed.success());
}

/// SIGINT the build and check that it stops in time, as interrupted, with the cache unlocked.
fn interrupt_and_check(mut child: Child, cache: &Path) -> ExitStatus {
    sigint(&child);
    let sent = Instant::now();
    let status = child.wait_within("the interrupted `envship build`", STOPPED_WITHIN);
    eprintln!(
        "stopped {:.2} s after SIGINT: {status}",
        sent.elapsed().as_secs_f64()
    );
    assert_eq!(
        status.code(),
        Some(130),
        "an interrupted build exits with 130 (signal: {:?})",
        status.signal()
    );
    assert_cache_unlocked(cache);
    status
}

/// Wait until `ready` holds (the build reached the blocked package), then interrupt it.
fn interrupt_when(mut child: Child, cache: &Path, what: &str, ready: impl Fn() -> bool) {
    let start = Instant::now();
    while !ready() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the build ended ({status}) before {what}");
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("the build did not reach {what} in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    interrupt_and_check(child, cache);
}

/// Nobody holds the package cache's lock: an exclusive `flock` succeeds at once.
fn assert_cache_unlocked(cache: &Path) {
    let path = cache.join("pkgs/.cache.lock");
    let Ok(file) = std::fs::File::open(&path) else {
        return; // the build stopped before it took the lock
    };
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) on a descriptor we own; closing the file releases it.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(
        r,
        0,
        "{} is still locked after the build ended",
        path.display()
    );
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

/// Nothing but the prefix next to it: no staging directory is left.
fn assert_no_staging(prefix: &Path) {
    let name = prefix.file_name().unwrap();
    let left: Vec<_> = fs_err::read_dir(prefix.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains("envship-staging"))
        .filter(|n| n != name)
        .collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
}

fn build_ok(env: &Path, prefix: &Path, cache: &Path) -> serde_json::Value {
    let out = build_cmd(env, prefix, cache).output_in_time().unwrap();
    assert!(
        out.status.success(),
        "build failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn first_build_interrupted_then_completed(ignore_sigint: bool) {
    let channel = Blocked::new("1");
    let dir = tempfile::tempdir().unwrap();
    let env = write_env(dir.path(), &channel.channel, "1", "1");
    let prefix = dir.path().join("envs").join("interrupted");
    let cache = dir.path().join("cache");
    fs_err::create_dir_all(prefix.parent().unwrap()).unwrap();

    let cmd = if ignore_sigint {
        build_cmd_ignoring_sigint(&env, &prefix, &cache)
    } else {
        build_cmd(&env, &prefix, &cache)
    };
    let staging_has_a = || {
        fs_err::read_dir(prefix.parent().unwrap())
            .unwrap()
            .flatten()
            .any(|e| e.path().join("conda-meta/a-1-h0_0.json").exists())
    };
    interrupt_when(
        spawn_quiet(cmd),
        &cache,
        "`a` in the staging directory",
        staging_has_a,
    );
    assert!(
        !prefix.exists(),
        "an interrupted first build must not leave a half-built prefix at the final path"
    );

    channel.unblock();
    let out = build_ok(&env, &prefix, &cache);
    assert_eq!(out["installed"], 2, "{out}");
    assert_eq!(records(&prefix), ["a-1-h0_0.json", "b-1-h0_0.json"]);
    assert_consistent(&prefix);
    assert_no_staging(&prefix);
}

#[test]
fn interrupted_first_build_leaves_nothing_and_the_next_build_completes() {
    first_build_interrupted_then_completed(false);
}

#[test]
fn a_build_that_inherited_an_ignored_sigint_still_stops_on_it() {
    first_build_interrupted_then_completed(true);
}

#[test]
fn interrupted_update_is_repaired_by_the_next_build() {
    let channel = Blocked::new("2");
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("prefix");
    let cache = dir.path().join("cache");
    let env = write_env(dir.path(), &channel.channel, "1", "1");
    build_ok(&env, &prefix, &cache);
    assert_eq!(records(&prefix), ["a-1-h0_0.json", "b-1-h0_0.json"]);

    // Both packages change; `b` 2 blocks, so the build stops midway through the transaction.
    let env = write_env(dir.path(), &channel.channel, "2", "2");
    let child = spawn_quiet(build_cmd(&env, &prefix, &cache));
    interrupt_when(child, &cache, "`a` 2 linked", || {
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

/// Interrupt a build `offset` after it starts; true when it had already finished.
fn interrupt_at(offset: Duration, env: &Path, prefix: &Path, cache: &Path) -> bool {
    let mut child = spawn_quiet(build_cmd(env, prefix, cache));
    std::thread::sleep(offset);
    if let Some(status) = child.try_wait().unwrap() {
        assert!(status.success(), "the build failed on its own: {status}");
        return true;
    }
    sigint(&child);
    let status = child.wait_within("the interrupted `envship build`", STOPPED_WITHIN);
    // A signal that lands as the build returns finds the work done: 0 is as good as 130. One
    // that lands before main installed the handlers kills by the default action, before
    // anything was created: the shell shows 130 for that too.
    assert!(
        status.code() == Some(130) || status.success() || status.signal() == Some(libc::SIGINT),
        "an interrupted build exits with 130, not {status} (offset {offset:?})"
    );
    assert_cache_unlocked(cache);
    status.success()
}

/// A SIGINT at `POINTS` moments spread evenly across a first build and across an update (the
/// lock, the extraction into the cache, the linking, the rename into place): each ends in time
/// with the cache unlocked, and the next build completes a consistent prefix. The moments are
/// fractions of an uninterrupted build measured first, so the sweep covers the whole build on a
/// fast or a loaded machine. `ENVSHIP_TEST_INTERRUPT_POINTS` (default 10) changes the count;
/// scripts/interrupt-stress.sh varies it, so the moments differ sweep to sweep.
#[test]
fn a_sigint_at_any_moment_of_a_build_is_repaired_by_the_next() {
    let points: u32 = std::env::var("ENVSHIP_TEST_INTERRUPT_POINTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let channel = channel(200);
    let dir = tempfile::tempdir().unwrap();
    let mut interrupted = 0;
    for update in [false, true] {
        let mut full = None;
        for k in 0..=points {
            let case = dir.path().join(format!("{update}-{k}"));
            let prefix = case.join("envs/sweep");
            let cache = case.join("cache");
            fs_err::create_dir_all(&case).unwrap();
            let env1 = write_env(&case, &channel, "1", "1");
            if update {
                build_ok(&env1, &prefix, &cache);
            }
            let env = if update {
                write_env(&case, &channel, "2", "2")
            } else {
                env1
            };
            let Some(full) = full else {
                // k = 0: the uninterrupted build whose length the moments divide.
                let t = Instant::now();
                build_ok(&env, &prefix, &cache);
                full = Some(t.elapsed());
                fs_err::remove_dir_all(&case).unwrap();
                continue;
            };
            let offset = full.mul_f64(f64::from(k - 1) / f64::from(points));
            if !interrupt_at(offset, &env, &prefix, &cache) {
                interrupted += 1;
            }
            build_ok(&env, &prefix, &cache);
            let want = if update { "2" } else { "1" };
            assert_eq!(
                records(&prefix),
                [format!("a-{want}-h0_0.json"), format!("b-{want}-h0_0.json")],
                "offset {offset:?}"
            );
            assert_consistent(&prefix);
            assert_no_staging(&prefix);
            fs_err::remove_dir_all(&case).unwrap();
        }
        eprintln!(
            "{} build: {points} moments across {:.2} s",
            if update { "update" } else { "first" },
            full.unwrap_or_default().as_secs_f64()
        );
    }
    eprintln!("{interrupted} builds interrupted, each repaired");
    assert!(
        interrupted >= points,
        "too few interrupts landed: {interrupted}"
    );
}

/// The deadline is what keeps a hang out of CI: a build that blocks forever (on the pipe) and
/// is never interrupted fails this wait in time, named.
#[test]
fn a_hung_build_fails_its_test_at_the_deadline_naming_it() {
    let channel = Blocked::new("1");
    let dir = tempfile::tempdir().unwrap();
    let env = write_env(dir.path(), &channel.channel, "1", "1");
    let prefix = dir.path().join("prefix");
    let cache = dir.path().join("cache");
    let start = Instant::now();
    let failure = std::panic::catch_unwind(|| {
        build_cmd(&env, &prefix, &cache).output_within(Duration::from_secs(3))
    })
    .expect_err("a build blocked on a pipe cannot finish");
    let msg = failure
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert!(
        msg.contains("did not finish within its deadline of 3 s")
            && msg.contains("envship --quiet build"),
        "{msg}"
    );
    assert_cache_unlocked(&cache);
}
