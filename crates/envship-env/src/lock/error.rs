//! Why locking failed: each variant names the file, the package or the channel the user can act on.

use std::path::PathBuf;

use rattler_solve::SolveError;

use crate::channels::ChannelError;

/// Errors of the lock stage.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LockError {
    /// A channel could not be resolved.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Channel(#[from] ChannelError),

    /// Repodata could not be loaded.
    #[error("cannot load repodata from {channels}")]
    #[diagnostic(
        code(envship::lock::repodata),
        help("check the channel URLs; with --offline only cached or file:// channels can be used")
    )]
    Repodata {
        /// The channels queried.
        channels: String,
        /// Why.
        #[source]
        source: rattler_repodata_gateway::GatewayError,
    },

    /// The request cannot be satisfied for the target.
    #[error("cannot solve {file} for target {target}:\n{explanation}")]
    #[diagnostic(code(envship::lock::unsat), help("{help}"))]
    Unsatisfiable {
        /// The environment file.
        file: String,
        /// The target.
        target: String,
        /// The solver's explanation.
        explanation: String,
        /// The plain sentence(s) about virtual packages, or general advice.
        help: String,
    },

    /// The solver failed for another reason.
    #[error("the solver failed")]
    #[diagnostic(code(envship::lock::solver))]
    Solver(#[source] SolveError),

    /// A spec from the file could not be converted for the solver.
    #[error("invalid spec `{spec}` for the solver")]
    #[diagnostic(code(envship::lock::spec))]
    Spec {
        /// The spec.
        spec: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The lock file could not be read.
    #[error("cannot read lock file {}", path.display())]
    #[diagnostic(
        code(envship::lock::read),
        help("delete it or run `envship lock --update`")
    )]
    ReadLock {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The lock file has no packages for the target's platform.
    #[error("lock file {} has no `{subdir}` environment", path.display())]
    #[diagnostic(
        code(envship::lock::platform),
        help("run `envship lock` for this target")
    )]
    MissingPlatform {
        /// The path.
        path: PathBuf,
        /// The subdir asked for.
        subdir: String,
    },

    /// Writing an output failed.
    #[error("cannot write {}", path.display())]
    #[diagnostic(code(envship::lock::write))]
    Write {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The async runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),

    /// The repodata cache directory could not be determined.
    #[error("cannot determine the package cache directory; pass --cache-dir")]
    #[diagnostic(code(envship::lock::cache_dir))]
    CacheDir,
}
