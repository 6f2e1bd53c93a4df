//! What [`crate::ship`] did, stage by stage, as data: the caller decides how to show it.

use std::path::PathBuf;

use envship_audit::AuditReport;
use serde::Serialize;

/// A stage of the pipeline as the report names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Solving environment.yml into envship.lock.
    Lock,
    /// Installing the lock (and the `pip:` section) into the build prefix.
    Build,
    /// Lock and build together, when they failed before either could report.
    #[serde(rename = "lock+build")]
    LockAndBuild,
    /// Checking the prefix against the target.
    Audit,
    /// Writing the archive and its sidecars.
    Pack,
    /// Running the test script against the archive at the destination prefix.
    Test,
}

impl Stage {
    /// The stage's name in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Lock => "lock",
            Stage::Build => "build",
            Stage::LockAndBuild => "lock+build",
            Stage::Audit => "audit",
            Stage::Pack => "pack",
            Stage::Test => "test",
        }
    }
}

/// The figures a stage produced.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StageDetail {
    /// The lock step.
    Lock {
        /// Packages in the lock.
        packages: usize,
        /// Whether the lock was up to date and not solved again.
        reused: bool,
    },
    /// The build step.
    Build {
        /// Conda packages installed or updated.
        installed: usize,
        /// Distributions pip installed.
        pip: usize,
        /// Whether nothing had to change.
        noop: bool,
    },
    /// The audit.
    Audit {
        /// Errors left.
        errors: u64,
        /// Warnings.
        warnings: u64,
        /// ELF files checked.
        elf_files: u64,
    },
    /// The archive.
    Pack {
        /// Files in the archive.
        files: u64,
        /// Size of the archive on disk.
        archive_bytes: u64,
    },
    /// The test run.
    Test {
        /// One line saying how it ended (`passed in 1.2s`, `exit status 1`, …).
        summary: String,
    },
    /// The stage failed with an error (in [`crate::ShipFailed`]).
    Failed,
}

/// One stage's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageResult {
    /// Which stage.
    pub stage: Stage,
    /// Whether it passed.
    pub ok: bool,
    /// Wall time.
    pub seconds: f64,
    /// Its figures.
    pub detail: StageDetail,
}

/// What a ship run did. Paths of outputs are set as far as the run got.
#[derive(Clone, Debug, Serialize)]
pub struct ShipReport {
    /// The environment's name.
    pub name: String,
    /// The release version.
    pub version: String,
    /// The target's name.
    pub target: String,
    /// Whether every stage passed, the test included.
    pub passed: bool,
    /// The stages that ran, in order.
    pub stages: Vec<StageResult>,
    /// The archive.
    pub archive: Option<PathBuf>,
    /// Its sha256 (none for a directory "archive").
    pub sha256: Option<String>,
    /// The manifest sidecar.
    pub manifest: Option<PathBuf>,
    /// The audit's JSON report.
    pub audit_report: Option<PathBuf>,
    /// The test's log.
    pub test_log: Option<PathBuf>,
    /// The evidence page beside the archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<PathBuf>,
    /// The packages' link scripts the build ran (or skipped), with their messages.
    pub link_scripts: Vec<envship_env::link_scripts::ScriptRun>,
    /// The audit itself, when it ran (callers show its table when it failed).
    #[serde(skip)]
    pub audit: Option<AuditReport>,
    /// Wall time of the whole run.
    pub seconds: f64,
}

impl ShipReport {
    pub(crate) fn new(name: String, version: String, target: String) -> Self {
        Self {
            name,
            version,
            target,
            passed: false,
            stages: Vec::new(),
            archive: None,
            sha256: None,
            manifest: None,
            audit_report: None,
            test_log: None,
            evidence: None,
            link_scripts: Vec::new(),
            audit: None,
            seconds: 0.0,
        }
    }
}
