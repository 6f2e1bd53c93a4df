//! The block index of a tar.gz or tar.zst archive (the `.blocks.json` sidecar): where each
//! block's compressed bytes are, how long it is uncompressed, its hash, and the entries that
//! start in it. Plain `tar` never needs it; a reader that has it can inflate any block alone
//! ([`read_block`]), skip blocks it already has, or inflate blocks in parallel.

use std::{
    fs,
    io::{self, Read, Seek, SeekFrom},
    path::Path,
};

use serde::{Deserialize, Serialize};

use super::Codec;
use crate::error::{PackError, Result};

/// The index format's version.
pub const INDEX_VERSION: u32 = 1;

/// Every block of one archive, in stream order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockIndex {
    /// [`INDEX_VERSION`].
    pub index_version: u32,
    /// `gzip-LEVEL` or `zstd-LEVEL`.
    pub codec: String,
    /// The blocks.
    pub blocks: Vec<IndexBlock>,
}

/// One independently compressed block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexBlock {
    /// Offset of its compressed bytes in the archive file.
    pub offset: u64,
    /// Their length.
    pub clen: u64,
    /// Offset of its first byte in the uncompressed tar stream.
    pub uoffset: u64,
    /// Its uncompressed length.
    pub ulen: u64,
    /// xxh3-128 of the uncompressed bytes, hex.
    pub hash: String,
    /// The entries whose header starts in this block (a large file's later pieces have none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<IndexEntry>,
}

/// What an entry is, enough to recreate it without its block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The name in the archive (lossy if it is not UTF-8, see `exact`).
    pub path: String,
    /// `file`, `dir`, `symlink` or `hardlink`.
    pub kind: EntryKind,
    /// Permission bits as stored.
    pub mode: u32,
    /// Data length (files).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub size: u64,
    /// Link target (symlinks and hardlinks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The file holds the build prefix and is rewritten by relocation where it is unpacked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub relocated: bool,
    /// xxh3-128 of a file's content as stored, hex: finds unchanged files in changed blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xxh3: Option<String>,
    /// `false` when the name (or target) is not UTF-8, so `path` is not exact.
    #[serde(default = "yes", skip_serializing_if = "Clone::clone")]
    pub exact: bool,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn yes() -> bool {
    true
}

/// The kind of an [`IndexEntry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
    /// A hard link to an earlier file of the archive.
    Hardlink,
}

impl BlockIndex {
    /// An empty index for `codec`.
    pub fn new(codec: Codec) -> Self {
        BlockIndex {
            index_version: INDEX_VERSION,
            codec: codec.label(),
            blocks: Vec::new(),
        }
    }

    /// The codec it names.
    pub fn parsed_codec(&self) -> Option<Codec> {
        let (name, level) = self.codec.split_once('-')?;
        match name {
            "gzip" => level.parse().ok().map(Codec::Gzip),
            "zstd" => level.parse().ok().map(Codec::Zstd),
            _ => None,
        }
    }

    /// Read an index file, checking that its blocks follow each other.
    pub fn read(path: &Path) -> Result<Self> {
        let bytes = fs::read(path).map_err(PackError::io("reading", path))?;
        Self::parse(&bytes, path)
    }

    /// Parse an index file's bytes (read from `path`, which only names it in errors), checking
    /// that its blocks follow each other: [`Self::read`] without the file system.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |reason: String| PackError::BadBlockIndex {
            path: path.to_path_buf(),
            reason,
        };
        let index: BlockIndex =
            serde_json::from_slice(bytes).map_err(|e| bad(format!("not a block index: {e}")))?;
        if index.index_version != INDEX_VERSION {
            return Err(bad(format!(
                "index version {} (this envship reads {INDEX_VERSION})",
                index.index_version
            )));
        }
        if index.parsed_codec().is_none() {
            return Err(bad(format!("unknown codec {:?}", index.codec)));
        }
        let (mut next_c, mut next_u) = (None, 0u64);
        for (i, b) in index.blocks.iter().enumerate() {
            let follows = next_c.is_none_or(|c| c == b.offset) && b.uoffset == next_u;
            if !follows || b.ulen == 0 {
                return Err(bad(format!(
                    "block {i} does not follow block {}",
                    i.max(1) - 1
                )));
            }
            // Checked: the numbers are the file's, and a block past 2^64 is no block.
            let (Some(c), Some(u)) = (b.offset.checked_add(b.clen), b.uoffset.checked_add(b.ulen))
            else {
                return Err(bad(format!("block {i} ends past 2^64 bytes")));
            };
            next_c = Some(c);
            next_u = u;
        }
        Ok(index)
    }

    /// Write it atomically (compact JSON: it is for programs, and can be large).
    pub fn write(&self, path: &Path) -> Result<()> {
        self.stage(path)?
            .commit()
            .map_err(PackError::io("renaming to", path))
    }

    /// [`BlockIndex::write`] up to the rename: a temp file next to `path`.
    pub fn stage(&self, path: &Path) -> Result<envship_spec::output::StagedFile> {
        let mut s = serde_json::to_vec(self).map_err(|e| PackError::BadBlockIndex {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        s.push(b'\n');
        crate::relocate::stage_atomic(path, &s)
    }
}

/// The uncompressed bytes of one block, read from `archive` alone.
pub fn read_block<R: Read + Seek>(
    archive: &mut R,
    codec: Codec,
    b: &IndexBlock,
) -> io::Result<Vec<u8>> {
    archive.seek(SeekFrom::Start(b.offset))?;
    // The lengths are the index's word, not the archive's: buffers grow with what is really
    // read and inflated, and are reserved up front only to a block's usual size.
    let mut compressed = Vec::with_capacity(reserve(b.clen));
    archive.by_ref().take(b.clen).read_to_end(&mut compressed)?;
    if compressed.len() as u64 != b.clen {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "block cut short",
        ));
    }
    let out = match codec {
        Codec::Gzip(_) => {
            // A non-final raw deflate stream: inflate until the input is used up. Deflate
            // expands at most 1032-fold, so a block's output fits in that much room (and
            // `decompress_vec` fills the room it is given, never more).
            let room = b
                .ulen
                .min((compressed.len() as u64).saturating_mul(1032))
                .saturating_add(64);
            let mut d = flate2::Decompress::new(false);
            let mut out = Vec::with_capacity(usize::try_from(room).unwrap_or(usize::MAX));
            d.decompress_vec(&compressed, &mut out, flate2::FlushDecompress::Sync)
                .map_err(io::Error::other)?;
            out
        }
        Codec::Zstd(_) => {
            // Streamed, at most one byte more than the index says: zstd's bulk API would
            // allocate the claimed length first, and zstd has no useful bound on expansion.
            let mut out = Vec::with_capacity(reserve(b.ulen));
            zstd::stream::read::Decoder::with_buffer(&compressed[..])?
                .take(b.ulen.saturating_add(1))
                .read_to_end(&mut out)?;
            out
        }
    };
    if out.len() as u64 != b.ulen || xxhash_rust::xxh3::xxh3_128(&out) != parse_hash(&b.hash) {
        return Err(io::Error::other(format!(
            "block at offset {} does not match its index entry",
            b.offset
        )));
    }
    Ok(out)
}

