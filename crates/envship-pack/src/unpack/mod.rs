//! `unpack`: hardened, parallel extraction of an archive (tar.gz, tar.zst, tar, zip, pack's sh
//! installer, squashfs) followed by the same relocation `bin/conda-unpack` does.
//!
//! Every name keeps the path rule ([`crate::archive_path`]) and every write goes through a
//! [`Beneath`] of DEST, so nothing is written through a symlink or outside DEST. Refused, with
//! the entry named: absolute names, names with `..`, entries below a symlink of the archive,
//! hardlinks to anything but a regular file extracted earlier, devices, FIFOs and sockets.
//! Symlinks themselves may point anywhere (absolute, or out of DEST), as tar and conda-pack
//! allow: they are created last and never written through. Regular files are written first
//! (small ones on worker threads, with bounded memory), then hardlinks, then symlinks.
//!
//! A failed unpack (a refused entry, a broken archive, a failed relocation) removes everything
//! it created, DEST too if it made it; with `force`, files the archive replaced stay replaced.

use std::{
    collections::{BTreeSet, HashSet},
    fs,
    io::{self, BufReader, Read, Seek, Write},
    path::{Path, PathBuf},
    sync::{Condvar, Mutex},
};

use envship_spec::{Progress, ProgressUnit};

use crate::{
    archive_path::ArchivePath,
    beneath::{is_link_in_the_way, Beneath},
    error::{PackError, Result},
    format::{installer_payload_offset, ArchiveKind},
    relocate::{self, RelocateOutput, RelocationList, RELOCATION_LIST},
};

/// How to unpack.
#[derive(Clone, Debug, Default)]
pub struct UnpackOptions {
    /// Unpack into a non-empty DEST.
    pub force: bool,
    /// Writer threads; 0 = all cores.
    pub jobs: usize,
    /// Only extract; leave the files with the prefix they were packed with.
    pub no_relocate: bool,
    /// Relocate to this prefix instead of DEST's absolute path (e.g. when DEST will be
    /// bind-mounted or moved there).
    pub prefix: Option<String>,
    /// Take unchanged files from a live tree by hard link, without inflating their blocks
    /// (tar.gz and tar.zst with a block index; see [`LinkFrom`]).
    pub link_from: Option<LinkFrom>,
}

/// What `unpack` did.
#[derive(Clone, Debug)]
pub struct UnpackOutput {
    /// The environment root: DEST, or DEST/ARCROOT when the archive has one top directory that
    /// holds the environment.
    pub env_root: PathBuf,
    /// Regular files written.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Symlinks and hardlinks created.
    pub links: u64,
    /// The relocation done (`None` when the archive has no relocation list or `no_relocate`).
    pub relocation: Option<RelocateOutput>,
    /// What was hard-linked from the live tree (all zero without `link_from`).
    pub linked: Linked,
}

mod link;
mod marker;
mod squashfs;

pub use link::{LinkFrom, Linked};
pub use marker::{finished, unpacking_marker};

/// Files at most this big are handed to worker threads; bigger ones are streamed.
const SMALL: u64 = 1 << 20;
/// Bytes of small files in flight at most.
const INFLIGHT_LIMIT: usize = 64 << 20;

fn unsafe_entry(name: &[u8], reason: &'static str) -> PackError {
    PackError::UnsafeEntry {
        entry: String::from_utf8_lossy(name).into_owned(),
        reason,
    }
}

/// Check an entry name against the path rule; `None` for the root itself.
fn entry_path(name: &[u8]) -> Result<Option<ArchivePath>> {
    ArchivePath::parse(name).map_err(|v| unsafe_entry(name, v.reason()))
}

fn has_symlink_ancestor(name: &ArchivePath, symlinks: &HashSet<ArchivePath>) -> bool {
    name.ancestors().any(|a| {
        ArchivePath::parse(a)
            .ok()
            .flatten()
            .is_some_and(|a| symlinks.contains(&a))
    })
}

