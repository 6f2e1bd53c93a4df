//! `envship deploy`: put an archive live on a production host, atomically and on record.
//!
//! Layout under ROOT: `NAME/VERSION/` (complete environments), `NAME/current` → `VERSION` (a
//! relative symlink), and `.envship/` (the `lock`, `deployments.jsonl`, test logs, downloads).
//!
//! Crash safety (kill -9 at any point leaves `current` pointing at a complete version): an
//! archive is extracted into `NAME/.VERSION.partial-XXXX` and renamed to `VERSION` only once
//! extracted and relocated; `current` is switched by creating a new symlink under a temp name
//! and renaming it over the old one; `--force` swaps the new tree with the old one in one
//! `renameat2(RENAME_EXCHANGE)`. Leftovers of a killed deploy (partials, temp links, swapped-out
//! trees) are removed by the next deploy, under the lock. The lock (`flock` on
//! `.envship/lock`) serializes deploys and rollbacks and dies with its holder.
//!
//! Without `renameat2` (Linux before 3.15, as on RHEL 6; file systems without
//! `RENAME_EXCHANGE`, such as NFS) a forced replacement takes two renames, between which
//! `VERSION` is missing. So when `current` points at `VERSION`, it is first pointed at the
//! staged tree, then the old tree is renamed away and the new one in, then `current` is pointed
//! back (with a link prepared before the second rename, so `current` dangles only between two
//! consecutive renames). A deploy killed in between leaves `current` naming the staged tree's
//! hidden directory; the next deploy or rollback finishes the move under the lock (see
//! [`repair_current`]).

mod error;
pub mod record;
pub mod source;

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use envship_pack::{Manifest, ManifestTarget};
use envship_spec::{DottedVersion, Progress, Target};
use fs4::fs_std::FileExt;

pub use error::DeployError;
pub use record::Record;
pub use source::Source;

use crate::{github::GithubConfig, hash};

/// The state directory under ROOT.
pub const STATE_DIR: &str = ".envship";
/// Name of the symlink to the live version.
pub const CURRENT: &str = "current";
/// Where `--test` finds the project's test script inside the environment.
pub const TEST_SCRIPT: &str = "share/envship/run-test.sh";
/// Test-only: the deploy step at which to stop (see [`pause_point`]).
pub const PAUSE_ENV: &str = "ENVSHIP_DEPLOY_PAUSE_AT";
/// Test-only: a file created when the pause step is reached.
pub const PAUSE_FILE_ENV: &str = "ENVSHIP_DEPLOY_PAUSE_FILE";
/// Test-only: replace versions without `renameat2`, as on a kernel or file system without
/// `RENAME_EXCHANGE`, so that path is tested on every machine.
pub const NO_EXCHANGE_ENV: &str = "ENVSHIP_DEPLOY_NO_EXCHANGE";

/// What to deploy where.
#[derive(Clone, Debug)]
pub struct DeployOptions {
    /// SOURCE as given (archive, directory, URL, `github:OWNER/REPO@TAG`).
    pub source: String,
    /// The deployment root.
    pub root: PathBuf,
    /// Deploy under this name instead of the manifest's.
    pub name: Option<String>,
    /// Change ticket to record.
    pub ticket: Option<String>,
    /// Run the archive's test script in the deployed copy before switching.
    pub test: bool,
    /// Kill the test after this long.
    pub test_timeout: Option<Duration>,
    /// Only report what would be done.
    pub dry_run: bool,
    /// Replace an existing `ROOT/NAME/VERSION`.
    pub force: bool,
    /// The host to check compatibility against; `None` detects this machine.
    pub host: Option<Target>,
    /// API settings for `github:` sources (`repo` is taken from the source).
    pub github: GithubConfig,
    /// Extraction threads (0 = all cores).
    pub jobs: usize,
}

/// What a deploy did (or, with `dry_run`, would do).
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeployOutcome {
    /// Environment name.
    pub name: String,
    /// Version.
    pub version: String,
    /// sha256 of the archive.
    pub sha256: String,
    /// `ROOT/NAME/VERSION`.
    pub path: PathBuf,
    /// What `current` pointed at before.
    pub previous: Option<String>,
    /// Every action, in order, as a sentence.
    pub actions: Vec<String>,
    /// The test log, when `--test` ran.
    pub test_log: Option<PathBuf>,
    /// Nothing was changed.
    pub dry_run: bool,
}

/// Rolling back.
#[derive(Clone, Debug)]
pub struct RollbackOptions {
    /// The deployment root.
    pub root: PathBuf,
    /// The environment.
    pub name: String,
    /// Version to switch to; default: the one `current` replaced.
    pub to: Option<String>,
    /// Change ticket to record.
    pub ticket: Option<String>,
    /// Only report.
    pub dry_run: bool,
}

