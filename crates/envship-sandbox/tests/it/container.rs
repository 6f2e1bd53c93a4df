//! `--isolation container`: runs for real only when an engine answers.

use envship_sandbox::{Engine, Isolation, SandboxError};

use crate::fixtures::{env_files, run, Project};

#[test]
fn container_run_or_skip() {
    for engine in [Engine::Docker, Engine::Podman] {
        let p = Project::new(
            "set -e\nhello\ntest -f /tmp/environment.yml\n",
            &env_files(&[]),
        );
        let opts = p.options(Isolation::Container {
            engine,
            image: std::env::var("ENVSHIP_TEST_IMAGE")
                .unwrap_or_else(|_| "debian:bookworm-slim".into()),
        });
        if let Err(e) = envship_sandbox::engine_available(engine) {
            envship_test_support::skip_unavailable_everywhere(
                &format!("container_run_or_skip({})", engine.program()),
                e.to_string(),
            );
            // Without an engine the run is a clear error, not a silent pass.
            let err = envship_sandbox::run_test(&opts, &envship_sandbox::NoProgress).unwrap_err();
            assert!(
                matches!(err, SandboxError::EngineUnavailable { .. }),
                "{err:?}"
            );
            continue;
        }
        let (outcome, lines) = run(&opts);
        assert!(outcome.passed, "{lines:?}");
    }
}
