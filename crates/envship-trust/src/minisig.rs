//! minisign: keys a facility holds, signatures beside the files they sign.
//!
//! `envship keygen` writes an unencrypted pair (`BASE.key`, mode 0600, meant for a CI secret,
//! and `BASE.pub`); publish signs each file into `FILE.minisig` with the prehashed (BLAKE2b)
//! signature minisign 0.8+ makes by default, with a trusted comment naming the file, so that
//! `minisign -Vm FILE -p BASE.pub` accepts it. A secret key never reaches a message: its
//! `Debug` is redacted.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use minisign::{KeyPair, PublicKey, PublicKeyBox, SecretKey, SecretKeyBox, SignatureBox};
use serde::Serialize;

/// The signature file of `file`: `FILE.minisig`.
pub fn signature_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".minisig");
    PathBuf::from(name)
}

/// Errors of minisign keys and signatures.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum MinisignError {
    /// Reading or writing a key or signature file failed.
    #[error("{action} {}", path.display())]
    #[diagnostic(code(envship::minisign::io))]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// keygen would replace an existing key.
    #[error("{} already exists", path.display())]
    #[diagnostic(
        code(envship::minisign::exists),
        help(
            "a key pair is never overwritten by accident: choose another --output, or pass --force"
        )
    )]
    Exists {
        /// The existing file.
        path: PathBuf,
    },

    /// A key is not a minisign key.
    #[error("{source_name} is not a minisign {kind} key: {reason}")]
    #[diagnostic(
        code(envship::minisign::bad_key),
        help("give the file `envship keygen` (or `minisign -G -W`) wrote, or its contents; a public key is the `RW…` line of BASE.pub")
    )]
    BadKey {
        /// Where the key came from (a path, or the variable's name).
        source_name: String,
        /// `public` or `secret`.
        kind: &'static str,
        /// What minisign said.
        reason: String,
    },

    /// A password-protected secret key: CI has nobody to type the password.
    #[error("{source_name} is password-protected")]
    #[diagnostic(
        code(envship::minisign::encrypted),
        help("make a key for CI with `envship keygen` (unencrypted, kept as a CI secret), or `minisign -G -W`")
    )]
    EncryptedKey {
        /// Where the key came from.
        source_name: String,
    },

    /// The file has no signature beside it.
    #[error("{} has no minisign signature: {} does not exist", file.display(), signature.display())]
    #[diagnostic(
        code(envship::minisign::unsigned),
        help("publish with --sign-key (or ENVSHIP_SIGNING_KEY) to sign it, and fetch FILE.minisig with the file")
    )]
    Unsigned {
        /// The file.
        file: PathBuf,
        /// Where its signature was looked for.
        signature: PathBuf,
    },

    /// The signature file cannot be read as one.
    #[error("{} is not a minisign signature: {reason}", path.display())]
    #[diagnostic(code(envship::minisign::bad_signature))]
    BadSignature {
        /// The signature file.
        path: PathBuf,
        /// What minisign said.
        reason: String,
    },

    /// Signed, but by a key the policy does not trust.
    #[error("{} is signed by key {signed_by}, which is not trusted (trusted: {})", file.display(), trusted.join(", "))]
    #[diagnostic(
        code(envship::minisign::wrong_key),
        help("the file was signed by another key: check who published it; to trust that key add it to trust.toml's [[minisign]]")
    )]
    WrongKey {
        /// The file.
        file: PathBuf,
        /// The signature's key id.
        signed_by: String,
        /// The trusted key ids.
        trusted: Vec<String>,
    },

    /// The signature's key is trusted, but the bytes are not what it signed.
    #[error("{} does not match its signature by key {key_id}: {reason}", file.display())]
    #[diagnostic(
        code(envship::minisign::mismatch),
        help("the file (or the signature's trusted comment) was changed after signing: do not deploy it; download it again from the release")
    )]
    Mismatch {
        /// The file.
        file: PathBuf,
        /// The key id.
        key_id: String,
        /// What minisign said.
        reason: String,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> MinisignError {
    let path = path.to_path_buf();
    move |source| MinisignError::Io {
        action,
        path,
        source,
    }
}

/// minisign's key id: the key number as the 16 hex digits `minisign` prints.
fn key_id(keynum: &[u8]) -> String {
    let mut n = [0u8; 8];
    for (d, s) in n.iter_mut().zip(keynum) {
        *d = *s;
    }
    format!("{:016X}", u64::from_le_bytes(n))
}

/// A key's text with the comment line minisign's parser expects, for a bare `RW…` line or the
/// key line of a secret key given without its file's first line.
fn boxed(text: &str) -> String {
    let text = text.trim();
    if text.starts_with("untrusted comment:") {
        format!("{text}\n")
    } else {
        format!("untrusted comment: envship key\n{text}\n")
    }
}

/// A public key a policy trusts.
#[derive(Clone)]
pub struct TrustedKey {
    key: PublicKey,
    /// The key id (16 hex digits).
    pub id: String,
    /// Where it was read from (a path, or `trust.toml` for an inline key).
    pub source: String,
}

impl std::fmt::Debug for TrustedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedKey")
            .field("id", &self.id)
            .field("source", &self.source)
            .finish()
    }
}

