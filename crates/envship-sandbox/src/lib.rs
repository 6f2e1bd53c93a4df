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

mod container;
mod error;
mod exec;
mod glibc;
mod junit;
mod namespace;
mod options;
mod rootfs;
mod runner;

use std::{
    ffi::OsString,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::Command,
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

use exec::{run_streaming, KillMode, LogFile};
use runner::{runner_script, RunnerPaths};

/// Host directories bound read-only into the namespace sandbox (when they exist).
const HOST_DIRS: &[&str] = &[
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc",
];
/// Top-level directories of a rootfs that the sandbox provides itself.
const ROOTFS_SKIP: &[&str] = &[
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
const ENVSHIP_DIR: &str = "/tmp/.envship";
/// `HOME` inside the namespace sandbox: a fresh empty directory.
const SANDBOX_HOME: &str = "/home/envship";

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
        Isolation::Namespace => run_namespace(opts, &inputs, progress, on_line),
        Isolation::Container { engine, image } => {
            run_container(opts, &inputs, *engine, image, on_line)
        }
        Isolation::None => run_unisolated(opts, &inputs, on_line),
    }
}

/// Inputs after validation: absolute, existing paths.
struct Inputs {
    archive: PathBuf,
    format: ArchiveFormat,
    script: PathBuf,
    project: PathBuf,
    environment_file: Option<PathBuf>,
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Everything that can be checked before anything runs.
fn validate(opts: &TestOptions) -> Result<Inputs, SandboxError> {
    match std::fs::metadata(&opts.script) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SandboxError::MissingScript {
                path: opts.script.clone(),
            })
        }
        Err(source) => {
            return Err(SandboxError::UnreadableScript {
                path: opts.script.clone(),
                source,
            })
        }
        Ok(m) if !m.is_file() => {
            return Err(SandboxError::UnreadableScript {
                path: opts.script.clone(),
                source: std::io::Error::other("not a regular file"),
            })
        }
        Ok(_) => {}
    }
    if let Err(source) = std::fs::File::open(&opts.script) {
        return Err(SandboxError::UnreadableScript {
            path: opts.script.clone(),
            source,
        });
    }
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
    match std::fs::metadata(&opts.project_dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(SandboxError::MissingInput {
                what: "project directory",
                path: opts.project_dir.clone(),
                source: std::io::Error::other("not a directory"),
            })
        }
        Err(source) => {
            return Err(SandboxError::MissingInput {
                what: "project directory",
                path: opts.project_dir.clone(),
                source,
            })
        }
    }
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

fn top_component(p: &Path) -> Option<String> {
    p.components().find_map(|c| match c {
        std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
        _ => None,
    })
}

/// The environment the script sees: the host's LANG, LC_*, TERM, TZ, then ours.
fn sandbox_env(opts: &TestOptions, home: &Path) -> Vec<(OsString, OsString)> {
    let mut env: Vec<(OsString, OsString)> = std::env::vars_os()
        .filter(|(k, _)| {
            let k = k.to_string_lossy();
            k == "LANG" || k == "TERM" || k == "TZ" || k.starts_with("LC_")
        })
        .collect();
    env.sort();
    env.push(("PATH".into(), "/usr/bin:/bin".into()));
    env.push(("HOME".into(), home.into()));
    env.push((
        "ENVIRONMENT_NAME".into(),
        opts.environment_name.clone().into(),
    ));
    for (k, v) in &opts.extra_env {
        env.push((k.into(), v.into()));
    }
    env
}

fn archive_name(archive: &Path) -> String {
    archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "archive".into())
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SandboxError + 'a {
    move |e| SandboxError::io(action, path, e)
}

/// A temp dir removed on drop even when the sandbox left read-only directories in it.
struct WorkDir(Option<tempfile::TempDir>);

