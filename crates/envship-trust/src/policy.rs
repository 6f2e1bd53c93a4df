//! `ROOT/.envship/trust.toml`: which signers a deployment root trusts.
//!
//! ```toml
//! require = "any"                     # or "all"
//! [[minisign]]
//! public-key-file = "keys/facility.pub"   # relative to the file's directory; or public-key = "RW…"
//! [[github]]
//! repo = "slaclab/lcls-env"
//! workflow = ".github/workflows/publish.yml"   # optional
//! ref = "refs/tags/*"                          # optional
//! [stage]
//! after = "/sdf/group/lcls/envs-dev"           # a deployment root
//! tested = true
//! ```
//!
//! `require = "any"`: a minisign signature by one of the keys, or build provenance from one of
//! the identities, is enough. `"all"`: every kind the file lists must hold (a signature by one
//! of the keys *and* provenance from one of the identities). A policy on the command line
//! (`--trust-key`, `--trust-github`) is checked as well as the root's, never instead of it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{
    minisig::{MinisignError, TrustedKey},
    sigstore::GithubIdentity,
};

/// Where a deployment root keeps its policy.
pub fn policy_path(root: &Path) -> PathBuf {
    root.join(".envship").join("trust.toml")
}

/// Errors of reading a policy.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum PolicyError {
    /// The policy file exists but cannot be read.
    #[error("reading {}", path.display())]
    #[diagnostic(code(envship::trust::policy_io))]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The policy is not valid TOML or has an unknown or wrong field.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(" line {l}")).unwrap_or_default())]
    #[diagnostic(
        code(envship::trust::policy_syntax),
        help("trust.toml takes `require`, [[minisign]] (public-key-file or public-key), [[github]] (repo, workflow, ref) and [stage] (after, tested)")
    )]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line (1-based), when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },

    /// A `[[minisign]]` key cannot be read.
    #[error("{}: [[minisign]] entry {index}", path.display())]
    #[diagnostic(code(envship::trust::policy_key))]
    Key {
        /// The policy file.
        path: PathBuf,
        /// Which entry (1-based).
        index: usize,
        /// The cause.
        #[source]
        source: MinisignError,
    },

    /// A `[[github]]` identity is not `OWNER/REPO`, or a command-line one is malformed.
    #[error("{origin}: `{value}` is not a GitHub identity: {reason}")]
    #[diagnostic(
        code(envship::trust::policy_github),
        help("write OWNER/REPO, with :WORKFLOW_PATH on the command line (e.g. slaclab/lcls-env:.github/workflows/publish.yml)")
    )]
    Github {
        /// The file, or the flag.
        origin: String,
        /// The value.
        value: String,
        /// What is wrong.
        reason: String,
    },

    /// The policy trusts nobody and asks for nothing.
    #[error("{}: names no [[minisign]] key, no [[github]] identity and no [stage]", path.display())]
    #[diagnostic(
        code(envship::trust::policy_empty),
        help("a policy that trusts nobody would refuse every archive; list a key or an identity")
    )]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// One or all kinds of evidence.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Require {
    /// Any one trusted signature or provenance.
    #[default]
    Any,
    /// Every kind listed.
    All,
}

/// The staged-rollout rule: an archive must have gone through another root first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// The deployment root it must be deployed in first.
    pub after: PathBuf,
    /// Whether that deploy must have run `--test` and passed.
    #[serde(default)]
    pub tested: bool,
}

