//! Who a GitHub Actions signing certificate names, and whether a policy allows it.
//!
//! Fulcio (public-good and GitHub's) issues a workflow a certificate whose SAN URI is
//! `https://github.com/OWNER/REPO/PATH@REF` (the workflow file that signed, at its ref) and whose
//! extensions under `1.3.6.1.4.1.57264.1` say the source repository (`.12`), its commit (`.13`)
//! and ref (`.14`), the workflow that ran there (`.18`, the same URI form: it differs from the SAN
//! when that workflow called a reusable one which signed), the OIDC issuer (`.8`); certificates older than that arc carry `.1.3`
//! (commit), `.1.5` (`OWNER/REPO`), `.1.6` (ref) instead. sigstore-crypto parses them all.

use std::fmt;

use sigstore_verify::crypto::{CertificateInfo, SubjectAltName};

/// The OIDC issuer of GitHub Actions' workflow tokens: the only one a [`GithubIdentity`] allows.
pub const GITHUB_ACTIONS_ISSUER: &str = "https://token.actions.githubusercontent.com";

const GITHUB: &str = "https://github.com/";

/// A GitHub Actions identity a trust policy allows to have built a file.
///
/// All given parts must hold, and the certificate's issuer must be [`GITHUB_ACTIONS_ISSUER`].
/// Repository and owner names compare case-insensitively (as GitHub's do), paths and refs exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubIdentity {
    /// `OWNER/REPO`: the repository the file was built from.
    pub repo: String,
    /// A workflow file: `.github/workflows/FILE` in [`Self::repo`], or
    /// `OWNER/REPO/.github/workflows/FILE` in another repository. It matches the workflow that
    /// ran in the source repository or the one that signed (a reusable workflow the first
    /// called, which it chose). `None`: any workflow.
    pub workflow: Option<String>,
    /// A glob the ref the file was built from must match, e.g. `refs/tags/*`; `*` (the only
    /// special character) matches any run of characters, `/` included. `None`: any ref.
    pub git_ref: Option<String>,
}

impl fmt::Display for GithubIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "repo {}", self.repo)?;
        if let Some(workflow) = &self.workflow {
            write!(f, ", workflow {workflow}")?;
        }
        if let Some(git_ref) = &self.git_ref {
            write!(f, ", ref {git_ref}")?;
        }
        Ok(())
    }
}

/// A SAN URI `https://github.com/OWNER/REPO/PATH@REF`, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WorkflowUri {
    /// `OWNER/REPO` of the workflow file.
    pub repo: String,
    /// The file's path in it, e.g. `.github/workflows/publish.yml`.
    pub path: String,
    /// The ref it ran at.
    pub git_ref: String,
}

/// Takes apart a GitHub workflow SAN URI; `None` if it is not one.
pub(crate) fn parse_workflow_uri(uri: &str) -> Option<WorkflowUri> {
    let rest = uri.strip_prefix(GITHUB)?;
    let (location, git_ref) = rest.split_once('@')?;
    let mut parts = location.splitn(3, '/');
    let (owner, repo, path) = (parts.next()?, parts.next()?, parts.next()?);
    if owner.is_empty() || repo.is_empty() || path.is_empty() || git_ref.is_empty() {
        return None;
    }
    Some(WorkflowUri {
        repo: format!("{owner}/{repo}"),
        path: path.to_string(),
        git_ref: git_ref.to_string(),
    })
}

/// Whether `text` matches `glob`, in which `*` matches any run of characters (`/` included) and
/// every other character itself.
pub(crate) fn glob_matches(glob: &str, text: &str) -> bool {
    let mut pieces = glob.split('*');
    let Some(first) = pieces.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        return rest.is_empty(); // no `*`: exact
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// What a verified signing certificate says about who signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertIdentity {
    /// The SAN (URI or email), as written.
    pub san: Option<String>,
    /// The SAN taken apart, if it is a GitHub workflow URI: the workflow that signed.
    pub signer: Option<WorkflowUri>,
    /// The workflow that ran in the source repository (`.18`), taken apart.
    pub build_config: Option<WorkflowUri>,
    /// The OIDC issuer claim.
    pub issuer: Option<String>,
    /// `OWNER/REPO` the file was built from.
    pub repo: Option<String>,
    /// The ref it was built from.
    pub git_ref: Option<String>,
    /// The commit it was built from.
    pub commit: Option<String>,
}

