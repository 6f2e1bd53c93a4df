//! `envship shell-hook`: print the activation script, for `eval "$(envship shell-hook)"`.

use std::{io::Write, path::PathBuf, process::ExitCode};

use miette::IntoDiagnostic;

use crate::{commands::run::resolve_prefix, project::FileArgs, GlobalArgs};

/// Print the activation script of an environment.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    file: FileArgs,
    /// The environment (default: the project's build prefix).
    #[arg(long, short = 'p', value_name = "DIR")]
    prefix: Option<PathBuf>,
    /// Shell dialect: bash, zsh or fish.
    #[arg(long, short = 's', default_value = "bash")]
    shell: String,
}

pub fn execute(args: Args, _global: &GlobalArgs) -> miette::Result<ExitCode> {
    let prefix = resolve_prefix(&args.file, args.prefix)?;
    let prefix = std::path::absolute(&prefix).into_diagnostic()?;
    let script = envship_env::activate::activation_script(&prefix, &args.shell)?;
    let mut out = std::io::stdout().lock();
    out.write_all(script.as_bytes()).into_diagnostic()?;
    Ok(ExitCode::SUCCESS)
}
