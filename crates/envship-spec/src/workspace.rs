//! A workspace: one repository holding many environments, each shipped for its targets.
//!
//! The root `envship.toml` names the members by globs of directories:
//! ```toml
//! [workspace]
//! members = ["envs/*", "tools/psana"]
//! exclude = ["envs/old-*"]
//! ```
//! Each member is a project directory (its own `environment.yml` and `envship.toml`), whose
//! `targets = ["lcls-rhel6", "rhel8"]` (or `target = …`, or the default target) make its
//! (member, target) pairs. `ship --all` runs them; `envship matrix` hands them to GitHub
//! Actions.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{
    config::{ConfigError, ProjectConfig},
    target::DEFAULT_TARGET,
};

/// How deep below the root member globs are matched: deep enough for `group/sub/env`, shallow
/// enough that a big repository is not walked whole.
const MAX_DEPTH: usize = 4;

/// Directories never searched for members.
const SKIPPED: &[&str] = &[".git", ".envship", "target", "dist", "node_modules"];

/// Errors of reading a workspace.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum WorkspaceError {
    /// An `envship.toml` (the root's or a member's) is invalid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] ConfigError),

    /// A member glob is not a glob.
    #[error("{}: bad member glob `{glob}`: {reason}", path.display())]
    #[diagnostic(code(envship::workspace::glob))]
    Glob {
        /// The root envship.toml.
        path: PathBuf,
        /// The glob.
        glob: String,
        /// What is wrong.
        reason: String,
    },

    /// A member glob matches no environment.
    #[error("{}: member glob `{glob}` matches no directory with an environment.yml", path.display())]
    #[diagnostic(
        code(envship::workspace::empty_glob),
        help(
            "members are directories (relative to the workspace root) holding an environment.yml"
        )
    )]
    NoMatch {
        /// The root envship.toml.
        path: PathBuf,
        /// The glob.
        glob: String,
    },

    /// A directory could not be listed.
    #[error("listing {}", path.display())]
    #[diagnostic(code(envship::workspace::io))]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// No workspace here.
    #[error("no workspace: no envship.toml with a [workspace] table in {} or above", start.display())]
    #[diagnostic(
        code(envship::workspace::none),
        help("add `[workspace]\\nmembers = [\"envs/*\"]` to the repository's root envship.toml")
    )]
    NotFound {
        /// Where the search started.
        start: PathBuf,
    },
}

/// One environment of the workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Member {
    /// Its directory relative to the root, `/`-separated (`envs/psana`): its name in the
    /// matrix and the summary.
    pub name: String,
    /// Its directory.
    pub dir: PathBuf,
    /// The targets it ships for.
    pub targets: Vec<String>,
}

/// One (member, target) pair.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Pair {
    /// The member's name.
    pub member: String,
    /// The target's name.
    pub target: String,
}

/// A workspace, read.
#[derive(Clone, Debug)]
pub struct Workspace {
    /// The root directory.
    pub root: PathBuf,
    /// Its envship.toml.
    pub config_path: PathBuf,
    /// The members, sorted by name.
    pub members: Vec<Member>,
}

impl Workspace {
    /// The workspace whose root is `start` or the nearest directory above it with an
    /// `envship.toml` holding `[workspace]`.
    pub fn discover(start: &Path) -> Result<Self, WorkspaceError> {
        let abs = std::path::absolute(start).unwrap_or_else(|_| start.to_path_buf());
        let mut dir = Some(abs.as_path());
        while let Some(d) = dir {
            if let Some((path, config)) = ProjectConfig::load_from_dir(d)? {
                if let Some(table) = config.workspace {
                    return Self::load(d, &path, &table.members, &table.exclude);
                }
            }
            dir = d.parent();
        }
        Err(WorkspaceError::NotFound { start: abs })
    }