fn dest_is_empty(dest: &Path) -> Result<bool> {
    match fs::read_dir(dest) {
        Ok(mut rd) => Ok(rd.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(PackError::io("reading", dest)(e)),
    }
}

enum Deferred {
    Symlink {
        name: ArchivePath,
        target: Vec<u8>,
    },
    Hardlink {
        name: ArchivePath,
        target: ArchivePath,
    },
}

struct Writer<'a> {
    dest: &'a Beneath,
    /// `--force`: replace existing non-directories instead of failing.
    replace: bool,
    inflight: Mutex<usize>,
    cv: Condvar,
    error: Mutex<Option<PackError>>,
    progress: &'a dyn Progress,
}

impl Writer<'_> {
    fn path(&self, rel: &ArchivePath) -> PathBuf {
        self.dest.display(rel.as_bytes())
    }

    /// An I/O error on entry `rel`: a symlink or file in the way is the archive's doing.
    fn err(&self, rel: &[u8], action: &'static str) -> impl FnOnce(io::Error) -> PackError + '_ {
        let rel = rel.to_vec();
        move |e| {
            if is_link_in_the_way(&e) {
                unsafe_entry(&rel, "a symlink or a file is in the way")
            } else if e.kind() == io::ErrorKind::AlreadyExists {
                unsafe_entry(&rel, "something already exists at this path")
            } else {
                PackError::io(action, self.dest.display(&rel))(e)
            }
        }
    }

    fn mkdir(&self, rel: &[u8]) -> Result<()> {
        self.dest
            .create_dir_all(rel)
            .map_err(self.err(rel, "creating"))
    }

    fn ensure_parent(&self, rel: &ArchivePath) -> Result<()> {
        self.mkdir(rel.parent())
    }

    fn create(&self, rel: &ArchivePath, exec: bool) -> Result<fs::File> {
        let mode = if exec { 0o755 } else { 0o644 };
        self.dest
            .create_file(rel, mode, self.replace)
            .map_err(self.err(rel.as_bytes(), "creating"))
    }

    fn write_small(&self, rel: &ArchivePath, exec: bool, data: &[u8], mtime: u64) -> Result<()> {
        let mut f = self.create(rel, exec)?;
        f.write_all(data)
            .map_err(PackError::io("writing", self.path(rel)))?;
        set_mtime(&f, mtime, &self.path(rel))
    }

    fn fail(&self, e: PackError) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
    }

    fn failed(&self) -> bool {
        self.error.lock().map(|e| e.is_some()).unwrap_or(true)
    }
}

/// Keep the archive's mtime, as tar does: `.pyc` files record their source's mtime, and pack
/// stores the epoch there, so they stay valid (Python does not recompile them on import).
fn set_mtime(f: &fs::File, mtime: u64, path: &Path) -> Result<()> {
    f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime))
        .map_err(PackError::io("setting mtime of", path))
}

/// Unpack `archive` into `dest` and relocate it there (see the module docs for the checks).
pub fn unpack(
    archive: &Path,
    dest: &Path,
    opts: &UnpackOptions,
    progress: &dyn Progress,
) -> Result<UnpackOutput> {
    let out = unpack_unfinished(archive, dest, opts, progress)?;
    marker::finished(dest);
    Ok(out)
}

