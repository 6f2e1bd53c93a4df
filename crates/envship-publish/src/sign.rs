//! Signing at publish: a minisign signature (`FILE.minisig`) for the archive and each evidence
//! file, made only for an archive that was checked first: its sha256 must match both its
//! `.sha256` sidecar and its manifest, so a key never vouches for bytes nobody verified.

use std::path::{Path, PathBuf};

use envship_pack::{format::Sidecar, Manifest};
use envship_trust::minisig::{self, SigningKey};

use crate::{artifacts, dropdir, error::PublishError, hash};

/// Whether `path` is an envship signature or bundle rather than a file to sign.
fn is_signature(path: &Path) -> bool {
    let name = path.to_string_lossy();
    name.ends_with(".minisig") || name.ends_with(".sigstore.json")
}

/// Check each archive among `files` against its `.sha256` and manifest, then sign every file;
/// returns the signatures, to be published beside their files.
pub fn sign_files(files: &[PathBuf], key: &SigningKey) -> Result<Vec<PathBuf>, PublishError> {
    for f in files.iter().filter(|f| is_archive(f)) {
        check_archive(f)?;
    }
    let mut out = Vec::new();
    for f in files.iter().filter(|f| !is_signature(f)) {
        let sig = key.sign_file(f).map_err(|source| PublishError::Sign {
            path: f.clone(),
            source: Box::new(source),
        })?;
        out.push(sig);
    }
    Ok(out)
}

fn is_archive(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| artifacts::archive_stem(n) != n)
}

/// The archive's sha256 equals its `.sha256` sidecar's and its manifest's.
fn check_archive(archive: &Path) -> Result<(), PublishError> {
    let unchecked = |reason: String| PublishError::Unchecked {
        archive: archive.to_path_buf(),
        reason,
    };
    let actual = hash::sha256_file(archive).map_err(PublishError::io("reading", archive))?;
    match dropdir::sidecar_sha256(archive)? {
        Some(expected) if expected == actual => {}
        Some(expected) => {
            return Err(PublishError::Checksum {
                path: archive.to_path_buf(),
                expected,
                actual,
            })
        }
        None => return Err(unchecked("it has no .sha256 beside it".into())),
    }
    let manifest_path = artifacts::find_sidecar(archive, Sidecar::Manifest.suffix())
        .ok_or_else(|| unchecked("it has no .manifest.json beside it".into()))?;
    let manifest = Manifest::read(&manifest_path)
        .map_err(|e| unchecked(format!("{}: {e}", manifest_path.display())))?;
    match manifest.sha256.as_deref() {
        Some(m) if m == actual => Ok(()),
        Some(m) => Err(unchecked(format!(
            "its sha256 is {actual}, but {} records {m}",
            manifest_path.display()
        ))),
        None => Err(unchecked(format!(
            "{} records no sha256 for it",
            manifest_path.display()
        ))),
    }
}

/// The signatures already beside `files` (`FILE.minisig`), to publish with them.
pub fn existing_signatures(files: &[PathBuf]) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|f| !is_signature(f))
        .map(|f| minisig::signature_path(f))
        .filter(|s| s.is_file())
        .collect()
}
