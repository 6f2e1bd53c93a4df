//! Applying policies to one file: the minisign signature beside it (`FILE.minisig`) and its
//! build provenance (`FILE.sigstore.json`), each checked when a policy asks for it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{
    error::{Failure, TrustError},
    minisig::{self, MinisignVerified},
    policy::{Require, TrustPolicy},
    sigstore::{self, Provenance, TrustedRoots},
};

/// The bundle file of `file`: `FILE.sigstore.json`, as the example workflows upload it.
pub fn bundle_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".sigstore.json");
    PathBuf::from(name)
}

/// What was verified about a file, for the deployment record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Verified {
    /// The policies applied (files, `the command line`).
    pub policies: Vec<String>,
    /// The minisign signature that held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minisign: Option<MinisignVerified>,
    /// The build provenance that held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub github: Option<Provenance>,
}

/// Check `file` against every policy in `policies` (all must accept it). `bundle` is its
/// Sigstore bundle when it is not `FILE.sigstore.json`.
pub fn check(
    file: &Path,
    policies: &[&TrustPolicy],
    bundle: Option<&Path>,
    roots: &TrustedRoots,
) -> Result<Verified, TrustError> {
    let mut verified = Verified::default();
    for policy in policies {
        verified.policies.extend(policy.sources.iter().cloned());
        let mut failures = Vec::new();
        let mut held = 0;
        let mut kinds = 0;
        if !policy.minisign.is_empty() {
            kinds += 1;
            match minisig::verify_file(file, &policy.minisign) {
                Ok(v) => {
                    held += 1;
                    verified.minisign = Some(v);
                }
                Err(e) => failures.push(Failure::Minisign(e)),
            }
        }
        if !policy.github.is_empty() {
            kinds += 1;
            match provenance(file, policy, bundle, roots) {
                Ok(p) => {
                    held += 1;
                    verified.github = Some(p);
                }
                Err(e) => failures.push(e),
            }
        }
        // A policy with only a [stage] asks for no signature: the stage rule is deploy's.
        let accepted = kinds == 0
            || match policy.require {
                Require::Any => held > 0,
                Require::All => held == kinds,
            };
        if !accepted {
            return Err(TrustError::Refused {
                file: file.to_path_buf(),
                policy: policy.sources.join(" and "),
                require: policy.require,
                failures,
            });
        }
    }
    Ok(verified)
}

fn provenance(
    file: &Path,
    policy: &TrustPolicy,
    bundle: Option<&Path>,
    roots: &TrustedRoots,
) -> Result<Provenance, Failure> {
    let path = bundle.map_or_else(|| bundle_path(file), Path::to_path_buf);
    let json = match std::fs::read_to_string(&path) {
        Ok(j) => j,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Failure::NoProvenance { bundle: path })
        }
        Err(source) => return Err(Failure::Io { path, source }),
    };
    sigstore::verify_bundle(
        sigstore::Artifact::File(file),
        &path,
        &json,
        &policy.github,
        roots,
    )
    .map_err(Failure::Provenance)
}

/// What deploy and verify-release are told about trust beyond a root's own policy.
#[derive(Clone, Debug, Default)]
pub struct TrustOptions {
    /// A policy from the command line, checked as well as the root's.
    pub flags: Option<TrustPolicy>,
    /// The roots Sigstore bundles are verified against.
    pub roots: TrustedRoots,
}

impl TrustOptions {
    /// The policies to apply under `root` (its `trust.toml`, then the flags'); empty when
    /// neither exists.
    pub fn policies(&self, root: Option<&Path>) -> Result<Vec<TrustPolicy>, TrustError> {
        let mut out = Vec::new();
        if let Some(r) = root {
            out.extend(TrustPolicy::for_root(r)?);
        }
        out.extend(self.flags.clone());
        Ok(out)
    }
}
