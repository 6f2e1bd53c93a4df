//! The artifact's digest, in the algorithm its in-toto statement uses: a file is hashed
//! streaming (an archive can be gigabytes), a digest given instead is only parsed.

use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256, Sha512};
use sigstore_verify::types::{ArtifactDigest, HashAlgorithm, Statement};

use super::SigstoreError;

/// The file a bundle is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Artifact<'a> {
    /// The file itself: hashed streaming, in the algorithm its statement names (sha256 if it
    /// names it, sha512 otherwise).
    File(&'a Path),
    /// Its SHA-256, as hex (e.g. from an archive's `.sha256`), when the file is not at hand.
    Sha256(&'a str),
    /// Its SHA-512, as hex.
    Sha512(&'a str),
}

/// A digest of the artifact, with its algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileDigest {
    /// sha256 (`true`) or sha512.
    pub sha256: bool,
    /// The digest's bytes.
    pub bytes: Vec<u8>,
}

impl FileDigest {
    /// As sigstore-verify takes it.
    pub(crate) fn to_artifact_digest(&self) -> Result<ArtifactDigest, sigstore_verify::Error> {
        let algorithm = match self.sha256 {
            true => HashAlgorithm::Sha2256,
            false => HashAlgorithm::Sha2512,
        };
        Ok(ArtifactDigest::new(algorithm, self.bytes.clone())?)
    }

    /// `ALGORITHM:HEX`.
    pub(crate) fn display(&self) -> String {
        let algorithm = if self.sha256 { "sha256" } else { "sha512" };
        format!("{algorithm}:{}", hex::encode(&self.bytes))
    }
}

/// The artifact's digest: hashed or parsed.
pub(crate) fn digest(
    artifact: Artifact<'_>,
    statement: &Statement,
) -> Result<FileDigest, SigstoreError> {
    match artifact {
        Artifact::File(path) => {
            let sha256 = statement.subject.iter().any(|s| s.digest.sha256.is_some())
                || !statement.subject.iter().any(|s| s.digest.sha512.is_some());
            let bytes =
                hash_file(path, sha256).map_err(|source| SigstoreError::ArtifactUnreadable {
                    path: path.to_path_buf(),
                    source,
                })?;
            Ok(FileDigest { sha256, bytes })
        }
        Artifact::Sha256(hex) => parse_hex("sha256", hex, 32).map(|bytes| FileDigest {
            sha256: true,
            bytes,
        }),
        Artifact::Sha512(hex) => parse_hex("sha512", hex, 64).map(|bytes| FileDigest {
            sha256: false,
            bytes,
        }),
    }
}

/// The statement's subjects, `NAME ALGORITHM:HEX`, comma-separated.
pub(crate) fn subjects(statement: &Statement) -> String {
    let mut out = Vec::new();
    for subject in &statement.subject {
        let name = if subject.name.is_empty() {
            "(unnamed)"
        } else {
            &subject.name
        };
        if let Some(d) = &subject.digest.sha256 {
            out.push(format!("{name} sha256:{}", d.to_hex()));
        }
        if let Some(d) = &subject.digest.sha512 {
            out.push(format!("{name} sha512:{}", d.to_hex()));
        }
    }
    if out.is_empty() {
        return "no sha256 or sha512 subject".into();
    }
    out.join(", ")
}

fn parse_hex(algorithm: &'static str, text: &str, len: usize) -> Result<Vec<u8>, SigstoreError> {
    let bad = || SigstoreError::BadDigest {
        algorithm,
        digest: text.to_string(),
        len: len * 2,
    };
    let bytes = hex::decode(text.trim()).map_err(|_| bad())?;
    if bytes.len() != len {
        return Err(bad());
    }
    Ok(bytes)
}

fn hash_file(path: &Path, sha256: bool) -> std::io::Result<Vec<u8>> {
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut h256 = Sha256::new();
    let mut h512 = Sha512::new();
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if sha256 {
            h256.update(&buf[..n]);
        } else {
            h512.update(&buf[..n]);
        }
    }
    Ok(match sha256 {
        true => h256.finalize().to_vec(),
        false => h512.finalize().to_vec(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn digests_parse_only_at_their_length() {
        let zero = "00".repeat(32);
        assert_eq!(parse_hex("sha256", &zero, 32).unwrap(), vec![0; 32]);
        assert!(parse_hex("sha256", &"00".repeat(31), 32).is_err());
        assert!(parse_hex("sha256", &format!("{zero}0"), 32).is_err());
        assert!(parse_hex("sha512", "zz", 64).is_err());
    }

    #[test]
    fn files_hash_streaming_in_either_algorithm() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(
            hex::encode(hash_file(&path, true).unwrap()),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(
            hash_file(&path, false).unwrap(),
            Sha512::digest(b"hello").to_vec()
        );
    }
}
