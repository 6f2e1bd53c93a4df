//! `--isolation none`: the test on the host itself, with nothing isolated. Two entries: the
//! test stage's (unpack the archive at the destination prefix, or a temp dir, then test), and
//! [`run_installed_test`] for an environment already unpacked where it is used (`deploy
//! --test`). Both go through the same runner script and process handling as the sandboxes.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{
    check_script,
    exec::{run_streaming, KillMode, LogFile},
    io_err, outcome, require_dir, rootfs,
    runner::{runner_script, Install, RunnerPaths},
    sandbox_env, Inputs, SandboxError, TestOptions, TestOutcome, WorkDir,
};

/// A test of an environment that is already unpacked and relocated at its final prefix (a
/// deployed version), run on this host without isolation: `. PREFIX/bin/activate`, then
/// `bash SCRIPT` in an empty temp directory, with the same cleared environment as the test
/// stage's runs.
#[derive(Clone, Debug)]
pub struct InstalledTest {
    /// The environment's prefix (holds `bin/activate`).
    pub prefix: PathBuf,
    /// The bash test script.
    pub script: PathBuf,
    /// Exported to the script as `ENVIRONMENT_NAME`.
    pub environment_name: String,
    /// The whole process group is killed after this long (`None`: no limit).
    pub timeout: Option<Duration>,
    /// The script's combined stdout and stderr are written here (temp file + rename).
    pub log_path: PathBuf,
    /// More environment variables for the script (after the allowlist).
    pub extra_env: Vec<(String, String)>,
}

/// Runs `test`, handing each output line to `on_line` and saving it to `test.log_path`. A
/// failing script is a [`TestOutcome`], not an error.
pub fn run_installed_test(
    test: &InstalledTest,
    on_line: &mut dyn FnMut(&str),
) -> Result<TestOutcome, SandboxError> {
    check_script(&test.script)?;
    require_dir("environment prefix", &test.prefix)?;
    let work = WorkDir::new()?;
    let home = work.path().join("home");
    let state = work.path().join("state");
    let cwd = work.path().join("cwd");
    for d in [&home, &state, &cwd] {
        fs_err::create_dir_all(d).map_err(io_err("create", d))?;
    }
    let state_file = state.join("step");
    let script = crate::absolute(&test.script);
    let runner = runner_script(&RunnerPaths {
        install: Install::Installed,
        dest: &test.prefix,
        project: &cwd,
        script: &script,
        state_file: Some(&state_file),
    });
    let mut cmd = Command::new("/bin/bash");
    cmd.arg("-c").arg(runner);
    cmd.env_clear()
        .envs(sandbox_env(&test.environment_name, &test.extra_env, &home));
    let mut log = LogFile::create(&test.log_path)?;
    let result = run_streaming(
        cmd,
        &KillMode::ProcessGroup,
        test.timeout.unwrap_or(Duration::MAX),
        log.writer(),
        on_line,
    )?
    .map_err(|source| SandboxError::Spawn {
        program: "/bin/bash".into(),
        source,
    })?;
    log.persist()?;
    Ok(outcome(
        &test.log_path,
        &script,
        result,
        &state_file,
        test.prefix.clone(),
        "none".into(),
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

/// The test unpacked on the host, unisolated (`--isolation none`).
pub(crate) fn run(
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
        install: Install::Unpack {
            archive: &inputs.archive,
            format: inputs.format,
        },
        dest: &dest,
        project: &inputs.project,
        script: &inputs.script,
        state_file: Some(&state_file),
    });
    let mut cmd = Command::new("/bin/bash");
    cmd.arg("-c").arg(runner);
    cmd.env_clear()
        .envs(sandbox_env(&opts.environment_name, &opts.extra_env, &home));
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
        &opts.log_path,
        &opts.script,
        result,
        &state_file,
        dest,
        "none".into(),
        None,
    ))
}
