//! The envship command line: sets up logging, progress and error reporting, then dispatches to
//! one module per subcommand under `commands/`. Everything else lives in the library crates.
//!
//! Owns: flags, rendering (tables, `--json`, progress bars, colors), exit codes. Must not know
//! how a stage works: a subcommand builds a library options struct, calls the library and
//! renders what comes back (`ship` calls `envship_ship::ship`).
// The binary is where output to the terminal belongs; the libraries never print.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod block_cache_args;
mod commands;
mod exit;
mod fleet_args;
mod interrupt;
mod progress;
mod project;
mod target_args;
mod trust_args;

use std::{io::IsTerminal, process::ExitCode};

use clap::Parser;

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
    /// Colors in logs and messages: `auto` uses them on a terminal unless NO_COLOR is set.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// When to use colors.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    /// On a terminal, unless NO_COLOR is set (to anything but the empty string).
    Auto,
    /// Always, even into a pipe or file.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether to color what goes to a stream that is (or is not) a terminal.
    fn enabled(self, is_terminal: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        }
    }
}

fn main() -> ExitCode {
    // First of all, so that the window in which a signal kills by default is the shortest.
    interrupt::install();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::INPUT } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let stderr_color = cli.global.color.enabled(std::io::stderr().is_terminal());
    console::set_colors_enabled(cli.global.color.enabled(std::io::stdout().is_terminal()));
    console::set_colors_enabled_stderr(stderr_color);
    init_logging(&cli.global, stderr_color);
    miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .terminal_links(false)
                .color(stderr_color)
                .context_lines(2)
                .build(),
        )
    }))
    .ok();
    let global = cli.global.clone();
    let outcome = std::panic::catch_unwind(move || commands::execute(cli.command, &global));
    match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(report)) => {
            if let Some(sig) = interrupt::received() {
                // What failed after a stop request failed because of it; the stage's own
                // message (often a side effect of the stop) only at debug level.
                tracing::debug!("{report:?}");
                eprintln!("envship: interrupted by {}: {report}", interrupt::name(sig));
                return ExitCode::from(interrupt::exit_code(sig));
            }
            if is_broken_pipe(&report) {
                return ExitCode::SUCCESS;
            }
            eprintln!("{report:?}");
            if exit::disk_full(&report) {
                eprintln!(
                    "envship: the disk is full (no space left on device) where envship wrote the \
                     file named above: free space there and run the command again"
                );
            }
            ExitCode::from(exit::code_for(&report))
        }
        // The panic hook already printed the message and location.
        Err(_) => {
            eprintln!("envship: internal error (this is a bug; please report it)");
            ExitCode::from(exit::INTERNAL)
        }
    }
}

fn init_logging(global: &GlobalArgs, color: bool) {
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
        .with_ansi(color)
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
