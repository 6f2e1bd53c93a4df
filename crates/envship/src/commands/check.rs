//! `envship check`: parse and validate environment.yml, envship.toml and the target without
//! solving or touching the network, and print the normalized request.

use std::{io::Write, process::ExitCode};

use envship_env::channels;
use miette::IntoDiagnostic;
use serde::Serialize;

use crate::{project::FileArgs, target_args::TargetArgs, GlobalArgs};

/// Validate the project without solving.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    file: FileArgs,
    #[command(flatten)]
    target: TargetArgs,
    /// Base URL for channel names (a mirror of conda.anaconda.org).
    #[arg(long, value_name = "URL")]
    channel_alias: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Request {
    file: String,
    name: String,
    target: envship_spec::Target,
    virtual_packages: Vec<String>,
    channels: Vec<String>,
    dependencies: Vec<String>,
    pip: Vec<String>,
    variables: indexmap::IndexMap<String, String>,
    config: Option<String>,
    warnings: Vec<String>,
}

pub fn execute(args: Args, _global: &GlobalArgs) -> miette::Result<ExitCode> {
    let project = args.file.load(&args.target.request())?;
    let alias = args
        .channel_alias
        .as_deref()
        .or(project.config.channel_alias.as_deref());
    let config = channels::channel_config(&project.dir(), alias)?;
    let chans = channels::resolve_channels(&project.env_file, &config)?;
    let f = &project.env_file;
    let request = Request {
        file: f.path.display().to_string(),
        name: project.name(),
        virtual_packages: project
            .target
            .virtual_packages()
            .iter()
            .map(|v| v.to_string())
            .collect(),
        target: project.target.clone(),
        channels: chans
            .iter()
            .map(|c| c.base_url.as_str().trim_end_matches('/').to_string())
            .collect(),
        dependencies: f.dependencies.iter().map(|d| d.spec.to_string()).collect(),
        pip: f.pip.iter().map(|p| p.raw.clone()).collect(),
        variables: f.variables.clone(),
        config: project
            .config_path
            .as_ref()
            .map(|p| p.display().to_string()),
        warnings: f
            .warnings
            .iter()
            .chain(&envship_spec::pip_entries::refused_pip_entries(&f.pip))
            .map(|w| match &w.location {
                Some(l) => format!("line {}: {}", l.line, w.message),
                None => w.message.clone(),
            })
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &request).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
        return Ok(ExitCode::SUCCESS);
    }
    let t = &request.target;
    writeln!(out, "file:      {}", request.file).into_diagnostic()?;
    writeln!(out, "name:      {}", request.name).into_diagnostic()?;
    writeln!(out, "target:    {t}").into_diagnostic()?;
    writeln!(out, "virtual:   {}", request.virtual_packages.join(", ")).into_diagnostic()?;
    writeln!(out, "channels:").into_diagnostic()?;
    for c in &request.channels {
        writeln!(out, "  - {c}").into_diagnostic()?;
    }
    writeln!(out, "dependencies:").into_diagnostic()?;
    for d in &request.dependencies {
        writeln!(out, "  - {d}").into_diagnostic()?;
    }
    if !request.pip.is_empty() {
        writeln!(out, "pip:").into_diagnostic()?;
        for p in &request.pip {
            writeln!(out, "  - {p}").into_diagnostic()?;
        }
    }
    if !request.variables.is_empty() {
        writeln!(out, "variables:").into_diagnostic()?;
        for (k, v) in &request.variables {
            writeln!(out, "  {k}: {v}").into_diagnostic()?;
        }
    }
    for w in &request.warnings {
        writeln!(out, "warning: {w}").into_diagnostic()?;
    }
    writeln!(out, "ok").into_diagnostic()?;
    Ok(ExitCode::SUCCESS)
}