/// Test-only hook: when `ENVSHIP_DEPLOY_PAUSE_AT` names `step`, create the file named by
/// `ENVSHIP_DEPLOY_PAUSE_FILE` and sleep, so a test can kill the process exactly there.
pub fn pause_point(step: &str) {
    if std::env::var(PAUSE_ENV).as_deref() == Ok(step) {
        if let Ok(f) = std::env::var(PAUSE_FILE_ENV) {
            let _ = std::fs::write(f, step);
        }
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The steps `pause_point` is called with, in order.
pub const STEPS: &[&str] = &[
    "fetched",
    "locked",
    "extracted",
    "installed",
    "tested",
    "linked",
    "switched",
    "recorded",
];

/// The pause points inside a forced replacement of the version `current` points at, when it
/// takes two renames (no `renameat2`): `current` points at the staged tree, the old tree is
/// renamed away, the new tree is renamed in (`current` still names the staged tree).
pub const NO_EXCHANGE_STEPS: &[&str] = &["staged", "retired", "moved-in"];

/// A valid single path component for a name or version.
fn check_component(what: &str, s: &str, manifest: &Path) -> Result<(), DeployError> {
    let ok = !s.is_empty()
        && !s.starts_with('.')
        && s != CURRENT
        && !s.contains('/')
        && !s.contains('\0')
        && s.len() <= 200;
    if ok {
        Ok(())
    } else {
        Err(DeployError::BadManifest {
            path: manifest.to_path_buf(),
            reason: format!("{what} `{s}` cannot be a directory name (empty, starts with '.', contains '/', or is `current`)"),
        })
    }
}

/// Check that `host` can run an archive made for `target` (as recorded in its manifest).
pub fn check_host(
    name: &str,
    version: &str,
    target: &ManifestTarget,
    host: &Target,
) -> Result<(), DeployError> {
    let refuse = |reason: String| DeployError::IncompatibleHost {
        name: name.into(),
        version: version.into(),
        target: target.name.clone(),
        reason,
    };
    if !target.subdir.is_empty() && target.subdir != host.subdir {
        return Err(refuse(format!("is {}, not {}", host.subdir, target.subdir)));
    }
    let (glibc, linux) = target_requirements(target);
    if let Some(g) = glibc {
        if host.glibc < g {
            return Err(refuse(format!("has glibc {} (older than {g})", host.glibc)));
        }
    }
    if let Some(l) = linux {
        if host.linux < l {
            return Err(refuse(format!(
                "runs Linux {} (older than {l})",
                host.linux
            )));
        }
    }
    Ok(())
}

/// The glibc and kernel an archive's target needs: the manifest's glibc, else the built-in
/// profile's; the kernel from the profile, with `+glibcX`/`+linuxX` override suffixes applied.
pub fn target_requirements(
    target: &ManifestTarget,
) -> (Option<DottedVersion>, Option<DottedVersion>) {
    let mut parts = target.name.split('+');
    let base = parts.next().unwrap_or_default();
    let profile = Target::builtin(base)
        .ok()
        .filter(|_| base != envship_spec::target::HOST);
    let mut glibc = profile.as_ref().map(|p| p.glibc.clone());
    let mut linux = profile.as_ref().map(|p| p.linux.clone());
    for p in parts {
        if let Some(v) = p.strip_prefix("glibc").and_then(|v| v.parse().ok()) {
            glibc = Some(v);
        } else if let Some(v) = p.strip_prefix("linux").and_then(|v| v.parse().ok()) {
            linux = Some(v);
        }
    }
    if let Some(g) = target.glibc.as_deref().and_then(|g| g.parse().ok()) {
        glibc = Some(g);
    }
    (glibc, linux)
}

/// The version `ROOT/NAME/current` points at, if any.
pub fn current_version(root: &Path, name: &str) -> Result<Option<String>, DeployError> {
    let link = root.join(name).join(CURRENT);
    match std::fs::symlink_metadata(&link) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DeployError::io("reading", &link)(e)),
        Ok(m) if !m.file_type().is_symlink() => Err(DeployError::CurrentNotSymlink { path: link }),
        Ok(_) => {
            let t = std::fs::read_link(&link).map_err(DeployError::io("reading", &link))?;
            Ok(t.file_name().and_then(|n| n.to_str()).map(str::to_string))
        }
    }
}

/// An exclusive lock on `ROOT/.envship/lock`, released on drop (or when the process dies).
pub struct DeployLock {
    file: std::fs::File,
}

impl DeployLock {
    /// Wait for the lock; `waiting` is called once if another deploy holds it.
    pub fn acquire(root: &Path, waiting: impl FnOnce()) -> Result<Self, DeployError> {
        let dir = root.join(STATE_DIR);
        std::fs::create_dir_all(&dir).map_err(DeployError::io("creating", &dir))?;
        let path = dir.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(DeployError::io("opening", &path))?;
        if !FileExt::try_lock_exclusive(&file).map_err(DeployError::io("locking", &path))? {
            waiting();
            FileExt::lock_exclusive(&file).map_err(DeployError::io("locking", &path))?;
        }
        Ok(Self { file })
    }
}

impl Drop for DeployLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

struct Verified {
    manifest: Manifest,
    manifest_path: PathBuf,
    sha256: String,
}

