//! The trust flags, shared by `deploy` and `verify-release`.

use std::path::PathBuf;

use envship_trust::{check::TrustOptions, policy::TrustPolicy, sigstore::TrustedRoots};
use miette::IntoDiagnostic;

/// A policy on the command line, checked as well as a root's `.envship/trust.toml`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TrustArgs {
    /// Trust minisign signatures by this public key (a .pub file, or its `RW…` line).
    #[arg(long, value_name = "KEY")]
    pub trust_key: Vec<String>,
    /// Trust build provenance from this GitHub repository, optionally only from one workflow
    /// file (OWNER/REPO[:.github/workflows/FILE]).
    #[arg(long, value_name = "OWNER/REPO[:WORKFLOW]")]
    pub trust_github: Vec<String>,
    /// Verify Sigstore bundles against this trusted root (JSON) instead of the built-in ones
    /// (Sigstore's public-good instance and GitHub's).
    #[arg(long, value_name = "FILE")]
    pub trusted_root: Option<PathBuf>,
}

impl TrustArgs {
    /// The library's options.
    pub fn options(&self) -> miette::Result<TrustOptions> {
        let flags = TrustPolicy::from_flags(&self.trust_key, &self.trust_github)?;
        let roots = match &self.trusted_root {
            Some(f) => TrustedRoots::Custom(
                fs_err::read_to_string(f)
                    .into_diagnostic()
                    .map_err(|e| e.wrap_err("reading --trusted-root"))?,
            ),
            None => TrustedRoots::BuiltIn,
        };
        Ok(TrustOptions { flags, roots })
    }
}
