//! Errors of the sandbox: everything that stops a test from running at all. A test script that
//! runs and fails is not an error: it is a [`crate::TestOutcome`] with `passed == false`.

use std::path::PathBuf;

/// Why a test could not be run.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SandboxError {
    /// The test script does not exist.
    #[error("test script {path} does not exist")]
    #[diagnostic(
        code(envship::sandbox::missing_script),
        help("write a bash script that exercises the environment (it runs with the environment active, cwd /tmp/project), or name it with --script")
    )]
    MissingScript {
        /// The script path as given.
        path: PathBuf,
    },

    /// The test script exists but cannot be read (or is not a regular file).
    #[error("test script {path} cannot be read")]
    #[diagnostic(
        code(envship::sandbox::unreadable_script),
        help("the script must be a readable regular file")
    )]
    UnreadableScript {
        /// The script path as given.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },

    /// An input the test needs (archive, project dir, environment file) is missing or unreadable.
    #[error("{what} {path} cannot be read")]
    #[diagnostic(code(envship::sandbox::missing_input))]
    MissingInput {
        /// What the input is ("archive", "project directory", …).
        what: &'static str,
        /// The path as given.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },

    /// The destination prefix cannot be used (relative, or inside a read-only system directory).
    #[error("destination prefix {path} cannot be used: {reason}")]
    #[diagnostic(
        code(envship::sandbox::bad_dest_prefix),
        help("use an absolute path outside /usr, /bin, /lib*, /sbin, /etc, /proc and /dev, e.g. /opt/envship/NAME")
    )]
    BadDestPrefix {
        /// The prefix as given.
        path: PathBuf,
        /// Why it is refused.
        reason: String,
    },

    /// The archive is not one `envship unpack` reads (the same check, the same message).
    #[error(transparent)]
    #[diagnostic(transparent)]
    UnknownArchiveFormat(Box<envship_pack::PackError>),

    /// The kernel refused to create user namespaces for this user.
    #[error("cannot create a user namespace: {source}")]
    #[diagnostic(
        code(envship::sandbox::no_user_namespaces),
        help("unprivileged user namespaces are disabled on this machine. Enable them with `sysctl -w user.max_user_namespaces=15000` (and `sysctl -w kernel.unprivileged_userns_clone=1` on Debian/Ubuntu kernels that have it; on Ubuntu 24.04+ also `sysctl -w kernel.apparmor_restrict_unprivileged_userns=0`), run as root, or use `--isolation container --image IMG` or `--isolation none`")
    )]
    UserNamespacesUnavailable {
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },

    /// Setting up the sandbox failed at a given step (a mount, the root switch, …).
    #[error("sandbox setup failed: {step}: {source}")]
    #[diagnostic(
        code(envship::sandbox::setup),
        help("this is a mount or namespace operation the kernel refused; `--isolation container` or `--isolation none` avoid it")
    )]
    Setup {
        /// The step that failed, with its paths.
        step: String,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },

    /// The runner process could not be started.
    #[error("cannot start {program}")]
    #[diagnostic(code(envship::sandbox::spawn))]
    Spawn {
        /// The program.
        program: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },

    /// The container engine is not installed or does not answer.
    #[error("container engine {engine} is not available: {reason}")]
    #[diagnostic(
        code(envship::sandbox::no_engine),
        help("start the engine (e.g. `systemctl start docker`), pick the other one with --engine, or use the default namespace isolation (optionally with --rootfs to test against a production userland)")
    )]
    EngineUnavailable {
        /// `docker` or `podman`.
        engine: String,
        /// What went wrong.
        reason: String,
    },

    /// A root filesystem directory or image tarball is unusable.
    #[error("root filesystem {path}: {reason}")]
    #[diagnostic(
        code(envship::sandbox::rootfs),
        help("--rootfs takes a directory holding a userland (usr/, etc/, lib*/) or a tarball made by `docker save IMAGE -o FILE.tar` (or an OCI image layout tar)")
    )]
    Rootfs {
        /// The directory or tarball.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// An I/O error on a named path.
    #[error("{action} {path}")]
    #[diagnostic(code(envship::sandbox::io))]
    Io {
        /// What was being done ("write log", "create", …).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

impl SandboxError {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
