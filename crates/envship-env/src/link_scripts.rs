//! Packages' link scripts, run as `conda env create` runs them: `bin/.NAME-post-link.sh` after
//! the package is linked, `bin/.NAME-pre-unlink.sh` before it is removed or replaced, each with
//! `bash -x SCRIPT` and conda's variables (`PREFIX`, `PKG_NAME`, `PKG_VERSION`, `PKG_BUILDNUM`,
//! `ROOT_PREFIX`), `PREFIX/bin` first on `PATH`. What a script writes to `PREFIX/.messages.txt`
//! is kept for the user and the file removed, as conda does. Unlike conda, a script runs with
//! the network off (a network namespace of its own): a build must not depend on what a script
//! fetches.
//!
//! rattler's installer can run them too, but it runs post-link in the staging directory of a
//! new prefix, only warns when one fails and never runs pre-unlink before an update; envship
//! runs them itself at the points conda does.

use std::{
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use rattler_conda_types::PackageRecord;

pub use envship_spec::config::LinkScripts;

/// Which script of a package.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScriptKind {
    /// After the package is linked.
    PostLink,
    /// Before the package is removed or replaced.
    PreUnlink,
}

impl ScriptKind {
    /// conda's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            ScriptKind::PostLink => "post-link",
            ScriptKind::PreUnlink => "pre-unlink",
        }
    }

    /// Where the package keeps it, relative to the prefix.
    pub fn path(self, package: &str) -> String {
        format!("bin/.{package}-{}.sh", self.as_str())
    }
}

/// A script that ran, or would have.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ScriptRun {
    /// The package (`NAME-VERSION-BUILD`).
    pub package: String,
    /// Which script.
    pub kind: ScriptKind,
    /// Whether it ran (false: `--link-scripts skip`).
    pub ran: bool,
    /// What it left in `.messages.txt`, if anything.
    pub message: Option<String>,
    /// Whether the network was off while it ran (false where no namespace could be made).
    pub network_off: bool,
}

/// A link script failed or could not run.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("the {} script of {package} failed ({status}): {}", kind.as_str(), script.display())]
#[diagnostic(
    code(envship::build::link_script),
    help("its output ends with:\n{tail}\nfix the package, pin another build, or build with --link-scripts skip if the script is not needed")
)]
pub struct LinkScriptError {
    /// The package (`NAME-VERSION-BUILD`).
    pub package: String,
    /// Which script.
    pub kind: ScriptKind,
    /// The script.
    pub script: PathBuf,
    /// How it ended.
    pub status: String,
    /// The last lines of its output.
    pub tail: String,
}

/// A package whose script may run.
pub(crate) struct Package<'a> {
    pub record: &'a PackageRecord,
}

impl Package<'_> {
    fn label(&self) -> String {
        format!(
            "{}-{}-{}",
            self.record.name.as_normalized(),
            self.record.version,
            self.record.build
        )
    }
}

