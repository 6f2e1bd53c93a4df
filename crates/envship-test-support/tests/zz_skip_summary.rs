//! The skip summary of a `cargo test --workspace` run: every test binary before this one left a
//! marker per skipped test (see `envship_test_support::skip`); this prints them once, grouped by
//! reason, with the variable that enables each group, then removes this run's markers and those
//! of runs that ended without a summary. Markers of earlier runs are never reported: each run
//! has its own directory, named after the cargo process running it.
#![allow(clippy::print_stderr)]

use envship_test_support::skip::{
    enabling_variable, markers_dir, markers_root, process_identity, read_markers, SkipMarker,
};

fn main() {
    let (Some(root), Some(dir)) = (markers_root(), markers_dir()) else {
        return;
    };
    let markers = read_markers(&dir);
    eprint!("{}", summary(&markers));
    let _ = std::fs::remove_dir_all(&dir);
    remove_stale(&root);
}

/// The summary text: one group per reason, its tests and what enables them.
fn summary(markers: &[SkipMarker]) -> String {
    if markers.is_empty() {
        return "skip summary: no test was skipped\n".to_string();
    }
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for m in markers {
        match groups.last_mut() {
            Some((reason, tests)) if *reason == m.reason => tests.push(&m.test),
            _ => groups.push((&m.reason, vec![&m.test])),
        }
    }
    let mut out = format!(
        "skip summary: {} skipped, for {} (under CI=true each fails unless it says allowed; \
         `-- --nocapture` shows each SKIP line)\n",
        count(markers.len(), "test"),
        count(groups.len(), "reason")
    );
    for (reason, tests) in &groups {
        out.push_str(&format!("  {reason}\n"));
        out.push_str(&format!(
            "    {}: {}\n",
            count(tests.len(), "test"),
            tests.join(", ")
        ));
        match enabling_variable(reason) {
            Some(var) => out.push_str(&format!("    enable with: {var}\n")),
            None if reason.ends_with("(allowed under CI=true)") => {
                out.push_str("    not available on our machines, CI's included\n")
            }
            None => out.push_str("    enable by installing what it names (.ci/run does)\n"),
        }
    }
    out
}

fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Remove marker directories of runs whose cargo process is gone (interrupted, or run without
/// this binary, e.g. `cargo test -p OTHER`).
fn remove_stale(root: &std::path::Path) {
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let live = name
            .split_once('-')
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
            .and_then(process_identity)
            .is_some_and(|identity| identity == name);
        if !live {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
