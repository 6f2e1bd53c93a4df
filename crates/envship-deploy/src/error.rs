//! Errors of deploy, rollback and the deployment log.

use std::path::PathBuf;

/// Why a deploy or rollback did not happen.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum DeployError {
    /// The archive fails the root's or the command line's trust policy; nothing was written.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Untrusted(Box<envship_trust::TrustError>),

    /// verify-release was given no policy to check against.
    #[error("no trust policy to check against{}", root.as_ref().map(|r| format!(": {} has no .envship/trust.toml", r.display())).unwrap_or_default())]
    #[diagnostic(
        code(envship::deploy::no_policy),
        help("give --root ROOT (a deployment root with .envship/trust.toml), --trust-key KEY or --trust-github OWNER/REPO")
    )]
    NoPolicy {
        /// The root given, if any.
        root: Option<PathBuf>,
    },

    /// The staged rollout's earlier root has not deployed (or tested) this archive.
    #[error("{} has not gone through {} first: {why}", archive.display(), after.display())]
    #[diagnostic(
        code(envship::deploy::not_staged),
        help("this root's trust.toml requires it; run `{command}` first, then deploy here again")
    )]
    NotStaged {
        /// The archive.
        archive: PathBuf,
        /// The root it must go through.
        after: PathBuf,
        /// What is missing.
        why: &'static str,
        /// The command that does the missing step.
        command: String,
    },

    /// Reading or writing a local file failed.
    #[error("{action} {}", path.display())]
    #[diagnostic(code(envship::deploy::io))]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// SOURCE is none of the accepted forms, or does not exist.
    #[error("cannot deploy from `{source_arg}`: {reason}")]
    #[diagnostic(
        code(envship::deploy::source),
        help("SOURCE is an archive (with its .sha256 and .manifest.json beside it), a directory holding one, an https:// URL, or github:OWNER/REPO@TAG")
    )]
    Source {
        /// The SOURCE argument.
        source_arg: String,
        /// What is wrong.
        reason: String,
    },

    /// Fetching from GitHub or a URL failed.
    #[error("fetching {what}")]
    #[diagnostic(code(envship::deploy::fetch))]
    Fetch {
        /// What was being fetched.
        what: String,
        /// The cause.
        #[source]
        source: Box<envship_publish::PublishError>,
    },

    /// No `.sha256` sidecar and no sha256 in the manifest: the archive cannot be verified.
    #[error("no sha256 to verify {} against", archive.display())]
    #[diagnostic(
        code(envship::deploy::no_sha256),
        help("deploy needs the .sha256 file pack writes next to the archive")
    )]
    NoChecksum {
        /// The archive.
        archive: PathBuf,
    },

    /// The archive's bytes do not match its recorded sha256.
    #[error("{} does not match its sha256 (expected {expected}, got {actual})", archive.display())]
    #[diagnostic(
        code(envship::deploy::checksum),
        help("the archive was modified or corrupted in transit; fetch it again")
    )]
    Checksum {
        /// The archive.
        archive: PathBuf,
        /// Recorded.
        expected: String,
        /// Computed.
        actual: String,
    },

    /// The manifest sidecar is missing or unreadable.
    #[error("manifest of {}", archive.display())]
    #[diagnostic(
        code(envship::deploy::manifest),
        help("deploy needs the .manifest.json file pack writes next to the archive")
    )]
    Manifest {
        /// The archive.
        archive: PathBuf,
        /// The cause.
        #[source]
        source: Box<envship_pack::PackError>,
    },

    /// A block index (the archive's `.blocks.json`, or the one a live version kept) cannot be
    /// used for a linked deploy.
    #[error("block index {}", path.display())]
    #[diagnostic(
        code(envship::deploy::block_index),
        help("deploy with --no-link to extract everything instead")
    )]
    BlockIndex {
        /// The index file.
        path: PathBuf,
        /// Why it cannot be used.
        #[source]
        source: Box<envship_pack::PackError>,
    },

    /// Something in the manifest is unusable (bad name/version/target).
    #[error("manifest {}: {reason}", path.display())]
    #[diagnostic(code(envship::deploy::bad_manifest))]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// This host cannot run the archive.
    #[error("{name} {version} was built for {target}, but this host {reason}")]
    #[diagnostic(
        code(envship::deploy::incompatible_host),
        help("deploy on a host matching the archive's target, or rebuild for this host's target")
    )]
    IncompatibleHost {
        /// Environment name.
        name: String,
        /// Its version.
        version: String,
        /// The archive's target.
        target: String,
        /// Why not (`has glibc 2.12 < 2.17`).
        reason: String,
    },

    /// The version is already deployed.
    #[error("{} already exists", path.display())]
    #[diagnostic(
        code(envship::deploy::exists),
        help("deployed versions are never overwritten; pass --force to replace it")
    )]
    Exists {
        /// The version directory.
        path: PathBuf,
    },

    /// Extraction or relocation failed.
    #[error("unpacking {} into {}", archive.display(), dest.display())]
    #[diagnostic(code(envship::deploy::unpack))]
    Unpack {
        /// The archive.
        archive: PathBuf,
        /// Where.
        dest: PathBuf,
        /// The cause.
        #[source]
        source: Box<envship_pack::PackError>,
    },

    /// Recording the deployed tree (or keeping the manifest beside it) failed.
    #[error("recording the deployed tree {}", tree.display())]
    #[diagnostic(code(envship::deploy::tree_record))]
    TreeRecord {
        /// The version directory.
        tree: PathBuf,
        /// The cause.
        #[source]
        source: Box<envship_pack::tree::TreeError>,
    },

    /// Keeping a copy of the archive's manifest beside the version failed.
    #[error("keeping the manifest at {}", path.display())]
    #[diagnostic(code(envship::deploy::keep_manifest))]
    KeepManifest {
        /// Where it was written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<envship_pack::PackError>,
    },

    /// `--test` was given but the archive has no test script.
    #[error("--test: the archive has no test script at {}", path.display())]
    #[diagnostic(code(envship::deploy::no_test), help("ship the project with its test script (envship ship puts it at share/envship/run-test.sh), or deploy without --test"))]
    NoTestScript {
        /// Where it was looked for.
        path: PathBuf,
    },

    /// The test script could not be run at all (not: it ran and failed).
    #[error("running the test script in {}", env.display())]
    #[diagnostic(code(envship::deploy::test_run))]
    TestRun {
        /// The deployed environment (removed again).
        env: PathBuf,
        /// The cause.
        #[source]
        source: Box<envship_sandbox::SandboxError>,
    },

    /// The test script failed; nothing was switched.
    #[error("the test script failed ({status}) in {}; `current` was not switched", env.display())]
    #[diagnostic(code(envship::deploy::test_failed), help("see the log: {}", log.display()))]
    TestFailed {
        /// The deployed environment (removed again).
        env: PathBuf,
        /// Exit status description.
        status: String,
        /// The test log.
        log: PathBuf,
    },

    /// `ROOT/NAME/current` exists and is not a symlink.
    #[error("{} exists and is not a symlink", path.display())]
    #[diagnostic(
        code(envship::deploy::current_not_link),
        help("move it away: envship manages `current` as a symlink to a version directory")
    )]
    CurrentNotSymlink {
        /// The path.
        path: PathBuf,
    },

    /// Nothing to roll back to.
    #[error("cannot roll back {name}: {reason}")]
    #[diagnostic(
        code(envship::deploy::rollback),
        help("name the version explicitly with --to VERSION")
    )]
    Rollback {
        /// Environment name.
        name: String,
        /// Why.
        reason: String,
    },

    /// A line of the deployment log is not a record.
    #[error("{}:{line}: not a deployment record", path.display())]
    #[diagnostic(code(envship::deploy::bad_record))]
    BadRecord {
        /// The log.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },

    /// The host could not be inspected.
    #[error("detecting this host's glibc and kernel")]
    #[diagnostic(code(envship::deploy::detect))]
    Detect(#[source] envship_spec::TargetError),
}

impl DeployError {
    pub(crate) fn untrusted(source: envship_trust::TrustError) -> Self {
        Self::Untrusted(Box::new(source))
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io {
            action,
            path,
            source,
        }
    }
}
