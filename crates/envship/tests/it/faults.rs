//! Faults (issue 24): a full disk ([`full_disk`]) and two envships at once ([`concurrent`]),
//! through the real binary. Each case names the command and the point it checks.

mod concurrent;
mod full_disk;

use std::path::{Path, PathBuf};

use std::process::{Command, Output};

use envship_test_support::{ArchiveFormat, Deadline, LocalChannel, PackageBuilder};

/// A built prefix in a temp dir: package `big` with incompressible files, so that its archives
/// are about as large as the prefix.
pub struct Built {
    pub dir: tempfile::TempDir,
    pub prefix: PathBuf,
    pub cache: PathBuf,
    pub env_file: PathBuf,
    pub channel: LocalChannel,
}

/// A channel holding `big` 1 and 2, each `files` files of `kib` KiB of random bytes.
pub fn channel(files: usize, kib: usize) -> LocalChannel {
    let channel = LocalChannel::new();
    for (v, seed) in [("1", 1u64), ("2", 2)] {
        let mut pkg = PackageBuilder::new("big", v);
        for i in 0..files {
            // Version 2 shares its first half with version 1 (a linked deploy links those).
            let s = if i < files / 2 {
                1000 + i as u64
            } else {
                seed * 100 + i as u64
            };
            pkg = pkg.file(
                &format!("share/big/{i}.bin"),
                envship_test_support::random_bytes(s, kib << 10),
            );
        }
        channel.add(&pkg.file("share/big/version.txt", v), ArchiveFormat::Conda);
    }
    channel.index();
    channel
}

/// The envship binary under test, as a process to spawn (`crate::envship` without the
/// assertions, whose commands cannot be started in the background).
pub fn envship() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_envship"));
    cmd.env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .env_remove("ENVSHIP_TARGET");
    cmd
}

/// Run `cmd` (within the deadline) and check that it succeeded; `what` names it.
pub fn ok(mut cmd: Command, what: &str) -> Output {
    let out = cmd.output_in_time().unwrap();
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Run `cmd` within the deadline.
pub fn run(mut cmd: Command) -> Output {
    cmd.output_in_time().unwrap()
}

/// The `envship build` command for `env_file` into `prefix`.
pub fn build_cmd(env_file: &Path, prefix: &Path, cache: &Path) -> Command {
    let mut cmd = envship();
    cmd.arg("build")
        .arg("-f")
        .arg(env_file)
        .arg("--prefix")
        .arg(prefix)
        .arg("--cache-dir")
        .arg(cache)
        .args(["--offline", "--target", "lcls-rhel6"]);
    cmd
}

/// Write `environment.yml` for `big` of `version` into `dir`.
pub fn env_file(dir: &Path, channel: &LocalChannel, version: &str) -> PathBuf {
    let path = dir.join(format!("environment-{version}.yml"));
    fs_err::write(
        &path,
        format!(
            "name: big\nchannels: ['{}']\ndependencies: ['big {version}']\n",
            channel.url()
        ),
    )
    .unwrap();
    path
}

/// `big` of `version` built into `DIR/big` (`files` × `kib` KiB).
pub fn built(version: &str, files: usize, kib: usize) -> Built {
    let channel = channel(files, kib);
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("big");
    let cache = dir.path().join("cache");
    let env_file = env_file(dir.path(), &channel, version);
    ok(
        build_cmd(&env_file, &prefix, &cache),
        &format!("envship build of big {version}"),
    );
    Built {
        dir,
        prefix,
        cache,
        env_file,
        channel,
    }
}

/// `envship pack` of `prefix` to `output`, without the block cache.
pub fn pack_cmd(prefix: &Path, output: &Path, format: &str, extra: &[&str]) -> Command {
    let mut cmd = pack_cached_cmd(prefix, output, format, extra);
    cmd.arg("--no-reuse");
    cmd
}

/// `envship pack` of `prefix` to `output`, with the block cache the environment names (set
/// `ENVSHIP_CACHE_DIR` on it; the cache is then `ENVSHIP_CACHE_DIR/envship-blocks`).
pub fn pack_cached_cmd(prefix: &Path, output: &Path, format: &str, extra: &[&str]) -> Command {
    let mut cmd = envship();
    cmd.arg("pack")
        .arg("--prefix")
        .arg(prefix)
        .arg("-o")
        .arg(output)
        .args(["--format", format, "--name", "big"]);
    if !extra.contains(&"--version") {
        cmd.args(["--version", "1"]);
    }
    if format == "squashfs" {
        cmd.args(["--dest-prefix", "/opt/big"]);
    }
    cmd.args(extra);
    cmd
}

/// The archive file name deploy expects (`NAME-VERSION-TARGET-SUBDIR.EXT`).
pub fn archive_name(version: &str, ext: &str) -> String {
    format!("big-{version}-lcls-rhel6-linux-64.{ext}")
}

/// The sha256 of a file, hex.
pub fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(fs_err::read(path).unwrap()))
}

