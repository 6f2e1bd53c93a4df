//! Parallel gzip, pigz-style: the stream is cut into fixed-size blocks, each compressed on its
//! own thread as a raw deflate stream ending on a sync flush (the last one finished), and the
//! pieces are written in order between one gzip header and trailer whose CRC-32 is combined
//! from the blocks' CRCs. Plain `gzip -d` reads the result. Blocks do not share a dictionary,
//! so the output depends only on the input and the level, never on the thread count.

use std::{
    collections::VecDeque,
    io::{self, Write},
    sync::{mpsc, Arc},
};

use flate2::{Compress, Compression, FlushCompress, Status};

/// Uncompressed bytes per block: large enough that dictionary resets cost < 0.5% of size.
pub const BLOCK_SIZE: usize = 1 << 20;

struct Done {
    data: Vec<u8>,
    crc: crc32fast::Hasher,
}

/// A `Write` sink that gzips on a thread pool; call [`ParGzWriter::finish`] at the end.
pub struct ParGzWriter<W: Write> {
    inner: W,
    pool: Arc<rayon::ThreadPool>,
    level: u32,
    buf: Vec<u8>,
    pending: VecDeque<mpsc::Receiver<io::Result<Done>>>,
    max_pending: usize,
    crc: crc32fast::Hasher,
    total: u64,
    header_written: bool,
}

fn deflate_block(input: &[u8], level: u32, last: bool) -> io::Result<Done> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(64 * 1024));
        }
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&input[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let done_input = c.total_in() as usize == input.len();
        let room_left = out.capacity() > out.len();
        match status {
            Status::StreamEnd => break,
            _ if done_input && room_left && !last => break,
            _ => {}
        }
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(input);
    Ok(Done { data: out, crc })
}

impl<W: Write> ParGzWriter<W> {
    /// Compress into `inner` at `level` (0-9) on `pool`.
    pub fn new(inner: W, level: u32, pool: Arc<rayon::ThreadPool>) -> Self {
        let threads = pool.current_num_threads().max(1);
        Self {
            inner,
            pool,
            level: level.min(9),
            buf: Vec::with_capacity(BLOCK_SIZE),
            pending: VecDeque::new(),
            max_pending: threads * 2,
            crc: crc32fast::Hasher::new(),
            total: 0,
            header_written: false,
        }
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            // magic, deflate, no flags, mtime 0 (reproducible), xfl 0, OS = unix
            self.inner
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])?;
            self.header_written = true;
        }
        Ok(())
    }

    fn collect_one(&mut self) -> io::Result<()> {
        if let Some(rx) = self.pending.pop_front() {
            let done = rx
                .recv()
                .map_err(|_| io::Error::other("compression thread died"))??;
            self.write_header()?;
            self.inner.write_all(&done.data)?;
            self.crc.combine(&done.crc);
        }
        Ok(())
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let block = std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(if last { 0 } else { BLOCK_SIZE }),
        );
        self.total += block.len() as u64;
        let (tx, rx) = mpsc::sync_channel(1);
        let level = self.level;
        self.pool.spawn(move || {
            let _ = tx.send(deflate_block(&block, level, last));
        });
        self.pending.push_back(rx);
        while self.pending.len() > self.max_pending {
            self.collect_one()?;
        }
        Ok(())
    }

    /// Compress what is left, write the trailer, and return the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.collect_one()?;
        }
        self.write_header()?;
        let crc = self.crc.clone().finalize();
        self.inner.write_all(&crc.to_le_bytes())?;
        self.inner.write_all(&(self.total as u32).to_le_bytes())?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for ParGzWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = BLOCK_SIZE - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == BLOCK_SIZE {
            self.submit(false)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pool(n: usize) -> Arc<rayon::ThreadPool> {
        Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .expect("pool"),
        )
    }

    fn gz(data: &[u8], threads: usize) -> Vec<u8> {
        let mut w = ParGzWriter::new(Vec::new(), 6, pool(threads));
        w.write_all(data).expect("write");
        w.finish().expect("finish")
    }

    #[test]
    fn round_trips_through_a_standard_decoder_and_ignores_thread_count() {
        let mut data = Vec::new();
        for i in 0..(BLOCK_SIZE * 3 + 12345) {
            data.push(((i * 7919) % 251) as u8 ^ (i / 1000) as u8);
        }
        let one = gz(&data, 1);
        let four = gz(&data, 4);
        assert_eq!(one, four);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&one[..])
            .read_to_end(&mut back)
            .expect("valid gzip");
        assert_eq!(back, data);
        let empty = gz(b"", 2);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&empty[..])
            .read_to_end(&mut back)
            .expect("valid empty gzip");
        assert!(back.is_empty());
    }
}
