//! Running the runner process: one pipe for stdout and stderr (so the log reads like a
//! terminal), lines streamed to a callback and saved to the log, a timeout that kills the whole
//! process tree.

use std::{
    io::{Read, Write},
    path::Path,
    process::{Command, ExitStatus, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use crate::SandboxError;

/// How to kill what the runner started.
#[derive(Debug, Clone)]
pub(crate) enum KillMode {
    /// Kill the direct child: it takes its PID namespace with it.
    Child,
    /// Kill the child's process group (no namespace to take the tree down).
    ProcessGroup,
    /// `ENGINE kill NAME`, then the client.
    Container { engine: String, name: String },
}

pub(crate) struct RunResult {
    pub status: Option<ExitStatus>,
    pub timed_out: bool,
    pub duration: Duration,
}

/// Longest line handed to the callback; longer output is split.
const MAX_LINE: usize = 16 * 1024;

/// Spawns `cmd` (consumed: its copies of the pipe must close for EOF), streams its output to
/// `on_line` and to `log`, and waits at most `timeout`.
pub(crate) fn run_streaming(
    mut cmd: Command,
    kill: &KillMode,
    timeout: Duration,
    log: &mut dyn Write,
    on_line: &mut dyn FnMut(&str),
) -> Result<Result<RunResult, std::io::Error>, SandboxError> {
    let (read, write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SandboxError::Setup {
            step: "create the output pipe".into(),
            source: e.into(),
        })?;
    let write2 = write.try_clone().map_err(|e| SandboxError::Setup {
        step: "duplicate the output pipe".into(),
        source: e,
    })?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(write))
        .stderr(Stdio::from(write2));
    if matches!(kill, KillMode::ProcessGroup) {
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    }
    let start = Instant::now();
    let spawned = cmd.spawn();
    // Drop our copies of the pipe's write end (held by the Command) so EOF can arrive.
    drop(cmd);
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };

    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let reader = std::thread::spawn(move || {
        let mut f = std::fs::File::from(read);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx.send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });

    let mut pending: Vec<u8> = Vec::new();
    let mut emit = |chunk: &[u8], pending: &mut Vec<u8>, log: &mut dyn Write, flush: bool| {
        let _ = log.write_all(chunk);
        pending.extend_from_slice(chunk);
        while let Some(pos) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=pos).collect();
            on_line(String::from_utf8_lossy(&line[..line.len() - 1]).trim_end_matches('\r'));
        }
        while pending.len() > MAX_LINE {
            let line: Vec<u8> = pending.drain(..MAX_LINE).collect();
            on_line(&String::from_utf8_lossy(&line));
        }
        if flush && !pending.is_empty() {
            on_line(&String::from_utf8_lossy(pending));
            pending.clear();
        }
    };

    let mut status: Option<ExitStatus> = None;
    let mut exited_at: Option<Instant> = None;
    let mut timed_out = false;
    let mut reader_done = false;
    let mut leftovers_killed = false;
    loop {
        if !reader_done {
            match rx.recv_timeout(Duration::from_millis(25)) {
                Ok(chunk) => emit(&chunk, &mut pending, log, false),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => reader_done = true,
            }
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
        if status.is_none() {
            if let Ok(Some(s)) = child.try_wait() {
                status = Some(s);
                exited_at = Some(Instant::now());
            }
        }
        let interrupted = envship_spec::cancel::is_requested();
        if status.is_none() && !timed_out && (interrupted || start.elapsed() >= timeout) {
            // An interrupted envship takes the test down with it: the run ends as a timeout
            // would, and the caller sees the stop request.
            timed_out = true;
            kill_tree(kill, child.id());
            let _ = child.kill();
            let note = if interrupted {
                "envship: interrupted: killed the test's whole process tree".to_string()
            } else {
                format!(
                    "envship: timed out after {} s: killed the test's whole process tree",
                    timeout.as_secs_f64()
                )
            };
            if !pending.is_empty() {
                emit(b"\n", &mut pending, log, false);
            }
            emit(format!("{note}\n").as_bytes(), &mut pending, log, false);
        }
        if let Some(at) = exited_at {
            if reader_done {
                break;
            }
            // Background processes that outlive the runner (only possible without a PID
            // namespace) hold the pipe open: they are part of the test and are killed.
            if !leftovers_killed && at.elapsed() > Duration::from_millis(500) {
                leftovers_killed = true;
                kill_tree(kill, child.id());
            }
            if at.elapsed() > Duration::from_secs(5) {
                break;
            }
        }
    }
    let duration = start.elapsed();
    emit(&[], &mut pending, log, true);
    if reader_done {
        let _ = reader.join();
    }
    let _ = log.flush();
    Ok(Ok(RunResult {
        status,
        timed_out,
        duration,
    }))
}

fn kill_tree(kill: &KillMode, pid: u32) {
    use nix::{sys::signal, unistd::Pid};
    let pid = Pid::from_raw(pid as i32);
    match kill {
        KillMode::Child => {
            let _ = signal::kill(pid, signal::Signal::SIGKILL);
        }
        KillMode::ProcessGroup => {
            let _ = signal::killpg(pid, signal::Signal::SIGKILL);
        }
        KillMode::Container { engine, name } => {
            let _ = Command::new(engine)
                .args(["kill", name])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = signal::kill(pid, signal::Signal::SIGKILL);
        }
    }
}

/// The log file, written to a temp file beside it and renamed when complete.
pub(crate) struct LogFile {
    tmp: tempfile::NamedTempFile,
    path: std::path::PathBuf,
}

impl LogFile {
    pub(crate) fn create(path: &Path) -> Result<Self, SandboxError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        fs_err::create_dir_all(&dir).map_err(|e| SandboxError::io("create", &dir, e))?;
        let tmp = tempfile::Builder::new()
            .prefix(".envship-log-")
            .tempfile_in(&dir)
            .map_err(|e| SandboxError::io("create a log in", &dir, e))?;
        Ok(Self {
            tmp,
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn writer(&mut self) -> &mut dyn Write {
        self.tmp.as_file_mut()
    }

    pub(crate) fn persist(self) -> Result<(), SandboxError> {
        let path = self.path;
        crate::junit::set_readable(self.tmp.as_file());
        self.tmp
            .persist(&path)
            .map_err(|e| SandboxError::io("write log", &path, e.error))?;
        Ok(())
    }
}
