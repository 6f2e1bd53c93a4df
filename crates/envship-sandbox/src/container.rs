//! The container runner: the same mounts and runner script through `docker run` / `podman run`
//! with a user image (e.g. the original workflow's CentOS 6 image).

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use crate::{
    exec::{run_streaming, KillMode, LogFile},
    io_err, mounted_runner, outcome, Engine, Inputs, SandboxError, TestOptions, TestOutcome,
    WorkDir,
};

/// What goes into the `run` command line.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    /// docker or podman.
    pub engine: Engine,
    /// The image.
    pub image: String,
    /// The container's name (used to kill it on timeout).
    pub name: String,
    /// Host project directory (→ `/tmp/project`, read-only).
    pub project_dir: PathBuf,
    /// Host environment file (→ `/tmp/environment.yml`, read-only).
    pub environment_file: Option<PathBuf>,
    /// Host test script (→ `/tmp/run-test.sh`, read-only).
    pub script: PathBuf,
    /// Host archive (→ `archive_in`, read-only).
    pub archive: PathBuf,
    /// Where the archive appears inside.
    pub archive_in: PathBuf,
    /// A writable host directory for the runner's step marker (→ `/tmp/.envship/state`).
    pub state_dir: PathBuf,
    /// `-e` variables, in order.
    pub env: Vec<(String, String)>,
    /// The runner script (`bash -c`).
    pub runner: OsString,
}

fn vol(host: &Path, inside: &Path, ro: bool) -> OsString {
    let mut v = OsString::from(host);
    v.push(":");
    v.push(inside);
    if ro {
        v.push(":ro");
    }
    v
}

/// The exact argv of the container run (paths byte for byte, UTF-8 or not).
pub fn container_command(spec: &ContainerSpec) -> Vec<OsString> {
    let mut v: Vec<OsString> = vec![
        spec.engine.program().into(),
        "run".into(),
        "--rm".into(),
        "--name".into(),
        spec.name.clone().into(),
        "--network".into(),
        "none".into(),
        "-v".into(),
        vol(&spec.project_dir, Path::new("/tmp/project"), true),
    ];
    if let Some(env_file) = &spec.environment_file {
        v.push("-v".into());
        v.push(vol(env_file, Path::new("/tmp/environment.yml"), true));
    }
    v.push("-v".into());
    v.push(vol(&spec.script, Path::new("/tmp/run-test.sh"), true));
    v.push("-v".into());
    v.push(vol(&spec.archive, &spec.archive_in, true));
    v.push("-v".into());
    v.push(vol(
        &spec.state_dir,
        Path::new("/tmp/.envship/state"),
        false,
    ));
    for (k, val) in &spec.env {
        v.push("-e".into());
        v.push(format!("{k}={val}").into());
    }
    // The original workflow's images have an entrypoint that builds the env: bypass it.
    v.push("--entrypoint".into());
    v.push("/bin/bash".into());
    v.push(spec.image.clone().into());
    v.push("-c".into());
    v.push(spec.runner.clone());
    v
}

/// Whether `ENGINE info` answers (within 20 s).
pub fn engine_available(engine: Engine) -> Result<(), SandboxError> {
    let program = engine.program();
    let unavailable = |reason: String| SandboxError::EngineUnavailable {
        engine: program.into(),
        reason,
    };
    // The two engines' `info` templates differ: podman has no `.ServerVersion` (asking for it
    // fails on every podman, which made podman look absent everywhere).
    let format = match engine {
        Engine::Docker => "{{.ServerVersion}}",
        Engine::Podman => "{{.Version.Version}}",
    };
    let mut child = Command::new(program)
        .args(["info", "--format", format])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| unavailable(format!("cannot run `{program}`: {e}")))?;
    let start = std::time::Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                let last = err.lines().rev().find(|l| !l.trim().is_empty());
                return Err(unavailable(format!(
                    "`{program} info` exited with {status}{}",
                    last.map(|l| format!(": {}", l.trim())).unwrap_or_default()
                )));
            }
            Ok(None) if start.elapsed() > Duration::from_secs(20) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(unavailable(format!(
                    "`{program} info` did not answer in 20 s"
                )));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(unavailable(e.to_string())),
        }
    }
}

/// The test in a `docker run` / `podman run` of `image`.
pub(crate) fn run(
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
    let (runner, archive_in, _) = mounted_runner(opts, inputs);
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
        runner: {
            let mut r = OsString::from("mkdir -p \"$HOME\"\n");
            r.push(runner);
            r
        },
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
        &opts.log_path,
        &opts.script,
        result,
        &state_dir.join("step"),
        opts.dest_prefix.clone(),
        format!("container {} {image}", engine.program()),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_command_is_exact() {
        let spec = ContainerSpec {
            engine: Engine::Docker,
            image: "slaclcls/conda-pack-rhel6:latest".into(),
            name: "envship-test-demo".into(),
            project_dir: "/home/u/proj".into(),
            environment_file: Some("/home/u/proj/environment.yml".into()),
            script: "/home/u/proj/run-test.sh".into(),
            archive: "/home/u/proj/dist/demo-1.0-linux-64.tar.gz".into(),
            archive_in: "/tmp/.envship/demo-1.0-linux-64.tar.gz".into(),
            state_dir: "/tmp/envship-test-x/state".into(),
            env: vec![
                ("ENVIRONMENT_NAME".into(), "demo".into()),
                ("HOME".into(), "/tmp/home".into()),
            ],
            runner: "echo runner".into(),
        };
        let argv: Vec<String> = container_command(&spec)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        insta::assert_json_snapshot!(argv);
        let podman = ContainerSpec {
            engine: Engine::Podman,
            environment_file: None,
            ..spec
        };
        let cmd = container_command(&podman);
        assert_eq!(cmd[0], "podman");
        assert!(!cmd
            .iter()
            .any(|a| a.to_string_lossy().contains("environment.yml")));
    }
}
