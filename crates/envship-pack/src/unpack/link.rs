//! Linked unpacks: with the block index of the new archive and the block hashes of the archive
//! a live tree was unpacked from, a block whose bytes the live tree already holds is not
//! inflated. Its files are hard-linked from the live tree, its directories and links are made
//! from the index, and only the other blocks are inflated and read as a tar stream.
//!
//! A block is skipped only when all of it can be taken from the live tree: every file in it is
//! exact (a UTF-8 name), not rewritten by relocation (whose rewrite would differ per version and
//! must never touch the live tree's inode), and present in the live tree as a regular file with
//! the same size, mode and mtime. A large file's blocks are skipped all together or not at all.
//! In the blocks that are inflated, a file whose content hash, size and mode the live archive's
//! index records the same at the same path is linked too (its bytes are read past, not
//! written). A live file changed in place with its mtime kept is not noticed here;
//! `envship verify` finds it.

use std::{
    collections::{HashMap, HashSet},
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
};

use super::{entry_path, Seen, Writer};
use crate::{
    archive_path::ArchivePath,
    beneath::Beneath,
    blocks::{
        index::{read_block, BlockIndex, EntryKind, IndexBlock, IndexEntry},
        Codec,
    },
    error::{PackError, Result},
};

/// Where a linked unpack takes unchanged files from.
#[derive(Clone, Debug)]
pub struct LinkFrom {
    /// The new archive's block index.
    pub index: BlockIndex,
    /// The live tree (a deployed version directory: the archive's root, arcroot included).
    pub root: PathBuf,
    /// The block index of the archive the live tree was unpacked from.
    pub live_index: BlockIndex,
    /// The mtime every entry of the new archive carries (its manifest's `source_date_epoch`).
    pub mtime: u64,
}

/// What a linked unpack took from the live tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Linked {
    /// Files hard-linked.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Blocks not inflated.
    pub blocks_skipped: u64,
    /// Blocks inflated.
    pub blocks_read: u64,
}

/// Files to link while reading: name → size and mode in the archive.
pub(super) type LinkWhileReading = HashMap<String, (u64, u32)>;

/// The blocks of one entry run: a small-entry block, or a large file's blocks.
fn groups(blocks: &[IndexBlock]) -> Vec<std::ops::Range<usize>> {
    let mut out: Vec<std::ops::Range<usize>> = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        match out.last_mut() {
            // A block where no entry starts continues the one before (a large file's piece,
            // or the end-of-archive records after one).
            Some(g) if b.entries.is_empty() => g.end = i + 1,
            _ => out.push(i..i + 1),
        }
    }
    out
}

/// Whether `e` can be made without its block's bytes.
fn recreatable(e: &IndexEntry, live: &Beneath, mtime: i64) -> bool {
    if !e.exact {
        return false;
    }
    match e.kind {
        EntryKind::Dir | EntryKind::Symlink | EntryKind::Hardlink => true,
        EntryKind::File => {
            if e.relocated {
                return false;
            }
            let Ok(Some(rel)) = ArchivePath::parse(e.path.as_bytes()) else {
                return false;
            };
            live.regular_file_matches(&rel, (e.size, e.mode, mtime))
        }
    }
}

