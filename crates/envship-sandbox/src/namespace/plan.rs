//! The sandbox's file system as data: a list of mount operations on the new root, every path
//! turned into a `CString` before the fork so the child only issues syscalls.

use std::{
    ffi::{CString, OsStr},
    io,
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::{ffi::OsStrExt, process::CommandExt},
    },
    path::{Path, PathBuf},
    process::Command,
};

use super::child::ChildSetup;
use crate::SandboxError;

/// One setup operation, with every string allocated before the fork.
#[derive(Debug)]
pub(super) enum Op {
    /// Bind `src` on `dst` (recursively), then make it read-only unless it is a device.
    Bind {
        src: CString,
        dst: CString,
        read_only: bool,
    },
    /// Mount a tmpfs with `data` options.
    Tmpfs { dst: CString, data: CString },
    /// Mount a fresh procfs (needs the new PID namespace).
    Proc { dst: CString },
    /// Create a directory (inside a tmpfs mounted by an earlier op).
    Mkdir { path: CString, mode: libc::mode_t },
    /// Create an empty file to bind a device or file on.
    Touch { path: CString },
    /// Create a symlink.
    Symlink { target: CString, link: CString },
}

impl Op {
    pub(super) fn describe(&self) -> String {
        let s = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Op::Bind { src, dst, .. } => format!("bind-mount {} at {}", s(src), s(dst)),
            Op::Tmpfs { dst, .. } => format!("mount a tmpfs at {}", s(dst)),
            Op::Proc { dst } => format!("mount /proc at {}", s(dst)),
            Op::Mkdir { path, .. } => format!("create directory {}", s(path)),
            Op::Touch { path } => format!("create mount point {}", s(path)),
            Op::Symlink { target, link } => format!("create symlink {} -> {}", s(link), s(target)),
        }
    }
}

/// The sandbox's file system, as a list of operations on the host path of the new root.
#[derive(Debug)]
pub(crate) struct MountPlan {
    pub(super) root: CString,
    pub(super) ops: Vec<Op>,
}

impl MountPlan {
    /// A plan for a new root at `root` (an existing, empty host directory).
    pub(crate) fn new(root: &Path) -> Result<Self, SandboxError> {
        Ok(Self {
            root: cstr(root)?,
            ops: Vec::new(),
        })
    }

    fn inside(&self, path: &Path) -> Result<CString, SandboxError> {
        let rel = path.strip_prefix("/").unwrap_or(path);
        let root = Path::new(OsStr::from_bytes(self.root.as_bytes()));
        cstr(&root.join(rel))
    }

    /// Bind host `src` read-only at `dst` (a path inside the sandbox). The mount point must be
    /// created first (`mkdir` / `touch`).
    pub(crate) fn bind_ro(&mut self, src: &Path, dst: &Path) -> Result<(), SandboxError> {
        let op = Op::Bind {
            src: cstr(src)?,
            dst: self.inside(dst)?,
            read_only: true,
        };
        self.ops.push(op);
        Ok(())
    }

    pub(crate) fn tmpfs(&mut self, dst: &Path, data: &str) -> Result<(), SandboxError> {
        let op = Op::Tmpfs {
            dst: self.inside(dst)?,
            data: CString::new(data).map_err(|_| nul_error(Path::new(data)))?,
        };
        self.ops.push(op);
        Ok(())
    }

    pub(crate) fn proc(&mut self, dst: &Path) -> Result<(), SandboxError> {
        let op = Op::Proc {
            dst: self.inside(dst)?,
        };
        self.ops.push(op);
        Ok(())
    }

    pub(crate) fn mkdir(&mut self, path: &Path, mode: u32) -> Result<(), SandboxError> {
        let op = Op::Mkdir {
            path: self.inside(path)?,
            mode: mode as libc::mode_t,
        };
        self.ops.push(op);
        Ok(())
    }

    pub(crate) fn touch(&mut self, path: &Path) -> Result<(), SandboxError> {
        let op = Op::Touch {
            path: self.inside(path)?,
        };
        self.ops.push(op);
        Ok(())
    }

    pub(crate) fn symlink(&mut self, target: &Path, link: &Path) -> Result<(), SandboxError> {
        let op = Op::Symlink {
            target: cstr(target)?,
            link: self.inside(link)?,
        };
        self.ops.push(op);
        Ok(())
    }

    /// The standard `/proc`, minimal `/dev` (null, zero, full, random, urandom, tty, shm, fd).
    pub(crate) fn proc_and_dev(&mut self) -> Result<(), SandboxError> {
        self.proc(Path::new("/proc"))?;
        self.tmpfs(Path::new("/dev"), "mode=0755")?;
        for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
            let host = Path::new("/dev").join(dev);
            if host.exists() {
                self.touch(&host)?;
                self.bind_ro_dev(&host)?;
            }
        }
        self.mkdir(Path::new("/dev/shm"), 0o1777)?;
        self.tmpfs(Path::new("/dev/shm"), "mode=1777")?;
        self.symlink(Path::new("/proc/self/fd"), Path::new("/dev/fd"))?;
        for (i, name) in ["stdin", "stdout", "stderr"].iter().enumerate() {
            self.symlink(
                &PathBuf::from(format!("/proc/self/fd/{i}")),
                &Path::new("/dev").join(name),
            )?;
        }
        Ok(())
    }

    /// Device nodes stay writable (writing to /dev/null must work): a plain bind.
    fn bind_ro_dev(&mut self, host: &Path) -> Result<(), SandboxError> {
        // A bind of a device node keeps the host mount's flags; read-only would break
        // `> /dev/null`, so devices are bound without the read-only step.
        let op = Op::Bind {
            src: cstr(host)?,
            dst: self.inside(host)?,
            read_only: false,
        };
        self.ops.push(op);
        Ok(())
    }

    /// The `Command` that runs `program args` inside the sandbox.
    pub(crate) fn command(
        self,
        program: &str,
        args: &[std::ffi::OsString],
    ) -> Result<(Command, OwnedFd), SandboxError> {
        let (diag_read, diag_write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SandboxError::Setup {
                step: "create a pipe".into(),
                source: e.into(),
            })?;
        let uid = nix::unistd::getuid().as_raw();
        let gid = nix::unistd::getgid().as_raw();
        let child = ChildSetup {
            uid_map: CString::new(format!("0 {uid} 1\n")).map_err(|_| nul_error(Path::new("")))?,
            gid_map: CString::new(format!("0 {gid} 1\n")).map_err(|_| nul_error(Path::new("")))?,
            plan: self,
            diag_fd: diag_write.as_raw_fd(),
            diag_owner: Some(diag_write),
        };
        let mut cmd = Command::new(program);
        cmd.args(args);
        let mut child = child;
        // SAFETY: the hook only issues raw syscalls on memory allocated before the fork (see
        // `ChildSetup::run`), which is what is allowed between fork and exec.
        unsafe {
            cmd.pre_exec(move || child.run());
        }
        Ok((cmd, diag_read))
    }
}

impl MountPlan {
    /// Descriptions of the ops, by index, for [`diagnose`].
    pub(crate) fn describe_ops(&self) -> Vec<String> {
        self.ops.iter().map(Op::describe).collect()
    }
}

fn cstr(p: &Path) -> Result<CString, SandboxError> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| nul_error(p))
}

fn nul_error(p: &Path) -> SandboxError {
    SandboxError::Setup {
        step: format!("path {} contains a NUL byte", p.display()),
        source: io::Error::from(io::ErrorKind::InvalidInput),
    }
}
