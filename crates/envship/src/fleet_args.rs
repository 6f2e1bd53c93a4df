//! `--members GLOB` and `--targets LIST`, which narrow a workspace's pairs for `envship matrix`
//! and `envship ship --all`.

/// Which of a workspace's (member, target) pairs to take.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PairFilterArgs {
    /// Only members whose name (directory relative to the workspace root) matches this glob.
    #[arg(long, value_name = "GLOB")]
    pub members: Option<String>,
    /// Only these targets (comma-separated).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub targets: Vec<String>,
}

impl PairFilterArgs {
    /// Whether a filter was given.
    pub fn is_set(&self) -> bool {
        self.members.is_some() || !self.targets.is_empty()
    }
}
