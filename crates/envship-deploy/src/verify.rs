//! Checking a fetched archive before anything is written: its manifest, its sha256 (from the
//! `.sha256` sidecar and the manifest, which must agree), and the names it will be deployed
//! under.

use std::path::{Path, PathBuf};

use envship_pack::Manifest;

use crate::{source::Fetched, DeployError, CURRENT};

/// A valid single path component for a name or version.
pub(crate) fn check_component(what: &str, s: &str, manifest: &Path) -> Result<(), DeployError> {
    let ok = !s.is_empty()
        && !s.starts_with('.')
        && s != CURRENT
        && !s.contains('/')
        && !s.contains('\0')
        && s.len() <= 200;
    if ok {
        Ok(())
    } else {
        Err(DeployError::BadManifest {
            path: manifest.to_path_buf(),
            reason: format!("{what} `{s}` cannot be a directory name (empty, starts with '.', contains '/', or is `current`)"),
        })
    }
}

/// An archive whose bytes match its recorded sha256, with its manifest.
pub struct Verified {
    /// The manifest sidecar, parsed.
    pub manifest: Manifest,
    /// Where it was read from.
    pub manifest_path: PathBuf,
    /// The archive's sha256 (lowercase hex).
    pub sha256: String,
    /// Its block index sidecar, if it came with one (checked against the manifest when used).
    pub blocks_file: Option<PathBuf>,
}

/// Read the manifest of `fetched` and check the archive against its sha256.
pub fn verify(fetched: &Fetched) -> Result<Verified, DeployError> {
    let archive = &fetched.archive;
    let manifest_path = fetched
        .manifest_file
        .clone()
        .ok_or_else(|| DeployError::Manifest {
            archive: archive.clone(),
            source: Box::new(envship_pack::PackError::Io {
                action: "finding",
                path: archive.with_extension("manifest.json"),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no .manifest.json beside the archive",
                ),
            }),
        })?;
    let manifest = Manifest::read(&manifest_path).map_err(|source| DeployError::Manifest {
        archive: archive.clone(),
        source: Box::new(source),
    })?;
    let file_name = archive
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let from_sidecar = match &fetched.sha256_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(DeployError::io("reading", p))?;
            Some(
                envship_publish::hash::parse_sha256sum(&text, file_name).ok_or_else(|| {
                    DeployError::BadManifest {
                        path: p.clone(),
                        reason: format!("no sha256 for {file_name} in sha256sum format"),
                    }
                })?,
            )
        }
        None => None,
    };
    let expected = match (from_sidecar, manifest.sha256.clone()) {
        (Some(a), Some(b)) if a != b.to_ascii_lowercase() => {
            return Err(DeployError::BadManifest {
                path: manifest_path,
                reason: format!("sha256 {b} disagrees with the .sha256 file ({a})"),
            })
        }
        (Some(a), _) => a,
        (None, Some(b)) => b.to_ascii_lowercase(),
        (None, None) => {
            return Err(DeployError::NoChecksum {
                archive: archive.clone(),
            })
        }
    };
    let actual =
        envship_publish::hash::sha256_file(archive).map_err(DeployError::io("reading", archive))?;
    if actual != expected {
        return Err(DeployError::Checksum {
            archive: archive.clone(),
            expected,
            actual,
        });
    }
    check_component("version", &manifest.version, &manifest_path)?;
    Ok(Verified {
        manifest,
        manifest_path,
        sha256: actual,
        blocks_file: fetched.blocks_file.clone(),
    })
}
