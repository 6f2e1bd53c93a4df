//! `--isolation container`: real containers. podman runs here (Debian's, with the settings in
//! `.ci/run`'s containers.conf) on an image imported from the bullseye rootfs, named by
//! `ENVSHIP_TEST_IMAGE`; under `CI=true` those tests run, never skip. Docker has no engine on
//! our machines: its test checks that a missing engine is a clear error.

use envship_sandbox::{Engine, Isolation, SandboxError};

use crate::fixtures::{env_files, run, Project};

/// The image podman tests run in, or why they cannot run (the caller skips with it).
fn podman_image(test: &str) -> Option<String> {
    let Ok(image) = std::env::var("ENVSHIP_TEST_IMAGE") else {
        envship_test_support::skip(
            test,
            "ENVSHIP_TEST_IMAGE is not set (.ci/run imports the bullseye rootfs into podman)",
        );
        return None;
    };
    if let Err(e) = envship_sandbox::engine_available(Engine::Podman) {
        envship_test_support::skip(test, format!("podman cannot run containers here: {e}"));
        return None;
    }
    Some(image)
}

/// The original action's contract, checked from inside the container.
const CONTRACT: &str = r#"set -e
hello
test -f /tmp/environment.yml
grep -q '^name: demo' /tmp/environment.yml
test -f /tmp/project/data.txt
test "$(readlink -f "$0")" = /tmp/run-test.sh || test "$0" = /tmp/run-test.sh
test "$ENVIRONMENT_NAME" = demo
test "$CONDA_PREFIX" = /opt/envship/demo
test -f "$CONDA_PREFIX/.unpacked"
echo "glibc: $(ldd --version | head -n 1)"
"#;

#[test]
fn podman_runs_the_archive_in_the_image_with_the_actions_contract() {
    let test = "podman_runs_the_archive_in_the_image_with_the_actions_contract";
    let Some(image) = podman_image(test) else {
        return;
    };
    let p = Project::new(CONTRACT, &env_files(&[]));
    let opts = p.options(Isolation::Container {
        engine: Engine::Podman,
        image,
    });
    let (outcome, lines) = run(&opts);
    assert!(outcome.passed, "{outcome:?}\n{lines:#?}");
    assert!(
        lines.iter().any(|l| l.contains("hello-from-env")),
        "{lines:?}"
    );
    // The image's own userland ran the test, not the host's (Debian 12's glibc is 2.36).
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("glibc: ") && l.contains("2.31")),
        "{lines:?}"
    );
}

#[test]
fn podman_reports_a_failing_script_with_its_exit_code() {
    let test = "podman_reports_a_failing_script_with_its_exit_code";
    let Some(image) = podman_image(test) else {
        return;
    };
    let p = Project::new("hello\necho about to fail\nexit 7\n", &env_files(&[]));
    let opts = p.options(Isolation::Container {
        engine: Engine::Podman,
        image,
    });
    let (outcome, lines) = run(&opts);
    assert!(!outcome.passed, "{lines:?}");
    assert_eq!(outcome.exit_code, Some(7), "{outcome:?}");
    let log = fs_err::read_to_string(&opts.log_path).unwrap();
    assert!(log.contains("about to fail"), "{log}");
}

#[test]
fn docker_without_an_engine_is_a_clear_error() {
    let p = Project::new("hello\n", &env_files(&[]));
    let opts = p.options(Isolation::Container {
        engine: Engine::Docker,
        image: "debian:bookworm-slim".into(),
    });
    match envship_sandbox::engine_available(Engine::Docker) {
        Err(e) => {
            envship_test_support::skip_unavailable_everywhere(
                "docker_without_an_engine_is_a_clear_error (the run itself)",
                e.to_string(),
            );
            let err = envship_sandbox::run_test(&opts, &envship_sandbox::NoProgress).unwrap_err();
            assert!(
                matches!(err, SandboxError::EngineUnavailable { .. }),
                "{err:?}"
            );
        }
        Ok(()) => {
            let (outcome, lines) = run(&opts);
            assert!(outcome.passed, "{lines:?}");
        }
    }
}
