//! Outputs (lock files, archives, reports) are written to a temp file and renamed into place.
//! Temp files are created private (0600); an archive or report left like that cannot be read by
//! the team that deploys it, so before the rename they get the mode a plain `create` would have
//! given them: 0666 minus the process umask.

use std::{
    fs::File,
    io::{self, Write},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

/// The umask when none can be read (Linux before 4.7 has no `Umask:` line).
const DEFAULT_UMASK: u32 = 0o022;

/// The process umask, read without changing it (`umask(2)` can only be read by setting it,
/// which races with threads creating files).
pub fn umask() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| parse_umask(&s))
        .unwrap_or(DEFAULT_UMASK)
}

fn parse_umask(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Umask:"))?;
    u32::from_str_radix(line.trim_start_matches("Umask:").trim(), 8).ok()
}

/// The mode a new non-executable output file should have: `0666 & !umask`.
pub fn output_file_mode() -> u32 {
    0o666 & !umask()
}

/// Give a freshly created temp file the mode of an ordinary new file, before it is renamed to
/// its final name.
pub fn set_output_mode(file: &File) -> io::Result<()> {
    file.set_permissions(std::fs::Permissions::from_mode(output_file_mode()))
}

/// Write `bytes` to `path` through a temp file in the same directory and a rename, so readers
/// see the old file or the new one, never half of one. A replaced file keeps its mode; a new
/// one gets [`output_file_mode`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    stage(path, bytes)?.commit()
}

/// A file written, synced and given its mode under a temp name next to its final path, not yet
/// renamed there: [`StagedFile::commit`] renames it; dropping it removes it. Several outputs
/// that belong together (an archive and its sidecars) are all staged first, so that a failed
/// write (a full disk) leaves none of them, then committed by renames, which need no space.
#[derive(Debug)]
pub struct StagedFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl StagedFile {
    /// The final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temp file's path (for reading back what was written).
    pub fn temp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// Rename it to its final path, replacing what is there.
    pub fn commit(self) -> io::Result<()> {
        self.tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Stage `bytes` for `path` (see [`StagedFile`]): the first half of [`write_atomic`].
pub fn stage(path: &Path, bytes: &[u8]) -> io::Result<StagedFile> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // `.NAME.HOST-PID-RANDOM`: what a killed writer leaves says whose it was (see
    // [`crate::stale_temp`]).
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.{}", crate::stale_temp::owner_tag()))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    let mode = std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or_else(|_| output_file_mode());
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))?;
    tmp.as_file().sync_all()?;
    Ok(StagedFile {
        tmp,
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_creates_readable_files_and_keeps_modes() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("out.json");
        write_atomic(&path, b"one").expect("write");
        let mode = |p: &Path| std::fs::metadata(p).expect("md").permissions().mode() & 0o777;
        assert_eq!(mode(&path), output_file_mode());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        write_atomic(&path, b"two").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        assert_eq!(mode(&path), 0o640);
        let left: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").collect();
        assert_eq!(left.len(), 1, "no temp file left behind");
    }

    #[test]
    fn umask_line_is_parsed() {
        assert_eq!(
            parse_umask("Name:\tx\nUmask:\t0027\nState:\tR\n"),
            Some(0o027)
        );
        assert_eq!(parse_umask("Name:\tx\n"), None);
    }

    #[test]
    fn temp_files_become_ordinary_files() {
        let tmp = tempfile::NamedTempFile::new().expect("tmp");
        assert_eq!(
            tmp.as_file().metadata().expect("md").permissions().mode() & 0o777,
            0o600
        );
        set_output_mode(tmp.as_file()).expect("chmod");
        let mode = tmp.as_file().metadata().expect("md").permissions().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask());
    }
}
