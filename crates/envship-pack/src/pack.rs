//! `pack`: prefix → archive (+ `.sha256` and `.manifest.json` sidecars).

use std::{
    collections::BTreeSet,
    fs,
    io::{self, Read, Write},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    sync::Arc,
};

use envship_spec::{Progress, ProgressUnit};
use sha2::{Digest, Sha256};

use crate::{
    error::{PackError, Result},
    manifest::{Manifest, ManifestTarget, RelocationSummary, MANIFEST_VERSION},
    pgzip::ParGzWriter,
    prefix::{self, Entry, Kind},
    pyc,
    relocate::{self, RelocEntry, RelocMode, RelocationList},
    scripts,
};

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Format {
    /// gzip-compressed tar (readable by RHEL6's tar); the default.
    #[default]
    #[serde(rename = "tar.gz")]
    TarGz,
    /// zstd-compressed tar.
    #[serde(rename = "tar.zst")]
    TarZst,
    /// zip (no hardlinks: linked files are stored twice; names must be UTF-8).
    #[serde(rename = "zip")]
    Zip,
    /// A plain directory.
    #[serde(rename = "dir")]
    Dir,
}

impl Format {
    /// The file name extension (`tar.gz`, …; empty for `dir`).
    pub fn extension(self) -> &'static str {
        match self {
            Format::TarGz => "tar.gz",
            Format::TarZst => "tar.zst",
            Format::Zip => "zip",
            Format::Dir => "",
        }
    }

    /// The name used in manifests and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Dir => "dir",
            f => f.extension(),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tar.gz" | "tgz" => Ok(Format::TarGz),
            "tar.zst" | "tzst" => Ok(Format::TarZst),
            "zip" => Ok(Format::Zip),
            "dir" => Ok(Format::Dir),
            _ => Err(format!(
                "unknown format {s:?}: expected tar.gz, tar.zst, zip or dir"
            )),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The mtime stored when `SOURCE_DATE_EPOCH` is not set: 1980-01-01T00:00:00Z, the earliest
/// time zip can store, so every format stores the same instant.
pub const DEFAULT_EPOCH: u64 = 315_532_800;

/// What to pack and how.
#[derive(Clone, Debug, Default)]
pub struct PackOptions {
    /// The installed environment.
    pub prefix: PathBuf,
    /// The prefix string installed files contain; default: `prefix` made absolute.
    pub build_prefix: Option<String>,
    /// Output path; default `dist/NAME-VERSION-SUBDIR.EXT` (see [`default_file_name`]).
    pub output: Option<PathBuf>,
    /// Environment name.
    pub name: String,
    /// Release version.
    pub version: String,
    /// Target the archive is for.
    pub target: ManifestTarget,
    /// Output format.
    pub format: Format,
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
    /// Regular files stored.
    pub file_count: u64,
    /// Their uncompressed bytes.
    pub bytes: u64,
}

/// `NAME-VERSION-SUBDIR.EXT` (no extension for `dir`).
pub fn default_file_name(name: &str, version: &str, subdir: &str, format: Format) -> String {
    match format {
        Format::Dir => format!("{name}-{version}-{subdir}"),
        f => format!("{name}-{version}-{subdir}.{}", f.extension()),
    }
}

/// The sidecar base of an archive path: the path without its format extension.
fn sidecar_base(archive: &Path, format: Format) -> PathBuf {
    let s = archive.as_os_str().as_bytes();
    let ext = format!(".{}", format.extension());
    let base = if format != Format::Dir && s.ends_with(ext.as_bytes()) {
        &s[..s.len() - ext.len()]
    } else {
        s
    };
    PathBuf::from(std::ffi::OsStr::from_bytes(base))
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

enum Src {
    Disk(PathBuf),
    Mem(Arc<Vec<u8>>),
}

enum ItemKind {
    Dir,
    File {
        src: Src,
        exec: bool,
        reloc: Option<RelocEntry>,
        /// For a `__pycache__/*.pyc` whose source is stored unchanged: that source in the prefix.
        pyc_source: Option<PathBuf>,
    },
    Symlink(Vec<u8>),
    Hardlink(Vec<u8>),
}

struct Item {
    name: Vec<u8>,
    kind: ItemKind,
}

struct Ctx<'a> {
    mtime: u64,
    /// `Some((old, new))` when relocating at pack time.
    rewrite: Option<(Vec<u8>, Vec<u8>)>,
    progress: &'a dyn Progress,
}

