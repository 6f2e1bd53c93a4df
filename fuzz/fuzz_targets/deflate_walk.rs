//! The gzip block walker: on any bytes it must not panic; on streams that libdeflate or flate2
//! compressed from the input it must find the final block ending exactly at the stream's end.
//!
//! This target does not reach a million executions in 10 minutes: each input is also compressed
//! twice (libdeflate at up to level 12, its slowest, and zlib-rs) and inflated once, to check
//! the walk on real streams; that, not the walk, is most of the ~1.4 ms of CPU per input of up to
//! 4 KiB (360 exec/s with about half a core). The walk on the raw bytes alone is far faster.
#![no_main]
use std::io::Write;

use envship_pack::fuzzing::Walker;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut w = Walker::new();
    let _ = w.final_block(data);
    let Some((&level, input)) = data.split_first() else {
        return;
    };
    // libdeflate, as pgzip uses it.
    let lvl = libdeflater::CompressionLvl::new(i32::from(level % 13)).expect("level");
    let mut c = libdeflater::Compressor::new(lvl);
    let mut out = vec![0u8; c.deflate_compress_bound(input.len())];
    let len = c.deflate_compress(input, &mut out).expect("compress");
    out.truncate(len);
    let f = w.final_block(&out).expect("walks libdeflate's stream");
    assert_eq!(f.end_bit.div_ceil(8), len);
    // flate2 (zlib-rs), round-tripped.
    let mut enc = flate2::write::DeflateEncoder::new(
        Vec::new(),
        flate2::Compression::new(u32::from(level % 10)),
    );
    enc.write_all(input).expect("deflate");
    let z = enc.finish().expect("deflate");
    let f = w.final_block(&z).expect("walks flate2's stream");
    assert_eq!(f.end_bit.div_ceil(8), z.len());
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::DeflateDecoder::new(&z[..]), &mut back)
        .expect("inflate");
    assert_eq!(back, input);
});
