//! Two envships at once, as real processes: two packs to one output, two deploys of one
//! version or of two versions, two builds of one prefix, two packs sharing a block cache. Each
//! ends with one complete result; the other waits (saying so after a second) or fails clearly.

use std::{
    io::Read,
    path::Path,
    process::{Child, Command, Output, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use envship_test_support::{ChildDeadline, Deadline};

use super::{
    archive_name, assert_complete, build_cmd, built, current, deploy_cmd, ok, pack_cached_cmd,
    pack_cmd, run, successes, two_versions,
};

/// How long a waiting child may take to say that it waits (it should after one second).
const SAYS_IT_WAITS_WITHIN: Duration = Duration::from_secs(30);

/// A child whose stderr is collected as it comes.
struct Running {
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    what: String,
}

fn start(mut cmd: Command, what: &str) -> Running {
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = cmd.spawn_group().unwrap();
    let mut pipe = child.stderr.take().unwrap();
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let sink = stderr.clone();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    Running {
        child,
        stderr,
        reader: Some(reader),
        what: what.to_string(),
    }
}

impl Running {
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Wait until its stderr holds `text`; panics naming the child past the limit.
    fn wait_for_message(&self, text: &str) {
        let start = Instant::now();
        while !self.stderr().contains(text) {
            assert!(
                start.elapsed() < SAYS_IT_WAITS_WITHIN,
                "{}: no {text:?} in {SAYS_IT_WAITS_WITHIN:?}: {}",
                self.what,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Wait for it to end (within the deadline): its exit status and stderr.
    fn finish(mut self) -> (std::process::ExitStatus, String) {
        let status = self.child.wait_in_time(&self.what);
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        (status, self.stderr())
    }
}

/// Another envship, as far as the lock goes: an exclusive `flock` on `path` until dropped.
struct Held {
    _file: std::fs::File,
}

fn hold(path: &Path) -> Held {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap();
    // SAFETY: a valid fd.
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", path.display());
    Held { _file: f }
}

/// Two processes started together; both run to their end.
fn both(a: Command, b: Command, what: &str) -> [Output; 2] {
    let (a, b) = (
        start(a, &format!("{what} (first)")),
        start(b, &format!("{what} (second)")),
    );
    [a, b].map(|r| {
        let (status, stderr) = r.finish();
        Output {
            status,
            stdout: Vec::new(),
            stderr: stderr.into_bytes(),
        }
    })
}

fn stderr_of(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_pack_waits_for_the_lock_on_its_output_and_says_so() {
    let env = built("1", 4, 64);
    let out = env
        .dir
        .path()
        .join("dist")
        .join(archive_name("1", "tar.gz"));
    fs_err::create_dir_all(out.parent().unwrap()).unwrap();
    let lock = env
        .dir
        .path()
        .join("dist")
        .join(format!(".{}.envship-lock", archive_name("1", "tar.gz")));
    let held = hold(&lock);
    let pack = start(
        pack_cmd(&env.prefix, &out, "tar.gz", &[]),
        "pack while another holds the output's lock",
    );
    pack.wait_for_message(&format!(
        "waiting for lock on {} (held by another envship)",
        lock.display()
    ));
    assert!(
        !out.exists(),
        "pack wrote {} while it waited",
        out.display()
    );
    drop(held);
    let (status, stderr) = pack.finish();
    assert!(
        status.success(),
        "pack after the lock was released: {stderr}"
    );
    assert_complete(&out, "pack after waiting for the lock");
}

#[test]
fn two_packs_to_one_output_end_with_one_complete_archive() {
    let env = built("1", 8, 128);
    let out = env
        .dir
        .path()
        .join("dist")
        .join(archive_name("1", "tar.gz"));
    // Different levels make different bytes: sidecars of one with the archive of the other
    // would not match.
    for round in 0..3 {
        let what = format!("two packs --force to one output, round {round}");
        let outs = both(
            pack_cmd(
                &env.prefix,
                &out,
                "tar.gz",
                &["--force", "--compress-level", "1"],
            ),
            pack_cmd(
                &env.prefix,
                &out,
                "tar.gz",
                &["--force", "--compress-level", "9"],
            ),
            &what,
        );
        for o in &outs {
            assert!(o.status.success(), "{what}: {}", stderr_of(o));
        }
        assert_complete(&out, &what);
    }
    // Without --force the second one to get the lock refuses clearly.
    fs_err::remove_dir_all(out.parent().unwrap()).unwrap();
    let what = "two packs without --force to one output";
    let outs = both(
        pack_cmd(&env.prefix, &out, "tar.gz", &[]),
        pack_cmd(&env.prefix, &out, "tar.gz", &[]),
        what,
    );
    let (won, lost): (Vec<_>, Vec<_>) = outs.iter().partition(|o| o.status.success());
    assert_eq!(won.len(), 1, "{what}: {:?}", outs.map(|o| stderr_of(&o)));
    assert_eq!(
        lost[0].status.code(),
        Some(2),
        "{what}: the other's exit code"
    );
    assert!(
        stderr_of(lost[0]).contains(&out.display().to_string()),
        "{what}: the refusal does not name the output: {}",
        stderr_of(lost[0])
    );
    assert_complete(&out, what);
    let temps: Vec<String> = fs_err::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".envship-pack-") || n.contains(".tmp"))
        .collect();
    assert!(temps.is_empty(), "{what}: temp files left: {temps:?}");
}

#[test]
fn two_deploys_of_one_version_deploy_it_once() {
    let (env, [v1, _]) = two_versions(8, 128);
    let root = env.dir.path().join("root");
    let what = "two deploys of big 1 at once";
    let outs = both(
        deploy_cmd(&v1, &root, &[]),
        deploy_cmd(&v1, &root, &[]),
        what,
    );
    let (won, lost): (Vec<_>, Vec<_>) = outs.iter().partition(|o| o.status.success());
    assert_eq!(won.len(), 1, "{what}: {:?}", outs.map(|o| stderr_of(&o)));
    assert_eq!(
        lost[0].status.code(),
        Some(2),
        "{what}: the other's exit code"
    );
    assert!(
        stderr_of(lost[0]).contains("already"),
        "{what}: the other does not say the version is there: {}",
        stderr_of(lost[0])
    );
    assert_eq!(current(&root).as_deref(), Some("1"), "{what}: current");
    assert_eq!(
        successes(&root),
        vec![("1".into(), None)],
        "{what}: the log"
    );
    let left: Vec<String> = fs_err::read_dir(root.join("big"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial") || n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "{what}: left {left:?}");
}

#[test]
fn concurrent_deploys_of_two_versions_keep_the_previous_chain() {
    let (env, [v1, v2]) = two_versions(8, 128);
    for round in 0..2 {
        let root = env.dir.path().join(format!("root-{round}"));
        let what = format!("deploys of big 1 and 2 at once, round {round}");
        let outs = both(
            deploy_cmd(&v1, &root, &[]),
            deploy_cmd(&v2, &root, &[]),
            &what,
        );
        for o in &outs {
            assert!(o.status.success(), "{what}: {}", stderr_of(o));
        }
        let done = successes(&root);
        assert_eq!(done.len(), 2, "{what}: {done:?}");
        let (first, second) = (&done[0], &done[1]);
        assert_eq!(
            first.1, None,
            "{what}: the first replaced something: {done:?}"
        );
        assert_eq!(
            second.1.as_ref(),
            Some(&first.0),
            "{what}: the second's previous is not the first: {done:?}"
        );
        assert_eq!(current(&root), Some(second.0.clone()), "{what}: current");
        for v in ["1", "2"] {
            let mut verify = super::envship();
            verify.arg("verify").arg(root.join("big").join(v));
            ok(verify, &format!("{what}: verify {v}"));
        }
    }
}

#[test]
fn two_builds_of_one_prefix_make_one_complete_prefix() {
    let env = built("1", 8, 128);
    let prefix = env.dir.path().join("twice/big");
    let what = "two builds of one new prefix";
    let outs = both(
        build_cmd(&env.env_file, &prefix, &env.cache),
        build_cmd(&env.env_file, &prefix, &env.cache),
        what,
    );
    for o in &outs {
        assert!(o.status.success(), "{what}: {}", stderr_of(o));
    }
    let records: Vec<String> = fs_err::read_dir(prefix.join("conda-meta"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    assert_eq!(records.len(), 1, "{what}: conda-meta holds {records:?}");
    for i in 0..8 {
        let rel = format!("share/big/{i}.bin");
        assert_eq!(
            fs_err::read(prefix.join(&rel)).unwrap(),
            fs_err::read(env.prefix.join(&rel)).unwrap(),
            "{what}: {rel} differs from a single build's"
        );
    }
    let staging: Vec<String> = fs_err::read_dir(prefix.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("envship-staging"))
        .collect();
    assert!(staging.is_empty(), "{what}: staging left: {staging:?}");
}

#[test]
fn a_build_waits_for_the_lock_on_its_prefix_and_says_so() {
    let env = built("1", 4, 64);
    let prefix = env.dir.path().join("waits/big");
    fs_err::create_dir_all(prefix.parent().unwrap()).unwrap();
    let lock = prefix.parent().unwrap().join(".big.envship-lock");
    let held = hold(&lock);
    let build = start(
        build_cmd(&env.env_file, &prefix, &env.cache),
        "build while another holds the prefix's lock",
    );
    build.wait_for_message(&format!(
        "waiting for lock on {} (held by another envship)",
        lock.display()
    ));
    assert!(
        !prefix.exists(),
        "build made {} while it waited",
        prefix.display()
    );
    drop(held);
    let (status, stderr) = build.finish();
    assert!(
        status.success(),
        "build after the lock was released: {stderr}"
    );
    assert!(
        prefix.join("conda-meta").is_dir(),
        "build after waiting: no prefix"
    );
}

#[test]
fn two_packs_sharing_a_block_cache_ship_the_same_bytes() {
    let env = built("1", 8, 128);
    let reference = env.dir.path().join("reference.tar.gz");
    ok(
        pack_cmd(&env.prefix, &reference, "tar.gz", &[]),
        "pack the reference",
    );
    let cache = env.dir.path().join("shared-cache");
    let cached = |name: &str, extra: &[&str]| {
        let out = env.dir.path().join(name);
        let mut cmd = pack_cached_cmd(&env.prefix, &out, "tar.gz", extra);
        cmd.env("ENVSHIP_CACHE_DIR", &cache);
        (cmd, out)
    };
    let (a, out_a) = cached("a.tar.gz", &[]);
    let (b, out_b) = cached("b.tar.gz", &[]);
    let what = "two packs filling one block cache at once";
    let outs = both(a, b, what);
    for o in &outs {
        assert!(o.status.success(), "{what}: {}", stderr_of(o));
    }
    let want = fs_err::read(&reference).unwrap();
    for out in [&out_a, &out_b] {
        assert!(
            fs_err::read(out).unwrap() == want,
            "{what}: {} differs from the reference",
            out.display()
        );
    }
    let temps: Vec<_> = walkdir::WalkDir::new(&cache)
        .into_iter()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp-"))
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(temps.is_empty(), "{what}: temp entries left: {temps:?}");
    // A third pack takes its blocks from what the two wrote, and ships the same bytes.
    let (c, out_c) = cached("c.tar.gz", &["--json"]);
    let json: serde_json::Value = serde_json::from_slice(&run(c).stdout).unwrap();
    assert_eq!(
        fs_err::read(&out_c).unwrap(),
        want,
        "pack from the shared cache"
    );
    assert!(
        json["blocks"]["reused"].as_u64().unwrap_or(0) > 0,
        "pack after the two reused no block: {json}"
    );
}