impl Ctx<'_> {
    /// The bytes to store for a file: a reader and its exact length.
    fn content(
        &self,
        src: &Src,
        reloc: Option<&RelocEntry>,
        pyc_source: Option<&Path>,
    ) -> Result<(Box<dyn Read + Send>, u64)> {
        let data = match src {
            Src::Mem(d) => return Ok((Box::new(io::Cursor::new(d.to_vec())), d.len() as u64)),
            Src::Disk(p) => match (reloc, &self.rewrite, pyc_source) {
                (_, _, Some(source)) => {
                    let data = fs::read(p).map_err(PackError::io("reading", p))?;
                    self.pyc_for_epoch(data, source)
                }
                (Some(r), Some((old, new)), None) => {
                    let data = fs::read(p).map_err(PackError::io("reading", p))?;
                    match relocate::relocate_content(r, &data, old, new)? {
                        Some(d) => d,
                        None => data,
                    }
                }
                _ => {
                    let f = fs::File::open(p).map_err(PackError::io("reading", p))?;
                    let len = f.metadata().map_err(PackError::io("reading", p))?.len();
                    return Ok((
                        Box::new(Exact {
                            inner: f,
                            left: len,
                            path: p.clone(),
                        }),
                        len,
                    ));
                }
            },
        };
        let len = data.len() as u64;
        Ok((Box::new(io::Cursor::new(data)), len))
    }
}

impl Ctx<'_> {
    /// A timestamp-based .pyc records its source's mtime and size, and every stored mtime is
    /// the epoch: if the .pyc matches its source in the prefix, record the epoch instead, so it
    /// stays valid where the archive is extracted with mtimes (tar, `envship unpack`) and Python
    /// does not recompile it on every import from a read-only deployment. A source changed by
    /// relocation later gets a new mtime, which invalidates the .pyc as it should.
    fn pyc_for_epoch(&self, mut data: Vec<u8>, source: &Path) -> Vec<u8> {
        use std::os::unix::fs::MetadataExt;
        let Ok(md) = fs::metadata(source) else {
            return data;
        };
        // Python compares the low 32 bits (`int(mtime) & 0xFFFFFFFF`, same for the size).
        let (mtime, size) = (md.mtime() as u32, md.len() as u32);
        if data.len() >= 16
            && data[4..8] == [0; 4]
            && data[8..12] == mtime.to_le_bytes()
            && data[12..16] == size.to_le_bytes()
        {
            data[8..12].copy_from_slice(&(self.mtime as u32).to_le_bytes());
        }
        data
    }
}

/// `a/__pycache__/m.cpython-311.pyc` → `a/m.py` (module names hold no dot).
fn pyc_source_rel(rel: &[u8]) -> Option<Vec<u8>> {
    let name_start = rel.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
    let (dir, name) = rel.split_at(name_start);
    let parent = dir.strip_suffix(b"__pycache__/")?;
    let name = name.strip_suffix(b".pyc")?;
    let stem = &name[..name.iter().position(|&b| b == b'.')?];
    let mut out = parent.to_vec();
    out.extend_from_slice(stem);
    out.extend_from_slice(b".py");
    Some(out)
}

