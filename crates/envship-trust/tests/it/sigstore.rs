//! Sigstore bundles from sigstore-rust's test data (see `tests/data/sigstore/SOURCES.tsv`),
//! verified offline against the built-in and against given trusted roots.

use std::path::{Path, PathBuf};

use envship_trust::sigstore::{
    verify_bundle, Artifact, GithubIdentity, SigstoreError, TrustedRoots, GITHUB_ACTIONS_ISSUER,
};
use sigstore_verify::types::{Bundle, PayloadBytes, SignatureContent};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sigstore")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(data(name)).unwrap()
}

/// A conda package attested by `prefix-dev/sigstore-example`'s workflow (public-good instance,
/// Rekor-logged).
const CONDA_BUNDLE: &str = "conda-attestation.sigstore.json";
const CONDA_PACKAGE: &str = "signed-package-2.1.0-hb0f4dca_0.conda";
const CONDA_REPO: &str = "prefix-dev/sigstore-example";
const CONDA_WORKFLOW: &str = ".github/workflows/action.yaml";

fn identity(repo: &str, workflow: Option<&str>, git_ref: Option<&str>) -> GithubIdentity {
    GithubIdentity {
        repo: repo.into(),
        workflow: workflow.map(Into::into),
        git_ref: git_ref.map(Into::into),
    }
}

fn conda_identity() -> GithubIdentity {
    identity(CONDA_REPO, Some(CONDA_WORKFLOW), Some("refs/heads/*"))
}

fn verify_conda(
    bundle_json: &str,
    artifact: Artifact<'_>,
    identities: &[GithubIdentity],
    roots: &TrustedRoots,
) -> Result<envship_trust::sigstore::Provenance, SigstoreError> {
    verify_bundle(
        artifact,
        &data(CONDA_BUNDLE),
        bundle_json,
        identities,
        roots,
    )
}

#[test]
fn a_real_bundle_verifies_offline_against_the_built_in_roots() {
    let package = data(CONDA_PACKAGE);
    let provenance = verify_conda(
        &read(CONDA_BUNDLE),
        Artifact::File(&package),
        &[identity("someone/else", None, None), conda_identity()],
        &TrustedRoots::BuiltIn,
    )
    .unwrap();
    assert_eq!(provenance.repo, CONDA_REPO);
    assert_eq!(provenance.workflow, CONDA_WORKFLOW);
    assert_eq!(provenance.git_ref, "refs/heads/main");
    assert_eq!(
        provenance.commit,
        "193b5bd7d3985809503963ae400594ea16df31cf"
    );
    assert_eq!(provenance.issuer, GITHUB_ACTIONS_ISSUER);
    assert_eq!(provenance.instance, "public-good");
    assert_eq!(
        provenance.predicate_type,
        "https://schemas.conda.org/attestations-publish-1.schema.json"
    );
}

#[test]
fn a_real_bundle_verifies_against_its_real_root_given_as_a_file() {
    // public-good.json is sigstore-rust's copy of the public-good root (as `--trusted-root`).
    let roots = TrustedRoots::Custom(read("public-good.json"));
    let package = data(CONDA_PACKAGE);
    let provenance = verify_conda(
        &read(CONDA_BUNDLE),
        Artifact::File(&package),
        &[identity("PREFIX-DEV/Sigstore-Example", None, None)],
        &roots,
    )
    .unwrap();
    assert_eq!(provenance.instance, "custom");
    // the package's digest instead of the package
    let sha256 = "54303491a8418fbed24344b513546182c29b43bf282ceb433af65e2299f9271f";
    verify_conda(
        &read(CONDA_BUNDLE),
        Artifact::Sha256(sha256),
        &[conda_identity()],
        &roots,
    )
    .unwrap();
}

