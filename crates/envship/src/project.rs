//! The project a command works on: the environment file, its directory's envship.toml, and the
//! target they resolve to.

use std::path::{Path, PathBuf};

use envship_spec::{EnvironmentFile, ProjectConfig, Target};

use crate::target_args::TargetArgs;

/// `-f/--file`, shared by every subcommand that reads environment.yml.
#[derive(clap::Args, Debug, Clone)]
pub struct FileArgs {
    /// The environment file (conda's environment.yml format).
    #[arg(
        short = 'f',
        long = "file",
        default_value = "environment.yml",
        value_name = "FILE"
    )]
    pub file: PathBuf,
}

/// A loaded project.
pub struct Project {
    /// The parsed environment file.
    pub env_file: EnvironmentFile,
    /// envship.toml, or defaults.
    pub config: ProjectConfig,
    /// Where envship.toml was found.
    pub config_path: Option<PathBuf>,
    /// The target after command-line overrides.
    pub target: Target,
}

impl Project {
    /// Load the file, its config and the target; warnings about the file go to the log.
    pub fn load(file: &Path, target_args: &TargetArgs) -> miette::Result<Self> {
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
        let mut target_args = target_args.clone();
        // envship.toml's overrides apply only when the command line names no target of its own.
        if target_args.target.is_none() {
            let o = &config.overrides;
            target_args.glibc = target_args.glibc.or(o.glibc.clone());
            target_args.linux = target_args.linux.or(o.linux.clone());
            target_args.cuda = target_args.cuda.or(o.cuda.clone());
            target_args.archspec = target_args.archspec.or(o.archspec.clone());
        }
        let target = target_args.resolve(config.target.as_deref())?;
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
}

/// `git describe --tags` of the project, else today's date (YYYY.MM.DD).
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

/// Write an output file (report, summary) atomically, naming it in the error.
pub fn write_output(path: &Path, bytes: &[u8]) -> miette::Result<()> {
    envship_spec::output::write_atomic(path, bytes)
        .map_err(|e| miette::miette!("cannot write {}: {e}", path.display()))
}
