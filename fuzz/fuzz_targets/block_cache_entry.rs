//! Block cache entries (one file per compressed block, in a directory anyone sharing the cache
//! can write): any bytes give a block or nothing, never a panic; an entry as written reads back,
//! and one with a bit flipped never does.
#![no_main]
use envship_pack::blocks::cache::{entry_header, parse_entry};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The entry's own length field as the expected length, so that inputs get past that check
    // to the checksum.
    let ulen = data
        .get(8..16)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .unwrap_or(0);
    if let Some((_, compressed)) = parse_entry(data, ulen) {
        assert_eq!(
            compressed.len(),
            data.len() - envship_pack::blocks::cache::HEADER_LEN
        );
    }
    // The input as a block's compressed bytes: written, it reads back.
    let crc = data.len() as u32 ^ 0x5eed;
    let mut entry = entry_header(ulen, crc, data).to_vec();
    entry.extend_from_slice(data);
    assert_eq!(parse_entry(&entry, ulen), Some((crc, data)));
    assert!(parse_entry(&entry, ulen ^ 1).is_none(), "another length");
    let bit = (ulen as usize ^ data.len()) % (entry.len() * 8);
    entry[bit / 8] ^= 1 << (bit % 8);
    assert!(parse_entry(&entry, ulen).is_none(), "bit {bit} flipped");
});