/// Which blocks to skip (`true`) and which to inflate; and the files of inflated blocks the live
/// tree holds unchanged (same content hash in the live archive's index): they are linked too,
/// their bytes read past.
fn plan(link: &LinkFrom, live: &Beneath) -> (Vec<bool>, LinkWhileReading) {
    let blocks = &link.index.blocks;
    let mtime = link.mtime as i64;
    let live_blocks: HashSet<&str> = link
        .live_index
        .blocks
        .iter()
        .map(|b| b.hash.as_str())
        .collect();
    let live_files: HashMap<&str, &IndexEntry> = link
        .live_index
        .blocks
        .iter()
        .flat_map(|b| &b.entries)
        .filter(|e| e.kind == EntryKind::File && e.xxh3.is_some())
        .map(|e| (e.path.as_str(), e))
        .collect();
    let unchanged = |e: &IndexEntry| {
        e.kind == EntryKind::File
            && e.xxh3.is_some()
            && live_files.get(e.path.as_str()).is_some_and(|old| {
                old.xxh3 == e.xxh3 && old.size == e.size && old.mode == e.mode && !old.relocated
            })
            && recreatable(e, live, mtime)
    };
    let mut skip = vec![false; blocks.len()];
    let mut link_while_reading = LinkWhileReading::new();
    for g in groups(blocks) {
        let all_live = blocks[g.clone()]
            .iter()
            .all(|b| live_blocks.contains(b.hash.as_str()));
        let entries = &blocks[g.start].entries;
        // A file the live tree relocated holds its own prefix, whatever the new index says.
        let not_relocated_there = |e: &IndexEntry| {
            e.kind != EntryKind::File
                || live_files
                    .get(e.path.as_str())
                    .is_some_and(|old| !old.relocated)
        };
        let whole = entries
            .iter()
            .all(|e| not_relocated_there(e) && recreatable(e, live, mtime));
        if all_live && whole {
            for s in &mut skip[g] {
                *s = true;
            }
            continue;
        }
        link_while_reading.extend(
            entries
                .iter()
                .filter(|e| unchanged(e))
                .map(|e| (e.path.clone(), (e.size, e.mode))),
        );
    }
    (skip, link_while_reading)
}

/// The inflated blocks, in order, as one tar stream (the skipped ones left out: every run of
/// inflated blocks starts and ends at an entry boundary).
struct Inflated<'a> {
    file: fs::File,
    codec: Codec,
    blocks: Vec<&'a IndexBlock>,
    next: usize,
    buf: io::Cursor<Vec<u8>>,
    archive: &'a Path,
}

impl Read for Inflated<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.buf.read(out)?;
            if n > 0 || out.is_empty() {
                return Ok(n);
            }
            let Some(b) = self.blocks.get(self.next) else {
                return Ok(0);
            };
            self.next += 1;
            let data = read_block(&mut self.file, self.codec, b)
                .map_err(|e| io::Error::other(format!("{}: {e}", self.archive.display())))?;
            self.buf = io::Cursor::new(data);
        }
    }
}

/// Make the skipped blocks' entries (files linked from the live tree, directories, links
/// deferred as usual) and return the inflated blocks as a tar stream.
pub(super) fn prepare<'a>(
    archive: &'a Path,
    link: &'a LinkFrom,
    w: &Writer<'_>,
    seen: &mut Seen,
    linked: &mut Linked,
) -> Result<Box<dyn Read + 'a>> {
    let codec = link
        .index
        .parsed_codec()
        .ok_or_else(|| PackError::BadBlockIndex {
            path: archive.to_path_buf(),
            reason: format!("unknown codec {:?}", link.index.codec),
        })?;
    let live = Beneath::open(&link.root).map_err(PackError::io("opening", &link.root))?;
    let (skip, link_while_reading) = plan(link, &live);
    let mut hardlinks = Vec::new();
    for (b, _) in link.index.blocks.iter().zip(&skip).filter(|(_, s)| **s) {
        for e in &b.entries {
            let Some(name) = entry_path(e.path.as_bytes())? else {
                continue;
            };
            match e.kind {
                EntryKind::Dir => w.mkdir(name.as_bytes())?,
                EntryKind::File => {
                    w.ensure_parent(&name)?;
                    let how = (e.size, e.mode, link.mtime as i64);
                    let done = w
                        .dest
                        .link_from(&live, &name, &name, how)
                        .map_err(w.err(name.as_bytes(), "linking"))?;
                    if !done {
                        // Checked when planning: the live tree changed since.
                        return Err(PackError::io("linking", w.path(&name))(io::Error::other(
                            "the live file changed during the deploy",
                        )));
                    }
                    seen.files += 1;
                    seen.bytes += e.size;
                    seen.files_written.insert(name);
                    linked.files += 1;
                    linked.bytes += e.size;
                }
                EntryKind::Symlink => {
                    let target = e.target.clone().unwrap_or_default().into_bytes();
                    seen.symlink(name, target)?;
                }
                EntryKind::Hardlink => hardlinks.push((e, name)),
            }
        }
    }
    // Hard links are checked once every file is known (their targets may be inflated later).
    seen.pending_hardlinks = hardlinks
        .into_iter()
        .map(|(e, name)| (e.path.clone().into_bytes(), name, e.target.clone()))
        .map(|(raw, name, t)| (raw, name, t.unwrap_or_default().into_bytes()))
        .collect();
    linked.blocks_skipped = skip.iter().filter(|s| **s).count() as u64;
    linked.blocks_read = skip.len() as u64 - linked.blocks_skipped;
    let blocks = link
        .index
        .blocks
        .iter()
        .zip(&skip)
        .filter(|(_, s)| !**s)
        .map(|(b, _)| b)
        .collect();
    seen.link_while_reading = Some((live, link_while_reading, link.mtime as i64));
    let file = fs::File::open(archive).map_err(PackError::io("opening", archive))?;
    Ok(Box::new(Inflated {
        file,
        codec,
        blocks,
        next: 0,
        buf: io::Cursor::new(Vec::new()),
        archive,
    }))
}

