//! `--target NAME` and field overrides, shared by every subcommand that uses a target.

use envship_ship::TargetRequest;
use envship_spec::TargetOverrides;

/// Which production target to use, and field-by-field overrides.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TargetArgs {
    /// Production target profile (see `envship targets`). Default: what the prefix was built
    /// for (conda-meta/envship), else envship.toml's `target`, else lcls-rhel6.
    #[arg(long, short = 't', env = "ENVSHIP_TARGET")]
    pub target: Option<String>,
    /// Override the target's glibc version (`__glibc`).
    #[arg(long, value_name = "VERSION")]
    pub glibc: Option<String>,
    /// Override the target's kernel version (`__linux`).
    #[arg(long, value_name = "VERSION")]
    pub linux: Option<String>,
    /// Add or override the target's CUDA driver version (`__cuda`).
    #[arg(long, value_name = "VERSION")]
    pub cuda: Option<String>,
    /// Override the target's CPU microarchitecture (`__archspec`).
    #[arg(long, value_name = "NAME")]
    pub archspec: Option<String>,
}

impl TargetArgs {
    /// The overrides given on the command line.
    pub fn overrides(&self) -> TargetOverrides {
        TargetOverrides {
            glibc: self.glibc.clone(),
            linux: self.linux.clone(),
            cuda: self.cuda.clone(),
            archspec: self.archspec.clone(),
        }
    }

    /// The library's view of these flags.
    pub fn request(&self) -> TargetRequest {
        TargetRequest {
            profile: self.target.clone(),
            overrides: self.overrides(),
        }
    }
}
