//! gzip blocks that splice into one gzip member: each block is compressed on its own as an
//! independent raw deflate stream (see [`crate::blocks`] for how the stream is cut, compressed
//! in parallel and written between one gzip header and trailer). Plain `gzip -d` reads the
//! result. Blocks do not share a dictionary, so a block depends only on its input and the level.
//!
//! Each block is compressed by libdeflate, which only compresses whole buffers (that is what makes
//! it 2-3x faster than zlib at an equal size) and always marks its last deflate block final. To
//! splice blocks into ONE gzip member, [`final_block`] walks the block's deflate stream to find
//! that last block header, its BFINAL bit is cleared, and an empty stored block re-aligns to a
//! byte (what zlib's sync flush writes). The stream is ended by an empty final block after the
//! last one. One member rather than one per block matters: Python's streaming `tarfile` mode
//! (`r|gz`) stops at the end of the first member.
//!
//! [`final_block`]: crate::deflate_walk::Walker::final_block

use std::{cell::RefCell, io};

use flate2::{Compress, Compression, FlushCompress, Status};

use crate::deflate_walk::Walker;

/// zlib with a sync flush: the fallback if a libdeflate stream cannot be walked (which would be
/// a bug in [`crate::deflate_walk`]; the archive is still valid and still reproducible).
fn zlib_block(input: &[u8], level: u32) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    let flush = FlushCompress::Sync;
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
            _ if done_input && room_left => break,
            _ => {}
        }
    }
    Ok(out)
}

struct BlockCompressor {
    level: u32,
    compressor: libdeflater::Compressor,
    walker: Walker,
}

thread_local! {
    // libdeflate's compressor state is ~hundreds of KiB: one per worker thread, not per block.
    static COMPRESSOR: RefCell<Option<BlockCompressor>> = const { RefCell::new(None) };
}

/// libdeflate, then the final block made non-final and byte-aligned.
fn libdeflate_block(input: &[u8], level: u32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|c| c.level) != Some(level) {
            let lvl = libdeflater::CompressionLvl::new(level as i32).ok()?;
            *slot = Some(BlockCompressor {
                level,
                compressor: libdeflater::Compressor::new(lvl),
                walker: Walker::new(),
            });
        }
        let bc = slot.as_mut()?;
        let mut out = vec![0u8; bc.compressor.deflate_compress_bound(input.len()) + 6];
        let len = bc.compressor.deflate_compress(input, &mut out).ok()?;
        out.truncate(len);
        let f = bc.walker.final_block(&out)?;
        if f.end_bit.div_ceil(8) != len {
            return None;
        }
        out[f.header_bit / 8] &= !(1u8 << (f.header_bit % 8));
        // An empty non-final stored block: 3 header bits (zero) in the padding after the
        // end-of-block code if they fit, else in a new byte; then LEN 0, NLEN 0xffff.
        let used = f.end_bit % 8;
        if used == 0 || used > 5 {
            out.push(0);
        }
        out.extend_from_slice(&[0, 0, 0xff, 0xff]);
        Some(out)
    })
}

/// One block as a non-final, byte-aligned raw deflate stream.
pub(crate) fn deflate_block(input: &[u8], level: u32) -> io::Result<Vec<u8>> {
    match libdeflate_block(input, level) {
        Some(d) => Ok(d),
        None => {
            tracing::warn!("libdeflate output could not be spliced; using zlib for one block");
            zlib_block(input, level)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn libdeflate_blocks_splice_without_the_zlib_fallback() {
        // Compressible, incompressible (stored blocks) and tiny inputs, at every level.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..200_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let text: Vec<u8> = (0..300_000u32)
            .flat_map(|i| format!("line {} of /opt/conda/lib\n", i % 977).into_bytes())
            .collect();
        for level in 0..=9 {
            for input in [&noise[..], &text[..], b"x", b""] {
                let piece = libdeflate_block(input, level).expect("spliced");
                // Twice, then an empty final fixed-Huffman block: a decoder stopping early
                // (BFINAL left set) would return the input once.
                let stream = [&piece[..], &piece[..], &[0x03, 0x00]].concat();
                let mut back = Vec::new();
                flate2::read::DeflateDecoder::new(&stream[..])
                    .read_to_end(&mut back)
                    .expect("one valid deflate stream");
                assert_eq!(back, [input, input].concat(), "level {level}");
            }
        }
    }

    #[test]
    fn the_zlib_fallback_splices_too() {
        let text: Vec<u8> = (0..50_000u32).flat_map(|i| i.to_le_bytes()).collect();
        for level in [0, 4, 9] {
            let piece = zlib_block(&text, level).expect("zlib");
            let stream = [&piece[..], &piece[..], &[0x03, 0x00]].concat();
            let mut back = Vec::new();
            flate2::read::DeflateDecoder::new(&stream[..])
                .read_to_end(&mut back)
                .expect("one valid deflate stream");
            assert_eq!(back, [&text[..], &text[..]].concat(), "level {level}");
        }
    }
}