/// A reader that fails if the file is shorter than it was when its size was taken.
struct Exact {
    inner: fs::File,
    left: u64,
    path: PathBuf,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::other(format!(
                "{} shrank while being packed",
                self.path.display()
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Hashes what passes through.
struct HashWriter<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn source_date_epoch(opts: &PackOptions) -> u64 {
    opts.source_date_epoch
        .or_else(|| {
            std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|s| s.trim().parse().ok())
        })
        .unwrap_or(DEFAULT_EPOCH)
}

fn jobs(n: usize) -> usize {
    if n == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        n
    }
}

fn check_prefix_str(p: &str, what: &'static str) -> Result<()> {
    if !p.starts_with('/') {
        return Err(PackError::BadPrefix {
            prefix: p.into(),
            reason: what,
        });
    }
    Ok(())
}

/// Pack a prefix. See the crate docs for the archive layout.
pub fn pack(opts: &PackOptions, progress: &dyn Progress) -> Result<PackOutput> {
    let root =
        std::path::absolute(&opts.prefix).map_err(PackError::io("resolving", &opts.prefix))?;
    let build_prefix = match &opts.build_prefix {
        Some(b) => b.trim_end_matches('/').to_string(),
        None => root
            .to_str()
            .ok_or_else(|| PackError::BadPrefix {
                prefix: root.to_string_lossy().into_owned(),
                reason: "not valid UTF-8",
            })?
            .trim_end_matches('/')
            .to_string(),
    };
    check_prefix_str(&build_prefix, "the build prefix must be absolute")?;
    let dest = opts
        .dest_prefix
        .as_ref()
        .map(|d| d.trim_end_matches('/').to_string());
    if let Some(d) = &dest {
        check_prefix_str(d, "the destination prefix must be an absolute path")?;
    }
    let filter = prefix::Filter::new(&opts.exclude, &opts.include)?;

    progress.start("scan", None, ProgressUnit::Items);
    let mut scan = prefix::scan(&root, &build_prefix, &filter)?;
    progress.finish("scan");

    // Refusals, as conda-pack does.
    let details = |m: &std::collections::BTreeMap<String, Vec<String>>| {
        m.iter()
            .map(|(pkg, files)| {
                let shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
                let more = if files.len() > 5 {
                    format!(" (+{} more)", files.len() - 5)
                } else {
                    String::new()
                };
                format!("  {pkg}: {}{more}", shown.join(", "))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    if !scan.missing.is_empty() && !opts.allow_missing_files {
        return Err(PackError::ManagedFiles {
            what: "missing",
            count: scan.missing.len(),
            details: details(&scan.missing),
            flag: "--ignore-missing-files",
        });
    }
    if !scan.modified.is_empty() && !opts.allow_modified_files {
        return Err(PackError::ManagedFiles {
            what: "modified (size differs from conda-meta)",
            count: scan.modified.len(),
            details: details(&scan.modified),
            flag: "--ignore-modified-files",
        });
    }
    let editable: Vec<String> = scan
        .pip
        .iter()
        .filter(|p| p.editable)
        .map(|p| format!("{} ({})", p.name, p.direct_url.as_deref().unwrap_or("?")))
        .collect();
    if !editable.is_empty() && !opts.allow_editable {
        return Err(PackError::EditableInstalls {
            packages: editable.join(", "),
        });
    }
    for bad in scripts::invalid_vars(&scan.env_vars) {
        tracing::warn!(
            "conda-meta/state: env var {bad:?} is not a valid shell name; not set by bin/activate"
        );
    }

    // .pyc files holding the build prefix cannot be byte-relocated (marshal stores lengths):
    // rewritten copies go into the archive instead, or they stay out (see pyc.rs).
    let pyc_rels: Vec<Vec<u8>> = scan
        .relocs
        .keys()
        .filter(|k| k.ends_with(b".pyc"))
        .cloned()
        .collect();
    for r in &pyc_rels {
        scan.relocs.remove(r);
    }
    let pycs = pyc::rewrite(&root, &pyc_rels, &build_prefix, dest.as_deref())?;
    for (rel, why) in &pycs.dropped {
        tracing::warn!(
            "leaving {} out of the archive: {why}; Python recompiles it from source on import",
            String::from_utf8_lossy(rel)
        );
    }

    let recorded = dest.clone().unwrap_or_else(|| build_prefix.clone());
    let mut reloc_entries: Vec<RelocEntry> = scan.relocs.values().cloned().collect();
    if let Some(d) = &dest {
        let list = RelocationList {
            prefix: build_prefix.as_bytes().to_vec(),
            entries: reloc_entries.clone(),
        };
        relocate::check_capacity(&list, d.as_bytes())?;
    }
    reloc_entries.push(RelocEntry {
        path: b"bin/activate".to_vec(),
        mode: RelocMode::Text,
        capacity: 0,
    });
    reloc_entries.sort_by(|a, b| a.path.cmp(&b.path));
    let summary = RelocationSummary {
        text_files: scan
            .relocs
            .values()
            .filter(|r| r.mode == RelocMode::Text)
            .count(),
        binary_files: scan
            .relocs
            .values()
            .filter(|r| r.mode == RelocMode::Binary)
            .count(),
        max_prefix_len: scan
            .relocs
            .values()
            .filter(|r| r.mode == RelocMode::Binary)
            .map(|r| r.capacity)
            .min(),
    };
    let list = RelocationList {
        prefix: recorded.as_bytes().to_vec(),
        entries: reloc_entries,
    };

    // Generated files and the directories that hold them.
    let mut generated: Vec<(Vec<u8>, Vec<u8>, bool)> = vec![
        (
            b"bin/activate".to_vec(),
            scripts::activate(recorded.as_bytes(), &scan.env_vars),
            false,
        ),
        (
            b"bin/deactivate".to_vec(),
            scripts::deactivate(&scan.env_vars),
            false,
        ),
        (b"bin/conda-unpack".to_vec(), scripts::conda_unpack(), true),
        (
            relocate::RELOCATION_LIST.as_bytes().to_vec(),
            list.to_text().into_bytes(),
            false,
        ),
    ];
    generated.sort();
    let mut entries: Vec<Entry> = scan.entries.clone();
    let dirs: BTreeSet<Vec<u8>> = entries
        .iter()
        .filter(|e| e.kind == Kind::Dir)
        .map(|e| e.rel.clone())
        .collect();
    for d in ["bin", "share", "share/envship"] {
        if !dirs.contains(d.as_bytes()) {
            entries.push(Entry {
                rel: d.as_bytes().to_vec(),
                kind: Kind::Dir,
            });
        }
    }
    let gen_names: BTreeSet<Vec<u8>> = generated.iter().map(|g| g.0.clone()).collect();
    entries.retain(|e| !gen_names.contains(&e.rel));

    // Archive names.
    let arcroot: Vec<u8> = opts
        .arcroot
        .as_deref()
        .map(|a| a.trim_matches('/').as_bytes().to_vec())
        .filter(|a| !a.is_empty())
        .unwrap_or_default();
    let name_of = |rel: &[u8]| -> Vec<u8> {
        if arcroot.is_empty() {
            rel.to_vec()
        } else {
            let mut n = arcroot.clone();
            n.push(b'/');
            n.extend_from_slice(rel);
            n
        }
    };
    let mut items: Vec<Item> = Vec::with_capacity(entries.len() + 8);
    if !arcroot.is_empty() {
        let mut acc = Vec::new();
        for part in arcroot.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            if !acc.is_empty() {
                acc.push(b'/');
            }
            acc.extend_from_slice(part);
            items.push(Item {
                name: acc.clone(),
                kind: ItemKind::Dir,
            });
        }
    }
    let mut file_count = 0u64;
    let mut bytes = 0u64;
    for e in entries {
        if pycs.dropped.contains_key(&e.rel) {
            continue;
        }
        let kind = match e.kind {
            Kind::Dir => ItemKind::Dir,
            Kind::Symlink(t) => ItemKind::Symlink(t),
            // another name of a left-out .pyc: left out too
            Kind::Hardlink(first) if pycs.dropped.contains_key(&first) => continue,
            Kind::Hardlink(first) => ItemKind::Hardlink(name_of(&first)),
            Kind::File { size, exec } => {
                let (src, size) = match pycs.files.get(&e.rel) {
                    Some(p) => (
                        Src::Disk(p.clone()),
                        fs::metadata(p).map_err(PackError::io("reading", p))?.len(),
                    ),
                    None => (
                        Src::Disk(scan.root.join(std::ffi::OsStr::from_bytes(&e.rel))),
                        size,
                    ),
                };
                file_count += 1;
                bytes += size;
                // (a source rewritten for --dest-prefix no longer matches its .pyc)
                let pyc_source = pyc_source_rel(&e.rel)
                    .filter(|s| dest.is_none() || !scan.relocs.contains_key(s))
                    .map(|s| scan.root.join(std::ffi::OsStr::from_bytes(&s)))
                    .filter(|s| s.is_file());
                ItemKind::File {
                    src,
                    exec,
                    reloc: scan.relocs.get(&e.rel).cloned(),
                    pyc_source,
                }
            }
        };
        items.push(Item {
            name: name_of(&e.rel),
            kind,
        });
    }
    for (rel, data, exec) in generated {
        file_count += 1;
        bytes += data.len() as u64;
        items.push(Item {
            name: name_of(&rel),
            kind: ItemKind::File {
                src: Src::Mem(Arc::new(data)),
                exec,
                reloc: None,
                pyc_source: None,
            },
        });
    }
    items.sort_by(|a, b| a.name.cmp(&b.name));

    // Output path.
    let out_path = match &opts.output {
        Some(p) => p.clone(),
        None => PathBuf::from("dist").join(default_file_name(
            &opts.name,
            &opts.version,
            &opts.target.subdir,
            opts.format,
        )),
    };
    let out_dir = match out_path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&out_dir).map_err(PackError::io("creating", &out_dir))?;
    if !opts.force && fs::symlink_metadata(&out_path).is_ok() {
        return Err(PackError::OutputExists { path: out_path });
    }
    let base = sidecar_base(&out_path, opts.format);
    let sha_path = with_suffix(&base, ".sha256");
    let manifest_path = with_suffix(&base, ".manifest.json");

    let ctx = Ctx {
        mtime: source_date_epoch(opts),
        rewrite: dest
            .as_ref()
            .map(|d| (build_prefix.as_bytes().to_vec(), d.as_bytes().to_vec())),
        progress,
    };
    let level = opts.compress_level.unwrap_or(4);
    let threads = jobs(opts.jobs);
    progress.start("pack", Some(bytes), ProgressUnit::Bytes);
    let sha256 = match opts.format {
        Format::TarGz | Format::TarZst => {
            let tmp = tempfile::Builder::new()
                .prefix(".envship-pack-")
                .tempfile_in(&out_dir)
                .map_err(PackError::io("creating a temp file in", &out_dir))?;
            let tmp_path = tmp.path().to_path_buf();
            let handle = tmp
                .as_file()
                .try_clone()
                .map_err(PackError::io("opening", tmp_path.clone()))?;
            let file = io::BufWriter::with_capacity(1 << 20, handle);
            let hw = HashWriter {
                inner: file,
                hash: Sha256::new(),
            };
            let io_err = PackError::io("writing", tmp_path.clone());
            let hw = if opts.format == Format::TarGz {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(|i| format!("envship-gzip-{i}"))
                    .build()
                    .map_err(PackError::ThreadPool)?;
                let gz = ParGzWriter::new(hw, level.clamp(0, 9) as u32, Arc::new(pool));
                write_tar(&items, gz, &ctx, &tmp_path)?
                    .finish()
                    .map_err(io_err)?
            } else {
                let mut enc = zstd::stream::write::Encoder::new(hw, level.clamp(1, 22))
                    .map_err(PackError::io("starting zstd for", tmp_path.clone()))?;
                // Always the multithreaded code path (even for -j1): zstd's output then does
                // not depend on the worker count, so archives are reproducible across -j.
                enc.multithread(threads as u32)
                    .map_err(PackError::io("starting zstd threads for", tmp_path.clone()))?;
                enc.include_checksum(true)
                    .map_err(PackError::io("configuring zstd for", tmp_path.clone()))?;
                write_tar(&items, enc, &ctx, &tmp_path)?
                    .finish()
                    .map_err(io_err)?
            };
            let HashWriter { mut inner, hash } = hw;
            inner
                .flush()
                .map_err(PackError::io("writing", tmp_path.clone()))?;
            drop(inner);
            tmp.as_file()
                .sync_all()
                .map_err(PackError::io("syncing", tmp_path.clone()))?;
            persist(tmp, &out_path, opts.force)?;
            Some(hex::encode(hash.finalize()))
        }
        Format::Zip => {
            let tmp = tempfile::Builder::new()
                .prefix(".envship-pack-")
                .tempfile_in(&out_dir)
                .map_err(PackError::io("creating a temp file in", &out_dir))?;
            let tmp_path = tmp.path().to_path_buf();
            write_zip(&items, tmp.as_file(), &ctx, &tmp_path, level)?;
            tmp.as_file()
                .sync_all()
                .map_err(PackError::io("syncing", tmp_path.clone()))?;
            let mut f =
                fs::File::open(&tmp_path).map_err(PackError::io("reading", tmp_path.clone()))?;
            let mut h = Sha256::new();
            io::copy(&mut f, &mut h).map_err(PackError::io("reading", tmp_path.clone()))?;
            persist(tmp, &out_path, opts.force)?;
            Some(hex::encode(h.finalize()))
        }
        Format::Dir => {
            let tmp = tempfile::Builder::new()
                .prefix(".envship-pack-")
                .tempdir_in(&out_dir)
                .map_err(PackError::io("creating a temp dir in", &out_dir))?;
            write_dir(&items, tmp.path(), &ctx)?;
            if opts.force && fs::symlink_metadata(&out_path).is_ok() {
                let r = if out_path.is_dir() {
                    fs::remove_dir_all(&out_path)
                } else {
                    fs::remove_file(&out_path)
                };
                r.map_err(PackError::io("removing", &out_path))?;
            }
            let kept = tmp.keep();
            fs::rename(&kept, &out_path).map_err(PackError::io("renaming to", &out_path))?;
            None
        }
    };
    progress.finish("pack");

    if let Some(sum) = &sha256 {
        let fname = out_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        relocate::write_atomic(&sha_path, format!("{sum}  {fname}\n").as_bytes())?;
    }
    let manifest = Manifest {
        manifest_version: MANIFEST_VERSION,
        envship_version: env!("CARGO_PKG_VERSION").to_string(),
        name: opts.name.clone(),
        version: opts.version.clone(),
        target: opts.target.clone(),
        archive: out_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        format: opts.format.as_str().to_string(),
        sha256: sha256.clone(),
        arcroot: (!arcroot.is_empty()).then(|| String::from_utf8_lossy(&arcroot).into_owned()),
        build_prefix: build_prefix.clone(),
        dest_prefix: dest.clone(),
        recorded_prefix: recorded,
        source_date_epoch: ctx.mtime,
        file_count,
        bytes,
        relocation: summary,
        conda_packages: scan.conda.clone(),
        pip_packages: scan.pip.clone(),
        env_vars: scan.env_vars.clone(),
        audit: None,
        test: None,
        extra: Default::default(),
    };
    manifest.write(&manifest_path)?;
    Ok(PackOutput {
        archive: out_path,
        sha256,
        sha256_path: sha_path.exists().then_some(sha_path),
        manifest_path,
        manifest,
        file_count,
        bytes,
    })
}

fn persist(tmp: tempfile::NamedTempFile, out: &Path, force: bool) -> Result<()> {
    // The temp file is 0600; the archive is for the team that deploys it.
    envship_spec::output::set_output_mode(tmp.as_file())
        .map_err(PackError::io("setting mode of", tmp.path().to_path_buf()))?;
    let r = if force {
        tmp.persist(out).map(|_| ())
    } else {
        tmp.persist_noclobber(out).map(|_| ())
    };
    r.map_err(|e| {
        if e.error.kind() == io::ErrorKind::AlreadyExists {
            PackError::OutputExists {
                path: out.to_path_buf(),
            }
        } else {
            PackError::io("renaming to", out)(e.error)
        }
    })
}

fn mode_of(exec: bool) -> u32 {
    if exec {
        0o755
    } else {
        0o644
    }
}

fn write_tar<W: Write>(items: &[Item], sink: W, ctx: &Ctx<'_>, out: &Path) -> Result<W> {
    let io_err = |e: io::Error| PackError::io("writing", out)(e);
    let mut b = tar::Builder::new(sink);
    b.mode(tar::HeaderMode::Deterministic);
    for item in items {
        let path = Path::new(std::ffi::OsStr::from_bytes(&item.name));
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(ctx.mtime);
        match &item.kind {
            ItemKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, io::empty()).map_err(io_err)?;
            }
            ItemKind::File {
                src,
                exec,
                reloc,
                pyc_source,
            } => {
                let (reader, len) = ctx.content(src, reloc.as_ref(), pyc_source.as_deref())?;
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(mode_of(*exec));
                h.set_size(len);
                b.append_data(&mut h, path, reader).map_err(io_err)?;
                ctx.progress.advance("pack", len);
            }
            ItemKind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, path, Path::new(std::ffi::OsStr::from_bytes(t)))
                    .map_err(io_err)?;
            }
            ItemKind::Hardlink(t) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_link(&mut h, path, Path::new(std::ffi::OsStr::from_bytes(t)))
                    .map_err(io_err)?;
            }
        }
    }
    b.into_inner().map_err(io_err)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn zip_time(epoch: u64) -> zip::DateTime {
    let secs = epoch.max(DEFAULT_EPOCH) as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let (h, mi, s) = (
        (rem / 3600) as u8,
        ((rem % 3600) / 60) as u8,
        (rem % 60) as u8,
    );
    zip::DateTime::from_date_and_time(y.clamp(1980, 2107) as u16, mo as u8, d as u8, h, mi, s)
        .unwrap_or_default()
}

