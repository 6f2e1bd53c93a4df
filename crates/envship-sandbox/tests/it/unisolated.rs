//! `--isolation none`: the archive unpacked on the host, with a warning.
use envship_test_support::Deadline;

use envship_sandbox::Isolation;

use crate::fixtures::{env_files, run, sha256, Project};

#[test]
fn runs_at_the_destination_prefix_when_writable_and_cleans_up() {
    let p = Project::new(
        "set -e\nhello\ntest \"$ENVIRONMENT_NAME\" = demo\necho prefix=$CONDA_PREFIX\ncat data.txt\n",
        &env_files(&[]),
    );
    let mut opts = p.options(Isolation::None);
    let dest = p.tmp.path().join("opt/envship/demo");
    opts.dest_prefix = dest.clone();
    let before = sha256(&p.archive);
    let (outcome, lines) = run(&opts);
    assert!(outcome.passed, "{lines:?}");
    assert!(lines[0].contains("nothing is isolated"), "{lines:?}");
    assert!(
        lines.contains(&format!("prefix={}", dest.display())),
        "{lines:?}"
    );
    assert_eq!(outcome.dest_prefix, dest);
    assert!(!dest.exists(), "the unpacked env is removed afterwards");
    assert_eq!(sha256(&p.archive), before);
}

#[test]
fn falls_back_to_a_temp_dir_when_the_prefix_is_not_writable() {
    let p = Project::new(
        "set -e\nhello\necho prefix=$CONDA_PREFIX\nexit 5\n",
        &env_files(&[]),
    );
    let mut opts = p.options(Isolation::None);
    opts.dest_prefix = "/proc/envship-cannot-exist/demo".into();
    let (outcome, lines) = run(&opts);
    assert_eq!(outcome.exit_code, Some(5));
    assert!(lines[0].contains("is not writable"), "{lines:?}");
    assert!(
        outcome.dest_prefix.starts_with(std::env::temp_dir()),
        "{:?}",
        outcome.dest_prefix
    );
    assert!(!outcome.dest_prefix.exists());
}

#[test]
fn timeout_kills_the_process_group() {
    let p = Project::new("sleep 876.541 &\nsleep 876.542\n", &env_files(&[]));
    let mut opts = p.options(Isolation::None);
    opts.dest_prefix = p.tmp.path().join("dest");
    opts.timeout = std::time::Duration::from_secs(1);
    let (outcome, _) = run(&opts);
    assert!(outcome.timed_out);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let ps = std::process::Command::new("sh")
        .args(["-c", "cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '"])
        .output_in_time()
        .unwrap();
    assert!(!String::from_utf8_lossy(&ps.stdout).contains("876.54"));
}