/// [`unpack`], with DEST still marked as unfinished ([`unpacking_marker`]) until the caller
/// calls [`finished`]: for a caller that writes more (the tree record) before DEST counts as
/// complete, so that a kill before then is cleared by the next unpack too.
pub fn unpack_unfinished(
    archive: &Path,
    dest: &Path,
    opts: &UnpackOptions,
    progress: &dyn Progress,
) -> Result<UnpackOutput> {
    let kind = ArchiveKind::sniff_file(archive)?;
    match kind {
        ArchiveKind::Squashfs => tracing::info!(
            "{} is a squashfs image: extracting it (not mounting it: mount the image itself \
             with squashfuse at its --dest-prefix to use it unextracted)",
            archive.display()
        ),
        ArchiveKind::Sh => tracing::info!(
            "{} is an envship installer: unpacking its tar.gz payload",
            archive.display()
        ),
        _ => {}
    }
    let dest = std::path::absolute(dest).map_err(PackError::io("resolving", dest))?;
    let fresh = dest_is_empty(&dest)?;
    if !opts.force && !fresh {
        // Only an unpack into an empty DEST that was killed may be cleared: its marker says
        // that everything in DEST is what it wrote.
        if !marker::interrupted_fresh(&dest) {
            return Err(PackError::DestNotEmpty { path: dest });
        }
        tracing::warn!(
            "{} holds an unpack that was interrupted (killed): removing it and unpacking again",
            dest.display()
        );
        fs::remove_dir_all(&dest).map_err(PackError::io("removing", &dest))?;
    }
    // The directories made for DEST itself, outermost first, to remove them on failure.
    let made: Vec<PathBuf> = dest
        .ancestors()
        .take_while(|a| fs::symlink_metadata(a).is_err())
        .map(Path::to_path_buf)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    fs::create_dir_all(&dest).map_err(PackError::io("creating", &dest))?;
    marker::mark(&dest, fresh);
    let root = Beneath::open(&dest)
        .map_err(PackError::io("opening", &dest))?
        .with_journal();
    let result = unpack_into(archive, kind, &root, opts, progress);
    if result.is_err() {
        marker::finished(&dest);
        let left = root.rollback();
        for dir in made.iter().rev() {
            let _ = fs::remove_dir(dir);
        }
        if left > 0 {
            tracing::warn!(
                "{left} entries the failed unpack created in {} could not be removed",
                dest.display()
            );
        }
    }
    result
}