impl CertIdentity {
    /// Reads the SAN, the issuer and the source claims (provider-neutral ones first, then the
    /// deprecated GitHub ones, then what the SAN says).
    pub(crate) fn from_certificate(cert: &CertificateInfo) -> Self {
        let san = cert.identity.as_ref().map(|san| match san {
            SubjectAltName::Uri(uri) => uri.clone(),
            other => other.as_str().to_string(),
        });
        let signer = match &cert.identity {
            Some(SubjectAltName::Uri(uri)) => parse_workflow_uri(uri),
            _ => None,
        };
        let claims = &cert.ci_claims;
        let build_config = claims
            .build_config_uri
            .as_deref()
            .and_then(parse_workflow_uri);
        let old = &claims.deprecated_github;
        // A repository on another host keeps its whole URL, so it matches no `OWNER/REPO`.
        let repo = claims
            .source_repository_uri
            .as_deref()
            .map(|uri| uri.strip_prefix(GITHUB).unwrap_or(uri).to_string())
            .or_else(|| old.workflow_repository.clone())
            .or_else(|| signer.as_ref().map(|w| w.repo.clone()));
        let git_ref = claims
            .source_repository_ref
            .clone()
            .or_else(|| old.workflow_ref.clone())
            .or_else(|| signer.as_ref().map(|w| w.git_ref.clone()));
        let commit = claims
            .source_repository_digest
            .clone()
            .or_else(|| old.workflow_sha.clone());
        Self {
            san,
            signer,
            build_config,
            issuer: cert.issuer.clone(),
            repo,
            git_ref,
            commit,
        }
    }

    /// A workflow as a policy names it: its path, prefixed with `OWNER/REPO/` when it lives in
    /// another repository than the source.
    fn name_of(&self, workflow: &WorkflowUri) -> String {
        let same_repo = self
            .repo
            .as_deref()
            .is_some_and(|repo| repo.eq_ignore_ascii_case(&workflow.repo));
        match same_repo {
            true => workflow.path.clone(),
            false => format!("{}/{}", workflow.repo, workflow.path),
        }
    }

    /// The workflow that ran in the source repository (the signer's, if the certificate does
    /// not say), as a policy names it.
    pub(crate) fn workflow_name(&self) -> Option<String> {
        let workflow = self.build_config.as_ref().or(self.signer.as_ref())?;
        Some(self.name_of(workflow))
    }

    /// The workflow that signed, as a policy names it.
    pub(crate) fn signer_name(&self) -> Option<String> {
        Some(self.name_of(self.signer.as_ref()?))
    }

    /// Whether `policy` allows this identity.
    pub(crate) fn allowed_by(&self, policy: &GithubIdentity) -> bool {
        if self.issuer.as_deref() != Some(GITHUB_ACTIONS_ISSUER) {
            return false;
        }
        let Some(repo) = &self.repo else {
            return false;
        };
        if !repo.eq_ignore_ascii_case(&policy.repo) {
            return false;
        }
        if let Some(wanted) = &policy.workflow {
            let (wanted_repo, wanted_path) = match wanted.strip_prefix(".github/") {
                Some(_) => (policy.repo.as_str(), wanted.as_str()),
                None => match split_repo_path(wanted) {
                    Some(split) => split,
                    None => return false,
                },
            };
            let is_wanted = |w: &&WorkflowUri| {
                w.repo.eq_ignore_ascii_case(wanted_repo) && w.path == wanted_path
            };
            if !self
                .build_config
                .iter()
                .chain(&self.signer)
                .any(|w| is_wanted(&w))
            {
                return false;
            }
        }
        match (&policy.git_ref, &self.git_ref) {
            (None, _) => true,
            (Some(glob), Some(git_ref)) => glob_matches(glob, git_ref),
            (Some(_), None) => false,
        }
    }
}

/// `OWNER/REPO/PATH` → (`OWNER/REPO`, `PATH`).
fn split_repo_path(text: &str) -> Option<(&str, &str)> {
    let first = text.find('/')?;
    let second = first + 1 + text[first + 1..].find('/')?;
    let (repo, path) = (&text[..second], &text[second + 1..]);
    (!path.is_empty()).then_some((repo, path))
}