impl WorkDir {
    fn new() -> Result<Self, SandboxError> {
        let tmp = tempfile::Builder::new()
            .prefix("envship-test-")
            .tempdir()
            .map_err(io_err("create a temp dir in", &std::env::temp_dir()))?;
        Ok(Self(Some(tmp)))
    }
    fn path(&self) -> &Path {
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

fn outcome(
    opts: &TestOptions,
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
        log_path: opts.log_path.clone(),
        script: opts.script.clone(),
        dest_prefix: dest,
        isolation,
        rootfs_glibc,
    }
}

fn run_namespace(
    opts: &TestOptions,
    inputs: &Inputs,
    progress: &dyn Progress,
    on_line: &mut dyn FnMut(&str),
) -> Result<TestOutcome, SandboxError> {
    let (userland, rootfs_glibc, isolation) = match &opts.rootfs {
        Some(src) => {
            let dir = prepare_rootfs(src, opts.rootfs_cache_dir.as_deref(), progress)?;
            let glibc = rootfs_glibc(&dir);
            let desc = format!("namespace over rootfs {}", src.path().display());
            (dir, glibc, desc)
        }
        None => (PathBuf::from("/"), None, "namespace".to_string()),
    };
    let work = WorkDir::new()?;
    let root = work.path().join("root");
    let inside = |p: &str| root.join(p.trim_start_matches('/'));
    let mkdir = |p: &Path, mode: u32| -> Result<(), SandboxError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(p)
            .map_err(io_err("create", p))?;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
            .map_err(io_err("chmod", p))
    };
    let touch = |p: &Path| -> Result<(), SandboxError> {
        std::fs::File::create(p)
            .map(drop)
            .map_err(io_err("create", p))
    };
    mkdir(&root, 0o755)?;
    for d in ["proc", "dev"] {
        mkdir(&inside(d), 0o755)?;
    }
    mkdir(&inside("tmp"), 0o1777)?;
    mkdir(&inside(SANDBOX_HOME), 0o755)?;
    mkdir(&inside("tmp/project"), 0o755)?;
    mkdir(&inside("tmp/.envship/state"), 0o755)?;
    let dest_top = top_component(&opts.dest_prefix).unwrap_or_default();
    let mut plan = namespace::MountPlan::new(&root)?;

    // The userland: each top-level directory bound read-only, symlinks (/bin -> usr/bin)
    // recreated as they are.
    let names: Vec<String> = if opts.rootfs.is_some() {
        let rd = std::fs::read_dir(&userland).map_err(io_err("read", &userland))?;
        let mut v: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !ROOTFS_SKIP.contains(&n.as_str()))
            .collect();
        v.sort();
        v
    } else {
        HOST_DIRS.iter().map(|s| s.to_string()).collect()
    };
    for name in names {
        let host = userland.join(&name);
        let Ok(meta) = std::fs::symlink_metadata(&host) else {
            continue;
        };
        if name == dest_top {
            tracing::warn!(
                "/{name} of the root filesystem is not mounted: the destination prefix {} is in it",
                opts.dest_prefix.display()
            );
            continue;
        }
        if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&host).map_err(io_err("read link", &host))?;
            let link = inside(&name);
            std::os::unix::fs::symlink(&target, &link).map_err(io_err("create symlink", &link))?;
        } else if meta.is_dir() {
            mkdir(&inside(&name), 0o755)?;
            plan.bind_ro(&host, &Path::new("/").join(&name))?;
        }
    }
    mkdir(&inside(&opts.dest_prefix.to_string_lossy()), 0o755)?;
    plan.proc_and_dev()?;
    plan.bind_ro(&inputs.project, Path::new("/tmp/project"))?;
    if let Some(env) = &inputs.environment_file {
        touch(&inside("tmp/environment.yml"))?;
        plan.bind_ro(env, Path::new("/tmp/environment.yml"))?;
    }
    touch(&inside("tmp/run-test.sh"))?;
    plan.bind_ro(&inputs.script, Path::new("/tmp/run-test.sh"))?;
    let archive_in = Path::new(ENVSHIP_DIR).join(archive_name(&inputs.archive));
    if inputs.format == ArchiveFormat::Dir {
        mkdir(&inside(&archive_in.to_string_lossy()), 0o755)?;
    } else {
        touch(&inside(&archive_in.to_string_lossy()))?;
    }
    plan.bind_ro(&inputs.archive, &archive_in)?;

    let state_in = Path::new(ENVSHIP_DIR).join("state/step");
    let script = runner_script(&RunnerPaths {
        archive: &archive_in,
        format: inputs.format,
        dest: &opts.dest_prefix,
        project: Path::new("/tmp/project"),
        script: Path::new("/tmp/run-test.sh"),
        state_file: Some(&state_in),
    });
    let descs = plan.describe_ops();
    let (mut cmd, diag) = plan.command("/bin/bash", &["-c".to_string(), script])?;
    cmd.env_clear()
        .envs(sandbox_env(opts, Path::new(SANDBOX_HOME)));

    let mut log = LogFile::create(&opts.log_path)?;
    // No progress bar for the run itself: the streamed output is the progress.
    let ran = run_streaming(cmd, &KillMode::Child, opts.timeout, log.writer(), on_line)?;
    let result = match ran {
        Ok(r) => r,
        Err(e) => {
            let report = namespace::read_all(diag);
            if let Some(err) = namespace::diagnose(&report, &descs) {
                return Err(err);
            }
            return Err(SandboxError::Spawn {
                program: "/bin/bash in the sandbox".into(),
                source: e,
            });
        }
    };
    drop(diag);
    log.persist()?;
    let state_file = inside(&state_in.to_string_lossy());
    Ok(outcome(
        opts,
        result,
        &state_file,
        opts.dest_prefix.clone(),
        isolation,
        rootfs_glibc,
    ))
}

