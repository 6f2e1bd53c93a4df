//! Which files make up a published archive: the archive and the sidecars pack, audit and test
//! write next to it (`NAME-VER-SUBDIR.sha256`, `.manifest.json`, `.cdx.json` SBOM, lock, audit
//! report, test log).

use std::path::{Path, PathBuf};

use envship_pack::format::Sidecar;
pub use envship_pack::format::{archive_stem, ARCHIVE_EXTENSIONS};

/// Sidecar suffixes looked for next to an archive, appended to its stem (the name without the
/// archive extension): the stages' ([`Sidecar`]), and the lock and JUnit report ship adds.
pub const SIDECAR_SUFFIXES: &[&str] = &[
    Sidecar::Sha256.suffix(),
    Sidecar::Manifest.suffix(),
    Sidecar::Sbom.suffix(),
    Sidecar::Blocks.suffix(),
    ".lock",
    ".envship.lock",
    Sidecar::Audit.suffix(),
    Sidecar::TestLog.suffix(),
    ".junit.xml",
    Sidecar::Evidence.suffix(),
    // Build provenance (actions/attest-build-provenance) the workflow wrote beside the archive.
    ".sigstore.json",
];

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
    fn collects_existing_sidecars() {
        let d = tempfile::tempdir().expect("tempdir");
        let a = d.path().join("e-1-linux-64.tar.gz");
        for n in [
            "e-1-linux-64.tar.gz",
            "e-1-linux-64.sha256",
            "e-1-linux-64.tar.gz.manifest.json",
            "e-1-linux-64.test.log",
            "e-1-linux-64.cdx.json",
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
                "e-1-linux-64.cdx.json",
                "e-1-linux-64.test.log"
            ]
        );
    }

    #[test]
    fn every_sidecar_the_stages_write_is_published() {
        for s in Sidecar::ALL {
            assert!(SIDECAR_SUFFIXES.contains(&s.suffix()), "{s:?}");
        }
    }
}
