//! Exit codes (0 ok, 1 gate, 2 usage or bad input, 70 internal) and colors (only on a terminal,
//! NO_COLOR, `--color`), checked on the real binary with the rendered errors snapshotted.
use envship_test_support::Deadline;

use crate::{envship, example, filter};

/// Run envship, return (exit code, stderr with `dir` filtered).
fn run(dir: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = envship().current_dir(dir).args(args).output().unwrap();
    let stderr = filter(&String::from_utf8_lossy(&out.stderr), dir);
    (out.status.code().unwrap_or(-1), stderr)
}

#[test]
fn bad_flag_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stderr) = run(dir.path(), &["targets", "--no-such-flag"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(stderr);
}

#[test]
fn bad_yaml_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(
        dir.path().join("environment.yml"),
        "name: x\ndependencies:\n  - numpy\n   - bad indent\n",
    )
    .unwrap();
    let (code, stderr) = run(dir.path(), &["check"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(stderr);
}

#[test]
fn malformed_archive_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("x.tar.gz"), b"not an archive").unwrap();
    let (code, stderr) = run(dir.path(), &["unpack", "x.tar.gz", "dest"]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(stderr);
    assert!(!dir.path().join("dest").exists());
}

#[test]
fn squashfs_without_dest_prefix_is_bad_input() {
    let dir = example("hello");
    for args in [&["lock", "--offline"][..], &["build", "--offline"]] {
        assert_eq!(run(dir.path(), args).0, 0, "{args:?}");
    }
    let prefix = ".envship/build/hello-envship";
    let (code, stderr) = run(dir.path(), &["pack", "-p", prefix, "--format", "squashfs"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--dest-prefix"), "{stderr}");
    let (code, stderr) = run(dir.path(), &["pack", "-p", prefix, "--compress", "zstd"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--compress needs --format squashfs"),
        "{stderr}"
    );
    assert!(!dir.path().join("dist").exists(), "nothing written");
    let (code, stderr) = run(
        dir.path(),
        &[
            "pack",
            "-p",
            prefix,
            "--format",
            "squashfs",
            "--compress",
            "zstd",
            "--dest-prefix",
            "/opt/envship/hello",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    // ship bakes the image for the test's destination and tests it extracted there.
    for format in ["squashfs", "sh"] {
        let on_path = |tool: &str| {
            std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
                .any(|d| d.join(tool).is_file())
        };
        if format == "squashfs" && !on_path("unsquashfs") {
            // The test stage extracts the image with the userland's unsquashfs.
            envship_test_support::skip(
                "squashfs_without_dest_prefix_is_bad_input (ship --format squashfs)",
                "no unsquashfs on PATH (squashfs-tools)",
            );
            continue;
        }
        let out = envship()
            .current_dir(dir.path())
            .args(["ship", "--offline", "--format", format])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{format}: {text}");
        assert!(text.contains(&format!(".{format}")), "{format}: {text}");
    }
}

#[test]
fn failed_audit_is_a_gate() {
    // The example's program needs GLIBC_2.14; lcls-rhel6 has 2.12.
    let dir = example("needs-glibc-2.14");
    let (code, _) = run(dir.path(), &["lock", "--offline"]);
    assert_eq!(code, 0);
    let (code, _) = run(dir.path(), &["build", "--offline"]);
    assert_eq!(code, 0);
    let out = envship()
        .current_dir(dir.path())
        .args(["audit", "--target", "lcls-rhel6"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    // A field override audits the same build against a newer glibc; naming another profile
    // than the build's is bad input (see target_record.rs).
    let (code, _) = run(dir.path(), &["audit", "--glibc", "2.17"]);
    assert_eq!(code, 0);
    let (code, stderr) = run(dir.path(), &["audit", "--target", "rhel7"]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn unsatisfiable_solve_is_a_gate() {
    let dir = example("hello");
    fs_err::write(
        dir.path().join("environment.yml"),
        fs_err::read_to_string(dir.path().join("environment.yml"))
            .unwrap()
            .replace("- hello 1.0.*", "- hello >=99"),
    )
    .unwrap();
    let (code, stderr) = run(dir.path(), &["lock", "--offline"]);
    assert_eq!(code, 1, "{stderr}");
}

/// A WARN line and a rendered error, with and without colors.
fn warn_and_error(args: &[&str], envs: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    // A plain tar.gz (no relocation list) unpacks with a warning; the second unpack fails.
    let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "a.txt", &b"hi"[..]).unwrap();
    let gz = b.into_inner().unwrap().finish().unwrap();
    fs_err::write(dir.path().join("a.tar.gz"), gz).unwrap();
    let mut all = String::new();
    for dest in ["d", "d"] {
        let mut cmd = envship();
        cmd.current_dir(dir.path()).env_remove("NO_COLOR");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd
            .args(args)
            .args(["unpack", "a.tar.gz", dest])
            .output()
            .unwrap();
        all.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    all
}

#[test]
fn colors_only_when_asked_or_on_a_terminal() {
    let piped = warn_and_error(&[], &[]);
    assert!(
        piped.contains("WARN") && piped.contains("not empty"),
        "{piped}"
    );
    assert!(!piped.contains('\x1b'), "ANSI codes in a pipe: {piped:?}");
    let forced = warn_and_error(&["--color", "always"], &[]);
    assert!(forced.contains("\x1b["), "--color always: {forced:?}");
    let no_color = warn_and_error(&["--color", "auto"], &[("NO_COLOR", "1")]);
    assert!(!no_color.contains('\x1b'), "NO_COLOR: {no_color:?}");
    let never = warn_and_error(&["--color", "never"], &[]);
    assert!(!never.contains('\x1b'), "--color never: {never:?}");
}

#[test]
fn colors_on_a_terminal_by_default() {
    // util-linux's `script` gives the command a pseudo-terminal.
    let dir = tempfile::tempdir().unwrap();
    let exe = assert_cmd::cargo::cargo_bin("envship");
    let run = |no_color: bool| {
        let mut cmd = std::process::Command::new("script");
        cmd.current_dir(dir.path())
            .args(["-qefc"])
            .arg(format!("{} unpack missing.tar.gz d", exe.display()))
            .arg("/dev/null")
            .env_remove("NO_COLOR");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        cmd.output_in_time()
    };
    let out = match run(false) {
        Ok(o) => o,
        Err(e) => {
            envship_test_support::skip("colors_on_a_terminal_by_default", format!("script: {e}"));
            return;
        }
    };
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(tty.contains("\x1b["), "no colors on a terminal: {tty:?}");
    let plain = run(true).unwrap();
    let plain = String::from_utf8_lossy(&plain.stdout);
    assert!(
        plain.contains("missing.tar.gz") && !plain.contains('\x1b'),
        "{plain:?}"
    );
}
