//! [`ship`]: lock → build → audit → pack → test, stopping at the first failing gate.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use envship_audit::{Allowlist, AuditError, AuditOptions};
use envship_env::pip::PipOptions;
use envship_env::{BuildError, BuildRequest, LockRequest};
use envship_pack::{Format, ManifestTarget, PackError, PackOptions, PackOutput, Sidecar};
use envship_sandbox::{Isolation, RootfsSource, SandboxError, TestOptions, TestOutcome};
use envship_spec::Progress;

use crate::{
    report::{ShipReport, Stage, StageDetail, StageResult},
    Project,
};

/// How to ship, with every default already resolved (see [`Project`]'s methods).
#[derive(Clone, Debug)]
pub struct ShipOptions {
    /// The build prefix.
    pub prefix: PathBuf,
    /// How to lock.
    pub lock: LockRequest,
    /// Where pip finds the `pip:` section's packages.
    pub pip: PipOptions,
    /// Whether packages' link scripts run.
    pub link_scripts: envship_spec::config::LinkScripts,
    /// The test script.
    pub script: PathBuf,
    /// Where production unpacks the archive; the test runs there.
    pub dest_prefix: String,
    /// The archive format.
    pub format: Format,
    /// The release version.
    pub version: String,
    /// Where the archive and its reports go.
    pub out_dir: PathBuf,
    /// Accepted audit exceptions.
    pub allowlist: Allowlist,
    /// How the test is isolated.
    pub isolation: Isolation,
    /// The production userland the test runs over, if not the host's.
    pub rootfs: Option<RootfsSource>,
    /// The test's time limit.
    pub timeout: Duration,
    /// Where to write a JUnit report of the test.
    pub junit: Option<PathBuf>,
    /// Whether pack reuses compressed blocks of earlier packs.
    pub reuse: envship_pack::BlockReuse,
}

/// Where [`ship`] reports what it is doing.
pub trait Reporter: Send + Sync {
    /// A stage starts; `what` says on what, for people.
    fn stage(&self, stage: Stage, what: &str);
    /// A line of the test script's output.
    fn test_line(&self, line: &str);
    /// Progress of the stages' long steps (downloads, files scanned, bytes packed).
    fn progress(&self) -> Arc<dyn Progress>;
}

/// Why a ship run stopped with an error (a failed gate is not an error: see
/// [`ShipReport::passed`]).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ShipError {
    /// The test script does not exist; nothing was built.
    #[error("test script {} does not exist", path.display())]
    #[diagnostic(
        code(envship::ship::no_script),
        help("write a bash script that exercises the environment (set -e; imports; pytest), or pass --script")
    )]
    NoScript {
        /// The script that was looked for.
        path: PathBuf,
    },

    /// Lock or build failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Build(#[from] BuildError),

    /// The audit could not run.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Audit(#[from] AuditError),

    /// Pack failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Pack(#[from] PackError),

    /// The test could not run (a failing test is a result, not this).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Test(#[from] SandboxError),

    /// An output (the test script's copy, the audit report) could not be written.
    #[error("cannot write {}", path.display())]
    #[diagnostic(code(envship::ship::write))]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The evidence page could not be written.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Evidence(#[from] envship_evidence::EvidenceError),

    /// A stop was requested (SIGINT, SIGTERM); the run ended before the stage named.
    #[error("interrupted before the {} stage", next.as_str())]
    #[diagnostic(code(envship::ship::interrupted))]
    Interrupted {
        /// The stage that did not start.
        next: Stage,
    },
}

/// Between stages, a requested stop ends the run before the next stage starts.
fn stop_if_requested(next: Stage) -> Result<(), ShipError> {
    if envship_spec::cancel::is_requested() {
        return Err(ShipError::Interrupted { next });
    }
    Ok(())
}

impl ShipError {
    /// The stage's own error, for callers that classify errors by type (e.g. exit codes).
    pub fn stage_error(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShipError::Build(e) => Some(e),
            ShipError::Audit(e) => Some(e),
            ShipError::Pack(e) => Some(e),
            ShipError::Test(e) => Some(e),
            ShipError::NoScript { .. }
            | ShipError::Write { .. }
            | ShipError::Evidence(_)
            | ShipError::Interrupted { .. } => None,
        }
    }
}

/// A run that stopped with an error, with the report of what ran before it.
#[derive(Debug)]
pub struct ShipFailed {
    /// What ran.
    pub report: ShipReport,
    /// Why it stopped.
    pub error: ShipError,
}

