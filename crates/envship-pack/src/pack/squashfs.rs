//! `--format squashfs`: the plan's items as a squashfs 4.0 image (written by `backhand`),
//! mounted read-only where the environment runs (kernel `mount -t squashfs` or `squashfuse`).
//!
//! The image is baked for its mount point, so pack requires `--dest-prefix` (checked in
//! `pack()`). Same entry rules as the other writers: every inode has mtime `SOURCE_DATE_EPOCH`,
//! uid/gid 0, modes 0755/0644/0777; the image's own time is that epoch too, so the bytes depend
//! only on the items. squashfs has hardlinks, but `backhand` does not write them: the second
//! name gets its own inode, and its data blocks are shared (duplicate data is stored once).
//! gzip is the default block compression: RHEL 6's kernel squashfs reads gzip only.

use std::{
    ffi::OsStr,
    io::{self, Read},
    os::unix::ffi::OsStrExt,
    path::Path,
};

use backhand::{
    compression::{CompressionOptions, Compressor, Gzip, Zstd},
    FilesystemCompressor, FilesystemWriter, NodeHeader,
};

use super::{
    output::{temp_file, Compression, Destination},
    plan::{Item, ItemKind},
    writers::Ctx,
};
use crate::{
    error::{PackError, Result},
    format::SquashfsCompression,
};

/// A file's content, opened only when the image writer reads it and closed at its end: a
/// reader held per file would keep one descriptor open per file until the whole image is
/// written (environments have 20k-100k files).
struct LazyContent<'c> {
    ctx: &'c Ctx<'c>,
    kind: &'c ItemKind,
    state: LazyState,
}

enum LazyState {
    Unopened,
    Open(Box<dyn Read + Send>),
    Done,
}

impl Read for LazyContent<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match &mut self.state {
                LazyState::Unopened => {
                    let (reader, len) = self
                        .ctx
                        .file_content(self.kind)
                        .map_err(io::Error::other)?
                        .unwrap_or_else(|| (Box::new(io::empty()), 0));
                    self.ctx.progress.advance("pack", len);
                    self.state = LazyState::Open(reader);
                }
                LazyState::Open(r) => {
                    let n = r.read(buf)?;
                    if n == 0 && !buf.is_empty() {
                        self.state = LazyState::Done;
                    }
                    return Ok(n);
                }
                LazyState::Done => return Ok(0),
            }
        }
    }
}

fn mode_of(exec: bool) -> u16 {
    if exec {
        0o755
    } else {
        0o644
    }
}

/// backhand's compressor for `compression` at `level` (gzip 1-9, zstd 1-22).
fn compressor(
    compression: SquashfsCompression,
    level: i32,
) -> std::result::Result<FilesystemCompressor, backhand::BackhandError> {
    let (id, options) = match compression {
        SquashfsCompression::Gzip => (
            Compressor::Gzip,
            CompressionOptions::Gzip(Gzip {
                compression_level: level.clamp(1, 9) as u32,
                window_size: 15,
                strategies: 0,
            }),
        ),
        SquashfsCompression::Zstd => (
            Compressor::Zstd,
            CompressionOptions::Zstd(Zstd {
                compression_level: level.clamp(1, 22) as u32,
            }),
        ),
    };
    FilesystemCompressor::new(id, Some(options))
}

/// Writes the items as a squashfs image to a synced temp file in `out`'s directory and returns
/// it and its sha256.
pub(super) fn write_squashfs(
    items: &[Item],
    ctx: &Ctx<'_>,
    out: &Destination,
    how: &Compression,
) -> Result<(tempfile::NamedTempFile, String)> {
    let tmp = temp_file(&out.dir)?;
    let tmp_path = tmp.path().to_path_buf();
    // backhand's errors print nothing (its `error-strings` feature is off): a failed write
    // (a full disk) is reported as the I/O error it wraps.
    let fs_err = |action: &'static str| {
        let path = tmp_path.clone();
        move |source| match source {
            backhand::BackhandError::StdIo(source) => PackError::Io {
                action,
                path,
                source,
            },
            source => PackError::Squashfs {
                action,
                path,
                source,
            },
        }
    };
    let mtime = u32::try_from(ctx.mtime).unwrap_or(u32::MAX);
    let header = |mode: u16| NodeHeader::new(mode, 0, 0, mtime);
    let mut image = FilesystemWriter::default();
    image.set_time(mtime);
    image.set_compressor(compressor(how.squashfs, how.level).map_err(fs_err("configuring"))?);
    image.set_root_mode(0o755);
    image.set_root_uid(0);
    image.set_root_gid(0);
    image.set_only_root_id();

    // backhand keeps its nodes sorted by path (component-wise) and inserts each in place:
    // pushing them in that order makes every insert an append.
    let mut ordered: Vec<&Item> = items.iter().collect();
    ordered.sort_by(|a, b| path_of(&a.name).cmp(path_of(&b.name)));
    let by_name: std::collections::HashMap<&[u8], &Item> =
        items.iter().map(|i| (i.name.as_slice(), i)).collect();
    for item in ordered {
        let path = path_of(&item.name);
        match &item.kind {
            ItemKind::Dir => image
                .push_dir(path, header(0o755))
                .map_err(fs_err("writing"))?,
            ItemKind::Symlink(target) => image
                .push_symlink(path_of(target), path, header(0o777))
                .map_err(fs_err("writing"))?,
            ItemKind::File { exec, .. } => image
                .push_file(lazy(ctx, &item.kind), path, header(mode_of(*exec)))
                .map_err(fs_err("writing"))?,
            ItemKind::Hardlink(first) => {
                let target = by_name.get(first.as_slice()).copied().unwrap_or(item);
                let ItemKind::File { exec, .. } = &target.kind else {
                    continue;
                };
                image
                    .push_file(lazy(ctx, &target.kind), path, header(mode_of(*exec)))
                    .map_err(fs_err("writing"))?
            }
        }
    }
    let mut w = io::BufWriter::with_capacity(1 << 20, tmp.as_file());
    image.write(&mut w).map_err(fs_err("writing"))?;
    let file = w
        .into_inner()
        .map_err(|e| PackError::io("writing", tmp_path.clone())(e.into_error()))?;
    file.sync_all()
        .map_err(PackError::io("syncing", tmp_path.clone()))?;
    let sha256 = envship_spec::digest::sha256_file(&tmp_path)
        .map_err(PackError::io("reading", tmp_path.clone()))?;
    Ok((tmp, sha256))
}

fn lazy<'c>(ctx: &'c Ctx<'c>, kind: &'c ItemKind) -> LazyContent<'c> {
    LazyContent {
        ctx,
        kind,
        state: LazyState::Unopened,
    }
}

fn path_of(name: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(name))
}