fn verify(fetched: &source::Fetched) -> Result<Verified, DeployError> {
    let archive = &fetched.archive;
    let manifest_path = fetched
        .manifest_file
        .clone()
        .ok_or_else(|| DeployError::Manifest {
            archive: archive.clone(),
            source: Box::new(envship_pack::PackError::Io {
                action: "finding",
                path: archive.with_extension("manifest.json"),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no .manifest.json beside the archive",
                ),
            }),
        })?;
    let manifest = Manifest::read(&manifest_path).map_err(|source| DeployError::Manifest {
        archive: archive.clone(),
        source: Box::new(source),
    })?;
    let file_name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let from_sidecar = match &fetched.sha256_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(DeployError::io("reading", p))?;
            Some(hash::parse_sha256sum(&text, file_name).ok_or_else(|| {
                DeployError::BadManifest {
                    path: p.clone(),
                    reason: format!("no sha256 for {file_name} in sha256sum format"),
                }
            })?)
        }
        None => None,
    };
    let expected = match (from_sidecar, manifest.sha256.clone()) {
        (Some(a), Some(b)) if a != b.to_ascii_lowercase() => {
            return Err(DeployError::BadManifest {
                path: manifest_path,
                reason: format!("sha256 {b} disagrees with the .sha256 file ({a})"),
            })
        }
        (Some(a), _) => a,
        (None, Some(b)) => b.to_ascii_lowercase(),
        (None, None) => {
            return Err(DeployError::NoChecksum {
                archive: archive.clone(),
            })
        }
    };
    let actual = hash::sha256_file(archive).map_err(DeployError::io("reading", archive))?;
    if actual != expected {
        return Err(DeployError::Checksum {
            archive: archive.clone(),
            expected,
            actual,
        });
    }
    check_component("version", &manifest.version, &manifest_path)?;
    Ok(Verified {
        manifest,
        manifest_path,
        sha256: actual,
    })
}

/// Deploy `opts.source` under `opts.root`. See the module docs for the guarantees.
pub fn deploy(opts: &DeployOptions, progress: &dyn Progress) -> Result<DeployOutcome, DeployError> {
    let host = match &opts.host {
        Some(h) => h.clone(),
        None => Target::detect_host().map_err(DeployError::Detect)?,
    };
    let src = Source::parse(&opts.source)?;
    let workdir = if opts.dry_run {
        std::env::temp_dir()
    } else {
        opts.root.join(STATE_DIR).join("downloads")
    };
    let fetched = source::fetch(
        &src,
        &opts.source,
        opts.name.as_deref(),
        &host.subdir,
        &workdir,
        &opts.github,
        progress,
    )?;
    pause_point("fetched");
    let v = verify(&fetched)?;
    let name = opts.name.clone().unwrap_or_else(|| v.manifest.name.clone());
    check_component("name", &name, &v.manifest_path)?;
    let version = v.manifest.version.clone();
    check_host(&name, &version, &v.manifest.target, &host)?;
    let mut actions = vec![format!(
        "verified {} (sha256 {}) and its manifest: {name} {version} for {} runs on this host (glibc {}, Linux {}, {})",
        fetched.archive.display(), v.sha256, target_label(&v.manifest.target), host.glibc, host.linux, host.subdir
    )];

    if opts.dry_run {
        let previous = current_version(&opts.root, &name)?;
        plan_actions(
            opts,
            &name,
            &version,
            &v,
            &fetched.archive,
            previous.as_deref(),
            &mut actions,
        )?;
        return Ok(DeployOutcome {
            path: opts.root.join(&name).join(&version),
            name,
            version,
            sha256: v.sha256,
            previous,
            actions,
            test_log: None,
            dry_run: true,
        });
    }

    let lock = DeployLock::acquire(&opts.root, || {
        progress.message("deploy", "waiting for another deploy to finish (lock held)");
        tracing::info!(
            "waiting for the deploy lock in {}",
            opts.root.join(STATE_DIR).display()
        );
    })?;
    pause_point("locked");
    let mut rec = Record::now("deploy", &name, &version, "success");
    rec.sha256 = Some(v.sha256.clone());
    rec.ticket = opts.ticket.clone();
    rec.source = Some(opts.source.clone());
    let result = deploy_locked(
        opts,
        &name,
        &version,
        &v,
        &fetched.archive,
        &mut actions,
        &mut rec,
        progress,
    );
    match &result {
        Ok(_) => {}
        Err(e) => {
            rec.result = if matches!(e, DeployError::TestFailed { .. }) {
                "test-failed".into()
            } else {
                "failed".into()
            };
            rec.error = Some(e.to_string());
            rec.time = chrono::Utc::now();
            if let Err(log_err) = record::append(&opts.root, &rec) {
                tracing::warn!("could not record the failed deploy: {log_err}");
            }
        }
    }
    drop(lock);
    let test_log = rec.test_log.clone();
    let previous = rec.previous.clone();
    result.map(|path| DeployOutcome {
        name,
        version,
        sha256: v.sha256,
        path,
        previous,
        actions,
        test_log,
        dry_run: false,
    })
}

fn target_label(t: &ManifestTarget) -> String {
    match &t.glibc {
        Some(g) => format!("{} ({}, glibc {g})", t.name, t.subdir),
        None => format!("{} ({})", t.name, t.subdir),
    }
}