fn run_container(
    opts: &TestOptions,
    inputs: &Inputs,
    engine: Engine,
    image: &str,
    on_line: &mut dyn FnMut(&str),
) -> Result<TestOutcome, SandboxError> {
    engine_available(engine)?;
    let work = WorkDir::new()?;
    let state_dir = work.path().join("state");
    fs_err::create_dir_all(&state_dir).map_err(io_err("create", &state_dir))?;
    {
        use std::os::unix::fs::PermissionsExt;
        // The container's user may not be us.
        let _ = std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o777));
    }
    let archive_in = Path::new(ENVSHIP_DIR).join(archive_name(&inputs.archive));
    let state_in = Path::new(ENVSHIP_DIR).join("state/step");
    let runner = runner_script(&RunnerPaths {
        archive: &archive_in,
        format: inputs.format,
        dest: &opts.dest_prefix,
        project: Path::new("/tmp/project"),
        script: Path::new("/tmp/run-test.sh"),
        state_file: Some(&state_in),
    });
    let mut env = vec![
        (
            "ENVIRONMENT_NAME".to_string(),
            opts.environment_name.clone(),
        ),
        ("HOME".to_string(), "/tmp/home".to_string()),
    ];
    env.extend(opts.extra_env.iter().cloned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let name = format!("envship-test-{}-{nanos}", std::process::id());
    let spec = ContainerSpec {
        engine,
        image: image.to_string(),
        name: name.clone(),
        project_dir: inputs.project.clone(),
        environment_file: inputs.environment_file.clone(),
        script: inputs.script.clone(),
        archive: inputs.archive.clone(),
        archive_in,
        state_dir: state_dir.clone(),
        env,
        runner: format!("mkdir -p \"$HOME\"\n{runner}"),
    };
    let argv = container_command(&spec);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let mut log = LogFile::create(&opts.log_path)?;
    let kill = KillMode::Container {
        engine: engine.program().into(),
        name,
    };
    let result =
        run_streaming(cmd, &kill, opts.timeout, log.writer(), on_line)?.map_err(|source| {
            SandboxError::Spawn {
                program: engine.program().into(),
                source,
            }
        })?;
    log.persist()?;
    Ok(outcome(
        opts,
        result,
        &state_dir.join("step"),
        opts.dest_prefix.clone(),
        format!("container {} {image}", engine.program()),
        None,
    ))
}

/// Where an unisolated run unpacks: the destination prefix when it can be created there (and
/// removed afterwards), else a temp dir.
fn unisolated_dest(dest: &Path, work: &Path) -> (PathBuf, bool) {
    if !dest.exists() {
        if let Some(parent) = dest.parent() {
            if std::fs::create_dir_all(parent).is_ok() && std::fs::create_dir(dest).is_ok() {
                return (dest.to_path_buf(), true);
            }
        }
    }
    (work.join("dest"), false)
}

fn run_unisolated(
    opts: &TestOptions,
    inputs: &Inputs,
    on_line: &mut dyn FnMut(&str),
) -> Result<TestOutcome, SandboxError> {
    let work = WorkDir::new()?;
    let (dest, created) = unisolated_dest(&opts.dest_prefix, work.path());
    let warning = if created {
        format!(
            "envship: warning: --isolation none: nothing is isolated (network, file system, processes); unpacking at {}",
            dest.display()
        )
    } else {
        format!(
            "envship: warning: --isolation none: nothing is isolated; {} is not writable, unpacking at {} instead",
            opts.dest_prefix.display(),
            dest.display()
        )
    };
    tracing::warn!("{}", warning.trim_start_matches("envship: warning: "));
    on_line(&warning);
    let home = work.path().join("home");
    let state = work.path().join("state");
    for d in [&home, &state] {
        fs_err::create_dir_all(d).map_err(io_err("create", d))?;
    }
    let state_file = state.join("step");
    let runner = runner_script(&RunnerPaths {
        archive: &inputs.archive,
        format: inputs.format,
        dest: &dest,
        project: &inputs.project,
        script: &inputs.script,
        state_file: Some(&state_file),
    });
    let mut cmd = Command::new("/bin/bash");
    cmd.arg("-c").arg(runner);
    cmd.env_clear().envs(sandbox_env(opts, &home));
    if let Some(env) = &inputs.environment_file {
        cmd.env("ENVSHIP_ENVIRONMENT_FILE", env);
    }
    let mut log = LogFile::create(&opts.log_path)?;
    let _ = std::io::Write::write_all(log.writer(), format!("{warning}\n").as_bytes());
    let ran = run_streaming(
        cmd,
        &KillMode::ProcessGroup,
        opts.timeout,
        log.writer(),
        on_line,
    );
    if created {
        rootfs::make_tree_writable(&dest);
        let _ = std::fs::remove_dir_all(&dest);
    }
    let result = ran?.map_err(|source| SandboxError::Spawn {
        program: "/bin/bash".into(),
        source,
    })?;
    log.persist()?;
    Ok(outcome(
        opts,
        result,
        &state_file,
        dest,
        "none".into(),
        None,
    ))
}
