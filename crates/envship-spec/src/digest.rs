//! sha256 of files and streams, as lowercase hex: the one implementation every stage uses to
//! hash a file it reads (archives it publishes, rootfs tarballs, files it packs). Hashing bytes
//! while they are being written is the writer's business, not this module's.

use std::{
    io::{self, Read},
    path::Path,
};

use sha2::{Digest, Sha256};

/// Read size: large enough that a multi-GB archive is a few thousand reads.
const CHUNK: usize = 256 * 1024;

/// Hex sha256 of a file's contents, streamed (the error names the file).
pub fn sha256_file(path: &Path) -> io::Result<String> {
    let mut f = fs_err::File::open(path)?;
    sha256_reader(&mut f)
}

/// Hex sha256 of everything `r` yields.
pub fn sha256_reader(r: &mut impl Read) -> io::Result<String> {
    sha256_reader_with(r, |_| Ok(()))
}

/// Hex sha256 of everything `r` yields, handing each chunk to `each` as well (to copy it or
/// report progress); an error from `each` stops the hashing and is returned.
pub fn sha256_reader_with(
    r: &mut impl Read,
    mut each: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<String> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(&buf[..n]);
        each(&buf[..n])?;
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `printf test | sha256sum`
    const TEST: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn hashes_streams_and_files() {
        let mut r: &[u8] = b"test";
        assert_eq!(sha256_reader(&mut r).expect("hash"), TEST);

        // More than one chunk, checked against coreutils when it is there.
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("big");
        let data: Vec<u8> = (0..CHUNK * 3 + 17).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&p, &data).expect("write");
        let mut seen = 0;
        let from_reader = sha256_reader_with(&mut &data[..], |c| {
            seen += c.len();
            Ok(())
        })
        .expect("hash");
        assert_eq!(seen, data.len());
        assert_eq!(sha256_file(&p).expect("hash file"), from_reader);
        assert_eq!(from_reader, hex::encode(Sha256::digest(&data)));
        if let Ok(out) = std::process::Command::new("sha256sum").arg(&p).output() {
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(text.split_whitespace().next(), Some(from_reader.as_str()));
        }
    }

    #[test]
    fn errors_name_the_file_and_stop_the_hash() {
        let e = sha256_file(Path::new("/nonexistent/envship-digest")).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/envship-digest"), "{e}");
        let e = sha256_reader_with(&mut &b"abc"[..], |_| Err(io::Error::other("disk full")))
            .expect_err("stopped");
        assert_eq!(e.to_string(), "disk full");
    }
}
