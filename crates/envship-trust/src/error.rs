//! Errors of checking an archive's authenticity.

use std::path::PathBuf;

/// Why a file is not trusted, or why trust could not be checked.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TrustError {
    /// Reading or writing a file failed.
    #[error("{action} {}", path.display())]
    #[diagnostic(code(envship::trust::io))]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
