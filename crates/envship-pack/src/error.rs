//! Errors of packing, unpacking and relocating.

use std::path::PathBuf;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PackError {
    /// Reading or writing a file failed.
    #[error("{action} {}", path.display())]
    Io {
        /// What was being done (`reading`, `writing`, …).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// The prefix is not a conda environment.
    #[error("{} is not a conda environment: it has no conda-meta/ directory", prefix.display())]
    #[diagnostic(help("pass the prefix of an installed environment (e.g. .envship/build/NAME)"))]
    NotAPrefix {
        /// The path given as prefix.
        prefix: PathBuf,
    },

    /// A `conda-meta/*.json` record could not be parsed.
    #[error("cannot parse conda package record {}", path.display())]
    BadRecord {
        /// The record file.
        path: PathBuf,
        /// The JSON error (with line and column).
        #[source]
        source: serde_json::Error,
    },

    /// A manifest could not be read or written as JSON.
    #[error("bad manifest {}", path.display())]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },

    /// A manifest field breaks a rule (e.g. an `arcroot` that leaves the archive).
    #[error("bad manifest {}: {field} {reason}", path.display())]
    #[diagnostic(help("the manifest is malformed or malicious; do not use it"))]
    BadManifestField {
        /// The manifest file.
        path: PathBuf,
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// A block index sidecar (`.blocks.json`) cannot be used.
    #[error("bad block index {}: {reason}", path.display())]
    #[diagnostic(help(
        "the index is only an aid: remove it to read the archive without it, or pack again"
    ))]
    BadBlockIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A package's name, version or qualifiers make no valid package URL (SBOM).
    #[error("cannot make a package URL for {package}")]
    #[diagnostic(help("the package's metadata (conda-meta record or METADATA) is malformed"))]
    Purl {
        /// The package (`name-version-build`, or the pip distribution's name).
        package: String,
        /// Why.
        #[source]
        source: packageurl::Error,
    },

    /// The SBOM could not be serialized.
    #[error("cannot serialize the SBOM")]
    SbomJson(#[source] serde_json::Error),

    /// The source date epoch is not a time the SBOM can state.
    #[error("SOURCE_DATE_EPOCH {epoch} is out of range")]
    #[diagnostic(help(
        "set SOURCE_DATE_EPOCH to seconds since 1970 (e.g. `git log -1 --format=%ct`)"
    ))]
    BadEpoch {
        /// The epoch given.
        epoch: u64,
    },

    /// Files that conda-meta lists are gone or were overwritten.
    #[error("files managed by conda are {what} in {count} package(s):\n{details}")]
    #[diagnostic(help(
        "this usually means pip uninstalled or overwrote conda-managed files; fix the environment \
         (one installer per package, conda preferred), or pass {flag} to pack it anyway"
    ))]
    ManagedFiles {
        /// `missing` or `modified`.
        what: &'static str,
        /// How many packages are affected.
        count: usize,
        /// One line per package with (some of) its files.
        details: String,
        /// The override flag.
        flag: &'static str,
    },

    /// Editable pip installs point outside the environment and cannot be packed.
    #[error("editable pip install(s) cannot be packed: {packages}")]
    #[diagnostic(help(
        "install them non-editable (pip install PATH, without -e), or pass --allow-editable to \
         pack them anyway (the archive will not contain their code)"
    ))]
    EditableInstalls {
        /// `name (url)` list.
        packages: String,
    },

    /// The destination prefix does not fit into a binary placeholder.
    #[error(
        "the destination prefix {prefix:?} ({len} bytes) is longer than the {capacity} bytes \
         available in binary file {path}"
    )]
    #[diagnostic(help(
        "choose a destination prefix of at most {capacity} bytes, or build the environment in a \
         longer prefix"
    ))]
    PrefixTooLong {
        /// The destination prefix.
        prefix: String,
        /// Its length.
        len: usize,
        /// The room in the file.
        capacity: usize,
        /// The binary file (relative to the environment).
        path: String,
    },

    /// A binary file has no NUL padding where a longer prefix would need it.
    #[error("cannot relocate {path}: the C string at offset {offset} has no room for {new:?}")]
    NoRoom {
        /// The binary file (relative to the environment).
        path: String,
        /// Byte offset of the string.
        offset: usize,
        /// The new prefix.
        new: String,
    },

    /// A glob given to `--include`/`--exclude` is invalid.
    #[error("invalid glob {glob:?}")]
    BadGlob {
        /// The pattern.
        glob: String,
        /// Why.
        #[source]
        source: globset::Error,
    },

    /// The output exists and `--force` was not given.
    #[error("{} already exists", path.display())]
    #[diagnostic(help("pass --force to overwrite it"))]
    OutputExists {
        /// The existing output.
        path: PathBuf,
    },

    /// The unpack destination is a non-empty directory.
    #[error("{} exists and is not empty", path.display())]
    #[diagnostic(help("pass --force to unpack into it anyway"))]
    DestNotEmpty {
        /// The destination.
        path: PathBuf,
    },

    /// An archive entry would be written outside the destination.
    #[error("refusing archive entry {entry:?}: {reason}")]
    #[diagnostic(help("the archive is malformed or malicious; do not unpack it"))]
    UnsafeEntry {
        /// The entry name as stored.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The archive could not be read.
    #[error("cannot read archive {}: {reason}", path.display())]
    BadArchive {
        /// The archive.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A path cannot be stored in the chosen format.
    #[error("cannot store {path:?} in a {format} archive: {reason}")]
    Unstorable {
        /// The path (lossy).
        path: String,
        /// The format.
        format: &'static str,
        /// Why.
        reason: &'static str,
    },

    /// The relocation list in an environment is malformed.
    #[error("bad relocation list {}, line {line}: {reason}", path.display())]
    BadRelocationList {
        /// The list file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },

    /// A file to relocate (or the relocation list) is reached through a symlink: rewriting it
    /// could change a file outside the environment.
    #[error("refusing to relocate {path}: a symlink is on its way")]
    #[diagnostic(help(
        "the relocation list names a path through a symlink; the archive is malformed or \
         malicious, do not use it"
    ))]
    ThroughSymlink {
        /// The listed path, relative to the environment.
        path: String,
    },

    /// A prefix path is not valid UTF-8 or not absolute.
    #[error("prefix {prefix:?} is not usable: {reason}")]
    BadPrefix {
        /// The prefix (lossy).
        prefix: String,
        /// Why.
        reason: &'static str,
    },

    /// The zip writer failed.
    #[error("writing zip archive {}", path.display())]
    Zip {
        /// The archive.
        path: PathBuf,
        /// The cause.
        #[source]
        source: zip::result::ZipError,
    },

    /// A stop was requested (SIGINT, SIGTERM) while writing; the partial output was removed.
    #[error("interrupted while writing the archive")]
    Interrupted,

    /// The worker thread pool could not be created.
    #[error("cannot start compression threads")]
    ThreadPool(#[source] rayon::ThreadPoolBuildError),

    /// A squashfs image could not be written or read.
    #[error("{action} squashfs image {}", path.display())]
    Squashfs {
        /// `configuring`, `writing` or `reading`.
        action: &'static str,
        /// The image.
        path: PathBuf,
        /// The cause.
        #[source]
        source: backhand::BackhandError,
    },

    /// The options do not fit the format (e.g. a squashfs image without `--dest-prefix`).
    #[error("{format} archives {reason}")]
    #[diagnostic(help("{help}"))]
    FormatOptions {
        /// The format.
        format: &'static str,
        /// What is missing or wrong.
        reason: &'static str,
        /// What to do instead.
        help: &'static str,
    },
}

impl PackError {
    /// An I/O error on `path`.
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| PackError::Io {
            action,
            path,
            source,
        }
    }
}

/// `Result` with [`PackError`].
pub type Result<T, E = PackError> = std::result::Result<T, E>;
