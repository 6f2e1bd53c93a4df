//! The deploy itself: fetch, verify, check the host, then under the lock extract into a
//! partial directory, put it in place, optionally test it, switch `current`, record.

use std::path::{Path, PathBuf};

use envship_pack::{blocks::index::BlockIndex, Manifest};
use envship_spec::{Progress, Target};

use crate::{
    host::{check_host, target_label},
    linked,
    live::{self, clean_leftovers, current_version, repair_current, switch_current},
    pause_point,
    record::{self, Record},
    self_test,
    source::{self, Source},
    trust::{check_trust, trust_summary},
    verify::{check_component, verify, Verified},
    DeployError, DeployLock, DeployOptions, DeployOutcome, CURRENT, STATE_DIR, TEST_SCRIPT,
};

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
    // Archive names end with TARGET-SUBDIR: with --target, only that target's archive is taken.
    let suffix = match &opts.target {
        Some(t) => format!("{t}-{}", host.subdir),
        None => host.subdir.clone(),
    };
    let fetched = source::fetch(
        &src,
        &opts.source,
        opts.name.as_deref(),
        &suffix,
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
    // Before the lock and anything written: an untrusted archive leaves the root as it was.
    let fetch_bundle =
        || source::fetch_attestation(&src, &fetched.archive, &v.sha256, &opts.github);
    let trust = check_trust(
        &opts.root,
        &fetched.archive,
        &v.manifest_path,
        &v.sha256,
        &opts.trust,
        &fetch_bundle,
    )?;
    if let Some(t) = &trust {
        actions.push(format!("trusted: {}", trust_summary(t)));
    }

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
        let diff = previous.as_deref().and_then(|p| {
            diff_from(
                &opts.root.join(&name).join(p),
                &fetched.archive,
                &v,
                &mut actions,
            )
        });
        return Ok(DeployOutcome {
            diff,
            path: opts.root.join(&name).join(&version),
            name,
            version,
            sha256: v.sha256,
            previous,
            actions,
            test_log: None,
            dry_run: true,
            trust,
        });
    }

    let lock = DeployLock::acquire(&opts.root, || {
        progress.message("deploy", "waiting for another deploy to finish (lock held)");
    })?;
    pause_point("locked");
    let mut rec = Record::now("deploy", &name, &version, "success");
    rec.sha256 = Some(v.sha256.clone());
    rec.ticket = opts.ticket.clone();
    rec.source = Some(opts.source.clone());
    rec.trust = trust.as_ref().and_then(|t| serde_json::to_value(t).ok());
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
            rec.time = jiff::Timestamp::now();
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
        diff: None,
        trust,
    })
}

/// What changes from the deployed version `live` to the verified archive (`None`, with the
/// reason among the actions, when the live version cannot be read as a side of a diff).
fn diff_from(
    live: &Path,
    archive: &Path,
    v: &Verified,
    actions: &mut Vec<String>,
) -> Option<envship_pack::diff::ReleaseDiff> {
    use envship_pack::diff::{self, Side, SideKind};
    let audit = envship_pack::Sidecar::Audit.path_for(archive);
    let sides = Side::open(live).and_then(|old| {
        let new = Side::from_manifest(SideKind::Archive, archive, &v.manifest, Some(&audit))?;
        Ok((old, new))
    });
    match sides {
        Ok((old, new)) => Some(diff::diff(&old, &new)),
        Err(e) => {
            actions.push(format!("could not compare with {}: {e}", live.display()));
            None
        }
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
        "record the tree in {} and keep the manifest at {}",
        live::record_path(&dest).display(),
        live::manifest_path(&dest).display()
    ));
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

/// A version put in place under `env_dir`, and the tree it replaced (kept until the switch).
struct Placed {
    env_dir: PathBuf,
    version: String,
    dest: PathBuf,
    old: Option<PathBuf>,
}

