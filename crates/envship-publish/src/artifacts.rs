//! Which files make up a published archive: the archive and the sidecars pack, audit and test
//! write next to it (`NAME-VER-SUBDIR.sha256`, `.manifest.json`, lock, audit report, test log).

use std::path::{Path, PathBuf};

/// Archive extensions pack writes, longest first so `.tar.gz` wins over `.gz`.
pub const ARCHIVE_EXTENSIONS: &[&str] =
    &[".tar.gz", ".tar.zst", ".tar.bz2", ".tgz", ".tar", ".zip"];

/// Sidecar suffixes looked for next to an archive, appended to its stem (the name without the
/// archive extension). `.sha256` and `.manifest.json` are pack's; the others come from ship.
pub const SIDECAR_SUFFIXES: &[&str] = &[
    ".sha256",
    ".manifest.json",
    ".lock",
    ".envship.lock",
    ".audit.json",
    ".test.log",
    ".junit.xml",
];

/// The archive's file name without its archive extension: `foo-1.0-linux-64.tar.gz` →
/// `foo-1.0-linux-64`.
pub fn archive_stem(file_name: &str) -> &str {
    for ext in ARCHIVE_EXTENSIONS {
        if let Some(stem) = file_name.strip_suffix(ext) {
            if !stem.is_empty() {
                return stem;
            }
        }
    }
    file_name
}

/// Sidecar `suffix` of `archive` if it exists: `STEM{suffix}` first, then `ARCHIVE{suffix}`
/// (the `sha256sum > X.tar.gz.sha256` convention).
pub fn find_sidecar(archive: &Path, suffix: &str) -> Option<PathBuf> {
    let dir = archive.parent().unwrap_or(Path::new("."));
    let name = archive.file_name()?.to_str()?;
    [
        format!("{}{suffix}", archive_stem(name)),
        format!("{name}{suffix}"),
    ]
    .into_iter()
    .map(|n| dir.join(n))
    .find(|p| p.is_file())
}

/// The archive followed by every sidecar of it that exists, without duplicates.
pub fn collect(archive: &Path) -> Vec<PathBuf> {
    let mut out = vec![archive.to_path_buf()];
    for suffix in SIDECAR_SUFFIXES {
        if let Some(p) = find_sidecar(archive, suffix) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems() {
        assert_eq!(archive_stem("a-1-linux-64.tar.gz"), "a-1-linux-64");
        assert_eq!(archive_stem("a.tar.zst"), "a");
        assert_eq!(archive_stem("a.zip"), "a");
        assert_eq!(archive_stem(".tar.gz"), ".tar.gz");
        assert_eq!(archive_stem("plain"), "plain");
    }

    #[test]
    fn collects_existing_sidecars() {
        let d = tempfile::tempdir().expect("tempdir");
        let a = d.path().join("e-1-linux-64.tar.gz");
        for n in [
            "e-1-linux-64.tar.gz",
            "e-1-linux-64.sha256",
            "e-1-linux-64.tar.gz.manifest.json",
            "e-1-linux-64.test.log",
            "other.sha256",
        ] {
            std::fs::write(d.path().join(n), n).expect("write");
        }
        let names: Vec<_> = collect(&a)
            .iter()
            .map(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "e-1-linux-64.tar.gz",
                "e-1-linux-64.sha256",
                "e-1-linux-64.tar.gz.manifest.json",
                "e-1-linux-64.test.log"
            ]
        );
    }
}
