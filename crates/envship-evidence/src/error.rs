//! Why a page could not be written (rendering itself cannot fail).

use std::path::PathBuf;

/// Errors of [`crate::write`].
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum EvidenceError {
    /// The temp file beside the page could not be created.
    #[error("cannot create a temporary file in {}", dir.display())]
    #[diagnostic(
        code(envship::evidence::temp_file),
        help("the page is written beside the archive: that directory must exist and be writable")
    )]
    TempFile {
        /// The directory.
        dir: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// Writing the page's bytes failed.
    #[error("cannot write {}", path.display())]
    #[diagnostic(code(envship::evidence::write))]
    Write {
        /// The temp file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// Renaming the temp file to the page failed.
    #[error("cannot rename the page into place at {}", path.display())]
    #[diagnostic(code(envship::evidence::rename))]
    Rename {
        /// The page's path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
