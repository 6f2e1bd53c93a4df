//! The `pip:` section, installed with the environment's own Python after the conda packages.
//!
//! pip picks manylinux wheels by asking the running system's glibc, which is the build host's,
//! not the target's. PEP 600 gives the fix: pip's `packaging` imports a `_manylinux` module if
//! one is on `sys.path` and asks its `manylinux_compatible(major, minor, arch)` about every
//! `manylinux_X_Y` tag (legacy `manylinux1/2010/2014` included). envship puts such a module,
//! answering for the target's glibc, on `PYTHONPATH` for the install only — so for lcls-rhel6 a
//! `manylinux_2_17` wheel is never chosen even though this host could run it.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::SystemTime,
};

use crate::pip_guard;

mod report;

use report::read_report;
pub use report::wheel_tags;

use envship_spec::{
    env_file::EnvSource,
    python_dists::{self, normalize},
    EnvironmentFile, Progress, ProgressUnit, Target,
};
use miette::SourceSpan;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where pip may find packages.
#[derive(Clone, Debug, Default)]
pub struct PipOptions {
    /// `--find-links` (directories or URLs with wheels).
    pub find_links: Vec<String>,
    /// `--no-index`: only `find_links`.
    pub no_index: bool,
    /// `--index-url` (a mirror of PyPI).
    pub index_url: Option<String>,
    /// Let pip replace a distribution a conda package installed (conda's behaviour), with a
    /// warning, instead of refusing the build.
    pub allow_overrides: bool,
}

/// One package pip installed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PipPackage {
    /// Distribution name.
    pub name: String,
    /// Version.
    pub version: String,
    /// Where it came from.
    pub url: String,
    /// The wheel file name, when it was a wheel.
    pub wheel: Option<String>,
    /// Wheel tags (`cp311-cp311-manylinux_2_17_x86_64`, …).
    pub tags: Vec<String>,
    /// sha256 of the archive, when pip reports it.
    pub sha256: Option<String>,
    /// Whether the environment file asked for it (vs. a dependency).
    pub requested: bool,
}

/// What the pip step did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PipOutcome {
    /// Installed packages.
    pub packages: Vec<PipPackage>,
    /// True when the prefix already had exactly this pip section for this target.
    pub reused: bool,
    /// The record written next to the lock.
    pub record_path: PathBuf,
    /// What pip replaced of conda's (overrides allowed), one line each.
    #[serde(default)]
    pub overridden: Vec<String>,
}

#[derive(Clone, Serialize, Deserialize)]
struct PipRecord {
    fingerprint: String,
    target: String,
    packages: Vec<PipPackage>,
    #[serde(default)]
    overridden: Vec<String>,
}

