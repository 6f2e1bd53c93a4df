//! Archives with raw entry names and types (`../x`, absolute paths, devices, links anywhere),
//! written below the tar crate's own path checks: the hostile inputs of the unpack hardening
//! tests.

use std::{io::Write, path::Path};

/// One archive entry, with raw bytes for names (bypassing the tar crate's own checks).
#[derive(Clone)]
pub enum RawEntry {
    /// A directory.
    Dir(Vec<u8>),
    /// A regular file: name, contents, mode.
    File(Vec<u8>, Vec<u8>, u32),
    /// A symlink: name, target.
    Symlink(Vec<u8>, Vec<u8>),
    /// A hard link: name, the entry it links to.
    Hardlink(Vec<u8>, Vec<u8>),
    /// A character device (1:3, /dev/null's numbers).
    CharDevice(Vec<u8>),
    /// A named pipe.
    Fifo(Vec<u8>),
}

/// Write `entries` as a gzip-compressed GNU tar at `path`, names and link targets as given.
pub fn write_tar_gz(path: &Path, entries: &[RawEntry]) {
    let f = std::fs::File::create(path).unwrap();
    let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
    let mut builder = tar::Builder::new(gz);
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_mtime(0);
        let (name, data, link, kind): (&[u8], &[u8], Option<&[u8]>, tar::EntryType) = match e {
            RawEntry::Dir(n) => (n, b"", None, tar::EntryType::Directory),
            RawEntry::File(n, d, mode) => {
                h.set_mode(*mode);
                (n, d, None, tar::EntryType::Regular)
            }
            RawEntry::Symlink(n, t) => (n, b"", Some(t), tar::EntryType::Symlink),
            RawEntry::Hardlink(n, t) => (n, b"", Some(t), tar::EntryType::Link),
            RawEntry::CharDevice(n) => (n, b"", None, tar::EntryType::Char),
            RawEntry::Fifo(n) => (n, b"", None, tar::EntryType::Fifo),
        };
        if matches!(e, RawEntry::Dir(_)) {
            h.set_mode(0o755);
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        if matches!(e, RawEntry::CharDevice(_)) {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name[..name.len()].copy_from_slice(name);
        if let Some(l) = link {
            gnu.linkname[..l.len()].copy_from_slice(l);
        }
        h.set_cksum();
        builder.append(&h, data).unwrap();
    }
    builder
        .into_inner()
        .unwrap()
        .finish()
        .unwrap()
        .flush()
        .unwrap();
}
