//! `envship test`: run the project's test script against the archive, unpacked at the
//! destination prefix inside a sandbox.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use envship_sandbox::{Engine, Isolation, RootfsSource, TestOptions};
use miette::IntoDiagnostic;

use crate::{progress::Bars, project::FileArgs, target_args::TargetArgs, GlobalArgs};

/// Unpack an environment archive at its destination prefix in a sandbox and run the project's
/// test script there (environment active, cwd /tmp/project).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The environment archive (.tar.gz, .tar.zst, .zip or a packed directory). Default: the
    /// project's newest archive (NAME-*-SUBDIR.*) in --out-dir.
    #[arg(value_name = "ARCHIVE")]
    archive: Option<PathBuf>,
    /// Where to look for the newest archive when ARCHIVE is not given. Default: dist/ beside
    /// environment.yml.
    #[arg(long, short = 'o', value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// The bash test script. Default: envship.toml's test-script, else run-test.sh beside
    /// environment.yml. A missing script is an error.
    #[arg(long, short = 's', value_name = "FILE")]
    script: Option<PathBuf>,
    /// Where the archive is unpacked inside the sandbox (the production path). Default:
    /// envship.toml's dest-prefix, else /opt/envship/NAME.
    #[arg(long, value_name = "PATH")]
    dest_prefix: Option<String>,
    #[command(flatten)]
    run: RunArgs,
    /// Save the test output here. Default: beside the archive, ARCHIVE-NAME.test.log.
    #[arg(long, value_name = "FILE")]
    log: Option<PathBuf>,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    file: FileArgs,
    #[command(flatten)]
    target: TargetArgs,
}

/// How the test runs; `test` and `ship` share these flags.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub isolation: IsolationArgs,
    /// Kill the whole test after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    pub timeout: u64,
    /// Write a JUnit XML report of the test here.
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
}

