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

    /// A stop was requested (SIGINT, SIGTERM) before the lock was written; the old lock, if
    /// any, is untouched.
    #[error("interrupted before the lock was written")]
    #[diagnostic(code(envship::lock::interrupted))]
    Interrupted,

    /// The repodata cache directory could not be determined.
    #[error("cannot determine the package cache directory; pass --cache-dir")]
    #[diagnostic(code(envship::lock::cache_dir))]
    CacheDir,

    /// The file given to `lock --from` could not be read or parsed.
    #[error("cannot import {}: {reason}", path.display())]
    #[diagnostic(
        code(envship::lock::import),
        help(
            "lock --from reads conda-lock v1 files (conda-lock.yml), pixi.lock and @EXPLICIT files"
        )
    )]
    Import {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// The parser's or the file system's error, when there is one.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A line of an @EXPLICIT file is not a package URL.
    #[error("{}:{line}: {reason}", path.display())]
    #[diagnostic(
        code(envship::lock::explicit_line),
        help("an @EXPLICIT file lists one package URL per line, optionally followed by #MD5 or #sha256:HEX")
    )]
    ExplicitLine {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },

    /// The imported lock has no environment of that name.
    #[error("{} has no environment `{name}` (it has: {available})", path.display())]
    #[diagnostic(
        code(envship::lock::import_environment),
        help("pass --environment with one of: {available}")
    )]
    ImportEnvironment {
        /// The file.
        path: PathBuf,
        /// The environment asked for.
        name: String,
        /// The environments it has.
        available: String,
    },

    /// The imported lock has no packages for the target's platform.
    #[error("{} has no packages for {subdir} (it has: {available})", path.display())]
    #[diagnostic(
        code(envship::lock::import_platform),
        help("lock the environment for {subdir} with the tool that wrote the file, then import it again")
    )]
    ImportPlatform {
        /// The file.
        path: PathBuf,
        /// The target's subdir.
        subdir: String,
        /// The platforms it has.
        available: String,
    },

    /// Packages of an @EXPLICIT file whose metadata (info/index.json) is nowhere offline.
    #[error("no metadata (info/index.json) for {count} package(s) of {}: {packages}", path.display())]
    #[diagnostic(
        code(envship::lock::explicit_metadata),
        help("put the packages in a local file:// channel and point the URLs at it, or fill the package cache ({}) first, e.g. by building an environment with them", cache.display())
    )]
    ExplicitMetadata {
        /// The @EXPLICIT file.
        path: PathBuf,
        /// How many are missing.
        count: usize,
        /// The archive file names without metadata.
        packages: String,
        /// The package cache that was searched.
        cache: PathBuf,
    },

    /// A local package does not match the checksum in the @EXPLICIT file.
    #[error("{}:{line}: {} has {algorithm} {actual}, the file says {expected}", path.display(), archive.display())]
    #[diagnostic(
        code(envship::lock::explicit_checksum),
        help("the local channel holds a different build than the one locked: replace the archive or lock again")
    )]
    ExplicitChecksum {
        /// The @EXPLICIT file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// The local archive.
        archive: PathBuf,
        /// md5 or sha256.
        algorithm: &'static str,
        /// The hash the file names.
        expected: String,
        /// The archive's hash.
        actual: String,
    },

    /// An imported package needs a newer glibc or kernel than the target has.
    #[error("{package} in {} needs `{dependency}`, but target {target} has {has}", path.display())]
    #[diagnostic(
        code(envship::lock::import_target),
        help("this lock cannot run on {target}: lock again for the target (e.g. `envship lock` from an environment.yml) or choose a newer target")
    )]
    ImportTarget {
        /// The imported file.
        path: PathBuf,
        /// The package (`name-version-build`).
        package: String,
        /// Its virtual dependency (`__glibc >=2.17`).
        dependency: String,
        /// The target's name.
        target: String,
        /// What the target provides (`__glibc 2.12`, or "no __cuda").
        has: String,
    },

    /// `lock --update` on a project that is only an imported lock.
    #[error("{} was imported from {from} and there is no environment.yml to solve again", path.display())]
    #[diagnostic(
        code(envship::lock::imported),
        help("run `envship lock --from {from}` again to refresh it, or write an environment.yml")
    )]
    ImportedWithoutEnvironmentFile {
        /// The lock.
        path: PathBuf,
        /// The file it was imported from.
        from: String,
    },
}