/// How much of a buffer to reserve for `len` bytes an index claims: all of it up to twice a
/// block's usual size (a block is at most [`super::BLOCK_SIZE`] plus a run's last entry).
fn reserve(len: u64) -> usize {
    usize::try_from(len.min(2 * super::BLOCK_SIZE as u64)).unwrap_or(0)
}

/// The hash as stored (`0` if it is not hex, which matches no block).
pub fn parse_hash(hex: &str) -> u128 {
    u128::from_str_radix(hex, 16).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(offset: u64, clen: u64, uoffset: u64, ulen: u64) -> IndexBlock {
        IndexBlock {
            offset,
            clen,
            uoffset,
            ulen,
            hash: "0".into(),
            entries: Vec::new(),
        }
    }

    fn index_json(blocks: Vec<IndexBlock>) -> Vec<u8> {
        let index = BlockIndex {
            blocks,
            ..BlockIndex::new(Codec::Zstd(3))
        };
        serde_json::to_vec(&index).expect("json")
    }

    #[test]
    fn an_index_whose_blocks_end_past_2_64_is_an_error_not_an_overflow() {
        let path = Path::new("a.tar.zst.blocks.json");
        for b in [block(u64::MAX - 1, 5, 0, 1), block(0, 1, u64::MAX, 2)] {
            let err = BlockIndex::parse(&index_json(vec![b]), path).expect_err("past 2^64");
            assert!(err.to_string().contains("a.tar.zst.blocks.json"), "{err}");
        }
        let fine = vec![block(10, 5, 0, 100), block(15, 7, 100, 50)];
        assert_eq!(
            BlockIndex::parse(&index_json(fine), path)
                .expect("ok")
                .blocks
                .len(),
            2
        );
    }

    #[test]
    fn a_block_claiming_huge_lengths_is_an_error_not_a_huge_allocation() {
        // A real zstd frame and a raw deflate block of 100 zero bytes, behind lengths no archive
        // has: they used to be allocated up front (capacity overflow, or an abort on OOM).
        let zstd = zstd::bulk::compress(&[0u8; 100], 3).expect("zstd");
        let mut deflate = Vec::with_capacity(256);
        flate2::Compress::new(flate2::Compression::fast(), false)
            .compress_vec(&[0u8; 100], &mut deflate, flate2::FlushCompress::Sync)
            .expect("deflate");
        for (codec, data) in [(Codec::Zstd(3), zstd), (Codec::Gzip(6), deflate)] {
            for (clen, ulen) in [(u64::MAX, u64::MAX), (data.len() as u64, u64::MAX >> 1)] {
                let mut file = io::Cursor::new(&data);
                let err = read_block(&mut file, codec, &block(0, clen, 0, ulen))
                    .expect_err("lengths the block does not have");
                assert!(
                    matches!(
                        err.kind(),
                        io::ErrorKind::UnexpectedEof | io::ErrorKind::Other
                    ),
                    "{codec:?}: {err}"
                );
            }
            // The same block with its true lengths and hash reads back.
            let mut file = io::Cursor::new(&data);
            let mut b = block(0, data.len() as u64, 0, 100);
            b.hash = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&[0u8; 100]));
            assert_eq!(
                read_block(&mut file, codec, &b).expect("reads"),
                vec![0u8; 100]
            );
        }
    }
}
