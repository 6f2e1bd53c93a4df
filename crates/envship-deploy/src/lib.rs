//! `envship deploy` and `envship rollback`: put an archive live on a production host,
//! atomically and on record, and switch back.
//!
//! **Owns**: fetching an archive from a deploy SOURCE (path, drop directory, URL, `github:`)
//! ([`source`]), verifying it against its sidecars ([`verify`]), checking that this host can
//! run it ([`host`]), the layout under ROOT and the moves that keep it consistent ([`live`]),
//! the lock ([`lock`]), `--test` in the deployed copy (through the sandbox's runner, see
//! [`self_test`]), rollback ([`rollback()`]) and the deployment log ([`record`]).
//!
//! **Must not know**: how archives are written or read (envship-pack unpacks and relocates),
//! how a test script is run (envship-sandbox), the GitHub API (envship-publish's client), or
//! anything about the CLI: it returns a [`DeployOutcome`] and never prints.
//!
//! Layout under ROOT: `NAME/VERSION/` (complete environments), `NAME/current` → `VERSION` (a
//! relative symlink), and `.envship/` (the `lock`, `deployments.jsonl`, test logs, downloads).
//! Beside each version, written as the last step before the switch: `NAME/.VERSION.tree.json`,
//! the record of the deployed tree after relocation ([`live::record_path`],
//! [`envship_pack::tree`]), and `NAME/.VERSION.manifest.json`, a copy of the archive's manifest
//! ([`live::manifest_path`]); a forced redeploy rewrites both, and the next deploy removes those
//! whose version directory is gone.
//!
//! Crash safety (kill -9 at any point leaves `current` pointing at a complete version): an
//! archive is extracted into `NAME/.VERSION.partial-XXXX` and renamed to `VERSION` only once
//! extracted and relocated; `current` is switched by creating a new symlink under a temp name
//! and renaming it over the old one; `--force` swaps the new tree with the old one in one
//! `renameat2(RENAME_EXCHANGE)`. Leftovers of a killed deploy (partials, temp links, swapped-out
//! trees) are removed by the next deploy, under the lock. The lock (`flock` on
//! `.envship/lock`) serializes deploys and rollbacks and dies with its holder.
//!
//! Without `renameat2` (Linux before 3.15, as on RHEL 6; file systems without
//! `RENAME_EXCHANGE`, such as NFS) a forced replacement takes two renames, between which
//! `VERSION` is missing. So when `current` points at `VERSION`, it is first pointed at the
//! staged tree, then the old tree is renamed away and the new one in, then `current` is pointed
//! back (with a link prepared before the second rename, so `current` dangles only between two
//! consecutive renames). A deploy killed in between leaves `current` naming the staged tree's
//! hidden directory; the next deploy or rollback finishes the move under the lock (see
//! [`live::repair_current`]).

mod deploy;
mod error;
pub mod host;
pub mod linked;
pub mod live;
pub mod lock;
pub mod record;
mod rollback;
pub mod self_test;
pub mod source;
pub mod trust;
pub mod verify;

use std::{path::PathBuf, time::Duration};

use envship_publish::GithubConfig;
use envship_spec::Target;

pub use deploy::deploy;
pub use error::DeployError;
pub use host::{check_host, target_requirements};
pub use live::{current_version, repair_current};
pub use lock::DeployLock;
pub use record::Record;
pub use rollback::rollback;
pub use source::Source;

/// The state directory under ROOT.
pub const STATE_DIR: &str = ".envship";
/// Name of the symlink to the live version.
pub const CURRENT: &str = "current";
/// Where `--test` finds the project's test script inside the environment.
pub const TEST_SCRIPT: &str = "share/envship/run-test.sh";
/// Test-only: the deploy step at which to stop (see [`pause_point`]).
pub const PAUSE_ENV: &str = "ENVSHIP_DEPLOY_PAUSE_AT";
/// Test-only: a file created when the pause step is reached.
pub const PAUSE_FILE_ENV: &str = "ENVSHIP_DEPLOY_PAUSE_FILE";
/// Test-only: replace versions without `renameat2`, as on a kernel or file system without
/// `RENAME_EXCHANGE`, so that path is tested on every machine.
pub const NO_EXCHANGE_ENV: &str = "ENVSHIP_DEPLOY_NO_EXCHANGE";