    fn load(
        root: &Path,
        config_path: &Path,
        globs: &[String],
        exclude: &[String],
    ) -> Result<Self, WorkspaceError> {
        let dirs = candidate_dirs(root)?;
        let names = select_members(config_path, &dirs, globs, exclude)?;
        let mut members = Vec::new();
        for name in names {
            let dir = root.join(&name);
            let config = ProjectConfig::load_from_dir(&dir)?
                .map(|(_, c)| c)
                .unwrap_or_default();
            let mut targets = config.target_list();
            if targets.is_empty() {
                targets.push(DEFAULT_TARGET.to_string());
            }
            members.push(Member { name, dir, targets });
        }
        Ok(Self {
            root: root.to_path_buf(),
            config_path: config_path.to_path_buf(),
            members,
        })
    }

    /// Every (member, target) pair, narrowed to members matching `members` (a glob of member
    /// names) and to `targets` when given; sorted by member, then target order as listed.
    pub fn pairs(
        &self,
        members: Option<&str>,
        targets: &[String],
    ) -> Result<Vec<Pair>, WorkspaceError> {
        let glob = members
            .map(|g| Glob::parse(g, &self.config_path))
            .transpose()?;
        let mut out = Vec::new();
        for m in &self.members {
            if glob.as_ref().is_some_and(|g| !g.matches(&m.name)) {
                continue;
            }
            for t in &m.targets {
                if targets.is_empty() || targets.contains(t) {
                    out.push(Pair {
                        member: m.name.clone(),
                        target: t.clone(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// The member named `name`.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }
}

/// The members among `dirs` (candidate directories, `/`-separated and relative to the root):
/// those a glob of `globs` matches and no glob of `exclude` does, sorted. Every glob must be
/// valid and every one of `globs` must match; `config_path` names the root envship.toml in
/// errors. Public for the fuzz target of workspace configs, which has no directory tree.
#[doc(hidden)]
pub fn select_members(
    config_path: &Path,
    dirs: &[String],
    globs: &[String],
    exclude: &[String],
) -> Result<std::collections::BTreeSet<String>, WorkspaceError> {
    let exclude: Vec<Glob> = exclude
        .iter()
        .map(|g| Glob::parse(g, config_path))
        .collect::<Result<_, _>>()?;
    let mut names = std::collections::BTreeSet::new();
    for g in globs {
        let glob = Glob::parse(g, config_path)?;
        let hits: Vec<&String> = dirs.iter().filter(|d| glob.matches(d)).collect();
        if hits.is_empty() {
            return Err(WorkspaceError::NoMatch {
                path: config_path.to_path_buf(),
                glob: g.clone(),
            });
        }
        names.extend(
            hits.into_iter()
                .filter(|d| !exclude.iter().any(|x| x.matches(d)))
                .cloned(),
        );
    }
    Ok(names)
}

/// Every directory under `root` (to [`MAX_DEPTH`]) holding an `environment.yml`, as
/// `/`-separated relative paths.
fn candidate_dirs(root: &Path) -> Result<Vec<String>, WorkspaceError> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|source| WorkspaceError::Io {
            path: dir.clone(),
            source,
        })?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if !is_dir || SKIPPED.contains(&name.as_str()) || depth + 1 > MAX_DEPTH {
                continue;
            }
            let path = e.path();
            if path.join("environment.yml").is_file() {
                if let Ok(rel) = path.strip_prefix(root) {
                    let rel: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    out.push(rel.join("/"));
                }
            }
            stack.push((path, depth + 1));
        }
    }
    out.sort();
    Ok(out)
}

/// A member glob (globset's syntax with `/` as a separator: `*` within one directory name,
/// `**` across any number of them).
struct Glob {
    matcher: globset::GlobMatcher,
}

impl Glob {
    fn parse(glob: &str, config: &Path) -> Result<Self, WorkspaceError> {
        let bad = |reason: String| WorkspaceError::Glob {
            path: config.to_path_buf(),
            glob: glob.to_string(),
            reason,
        };
        let g = glob.trim_start_matches("./").trim_end_matches('/');
        if g.is_empty() {
            return Err(bad("empty".into()));
        }
        if g.starts_with('/') || g.split('/').any(|s| s == "..") {
            return Err(bad(
                "members must be inside the workspace (no leading `/`, no `..`)".into(),
            ));
        }
        let matcher = globset::GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map_err(|e| bad(e.kind().to_string()))?
            .compile_matcher();
        Ok(Self { matcher })
    }

    fn matches(&self, path: &str) -> bool {
        self.matcher.is_match(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CONFIG_FILE;

    fn env(root: &Path, dir: &str, config: &str) {
        let d = root.join(dir);
        fs_err::create_dir_all(&d).expect("mkdir");
        fs_err::write(
            d.join("environment.yml"),
            "name: x\ndependencies: [python]\n",
        )
        .expect("write");
        if !config.is_empty() {
            fs_err::write(d.join(CONFIG_FILE), config).expect("write");
        }
    }

    #[test]
    fn members_targets_and_pairs() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        fs_err::write(
            root.join(CONFIG_FILE),
            "[workspace]\nmembers = [\"envs/*\", \"tools/**\"]\nexclude = [\"envs/old-*\"]\n",
        )
        .expect("write");
        env(
            root,
            "envs/psana",
            "targets = [\"lcls-rhel6\", \"rhel8\"]\n",
        );
        env(root, "envs/ami", "target = \"rhel7\"\n");
        env(root, "envs/old-daq", "");
        env(root, "tools/deep/pcds", "");
        fs_err::create_dir_all(root.join("envs/not-an-env")).expect("mkdir");
        let ws = Workspace::discover(&root.join("envs/psana")).expect("found from a member");
        let names: Vec<&str> = ws.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["envs/ami", "envs/psana", "tools/deep/pcds"]);
        let pairs = ws.pairs(None, &[]).expect("pairs");
        let flat: Vec<String> = pairs
            .iter()
            .map(|p| format!("{}:{}", p.member, p.target))
            .collect();
        assert_eq!(
            flat,
            [
                "envs/ami:rhel7",
                "envs/psana:lcls-rhel6",
                "envs/psana:rhel8",
                "tools/deep/pcds:lcls-rhel6"
            ]
        );
        let narrowed = ws
            .pairs(Some("envs/*"), &["rhel8".to_string()])
            .expect("pairs");
        assert_eq!(narrowed.len(), 1);
        assert_eq!(narrowed[0].member, "envs/psana");
    }

    #[test]
    fn mistakes_are_named() {
        let d = tempfile::tempdir().expect("tempdir");
        let root = d.path();
        fs_err::write(
            root.join(CONFIG_FILE),
            "[workspace]\nmembers = [\"nothing/*\"]\n",
        )
        .expect("write");
        let e = Workspace::discover(root).expect_err("no match");
        assert!(e.to_string().contains("`nothing/*`"), "{e}");
        fs_err::write(
            root.join(CONFIG_FILE),
            "[workspace]\nmembers = [\"../x\"]\n",
        )
        .expect("write");
        assert!(Workspace::discover(root).is_err());
        env(root, "a", "target = \"rhel7\"\ntargets = [\"rhel8\"]\n");
        fs_err::write(root.join(CONFIG_FILE), "[workspace]\nmembers = [\"a\"]\n").expect("w");
        let e = Workspace::discover(root).expect_err("both");
        assert!(format!("{e:?}").contains("both given"), "{e:?}");
        let lone = tempfile::tempdir().expect("tempdir");
        assert!(matches!(
            Workspace::discover(lone.path()),
            Err(WorkspaceError::NotFound { .. })
        ));
    }

    #[test]
    fn globs() {
        let cfg = Path::new("envship.toml");
        let g = Glob::parse("envs/old-*", cfg).expect("glob");
        assert!(g.matches("envs/old-daq") && !g.matches("envs/new-daq"));
        assert!(
            !g.matches("envs/old-daq/sub"),
            "`*` stays within a directory name"
        );
        let deep = Glob::parse("**/x", cfg).expect("glob");
        assert!(deep.matches("a/b/x") && deep.matches("x") && !deep.matches("a/y"));
        assert!(Glob::parse("envs/[", cfg).is_err());
    }
}
