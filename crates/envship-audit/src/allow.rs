//! Accepted exceptions: a TOML file of rules, each a path glob, a check and a reason, so a team
//! can ship a known finding on purpose and the report says why.
//!
//! ```toml
//! [[allow]]
//! path = "lib/python3.*/site-packages/bcrypt/*.so"  # relative to the prefix
//! check = "glibc"                                    # a check name, or "*" for any
//! reason = "bcrypt is only imported on the rhel8 analysis nodes"
//! ```
//!
//! Globs are matched against the `/`-separated path relative to the audited root: `*` and `?`
//! stay within one path component, `**` crosses directories, `{a,b}` alternates. `reason` is
//! required and must not be empty: it is copied into the report.

use std::path::Path;

use globset::{Glob, GlobBuilder, GlobMatcher};
use serde::Deserialize;

use crate::{
    report::{Check, Finding},
    AuditError,
};

/// One accepted exception.
#[derive(Clone, Debug)]
pub struct AllowRule {
    /// The glob as written.
    pub path: String,
    /// The check it applies to (`None` = any check).
    pub check: Option<Check>,
    /// Why the exception is accepted.
    pub reason: String,
    matcher: GlobMatcher,
}

/// A set of [`AllowRule`]s; empty by default.
#[derive(Clone, Debug, Default)]
pub struct Allowlist {
    rules: Vec<AllowRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    allow: Vec<RawRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    path: String,
    check: String,
    reason: String,
}

impl Allowlist {
    /// Read an allowlist file.
    pub fn load(path: &Path) -> Result<Self, AuditError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuditError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse allowlist text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, AuditError> {
        let bad = |message: String| AuditError::Allowlist {
            path: origin.to_path_buf(),
            message,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut rules = Vec::new();
        for (i, r) in raw.allow.into_iter().enumerate() {
            let n = i + 1;
            let check = if r.check == "*" {
                None
            } else {
                Some(
                    Check::ALL
                        .into_iter()
                        .find(|c| c.as_str() == r.check)
                        .ok_or_else(|| {
                            bad(format!(
                                "rule {n}: unknown check `{}` (expected `*` or one of: {})",
                                r.check,
                                Check::ALL.map(Check::as_str).join(", ")
                            ))
                        })?,
                )
            };
            if r.reason.trim().is_empty() {
                return Err(bad(format!(
                    "rule {n} (`{}`): `reason` must not be empty",
                    r.path
                )));
            }
            let glob: Glob = GlobBuilder::new(r.path.trim_start_matches("./"))
                .literal_separator(true)
                .build()
                .map_err(|e| bad(format!("rule {n}: bad glob `{}`: {e}", r.path)))?;
            rules.push(AllowRule {
                matcher: glob.compile_matcher(),
                path: r.path,
                check,
                reason: r.reason,
            });
        }
        Ok(Self { rules })
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[AllowRule] {
        &self.rules
    }

    /// The first rule that accepts this finding.
    pub fn matching(&self, finding: &Finding) -> Option<&AllowRule> {
        self.rules.iter().find(|r| {
            r.check.is_none_or(|c| c == finding.check) && r.matcher.is_match(&finding.path)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Severity;

    fn finding(check: Check, path: &str) -> Finding {
        Finding::new(Severity::Error, check, path, "x", "m".into())
    }

    #[test]
    fn matches_glob_and_check() {
        let a = Allowlist::parse(
            r#"
[[allow]]
path = "lib/python3.*/site-packages/bcrypt/*.so"
check = "glibc"
reason = "known"

[[allow]]
path = "bin/**"
check = "*"
reason = "scripts"
"#,
            Path::new("allow.toml"),
        )
        .expect("parse");
        let so = "lib/python3.11/site-packages/bcrypt/_bcrypt.abi3.so";
        assert_eq!(
            a.matching(&finding(Check::Glibc, so))
                .map(|r| r.reason.as_str()),
            Some("known")
        );
        assert!(a.matching(&finding(Check::Linkage, so)).is_none());
        // `*` does not cross directories.
        assert!(a
            .matching(&finding(
                Check::Glibc,
                "lib/python3.11/site-packages/bcrypt/sub/x.so"
            ))
            .is_none());
        assert!(a
            .matching(&finding(Check::Shebang, "bin/deep/tool"))
            .is_some());
    }

    #[test]
    fn errors_name_the_file_and_rule() {
        let e = Allowlist::parse(
            "[[allow]]\npath = \"x\"\ncheck = \"glibcc\"\nreason = \"r\"\n",
            Path::new("team-allow.toml"),
        )
        .expect_err("bad check");
        let msg = e.to_string();
        assert!(
            msg.contains("team-allow.toml") && msg.contains("rule 1") && msg.contains("glibcc"),
            "{msg}"
        );

        let e = Allowlist::parse(
            "[[allow]]\npath = \"x\"\ncheck = \"glibc\"\nreason = \" \"\n",
            Path::new("a.toml"),
        )
        .expect_err("empty reason");
        assert!(e.to_string().contains("reason"), "{e}");

        let e = Allowlist::parse("[[allow]]\npath = \"x\"\n", Path::new("a.toml"))
            .expect_err("missing");
        assert!(format!("{e:?}").contains("check"), "{e:?}");
    }
}