/// Errors of the pip step.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PipError {
    /// The environment has no python to run pip with.
    #[error("the environment has a `pip:` section but no python: {} does not exist", python.display())]
    #[diagnostic(
        code(envship::pip::no_python),
        help("add `python` and `pip` to the conda dependencies")
    )]
    NoPython {
        /// The expected interpreter.
        python: PathBuf,
    },

    /// pip could not be started.
    #[error("cannot run {}", python.display())]
    #[diagnostic(code(envship::pip::spawn))]
    Spawn {
        /// The interpreter.
        python: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// An entry has no distribution that runs on the target.
    #[error("pip entry `{entry}` cannot be installed for target {target}: no distribution of `{requirement}` that pip accepts for glibc {glibc}")]
    #[diagnostic(
        code(envship::pip::unsatisfiable),
        help("wheels are limited to manylinux_{glibc_tag} and older for this target; pin a version with such a wheel, use a conda package instead, or choose a newer target.\npip said:\n{pip_output}")
    )]
    Unsatisfiable {
        /// The entry as written in the file.
        entry: String,
        /// The requirement pip could not satisfy (may be a dependency of the entry).
        requirement: String,
        /// Target name.
        target: String,
        /// Target glibc.
        glibc: String,
        /// `2_12`-style.
        glibc_tag: String,
        /// pip's last lines.
        pip_output: String,
        /// The environment file.
        #[source_code]
        src: EnvSource,
        /// The entry.
        #[label("not installable on {target}")]
        at: SourceSpan,
    },

    /// pip would replace a distribution a conda package installed.
    #[error("{first}{more}")]
    #[diagnostic(
        code(envship::pip::replaces_conda),
        help("keep one owner per distribution: drop `{name}` from the conda dependencies or from the pip entries, or pin pip's entry to conda's version; `--allow-pip-overrides` lets pip replace it, as conda does")
    )]
    ReplacesConda {
        /// The first replacement, in words.
        first: String,
        /// The other replacements, one line each.
        more: String,
        /// The first distribution's name.
        name: String,
        /// The environment file.
        #[source_code]
        src: EnvSource,
        /// The pip entry that asks for it (or the first entry, for a dependency).
        #[label("pip would replace conda's {name}")]
        at: SourceSpan,
    },

    /// pip deleted or changed a file of a conda package it was not replacing.
    #[error("{path} of conda package {package} was {what} by pip{more}")]
    #[diagnostic(
        code(envship::pip::damaged_conda),
        help("two distributions install the same files (one from conda, one from pip): keep one of them. Pack refuses this prefix; the next build makes it again from the package cache")
    )]
    DamagedConda {
        /// The conda package.
        package: String,
        /// The file.
        path: String,
        /// `deleted` or `overwritten`.
        what: &'static str,
        /// How many other files, in words.
        more: String,
    },

    /// pip failed for another reason.
    #[error("pip install failed ({status}) for the `pip:` section of {file}")]
    #[diagnostic(code(envship::pip::failed), help("pip said:\n{pip_output}"))]
    Failed {
        /// The environment file.
        file: String,
        /// Exit status.
        status: String,
        /// pip's last lines.
        pip_output: String,
    },

    /// pip's report could not be read or the record could not be written.
    #[error("cannot {action} {}", path.display())]
    #[diagnostic(code(envship::pip::io))]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The PEP 600 hook for a target.
pub fn manylinux_hook(target: &Target) -> String {
    let parts = target.glibc.parts();
    let major = parts.first().copied().unwrap_or(2);
    let minor = parts.get(1).copied().unwrap_or(0);
    format!(
        "# Written by envship: pip may only choose wheels that run on target {name} (PEP 600).\n\
         def manylinux_compatible(tag_major, tag_minor, tag_arch, **kwargs):\n    \
             return tag_arch == \"x86_64\" and (tag_major, tag_minor) <= ({major}, {minor})\n",
        name = target.name
    )
}

/// The record of pip installs next to a lock file: `envship-pip.json` beside envship.lock,
/// `STEM-pip.json` beside any other `STEM.lock` (a project of several targets has one lock per
/// target, and each its own pip record).
pub fn record_path(lock_path: &Path) -> PathBuf {
    match lock_path.file_stem().and_then(|s| s.to_str()) {
        Some(stem) if stem != "envship" && !stem.is_empty() => {
            lock_path.with_file_name(format!("{stem}-pip.json"))
        }
        _ => lock_path.with_file_name("envship-pip.json"),
    }
}

/// What the pip step depends on: the entries, the target's manylinux answer, where pip looks
/// (and which wheels a local `--find-links` directory holds) and the environment's python (its
/// conda record). The same fingerprint with everything still installed means pip need not run.
fn request_fingerprint(
    file: &EnvironmentFile,
    target: &Target,
    opts: &PipOptions,
    prefix: &Path,
) -> String {
    let mut h = Sha256::new();
    for e in &file.pip {
        h.update(e.raw.as_bytes());
        h.update(b"\n");
    }
    h.update(manylinux_hook(target));
    h.update(format!(
        "{:?}{:?}{:?}",
        opts.find_links, opts.no_index, opts.index_url
    ));
    for link in &opts.find_links {
        for wheel in directory_listing(Path::new(link)) {
            h.update(b"wheel ");
            h.update(wheel.as_bytes());
            h.update(b"\n");
        }
    }
    for record in directory_listing(&prefix.join("conda-meta")) {
        // `python-3.11.2-h0_envship.json`: a new python (version or build) is a new request.
        if record.starts_with("python-") && record.as_bytes().get(7).is_some_and(u8::is_ascii_digit)
        {
            h.update(b"python ");
            h.update(record.as_bytes());
            h.update(b"\n");
        }
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// The sorted `NAME SIZE MTIME` lines of a local directory's files; empty for URLs and missing
/// directories.
fn directory_listing(dir: &Path) -> Vec<String> {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            let mtime = meta
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_nanos();
            Some(format!(
                "{} {} {mtime}",
                e.file_name().to_string_lossy(),
                meta.len()
            ))
        })
        .collect();
    out.sort();
    out
}