fn unpack_into(
    archive: &Path,
    kind: ArchiveKind,
    root: &Beneath,
    opts: &UnpackOptions,
    progress: &dyn Progress,
) -> Result<UnpackOutput> {
    let dest = root.path().to_path_buf();
    let threads = if opts.jobs == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.jobs
    };
    let w = Writer {
        dest: root,
        replace: opts.force,
        inflight: Mutex::new(0),
        cv: Condvar::new(),
        error: Mutex::new(None),
        progress,
    };
    let archive_size = fs::metadata(archive).map(|m| m.len()).ok();
    progress.start("unpack", archive_size, ProgressUnit::Bytes);
    let mut seen = Seen::default();
    let mut linked = Linked::default();
    // The pool's threads are joined before unpack goes on: a pool left to itself has threads
    // that outlive the call, holding their memory while the caller continues. (`build_scoped`
    // waits only for their closures to return, not for the threads to exit.)
    let handles = Mutex::new(Vec::new());
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .spawn_handler(|thread| {
            let handle = std::thread::Builder::new()
                .name(format!("envship-unpack-{}", thread.index()))
                .spawn(|| thread.run())?;
            if let Ok(mut h) = handles.lock() {
                h.push(handle);
            }
            Ok(())
        })
        .build()
        .map_err(PackError::ThreadPool)?;
    let read_result: Result<()> = pool.in_place_scope(|scope| {
        match kind {
            ArchiveKind::Zip => return unpack_zip(archive, &w, &mut seen),
            ArchiveKind::Squashfs => return squashfs::unpack_squashfs(archive, &w, &mut seen),
            _ => {}
        }
        let link = opts
            .link_from
            .as_ref()
            .filter(|_| matches!(kind, ArchiveKind::TarGz | ArchiveKind::TarZst));
        let stream = Stream {
            archive,
            kind,
            link,
        };
        read_tar(&stream, &w, &mut seen, &mut linked, scope, progress)
    });
    // Dropping the pool ends its threads; joining them waits until they have exited.
    drop(pool);
    for handle in handles.into_inner().unwrap_or_default() {
        let _ = handle.join();
    }
    read_result?;
    if let Some(e) = w.error.lock().ok().and_then(|mut e| e.take()) {
        return Err(e);
    }
    let links = seen.deferred.len() as u64;
    // Hardlinks first (to regular files only), then symlinks: nothing is written after a link.
    seen.deferred
        .sort_by_key(|d| matches!(d, Deferred::Symlink { .. }));
    for d in seen.deferred {
        match d {
            Deferred::Hardlink { name, target } => {
                w.ensure_parent(&name)?;
                root.hard_link(&target, &name, true)
                    .map_err(w.err(name.as_bytes(), "creating hardlink"))?;
            }
            Deferred::Symlink { name, target } => {
                w.ensure_parent(&name)?;
                root.symlink(&name, &target, opts.force)
                    .map_err(w.err(name.as_bytes(), "creating symlink"))?;
            }
        }
    }
    progress.finish("unpack");

    // Where is the environment? DEST, or its single top directory (a real one, not a link).
    let has_list =
        |b: &Beneath| -> Result<bool> { RelocationList::read_beneath(b).map(|l| l.is_some()) };
    let mut env = None;
    if !has_list(root)? {
        let tops: Vec<fs::DirEntry> = fs::read_dir(&dest)
            .map_err(PackError::io("reading", &dest))?
            .filter_map(|e| e.ok())
            .collect();
        if let [only] = tops.as_slice() {
            let is_dir = only.file_type().is_ok_and(|t| t.is_dir());
            let rel = entry_path(only.file_name().as_encoded_bytes())?;
            if let (true, Some(rel)) = (is_dir, rel) {
                let sub = root.sub(&rel).map_err(w.err(rel.as_bytes(), "opening"))?;
                if has_list(&sub)? {
                    env = Some(sub);
                }
            }
        }
    }
    let env_root = env
        .as_ref()
        .map_or(dest.clone(), |b| b.path().to_path_buf());
    let env_dir = env.as_ref().unwrap_or(root);
    let relocation = if opts.no_relocate || !has_list(env_dir)? {
        if !opts.no_relocate {
            tracing::warn!(
                "{} has no {RELOCATION_LIST}: not relocated (not packed by envship?)",
                archive.display()
            );
        }
        None
    } else {
        let new = relocate::prefix_string(opts.prefix.as_deref(), &env_root)?;
        progress.start("relocate", None, ProgressUnit::Items);
        let r = relocate::relocate_beneath(env_dir, &new)?;
        progress.finish("relocate");
        Some(r)
    };
    Ok(UnpackOutput {
        env_root,
        files: seen.files,
        bytes: seen.bytes,
        links,
        relocation,
        linked,
    })
}

/// The tar stream to read: the archive, or with `link`, its blocks the live tree lacks.
struct Stream<'a> {
    archive: &'a Path,
    kind: ArchiveKind,
    link: Option<&'a LinkFrom>,
}

impl<'a> Stream<'a> {
    fn open<'r>(
        &'r self,
        w: &Writer<'_>,
        seen: &mut Seen,
        linked: &mut Linked,
        progress: &'r dyn Progress,
    ) -> Result<Box<dyn Read + 'r>>
    where
        'a: 'r,
    {
        let archive = self.archive;
        if let Some(link) = self.link {
            link::check_index(archive, link)?;
            return link::prepare(archive, link, w, seen, linked);
        }
        let mut file = fs::File::open(archive).map_err(PackError::io("opening", archive))?;
        if self.kind == ArchiveKind::Sh {
            let offset = installer_payload_offset(archive)?;
            file.seek(io::SeekFrom::Start(offset))
                .map_err(PackError::io("reading", archive))?;
        }
        let counted = Counting {
            inner: BufReader::with_capacity(1 << 20, file),
            progress,
        };
        Ok(match self.kind {
            ArchiveKind::TarGz | ArchiveKind::Sh => {
                Box::new(flate2::read::MultiGzDecoder::new(counted))
            }
            ArchiveKind::TarZst => Box::new(
                zstd::stream::read::Decoder::new(counted)
                    .map_err(PackError::io("reading", archive))?,
            ),
            _ => Box::new(counted),
        })
    }
}

