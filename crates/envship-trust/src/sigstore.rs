//! GitHub build provenance: a Sigstore bundle (`ARCHIVE.sigstore.json`, as
//! `actions/attest-build-provenance` makes it) verified offline against a trusted root.
//!
//! [`verify_bundle`] checks, in this order, and fails with the [`SigstoreError`] variant of the
//! first check that does not hold:
//! 1. the bundle is a Sigstore bundle holding an in-toto statement ([`BundleUnreadable`]);
//! 2. its signing certificate was issued by a certificate authority of one of the trusted roots
//!    ([`UnknownRoot`]): Sigstore's public-good instance or GitHub's ([`TrustedRoots::BuiltIn`]),
//!    or a caller's ([`TrustedRoots::Custom`]);
//! 3. with sigstore-verify: the signing time (RFC 3161 timestamp, or the transparency log's
//!    signed entry time), the certificate chain at that time (an authority that no longer held
//!    is [`UnknownRoot`] too), the signed certificate timestamp and the log's inclusion proof
//!    where the root lists such logs, and the DSSE signature ([`Invalid`]);
//! 4. a subject of the statement has the artifact's digest ([`DigestMismatch`]);
//! 5. the certificate's identity is one of the allowed [`GithubIdentity`]s
//!    ([`IdentityNotAllowed`]).
//!
//! The predicate type is reported ([`Provenance::predicate_type`]), not checked.
//!
//! [`BundleUnreadable`]: SigstoreError::BundleUnreadable
//! [`UnknownRoot`]: SigstoreError::UnknownRoot
//! [`Invalid`]: SigstoreError::Invalid
//! [`DigestMismatch`]: SigstoreError::DigestMismatch
//! [`IdentityNotAllowed`]: SigstoreError::IdentityNotAllowed

mod digest;
mod error;
mod identity;
mod roots;

use std::path::Path;

use sigstore_verify::types::{Bundle, SignatureContent, Statement};
use sigstore_verify::{CertificateError, Verifier};

pub use digest::Artifact;
pub use error::SigstoreError;
pub use identity::{GithubIdentity, GITHUB_ACTIONS_ISSUER};
pub use roots::TrustedRoots;

use identity::CertIdentity;
use roots::NamedRoot;

/// The in-toto payload type of GitHub's attestations.
const IN_TOTO: &str = "application/vnd.in-toto+json";

/// What a verified bundle says about the build that made the file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Provenance {
    /// `OWNER/REPO` the file was built from (the certificate's source-repository claim).
    pub repo: String,
    /// The workflow file that ran in the source repository, e.g. `.github/workflows/publish.yml`.
    pub workflow: String,
    /// The workflow file that signed: [`Self::workflow`], or a reusable workflow it called
    /// (`OWNER/REPO/PATH` when in another repository).
    pub signer_workflow: String,
    /// The ref it was built from, e.g. `refs/tags/v1.0`.
    pub git_ref: String,
    /// The commit it was built from (hex).
    pub commit: String,
    /// The certificate's OIDC issuer: [`GITHUB_ACTIONS_ISSUER`].
    pub issuer: String,
    /// The trusted root it chained to: `public-good`, `github`, or `custom` (`custom#N` for the
    /// Nth line of a caller's multi-line root file).
    pub instance: String,
    /// The in-toto statement's predicate type, e.g. `https://slsa.dev/provenance/v1`.
    pub predicate_type: String,
}

