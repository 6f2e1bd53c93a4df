//! `envship lock --from FILE`: turn another tool's lock into envship.lock for the target, without
//! solving and without an environment.yml.
//!
//! conda-lock v1 files and pixi.lock (every version rattler_lock reads) are read with
//! rattler_lock; `@EXPLICIT` files with [`super::explicit`]. The result is an ordinary
//! envship.lock (one platform, the target's subdir) whose first line marks it as imported:
//! lock, build and ship then use it as it is, never solving again, until it is imported again
//! (or, when the project also has an environment.yml, `envship lock --update` solves that).
//!
//! A project may consist of nothing but such a lock: [`imported_environment_file`] stands in for
//! the missing environment.yml (no specs, the lock's pip packages as its `pip:` section).

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use envship_spec::{EnvironmentFile, Target};
use rattler_conda_types::RepoDataRecord;
use rattler_lock::{LockFile, LockedPackage, DEFAULT_ENVIRONMENT_NAME};
use sha2::{Digest, Sha256};

use super::{summaries, virtual_dependency_met, write_atomic, LockError, LockedPackageSummary};

/// The first line of an imported lock: `# envship-imported: sha256:HEX FILE`.
pub(crate) const IMPORT_PREFIX: &str = "# envship-imported: ";

/// What to import.
#[derive(Clone, Debug)]
pub struct ImportRequest {
    /// The conda-lock, pixi or @EXPLICIT file.
    pub from: PathBuf,
    /// The environment of a pixi lock (default `default`).
    pub environment: Option<String>,
    /// Where to write envship.lock.
    pub lock_path: PathBuf,
    /// The package cache searched for @EXPLICIT packages' metadata (default: rattler's).
    pub cache_dir: Option<PathBuf>,
}

/// The kind of file imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportedFormat {
    /// conda-lock's v1 format (`conda-lock.yml`).
    CondaLock,
    /// pixi.lock (rattler_lock's format, version 4 or later).
    Pixi,
    /// conda's `@EXPLICIT` list of URLs.
    Explicit,
}

/// What `lock --from` did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImportOutcome {
    /// The envship.lock written.
    pub lock_path: PathBuf,
    /// The file imported.
    pub from: PathBuf,
    /// Its kind.
    pub format: ImportedFormat,
    /// The conda packages, sorted by name.
    pub packages: Vec<LockedPackageSummary>,
    /// The pip packages (`name==version`), installed by pip after the conda packages.
    pub pip: Vec<String>,
    /// The target imported for.
    pub target: String,
    /// Wall time.
    pub seconds: f64,
}

