//! `envship unpack` of a zip (raw bytes). Nothing may be written outside DEST.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if data.starts_with(b"PK") {
        common::unpack_contained("a.zip", data);
    }
});
