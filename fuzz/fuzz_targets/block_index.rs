//! The block index (an archive's `.blocks.json` sidecar, which a linked deploy reads beside the
//! archive) and reading single blocks with it: any bytes give an index or an error, and any
//! block an index names gives its bytes or an error, never a panic or a huge allocation. The
//! input is the index JSON, a NUL byte, then the archive bytes the blocks are read from.
#![no_main]
use std::{io::Cursor, path::Path};

use envship_pack::blocks::index::{read_block, BlockIndex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (json, archive) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let index = match BlockIndex::parse(json, Path::new("a.tar.zst.blocks.json")) {
        Ok(i) => i,
        Err(e) => return drop(e.to_string()),
    };
    let codec = index.parsed_codec().expect("parse checks the codec");
    let mut file = Cursor::new(archive);
    for b in index.blocks.iter().take(8) {
        if let Ok(out) = read_block(&mut file, codec, b) {
            assert_eq!(out.len() as u64, b.ulen);
        }
    }
});
