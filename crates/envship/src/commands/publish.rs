//! `envship publish`: upload an archive and its evidence to a GitHub release, or copy them into
//! a shared directory drop.

use std::{io::Write, path::PathBuf, process::ExitCode, time::Duration};

use envship_publish::{
    artifacts,
    github::{self, notes},
    GithubConfig, RetryPolicy, Secret,
};
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
    /// Sign the archive and each evidence file with this minisign secret key (`envship keygen`
    /// makes one), uploading `FILE.minisig` beside each. Without it, `ENVSHIP_SIGNING_KEY` may
    /// hold the key itself (a CI secret). The archive is signed only if its sha256 matches its
    /// `.sha256` and manifest.
    #[arg(long, value_name = "FILE")]
    sign_key: Option<PathBuf>,
    /// Leave the release notes alone. By default what changed since the previous release of the
    /// same environment and target (its manifest found among the repository's earlier releases)
    /// is written into them, in a section of its own that a re-publish replaces.
    #[arg(long)]
    no_notes: bool,
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
    match signing_key(args.sign_key.as_deref())? {
        Some(key) => {
            let signatures = envship_publish::sign::sign_files(&files, &key)?;
            tracing::info!("signed {} files with key {}", signatures.len(), key.id);
            files.extend(signatures);
        }
        None => files.extend(envship_publish::sign::existing_signatures(&files)),
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
    let mut notes = Vec::new();
    if !args.no_notes {
        for archive in files.iter().filter(|f| is_archive(f)) {
            notes.extend(notes::update_release_notes(
                &config,
                &report.release,
                archive,
            )?);
        }
    }
    if args.json {
        let shown = Published {
            report: &report,
            notes: &notes,
        };
        serde_json::to_writer_pretty(&mut out, &shown).into_diagnostic()?;
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
        for n in &notes {
            let line = match (&n.previous, n.written) {
                (Some(p), true) => format!("changes since {} ({}) written", p.tag, p.version),
                (Some(p), false) => {
                    format!("changes since {} ({}) already there", p.tag, p.version)
                }
                (None, _) => "no earlier release has its manifest: no changes written".into(),
            };
            writeln!(out, "  release notes, {} for {}: {line}", n.name, n.target)
                .into_diagnostic()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The key to sign with: `--sign-key FILE`, else the key held in `ENVSHIP_SIGNING_KEY`.
fn signing_key(
    file: Option<&std::path::Path>,
) -> miette::Result<Option<envship_trust::minisig::SigningKey>> {
    use envship_trust::minisig::SigningKey;
    if let Some(f) = file {
        return Ok(Some(SigningKey::from_file(f)?));
    }
    match Secret::from_env(SIGNING_KEY_VAR) {
        Some(key) => Ok(Some(SigningKey::parse(key.expose(), SIGNING_KEY_VAR)?)),
        None => Ok(None),
    }
}

/// The variable that may hold the signing key itself.
const SIGNING_KEY_VAR: &str = "ENVSHIP_SIGNING_KEY";

/// `--json`: the release report and what was written into the notes.
#[derive(serde::Serialize)]
struct Published<'a> {
    #[serde(flatten)]
    report: &'a envship_publish::ReleaseReport,
    notes: &'a [notes::NotesOutcome],
}

/// Whether `path` is an archive (not a sidecar) by its name.
fn is_archive(path: &std::path::Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| artifacts::ARCHIVE_EXTENSIONS.iter().any(|e| n.ends_with(e)))
}