/// Check that `archive` is there with sidecars that describe it: the `.sha256` (for files)
/// and the manifest's sha256 match its bytes.
pub fn assert_complete(archive: &Path, what: &str) {
    let manifest_path = envship_pack::Sidecar::Manifest.path_for(archive);
    let manifest: serde_json::Value =
        serde_json::from_slice(&fs_err::read(&manifest_path).unwrap_or_else(|e| {
            panic!(
                "{what}: the manifest of {} is missing: {e}",
                archive.display()
            )
        }))
        .unwrap();
    if archive.is_dir() {
        return;
    }
    let sum = sha256_of(archive);
    let sidecar = fs_err::read_to_string(envship_pack::Sidecar::Sha256.path_for(archive))
        .unwrap_or_else(|e| {
            panic!(
                "{what}: the .sha256 of {} is missing: {e}",
                archive.display()
            )
        });
    assert!(
        sidecar.starts_with(&sum),
        "{what}: {}'s .sha256 says {sidecar:?}, the file is {sum}",
        archive.display()
    );
    assert_eq!(
        manifest["sha256"].as_str(),
        Some(sum.as_str()),
        "{what}: {}'s manifest names another archive",
        archive.display()
    );
}

/// Two archives for deploys, `DIR/dist/big-{1,2}-….tar.gz` with sidecars: `big` 1 and 2, built
/// and packed.
pub fn two_versions(files: usize, kib: usize) -> (Built, [PathBuf; 2]) {
    let env = built("1", files, kib);
    let dist = env.dir.path().join("dist");
    let v1 = dist.join(archive_name("1", "tar.gz"));
    ok(pack_cmd(&env.prefix, &v1, "tar.gz", &[]), "pack big 1");
    let prefix2 = env.dir.path().join("v2/big");
    let file2 = env_file(env.dir.path(), &env.channel, "2");
    ok(
        build_cmd(&file2, &prefix2, &env.cache),
        "envship build of big 2",
    );
    let v2 = dist.join(archive_name("2", "tar.gz"));
    ok(
        pack_cmd(&prefix2, &v2, "tar.gz", &["--version", "2"]),
        "pack big 2",
    );
    (env, [v1, v2])
}

/// `envship deploy ARCHIVE --root ROOT` and more flags.
pub fn deploy_cmd(archive: &Path, root: &Path, extra: &[&str]) -> Command {
    let mut cmd = envship();
    cmd.arg("deploy")
        .arg(archive)
        .arg("--root")
        .arg(root)
        .args(extra);
    cmd
}

/// The version `ROOT/big/current` points at.
pub fn current(root: &Path) -> Option<String> {
    fs_err::read_link(root.join("big/current"))
        .ok()
        .map(|p| p.display().to_string())
}

/// Every record of `ROOT/.envship/deployments.jsonl`; panics naming a line that is not one.
pub fn records(root: &Path) -> Vec<serde_json::Value> {
    let path = root.join(".envship/deployments.jsonl");
    let text = fs_err::read_to_string(&path).unwrap_or_default();
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).unwrap_or_else(|e| {
                panic!("{}:{}: not a record ({e}): {l:?}", path.display(), i + 1)
            })
        })
        .collect()
}

/// `(version, previous)` of every successful deploy in the log, oldest first.
pub fn successes(root: &Path) -> Vec<(String, Option<String>)> {
    records(root)
        .iter()
        .filter(|r| r["result"] == "success" && r["action"] == "deploy")
        .map(|r| {
            (
                r["version"].as_str().unwrap_or_default().to_string(),
                r["previous"].as_str().map(str::to_string),
            )
        })
        .collect()
}
