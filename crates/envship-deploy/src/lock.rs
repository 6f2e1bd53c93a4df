//! The deploy lock: `flock` on `ROOT/.envship/lock` (envship-spec's [`FileLock`]), so deploys
//! and rollbacks of one root run one at a time, and a killed holder releases it with its death.

use std::path::Path;

use envship_spec::lock_file::FileLock;

use crate::{DeployError, STATE_DIR};

/// An exclusive lock on `ROOT/.envship/lock`, released on drop (or when the process dies).
pub struct DeployLock {
    _lock: FileLock,
}

impl DeployLock {
    /// Wait for the lock; `waiting` is called once if another deploy holds it for more than a
    /// second ([`envship_spec::lock_file::QUIET_WAIT`]).
    pub fn acquire(root: &Path, waiting: impl FnOnce()) -> Result<Self, DeployError> {
        let dir = root.join(STATE_DIR);
        std::fs::create_dir_all(&dir).map_err(DeployError::io("creating", &dir))?;
        let path = dir.join("lock");
        let lock = FileLock::acquire(&path, |p| {
            tracing::warn!(
                "waiting for lock on {} (held by another envship)",
                p.display()
            );
            waiting();
        })
        .map_err(|f| DeployError::io(f.action, f.path)(f.source))?;
        Ok(Self { _lock: lock })
    }
}
