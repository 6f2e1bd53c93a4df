//! The inputs of envship: `environment.yml` (with conda's semantics and precise error spans),
//! production target profiles, the optional `envship.toml` project configuration, and the small
//! progress-reporting trait every stage uses.
//!
//! This crate has no network or solver dependencies, so every stage crate can depend on it.

pub mod conda_meta;
pub mod config;
pub mod digest;
pub mod env_file;
pub mod output;
pub mod progress;
pub mod target;
pub mod version;

pub use config::ProjectConfig;
pub use env_file::{EnvFileError, EnvironmentFile};
pub use progress::{NoProgress, Progress, ProgressUnit};
pub use target::{Target, TargetError, TargetOverrides};
pub use version::DottedVersion;