fn plan_actions(
    opts: &DeployOptions,
    name: &str,
    version: &str,
    v: &Verified,
    archive: &Path,
    previous: Option<&str>,
    actions: &mut Vec<String>,
) -> Result<(), DeployError> {
    let env_dir =
        std::path::absolute(opts.root.join(name)).unwrap_or_else(|_| opts.root.join(name));
    let dest = env_dir.join(version);
    if dest.exists() && !opts.force {
        return Err(DeployError::Exists { path: dest });
    }
    actions.push(format!(
        "lock {}",
        opts.root.join(STATE_DIR).join("lock").display()
    ));
    actions.push(format!(
        "extract {} into {}",
        archive.display(),
        env_dir.join(format!(".{version}.partial-XXXXXX")).display()
    ));
    actions.push(format!(
        "relocate it to {}",
        env_root(&dest, &v.manifest).display()
    ));
    if dest.exists() {
        actions.push(format!(
            "replace {} (--force) by an atomic exchange",
            dest.display()
        ));
    } else {
        actions.push(format!("rename it to {}", dest.display()));
    }
    if opts.test {
        let script = env_root(&dest, &v.manifest).join(TEST_SCRIPT);
        actions.push(format!(
            "run {} with the environment activated, log in {}",
            script.display(),
            opts.root.join(STATE_DIR).join("logs").display()
        ));
    }
    actions.push(format!(
        "switch {} from {} to {version}",
        env_dir.join(CURRENT).display(),
        previous.unwrap_or("(none)")
    ));
    actions.push(format!(
        "append a record to {}",
        record::log_path(&opts.root).display()
    ));
    Ok(())
}

/// Where the environment is inside a version directory (below the archive's arcroot, if any).
fn env_root(version_dir: &Path, m: &Manifest) -> PathBuf {
    match m.arcroot.as_deref().filter(|a| !a.is_empty()) {
        Some(a) => version_dir.join(a),
        None => version_dir.to_path_buf(),
    }
}