/// Reads a tar stream: directories and big files are written here, small files on `scope`'s
/// threads, links are deferred to `seen`.
fn read_tar<'s, 'a: 's>(
    stream: &Stream<'_>,
    w: &'s Writer<'a>,
    seen: &mut Seen,
    linked: &mut Linked,
    scope: &rayon::Scope<'s>,
    progress: &dyn Progress,
) -> Result<()> {
    let archive = stream.archive;
    let bad = |reason: String| PackError::BadArchive {
        path: archive.to_path_buf(),
        reason,
    };
    let reader = stream.open(w, seen, linked, progress)?;
    let mut ar = tar::Archive::new(reader);
    let entries = ar.entries().map_err(|e| bad(e.to_string()))?;
    for entry in entries {
        if w.failed() {
            break;
        }
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let raw = entry.path_bytes().into_owned();
        let Some(name) = entry_path(&raw)? else {
            continue;
        };
        if has_symlink_ancestor(&name, &seen.symlinks) {
            return Err(unsafe_entry(&raw, "entry below a symlink of the archive"));
        }
        let et = entry.header().entry_type();
        match et {
            tar::EntryType::Directory => w.mkdir(name.as_bytes())?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let exec = entry
                    .header()
                    .mode()
                    .map(|m| m & 0o111 != 0)
                    .unwrap_or(false);
                let size = entry.size();
                let mtime = entry.header().mtime().unwrap_or(0);
                w.ensure_parent(&name)?;
                seen.files += 1;
                seen.bytes += size;
                seen.files_written.insert(name.clone());
                if link::link_instead(w, seen, &name, &raw, size, linked)? {
                    continue;
                }
                if size <= SMALL {
                    let mut data = Vec::with_capacity(size as usize);
                    entry
                        .read_to_end(&mut data)
                        .map_err(|e| bad(e.to_string()))?;
                    spawn_small(w, scope, name, exec, data, mtime, &bad)?;
                } else {
                    let mut f = w.create(&name, exec)?;
                    io::copy(&mut entry, &mut f)
                        .map_err(PackError::io("writing", w.path(&name)))?;
                    set_mtime(&f, mtime, &w.path(&name))?;
                }
            }
            tar::EntryType::GNUSparse => {
                return Err(bad(format!(
                    "sparse entry {:?} is not supported",
                    String::from_utf8_lossy(&raw)
                )))
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                seen.symlink(name, target)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                seen.hardlink(&raw, name, &target)?;
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => {}
            _ => return Err(unsafe_entry(&raw, "device, fifo or unknown entry type")),
        }
    }
    for (raw, name, target) in std::mem::take(&mut seen.pending_hardlinks) {
        seen.hardlink(&raw, name, &target)?;
    }
    Ok(())
}

/// Hands a small file to a writer thread, waiting while too many bytes are in flight.
fn spawn_small<'s, 'a: 's>(
    w: &'s Writer<'a>,
    scope: &rayon::Scope<'s>,
    name: ArchivePath,
    exec: bool,
    data: Vec<u8>,
    mtime: u64,
    bad: &dyn Fn(String) -> PackError,
) -> Result<()> {
    let len = data.len();
    {
        let mut n = w
            .inflight
            .lock()
            .map_err(|_| bad("writer thread panicked".into()))?;
        while *n > 0 && *n + len > INFLIGHT_LIMIT {
            n =
                w.cv.wait(n)
                    .map_err(|_| bad("writer thread panicked".into()))?;
        }
        *n += len;
    }
    scope.spawn(move |_| {
        if let Err(e) = w.write_small(&name, exec, &data, mtime) {
            w.fail(e);
        }
        if let Ok(mut n) = w.inflight.lock() {
            *n -= len;
        }
        w.cv.notify_all();
    });
    Ok(())
}

