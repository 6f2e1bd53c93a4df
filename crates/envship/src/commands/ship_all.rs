//! `envship ship --all`: every (member, target) pair of a workspace shipped, up to `-j N` at a
//! time, with one summary table (or `--json`). The fan-out is [`envship_ship::fleet::run_pairs`];
//! each pair is an ordinary `ship` run of its member for its target, with the other flags as
//! given.

use std::{io::Write, panic::AssertUnwindSafe, process::ExitCode, time::Instant};

use envship_ship::{
    fleet::{self, MatrixOptions},
    Project, ShipReport, TargetRequest,
};
use envship_spec::workspace::{Pair, Workspace};
use miette::IntoDiagnostic;

use super::ship::{figure, options, summary_json, Args};
use crate::{fleet_args::PairFilterArgs, progress::PairReporter, GlobalArgs};

/// The flags of `ship --all`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct FleetArgs {
    /// Ship every (member, target) pair of the workspace DIR is in (`envship matrix` lists
    /// them): a summary table at the end, exit 1 if any pair was not shipped.
    #[arg(long, conflicts_with_all = ["file", "script", "junit"])]
    pub all: bool,
    /// With --all: how many pairs run at once [default: the number of cores].
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub filter: PairFilterArgs,
}

/// How one pair ended.
enum Outcome {
    /// Every gate passed.
    Shipped(Box<ShipReport>),
    /// A gate (audit, test) failed.
    GateFailed(Box<ShipReport>),
    /// The run stopped with an error (bad input, a failed build), with what ran before it.
    Error {
        report: Option<Box<ShipReport>>,
        error: miette::Report,
    },
}

impl Outcome {
    fn report(&self) -> Option<&ShipReport> {
        match self {
            Outcome::Shipped(r) | Outcome::GateFailed(r) => Some(r),
            Outcome::Error { report, .. } => report.as_deref(),
        }
    }

    fn result(&self) -> &'static str {
        match self {
            Outcome::Shipped(_) => "shipped",
            Outcome::GateFailed(_) => "failed",
            Outcome::Error { .. } => "error",
        }
    }

    /// What the table says after the time: the archive, the failed stage's figure, or the
    /// error's first line.
    fn detail(&self) -> String {
        match self {
            Outcome::Shipped(r) => r
                .archive
                .as_ref()
                .map(|a| a.display().to_string())
                .unwrap_or_default(),
            Outcome::GateFailed(r) => r
                .stages
                .iter()
                .find(|s| !s.ok)
                .map(|s| format!("{}: {}", s.stage.as_str(), figure(s)))
                .unwrap_or_default(),
            Outcome::Error { error, .. } => {
                error.to_string().lines().next().unwrap_or("").to_string()
            }
        }
    }
}

pub fn execute(args: &Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    if args.target.target.is_some() && std::env::var_os("ENVSHIP_TARGET").is_none() {
        miette::bail!(
            code = "envship::ship::all_target",
            help = "narrow the pairs with --targets LIST; each member ships for its own targets",
            "--target names one target; --all ships each member for the targets its envship.toml lists"
        );
    }
    let ws = Workspace::discover(&args.dir)?;
    let opts = MatrixOptions {
        members: args.fleet.filter.members.clone(),
        targets: args.fleet.filter.targets.clone(),
        changed_since: None,
    };
    let pairs = fleet::plan(&ws, &opts)?;
    let jobs = args.fleet.jobs.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let quiet = global.quiet || args.json;
    let started = Instant::now();
    let outcomes = fleet::run_pairs(&pairs, jobs, |pair| ship_pair(&ws, pair, args, quiet));
    let seconds = started.elapsed().as_secs_f64();
    let done: Vec<(&Pair, &Outcome)> = pairs
        .iter()
        .zip(&outcomes)
        .filter_map(|(p, o)| o.as_ref().map(|o| (p, o)))
        .collect();
    if args.json {
        print_json(&done, pairs.len(), seconds)?;
    } else {
        print_failures(&done);
        print_table(&done, pairs.len(), seconds)?;
    }
    if done.len() < pairs.len() {
        miette::bail!(
            "{} of {} pairs never started",
            pairs.len() - done.len(),
            pairs.len()
        );
    }
    let all_shipped = done.iter().all(|(_, o)| matches!(o, Outcome::Shipped(_)));
    Ok(ExitCode::from(u8::from(!all_shipped)))
}

