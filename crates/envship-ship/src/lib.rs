//! The envship pipeline as a library: the project model ([`Project`]: environment.yml,
//! envship.toml and the caller's overrides, resolved once) and [`ship`], which runs lock → build
//! → audit → pack → test and returns a typed [`ShipReport`].
//!
//! This crate owns the order of the stages, the defaults every command shares (test script,
//! destination prefix, archive format, version, output directory) and where the stages' outputs
//! go. It does not know how anything is shown: it never prints, has no clap types, and reports
//! progress and stage changes through a [`Reporter`] the caller supplies. The stages themselves
//! live in their crates (envship-env, envship-audit, envship-pack, envship-sandbox).

mod evidence;
pub mod fleet;
mod pipeline;
mod project;
mod report;

pub use pipeline::{ship, Reporter, ShipError, ShipFailed, ShipOptions};
pub use project::{
    default_version_in, target_in_dir, Project, ProjectError, TargetRequest, DEFAULT_ENV_FILE,
};
pub use report::{ShipReport, Stage, StageDetail, StageResult};
