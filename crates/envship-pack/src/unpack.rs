//! `unpack`: hardened, parallel extraction of an archive (tar.gz, tar.zst, tar, zip) followed by
//! the same relocation `bin/conda-unpack` does.
//!
//! Refused, with the entry named: absolute names, names with `..`, entries below a symlink of
//! the archive, symlinks whose target is absolute, climbs out of DEST, or has `..` after a normal
//! component, hardlinks to anything but a regular file extracted earlier. Regular files are
//! written first (small ones on worker threads, with bounded memory), then hardlinks, then
//! symlinks, so no write ever goes through a link from the archive.

use std::{
    collections::{BTreeSet, HashSet},
    fs,
    io::{self, BufReader, Read, Write},
    os::unix::{ffi::OsStrExt, fs::PermissionsExt},
    path::{Path, PathBuf},
    sync::{Condvar, Mutex},
};

use envship_spec::{Progress, ProgressUnit};

use crate::{
    error::{PackError, Result},
    relocate::{self, RelocateOutput, RELOCATION_LIST},
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
}

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

/// Normalize an entry name to relative components; refuse absolute names and `..`.
fn clean_name(name: &[u8]) -> Result<Vec<u8>> {
    if name.starts_with(b"/") {
        return Err(unsafe_entry(name, "absolute path"));
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(unsafe_entry(name, "path contains `..`")),
            c => parts.push(c),
        }
    }
    Ok(parts.join(&b'/'))
}

/// Check a symlink target relative to the link's directory.
fn check_symlink(name: &[u8], target: &[u8]) -> Result<()> {
    if target.starts_with(b"/") {
        return Err(unsafe_entry(name, "symlink to an absolute path"));
    }
    let mut depth: i64 = name.split(|&b| b == b'/').count() as i64 - 1;
    let mut seen_normal = false;
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if seen_normal {
                    return Err(unsafe_entry(
                        name,
                        "symlink target has `..` after a directory name",
                    ));
                }
                depth -= 1;
                if depth < 0 {
                    return Err(unsafe_entry(name, "symlink points outside the destination"));
                }
            }
            _ => {
                seen_normal = true;
                depth += 1;
            }
        }
    }
    Ok(())
}

fn has_symlink_ancestor(name: &[u8], symlinks: &HashSet<Vec<u8>>) -> bool {
    name.iter()
        .enumerate()
        .filter(|(_, &b)| b == b'/')
        .any(|(i, _)| symlinks.contains(&name[..i]))
}

fn dest_is_empty(dest: &Path) -> Result<bool> {
    match fs::read_dir(dest) {
        Ok(mut rd) => Ok(rd.next().is_none()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(PackError::io("reading", dest)(e)),
    }
}

enum Deferred {
    Symlink { name: Vec<u8>, target: Vec<u8> },
    Hardlink { name: Vec<u8>, target: Vec<u8> },
}

struct Writer<'a> {
    dest: &'a Path,
    inflight: Mutex<usize>,
    cv: Condvar,
    error: Mutex<Option<PackError>>,
    progress: &'a dyn Progress,
}

impl Writer<'_> {
    fn path(&self, rel: &[u8]) -> PathBuf {
        self.dest.join(std::ffi::OsStr::from_bytes(rel))
    }

    fn mkdir(&self, rel: &[u8]) -> Result<()> {
        let p = self.path(rel);
        match fs::symlink_metadata(&p) {
            Ok(md) if md.is_dir() => return Ok(()),
            Ok(_) => {
                return Err(unsafe_entry(
                    rel,
                    "a non-directory already exists at this path",
                ))
            }
            Err(_) => {}
        }
        fs::create_dir_all(&p).map_err(PackError::io("creating", &p))
    }

    fn ensure_parent(&self, rel: &[u8]) -> Result<()> {
        if let Some(i) = rel.iter().rposition(|&b| b == b'/') {
            self.mkdir(&rel[..i])?;
        }
        Ok(())
    }

    fn create(&self, rel: &[u8], exec: bool) -> Result<fs::File> {
        let p = self.path(rel);
        // Never write through something already there (a symlink from a forced DEST).
        if let Ok(md) = fs::symlink_metadata(&p) {
            if md.is_dir() {
                return Err(unsafe_entry(rel, "a directory already exists at this path"));
            }
            fs::remove_file(&p).map_err(PackError::io("replacing", &p))?;
        }
        let f = fs::File::create(&p).map_err(PackError::io("creating", &p))?;
        let mode = if exec { 0o755 } else { 0o644 };
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(PackError::io("setting mode of", &p))?;
        Ok(f)
    }

    fn write_small(&self, rel: &[u8], exec: bool, data: &[u8], mtime: u64) -> Result<()> {
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

/// Sniffed archive kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Gz,
    Zst,
    Tar,
    Zip,
}

