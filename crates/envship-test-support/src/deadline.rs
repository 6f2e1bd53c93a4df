//! Child processes with a deadline: no test can hang the run.
//!
//! A test that waits on a child with `Command::output`, `status` or `Child::wait` waits forever
//! when the child hangs, and so does CI (it once sat 81 minutes on two `envship build` children
//! that a SIGINT never reached). Every test goes through [`Deadline`] and [`ChildDeadline`]
//! instead: past the deadline the child's whole process group is killed and the test panics
//! naming the child, its elapsed time and what it printed so far.
//!
//! The default deadline is [`DEFAULT`]; `ENVSHIP_TEST_DEADLINE_SECS` changes it for a slow
//! machine (or a short one for a check of this module).

use std::{
    io::Read,
    os::unix::process::CommandExt,
    process::{Child, Command, ExitStatus, Output, Stdio},
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// How long a test child may run when the test names no deadline of its own: longer than any
/// test's child takes on a loaded 2-core machine (the glibc 2.12 numpy ship is about 30 s in a
/// debug build), far shorter than CI's limit.
pub const DEFAULT: Duration = Duration::from_secs(600);

/// The deadline for test children: [`DEFAULT`] unless `ENVSHIP_TEST_DEADLINE_SECS` is set.
pub fn default_deadline() -> Duration {
    std::env::var("ENVSHIP_TEST_DEADLINE_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(DEFAULT)
}

/// `output`/`status` with a deadline, for `std::process::Command`.
pub trait Deadline {
    /// Like `Command::output`, within [`default_deadline`]; panics naming the child past it.
    fn output_in_time(&mut self) -> std::io::Result<Output>;
    /// Like `Command::output`, within `limit`.
    fn output_within(&mut self, limit: Duration) -> std::io::Result<Output>;
    /// Like `Command::output` with `input` written to the child's stdin, within
    /// [`default_deadline`].
    fn output_with_stdin(&mut self, input: &[u8]) -> std::io::Result<Output>;
    /// Like `Command::status` (output inherited), within [`default_deadline`].
    fn status_in_time(&mut self) -> std::io::Result<ExitStatus>;
    /// Like `Command::spawn`, but in a process group of its own, so that a deadline can kill
    /// the child with everything it started.
    fn spawn_group(&mut self) -> std::io::Result<Child>;
}

impl Deadline for Command {
    fn output_in_time(&mut self) -> std::io::Result<Output> {
        self.output_within(default_deadline())
    }

    fn output_within(&mut self, limit: Duration) -> std::io::Result<Output> {
        output(self, limit, None)
    }

    fn output_with_stdin(&mut self, input: &[u8]) -> std::io::Result<Output> {
        output(self, default_deadline(), Some(input.to_vec()))
    }

    fn status_in_time(&mut self) -> std::io::Result<ExitStatus> {
        let name = describe(self);
        let limit = default_deadline();
        let mut child = self.spawn_group()?;
        match wait_or_kill(&mut child, &name, limit) {
            Ok(status) => Ok(status),
            Err(elapsed) => panic!("{}", overdue(&name, elapsed, limit, &[], &[])),
        }
    }

    fn spawn_group(&mut self) -> std::io::Result<Child> {
        self.process_group(0).spawn()
    }
}

/// `wait` with a deadline, for a child the test spawned itself (best with
/// [`Deadline::spawn_group`], so the kill reaches what the child started).
pub trait ChildDeadline {
    /// Like `Child::wait`, within `limit`; past it, kills the child's process group and panics
    /// with `name` (what the child is, for the failure message).
    fn wait_within(&mut self, name: &str, limit: Duration) -> ExitStatus;
    /// [`ChildDeadline::wait_within`] with [`default_deadline`].
    fn wait_in_time(&mut self, name: &str) -> ExitStatus {
        self.wait_within(name, default_deadline())
    }
}

impl ChildDeadline for Child {
    fn wait_within(&mut self, name: &str, limit: Duration) -> ExitStatus {
        match wait_or_kill(self, name, limit) {
            Ok(status) => status,
            Err(elapsed) => panic!("{}", overdue(name, elapsed, limit, &[], &[])),
        }
    }
}

/// `output` with a deadline; `input`, if any, is written to stdin (else stdin is empty, as with
/// `Command::output`).
fn output(cmd: &mut Command, limit: Duration, input: Option<Vec<u8>>) -> std::io::Result<Output> {
    let name = describe(cmd);
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn_group()?;
    // A writer thread, so a child that does not read its stdin cannot block the deadline.
    let writer = child.stdin.take().zip(input).map(|(mut pipe, input)| {
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&input);
        })
    });
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    // After a kill the pipes close once the whole group is gone; what they held is read here.
    let status = wait_or_kill(&mut child, &name, limit);
    let stdout = join(stdout);
    let stderr = join(stderr);
    if let Some(w) = writer {
        let _ = w.join();
    }
    match status {
        Ok(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        Err(elapsed) => panic!("{}", overdue(&name, elapsed, limit, &stdout, &stderr)),
    }
}

