//! The test script's result, and its log folded in a `<details>`.

use std::fmt::Write as _;

use serde_json::Value;

use crate::{html::escape, Evidence};

/// The most of a log the page holds: its end, where a failure shows.
pub const LOG_LIMIT: usize = 512 * 1024;

/// The last [`LOG_LIMIT`] bytes of `log` (cut at a line start), and how many bytes were left out.
pub fn log_tail(log: &str) -> (&str, usize) {
    if log.len() <= LOG_LIMIT {
        return (log, 0);
    }
    let mut start = log.len() - LOG_LIMIT;
    while !log.is_char_boundary(start) {
        start += 1;
    }
    if let Some(nl) = log[start..].find('\n') {
        start += nl + 1;
    }
    (&log[start..], start)
}

fn outcome_facts(t: &Value) -> String {
    let mut facts = Vec::new();
    if let Some(c) = t.get("exit_code").and_then(Value::as_i64) {
        facts.push(format!("exit code {c}"));
    }
    if let Some(s) = t.get("signal").and_then(Value::as_i64) {
        facts.push(format!("killed by signal {s}"));
    }
    if t.get("timed_out").and_then(Value::as_bool) == Some(true) {
        facts.push("timed out".to_string());
    }
    if let Some(s) = t.get("failed_step").and_then(Value::as_str) {
        facts.push(format!("failed step: {s}"));
    }
    if let Some(d) = t.get("duration").and_then(Value::as_f64) {
        facts.push(format!("ran {d:.1} s"));
    }
    if let Some(i) = t.get("isolation").and_then(Value::as_str) {
        facts.push(format!("isolation: {i}"));
    }
    if let Some(p) = t.get("dest_prefix").and_then(Value::as_str) {
        facts.push(format!("at {p}"));
    }
    facts.join("; ")
}

/// Result line and folded log.
pub fn render(e: &Evidence<'_>) -> String {
    let mut out = String::from("<h2 id=\"test\">Test</h2>\n");
    let (class, word) = match super::test_passed(e) {
        Some(true) => ("pass", "passed"),
        Some(false) => ("fail", "failed"),
        None => ("skipped", "not run or unknown"),
    };
    let facts = e
        .manifest
        .test
        .as_ref()
        .map(outcome_facts)
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "<p id=\"test-result\">The test script <span class=\"verdict {class}\">{word}</span>{}</p>",
        if facts.is_empty() {
            String::new()
        } else {
            format!(" ({})", escape(&facts))
        }
    );
    match e.test_log {
        Some(log) => {
            let (tail, cut) = log_tail(log);
            let lines = log.lines().count();
            let _ = writeln!(
                out,
                "<details id=\"test-log\"><summary>Test log ({lines} lines)</summary>"
            );
            if cut > 0 {
                let _ = writeln!(
                    out,
                    "<p class=\"note\">The first {cut} bytes are left out; the whole log is the archive's .test.log.</p>"
                );
            }
            let _ = writeln!(out, "<pre>{}</pre>\n</details>", escape(tail));
        }
        None => out.push_str("<p class=\"note\">No test log was given.</p>\n"),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_log_keeps_its_end_from_a_line_start() {
        let log = "x".repeat(LOG_LIMIT) + "\nlast line\n";
        let (tail, cut) = log_tail(&log);
        assert_eq!(tail, "last line\n");
        assert_eq!(cut, LOG_LIMIT + 1);
        assert_eq!(log_tail("short\n"), ("short\n", 0));
    }
}