/// A trust policy: a root's file, command-line flags, or both merged.
#[derive(Clone, Debug, Default)]
pub struct TrustPolicy {
    /// Where it came from (files and flags), for messages and records.
    pub sources: Vec<String>,
    /// One or all.
    pub require: Require,
    /// Trusted minisign keys.
    pub minisign: Vec<TrustedKey>,
    /// Trusted GitHub identities.
    pub github: Vec<GithubIdentity>,
    /// The staged rollout, if any.
    pub stage: Option<Stage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawPolicy {
    #[serde(default)]
    require: Require,
    #[serde(default)]
    minisign: Vec<RawKey>,
    #[serde(default)]
    github: Vec<RawGithub>,
    stage: Option<Stage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawKey {
    public_key_file: Option<PathBuf>,
    public_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGithub {
    repo: String,
    workflow: Option<String>,
    #[serde(rename = "ref")]
    git_ref: Option<String>,
}

/// `OWNER/REPO` with both parts non-empty and no more slashes.
fn check_repo(repo: &str) -> Result<(), String> {
    match repo.split_once('/') {
        Some((o, r)) if !o.is_empty() && !r.is_empty() && !r.contains('/') => Ok(()),
        _ => Err("expected OWNER/REPO".into()),
    }
}

impl TrustPolicy {
    /// The policy of deployment root `root`, if it has one.
    pub fn for_root(root: &Path) -> Result<Option<Self>, PolicyError> {
        let path = policy_path(root);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(&text, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(PolicyError::Io { path, source }),
        }
    }

    /// Parse `text`, the contents of the policy file at `path` (key files are relative to its
    /// directory).
    pub fn parse(text: &str, path: &Path) -> Result<Self, PolicyError> {
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError::Syntax {
            path: path.to_path_buf(),
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            message: e.message().to_string(),
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut minisign = Vec::new();
        for (i, k) in raw.minisign.iter().enumerate() {
            let key = match (&k.public_key_file, &k.public_key) {
                (Some(f), None) => TrustedKey::from_file(&dir.join(f)),
                (None, Some(s)) => TrustedKey::parse(s, &format!("{} public-key", path.display())),
                _ => {
                    return Err(PolicyError::Syntax {
                        path: path.to_path_buf(),
                        line: None,
                        message: format!(
                        "[[minisign]] entry {} needs exactly one of public-key-file and public-key",
                        i + 1
                    ),
                    })
                }
            }
            .map_err(|source| PolicyError::Key {
                path: path.to_path_buf(),
                index: i + 1,
                source,
            })?;
            minisign.push(key);
        }
        let mut github = Vec::new();
        for g in raw.github {
            check_repo(&g.repo).map_err(|reason| PolicyError::Github {
                origin: path.display().to_string(),
                value: g.repo.clone(),
                reason,
            })?;
            github.push(GithubIdentity {
                repo: g.repo,
                workflow: g.workflow,
                git_ref: g.git_ref,
            });
        }
        if minisign.is_empty() && github.is_empty() && raw.stage.is_none() {
            return Err(PolicyError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(Self {
            sources: vec![path.display().to_string()],
            require: raw.require,
            minisign,
            github,
            stage: raw.stage,
        })
    }

    /// A policy from the command line: `--trust-key FILE|RW…` and
    /// `--trust-github OWNER/REPO[:WORKFLOW]`; `None` when neither is given.
    pub fn from_flags(keys: &[String], github: &[String]) -> Result<Option<Self>, PolicyError> {
        if keys.is_empty() && github.is_empty() {
            return Ok(None);
        }
        let mut policy = Self {
            sources: vec!["the command line".into()],
            ..Self::default()
        };
        for (i, k) in keys.iter().enumerate() {
            let path = Path::new(k);
            let key = if path.is_file() {
                TrustedKey::from_file(path)
            } else {
                TrustedKey::parse(k, "--trust-key")
            };
            policy.minisign.push(key.map_err(|source| PolicyError::Key {
                path: PathBuf::from("--trust-key"),
                index: i + 1,
                source,
            })?);
        }
        for g in github {
            let (repo, workflow) = match g.split_once(':') {
                Some((r, w)) => (r, Some(w.to_string()).filter(|w| !w.is_empty())),
                None => (g.as_str(), None),
            };
            check_repo(repo).map_err(|reason| PolicyError::Github {
                origin: "--trust-github".into(),
                value: g.clone(),
                reason,
            })?;
            policy.github.push(GithubIdentity {
                repo: repo.to_string(),
                workflow,
                git_ref: None,
            });
        }
        Ok(Some(policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_policy_parses_with_keys_relative_to_it() {
        let d = tempfile::tempdir().expect("tempdir");
        let dir = d.path().join(".envship");
        std::fs::create_dir_all(dir.join("keys")).expect("mkdir");
        let pair = crate::minisig::keygen(&dir.join("keys/facility"), false).expect("keygen");
        let text = format!(
            "require = \"all\"\n[[minisign]]\npublic-key-file = \"keys/facility.pub\"\n\
             [[minisign]]\npublic-key = \"{}\"\n[[github]]\nrepo = \"slaclab/lcls-env\"\n\
             workflow = \".github/workflows/publish.yml\"\nref = \"refs/tags/*\"\n\
             [stage]\nafter = \"/sdf/group/lcls/envs-dev\"\ntested = true\n",
            pair.public_key
        );
        std::fs::write(dir.join("trust.toml"), &text).expect("write");
        let p = TrustPolicy::for_root(d.path())
            .expect("parses")
            .expect("exists");
        assert_eq!(p.require, Require::All);
        assert_eq!(p.minisign.len(), 2);
        assert!(p.minisign.iter().all(|k| k.id == pair.key_id));
        assert_eq!(p.github[0].git_ref.as_deref(), Some("refs/tags/*"));
        assert!(p.stage.as_ref().is_some_and(|s| s.tested));
    }

    #[test]
    fn mistakes_name_the_file_and_line() {
        let path = Path::new("/r/.envship/trust.toml");
        let err = TrustPolicy::parse(
            "require = \"any\"\n[[github]]\nrepo = \"x\"\nbranch = 1\n",
            path,
        )
        .expect_err("unknown field");
        let msg = err.to_string();
        assert!(
            msg.contains("trust.toml line 4") || msg.contains("trust.toml line 2"),
            "{msg}"
        );
        let err = TrustPolicy::parse("[[github]]\nrepo = \"nope\"\n", path).expect_err("repo");
        assert!(err.to_string().contains("`nope`"), "{err}");
        let err = TrustPolicy::parse("require = \"any\"\n", path).expect_err("empty");
        assert!(matches!(err, PolicyError::Empty { .. }), "{err}");
        let err = TrustPolicy::parse("require = \"most\"\n", path).expect_err("bad require");
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(TrustPolicy::for_root(Path::new("/nonexistent-root"))
            .expect("none")
            .is_none());
    }

    #[test]
    fn flags_make_a_policy() {
        let p = TrustPolicy::from_flags(&[], &["slaclab/lcls-env:.github/workflows/p.yml".into()])
            .expect("ok")
            .expect("some");
        assert_eq!(
            p.github[0].workflow.as_deref(),
            Some(".github/workflows/p.yml")
        );
        assert!(TrustPolicy::from_flags(&[], &[]).expect("ok").is_none());
        assert!(TrustPolicy::from_flags(&[], &["justrepo".into()]).is_err());
    }
}
