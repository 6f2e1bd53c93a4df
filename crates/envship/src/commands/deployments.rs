//! `envship deployments`: list what ROOT/.envship/deployments.jsonl recorded.

use std::{io::Write, path::PathBuf, process::ExitCode};

use envship_deploy::{current_version, record};
use miette::IntoDiagnostic;

use crate::GlobalArgs;

/// List the deployments and rollbacks recorded under ROOT, oldest first.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The deployment root.
    #[arg(long, env = "ENVSHIP_DEPLOY_ROOT", value_name = "ROOT")]
    root: PathBuf,
    /// Only this environment.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Only the last N records.
    #[arg(long, value_name = "N")]
    last: Option<usize>,
    /// Print the records as a JSON array.
    #[arg(long)]
    json: bool,
}

pub fn execute(args: Args, _global: &GlobalArgs) -> miette::Result<ExitCode> {
    let mut records: Vec<_> = record::read(&args.root)?
        .into_iter()
        .filter(|r| args.name.as_ref().is_none_or(|n| *n == r.name))
        .collect();
    if let Some(n) = args.last {
        records = records.split_off(records.len().saturating_sub(n));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &records).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<20} {:<8} {:<16} {:<12} {:<12} {:<12} {:<20} {:<10} sha256",
        "time (UTC)", "action", "name", "version", "previous", "result", "user@host", "ticket"
    )
    .into_diagnostic()?;
    for r in &records {
        writeln!(
            out,
            "{:<20} {:<8} {:<16} {:<12} {:<12} {:<12} {:<20} {:<10} {}",
            r.time_string(),
            r.action,
            r.name,
            r.version,
            r.previous.as_deref().unwrap_or("-"),
            r.result,
            format!("{}@{}", r.user, r.host),
            r.ticket.as_deref().unwrap_or("-"),
            r.sha256
                .as_deref()
                .map(|s| &s[..s.len().min(12)])
                .unwrap_or("-"),
        )
        .into_diagnostic()?;
        if let Some(t) = r.trust_summary() {
            writeln!(out, "{:<20} trusted: {t}", "").into_diagnostic()?;
        }
    }
    let mut names: Vec<&str> = records.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for n in names {
        let cur = current_version(&args.root, n)?;
        writeln!(out, "{n}: current = {}", cur.as_deref().unwrap_or("(none)")).into_diagnostic()?;
    }
    Ok(ExitCode::SUCCESS)
}
