//! `envship matrix`: a workspace's (member, target) pairs as a GitHub Actions matrix.

use std::{io::Write, path::PathBuf, process::ExitCode};

use envship_ship::fleet::{self, Chunk, MatrixOptions};
use envship_spec::workspace::Workspace;
use miette::IntoDiagnostic;

use crate::GlobalArgs;

/// Print the workspace's (member, target) pairs as a GitHub Actions matrix
/// (`{"include": [{"member": …, "target": …}, …]}` with --json), for `strategy.matrix:
/// ${{ fromJSON(…) }}`. GitHub takes at most 256 jobs per matrix: a bigger fleet is split with
/// --chunk N/M, and --chunks lists the chunks to fan out.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A directory of the workspace (its root, or any directory below it).
    #[arg(default_value = ".", value_name = "DIR")]
    dir: PathBuf,
    /// Only members whose files changed since this git ref (a change to the workspace's own
    /// envship.toml counts for every member).
    #[arg(long, value_name = "GIT_REF")]
    changed_since: Option<String>,
    #[command(flatten)]
    filter: crate::fleet_args::PairFilterArgs,
    /// Print chunk N of M (an even split).
    #[arg(long, value_name = "N/M", conflicts_with = "chunks")]
    chunk: Option<Chunk>,
    /// Print the chunks needed to stay within 256 jobs each, as a JSON list (`["1/2","2/2"]`).
    #[arg(long)]
    chunks: bool,
    /// Print the matrix as JSON.
    #[arg(long)]
    json: bool,
}

pub fn execute(args: Args, _global: &GlobalArgs) -> miette::Result<ExitCode> {
    let ws = Workspace::discover(&args.dir)?;
    let opts = MatrixOptions {
        members: args.filter.members.clone(),
        targets: args.filter.targets.clone(),
        changed_since: args.changed_since.clone(),
    };
    let pairs = fleet::plan(&ws, &opts)?;
    let mut out = std::io::stdout().lock();
    if args.chunks {
        let n = fleet::chunks_needed(pairs.len());
        let list: Vec<String> = (1..=n).map(|i| format!("{i}/{n}")).collect();
        serde_json::to_writer(&mut out, &list).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
        return Ok(ExitCode::SUCCESS);
    }
    let matrix = fleet::matrix(&pairs, args.chunk)?;
    if args.json {
        serde_json::to_writer(&mut out, &matrix).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(out, "{:<32} target", "member").into_diagnostic()?;
    for p in &matrix.include {
        writeln!(out, "{:<32} {}", p.member, p.target).into_diagnostic()?;
    }
    writeln!(out, "{} pairs", matrix.include.len()).into_diagnostic()?;
    Ok(ExitCode::SUCCESS)
}
