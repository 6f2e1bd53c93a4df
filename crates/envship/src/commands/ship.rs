//! `envship ship [DIR]`: lock → build → audit → pack → test for the project in DIR, stopping at
//! the first failing gate, with a summary table (or `--json` for CI). The pipeline is
//! [`envship_ship::ship`]; this file turns flags into its options and renders its report.

use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use envship_audit::Allowlist;
use envship_ship::{Project, ShipOptions, ShipReport, StageDetail, StageResult};
use miette::IntoDiagnostic;

use crate::{
    commands::{build::InstallArgs, lock::LockArgs},
    progress::StageReporter,
    target_args::TargetArgs,
    GlobalArgs,
};

/// Run the whole pipeline for a project.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The project directory (with environment.yml and the test script).
    #[arg(default_value = ".", value_name = "DIR")]
    pub(crate) dir: PathBuf,
    /// The environment file, relative to DIR [default: environment.yml].
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    #[command(flatten)]
    lock: LockArgs,
    #[command(flatten)]
    install: InstallArgs,
    /// The test script (default: envship.toml's `test-script`, else run-test.sh).
    #[arg(long, short = 's', value_name = "FILE")]
    script: Option<PathBuf>,
    /// Where production unpacks the archive; the test runs there (default: envship.toml's
    /// `dest-prefix`, else /opt/envship/NAME).
    #[arg(long, value_name = "PATH")]
    dest_prefix: Option<String>,
    /// Archive format: tar.gz (default; RHEL 6's tar has no zstd), tar.zst, zip.
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Release version (default: git describe of DIR, else today's date).
    #[arg(long)]
    version: Option<String>,
    /// Output directory (default: DIR/dist).
    #[arg(long, short = 'o', value_name = "DIR")]
    pub(crate) out_dir: Option<PathBuf>,
    /// Accepted audit exceptions (path glob + check + reason).
    #[arg(long, value_name = "FILE")]
    allow: Option<PathBuf>,
    #[command(flatten)]
    run: crate::commands::test::RunArgs,
    #[command(flatten)]
    blocks: crate::block_cache_args::BlockCacheArgs,
    /// Machine-readable summary on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) fleet: super::ship_all::FleetArgs,
}

pub fn execute(args: Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    if args.fleet.all {
        return super::ship_all::execute(&args, global);
    }
    if args.fleet.filter.is_set() || args.fleet.jobs.is_some() {
        miette::bail!(
            code = "envship::ship::needs_all",
            help = "add --all to ship a workspace's pairs",
            "-j, --members and --targets choose among a workspace's pairs: they go with --all"
        );
    }
    let project = match &args.file {
        Some(file) => Project::load(&args.dir.join(file), &args.target.request())?,
        None => Project::load_in_dir(&args.dir, &args.target.request())?,
    };
    let options = options(&args, &project)?;
    let quiet = global.quiet || args.json;
    let reporter = StageReporter::new("ship", quiet);
    match envship_ship::ship(&project, &options, &reporter) {
        Ok(report) => {
            if !quiet {
                super::build::print_link_scripts(
                    &mut std::io::stdout().lock(),
                    &report.link_scripts,
                )?;
            }
            if let (Some(audit), false) = (&report.audit, args.json) {
                if !audit.passed() {
                    eprintln!("{}", envship_audit::render_table(audit));
                }
            }
            print_summary(&report, args.json)?;
            // A failed gate (audit, test) is exit 1, not an error of envship.
            Ok(ExitCode::from(u8::from(!report.passed)))
        }
        Err(failed) => {
            if !failed.report.stages.is_empty() {
                print_summary(&failed.report, args.json)?;
            }
            Err(failed.error.into())
        }
    }
}

/// The pipeline's options for `project`: the flags, with the project's defaults filling in
/// the rest. Bad flags fail here, before anything is built.
pub(crate) fn options(args: &Args, project: &Project) -> miette::Result<ShipOptions> {
    let (isolation, rootfs) = args.run.isolation.resolve()?;
    Ok(ShipOptions {
        prefix: project.build_prefix(None),
        lock: args.lock.request(project, None)?,
        pip: args.install.pip.options(),
        link_scripts: args.install.link_scripts(project),
        script: project.test_script(args.script.as_deref()),
        dest_prefix: project.dest_prefix(args.dest_prefix.as_deref()),
        format: project.format(args.format.as_deref())?,
        version: project.version(args.version.as_deref()),
        out_dir: project.out_dir(args.out_dir.as_deref()),
        allowlist: args
            .allow
            .as_deref()
            .map(Allowlist::load)
            .transpose()?
            .unwrap_or_default(),
        isolation,
        rootfs,
        timeout: Duration::from_secs(args.run.timeout),
        junit: args.run.junit.clone(),
        reuse: args.blocks.reuse(args.lock.cache_dir.as_deref()),
    })
}

/// The figure column of a stage, e.g. `12 packages (lock up to date)`.
pub fn figure(stage: &StageResult) -> String {
    match &stage.detail {
        StageDetail::Lock { packages, reused } => format!(
            "{packages} packages{}",
            if *reused { " (lock up to date)" } else { "" }
        ),
        StageDetail::Build {
            installed,
            pip,
            noop,
        } => format!(
            "{installed} installed, {pip} pip{}",
            if *noop { " (up to date)" } else { "" }
        ),
        StageDetail::Audit {
            errors,
            warnings,
            elf_files,
        } => format!("{errors} errors, {warnings} warnings, {elf_files} ELF files"),
        StageDetail::Pack {
            files,
            archive_bytes,
        } => format!("{files} files, {}", indicatif::HumanBytes(*archive_bytes)),
        StageDetail::Test { summary } => summary.clone(),
        StageDetail::Failed => "failed".into(),
    }
}

/// The JSON summary: the report's fields with each stage's figure rendered as text.
pub(crate) fn summary_json(report: &ShipReport) -> miette::Result<serde_json::Value> {
    let mut v = serde_json::to_value(report).into_diagnostic()?;
    let stages: Vec<serde_json::Value> = report
        .stages
        .iter()
        .map(|st| {
            serde_json::json!({
                "stage": st.stage.as_str(),
                "ok": st.ok,
                "seconds": st.seconds,
                "figure": figure(st),
                "detail": st.detail,
            })
        })
        .collect();
    v["stages"] = stages.into();
    Ok(v)
}

/// The summary table (or JSON) on stdout.
pub fn print_summary(report: &ShipReport, json: bool) -> miette::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &summary_json(report)?).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
        return Ok(());
    }
    writeln!(out, "{:<8} {:<7} {:>8}", "stage", "result", "seconds").into_diagnostic()?;
    for st in &report.stages {
        writeln!(
            out,
            "{:<8} {:<7} {:>8.2}  {}",
            st.stage.as_str(),
            if st.ok { "ok" } else { "FAILED" },
            st.seconds,
            figure(st)
        )
        .into_diagnostic()?;
    }
    writeln!(
        out,
        "{} {} {} for {} in {:.1}s",
        if report.passed {
            "shipped"
        } else {
            "NOT shipped:"
        },
        report.name,
        report.version,
        report.target,
        report.seconds
    )
    .into_diagnostic()?;
    if let (true, Some(a)) = (report.passed, &report.archive) {
        writeln!(out, "archive  {}", a.display()).into_diagnostic()?;
        if let Some(s) = &report.sha256 {
            writeln!(out, "sha256   {s}").into_diagnostic()?;
        }
    }
    Ok(())
}