fn sniff(archive: &Path) -> Result<Kind> {
    let mut magic = [0u8; 262];
    let mut f = fs::File::open(archive).map_err(PackError::io("opening", archive))?;
    let mut n = 0;
    while n < magic.len() {
        let k = f
            .read(&mut magic[n..])
            .map_err(PackError::io("reading", archive))?;
        if k == 0 {
            break;
        }
        n += k;
    }
    let m = &magic[..n];
    if m.starts_with(&[0x1f, 0x8b]) {
        Ok(Kind::Gz)
    } else if m.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Kind::Zst)
    } else if m.starts_with(b"PK\x03\x04") || m.starts_with(b"PK\x05\x06") {
        Ok(Kind::Zip)
    } else if n >= 262 && &m[257..262] == b"ustar" {
        Ok(Kind::Tar)
    } else {
        Err(PackError::BadArchive {
            path: archive.to_path_buf(),
            reason: "not a tar.gz, tar.zst, tar or zip file".into(),
        })
    }
}

/// Unpack `archive` into `dest` and relocate it there (see the module docs for the checks).
pub fn unpack(
    archive: &Path,
    dest: &Path,
    opts: &UnpackOptions,
    progress: &dyn Progress,
) -> Result<UnpackOutput> {
    let kind = sniff(archive)?;
    let dest = std::path::absolute(dest).map_err(PackError::io("resolving", dest))?;
    if !opts.force && !dest_is_empty(&dest)? {
        return Err(PackError::DestNotEmpty { path: dest });
    }
    fs::create_dir_all(&dest).map_err(PackError::io("creating", &dest))?;
    let threads = if opts.jobs == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.jobs
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("envship-unpack-{i}"))
        .build()
        .map_err(PackError::ThreadPool)?;
    let w = Writer {
        dest: &dest,
        inflight: Mutex::new(0),
        cv: Condvar::new(),
        error: Mutex::new(None),
        progress,
    };
    let archive_size = fs::metadata(archive).map(|m| m.len()).ok();
    progress.start("unpack", archive_size, ProgressUnit::Bytes);
    let mut deferred = Vec::new();
    let mut files_written: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut symlinks: HashSet<Vec<u8>> = HashSet::new();
    let (mut files, mut bytes) = (0u64, 0u64);
    let bad = |reason: String| PackError::BadArchive {
        path: archive.to_path_buf(),
        reason,
    };
    let read_result: Result<()> = pool.in_place_scope(|scope| {
        if kind == Kind::Zip {
            return unpack_zip(
                archive,
                &w,
                &mut deferred,
                &mut files_written,
                &mut symlinks,
                &mut files,
                &mut bytes,
            );
        }
        let file = fs::File::open(archive).map_err(PackError::io("opening", archive))?;
        let counted = Counting {
            inner: BufReader::with_capacity(1 << 20, file),
            progress,
        };
        let reader: Box<dyn Read> = match kind {
            Kind::Gz => Box::new(flate2::read::MultiGzDecoder::new(counted)),
            Kind::Zst => Box::new(
                zstd::stream::read::Decoder::new(counted)
                    .map_err(PackError::io("reading", archive))?,
            ),
            _ => Box::new(counted),
        };
        let mut ar = tar::Archive::new(reader);
        let entries = ar.entries().map_err(|e| bad(e.to_string()))?;
        for entry in entries {
            if w.failed() {
                break;
            }
            let mut entry = entry.map_err(|e| bad(e.to_string()))?;
            let raw = entry.path_bytes().into_owned();
            let name = clean_name(&raw)?;
            if name.is_empty() {
                continue;
            }
            if has_symlink_ancestor(&name, &symlinks) {
                return Err(unsafe_entry(&raw, "entry below a symlink of the archive"));
            }
            let et = entry.header().entry_type();
            match et {
                tar::EntryType::Directory => w.mkdir(&name)?,
                tar::EntryType::Regular
                | tar::EntryType::Continuous
                | tar::EntryType::GNUSparse => {
                    if et == tar::EntryType::GNUSparse {
                        return Err(bad(format!(
                            "sparse entry {:?} is not supported",
                            String::from_utf8_lossy(&raw)
                        )));
                    }
                    let exec = entry
                        .header()
                        .mode()
                        .map(|m| m & 0o111 != 0)
                        .unwrap_or(false);
                    let size = entry.size();
                    let mtime = entry.header().mtime().unwrap_or(0);
                    w.ensure_parent(&name)?;
                    files += 1;
                    bytes += size;
                    files_written.insert(name.clone());
                    if size <= SMALL {
                        let mut data = Vec::with_capacity(size as usize);
                        entry
                            .read_to_end(&mut data)
                            .map_err(|e| bad(e.to_string()))?;
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
                        let wref = &w;
                        scope.spawn(move |_| {
                            if let Err(e) = wref.write_small(&name, exec, &data, mtime) {
                                wref.fail(e);
                            }
                            if let Ok(mut n) = wref.inflight.lock() {
                                *n -= len;
                            }
                            wref.cv.notify_all();
                        });
                    } else {
                        let mut f = w.create(&name, exec)?;
                        io::copy(&mut entry, &mut f)
                            .map_err(PackError::io("writing", w.path(&name)))?;
                        set_mtime(&f, mtime, &w.path(&name))?;
                    }
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    check_symlink(&name, &target)?;
                    symlinks.insert(name.clone());
                    deferred.push(Deferred::Symlink { name, target });
                }
                tar::EntryType::Link => {
                    let target = entry
                        .link_name_bytes()
                        .map(|t| t.into_owned())
                        .unwrap_or_default();
                    let target = clean_name(&target).map_err(|_| {
                        unsafe_entry(&raw, "hardlink target outside the destination")
                    })?;
                    if !files_written.contains(&target) {
                        return Err(unsafe_entry(
                            &raw,
                            "hardlink to something that is not a regular file of the archive",
                        ));
                    }
                    deferred.push(Deferred::Hardlink { name, target });
                }
                tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink => {}
                _ => return Err(unsafe_entry(&raw, "device, fifo or unknown entry type")),
            }
        }
        Ok(())
    });
    read_result?;
    if let Some(e) = w.error.lock().ok().and_then(|mut e| e.take()) {
        return Err(e);
    }
    let mut links = 0;
    // Hardlinks first (to regular files only), then symlinks.
    deferred.sort_by_key(|d| matches!(d, Deferred::Symlink { .. }));
    for d in deferred {
        match d {
            Deferred::Hardlink { name, target } => {
                w.ensure_parent(&name)?;
                let p = w.path(&name);
                let _ = fs::remove_file(&p);
                fs::hard_link(w.path(&target), &p)
                    .map_err(PackError::io("creating hardlink", &p))?;
            }
            Deferred::Symlink { name, target } => {
                if has_symlink_ancestor(&name, &symlinks) {
                    return Err(unsafe_entry(&name, "entry below a symlink of the archive"));
                }
                w.ensure_parent(&name)?;
                let p = w.path(&name);
                if let Ok(md) = fs::symlink_metadata(&p) {
                    if md.is_dir() {
                        return Err(unsafe_entry(
                            &name,
                            "a directory already exists at this path",
                        ));
                    }
                    fs::remove_file(&p).map_err(PackError::io("replacing", &p))?;
                }
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &p)
                    .map_err(PackError::io("creating symlink", &p))?;
            }
        }
        links += 1;
    }
    progress.finish("unpack");

    // Where is the environment? DEST, or its single top directory.
    let mut env_root = dest.clone();
    if !dest.join(RELOCATION_LIST).exists() {
        let tops: Vec<PathBuf> = fs::read_dir(&dest)
            .map_err(PackError::io("reading", &dest))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        if let [only] = tops.as_slice() {
            if only.join(RELOCATION_LIST).exists() {
                env_root = only.clone();
            }
        }
    }
    let relocation = if opts.no_relocate || !env_root.join(RELOCATION_LIST).exists() {
        if !opts.no_relocate {
            tracing::warn!(
                "{} has no {RELOCATION_LIST}: not relocated (not packed by envship?)",
                archive.display()
            );
        }
        None
    } else {
        let new = match &opts.prefix {
            Some(p) => p.trim_end_matches('/').to_string(),
            None => env_root
                .to_str()
                .ok_or_else(|| PackError::BadPrefix {
                    prefix: env_root.to_string_lossy().into_owned(),
                    reason: "not valid UTF-8",
                })?
                .trim_end_matches('/')
                .to_string(),
        };
        progress.start("relocate", None, ProgressUnit::Items);
        let r = relocate::relocate(&env_root, &new)?;
        progress.finish("relocate");
        Some(r)
    };
    Ok(UnpackOutput {
        env_root,
        files,
        bytes,
        links,
        relocation,
    })
}

