//! `envship unpack` of a tar.zst (the input is the tar stream, compressed here). Nothing may be
//! written outside DEST.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let zst = zstd::stream::encode_all(data, 1).expect("zstd");
    common::unpack_contained("a.tar.zst", &zst);
});
