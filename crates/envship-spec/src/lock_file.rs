//! An exclusive `flock` on a lock file, shared by every command that must not run twice on the
//! same thing at once: deploys of one root, packs to one output, builds of one prefix.
//!
//! `flock` belongs to the open file: a killed holder releases it with its death, so a lock
//! file left behind is never stale. A lock file is never removed (removing it would let a
//! third process lock a new file while the second waits on the old one).

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use fs4::fs_std::FileExt;

/// How long a second envship tries quietly before it says that it waits.
pub const QUIET_WAIT: Duration = Duration::from_secs(1);

/// Holds the lock until dropped (or the process dies).
#[derive(Debug)]
pub struct FileLock {
    file: std::fs::File,
    path: PathBuf,
}

/// What failed, and on which file.
#[derive(Debug)]
pub struct LockFailure {
    /// `opening` or `locking`.
    pub action: &'static str,
    /// The lock file.
    pub path: PathBuf,
    /// Why.
    pub source: std::io::Error,
}

impl FileLock {
    /// Lock `path` (created if missing; its directory must exist). If another process holds it
    /// for longer than [`QUIET_WAIT`], `waiting` is called once, then this waits as long as
    /// it takes.
    pub fn acquire(path: &Path, waiting: impl FnOnce(&Path)) -> Result<Self, LockFailure> {
        let fail = |action: &'static str| {
            move |source| LockFailure {
                action,
                path: path.to_path_buf(),
                source,
            }
        };
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(fail("opening"))?;
        let start = Instant::now();
        loop {
            if FileExt::try_lock_exclusive(&file).map_err(fail("locking"))? {
                return Ok(Self {
                    file,
                    path: path.to_path_buf(),
                });
            }
            if start.elapsed() >= QUIET_WAIT {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        waiting(path);
        FileExt::lock_exclusive(&file).map_err(fail("locking"))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// [`FileLock::acquire`] with the standard message: `waiting for lock on PATH (held by
    /// another envship)`, as a warning.
    pub fn acquire_logged(path: &Path) -> Result<Self, LockFailure> {
        Self::acquire(path, |p| {
            tracing::warn!(
                "waiting for lock on {} (held by another envship)",
                p.display()
            );
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}

/// The lock file for an output or prefix at `path`: `.NAME.envship-lock` next to it (in the
/// same directory, so that it is on the same file system and seen by everyone who sees it).
pub fn lock_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    dir.join(format!(".{name}.envship-lock"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_waits_quietly_then_says_so() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = lock_path_for(&dir.path().join("out.tar.gz"));
        assert_eq!(path, dir.path().join(".out.tar.gz.envship-lock"));
        let first =
            FileLock::acquire(&path, |_| panic!("the first holder must not wait")).expect("lock");
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        let second = std::thread::spawn(move || {
            let start = Instant::now();
            let lock = FileLock::acquire(&p, |_| tx.send(start.elapsed()).expect("send"));
            lock.map(|_| ()).map_err(|e| e.source.to_string())
        });
        let told = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("told it waits");
        assert!(told >= QUIET_WAIT, "said it waits after {told:?}");
        drop(first);
        second.join().expect("join").expect("second gets the lock");
    }
}
