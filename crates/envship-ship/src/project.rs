//! The project a command works on: the environment file, its directory's envship.toml, the
//! target they resolve to, and the defaults every command derives from them.

use std::path::{Path, PathBuf};

use envship_pack::Format;
use envship_spec::{
    BuildRecordError, EnvFileError, EnvironmentFile, ProjectConfig, Target, TargetError,
    TargetOverrides,
};

/// How the caller asked for a target: a profile name (`--target`) and field overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetRequest {
    /// The profile named by the caller, if any.
    pub profile: Option<String>,
    /// Field overrides named by the caller.
    pub overrides: TargetOverrides,
}

impl TargetRequest {
    /// The target for a project whose envship.toml names `config_target` and `config_overrides`:
    /// the caller's profile wins; envship.toml's overrides apply only when the caller names no
    /// profile of its own (they belong to envship.toml's target).
    pub fn resolve_with_config(
        &self,
        config_target: Option<&str>,
        config_overrides: &TargetOverrides,
    ) -> Result<Target, TargetError> {
        let overrides = if self.profile.is_none() {
            config_overrides.merged_with(&self.overrides)
        } else {
            self.overrides.clone()
        };
        let name = self
            .profile
            .as_deref()
            .or(config_target)
            .unwrap_or(envship_spec::target::DEFAULT_TARGET);
        Target::resolve(name, &overrides)
    }

    /// The target for an existing prefix: the one its build recorded (see
    /// [`envship_spec::BuildRecord`]), with this request's overrides on top; a profile that
    /// contradicts the record is an error.
    pub fn resolve_for_prefix(&self, prefix: &Path) -> Result<Target, BuildRecordError> {
        envship_spec::target_for_prefix(prefix, self.profile.as_deref(), &self.overrides)
    }
}

/// Errors loading a project.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ProjectError {
    /// environment.yml is missing or invalid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    EnvFile(#[from] EnvFileError),

    /// envship.toml is invalid.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Config(#[from] envship_spec::config::ConfigError),

    /// The target does not resolve.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Target(#[from] TargetError),

    /// The archive format (flag or envship.toml's `format`) is unknown.
    #[error("{message}")]
    #[diagnostic(
        code(envship::ship::format),
        help("use tar.gz (RHEL 6's tar reads it), tar.zst, zip, dir, sh or squashfs")
    )]
    Format {
        /// The parser's message.
        message: String,
    },
}

/// A loaded project.
pub struct Project {
    /// The parsed environment file.
    pub env_file: EnvironmentFile,
    /// envship.toml, or defaults.
    pub config: ProjectConfig,
    /// Where envship.toml was found.
    pub config_path: Option<PathBuf>,
    /// The target after the caller's overrides.
    pub target: Target,
}

impl Project {
    /// Load the file, its config and the target; warnings about the file go to the log.
    pub fn load(file: &Path, request: &TargetRequest) -> Result<Self, ProjectError> {
        let env_file = EnvironmentFile::from_path(file)?;
        for w in &env_file.warnings {
            match &w.location {
                Some(l) => {
                    tracing::warn!("{}:{}:{}: {}", file.display(), l.line, l.column, w.message)
                }
                None => tracing::warn!("{}: {}", file.display(), w.message),
            }
        }
        let (config_path, config) = match ProjectConfig::load_from_dir(&env_file.dir())? {
            Some((p, c)) => (Some(p), c),
            None => (None, ProjectConfig::default()),
        };
        let target = request.resolve_with_config(config.target.as_deref(), &config.overrides)?;
        Ok(Self {
            env_file,
            config,
            config_path,
            target,
        })
    }

    /// The environment's name: `name:` from the file, else the project directory's name.
    pub fn name(&self) -> String {
        self.env_file.name.clone().unwrap_or_else(|| {
            self.env_file
                .dir()
                .canonicalize()
                .ok()
                .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
                .unwrap_or_else(|| "env".to_string())
        })
    }

    /// The project directory (where environment.yml is), absolute so that prefixes derived
    /// from it (and written into files) are too.
    pub fn dir(&self) -> PathBuf {
        let dir = self.env_file.dir();
        dir.canonicalize()
            .or_else(|_| std::path::absolute(&dir))
            .unwrap_or(dir)
    }

    /// The build prefix: `explicit`, else `.envship/build/NAME` in the project directory.
    pub fn build_prefix(&self, explicit: Option<PathBuf>) -> PathBuf {
        explicit.unwrap_or_else(|| envship_env::build::default_prefix(&self.dir(), &self.name()))
    }

    /// The test script: `explicit`, else envship.toml's `test-script`, else run-test.sh in the
    /// project directory.
    pub fn test_script(&self, explicit: Option<&Path>) -> PathBuf {
        match (explicit, &self.config.test_script) {
            (Some(s), _) => s.to_path_buf(),
            (None, Some(s)) => self.dir().join(s),
            (None, None) => self.dir().join("run-test.sh"),
        }
    }

    /// Where production unpacks the archive: `explicit`, else envship.toml's `dest-prefix`,
    /// else /opt/envship/NAME.
    pub fn dest_prefix(&self, explicit: Option<&str>) -> String {
        explicit
            .map(str::to_string)
            .or_else(|| self.config.dest_prefix.clone())
            .unwrap_or_else(|| format!("/opt/envship/{}", self.name()))
    }

    /// The archive format: `explicit`, else envship.toml's `format`, else tar.gz.
    pub fn format(&self, explicit: Option<&str>) -> Result<Format, ProjectError> {
        explicit
            .or(self.config.format.as_deref())
            .unwrap_or("tar.gz")
            .parse()
            .map_err(|message| ProjectError::Format { message })
    }

    /// The release version: `explicit`, else `git describe` of the project, else today's date.
    pub fn version(&self, explicit: Option<&str>) -> String {
        explicit
            .map(str::to_string)
            .unwrap_or_else(|| default_version_in(&self.dir()))
    }

    /// Where archives and reports go: `explicit`, else `dist/` in the project directory.
    pub fn out_dir(&self, explicit: Option<&Path>) -> PathBuf {
        explicit
            .map(Path::to_path_buf)
            .unwrap_or_else(|| self.dir().join("dist"))
    }
}

/// `git describe --tags` of `dir`, else today's date (YYYY.MM.DD).
pub fn default_version_in(dir: &Path) -> String {
    let git = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["describe", "--tags", "--always", "--dirty"])
        .stderr(std::process::Stdio::null())
        .output();
    if let Ok(out) = git {
        let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !v.is_empty() {
            return v.trim_start_matches('v').to_string();
        }
    }
    jiff::Zoned::now().strftime("%Y.%m.%d").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_overrides_belong_to_the_config_target() {
        let config_overrides = TargetOverrides {
            glibc: Some("2.17".into()),
            ..Default::default()
        };
        let none = TargetRequest::default();
        let t = none
            .resolve_with_config(Some("rhel7"), &config_overrides)
            .expect("config target");
        assert_eq!(t.name, "rhel7+glibc2.17");
        let explicit = TargetRequest {
            profile: Some("rhel8".into()),
            ..Default::default()
        };
        let t = explicit
            .resolve_with_config(Some("rhel7"), &config_overrides)
            .expect("explicit target");
        assert_eq!(t.name, "rhel8");
    }
}
