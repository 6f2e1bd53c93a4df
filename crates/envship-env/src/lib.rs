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
pub mod lock;
pub mod pip;

pub use build::{build, BuildError, BuildOutcome, BuildRequest};
pub use lock::{lock, LockError, LockOutcome, LockRequest};