impl Placed {
    /// Take an untested version out again: the replaced tree back, or the new one removed.
    fn undo(&self, actions: &mut Vec<String>) {
        let res = match &self.old {
            Some(o) => {
                let untested = self.env_dir.join(format!(
                    ".{}.old-{}-untested",
                    self.version,
                    std::process::id()
                ));
                live::replace_tree(&self.env_dir, o, &self.dest, &untested, &self.version).and_then(
                    |_| {
                        std::fs::remove_dir_all(&untested)
                            .map_err(DeployError::io("removing", &untested))
                    },
                )
            }
            None => std::fs::remove_dir_all(&self.dest)
                .map_err(DeployError::io("removing", &self.dest))
                .and_then(|_| linked::keep_index(&self.env_dir, &self.version, None)),
        };
        match res {
            Ok(()) => actions.push(format!("removed the untested {}", self.dest.display())),
            Err(e) => tracing::warn!("could not undo {}: {e}", self.dest.display()),
        }
        live::sync_dir(&self.env_dir);
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
    if dest.exists() && !opts.force {
        remove_if_never_live(
            &opts.root,
            name,
            version,
            previous.as_deref(),
            &dest,
            actions,
        )?;
    }
    if dest.exists() && !opts.force {
        return Err(DeployError::Exists { path: dest });
    }
    let final_root = env_root(&dest, &v.manifest);
    let index = linked::archive_index(v.blocks_file.as_deref(), &v.manifest)?;
    let link_from = if opts.no_link {
        None
    } else {
        linked::link_from(&env_dir, previous.as_deref(), index.as_ref(), &v.manifest)
    };
    let partial = extract(
        opts,
        (version, archive),
        &env_dir,
        &final_root,
        link_from,
        actions,
        progress,
    )?;
    // A replaced version's record and manifest describe the old tree: aside until the new ones
    // are written, back if the old tree comes back.
    let aside = live::KeptAside::take(&dest)?;
    let placed = match put_in_place(partial, env_dir, dest, version, actions) {
        Ok(p) => p,
        Err(e) => {
            aside.restore();
            return Err(e);
        }
    };
    // From here on a failure (a full disk while the records are written) takes the new
    // version out again: the root is left as it was, `current` included.
    let finished = finish(
        opts,
        (version, v, index.as_ref()),
        &placed,
        previous.as_deref(),
        rec,
        actions,
        progress,
    );
    if let Err(e) = finished {
        placed.undo(actions);
        aside.restore();
        return Err(e);
    }
    aside.remove();

    if let Some(o) = &placed.old {
        if let Err(e) = std::fs::remove_dir_all(o) {
            tracing::warn!("could not remove the replaced tree {}: {e}", o.display());
        }
    }
    Ok(placed.dest)
}

/// After the new version is in place: keep its block index, test it (`--test`), record its
/// tree, switch `current` and append the record. A failure after the switch points `current`
/// back, so that the caller can take the version out.
#[allow(clippy::too_many_arguments)]
fn finish(
    opts: &DeployOptions,
    (version, v, index): (&str, &Verified, Option<&BlockIndex>),
    placed: &Placed,
    previous: Option<&str>,
    rec: &mut Record,
    actions: &mut Vec<String>,
    progress: &dyn Progress,
) -> Result<(), DeployError> {
    let final_root = env_root(&placed.dest, &v.manifest);
    // Kept for the next deploy to link from (removed again if this version is taken out).
    linked::keep_index(&placed.env_dir, version, index)?;
    if opts.test {
        match self_test::run(opts, &rec.name, version, &final_root, progress) {
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
                return Err(e);
            }
        }
        pause_point("tested");
    }
    record_tree(&placed.dest, &v.manifest, actions)?;
    switch_current(&placed.env_dir, version)?;
    actions.push(format!(
        "switched {} from {} to {version}",
        placed.env_dir.join(CURRENT).display(),
        previous.unwrap_or("(none)")
    ));
    pause_point("switched");

    rec.time = jiff::Timestamp::now();
    if let Err(e) = record::append(&opts.root, rec) {
        let back = match previous {
            Some(p) => switch_current(&placed.env_dir, p),
            None => std::fs::remove_file(placed.env_dir.join(CURRENT))
                .map_err(DeployError::io("removing", placed.env_dir.join(CURRENT))),
        };
        if let Err(b) = back {
            tracing::warn!("could not point `current` back after a failed record: {b}");
        }
        return Err(e);
    }
    actions.push(format!(
        "recorded in {}",
        record::log_path(&opts.root).display()
    ));
    pause_point("recorded");
    Ok(())
}

