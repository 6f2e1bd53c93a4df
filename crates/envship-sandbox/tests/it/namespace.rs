//! The namespace sandbox over the host's userland.
use envship_test_support::Deadline;

use std::{net::TcpListener, path::Path, time::Duration};

use envship_sandbox::{Isolation, SandboxError, Step};

use crate::fixtures::{env_files, namespaces_or_skip, run, sha256, Project};

const CONTRACT: &str = r#"set -e
hello
test "$(pwd)" = /tmp/project
grep -q 'name: demo' /tmp/environment.yml
test "$ENVIRONMENT_NAME" = demo
test "$CONDA_PREFIX" = /opt/envship/demo
test -f "$CONDA_PREFIX/.unpacked"
test "$HOME" = /home/envship
test -z "$(ls -A "$HOME")"
test "$PATH" = "/opt/envship/demo/bin:/usr/bin:/bin"
test -z "${CARGO_HOME:-}${RUSTUP_HOME:-}${USER:-}"
cat data.txt
# the checkout is read-only
if touch /tmp/project/new 2>/dev/null; then echo "project writable"; exit 9; fi
# the host's processes are invisible
n=$(ls /proc | grep -c '^[0-9]')
test "$n" -lt 10
test "$(id -u)" = 0
echo "tmp is private: $(ls -A /tmp | tr '\n' ' ')"
echo done-ok
"#;

#[test]
fn passing_script_honours_the_contract() {
    if !namespaces_or_skip("passing_script_honours_the_contract") {
        return;
    }
    let p = Project::new(CONTRACT, &env_files(&[]));
    let opts = p.options(Isolation::Namespace);
    let (outcome, lines) = run(&opts);
    assert!(
        outcome.passed,
        "{}\n{}",
        outcome.summary(),
        lines.join("\n")
    );
    assert_eq!(outcome.exit_code, Some(0));
    assert_eq!(outcome.failed_step, None);
    assert!(lines.iter().any(|l| l == "hello-from-env"));
    assert!(lines.iter().any(|l| l == "project data"));
    assert!(lines
        .iter()
        .any(|l| l == "conda-unpack in /opt/envship/demo"));
    // The log holds the same stream.
    let log = std::fs::read_to_string(&opts.log_path).unwrap();
    assert!(
        log.contains("hello-from-env\n") && log.contains("done-ok\n"),
        "{log}"
    );
    // Nothing was written at the destination prefix on the host.
    assert!(!Path::new("/opt/envship/demo").exists());
    // No stray temp files beside the log.
    let dist: Vec<_> = std::fs::read_dir(p.dir().join("dist"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(dist.len(), 2, "{dist:?}");
}

#[test]
fn failing_script_reports_its_exit_code() {
    if !namespaces_or_skip("failing_script_reports_its_exit_code") {
        return;
    }
    let p = Project::new("echo about to fail\nexit 3\n", &env_files(&[]));
    let (outcome, lines) = run(&p.options(Isolation::Namespace));
    assert!(!outcome.passed);
    assert_eq!(outcome.exit_code, Some(3));
    assert_eq!(outcome.failed_step, Some(Step::Script));
    assert!(!outcome.timed_out);
    assert!(lines.iter().any(|l| l == "about to fail"));
    assert!(
        outcome.summary().contains("the test script: exited with 3"),
        "{}",
        outcome.summary()
    );
}

#[test]
fn broken_archive_fails_in_the_unpack_step() {
    if !namespaces_or_skip("broken_archive_fails_in_the_unpack_step") {
        return;
    }
    let p = Project::new("exit 0\n", &env_files(&[]));
    // A truncated download: still gzip by its first bytes (garbage is refused before the
    // sandbox starts, as `envship unpack` refuses it), but `tar -xf` fails on it.
    let whole = std::fs::read(&p.archive).unwrap();
    std::fs::write(&p.archive, &whole[..whole.len() / 2]).unwrap();
    let (outcome, lines) = run(&p.options(Isolation::Namespace));
    assert!(!outcome.passed);
    assert_eq!(outcome.failed_step, Some(Step::Unpack));
    assert!(
        lines
            .iter()
            .any(|l| l.contains("unpacking") && l.contains("failed")),
        "{lines:?}"
    );
}

#[test]
fn archive_without_activate_is_named() {
    if !namespaces_or_skip("archive_without_activate_is_named") {
        return;
    }
    let files = vec![("bin/hello".to_string(), 0o755, b"#!/bin/sh\n".to_vec())];
    let p = Project::new("exit 0\n", &files);
    let (outcome, lines) = run(&p.options(Isolation::Namespace));
    assert_eq!(outcome.failed_step, Some(Step::Activate));
    assert!(
        lines.iter().any(|l| l.contains("bin/activate not found")),
        "{lines:?}"
    );
}

/// Processes on the host whose command line contains `marker`.
fn host_processes_with(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(marker) && !cmd.contains("cargo") {
                found.push(format!("{}: {cmd}", e.file_name().to_string_lossy()));
            }
        }
    }
    found
}

