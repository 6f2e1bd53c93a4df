//! Linked deploys: a new version takes the files it shares with the live one by hard link,
//! without inflating their blocks (envship-pack's [`LinkFrom`]).
//!
//! Each deployed version keeps the block index of the archive it came from, as
//! `NAME/.VERSION.blocks.json`. The next deploy reads the live version's, and the new archive's
//! own index (its `.blocks.json` sidecar, checked against the sha256 the verified manifest
//! records). Without either, or with `--no-link`, the deploy extracts everything, as before.
//! An existing inode is never written: unpack links only files that relocation does not rewrite,
//! and writes everything else fresh.

use std::path::{Path, PathBuf};

use envship_pack::{blocks::index::BlockIndex, LinkFrom, Manifest};

use crate::DeployError;

/// The block index kept beside version `version` in `env_dir`.
pub fn blocks_path(env_dir: &Path, version: &str) -> PathBuf {
    env_dir.join(format!(".{version}{}", crate::live::VERSION_RECORDS[0]))
}

/// The block index kept beside the version directory `version_dir`.
pub fn blocks_path_of(version_dir: &Path) -> PathBuf {
    let env_dir = version_dir.parent().unwrap_or(Path::new("."));
    let version = version_dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    blocks_path(env_dir, &version)
}

/// The new archive's block index, if it has one that its manifest vouches for.
pub(crate) fn archive_index(
    blocks_file: Option<&Path>,
    manifest: &Manifest,
) -> Result<Option<BlockIndex>, DeployError> {
    let (Some(path), Some(r)) = (blocks_file, manifest.block_index.as_ref()) else {
        return Ok(None);
    };
    let actual =
        envship_spec::digest::sha256_file(path).map_err(DeployError::io("reading", path))?;
    if !actual.eq_ignore_ascii_case(&r.sha256) {
        return Err(DeployError::BadManifest {
            path: path.to_path_buf(),
            reason: format!(
                "the block index has sha256 {actual}, but the manifest records {}",
                r.sha256
            ),
        });
    }
    let index = BlockIndex::read(path).map_err(|source| DeployError::BlockIndex {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    Ok(Some(index))
}

/// What to link from: the live version `previous` in `env_dir`, if it kept its block index.
pub(crate) fn link_from(
    env_dir: &Path,
    previous: Option<&str>,
    index: Option<&BlockIndex>,
    manifest: &Manifest,
) -> Option<LinkFrom> {
    let (previous, index) = (previous?, index?);
    let root = env_dir.join(previous);
    // Hard links need one file system (a version directory could be a mount point).
    let dev = |p: &Path| -> Option<u64> {
        Some(std::os::unix::fs::MetadataExt::dev(
            &std::fs::metadata(p).ok()?,
        ))
    };
    let same_fs = matches!((dev(&root), dev(env_dir)), (Some(a), Some(b)) if a == b);
    if !same_fs {
        tracing::info!("not linking from {}: another file system", root.display());
        return None;
    }
    let live_index = match BlockIndex::read(&blocks_path(env_dir, previous)) {
        Ok(i) => i,
        Err(e) => {
            tracing::info!("not linking from {previous}: {e}");
            return None;
        }
    };
    Some(LinkFrom {
        index: index.clone(),
        root,
        live_index,
        mtime: manifest.source_date_epoch,
    })
}

/// Keep the new version's block index beside it, for the deploy after it.
pub(crate) fn keep_index(
    env_dir: &Path,
    version: &str,
    index: Option<&BlockIndex>,
) -> Result<(), DeployError> {
    let path = blocks_path(env_dir, version);
    match index {
        Some(i) => i.write(&path).map_err(|source| DeployError::BlockIndex {
            path: path.clone(),
            source: Box::new(source),
        }),
        None => match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(DeployError::io("removing", &path)(e)),
        },
    }
}