/// What to deploy where.
#[derive(Clone, Debug)]
pub struct DeployOptions {
    /// SOURCE as given (archive, directory, URL, `github:OWNER/REPO@TAG`).
    pub source: String,
    /// The deployment root.
    pub root: PathBuf,
    /// Deploy under this name instead of the manifest's.
    pub name: Option<String>,
    /// Pick the archive of this target among several of a release or directory (archive names
    /// end with `-TARGET-SUBDIR`).
    pub target: Option<String>,
    /// Change ticket to record.
    pub ticket: Option<String>,
    /// Run the archive's test script in the deployed copy before switching.
    pub test: bool,
    /// Kill the test after this long.
    pub test_timeout: Option<Duration>,
    /// Only report what would be done.
    pub dry_run: bool,
    /// Replace an existing `ROOT/NAME/VERSION`.
    pub force: bool,
    /// The host to check compatibility against; `None` detects this machine.
    pub host: Option<Target>,
    /// API settings for `github:` sources (`repo` is taken from the source).
    pub github: GithubConfig,
    /// Extraction threads (0 = all cores).
    pub jobs: usize,
    /// Extract every file, instead of hard-linking those the live version already holds.
    pub no_link: bool,
    /// A policy from the command line (checked as well as the root's `trust.toml`) and the
    /// Sigstore roots.
    pub trust: envship_trust::check::TrustOptions,
}

/// What a deploy did (or, with `dry_run`, would do).
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeployOutcome {
    /// Environment name.
    pub name: String,
    /// Version.
    pub version: String,
    /// sha256 of the archive.
    pub sha256: String,
    /// `ROOT/NAME/VERSION`.
    pub path: PathBuf,
    /// What `current` pointed at before.
    pub previous: Option<String>,
    /// Every action, in order, as a sentence.
    pub actions: Vec<String>,
    /// The test log, when `--test` ran.
    pub test_log: Option<PathBuf>,
    /// Nothing was changed.
    pub dry_run: bool,
    /// With `dry_run`: what changes from the version `current` points at.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<envship_pack::diff::ReleaseDiff>,
    /// What the trust policies verified (`None`: no policy applies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust: Option<envship_trust::check::Verified>,
}

/// Rolling back.
#[derive(Clone, Debug)]
pub struct RollbackOptions {
    /// The deployment root.
    pub root: PathBuf,
    /// The environment.
    pub name: String,
    /// Version to switch to; default: the one `current` replaced.
    pub to: Option<String>,
    /// Change ticket to record.
    pub ticket: Option<String>,
    /// Only report.
    pub dry_run: bool,
}

/// Test-only hook: when `ENVSHIP_DEPLOY_PAUSE_AT` names `step`, create the file named by
/// `ENVSHIP_DEPLOY_PAUSE_FILE` and sleep, so a test can kill the process exactly there.
pub fn pause_point(step: &str) {
    if std::env::var(PAUSE_ENV).as_deref() == Ok(step) {
        if let Ok(f) = std::env::var(PAUSE_FILE_ENV) {
            let _ = std::fs::write(f, step);
        }
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The steps `pause_point` is called with, in order.
pub const STEPS: &[&str] = &[
    "fetched",
    "locked",
    "extracted",
    "installed",
    "tested",
    "linked",
    "switched",
    "recorded",
];

/// The pause points inside a forced replacement of the version `current` points at, when it
/// takes two renames (no `renameat2`): `current` points at the staged tree, the old tree is
/// renamed away, the new tree is renamed in (`current` still names the staged tree).
pub const NO_EXCHANGE_STEPS: &[&str] = &["staged", "retired", "moved-in"];
