//! The mission's end to end (issue 16): `examples/lcls-numpy` — CPython 3.9 built for glibc 2.12
//! (`scripts/build-python-glibc2.12.sh`, repackaged by `envship_test_support::python212`), pip,
//! and numpy 1.21.6 from its manylinux2010 wheel in the `pip:` section — ships for lcls-rhel6:
//! the audit passes, the test solves a linear system at the destination prefix, the same archive
//! passes `envship test --rootfs` in Debian bullseye's userland, a target glibc older than what
//! the environment needs fails the audit naming the symbols and versions, and the unpacked
//! archive computes under a seccomp filter that hides every system call newer than Linux 2.6.32.
use envship_test_support::Deadline;

use std::path::{Path, PathBuf};

use crate::{envship, example};

const TEST: &str = "numpy_environment_ships_for_lcls_rhel6";
const NUMPY_WHEEL: &str = "numpy-1.21.6-cp39-cp39-manylinux_2_12_x86_64.manylinux2010_x86_64.whl";
const DEST: &str = "/opt/envship/lcls-numpy";

/// Run under the 2.6.32 seccomp filter: numpy's LAPACK solve on OpenBLAS's threads, random
/// seeding (getrandom is newer than 2.6.32), a subprocess, a thread pool.
const OLD_KERNEL_CHECK: &str = r#"
import os, random, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
import numpy as np
a = np.random.default_rng().standard_normal((400, 400)) + 400 * np.eye(400)
x = np.arange(400.0)
assert np.allclose(np.linalg.solve(a, a @ x), x)
assert subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True).stdout == b"42\n"
with ThreadPoolExecutor(4) as pool:
    assert sum(pool.map(lambda i: i * i, range(100))) == 328350
print("ok under the 2.6.32 filter", random.random() < 1, os.urandom(4) != b"")
"#;

/// The directory with numpy's wheel (`.ci/run` downloads it into a cache), or why not.
fn wheels_dir() -> Result<PathBuf, String> {
    let Some(dir) = std::env::var_os("ENVSHIP_TEST_WHEELS").map(PathBuf::from) else {
        return Err(
            "ENVSHIP_TEST_WHEELS is not set (a directory with numpy 1.21.6's \
                    manylinux2010 wheel; .ci/run downloads it)"
                .into(),
        );
    };
    if !dir.join(NUMPY_WHEEL).is_file() {
        return Err(format!("{} has no {NUMPY_WHEEL}", dir.display()));
    }
    Ok(dir)
}

fn bullseye_rootfs() -> Result<PathBuf, String> {
    match std::env::var_os("ENVSHIP_TEST_BULLSEYE_ROOTFS").map(PathBuf::from) {
        Some(p) if p.join("etc/debian_version").is_file() => Ok(p),
        Some(p) => Err(format!(
            "ENVSHIP_TEST_BULLSEYE_ROOTFS={} is not a Debian root filesystem",
            p.display()
        )),
        None => Err(
            "ENVSHIP_TEST_BULLSEYE_ROOTFS is not set (debootstrap --variant=minbase bullseye DIR)"
                .into(),
        ),
    }
}

/// What every run needs, or the reason to skip.
fn inputs() -> Result<(PathBuf, PathBuf, PathBuf), String> {
    let build = envship_test_support::python212::build_dir()?;
    let wheels = wheels_dir()?;
    envship_sandbox::namespaces_available()
        .map_err(|e| format!("user namespaces unavailable: {e}"))?;
    let rootfs = bullseye_rootfs()?;
    Ok((build, wheels, rootfs))
}

fn read(path: &Path) -> String {
    fs_err::read_to_string(path).unwrap_or_default()
}

