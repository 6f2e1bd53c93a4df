//! conda-pack's documented user flow on an envship archive of a real Python environment, with
//! no envship on the receiving side: `tar -xf`, `source bin/activate`, `conda-unpack`, then
//! move the environment and run `conda-unpack` again (conda-pack cannot: its issues #106, #386).
use envship_test_support::Deadline;

use std::{path::Path, process::Command};

use crate::envship;

fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .args(["-c", script])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output_in_time()
        .unwrap();
    assert!(
        out.status.success(),
        "script failed:\n{script}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Files under `root` whose bytes contain `needle`.
fn files_containing(root: &Path, needle: &str) -> Vec<String> {
    let out = Command::new("grep")
        .args(["-rlF", needle])
        .arg(root)
        .output_in_time()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn python_archive_unpacks_with_tar_activate_and_conda_unpack_then_moves() {
    if let Some(why) = envship_test_support::python::python_unavailable() {
        envship_test_support::skip(
            "python_archive_unpacks_with_tar_activate_and_conda_unpack_then_moves",
            why,
        );
        return;
    }
    let channel = envship_test_support::python::python_channel();
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("environment.yml");
    fs_err::write(
        &env_file,
        format!(
            "name: flow\nchannels:\n  - {}\n  - nodefaults\ndependencies:\n  - python 3.11.*\n  - pip\n  - pip:\n    - markupsafe==2.1.5\n",
            channel.url()
        ),
    )
    .unwrap();
    let build = dir.path().join("build/flow");
    envship()
        .args(["--quiet", "build", "-f"])
        .arg(&env_file)
        .arg("--prefix")
        .arg(&build)
        .args([
            "--offline",
            "--target",
            "rhel7",
            "--no-index",
            "--find-links",
        ])
        .arg(envship_test_support::fixture("wheels"))
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .assert()
        .success();
    let archive = dir.path().join("flow.tar.gz");
    envship()
        .args(["--quiet", "pack", "--prefix"])
        .arg(&build)
        .args(["--name", "flow", "--version", "1", "-o"])
        .arg(&archive)
        .assert()
        .success();

    let first = dir.path().join("deploy/first/flow");
    let moved = dir.path().join("elsewhere/flow-moved");
    let check = "python -c 'import markupsafe, sys; print(markupsafe.__version__, sys.prefix)'";
    let out = sh(&format!(
        "set -e; mkdir -p {first} && tar -xf {archive} -C {first} && source {first}/bin/activate && conda-unpack && {check}",
        first = first.display(),
        archive = archive.display(),
    ));
    assert!(
        out.contains(&format!("\n2.1.5 {}\n", first.display())),
        "{out}"
    );

    fs_err::create_dir_all(moved.parent().unwrap()).unwrap();
    fs_err::rename(&first, &moved).unwrap();
    let out = sh(&format!(
        "set -e; source {moved}/bin/activate && conda-unpack && {check} && pip --version",
        moved = moved.display(),
    ));
    assert!(
        out.contains(&format!("\n2.1.5 {}\n", moved.display())),
        "{out}"
    );
    let build_str = build.display().to_string();
    assert_eq!(
        files_containing(&moved, &build_str),
        Vec::<String>::new(),
        "files still containing the build prefix {build_str}"
    );
    let first_str = first.display().to_string();
    let stale: Vec<String> = files_containing(&moved, &first_str)
        .into_iter()
        .filter(|f| !f.ends_with(".pyc"))
        .collect();
    assert_eq!(
        stale,
        Vec::<String>::new(),
        "files still naming the first location {first_str} after the move"
    );
}
