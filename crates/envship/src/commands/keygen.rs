//! `envship keygen`: a minisign key pair for signing releases.

use std::{io::Write, path::PathBuf, process::ExitCode};

use miette::IntoDiagnostic;

use crate::GlobalArgs;

/// Write a minisign key pair: BASE.key (unencrypted, mode 0600: keep it as a CI secret, e.g.
/// ENVSHIP_SIGNING_KEY) and BASE.pub (for trust.toml's [[minisign]], and `minisign -V`).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The path of the pair without its extension: writes BASE.key and BASE.pub.
    #[arg(long, short, value_name = "BASE")]
    output: PathBuf,
    /// Replace an existing pair (the old secret key is lost).
    #[arg(long)]
    force: bool,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn execute(args: Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    let pair = envship_trust::minisig::keygen(&args.output, args.force)?;
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &pair).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
    } else if !global.quiet {
        writeln!(
            out,
            "wrote {} (secret, mode 0600) and {} (public), key id {}\n\
             trust it in ROOT/.envship/trust.toml:\n  [[minisign]]\n  public-key = \"{}\"",
            pair.secret.display(),
            pair.public.display(),
            pair.key_id,
            pair.public_key
        )
        .into_diagnostic()?;
    }
    Ok(ExitCode::SUCCESS)
}
