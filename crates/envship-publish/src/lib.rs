//! Getting a finished archive to where it is used: the last two stages of the pipeline.
//!
//! - **publish**: upload an archive and its sidecars (sha256, manifest, lock, audit report, test
//!   log) to a GitHub release ([`github`]), or copy them into a shared-filesystem drop directory
//!   ([`dropdir`]). Both verify the archive against its `.sha256` first, and both leave either a
//!   complete copy or none: a drop goes through a temp name and a no-clobber rename, an upload
//!   interrupted half-way is deleted and retried.
//! - **deploy** ([`deploy`]): on the production host, fetch an archive (path, drop directory,
//!   URL or GitHub release), verify it, check the host can run it, extract it into
//!   `ROOT/NAME/VERSION`, optionally run its tests there, switch `ROOT/NAME/current` atomically,
//!   and record the deployment in `ROOT/.envship/deployments.jsonl`.
//!
//! The GitHub token lives in a [`Secret`], whose `Debug`/`Display` are redacted, so no log line,
//! error or panic message can print it.

pub mod artifacts;
pub mod dropdir;
pub mod error;
pub mod hash;
pub mod secret;

pub use dropdir::{publish_to_dir, DropAction, DropOutcome};
pub use error::PublishError;
pub use secret::Secret;
pub mod github;
pub mod retry;

pub use github::{publish_release, GithubClient, GithubConfig, ReleaseReport};
pub use retry::RetryPolicy;
pub mod deploy;

pub use deploy::{deploy, rollback, DeployError, DeployOptions, DeployOutcome, RollbackOptions};
