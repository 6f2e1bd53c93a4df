//! Activation with rattler_shell: PATH, CONDA_PREFIX, `etc/conda/activate.d` scripts and the
//! `variables:` conda stores in `conda-meta/state`.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use rattler_conda_types::Subdir;
use rattler_shell::{
    activation::{ActivationVariables, Activator, PathModificationBehavior},
    shell::{self, ShellEnum},
};

/// Activation failures.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ActivateError {
    /// The prefix is not an environment.
    #[error("{} is not an environment (no conda-meta/)", prefix.display())]
    #[diagnostic(
        code(envship::activate::not_env),
        help("run `envship build` first, or pass --prefix")
    )]
    NotAnEnvironment {
        /// The prefix.
        prefix: PathBuf,
    },
    /// rattler_shell failed (an activation script failed, or the state file is malformed).
    #[error("cannot activate {}", prefix.display())]
    #[diagnostic(code(envship::activate::failed))]
    Activation {
        /// The prefix.
        prefix: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Unknown shell name.
    #[error("unknown shell `{0}`")]
    #[diagnostic(code(envship::activate::shell), help("use bash, zsh or fish"))]
    UnknownShell(String),
}

fn check(prefix: &Path) -> Result<(), ActivateError> {
    if prefix.join("conda-meta").is_dir() {
        Ok(())
    } else {
        Err(ActivateError::NotAnEnvironment {
            prefix: prefix.to_path_buf(),
        })
    }
}

fn variables() -> ActivationVariables {
    ActivationVariables {
        conda_prefix: std::env::var_os("CONDA_PREFIX").map(PathBuf::from),
        path: std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()),
        path_modification_behavior: PathModificationBehavior::Prepend,
        current_env: std::env::vars().collect(),
    }
}

fn activation_error(
    prefix: &Path,
    e: impl std::error::Error + Send + Sync + 'static,
) -> ActivateError {
    ActivateError::Activation {
        prefix: prefix.to_path_buf(),
        source: Box::new(e),
    }
}

/// The environment variables of an activated environment, on top of the current process's.
pub fn activated_environment(prefix: &Path) -> Result<HashMap<String, String>, ActivateError> {
    check(prefix)?;
    let activator = Activator::from_path(prefix, shell::Bash::default(), Subdir::Linux64)
        .map_err(|e| activation_error(prefix, e))?;
    let changed = activator
        .run_activation(variables(), None)
        .map_err(|e| activation_error(prefix, e))?;
    let mut env: HashMap<String, String> = std::env::vars().collect();
    env.extend(changed);
    Ok(env)
}

/// The activation script for `eval "$(envship shell-hook)"`.
pub fn activation_script(prefix: &Path, shell_name: &str) -> Result<String, ActivateError> {
    check(prefix)?;
    let shell: ShellEnum = match shell_name {
        "bash" | "sh" => shell::Bash::default().into(),
        "zsh" => shell::Zsh.into(),
        "fish" => shell::Fish.into(),
        other => return Err(ActivateError::UnknownShell(other.to_string())),
    };
    let activator = Activator::from_path(prefix, shell, Subdir::Linux64)
        .map_err(|e| activation_error(prefix, e))?;
    let result = activator
        .activation(variables())
        .map_err(|e| activation_error(prefix, e))?;
    result
        .script
        .contents()
        .map_err(|e| activation_error(prefix, e))
}
