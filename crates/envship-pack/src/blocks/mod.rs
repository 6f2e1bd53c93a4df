//! Compressed tar streams cut into independent blocks at entry boundaries, so that a re-release
//! compresses only what changed.
//!
//! **Cutting.** A run of small entries is one block, ended after an entry whose name hashes to
//! a cut point (about one in 8) once the run holds [`MIN_RUN`] bytes, or in any case once it holds
//! [`BLOCK_SIZE`]. Cut points depend on the entries themselves, not on offsets, so the runs
//! after a change fall back into step at the next cut point. A large entry (data of at least
//! [`LARGE`] bytes) starts a block of its own and its data is cut every [`BLOCK_SIZE`] bytes
//! counted from the file's own start. An unchanged file therefore gives the same blocks whatever
//! changed before it in the tree.
//!
//! **Compression.** Each block is compressed on its own on a thread pool: gzip blocks are raw
//! deflate streams made non-final and byte-aligned ([`crate::pgzip`]), written between one gzip
//! header and one trailer, so the archive stays one gzip member (Python's streaming `r|gz`
//! stops at a member's end); zstd blocks are whole frames, which every zstd decoder reads one
//! after the other. Blocks share no dictionary, so a block's bytes depend only on its input, the
//! codec and the level: that makes them reusable from the [`cache`], and the archive
//! byte-identical with or without it, whatever the thread count.
//!
//! **Index.** Every block's compressed offset and length, its uncompressed length, its hash and
//! the entries that start in it are kept ([`index`]); pack writes them as the `.blocks.json`
//! sidecar, which lets a reader inflate a single block without the ones before it.

pub mod cache;
pub mod index;

use std::{
    collections::VecDeque,
    io::{self, Write},
    sync::{mpsc, Arc},
};

use cache::{BlockCache, CachedBlock};
use index::{BlockIndex, IndexBlock, IndexEntry};

/// Uncompressed bytes per block at most (but for a run's last small entry): large enough that
/// dictionary resets cost < 0.5% of size.
pub const BLOCK_SIZE: usize = 1 << 20;
/// A run of small entries is not cut at a cut point before it holds this many bytes.
pub const MIN_RUN: usize = 256 << 10;
/// Entries with at least this much data get blocks of their own.
pub const LARGE: u64 = 256 << 10;
/// One in `CUT_ODDS` entry names is a cut point.
const CUT_ODDS: u64 = 8;
/// A final, empty fixed-Huffman deflate block: ends the gzip stream after the spliced blocks.
const DEFLATE_END: [u8; 2] = [0x03, 0x00];

/// How blocks are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// Raw deflate blocks inside one gzip member, level 0-9.
    Gzip(u32),
    /// One zstd frame per block, level 1-22.
    Zstd(i32),
}

impl Codec {
    /// The cache's and the index's name for it (`gzip-4`, `zstd-19`).
    pub fn label(self) -> String {
        match self {
            Codec::Gzip(l) => format!("gzip-{l}"),
            Codec::Zstd(l) => format!("zstd-{l}"),
        }
    }

    fn compress(self, input: &[u8]) -> io::Result<Vec<u8>> {
        match self {
            Codec::Gzip(level) => crate::pgzip::deflate_block(input, level),
            Codec::Zstd(level) => zstd_frame(input, level),
        }
    }
}

/// One zstd frame with its content size and checksum.
fn zstd_frame(input: &[u8], level: i32) -> io::Result<Vec<u8>> {
    use std::cell::RefCell;
    thread_local! {
        static ZSTD: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { RefCell::new(None) };
    }
    ZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            let mut c = zstd::bulk::Compressor::new(level)?;
            c.include_checksum(true)?;
            c.include_contentsize(true)?;
            *slot = Some((level, c));
        }
        match slot.as_mut() {
            Some((_, c)) => c.compress(input),
            None => Err(io::Error::other("zstd compressor missing")),
        }
    })
}

/// What kind of entry is starting, for the cut rules and the index.
pub struct EntryStart {
    /// The entry as the index records it.
    pub entry: IndexEntry,
    /// Its data length (0 for links and directories).
    pub size: u64,
}

/// How many blocks were reused from the cache and how many compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BlockStats {
    /// Blocks taken from the cache.
    pub reused: u64,
    /// Blocks compressed.
    pub compressed: u64,
    /// Uncompressed bytes of the reused blocks.
    pub reused_bytes: u64,
    /// Uncompressed bytes of the compressed blocks.
    pub compressed_bytes: u64,
}

