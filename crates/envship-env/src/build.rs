//! `envship build`: install the lock into a build prefix with rattler's installer (shared
//! package cache, hardlinks, placeholders, noarch python, entry points, `conda-meta`), then the
//! `pip:` section with the environment's own Python restricted to wheels the **target**
//! accepts, then `variables:` into `conda-meta/state` as conda stores them.

mod disk;

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Instant,
};

use envship_spec::{
    BuildRecord, BuildRecordError, EnvironmentFile, Progress, ProgressUnit, Target,
};
use rattler::install::{Installer, InstallerError, Reporter, Transaction};
use rattler_cache::{package_cache::PackageCache, validation::ValidationMode};
use rattler_conda_types::{PrefixRecord, RepoDataRecord};

use crate::{
    link_scripts::{self, LinkScriptError, LinkScripts, ScriptKind, ScriptRun},
    lock::{lock_async, read_lock_records, LockError, LockOutcome, LockRequest},
    pip::{self, PipError, PipOptions, PipOutcome},
};

/// What to build.
#[derive(Clone, Debug)]
pub struct BuildRequest {
    /// The prefix to install into.
    pub prefix: PathBuf,
    /// How to lock (and where the lock is).
    pub lock: LockRequest,
    /// Options for the `pip:` section.
    pub pip: PipOptions,
    /// Whether packages' link scripts run.
    pub link_scripts: LinkScripts,
}

/// What `build` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BuildOutcome {
    /// The prefix.
    pub prefix: PathBuf,
    /// The lock step.
    pub lock: LockOutcome,
    /// Conda packages installed or updated by this run.
    pub installed: usize,
    /// Conda packages removed by this run.
    pub removed: usize,
    /// Conda packages in the prefix after the run.
    pub packages: usize,
    /// Bytes downloaded.
    pub downloaded_bytes: u64,
    /// The packages' link scripts that ran (or were skipped), in order.
    pub link_scripts: Vec<ScriptRun>,
    /// What pip did (None without a `pip:` section).
    pub pip: Option<PipOutcome>,
    /// Whether nothing had to change.
    pub noop: bool,
    /// Wall time.
    pub seconds: f64,
}

/// Errors of the build stage.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum BuildError {
    /// Locking failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Lock(#[from] LockError),

    /// rattler's installer failed; the message names the package.
    #[error("cannot install into {}: {summary}", prefix.display())]
    #[diagnostic(
        code(envship::build::install),
        help("a damaged package archive is named above; the prefix is left as the next build can repair it")
    )]
    Install {
        /// The prefix.
        prefix: PathBuf,
        /// The installer's message chain, flattened.
        summary: String,
        /// Why.
        #[source]
        source: InstallerError,
    },

    /// rattler's installer failed while the prefix's file system was full. The installer can
    /// lose the write error (it then reports a record it could not read back), so the free
    /// space decides: the cause is the full disk, whatever the installer said.
    #[error("cannot install into {}: {source} (the installer said: {installer})", prefix.display())]
    #[diagnostic(
        code(envship::build::disk_full),
        help("free space on the file system of the prefix and build again; a new prefix is left absent, an existing one as the next build can repair it")
    )]
    DiskFull {
        /// The prefix.
        prefix: PathBuf,
        /// The installer's message chain, flattened.
        installer: String,
        /// ENOSPC.
        #[source]
        source: std::io::Error,
    },

    /// The pip section failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Pip(#[from] PipError),

    /// A package's post-link or pre-unlink script failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    LinkScript(#[from] LinkScriptError),

    /// The prefix's lock file (`.NAME.envship-lock` next to it) could not be opened or locked.
    #[error("cannot lock {} ({action} failed)", path.display())]
    #[diagnostic(
        code(envship::build::lock),
        help(
            "the lock keeps two builds of one prefix apart; check that its directory is writable"
        )
    )]
    PrefixLock {
        /// `opening` or `locking`.
        action: &'static str,
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// `conda-meta/state` could not be written.
    #[error("cannot write {}", path.display())]
    #[diagnostic(code(envship::build::state))]
    State {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The prefix exists and is not a conda environment envship may touch.
    #[error("{} exists and is not an environment (no conda-meta/): refusing to install into it", prefix.display())]
    #[diagnostic(
        code(envship::build::not_env),
        help("choose an empty or new directory with --prefix")
    )]
    NotAnEnvironment {
        /// The prefix.
        prefix: PathBuf,
    },

    /// The build record (`conda-meta/envship`) could not be written.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Record(#[from] BuildRecordError),

    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),

    /// A stop was requested (SIGINT, SIGTERM) during the build.
    #[error("interrupted while building {}", prefix.display())]
    #[diagnostic(
        code(envship::build::interrupted),
        help("a new prefix was not created; an existing one is repaired by the next build")
    )]
    Interrupted {
        /// The prefix.
        prefix: PathBuf,
    },
}