impl TrustedKey {
    /// A public key from its text: a `.pub` file's contents, or the bare `RW…` line.
    pub fn parse(text: &str, source: &str) -> Result<Self, MinisignError> {
        let bad = |e: minisign::PError| MinisignError::BadKey {
            source_name: source.to_string(),
            kind: "public",
            reason: e.to_string(),
        };
        let key = PublicKeyBox::from_string(&boxed(text))
            .and_then(PublicKeyBox::into_public_key)
            .map_err(bad)?;
        Ok(Self {
            id: key_id(key.keynum()),
            key,
            source: source.to_string(),
        })
    }

    /// A public key from a `.pub` file.
    pub fn from_file(path: &Path) -> Result<Self, MinisignError> {
        let text = std::fs::read_to_string(path).map_err(io("reading", path))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The `RW…` line.
    pub fn to_base64(&self) -> String {
        self.key.to_base64()
    }
}

/// A secret key to sign with. Its `Debug` never shows the key.
pub struct SigningKey {
    secret: SecretKey,
    public: PublicKey,
    /// The key id (16 hex digits).
    pub id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// A secret key from its text (a `.key` file's contents); `source` names it in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, MinisignError> {
        let bad = |e: minisign::PError| MinisignError::BadKey {
            source_name: source.to_string(),
            kind: "secret",
            reason: e.to_string(),
        };
        let sk_box = SecretKeyBox::from_string(&boxed(text)).map_err(bad)?;
        let secret = sk_box.into_unencrypted_secret_key().map_err(|e| {
            if matches!(e.kind(), minisign::ErrorKind::EncryptedKey)
                || e.to_string().to_ascii_lowercase().contains("encrypt")
            {
                MinisignError::EncryptedKey {
                    source_name: source.to_string(),
                }
            } else {
                bad(e)
            }
        })?;
        if secret.is_encrypted() {
            return Err(MinisignError::EncryptedKey {
                source_name: source.to_string(),
            });
        }
        let public = PublicKey::from_secret_key(&secret).map_err(bad)?;
        Ok(Self {
            id: key_id(public.keynum()),
            secret,
            public,
        })
    }

