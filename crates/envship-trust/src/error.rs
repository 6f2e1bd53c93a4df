//! Errors of checking an archive's authenticity.

use std::path::PathBuf;

use crate::{minisig::MinisignError, policy::Require, sigstore::SigstoreError};

/// One check of a policy that did not hold.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Failure {
    /// The minisign signature is missing, by another key, or does not match.
    #[error("minisign: {0}")]
    Minisign(#[source] MinisignError),

    /// No Sigstore bundle beside the file.
    #[error("build provenance: no bundle: {} does not exist", bundle.display())]
    NoProvenance {
        /// Where it was looked for.
        bundle: PathBuf,
    },

    /// The bundle does not prove the file was built by an allowed identity.
    #[error("build provenance: {0}")]
    Provenance(#[source] SigstoreError),

    /// The bundle could not be read.
    #[error("build provenance: reading {}: {source}", path.display())]
    Io {
        /// The bundle.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Why a file is not trusted, or why trust could not be checked.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TrustError {
    /// The file fails a policy: each failed check is listed.
    #[error("{} is not trusted by {policy} (require = \"{}\"):{}", file.display(), match require { Require::Any => "any", Require::All => "all" }, failures.iter().map(|f| format!("\n  - {f}")).collect::<String>())]
    #[diagnostic(
        code(envship::trust::refused),
        help("nothing was deployed. Sign at publish with --sign-key, attest in the workflow (actions/attest-build-provenance), or check that the file is the one that was published")
    )]
    Refused {
        /// The file.
        file: PathBuf,
        /// The policy's sources.
        policy: String,
        /// One or all.
        require: Require,
        /// The checks that failed.
        failures: Vec<Failure>,
    },

    /// A policy could not be read.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Policy(#[from] crate::policy::PolicyError),
}
