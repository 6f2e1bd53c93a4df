//! The `sha256sum` sidecar format; file hashing is envship-spec's [`envship_spec::digest`].

use std::path::Path;

/// The file hashing every stage shares (envship-spec's).
pub use envship_spec::digest::{sha256_file, sha256_reader};

/// Parse `sha256sum` output (`HEX  NAME` or `HEX *NAME`, one or more lines) and return the hash
/// recorded for `file_name`; a single-line file without a name also matches.
pub fn parse_sha256sum(text: &str, file_name: &str) -> Option<String> {
    let mut only: Option<String> = None;
    let mut lines = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        lines += 1;
        let (hash, rest) = match line.split_once(char::is_whitespace) {
            Some((h, r)) => (h, r.trim_start().trim_start_matches('*')),
            None => (line, ""),
        };
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let hash = hash.to_ascii_lowercase();
        let name = Path::new(rest)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(rest);
        if name == file_name {
            return Some(hash);
        }
        only = Some(hash);
    }
    if lines == 1 {
        only
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn hashes_content() {
        let mut r: &[u8] = b"test";
        assert_eq!(sha256_reader(&mut r).expect("hash"), H);
    }

    #[test]
    fn parses_sha256sum_lines() {
        assert_eq!(
            parse_sha256sum(&format!("{H}  a.tar.gz\n"), "a.tar.gz").as_deref(),
            Some(H)
        );
        assert_eq!(
            parse_sha256sum(&format!("{H} *dist/a.tar.gz\n"), "a.tar.gz").as_deref(),
            Some(H)
        );
        assert_eq!(
            parse_sha256sum(&format!("{}\n", H.to_uppercase()), "x").as_deref(),
            Some(H)
        );
        let two = format!("{H}  a\n{H}  b\n");
        assert_eq!(parse_sha256sum(&two, "c"), None);
        assert_eq!(parse_sha256sum("nothex  a\n", "a"), None);
    }
}
