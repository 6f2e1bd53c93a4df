//! The block cache: compressed blocks kept between packs, one file per block, keyed by the
//! xxh3-128 hash of the uncompressed block, its length, the codec and the level.
//!
//! An entry is `MAGIC`, the uncompressed length, the CRC-32 of the uncompressed bytes, the
//! compressed length, an xxh3-64 checksum of those fields and the compressed bytes, then the
//! compressed bytes. A read checks all of it; an entry that is short, long or does not match
//! its checksum is ignored (and rewritten by the next compression of that block), never
//! shipped. Entries are written to a temp file and renamed, so concurrent packs never see half
//! an entry. A hit touches the entry's mtime; [`BlockCache::trim`] removes the least recently
//! used entries beyond the size bound.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, Ordering},
    time::SystemTime,
};

use super::Codec;

const MAGIC: &[u8; 8] = b"ESBLK\x01\0\0";
/// The header's length: magic, uncompressed length, CRC, compressed length, checksum.
pub const HEADER_LEN: usize = 8 + 8 + 4 + 8 + 8;
/// The default bound on the cache's size.
pub const DEFAULT_MAX_BYTES: u64 = 4 << 30;

/// A compressed block and the CRC-32 of its uncompressed bytes.
pub struct CachedBlock {
    /// The compressed bytes, as they go into the archive.
    pub data: Vec<u8>,
    /// CRC-32 of the uncompressed block (gzip's trailer combines them).
    pub crc: u32,
    /// Taken from the cache.
    pub reused: bool,
}

/// A directory of compressed blocks.
#[derive(Debug)]
pub struct BlockCache {
    dir: PathBuf,
    max_bytes: u64,
    /// A write failed and was reported: the next failures are only logged at debug level.
    warned: AtomicBool,
}

fn checksum(ulen: u64, crc: u32, clen: u64, data: &[u8]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&ulen.to_le_bytes());
    h.update(&crc.to_le_bytes());
    h.update(&clen.to_le_bytes());
    h.update(data);
    h.digest()
}

impl BlockCache {
    /// The cache in `dir` (made on first write), bounded to `max_bytes`.
    pub fn new(dir: PathBuf, max_bytes: u64) -> Self {
        BlockCache {
            dir,
            max_bytes,
            warned: AtomicBool::new(false),
        }
    }

    /// Where the cache lives.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, hash: u128, codec: Codec, ulen: u64) -> PathBuf {
        let hex = format!("{hash:032x}");
        self.dir
            .join(codec.label())
            .join(&hex[..2])
            .join(format!("{hex}-{ulen}"))
    }

    /// The valid entry for this block, if there is one.
    pub fn get(&self, hash: u128, codec: Codec, ulen: u64) -> Option<CachedBlock> {
        let path = self.entry_path(hash, codec, ulen);
        let bytes = fs::read(&path).ok()?;
        match parse_entry(&bytes, ulen) {
            Some((crc, _)) => {
                // Recently used: trim keeps it. Best effort (a read-only cache still serves).
                if let Ok(f) = fs::File::options().write(true).open(&path) {
                    let _ = f.set_modified(SystemTime::now());
                }
                let mut data = bytes;
                // The header off the front: one move, no second buffer.
                data.drain(..HEADER_LEN);
                Some(CachedBlock {
                    data,
                    crc,
                    reused: true,
                })
            }
            None => {
                tracing::warn!(
                    "ignoring the corrupt block cache entry {} (it is rewritten)",
                    path.display()
                );
                None
            }
        }
    }

    /// Store a block. Failures are reported once (a warning naming the entry and the error, e.g.
    /// a full disk) and otherwise ignored: the cache only saves time, the pack goes on. A
    /// failed write leaves no entry (its temp file is removed).
    pub fn put(&self, hash: u128, codec: Codec, ulen: u64, block: &CachedBlock) {
        let path = self.entry_path(hash, codec, ulen);
        if let Err(e) = write_entry(&path, ulen, block) {
            if self.warned.swap(true, Ordering::Relaxed) {
                tracing::debug!(
                    "could not write the block cache entry {}: {e}",
                    path.display()
                );
            } else {
                tracing::warn!(
                    "could not write the block cache entry {}: {e}; blocks that cannot be \
                     kept are compressed again by the next pack (the archive is not affected)",
                    path.display()
                );
            }
        }
    }

    /// Remove the least recently used entries until the cache holds at most its bound (then
    /// 90% of it, so that the next packs do not trim again at once). Returns the bytes removed.
    pub fn trim(&self) -> u64 {
        let mut entries: Vec<(SystemTime, u64, PathBuf)> = walkdir::WalkDir::new(&self.dir)
            .min_depth(3)
            .max_depth(3)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .filter_map(|e| {
                let md = e.metadata().ok()?;
                Some((md.modified().ok()?, md.len(), e.into_path()))
            })
            .collect();
        let total: u64 = entries.iter().map(|e| e.1).sum();
        if total <= self.max_bytes {
            return 0;
        }
        entries.sort();
        let goal = self.max_bytes / 10 * 9;
        let mut left = total;
        let mut removed = 0;
        for (_, len, path) in entries {
            if left <= goal {
                break;
            }
            if fs::remove_file(&path).is_ok() {
                left -= len;
                removed += len;
            }
        }
        removed
    }
}

