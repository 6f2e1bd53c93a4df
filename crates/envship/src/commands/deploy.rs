//! `envship deploy`: verify an archive, check this host can run it, extract it into
//! ROOT/NAME/VERSION, optionally test it there, switch ROOT/NAME/current atomically and record
//! it; or roll back.

use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use envship_deploy::{DeployOptions, RollbackOptions};
use envship_publish::{github, GithubConfig, RetryPolicy, Secret};
use miette::IntoDiagnostic;

use crate::{progress::Bars, GlobalArgs};

/// Deploy an archive on this (production) host, or roll back.
///
/// SOURCE: an archive (its .sha256 and .manifest.json beside it), a directory drop holding one,
/// an https:// URL, or github:OWNER/REPO@TAG.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to deploy.
    #[arg(
        value_name = "SOURCE",
        required_unless_present = "rollback",
        conflicts_with = "rollback"
    )]
    source: Option<String>,
    /// The deployment root: environments go to ROOT/NAME/VERSION, ROOT/NAME/current points at
    /// the live one, and ROOT/.envship/deployments.jsonl records every deployment.
    #[arg(long, env = "ENVSHIP_DEPLOY_ROOT", value_name = "ROOT")]
    root: PathBuf,
    /// Deploy under this name instead of the manifest's (also picks the archive in a directory
    /// drop or release holding several).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Pick this target's archive in a directory drop or release holding archives of several
    /// targets (their names end with -TARGET-SUBDIR).
    #[arg(long, value_name = "TARGET")]
    target: Option<String>,
    /// Change ticket to record with the deployment.
    #[arg(long, value_name = "ID")]
    ticket: Option<String>,
    /// Run the archive's test script (share/envship/run-test.sh) in the deployed copy before
    /// switching; a failure leaves `current` unchanged.
    #[arg(long)]
    test: bool,
    /// Kill the test after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 1800)]
    test_timeout: u64,
    /// Print every action and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Replace an existing ROOT/NAME/VERSION.
    #[arg(long)]
    force: bool,
    /// Switch ROOT/NAME/current back to the version it replaced (per the deployment log).
    #[arg(long, value_name = "NAME")]
    rollback: Option<String>,
    /// With --rollback: switch to this version instead.
    #[arg(long, value_name = "VERSION", requires = "rollback")]
    to: Option<String>,
    /// Extraction threads (default: all cores).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 0)]
    jobs: usize,
    /// Extract every file instead of hard-linking the files the live version holds unchanged
    /// (linking needs both archives' block indexes and one file system).
    #[arg(long)]
    no_link: bool,
    #[command(flatten)]
    trust: crate::trust_args::TrustArgs,
    /// Environment variable holding a GitHub token (for github: sources of private repos).
    #[arg(long, value_name = "NAME", default_value = "GITHUB_TOKEN")]
    token_env: String,
    /// GitHub API base URL.
    #[arg(long, env = "GITHUB_API_URL", default_value = github::DEFAULT_API_URL, value_name = "URL")]
    api_url: String,
    /// Print the outcome as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn execute(args: Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    let outcome = if let Some(name) = &args.rollback {
        envship_deploy::rollback(&RollbackOptions {
            root: args.root.clone(),
            name: name.clone(),
            to: args.to.clone(),
            ticket: args.ticket.clone(),
            dry_run: args.dry_run,
        })?
    } else {
        let bars = Bars::new(global.quiet || args.json);
        let opts = DeployOptions {
            source: args.source.clone().unwrap_or_default(),
            root: args.root.clone(),
            name: args.name.clone(),
            target: args.target.clone(),
            ticket: args.ticket.clone(),
            test: args.test,
            test_timeout: Some(Duration::from_secs(args.test_timeout)),
            dry_run: args.dry_run,
            force: args.force,
            host: None,
            github: GithubConfig {
                api_url: args.api_url.clone(),
                repo: String::new(),
                token: Secret::from_env(&args.token_env),
                retry: RetryPolicy::default(),
            },
            jobs: args.jobs,
            no_link: args.no_link,
            trust: args.trust.options()?,
        };
        envship_deploy::deploy(&opts, &bars)?
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &outcome).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
        return Ok(ExitCode::SUCCESS);
    }
    if global.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    let lead = if outcome.dry_run { "would: " } else { "" };
    for a in &outcome.actions {
        writeln!(out, "{lead}{a}").into_diagnostic()?;
    }
    if let Some(d) = &outcome.diff {
        writeln!(out).into_diagnostic()?;
        write!(out, "{}", envship_pack::diff::render_table(d)).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
    }
    if !outcome.dry_run {
        let what = if args.rollback.is_some() {
            "rolled back"
        } else {
            "deployed"
        };
        writeln!(
            out,
            "{what} {} {} at {} (previous: {})",
            outcome.name,
            outcome.version,
            outcome.path.display(),
            outcome.previous.as_deref().unwrap_or("none")
        )
        .into_diagnostic()?;
    } else {
        writeln!(out, "dry run: nothing was changed").into_diagnostic()?;
    }
    Ok(ExitCode::SUCCESS)
}
