//! `envship lock`: solve environment.yml for the target and write envship.lock.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use envship_env::{lock, LockRequest};
use miette::IntoDiagnostic;

use crate::{
    progress::Bars,
    project::{FileArgs, Project},
    target_args::TargetArgs,
    GlobalArgs,
};

/// Options of the lock stage that `build` and `ship` share.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct LockArgs {
    /// Base URL for channel names (a mirror of conda.anaconda.org).
    #[arg(long, value_name = "URL")]
    pub channel_alias: Option<String>,
    /// Use only cached and local (file://) repodata.
    #[arg(long)]
    pub offline: bool,
    /// Solve as of this date (YYYY-MM-DD or RFC 3339): builds uploaded later are ignored.
    #[arg(long, value_name = "DATE")]
    pub exclude_newer: Option<String>,
    /// Package and repodata cache (default: rattler's cache, e.g. ~/.cache/rattler/cache).
    #[arg(long, value_name = "DIR", env = "ENVSHIP_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Lock file to read and write (default: envship.lock next to the environment file;
    /// envship-TARGET.lock when envship.toml lists several targets).
    #[arg(long, value_name = "FILE")]
    pub lock_file: Option<PathBuf>,
    /// Solve again even if the lock is up to date.
    #[arg(long)]
    pub update: bool,
}

impl LockArgs {
    /// The library request, with envship.toml filling in what the command line leaves out.
    pub fn request(
        &self,
        project: &Project,
        explicit: Option<PathBuf>,
    ) -> miette::Result<LockRequest> {
        let exclude_newer = self
            .exclude_newer
            .as_deref()
            .or(project.config.exclude_newer.as_deref())
            .map(envship_env::lock::parse_exclude_newer)
            .transpose()
            .map_err(|e| {
                miette::miette!(
                    code = "envship::lock::exclude_newer",
                    "invalid --exclude-newer: {e}"
                )
            })?;
        Ok(LockRequest {
            channel_alias: self
                .channel_alias
                .clone()
                .or(project.config.channel_alias.clone()),
            offline: self.offline,
            exclude_newer,
            cache_dir: self.cache_dir.clone(),
            lock_path: Some(
                self.lock_file
                    .clone()
                    .unwrap_or_else(|| project.lock_path()),
            ),
            update: self.update,
            explicit,
        })
    }
}

/// Solve the environment for the target and write envship.lock.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Import this lock instead of solving (no environment.yml needed): a conda-lock v1 file
    /// (conda-lock.yml), a pixi.lock or an @EXPLICIT file. envship.lock is written beside FILE of
    /// -f (or at --lock-file); build and ship then install exactly its packages.
    #[arg(long, value_name = "LOCKFILE", conflicts_with_all = ["update", "exclude_newer", "explicit"])]
    from: Option<PathBuf>,
    /// The environment of a pixi.lock to import (with --from).
    #[arg(
        long,
        value_name = "NAME",
        requires = "from",
        default_value = "default"
    )]
    environment: String,
    #[command(flatten)]
    file: FileArgs,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    lock: LockArgs,
    /// Also write an @EXPLICIT spec file (conda create --file) here.
    #[arg(long, value_name = "FILE")]
    explicit: Option<PathBuf>,
    /// Machine-readable summary.
    #[arg(long)]
    json: bool,
}

pub fn execute(args: Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    if let Some(from) = &args.from {
        return import(&args, from, global);
    }
    let project = args.file.load(&args.target.request())?;
    let request = args.lock.request(&project, args.explicit.clone())?;
    let bars = Bars::new(global.quiet);
    let outcome = lock(&project.env_file, &project.target, &request, &bars)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &outcome).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
        return Ok(ExitCode::SUCCESS);
    }
    if !global.quiet {
        write_packages(&mut out, &outcome.packages)?;
        writeln!(
            out,
            "{} {} packages for {} in {} ({:.2}s)",
            if outcome.reused {
                "up to date:"
            } else {
                "locked"
            },
            outcome.packages.len(),
            outcome.target,
            outcome.lock_path.display(),
            outcome.seconds
        )
        .into_diagnostic()?;
        if let Some(p) = &outcome.explicit_path {
            writeln!(out, "explicit spec file: {}", p.display()).into_diagnostic()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `lock --from`: import another tool's lock as envship.lock for the target.
fn import(args: &Args, from: &Path, global: &GlobalArgs) -> miette::Result<ExitCode> {
    let file = args.file.path();
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let target = envship_ship::target_in_dir(dir, &args.target.request())?;
    let request = envship_env::lock::ImportRequest {
        from: from.to_path_buf(),
        environment: Some(args.environment.clone()),
        lock_path: args
            .lock
            .lock_file
            .clone()
            .unwrap_or_else(|| dir.join(envship_env::lock::LOCK_FILE)),
        cache_dir: args.lock.cache_dir.clone(),
    };
    let outcome = envship_env::lock::import_lock(&request, &target)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &outcome).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
        return Ok(ExitCode::SUCCESS);
    }
    if !global.quiet {
        write_packages(&mut out, &outcome.packages)?;
        for p in &outcome.pip {
            writeln!(out, "  {p:<28} (pip)").into_diagnostic()?;
        }
        writeln!(
            out,
            "imported {} packages{} for {} from {} into {} ({:.2}s)",
            outcome.packages.len(),
            if outcome.pip.is_empty() {
                String::new()
            } else {
                format!(" and {} pip packages", outcome.pip.len())
            },
            outcome.target,
            outcome.from.display(),
            outcome.lock_path.display(),
            outcome.seconds
        )
        .into_diagnostic()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per locked package: name, version, build, channel.
fn write_packages(
    out: &mut impl Write,
    packages: &[envship_env::lock::LockedPackageSummary],
) -> miette::Result<()> {
    for p in packages {
        writeln!(
            out,
            "  {:<28} {:<16} {:<24} {}",
            p.name, p.version, p.build, p.channel
        )
        .into_diagnostic()?;
    }
    Ok(())
}