#[test]
fn timeout_kills_the_whole_tree() {
    if !namespaces_or_skip("timeout_kills_the_whole_tree") {
        return;
    }
    // A background child, a grandchild in a new session, and a foreground sleep.
    let script = "sleep 987.651 &\nsetsid sleep 987.652 &\necho started\nsleep 987.653\n";
    let p = Project::new(script, &env_files(&[]));
    let mut opts = p.options(Isolation::Namespace);
    opts.timeout = Duration::from_secs(2);
    let (outcome, lines) = run(&opts);
    assert!(outcome.timed_out, "{}", outcome.summary());
    assert!(!outcome.passed);
    assert!(
        outcome.duration < Duration::from_secs(10),
        "{:?}",
        outcome.duration
    );
    assert!(lines.iter().any(|l| l == "started"));
    std::thread::sleep(Duration::from_millis(300));
    let left = host_processes_with("987.65");
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(outcome.summary().contains("timed out"));
    let log = std::fs::read_to_string(&opts.log_path).unwrap();
    assert!(
        log.contains("started\nenvship: timed out after 2 s"),
        "{log}"
    );
}

#[test]
fn missing_or_unreadable_script_is_an_error_before_anything_runs() {
    let p = Project::new("exit 0\n", &env_files(&[]));
    let mut opts = p.options(Isolation::Namespace);
    opts.script = p.dir().join("no-such-test.sh");
    let err = envship_sandbox::run_test(&opts, &envship_sandbox::NoProgress).unwrap_err();
    assert!(matches!(err, SandboxError::MissingScript { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-test.sh"));
    assert!(!opts.log_path.exists(), "nothing ran, no log");

    opts.script = p.dir().join("dist");
    let err = envship_sandbox::run_test(&opts, &envship_sandbox::NoProgress).unwrap_err();
    assert!(
        matches!(err, SandboxError::UnreadableScript { .. }),
        "{err:?}"
    );

    std::os::unix::fs::symlink(p.dir().join("gone.sh"), p.dir().join("dangling.sh")).unwrap();
    opts.script = p.dir().join("dangling.sh");
    let err = envship_sandbox::run_test(&opts, &envship_sandbox::NoProgress).unwrap_err();
    assert!(matches!(err, SandboxError::MissingScript { .. }), "{err:?}");
    assert!(!opts.log_path.exists());
}

#[test]
fn bad_destination_prefix_is_refused() {
    let p = Project::new("exit 0\n", &env_files(&[]));
    let mut opts = p.options(Isolation::Namespace);
    for bad in [
        "relative/env",
        "/usr/local/env",
        "/",
        "/opt/../etc/x",
        "/tmp/project/env",
    ] {
        opts.dest_prefix = bad.into();
        let err = envship_sandbox::run_test(&opts, &envship_sandbox::NoProgress).unwrap_err();
        assert!(
            matches!(err, SandboxError::BadDestPrefix { .. }),
            "{bad}: {err:?}"
        );
    }
}

#[test]
fn the_host_network_is_unreachable_but_loopback_works() {
    if !namespaces_or_skip("the_host_network_is_unreachable_but_loopback_works") {
        return;
    }
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = format!(
        r#"python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(1); socket.create_connection(s.getsockname()); print('loopback ok')"
if bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port}' 2>/dev/null; then echo REACHED-HOST; exit 0; fi
echo host unreachable
exit 7
"#
    );
    let p = Project::new(&script, &env_files(&[]));
    let (outcome, lines) = run(&p.options(Isolation::Namespace));
    assert_eq!(outcome.exit_code, Some(7), "{lines:?}");
    assert!(lines.iter().any(|l| l == "loopback ok"), "{lines:?}");
    assert!(!lines.iter().any(|l| l == "REACHED-HOST"));
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the host listener saw a connection: {other:?}"),
    }
    // Control: the same probe from the host connects (the test can fail).
    let ok = std::process::Command::new("bash")
        .args(["-c", &format!("exec 3<>/dev/tcp/127.0.0.1/{port}")])
        .status_in_time()
        .unwrap();
    assert!(ok.success());
}

#[test]
fn writing_into_the_environment_does_not_change_the_archive() {
    if !namespaces_or_skip("writing_into_the_environment_does_not_change_the_archive") {
        return;
    }
    let script = r##"set -e
echo "# changed" >> "$CONDA_PREFIX/bin/activate"
rm "$CONDA_PREFIX/bin/hello"
echo new > "$CONDA_PREFIX/new-file"
for a in /tmp/.envship/*.tar.gz; do
  if echo x >> "$a" 2>/dev/null; then echo "archive writable"; exit 9; fi
done
echo wrote-env
"##;
    let p = Project::new(script, &env_files(&[]));
    let before = sha256(&p.archive);
    let (outcome, lines) = run(&p.options(Isolation::Namespace));
    assert!(outcome.passed, "{lines:?}");
    assert!(lines.iter().any(|l| l == "wrote-env"));
    assert_eq!(sha256(&p.archive), before);
}

#[test]
fn zstd_archives_unpack() {
    if !namespaces_or_skip("zstd_archives_unpack") {
        return;
    }
    if which("zstd").is_none() {
        envship_test_support::skip("zstd_archives_unpack", "no zstd on this host");
        return;
    }
    let p = Project::with_archive_name("set -e\nhello\n", &env_files(&[]), "demo.tar.zst");
    let (outcome, lines) = run(&p.options(Isolation::Namespace));
    assert!(outcome.passed, "{lines:?}");
}

#[test]
fn junit_report_of_a_failure() {
    if !namespaces_or_skip("junit_report_of_a_failure") {
        return;
    }
    let p = Project::new("echo 'a <tag> & more'\nexit 4\n", &env_files(&[]));
    let opts = p.options(Isolation::Namespace);
    let (outcome, _) = run(&opts);
    let log = std::fs::read_to_string(&opts.log_path).unwrap();
    let junit = p.dir().join("dist/junit.xml");
    envship_sandbox::write_junit(&junit, "demo", &[(outcome, log)]).unwrap();
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains(r#"<testcase classname="envship.demo" name="run-test.sh""#),
        "{xml}"
    );
    assert!(xml.contains(r#"<failure type="exit code 4""#), "{xml}");
    assert!(xml.contains("a &lt;tag&gt; &amp; more"), "{xml}");
    assert!(xml.contains("<system-out>"), "{xml}");
}

pub fn which(prog: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(prog))
            .find(|p| p.is_file())
    })
}

/// With user namespaces disabled (max_user_namespaces=0 inside a user namespace of our own, so
/// the host is untouched), the error says what to do.
#[test]
fn disabled_user_namespaces_give_a_clear_error() {
    if std::env::var_os("ENVSHIP_SANDBOX_INNER").is_some() {
        let p = Project::new("exit 0\n", &env_files(&[]));
        let err = envship_sandbox::run_test(
            &p.options(Isolation::Namespace),
            &envship_sandbox::NoProgress,
        )
        .unwrap_err();
        assert!(
            matches!(err, SandboxError::UserNamespacesUnavailable { .. }),
            "{err:?}"
        );
        let report = format!("{:?}", miette::Report::new(err));
        assert!(report.contains("user.max_user_namespaces"), "{report}");
        assert!(report.contains("--isolation"), "{report}");
        assert!(envship_sandbox::namespaces_available().is_err());
        eprintln!("INNER-OK");
        return;
    }
    if !namespaces_or_skip("disabled_user_namespaces_give_a_clear_error") {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("unshare")
        .args(["--user", "--map-root-user", "sh", "-c"])
        .arg("echo 0 > /proc/sys/user/max_user_namespaces && exec \"$0\" --exact namespace::disabled_user_namespaces_give_a_clear_error --nocapture")
        .arg(&exe)
        .env("ENVSHIP_SANDBOX_INNER", "1")
        .output_in_time();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            envship_test_support::skip(
                "disabled_user_namespaces_give_a_clear_error",
                format!("cannot run unshare: {e}"),
            );
            return;
        }
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("max_user_namespaces: Permission denied") {
        envship_test_support::skip(
            "disabled_user_namespaces_give_a_clear_error",
            format!("cannot lower the limit: {stderr}"),
        );
        return;
    }
    assert!(
        out.status.success(),
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("INNER-OK"), "{stderr}");
}
