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
        let (mut next_c, mut next_u) = (None, 0);
        for (i, b) in index.blocks.iter().enumerate() {
            let follows = next_c.is_none_or(|c| c == b.offset) && b.uoffset == next_u;
            if !follows || b.ulen == 0 {
                return Err(bad(format!(
                    "block {i} does not follow block {}",
                    i.max(1) - 1
                )));
            }
            next_c = Some(b.offset + b.clen);
            next_u = b.uoffset + b.ulen;
        }
        Ok(index)
    }

    /// Write it atomically (compact JSON: it is for programs, and can be large).
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut s = serde_json::to_vec(self).map_err(|e| PackError::BadBlockIndex {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        s.push(b'\n');
        crate::relocate::write_atomic(path, &s)
    }
}

/// The uncompressed bytes of one block, read from `archive` alone.
pub fn read_block<R: Read + Seek>(
    archive: &mut R,
    codec: Codec,
    b: &IndexBlock,
) -> io::Result<Vec<u8>> {
    archive.seek(SeekFrom::Start(b.offset))?;
    let mut compressed = Vec::with_capacity(b.clen as usize);
    archive.by_ref().take(b.clen).read_to_end(&mut compressed)?;
    if compressed.len() as u64 != b.clen {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "block cut short",
        ));
    }
    let out = match codec {
        Codec::Gzip(_) => {
            // A non-final raw deflate stream: inflate until the input is used up.
            let mut d = flate2::Decompress::new(false);
            let mut out = Vec::with_capacity(b.ulen as usize + 64);
            d.decompress_vec(&compressed, &mut out, flate2::FlushDecompress::Sync)
                .map_err(io::Error::other)?;
            out
        }
        Codec::Zstd(_) => zstd::bulk::decompress(&compressed, b.ulen as usize)?,
    };
    if out.len() as u64 != b.ulen || xxhash_rust::xxh3::xxh3_128(&out) != parse_hash(&b.hash) {
        return Err(io::Error::other(format!(
            "block at offset {} does not match its index entry",
            b.offset
        )));
    }
    Ok(out)
}

/// The hash as stored (`0` if it is not hex, which matches no block).
pub fn parse_hash(hex: &str) -> u128 {
    u128::from_str_radix(hex, 16).unwrap_or(0)
}
