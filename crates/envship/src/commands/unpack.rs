//! `envship unpack`: hardened parallel extraction + relocation (what conda-unpack does).

use std::{io::Write, path::PathBuf, process::ExitCode};

use envship_pack::UnpackOptions;
use miette::IntoDiagnostic;

use crate::{progress::Bars, GlobalArgs};

/// Unpack an archive made by `envship pack` (or any tar.gz/tar.zst/tar/zip) into DEST and
/// relocate it to DEST. Entries that would land outside DEST are refused.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The archive.
    archive: PathBuf,
    /// Destination directory (created; must be empty unless --force).
    dest: PathBuf,
    /// Unpack into a non-empty DEST.
    #[arg(long, short = 'f')]
    force: bool,
    /// Writer threads (default: all cores).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 0)]
    jobs: usize,
    /// Relocate to this prefix instead of DEST (e.g. the path DEST will be mounted at).
    #[arg(long, value_name = "PATH")]
    prefix: Option<String>,
    /// Only extract; do not relocate.
    #[arg(long, conflicts_with = "prefix")]
    no_relocate: bool,
    /// Do not write the tree record (PARENT/.DESTNAME.tree.json, read by `envship verify`).
    #[arg(long)]
    no_record: bool,
}

pub fn execute(args: Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    let opts = UnpackOptions {
        force: args.force,
        jobs: args.jobs,
        no_relocate: args.no_relocate,
        prefix: args.prefix,
        link_from: None,
    };
    let bars = Bars::new(global.quiet);
    // Without --force DEST is new or empty: a tree record that cannot be written (a full disk)
    // takes the unpacked tree out again, so that a failed unpack leaves DEST as it was.
    let existed = args.dest.exists();
    // DEST stays marked unfinished until its record is written: a kill while recording is
    // cleared by the next unpack, as one while extracting is.
    let out = envship_pack::unpack_unfinished(&args.archive, &args.dest, &opts, &bars)?;
    let recorded = if args.no_record {
        None
    } else {
        match envship_pack::tree::record_tree(&args.dest) {
            Ok((_, path)) => Some(path),
            Err(e) => {
                if !args.force {
                    take_out(&args.dest, existed);
                }
                envship_pack::unpack_finished(&args.dest);
                return Err(e.into());
            }
        }
    };
    envship_pack::unpack_finished(&args.dest);
    if !global.quiet {
        let mut stdout = std::io::stdout().lock();
        writeln!(
            stdout,
            "unpacked {} files ({} bytes, {} links) into {}",
            out.files,
            out.bytes,
            out.links,
            out.env_root.display()
        )
        .into_diagnostic()?;
        if let Some(r) = &out.relocation {
            writeln!(
                stdout,
                "relocated {} files from {}",
                r.files_changed, r.old_prefix
            )
            .into_diagnostic()?;
        }
        if let Some(r) = &recorded {
            writeln!(stdout, "recorded the tree in {}", r.display()).into_diagnostic()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Remove what a failed unpack put in `dest` (leaving the empty directory if it `existed`).
fn take_out(dest: &std::path::Path, existed: bool) {
    let removed = std::fs::remove_dir_all(dest).and_then(|()| {
        if existed {
            std::fs::create_dir(dest)
        } else {
            Ok(())
        }
    });
    if let Err(e) = removed {
        tracing::warn!("could not remove {} after the failure: {e}", dest.display());
    }
}
