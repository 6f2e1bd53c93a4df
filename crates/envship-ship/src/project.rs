//! The project a command works on: the environment file, its directory's envship.toml, the
//! target they resolve to, and the defaults every command derives from them.

use std::path::{Path, PathBuf};

use envship_pack::Format;
use envship_spec::{
    BuildRecordError, EnvFileError, EnvironmentFile, ProjectConfig, Target, TargetError,
    TargetOverrides,
};

/// The environment file read when the caller names none.
pub const DEFAULT_ENV_FILE: &str = "environment.yml";

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

    /// No file was named and the project directory has no environment.yml.
    #[error("no {DEFAULT_ENV_FILE} in {}", dir.display())]
    #[diagnostic(
        code(envship::project::no_environment_file),
        help("run envship in the project's directory, or name its environment file with -f FILE")
    )]
    NoEnvironmentFile {
        /// The directory searched.
        dir: PathBuf,
    },

    /// The imported lock standing in for a missing environment.yml cannot be read.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Lock(#[from] envship_env::LockError),

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

    /// No archive of the project in the output directory (`envship test` without ARCHIVE).
    #[error("no archive of {name} for {subdir} in {}", dir.display())]
    #[diagnostic(
        code(envship::ship::no_archive),
        help("looked for {name}-VERSION-{subdir}.tar.gz/.tar.zst/.zip (or the dir format's directory): run `envship ship` or `envship pack` first, name the archive, or pass --out-dir")
    )]
    NoArchive {
        /// The directory searched.
        dir: PathBuf,
        /// The project's name.
        name: String,
        /// The target's subdir.
        subdir: String,
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
    /// A project without environment.yml whose envship.lock was imported (`envship lock
    /// --from`) is that lock: the file is stood in for by
    /// [`envship_env::lock::imported_environment_file`].
    /// Load the project in `dir` from its environment.yml, the file no one named: when it is
    /// missing (and no imported lock stands in for it) the error says so about `dir`.
    pub fn load_in_dir(dir: &Path, request: &TargetRequest) -> Result<Self, ProjectError> {
        let file = if dir.as_os_str().is_empty() {
            PathBuf::from(DEFAULT_ENV_FILE)
        } else {
            dir.join(DEFAULT_ENV_FILE)
        };
        Self::load(&file, request).map_err(|e| match e {
            ProjectError::EnvFile(EnvFileError::Missing { .. }) => {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                ProjectError::NoEnvironmentFile {
                    dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
                }
            }
            e => e,
        })
    }

    /// Load the file the caller named, its config and the target; warnings about the file go
    /// to the log.
    pub fn load(file: &Path, request: &TargetRequest) -> Result<Self, ProjectError> {
        let env_file = match EnvironmentFile::from_path(file) {
            Ok(f) => f,
            Err(e) if !file.exists() => {
                let dir = file
                    .parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let lock = dir.join(envship_env::lock::LOCK_FILE);
                match envship_env::lock::imported_environment_file(file, &lock)? {
                    Some(f) => f,
                    None => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
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
        let target = request.resolve_with_config(config.default_target(), &config.overrides)?;
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

    /// Whether the project ships for several targets (envship.toml's `targets` lists more than
    /// one). Its targets then solve and build apart, so each has its own lock and build prefix:
    /// one target's run (or `ship --all` running them side by side) never overwrites another's.
    pub fn per_target(&self) -> bool {
        self.config.target_list().len() > 1
    }

    /// The build prefix: `explicit`, else `.envship/build/NAME` in the project directory
    /// (`NAME-TARGET` for a project of several targets, see [`Project::per_target`]).
    pub fn build_prefix(&self, explicit: Option<PathBuf>) -> PathBuf {
        explicit.unwrap_or_else(|| {
            let name = if self.per_target() {
                format!("{}-{}", self.name(), self.target.name)
            } else {
                self.name()
            };
            envship_env::build::default_prefix(&self.dir(), &name)
        })
    }

    /// The lock file: envship.lock beside the environment file, or `envship-TARGET.lock` for a
    /// project of several targets (see [`Project::per_target`]).
    pub fn lock_path(&self) -> PathBuf {
        let dir = self.env_file.dir();
        if self.per_target() {
            dir.join(format!("envship-{}.lock", self.target.name))
        } else {
            dir.join(envship_env::lock::LOCK_FILE)
        }
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

    /// Whether link scripts run: `explicit`, else envship.toml's `link-scripts`, else `run`.
    pub fn link_scripts(
        &self,
        explicit: Option<envship_spec::config::LinkScripts>,
    ) -> envship_spec::config::LinkScripts {
        explicit.or(self.config.link_scripts).unwrap_or_default()
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

    /// The project's newest archive (by mtime) in [`Project::out_dir`]: what `envship test`
    /// tests when it is given no archive.
    pub fn newest_archive(&self, out_dir: Option<&Path>) -> Result<PathBuf, ProjectError> {
        let dir = self.out_dir(out_dir);
        let name = self.name();
        // Archive names end with TARGET-SUBDIR: another target's archive is not this one's.
        let subdir = format!("{}-{}", self.target.name, self.target.subdir);
        newest_archive_in(&dir, &name, &subdir).ok_or(ProjectError::NoArchive { dir, name, subdir })
    }
}

/// The newest (by mtime; ties go to the later name) of the files pack writes for `name` and
/// `subdir` in `dir`: `NAME-VERSION-SUBDIR.EXT` with an archive extension envship-pack knows,
/// or a `NAME-VERSION-SUBDIR` directory with its manifest sidecar (the `dir` format).
/// Sidecars, logs and archives of other names or subdirs are not taken.
pub fn newest_archive_in(dir: &Path, name: &str, subdir: &str) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    let mut best: Option<(std::time::SystemTime, String, PathBuf)> = None;
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let stem = if meta.is_dir() {
            if !envship_pack::Sidecar::Manifest.path_for(&path).is_file() {
                continue;
            }
            file_name.as_str()
        } else {
            match envship_pack::ArchiveKind::from_file_name(&file_name) {
                // pack writes compressed tars and zips, never a bare .tar.
                Some(envship_pack::ArchiveKind::Tar) | None => continue,
                Some(_) => envship_pack::archive_stem(&file_name),
            }
        };
        if !is_release_stem(stem, name, subdir) {
            continue;
        }
        let mtime = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
        let newer = best
            .as_ref()
            .is_none_or(|(t, n, _)| (mtime, &file_name) > (*t, n));
        if newer {
            best = Some((mtime, file_name, path));
        }
    }
    best.map(|(_, _, path)| path)
}

/// Whether `stem` is `NAME-VERSION-SUBDIR` for some non-empty VERSION (the glob
/// `NAME-*-SUBDIR`: versions come from `git describe --always`, so they may start with a letter
/// and cannot be told apart from another project's `NAME-x-…` by their form).
pub(crate) fn is_release_stem(stem: &str, name: &str, subdir: &str) -> bool {
    let Some(rest) = stem
        .strip_prefix(name)
        .and_then(|r| r.strip_prefix('-'))
        .and_then(|r| r.strip_suffix(subdir))
        .and_then(|r| r.strip_suffix('-'))
    else {
        return false;
    };
    !rest.is_empty()
}

/// The target for a project directory that may have no environment.yml yet (`envship lock
/// --from`): the caller's request over `dir`'s envship.toml, as [`Project::load`] resolves it.
pub fn target_in_dir(dir: &Path, request: &TargetRequest) -> Result<Target, ProjectError> {
    let config = ProjectConfig::load_from_dir(dir)?
        .map(|(_, c)| c)
        .unwrap_or_default();
    Ok(request.resolve_with_config(config.default_target(), &config.overrides)?)
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

    #[test]
    fn newest_archive_is_the_projects_latest_packed_file() {
        let dist = tempfile::tempdir().expect("tempdir");
        let touch = |name: &str, secs: u64| {
            let path = dist.path().join(name);
            std::fs::write(&path, b"x").expect("write");
            let f = std::fs::File::options()
                .write(true)
                .open(&path)
                .expect("open");
            f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
                .expect("mtime");
        };
        assert_eq!(newest_archive_in(dist.path(), "demo", "linux-64"), None);
        touch("demo-1.0-linux-64.tar.gz", 100);
        touch("demo-1.1-linux-64.zip", 200);
        // Newer, but not an archive of this project for this subdir, or not pack's output.
        touch("demo-1.1-linux-64.test.log", 900);
        touch("demo-1.1-linux-64.manifest.json", 900);
        touch("demo-2.0-linux-aarch64.tar.gz", 900);
        touch("other-3.0-linux-64.tar.gz", 900);
        touch("demo-linux-64.tar.gz", 900);
        touch("demo-3.0-linux-64.tar", 900);
        let newest = newest_archive_in(dist.path(), "demo", "linux-64").expect("an archive");
        assert_eq!(newest, dist.path().join("demo-1.1-linux-64.zip"));
        // A directory counts only as pack's `dir` output (its manifest sidecar beside it).
        let packed_dir = dist.path().join("demo-1.2-linux-64");
        std::fs::create_dir(&packed_dir).expect("mkdir");
        let newest = newest_archive_in(dist.path(), "demo", "linux-64").expect("an archive");
        assert_eq!(newest, dist.path().join("demo-1.1-linux-64.zip"));
        touch("demo-1.2-linux-64.manifest.json", 300);
        let newest = newest_archive_in(dist.path(), "demo", "linux-64").expect("an archive");
        assert_eq!(newest, packed_dir);
    }
}
