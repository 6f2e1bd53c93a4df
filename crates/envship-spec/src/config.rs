//! `envship.toml`: optional per-project settings next to environment.yml.
//!
//! ```toml
//! target = "lcls-rhel6"              # default target for every command
//! test-script = "run-test.sh"        # what `envship test`/`ship` run
//! dest-prefix = "/opt/envs/myenv"    # where production unpacks the archive
//! exclude-newer = "2024-06-01"       # solve as of this date
//! channel-alias = "https://mirror.example.org/conda"
//! [overrides]
//! glibc = "2.17"
//! ```

use std::path::{Path, PathBuf};

use miette::{NamedSource, SourceSpan};
use serde::{Deserialize, Serialize};

use crate::target::TargetOverrides;

/// The file name looked up next to environment.yml.
pub const CONFIG_FILE: &str = "envship.toml";

/// Project settings; every field is optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ProjectConfig {
    /// Default target name.
    pub target: Option<String>,
    /// The targets a workspace member ships for (`ship --all`, `matrix`); the first is the
    /// default of every other command. Exclusive with `target`.
    pub targets: Option<Vec<String>>,
    /// At a workspace's root: its members.
    pub workspace: Option<WorkspaceTable>,
    /// Field overrides of the default target.
    #[serde(default)]
    pub overrides: TargetOverrides,
    /// Test script, relative to the project directory.
    pub test_script: Option<PathBuf>,
    /// Destination prefix in production.
    pub dest_prefix: Option<String>,
    /// Solve as of this date (`YYYY-MM-DD` or RFC 3339).
    pub exclude_newer: Option<String>,
    /// Base URL that channel names resolve against.
    pub channel_alias: Option<String>,
    /// Archive format for pack (`tar.gz`, `tar.zst`, `zip`, `dir`).
    pub format: Option<String>,
    /// Whether packages' link scripts run at build (`run`, the default, or `skip`).
    pub link_scripts: Option<LinkScripts>,
}

/// `[workspace]` of the root `envship.toml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WorkspaceTable {
    /// Globs of member directories, relative to the root (`envs/*`).
    pub members: Vec<String>,
    /// Globs of directories the member globs match that are not members.
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl ProjectConfig {
    /// The targets this project ships for: `targets`, else `target`, else none (the caller's
    /// default).
    pub fn target_list(&self) -> Vec<String> {
        match (&self.targets, &self.target) {
            (Some(t), _) => t.clone(),
            (None, Some(t)) => vec![t.clone()],
            (None, None) => Vec::new(),
        }
    }

    /// The default target of single-target commands: `target`, else the first of `targets`.
    pub fn default_target(&self) -> Option<&str> {
        self.target.as_deref().or_else(|| {
            self.targets
                .as_ref()
                .and_then(|t| t.first())
                .map(String::as_str)
        })
    }
}

/// Whether packages' link scripts run (`--link-scripts`, `link-scripts` in envship.toml).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkScripts {
    /// Run them, as conda does.
    #[default]
    Run,
    /// Do not run them; each script that would have run is a warning.
    Skip,
}

/// An `envship.toml` that cannot be used.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ConfigError {
    /// The file exists but cannot be read.
    #[error("cannot read {}", path.display())]
    #[diagnostic(code(envship::config::read))]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys.
    #[error("invalid {}: {message}", path.display())]
    #[diagnostic(
        code(envship::config::invalid),
        help("known keys: target, overrides, test-script, dest-prefix, exclude-newer, channel-alias, format, link-scripts")
    )]
    Invalid {
        /// The path.
        path: PathBuf,
        /// The parser's words.
        message: String,
        /// The text.
        #[source_code]
        src: NamedSource<String>,
        /// Where.
        #[label("here")]
        at: Option<SourceSpan>,
    },
}

impl ProjectConfig {
    /// Load `envship.toml` from `dir` if it exists; no file means all defaults.
    pub fn load_from_dir(dir: &Path) -> Result<Option<(PathBuf, Self)>, ConfigError> {
        let path = dir.join(CONFIG_FILE);
        if !path.exists() {
            return Ok(None);
        }
        let text = fs_err::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        Self::parse(&text, &path).map(|config| Some((path, config)))
    }

    /// Parse `text`, the contents of the `envship.toml` at `path` (which only names it in
    /// errors): [`Self::load_from_dir`] without the file system, for fuzzing and callers that
    /// already hold the text.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let path = path.to_path_buf();
        let config = toml::from_str::<Self>(text).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            message: e.message().to_string(),
            at: e.span().map(|r| SourceSpan::new(r.start.into(), r.len())),
            src: NamedSource::new(path.display().to_string(), text.to_string()),
        })?;
        if config.target.is_some() && config.targets.is_some() {
            let at = text.find("targets").map(|i| SourceSpan::new(i.into(), 7));
            return Err(ConfigError::Invalid {
                path: path.clone(),
                message: "`target` and `targets` both given: keep one".into(),
                at,
                src: NamedSource::new(path.display().to_string(), text.to_string()),
            });
        }
        if config.targets.as_ref().is_some_and(Vec::is_empty) {
            let at = text.find("targets").map(|i| SourceSpan::new(i.into(), 7));
            return Err(ConfigError::Invalid {
                path: path.clone(),
                message: "`targets` is empty".into(),
                at,
                src: NamedSource::new(path.display().to_string(), text.to_string()),
            });
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_all_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs_err::write(
            dir.path().join(CONFIG_FILE),
            "target = \"rhel7\"\ntest-script = \"t.sh\"\n[overrides]\nglibc = \"2.17\"\n",
        )
        .expect("write");
        let (_, c) = ProjectConfig::load_from_dir(dir.path())
            .expect("ok")
            .expect("some");
        assert_eq!(c.target.as_deref(), Some("rhel7"));
        assert_eq!(c.overrides.glibc.as_deref(), Some("2.17"));
    }

    #[test]
    fn unknown_key_is_an_error_with_a_span() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs_err::write(
            dir.path().join(CONFIG_FILE),
            "target = \"rhel7\"\ntargte = 1\n",
        )
        .expect("write");
        let e = ProjectConfig::load_from_dir(dir.path()).expect_err("bad");
        match e {
            ConfigError::Invalid { at, message, .. } => {
                assert!(message.contains("targte"), "{message}");
                assert!(at.is_some());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_file_is_fine() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(ProjectConfig::load_from_dir(dir.path())
            .expect("ok")
            .is_none());
    }
}
