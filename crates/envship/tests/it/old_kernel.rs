//! envship as on RHEL 6's kernel (Linux 2.6.32): a seccomp filter makes every system call added
//! since answer ENOSYS (`scripts/seccomp-2.6.32.c`, built here with gcc and libseccomp), and a
//! production host's work runs under it: unpack, deploy twice, deploy `--force` over the live
//! version, rollback, audit. `scripts/oldkernel-check.sh` runs the same steps with the static
//! binary inside a bullseye chroot.
use envship_test_support::Deadline;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use envship_test_support::skip;

use crate::{envship, example, repo_root};

/// The seccomp helper built into `dir`, once it is known to load its filter; `None` after a
/// skip when gcc or libseccomp is missing.
pub(crate) fn seccomp_helper(test: &str, dir: &Path) -> Option<PathBuf> {
    let helper = dir.join("seccomp-2.6.32");
    let built = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&helper)
        .arg(repo_root().join("scripts/seccomp-2.6.32.c"))
        .arg("-lseccomp")
        .output_in_time();
    match built {
        Err(e) => {
            skip(test, format!("gcc cannot run: {e}"));
            return None;
        }
        Ok(out) if !out.status.success() => {
            skip(
                test,
                format!(
                    "cannot build the seccomp helper (libseccomp-dev missing?): {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            );
            return None;
        }
        Ok(_) => {}
    }
    let probe = Command::new(&helper).arg("true").output_in_time().unwrap();
    assert!(
        probe.status.success(),
        "the seccomp filter does not load: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    Some(helper)
}

/// `envship ARGS` under the 2.6.32 filter.
fn old_kernel_envship(helper: &Path) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::new(helper);
    cmd.arg(env!("CARGO_BIN_EXE_envship"))
        .env_remove("ENVSHIP_TARGET")
        .env("NO_COLOR", "1")
        .env("RUST_LOG", "warn")
        .timeout(envship_test_support::deadline::default_deadline());
    cmd
}

fn current(env_dir: &Path) -> String {
    fs_err::read_link(env_dir.join("current"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The hidden entries of `ROOT/NAME`: partial extractions, retired trees, temp links.
fn leftovers(env_dir: &Path) -> Vec<String> {
    fs_err::read_dir(env_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && !envship_deploy::live::is_version_record(env_dir, n))
        .collect()
}

/// The environment at `prefix` runs, and knows it lives there.
fn assert_env_works(prefix: &Path) {
    let out = Command::new(prefix.join("bin/hello"))
        .output_in_time()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Hello from libhello"),
        "{out:?}"
    );
    let out = Command::new(prefix.join("bin/hello"))
        .arg("--prefix")
        .output_in_time()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        prefix.display().to_string()
    );
}

/// The example packed twice, as versions 1 and 2, with their sidecars.
fn hello_archives(dir: &Path) -> [PathBuf; 2] {
    let cache = dir.join(".cache");
    for step in ["lock", "build"] {
        envship()
            .current_dir(dir)
            .args([step, "--offline", "--cache-dir"])
            .arg(&cache)
            .assert()
            .success();
    }
    let prefix = dir.join(".envship/build/hello-envship");
    ["1", "2"].map(|version| {
        let archive = dir.join(format!("dist/hello-{version}.tar.gz"));
        envship()
            .current_dir(dir)
            .args(["--quiet", "pack", "--name", "hello", "--version", version])
            .arg("--prefix")
            .arg(&prefix)
            .arg("-o")
            .arg(&archive)
            .assert()
            .success();
        archive
    })
}

#[test]
fn unpack_deploy_force_rollback_and_audit_on_a_2_6_32_kernel() {
    const TEST: &str = "unpack_deploy_force_rollback_and_audit_on_a_2_6_32_kernel";
    let tools = tempfile::tempdir().unwrap();
    let Some(helper) = seccomp_helper(TEST, tools.path()) else {
        return;
    };
    let dir = example("hello");
    let [a1, a2] = hello_archives(dir.path());
    let run = |args: &[&str]| {
        let out = old_kernel_envship(&helper)
            .args(args)
            .assert()
            .success()
            .get_output()
            .stdout
            .clone();
        String::from_utf8(out).unwrap()
    };
    let path = |p: &Path| p.to_str().unwrap().to_string();

    assert!(run(&["--version"]).starts_with("envship "));

    let unpacked = dir.path().join("unpacked/hello");
    run(&["unpack", &path(&a1), &path(&unpacked)]);
    assert_env_works(&unpacked);

    let root = dir.path().join("deploy-root");
    let env_dir = root.join("hello");
    let deploy = |archive: &Path, extra: &[&str]| {
        let mut args = vec!["deploy", "--json", "--root"];
        let root = path(&root);
        let archive = path(archive);
        args.extend([root.as_str(), archive.as_str()]);
        args.extend(extra);
        let json: serde_json::Value = serde_json::from_str(&run(&args)).unwrap();
        json
    };
    deploy(&a1, &[]);
    assert_eq!(current(&env_dir), "1");
    deploy(&a2, &[]);
    assert_eq!(current(&env_dir), "2");
    assert_env_works(&env_dir.join("2"));
    let before = fs_err::metadata(env_dir.join("2")).unwrap();

    // Over the live version: renameat2 answers ENOSYS, so the replacement takes two renames.
    let forced = deploy(&a2, &["--force"]);
    let actions = forced["actions"].to_string();
    assert!(
        actions.contains("by two renames"),
        "the filter should have made the exchange unavailable: {actions}"
    );
    assert_eq!(current(&env_dir), "2");
    use std::os::unix::fs::MetadataExt;
    assert_ne!(
        fs_err::metadata(env_dir.join("2")).unwrap().ino(),
        before.ino(),
        "2 was replaced"
    );
    assert_env_works(&env_dir.join("2"));
    assert_eq!(leftovers(&env_dir), Vec::<String>::new());

    run(&["deploy", "--root", &path(&root), "--rollback", "hello"]);
    assert_eq!(current(&env_dir), "1");
    assert_env_works(&env_dir.join("1"));
    assert_eq!(leftovers(&env_dir), Vec::<String>::new());
    // Both versions as deployed, the forced one included; `current` followed.
    for v in ["current", "1", "2"] {
        let out = run(&["verify", &path(&env_dir.join(v))]);
        assert!(out.contains(": clean ("), "{v}: {out}");
    }

    let report = run(&[
        "audit",
        "--target",
        "lcls-rhel6",
        "--json",
        "--build-prefix",
        "",
        &path(&env_dir.join("1")),
    ]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["summary"]["errors"], 0, "{report:#}");
}