/// Ship one pair: its member's project for its target, with the command's flags. A panic is
/// this pair's internal error, not the end of the others.
fn ship_pair(ws: &Workspace, pair: &Pair, args: &Args, quiet: bool) -> Outcome {
    let run = || -> Result<Outcome, miette::Report> {
        let member = ws
            .member(&pair.member)
            .ok_or_else(|| miette::miette!("no member {} in the workspace", pair.member))?;
        let request = TargetRequest {
            profile: Some(pair.target.clone()),
            overrides: args.target.overrides(),
        };
        let project = Project::load_in_dir(&member.dir, &request)?;
        let options = options(args, &project)?;
        let reporter = PairReporter::new(format!("{} {}", pair.member, pair.target), quiet);
        Ok(match envship_ship::ship(&project, &options, &reporter) {
            Ok(report) if report.passed => Outcome::Shipped(Box::new(report)),
            Ok(report) => Outcome::GateFailed(Box::new(report)),
            Err(failed) => Outcome::Error {
                report: Some(Box::new(failed.report)),
                error: failed.error.into(),
            },
        })
    };
    match std::panic::catch_unwind(AssertUnwindSafe(run)) {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(error)) => Outcome::Error {
            report: None,
            error,
        },
        Err(_) => Outcome::Error {
            report: None,
            error: miette::miette!("internal error (a panic; this is a bug, please report it)"),
        },
    }
}

/// The failed audits' tables and the errors in full, on stderr, each under its pair's name.
fn print_failures(done: &[(&Pair, &Outcome)]) {
    for (pair, outcome) in done {
        match outcome {
            Outcome::GateFailed(r) => {
                if let Some(audit) = r.audit.as_ref().filter(|a| !a.passed()) {
                    eprintln!("== {} {}: audit failed", pair.member, pair.target);
                    eprintln!("{}", envship_audit::render_table(audit));
                }
            }
            Outcome::Error { error, .. } => {
                eprintln!("== {} {}: error", pair.member, pair.target);
                eprintln!("{error:?}");
            }
            Outcome::Shipped(_) => {}
        }
    }
}

fn not_shipped(done: &[(&Pair, &Outcome)]) -> Vec<String> {
    done.iter()
        .filter(|(_, o)| !matches!(o, Outcome::Shipped(_)))
        .map(|(p, _)| format!("{} ({})", p.member, p.target))
        .collect()
}

fn print_table(done: &[(&Pair, &Outcome)], total: usize, seconds: f64) -> miette::Result<()> {
    let mut out = std::io::stdout().lock();
    let width = done
        .iter()
        .map(|(p, _)| p.member.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let twidth = done
        .iter()
        .map(|(p, _)| p.target.len())
        .max()
        .unwrap_or(0)
        .max(6);
    writeln!(
        out,
        "{:<width$} {:<twidth$} {:<8} {:>8}  archive or failure",
        "member", "target", "result", "seconds"
    )
    .into_diagnostic()?;
    for (pair, outcome) in done {
        let secs = outcome.report().map_or(0.0, |r| r.seconds);
        writeln!(
            out,
            "{:<width$} {:<twidth$} {:<8} {:>8.1}  {}",
            pair.member,
            pair.target,
            outcome.result(),
            secs,
            outcome.detail()
        )
        .into_diagnostic()?;
    }
    let failed = not_shipped(done);
    let shipped = done.len() - failed.len();
    write!(out, "{shipped} of {total} pairs shipped in {seconds:.1}s").into_diagnostic()?;
    if !failed.is_empty() {
        write!(out, "; NOT shipped: {}", failed.join(", ")).into_diagnostic()?;
    }
    writeln!(out).into_diagnostic()
}

fn print_json(done: &[(&Pair, &Outcome)], total: usize, seconds: f64) -> miette::Result<()> {
    let mut rows = Vec::new();
    for (pair, outcome) in done {
        let report = outcome.report().map(summary_json).transpose()?;
        let error = match outcome {
            Outcome::Error { error, .. } => Some(error.to_string()),
            _ => None,
        };
        rows.push(serde_json::json!({
            "member": pair.member,
            "target": pair.target,
            "result": outcome.result(),
            "report": report,
            "error": error,
        }));
    }
    let failed = not_shipped(done);
    let summary = serde_json::json!({
        "pairs": rows,
        "total": total,
        "shipped": done.len() - failed.len(),
        "not_shipped": failed,
        "seconds": seconds,
    });
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &summary).into_diagnostic()?;
    writeln!(out).into_diagnostic()
}
