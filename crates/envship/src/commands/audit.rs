//! `envship audit`: prove statically that a prefix will load and relocate on the target.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use envship_audit::{render_table, Allowlist, AuditOptions};
use miette::{IntoDiagnostic, WrapErr};

use crate::{progress::Bars, target_args::TargetArgs, GlobalArgs};

/// Check every file of an environment prefix (or an unpacked archive, or any directory) against
/// the production target: glibc and C++ runtime symbol versions, shared-library resolution,
/// minimum kernel, and relocation hazards. Exits 1 when errors remain.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The directory to audit. Default: the single environment under ./.envship/build.
    path: Option<PathBuf>,
    #[command(flatten)]
    target: TargetArgs,
    /// Where the environment will be unpacked (checks shebang lengths and binary placeholders).
    #[arg(long, value_name = "PREFIX")]
    dest_prefix: Option<String>,
    /// The prefix the environment was installed at, searched for in files. Default: PATH
    /// itself; an empty string turns the search off.
    #[arg(long, value_name = "PREFIX")]
    build_prefix: Option<String>,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    json: bool,
    /// Write the JSON report to this file (in addition to the output on stdout).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Accepted exceptions: a TOML file of [[allow]] rules with path (glob), check and reason.
    #[arg(long, value_name = "FILE")]
    allow: Option<PathBuf>,
    /// Count version needs flagged weak as errors, not warnings.
    #[arg(long)]
    strict_weak: bool,
    /// Include every ELF file and what the loader sees in the JSON report.
    #[arg(long)]
    inventory: bool,
}

fn default_path() -> miette::Result<PathBuf> {
    let base = Path::new(".envship/build");
    let envs: Vec<PathBuf> = std::fs::read_dir(base)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    match envs.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(miette::miette!(
            help = "give the prefix to audit: envship audit PATH",
            "no environment found under {}",
            base.display()
        )),
        many => Err(miette::miette!(
            help = "give the prefix to audit: envship audit PATH",
            "{} environments under {}: {}",
            many.len(),
            base.display(),
            many.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

pub fn execute(args: Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    let root = match args.path {
        Some(p) => p,
        None => default_path()?,
    };
    let target = args.target.request().resolve_for_prefix(&root)?;
    let mut opts = AuditOptions::new(target);
    opts.build_prefix = args.build_prefix;
    opts.dest_prefix = args.dest_prefix;
    opts.strict_weak = args.strict_weak;
    opts.inventory = args.inventory;
    if let Some(allow) = &args.allow {
        opts.allowlist = Allowlist::load(allow)?;
    }
    let bars = Bars::new(global.quiet);
    let report = envship_audit::audit(&root, &opts, &bars)?;
    drop(bars);

    if let Some(out) = &args.output {
        crate::project::write_output(out, report.to_json().as_bytes())
            .wrap_err_with(|| format!("writing the audit report to {}", out.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        stdout
            .write_all(report.to_json().as_bytes())
            .into_diagnostic()?;
    } else {
        stdout
            .write_all(render_table(&report).as_bytes())
            .into_diagnostic()?;
    }
    stdout.flush().into_diagnostic()?;
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