/// Remove what killed deploys left in `ROOT/NAME`: partial extractions, swapped-out trees and
/// temp links. Only called under the lock, so none of them belongs to a live deploy.
fn clean_leftovers(env_dir: &Path, actions: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(env_dir) else {
        return;
    };
    let live = std::fs::read_link(env_dir.join(CURRENT)).ok();
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let stale = n.starts_with('.')
            && (n.contains(".partial-") || n.contains(".old-") || n.starts_with(".current.tmp-"))
            && live.as_deref() != Some(Path::new(&n));
        if !stale {
            continue;
        }
        let p = e.path();
        let res = match e.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
            _ => std::fs::remove_file(&p),
        };
        match res {
            Ok(()) => actions.push(format!(
                "removed {} left by an interrupted deploy",
                p.display()
            )),
            Err(err) => tracing::warn!("could not remove {}: {err}", p.display()),
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn deploy_locked(
    opts: &DeployOptions,
    name: &str,
    version: &str,
    v: &Verified,
    archive: &Path,
    actions: &mut Vec<String>,
    rec: &mut Record,
    progress: &dyn Progress,
) -> Result<PathBuf, DeployError> {
    let env_dir = opts.root.join(name);
    std::fs::create_dir_all(&env_dir).map_err(DeployError::io("creating", &env_dir))?;
    // Absolute but not canonical: the environment is relocated to the path users reach it by
    // (often a symlink or automount), not to wherever that resolves today.
    let env_dir = std::path::absolute(&env_dir).map_err(DeployError::io("resolving", &env_dir))?;
    repair_current(&env_dir, actions)?;
    clean_leftovers(&env_dir, actions);
    let previous = current_version(&opts.root, name)?;
    rec.previous = previous.clone();
    let dest = env_dir.join(version);
    let replacing = dest.exists();
    if replacing && !opts.force {
        return Err(DeployError::Exists { path: dest });
    }

    // Extract + relocate into a partial directory, for the final path.
    let partial = tempfile::Builder::new()
        .prefix(&format!(".{version}.partial-"))
        .tempdir_in(&env_dir)
        .map_err(DeployError::io("creating a temp directory in", &env_dir))?;
    let final_root = env_root(&dest, &v.manifest);
    let uopts = envship_pack::UnpackOptions {
        force: true,
        jobs: opts.jobs,
        no_relocate: false,
        prefix: Some(final_root.to_string_lossy().into_owned()),
    };
    let out =
        envship_pack::unpack(archive, partial.path(), &uopts, progress).map_err(|source| {
            DeployError::Unpack {
                archive: archive.to_path_buf(),
                dest: partial.path().to_path_buf(),
                source: Box::new(source),
            }
        })?;
    actions.push(format!(
        "extracted {} files ({} bytes) into {} and relocated them to {}",
        out.files,
        out.bytes,
        partial.path().display(),
        final_root.display()
    ));
    sync_tree_root(partial.path());
    pause_point("extracted");

    // Put it in place. A new version is a plain rename; a forced replacement is an exchange,
    // so `VERSION` is a complete tree at every instant (see `replace_tree` for kernels without).
    let old = if replacing {
        let old = env_dir.join(format!(".{version}.old-{}", std::process::id()));
        // On failure the staged tree is still the TempDir's, which removes it.
        let exchanged = replace_tree(&env_dir, partial.path(), &dest, &old, version)?;
        // Renamed away: the TempDir must not delete whatever is at its old name now.
        let _ = partial.keep();
        actions.push(format!(
            "replaced {} {} (the old tree is at {} until the switch)",
            dest.display(),
            if exchanged {
                "by an atomic exchange"
            } else {
                "by two renames (no renameat2 exchange here)"
            },
            old.display()
        ));
        Some(old)
    } else {
        std::fs::rename(partial.path(), &dest).map_err(DeployError::io("renaming into", &dest))?;
        let _ = partial.keep();
        actions.push(format!("renamed it to {}", dest.display()));
        None
    };
    sync_dir(&env_dir);
    pause_point("installed");

    if opts.test {
        let undo = |actions: &mut Vec<String>| {
            let res = match &old {
                Some(o) => {
                    let untested =
                        env_dir.join(format!(".{version}.old-{}-untested", std::process::id()));
                    replace_tree(&env_dir, o, &dest, &untested, version).and_then(|_| {
                        std::fs::remove_dir_all(&untested)
                            .map_err(DeployError::io("removing", &untested))
                    })
                }
                None => std::fs::remove_dir_all(&dest).map_err(DeployError::io("removing", &dest)),
            };
            match res {
                Ok(()) => actions.push(format!("removed the untested {}", dest.display())),
                Err(e) => tracing::warn!("could not undo {}: {e}", dest.display()),
            }
            sync_dir(&env_dir);
        };
        match run_test(opts, name, version, &final_root, progress) {
            Ok(log) => {
                actions.push(format!(
                    "ran the test script in {}: passed (log {})",
                    final_root.display(),
                    log.display()
                ));
                rec.test_log = Some(log);
            }
            Err(e) => {
                if let DeployError::TestFailed { log, .. } = &e {
                    rec.test_log = Some(log.clone());
                }
                undo(actions);
                return Err(e);
            }
        }
        pause_point("tested");
    }

    switch_current(&env_dir, version)?;
    actions.push(format!(
        "switched {} from {} to {version}",
        env_dir.join(CURRENT).display(),
        previous.as_deref().unwrap_or("(none)")
    ));
    pause_point("switched");

    rec.time = chrono::Utc::now();
    record::append(&opts.root, rec)?;
    actions.push(format!(
        "recorded in {}",
        record::log_path(&opts.root).display()
    ));
    pause_point("recorded");

    if let Some(o) = old {
        if let Err(e) = std::fs::remove_dir_all(&o) {
            tracing::warn!("could not remove the replaced tree {}: {e}", o.display());
        }
    }
    Ok(dest)
}

/// Atomically swap two directory entries with `renameat2(RENAME_EXCHANGE)`. `Ok(false)` when
/// the kernel (before 3.15) or the file system (NFS, for one) cannot.
fn exchange(a: &Path, b: &Path) -> Result<bool, DeployError> {
    if std::env::var_os(NO_EXCHANGE_ENV).is_some() {
        return Ok(false);
    }
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| DeployError::Io {
            action: "exchanging",
            path: p.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // The raw syscall: musl has no wrapper, and glibc's turns ENOSYS into EINVAL.
    // SAFETY: two NUL-terminated paths that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        // No such syscall, or the file system does not support the flag.
        Some(libc::ENOSYS | libc::EINVAL) => Ok(false),
        _ => Err(DeployError::io("exchanging with", b)(err)),
    }
}

/// Put the complete tree `staged` at `dest` (an existing version directory in `env_dir`, for
/// `version`) and move the tree that was there to `retired`.
///
/// With `renameat2` this is one exchange (returns `true`); without it, [`replace_by_renames`]
/// (returns `false`).
fn replace_tree(
    env_dir: &Path,
    staged: &Path,
    dest: &Path,
    retired: &Path,
    version: &str,
) -> Result<bool, DeployError> {
    if exchange(staged, dest)? {
        std::fs::rename(staged, retired).map_err(DeployError::io("renaming", staged))?;
        return Ok(true);
    }
    replace_by_renames(env_dir, staged, dest, retired, version)?;
    Ok(false)
}

/// [`replace_tree`] with two renames, `dest` missing in between: so if `current` points at
/// `dest`, it points at `staged` meanwhile (module docs). On failure the old tree is back at
/// `dest`, `current` at it, and `staged` where it was.
fn replace_by_renames(
    env_dir: &Path,
    staged: &Path,
    dest: &Path,
    retired: &Path,
    version: &str,
) -> Result<(), DeployError> {
    let staged_name =
        staged
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| DeployError::Io {
                action: "staging",
                path: staged.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            })?;
    let live =
        std::fs::read_link(env_dir.join(CURRENT)).ok().as_deref() == Some(Path::new(version));
    let back = |e: DeployError| {
        if live {
            if let Err(err) = point_current(env_dir, version) {
                tracing::warn!("could not point `current` back at {version}: {err}");
            }
        }
        e
    };
    if live {
        point_current(env_dir, staged_name)?;
        pause_point("staged");
    }
    // Prepared now, so that after the new tree is renamed in, `current` is pointed back at it by
    // the very next syscall.
    let link_back = if live {
        Some(new_link(env_dir, version).map_err(back)?)
    } else {
        None
    };
    std::fs::rename(dest, retired)
        .map_err(DeployError::io("renaming", dest))
        .map_err(back)?;
    pause_point("retired");
    if let Err(e) = std::fs::rename(staged, dest) {
        if let Err(err) = std::fs::rename(retired, dest) {
            tracing::warn!("could not rename {} back: {err}", retired.display());
        }
        return Err(back(DeployError::io("renaming into", dest)(e)));
    }
    if let Some(tmp) = link_back {
        pause_point("moved-in");
        install_link(env_dir, &tmp)?;
    }
    sync_dir(env_dir);
    Ok(())
}

