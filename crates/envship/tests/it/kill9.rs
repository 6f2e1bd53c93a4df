//! kill -9 anywhere: `build`, `pack`, `unpack`, `publish --to` and `deploy` are killed with
//! SIGKILL at evenly spread points of their run (offsets measured from an unkilled run of the
//! same command), and after each kill:
//! - what a reader looks at is the old state or the complete new state: no archive that is not
//!   the whole archive, no sidecar that disagrees with its archive, no published file that is
//!   not the source's bytes, `current` on a complete version;
//! - the same command, run again, succeeds and leaves the complete new state with no temp file
//!   of the killed run left behind.
//!
//! A failure names the command and the offset it was killed at.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use envship_test_support::{ArchiveFormat, ChildDeadline, Deadline, LocalChannel, PackageBuilder};

/// Kill points per command.
const POINTS: u32 = 8;

/// A channel with one package of many files and a few large ones.
fn channel() -> LocalChannel {
    let channel = LocalChannel::new();
    let mut pkg = PackageBuilder::new("bulk", "1");
    for i in 0..1500u64 {
        pkg = pkg.file(
            &format!("share/bulk/{}/{i}.dat", i % 30),
            envship_test_support::random_bytes(i, 4096),
        );
    }
    for i in 0..4u64 {
        pkg = pkg.file(
            &format!("lib/bulk-{i}.bin"),
            envship_test_support::random_bytes(1000 + i, 3 << 20),
        );
    }
    channel.add(&pkg, ArchiveFormat::Conda);
    channel.index();
    channel
}

fn envship_cmd(args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_envship"));
    cmd.env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .env_remove("ENVSHIP_TARGET")
        .arg("--quiet")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Run to the end; the time it took.
fn run_ok(what: &str, mut cmd: Command) -> Duration {
    let t = Instant::now();
    let out = cmd.output_in_time().unwrap();
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

/// Start `cmd`, SIGKILL its process group after `after`, reap it.
fn kill_after(cmd: &mut Command, after: Duration) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn_group()
        .unwrap();
    std::thread::sleep(after);
    // The whole group: what envship started (a test's bash, pip) dies with it, as on a runner
    // that is killed.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status_in_time();
    child.wait_in_time("a killed envship");
}

/// For each of [`POINTS`] offsets across an unkilled run of `make()`: `reset()`, start it,
/// kill it there, `after_kill(point)`, then (unless `after_kill` found the run finished, and a
/// second run would rightly refuse) run it again to the end and `after_rerun(point)`.
fn sweep(
    name: &str,
    make: impl Fn() -> Command,
    reset: impl Fn(),
    after_kill: impl Fn(&str) -> Rerun,
    after_rerun: impl Fn(&str),
) {
    reset();
    let full = run_ok(name, make());
    for i in 0..POINTS {
        reset();
        let at = full.mul_f64((f64::from(i) + 0.5) / f64::from(POINTS));
        kill_after(&mut make(), at);
        let point = format!(
            "`envship {name}` killed at {} ms of {} ms",
            at.as_millis(),
            full.as_millis()
        );
        if after_kill(&point) == Rerun::Finished {
            continue;
        }
        run_ok(&format!("{name}, run again after it was {point}"), make());
        after_rerun(&point);
    }
    eprintln!("{name}: {POINTS} kills across {} ms", full.as_millis());
}

/// Whether the killed run had finished its work before the kill.
#[derive(PartialEq, Eq)]
enum Rerun {
    /// Run it again: it must complete the work.
    Needed,
    /// The kill came after the work was complete.
    Finished,
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

fn sha256(path: &Path) -> String {
    envship_spec::digest::sha256_file(path).unwrap()
}

/// Every file of `dir` (relative path → sha256), for comparing trees.
fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let e = e.unwrap();
        if e.file_type().is_file() {
            let rel = e.path().strip_prefix(dir).unwrap().display().to_string();
            out.push((rel, sha256(e.path())));
        }
    }
    out
}

fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

