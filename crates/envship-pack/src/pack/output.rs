//! The output: the archive written to a temp file (or temp directory) in the output directory,
//! compressed and hashed on the way, synced, then renamed into place; then the sidecars.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{mpsc, Arc},
};

use envship_spec::{
    lock_file::{lock_path_for, FileLock},
    output::StagedFile,
};
use sha2::{Digest, Sha256};

use super::{
    installer::{write_installer, Label},
    plan::Item,
    squashfs::write_squashfs,
    writers::{write_dir, write_tar, write_zip, Ctx},
};
use crate::{
    blocks::{cache::BlockCache, index::BlockIndex, BlockStats, BlockWriter, Codec},
    error::{PackError, Result},
    format::{Format, Sidecar, SquashfsCompression},
    relocate,
};

/// Where the archive and its sidecars go.
pub(super) struct Destination {
    pub archive: PathBuf,
    /// The directory temp files are made in (so the final rename stays on one file system).
    pub dir: PathBuf,
    pub sha256: PathBuf,
    pub manifest: PathBuf,
    pub sbom: PathBuf,
    /// Held until the archive and its sidecars are in place: a second pack to the same output
    /// waits (`.NAME.envship-lock` next to it).
    _lock: FileLock,
}

impl Destination {
    /// Creates the output directory and locks the output; refuses an existing output unless
    /// `force`.
    pub fn prepare(archive: PathBuf, force: bool) -> Result<Self> {
        let dir = match archive.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&dir).map_err(PackError::io("creating", &dir))?;
        let lock = FileLock::acquire_logged(&lock_path_for(&archive))
            .map_err(|f| PackError::io(f.action, f.path)(f.source))?;
        if !force && fs::symlink_metadata(&archive).is_ok() {
            return Err(PackError::OutputExists { path: archive });
        }
        Ok(Destination {
            sha256: Sidecar::Sha256.path_for(&archive),
            manifest: Sidecar::Manifest.path_for(&archive),
            sbom: Sidecar::Sbom.path_for(&archive),
            archive,
            dir,
            _lock: lock,
        })
    }

    /// The archive's file name, as the sidecars record it.
    pub fn file_name(&self) -> String {
        file_name(&self.archive)
    }
}

/// The last component of `path`, as the manifest records it.
pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// How to compress.
pub(super) struct Compression {
    pub format: Format,
    /// The block compression of a squashfs image.
    pub squashfs: SquashfsCompression,
    pub level: i32,
    pub threads: usize,
    /// Compressed blocks to reuse and keep (tar formats).
    pub cache: Option<Arc<BlockCache>>,
}

/// A written archive, not yet at its final path: its sha256 and, for tar.gz and tar.zst, its
/// block index.
pub(super) struct Written {
    pub staged: Staged,
    pub sha256: Option<String>,
    pub blocks: Option<(BlockIndex, BlockStats)>,
}

impl Written {
    fn plain(staged: Staged, sha256: Option<String>) -> Self {
        Written {
            staged,
            sha256,
            blocks: None,
        }
    }
}

/// The archive, complete and synced under a temp name in the output directory. Dropped, it is
/// removed; [`Staged::commit`] renames it into place (which needs no free space).
pub(super) enum Staged {
    /// A file; `executable` for the sh installer.
    File {
        tmp: tempfile::NamedTempFile,
        executable: bool,
    },
    /// A directory (`--format dir`).
    Dir(tempfile::TempDir),
}

impl Staged {
    /// Put the archive at `out` (replacing what is there only if `force`).
    pub fn commit(self, out: &Path, force: bool) -> Result<()> {
        match self {
            Staged::File { tmp, executable } => persist(tmp, out, force, executable),
            Staged::Dir(tmp) => {
                if force && fs::symlink_metadata(out).is_ok() {
                    let r = if out.is_dir() {
                        fs::remove_dir_all(out)
                    } else {
                        fs::remove_file(out)
                    };
                    r.map_err(PackError::io("removing", out))?;
                }
                // Not `keep()` before the rename: a failed rename still removes the temp dir.
                fs::rename(tmp.path(), out).map_err(PackError::io("renaming to", out))?;
                let _ = tmp.keep();
                Ok(())
            }
        }
    }
}

