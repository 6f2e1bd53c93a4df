//! `envship lock`: solve the environment file for the **target's** virtual packages (never the
//! host's) with rattler_solve's resolvo backend, and write `envship.lock` with rattler_lock.
//!
//! The lock starts with a comment line carrying a fingerprint of the request (channels, specs,
//! target virtual packages, exclude-newer); YAML readers ignore it, and envship uses it to
//! keep an up-to-date lock instead of solving again.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use envship_spec::{EnvironmentFile, Progress, ProgressUnit, Target};
use rattler_conda_types::{
    Channel, ChannelConfig, GenericVirtualPackage, MatchSpec, Matches, PackageName,
    ParseStrictness, RepoDataRecord,
};
use rattler_lock::{LockFile, LockFileBuilder, PlatformData, DEFAULT_ENVIRONMENT_NAME};
use rattler_repodata_gateway::{fetch::CacheAction, Gateway, SourceConfig};
use rattler_solve::{resolvo, ChannelPriority, ExcludeNewer, SolveError, SolverImpl, SolverTask};
use sha2::{Digest, Sha256};

use crate::channels;

mod error;
mod explicit;
mod import;
pub use error::LockError;
pub use import::{
    import_lock, imported_environment_file, imported_from, ImportOutcome, ImportRequest,
    ImportedFormat,
};

/// The lock file name, next to environment.yml.
pub const LOCK_FILE: &str = "envship.lock";

const FINGERPRINT_PREFIX: &str = "# envship-request: ";

/// What to solve.
#[derive(Clone, Debug)]
pub struct LockRequest {
    /// Channel alias for channel names (a mirror), default conda.anaconda.org.
    pub channel_alias: Option<String>,
    /// Only use cached or local repodata; never touch the network.
    pub offline: bool,
    /// Solve as of this date.
    pub exclude_newer: Option<jiff::Timestamp>,
    /// Repodata cache directory (default: rattler's standard cache).
    pub cache_dir: Option<PathBuf>,
    /// Where to write the lock (default: `envship.lock` next to the file).
    pub lock_path: Option<PathBuf>,
    /// Solve again even if the lock is up to date.
    pub update: bool,
    /// Also write an `@EXPLICIT` spec file here.
    pub explicit: Option<PathBuf>,
}

/// What `lock` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LockOutcome {
    /// The lock file.
    pub lock_path: PathBuf,
    /// The `@EXPLICIT` file, when asked for.
    pub explicit_path: Option<PathBuf>,
    /// True when the existing lock was up to date and kept.
    pub reused: bool,
    /// The locked packages, sorted by name.
    pub packages: Vec<LockedPackageSummary>,
    /// Wall time of repodata loading and solving.
    pub seconds: f64,
    /// The target solved for.
    pub target: String,
}

/// One locked package, for reports.
#[derive(Clone, Debug, serde::Serialize, PartialEq, Eq)]
pub struct LockedPackageSummary {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Build string.
    pub build: String,
    /// Channel (URL or name).
    pub channel: String,
    /// Archive URL.
    pub url: String,
}

/// The default location of the lock for an environment file.
pub fn default_lock_path(file: &EnvironmentFile) -> PathBuf {
    file.dir().join(LOCK_FILE)
}

/// rattler's standard cache directory (`RATTLER_CACHE_DIR` or `~/.cache/rattler/cache`).
pub fn default_cache_dir() -> Result<PathBuf, LockError> {
    rattler_cache::default_cache_dir().map_err(|_| LockError::CacheDir)
}

/// The resolved request: what the fingerprint covers.
struct Resolved {
    channels: Vec<Channel>,
    specs: Vec<MatchSpec>,
    virtual_packages: Vec<GenericVirtualPackage>,
    fingerprint: String,
}

