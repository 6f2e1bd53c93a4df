//! Errors of publishing (directory drop and GitHub releases).

use std::path::PathBuf;

/// Why a publish failed. Messages never contain the API token: server text is scrubbed before it
/// is stored here (see [`crate::Secret::scrub`]).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PublishError {
    /// Reading or writing a local file failed.
    #[error("{action} {}", path.display())]
    #[diagnostic(code(envship::publish::io))]
    Io {
        /// What was being done (`reading`, `writing`, …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The drop directory does not exist or is not a directory.
    #[error("drop directory {} does not exist or is not a directory", path.display())]
    #[diagnostic(
        code(envship::publish::no_dir),
        help("create it first; envship does not create shared staging areas")
    )]
    NotADirectory {
        /// The directory given with `--to`.
        path: PathBuf,
    },

    /// A different file with the same name is already published.
    #[error("{} already exists with different content (sha256 {existing}, publishing {new})", path.display())]
    #[diagnostic(
        code(envship::publish::conflict),
        help("published files are never overwritten; bump the version or remove the old file deliberately")
    )]
    Conflict {
        /// The existing file.
        path: PathBuf,
        /// Its sha256.
        existing: String,
        /// The sha256 of the file being published.
        new: String,
    },

    /// A file's content does not match its recorded sha256.
    #[error("sha256 mismatch for {}: expected {expected}, got {actual}", path.display())]
    #[diagnostic(
        code(envship::publish::checksum),
        help("the file was modified or corrupted after pack; rebuild it")
    )]
    Checksum {
        /// The file checked.
        path: PathBuf,
        /// From the `.sha256` sidecar (or the source, for a copy).
        expected: String,
        /// What the bytes hash to.
        actual: String,
    },

    /// Two files to publish have the same name.
    #[error("two files named `{name}` would be published")]
    #[diagnostic(code(envship::publish::duplicate))]
    DuplicateName {
        /// The clashing file name.
        name: String,
    },

    /// A `--github` value is not `OWNER/REPO`.
    #[error("invalid repository `{0}`: expected OWNER/REPO")]
    #[diagnostic(code(envship::publish::bad_repo))]
    BadRepo(String),

    /// No token in the environment.
    #[error("no GitHub token: environment variable {var} is not set")]
    #[diagnostic(
        code(envship::publish::no_token),
        help("in GitHub Actions pass `GITHUB_TOKEN: ${{{{ secrets.GITHUB_TOKEN }}}}` in `env:`; elsewhere export a token with `contents: write`, or name another variable with --token-env")
    )]
    NoToken {
        /// The variable looked at.
        var: String,
    },

    /// The HTTP request could not be made or its answer read, after all retries.
    #[error("{method} {url}: {message}")]
    #[diagnostic(code(envship::publish::http))]
    Http {
        /// HTTP method.
        method: String,
        /// URL without query string.
        url: String,
        /// What went wrong (scrubbed of the token).
        message: String,
    },

    /// The API answered with an error status (after all retries, for retryable ones).
    #[error("{method} {url}: HTTP {status}: {message}")]
    #[diagnostic(code(envship::publish::api), help("{help}"))]
    Api {
        /// HTTP method.
        method: String,
        /// URL without query string.
        url: String,
        /// Status code.
        status: u16,
        /// The API's message (scrubbed of the token).
        message: String,
        /// What the user can do.
        help: String,
    },

    /// A file could not be signed.
    #[error("signing {}", path.display())]
    #[diagnostic(code(envship::publish::sign))]
    Sign {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<envship_trust::minisig::MinisignError>,
    },

    /// publish signs only an archive it checked, and this one could not be checked.
    #[error("refusing to sign {}: {reason}", archive.display())]
    #[diagnostic(
        code(envship::publish::unchecked),
        help("sign what `envship pack` wrote, with its .sha256 and .manifest.json beside it; re-pack if they disagree")
    )]
    Unchecked {
        /// The archive.
        archive: PathBuf,
        /// Why it could not be checked.
        reason: String,
    },

    /// The release notes could not be made: a manifest of this or the previous release could not
    /// be read.
    #[error("release notes: {}", path.display())]
    #[diagnostic(
        code(envship::publish::notes),
        help("the files are published; fix or remove the manifest and publish again, or pass --no-notes")
    )]
    Notes {
        /// The manifest.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<envship_pack::diff::DiffError>,
    },

    /// The API answered 2xx with a body that is not what the GitHub API returns.
    #[error("{url}: unexpected response: {message}")]
    #[diagnostic(code(envship::publish::bad_response))]
    BadResponse {
        /// The URL.
        url: String,
        /// What was wrong.
        message: String,
    },
}

impl PublishError {
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
