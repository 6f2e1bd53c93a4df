//! `envship diff`: what changed between two releases (archives, manifests, prefixes or
//! deployed versions).

use std::{io::Write, path::PathBuf, process::ExitCode};

use envship_pack::diff::{self, Side};
use miette::IntoDiagnostic;

use crate::GlobalArgs;

/// Show what changed between two releases: conda packages and pip distributions added, removed
/// and changed, files and bytes, and audit findings that appear or go away.
///
/// OLD and NEW: an archive (its .manifest.json beside it), a .manifest.json, an environment
/// prefix, or a deployed ROOT/NAME/VERSION (or ROOT/NAME/current).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The earlier release.
    #[arg(value_name = "OLD")]
    old: PathBuf,
    /// The later release.
    #[arg(value_name = "NEW")]
    new: PathBuf,
    /// Output form.
    #[arg(long, value_enum, default_value_t = Form::Table)]
    format: Form,
    /// Print the diff as JSON on stdout (same as --format json).
    #[arg(long)]
    json: bool,
}

/// Output forms.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// A readable table.
    Table,
    /// JSON.
    Json,
    /// A Markdown section for a release body.
    Md,
}

pub fn execute(args: Args, _global: &GlobalArgs) -> miette::Result<ExitCode> {
    let old = Side::open(&args.old)?;
    let new = Side::open(&args.new)?;
    let d = diff::diff(&old, &new);
    let mut out = std::io::stdout().lock();
    let form = if args.json { Form::Json } else { args.format };
    match form {
        Form::Json => {
            serde_json::to_writer_pretty(&mut out, &d).into_diagnostic()?;
            writeln!(out).into_diagnostic()?;
        }
        Form::Table => write!(out, "{}", diff::render_table(&d)).into_diagnostic()?,
        Form::Md => write!(out, "{}", diff::render_markdown(&d)).into_diagnostic()?,
    }
    Ok(ExitCode::SUCCESS)
}