/// The CRC and compressed bytes of a valid entry for a block of `ulen` bytes. Public (hidden)
/// for the fuzz target of cache entries, which are read from a directory anyone sharing the
/// cache can write.
#[doc(hidden)]
pub fn parse_entry(bytes: &[u8], ulen: u64) -> Option<(u32, &[u8])> {
    let header = bytes.get(..HEADER_LEN)?;
    let field = |r: std::ops::Range<usize>| header.get(r);
    if field(0..8)? != MAGIC {
        return None;
    }
    let stored_ulen = u64::from_le_bytes(field(8..16)?.try_into().ok()?);
    let crc = u32::from_le_bytes(field(16..20)?.try_into().ok()?);
    let clen = u64::from_le_bytes(field(20..28)?.try_into().ok()?);
    let sum = u64::from_le_bytes(field(28..36)?.try_into().ok()?);
    let data = &bytes[HEADER_LEN..];
    let valid = stored_ulen == ulen
        && data.len() as u64 == clen
        && checksum(stored_ulen, crc, clen, data) == sum;
    valid.then_some((crc, data))
}

/// The header of the entry for compressed bytes `data` of a block of `ulen` bytes whose CRC-32
/// is `crc` (the entry is the header, then `data`). Public (hidden) so that the fuzz target can
/// check that what is written reads back.
#[doc(hidden)]
pub fn entry_header(ulen: u64, crc: u32, data: &[u8]) -> [u8; HEADER_LEN] {
    let clen = data.len() as u64;
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(MAGIC);
    h[8..16].copy_from_slice(&ulen.to_le_bytes());
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h[20..28].copy_from_slice(&clen.to_le_bytes());
    h[28..36].copy_from_slice(&checksum(ulen, crc, clen, data).to_le_bytes());
    h
}

fn write_entry(path: &Path, ulen: u64, block: &CachedBlock) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(dir)?;
    let f = tmp.as_file_mut();
    f.write_all(&entry_header(ulen, block.crc, &block.data))?;
    f.write_all(&block.data)?;
    // No fsync: a block lost in a crash is compressed again; a torn one fails its checksum.
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(data: &[u8]) -> CachedBlock {
        CachedBlock {
            data: data.to_vec(),
            crc: crc32fast::hash(b"uncompressed"),
            reused: false,
        }
    }

    #[test]
    fn a_stored_entry_comes_back_and_a_damaged_one_never_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = BlockCache::new(dir.path().join("blocks"), DEFAULT_MAX_BYTES);
        let codec = Codec::Gzip(4);
        cache.put(7, codec, 12, &block(b"compressed bytes"));
        let hit = cache.get(7, codec, 12).expect("hit");
        assert_eq!(hit.data, b"compressed bytes");
        assert!(hit.reused);
        assert!(cache.get(7, codec, 13).is_none(), "another length");
        assert!(cache.get(7, Codec::Zstd(4), 12).is_none(), "another codec");
        assert!(cache.get(8, codec, 12).is_none(), "another hash");

        let path = cache.entry_path(7, codec, 12);
        let good = fs::read(&path).expect("entry");
        // truncated, one flipped bit in the data, one in the header, and an extra byte
        let mut flipped = good.clone();
        *flipped.last_mut().expect("byte") ^= 1;
        let mut header_flip = good.clone();
        header_flip[17] ^= 0x80;
        let mut longer = good.clone();
        longer.push(0);
        for bad in [&good[..good.len() - 1], &flipped, &header_flip, &longer] {
            fs::write(&path, bad).expect("damage");
            assert!(cache.get(7, codec, 12).is_none());
        }
        // The next compression rewrites it.
        cache.put(7, codec, 12, &block(b"compressed bytes"));
        assert!(cache.get(7, codec, 12).is_some());
    }

    #[test]
    fn trim_removes_the_least_recently_used_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = BlockCache::new(dir.path().to_path_buf(), 2500);
        let codec = Codec::Zstd(3);
        for h in 0..5u128 {
            cache.put(h, codec, 1, &block(&[h as u8; 1000]));
            let p = cache.entry_path(h, codec, 1);
            let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000 + h as u64);
            fs::File::options()
                .write(true)
                .open(&p)
                .and_then(|f| f.set_modified(t))
                .expect("age");
        }
        // Entry 0 is the oldest, but a hit makes it the newest.
        assert!(cache.get(0, codec, 1).is_some());
        let removed = cache.trim();
        assert!(removed > 0);
        let left: Vec<u128> = (0..5)
            .filter(|&h| cache.get(h, codec, 1).is_some())
            .collect();
        assert_eq!(left, vec![0, 4], "the two most recently used stay");
    }
}