#[test]
fn kill_9_anywhere_leaves_the_old_or_the_complete_new_state() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    let channel = channel();
    let env = root.join("environment.yml");
    std::fs::write(
        &env,
        format!(
            "name: bulk\nchannels: ['{}']\ndependencies: [bulk]\n",
            channel.url()
        ),
    )
    .unwrap();
    let (prefix, cache) = (root.join("prefix"), root.join("cache"));
    let build = || {
        envship_cmd(&[
            os("build"),
            os("-f"),
            env.as_os_str(),
            os("--prefix"),
            prefix.as_os_str(),
            os("--cache-dir"),
            cache.as_os_str(),
            os("--offline"),
            os("--target"),
            os("rhel8"),
        ])
    };
    // build: a killed build is repaired by the next one, to the same files as a clean build.
    run_ok("build", build());
    let clean = tree(&prefix.join("lib"));
    sweep(
        "build",
        build,
        || {
            let _ = std::fs::remove_dir_all(&prefix);
        },
        |_| Rerun::Needed,
        |point| assert_eq!(tree(&prefix.join("lib")), clean, "{point}: lib/ differs"),
    );

    // pack: the archive is whole or absent, a sidecar agrees with its archive.
    let dist = root.join("dist");
    let archive = dist.join("bulk-1.0-rhel8-linux-64.tar.gz");
    let pack_cmd = |version: &str, output: &Path| {
        envship_cmd(&[
            os("pack"),
            os("--name"),
            os("bulk"),
            os("--prefix"),
            prefix.as_os_str(),
            os("--version"),
            os(version),
            os("--target"),
            os("rhel8"),
            os("--no-reuse"),
            os("--force"),
            os("-o"),
            output.as_os_str(),
        ])
    };
    let pack = || pack_cmd("1.0", &archive);
    std::fs::create_dir_all(&dist).unwrap();
    run_ok("pack", pack());
    let whole = sha256(&archive);
    let packed = names(&dist);
    let sidecar = envship_pack::Sidecar::Sha256.path_for(&archive);
    let check_pack = |point: &str| {
        if archive.exists() {
            assert_eq!(sha256(&archive), whole, "{point}: a partial archive");
        }
        if sidecar.exists() {
            assert!(archive.exists(), "{point}: a sidecar without its archive");
            let line = std::fs::read_to_string(&sidecar).unwrap();
            assert!(line.starts_with(&whole), "{point}: the .sha256 disagrees");
        }
    };
    sweep(
        "pack",
        pack,
        || {
            let _ = std::fs::remove_dir_all(&dist);
            std::fs::create_dir_all(&dist).unwrap();
        },
        |point| {
            check_pack(point);
            Rerun::Needed
        },
        |point| {
            assert_eq!(sha256(&archive), whole, "{point}");
            assert_eq!(names(&dist), packed, "{point}: what is left in dist/");
        },
    );

    // unpack: a killed unpack is named or cleaned by the next, which completes it.
    let dest = root.join("unpacked");
    let unpack = || envship_cmd(&[os("unpack"), archive.as_os_str(), dest.as_os_str()]);
    run_ok("unpack", unpack());
    let unpacked = tree(&dest.join("lib"));
    sweep(
        "unpack",
        unpack,
        || {
            let _ = std::fs::remove_dir_all(&dest);
        },
        |point| {
            // Unmarked, DEST is complete (and a second unpack into it rightly refuses).
            let marked = envship_pack::unpacking_marker(&dest).exists();
            if marked || !dest.exists() {
                return Rerun::Needed;
            }
            assert_eq!(
                tree(&dest.join("lib")),
                unpacked,
                "{point}: unmarked, incomplete"
            );
            let record = envship_pack::tree::record_path(&dest);
            assert!(
                record.is_file(),
                "{point}: unmarked, without its tree record"
            );
            Rerun::Finished
        },
        |point| assert_eq!(tree(&dest.join("lib")), unpacked, "{point}: lib/ differs"),
    );

    // publish --to: a published name holds the source's bytes or does not exist.
    let drop = root.join("drop");
    let publish = || {
        envship_cmd(&[
            os("publish"),
            archive.as_os_str(),
            os("--to"),
            drop.as_os_str(),
        ])
    };
    std::fs::create_dir(&drop).unwrap();
    run_ok("publish", publish());
    let published = names(&drop);
    let check_drop = |point: &str| {
        for n in names(&drop) {
            if n.starts_with('.') {
                continue;
            }
            assert_eq!(
                sha256(&drop.join(&n)),
                sha256(&dist.join(&n)),
                "{point}: {n} in the drop is not the source's bytes"
            );
        }
    };
    sweep(
        "publish --to",
        publish,
        || {
            let _ = std::fs::remove_dir_all(&drop);
            std::fs::create_dir(&drop).unwrap();
        },
        |point| {
            check_drop(point);
            Rerun::Needed
        },
        |point| assert_eq!(names(&drop), published, "{point}: what is in the drop"),
    );

    // deploy: `current` is the old complete version or the new complete one.
    let deploy_root = root.join("root");
    let v2 = dist.join("bulk-2.0-rhel8-linux-64.tar.gz");
    run_ok("pack 2.0", pack_cmd("2.0", &v2));
    let deploy = |archive: &Path| {
        envship_cmd(&[
            os("deploy"),
            os("--root"),
            deploy_root.as_os_str(),
            archive.as_os_str(),
        ])
    };
    let current = deploy_root.join("bulk/current");
    let verify_current = |point: &str| {
        let out = envship_cmd(&[os("verify"), current.as_os_str()])
            .stdout(Stdio::piped())
            .output_in_time()
            .unwrap();
        assert!(
            out.status.success(),
            "{point}: current does not verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    sweep(
        "deploy",
        || deploy(&v2),
        || {
            let _ = std::fs::remove_dir_all(&deploy_root);
            run_ok("deploy 1.0", deploy(&archive));
        },
        |point| {
            let to = std::fs::read_link(&current).unwrap();
            assert!(
                to == Path::new("1.0") || to == Path::new("2.0"),
                "{point}: current -> {}",
                to.display()
            );
            verify_current(point);
            // Live on 2.0: the deploy was done (a second deploy of 2.0 rightly refuses).
            if to == Path::new("2.0") {
                Rerun::Finished
            } else {
                Rerun::Needed
            }
        },
        |point| {
            assert_eq!(std::fs::read_link(&current).unwrap(), PathBuf::from("2.0"));
            verify_current(point);
            let hidden: Vec<String> = names(&deploy_root.join("bulk"))
                .into_iter()
                .filter(|n| {
                    n.starts_with('.') && !n.starts_with(".1.0.") && !n.starts_with(".2.0.")
                })
                .collect();
            assert!(hidden.is_empty(), "{point}: left in the root: {hidden:?}");
        },
    );
}