#[allow(clippy::too_many_arguments)]
fn unpack_zip(
    archive: &Path,
    w: &Writer<'_>,
    deferred: &mut Vec<Deferred>,
    files_written: &mut BTreeSet<Vec<u8>>,
    symlinks: &mut HashSet<Vec<u8>>,
    files: &mut u64,
    bytes: &mut u64,
) -> Result<()> {
    let bad = |reason: String| PackError::BadArchive {
        path: archive.to_path_buf(),
        reason,
    };
    let f = fs::File::open(archive).map_err(PackError::io("opening", archive))?;
    let mut z = zip::ZipArchive::new(BufReader::new(f)).map_err(|e| bad(e.to_string()))?;
    for i in 0..z.len() {
        let mut e = z.by_index(i).map_err(|e| bad(e.to_string()))?;
        let raw = e.name_raw().to_vec();
        let name = clean_name(&raw)?;
        if name.is_empty() {
            continue;
        }
        if has_symlink_ancestor(&name, symlinks) {
            return Err(unsafe_entry(&raw, "entry below a symlink of the archive"));
        }
        if e.is_dir() {
            w.mkdir(&name)?;
        } else if e.is_symlink() {
            let mut target = Vec::new();
            e.read_to_end(&mut target)
                .map_err(|err| bad(err.to_string()))?;
            check_symlink(&name, &target)?;
            symlinks.insert(name.clone());
            deferred.push(Deferred::Symlink { name, target });
        } else {
            let exec = e.unix_mode().map(|m| m & 0o111 != 0).unwrap_or(false);
            w.ensure_parent(&name)?;
            let mut f = w.create(&name, exec)?;
            let n = io::copy(&mut e, &mut f).map_err(PackError::io("writing", w.path(&name)))?;
            w.progress.advance("unpack", e.compressed_size());
            *files += 1;
            *bytes += n;
            files_written.insert(name);
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
    fn names_are_cleaned_or_refused() {
        assert_eq!(clean_name(b"./a//b/").expect("ok"), b"a/b".to_vec());
        assert!(clean_name(b"/etc/passwd").is_err());
        assert!(clean_name(b"a/../../x").is_err());
    }

    #[test]
    fn symlink_targets_must_stay_inside() {
        assert!(check_symlink(b"lib/libz.so", b"libz.so.1").is_ok());
        assert!(check_symlink(b"bin/py", b"../lib/python").is_ok());
        assert!(check_symlink(b"bin/py", b"../../etc").is_err());
        assert!(check_symlink(b"x", b"/etc/passwd").is_err());
        assert!(check_symlink(b"a", b"s/..").is_err());
    }
}
