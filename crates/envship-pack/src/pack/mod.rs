//! `pack`: prefix → archive (+ `.sha256`, `.manifest.json` and `.cdx.json` sidecars), in three
//! steps:
//! [`plan`] scans the prefix and decides every entry and the relocation list, [`writers`] store
//! those entries as tar, zip or a directory ([`squashfs`] as a squashfs image, [`installer`]
//! as a self-extracting sh installer), and [`output`] writes through a temp file, hashes,
//! renames and writes the sidecars (the SBOM from [`crate::sbom`]).

mod installer;
pub(crate) use installer::{INSTALLER_MAGIC, OFFSET_LINE};
mod output;
mod plan;
mod squashfs;
mod writers;

use std::{path::PathBuf, sync::Arc};

use envship_spec::{Progress, ProgressUnit};

use crate::{
    blocks::{cache::BlockCache, BlockStats},
    error::PackError,
    error::Result,
    format::{default_file_name, Format, Sidecar, SquashfsCompression},
    manifest::{BlockIndexRef, Manifest, ManifestTarget, MANIFEST_VERSION},
    sbom::{self, SbomCounts},
};

/// The mtime stored when `SOURCE_DATE_EPOCH` is not set: 1980-01-01T00:00:00Z, the earliest
/// time zip can store, so every format stores the same instant.
pub const DEFAULT_EPOCH: u64 = 315_532_800;

/// Whether a tar.gz or tar.zst pack reuses compressed blocks of earlier packs (see
/// [`crate::blocks`]). The archive is byte-identical either way.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum BlockReuse {
    /// Compress every block.
    #[default]
    Off,
    /// Reuse and keep blocks in this cache directory, trimmed to `max_bytes` after the pack.
    Cache {
        /// The cache directory.
        dir: PathBuf,
        /// Its size bound.
        max_bytes: u64,
    },
}

/// What to pack and how.
#[derive(Clone, Debug, Default)]
pub struct PackOptions {
    /// The installed environment.
    pub prefix: PathBuf,
    /// The prefix string installed files contain; default: `prefix` made absolute.
    pub build_prefix: Option<String>,
    /// Output path; default `dist/NAME-VERSION-TARGET-SUBDIR.EXT` (see [`default_file_name`]).
    pub output: Option<PathBuf>,
    /// Environment name.
    pub name: String,
    /// Release version.
    pub version: String,
    /// Target the archive is for.
    pub target: ManifestTarget,
    /// Output format.
    pub format: Format,
    /// The block compression of a squashfs image (other formats ignore it).
    pub squashfs_compression: SquashfsCompression,
    /// Bake this prefix into the files (no conda-unpack needed there).
    pub dest_prefix: Option<String>,
    /// Put the environment under this directory inside the archive.
    pub arcroot: Option<String>,
    /// Globs (relative to the prefix) of paths to leave out; a match on a directory leaves out
    /// everything below it.
    pub exclude: Vec<String>,
    /// Globs that keep a path even when an exclude glob matches.
    pub include: Vec<String>,
    /// Compression threads; 0 = all cores.
    pub jobs: usize,
    /// Compression level (gzip/zip 0-9, zstd 1-22); default 4, like conda-pack.
    pub compress_level: Option<i32>,
    /// Overwrite an existing output.
    pub force: bool,
    /// Pack even if files conda-meta lists are missing.
    pub allow_missing_files: bool,
    /// Pack even if files conda-meta lists were modified (e.g. overwritten by pip).
    pub allow_modified_files: bool,
    /// Pack even with editable pip installs.
    pub allow_editable: bool,
    /// mtime for every entry; default `SOURCE_DATE_EPOCH`, else [`DEFAULT_EPOCH`].
    pub source_date_epoch: Option<u64>,
    /// Reuse compressed blocks (tar.gz and tar.zst).
    pub reuse: BlockReuse,
}

/// What `pack` produced.
#[derive(Clone, Debug)]
pub struct PackOutput {
    /// The archive (or directory).
    pub archive: PathBuf,
    /// Its sha256 (`None` for `dir`).
    pub sha256: Option<String>,
    /// The `.sha256` sidecar (`None` for `dir`).
    pub sha256_path: Option<PathBuf>,
    /// The `.manifest.json` sidecar.
    pub manifest_path: PathBuf,
    /// The manifest written there.
    pub manifest: Manifest,
    /// The `.cdx.json` sidecar: the CycloneDX SBOM.
    pub sbom_path: PathBuf,
    /// How many conda records and pip distributions the SBOM names.
    pub sbom_counts: SbomCounts,
    /// Regular files stored.
    pub file_count: u64,
    /// Their uncompressed bytes.
    pub bytes: u64,
    /// The `.blocks.json` sidecar (tar.gz and tar.zst).
    pub block_index_path: Option<PathBuf>,
    /// Blocks reused and compressed (tar.gz and tar.zst).
    pub blocks: Option<BlockStats>,
}

/// The epoch given (option, else `SOURCE_DATE_EPOCH`): the SBOM's timestamp only comes from
/// one, never from the 1980 default.
fn explicit_epoch(opts: &PackOptions) -> Option<u64> {
    opts.source_date_epoch.or_else(|| {
        std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.trim().parse().ok())
    })
}

fn jobs(n: usize) -> usize {
    if n == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        n
    }
}

