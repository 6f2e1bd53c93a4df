//! The envship command line: sets up logging, progress and error reporting, then dispatches to
//! one module per subcommand under `commands/`. Everything else lives in the library crates.
// The binary is where output to the terminal belongs; the libraries never print.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod commands;
mod progress;
mod project;
mod target_args;

use std::process::ExitCode;

use clap::Parser;

/// Exit code for user errors (bad input, failed gates).
const EXIT_USER: u8 = 1;
/// Exit code for usage errors.
const EXIT_USAGE: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "envship",
    version,
    about = "Turn environment.yml + a test script into a tested, relocatable archive for a production target"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: commands::Command,
}

/// Options every subcommand takes.
#[derive(clap::Args, Debug, Clone)]
pub struct GlobalArgs {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bars and no informational output.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(&cli.global);
    miette::set_hook(Box::new(|_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .terminal_links(false)
                .context_lines(2)
                .build(),
        )
    }))
    .ok();
    match commands::execute(cli.command, &cli.global) {
        Ok(code) => code,
        Err(report) => {
            if is_broken_pipe(&report) {
                return ExitCode::SUCCESS;
            }
            eprintln!("{report:?}");
            ExitCode::from(EXIT_USER)
        }
    }
}

fn init_logging(global: &GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn,envship=info",
        (false, 1) => "info,envship=debug,envship_env=debug",
        _ => "debug,envship=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(global.verbose > 0)
        .without_time()
        .init();
}

fn is_broken_pipe(report: &miette::Report) -> bool {
    report.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
