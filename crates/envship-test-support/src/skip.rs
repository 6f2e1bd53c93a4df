//! Skipping a test that lacks what it needs, without letting CI pass by skipping.
//!
//! cargo hides a passing test's output, so a printed `SKIP:` is invisible in a CI log. Under
//! `CI=true` (`.ci/run` installs everything the tests need) a skip is therefore a failure; the
//! only exception is [`skip_unavailable_everywhere`], for what no machine of ours can have.

// Printing the reason is the point of a skip.
#![allow(clippy::print_stderr)]

use std::fmt::Display;

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
