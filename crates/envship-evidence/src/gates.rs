//! Gates from the ship report: `envship_ship::ShipReport` serializes its stages as
//! `{"stage": "audit", "ok": false, "seconds": 0.4, "detail": {"kind": "audit", "errors": 2, …}}`
//! (see `crates/envship-ship/src/report.rs`). This crate reads that JSON rather than depending on
//! the pipeline.

use serde_json::Value;

use crate::{html::human_bytes, Gate, Verdict};

/// The gates of a ship run, in order.
pub const GATE_NAMES: [&str; 5] = ["lock", "build", "audit", "pack", "test"];

fn num(d: &Value, key: &str) -> u64 {
    d.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// One line of figures from a stage's `detail`.
fn detail_line(d: &Value) -> Option<String> {
    let yes = |key: &str| d.get(key).and_then(Value::as_bool).unwrap_or(false);
    let line = match d.get("kind").and_then(Value::as_str)? {
        "lock" => format!(
            "{} packages{}",
            num(d, "packages"),
            if yes("reused") { ", lock reused" } else { "" }
        ),
        "build" if yes("noop") => "nothing to change".to_string(),
        "build" => format!(
            "{} conda packages installed, {} pip",
            num(d, "installed"),
            num(d, "pip")
        ),
        "audit" => format!(
            "{} errors, {} warnings, {} ELF files",
            num(d, "errors"),
            num(d, "warnings"),
            num(d, "elf_files")
        ),
        "pack" => format!(
            "{} files, {}",
            num(d, "files"),
            human_bytes(num(d, "archive_bytes"))
        ),
        "test" => d.get("summary").and_then(Value::as_str)?.to_string(),
        "failed" => "failed with an error".to_string(),
        _ => return None,
    };
    Some(line)
}

/// The five gates ([`GATE_NAMES`]) from a ship report's JSON (the whole report, or its
/// `stages` array): a stage that ran is [`Verdict::Pass`] or [`Verdict::Fail`] with its time and
/// figures; a stage that did not run is [`Verdict::Skipped`]. A failed `lock+build` stage fails
/// both gates.
pub fn gates_from_ship_json(report: &Value) -> Vec<Gate> {
    let stages = report
        .get("stages")
        .unwrap_or(report)
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut gates: Vec<Gate> = GATE_NAMES
        .iter()
        .map(|n| Gate {
            name: (*n).to_string(),
            verdict: Verdict::Skipped,
            seconds: None,
            detail: None,
        })
        .collect();
    for s in &stages {
        let stage = s.get("stage").and_then(Value::as_str).unwrap_or_default();
        let verdict = match s.get("ok").and_then(Value::as_bool) {
            Some(true) => Verdict::Pass,
            _ => Verdict::Fail,
        };
        let seconds = s.get("seconds").and_then(Value::as_f64);
        let detail = s.get("detail").and_then(detail_line);
        let names = match stage {
            "lock+build" => vec!["lock", "build"],
            other => vec![other],
        };
        for name in names {
            let gate = Gate {
                name: name.to_string(),
                verdict,
                seconds,
                detail: detail.clone(),
            };
            match gates.iter_mut().find(|g| g.name == name) {
                Some(slot) => *slot = gate,
                None => gates.push(gate),
            }
        }
    }
    gates
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stages_that_ran_pass_or_fail_the_rest_are_skipped() {
        let report = json!({"name": "e", "stages": [
            {"stage": "lock", "ok": true, "seconds": 1.5, "detail": {"kind": "lock", "packages": 23, "reused": true}},
            {"stage": "build", "ok": true, "seconds": 40.0, "detail": {"kind": "build", "installed": 23, "pip": 2, "noop": false}},
            {"stage": "audit", "ok": false, "seconds": 0.3, "detail": {"kind": "audit", "errors": 2, "warnings": 1, "elf_files": 9}},
        ]});
        let g = gates_from_ship_json(&report);
        let v: Vec<(&str, Verdict)> = g.iter().map(|g| (g.name.as_str(), g.verdict)).collect();
        assert_eq!(
            v,
            [
                ("lock", Verdict::Pass),
                ("build", Verdict::Pass),
                ("audit", Verdict::Fail),
                ("pack", Verdict::Skipped),
                ("test", Verdict::Skipped),
            ]
        );
        assert_eq!(g[0].detail.as_deref(), Some("23 packages, lock reused"));
        assert_eq!(
            g[2].detail.as_deref(),
            Some("2 errors, 1 warnings, 9 ELF files")
        );
        assert_eq!(g[2].seconds, Some(0.3));
        assert_eq!(g[3].seconds, None);
    }

    #[test]
    fn a_failed_lock_and_build_fails_both_gates() {
        let stages = json!([{"stage": "lock+build", "ok": false, "seconds": 2.0, "detail": {"kind": "failed"}}]);
        let g = gates_from_ship_json(&stages);
        assert_eq!(g[0].verdict, Verdict::Fail);
        assert_eq!(g[1].verdict, Verdict::Fail);
        assert_eq!(g[1].detail.as_deref(), Some("failed with an error"));
        assert_eq!(g[2].verdict, Verdict::Skipped);
    }
}
