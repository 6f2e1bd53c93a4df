//! envship's test stage: run a project's test script against the **archive**, unpacked at the
//! **destination prefix** the way a user unpacks it (`tar -xf`, `. bin/activate`,
//! `conda-unpack`), never against the build prefix.
//!
//! Isolation modes ([`Isolation`]):
//! - **namespace** (default): new user + mount + PID + network namespaces, no privileges needed
//!   where the kernel allows unprivileged user namespaces. The root is a private directory with
//!   the host's `/usr`, `/bin`, `/lib*`, `/sbin`, `/etc` bound read-only — or, with `--rootfs`,
//!   a production userland (a directory or a `docker save`/OCI tarball) — plus a fresh `/proc`, a
//!   minimal `/dev`, a private `/tmp`, only loopback networking, and a cleared environment.
//! - **container**: the same mounts and steps through `docker run` / `podman run`.
//! - **none**: unpack at the destination prefix (or a temp dir) on the host, unisolated.
//!
//! The original workflow's contract holds in every mode that can mount: project at
//! `/tmp/project` (read-only, the cwd), environment file at `/tmp/environment.yml`, script at
//! `/tmp/run-test.sh`, `ENVIRONMENT_NAME` set. The script's exit code decides; a failing script is
//! a [`TestOutcome`], not an error.
//!
//! [`run_installed_test`] runs a test script against an environment that is already unpacked
//! and relocated where it is used (`deploy --test`), on the host, through the same runner: the
//! tree has one test runner.
//!
//! **Owns**: the runner script (`runner`), each backend in its module
//! (`namespace`, `container`, `unisolated`), process handling (streamed output, log, timeout
//! that kills the whole tree), production root filesystems and JUnit reports.
//!
//! **Must not know**: how an archive is made or relocated (envship-pack's), where a deploy puts
//! versions or how it switches them (envship-deploy's), or the CLI; it never prints.

mod container;
mod error;
mod exec;
mod glibc;
mod junit;
mod namespace;
mod options;
mod rootfs;
mod runner;
mod unisolated;

use std::{
    ffi::OsString,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
};

pub use container::{container_command, engine_available, ContainerSpec};
pub use envship_spec::{NoProgress, Progress};
pub use error::SandboxError;
pub use glibc::rootfs_glibc;
pub use junit::{junit_xml, write_junit};
pub use namespace::namespaces_available;
pub use options::{Engine, Isolation, RootfsSource, Step, TestOptions, TestOutcome};
pub use rootfs::{default_cache_dir, prepare_rootfs, unpack_image_cached};
pub use runner::ArchiveFormat;
pub use unisolated::{run_installed_test, InstalledTest};

/// Host directories bound read-only into the namespace sandbox (when they exist).
pub(crate) const HOST_DIRS: &[&str] = &[
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc",
];
/// Top-level directories of a rootfs that the sandbox provides itself.
pub(crate) const ROOTFS_SKIP: &[&str] = &[
    "proc",
    "dev",
    "sys",
    "tmp",
    "run",
    "home",
    "root",
    "mnt",
    "media",
    "lost+found",
    "boot",
];
/// Top-level directories a destination prefix may not be in.
const DEST_FORBIDDEN: &[&str] = &[
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev", "sys",
];

/// Inside the sandbox: where the runner's state and the archive live.
pub(crate) const ENVSHIP_DIR: &str = "/tmp/.envship";
/// `HOME` inside the namespace sandbox: a fresh empty directory.
pub(crate) const SANDBOX_HOME: &str = "/home/envship";

/// Runs the test; output lines go to `progress.message("test", line)`.
pub fn run_test(opts: &TestOptions, progress: &dyn Progress) -> Result<TestOutcome, SandboxError> {
    run_test_streaming(opts, progress, &mut |line| progress.message("test", line))
}