/// The last step before the switch: keep the archive's manifest beside the version and record
/// the tree as it is now (relocated, and tested when `--test` ran), for `envship verify` and
/// `envship diff`. A replaced version's files are overwritten.
fn record_tree(dest: &Path, m: &Manifest, actions: &mut Vec<String>) -> Result<(), DeployError> {
    let kept = live::manifest_path(dest);
    m.write(&kept).map_err(|e| DeployError::KeepManifest {
        path: kept.clone(),
        source: Box::new(e),
    })?;
    let (rec, path) =
        envship_pack::tree::record_tree(dest).map_err(|e| DeployError::TreeRecord {
            tree: dest.to_path_buf(),
            source: Box::new(e),
        })?;
    actions.push(format!(
        "recorded the tree ({} files, {} bytes) in {} and kept the manifest at {}",
        rec.files,
        rec.bytes,
        path.display(),
        kept.display()
    ));
    Ok(())
}

/// A version directory that is not live and that no deploy recorded as a success was put in
/// place by a deploy killed before it switched `current` (kill -9, a lost host): nobody used
/// it, and the same deploy run again replaces it instead of refusing. A version that went live
/// once (a success in the log) is never replaced without --force.
fn remove_if_never_live(
    root: &Path,
    name: &str,
    version: &str,
    live: Option<&str>,
    dest: &Path,
    actions: &mut Vec<String>,
) -> Result<(), DeployError> {
    if live == Some(version) {
        return Ok(());
    }
    let deployed = crate::record::read(root)?
        .iter()
        .any(|r| r.name == name && r.version == version && r.result == "success");
    if deployed {
        return Ok(());
    }
    std::fs::remove_dir_all(dest).map_err(DeployError::io("removing", dest))?;
    actions.push(format!(
        "removed {}, placed by a deploy that was interrupted before it went live",
        dest.display()
    ));
    Ok(())
}

/// Extract and relocate `archive` into a new partial directory in `env_dir`, for `final_root`;
/// with `link_from`, the files the live version holds unchanged are hard-linked from it.
fn extract(
    opts: &DeployOptions,
    (version, archive): (&str, &Path),
    env_dir: &Path,
    final_root: &Path,
    link_from: Option<envship_pack::LinkFrom>,
    actions: &mut Vec<String>,
    progress: &dyn Progress,
) -> Result<tempfile::TempDir, DeployError> {
    let live = link_from.as_ref().map(|l| l.root.clone());
    let partial = tempfile::Builder::new()
        .prefix(&format!(".{version}.partial-"))
        .tempdir_in(env_dir)
        .map_err(DeployError::io("creating a temp directory in", env_dir))?;
    let uopts = envship_pack::UnpackOptions {
        force: true,
        jobs: opts.jobs,
        no_relocate: false,
        prefix: Some(final_root.to_string_lossy().into_owned()),
        link_from,
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
    if let Some(live) = live {
        let l = out.linked;
        actions.push(format!(
            "linked {} files ({} bytes) unchanged from {}, wrote {} files ({} bytes); \
             inflated {} of {} blocks",
            l.files,
            l.bytes,
            live.display(),
            out.files - l.files,
            out.bytes - l.bytes,
            l.blocks_read,
            l.blocks_read + l.blocks_skipped
        ));
    }
    live::sync_tree_root(partial.path());
    pause_point("extracted");
    Ok(partial)
}

/// Put the extracted tree at `dest`. A new version is a plain rename; a forced replacement is
/// an exchange, so `VERSION` is a complete tree at every instant (see `replace_tree` for
/// kernels without).
fn put_in_place(
    partial: tempfile::TempDir,
    env_dir: PathBuf,
    dest: PathBuf,
    version: &str,
    actions: &mut Vec<String>,
) -> Result<Placed, DeployError> {
    let old = if dest.exists() {
        let old = env_dir.join(format!(".{version}.old-{}", std::process::id()));
        // On failure the staged tree is still the TempDir's, which removes it.
        let exchanged = live::replace_tree(&env_dir, partial.path(), &dest, &old, version)?;
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
    live::sync_dir(&env_dir);
    pause_point("installed");
    Ok(Placed {
        env_dir,
        version: version.to_string(),
        dest,
        old,
    })
}
