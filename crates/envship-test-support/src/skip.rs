//! Skipping a test that lacks what it needs, without letting CI pass by skipping.
//!
//! cargo hides a passing test's output, so a printed `SKIP:` is invisible in a CI log. Under
//! `CI=true` (`.ci/run` installs everything the tests need) a skip is therefore a failure; the
//! only exception is [`skip_unavailable_everywhere`], for what no machine of ours can have.
//!
//! Each skip also leaves a marker in [`markers_dir`], which the last test binary of a
//! `cargo test --workspace` run (`tests/zz_skip_summary.rs` of this crate) reads to print, once
//! at the end, what was skipped and which variable enables it.

// Printing the reason is the point of a skip.
#![allow(clippy::print_stderr)]

use std::{
    fmt::Display,
    path::{Path, PathBuf},
};

/// Whether this run is CI's (`CI=true`, as GitHub Actions and `.ci/run` set it).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Skip `test` for `reason`: prints `SKIP test: reason`, or panics under `CI=true`. The caller
/// returns right after.
#[track_caller]
pub fn skip(test: &str, reason: impl Display) {
    assert!(
        !in_ci(),
        "{test} would skip under CI=true: {reason} (.ci/run must install what this test needs)"
    );
    eprintln!("SKIP {test}: {reason}");
    leave_marker(test, &reason.to_string());
}

/// The name of the running test, as libtest names the thread it runs each test on
/// (`module::test_name`); `fallback` when called off a test's thread (e.g. from a thread the test
/// spawned, or a harness that runs tests on `main`).
pub fn current_test(fallback: &str) -> String {
    match std::thread::current().name() {
        Some(name) if name != "main" => name.to_owned(),
        _ => fallback.to_owned(),
    }
}

/// Skip `test` for something that no machine of this workplace has, CI's included (a running
/// container engine): printed, never a failure.
pub fn skip_unavailable_everywhere(test: &str, reason: impl Display) {
    eprintln!("SKIP {test}: {reason} (allowed under CI=true)");
    leave_marker(test, &format!("{reason} (allowed under CI=true)"));
}

/// Where test binaries of one `cargo test` run leave their skip markers:
/// `target/PROFILE/envship-test-skips/RUN`, RUN naming the cargo process that runs every test
/// binary of the run by its pid and start time (so a reused pid is another run). `None` when
/// that cannot be told (no /proc, no test binary path).
pub fn markers_dir() -> Option<PathBuf> {
    let run = process_identity(std::os::unix::process::parent_id())?;
    Some(markers_root()?.join(run))
}

/// The directory holding every run's marker directory.
pub fn markers_root() -> Option<PathBuf> {
    // The test binary is target/PROFILE/deps/NAME-HASH.
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.parent()?.join("envship-test-skips"))
}

/// `PID-STARTTIME` of a live process (from /proc/PID/stat), `None` if it is gone.
pub fn process_identity(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at field 3; starttime is 22.
    let (_, rest) = stat.rsplit_once(')')?;
    let start = rest.split_whitespace().nth(22 - 3)?;
    Some(format!("{pid}-{start}"))
}

/// Record a skip for the run's summary; best effort (a summary is no reason to fail a test).
fn leave_marker(test: &str, reason: &str) {
    let Some(dir) = markers_dir() else { return };
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let name: String = test
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let file = dir.join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::write(file, format!("{test}\n{reason}\n"));
}

/// One skip read back from a marker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkipMarker {
    /// The test.
    pub test: String,
    /// Why it was skipped.
    pub reason: String,
}

/// Every marker in `dir`, sorted by reason then test.
pub fn read_markers(dir: &Path) -> Vec<SkipMarker> {
    let mut out: Vec<SkipMarker> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|text| {
            let (test, reason) = text.split_once('\n')?;
            Some(SkipMarker {
                test: test.to_string(),
                reason: reason.trim_end().to_string(),
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.reason, &a.test).cmp(&(&b.reason, &b.test)));
    out.dedup();
    out
}

/// The variable a skip's reason names (`ENVSHIP_TEST_IMAGE is not set …`), if any.
pub fn enabling_variable(reason: &str) -> Option<&str> {
    let start = reason.find("ENVSHIP_")?;
    let rest = &reason[start..];
    let end = rest
        .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_test_is_the_thread_libtest_runs_the_test_on() {
        assert_eq!(
            current_test("fallback"),
            "skip::tests::current_test_is_the_thread_libtest_runs_the_test_on"
        );
        let off_thread = std::thread::spawn(|| current_test("fallback"))
            .join()
            .unwrap();
        assert_eq!(off_thread, "fallback");
    }

    #[test]
    fn the_enabling_variable_is_the_one_the_reason_names() {
        assert_eq!(
            enabling_variable("ENVSHIP_TEST_IMAGE is not set (.ci/run imports it)"),
            Some("ENVSHIP_TEST_IMAGE")
        );
        assert_eq!(enabling_variable("`gcc` is not installed"), None);
    }

    #[test]
    fn ci_flag_values() {
        // Only the values CI systems set count; anything else is a developer's run.
        let saved = std::env::var_os("CI");
        for (v, want) in [("true", true), ("1", true), ("false", false), ("", false)] {
            std::env::set_var("CI", v);
            assert_eq!(in_ci(), want, "CI={v:?}");
        }
        match saved {
            Some(v) => std::env::set_var("CI", v),
            None => std::env::remove_var("CI"),
        }
    }
}