fn resolve_request(
    file: &EnvironmentFile,
    target: &Target,
    req: &LockRequest,
) -> Result<(Resolved, ChannelConfig), LockError> {
    let config = channels::channel_config(&file.dir(), req.channel_alias.as_deref())?;
    let mut chans = channels::resolve_channels(file, &config)?;
    let mut specs = Vec::new();
    for dep in &file.dependencies {
        let mut spec = dep.spec.clone();
        if let Some(ch) = &spec.channel {
            let url = channels::remap_to_alias(ch.base_url.url(), &config);
            let channel = Channel::from_url(url);
            if !chans.iter().any(|c| c.base_url == channel.base_url) {
                chans.push(channel.clone());
            }
            spec.channel = Some(channel.into());
        }
        specs.push(spec);
    }
    let virtual_packages = target.virtual_packages();
    let mut h = Sha256::new();
    for c in &chans {
        h.update(b"channel ");
        h.update(c.base_url.as_str());
        h.update(b"\n");
    }
    for s in &specs {
        h.update(b"spec ");
        h.update(s.to_string());
        h.update(b"\n");
    }
    for v in &virtual_packages {
        h.update(b"virtual ");
        h.update(v.to_string());
        h.update(b"\n");
    }
    h.update(target.subdir.as_bytes());
    if let Some(t) = &req.exclude_newer {
        h.update(b"exclude-newer ");
        h.update(t.to_string());
    }
    let fingerprint = format!("sha256:{}", hex::encode(h.finalize()));
    Ok((
        Resolved {
            channels: chans,
            specs,
            virtual_packages,
            fingerprint,
        },
        config,
    ))
}

/// Lock the environment file for the target (blocking; runs its own async runtime).
pub fn lock(
    file: &EnvironmentFile,
    target: &Target,
    req: &LockRequest,
    progress: &dyn Progress,
) -> Result<LockOutcome, LockError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(LockError::Runtime)?;
    let result = rt.block_on(async {
        tokio::select! {
            r = lock_async(file, target, req, progress) => r,
            () = envship_spec::cancel::requested() => Err(LockError::Interrupted),
        }
    });
    crate::shut_down(rt);
    result
}

/// Lock the environment file for the target.
pub async fn lock_async(
    file: &EnvironmentFile,
    target: &Target,
    req: &LockRequest,
    progress: &dyn Progress,
) -> Result<LockOutcome, LockError> {
    let start = Instant::now();
    let lock_path = req
        .lock_path
        .clone()
        .unwrap_or_else(|| default_lock_path(file));
    // An imported lock (`lock --from`) is the environment as it is: never solved again here.
    if let Some(from) = imported_from(&lock_path) {
        if !req.update {
            let records = read_lock_records(&lock_path, target)?;
            import::check_target(&lock_path, &records, target)?;
            return reused_outcome(lock_path, &records, req, target, start);
        }
        if !file.path.exists() {
            return Err(LockError::ImportedWithoutEnvironmentFile {
                path: lock_path,
                from,
            });
        }
    }
    let (resolved, _config) = resolve_request(file, target, req)?;

    if !req.update {
        if let Some(existing) = read_fingerprint(&lock_path) {
            if existing == resolved.fingerprint {
                if let Ok(records) = read_lock_records(&lock_path, target) {
                    tracing::info!("{} is up to date for {}", lock_path.display(), target.name);
                    return reused_outcome(lock_path, &records, req, target, start);
                }
            }
        }
    }

    progress.start("repodata", None, ProgressUnit::Items);
    let repodata = load_repodata(&resolved, target, req).await;
    progress.finish("repodata");
    let repodata = repodata?;

    progress.start("solve", None, ProgressUnit::Items);
    let solved = solve(&resolved, &repodata, req.exclude_newer);
    progress.finish("solve");
    let mut records = match solved {
        Ok(r) => r,
        Err(SolveError::Unsolvable(lines)) => {
            let explanation = lines.join("\n");
            let help = explain_virtual_packages(&resolved, &repodata, target, &explanation);
            return Err(LockError::Unsatisfiable {
                file: file.path.display().to_string(),
                target: target.name.clone(),
                explanation,
                help,
            });
        }
        Err(e) => return Err(LockError::Solver(e)),
    };
    records.sort_by(|a, b| a.package_record.name.cmp(&b.package_record.name));

    let lock = build_lock_file(&resolved, target, &records)?;
    let text = lock.render_to_string().map_err(|source| LockError::Write {
        path: lock_path.clone(),
        source,
    })?;
    let header = format!(
        "{FINGERPRINT_PREFIX}{}\n# Written by envship {} for target {}. Do not edit: run `envship lock --update`.\n",
        resolved.fingerprint,
        env!("CARGO_PKG_VERSION"),
        target.name
    );
    write_atomic(&lock_path, format!("{header}{text}").as_bytes())?;
    let explicit_path = write_explicit_if_asked(req, &records, target)?;
    Ok(LockOutcome {
        lock_path,
        explicit_path,
        reused: false,
        packages: summaries(&records),
        seconds: start.elapsed().as_secs_f64(),
        target: target.name.clone(),
    })
}