/// The version a staged or retired tree's hidden name is for: `.VERSION.partial-XXXX`,
/// `.VERSION.old-PID`.
fn hidden_tree_version(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?;
    rest.rsplit_once(".partial-")
        .or_else(|| rest.rsplit_once(".old-"))
        .map(|(v, _)| v)
        .filter(|v| !v.is_empty() && !v.starts_with('.') && !v.contains('/'))
}

/// Finish a replacement that was killed while `current` named a hidden tree (see the module
/// docs): that tree is the one meant for `VERSION`, so move it there (the tree at `VERSION`, if
/// any, to a leftover name) and point `current` at `VERSION`. Only called under the lock.
pub fn repair_current(env_dir: &Path, actions: &mut Vec<String>) -> Result<(), DeployError> {
    let link = env_dir.join(CURRENT);
    let Ok(target) = std::fs::read_link(&link) else {
        return Ok(());
    };
    let Some(name) = target.to_str() else {
        return Ok(());
    };
    let Some(version) = hidden_tree_version(name) else {
        return Ok(());
    };
    let hidden = env_dir.join(name);
    let dest = env_dir.join(version);
    if hidden.is_dir() {
        if dest.exists() {
            let retired = env_dir.join(format!(".{version}.old-{}-repair", std::process::id()));
            std::fs::rename(&dest, &retired).map_err(DeployError::io("renaming", &dest))?;
        }
        std::fs::rename(&hidden, &dest).map_err(DeployError::io("renaming into", &dest))?;
    }
    if dest.is_dir() {
        point_current(env_dir, version)?;
        actions.push(format!(
            "pointed {} back at {version}: an interrupted deploy had left it at {name}",
            link.display()
        ));
    }
    Ok(())
}

/// Point `ENV_DIR/current` at `version`: a new relative symlink under a temp name, renamed over
/// the old one (rename replaces atomically; readers see the old or the new target).
fn switch_current(env_dir: &Path, version: &str) -> Result<(), DeployError> {
    let link = env_dir.join(CURRENT);
    if let Ok(m) = std::fs::symlink_metadata(&link) {
        if !m.file_type().is_symlink() {
            return Err(DeployError::CurrentNotSymlink { path: link });
        }
    }
    let tmp = new_link(env_dir, version)?;
    pause_point("linked");
    install_link(env_dir, &tmp)
}

/// `switch_current` without the checks and pause point, for the steps of `replace_tree`.
fn point_current(env_dir: &Path, target: &str) -> Result<(), DeployError> {
    let tmp = new_link(env_dir, target)?;
    install_link(env_dir, &tmp)
}

