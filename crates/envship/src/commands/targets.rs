//! `envship targets`: list the built-in production targets.

use std::{io::Write, process::ExitCode};

use envship_spec::Target;
use miette::IntoDiagnostic;

use crate::GlobalArgs;

/// List built-in targets with their glibc, kernel and system-library baseline.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Machine-readable output.
    #[arg(long)]
    json: bool,
}

pub fn execute(args: Args, _global: &GlobalArgs) -> miette::Result<ExitCode> {
    let mut targets = Vec::new();
    for name in Target::builtin_names() {
        match Target::builtin(name) {
            Ok(t) => targets.push(t),
            Err(e) => tracing::warn!("target {name}: {e}"),
        }
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &targets).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<12} {:<9} {:>6} {:>8}  {:<19} {:<8} {:<8} description",
        "target", "subdir", "glibc", "linux", "system libs", "GLIBCXX", "CXXABI"
    )
    .into_diagnostic()?;
    for t in &targets {
        let ver = |ns: &str| {
            t.max_system_version(ns)
                .map(|v| v.to_string())
                .unwrap_or_default()
        };
        writeln!(
            out,
            "{:<12} {:<9} {:>6} {:>8}  {:<19} {:<8} {:<8} {}",
            t.name,
            t.subdir,
            t.glibc.to_string(),
            t.linux.to_string(),
            t.system.policy,
            ver("GLIBCXX"),
            ver("CXXABI"),
            t.description
        )
        .into_diagnostic()?;
    }
    Ok(ExitCode::SUCCESS)
}
