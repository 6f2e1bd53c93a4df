use std::io::Read;

use super::*;

fn pool(n: usize) -> Arc<rayon::ThreadPool> {
    Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("pool"),
    )
}

/// Noise that does not compress, from a seed.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A fake tar-like stream of named entries: what matters here is where entries start and end.
fn write_entries(
    files: &[(&str, Vec<u8>)],
    codec: Codec,
    threads: usize,
    cache: Option<Arc<BlockCache>>,
) -> (Vec<u8>, BlockIndex, BlockStats) {
    let mut w = BlockWriter::new(Vec::new(), codec, pool(threads), cache);
    for (name, data) in files {
        let size = data.len() as u64;
        let entry = IndexEntry {
            path: name.to_string(),
            kind: index::EntryKind::File,
            mode: 0o644,
            size,
            target: None,
            relocated: false,
            xxh3: None,
            exact: true,
        };
        w.begin_entry(EntryStart { entry, size }).expect("begin");
        w.write_all(&[b'H'; 512]).expect("header");
        w.begin_data(size);
        w.write_all(data).expect("data");
        w.end_entry(name.as_bytes(), Some(xxhash_rust::xxh3::xxh3_128(data)))
            .expect("end");
    }
    w.finish().expect("finish")
}

fn concat(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    files
        .iter()
        .flat_map(|(_, d)| [&[b'H'; 512][..], &d[..]].concat())
        .collect()
}

fn tree(changed_first: bool) -> Vec<(&'static str, Vec<u8>)> {
    let mut v = vec![
        ("a", noise(3000, if changed_first { 99 } else { 1 })),
        ("b", b"small text ".repeat(2000)),
    ];
    for (i, name) in ["c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8"]
        .iter()
        .enumerate()
    {
        v.push((name, noise(90_000, 10 + i as u64)));
    }
    v.push(("big", noise(3 * BLOCK_SIZE + 777, 5)));
    v.push(("z", b"tail".to_vec()));
    v
}

#[test]
fn gzip_and_zstd_read_back_with_standard_decoders_whatever_the_thread_count() {
    let files = tree(false);
    let plain = concat(&files);
    for codec in [Codec::Gzip(4), Codec::Zstd(3)] {
        let (one, index, _) = write_entries(&files, codec, 1, None);
        let (four, _, _) = write_entries(&files, codec, 4, None);
        assert_eq!(one, four, "{codec:?}: independent of threads");
        let mut back = Vec::new();
        match codec {
            Codec::Gzip(_) => {
                // One member: MultiGzDecoder would hide a second one, GzDecoder stops at it.
                flate2::read::GzDecoder::new(&one[..])
                    .read_to_end(&mut back)
                    .expect("gzip")
            }
            Codec::Zstd(_) => zstd::stream::read::Decoder::new(&one[..])
                .expect("zstd")
                .read_to_end(&mut back)
                .expect("zstd frames"),
        };
        assert_eq!(back, plain, "{codec:?}");
        // Every block inflates alone, from its index entry.
        let mut file = std::io::Cursor::new(&one);
        let mut joined = Vec::new();
        for b in &index.blocks {
            joined.extend(index::read_block(&mut file, codec, b).expect("block alone"));
        }
        assert_eq!(joined, plain);
    }
}

#[test]
fn large_files_own_their_blocks_and_unchanged_files_give_the_same_blocks() {
    let (_, before, _) = write_entries(&tree(false), Codec::Gzip(4), 2, None);
    let (_, after, _) = write_entries(&tree(true), Codec::Gzip(4), 2, None);
    let big: Vec<&IndexBlock> = before
        .blocks
        .iter()
        .filter(|b| b.ulen >= BLOCK_SIZE as u64)
        .collect();
    assert!(big.len() >= 3, "{before:#?}");
    let starts_big = before
        .blocks
        .iter()
        .find(|b| b.entries.iter().any(|e| e.path == "big"))
        .expect("big's first block");
    assert_eq!(
        starts_big.entries.len(),
        1,
        "a large file starts its own block"
    );
    assert_eq!(starts_big.ulen, 512 + BLOCK_SIZE as u64, "header + 1 MiB");
    // Only the first run changes: every later block is the same.
    let hashes = |i: &BlockIndex| i.blocks.iter().map(|b| b.hash.clone()).collect::<Vec<_>>();
    let (b, a) = (hashes(&before), hashes(&after));
    assert_ne!(b[0], a[0]);
    assert_eq!(b.len(), a.len());
    assert_eq!(b[1..], a[1..]);
}

#[test]
fn a_warm_write_reuses_every_block_and_is_byte_identical() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Arc::new(BlockCache::new(
        dir.path().to_path_buf(),
        cache::DEFAULT_MAX_BYTES,
    ));
    for codec in [Codec::Gzip(6), Codec::Zstd(5)] {
        let files = tree(false);
        let (cold, _, s0) = write_entries(&files, codec, 2, None);
        let (first, _, s1) = write_entries(&files, codec, 2, Some(cache.clone()));
        let (warm, _, s2) = write_entries(&files, codec, 2, Some(cache.clone()));
        assert_eq!(cold, first);
        assert_eq!(cold, warm);
        assert_eq!((s0.reused, s1.reused), (0, 0));
        assert_eq!((s2.reused, s2.compressed), (s1.compressed, 0), "{codec:?}");
        let (changed, _, s3) = write_entries(&tree(true), codec, 2, Some(cache.clone()));
        assert_eq!(s3.compressed, 1, "only the changed run is compressed");
        assert_eq!(changed, write_entries(&tree(true), codec, 1, None).0);
    }
}
