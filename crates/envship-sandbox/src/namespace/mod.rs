//! The namespace sandbox: a child in new user + mount + PID + network (+ UTS, IPC) namespaces
//! whose root is a private directory holding read-only binds of a userland.
//!
//! Why not fork in-process or re-exec `/proc/self/exe`: the caller may be a multithreaded tokio
//! process (only async-signal-safe code may run after fork), and `/proc/self/exe` is a test
//! harness under `cargo test`. So the child is an ordinary `std::process::Command` whose
//! `pre_exec` hook does everything with raw syscalls on data prepared before the fork:
//!
//! 1. `unshare(NEWUSER|NEWNS|NEWPID|NEWNET|NEWUTS|NEWIPC)` and map root inside to the caller;
//! 2. `fork()`: the first child in the new PID namespace is its init. The intermediate process
//!    closes every inherited descriptor (so `spawn` returns), waits for that init and exits with
//!    its status; the init dies with the intermediate (`PR_SET_PDEATHSIG`), and every process of
//!    the namespace dies with the init — so killing the intermediate kills the whole tree;
//! 3. the init mounts the new root (binds, `/proc`, `/dev`), `pivot_root`s into it, brings the
//!    loopback interface up, and returns to `std`, which execs the runner.
//!
//! Failures inside the child are reported through a pipe as (step index, errno) pairs so the
//! error names the mount that failed, not just an errno.

mod child;
mod plan;

use std::{
    os::fd::OwnedFd,
    path::{Path, PathBuf},
};

use crate::{
    exec::{run_streaming, KillMode, LogFile},
    io_err, mounted_runner, outcome, prepare_rootfs, rootfs_glibc, sandbox_env, top_component,
    ArchiveFormat, Inputs, Progress, SandboxError, TestOptions, TestOutcome, WorkDir, HOST_DIRS,
    ROOTFS_SKIP, SANDBOX_HOME,
};
pub(crate) use child::diagnose;
pub(crate) use plan::MountPlan;

/// Whether this process can create the namespaces (a quick probe, used by tests and `doctor`).
pub fn namespaces_available() -> Result<(), SandboxError> {
    let tmp = tempfile::tempdir().map_err(|e| SandboxError::io("create temp dir", "", e))?;
    let mut plan = MountPlan::new(tmp.path())?;
    let descs = plan.describe_ops();
    plan.ops.clear();
    let (mut cmd, diag) = plan.command("/bin/true", &[])?;
    // The probe's root is an empty directory: exec must fail there, after the setup succeeded.
    let result = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    drop(cmd);
    let report = read_all(diag);
    if let Some(err) = diagnose(&report, &descs) {
        return Err(err);
    }
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(SandboxError::Spawn {
            program: "the namespace probe".into(),
            source: e,
        }),
    }
}

pub(crate) fn read_all(fd: OwnedFd) -> Vec<u8> {
    use std::io::Read;
    let mut f = std::fs::File::from(fd);
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    buf
}

/// The test in the namespace sandbox over the host's (or `opts.rootfs`'s) userland.
pub(crate) fn run(
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
    let mut plan = MountPlan::new(&root)?;

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
    let (script, archive_in, state_in) = mounted_runner(opts, inputs);
    if inputs.format == ArchiveFormat::Dir {
        mkdir(&inside(&archive_in.to_string_lossy()), 0o755)?;
    } else {
        touch(&inside(&archive_in.to_string_lossy()))?;
    }
    plan.bind_ro(&inputs.archive, &archive_in)?;

    let descs = plan.describe_ops();
    let (mut cmd, diag) = plan.command("/bin/bash", &["-c".into(), script])?;
    cmd.env_clear().envs(sandbox_env(
        &opts.environment_name,
        &opts.extra_env,
        Path::new(SANDBOX_HOME),
    ));

    let mut log = LogFile::create(&opts.log_path)?;
    // No progress bar for the run itself: the streamed output is the progress.
    let ran = run_streaming(cmd, &KillMode::Child, opts.timeout, log.writer(), on_line)?;
    let result = match ran {
        Ok(r) => r,
        Err(e) => {
            let report = read_all(diag);
            if let Some(err) = diagnose(&report, &descs) {
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
        &opts.log_path,
        &opts.script,
        result,
        &state_file,
        opts.dest_prefix.clone(),
        isolation,
        rootfs_glibc,
    ))
}