/// In a linked unpack, link the regular file `name` of an inflated block from the live tree
/// instead of writing it, when the plan chose it and it still matches. `raw` is its name as
/// stored; `size` its length.
pub(super) fn link_instead(
    w: &Writer<'_>,
    seen: &Seen,
    name: &ArchivePath,
    raw: &[u8],
    size: u64,
    linked: &mut Linked,
) -> Result<bool> {
    let Some((live, names, mtime)) = &seen.link_while_reading else {
        return Ok(false);
    };
    let Some(&(want_size, mode)) = std::str::from_utf8(raw).ok().and_then(|r| names.get(r)) else {
        return Ok(false);
    };
    if want_size != size {
        return Ok(false);
    }
    let done = w
        .dest
        .link_from(live, name, name, (size, mode, *mtime))
        .map_err(w.err(name.as_bytes(), "linking"))?;
    if done {
        linked.files += 1;
        linked.bytes += size;
    }
    Ok(done)
}

/// Refuse an index that does not describe this archive's stream (its last block must end where
/// the archive's compressed data ends, give or take gzip's 10-byte trailer).
pub(super) fn check_index(archive: &Path, link: &LinkFrom) -> Result<()> {
    let len = fs::metadata(archive)
        .map_err(PackError::io("reading", archive))?
        .len();
    let end = link.index.blocks.last().map_or(0, |b| b.offset + b.clen);
    if end > len || len - end > 16 {
        return Err(PackError::BadBlockIndex {
            path: archive.to_path_buf(),
            reason: format!("its blocks end at byte {end} of a {len}-byte archive"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(entries: &[&str]) -> IndexBlock {
        IndexBlock {
            offset: 0,
            clen: 0,
            uoffset: 0,
            ulen: 1,
            hash: String::new(),
            entries: entries
                .iter()
                .map(|p| IndexEntry {
                    path: p.to_string(),
                    kind: EntryKind::File,
                    mode: 0o644,
                    size: 1,
                    target: None,
                    relocated: false,
                    xxh3: None,
                    exact: true,
                })
                .collect(),
        }
    }

    #[test]
    fn a_large_files_pieces_group_with_its_first_block() {
        let blocks = [
            block(&["a", "b"]),
            block(&["big"]),
            block(&[]),
            block(&[]),
            block(&["z"]),
        ];
        assert_eq!(groups(&blocks), vec![0..1, 1..4, 4..5]);
        assert!(groups(&[]).is_empty());
    }
}