struct Pending {
    block: IndexBlock,
    /// The entries starting in it (indexes into `BlockWriter::entries`: a file's hash is known
    /// only once its data is written, which may be after its first block is).
    starts: Vec<usize>,
    /// The compressed block, the hash of the input, and the input's buffer (for reuse).
    rx: mpsc::Receiver<io::Result<(CachedBlock, u128, Vec<u8>)>>,
}

/// A `Write` sink for a tar stream that is told where entries start and end (see the module
/// docs); call [`BlockWriter::finish`] at the end.
pub struct BlockWriter<W: Write> {
    inner: W,
    pool: Arc<rayon::ThreadPool>,
    codec: Codec,
    cache: Option<Arc<BlockCache>>,
    buf: Vec<u8>,
    /// Every entry so far.
    entries: Vec<IndexEntry>,
    /// Entries that start in `buf`.
    starts: Vec<usize>,
    /// Blocks written, with the entries that start in them.
    written: Vec<(IndexBlock, Vec<usize>)>,
    /// Inside a large entry's data: the stream offset of its next cut.
    next_cut: Option<u64>,
    /// The uncompressed stream offset of `buf`'s start.
    uoffset: u64,
    /// Compressed bytes written so far (the gzip header included).
    coffset: u64,
    pending: VecDeque<Pending>,
    max_pending: usize,
    /// Input buffers back from the pool: reused, new pages are not faulted in per block.
    spare: Vec<Vec<u8>>,
    crc: crc32fast::Hasher,
    index: BlockIndex,
    stats: BlockStats,
    started: bool,
}

impl<W: Write> BlockWriter<W> {
    /// Compress into `inner` with `codec` on `pool`, reusing blocks from `cache` if given.
    pub fn new(
        inner: W,
        codec: Codec,
        pool: Arc<rayon::ThreadPool>,
        cache: Option<Arc<BlockCache>>,
    ) -> Self {
        let threads = pool.current_num_threads().max(1);
        Self {
            inner,
            pool,
            codec,
            cache,
            buf: Vec::with_capacity(BLOCK_SIZE),
            entries: Vec::new(),
            starts: Vec::new(),
            written: Vec::new(),
            next_cut: None,
            uoffset: 0,
            coffset: 0,
            pending: VecDeque::new(),
            max_pending: threads * 2,
            spare: Vec::new(),
            crc: crc32fast::Hasher::new(),
            index: BlockIndex::new(codec),
            stats: BlockStats::default(),
            started: false,
        }
    }

    fn position(&self) -> u64 {
        self.uoffset + self.buf.len() as u64
    }

    /// An entry's header is about to be written.
    pub fn begin_entry(&mut self, start: EntryStart) -> io::Result<()> {
        if start.size >= LARGE {
            self.cut()?;
        }
        self.starts.push(self.entries.len());
        self.entries.push(start.entry);
        Ok(())
    }

    /// The entry's data starts now (its header is written): a large entry is cut every
    /// [`BLOCK_SIZE`] bytes from here.
    pub fn begin_data(&mut self, size: u64) {
        if size >= LARGE {
            self.next_cut = Some(self.position() + BLOCK_SIZE as u64);
        }
    }

    /// The entry (data and padding) is written, its content hashing to `xxh3` (files); `name`
    /// decides whether this is a cut point.
    pub fn end_entry(&mut self, name: &[u8], xxh3: Option<u128>) -> io::Result<()> {
        if let (Some(h), Some(e)) = (xxh3, self.entries.last_mut()) {
            e.xxh3 = Some(format!("{h:032x}"));
        }
        if self.next_cut.take().is_some() {
            return self.cut();
        }
        let len = self.buf.len();
        let cut_point = xxhash_rust::xxh3::xxh3_64(name).is_multiple_of(CUT_ODDS);
        if len >= BLOCK_SIZE || (len >= MIN_RUN && cut_point) {
            self.cut()?;
        }
        Ok(())
    }

    fn write_start(&mut self) -> io::Result<()> {
        if !self.started {
            self.started = true;
            if let Codec::Gzip(_) = self.codec {
                // magic, deflate, no flags, mtime 0 (reproducible), xfl 0, OS = unix
                let header = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
                self.inner.write_all(&header)?;
                self.coffset += header.len() as u64;
            }
        }
        Ok(())
    }

