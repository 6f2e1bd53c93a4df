//! Block reuse on a real prefix: a warm pack is byte-identical to a cold one, a damaged cache
//! entry is never shipped, a change recompresses only its blocks, and what comes out is read by
//! gzip, tar, zstd and Python's streaming tarfile.

use std::{fs, path::Path};

use envship_pack::{
    blocks::{
        index::{read_block, BlockIndex},
        BLOCK_SIZE,
    },
    pack, BlockReuse, BlockStats, Format, ManifestTarget, PackOptions, Sidecar,
};
use envship_spec::NoProgress;

use crate::support::*;

fn opts(prefix: &Path, out: &Path, format: Format, reuse: BlockReuse) -> PackOptions {
    PackOptions {
        prefix: prefix.to_path_buf(),
        output: Some(out.to_path_buf()),
        name: "demo".into(),
        version: "1.0".into(),
        target: ManifestTarget {
            name: "lcls-rhel6".into(),
            subdir: "linux-64".into(),
            glibc: Some("2.12".into()),
        },
        format,
        force: true,
        reuse,
        ..Default::default()
    }
}

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

fn packed(prefix: &Path, out: &Path, format: Format, reuse: &BlockReuse) -> (Vec<u8>, BlockStats) {
    let o = pack(&opts(prefix, out, format, reuse.clone()), &NoProgress).unwrap();
    (fs::read(out).unwrap(), o.blocks.unwrap())
}

fn cache_entries(dir: &Path) -> Vec<std::path::PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .collect()
}

#[test]
fn warm_packs_are_byte_identical_and_damaged_cache_entries_are_never_shipped() {
    let Some(env) = build_env() else { return };
    // Large files too: they get blocks of their own, cut from their own start.
    fs::write(
        env.prefix.join("lib/big-a.bin"),
        noise(3 * BLOCK_SIZE + 5, 3),
    )
    .unwrap();
    fs::write(env.prefix.join("share/big-b.dat"), b"text ".repeat(700_000)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let cache_dir = work.path().join("cache");
    let reuse = BlockReuse::Cache {
        dir: cache_dir.clone(),
        max_bytes: 1 << 30,
    };
    for format in [Format::TarGz, Format::TarZst] {
        let out = work.path().join(format!("demo.{}", format.extension()));
        let (cold, s0) = packed(&env.prefix, &out, format, &BlockReuse::Off);
        let (first, s1) = packed(&env.prefix, &out, format, &reuse);
        let (warm, s2) = packed(&env.prefix, &out, format, &reuse);
        assert!(
            cold == first && cold == warm,
            "{format:?}: cache-independent bytes"
        );
        assert_eq!((s0.reused, s1.reused), (0, 0));
        assert_eq!((s2.reused, s2.compressed), (s1.compressed, 0), "{format:?}");
        assert!(s2.reused >= 5, "{s2:?}");

        // One damaged entry (a flipped byte), one truncated: both compressed again, rewritten.
        let entries = cache_entries(&cache_dir.join(match format {
            Format::TarGz => "gzip-4",
            _ => "zstd-4",
        }));
        let mut bytes = fs::read(&entries[0]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x20;
        fs::write(&entries[0], &bytes).unwrap();
        let short = fs::read(&entries[1]).unwrap();
        fs::write(&entries[1], &short[..short.len() / 2]).unwrap();
        let (healed, s3) = packed(&env.prefix, &out, format, &reuse);
        assert!(
            healed == cold,
            "{format:?}: a damaged entry changed the archive"
        );
        assert_eq!((s3.compressed, s3.reused), (2, s2.reused - 2), "{format:?}");
        let (_, s4) = packed(&env.prefix, &out, format, &reuse);
        assert_eq!(s4.compressed, 0, "the damaged entries were rewritten");

        // Every block inflates alone from the index, and the index is what the manifest names.
        let index_path = Sidecar::Blocks.path_for(&out);
        let index = BlockIndex::read(&index_path).unwrap();
        let codec = index.parsed_codec().unwrap();
        let mut file = fs::File::open(&out).unwrap();
        let mut tar_stream = Vec::new();
        for b in &index.blocks {
            tar_stream.extend(read_block(&mut file, codec, b).unwrap());
        }
        let listed = tar::Archive::new(&tar_stream[..])
            .entries()
            .unwrap()
            .count();
        let m = envship_pack::Manifest::read(&Sidecar::Manifest.path_for(&out)).unwrap();
        let r = m.block_index.unwrap();
        assert_eq!(r.blocks, index.blocks.len());
        assert_eq!(
            r.sha256,
            envship_spec::digest::sha256_file(&index_path).unwrap()
        );

        // Standard readers: gzip -t / zstd -t, tar, and Python's streaming mode for tar.gz.
        let o = out.display();
        match format {
            Format::TarGz => {
                ok(&sh(&format!("gzip -t {o}")));
                let n = ok(&sh(&format!("tar -tzf {o} | wc -l")));
                assert_eq!(n.trim().parse::<usize>().unwrap(), listed);
                let py = format!(
                    "import tarfile,sys\nt=tarfile.open(sys.argv[1],mode='r|gz')\nprint(sum(1 for _ in t))"
                );
                if have("python3") {
                    let n = ok(&sh(&format!("python3 -c \"{py}\" {o}")));
                    assert_eq!(
                        n.trim().parse::<usize>().unwrap(),
                        listed,
                        "r|gz reads it all"
                    );
                }
            }
            _ if have("zstd") => {
                ok(&sh(&format!("zstd -q -t {o}")));
                let n = ok(&sh(&format!("zstd -dc {o} | tar -tf - | wc -l")));
                assert_eq!(n.trim().parse::<usize>().unwrap(), listed);
            }
            _ => envship_test_support::skip(
                "warm_packs_are_byte_identical_and_damaged_cache_entries_are_never_shipped",
                "zstd not installed: the tar.zst is not checked with the zstd tool",
            ),
        }
    }
}

#[test]
fn a_change_recompresses_only_its_blocks() {
    let Some(env) = build_env() else { return };
    let big = env.prefix.join("lib/big-a.bin");
    fs::write(&big, noise(4 * BLOCK_SIZE, 9)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let reuse = BlockReuse::Cache {
        dir: work.path().join("cache"),
        max_bytes: 1 << 30,
    };
    let out = work.path().join("demo.tar.gz");
    let (_, first) = packed(&env.prefix, &out, Format::TarGz, &reuse);
    // A new small file early in the tree and one changed MiB in the middle of the large file.
    fs::write(
        env.prefix.join("bin/aaa-new-tool"),
        b"#!/bin/sh\necho new\n",
    )
    .unwrap();
    let mut data = fs::read(&big).unwrap();
    data[2 * BLOCK_SIZE + 10] ^= 1;
    fs::write(&big, &data).unwrap();
    let (warm, after) = packed(&env.prefix, &out, Format::TarGz, &reuse);
    let (cold, _) = packed(&env.prefix, &out, Format::TarGz, &BlockReuse::Off);
    assert!(warm == cold);
    // The large file's changed piece, the run holding the new file, and the few runs around
    // it whose cut points moved.
    assert!(
        after.compressed >= 2 && after.compressed <= 4,
        "{after:?} after {first:?}"
    );
    assert!(
        after.reused >= first.compressed - 3,
        "{after:?} after {first:?}"
    );
}