/// Verifies, offline, that the Sigstore bundle `bundle_json` (read from `bundle_path`, which only
/// names it in errors) attests `artifact`, chains to one of `roots`, and was signed by one of
/// `identities` (none: no identity is allowed). See the [module](self) for the checks.
pub fn verify_bundle(
    artifact: Artifact<'_>,
    bundle_path: &Path,
    bundle_json: &str,
    identities: &[GithubIdentity],
    roots: &TrustedRoots,
) -> Result<Provenance, SigstoreError> {
    let unreadable = |reason: String, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
        SigstoreError::BundleUnreadable {
            path: bundle_path.to_path_buf(),
            reason,
            source,
        }
    };
    let bundle = Bundle::from_json(bundle_json)
        .map_err(|e| unreadable("not a Sigstore bundle".into(), Some(Box::new(e))))?;
    let statement = statement(&bundle).map_err(|(reason, e)| unreadable(reason, e))?;
    let cert = bundle
        .signing_certificate()
        .ok_or_else(|| unreadable("it has no signing certificate".into(), None))?;
    let (issuer_der, issuer_text) =
        roots::issuer_name(cert.as_bytes()).map_err(|reason| unreadable(reason, None))?;

    let candidates = roots.load()?;
    let ctx = Context {
        bundle: bundle_path,
        cert_issuer: issuer_text,
        tried: candidates
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let root =
        roots::root_for_issuer(&candidates, &issuer_der).ok_or_else(|| ctx.unknown_root(None))?;

    let file_digest = digest::digest(artifact, &statement)?;
    let result = verify_against(root, &bundle, &file_digest).map_err(|e| match e {
        Failure::Root(e) => SigstoreError::TrustedRootInvalid {
            name: root.name.clone(),
            source: e,
        },
        Failure::Verify(e) => ctx.classify(e, root, &statement, &file_digest),
    })?;
    let Some(cert_info) = result.certificate() else {
        return Err(unreadable("it has no signing certificate".into(), None));
    };

    let signer = CertIdentity::from_certificate(cert_info);
    if !identities.iter().any(|policy| signer.allowed_by(policy)) {
        return Err(SigstoreError::IdentityNotAllowed {
            bundle: bundle_path.to_path_buf(),
            actual: signer.to_string(),
            allowed: match identities {
                [] => "none".into(),
                _ => identities
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        });
    }
    Ok(Provenance {
        workflow: signer.workflow_name().unwrap_or_default(),
        signer_workflow: signer.signer_name().unwrap_or_default(),
        repo: signer.repo.unwrap_or_default(),
        git_ref: signer.git_ref.unwrap_or_default(),
        commit: signer.commit.unwrap_or_default(),
        issuer: signer.issuer.unwrap_or_default(),
        instance: root.name.clone(),
        predicate_type: statement.predicate_type,
    })
}

/// Why [`verify_against`] failed: the root was unusable, or the bundle did not verify.
enum Failure {
    Root(sigstore_verify::Error),
    Verify(sigstore_verify::Error),
}

/// sigstore-verify's checks of `bundle` against `root`, the artifact given by its digest.
fn verify_against(
    root: &NamedRoot,
    bundle: &Bundle,
    file_digest: &digest::FileDigest,
) -> Result<sigstore_verify::VerificationResult, Failure> {
    let verifier = Verifier::new(&root.root).map_err(Failure::Root)?;
    let artifact_digest = file_digest.to_artifact_digest().map_err(Failure::Verify)?;
    verifier
        .verify(artifact_digest, bundle, &root.policy())
        .map_err(Failure::Verify)
}

/// What errors name besides the failed check.
struct Context<'a> {
    bundle: &'a Path,
    /// The signing certificate's issuer name.
    cert_issuer: String,
    /// The trusted roots' names, comma-separated.
    tried: String,
}

impl Context<'_> {
    fn unknown_root(&self, source: Option<sigstore_verify::Error>) -> SigstoreError {
        SigstoreError::UnknownRoot {
            bundle: self.bundle.to_path_buf(),
            cert_issuer: self.cert_issuer.clone(),
            tried: self.tried.clone(),
            source,
        }
    }

    /// Which check a sigstore-verify error is.
    fn classify(
        &self,
        e: sigstore_verify::Error,
        root: &NamedRoot,
        statement: &Statement,
        file_digest: &digest::FileDigest,
    ) -> SigstoreError {
        use sigstore_verify::Error as E;
        let bundle = self.bundle.to_path_buf();
        match e {
            E::ArtifactMismatch(_) => SigstoreError::DigestMismatch {
                bundle,
                expected: digest::subjects(statement),
                actual: file_digest.display(),
                source: e,
            },
            E::Certificate(
                CertificateError::ChainInvalid(_) | CertificateError::NoValidAuthority { .. },
            ) => self.unknown_root(Some(e)),
            E::InvalidBundle(_) | E::UnsupportedBundle(_) | E::Bundle(_) | E::Types(_) => {
                SigstoreError::BundleUnreadable {
                    path: bundle,
                    reason: "it is malformed or of a kind envship cannot verify".into(),
                    source: Some(Box::new(e)),
                }
            }
            E::InvalidTrustRoot(_) | E::TrustRoot(_) | E::TrustedCertificate(_) => {
                SigstoreError::TrustedRootInvalid {
                    name: root.name.clone(),
                    source: e,
                }
            }
            _ => SigstoreError::Invalid {
                bundle,
                instance: root.name.clone(),
                source: e,
            },
        }
    }
}

/// The in-toto statement of a bundle's DSSE envelope.
type BadStatement = (String, Option<Box<dyn std::error::Error + Send + Sync>>);

fn statement(bundle: &Bundle) -> Result<Statement, BadStatement> {
    let SignatureContent::DsseEnvelope(envelope) = &bundle.content else {
        return Err((
            "it signs a file, not an attestation (no DSSE envelope)".into(),
            None,
        ));
    };
    if envelope.payload_type != IN_TOTO {
        return Err((
            format!(
                "its payload is {:?}, not an in-toto statement",
                envelope.payload_type
            ),
            None,
        ));
    }
    serde_json::from_slice(envelope.payload.as_bytes()).map_err(|e| {
        (
            "its in-toto statement is not valid".to_string(),
            Some(Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
        )
    })
}
