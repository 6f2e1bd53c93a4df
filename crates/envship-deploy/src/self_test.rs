//! `deploy --test`: the archive's own test script, run in the deployed copy before `current`
//! is switched to it. The run itself is envship-sandbox's ([`envship_sandbox::run_installed_test`]:
//! the same runner, process-group timeout and log handling as `envship test --isolation none`),
//! so the tree has one test runner; this module only decides where the log goes and what a
//! failure means for the deploy.

use std::path::{Path, PathBuf};

use envship_sandbox::{InstalledTest, TestOutcome};
use envship_spec::Progress;

use crate::{DeployError, DeployOptions, STATE_DIR, TEST_SCRIPT};

/// Run the archive's test script in the deployed environment `env`; the log goes to
/// `ROOT/.envship/logs/NAME-VERSION-TIME.test.log`. Returns the log's path when it passed.
pub fn run(
    opts: &DeployOptions,
    name: &str,
    version: &str,
    env: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf, DeployError> {
    let script = env.join(TEST_SCRIPT);
    if !script.is_file() {
        return Err(DeployError::NoTestScript { path: script });
    }
    let logs = opts.root.join(STATE_DIR).join("logs");
    std::fs::create_dir_all(&logs).map_err(DeployError::io("creating", &logs))?;
    let log = logs.join(format!(
        "{name}-{version}-{}.test.log",
        jiff::Timestamp::now().strftime("%Y%m%dT%H%M%SZ")
    ));
    progress.message("deploy", &format!("testing {name} {version}"));
    let test = InstalledTest {
        prefix: env.to_path_buf(),
        script,
        environment_name: name.to_string(),
        timeout: opts.test_timeout,
        log_path: log.clone(),
        extra_env: Vec::new(),
    };
    let outcome = envship_sandbox::run_installed_test(&test, &mut |line| {
        tracing::debug!(target: "envship::deploy::test", "{line}");
    })
    .map_err(|source| DeployError::TestRun {
        env: env.to_path_buf(),
        source: Box::new(source),
    })?;
    if outcome.passed {
        Ok(log)
    } else {
        Err(DeployError::TestFailed {
            env: env.to_path_buf(),
            status: status(&outcome),
            log,
        })
    }
}

/// How a failed run ended, as `TestFailed` words it: `exit status: 3`, `timed out after 2s`.
fn status(o: &TestOutcome) -> String {
    if o.timed_out {
        format!("timed out after {}s", o.duration.as_secs())
    } else if let Some(code) = o.exit_code {
        format!("exit status: {code}")
    } else if let Some(sig) = o.signal {
        format!("signal: {sig}")
    } else {
        o.summary()
    }
}
