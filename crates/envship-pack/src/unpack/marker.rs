//! The marker beside DEST while an unpack writes into it (`PARENT/.NAME.unpacking`), which a
//! kill -9 leaves behind: a reader, or the next unpack, can tell an unpack that never finished
//! from a finished one. Beside DEST, not in it: the environment may be DEST's single top
//! directory, and a file of envship's in DEST would be one more top entry.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// The marker's text: the unpack started into an empty DEST (everything in DEST is its own,
/// so the next unpack may clear it), or over existing files (it may not).
pub(super) const MARK_FRESH: &str = "unpacking into an empty directory";
pub(super) const MARK_OVER: &str = "unpacking over existing files";

/// `PARENT/.NAME.unpacking` for DEST `PARENT/NAME`.
pub fn unpacking_marker(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.unpacking"))
}

/// Mark DEST as being unpacked into (`fresh`: it was empty). A marker that cannot be written
/// (a read-only parent) only loses the clean-up after a kill.
pub(super) fn mark(dest: &Path, fresh: bool) {
    let marker = unpacking_marker(dest);
    let text = if fresh { MARK_FRESH } else { MARK_OVER };
    if let Err(e) = fs::write(&marker, format!("{text}\n")) {
        tracing::debug!("cannot write {}: {e}", marker.display());
    }
}

/// Whether DEST holds an unpack into an empty directory that never finished.
pub(super) fn interrupted_fresh(dest: &Path) -> bool {
    fs::read_to_string(unpacking_marker(dest)).is_ok_and(|t| t.trim() == MARK_FRESH)
}

/// DEST is complete: remove its marker (see [`super::unpack_unfinished`]).
pub fn finished(dest: &Path) {
    let dest = std::path::absolute(dest).unwrap_or_else(|_| dest.to_path_buf());
    let _ = fs::remove_file(unpacking_marker(&dest));
}
