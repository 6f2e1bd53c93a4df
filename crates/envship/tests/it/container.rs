//! `envship test --isolation container --engine podman`: the archive `envship ship` packed from
//! the bundled example, tested in a real container of an image that is not the host (the
//! bullseye rootfs `.ci/run` imports into podman, named by `ENVSHIP_TEST_IMAGE`), keeping the
//! original action's contract. Under `CI=true` these run, never skip.

use std::path::{Path, PathBuf};

use crate::{envship, example};

const TEST: &str = "envship test --engine podman";

/// The image, or why podman cannot run here (the caller skips with it).
fn podman_image() -> Option<String> {
    let Ok(image) = std::env::var("ENVSHIP_TEST_IMAGE") else {
        envship_test_support::skip(
            TEST,
            "ENVSHIP_TEST_IMAGE is not set (.ci/run imports the bullseye rootfs into podman)",
        );
        return None;
    };
    if let Err(e) = envship_sandbox::engine_available(envship_sandbox::Engine::Podman) {
        envship_test_support::skip(TEST, format!("podman cannot run containers here: {e}"));
        return None;
    }
    Some(image)
}

/// Ship the hello example and return its archive.
fn shipped(dir: &Path) -> PathBuf {
    let out = envship()
        .current_dir(dir)
        .args(["ship", "--offline", "--version", "1.0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "ship: {out:?}");
    dir.join("dist/hello-envship-1.0-lcls-rhel6-linux-64.tar.gz")
}

fn podman_test(dir: &Path, archive: &Path, image: &str, log: &Path) -> std::process::Output {
    envship()
        .current_dir(dir)
        .arg("test")
        .arg(archive)
        .args([
            "--isolation",
            "container",
            "--engine",
            "podman",
            "--image",
            image,
        ])
        .arg("--log")
        .arg(log)
        .output()
        .unwrap()
}

#[test]
fn a_shipped_archive_passes_and_a_failing_script_fails_in_a_podman_container() {
    let Some(image) = podman_image() else {
        return;
    };
    let project = example("hello");
    let dir = project.path();
    let archive = shipped(dir);
    // The example's own test, plus the contract's paths and the image's userland.
    let script = fs_err::read_to_string(dir.join("run-test.sh")).unwrap();
    fs_err::write(
        dir.join("run-test.sh"),
        format!(
            "{script}\ntest -f /tmp/environment.yml && test -f /tmp/project/envship.toml\n\
             test \"$ENVIRONMENT_NAME\" = hello-envship\n\
             echo \"container glibc: $(ldd --version | head -n 1)\"\n"
        ),
    )
    .unwrap();
    let log = dir.join("podman.log");
    let out = podman_test(dir, &archive, &image, &log);
    let text = fs_err::read_to_string(&log).unwrap_or_default();
    assert!(out.status.success(), "{out:?}\n{text}");
    assert!(text.contains("all hello checks passed"), "{text}");
    assert!(
        text.contains("container glibc: ldd (Debian GLIBC 2.31"),
        "the image's userland ran the test: {text}"
    );

    fs_err::write(
        dir.join("run-test.sh"),
        "hello | grep -q 'Hello from libhello'\necho broken on purpose\nexit 5\n",
    )
    .unwrap();
    let out = podman_test(dir, &archive, &image, &log);
    let text = fs_err::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed test is a failed gate: {out:?}"
    );
    assert!(text.contains("broken on purpose"), "{text}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        format!("{stdout}{stderr}").contains("exit code 5")
            || format!("{stdout}{stderr}").contains("exited with 5"),
        "the script's exit code is reported:\n{stdout}\n{stderr}"
    );
}
