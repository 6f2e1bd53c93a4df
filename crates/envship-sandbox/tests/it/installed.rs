//! `run_installed_test`: the test of an environment already unpacked at its prefix (what
//! `deploy --test` runs), on the host, through the same runner as the other modes.
use envship_test_support::Deadline;

use std::{
    ffi::OsStr,
    os::unix::{ffi::OsStrExt, fs::PermissionsExt},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use envship_sandbox::{run_installed_test, InstalledTest, Step, TestOutcome};

use crate::fixtures::env_files;

/// An unpacked environment at `prefix` (the fixture's activate, conda-unpack and `hello`), with
/// `script` as its test script.
fn installed(prefix: &Path, script: &str) -> PathBuf {
    let mut files = env_files(&[]);
    files.push((
        "share/envship/run-test.sh".into(),
        0o644,
        script.as_bytes().to_vec(),
    ));
    for (path, mode, content) in files {
        let p = prefix.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    prefix.join("share/envship/run-test.sh")
}

fn run(prefix: &Path, script: &Path, timeout: Option<Duration>) -> (TestOutcome, Vec<String>) {
    let log = prefix.parent().unwrap().join("logs/test.log");
    let test = InstalledTest {
        prefix: prefix.to_path_buf(),
        script: script.to_path_buf(),
        environment_name: "demo".into(),
        timeout,
        log_path: log,
        extra_env: vec![("ENVSHIP_EXTRA".into(), "x y".into())],
    };
    let mut lines = Vec::new();
    let outcome = run_installed_test(&test, &mut |l| lines.push(l.to_string())).unwrap();
    (outcome, lines)
}

#[test]
fn runs_in_place_at_a_prefix_that_is_not_utf8() {
    let tmp = tempfile::tempdir().unwrap();
    // A space, a quote and Latin-1 bytes: the runner must hand bash these exact bytes.
    let prefix = tmp
        .path()
        .join(OsStr::from_bytes(b"env it's \xe9t\xe9/1.0"));
    let script = installed(
        &prefix,
        "set -e\nhello\necho \"name=$ENVIRONMENT_NAME extra=$ENVSHIP_EXTRA\"\nprintf 'prefix=%s\\n' \"$CONDA_PREFIX\"\ntest \"$CONDA_PREFIX\" -ef \"$(dirname \"$0\")/../..\"\npwd\n",
    );
    let (outcome, lines) = run(&prefix, &script, None);
    assert!(outcome.passed, "{lines:?}");
    assert_eq!(outcome.isolation, "none");
    assert_eq!(outcome.dest_prefix, prefix);
    assert!(lines.contains(&"hello-from-env".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"name=demo extra=x y".to_string()),
        "{lines:?}"
    );
    let want = format!("prefix={}", prefix.to_string_lossy());
    assert!(lines.contains(&want), "{want} not in {lines:?}");
    assert!(
        !prefix.join(".unpacked").exists(),
        "an installed environment is not unpacked or relocated again"
    );
    let log = std::fs::read(&outcome.log_path).unwrap();
    assert!(
        log.windows(prefix.as_os_str().len())
            .any(|w| w == prefix.as_os_str().as_bytes()),
        "the log holds the prefix's exact bytes"
    );
}

#[test]
fn a_failing_script_is_an_outcome_naming_the_step() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("env/2");
    let script = installed(&prefix, "echo failing on purpose\nexit 4\n");
    let (outcome, lines) = run(&prefix, &script, None);
    assert!(!outcome.passed);
    assert_eq!(outcome.exit_code, Some(4));
    assert_eq!(outcome.failed_step, Some(Step::Script));
    assert!(
        lines.contains(&"failing on purpose".to_string()),
        "{lines:?}"
    );

    std::fs::remove_file(prefix.join("bin/activate")).unwrap();
    let (outcome, _) = run(&prefix, &script, None);
    assert_eq!(outcome.failed_step, Some(Step::Activate));
}

#[test]
fn timeout_kills_the_process_group() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("env/3");
    let script = installed(&prefix, "sleep 876.561 &\nsleep 876.562\n");
    let t = Instant::now();
    let (outcome, lines) = run(&prefix, &script, Some(Duration::from_millis(500)));
    assert!(outcome.timed_out, "{lines:?}");
    assert!(t.elapsed() < Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    let ps = std::process::Command::new("sh")
        .args(["-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"])
        .output_in_time()
        .unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout).contains("876.56"));
}
