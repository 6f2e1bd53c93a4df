//! The official CycloneDX 1.6 JSON schema check for the SBOMs pack writes:
//! cyclonedx-python-lib's `JsonStrictValidator`, run from a venv outside the repo that
//! `.ci/run` makes (tests never reach PyPI) and [`VENV_VAR`] names.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use crate::Deadline;

/// Names the venv with `cyclonedx-python-lib[json-validation]`.
pub const VENV_VAR: &str = "ENVSHIP_TEST_CYCLONEDX_VENV";

/// The validator venv's python, or why there is none (the caller skips with it).
pub fn validator() -> Result<PathBuf, String> {
    let venv = std::env::var_os(VENV_VAR)
        .ok_or_else(|| format!("{VENV_VAR} is not set (.ci/run makes the venv)"))?;
    let python = Path::new(&venv).join("bin/python");
    if python.is_file() {
        Ok(python)
    } else {
        Err(format!("{} does not exist", python.display()))
    }
}

const VALIDATE: &str = "import sys
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(sys.stdin.read())
if error is not None:
    print(error)
    sys.exit(1)
";

/// `Err(the validator's message)` when the strict 1.6 schema refuses `json`; panics when the
/// validator itself does not run.
pub fn validate(python: &Path, json: &str) -> Result<(), String> {
    let out = Command::new(python)
        .args(["-c", VALIDATE])
        .output_with_stdin(json.as_bytes())
        .expect("run the CycloneDX validator");
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) => Err(String::from_utf8_lossy(&out.stdout).into_owned()),
        _ => panic!(
            "the CycloneDX validator did not run: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