async fn load_repodata(
    resolved: &Resolved,
    target: &Target,
    req: &LockRequest,
) -> Result<Vec<rattler_repodata_gateway::RepoData>, LockError> {
    let cache_dir = match &req.cache_dir {
        Some(d) => d.clone(),
        None => default_cache_dir()?,
    };
    let source_config = SourceConfig {
        cache_action: if req.offline {
            CacheAction::ForceCacheOnly
        } else {
            CacheAction::CacheOrFetch
        },
        ..SourceConfig::default()
    };
    let gateway = Gateway::builder()
        .with_cache_dir(cache_dir.join(rattler_cache::REPODATA_CACHE_DIR))
        .with_channel_config(rattler_repodata_gateway::ChannelConfig {
            default: source_config,
            per_channel: HashMap::new(),
        })
        .finish();
    let subdirs = [target.subdir(), rattler_conda_types::Subdir::NoArch];
    let result = gateway
        .query(
            resolved.channels.iter().cloned(),
            subdirs,
            resolved.specs.iter().cloned(),
        )
        .recursive(true)
        .execute()
        .await
        .map_err(|source| LockError::Repodata {
            channels: resolved
                .channels
                .iter()
                .map(|c| c.base_url.as_str().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            source,
        })?;
    Ok(result.repodata)
}

fn solve(
    resolved: &Resolved,
    repodata: &[rattler_repodata_gateway::RepoData],
    exclude_newer: Option<jiff::Timestamp>,
) -> Result<Vec<RepoDataRecord>, SolveError> {
    let task = SolverTask {
        specs: resolved.specs.clone(),
        virtual_packages: resolved.virtual_packages.clone(),
        channel_priority: ChannelPriority::Strict,
        exclude_newer: exclude_newer.map(ExcludeNewer::from_datetime),
        timeout: Some(Duration::from_secs(600)),
        ..SolverTask::from_iter(repodata.iter())
    };
    resolvo::Solver.solve(task).map(|r| r.records)
}

/// The outcome of a lock that is kept as it is (up to date, or imported).
fn reused_outcome(
    lock_path: PathBuf,
    records: &[RepoDataRecord],
    req: &LockRequest,
    target: &Target,
    start: Instant,
) -> Result<LockOutcome, LockError> {
    let explicit_path = write_explicit_if_asked(req, records, target)?;
    Ok(LockOutcome {
        lock_path,
        explicit_path,
        reused: true,
        packages: summaries(records),
        seconds: start.elapsed().as_secs_f64(),
        target: target.name.clone(),
    })
}

/// A lock builder whose only platform is the target's, with these virtual packages.
pub(super) fn platform_builder(
    target: &Target,
    virtual_packages: &[GenericVirtualPackage],
) -> Result<LockFileBuilder, rattler_lock::ParseCondaLockError> {
    let subdir = target.subdir();
    LockFileBuilder::new().with_platforms(vec![PlatformData {
        name: (&subdir).into(),
        subdir,
        virtual_packages: virtual_packages.iter().map(|v| v.to_string()).collect(),
    }])
}

fn build_lock_file(
    resolved: &Resolved,
    target: &Target,
    records: &[RepoDataRecord],
) -> Result<LockFile, LockError> {
    let platform_name = target.subdir().to_string();
    let mut builder = platform_builder(target, &resolved.virtual_packages)
        .map_err(|e| LockError::Spec {
            spec: platform_name.clone(),
            source: Box::new(e),
        })?
        .with_channels(
            DEFAULT_ENVIRONMENT_NAME,
            resolved
                .channels
                .iter()
                .map(|c| c.base_url.as_str().trim_end_matches('/').to_string()),
        );
    for r in records {
        builder
            .add_conda_package(DEFAULT_ENVIRONMENT_NAME, &platform_name, r.clone().into())
            .map_err(|e| LockError::Spec {
                spec: r.package_record.name.as_normalized().to_string(),
                source: Box::new(e),
            })?;
    }
    Ok(builder.finish())
}

/// The records locked for the target's platform.
pub fn read_lock_records(path: &Path, target: &Target) -> Result<Vec<RepoDataRecord>, LockError> {
    let lock = LockFile::from_path(path).map_err(|e| LockError::ReadLock {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    let env = lock
        .default_environment()
        .ok_or_else(|| LockError::MissingPlatform {
            path: path.to_path_buf(),
            subdir: target.subdir.clone(),
        })?;
    let platform = lock
        .platform(&target.subdir)
        .ok_or_else(|| LockError::MissingPlatform {
            path: path.to_path_buf(),
            subdir: target.subdir.clone(),
        })?;
    let records = env
        .conda_repodata_records(platform)
        .map_err(|e| LockError::ReadLock {
            path: path.to_path_buf(),
            source: Box::new(e),
        })?
        .ok_or_else(|| LockError::MissingPlatform {
            path: path.to_path_buf(),
            subdir: target.subdir.clone(),
        })?;
    Ok(records)
}

/// Whether the lock at `path` was made for exactly this request (file, target, options).
pub fn is_up_to_date(
    file: &EnvironmentFile,
    target: &Target,
    req: &LockRequest,
    path: &Path,
) -> bool {
    match (resolve_request(file, target, req), read_fingerprint(path)) {
        (Ok((resolved, _)), Some(fp)) => fp == resolved.fingerprint,
        _ => false,
    }
}

fn read_fingerprint(path: &Path) -> Option<String> {
    let text = fs_err::read_to_string(path).ok()?;
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix(FINGERPRINT_PREFIX))
        .map(str::to_string)
}

fn summaries(records: &[RepoDataRecord]) -> Vec<LockedPackageSummary> {
    let mut out: Vec<_> = records
        .iter()
        .map(|r| LockedPackageSummary {
            name: r.package_record.name.as_normalized().to_string(),
            version: r.package_record.version.to_string(),
            build: r.package_record.build.to_string(),
            channel: r.channel.clone().unwrap_or_default(),
            url: r.url.to_string(),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn write_explicit_if_asked(
    req: &LockRequest,
    records: &[RepoDataRecord],
    target: &Target,
) -> Result<Option<PathBuf>, LockError> {
    let Some(path) = &req.explicit else {
        return Ok(None);
    };
    let mut text = format!(
        "# This file may be used to create an environment using:\n# $ conda create --name <env> --file <this file>\n# platform: {}\n# target: {}\n@EXPLICIT\n",
        target.subdir, target.name
    );
    for r in topological(records) {
        let url = r.url.as_str();
        match (&r.package_record.md5, &r.package_record.sha256) {
            (Some(md5), _) => text.push_str(&format!("{url}#{}\n", hex::encode(md5))),
            (None, Some(sha)) => text.push_str(&format!("{url}#sha256:{}\n", hex::encode(sha))),
            (None, None) => text.push_str(&format!("{url}\n")),
        }
    }
    write_atomic(path, text.as_bytes())?;
    Ok(Some(path.clone()))
}

/// Dependencies before dependents, as conda writes explicit files; ties by name.
fn topological(records: &[RepoDataRecord]) -> Vec<&RepoDataRecord> {
    let by_name: HashMap<&str, &RepoDataRecord> = records
        .iter()
        .map(|r| (r.package_record.name.as_normalized(), r))
        .collect();
    let mut names: Vec<&str> = by_name.keys().copied().collect();
    names.sort_unstable();
    let mut done = HashSet::new();
    let mut out = Vec::new();
    fn visit<'a>(
        name: &'a str,
        by_name: &HashMap<&'a str, &'a RepoDataRecord>,
        done: &mut HashSet<&'a str>,
        out: &mut Vec<&'a RepoDataRecord>,
    ) {
        if !done.insert(name) {
            return;
        }
        if let Some(r) = by_name.get(name) {
            let mut deps: Vec<&str> = r
                .package_record
                .depends
                .iter()
                .filter_map(|d| d.split_whitespace().next())
                .filter_map(|d| by_name.get_key_value(d).map(|(k, _)| *k))
                .collect();
            deps.sort_unstable();
            for d in deps {
                visit(d, by_name, done, out);
            }
            out.push(r);
        }
    }
    for n in names {
        visit(n, &by_name, &mut done, &mut out);
    }
    out
}

/// Plain sentences for the case where a requested package exists but none of its builds can run
/// on the target because of a virtual package (`__glibc`, `__cuda`, …).
fn explain_virtual_packages(
    resolved: &Resolved,
    repodata: &[rattler_repodata_gateway::RepoData],
    target: &Target,
    explanation: &str,
) -> String {
    let mut sentences = BTreeSet::new();
    for spec in &resolved.specs {
        let candidates: Vec<&RepoDataRecord> = repodata
            .iter()
            .flat_map(|r| r.iter())
            .filter(|r| spec.matches(*r))
            .collect();
        if candidates.is_empty() {
            continue;
        }
        // For each candidate, the virtual-package requirements the target does not meet.
        let mut unmet_per_candidate = Vec::new();
        for c in &candidates {
            let unmet: Vec<String> = c
                .package_record
                .depends
                .iter()
                .filter(|d| d.starts_with("__"))
                .filter(|d| !virtual_dependency_met(d, &resolved.virtual_packages))
                .cloned()
                .collect();
            unmet_per_candidate.push(unmet);
        }
        if unmet_per_candidate.iter().all(|u| !u.is_empty()) {
            let mut reqs: BTreeSet<String> = unmet_per_candidate.into_iter().flatten().collect();
            let first = reqs.pop_first().unwrap_or_default();
            let vname = first.split_whitespace().next().unwrap_or("").to_string();
            let has = resolved
                .virtual_packages
                .iter()
                .find(|v| v.name.as_normalized() == vname)
                .map(|v| v.version.to_string());
            let others = if reqs.is_empty() {
                String::new()
            } else {
                format!(" (or {})", reqs.into_iter().collect::<Vec<_>>().join(", "))
            };
            let has = match has {
                Some(v) => format!(
                    "target {} has {} {}",
                    target.name,
                    vname.trim_start_matches('_'),
                    v
                ),
                None => format!("target {} has no {}", target.name, vname),
            };
            sentences.insert(format!(
                "every build of `{spec}` ({} candidates) needs {first}{others}; {has}",
                candidates.len()
            ));
        }
    }
    if sentences.is_empty() {
        for v in &resolved.virtual_packages {
            let name = v.name.as_normalized();
            if explanation.contains(&format!("{name} "))
                || explanation.contains(&format!("{name}>"))
            {
                sentences.insert(format!(
                    "a dependency needs a `{name}` the target does not provide: target {} has {name} {}",
                    target.name, v.version
                ));
            }
        }
    }
    if sentences.is_empty() {
        "relax the pins named above, or check that the channels provide them for this target".into()
    } else {
        let mut s = sentences.into_iter().collect::<Vec<_>>().join("\n");
        if s.contains("__glibc") {
            s.push_str("\nolder builds may still exist: try `--exclude-newer 2024-05-01` or pin an older version");
        }
        s
    }
}

fn virtual_dependency_met(dep: &str, vps: &[GenericVirtualPackage]) -> bool {
    let Ok(spec) = MatchSpec::from_str(dep, ParseStrictness::Lenient) else {
        return true;
    };
    let Some(name) = spec.name.as_exact() else {
        return true;
    };
    vps.iter().any(|vp| {
        &vp.name == name
            && spec.version.as_ref().is_none_or(|v| v.matches(&vp.version))
            && spec
                .build
                .as_ref()
                .is_none_or(|b| b.matches(vp.build_string.as_str()))
    })
}

/// Write `bytes` to `path` through a temp file in the same directory and a rename.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), LockError> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs_err::create_dir_all(dir).map_err(|source| LockError::Write {
            path: path.to_path_buf(),
            source,
        })?;
    }
    envship_spec::output::write_atomic(path, bytes).map_err(|source| LockError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Parse `--exclude-newer`: a date (`2024-05-01`, midnight UTC) or an RFC 3339 timestamp.
pub fn parse_exclude_newer(s: &str) -> Result<jiff::Timestamp, String> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    s.parse::<jiff::civil::Date>()
        .map_err(|e| format!("`{s}` is not a date (YYYY-MM-DD) or RFC 3339 timestamp: {e}"))
        .and_then(|d| {
            d.to_zoned(jiff::tz::TimeZone::UTC)
                .map(|z| z.timestamp())
                .map_err(|e| e.to_string())
        })
}

/// Package names in a lock, for tests and reports.
pub fn package_names(records: &[RepoDataRecord]) -> Vec<PackageName> {
    records
        .iter()
        .map(|r| r.package_record.name.clone())
        .collect()
}