impl fmt::Display for CertIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.san.as_deref().unwrap_or("a certificate without SAN"))?;
        if let Some(repo) = &self.repo {
            write!(f, " (repo {repo}")?;
            if let Some(git_ref) = &self.git_ref {
                write!(f, ", ref {git_ref}")?;
            }
            f.write_str(")")?;
        }
        write!(f, ", issuer {}", self.issuer.as_deref().unwrap_or("none"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn globs_match_stars_anywhere_and_nothing_else() {
        assert!(glob_matches("refs/tags/*", "refs/tags/v1.2.0"));
        assert!(glob_matches("refs/tags/*", "refs/tags/"));
        assert!(glob_matches(
            "refs/heads/release/*",
            "refs/heads/release/1.0/rc"
        ));
        assert!(!glob_matches("refs/tags/*", "refs/heads/main"));
        assert!(glob_matches("refs/heads/main", "refs/heads/main"));
        assert!(!glob_matches("refs/heads/main", "refs/heads/main2"));
        assert!(!glob_matches("refs/heads/main", "refs/heads/mai"));
        assert!(glob_matches("*", ""));
        assert!(glob_matches("refs/*/v*", "refs/tags/v2"));
        assert!(!glob_matches("refs/*/v*", "refs/tags/2"));
        assert!(glob_matches("*-rc", "refs/tags/v1-rc"));
        assert!(!glob_matches("*-rc", "refs/tags/v1-rc1"));
        // a suffix may not reuse what a prefix already took
        assert!(!glob_matches("ab*ba", "aba"));
        assert!(glob_matches("a*a*a", "aaa"));
        assert!(!glob_matches("a*a*a", "aa"));
        assert!(!glob_matches("", "x"));
    }

    #[test]
    fn workflow_uris_come_apart() {
        let uri = "https://github.com/prefix-dev/sigstore-example/.github/workflows/action.yaml@refs/heads/main";
        assert_eq!(
            parse_workflow_uri(uri).unwrap(),
            WorkflowUri {
                repo: "prefix-dev/sigstore-example".into(),
                path: ".github/workflows/action.yaml".into(),
                git_ref: "refs/heads/main".into(),
            }
        );
        let tag = "https://github.com/o/r/.github/workflows/p.yml@refs/tags/v1@x";
        assert_eq!(parse_workflow_uri(tag).unwrap().git_ref, "refs/tags/v1@x");
        assert_eq!(
            parse_workflow_uri("https://dotcom.releases.github.com"),
            None
        );
        assert_eq!(
            parse_workflow_uri("https://github.com/o/r@refs/heads/main"),
            None
        );
        assert_eq!(parse_workflow_uri("https://github.com/o/r/f.yml"), None);
        assert_eq!(parse_workflow_uri("https://github.com/o/r/f.yml@"), None);
        assert_eq!(parse_workflow_uri("mailto:a@b"), None);
    }

    fn cert(san_repo: &str, repo: &str, git_ref: &str) -> CertIdentity {
        let san = format!("https://github.com/{san_repo}/.github/workflows/p.yml@{git_ref}");
        let caller = format!("https://github.com/{repo}/.github/workflows/caller.yml@{git_ref}");
        CertIdentity {
            signer: parse_workflow_uri(&san),
            build_config: match san_repo == repo {
                true => parse_workflow_uri(&san),
                false => parse_workflow_uri(&caller),
            },
            san: Some(san),
            issuer: Some(GITHUB_ACTIONS_ISSUER.into()),
            repo: Some(repo.into()),
            git_ref: Some(git_ref.into()),
            commit: Some("0".repeat(40)),
        }
    }

    fn policy(repo: &str, workflow: Option<&str>, git_ref: Option<&str>) -> GithubIdentity {
        GithubIdentity {
            repo: repo.into(),
            workflow: workflow.map(Into::into),
            git_ref: git_ref.map(Into::into),
        }
    }

    #[test]
    fn policies_check_repo_workflow_ref_and_issuer() {
        let c = cert("Org/App", "Org/App", "refs/tags/v1");
        assert_eq!(c.workflow_name().unwrap(), ".github/workflows/p.yml");
        assert!(c.allowed_by(&policy("org/app", None, None)));
        assert!(c.allowed_by(&policy("org/app", Some(".github/workflows/p.yml"), None)));
        assert!(c.allowed_by(&policy(
            "org/app",
            Some("org/app/.github/workflows/p.yml"),
            None
        )));
        assert!(c.allowed_by(&policy("org/app", None, Some("refs/tags/*"))));
        assert!(!c.allowed_by(&policy("org/other", None, None)));
        assert!(!c.allowed_by(&policy("org/app", Some(".github/workflows/q.yml"), None)));
        assert!(!c.allowed_by(&policy("org/app", None, Some("refs/heads/*"))));
        let mut other_issuer = c.clone();
        other_issuer.issuer = Some("https://accounts.google.com".into());
        assert!(!other_issuer.allowed_by(&policy("org/app", None, None)));
    }

    #[test]
    fn reusable_workflows_are_named_with_their_repository() {
        let c = cert("org/shared", "org/app", "refs/heads/main");
        assert_eq!(c.workflow_name().unwrap(), ".github/workflows/caller.yml");
        assert_eq!(
            c.signer_name().unwrap(),
            "org/shared/.github/workflows/p.yml"
        );
        // the workflow that ran, or the reusable one that signed
        assert!(c.allowed_by(&policy(
            "org/app",
            Some(".github/workflows/caller.yml"),
            None
        )));
        assert!(c.allowed_by(&policy(
            "org/app",
            Some("org/shared/.github/workflows/p.yml"),
            None
        )));
        // the short form means the source repository's own workflow
        assert!(!c.allowed_by(&policy("org/app", Some(".github/workflows/p.yml"), None)));
        assert!(!c.allowed_by(&policy("org/app", Some("org/shared"), None)));
    }
}