fn write_zip(items: &[Item], file: &fs::File, ctx: &Ctx<'_>, out: &Path, level: i32) -> Result<()> {
    use zip::write::SimpleFileOptions;
    let zerr = |source| PackError::Zip {
        path: out.to_path_buf(),
        source,
    };
    let mut z = zip::ZipWriter::new(io::BufWriter::new(file));
    let base = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(i64::from(level.clamp(0, 9))))
        .last_modified_time(zip_time(ctx.mtime));
    let name_str = |n: &[u8]| -> Result<String> {
        String::from_utf8(n.to_vec()).map_err(|_| PackError::Unstorable {
            path: String::from_utf8_lossy(n).into_owned(),
            format: "zip",
            reason: "zip names must be UTF-8; use a tar format",
        })
    };
    // zip has no hardlinks: the second name gets a copy of the first's bytes.
    let by_name: std::collections::HashMap<&[u8], &Item> =
        items.iter().map(|i| (i.name.as_slice(), i)).collect();
    for item in items {
        let name = name_str(&item.name)?;
        match &item.kind {
            ItemKind::Dir => {
                z.add_directory(format!("{name}/"), base.unix_permissions(0o755))
                    .map_err(zerr)?;
            }
            ItemKind::Symlink(t) => {
                let target = name_str(t)?;
                z.add_symlink(name, target, base.unix_permissions(0o777))
                    .map_err(zerr)?;
            }
            ItemKind::File { .. } | ItemKind::Hardlink(_) => {
                let target = match &item.kind {
                    ItemKind::Hardlink(t) => by_name.get(t.as_slice()).copied().unwrap_or(item),
                    _ => item,
                };
                let ItemKind::File {
                    src,
                    exec,
                    reloc,
                    pyc_source,
                } = &target.kind
                else {
                    continue;
                };
                let (mut reader, len) = ctx.content(src, reloc.as_ref(), pyc_source.as_deref())?;
                let opts = base
                    .unix_permissions(mode_of(*exec))
                    .large_file(len >= u32::MAX as u64);
                z.start_file(name, opts).map_err(zerr)?;
                io::copy(&mut reader, &mut z).map_err(PackError::io("writing", out))?;
                ctx.progress.advance("pack", len);
            }
        }
    }
    let mut w = z.finish().map_err(zerr)?;
    w.flush().map_err(PackError::io("writing", out))?;
    Ok(())
}