    fn collect_one(&mut self) -> io::Result<()> {
        let Some(Pending {
            mut block,
            starts,
            rx,
        }) = self.pending.pop_front()
        else {
            return Ok(());
        };
        let (done, hash, mut input) = rx
            .recv()
            .map_err(|_| io::Error::other("compression thread died"))??;
        input.clear();
        self.spare.push(input);
        block.hash = format!("{hash:032x}");
        self.write_start()?;
        self.inner.write_all(&done.data)?;
        self.crc.combine(&crc32fast::Hasher::new_with_initial_len(
            done.crc, block.ulen,
        ));
        block.offset = self.coffset;
        block.clen = done.data.len() as u64;
        self.coffset += block.clen;
        if done.reused {
            self.stats.reused += 1;
            self.stats.reused_bytes += block.ulen;
        } else {
            self.stats.compressed += 1;
            self.stats.compressed_bytes += block.ulen;
        }
        self.written.push((block, starts));
        Ok(())
    }

    /// End the current block here (nothing if it is empty).
    pub fn cut(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BLOCK_SIZE));
        let data = std::mem::replace(&mut self.buf, next);
        // The hash is taken on the pool's thread, with the compression (set when collected).
        let block = IndexBlock {
            offset: 0,
            clen: 0,
            uoffset: self.uoffset,
            ulen: data.len() as u64,
            hash: String::new(),
            entries: Vec::new(),
        };
        let starts = std::mem::take(&mut self.starts);
        self.uoffset += data.len() as u64;
        let (tx, rx) = mpsc::sync_channel(1);
        let codec = self.codec;
        let cache = self.cache.clone();
        self.pool.spawn(move || {
            let hash = xxhash_rust::xxh3::xxh3_128(&data);
            let done = compress_or_reuse(&data, hash, codec, cache.as_deref());
            let _ = tx.send(done.map(|b| (b, hash, data)));
        });
        self.pending.push_back(Pending { block, starts, rx });
        while self.pending.len() > self.max_pending {
            self.collect_one()?;
        }
        Ok(())
    }

    /// Compress what is left, end the stream, and return the inner writer, the block index and
    /// the reuse counts.
    pub fn finish(mut self) -> io::Result<(W, BlockIndex, BlockStats)> {
        self.cut()?;
        while !self.pending.is_empty() {
            self.collect_one()?;
        }
        self.write_start()?;
        if let Codec::Gzip(_) = self.codec {
            self.inner.write_all(&DEFLATE_END)?;
            let crc = self.crc.clone().finalize();
            self.inner.write_all(&crc.to_le_bytes())?;
            self.inner.write_all(&(self.uoffset as u32).to_le_bytes())?;
        }
        self.inner.flush()?;
        let mut entries: Vec<Option<IndexEntry>> = self.entries.into_iter().map(Some).collect();
        for (mut block, starts) in self.written {
            block.entries = starts
                .into_iter()
                .filter_map(|i| entries.get_mut(i).and_then(Option::take))
                .collect();
            self.index.blocks.push(block);
        }
        Ok((self.inner, self.index, self.stats))
    }
}

/// A block's compressed bytes: from the cache when it holds a valid entry, else compressed now
/// (and stored in the cache, best effort: a cache that cannot be written only costs speed).
fn compress_or_reuse(
    data: &[u8],
    hash: u128,
    codec: Codec,
    cache: Option<&BlockCache>,
) -> io::Result<CachedBlock> {
    if let Some(c) = cache {
        if let Some(hit) = c.get(hash, codec, data.len() as u64) {
            return Ok(hit);
        }
    }
    let compressed = codec.compress(data)?;
    let block = CachedBlock {
        data: compressed,
        crc: crc32fast::hash(data),
        reused: false,
    };
    if let Some(c) = cache {
        c.put(hash, codec, data.len() as u64, &block);
    }
    Ok(block)
}

impl<W: Write> Write for BlockWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // A large entry's data stops at its next cut; anything else fills the buffer (a run
        // may pass BLOCK_SIZE by its last entry, which `end_entry` then cuts after).
        let room = match self.next_cut {
            Some(cut) => (cut - self.position()) as usize,
            None => data.len(),
        };
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if let Some(cut) = self.next_cut {
            if self.position() == cut {
                self.cut()?;
                self.next_cut = Some(cut + BLOCK_SIZE as u64);
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests;
