//! Exit codes (DESIGN.md): 0 ok, 1 a gate failed (audit errors, a failed test, an unsatisfiable
//! solve, a host that cannot run the archive), 2 usage or bad input (bad YAML, bad flags, a
//! malformed archive, a missing file: anything the user fixes on their side), 70 an internal
//! error (a bug or a broken runtime: a panic, a thread pool that cannot start).
//!
//! The policy lives here, not in the libraries: each library error says what went wrong, and
//! the CLI decides how a process ends. The deepest classified error of a report's chain decides,
//! so a deploy that failed because the archive was malformed is "bad input", not "deploy".

use std::error::Error;

use envship_deploy::DeployError;
use envship_env::{pip::PipError, BuildError, LockError};
use envship_pack::PackError;

/// A gate failed.
pub const GATE: u8 = 1;
/// Usage error or bad input.
pub const INPUT: u8 = 2;
/// Internal error (EX_SOFTWARE).
pub const INTERNAL: u8 = 70;

/// Whether the command failed because a file system was full (ENOSPC, or EDQUOT: a quota).
pub fn disk_full(report: &miette::Report) -> bool {
    use std::io::ErrorKind;
    // Some wrappers (tempfile's, which adds the path) keep the kind but not the errno.
    report.chain().any(|e| {
        e.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(io.kind(), ErrorKind::StorageFull | ErrorKind::QuotaExceeded)
                || io
                    .raw_os_error()
                    .is_some_and(|c| c == libc::ENOSPC || c == libc::EDQUOT)
        })
    })
}

/// The exit code for a failed command. A full disk is bad input (the user frees space), even
/// where the same step's other failures are internal.
pub fn code_for(report: &miette::Report) -> u8 {
    if disk_full(report) {
        return INPUT;
    }
    let mut code = INPUT;
    for e in report.chain() {
        if let Some(c) = classify(e) {
            code = c;
        }
    }
    code
}

fn classify(e: &(dyn Error + 'static)) -> Option<u8> {
    // The pipeline's error forwards its stage's: the chain then skips the stage's own type.
    if let Some(e) = e.downcast_ref::<envship_ship::ShipError>() {
        return e.stage_error().and_then(classify);
    }
    if let Some(e) = e.downcast_ref::<LockError>() {
        return Some(match e {
            LockError::Unsatisfiable { .. } => GATE,
            LockError::Solver(_) | LockError::Runtime(_) => INTERNAL,
            _ => INPUT,
        });
    }
    if let Some(e) = e.downcast_ref::<BuildError>() {
        return Some(match e {
            BuildError::Runtime(_) => INTERNAL,
            _ => INPUT,
        });
    }
    if let Some(e) = e.downcast_ref::<PipError>() {
        return Some(match e {
            PipError::Unsatisfiable { .. } => GATE,
            _ => INPUT,
        });
    }
    // Deploy boxes the pack error it wraps: the chain then holds a `Box<PackError>`.
    let pack = e
        .downcast_ref::<PackError>()
        .or_else(|| e.downcast_ref::<Box<PackError>>().map(|b| &**b));
    if let Some(e) = pack {
        return Some(match e {
            PackError::ThreadPool(_) => INTERNAL,
            _ => INPUT,
        });
    }
    if let Some(e) = e.downcast_ref::<DeployError>() {
        return Some(match e {
            DeployError::IncompatibleHost { .. }
            | DeployError::TestFailed { .. }
            | DeployError::NotStaged { .. } => GATE,
            // Transparent: the chain goes on below the trust error, so it is classified here.
            DeployError::Untrusted(t) => return classify(&**t),
            _ => INPUT,
        });
    }
    // A file a policy does not trust is a gate; a policy that cannot be read is bad input.
    if let Some(e) = e.downcast_ref::<envship_trust::TrustError>() {
        return Some(match e {
            envship_trust::TrustError::Refused { .. } => GATE,
            envship_trust::TrustError::Policy(_) => INPUT,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(e: impl miette::Diagnostic + Send + Sync + 'static) -> u8 {
        code_for(&miette::Report::new(e))
    }

    #[test]
    fn the_deepest_known_error_decides() {
        let io = || std::io::Error::other("boom");
        assert_eq!(code(LockError::Runtime(io())), INTERNAL);
        assert_eq!(code_for(&miette::miette!("plain")), INPUT);
        let unsafe_entry = PackError::UnsafeEntry {
            entry: "../x".into(),
            reason: "path contains `..`",
        };
        let deploy = DeployError::Unpack {
            archive: "a.tar.gz".into(),
            dest: "d".into(),
            source: Box::new(unsafe_entry),
        };
        assert_eq!(code(deploy), INPUT);
        let failed = DeployError::TestFailed {
            env: "e".into(),
            status: "exit 1".into(),
            log: "l".into(),
        };
        assert_eq!(code(failed), GATE);
    }

    #[test]
    fn a_full_disk_is_bad_input_wherever_it_happens() {
        let full = || std::io::Error::from_raw_os_error(libc::ENOSPC);
        // A runtime error is internal, unless the disk was full.
        assert_eq!(
            code(LockError::Runtime(std::io::Error::other("x"))),
            INTERNAL
        );
        let report = miette::Report::new(LockError::Runtime(full()));
        assert!(disk_full(&report));
        assert_eq!(code_for(&report), INPUT);
        assert!(!disk_full(&miette::miette!("plain")));
    }
}