/// The program and its arguments, as the failure names the child.
fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut p| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = p.read_to_end(&mut buf);
            buf
        })
    })
}

fn join(h: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    h.and_then(|h| h.join().ok()).unwrap_or_default()
}

/// Wait for `child` until `limit`; past it, SIGKILL its process group (and the child itself,
/// in case it is not a group leader), reap it and return how long it ran.
fn wait_or_kill(child: &mut Child, name: &str, limit: Duration) -> Result<ExitStatus, Duration> {
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) => {}
            Err(e) => panic!("cannot wait for {name}: {e}"),
        }
        if start.elapsed() >= limit {
            kill_group(child);
            let _ = child.wait();
            return Err(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// SIGKILL the child's process group if it leads one, and the child.
fn kill_group(child: &Child) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: getpgid(2) and kill(2) on a pid we spawned and have not reaped yet; no memory is
    // involved.
    unsafe {
        if libc::getpgid(pid) == pid {
            libc::kill(-pid, libc::SIGKILL);
        }
        libc::kill(pid, libc::SIGKILL);
    }
}

fn overdue(name: &str, elapsed: Duration, limit: Duration, stdout: &[u8], stderr: &[u8]) -> String {
    let tail = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    format!(
        "child `{name}` did not finish within its deadline of {:.0} s: killed it (and its process group) after {:.1} s\n--- its stdout (last lines) ---\n{}\n--- its stderr (last lines) ---\n{}",
        limit.as_secs_f64(),
        elapsed.as_secs_f64(),
        tail(stdout),
        tail(stderr)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hung_child_fails_its_test_within_the_deadline_naming_it() {
        let start = Instant::now();
        let panic = std::panic::catch_unwind(|| {
            Command::new("sh")
                .args(["-c", "echo started; sleep 300"])
                .output_within(Duration::from_millis(500))
        })
        .expect_err("a child past its deadline must fail the test");
        let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the deadline must stop the wait: {:?}",
            start.elapsed()
        );
        assert!(
            msg.contains("child `sh -c echo started; sleep 300`"),
            "{msg}"
        );
        assert!(
            msg.contains("deadline of 0 s") || msg.contains("deadline of 1 s"),
            "{msg}"
        );
        assert!(msg.contains("started"), "what it printed is shown: {msg}");
    }

    #[test]
    fn the_kill_reaches_what_the_child_started() {
        // `sleep` is a grandchild holding the pipes; without the group kill the read would block.
        let start = Instant::now();
        let r = std::panic::catch_unwind(|| {
            Command::new("sh")
                .args(["-c", "sleep 300 & wait"])
                .output_within(Duration::from_millis(300))
        });
        assert!(r.is_err());
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_child_in_time_gives_its_output() {
        let out = Command::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .output_in_time()
            .unwrap();
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn a_spawned_child_past_its_deadline_is_named() {
        let mut child = Command::new("sleep").arg("300").spawn_group().unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            child.wait_within("the sleeper", Duration::from_millis(200))
        }));
        let msg = r.expect_err("must fail");
        let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("child `the sleeper`"), "{msg}");
        assert!(child.try_wait().unwrap().is_some(), "the child was reaped");
    }
}
