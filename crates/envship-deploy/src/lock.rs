//! The deploy lock: `flock` on `ROOT/.envship/lock`, so deploys and rollbacks of one root run
//! one at a time, and a killed holder releases it with its death.

use std::path::Path;

use fs4::fs_std::FileExt;

use crate::{DeployError, STATE_DIR};

/// An exclusive lock on `ROOT/.envship/lock`, released on drop (or when the process dies).
pub struct DeployLock {
    file: std::fs::File,
}

impl DeployLock {
    /// Wait for the lock; `waiting` is called once if another deploy holds it.
    pub fn acquire(root: &Path, waiting: impl FnOnce()) -> Result<Self, DeployError> {
        let dir = root.join(STATE_DIR);
        std::fs::create_dir_all(&dir).map_err(DeployError::io("creating", &dir))?;
        let path = dir.join("lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(DeployError::io("opening", &path))?;
        if !FileExt::try_lock_exclusive(&file).map_err(DeployError::io("locking", &path))? {
            waiting();
            FileExt::lock_exclusive(&file).map_err(DeployError::io("locking", &path))?;
        }
        Ok(Self { file })
    }
}

impl Drop for DeployLock {
    fn drop(&mut self) {
        let _ = FileExt::unlock(&self.file);
    }
}
