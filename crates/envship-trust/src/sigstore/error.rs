//! Why a Sigstore bundle does not vouch for a file: one variant per check, so a failed deploy
//! says which one failed.

use std::path::PathBuf;

/// A Sigstore bundle (GitHub build provenance) that does not vouch for the file, or could not be
/// checked.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SigstoreError {
    /// The bundle is not JSON, not a Sigstore bundle, or not an in-toto attestation (GitHub's
    /// build provenance is a DSSE envelope holding an in-toto statement).
    #[error("cannot read the Sigstore bundle {}: {reason}", path.display())]
    #[diagnostic(
        code(envship::trust::sigstore::bundle_unreadable),
        help("the bundle should be the `.sigstore.json` that `actions/attest-build-provenance` made for this file")
    )]
    BundleUnreadable {
        /// The bundle file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// The parser's error, if one said more.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// The artifact the bundle is about could not be read (to hash it).
    #[error("cannot read {} to hash it", path.display())]
    #[diagnostic(code(envship::trust::sigstore::artifact_unreadable))]
    ArtifactUnreadable {
        /// The artifact.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A digest given instead of the artifact is not hex of the right length.
    #[error("{algorithm} digest {digest:?} is not {len} hex digits")]
    #[diagnostic(code(envship::trust::sigstore::bad_digest))]
    BadDigest {
        /// `sha256` or `sha512`.
        algorithm: &'static str,
        /// The digest as given.
        digest: String,
        /// How many hex digits it needs.
        len: usize,
    },

    /// A caller-given trusted root (`--trusted-root FILE`) is not a usable Sigstore trusted root.
    #[error("the trusted root {name} is not a usable Sigstore trusted root")]
    #[diagnostic(
        code(envship::trust::sigstore::bad_trusted_root),
        help("a trusted root is the JSON `gh attestation trusted-root` or `cosign trusted-root` prints")
    )]
    TrustedRootInvalid {
        /// Which root: `custom`, `custom#2`, … for a caller's, the instance name for a built-in one.
        name: String,
        /// The cause.
        #[source]
        source: sigstore_verify::Error,
    },

    /// The signing certificate chains to no trusted root: the bundle comes from another Sigstore
    /// instance, or the certificate authority it names was not valid when it signed.
    #[error(
        "the bundle {}'s certificate (issued by {cert_issuer}) chains to no trusted root (tried: {tried})",
        bundle.display()
    )]
    #[diagnostic(
        code(envship::trust::sigstore::unknown_root),
        help("public repositories' attestations are signed by Sigstore's public-good instance, private ones' by GitHub's; for another instance pass its trusted root (`--trusted-root FILE`)")
    )]
    UnknownRoot {
        /// The bundle file.
        bundle: PathBuf,
        /// The certificate's issuer name (RFC 4514).
        cert_issuer: String,
        /// The trusted roots it was checked against, comma-separated.
        tried: String,
        /// The verifier's reason, when the issuer was known but its authority did not hold at the
        /// signing time.
        #[source]
        source: Option<sigstore_verify::Error>,
    },

    /// The signature, the certificate, the transparency-log entry or the RFC 3161 timestamp does
    /// not verify: the bundle was altered, or was not made by the instance it names.
    #[error("the Sigstore bundle {} does not verify against the {instance} trusted root", bundle.display())]
    #[diagnostic(code(envship::trust::sigstore::invalid))]
    Invalid {
        /// The bundle file.
        bundle: PathBuf,
        /// The trusted root's instance (`public-good`, `github`, `custom`, …).
        instance: String,
        /// Which check failed, from the verifier.
        #[source]
        source: sigstore_verify::Error,
    },

    /// The bundle is authentic but attests another file: no subject of its in-toto statement has
    /// the file's digest.
    #[error("the bundle {} attests {expected}, but the file is {actual}", bundle.display())]
    #[diagnostic(
        code(envship::trust::sigstore::digest_mismatch),
        help("the file was changed after it was attested, or the bundle belongs to another file")
    )]
    DigestMismatch {
        /// The bundle file.
        bundle: PathBuf,
        /// The statement's subjects (`NAME ALGORITHM:HEX`, comma-separated).
        expected: String,
        /// The file's digest (`ALGORITHM:HEX`).
        actual: String,
        /// The verifier's words.
        #[source]
        source: sigstore_verify::Error,
    },

    /// The bundle is authentic, but the identity its certificate names (who built the file) is
    /// not one the policy allows.
    #[error("the bundle {} was signed by {actual}, which is not allowed (allowed: {allowed})", bundle.display())]
    #[diagnostic(
        code(envship::trust::sigstore::identity_not_allowed),
        help(
            "if this build is trusted, add its repository (and workflow, ref) to the trust policy"
        )
    )]
    IdentityNotAllowed {
        /// The bundle file.
        bundle: PathBuf,
        /// The certificate's identity: its SAN, repository, ref and OIDC issuer.
        actual: String,
        /// The identities the policy allows, `; `-separated.
        allowed: String,
    },
}
