//! `envship verify-release`: the trust gate of deploy, on its own.

use std::{io::Write, path::PathBuf, process::ExitCode};

use miette::IntoDiagnostic;

use crate::{trust_args::TrustArgs, GlobalArgs};

/// Check FILE against a trust policy without deploying: its minisign signature (FILE.minisig)
/// or build provenance (FILE.sigstore.json), and, for an envship archive, its .sha256 and
/// manifest when they are beside it. Exit 0 when trusted, 1 when not.
///
/// The policy is a deployment root's .envship/trust.toml (--root), the --trust-* flags, or
/// both (then both must accept the file).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file to check.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Apply this deployment root's trust.toml (with its staged-rollout rule).
    #[arg(long, value_name = "ROOT")]
    root: Option<PathBuf>,
    #[command(flatten)]
    trust: TrustArgs,
    /// Print what was verified as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn execute(args: Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    let opts = envship_deploy::trust::ReleaseCheck {
        file: args.file.clone(),
        root: args.root.clone(),
        trust: args.trust.options()?,
    };
    let verified = envship_deploy::trust::verify_release(&opts)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &verified).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
    } else if !global.quiet {
        writeln!(
            out,
            "trusted: {}: {}",
            args.file.display(),
            envship_deploy::trust::trust_summary(&verified)
        )
        .into_diagnostic()?;
    }
    Ok(ExitCode::SUCCESS)
}
