//! `envship publish`: upload an archive and its evidence to a GitHub release, or copy them into
//! a shared directory drop.

use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use envship_publish::{artifacts, github, GithubConfig, RetryPolicy, Secret};
use miette::IntoDiagnostic;

use crate::{progress::Bars, GlobalArgs};

/// Publish ARCHIVE with its sidecars (.sha256, .manifest.json, lock, audit report, test log)
/// to a GitHub release (created if absent; same-name assets replaced) or a directory drop
/// (never overwriting a different file). The archive is verified against its .sha256 first.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The archive, and any extra files to publish with it.
    #[arg(required = true, value_name = "ARCHIVE")]
    files: Vec<PathBuf>,
    /// Copy into this directory (a shared-filesystem staging area) instead of GitHub.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["github", "tag"])]
    to: Option<PathBuf>,
    /// GitHub repository OWNER/REPO. Default: $GITHUB_REPOSITORY (set in GitHub Actions).
    #[arg(long, value_name = "OWNER/REPO")]
    github: Option<String>,
    /// Release tag. Default: $GITHUB_REF_NAME (the pushed tag in GitHub Actions).
    #[arg(long, value_name = "TAG")]
    tag: Option<String>,
    /// Environment variable holding the token (contents: write).
    #[arg(long, value_name = "NAME", default_value = "GITHUB_TOKEN")]
    token_env: String,
    /// API base URL (GitHub Enterprise: https://HOST/api/v3).
    #[arg(long, env = "GITHUB_API_URL", default_value = github::DEFAULT_API_URL, value_name = "URL")]
    api_url: String,
    /// Mark a newly created release as a prerelease.
    #[arg(long)]
    prerelease: bool,
    /// Publish only the files given, without looking for sidecars next to the archive.
    #[arg(long)]
    no_sidecars: bool,
    /// Attempts per request before giving up.
    #[arg(long, value_name = "N", default_value_t = 6)]
    retries: u32,
    /// First retry delay in milliseconds (doubles each retry).
    #[arg(
        long,
        value_name = "MS",
        default_value_t = 1000,
        hide = true,
        env = "ENVSHIP_RETRY_BASE_MS"
    )]
    retry_base_ms: u64,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn execute(args: Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    let mut files = Vec::new();
    for f in &args.files {
        let found = if args.no_sidecars {
            vec![f.clone()]
        } else {
            artifacts::collect(f)
        };
        for p in found {
            if !files.contains(&p) {
                files.push(p);
            }
        }
    }
    let bars = Bars::new(global.quiet || args.json);
    let mut out = std::io::stdout().lock();
    if let Some(dir) = &args.to {
        let res = envship_publish::publish_to_dir(&files, dir, &bars)?;
        if args.json {
            serde_json::to_writer_pretty(&mut out, &res).into_diagnostic()?;
            writeln!(out).into_diagnostic()?;
        } else if !global.quiet {
            for r in &res {
                let what = match r.action {
                    envship_publish::DropAction::Copied => "published",
                    envship_publish::DropAction::AlreadyPresent => "already there",
                };
                writeln!(
                    out,
                    "{what:>13}  {}  ({} bytes, sha256 {})",
                    r.path.display(),
                    r.bytes,
                    r.sha256
                )
                .into_diagnostic()?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let repo = args
        .github
        .clone()
        .or_else(|| std::env::var("GITHUB_REPOSITORY").ok().filter(|s| !s.is_empty()))
        .ok_or_else(|| miette::miette!(help = "outside GitHub Actions give --github OWNER/REPO, or --to DIR for a directory drop", "no destination: neither --to nor --github given, and GITHUB_REPOSITORY is not set"))?;
    let tag = args
        .tag
        .clone()
        .or_else(|| {
            std::env::var("GITHUB_REF_NAME")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .ok_or_else(|| {
            miette::miette!(
                help = "give --tag TAG",
                "no release tag: --tag not given and GITHUB_REF_NAME is not set"
            )
        })?;
    let token = Secret::from_env(&args.token_env).ok_or_else(|| {
        envship_publish::PublishError::NoToken {
            var: args.token_env.clone(),
        }
    })?;
    let config = GithubConfig {
        api_url: args.api_url.clone(),
        repo,
        token: Some(token),
        retry: RetryPolicy {
            max_attempts: args.retries.max(1),
            base_delay: Duration::from_millis(args.retry_base_ms),
            ..RetryPolicy::default()
        },
    };
    let report = envship_publish::publish_release(&config, &tag, &files, args.prerelease, &bars)?;
    if args.json {
        serde_json::to_writer_pretty(&mut out, &report).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
    } else if !global.quiet {
        let verb = if report.created { "created" } else { "updated" };
        writeln!(
            out,
            "{verb} release {} of {}: {}",
            report.release.tag_name, config.repo, report.release.html_url
        )
        .into_diagnostic()?;
        for a in &report.assets {
            let retried = if a.attempts > 1 {
                format!(", {} attempts", a.attempts)
            } else {
                String::new()
            };
            writeln!(
                out,
                "  uploaded {}  ({} bytes, sha256 {}{retried})",
                a.asset.name, a.asset.size, a.sha256
            )
            .into_diagnostic()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