fn write_dir(items: &[Item], dir: &Path, ctx: &Ctx<'_>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for item in items {
        let p = dir.join(std::ffi::OsStr::from_bytes(&item.name));
        match &item.kind {
            ItemKind::Dir => fs::create_dir_all(&p).map_err(PackError::io("creating", &p))?,
            ItemKind::File {
                src,
                exec,
                reloc,
                pyc_source,
            } => {
                let (mut reader, len) = ctx.content(src, reloc.as_ref(), pyc_source.as_deref())?;
                let mut f = fs::File::create(&p).map_err(PackError::io("creating", &p))?;
                io::copy(&mut reader, &mut f).map_err(PackError::io("writing", &p))?;
                // the stored epoch, as tar keeps it (keeps .pyc files valid, see pyc_for_epoch)
                f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(ctx.mtime))
                    .map_err(PackError::io("setting mtime of", &p))?;
                f.set_permissions(fs::Permissions::from_mode(mode_of(*exec)))
                    .map_err(PackError::io("setting mode of", &p))?;
                ctx.progress.advance("pack", len);
            }
            ItemKind::Symlink(t) => {
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(t), &p)
                    .map_err(PackError::io("creating symlink", &p))?;
            }
            ItemKind::Hardlink(t) => {
                let first = dir.join(std::ffi::OsStr::from_bytes(t));
                fs::hard_link(&first, &p).map_err(PackError::io("creating hardlink", &p))?;
            }
        }
    }
    let root_perm = fs::Permissions::from_mode(0o755);
    fs::set_permissions(dir, root_perm).map_err(PackError::io("setting mode of", dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(DEFAULT_EPOCH as i64 / 86_400), (1980, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
    }

    #[test]
    fn names() {
        assert_eq!(
            default_file_name("psana", "1.0", "linux-64", Format::TarGz),
            "psana-1.0-linux-64.tar.gz"
        );
        assert_eq!(
            sidecar_base(Path::new("d/x-1-linux-64.tar.zst"), Format::TarZst),
            PathBuf::from("d/x-1-linux-64")
        );
        assert_eq!("zip".parse::<Format>(), Ok(Format::Zip));
        assert_eq!(
            pyc_source_rel(b"lib/p/__pycache__/m.cpython-311.opt-1.pyc"),
            Some(b"lib/p/m.py".to_vec())
        );
        assert_eq!(
            pyc_source_rel(b"__pycache__/m.cpython-311.pyc"),
            Some(b"m.py".to_vec())
        );
        assert_eq!(pyc_source_rel(b"lib/p/m.pyc"), None);
        assert!("rar".parse::<Format>().is_err());
    }
}