/// `python -m pip install` for the file's entries, with the target's manylinux hook (in
/// `hook_dir`) on PYTHONPATH and a JSON report written to `report`.
fn pip_command(
    python: &Path,
    file: &EnvironmentFile,
    opts: &PipOptions,
    hook_dir: &Path,
    report: &Path,
    dry_run: bool,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(python);
    // An interrupted build drops the pip step: pip goes with it (the next build reruns it).
    cmd.kill_on_drop(true);
    cmd.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--no-warn-script-location",
        "--prefer-binary",
    ])
    .args(dry_run.then_some("--dry-run"))
    .arg("--report")
    .arg(report);
    if opts.no_index {
        cmd.arg("--no-index");
    }
    if let Some(url) = &opts.index_url {
        cmd.args(["--index-url", url]);
    }
    for link in &opts.find_links {
        cmd.args(["--find-links", link]);
    }
    // conda runs pip from the environment file's directory, so `-r requirements.txt` and
    // `-e ./src` entries resolve relative to it.
    for e in &file.pip {
        match e.raw.split_once(char::is_whitespace) {
            Some((flag, rest)) if flag.starts_with('-') => {
                cmd.arg(flag).arg(rest.trim());
            }
            _ => {
                cmd.arg(&e.raw);
            }
        }
    }
    cmd.current_dir(file.dir())
        .env("PYTHONPATH", hook_dir)
        .env("PYTHONNOUSERSITE", "1")
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Install the file's `pip:` entries into the prefix for the target.
pub async fn install(
    file: &EnvironmentFile,
    target: &Target,
    prefix: &Path,
    lock_path: &Path,
    opts: &PipOptions,
    progress: &dyn Progress,
) -> Result<PipOutcome, PipError> {
    let python = prefix.join("bin").join("python");
    if !python.exists() {
        return Err(PipError::NoPython { python });
    }
    let fingerprint = request_fingerprint(file, target, opts, prefix);
    // Not `*.json`: every JSON file in conda-meta must be a package record for conda and rattler.
    let in_prefix = prefix.join("conda-meta").join("envship-pip.state");
    let record_out = record_path(lock_path);
    let previous = fs_err::read_to_string(&in_prefix)
        .ok()
        .and_then(|t| serde_json::from_str::<PipRecord>(&t).ok());
    if let Some(prev) = &previous {
        let installed = all_installed(prefix, &prev.packages);
        tracing::debug!(
            "pip record: same request: {}, all installed: {installed}",
            prev.fingerprint == fingerprint
        );
        if prev.fingerprint == fingerprint && installed {
            let prev = prev.clone();
            return Ok(PipOutcome {
                packages: prev.packages,
                reused: true,
                record_path: record_out,
                overridden: prev.overridden,
            });
        }
    }

    progress.start("pip", None, ProgressUnit::Items);
    pip_guard::record_site_dirs(&python, prefix).map_err(|source| PipError::Io {
        action: "ask where pip installs with",
        path: python.clone(),
        source,
    })?;
    let work = tempfile::tempdir().map_err(|source| PipError::Io {
        action: "create a temp dir for",
        path: std::env::temp_dir(),
        source,
    })?;
    let hook = work.path().join("_manylinux.py");
    fs_err::write(&hook, manylinux_hook(target)).map_err(|source| PipError::Io {
        action: "write",
        path: hook.clone(),
        source,
    })?;
    let replacing = conda_replacements(&python, file, target, opts, prefix, work.path()).await?;
    let missing_before = pip_guard::damaged_conda_files(prefix, None);
    let report = work.path().join("report.json");
    let started = SystemTime::now();
    run_pip(&python, file, target, opts, work.path(), &report, false).await?;
    progress.finish("pip");
    let overridden = check_conda_files(prefix, started, &missing_before, &replacing)?;
    let mut packages = read_report(&report)?;
    let mut reused = false;
    if packages.is_empty() {
        // pip found everything already installed: the previous record still describes it.
        if let Some(prev) = previous.filter(|p| p.fingerprint == fingerprint) {
            packages = prev.packages;
            reused = true;
        }
    }
    let record = PipRecord {
        fingerprint,
        target: target.name.clone(),
        packages: packages.clone(),
        overridden: overridden.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&record).map_err(|e| PipError::Io {
        action: "serialize",
        path: in_prefix.clone(),
        source: e.into(),
    })?;
    for path in [&in_prefix, &record_out] {
        crate::lock::write_atomic(path, &bytes).map_err(|e| PipError::Io {
            action: "write",
            path: path.clone(),
            source: std::io::Error::other(e.to_string()),
        })?;
    }
    Ok(PipOutcome {
        packages,
        reused,
        record_path: record_out,
        overridden,
    })
}

