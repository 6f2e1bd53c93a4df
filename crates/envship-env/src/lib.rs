//! Lock, build and activation of conda environments for envship, on the rattler crates:
//! repodata through rattler_repodata_gateway, solving with rattler_solve (resolvo) for the
//! target's virtual packages, lock files with rattler_lock, installation with rattler's
//! installer and activation with rattler_shell.
//!
//! Owns: envship.lock, the build prefix and its records (`conda-meta/state`, the pip state, the
//! build record `conda-meta/envship`), activation. Must not know: archives, audits, sandboxes or
//! how results are shown (no printing; progress goes through `envship_spec::Progress`).

pub mod activate;
pub mod build;
pub mod channels;
pub mod link_scripts;
pub mod lock;
pub mod pip;
mod pip_guard;

pub use build::{build, BuildError, BuildOutcome, BuildRequest};
pub use lock::{lock, LockError, LockOutcome, LockRequest};

/// End a stage's async runtime without waiting on a blocking task that may never return.
///
/// A finished stage has no task left. One that failed or was interrupted may have a task stuck
/// in a call that no cancellation reaches (`open` of a FIFO, a read of a hung mount), and the
/// runtime's drop would wait for it forever, with the package cache locked. An interrupted
/// stage does not wait at all (the process is about to exit); any other waits briefly.
pub(crate) fn shut_down(rt: tokio::runtime::Runtime) {
    if envship_spec::cancel::is_requested() {
        rt.shutdown_background();
    } else {
        rt.shutdown_timeout(std::time::Duration::from_secs(2));
    }
}