/// A symlink to `target` under a temp name in `env_dir`, to be renamed over `current`.
fn new_link(env_dir: &Path, target: &str) -> Result<PathBuf, DeployError> {
    let tmp = env_dir.join(format!(".current.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(DeployError::io("creating", &tmp))?;
    Ok(tmp)
}

fn install_link(env_dir: &Path, tmp: &Path) -> Result<(), DeployError> {
    let link = env_dir.join(CURRENT);
    std::fs::rename(tmp, &link).map_err(DeployError::io("renaming over", &link))?;
    sync_dir(env_dir);
    Ok(())
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Flush the extracted files' data before the rename makes them visible under the final name
/// (ext4 and xfs order data before the rename's metadata only with this `syncfs`).
fn sync_tree_root(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        // syncfs is Linux 2.6.39+: RHEL 6's kernel may lack it, and then all file systems are
        // flushed instead.
        if nix::unistd::syncfs(&d) == Err(nix::errno::Errno::ENOSYS) {
            nix::unistd::sync();
        }
    }
}

/// Run the archive's test script in the deployed environment; the log goes to
/// `ROOT/.envship/logs/NAME-VERSION-TIME.test.log`.
fn run_test(
    opts: &DeployOptions,
    name: &str,
    version: &str,
    env: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf, DeployError> {
    let script = env.join(TEST_SCRIPT);
    if !script.is_file() {
        return Err(DeployError::NoTestScript { path: script });
    }
    let logs = opts.root.join(STATE_DIR).join("logs");
    std::fs::create_dir_all(&logs).map_err(DeployError::io("creating", &logs))?;
    let log = logs.join(format!(
        "{name}-{version}-{}.test.log",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
    ));
    let out = std::fs::File::create(&log).map_err(DeployError::io("creating", &log))?;
    let err = out.try_clone().map_err(DeployError::io("creating", &log))?;
    let cwd = tempfile::tempdir().map_err(DeployError::io(
        "creating a temp directory in",
        std::env::temp_dir(),
    ))?;
    progress.message("deploy", &format!("testing {name} {version}"));
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(r#"source "$1/bin/activate" && bash "$2""#)
        .arg("envship-deploy-test")
        .arg(env)
        .arg(&script)
        .current_dir(cwd.path())
        .env("ENVIRONMENT_NAME", name)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(DeployError::io("running bash for", &script))?;
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child
            .try_wait()
            .map_err(DeployError::io("waiting for", &script))?
        {
            break s.to_string();
        }
        if opts.test_timeout.is_some_and(|t| started.elapsed() > t) {
            // The whole process group: the script's children too.
            let pgid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
            let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait();
            break format!("timed out after {}s", started.elapsed().as_secs());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status == "exit status: 0" {
        Ok(log)
    } else {
        Err(DeployError::TestFailed {
            env: env.to_path_buf(),
            status,
            log,
        })
    }
}

/// Switch `ROOT/NAME/current` back (to `opts.to`, else to the version the current one
/// replaced, per the deployment log) and record it.
pub fn rollback(opts: &RollbackOptions) -> Result<DeployOutcome, DeployError> {
    let env_dir = opts.root.join(&opts.name);
    let lock = if opts.dry_run {
        None
    } else {
        Some(DeployLock::acquire(&opts.root, || {})?)
    };
    let mut actions = Vec::new();
    if !opts.dry_run {
        repair_current(&env_dir, &mut actions)?;
    }
    let current = current_version(&opts.root, &opts.name)?;
    let target = match &opts.to {
        Some(t) => t.clone(),
        None => {
            let cur = current.clone().ok_or_else(|| DeployError::Rollback {
                name: opts.name.clone(),
                reason: "nothing is deployed (no `current`)".into(),
            })?;
            let records = record::read(&opts.root)?;
            records
                .iter()
                .rev()
                .filter(|r| r.name == opts.name && r.version == cur && r.result == "success")
                // A forced redeploy of the same version names itself as previous.
                .find_map(|r| r.previous.clone().filter(|p| *p != cur))
                .ok_or_else(|| DeployError::Rollback {
                    name: opts.name.clone(),
                    reason: format!("the log records no version before {cur}"),
                })?
        }
    };
    let dest = env_dir.join(&target);
    if !dest.is_dir() || target.starts_with('.') || target.contains('/') || target == CURRENT {
        return Err(DeployError::Rollback {
            name: opts.name.clone(),
            reason: format!("{} is not a deployed version", dest.display()),
        });
    }
    if current.as_deref() == Some(target.as_str()) {
        return Err(DeployError::Rollback {
            name: opts.name.clone(),
            reason: format!("{target} is already current"),
        });
    }
    actions.push(format!(
        "switch {} from {} to {target}",
        env_dir.join(CURRENT).display(),
        current.as_deref().unwrap_or("(none)")
    ));
    if !opts.dry_run {
        switch_current(&env_dir, &target)?;
        let mut rec = Record::now("rollback", &opts.name, &target, "success");
        rec.previous = current.clone();
        rec.ticket = opts.ticket.clone();
        record::append(&opts.root, &rec)?;
        actions.push(format!(
            "recorded in {}",
            record::log_path(&opts.root).display()
        ));
    } else {
        actions.push(format!(
            "append a record to {}",
            record::log_path(&opts.root).display()
        ));
    }
    drop(lock);
    Ok(DeployOutcome {
        name: opts.name.clone(),
        version: target,
        sha256: String::new(),
        path: dest,
        previous: current,
        actions,
        test_log: None,
        dry_run: opts.dry_run,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ENV_DIR/NAME` as a version tree holding `marker` with `content`.
    fn tree(env_dir: &Path, name: &str, content: &str) -> PathBuf {
        let dir = env_dir.join(name);
        std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
        std::fs::write(dir.join("bin/marker"), content).expect("write");
        dir
    }

    fn marker(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("bin/marker")).expect("marker")
    }

    fn link(env_dir: &Path) -> String {
        std::fs::read_link(env_dir.join(CURRENT))
            .expect("current")
            .to_string_lossy()
            .into_owned()
    }

    fn hidden(env_dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(env_dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn renames_replace_the_live_version_and_point_current_back() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = tmp.path();
        let dest = tree(env, "2", "old");
        let staged = tree(env, ".2.partial-abc", "new");
        switch_current(env, "2").expect("switch");
        let retired = env.join(".2.old-1");
        replace_by_renames(env, &staged, &dest, &retired, "2").expect("replace");
        assert_eq!(marker(&dest), "new");
        assert_eq!(marker(&retired), "old");
        assert_eq!(link(env), "2");
        assert_eq!(
            hidden(env),
            [".2.old-1"],
            "no temp link or staged tree left"
        );
    }

    #[test]
    fn renames_replace_a_version_that_is_not_live_without_touching_current() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = tmp.path();
        tree(env, "1", "one");
        let dest = tree(env, "2", "old");
        let staged = tree(env, ".2.partial-abc", "new");
        switch_current(env, "1").expect("switch");
        let retired = env.join(".2.old-1");
        replace_by_renames(env, &staged, &dest, &retired, "2").expect("replace");
        assert_eq!(marker(&dest), "new");
        assert_eq!(link(env), "1");
    }

    #[test]
    fn a_failed_rename_puts_the_old_tree_and_current_back() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = tmp.path();
        let dest = tree(env, "2", "old");
        switch_current(env, "2").expect("switch");
        // The staged tree vanished: the second rename fails after the old tree was moved away.
        let staged = env.join(".2.partial-gone");
        let retired = env.join(".2.old-1");
        let err = replace_by_renames(env, &staged, &dest, &retired, "2").expect_err("fails");
        assert!(err.to_string().contains("renaming into"), "{err}");
        assert_eq!(marker(&dest), "old");
        assert_eq!(link(env), "2");
        assert!(hidden(env).is_empty(), "{:?}", hidden(env));
    }

    #[test]
    fn hidden_tree_names_give_their_version() {
        assert_eq!(hidden_tree_version(".1.2.3.partial-Xy9"), Some("1.2.3"));
        assert_eq!(hidden_tree_version(".2.old-123"), Some("2"));
        assert_eq!(hidden_tree_version(".2.old-123-untested"), Some("2"));
        assert_eq!(hidden_tree_version("2"), None);
        assert_eq!(hidden_tree_version(".current.tmp-5"), None);
        assert_eq!(hidden_tree_version("..partial-x"), None);
    }

    #[test]
    fn repair_moves_the_tree_current_names_into_place() {
        // Killed after the old tree was renamed away: `current` names the complete new tree.
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = tmp.path();
        tree(env, ".2.partial-abc", "new");
        tree(env, ".2.old-7", "old");
        point_current(env, ".2.partial-abc").expect("point");
        let mut actions = Vec::new();
        repair_current(env, &mut actions).expect("repair");
        assert_eq!(link(env), "2");
        assert_eq!(marker(&env.join("2")), "new");
        assert_eq!(actions.len(), 1, "{actions:?}");

        // Killed before that: the old tree is still at VERSION; the named tree replaces it.
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = tmp.path();
        tree(env, "2", "old");
        tree(env, ".2.partial-abc", "new");
        point_current(env, ".2.partial-abc").expect("point");
        repair_current(env, &mut Vec::new()).expect("repair");
        assert_eq!(link(env), "2");
        assert_eq!(marker(&env.join("2")), "new");

        // Killed after the new tree was renamed in: `current` dangles until pointed back.
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = tmp.path();
        tree(env, "2", "new");
        point_current(env, ".2.partial-abc").expect("point");
        repair_current(env, &mut Vec::new()).expect("repair");
        assert_eq!(link(env), "2");

        // An ordinary `current` is left alone.
        let mut actions = Vec::new();
        repair_current(env, &mut actions).expect("repair");
        assert!(actions.is_empty());
    }

    fn mt(name: &str, glibc: Option<&str>) -> ManifestTarget {
        ManifestTarget {
            name: name.into(),
            subdir: "linux-64".into(),
            glibc: glibc.map(Into::into),
        }
    }

    fn host(glibc: &str, linux: &str) -> Target {
        let mut h = Target::builtin("rhel8").expect("rhel8");
        h.glibc = glibc.parse().expect("v");
        h.linux = linux.parse().expect("v");
        h
    }

    #[test]
    fn host_checks() {
        assert!(check_host(
            "e",
            "1",
            &mt("lcls-rhel6", Some("2.12")),
            &host("2.12", "2.6.32")
        )
        .is_ok());
        let e =
            check_host("e", "1", &mt("rhel8", None), &host("2.17", "5.0")).expect_err("old glibc");
        assert!(
            e.to_string().contains("glibc 2.17 (older than 2.28)"),
            "{e}"
        );
        let e = check_host("e", "1", &mt("rhel8", None), &host("2.28", "3.10"))
            .expect_err("old kernel");
        assert!(
            e.to_string().contains("Linux 3.10 (older than 4.18)"),
            "{e}"
        );
        let e = check_host(
            "e",
            "1",
            &mt("lcls-rhel6+glibc2.17", None),
            &host("2.12", "2.6.32"),
        )
        .expect_err("override");
        assert!(e.to_string().contains("older than 2.17"), "{e}");
        let mut osx = mt("custom", None);
        osx.subdir = "osx-64".into();
        let e = check_host("e", "1", &osx, &host("2.28", "4.18")).expect_err("subdir");
        assert!(e.to_string().contains("not osx-64"), "{e}");
        // An unknown profile with no glibc recorded: only the subdir can be checked.
        assert!(check_host("e", "1", &mt("custom", None), &host("2.5", "2.6")).is_ok());
    }
}