/// Run pip (for real, or `--dry-run`), its JSON report to `report`; a failure is an error
/// naming the entry pip could not satisfy when it says which.
async fn run_pip(
    python: &Path,
    file: &EnvironmentFile,
    target: &Target,
    opts: &PipOptions,
    hook_dir: &Path,
    report: &Path,
    dry_run: bool,
) -> Result<(), PipError> {
    let mut cmd = pip_command(python, file, opts, hook_dir, report, dry_run);
    tracing::debug!("running {:?}", cmd.as_std());
    let output = cmd.output().await.map_err(|source| PipError::Spawn {
        python: python.to_path_buf(),
        source,
    })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let tail = last_lines(&format!("{stdout}\n{stderr}"), 12);
    if let Some(req) = unsatisfied_requirement(&stderr) {
        let entry = entry_for(file, &req);
        let glibc = target.glibc.to_string();
        return Err(PipError::Unsatisfiable {
            entry: entry.map(|e| e.raw.clone()).unwrap_or_else(|| req.clone()),
            requirement: req,
            target: target.name.clone(),
            glibc_tag: glibc.replace('.', "_"),
            glibc,
            pip_output: tail,
            src: file.source.clone(),
            at: entry_span(file, entry),
        });
    }
    Err(PipError::Failed {
        file: file.path.display().to_string(),
        status: output.status.to_string(),
        pip_output: tail,
    })
}

fn entry_span(
    file: &EnvironmentFile,
    entry: Option<&envship_spec::env_file::PipDependency>,
) -> SourceSpan {
    entry
        .or(file.pip.first())
        .map(|e| e.location.source_span())
        .unwrap_or_else(|| SourceSpan::new(0.into(), 0))
}

/// What pip's install would replace of conda's, asked with `--dry-run` before anything is
/// touched: an error unless overrides are allowed, then a warning.
async fn conda_replacements(
    python: &Path,
    file: &EnvironmentFile,
    target: &Target,
    opts: &PipOptions,
    prefix: &Path,
    work: &Path,
) -> Result<Vec<pip_guard::Replacement>, PipError> {
    let conda = pip_guard::conda_distributions(prefix);
    if conda.is_empty() {
        return Ok(Vec::new());
    }
    let report = work.join("dry-run.json");
    run_pip(python, file, target, opts, work, &report, true).await?;
    let would_install: Vec<(String, String)> = read_report(&report)?
        .into_iter()
        .map(|p| (p.name, p.version))
        .collect();
    let found = pip_guard::replacements(&conda, &would_install);
    let Some(first) = found.first() else {
        return Ok(found);
    };
    if opts.allow_overrides {
        for r in &found {
            tracing::warn!("{r} (--allow-pip-overrides)");
        }
        return Ok(found);
    }
    let more: String = found[1..].iter().map(|r| format!("\n{r}")).collect();
    Err(PipError::ReplacesConda {
        first: first.to_string(),
        more,
        name: first.name.clone(),
        src: file.source.clone(),
        at: entry_span(file, entry_for(file, &first.name)),
    })
}

