//! One module per subcommand: each has its clap `Args` and an `execute` that turns them into a
//! plain options struct and calls library code.

use std::process::ExitCode;

use clap::Subcommand;

use crate::GlobalArgs;

pub mod audit;
pub mod build;
pub mod check;
pub mod deploy;
pub mod deployments;
pub mod diff;
pub mod keygen;
pub mod lock;
pub mod matrix;
pub mod pack;
pub mod publish;
pub mod run;
pub mod shell_hook;
pub mod ship;
pub mod ship_all;
pub mod targets;
pub mod test;
pub mod unpack;
pub mod verify;
pub mod verify_release;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Parse and validate environment.yml, envship.toml and the target (no solving, no network).
    Check(check::Args),
    /// Solve environment.yml for the target and write envship.lock.
    Lock(lock::Args),
    /// Install the locked environment into a build prefix (locks first when needed).
    Build(build::Args),
    /// Check statically that a prefix will load and relocate on the target (exit 1 on errors).
    Audit(audit::Args),
    /// Pack a prefix into a relocatable, reproducible archive (+ .sha256, .manifest.json).
    Pack(pack::Args),
    /// Unpack an archive into DEST and relocate it there (hardened, parallel).
    Unpack(unpack::Args),
    /// Run a command with the environment activated.
    Run(run::Args),
    /// Print the activation script: eval "$(envship shell-hook)".
    ShellHook(shell_hook::Args),
    /// Upload an archive and its evidence to a GitHub release, or copy them to a directory drop.
    Publish(publish::Args),
    /// Verify, extract, test and switch an archive live under a deployment root; or roll back.
    Deploy(deploy::Args),
    /// List the deployments recorded under a deployment root.
    Deployments(deployments::Args),
    /// Check a deployed or unpacked environment against its tree record (exit 1 on drift).
    Verify(verify::Args),
    /// Check that a file was signed by a trusted key or built by a trusted GitHub workflow
    /// (exit 1 when not), as deploy does before it writes anything.
    VerifyRelease(verify_release::Args),
    /// Write a minisign key pair for signing releases (`publish --sign-key`).
    Keygen(keygen::Args),
    /// Show what changed between two releases (archives, manifests, prefixes, deployed versions).
    Diff(diff::Args),
    /// lock → build → audit → pack → test for a project, stopping at the first failing gate.
    Ship(ship::Args),
    /// Print a workspace's (member, target) pairs as a GitHub Actions matrix.
    Matrix(matrix::Args),
    /// List the built-in production targets.
    Targets(targets::Args),
    /// Unpack an archive at its destination prefix in a sandbox and run the test script there.
    Test(test::Args),
}

/// Run a subcommand. `Ok(code)` carries gate failures (e.g. audit violations) that are not
/// errors of envship itself.
pub fn execute(command: Command, global: &GlobalArgs) -> miette::Result<ExitCode> {
    match command {
        Command::Check(args) => check::execute(args, global),
        Command::Lock(args) => lock::execute(args, global),
        Command::Build(args) => build::execute(args, global),
        Command::Audit(args) => audit::execute(args, global),
        Command::Pack(args) => pack::execute(args, global),
        Command::Unpack(args) => unpack::execute(args, global),
        Command::Run(args) => run::execute(args, global),
        Command::ShellHook(args) => shell_hook::execute(args, global),
        Command::Publish(args) => publish::execute(args, global),
        Command::Deploy(args) => deploy::execute(args, global),
        Command::Deployments(args) => deployments::execute(args, global),
        Command::Verify(args) => verify::execute(args, global),
        Command::Diff(args) => diff::execute(args, global),
        Command::VerifyRelease(args) => verify_release::execute(args, global),
        Command::Keygen(args) => keygen::execute(args, global),
        Command::Ship(args) => ship::execute(args, global),
        Command::Targets(args) => targets::execute(args, global),
        Command::Matrix(args) => matrix::execute(args, global),
        Command::Test(args) => test::execute(args, global),
    }
}