/// Writes the archive to a temp file (or directory) next to `out`.
pub(super) fn write_archive(
    items: &[Item],
    ctx: &Ctx<'_>,
    out: &Destination,
    how: &Compression,
    label: &Label<'_>,
) -> Result<Written> {
    remove_stale_temps(&out.dir);
    match how.format {
        Format::TarGz | Format::TarZst => write_tar_file(items, ctx, out, how),
        Format::Sh => {
            let (tmp, sha256) = write_installer(items, ctx, out, how, label)?;
            let staged = Staged::File {
                tmp,
                executable: true,
            };
            Ok(Written::plain(staged, Some(sha256)))
        }
        Format::Squashfs => {
            let (tmp, sha256) = write_squashfs(items, ctx, out, how)?;
            let staged = Staged::File {
                tmp,
                executable: false,
            };
            Ok(Written::plain(staged, Some(sha256)))
        }
        Format::Zip => {
            let tmp = temp_file(&out.dir)?;
            let tmp_path = tmp.path().to_path_buf();
            write_zip(items, tmp.as_file(), ctx, &tmp_path, how.level)?;
            tmp.as_file()
                .sync_all()
                .map_err(PackError::io("syncing", tmp_path.clone()))?;
            let sha256 = envship_spec::digest::sha256_file(&tmp_path)
                .map_err(PackError::io("reading", tmp_path))?;
            let staged = Staged::File {
                tmp,
                executable: false,
            };
            Ok(Written::plain(staged, Some(sha256)))
        }
        Format::Dir => {
            let tmp = tempfile::Builder::new()
                .prefix(&temp_prefix())
                .tempdir_in(&out.dir)
                .map_err(PackError::io("creating a temp dir in", &out.dir))?;
            write_dir(items, tmp.path(), ctx)?;
            Ok(Written::plain(Staged::Dir(tmp), None))
        }
    }
}

/// A compressed tar, hashed as it is written.
fn write_tar_file(
    items: &[Item],
    ctx: &Ctx<'_>,
    out: &Destination,
    how: &Compression,
) -> Result<Written> {
    let (tmp, sha256, blocks) = write_tar_temp(items, ctx, &out.dir, how)?;
    Ok(Written {
        staged: Staged::File {
            tmp,
            executable: false,
        },
        sha256: Some(sha256),
        blocks: Some(blocks),
    })
}