/// After pip: a conda file pip deleted or changed is an error, unless it belongs to a package
/// whose distribution pip was allowed to replace; those records are pruned to match the disk.
/// Returns what was overridden, in words.
fn check_conda_files(
    prefix: &Path,
    started: SystemTime,
    missing_before: &[pip_guard::Damaged],
    replacing: &[pip_guard::Replacement],
) -> Result<Vec<String>, PipError> {
    let (allowed, damaged): (Vec<_>, Vec<_>) =
        pip_guard::damaged_conda_files(prefix, Some(started))
            .into_iter()
            .filter(|d| !missing_before.contains(d))
            .partition(|d| replacing.iter().any(|r| r.conda_package == d.package));
    if let Some(first) = damaged.first() {
        // The records stay, so pack refuses this prefix naming the files; the next build
        // starts the prefix again (pip's files cannot be told from conda's any more).
        let packages: std::collections::BTreeSet<&str> =
            damaged.iter().map(|d| d.package.as_str()).collect();
        let packages: Vec<&str> = packages.into_iter().collect();
        pip_guard::mark_damaged(prefix, &packages).map_err(|source| PipError::Io {
            action: "record the damage in",
            path: prefix.join("conda-meta"),
            source,
        })?;
        let more = match damaged.len() - 1 {
            0 => String::new(),
            n => format!(" (and {n} more file(s))"),
        };
        return Err(PipError::DamagedConda {
            package: first.package.clone(),
            path: first.path.clone(),
            what: first.what,
            more,
        });
    }
    pip_guard::prune(prefix, &allowed).map_err(|source| PipError::Io {
        action: "update the conda records in",
        path: prefix.join("conda-meta"),
        source,
    })?;
    Ok(replacing.iter().map(ToString::to_string).collect())
}

fn all_installed(prefix: &Path, packages: &[PipPackage]) -> bool {
    // Wherever the interpreter's scheme put them (Debian's: local/lib/python3.X/dist-packages).
    // Wheels built by older tools keep the project's spelling (`ruamel.yaml-0.17.21.dist-info`),
    // so names are compared normalized.
    let installed = python_dists::installed(prefix, &Default::default());
    packages.iter().all(|p| {
        let name = normalize(&p.name);
        installed
            .iter()
            .any(|d| d.normalized == name && d.version.eq_ignore_ascii_case(&p.version))
    })
}

fn requirement_name(req: &str) -> String {
    let end = req
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'))
        .unwrap_or(req.len());
    normalize(&req[..end])
}

fn entry_for<'a>(
    file: &'a EnvironmentFile,
    requirement: &str,
) -> Option<&'a envship_spec::env_file::PipDependency> {
    let name = requirement_name(requirement);
    file.pip.iter().find(|e| requirement_name(&e.raw) == name)
}

/// The requirement from pip's "No matching distribution found for X" or "Could not find a
/// version that satisfies the requirement X".
fn unsatisfied_requirement(stderr: &str) -> Option<String> {
    for line in stderr.lines() {
        for marker in [
            "No matching distribution found for ",
            "satisfies the requirement ",
        ] {
            if let Some(rest) = line.split(marker).nth(1) {
                let req = rest.split(" (from").next().unwrap_or(rest).trim();
                if !req.is_empty() {
                    return Some(req.to_string());
                }
            }
        }
    }
    None
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installed_names_are_compared_normalized() {
        let prefix = tempfile::tempdir().expect("tempdir");
        let site = prefix.path().join("lib/python3.11/site-packages");
        let dist = site.join("ruamel.yaml-0.17.21.dist-info");
        fs_err::create_dir_all(&dist).expect("mkdir");
        fs_err::write(
            dist.join("METADATA"),
            "Name: ruamel.yaml\nVersion: 0.17.21\n\n",
        )
        .expect("write");
        let package = |name: &str, version: &str| PipPackage {
            name: name.into(),
            version: version.into(),
            url: String::new(),
            wheel: None,
            tags: vec![],
            sha256: None,
            requested: true,
        };
        assert!(all_installed(
            prefix.path(),
            &[package("ruamel.yaml", "0.17.21")]
        ));
        assert!(all_installed(
            prefix.path(),
            &[package("Ruamel_Yaml", "0.17.21")]
        ));
        assert!(!all_installed(
            prefix.path(),
            &[package("ruamel.yaml", "0.18.0")]
        ));
    }

    #[test]
    fn hook_limits_to_target_glibc() {
        let t = Target::builtin("lcls-rhel6").expect("target");
        let hook = manylinux_hook(&t);
        assert!(hook.contains("<= (2, 12)"), "{hook}");
    }

    #[test]
    fn pip_error_names_requirement() {
        let stderr = "ERROR: Could not find a version that satisfies the requirement markupsafe==2.1.5 (from versions: none)\nERROR: No matching distribution found for markupsafe==2.1.5\n";
        assert_eq!(
            unsatisfied_requirement(stderr).as_deref(),
            Some("markupsafe==2.1.5")
        );
        assert_eq!(requirement_name("MarkupSafe==2.1.5"), "markupsafe");
    }
}