/// Import `req.from` as envship.lock for `target`.
pub fn import_lock(req: &ImportRequest, target: &Target) -> Result<ImportOutcome, LockError> {
    let start = Instant::now();
    let import_error =
        |reason: String, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
            LockError::Import {
                path: req.from.clone(),
                reason,
                source,
            }
        };
    let text = fs_err::read_to_string(&req.from)
        .map_err(|e| import_error("cannot read it".into(), Some(Box::new(e))))?;
    let platform_name = target.subdir().to_string();
    let mut builder = super::platform_builder(target, &target.virtual_packages()).map_err(|e| {
        import_error(
            "cannot describe the target's platform".into(),
            Some(Box::new(e)),
        )
    })?;
    let add_error = |e: rattler_lock::ParseCondaLockError| {
        import_error("cannot copy its packages".into(), Some(Box::new(e)))
    };
    let (format, records, pip) = if super::explicit::is_explicit(&text) {
        let cache_dir = match &req.cache_dir {
            Some(d) => d.clone(),
            None => super::default_cache_dir()?,
        };
        let records = super::explicit::records(&req.from, &text, target, &cache_dir)?;
        let mut channels: Vec<String> = Vec::new();
        for r in &records {
            if let Some(c) = r.channel.as_ref().filter(|c| !channels.contains(c)) {
                channels.push(c.clone());
            }
        }
        builder = builder.with_channels(DEFAULT_ENVIRONMENT_NAME, channels);
        for r in &records {
            builder
                .add_conda_package(DEFAULT_ENVIRONMENT_NAME, &platform_name, r.clone().into())
                .map_err(add_error)?;
        }
        (ImportedFormat::Explicit, records, Vec::new())
    } else {
        let base_dir = req.from.parent();
        let normalized = unversioned_conda_lock(&text);
        let text_to_parse = normalized.as_deref().unwrap_or(&text);
        let lock =
            LockFile::from_str_with_base_directory(text_to_parse, base_dir).map_err(|e| {
                import_error(
                    "not a conda-lock v1, pixi.lock or @EXPLICIT file".into(),
                    Some(Box::new(e)),
                )
            })?;
        let format = if lock.version() <= rattler_lock::FileFormatVersion::V3 {
            ImportedFormat::CondaLock
        } else {
            ImportedFormat::Pixi
        };
        let name = req
            .environment
            .as_deref()
            .unwrap_or(DEFAULT_ENVIRONMENT_NAME);
        let env = lock
            .environment(name)
            .ok_or_else(|| LockError::ImportEnvironment {
                path: req.from.clone(),
                name: name.to_string(),
                available: lock
                    .environments()
                    .map(|(n, _)| n.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let no_platform = || LockError::ImportPlatform {
            path: req.from.clone(),
            subdir: target.subdir.clone(),
            available: env
                .platforms()
                .map(|p| p.subdir().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        };
        let platform = env
            .platforms()
            .find(|p| p.subdir() == target.subdir())
            .ok_or_else(no_platform)?;
        let records = env
            .conda_repodata_records(platform)
            .map_err(|e| import_error("cannot read its conda packages".into(), Some(Box::new(e))))?
            .ok_or_else(no_platform)?;
        builder = builder.with_channels(
            DEFAULT_ENVIRONMENT_NAME,
            env.channels().iter().map(|c| c.url.clone()),
        );
        if let Some(indexes) = env.pypi_indexes() {
            builder.set_pypi_indexes(DEFAULT_ENVIRONMENT_NAME, indexes.clone());
        }
        let mut pip = Vec::new();
        for package in env.packages(platform).into_iter().flatten() {
            if let LockedPackage::Pypi(p) = package {
                pip.push(match p.version() {
                    Some(v) => format!("{}=={v}", p.name()),
                    None => p.name().to_string(),
                });
            }
            builder
                .add_package(DEFAULT_ENVIRONMENT_NAME, &platform_name, package.clone())
                .map_err(add_error)?;
        }
        (format, records, pip)
    };
    check_target(&req.from, &records, target)?;
    let rendered = builder
        .finish()
        .render_to_string()
        .map_err(|source| LockError::Write {
            path: req.lock_path.clone(),
            source,
        })?;
    let source_hash = format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())));
    let header = format!(
        "{IMPORT_PREFIX}{source_hash} {from}\n# Written by envship {} for target {} from {from}. Do not edit: run `envship lock --from {from}` again.\n",
        env!("CARGO_PKG_VERSION"),
        target.name,
        from = req.from.display(),
    );
    write_atomic(&req.lock_path, format!("{header}{rendered}").as_bytes())?;
    Ok(ImportOutcome {
        lock_path: req.lock_path.clone(),
        from: req.from.clone(),
        format,
        packages: summaries(&records),
        pip,
        target: target.name.clone(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Older conda-lock v1 files (conda-lock's own test lock among them) list channels as plain
/// strings, and some lack `version: 1`; rattler_lock reads them once their channels are
/// `{url: ...}` and the version is there. `None` for files that need no change.
fn unversioned_conda_lock(text: &str) -> Option<String> {
    let mut doc: serde_yaml::Value = serde_yaml::from_str(text).ok()?;
    let map = doc.as_mapping_mut()?;
    let version = map.get("version").and_then(serde_yaml::Value::as_u64);
    if !map.contains_key("package") || version.is_some_and(|v| v != 1) {
        return None;
    }
    let mut changed = version.is_none();
    let channels = map
        .get_mut("metadata")
        .and_then(|m| m.get_mut("channels"))
        .and_then(|c| c.as_sequence_mut());
    for channel in channels.into_iter().flatten() {
        if let Some(url) = channel.as_str().map(str::to_string) {
            let mut entry = serde_yaml::Mapping::new();
            entry.insert("url".into(), url.into());
            entry.insert("used_env_vars".into(), serde_yaml::Sequence::new().into());
            *channel = entry.into();
            changed = true;
        }
    }
    // `dependencies` as a map of `name: spec` (with `*` for any version, which PEP 440 does not
    // know); rattler_lock takes the list form, `name spec` per entry, for either manager.
    let packages = map.get_mut("package").and_then(|p| p.as_sequence_mut());
    for package in packages.into_iter().flatten() {
        let Some(deps) = package.get_mut("dependencies") else {
            continue;
        };
        let Some(dep_map) = deps.as_mapping() else {
            continue;
        };
        let list: serde_yaml::Sequence = dep_map
            .iter()
            .filter_map(|(name, spec)| {
                let name = name.as_str()?;
                Some(match spec.as_str().map(str::trim) {
                    None | Some("") | Some("*") => name.to_string().into(),
                    Some(spec) => format!("{name} {spec}").into(),
                })
            })
            .collect();
        *deps = list.into();
        changed = true;
    }
    if !changed {
        return None;
    }
    map.insert("version".into(), 1.into());
    serde_yaml::to_string(&doc).ok()
}

/// Every record's `__glibc` and `__linux` dependencies must be met by the target: an imported
/// lock was solved for someone else's machines.
pub(crate) fn check_target(
    from: &Path,
    records: &[RepoDataRecord],
    target: &Target,
) -> Result<(), LockError> {
    let virtual_packages = target.virtual_packages();
    for r in records {
        for dep in &r.package_record.depends {
            let name = dep.split([' ', '>', '<', '=']).next().unwrap_or_default();
            if !matches!(name, "__glibc" | "__linux") {
                continue;
            }
            if virtual_dependency_met(dep, &virtual_packages) {
                continue;
            }
            let has = virtual_packages
                .iter()
                .find(|v| v.name.as_normalized() == name)
                .map(|v| format!("{name} {}", v.version))
                .unwrap_or_else(|| format!("no {name}"));
            return Err(LockError::ImportTarget {
                path: from.to_path_buf(),
                package: format!(
                    "{}-{}-{}",
                    r.package_record.name.as_normalized(),
                    r.package_record.version,
                    r.package_record.build
                ),
                dependency: dep.clone(),
                target: target.name.clone(),
                has,
            });
        }
    }
    Ok(())
}

/// The file an imported lock came from (its first line), or `None` for a lock envship solved.
pub fn imported_from(lock_path: &Path) -> Option<String> {
    let text = fs_err::read_to_string(lock_path).ok()?;
    let first = text.lines().next()?.strip_prefix(IMPORT_PREFIX)?;
    let (_hash, from) = first.split_once(' ')?;
    Some(from.to_string())
}

/// The stand-in for a missing environment.yml at `env_path` when the lock beside it was imported:
/// no conda specs (the lock is the whole environment) and the lock's pip packages, pinned to
/// their URLs, as the `pip:` section. `None` when there is no imported lock there.
pub fn imported_environment_file(
    env_path: &Path,
    lock_path: &Path,
) -> Result<Option<EnvironmentFile>, LockError> {
    if imported_from(lock_path).is_none() {
        return Ok(None);
    }
    let lock = LockFile::from_path(lock_path).map_err(|e| LockError::ReadLock {
        path: lock_path.to_path_buf(),
        source: Box::new(e),
    })?;
    let mut pip = Vec::new();
    if let Some(env) = lock.default_environment() {
        for platform in env.platforms() {
            for package in env.pypi_packages(platform).into_iter().flatten() {
                let entry = format!("{} @ {}", package.name(), package.location());
                if !pip.contains(&entry) {
                    pip.push(entry);
                }
            }
        }
    }
    let mut yaml = String::from(
        "# Stands in for environment.yml: the project is the imported envship.lock.\n",
    );
    if pip.is_empty() {
        yaml.push_str("dependencies: []\n");
    } else {
        yaml.push_str("dependencies:\n  - pip:\n");
        for entry in &pip {
            yaml.push_str(&format!(
                "    - {}\n",
                serde_json::Value::String(entry.clone())
            ));
        }
    }
    EnvironmentFile::from_str_with_path(&yaml, env_path)
        .map(Some)
        .map_err(|e| LockError::ReadLock {
            path: lock_path.to_path_buf(),
            source: Box::new(e),
        })
}
