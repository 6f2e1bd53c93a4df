//! GitHub build provenance: a Sigstore bundle (`ARCHIVE.sigstore.json`, as
//! `actions/attest-build-provenance` makes it) verified offline against a trusted root.
//!
//! TEMPORARY interface only: the verifier lands from its own branch; until then every bundle
//! is refused.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// An allowed GitHub workflow identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GithubIdentity {
    /// `OWNER/REPO`.
    pub repo: String,
    /// The workflow file.
    pub workflow: Option<String>,
    /// A ref glob.
    pub git_ref: Option<String>,
}

/// The trusted roots to verify against.
#[derive(Clone, Debug, Default)]
pub enum TrustedRoots {
    /// Sigstore's public-good instance and GitHub's.
    #[default]
    BuiltIn,
    /// A trusted root JSON given with --trusted-root.
    Custom(String),
}

/// What a verified bundle says about the build.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Provenance {
    /// `OWNER/REPO`.
    pub repo: String,
}

/// Why a bundle does not verify.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SigstoreError {
    /// Not built yet.
    #[error("{}: Sigstore verification is not available in this build", bundle.display())]
    Unavailable {
        /// The bundle.
        bundle: PathBuf,
    },
}

/// Verify `bundle_json` (read from `bundle_path`) for `artifact`.
pub fn verify_bundle(
    _artifact: &Path,
    bundle_path: &Path,
    _bundle_json: &str,
    _identities: &[GithubIdentity],
    _roots: &TrustedRoots,
) -> Result<Provenance, SigstoreError> {
    Err(SigstoreError::Unavailable {
        bundle: bundle_path.to_path_buf(),
    })
}
