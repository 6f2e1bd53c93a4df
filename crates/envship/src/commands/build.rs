//! `envship build`: install envship.lock (locking first when needed) into the build prefix,
//! then the `pip:` section for the target, then `variables:`.

use std::{io::Write, path::PathBuf, process::ExitCode, sync::Arc};

use envship_env::{
    build,
    link_scripts::{LinkScripts, ScriptRun},
    pip::PipOptions,
    BuildRequest,
};
use miette::IntoDiagnostic;

use crate::{
    commands::lock::LockArgs,
    progress::Bars,
    project::{FileArgs, Project},
    target_args::TargetArgs,
    GlobalArgs,
};

/// Where pip looks for the `pip:` section's packages.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PipArgs {
    /// Directory or URL of wheels for the `pip:` section (repeatable).
    #[arg(long, value_name = "DIR|URL")]
    pub find_links: Vec<String>,
    /// pip uses only --find-links, never an index.
    #[arg(long)]
    pub no_index: bool,
    /// PyPI mirror for the `pip:` section.
    #[arg(long, value_name = "URL")]
    pub index_url: Option<String>,
    /// Let pip replace a distribution a conda package installed, as conda does (a warning),
    /// instead of refusing the build.
    #[arg(long)]
    pub allow_pip_overrides: bool,
}

/// How the build installs: pip's sources and the packages' link scripts (build and ship).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct InstallArgs {
    #[command(flatten)]
    pub pip: PipArgs,
    /// Run packages' post-link and pre-unlink scripts (`run`, as conda does) or not (`skip`,
    /// each a warning). Default: envship.toml's `link-scripts`, else `run`.
    #[arg(long, value_enum, value_name = "WHEN")]
    pub link_scripts: Option<LinkScriptsArg>,
}

/// `--link-scripts`.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum LinkScriptsArg {
    /// Run them.
    Run,
    /// Skip them.
    Skip,
}

impl InstallArgs {
    /// The link-script mode for `project`.
    pub fn link_scripts(&self, project: &Project) -> LinkScripts {
        project.link_scripts(self.link_scripts.map(|a| match a {
            LinkScriptsArg::Run => LinkScripts::Run,
            LinkScriptsArg::Skip => LinkScripts::Skip,
        }))
    }
}

impl PipArgs {
    /// The library options; relative --find-links resolve against the current directory.
    pub fn options(&self) -> PipOptions {
        PipOptions {
            find_links: self
                .find_links
                .iter()
                .map(|l| {
                    if l.contains("://") {
                        l.clone()
                    } else {
                        std::path::absolute(l)
                            .map(|p| p.display().to_string())
                            .unwrap_or_else(|_| l.clone())
                    }
                })
                .collect(),
            no_index: self.no_index,
            index_url: self.index_url.clone(),
            allow_overrides: self.allow_pip_overrides,
        }
    }
}

/// Install the locked environment into a build prefix.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    file: FileArgs,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    lock: LockArgs,
    #[command(flatten)]
    install: InstallArgs,
    /// The prefix to build (default: .envship/build/NAME next to the environment file).
    #[arg(long, short = 'p', value_name = "DIR")]
    prefix: Option<PathBuf>,
    /// Machine-readable summary.
    #[arg(long)]
    json: bool,
}

pub fn execute(args: Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    let project = args.file.load(&args.target.request())?;
    let request = BuildRequest {
        prefix: project.build_prefix(args.prefix.clone()),
        lock: args.lock.request(&project, None)?,
        pip: args.install.pip.options(),
        link_scripts: args.install.link_scripts(&project),
    };
    let bars = Arc::new(Bars::new(global.quiet));
    let outcome = build(&project.env_file, &project.target, &request, bars)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &outcome).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
    } else if !global.quiet {
        print_link_scripts(&mut out, &outcome.link_scripts)?;
        if let Some(pip) = &outcome.pip {
            for p in &pip.packages {
                writeln!(
                    out,
                    "  pip {:<24} {:<12} {}",
                    p.name,
                    p.version,
                    p.wheel.as_deref().unwrap_or(&p.url)
                )
                .into_diagnostic()?;
            }
            for line in &pip.overridden {
                writeln!(out, "  warning: {line} (--allow-pip-overrides)").into_diagnostic()?;
            }
        }
        writeln!(
            out,
            "{} {} ({} packages; {} installed, {} removed{}) in {:.2}s",
            if outcome.noop { "up to date:" } else { "built" },
            outcome.prefix.display(),
            outcome.packages,
            outcome.installed,
            outcome.removed,
            outcome
                .pip
                .as_ref()
                .map(|p| format!(", {} from pip", p.packages.len()))
                .unwrap_or_default(),
            outcome.seconds
        )
        .into_diagnostic()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// What the packages' link scripts said (`.messages.txt`), as conda shows it after a
/// transaction, and which scripts were skipped.
pub fn print_link_scripts(out: &mut dyn Write, runs: &[ScriptRun]) -> miette::Result<()> {
    for run in runs {
        if !run.ran {
            writeln!(
                out,
                "  skipped the {} script of {}",
                run.kind.as_str(),
                run.package
            )
            .into_diagnostic()?;
        }
        if let Some(message) = &run.message {
            writeln!(
                out,
                "  message from {} ({}):",
                run.package,
                run.kind.as_str()
            )
            .into_diagnostic()?;
            for line in message.lines() {
                writeln!(out, "    {line}").into_diagnostic()?;
            }
        }
    }
    Ok(())
}
