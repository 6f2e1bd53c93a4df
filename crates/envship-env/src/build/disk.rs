//! A full disk during a build: the installer's failure told as one, and a new prefix taken
//! out again when what follows its install cannot be written.

use std::path::{Path, PathBuf};

use rattler::install::InstallerError;

use super::{error_chain, BuildError};

/// The installer's failure: [`BuildError::DiskFull`] when the file system is (nearly) full.
pub(super) fn install_error(
    prefix: &Path,
    install_dir: &Path,
    source: InstallerError,
) -> BuildError {
    if nearly_full(install_dir) {
        BuildError::DiskFull {
            prefix: prefix.to_path_buf(),
            installer: error_chain(&source),
            source: std::io::Error::from_raw_os_error(nix::errno::Errno::ENOSPC as i32),
        }
    } else {
        BuildError::Install {
            prefix: prefix.to_path_buf(),
            summary: error_chain(&source),
            source,
        }
    }
}

/// A new prefix, just renamed into place: removed if dropped while it still holds the path
/// (its state or build record could not be written).
pub(super) struct FreshPrefix(pub Option<PathBuf>);

impl Drop for FreshPrefix {
    fn drop(&mut self) {
        if let Some(prefix) = self.0.take() {
            tracing::warn!(
                "removing the new prefix {} after the failure",
                prefix.display()
            );
            match fs_err::remove_dir_all(&prefix) {
                // Already gone (a failed link script takes a new prefix out itself).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!("{e}"),
                Ok(()) => {}
            }
        }
    }
}

/// Whether the file system holding `dir` has less than 1 MiB (or no inode) left: then a
/// failed install failed for want of space (a heuristic; see [`BuildError::DiskFull`]).
fn nearly_full(dir: &Path) -> bool {
    nix::sys::statvfs::statvfs(dir).is_ok_and(|st| {
        let free = st.blocks_available().saturating_mul(st.fragment_size());
        // Some file systems (btrfs) count no inodes: 0 of 0 is not full.
        free < (1 << 20) || (st.files() > 0 && st.files_available() == 0)
    })
}
