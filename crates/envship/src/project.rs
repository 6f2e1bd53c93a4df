//! What the subcommands share about the project: `-f/--file`, and writing outputs. The project
//! model itself ([`envship_ship::Project`]) lives in the library.

use std::path::{Path, PathBuf};

pub use envship_ship::Project;

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

/// Write an output file (report, summary) atomically, naming it in the error.
pub fn write_output(path: &Path, bytes: &[u8]) -> miette::Result<()> {
    envship_spec::output::write_atomic(path, bytes)
        .map_err(|e| miette::miette!("cannot write {}: {e}", path.display()))
}
