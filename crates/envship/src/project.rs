//! What the subcommands share about the project: `-f/--file`, and writing outputs. The project
//! model itself ([`envship_ship::Project`]) lives in the library.

use std::path::{Path, PathBuf};

pub use envship_ship::{Project, ProjectError, TargetRequest};

/// `-f/--file`, shared by every subcommand that reads environment.yml.
#[derive(clap::Args, Debug, Clone)]
pub struct FileArgs {
    /// The environment file (conda's environment.yml format) [default: environment.yml].
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,
}

impl FileArgs {
    /// The file to read: the one named, else environment.yml.
    pub fn path(&self) -> PathBuf {
        self.file
            .clone()
            .unwrap_or_else(|| PathBuf::from(envship_ship::DEFAULT_ENV_FILE))
    }

    /// Load the project from the file named, else from environment.yml in the current
    /// directory (each missing file has its own error).
    pub fn load(&self, request: &TargetRequest) -> Result<Project, ProjectError> {
        match &self.file {
            Some(file) => Project::load(file, request),
            None => Project::load_in_dir(Path::new(""), request),
        }
    }
}

/// Write an output file (report, summary) atomically, naming it in the error.
pub fn write_output(path: &Path, bytes: &[u8]) -> miette::Result<()> {
    envship_spec::output::write_atomic(path, bytes)
        .map_err(|e| miette::miette!("cannot write {}: {e}", path.display()))
}