#[test]
fn a_sha512_subject_is_checked_by_sha512() {
    // sigstore-js's npm provenance (a v0.1 bundle: certificate chain, intoto log entry); the
    // npm tarball is not kept, its SHA-512 is the statement's subject.
    let bundle = "sigstore.js@2.0.0-provenance.sigstore.json";
    let sha512 = "46d4e2f74c4877316640000a6fdf8a8b59f1e0847667973e9859f774dd31b8f1e0937813b777fb66a2ac67d50540fe34640966eee9fc2ccca387082b4c85cd3c";
    let policy = identity(
        "sigstore/sigstore-js",
        Some(".github/workflows/release.yml"),
        Some("refs/heads/main"),
    );
    let provenance = verify_bundle(
        Artifact::Sha512(sha512),
        &data(bundle),
        &read(bundle),
        std::slice::from_ref(&policy),
        &TrustedRoots::BuiltIn,
    )
    .unwrap();
    assert_eq!(provenance.repo, "sigstore/sigstore-js");
    assert_eq!(provenance.predicate_type, "https://slsa.dev/provenance/v1");

    let mut other = sha512.to_string();
    other.replace_range(..2, "00");
    let err = verify_bundle(
        Artifact::Sha512(&other),
        &data(bundle),
        &read(bundle),
        &[policy],
        &TrustedRoots::BuiltIn,
    )
    .unwrap_err();
    assert!(
        matches!(err, SigstoreError::DigestMismatch { .. }),
        "{err:?}"
    );
}

#[test]
fn one_changed_byte_of_the_statement_fails_the_signature() {
    let mut bundle = Bundle::from_json(&read(CONDA_BUNDLE)).unwrap();
    let SignatureContent::DsseEnvelope(envelope) = &mut bundle.content else {
        panic!("a DSSE bundle");
    };
    let mut payload = envelope.payload.as_bytes().to_vec();
    // a byte of the package's name in the subject, so the statement still parses
    let at = payload
        .windows(b"signed-package".len())
        .position(|w| w == b"signed-package")
        .unwrap();
    payload[at] = b'S';
    envelope.payload = PayloadBytes::new(payload);
    let package = data(CONDA_PACKAGE);
    let err = verify_conda(
        &bundle.to_json().unwrap(),
        Artifact::File(&package),
        &[conda_identity()],
        &TrustedRoots::BuiltIn,
    )
    .unwrap_err();
    match &err {
        SigstoreError::Invalid {
            instance, source, ..
        } => {
            assert_eq!(instance, "public-good");
            assert!(
                matches!(source, sigstore_verify::Error::SignatureInvalid(_)),
                "{source:?}"
            );
        }
        other => panic!("want Invalid, got {other:?}"),
    }
    eprintln!("{:?}", miette::Report::new(err));
}

#[test]
fn another_file_fails_with_the_digest_mismatch() {
    let other = data("public-good.json"); // any other file
    let err = verify_conda(
        &read(CONDA_BUNDLE),
        Artifact::File(&other),
        &[conda_identity()],
        &TrustedRoots::BuiltIn,
    )
    .unwrap_err();
    let SigstoreError::DigestMismatch {
        expected, actual, ..
    } = &err
    else {
        panic!("want DigestMismatch, got {err:?}");
    };
    assert_eq!(
        expected,
        "signed-package-2.1.0-hb0f4dca_0.conda \
         sha256:54303491a8418fbed24344b513546182c29b43bf282ceb433af65e2299f9271f"
    );
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    sha2::Digest::update(&mut hasher, std::fs::read(&other).unwrap());
    let want = hex::encode(sha2::Digest::finalize(hasher));
    assert_eq!(actual, &format!("sha256:{want}"));
    eprintln!("{:?}", miette::Report::new(err));
}

fn identity_error(identities: &[GithubIdentity]) -> (String, String) {
    let package = data(CONDA_PACKAGE);
    let err = verify_conda(
        &read(CONDA_BUNDLE),
        Artifact::File(&package),
        identities,
        &TrustedRoots::BuiltIn,
    )
    .unwrap_err();
    let message = err.to_string();
    let SigstoreError::IdentityNotAllowed {
        actual, allowed, ..
    } = err
    else {
        panic!("want IdentityNotAllowed, got {err:?}");
    };
    assert!(
        message.contains(&actual) && message.contains(&allowed),
        "{message}"
    );
    (actual, allowed)
}

