//! The container runner: the same mounts and runner script through `docker run` / `podman run`
//! with a user image (e.g. the original workflow's CentOS 6 image).

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use crate::{Engine, SandboxError};

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
    pub runner: String,
}

fn vol(host: &Path, inside: &str, ro: bool) -> String {
    format!(
        "{}:{}{}",
        host.display(),
        inside,
        if ro { ":ro" } else { "" }
    )
}

/// The exact argv of the container run.
pub fn container_command(spec: &ContainerSpec) -> Vec<String> {
    let mut v: Vec<String> = vec![
        spec.engine.program().into(),
        "run".into(),
        "--rm".into(),
        "--name".into(),
        spec.name.clone(),
        "--network".into(),
        "none".into(),
        "-v".into(),
        vol(&spec.project_dir, "/tmp/project", true),
    ];
    if let Some(env_file) = &spec.environment_file {
        v.push("-v".into());
        v.push(vol(env_file, "/tmp/environment.yml", true));
    }
    v.push("-v".into());
    v.push(vol(&spec.script, "/tmp/run-test.sh", true));
    v.push("-v".into());
    v.push(vol(&spec.archive, &spec.archive_in.to_string_lossy(), true));
    v.push("-v".into());
    v.push(vol(&spec.state_dir, "/tmp/.envship/state", false));
    for (k, val) in &spec.env {
        v.push("-e".into());
        v.push(format!("{k}={val}"));
    }
    // The original workflow's images have an entrypoint that builds the env: bypass it.
    v.push("--entrypoint".into());
    v.push("/bin/bash".into());
    v.push(spec.image.clone());
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
    let mut child = Command::new(program)
        .args(["info", "--format", "{{.ServerVersion}}"])
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
        insta::assert_json_snapshot!(container_command(&spec));
        let podman = ContainerSpec {
            engine: Engine::Podman,
            environment_file: None,
            ..spec
        };
        let cmd = container_command(&podman);
        assert_eq!(cmd[0], "podman");
        assert!(!cmd.iter().any(|a| a.contains("environment.yml")));
    }
}