/// What the reader has seen so far: links to create at the end, names for the checks.
#[derive(Default)]
struct Seen {
    deferred: Vec<Deferred>,
    /// Hard links of skipped blocks (linked unpacks), checked once every file is known.
    pending_hardlinks: Vec<(Vec<u8>, ArchivePath, Vec<u8>)>,
    /// Linked unpacks: the live tree, the files of inflated blocks to link from it instead of
    /// writing them, and the archive's mtime.
    link_while_reading: Option<(Beneath, link::LinkWhileReading, i64)>,
    files_written: BTreeSet<ArchivePath>,
    symlinks: HashSet<ArchivePath>,
    files: u64,
    bytes: u64,
}

impl Seen {
    fn symlink(&mut self, name: ArchivePath, target: Vec<u8>) -> Result<()> {
        if target.is_empty() || target.contains(&0) {
            return Err(unsafe_entry(
                name.as_bytes(),
                "symlink with an empty target",
            ));
        }
        self.symlinks.insert(name.clone());
        self.deferred.push(Deferred::Symlink { name, target });
        Ok(())
    }

    fn hardlink(&mut self, raw: &[u8], name: ArchivePath, target: &[u8]) -> Result<()> {
        let target = ArchivePath::parse(target)
            .ok()
            .flatten()
            .ok_or_else(|| unsafe_entry(raw, "hardlink target outside the destination"))?;
        if !self.files_written.contains(&target) {
            return Err(unsafe_entry(
                raw,
                "hardlink to something that is not a regular file of the archive",
            ));
        }
        self.deferred.push(Deferred::Hardlink { name, target });
        Ok(())
    }
}

fn unpack_zip(archive: &Path, w: &Writer<'_>, seen: &mut Seen) -> Result<()> {
    let bad = |reason: String| PackError::BadArchive {
        path: archive.to_path_buf(),
        reason,
    };
    let f = fs::File::open(archive).map_err(PackError::io("opening", archive))?;
    let mut z = zip::ZipArchive::new(BufReader::new(f)).map_err(|e| bad(e.to_string()))?;
    for i in 0..z.len() {
        let mut e = z.by_index(i).map_err(|e| bad(e.to_string()))?;
        let raw = e.name_raw().to_vec();
        let Some(name) = entry_path(&raw)? else {
            continue;
        };
        if has_symlink_ancestor(&name, &seen.symlinks) {
            return Err(unsafe_entry(&raw, "entry below a symlink of the archive"));
        }
        let file_type = e.unix_mode().map(|m| m & 0o170000);
        if e.is_dir() {
            w.mkdir(name.as_bytes())?;
        } else if e.is_symlink() {
            let mut target = Vec::new();
            e.read_to_end(&mut target)
                .map_err(|err| bad(err.to_string()))?;
            seen.symlink(name, target)?;
        } else if file_type.is_some_and(|t| t != 0 && t != 0o100000) {
            return Err(unsafe_entry(&raw, "device, fifo or unknown entry type"));
        } else {
            let exec = e.unix_mode().map(|m| m & 0o111 != 0).unwrap_or(false);
            w.ensure_parent(&name)?;
            let mut f = w.create(&name, exec)?;
            let n = io::copy(&mut e, &mut f).map_err(|err| bad(err.to_string()))?;
            w.progress.advance("unpack", e.compressed_size());
            seen.files += 1;
            seen.bytes += n;
            seen.files_written.insert(name);
        }
    }
    Ok(())
}

/// Counts compressed bytes read, for progress.
struct Counting<'a, R> {
    inner: R,
    progress: &'a dyn Progress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance("unpack", n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_keep_the_path_rule() {
        let p = entry_path(b"./a//b/").expect("ok").expect("not root");
        assert_eq!(p.as_bytes(), b"a/b");
        assert!(entry_path(b"./").expect("ok").is_none());
        assert!(entry_path(b"/etc/passwd").is_err());
        assert!(entry_path(b"a/../../x").is_err());
    }
}
