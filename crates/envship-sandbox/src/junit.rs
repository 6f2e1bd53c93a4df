//! JUnit XML for CI: one test suite per environment, one test case per script, the log as
//! `system-out`, a `failure` element carrying the exit code (or the timeout).

use std::path::Path;

use crate::{SandboxError, TestOutcome};

/// The JUnit XML document for `outcomes` (one per script) of the environment `suite`.
pub fn junit_xml(suite: &str, outcomes: &[(TestOutcome, String)]) -> String {
    let failures = outcomes.iter().filter(|(o, _)| !o.passed).count();
    let time: f64 = outcomes.iter().map(|(o, _)| o.duration.as_secs_f64()).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"envship\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\">\n",
        outcomes.len()
    ));
    x.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\" time=\"{time:.3}\">\n",
        esc(suite),
        outcomes.len()
    ));
    for (o, log) in outcomes {
        let name = o
            .script
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| o.script.display().to_string());
        x.push_str(&format!(
            "    <testcase classname=\"envship.{}\" name=\"{}\" time=\"{:.3}\">\n",
            esc(suite),
            esc(&name),
            o.duration.as_secs_f64()
        ));
        x.push_str(&format!(
            "      <properties>\n        <property name=\"isolation\" value=\"{}\"/>\n        <property name=\"dest_prefix\" value=\"{}\"/>\n",
            esc(&o.isolation),
            esc(&o.dest_prefix.display().to_string())
        ));
        if let Some(g) = &o.rootfs_glibc {
            x.push_str(&format!(
                "        <property name=\"rootfs_glibc\" value=\"{g}\"/>\n"
            ));
        }
        x.push_str("      </properties>\n");
        if !o.passed {
            let kind = if o.timed_out {
                "timeout".to_string()
            } else if let Some(c) = o.exit_code {
                format!("exit code {c}")
            } else if let Some(s) = o.signal {
                format!("signal {s}")
            } else {
                "failed".to_string()
            };
            x.push_str(&format!(
                "      <failure type=\"{}\" message=\"{}\">{}</failure>\n",
                esc(&kind),
                esc(&o.summary()),
                esc(&tail(log, 40))
            ));
        }
        x.push_str(&format!("      <system-out>{}</system-out>\n", esc(log)));
        x.push_str("    </testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// Writes [`junit_xml`] to `path` (temp file + rename).
pub fn write_junit(
    path: &Path,
    suite: &str,
    outcomes: &[(TestOutcome, String)],
) -> Result<(), SandboxError> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    fs_err::create_dir_all(&dir).map_err(|e| SandboxError::io("create", &dir, e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".envship-junit-")
        .tempfile_in(&dir)
        .map_err(|e| SandboxError::io("create a file in", &dir, e))?;
    tmp.write_all(junit_xml(suite, outcomes).as_bytes())
        .map_err(|e| SandboxError::io("write", path, e))?;
    set_readable(tmp.as_file());
    tmp.persist(path)
        .map_err(|e| SandboxError::io("write", path, e.error))?;
    Ok(())
}

/// Give a finished temp file an ordinary file's mode before it is renamed into place.
pub(crate) fn set_readable(file: &std::fs::File) {
    let _ = envship_spec::output::set_output_mode(file);
}

fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// XML text/attribute escaping (quick-xml's), after dropping what a log may hold that XML
/// cannot: terminal escape sequences (colours from test tools) and the characters XML 1.0
/// forbids.
fn esc(s: &str) -> String {
    quick_xml::escape::escape(xml_chars(s)).into_owned()
}

/// `s` without CSI sequences (`ESC [ parameters final-byte`) and characters outside XML 1.0.
fn xml_chars(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        let forbidden = ((c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r'))
            || c == '\u{fffe}'
            || c == '\u{ffff}';
        if !forbidden {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{path::PathBuf, time::Duration};

    fn outcome(passed: bool, code: i32) -> TestOutcome {
        TestOutcome {
            passed,
            exit_code: Some(code),
            signal: None,
            timed_out: false,
            failed_step: (!passed).then_some(crate::Step::Script),
            duration: Duration::from_millis(1234),
            log_path: PathBuf::from("/x/env.log"),
            script: PathBuf::from("/x/run-test.sh"),
            dest_prefix: PathBuf::from("/opt/envship/demo"),
            isolation: "namespace".into(),
            rootfs_glibc: Some("2.31".parse().expect("v")),
        }
    }

    #[test]
    fn failing_case() {
        let xml = junit_xml(
            "demo",
            &[(outcome(false, 3), "line <1>\n\x1b[1mbold & \"q\"\n".into())],
        );
        insta::assert_snapshot!(xml);
    }

    #[test]
    fn passing_case_written_atomically() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("out/junit.xml");
        write_junit(&path, "demo", &[(outcome(true, 0), "ok\n".into())]).expect("write");
        let xml = std::fs::read_to_string(&path).expect("read");
        assert!(xml.contains("tests=\"1\" failures=\"0\""), "{xml}");
        assert!(!xml.contains("<failure"), "{xml}");
        assert_eq!(
            std::fs::read_dir(tmp.path().join("out"))
                .expect("ls")
                .count(),
            1
        );
    }
}
