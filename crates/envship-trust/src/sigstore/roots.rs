//! Trusted roots: the built-in ones (Sigstore's public-good instance, GitHub's), or a caller's,
//! and which of them a bundle's certificate belongs to.
//!
//! Both built-in roots are the ones sigstore-trust-root embeds (taken from the instances' TUF
//! repositories, <https://tuf-repo-cdn.sigstore.dev/> and <https://tuf-repo.github.com/>), so no
//! network is needed; newer Fulcio keys need a newer sigstore-trust-root or `--trusted-root`.

use sigstore_verify::trust_root::{
    TrustedRoot, SIGSTORE_GITHUB_TRUSTED_ROOT, SIGSTORE_PRODUCTION_TRUSTED_ROOT,
};
use sigstore_verify::VerificationPolicy;
use x509_cert::der::{Decode, Encode};

use super::SigstoreError;

/// The Sigstore trusted roots a bundle may chain to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum TrustedRoots {
    /// Sigstore's public-good instance (public repositories' attestations, Rekor-logged) and
    /// GitHub's own (`fulcio.githubapp.com`: private repositories', TSA-timestamped, no log).
    #[default]
    BuiltIn,
    /// A caller's trusted root JSON (`--trusted-root FILE`), in place of the built-in ones: one
    /// document, or one per line as `gh attestation trusted-root` prints them.
    Custom(String),
}

/// One trusted root, named for messages and [`Provenance::instance`](super::Provenance).
pub(crate) struct NamedRoot {
    /// `public-good`, `github`, or `custom` (`custom#2`, … for further lines).
    pub name: String,
    /// The parsed root.
    pub root: TrustedRoot,
}

impl NamedRoot {
    /// How to verify a bundle against this root: a root that lists transparency logs wants an
    /// inclusion proof, one that lists CT logs a signed certificate timestamp. GitHub's lists
    /// neither: its trust is in its timestamp authority.
    pub(crate) fn policy(&self) -> VerificationPolicy {
        let mut policy = VerificationPolicy::any_identity();
        if self.root.tlogs.is_empty() {
            policy = policy.skip_tlog_unsafe();
        }
        if self.root.ctlogs.is_empty() {
            policy = policy.skip_sct();
        }
        policy
    }

    /// Whether a certificate authority of this root has the name `issuer` (a DER `Name`): the
    /// certificate can only chain here. The verifier then checks the chain itself.
    fn names_issuer(&self, issuer: &[u8]) -> bool {
        self.root
            .certificate_authorities
            .iter()
            .flat_map(|ca| &ca.cert_chain.certificates)
            .filter_map(|entry| x509_cert::Certificate::from_der(entry.raw_bytes.as_bytes()).ok())
            .any(|ca| {
                ca.tbs_certificate
                    .subject
                    .to_der()
                    .is_ok_and(|der| der == issuer)
            })
    }
}

impl TrustedRoots {
    /// Parses the roots this stands for.
    pub(crate) fn load(&self) -> Result<Vec<NamedRoot>, SigstoreError> {
        let parse = |name: String, json: &str| match TrustedRoot::from_json(json) {
            Ok(root) => Ok(NamedRoot { name, root }),
            Err(e) => Err(SigstoreError::TrustedRootInvalid {
                name,
                source: e.into(),
            }),
        };
        match self {
            Self::BuiltIn => Ok(vec![
                parse("public-good".into(), SIGSTORE_PRODUCTION_TRUSTED_ROOT)?,
                parse("github".into(), SIGSTORE_GITHUB_TRUSTED_ROOT)?,
            ]),
            Self::Custom(json) => {
                if let Ok(root) = TrustedRoot::from_json(json) {
                    return Ok(vec![NamedRoot {
                        name: "custom".into(),
                        root,
                    }]);
                }
                let lines: Vec<&str> = json.lines().filter(|l| !l.trim().is_empty()).collect();
                if lines.len() < 2 {
                    return parse("custom".into(), json).map(|root| vec![root]);
                }
                lines
                    .iter()
                    .enumerate()
                    .map(|(i, line)| {
                        let name = match i {
                            0 => "custom".to_string(),
                            _ => format!("custom#{}", i + 1),
                        };
                        parse(name, line)
                    })
                    .collect()
            }
        }
    }
}

/// The issuer name of a DER certificate: DER (to compare) and RFC 4514 (to show).
pub(crate) fn issuer_name(cert_der: &[u8]) -> Result<(Vec<u8>, String), String> {
    let cert = x509_cert::Certificate::from_der(cert_der)
        .map_err(|e| format!("the signing certificate is not X.509 DER: {e}"))?;
    let issuer = &cert.tbs_certificate.issuer;
    let der = issuer
        .to_der()
        .map_err(|e| format!("the signing certificate's issuer: {e}"))?;
    Ok((der, issuer.to_string()))
}

/// The first of `roots` with a certificate authority named `issuer`.
pub(crate) fn root_for_issuer<'r>(roots: &'r [NamedRoot], issuer: &[u8]) -> Option<&'r NamedRoot> {
    roots.iter().find(|root| root.names_issuer(issuer))
}
