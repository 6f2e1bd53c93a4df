//! `envship verify`: compare a deployed or unpacked tree with the record written when it was
//! deployed or unpacked; exit 1 on any drift.

use std::{io::Write, path::PathBuf, process::ExitCode};

use envship_pack::{diff::human_bytes, tree};
use miette::IntoDiagnostic;

use crate::{exit, GlobalArgs};

/// Check that a deployed or unpacked environment is exactly as it was deployed: every file's
/// content, size, type and mode, against the tree record beside it. Exits 1 on any drift.
///
/// PATH: ROOT/NAME/current, ROOT/NAME/VERSION, or a directory made by `envship unpack`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The tree to check.
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn execute(args: Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    let v = tree::verify(&args.path)?;
    let code = if v.clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(exit::GATE)
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &v).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
        return Ok(code);
    }
    if global.quiet && v.clean {
        return Ok(code);
    }
    let d = &v.drift;
    for m in &d.modified {
        let what = match (m.old_size, m.new_size, &m.old_target, &m.new_target) {
            (Some(o), Some(n), _, _) if o != n => format!("size {o} -> {n}"),
            (_, _, Some(o), Some(n)) => format!("target {o} -> {n}"),
            _ => "content".to_string(),
        };
        writeln!(out, "modified  {}  ({what})", m.path).into_diagnostic()?;
    }
    for p in &d.missing {
        writeln!(out, "missing   {}  ({})", p.path, p.kind).into_diagnostic()?;
    }
    for p in &d.added {
        writeln!(out, "added     {}  ({})", p.path, p.kind).into_diagnostic()?;
    }
    for r in &d.retyped {
        writeln!(out, "retyped   {}  ({} -> {})", r.path, r.old, r.new).into_diagnostic()?;
    }
    for m in &d.mode_changed {
        let o = m.old.map(|b| format!("{b:04o}")).unwrap_or_default();
        let n = m.new.map(|b| format!("{b:04o}")).unwrap_or_default();
        writeln!(out, "mode      {}  ({o} -> {n})", m.path).into_diagnostic()?;
    }
    let verdict = if v.clean {
        "clean".to_string()
    } else {
        format!("DRIFT: {} paths differ", d.len())
    };
    writeln!(
        out,
        "{}: {verdict} ({} files, {} recorded in {})",
        v.tree.display(),
        v.files,
        human_bytes(v.bytes),
        v.record.display()
    )
    .into_diagnostic()?;
    Ok(code)
}