#[test]
fn numpy_environment_ships_for_lcls_rhel6() {
    let (build, wheels, rootfs) = match inputs() {
        Ok(i) => i,
        Err(why) => {
            envship_test_support::skip(TEST, why);
            return;
        }
    };
    let project = example("lcls-numpy");
    let dir = project.path();
    envship_test_support::python212::python212_channel_at(&dir.join("channel"), &build);
    let cache = tempfile::tempdir().unwrap();

    // Ship: lock, build (pip installs numpy's wheel with the glibc 2.12 python), audit for
    // lcls-rhel6, pack, and the test at the destination prefix in a namespace sandbox.
    let out = envship()
        .current_dir(dir)
        .args([
            "ship",
            "--offline",
            "--json",
            "--version",
            "1.0",
            "--no-index",
            "--find-links",
        ])
        .arg(&wheels)
        .arg("--cache-dir")
        .arg(cache.path())
        .output()
        .unwrap();
    let dist = dir.join("dist");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "ship failed:\n{stdout}\n{stderr}\naudit: {}\ntest log:\n{}",
        read(&dist.join("lcls-numpy-1.0-lcls-rhel6-linux-64.audit.json")),
        read(&dist.join("lcls-numpy-1.0-lcls-rhel6-linux-64.test.log")),
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["passed"], true, "{json:#}");

    let manifest: serde_json::Value = serde_json::from_slice(
        &fs_err::read(dist.join("lcls-numpy-1.0-lcls-rhel6-linux-64.manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["target"]["name"], "lcls-rhel6", "{manifest:#}");
    assert_eq!(manifest["test"]["dest_prefix"], DEST, "{manifest:#}");
    assert_eq!(manifest["test"]["passed"], true, "{manifest:#}");
    assert!(
        manifest["pip_packages"]
            .to_string()
            .to_lowercase()
            .contains("numpy"),
        "{manifest:#}"
    );
    let audit: serde_json::Value = serde_json::from_slice(
        &fs_err::read(dist.join("lcls-numpy-1.0-lcls-rhel6-linux-64.audit.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(audit["summary"]["errors"], 0, "{audit:#}");
    let log = read(&dist.join("lcls-numpy-1.0-lcls-rhel6-linux-64.test.log"));
    assert!(
        log.contains("numpy 1.21.6 solved a 300x300 system")
            && log.contains(&format!("python 3.9.2 at {DEST}")),
        "{log}"
    );

    // The same archive in Debian bullseye's userland (glibc 2.31, not the host's).
    let archive = dist.join("lcls-numpy-1.0-lcls-rhel6-linux-64.tar.gz");
    let rootfs_log = dir.join("rootfs-test.log");
    let out = envship()
        .current_dir(dir)
        .arg("test")
        .arg(&archive)
        .arg("--rootfs")
        .arg(&rootfs)
        .arg("--log")
        .arg(&rootfs_log)
        .output()
        .unwrap();
    let log = read(&rootfs_log);
    assert!(
        out.status.success(),
        "envship test --rootfs failed:\n{}\n{}\n{log}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        log.contains("numpy 1.21.6 solved") && log.contains("on glibc 2.31"),
        "{log}"
    );

    // Below lcls-rhel6's glibc the audit fails, naming symbols and versions from the real ELF
    // files. At 2.11 the target's system libraries are manylinux_2_5's (the newest policy
    // that old), whose libgcc_s stops at GCC_4.2.0: numpy's vendored libgfortran needs
    // GCC_4.3.0's quad-float helpers. Nothing needs a glibc newer than 2.10 (numpy's
    // fallocate@GLIBC_2.10, the interpreter's own), so 2.9 names that too.
    let prefix = dir.join(".envship/build/lcls-numpy");
    let audit_errors = |glibc: &str| -> Vec<String> {
        let out = envship()
            .current_dir(dir)
            .args(["audit", "--json", "--glibc", glibc])
            .arg(&prefix)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "--glibc {glibc}: {out:?}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["severity"] == "error")
            .map(|f| format!("{} {} {}", f["check"], f["path"], f["message"]))
            .collect()
    };
    let at_2_11 = audit_errors("2.11");
    assert!(
        at_2_11
            .iter()
            .any(|e| e.contains("libgfortran") && e.contains("__addtf3@GCC_4.3.0")),
        "{at_2_11:#?}"
    );
    insta::assert_snapshot!("audit_errors_at_glibc_2_11", at_2_11.join("\n"));
    let at_2_9 = audit_errors("2.9");
    assert!(
        at_2_9
            .iter()
            .any(|e| e.contains("_multiarray_umath") && e.contains("fallocate@GLIBC_2.10")),
        "{at_2_9:#?}"
    );
    insta::assert_snapshot!("audit_errors_at_glibc_2_9", at_2_9.join("\n"));

    // RHEL 6's kernel: the archive unpacked elsewhere (relocated by envship unpack), and the
    // same computation, threads and a subprocess under the seccomp filter that makes every
    // system call newer than Linux 2.6.32 answer ENOSYS.
    let tools = tempfile::tempdir().unwrap();
    let Some(helper) = crate::old_kernel::seccomp_helper(TEST, tools.path()) else {
        return;
    };
    let unpacked = tools.path().join("lcls-numpy");
    envship()
        .arg("unpack")
        .arg(&archive)
        .arg(&unpacked)
        .assert()
        .success();
    let out = std::process::Command::new(&helper)
        .arg(unpacked.join("bin/python"))
        .args(["-c", OLD_KERNEL_CHECK])
        .output_in_time()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ok under the 2.6.32 filter"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The build itself (before repackaging) passes envship's own audit for lcls-rhel6: every ELF
/// file needs at most GLIBC_2.12 and only the target's system libraries.
#[test]
fn glibc_2_12_python_build_passes_the_lcls_rhel6_audit() {
    let test = "glibc_2_12_python_build_passes_the_lcls_rhel6_audit";
    let build = match envship_test_support::python212::build_dir() {
        Ok(b) => b,
        Err(why) => {
            envship_test_support::skip(test, why);
            return;
        }
    };
    let out = envship()
        .args(["audit", "--json", "--target", "lcls-rhel6"])
        .arg(&build)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(out.status.success(), "{report:#}");
    assert_eq!(report["summary"]["errors"], 0, "{report:#}");
    // The interpreter and its lib-dynload modules were all read, not an empty tree.
    let elf_files = report["summary"]["elf_files"].as_u64().unwrap();
    assert!(elf_files > 40, "{report:#}");
    let record = envship_test_support::python212::build_record(&build);
    assert_eq!(record["glibc_max"], "GLIBC_2.10", "{record:#}");
}
