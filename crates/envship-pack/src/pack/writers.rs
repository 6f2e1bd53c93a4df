//! The writers: a plan's items as a tar stream, a zip file or a directory, every entry with the
//! same mtime, owner and mode rules (see the crate docs), so each format holds the same bytes.

use std::{
    collections::HashMap,
    ffi::OsStr,
    fs,
    io::{self, Read, Write},
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

use envship_spec::Progress;

use super::{
    plan::{Item, ItemKind, Src},
    DEFAULT_EPOCH,
};
use crate::{
    blocks::{
        index::{EntryKind, IndexEntry},
        BlockWriter, EntryStart,
    },
    error::{PackError, Result},
    relocate::{self, RelocEntry},
};

/// What every writer needs besides the items.
pub(super) struct Ctx<'a> {
    /// The mtime of every entry.
    pub mtime: u64,
    /// `Some((old, new))` when relocating at pack time.
    pub rewrite: Option<(Vec<u8>, Vec<u8>)>,
    pub progress: &'a dyn Progress,
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

    /// The content of a file item.
    pub(super) fn file_content(
        &self,
        kind: &ItemKind,
    ) -> Result<Option<(Box<dyn Read + Send>, u64)>> {
        match kind {
            ItemKind::File {
                src,
                reloc,
                pyc_source,
                ..
            } => self
                .content(src, reloc.as_ref(), pyc_source.as_deref())
                .map(Some),
            _ => Ok(None),
        }
    }
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

fn mode_of(exec: bool) -> u32 {
    if exec {
        0o755
    } else {
        0o644
    }
}

fn os(name: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(name))
}

/// Between entries, a requested stop ends the write; the temp output is removed as the error
/// unwinds.
fn stop_if_requested() -> Result<()> {
    if envship_spec::cancel::is_requested() {
        return Err(PackError::Interrupted);
    }
    Ok(())
}

/// The tar header of an item, its kind for the block index and its content.
type TarEntry = (tar::Header, IndexEntry, Option<(Box<dyn Read + Send>, u64)>);

fn tar_entry(item: &Item, ctx: &Ctx<'_>) -> Result<TarEntry> {
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(ctx.mtime);
    let (entry_type, kind, mode) = match &item.kind {
        ItemKind::Dir => (tar::EntryType::Directory, EntryKind::Dir, 0o755),
        ItemKind::File { exec, .. } => (tar::EntryType::Regular, EntryKind::File, mode_of(*exec)),
        ItemKind::Symlink(_) => (tar::EntryType::Symlink, EntryKind::Symlink, 0o777),
        ItemKind::Hardlink(_) => (tar::EntryType::Link, EntryKind::Hardlink, 0o644),
    };
    h.set_entry_type(entry_type);
    h.set_mode(mode);
    let content = ctx.file_content(&item.kind)?;
    let size = content.as_ref().map_or(0, |c| c.1);
    h.set_size(size);
    let (target, relocated) = match &item.kind {
        ItemKind::Symlink(t) | ItemKind::Hardlink(t) => (Some(t.as_slice()), false),
        ItemKind::File { reloc, .. } => (None, reloc.is_some()),
        ItemKind::Dir => (None, false),
    };
    let exact = std::str::from_utf8(&item.name).is_ok()
        && target.is_none_or(|t| std::str::from_utf8(t).is_ok());
    let entry = IndexEntry {
        path: String::from_utf8_lossy(&item.name).into_owned(),
        kind,
        mode,
        size,
        target: target.map(|t| String::from_utf8_lossy(t).into_owned()),
        relocated,
        xxh3: None,
        exact,
    };
    Ok((h, entry, content))
}

/// `io::copy` with a 1 MiB buffer: std's 8 KiB one costs a read system call per 8 KiB, a third
/// of a warm pack's time on a gigabyte of files.
fn copy_in_large_reads<R: Read, W: Write>(
    r: &mut R,
    w: &mut W,
    chunk: &mut [u8],
) -> io::Result<u64> {
    let mut total = 0;
    loop {
        let n = match r.read(chunk) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&chunk[..n])?;
        total += n as u64;
    }
}

