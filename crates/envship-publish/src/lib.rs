//! Getting a finished archive out: the publish stage of the pipeline, and the downloads deploy uses.
//!
//! - **publish**: upload an archive and its sidecars (sha256, manifest, lock, audit report, test
//!   log) to a GitHub release ([`github`]), or copy them into a shared-filesystem drop directory
//!   ([`dropdir`]). Both verify the archive against its `.sha256` first, and both leave either a
//!   complete copy or none: a drop goes through a temp name and a no-clobber rename, an upload
//!   interrupted half-way is deleted and retried.
//! - **release notes**: what changed since the previous release of the same environment and
//!   target, from the manifests of both ([`github::notes`], the diff is envship-pack's).
//! - **downloads** for deploy (in envship-deploy): release assets and plain `https://` files,
//!   through the same retry loop ([`github::download_to_file`]).
//!
//! **Must not know**: how archives are made or read beyond their sidecar names and manifests,
//! anything about deploying (layout, `current`, records: envship-deploy), or the CLI.
//!
//! The GitHub token lives in a [`Secret`], whose `Debug`/`Display` are redacted, so no log line,
//! error or panic message can print it.

pub mod artifacts;
pub mod dropdir;
pub mod error;
pub mod hash;
pub mod secret;
pub mod sign;

pub use dropdir::{publish_to_dir, DropAction, DropOutcome};
pub use error::PublishError;
pub use secret::Secret;
pub mod github;
pub mod retry;

pub use github::{publish_release, GithubClient, GithubConfig, ReleaseReport};
pub use retry::RetryPolicy;
