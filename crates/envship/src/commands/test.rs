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
    /// The environment archive (.tar.gz, .tar.zst, .zip or a packed directory).
    #[arg(value_name = "ARCHIVE")]
    archive: PathBuf,
    /// The bash test script. Default: envship.toml's test-script, else run-test.sh beside
    /// environment.yml. A missing script is an error.
    #[arg(long, short = 's', value_name = "FILE")]
    script: Option<PathBuf>,
    /// Where the archive is unpacked inside the sandbox (the production path). Default:
    /// envship.toml's dest-prefix, else /opt/envship/NAME.
    #[arg(long, value_name = "PATH")]
    dest_prefix: Option<PathBuf>,
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
    /// Kill the whole test after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    timeout: u64,
    /// Write a JUnit XML report here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
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

/// The archive's file name without its archive extension.
fn archive_stem(archive: &Path) -> String {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into());
    for ext in [
        ".tar.gz", ".tar.zst", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip",
    ] {
        if let Some(stem) = name.strip_suffix(ext) {
            return stem.to_string();
        }
    }
    name
}

pub fn execute(args: Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    let project = crate::project::Project::load(&args.file.file, &args.target)?;
    let name = project.name();
    let dir = project.dir();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let script = match (&args.script, &project.config.test_script) {
        (Some(s), _) => s.clone(),
        (None, Some(s)) => dir.join(s),
        (None, None) => dir.join("run-test.sh"),
    };
    let dest_prefix = args
        .dest_prefix
        .clone()
        .or_else(|| project.config.dest_prefix.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(format!("/opt/envship/{name}")));
    let isolation = match args.isolation {
        IsolationArg::Namespace => Isolation::Namespace,
        IsolationArg::None => Isolation::None,
        IsolationArg::Container => {
            let image = args.image.clone().ok_or_else(|| {
                miette::miette!(
                    help = "e.g. --image centos:6 (an image replicating the production machines)",
                    "--isolation container needs --image"
                )
            })?;
            let engine = match args.engine {
                EngineArg::Docker => Engine::Docker,
                EngineArg::Podman => Engine::Podman,
            };
            Isolation::Container { engine, image }
        }
    };
    if args.rootfs.is_some() && isolation != Isolation::Namespace {
        miette::bail!("--rootfs works with --isolation namespace only");
    }
    if args.image.is_some() && args.isolation != IsolationArg::Container {
        miette::bail!("--image needs --isolation container");
    }
    let log_path = args.log.clone().unwrap_or_else(|| {
        let parent = args
            .archive
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        parent.join(format!("{}.test.log", archive_stem(&args.archive)))
    });
    let opts = TestOptions {
        archive: args.archive.clone(),
        script,
        project_dir: dir,
        environment_file: Some(args.file.file.clone()),
        environment_name: name.clone(),
        dest_prefix,
        isolation,
        rootfs: args.rootfs.clone().map(RootfsSource::from_path),
        rootfs_cache_dir: None,
        timeout: Duration::from_secs(args.timeout),
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
    if let Some(junit) = &args.junit {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems() {
        assert_eq!(
            archive_stem(Path::new("dist/a-1.0-linux-64.tar.gz")),
            "a-1.0-linux-64"
        );
        assert_eq!(archive_stem(Path::new("a.zip")), "a");
        assert_eq!(archive_stem(Path::new("a.tar.zst")), "a");
    }
}