/// Runs the test, handing each line of the script's combined stdout/stderr to `on_line` as it
/// comes (the caller adds its prefix) and saving it to `opts.log_path`.
pub fn run_test_streaming(
    opts: &TestOptions,
    progress: &dyn Progress,
    on_line: &mut dyn FnMut(&str),
) -> Result<TestOutcome, SandboxError> {
    let inputs = validate(opts)?;
    match &opts.isolation {
        Isolation::Namespace => namespace::run(opts, &inputs, progress, on_line),
        Isolation::Container { engine, image } => {
            container::run(opts, &inputs, *engine, image, on_line)
        }
        Isolation::None => unisolated::run(opts, &inputs, on_line),
    }
}

/// Inputs after validation: absolute, existing paths.
pub(crate) struct Inputs {
    pub(crate) archive: PathBuf,
    pub(crate) format: ArchiveFormat,
    pub(crate) script: PathBuf,
    pub(crate) project: PathBuf,
    pub(crate) environment_file: Option<PathBuf>,
}

pub(crate) fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The test script is a readable regular file.
pub(crate) fn check_script(script: &Path) -> Result<(), SandboxError> {
    match std::fs::metadata(script) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SandboxError::MissingScript {
                path: script.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(SandboxError::UnreadableScript {
                path: script.to_path_buf(),
                source,
            })
        }
        Ok(m) if !m.is_file() => {
            return Err(SandboxError::UnreadableScript {
                path: script.to_path_buf(),
                source: std::io::Error::other("not a regular file"),
            })
        }
        Ok(_) => {}
    }
    std::fs::File::open(script)
        .map(drop)
        .map_err(|source| SandboxError::UnreadableScript {
            path: script.to_path_buf(),
            source,
        })
}

/// `path` (the `what` of the run) is an existing directory.
pub(crate) fn require_dir(what: &'static str, path: &Path) -> Result<(), SandboxError> {
    let missing = |source| SandboxError::MissingInput {
        what,
        path: path.to_path_buf(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(missing(std::io::Error::other("not a directory"))),
        Err(source) => Err(missing(source)),
    }
}

/// Everything that can be checked before anything runs.
fn validate(opts: &TestOptions) -> Result<Inputs, SandboxError> {
    check_script(&opts.script)?;
    let archive_meta =
        std::fs::metadata(&opts.archive).map_err(|source| SandboxError::MissingInput {
            what: "archive",
            path: opts.archive.clone(),
            source,
        })?;
    if archive_meta.is_file() {
        std::fs::File::open(&opts.archive).map_err(|source| SandboxError::MissingInput {
            what: "archive",
            path: opts.archive.clone(),
            source,
        })?;
    }
    let format = ArchiveFormat::detect(&opts.archive)?;
    require_dir("project directory", &opts.project_dir)?;
    if let Some(env) = &opts.environment_file {
        std::fs::File::open(env).map_err(|source| SandboxError::MissingInput {
            what: "environment file",
            path: env.clone(),
            source,
        })?;
    }
    let dest = &opts.dest_prefix;
    let bad = |reason: &str| SandboxError::BadDestPrefix {
        path: dest.clone(),
        reason: reason.into(),
    };
    if !dest.is_absolute() {
        return Err(bad("not an absolute path"));
    }
    if dest
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(bad("contains `..`"));
    }
    let top = top_component(dest).ok_or_else(|| bad("is the root directory"))?;
    // Without a sandbox the host's directories are what they are; inside one, these are
    // read-only binds.
    if opts.isolation != Isolation::None && DEST_FORBIDDEN.contains(&top.as_str()) {
        return Err(bad(&format!(
            "/{top} is a read-only system directory in the sandbox"
        )));
    }
    if dest.starts_with("/tmp/project") || dest.starts_with(ENVSHIP_DIR) {
        return Err(bad(
            "overlaps a sandbox mount (/tmp/project, /tmp/.envship)",
        ));
    }
    Ok(Inputs {
        archive: absolute(&opts.archive),
        format,
        script: absolute(&opts.script),
        project: absolute(&opts.project_dir),
        environment_file: opts.environment_file.as_deref().map(absolute),
    })
}

