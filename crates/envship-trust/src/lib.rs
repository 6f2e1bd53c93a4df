//! Authenticity: who made an archive, checked before deploy writes anything.
//!
//! Integrity (an archive's `.sha256` and manifest) comes from the same place as the archive, so
//! whoever can replace one can replace all three. This crate checks what they cannot forge:
//! - [`minisign`](mod@minisig): a facility's own key signs at publish (`.minisig` beside each
//!   file), `envship keygen` makes the pair;
//! - [`sigstore`]: GitHub's build provenance (`ARCHIVE.sigstore.json`, a Sigstore bundle from
//!   `actions/attest-build-provenance`) verified offline against a trusted root: the
//!   public-good instance (public repositories) and GitHub's own (private ones) are built in;
//! - [`policy`]: a deployment root's `.envship/trust.toml`, which keys and GitHub identities are
//!   trusted and whether one or all must hold, and [`check`] which applies it to a file.
//!
//! **Must not know**: archives' contents, deploying (the staged-rollout rule reads another
//! root's records, which envship-deploy owns: this crate only parses the rule), GitHub's REST API
//! (envship-publish fetches bundles), or the CLI.

pub mod check;
pub mod error;
pub mod minisig;
pub mod policy;
pub mod sigstore;

pub use error::TrustError;