/// The default build prefix for an environment: `.envship/build/NAME` in the project dir.
pub fn default_prefix(project_dir: &Path, name: &str) -> PathBuf {
    project_dir.join(".envship").join("build").join(name)
}

/// Build (blocking; runs its own async runtime).
pub fn build(
    file: &EnvironmentFile,
    target: &Target,
    req: &BuildRequest,
    progress: Arc<dyn Progress>,
) -> Result<BuildOutcome, BuildError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BuildError::Runtime)?;
    // Dropping the build on a stop request drops its staging directory (removed) and its
    // package-cache lock; the rattler transaction of an existing prefix stops between packages,
    // and the next build installs what is missing.
    let result = rt.block_on(async {
        tokio::select! {
            r = build_async(file, target, req, progress) => r,
            () = envship_spec::cancel::requested() => Err(BuildError::Interrupted {
                prefix: req.prefix.clone(),
            }),
        }
    });
    crate::shut_down(rt);
    result
}

/// Build: lock if needed, install conda packages, pip, variables.
pub async fn build_async(
    file: &EnvironmentFile,
    target: &Target,
    req: &BuildRequest,
    progress: Arc<dyn Progress>,
) -> Result<BuildOutcome, BuildError> {
    let start = Instant::now();
    let prefix = std::path::absolute(&req.prefix).unwrap_or_else(|_| req.prefix.clone());
    if prefix.exists()
        && !prefix.join("conda-meta").exists()
        && fs_err::read_dir(&prefix)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        return Err(BuildError::NotAnEnvironment { prefix });
    }

    // One build of a prefix at a time: a second waits, then updates the first one's prefix.
    let _prefix_lock = lock_prefix(&prefix).await?;
    let lock = lock_async(file, target, &req.lock, progress.as_ref()).await?;
    let records = read_lock_records(&lock.lock_path, target)?;
    let package_count = records.len();

    let cache_dir = match &req.lock.cache_dir {
        Some(d) => d.clone(),
        None => crate::lock::default_cache_dir()?,
    };
    let cache = PackageCache::new_layered(
        [cache_dir.join(rattler_cache::PACKAGE_CACHE_DIR)],
        false,
        // Every file of a cached package is checked against its sha256 before it is linked,
        // so a damaged cache entry is re-extracted instead of installed.
        ValidationMode::Full,
    );
    let reporter = InstallReporter::new(progress.clone());
    let downloaded = reporter.downloaded.clone();
    let specs = file.dependencies.iter().map(|d| d.spec.clone()).collect();
    // A new prefix is installed into a staging directory next to it (with the final path
    // written into every file) and renamed into place, so a failure never leaves a
    // half-installed environment. An existing prefix gets rattler's incremental transaction;
    // if that is interrupted, the next build sees what is missing and repairs it.
    remove_if_pip_damaged(&prefix)?;
    let fresh = !prefix.join("conda-meta").exists();
    let staging = if fresh {
        let parent = prefix.parent().unwrap_or(Path::new("."));
        fs_err::create_dir_all(parent).map_err(|source| BuildError::State {
            path: parent.to_path_buf(),
            source,
        })?;
        let staging_prefix = staging_name_prefix(&prefix);
        remove_stale_staging(parent, &staging_prefix);
        Some(
            tempfile::Builder::new()
                .prefix(&staging_prefix)
                .tempdir_in(parent)
                .map_err(|source| BuildError::State {
                    path: parent.to_path_buf(),
                    source,
                })?,
        )
    } else {
        None
    };
    let mut scripts = if fresh {
        Vec::new()
    } else {
        pre_unlink(&prefix, &records, req.link_scripts)?
    };
    let mut installer = Installer::new()
        .with_package_cache(cache)
        .with_target_platform(target.subdir())
        .with_requested_specs(specs)
        .with_reporter(reporter);
    let install_dir = match &staging {
        Some(s) => {
            installer = installer.with_alternative_target_prefix(&prefix);
            s.path().to_path_buf()
        }
        None => prefix.clone(),
    };
    let result = installer
        .install(&install_dir, records)
        .await
        .map_err(|source| disk::install_error(&prefix, &install_dir, source))?;
    // A new prefix whose state cannot be written (a full disk) is taken out again.
    let mut placed = disk::FreshPrefix(None);
    if let Some(staging) = staging {
        let staged = staging.keep();
        if prefix.exists() {
            // An empty directory was there; replace it.
            let _ = fs_err::remove_dir(&prefix);
        }
        fs_err::rename(&staged, &prefix).map_err(|source| BuildError::State {
            path: prefix.clone(),
            source,
        })?;
        placed.0 = Some(prefix.clone());
    }
    let installed = result.transaction.installed_packages().count();
    let removed = result.transaction.removed_packages().count();
    let linked: Vec<_> = result
        .transaction
        .installed_packages()
        .map(|r| link_scripts::Package {
            record: &r.package_record,
        })
        .collect();
    match link_scripts::run_all(&prefix, ScriptKind::PostLink, &linked, req.link_scripts) {
        Ok(runs) => scripts.extend(runs),
        Err(e) => {
            undo_failed_link(&prefix, fresh, &e);
            return Err(e.into());
        }
    }

    let state_changed = write_state(&prefix, file)?;
    // pack, audit and test read the target from here instead of trusting their own defaults.
    let record_changed =
        BuildRecord::new(target, Some(&file.path), Some(&lock.lock_path)).write(&prefix)?;
    placed.0 = None;
    let pip = if file.pip.is_empty() {
        None
    } else {
        Some(
            pip::install(
                file,
                target,
                &prefix,
                &lock.lock_path,
                &req.pip,
                progress.as_ref(),
            )
            .await?,
        )
    };
    let pip_changed = pip.as_ref().is_some_and(|p| !p.reused);
    Ok(BuildOutcome {
        prefix,
        noop: installed == 0 && removed == 0 && !state_changed && !record_changed && !pip_changed,
        lock,
        installed,
        removed,
        link_scripts: scripts,
        packages: package_count,
        downloaded_bytes: downloaded.load(Ordering::Relaxed),
        pip,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// A prefix whose conda files an earlier build's pip damaged is made again from the package
/// cache: which files are whose can no longer be told, and repairing them in place would leave
/// pip's distribution claiming conda's files.
fn remove_if_pip_damaged(prefix: &Path) -> Result<(), BuildError> {
    let Some(packages) = crate::pip_guard::damaged_by_pip(prefix) else {
        return Ok(());
    };
    tracing::warn!(
        "{}: pip damaged files of {} in the last build; making the prefix again",
        prefix.display(),
        packages.join(", ")
    );
    fs_err::remove_dir_all(prefix).map_err(|source| BuildError::State {
        path: prefix.to_path_buf(),
        source,
    })
}

/// Run the pre-unlink scripts of the installed packages the lock no longer has in the same
/// build (removed or replaced), before rattler's transaction unlinks them, as conda does.
fn pre_unlink(
    prefix: &Path,
    records: &[RepoDataRecord],
    mode: LinkScripts,
) -> Result<Vec<ScriptRun>, BuildError> {
    let installed: Vec<PrefixRecord> =
        PrefixRecord::collect_from_prefix(prefix).map_err(|source| BuildError::State {
            path: prefix.join("conda-meta"),
            source,
        })?;
    let kept: HashSet<(&str, String, &str)> = records
        .iter()
        .map(|r| {
            let p = &r.package_record;
            (
                p.name.as_normalized(),
                p.version.to_string(),
                p.build.as_str(),
            )
        })
        .collect();
    let leaving: Vec<_> = installed
        .iter()
        .map(|r| &r.repodata_record.package_record)
        .filter(|p| {
            !kept.contains(&(
                p.name.as_normalized(),
                p.version.to_string(),
                p.build.as_str(),
            ))
        })
        .map(|record| link_scripts::Package { record })
        .collect();
    Ok(link_scripts::run_all(
        prefix,
        ScriptKind::PreUnlink,
        &leaving,
        mode,
    )?)
}

/// After a failed post-link script, leave what the next build repairs: a new prefix is removed
/// whole (nothing half-set-up stays at the final path); in an existing one, the package's
/// record goes, so the next build links it again and reruns its script.
fn undo_failed_link(prefix: &Path, fresh: bool, e: &LinkScriptError) {
    if fresh {
        let parent = prefix.parent().unwrap_or(Path::new("."));
        let aside = parent.join(format!("{}failed", staging_name_prefix(prefix)));
        let _ = fs_err::remove_dir_all(&aside);
        match fs_err::rename(prefix, &aside) {
            Ok(()) => {
                if let Err(err) = fs_err::remove_dir_all(&aside) {
                    tracing::warn!("{err}");
                }
            }
            Err(err) => tracing::warn!("{err}"),
        }
        return;
    }
    let record = prefix
        .join("conda-meta")
        .join(format!("{}.json", e.package));
    if let Err(err) = fs_err::remove_file(&record) {
        tracing::warn!("{err}");
    }
}

/// Lock `.NAME.envship-lock` next to `prefix` (making its parent directory). Waited for off
/// the runtime's threads, so that a stop request still ends a build that waits.
async fn lock_prefix(prefix: &Path) -> Result<envship_spec::lock_file::FileLock, BuildError> {
    let parent = prefix.parent().unwrap_or(Path::new(".")).to_path_buf();
    fs_err::create_dir_all(&parent).map_err(|source| BuildError::State {
        path: parent.clone(),
        source,
    })?;
    let path = envship_spec::lock_file::lock_path_for(prefix);
    let waited = tokio::task::spawn_blocking({
        let path = path.clone();
        move || envship_spec::lock_file::FileLock::acquire_logged(&path)
    })
    .await;
    match waited {
        Ok(Ok(lock)) => Ok(lock),
        Ok(Err(f)) => Err(BuildError::PrefixLock {
            action: f.action,
            path: f.path,
            source: f.source,
        }),
        Err(join) => Err(BuildError::PrefixLock {
            action: "locking",
            path,
            source: std::io::Error::other(join.to_string()),
        }),
    }
}

/// Staging directories of one prefix are named after it, so a later build can find the ones an
/// interrupted build (SIGINT, SIGKILL, power loss) left behind.
fn staging_name_prefix(prefix: &Path) -> String {
    let name = prefix
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.envship-staging-")
}

/// Remove what interrupted builds of the same prefix left next to it. Best effort: a leftover
/// that cannot be removed costs disk space, not correctness.
fn remove_stale_staging(parent: &Path, staging_prefix: &str) {
    let Ok(entries) = fs_err::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(staging_prefix)
        {
            tracing::info!(
                "removing {} left by an interrupted build",
                entry.path().display()
            );
            if let Err(e) = fs_err::remove_dir_all(entry.path()) {
                tracing::warn!("{e}");
            }
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        parts.push(s.to_string());
        cur = s.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// Store `variables:` as conda does (`conda-meta/state` → `env_vars`); returns whether the file
/// changed.
fn write_state(prefix: &Path, file: &EnvironmentFile) -> Result<bool, BuildError> {
    let path = prefix.join("conda-meta").join("state");
    let err = |source| BuildError::State {
        path: path.clone(),
        source,
    };
    let mut state: serde_json::Map<String, serde_json::Value> = fs_err::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let vars: serde_json::Map<String, serde_json::Value> = file
        .variables
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    let before = state.get("env_vars").cloned();
    if vars.is_empty() {
        if before.is_none() {
            return Ok(false);
        }
        state.remove("env_vars");
    } else {
        state.insert("env_vars".into(), serde_json::Value::Object(vars));
    }
    if state.get("env_vars") == before.as_ref() {
        return Ok(false);
    }
    let bytes = serde_json::to_vec_pretty(&state).map_err(|e| err(e.into()))?;
    crate::lock::write_atomic(&path, &bytes).map_err(|e| match e {
        LockError::Write { source, .. } => err(source),
        other => err(std::io::Error::other(other.to_string())),
    })?;
    Ok(true)
}

/// The environment's variables as conda stores them, in file order.
pub fn read_state_variables(prefix: &Path) -> Vec<(String, String)> {
    let Ok(text) = fs_err::read_to_string(prefix.join("conda-meta").join("state")) else {
        return Vec::new();
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return Vec::new();
    };
    json.get("env_vars")
        .and_then(|v| v.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Bridges rattler's installer events to envship's progress phases.
struct InstallReporter {
    progress: Arc<dyn Progress>,
    downloaded: Arc<AtomicU64>,
    last: std::sync::Mutex<std::collections::HashMap<usize, u64>>,
    started: std::sync::Mutex<HashSet<&'static str>>,
}

impl InstallReporter {
    fn new(progress: Arc<dyn Progress>) -> Self {
        Self {
            progress,
            downloaded: Arc::new(AtomicU64::new(0)),
            last: Default::default(),
            started: Default::default(),
        }
    }

    fn phase(&self, name: &'static str, total: usize) {
        if let Ok(mut s) = self.started.lock() {
            if s.insert(name) {
                self.progress
                    .start(name, Some(total as u64), ProgressUnit::Items);
            }
        }
    }
}

impl Reporter for InstallReporter {
    fn on_transaction_start(&self, transaction: &Transaction<PrefixRecord, RepoDataRecord>) {
        let n = transaction.operations.len();
        if n > 0 {
            self.phase("download", n);
            self.phase("link", n);
        }
    }
    fn on_transaction_operation_start(&self, _operation: usize) {}
    fn on_populate_cache_start(&self, operation: usize, record: &RepoDataRecord) -> usize {
        self.progress
            .message("download", record.package_record.name.as_normalized());
        operation
    }
    fn on_validate_start(&self, cache_entry: usize) -> usize {
        cache_entry
    }
    fn on_validate_complete(&self, _validate_idx: usize) {}
    fn on_download_start(&self, cache_entry: usize) -> usize {
        cache_entry
    }
    fn on_download_progress(&self, download_idx: usize, progress: u64, _total: Option<u64>) {
        if let Ok(mut last) = self.last.lock() {
            let prev = last.insert(download_idx, progress).unwrap_or(0);
            self.downloaded
                .fetch_add(progress.saturating_sub(prev), Ordering::Relaxed);
        }
    }
    fn on_download_completed(&self, _download_idx: usize) {}
    fn on_populate_cache_complete(&self, _cache_entry: usize) {
        self.progress.advance("download", 1);
    }
    fn on_unlink_start(&self, operation: usize, _record: &PrefixRecord) -> usize {
        operation
    }
    fn on_unlink_complete(&self, _index: usize) {}
    fn on_link_start(&self, operation: usize, record: &RepoDataRecord) -> usize {
        self.progress
            .message("link", record.package_record.name.as_normalized());
        operation
    }
    fn on_link_complete(&self, _index: usize) {
        self.progress.advance("link", 1);
    }
    fn on_transaction_operation_complete(&self, _operation: usize) {}
    fn on_transaction_complete(&self) {
        if let Ok(s) = self.started.lock() {
            for p in s.iter() {
                self.progress.finish(p);
            }
        }
    }
    fn on_post_link_start(&self, _package_name: &str, _script_path: &str) -> usize {
        0
    }
    fn on_post_link_complete(&self, _index: usize, _success: bool) {}
    fn on_pre_unlink_start(&self, _package_name: &str, _script_path: &str) -> usize {
        0
    }
    fn on_pre_unlink_complete(&self, _index: usize, _success: bool) {}
}
