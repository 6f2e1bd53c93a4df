//! `envship unpack` of a tar.gz: the input is the tar stream (so mutations reach the tar reader
//! rather than die in gzip's CRC), gzipped here. Nothing may be written outside DEST.
#![no_main]
use std::io::Write;

use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("gzip");
    common::unpack_contained("a.tar.gz", &gz.finish().expect("gzip"));
});