/// Run the pipeline for `project`. A failed gate (audit errors, a failing test) is an `Ok`
/// report with `passed == false`; an error that stopped the run is [`ShipFailed`].
pub fn ship(
    project: &Project,
    opts: &ShipOptions,
    reporter: &dyn Reporter,
) -> Result<ShipReport, Box<ShipFailed>> {
    let started = Instant::now();
    let mut run = Run {
        project,
        opts,
        reporter,
        report: ShipReport::new(
            project.name(),
            opts.version.clone(),
            project.target.name.clone(),
        ),
    };
    let result = run.stages();
    run.report.seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(()) => Ok(run.report),
        Err(error) => Err(Box::new(ShipFailed {
            report: run.report,
            error,
        })),
    }
}

/// One run's state: the report grows as the stages pass.
struct Run<'a> {
    project: &'a Project,
    opts: &'a ShipOptions,
    reporter: &'a dyn Reporter,
    report: ShipReport,
}

impl Run<'_> {
    fn stages(&mut self) -> Result<(), ShipError> {
        // A missing test script is an error before anything is built (the workflow envship
        // replaces skipped the tests silently).
        if !self.opts.script.is_file() {
            return Err(ShipError::NoScript {
                path: self.opts.script.clone(),
            });
        }
        self.build()?;
        stop_if_requested(Stage::Audit)?;
        self.bundle_test_inputs()?;
        if !self.audit()? {
            return Ok(());
        }
        stop_if_requested(Stage::Pack)?;
        let packed = self.pack()?;
        stop_if_requested(Stage::Test)?;
        let outcome = self.test(&packed)?;
        // The audit summary and the test result go into the manifest sidecar; the archive's
        // bytes (and its sha256) do not change after pack.
        let mut manifest = envship_pack::Manifest::read(&packed.manifest_path)?;
        manifest.audit =
            (self.report.audit.as_ref()).and_then(|a| serde_json::to_value(&a.summary).ok());
        manifest.test = serde_json::to_value(&outcome).ok();
        self.report.passed = outcome.passed;
        let page = crate::evidence::write_page(
            &self.report,
            &self.opts.prefix,
            &self.project.dir(),
            &packed.archive,
            &mut manifest,
        )?;
        manifest.write(&packed.manifest_path)?;
        self.report.evidence = Some(page);
        Ok(())
    }

    fn push(&mut self, stage: Stage, ok: bool, started: Instant, detail: StageDetail) {
        self.report.stages.push(StageResult {
            stage,
            ok,
            seconds: started.elapsed().as_secs_f64(),
            detail,
        });
    }

    fn stem(&self) -> String {
        envship_pack::default_file_name(
            &self.report.name,
            &self.opts.version,
            &self.project.target.name,
            &self.project.target.subdir,
            Format::Dir,
        )
    }

    fn build(&mut self) -> Result<(), ShipError> {
        let t = Instant::now();
        let request = BuildRequest {
            prefix: self.opts.prefix.clone(),
            lock: self.opts.lock.clone(),
            pip: self.opts.pip.clone(),
            link_scripts: self.opts.link_scripts,
        };
        self.reporter.stage(
            Stage::Build,
            &format!(
                "lock + build {} for {}",
                self.report.name, self.project.target
            ),
        );
        let built = envship_env::build(
            &self.project.env_file,
            &self.project.target,
            &request,
            self.reporter.progress(),
        );
        let built = match built {
            Ok(b) => b,
            Err(e) => {
                self.push(Stage::LockAndBuild, false, t, StageDetail::Failed);
                return Err(e.into());
            }
        };
        self.report.link_scripts = built.link_scripts.clone();
        self.report.stages.push(StageResult {
            stage: Stage::Lock,
            ok: true,
            seconds: built.lock.seconds,
            detail: StageDetail::Lock {
                packages: built.lock.packages.len(),
                reused: built.lock.reused,
            },
        });
        self.report.stages.push(StageResult {
            stage: Stage::Build,
            ok: true,
            seconds: (t.elapsed().as_secs_f64() - built.lock.seconds).max(0.0),
            detail: StageDetail::Build {
                installed: built.installed,
                pip: built.pip.as_ref().map_or(0, |p| p.packages.len()),
                noop: built.noop,
            },
        });
        Ok(())
    }

    /// The test script and the environment file travel inside the archive, so the deployer can
    /// re-run the same test in production (`envship deploy --test`).
    fn bundle_test_inputs(&self) -> Result<(), ShipError> {
        let share = self.opts.prefix.join("share").join("envship");
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ShipError::Write { path, source }
        };
        fs_err::create_dir_all(&share).map_err(write_err(&share))?;
        let script = share.join("run-test.sh");
        fs_err::copy(&self.opts.script, &script).map_err(write_err(&script))?;
        let env = share.join("environment.yml");
        fs_err::copy(&self.project.env_file.path, &env).map_err(write_err(&env))?;
        Ok(())
    }

    /// The audit, kept in the report; whether it passed (the run stops when not).
    fn audit(&mut self) -> Result<bool, ShipError> {
        let t = Instant::now();
        let prefix = &self.opts.prefix;
        self.reporter.stage(
            Stage::Audit,
            &format!(
                "audit {} for {}",
                prefix.display(),
                self.project.target.name
            ),
        );
        let options = AuditOptions {
            target: self.project.target.clone(),
            build_prefix: None,
            dest_prefix: Some(self.opts.dest_prefix.clone()),
            strict_weak: false,
            allowlist: self.opts.allowlist.clone(),
            // Every ELF file's needs go into the report: the evidence page lists the highest
            // GLIBC/GLIBCXX version of each file against the target's limit, not only the
            // files over it.
            inventory: true,
        };
        let progress = self.reporter.progress();
        let audit = envship_audit::audit(prefix, &options, progress.as_ref())?;
        let out_dir = &self.opts.out_dir;
        fs_err::create_dir_all(out_dir).map_err(|source| ShipError::Write {
            path: out_dir.clone(),
            source,
        })?;
        let path = Sidecar::Audit.path_for(&out_dir.join(self.stem()));
        envship_spec::output::write_atomic(&path, audit.to_json().as_bytes()).map_err(
            |source| ShipError::Write {
                path: path.clone(),
                source,
            },
        )?;
        self.report.audit_report = Some(path);
        let passed = audit.passed();
        let s = &audit.summary;
        let detail = StageDetail::Audit {
            errors: s.errors,
            warnings: s.warnings,
            elf_files: s.elf_files,
        };
        self.push(Stage::Audit, passed, t, detail);
        self.report.audit = Some(audit);
        Ok(passed)
    }

    fn pack(&mut self) -> Result<PackOutput, ShipError> {
        let t = Instant::now();
        let (opts, target) = (self.opts, &self.project.target);
        self.reporter.stage(
            Stage::Pack,
            &format!("pack {} ({})", opts.prefix.display(), opts.format),
        );
        let name = self.report.name.clone();
        let file = envship_pack::default_file_name(
            &name,
            &opts.version,
            &target.name,
            &target.subdir,
            opts.format,
        );
        let pack_options = PackOptions {
            prefix: opts.prefix.clone(),
            name,
            version: opts.version.clone(),
            output: Some(opts.out_dir.join(file)),
            target: ManifestTarget {
                name: target.name.clone(),
                subdir: target.subdir.clone(),
                glibc: Some(target.glibc.to_string()),
            },
            format: opts.format,
            // A squashfs image is read-only: it is baked for where the test (and the
            // deployment) puts it.
            dest_prefix: (opts.format == Format::Squashfs).then(|| opts.dest_prefix.clone()),
            force: true,
            reuse: opts.reuse.clone(),
            ..PackOptions::default()
        };
        let progress = self.reporter.progress();
        let packed = envship_pack::pack(&pack_options, progress.as_ref())?;
        let archive_bytes = fs_err::metadata(&packed.archive).map_or(0, |m| m.len());
        self.report.archive = Some(packed.archive.clone());
        self.report.sha256 = packed.sha256.clone();
        self.report.manifest = Some(packed.manifest_path.clone());
        let detail = StageDetail::Pack {
            files: packed.file_count,
            archive_bytes,
        };
        self.push(Stage::Pack, true, t, detail);
        Ok(packed)
    }

    fn test(&mut self, packed: &PackOutput) -> Result<TestOutcome, ShipError> {
        let t = Instant::now();
        let opts = self.opts;
        self.reporter.stage(
            Stage::Test,
            &format!("test {} at {}", packed.archive.display(), opts.dest_prefix),
        );
        let test = TestOptions {
            archive: packed.archive.clone(),
            script: opts.script.clone(),
            project_dir: self.project.dir(),
            environment_file: Some(self.project.env_file.path.clone()),
            environment_name: self.report.name.clone(),
            dest_prefix: PathBuf::from(&opts.dest_prefix),
            isolation: opts.isolation.clone(),
            rootfs: opts.rootfs.clone(),
            rootfs_cache_dir: None,
            timeout: opts.timeout,
            log_path: Sidecar::TestLog.path_for(&opts.out_dir.join(self.stem())),
            extra_env: vec![],
        };
        let reporter = self.reporter;
        let progress = reporter.progress();
        let outcome = envship_sandbox::run_test_streaming(&test, progress.as_ref(), &mut |line| {
            reporter.test_line(line)
        })?;
        self.report.test_log = Some(outcome.log_path.clone());
        if let Some(junit) = &opts.junit {
            let log = std::fs::read_to_string(&outcome.log_path).unwrap_or_default();
            envship_sandbox::write_junit(junit, &self.report.name, &[(outcome.clone(), log)])?;
        }
        let detail = StageDetail::Test {
            summary: outcome.summary(),
        };
        self.push(Stage::Test, outcome.passed, t, detail);
        Ok(outcome)
    }
}