pub(crate) fn top_component(p: &Path) -> Option<String> {
    p.components().find_map(|c| match c {
        std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
        _ => None,
    })
}

/// The runner script for the sandboxes that mount their inputs at the fixed paths (namespace,
/// container): the archive under `/tmp/.envship`, the project at `/tmp/project`, the script at
/// `/tmp/run-test.sh`. Returns it with where the archive and the step marker are inside.
pub(crate) fn mounted_runner(opts: &TestOptions, inputs: &Inputs) -> (OsString, PathBuf, PathBuf) {
    let archive_in = Path::new(ENVSHIP_DIR).join(archive_name(&inputs.archive));
    let state_in = Path::new(ENVSHIP_DIR).join("state/step");
    let script = runner::runner_script(&runner::RunnerPaths {
        install: runner::Install::Unpack {
            archive: &archive_in,
            format: inputs.format,
        },
        dest: &opts.dest_prefix,
        project: Path::new("/tmp/project"),
        script: Path::new("/tmp/run-test.sh"),
        state_file: Some(&state_in),
    });
    (script, archive_in, state_in)
}

/// The environment the script sees: the host's LANG, LC_*, TERM, TZ, then ours.
pub(crate) fn sandbox_env(
    environment_name: &str,
    extra_env: &[(String, String)],
    home: &Path,
) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            k == "LANG" || k == "TERM" || k == "TZ" || k.starts_with("LC_")
        })
        .collect();
    env.sort();
    env.push(("PATH".into(), "/usr/bin:/bin".into()));
    env.push(("HOME".into(), home.into()));
    env.push(("ENVIRONMENT_NAME".into(), environment_name.into()));
    for (k, v) in extra_env {
        env.push((k.into(), v.into()));
    }
    env
}

pub(crate) fn archive_name(archive: &Path) -> String {
    archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into())
}

pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SandboxError + 'a {
    move |e| SandboxError::io(action, path, e)
}

/// A temp dir removed on drop even when the sandbox left read-only directories in it.
pub(crate) struct WorkDir(Option<tempfile::TempDir>);

impl WorkDir {
    pub(crate) fn new() -> Result<Self, SandboxError> {
        let tmp = tempfile::Builder::new()
            .prefix("envship-test-")
            .tempdir()
            .map_err(io_err("create a temp dir in", &std::env::temp_dir()))?;
        Ok(Self(Some(tmp)))
    }
    pub(crate) fn path(&self) -> &Path {
        self.0
            .as_ref()
            .map_or(Path::new("/nonexistent"), |t| t.path())
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            rootfs::make_tree_writable(t.path());
            let _ = t.close();
        }
    }
}

fn read_step(state_file: &Path) -> Option<Step> {
    std::fs::read_to_string(state_file)
        .ok()
        .and_then(|s| Step::from_marker(&s))
}

/// The outcome of a finished run of `script`, whose log is at `log_path`.
pub(crate) fn outcome(
    log_path: &Path,
    script: &Path,
    result: exec::RunResult,
    state_file: &Path,
    dest: PathBuf,
    isolation: String,
    rootfs_glibc: Option<envship_spec::DottedVersion>,
) -> TestOutcome {
    let exit_code = result.status.and_then(|s| s.code());
    let signal = result.status.and_then(|s| s.signal());
    let passed = !result.timed_out && exit_code == Some(0);
    TestOutcome {
        passed,
        exit_code: if result.timed_out { None } else { exit_code },
        signal,
        timed_out: result.timed_out,
        failed_step: if passed { None } else { read_step(state_file) },
        duration: result.duration,
        log_path: log_path.to_path_buf(),
        script: script.to_path_buf(),
        dest_prefix: dest,
        isolation,
        rootfs_glibc,
    }
}