/// Hashes what is read through it (a file's content, for the block index).
struct Hashing<R> {
    inner: R,
    hash: xxhash_rust::xxh3::Xxh3,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// Writes the items as a tar stream into `sink`, telling it where every entry and its data
/// start, so it can cut blocks at entry boundaries (`out` names the output in errors).
pub(super) fn write_tar<W: Write>(
    items: &[Item],
    sink: &mut BlockWriter<W>,
    ctx: &Ctx<'_>,
    out: &Path,
) -> Result<()> {
    let io_err = |e: io::Error| PackError::io("writing", out)(e);
    // The tar crate writes each entry's header (with a GNU long-name entry before it when the
    // name needs one) into this scratch buffer; the data is copied to the sink here, so that
    // the sink sees where the data starts.
    let mut headers = tar::Builder::new(Vec::new());
    let mut chunk = vec![0u8; 1 << 20];
    for item in items {
        stop_if_requested()?;
        let path = os(&item.name);
        let (mut h, entry, content) = tar_entry(item, ctx)?;
        match &item.kind {
            ItemKind::Symlink(t) | ItemKind::Hardlink(t) => {
                headers.append_link(&mut h, path, os(t))
            }
            _ => headers.append_data(&mut h, path, io::empty()),
        }
        .map_err(io_err)?;
        let head = std::mem::take(headers.get_mut());
        let size = entry.size;
        sink.begin_entry(EntryStart { entry, size })
            .map_err(io_err)?;
        sink.write_all(&head).map_err(io_err)?;
        let mut xxh3 = None;
        if let Some((reader, len)) = content {
            sink.begin_data(len);
            let mut reader = Hashing {
                inner: reader,
                hash: xxhash_rust::xxh3::Xxh3::new(),
            };
            let copied = copy_in_large_reads(&mut reader, sink, &mut chunk).map_err(io_err)?;
            xxh3 = Some(reader.hash.digest128());
            if copied != len {
                return Err(io_err(io::Error::other(format!(
                    "{} changed size while being packed",
                    String::from_utf8_lossy(&item.name)
                ))));
            }
            let pad = (512 - len % 512) % 512;
            sink.write_all(&[0u8; 512][..pad as usize])
                .map_err(io_err)?;
            ctx.progress.advance("pack", len);
        }
        sink.end_entry(&item.name, xxh3).map_err(io_err)?;
    }
    // The end of the archive: two zero records, as tar writes it.
    sink.write_all(&[0u8; 1024]).map_err(io_err)
}

/// The zip timestamp of `epoch` (UTC; zip stores 1980 to 2107 only).
fn zip_time(epoch: u64) -> zip::DateTime {
    let secs = i64::try_from(epoch.max(DEFAULT_EPOCH)).unwrap_or(i64::MAX);
    let t = jiff::Timestamp::from_second(secs)
        .unwrap_or(jiff::Timestamp::MAX)
        .to_zoned(jiff::tz::TimeZone::UTC);
    zip::DateTime::from_date_and_time(
        t.year().clamp(1980, 2107) as u16,
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    )
    .unwrap_or_default()
}

/// Writes the items as a zip into `file` (`out` names it in errors).
pub(super) fn write_zip(
    items: &[Item],
    file: &fs::File,
    ctx: &Ctx<'_>,
    out: &Path,
    level: i32,
) -> Result<()> {
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
    let by_name: HashMap<&[u8], &Item> = items.iter().map(|i| (i.name.as_slice(), i)).collect();
    for item in items {
        stop_if_requested()?;
        let name = name_str(&item.name)?;
        let target = match &item.kind {
            ItemKind::Dir => {
                z.add_directory(format!("{name}/"), base.unix_permissions(0o755))
                    .map_err(zerr)?;
                continue;
            }
            ItemKind::Symlink(t) => {
                let target = name_str(t)?;
                z.add_symlink(name, target, base.unix_permissions(0o777))
                    .map_err(zerr)?;
                continue;
            }
            ItemKind::Hardlink(t) => by_name.get(t.as_slice()).copied().unwrap_or(item),
            ItemKind::File { .. } => item,
        };
        let ItemKind::File { exec, .. } = &target.kind else {
            continue;
        };
        let Some((mut reader, len)) = ctx.file_content(&target.kind)? else {
            continue;
        };
        let opts = base
            .unix_permissions(mode_of(*exec))
            .large_file(len >= u32::MAX as u64);
        z.start_file(name, opts).map_err(zerr)?;
        io::copy(&mut reader, &mut z).map_err(PackError::io("writing", out))?;
        ctx.progress.advance("pack", len);
    }
    let mut w = z.finish().map_err(zerr)?;
    w.flush().map_err(PackError::io("writing", out))?;
    Ok(())
}

/// Writes the items as a directory tree under `dir` (which exists).
pub(super) fn write_dir(items: &[Item], dir: &Path, ctx: &Ctx<'_>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for item in items {
        stop_if_requested()?;
        let p = dir.join(os(&item.name));
        match &item.kind {
            ItemKind::Dir => fs::create_dir_all(&p).map_err(PackError::io("creating", &p))?,
            ItemKind::File { exec, .. } => {
                let Some((mut reader, len)) = ctx.file_content(&item.kind)? else {
                    continue;
                };
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
                std::os::unix::fs::symlink(OsStr::from_bytes(t), &p)
                    .map_err(PackError::io("creating symlink", &p))?;
            }
            ItemKind::Hardlink(t) => {
                let first = dir.join(os(t));
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
    fn zip_times_are_utc_civil_dates() {
        let t = zip_time(0);
        assert_eq!((t.year(), t.month(), t.day()), (1980, 1, 1), "clamped up");
        let t = zip_time(DEFAULT_EPOCH);
        assert_eq!((t.year(), t.month(), t.day(), t.hour()), (1980, 1, 1, 0));
        // 2024-02-29T13:45:58Z: a leap day, odd seconds (zip keeps even seconds)
        let t = zip_time(1_709_214_358);
        assert_eq!(
            (t.year(), t.month(), t.day(), t.hour(), t.minute()),
            (2024, 2, 29, 13, 45)
        );
        assert_eq!(zip_time(u64::MAX).year(), 2107);
    }
}
