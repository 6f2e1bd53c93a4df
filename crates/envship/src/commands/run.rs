//! `envship run -- CMD...`: run a command with the environment activated.

use std::{path::PathBuf, process::ExitCode};

use miette::IntoDiagnostic;

use crate::{project::FileArgs, GlobalArgs};

/// Run a command inside the activated environment.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    file: FileArgs,
    /// The environment (default: the project's build prefix).
    #[arg(long, short = 'p', value_name = "DIR")]
    prefix: Option<PathBuf>,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

/// The prefix a command acts on: `--prefix`, else the project's build prefix.
pub fn resolve_prefix(file: &FileArgs, prefix: Option<PathBuf>) -> miette::Result<PathBuf> {
    match prefix {
        Some(p) => std::path::absolute(&p).into_diagnostic(),
        None => {
            let project = file.load(&Default::default())?;
            Ok(project.build_prefix(None))
        }
    }
}

pub fn execute(args: Args, _global: &GlobalArgs) -> miette::Result<ExitCode> {
    let prefix = resolve_prefix(&args.file, args.prefix)?;
    let env = envship_env::activate::activated_environment(&prefix)?;
    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| miette::miette!("no command given"))?;
    let status = std::process::Command::new(program)
        .args(rest)
        .env_clear()
        .envs(env)
        .status()
        .map_err(|e| {
            miette::miette!(code = "envship::run::spawn", "cannot run `{program}`: {e}")
        })?;
    let code = status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + status.signal().unwrap_or(0)
    });
    Ok(ExitCode::from(u8::try_from(code).into_diagnostic()?))
}