/// A compressed tar (gzip unless the format is tar.zst) in a synced temp file in `dir`, its
/// sha256, its block index and how many blocks were reused.
pub(super) fn write_tar_temp(
    items: &[Item],
    ctx: &Ctx<'_>,
    dir: &Path,
    how: &Compression,
) -> Result<(tempfile::NamedTempFile, String, (BlockIndex, BlockStats))> {
    let tmp = temp_file(dir)?;
    let tmp_path = tmp.path().to_path_buf();
    let handle = tmp
        .as_file()
        .try_clone()
        .map_err(PackError::io("opening", tmp_path.clone()))?;
    let hw = HashWriter::new(io::BufWriter::with_capacity(
        1 << 20,
        EarlyWriteback::new(handle),
    ));
    let codec = if how.format == Format::TarZst {
        Codec::Zstd(how.level.clamp(1, 22))
    } else {
        Codec::Gzip(how.level.clamp(0, 9) as u32)
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(how.threads)
        .thread_name(|i| format!("envship-compress-{i}"))
        .build()
        .map_err(PackError::ThreadPool)?;
    let mut sink = BlockWriter::new(hw, codec, Arc::new(pool), how.cache.clone());
    write_tar(items, &mut sink, ctx, &tmp_path)?;
    let (hw, index, stats) = sink
        .finish()
        .map_err(PackError::io("writing", tmp_path.clone()))?;
    let sha256 = hw
        .finish()
        .map_err(PackError::io("writing", tmp_path.clone()))?;
    tmp.as_file()
        .sync_all()
        .map_err(PackError::io("syncing", tmp_path))?;
    Ok((tmp, sha256, (index, stats)))
}

pub(super) fn temp_file(dir: &Path) -> Result<tempfile::NamedTempFile> {
    tempfile::Builder::new()
        .prefix(&temp_prefix())
        .tempfile_in(dir)
        .map_err(PackError::io("creating a temp file in", dir))
}

/// What every temp name of pack starts with.
const TEMP_MARK: &str = ".envship-pack-";

/// This process's temp-name prefix, `.envship-pack-HOST-PID-`: a pack killed with SIGKILL
/// leaves its temp file (or directory) behind, and the name says whose it was.
fn temp_prefix() -> String {
    format!("{TEMP_MARK}{}", envship_spec::stale_temp::owner_tag())
}

/// Remove the temp files and directories that killed packs of this host left in `dir`: the
/// archive's, and the sidecars' (written by `write_atomic`, `.NAME.HOST-PID-RANDOM`).
pub(super) fn remove_stale_temps(dir: &Path) {
    envship_spec::stale_temp::remove_left_by_dead(
        dir,
        |n| match n.strip_prefix(TEMP_MARK) {
            Some(_) => Some(TEMP_MARK.len()),
            None => envship_spec::stale_temp::tag_after_name(n, ""),
        },
        "pack",
    );
}

/// Starts the kernel's writeback of every 32 MiB written, without waiting for it, so that the
/// fsync before the rename has little left to write (on a re-release it was 0.2 s of 1.4 s).
pub(super) struct EarlyWriteback {
    file: fs::File,
    written: u64,
    started: u64,
}

impl EarlyWriteback {
    pub fn new(file: fs::File) -> Self {
        EarlyWriteback {
            file,
            written: 0,
            started: 0,
        }
    }
}

impl Write for EarlyWriteback {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= 32 << 20 {
            use std::os::fd::AsRawFd;
            // SAFETY: a valid fd and a range of it; SYNC_FILE_RANGE_WRITE only starts
            // writeback (Linux 2.6.17+). A failure only loses the head start.
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    self.started as libc::off64_t,
                    (self.written - self.started) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.started = self.written;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Hashes what passes through, on a thread of its own: sha256 is serial, and on the writing
/// thread it was an eighth of a warm pack's time.
pub(super) struct HashWriter<W> {
    inner: W,
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
    hasher: Option<std::thread::JoinHandle<String>>,
}

impl<W: Write> HashWriter<W> {
    pub fn new(inner: W) -> Self {
        // A few blocks in flight: the hasher keeps up with the writer, memory stays bounded.
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(16);
        let hasher = std::thread::Builder::new()
            .name("envship-sha256".into())
            .spawn(move || {
                let mut hash = Sha256::new();
                for chunk in rx {
                    hash.update(&chunk);
                }
                hex::encode(hash.finalize())
            })
            .ok();
        let mut hw = HashWriter {
            inner,
            tx: Some(tx),
            hasher,
        };
        if hw.hasher.is_none() {
            hw.tx = None;
        }
        hw
    }

    /// Flushes the writer; the hex sha256 of everything written.
    pub fn finish(mut self) -> io::Result<String> {
        self.inner.flush()?;
        drop(self.tx.take());
        self.hasher
            .take()
            .and_then(|h| h.join().ok())
            .ok_or_else(|| io::Error::other("the sha256 thread could not run"))
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let sent = self.tx.as_ref().map(|tx| tx.send(buf[..n].to_vec()));
        match sent {
            Some(Ok(())) => Ok(n),
            _ => Err(io::Error::other("the sha256 thread stopped")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn persist(tmp: tempfile::NamedTempFile, out: &Path, force: bool, executable: bool) -> Result<()> {
    // The temp file is 0600; the archive is for the team that deploys it. The installer is run
    // with `sh FILE`, but `./FILE` should work too.
    let mode = if executable {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o755))
    } else {
        envship_spec::output::set_output_mode(tmp.as_file())
    };
    mode.map_err(PackError::io("setting mode of", tmp.path().to_path_buf()))?;
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

/// The `.sha256` sidecar, in `sha256sum` format, staged.
pub(super) fn stage_sha256_sidecar(out: &Destination, sum: &str) -> Result<StagedFile> {
    relocate::stage_atomic(
        &out.sha256,
        format!("{sum}  {}\n", out.file_name()).as_bytes(),
    )
}