/// Run `kind` for each package that has one, in the given order; stops at the first failure.
pub(crate) fn run_all(
    prefix: &Path,
    kind: ScriptKind,
    packages: &[Package<'_>],
    mode: LinkScripts,
) -> Result<Vec<ScriptRun>, LinkScriptError> {
    let mut runs = Vec::new();
    for p in packages {
        let name = p.record.name.as_normalized();
        let script = prefix.join(kind.path(name));
        if !script.is_file() {
            continue;
        }
        if mode == LinkScripts::Skip {
            tracing::warn!(
                "skipped the {} script of {} (--link-scripts skip): what it would do is missing",
                kind.as_str(),
                p.label()
            );
            runs.push(ScriptRun {
                package: p.label(),
                kind,
                ran: false,
                message: None,
                network_off: false,
            });
            continue;
        }
        runs.push(run_one(prefix, kind, p, &script)?);
    }
    Ok(runs)
}

fn run_one(
    prefix: &Path,
    kind: ScriptKind,
    p: &Package<'_>,
    script: &Path,
) -> Result<ScriptRun, LinkScriptError> {
    let fail = |status: String, tail: String| LinkScriptError {
        package: p.label(),
        kind,
        script: script.to_path_buf(),
        status,
        tail,
    };
    let path = match std::env::var_os("PATH") {
        Some(old) => {
            let mut v = prefix.join("bin").into_os_string();
            v.push(":");
            v.push(old);
            v
        }
        None => prefix.join("bin").into_os_string(),
    };
    let mut cmd = Command::new("bash");
    cmd.arg("-x")
        .arg(script)
        .current_dir(prefix)
        .env("PREFIX", prefix)
        // There is no conda base environment: the environment is its own root.
        .env("ROOT_PREFIX", prefix)
        .env("PKG_NAME", p.record.name.as_normalized())
        .env("PKG_VERSION", p.record.version.to_string())
        .env("PKG_BUILDNUM", p.record.build_number.to_string())
        .env("PATH", path)
        .stdin(Stdio::null());
    let network_off = netns::available();
    if network_off {
        let enter = netns::prepare();
        // SAFETY: the closure runs in the forked child before exec and only makes system calls
        // (unshare, open, write, close) on memory prepared before the fork.
        unsafe {
            cmd.pre_exec(enter);
        }
    } else {
        tracing::warn!(
            "no network namespace can be made here: the {} script of {} runs with the network on",
            kind.as_str(),
            p.label()
        );
    }
    tracing::info!("running the {} script of {}", kind.as_str(), p.label());
    let out = cmd
        .output()
        .map_err(|e| fail(format!("cannot run bash: {e}"), String::new()))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    tracing::debug!("{} script of {}:\n{text}", kind.as_str(), p.label());
    if !out.status.success() {
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(15)..].join("\n");
        return Err(fail(out.status.to_string(), tail));
    }
    let messages = prefix.join(".messages.txt");
    let message = match fs_err::read_to_string(&messages) {
        Ok(m) => {
            let _ = fs_err::remove_file(&messages);
            Some(m.trim_end().to_string()).filter(|m| !m.is_empty())
        }
        Err(_) => None,
    };
    Ok(ScriptRun {
        package: p.label(),
        kind,
        ran: true,
        message,
        network_off,
    })
}

/// A network namespace for the script: as root, a plain one; otherwise inside a user namespace
/// that maps the caller's ids to themselves, so what the script writes is the caller's.
mod netns {
    use std::sync::OnceLock;

    use nix::{sched::CloneFlags, unistd};

    /// Whether `unshare` of a network namespace works here (tried once, in a throwaway child).
    pub(super) fn available() -> bool {
        static OK: OnceLock<bool> = OnceLock::new();
        *OK.get_or_init(|| {
            let mut cmd = std::process::Command::new("true");
            let enter = prepare();
            // SAFETY: as in `run_one`: only system calls after the fork.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut cmd, enter);
            }
            cmd.status().is_ok_and(|s| s.success())
        })
    }

    /// What the child runs between fork and exec to enter the namespaces. Everything it needs
    /// is formatted here, before the fork: the child of a threaded process must not allocate.
    pub(super) fn prepare() -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
        let root = unistd::geteuid().is_root();
        let (uid, gid) = (unistd::getuid(), unistd::getgid());
        let uid_map = format!("{uid} {uid} 1").into_bytes();
        let gid_map = format!("{gid} {gid} 1").into_bytes();
        move || {
            if root {
                return nix::sched::unshare(CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from);
            }
            nix::sched::unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNET)
                .map_err(std::io::Error::from)?;
            // Short literal paths: std formats them on the stack, without allocating.
            std::fs::write("/proc/self/setgroups", b"deny")?;
            std::fs::write("/proc/self/uid_map", &uid_map)?;
            std::fs::write("/proc/self/gid_map", &gid_map)
        }
    }
}
