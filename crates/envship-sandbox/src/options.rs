//! What to test and how (`TestOptions`), and what came out (`TestOutcome`).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use envship_spec::DottedVersion;
use serde::Serialize;

/// Where the test runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Isolation {
    /// New user + mount + PID + network namespaces over the host's (or a given) userland.
    Namespace,
    /// `docker run` / `podman run` with a user image.
    Container {
        /// Which engine.
        engine: Engine,
        /// The image, e.g. `centos:6`.
        image: String,
    },
    /// No isolation: unpack at the destination prefix on the host (or a temp dir) and run there.
    None,
}

/// A container engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Engine {
    /// Docker.
    Docker,
    /// Podman.
    Podman,
}

impl Engine {
    /// The engine's executable name.
    pub fn program(self) -> &'static str {
        match self {
            Engine::Docker => "docker",
            Engine::Podman => "podman",
        }
    }
}

/// A production userland to run the namespace sandbox over, instead of the host's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind", content = "path")]
pub enum RootfsSource {
    /// A directory holding a root filesystem (e.g. made by debootstrap).
    Dir(PathBuf),
    /// A `docker save` or OCI image layout tarball; unpacked once into a cache.
    Tarball(PathBuf),
}

impl RootfsSource {
    /// A directory becomes [`RootfsSource::Dir`], anything else [`RootfsSource::Tarball`].
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        if path.is_dir() {
            Self::Dir(path)
        } else {
            Self::Tarball(path)
        }
    }

    /// The path as given.
    pub fn path(&self) -> &Path {
        match self {
            Self::Dir(p) | Self::Tarball(p) => p,
        }
    }
}

/// Everything `run_test` needs. Paths are host paths.
#[derive(Clone, Debug)]
pub struct TestOptions {
    /// The environment archive (`.tar.gz`, `.tar.zst`, `.tar.bz2`, `.tar.xz`, `.tar`, `.zip`, or
    /// an unpacked directory).
    pub archive: PathBuf,
    /// The bash test script; it runs as `bash /tmp/run-test.sh` with the environment active.
    pub script: PathBuf,
    /// The project checkout, mounted read-only at `/tmp/project` (the script's cwd).
    pub project_dir: PathBuf,
    /// The environment file, mounted read-only at `/tmp/environment.yml` (not mounted if `None`).
    pub environment_file: Option<PathBuf>,
    /// Exported to the script as `ENVIRONMENT_NAME`.
    pub environment_name: String,
    /// Where the archive is unpacked inside the sandbox: the production path.
    pub dest_prefix: PathBuf,
    /// How the test is isolated.
    pub isolation: Isolation,
    /// Run over this userland instead of the host's (namespace isolation only).
    pub rootfs: Option<RootfsSource>,
    /// Where image tarballs given as `rootfs` are unpacked (default `~/.cache/envship/rootfs`).
    pub rootfs_cache_dir: Option<PathBuf>,
    /// The whole process tree is killed after this long.
    pub timeout: Duration,
    /// The script's combined stdout and stderr are written here (temp file + rename).
    pub log_path: PathBuf,
    /// More environment variables for the script (after the allowlist).
    pub extra_env: Vec<(String, String)>,
}

/// The step of the run that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Unpacking the archive at the destination prefix.
    Unpack,
    /// Sourcing `bin/activate`.
    Activate,
    /// Running `conda-unpack`.
    CondaUnpack,
    /// The test script itself.
    Script,
}

impl Step {
    pub(crate) fn from_marker(s: &str) -> Option<Self> {
        match s.trim() {
            "unpack" => Some(Self::Unpack),
            "activate" => Some(Self::Activate),
            "conda-unpack" => Some(Self::CondaUnpack),
            "script" => Some(Self::Script),
            _ => None,
        }
    }

    /// A short description for humans.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Unpack => "unpacking the archive",
            Self::Activate => "sourcing bin/activate",
            Self::CondaUnpack => "running conda-unpack",
            Self::Script => "the test script",
        }
    }
}

/// The result of one test run. A failing script is a result, not an error.
#[derive(Clone, Debug, Serialize)]
pub struct TestOutcome {
    /// The script ran and exited 0 within the timeout.
    pub passed: bool,
    /// The runner's exit code, when it exited normally.
    pub exit_code: Option<i32>,
    /// The signal that killed the runner, if any.
    pub signal: Option<i32>,
    /// The timeout was reached and the process tree was killed.
    pub timed_out: bool,
    /// The step that failed (`None` when passed, or when the step is unknown).
    pub failed_step: Option<Step>,
    /// Wall time of the run.
    #[serde(serialize_with = "ser_secs")]
    pub duration: Duration,
    /// Where the combined output was saved.
    pub log_path: PathBuf,
    /// The script that ran.
    pub script: PathBuf,
    /// The destination prefix the archive was unpacked at (for `none`: the directory used).
    pub dest_prefix: PathBuf,
    /// How the test was isolated, for humans (`namespace`, `namespace over rootfs DIR`, …).
    pub isolation: String,
    /// The glibc of the `--rootfs` userland (from its `libc.so.6`), when one was given.
    pub rootfs_glibc: Option<DottedVersion>,
}

fn ser_secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1000.0).round() / 1000.0)
}

impl TestOutcome {
    /// One line for humans: `passed in 1.2 s` / `failed: the test script exited with 3 …`.
    pub fn summary(&self) -> String {
        let secs = self.duration.as_secs_f64();
        let glibc = self
            .rootfs_glibc
            .as_ref()
            .map(|g| format!(" (rootfs glibc {g})"))
            .unwrap_or_default();
        if self.passed {
            return format!("passed in {secs:.1} s{glibc}");
        }
        let step = self
            .failed_step
            .map(|s| format!("{}: ", s.describe()))
            .unwrap_or_default();
        let how = if self.timed_out {
            format!("timed out after {secs:.1} s, process tree killed")
        } else if let Some(code) = self.exit_code {
            format!("{step}exited with {code} after {secs:.1} s")
        } else if let Some(sig) = self.signal {
            format!("{step}killed by signal {sig} after {secs:.1} s")
        } else {
            format!("{step}failed after {secs:.1} s")
        };
        format!("failed: {how}{glibc}")
    }
}