/// Trim the block cache to its bound after a pack.
fn trim_cache(cache: Option<&BlockCache>) {
    if let Some(cache) = cache {
        let removed = cache.trim();
        if removed > 0 {
            tracing::info!(
                "trimmed {removed} bytes of least recently used blocks from {}",
                cache.dir().display()
            );
        }
    }
}

/// Pack a prefix. See the crate docs for the archive layout.
pub fn pack(opts: &PackOptions, progress: &dyn Progress) -> Result<PackOutput> {
    if opts.format == Format::Squashfs && opts.dest_prefix.is_none() {
        return Err(PackError::FormatOptions {
            format: "squashfs",
            reason: "need --dest-prefix: the image is read-only, so its files are relocated for \
                     the mount point when it is packed",
            help: "pass --dest-prefix with the path the image will be mounted at",
        });
    }
    let plan = plan::plan(opts, progress)?;
    let archive = match &opts.output {
        Some(p) => p.clone(),
        None => PathBuf::from("dist").join(default_file_name(
            &opts.name,
            &opts.version,
            &opts.target.name,
            &opts.target.subdir,
            opts.format,
        )),
    };
    let out = output::Destination::prepare(archive, opts.force)?;
    let prefixes = &plan.prefixes;
    let epoch = explicit_epoch(opts);
    // The SBOM is made before the archive is written: a prefix it cannot describe (a malformed
    // record or METADATA) leaves no archive without its SBOM behind.
    let about = sbom::About {
        name: &opts.name,
        version: &opts.version,
        target: &opts.target,
        timestamp: epoch,
    };
    let (bom, sbom_counts) = sbom::build(&prefixes.root, &plan.scan.pip, &about)?;
    let ctx = writers::Ctx {
        mtime: epoch.unwrap_or(DEFAULT_EPOCH),
        rewrite: prefixes
            .dest
            .as_ref()
            .map(|d| (prefixes.build.as_bytes().to_vec(), d.as_bytes().to_vec())),
        progress,
    };
    let how = output::Compression {
        format: opts.format,
        squashfs: opts.squashfs_compression,
        level: opts.compress_level.unwrap_or(4),
        threads: jobs(opts.jobs),
        cache: match &opts.reuse {
            BlockReuse::Off => None,
            BlockReuse::Cache { dir, max_bytes } => {
                Some(Arc::new(BlockCache::new(dir.clone(), *max_bytes)))
            }
        },
    };
    progress.start("pack", Some(plan.bytes), ProgressUnit::Bytes);
    let label = installer::Label {
        text: format!("{} {} ({})", opts.name, opts.version, opts.target.subdir),
        arcroot: &plan.arcroot,
    };
    let written = output::write_archive(&plan.items, &ctx, &out, &how, &label)?;
    progress.finish("pack");
    let sha256 = written.sha256;

    // Every sidecar is staged before the archive is renamed into place, so that a failure (a
    // full disk) leaves none of them, and no archive without its sidecars.
    let mut sidecars = Vec::new();
    if let Some(sum) = &sha256 {
        sidecars.push(output::stage_sha256_sidecar(&out, sum)?);
    }
    sidecars.push(sbom::stage(&out.sbom, &bom)?);
    let (block_index, blocks) = match written.blocks {
        Some((index, stats)) => {
            let path = Sidecar::Blocks.path_for(&out.archive);
            let staged = index.stage(&path)?;
            let sha256 = envship_spec::digest::sha256_file(staged.temp_path())
                .map_err(PackError::io("reading", staged.temp_path()))?;
            sidecars.push(staged);
            let r = BlockIndexRef {
                file: output::file_name(&path),
                sha256,
                blocks: index.blocks.len(),
            };
            (Some((path, r)), Some(stats))
        }
        None => (None, None),
    };
    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        envship_version: env!("CARGO_PKG_VERSION").to_string(),
        name: opts.name.clone(),
        version: opts.version.clone(),
        target: opts.target.clone(),
        archive: out.file_name(),
        format: opts.format.as_str().to_string(),
        sha256: sha256.clone(),
        arcroot: (!plan.arcroot.is_empty())
            .then(|| String::from_utf8_lossy(&plan.arcroot).into_owned()),
        build_prefix: prefixes.build.clone(),
        dest_prefix: prefixes.dest.clone(),
        recorded_prefix: prefixes.recorded().to_string(),
        source_date_epoch: ctx.mtime,
        file_count: plan.file_count,
        bytes: plan.bytes,
        relocation: plan.summary.clone(),
        conda_packages: plan.scan.conda.clone(),
        pip_packages: plan.scan.pip.clone(),
        sbom: Some(output::file_name(&out.sbom)),
        block_index: block_index.as_ref().map(|(_, r)| r.clone()),
        evidence: None,
        env_vars: plan.scan.env_vars.clone(),
        audit: None,
        test: None,
        extra: Default::default(),
    };
    sidecars.push(manifest.stage(&out.manifest)?);
    written.staged.commit(&out.archive, opts.force)?;
    // The manifest last: it names the others.
    for staged in sidecars {
        let path = staged.path().to_path_buf();
        staged
            .commit()
            .map_err(PackError::io("renaming to", path))?;
    }
    trim_cache(how.cache.as_deref());
    Ok(PackOutput {
        sha256_path: out.sha256.exists().then(|| out.sha256.clone()),
        archive: out.archive,
        sha256,
        manifest_path: out.manifest,
        manifest,
        sbom_path: out.sbom,
        sbom_counts,
        file_count: plan.file_count,
        bytes: plan.bytes,
        block_index_path: block_index.map(|(p, _)| p),
        blocks,
    })
}
