//! SIGINT, SIGTERM and SIGHUP: ask the stages to stop, and make sure the process ends.
//!
//! The first signal sets [`envship_spec::cancel`]: the stages stop at their next safe point,
//! remove what they were creating (a new prefix's staging directory, a half-written archive)
//! and return an `Interrupted` error, and `main` exits with 128 + the signal's number (130 for
//! Ctrl-C). Work stuck where no check reaches it (a blocking `open` of a FIFO, a hung network
//! mount) cannot hold the process: [`GRACE`] after the first signal, or at a second one, the
//! process exits at once. What a stage left then is what a SIGKILL leaves, which the next run
//! repairs (staging directories, deploy journals); the kernel releases the package cache's
//! `flock` with the process.
//!
//! The handlers are installed whatever disposition envship inherited. A CI runner that starts
//! jobs in the background with SIGINT ignored (what a non-interactive shell does to `cmd &`)
//! still cancels them with SIGINT, and GitHub Actions cancels a step by SIGINT then SIGTERM:
//! an envship that ignored them would run on, holding its locks, until it is SIGKILLed.

use std::{
    io::IsTerminal,
    sync::atomic::{AtomicI32, Ordering},
    time::Duration,
};

use signal_hook::{
    consts::{SIGHUP, SIGINT, SIGTERM},
    iterator::Signals,
};

/// How long the stages have to stop after the first signal.
pub const GRACE: Duration = Duration::from_secs(5);

static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// Start the thread that receives the signals. Failing to set it up is not fatal: envship then
/// dies by the default action, as any process would.
pub fn install() {
    let mut signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!("cannot install the signal handlers: {e}");
            return;
        }
    };
    let spawned = std::thread::Builder::new()
        .name("envship-signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if RECEIVED
                    .compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
                {
                    // A second signal: the user does not want to wait for the clean-up.
                    exit_now(sig, "a second signal");
                }
                tracing::warn!(
                    "{}: stopping (a second signal, or {} s, ends envship at once)",
                    name(sig),
                    GRACE.as_secs()
                );
                envship_spec::cancel::request();
                let _ = std::thread::Builder::new()
                    .name("envship-grace".into())
                    .spawn(move || {
                        std::thread::sleep(GRACE);
                        exit_now(sig, &format!("{} s without stopping", GRACE.as_secs()));
                    });
            }
        });
    if let Err(e) = spawned {
        tracing::debug!("cannot start the signal thread: {e}");
    }
}

/// The signal that asked envship to stop, if one did.
pub fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The exit status of a process ended by `sig`, as shells report it.
pub fn exit_code(sig: i32) -> u8 {
    u8::try_from(128 + sig).unwrap_or(u8::MAX)
}

/// The signal's conventional name.
pub fn name(sig: i32) -> &'static str {
    match sig {
        SIGINT => "SIGINT",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// End the process now, without running destructors or `atexit` handlers that could wait on
/// the threads still stuck (the reason we are here).
fn exit_now(sig: i32, why: &str) -> ! {
    let mut msg = format!(
        "envship: interrupted by {} ({why}): exiting; the next run repairs what was left\n",
        name(sig)
    );
    if std::io::stderr().is_terminal() {
        // A progress bar may have hidden the cursor.
        msg.insert_str(0, "\x1b[?25h\n");
    }
    // SAFETY: write(2) of a buffer we own, then _exit(2); neither touches Rust state.
    unsafe {
        libc::write(2, msg.as_ptr().cast(), msg.len());
        libc::_exit(i32::from(exit_code(sig)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_shells() {
        assert_eq!(exit_code(SIGINT), 130);
        assert_eq!(exit_code(SIGTERM), 143);
        assert_eq!(exit_code(SIGHUP), 129);
    }
}
