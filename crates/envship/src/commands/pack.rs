//! `envship pack`: archive an installed environment (conda-pack compatible, reproducible).

use std::{io::Write, path::PathBuf, process::ExitCode};

use envship_pack::{Format, ManifestTarget, PackOptions, SquashfsCompression};
use miette::IntoDiagnostic;

use crate::{
    block_cache_args::BlockCacheArgs, progress::Bars, target_args::TargetArgs, GlobalArgs,
};

/// Pack an installed environment into a relocatable archive with `.sha256`,
/// `.manifest.json` and `.cdx.json` (CycloneDX SBOM) sidecars.
#[derive(clap::Args, Debug)]
#[command(disable_version_flag = true)]
pub struct Args {
    /// The installed environment (prefix) to pack.
    #[arg(long, short = 'p', value_name = "DIR")]
    prefix: PathBuf,
    /// Environment name (used in the archive file name and manifest). Default: the prefix's
    /// directory name, as conda-pack does.
    #[arg(long, short = 'n')]
    name: Option<String>,
    /// Release version; default: `git describe --tags`, else today's date (YYYY.MM.DD).
    #[arg(long, value_name = "VERSION")]
    version: Option<String>,
    /// Output file; default dist/NAME-VERSION-TARGET-SUBDIR.EXT.
    #[arg(long, short = 'o', value_name = "PATH")]
    output: Option<PathBuf>,
    /// Archive format: tar.gz (default, readable on RHEL6), tar.zst, zip, dir, sh (a
    /// self-extracting installer: `sh FILE.sh -p DEST`) or squashfs (an image to mount at
    /// --dest-prefix, which it requires).
    #[arg(long, default_value = "tar.gz", value_parser = parse_format)]
    format: Format,
    /// Bake this final prefix into the files now (then no conda-unpack is needed there).
    #[arg(long, value_name = "PATH")]
    dest_prefix: Option<String>,
    /// squashfs block compression: gzip (default; the only one RHEL 6's kernel mounts) or zstd
    /// (squashfuse, or kernels 4.14 and later).
    #[arg(long, value_name = "ALGO", value_parser = parse_squashfs_compression)]
    compress: Option<SquashfsCompression>,
    /// Compression level (gzip/zip 0-9, zstd 1-22). Default 4, as conda-pack.
    #[arg(long, value_name = "N")]
    compress_level: Option<i32>,
    /// Compression threads (default: all cores).
    #[arg(long, short = 'j', value_name = "N", default_value_t = 0)]
    jobs: usize,
    /// Put the environment under this directory inside the archive.
    #[arg(long, value_name = "DIR")]
    arcroot: Option<String>,
    /// Leave out paths matching this glob (relative to the prefix; repeatable).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Keep paths matching this glob even if an --exclude matches (repeatable).
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Overwrite an existing output.
    #[arg(long, short = 'f')]
    force: bool,
    /// Pack even if files listed in conda-meta are missing.
    #[arg(long)]
    ignore_missing_files: bool,
    /// Pack even if files listed in conda-meta were modified (e.g. overwritten by pip).
    #[arg(long)]
    ignore_modified_files: bool,
    /// Pack even with editable pip installs (their code is not in the archive).
    #[arg(long)]
    allow_editable: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    blocks: BlockCacheArgs,
}

fn parse_format(s: &str) -> Result<Format, String> {
    s.parse()
}

fn parse_squashfs_compression(s: &str) -> Result<SquashfsCompression, String> {
    s.parse()
}

pub fn execute(args: Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    if args.compress.is_some() && args.format != Format::Squashfs {
        return Err(miette::miette!(
            help = "--compress chooses a squashfs image's compression; use --compress-level \
                    for the other formats",
            "--compress needs --format squashfs, not {}",
            args.format
        ));
    }
    let name = match &args.name {
        Some(n) => n.clone(),
        None => std::path::absolute(&args.prefix)
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .ok_or_else(|| {
                miette::miette!(
                    help = "pass --name",
                    "cannot name the environment after the prefix {}",
                    args.prefix.display()
                )
            })?,
    };
    // The target the prefix was built for, unless the flags say otherwise (a contradicting
    // --target is an error: the manifest must not lie about it).
    let target = args.target.request().resolve_for_prefix(&args.prefix)?;
    let opts = PackOptions {
        prefix: args.prefix,
        build_prefix: None,
        output: args.output,
        name,
        version: args
            .version
            .unwrap_or_else(|| envship_ship::default_version_in(std::path::Path::new("."))),
        target: ManifestTarget {
            name: target.name.clone(),
            subdir: target.subdir.clone(),
            glibc: Some(target.glibc.to_string()),
        },
        format: args.format,
        squashfs_compression: args.compress.unwrap_or_default(),
        dest_prefix: args.dest_prefix,
        arcroot: args.arcroot,
        exclude: args.exclude,
        include: args.include,
        jobs: args.jobs,
        compress_level: args.compress_level,
        force: args.force,
        allow_missing_files: args.ignore_missing_files,
        allow_modified_files: args.ignore_modified_files,
        allow_editable: args.allow_editable,
        source_date_epoch: None,
        reuse: args.blocks.reuse(None),
    };
    let bars = Bars::new(global.quiet);
    let out = envship_pack::pack(&opts, &bars)?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let v = serde_json::json!({
            "archive": out.archive,
            "sha256": out.sha256,
            "sha256_path": out.sha256_path,
            "manifest_path": out.manifest_path,
            "sbom_path": out.sbom_path,
            "file_count": out.file_count,
            "bytes": out.bytes,
            "block_index_path": out.block_index_path,
            "blocks": out.blocks,
        });
        serde_json::to_writer_pretty(&mut stdout, &v).into_diagnostic()?;
        writeln!(stdout).into_diagnostic()?;
    } else if !global.quiet {
        writeln!(
            stdout,
            "packed {} files ({} bytes) into {}",
            out.file_count,
            out.bytes,
            out.archive.display()
        )
        .into_diagnostic()?;
        if let Some(sum) = &out.sha256 {
            writeln!(stdout, "sha256 {sum}").into_diagnostic()?;
        }
        if let Some(b) = &out.blocks {
            writeln!(
                stdout,
                "blocks: {} reused ({} bytes), {} compressed ({} bytes)",
                b.reused, b.reused_bytes, b.compressed, b.compressed_bytes
            )
            .into_diagnostic()?;
        }
        writeln!(stdout, "manifest {}", out.manifest_path.display()).into_diagnostic()?;
        writeln!(
            stdout,
            "sbom {} ({} conda, {} pip)",
            out.sbom_path.display(),
            out.sbom_counts.conda,
            out.sbom_counts.pip
        )
        .into_diagnostic()?;
    }
    Ok(ExitCode::SUCCESS)
}
