//! Sigstore bundles (`ARCHIVE.sigstore.json`), verified offline: any text gives provenance or an
//! error, never a panic. The artifact is the conda package of the conda-attestation seed (given
//! by its SHA-256, so no file is read) and the identity its workflow's, so that mutations of the
//! seed bundles get through parsing to the chain, signature, digest and identity checks.
#![no_main]
use std::path::Path;

use envship_trust::sigstore::{verify_bundle, Artifact, GithubIdentity, TrustedRoots};
use libfuzzer_sys::fuzz_target;

/// sha256 of crates/envship-trust/tests/data/sigstore/signed-package-2.1.0-hb0f4dca_0.conda.
const CONDA_SHA256: &str = "54303491a8418fbed24344b513546182c29b43bf282ceb433af65e2299f9271f";

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let identity = GithubIdentity {
        repo: "prefix-dev/sigstore-example".into(),
        workflow: Some(".github/workflows/action.yaml".into()),
        git_ref: Some("refs/heads/*".into()),
    };
    let r = verify_bundle(
        Artifact::Sha256(CONDA_SHA256),
        Path::new("a.sigstore.json"),
        json,
        &[identity],
        &TrustedRoots::BuiltIn,
    );
    if let Err(e) = r {
        drop(e.to_string());
    }
});