#[test]
fn another_repository_or_workflow_or_ref_is_not_allowed() {
    let signer = "https://github.com/prefix-dev/sigstore-example/.github/workflows/action.yaml\
                  @refs/heads/main (repo prefix-dev/sigstore-example, ref refs/heads/main), \
                  issuer https://token.actions.githubusercontent.com";
    let (actual, allowed) = identity_error(&[identity("prefix-dev/other", None, None)]);
    assert_eq!(actual, signer);
    assert_eq!(allowed, "repo prefix-dev/other");

    let (actual, allowed) = identity_error(&[identity(
        CONDA_REPO,
        Some(".github/workflows/publish.yml"),
        None,
    )]);
    assert_eq!(actual, signer);
    assert_eq!(
        allowed,
        "repo prefix-dev/sigstore-example, workflow .github/workflows/publish.yml"
    );

    let (_, allowed) = identity_error(&[
        identity(CONDA_REPO, None, Some("refs/tags/*")),
        identity("a/b", None, None),
    ]);
    assert_eq!(
        allowed,
        "repo prefix-dev/sigstore-example, ref refs/tags/*; repo a/b"
    );
    let (_, allowed) = identity_error(&[]);
    assert_eq!(allowed, "none");
}

#[test]
fn a_public_good_bundle_against_only_githubs_root_is_an_unknown_root() {
    let roots =
        TrustedRoots::Custom(sigstore_verify::trust_root::SIGSTORE_GITHUB_TRUSTED_ROOT.to_string());
    let package = data(CONDA_PACKAGE);
    let err = verify_conda(
        &read(CONDA_BUNDLE),
        Artifact::File(&package),
        &[conda_identity()],
        &roots,
    )
    .unwrap_err();
    let SigstoreError::UnknownRoot {
        cert_issuer, tried, ..
    } = &err
    else {
        panic!("want UnknownRoot, got {err:?}");
    };
    assert_eq!(cert_issuer, "CN=sigstore-intermediate,O=sigstore.dev");
    assert_eq!(tried, "custom");
    eprintln!("{:?}", miette::Report::new(err));
}

#[test]
fn a_github_instance_bundle_verifies_by_its_timestamp_without_a_log() {
    // GitHub's own instance (fulcio.githubapp.com, timestamp.githubapp.com, no transparency
    // log): a release attestation of jdx/communique that GitHub signed itself, so its identity is
    // GitHub's release service, not a workflow. Everything but the identity verifies.
    let bundle = "github-private-attestation.sigstore.json";
    let sha256 = "76f1fe8593bf227cca2c089e3c16dc95014a8d3e89c5dd220530469ca043c428";
    let run = |artifact, roots: &TrustedRoots| {
        verify_bundle(
            artifact,
            &data(bundle),
            &read(bundle),
            &[identity("jdx/communique", None, None)],
            roots,
        )
        .unwrap_err()
    };
    let err = run(Artifact::Sha256(sha256), &TrustedRoots::BuiltIn);
    let SigstoreError::IdentityNotAllowed { actual, .. } = &err else {
        panic!("want IdentityNotAllowed, got {err:?}");
    };
    assert!(
        actual.starts_with("https://dotcom.releases.github.com"),
        "{actual}"
    );

    let other = "00".repeat(32);
    let err = run(Artifact::Sha256(&other), &TrustedRoots::BuiltIn);
    assert!(
        matches!(err, SigstoreError::DigestMismatch { .. }),
        "{err:?}"
    );

    let public_good_only = TrustedRoots::Custom(read("public-good.json"));
    let err = run(Artifact::Sha256(sha256), &public_good_only);
    let SigstoreError::UnknownRoot { cert_issuer, .. } = &err else {
        panic!("want UnknownRoot, got {err:?}");
    };
    assert_eq!(cert_issuer, "CN=Fulcio Intermediate l1,O=GitHub\\, Inc.");
}