    /// A secret key from a `.key` file.
    pub fn from_file(path: &Path) -> Result<Self, MinisignError> {
        let text = std::fs::read_to_string(path).map_err(io("reading", path))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Sign `file` into `FILE.minisig` (temp file + rename); returns the signature's path.
    pub fn sign_file(&self, file: &Path) -> Result<PathBuf, MinisignError> {
        let data = std::fs::File::open(file).map_err(io("reading", file))?;
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // minisign's own trusted comment, so that `minisign -V` shows the same kind of line.
        let trusted = format!("timestamp:{now}\tfile:{name}\thashed");
        let untrusted = format!("signature from envship secret key {}", self.id);
        let sig = minisign::sign(
            Some(&self.public),
            &self.secret,
            std::io::BufReader::with_capacity(1 << 20, data),
            Some(&trusted),
            Some(&untrusted),
        )
        .map_err(|e| MinisignError::Io {
            action: "signing",
            path: file.to_path_buf(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let out = signature_path(file);
        write_atomically(&out, sig.into_string().as_bytes(), 0o644)?;
        Ok(out)
    }
}

/// What a verified minisign signature says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MinisignVerified {
    /// The key that signed (16 hex digits).
    pub key_id: String,
    /// The signature's trusted comment.
    pub trusted_comment: String,
}

/// Check `FILE.minisig` against `file` with one of `keys`.
pub fn verify_file(file: &Path, keys: &[TrustedKey]) -> Result<MinisignVerified, MinisignError> {
    let sig_path = signature_path(file);
    let text = match std::fs::read_to_string(&sig_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(MinisignError::Unsigned {
                file: file.to_path_buf(),
                signature: sig_path,
            })
        }
        Err(e) => return Err(io("reading", &sig_path)(e)),
    };
    verify_signature(file, &sig_path, &text, keys, || {
        std::fs::File::open(file).map_err(io("reading", file))
    })
}

/// Check the signature `text` (read from `sig_path`, which names it in errors) against the bytes
/// of `file` that `open` gives, with one of `keys`. [`verify_file`] without the file system, so
/// that a fuzz target can run every check in memory; `open` runs only once the signature parses
/// and names a trusted key, as [`verify_file`] opens a large archive only then.
#[doc(hidden)]
pub fn verify_signature<R: std::io::Read + std::io::Seek>(
    file: &Path,
    sig_path: &Path,
    text: &str,
    keys: &[TrustedKey],
    open: impl FnOnce() -> Result<R, MinisignError>,
) -> Result<MinisignVerified, MinisignError> {
    let bad = |reason: String| MinisignError::BadSignature {
        path: sig_path.to_path_buf(),
        reason,
    };
    let sig = SignatureBox::from_string(text).map_err(|e| bad(e.to_string()))?;
    if !global_signature_is_64_bytes(text) {
        return Err(bad(
            "its trusted comment's signature (the 4th line) is not 64 bytes of base64".into(),
        ));
    }
    let signed_by = key_id(sig.keynum());
    let Some(key) = keys.iter().find(|k| k.id == signed_by) else {
        return Err(MinisignError::WrongKey {
            file: file.to_path_buf(),
            signed_by,
            trusted: keys.iter().map(|k| k.id.clone()).collect(),
        });
    };
    let data = open()?;
    minisign::verify(
        &key.key,
        &sig,
        std::io::BufReader::with_capacity(1 << 20, data),
        true,
        false,
        false,
    )
    .map_err(|e| MinisignError::Mismatch {
        file: file.to_path_buf(),
        key_id: key.id.clone(),
        reason: e.to_string(),
    })?;
    Ok(MinisignVerified {
        key_id: key.id.clone(),
        trusted_comment: sig.trusted_comment().unwrap_or_default(),
    })
}

/// Whether the 4th line of a signature file (the trusted comment's signature, as minisign reads
/// it: trimmed, standard base64 with padding) is 64 bytes. minisign 0.10 parses it of any length
/// and then slices it as 64 bytes: a shorter one made `verify` panic once the file's own
/// signature held (found by the minisign fuzz target).
fn global_signature_is_64_bytes(text: &str) -> bool {
    let Some(line) = text.lines().nth(3).map(str::trim) else {
        return false;
    };
    // 64 bytes are 86 base64 digits and `==`; such a line decodes to 64 bytes or fails.
    line.len() == 88
        && line.ends_with("==")
        && line.as_bytes()[..86]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The two files `envship keygen` wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyPairFiles {
    /// `BASE.key`, mode 0600.
    pub secret: PathBuf,
    /// `BASE.pub`.
    pub public: PathBuf,
    /// The key id.
    pub key_id: String,
    /// The public key's `RW…` line, for trust.toml's `public-key =`.
    pub public_key: String,
}

/// Write a new unencrypted key pair to `BASE.key` (0600) and `BASE.pub`, refusing to replace
/// either unless `force`.
pub fn keygen(base: &Path, force: bool) -> Result<KeyPairFiles, MinisignError> {
    let with = |ext: &str| {
        let mut s = base.as_os_str().to_owned();
        s.push(ext);
        PathBuf::from(s)
    };
    let (secret_path, public_path) = (with(".key"), with(".pub"));
    if !force {
        for p in [&secret_path, &public_path] {
            if std::fs::symlink_metadata(p).is_ok() {
                return Err(MinisignError::Exists { path: p.clone() });
            }
        }
    }
    let generated = |e: minisign::PError| MinisignError::Io {
        action: "generating a key for",
        path: secret_path.clone(),
        source: std::io::Error::other(e.to_string()),
    };
    let KeyPair { pk, sk } = KeyPair::generate_unencrypted_keypair().map_err(generated)?;
    let id = key_id(pk.keynum());
    let sk_text = sk
        .to_box(Some(&format!("envship secret key {id}")))
        .map_err(generated)?
        .into_string();
    let pk_text = pk.to_box().map_err(generated)?.into_string();
    // The secret first: a public key without its secret is harmless, the reverse is a lost key.
    write_atomically(&secret_path, sk_text.as_bytes(), 0o600)?;
    write_atomically(&public_path, pk_text.as_bytes(), 0o644)?;
    Ok(KeyPairFiles {
        secret: secret_path,
        public: public_path,
        key_id: id,
        public_key: pk.to_base64(),
    })
}

/// Write `data` to `path` through a temp file in its directory created with `mode`, so the
/// bytes are never readable with wider permissions, then rename it into place.
fn write_atomically(path: &Path, data: &[u8], mode: u32) -> Result<(), MinisignError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io("creating", &tmp))?;
    let written = f
        .write_all(data)
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("writing", path)(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_its_key_only() {
        let d = tempfile::tempdir().expect("tempdir");
        let pair = keygen(&d.path().join("facility"), false).expect("keygen");
        let other = keygen(&d.path().join("other"), false).expect("keygen");
        let file = d.path().join("a.tar.gz");
        std::fs::write(&file, b"archive bytes").expect("write");
        let key = SigningKey::from_file(&pair.secret).expect("secret key");
        assert_eq!(key.id, pair.key_id);
        assert!(!format!("{key:?}").contains(&std::fs::read_to_string(&pair.secret).expect("r")));
        key.sign_file(&file).expect("sign");
        let trusted = TrustedKey::from_file(&pair.public).expect("public key");
        let got = verify_file(&file, std::slice::from_ref(&trusted)).expect("verifies");
        assert_eq!(got.key_id, pair.key_id);
        assert!(got.trusted_comment.contains("file:a.tar.gz"), "{got:?}");
        let inline = TrustedKey::parse(&pair.public_key, "trust.toml").expect("inline key");
        assert_eq!(inline.id, pair.key_id);

        let wrong = TrustedKey::from_file(&other.public).expect("other key");
        let err = verify_file(&file, &[wrong]).expect_err("other key");
        assert!(matches!(err, MinisignError::WrongKey { .. }), "{err}");

        std::fs::write(&file, b"archive bytez").expect("write");
        let err = verify_file(&file, &[trusted]).expect_err("changed");
        assert!(matches!(err, MinisignError::Mismatch { .. }), "{err}");
    }

    #[test]
    fn keygen_never_replaces_a_key_unless_forced() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().expect("tempdir");
        let base = d.path().join("k");
        let first = keygen(&base, false).expect("keygen");
        let mode = std::fs::metadata(&first.secret)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let err = keygen(&base, false).expect_err("exists");
        assert!(matches!(err, MinisignError::Exists { .. }), "{err}");
        let second = keygen(&base, true).expect("forced");
        assert_ne!(first.key_id, second.key_id);
    }

    #[test]
    fn a_short_trusted_comment_signature_is_an_error_not_a_panic() {
        let d = tempfile::tempdir().expect("tempdir");
        let pair = keygen(&d.path().join("facility"), false).expect("keygen");
        let file = d.path().join("a.tar.gz");
        std::fs::write(&file, b"archive bytes").expect("write");
        let sig_path = SigningKey::from_file(&pair.secret)
            .expect("secret key")
            .sign_file(&file)
            .expect("sign");
        let trusted = TrustedKey::from_file(&pair.public).expect("public key");
        let text = std::fs::read_to_string(&sig_path).expect("read");
        // The file's signature stays valid; only the trusted comment's is cut to 5 bytes, which
        // minisign 0.10 sliced as 64 and panicked on, or given trailing characters.
        for global in [
            "AAAAAAA=",
            &format!("{}AAAA", text.lines().nth(3).expect("4 lines")),
        ] {
            let mut lines: Vec<&str> = text.lines().collect();
            lines[3] = global;
            std::fs::write(&sig_path, lines.join("\n") + "\n").expect("write");
            let err = verify_file(&file, std::slice::from_ref(&trusted)).expect_err("cut");
            assert!(matches!(err, MinisignError::BadSignature { .. }), "{err}");
        }
        std::fs::write(&sig_path, &text).expect("write");
        verify_file(&file, &[trusted]).expect("the untouched signature verifies");
    }

    #[test]
    fn garbage_keys_are_named_errors() {
        let err = TrustedKey::parse("RWnotakey", "keys/x.pub").expect_err("bad");
        assert!(err.to_string().contains("keys/x.pub"), "{err}");
        let err = SigningKey::parse("nonsense", "ENVSHIP_SIGNING_KEY").expect_err("bad");
        assert!(err.to_string().contains("ENVSHIP_SIGNING_KEY"), "{err}");
    }
}