/// How the test is isolated.
#[derive(clap::Args, Debug, Clone)]
pub struct IsolationArgs {
    /// How to isolate the test.
    #[arg(long, value_enum, default_value_t = IsolationArg::Namespace)]
    isolation: IsolationArg,
    /// Run over this production userland instead of the host's: a directory, or a
    /// `docker save` / OCI image tarball (unpacked once into ~/.cache/envship/rootfs).
    #[arg(long, value_name = "DIR|TARBALL")]
    rootfs: Option<PathBuf>,
    /// Container image (with --isolation container).
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// Container engine (with --isolation container).
    #[arg(long, value_enum, default_value_t = EngineArg::Docker)]
    engine: EngineArg,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum IsolationArg {
    /// Linux user + mount + PID + network namespaces (no root needed).
    Namespace,
    /// docker/podman run with --image.
    Container,
    /// No isolation: unpack at the destination prefix on this machine.
    None,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum EngineArg {
    Docker,
    Podman,
}

impl IsolationArgs {
    /// The sandbox's isolation and rootfs, with the flag combinations that make no sense refused.
    pub fn resolve(&self) -> miette::Result<(Isolation, Option<RootfsSource>)> {
        let isolation = match self.isolation {
            IsolationArg::Namespace => Isolation::Namespace,
            IsolationArg::None => Isolation::None,
            IsolationArg::Container => {
                let image = self.image.clone().ok_or_else(|| {
                    miette::miette!(
                        help =
                            "e.g. --image centos:6 (an image replicating the production machines)",
                        "--isolation container needs --image"
                    )
                })?;
                let engine = match self.engine {
                    EngineArg::Docker => Engine::Docker,
                    EngineArg::Podman => Engine::Podman,
                };
                Isolation::Container { engine, image }
            }
        };
        if self.rootfs.is_some() && isolation != Isolation::Namespace {
            miette::bail!("--rootfs works with --isolation namespace only");
        }
        if self.image.is_some() && self.isolation != IsolationArg::Container {
            miette::bail!("--image needs --isolation container");
        }
        Ok((isolation, self.rootfs.clone().map(RootfsSource::from_path)))
    }
}

pub fn execute(args: Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    let project = args.file.load(&args.target.request())?;
    let archive = match &args.archive {
        Some(archive) => archive.clone(),
        None => {
            let newest = project.newest_archive(args.out_dir.as_deref())?;
            // Said even with --quiet: which archive was tested is part of the result.
            eprintln!("testing the newest archive: {}", newest.display());
            newest
        }
    };
    check_archive_target(&archive, args.target.target.as_deref())?;
    let name = project.name();
    let dir = project.dir();
    let script = project.test_script(args.script.as_deref());
    let dest_prefix = PathBuf::from(project.dest_prefix(args.dest_prefix.as_deref()));
    let (isolation, rootfs) = args.run.isolation.resolve()?;
    let log_path = args
        .log
        .clone()
        .unwrap_or_else(|| envship_pack::Sidecar::TestLog.path_for(&archive));
    let opts = TestOptions {
        archive: archive.clone(),
        script,
        project_dir: dir,
        environment_file: Some(args.file.path()),
        environment_name: name.clone(),
        dest_prefix,
        isolation,
        rootfs,
        rootfs_cache_dir: None,
        timeout: Duration::from_secs(args.run.timeout),
        log_path,
        extra_env: vec![],
    };
    if !global.quiet {
        tracing::info!(
            "testing {} at {} ({})",
            opts.archive.display(),
            opts.dest_prefix.display(),
            match (&opts.isolation, &opts.rootfs) {
                (Isolation::Namespace, Some(r)) => format!("namespace over {}", r.path().display()),
                (Isolation::Namespace, None) => "namespace".into(),
                (Isolation::Container { engine, image }, _) =>
                    format!("{} {image}", engine.program()),
                (Isolation::None, _) => "no isolation".into(),
            }
        );
    }
    let bars = Bars::new(global.quiet);
    let quiet = global.quiet;
    let mut stderr = std::io::stderr();
    let prefix = console::style("  test│").dim().to_string();
    let outcome = envship_sandbox::run_test_streaming(&opts, &bars, &mut |line| {
        if !quiet {
            let _ = writeln!(stderr, "{prefix} {line}");
        }
    })?;
    if let Some(junit) = &args.run.junit {
        let log = std::fs::read_to_string(&outcome.log_path).unwrap_or_default();
        envship_sandbox::write_junit(junit, &name, &[(outcome.clone(), log)])?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &outcome).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
    } else {
        let mark = if outcome.passed {
            console::style("✔ test").green().bold()
        } else {
            console::style("✘ test").red().bold()
        };
        writeln!(
            out,
            "{mark} {}: {} (log: {})",
            opts.script.display(),
            outcome.summary(),
            outcome.log_path.display()
        )
        .into_diagnostic()?;
    }
    Ok(if outcome.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// An explicit `--target` must agree with the target the archive was packed for (its manifest
/// sidecar says), as pack and audit insist for a prefix.
fn check_archive_target(archive: &Path, requested: Option<&str>) -> miette::Result<()> {
    let Some(requested) = requested else {
        return Ok(());
    };
    let Some(manifest_path) =
        envship_publish::artifacts::find_sidecar(archive, envship_pack::Sidecar::Manifest.suffix())
    else {
        return Ok(());
    };
    let manifest = envship_pack::Manifest::read(&manifest_path)?;
    let packed_for = envship_spec::target::profile_of(&manifest.target.name);
    if packed_for != requested {
        miette::bail!(
            code = "envship::test::target_mismatch",
            help = format!(
                "drop --target (and ENVSHIP_TARGET) to test the archive as packed, or rebuild and pack it with --target {requested}"
            ),
            "{} was packed for target `{packed_for}` ({}), not `{requested}`",
            archive.display(),
            manifest_path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(isolation: IsolationArg, rootfs: bool, image: bool) -> IsolationArgs {
        IsolationArgs {
            isolation,
            rootfs: rootfs.then(|| PathBuf::from("/srv/rootfs")),
            image: image.then(|| "centos:6".to_string()),
            engine: EngineArg::Podman,
        }
    }

    #[test]
    fn isolation_flags_resolve_or_are_refused() {
        let (iso, rootfs) = flags(IsolationArg::Namespace, true, false)
            .resolve()
            .expect("namespace over a rootfs");
        assert_eq!(iso, Isolation::Namespace);
        assert!(rootfs.is_some());
        let (iso, _) = flags(IsolationArg::Container, false, true)
            .resolve()
            .expect("container");
        assert_eq!(
            iso,
            Isolation::Container {
                engine: Engine::Podman,
                image: "centos:6".into()
            }
        );
        for (bad, why) in [
            (
                flags(IsolationArg::Container, false, false),
                "needs --image",
            ),
            (flags(IsolationArg::None, true, false), "namespace only"),
            (
                flags(IsolationArg::Namespace, false, true),
                "needs --isolation container",
            ),
        ] {
            let err = bad.resolve().expect_err(why).to_string();
            assert!(err.contains(why), "{err}");
        }
    }
}
