//! The inputs of envship: `environment.yml` (with conda's semantics and precise error spans),
//! production target profiles, the optional `envship.toml` project configuration, and the small
//! progress-reporting trait every stage uses.
//!
//! This crate has no network or solver dependencies, so every stage crate can depend on it.
//!
//! Owns: the input formats and their error spans, target profiles, the build record a prefix
//! carries (`conda-meta/envship`) and how a target is chosen from it, atomic output writes.
//! Must not know: solving, installing, archives or any stage's logic.

pub mod build_record;
pub mod cancel;
pub mod conda_meta;
pub mod config;
pub mod digest;
pub mod env_file;
pub mod lock_file;
pub mod output;
pub mod pip_entries;
pub mod progress;
pub mod python_dists;
pub mod stale_temp;
pub mod target;
pub mod version;
pub mod workspace;

pub use build_record::{target_for_prefix, BuildRecord, BuildRecordError};
pub use config::ProjectConfig;
pub use env_file::{EnvFileError, EnvironmentFile};
pub use progress::{NoProgress, Progress, ProgressUnit};
pub use target::{Target, TargetError, TargetOverrides};
pub use version::DottedVersion;