#[test]
fn unreadable_bundles_and_roots_say_so() {
    let package = data(CONDA_PACKAGE);
    let err = verify_conda(
        "{not json",
        Artifact::File(&package),
        &[conda_identity()],
        &TrustedRoots::BuiltIn,
    )
    .unwrap_err();
    let SigstoreError::BundleUnreadable { path, .. } = &err else {
        panic!("want BundleUnreadable, got {err:?}");
    };
    assert_eq!(path, &data(CONDA_BUNDLE));
    assert!(err.to_string().contains("conda-attestation.sigstore.json"));

    let err = verify_conda(
        &read(CONDA_BUNDLE),
        Artifact::File(&package),
        &[conda_identity()],
        &TrustedRoots::Custom("{}".into()),
    )
    .unwrap_err();
    assert!(
        matches!(err, SigstoreError::TrustedRootInvalid { .. }),
        "{err:?}"
    );

    let err = verify_conda(
        &read(CONDA_BUNDLE),
        Artifact::File(&data("missing.conda")),
        &[conda_identity()],
        &TrustedRoots::BuiltIn,
    )
    .unwrap_err();
    assert!(
        matches!(err, SigstoreError::ArtifactUnreadable { .. }),
        "{err:?}"
    );

    let err = verify_conda(
        &read(CONDA_BUNDLE),
        Artifact::Sha256("abc"),
        &[conda_identity()],
        &TrustedRoots::BuiltIn,
    )
    .unwrap_err();
    assert!(matches!(err, SigstoreError::BadDigest { .. }), "{err:?}");
}

#[test]
fn a_root_file_of_several_lines_is_several_roots() {
    // as `gh attestation trusted-root` prints them: one JSON document a line
    let line = |json: &str| {
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(json).unwrap()).unwrap()
    };
    let roots = TrustedRoots::Custom(format!(
        "{}\n{}\n",
        line(sigstore_verify::trust_root::SIGSTORE_GITHUB_TRUSTED_ROOT),
        line(&read("public-good.json"))
    ));
    let package = data(CONDA_PACKAGE);
    let provenance = verify_conda(
        &read(CONDA_BUNDLE),
        Artifact::File(&package),
        &[conda_identity()],
        &roots,
    )
    .unwrap();
    assert_eq!(provenance.instance, "custom#2");
}

#[test]
fn a_reusable_workflow_is_allowed_as_the_caller_or_as_the_signer() {
    // malancas/attest-demo's shared.yml called bdehamer/workflows' attest.yml, which signed.
    let bundle = "reusable-workflow-attestation.sigstore.json";
    let wheel = "07e4b8c0e3580b3e4a1eb62c70f1ffb86004d3d94f50767cb404fa7a639b4d05";
    let run = |workflow: &str| {
        verify_bundle(
            Artifact::Sha256(wheel),
            &data(bundle),
            &read(bundle),
            &[identity(
                "malancas/attest-demo",
                Some(workflow),
                Some("refs/heads/main"),
            )],
            &TrustedRoots::BuiltIn,
        )
    };
    let provenance = run(".github/workflows/shared.yml").unwrap();
    assert_eq!(provenance.repo, "malancas/attest-demo");
    assert_eq!(provenance.workflow, ".github/workflows/shared.yml");
    assert_eq!(
        provenance.signer_workflow,
        "bdehamer/workflows/.github/workflows/attest.yml"
    );
    assert_eq!(
        provenance.commit,
        "8304c42402aa3a569882687e0642c359e5a74ac2"
    );
    assert_eq!(provenance.instance, "public-good");
    run("bdehamer/workflows/.github/workflows/attest.yml").unwrap();
    // the signer's path, but in the source repository: not what signed
    let err = run(".github/workflows/attest.yml").unwrap_err();
    assert!(
        matches!(err, SigstoreError::IdentityNotAllowed { .. }),
        "{err:?}"
    );
}
