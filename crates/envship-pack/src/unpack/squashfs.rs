//! Reading a squashfs image (pack's `--format squashfs`, or any squashfs 4.0 image) with
//! `backhand`, through the same path rule, [`Writer`] and link checks as tar and zip. Used where
//! no squashfuse mount is possible or wanted: `envship unpack`, `deploy` and the tests' round
//! trips.

use std::{fs, io, os::unix::ffi::OsStrExt, path::Path};

use backhand::{FilesystemReader, InnerNode};

use super::{entry_path, has_symlink_ancestor, set_mtime, unsafe_entry, Seen, Writer};
use crate::error::{PackError, Result};

/// Extracts the image's entries: directories and files now, links deferred to `seen`.
pub(super) fn unpack_squashfs(archive: &Path, w: &Writer<'_>, seen: &mut Seen) -> Result<()> {
    let f = fs::File::open(archive).map_err(PackError::io("opening", archive))?;
    let image = FilesystemReader::from_reader(io::BufReader::with_capacity(1 << 20, f)).map_err(
        |source| PackError::Squashfs {
            action: "reading",
            path: archive.to_path_buf(),
            source,
        },
    )?;
    let bad = |reason: String| PackError::BadArchive {
        path: archive.to_path_buf(),
        reason,
    };
    for node in image.files() {
        // Paths in the image are absolute (`/bin/python`); the root itself is skipped.
        let raw = node.fullpath.as_os_str().as_bytes();
        let raw = raw.strip_prefix(b"/").unwrap_or(raw);
        let Some(name) = entry_path(raw)? else {
            continue;
        };
        if has_symlink_ancestor(&name, &seen.symlinks) {
            return Err(unsafe_entry(raw, "entry below a symlink of the archive"));
        }
        match &node.inner {
            InnerNode::Dir(_) => w.mkdir(name.as_bytes())?,
            InnerNode::Symlink(link) => {
                seen.symlink(name, link.link.as_os_str().as_bytes().to_vec())?
            }
            InnerNode::File(file) => {
                let exec = node.header.permissions & 0o111 != 0;
                w.ensure_parent(&name)?;
                let mut out = w.create(&name, exec)?;
                let mut reader = image.file(file).reader();
                let n = io::copy(&mut reader, &mut out).map_err(|e| bad(e.to_string()))?;
                set_mtime(&out, u64::from(node.header.mtime), &w.path(&name))?;
                w.progress.advance("unpack", n);
                seen.files += 1;
                seen.bytes += n;
                seen.files_written.insert(name);
            }
            _ => return Err(unsafe_entry(raw, "device, fifo or socket")),
        }
    }
    Ok(())
}
