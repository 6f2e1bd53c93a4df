//! A workspace of environments: `envship matrix` lists its (member, target) pairs as GitHub
//! Actions matrices, chunked past 256 jobs, narrowed to what changed since a git ref.

use std::{path::Path, process::Command};

use crate::envship;

fn member(root: &Path, dir: &str, config: &str) {
    let d = root.join(dir);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(
        d.join("environment.yml"),
        "name: m\nchannels: [conda-forge]\ndependencies: [python]\n",
    )
    .unwrap();
    std::fs::write(d.join("envship.toml"), config).unwrap();
}

fn json(args: &[&str], dir: &Path) -> serde_json::Value {
    let out = envship().args(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org"])
        .args(args)
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

#[test]
fn matrix_lists_exactly_the_pairs_and_what_changed() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    std::fs::write(
        root.join("envship.toml"),
        "[workspace]\nmembers = [\"envs/*\"]\n",
    )
    .unwrap();
    member(
        root,
        "envs/psana",
        "targets = [\"lcls-rhel6\", \"rhel8\"]\n",
    );
    member(root, "envs/ami", "target = \"rhel7\"\n");
    member(root, "envs/daq", "target = \"lcls-rhel6\"\n");
    let m = json(&["matrix", "--json"], &root.join("envs/ami"));
    let got: Vec<String> = m["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{}:{}",
                p["member"].as_str().unwrap(),
                p["target"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            "envs/ami:rhel7",
            "envs/daq:lcls-rhel6",
            "envs/psana:lcls-rhel6",
            "envs/psana:rhel8"
        ]
    );
    let only = json(&["matrix", "--json", "--targets", "rhel8"], root);
    assert_eq!(only["include"].as_array().unwrap().len(), 1);

    git(root, &["init", "-q"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-qm", "fleet"]);
    let none = json(&["matrix", "--json", "--changed-since", "HEAD"], root);
    assert_eq!(none["include"].as_array().unwrap().len(), 0);
    std::fs::write(
        root.join("envs/ami/environment.yml"),
        "name: m\ndependencies: [numpy]\n",
    )
    .unwrap();
    let ami = json(&["matrix", "--json", "--changed-since", "HEAD"], root);
    assert_eq!(
        ami["include"],
        serde_json::json!([{"member": "envs/ami", "target": "rhel7"}])
    );
    // The workspace's own envship.toml counts for every member.
    std::fs::write(
        root.join("envship.toml"),
        "[workspace]\nmembers = [\"envs/*\"]\n# touched\n",
    )
    .unwrap();
    let all = json(&["matrix", "--json", "--changed-since", "HEAD"], root);
    assert_eq!(all["include"].as_array().unwrap().len(), 4);
    let bad = envship()
        .args(["matrix", "--changed-since", "no-such-ref"])
        .current_dir(root)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no-such-ref"));
}

#[test]
fn a_fleet_of_300_pairs_is_split_into_matrices_github_accepts() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    std::fs::write(
        root.join("envship.toml"),
        "[workspace]\nmembers = [\"envs/*\"]\n",
    )
    .unwrap();
    for i in 0..100 {
        member(
            root,
            &format!("envs/env{i:03}"),
            "targets = [\"lcls-rhel6\", \"rhel7\", \"rhel8\"]\n",
        );
    }
    let out = envship()
        .args(["matrix", "--json"])
        .current_dir(root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("300 pairs") && err.contains("--chunk N/2"),
        "{err}"
    );
    let chunks = json(&["matrix", "--chunks"], root);
    assert_eq!(chunks, serde_json::json!(["1/2", "2/2"]));
    let mut seen = std::collections::BTreeSet::new();
    for c in ["1/2", "2/2"] {
        let m = json(&["matrix", "--json", "--chunk", c], root);
        let include = m["include"].as_array().unwrap();
        assert!(include.len() <= 256, "{c}: {}", include.len());
        for p in include {
            assert!(seen.insert(p.to_string()), "{p} twice");
        }
    }
    assert_eq!(seen.len(), 300);
}

/// A member copied from a bundled example, with its own envship.toml.
fn example_member(root: &Path, dir: &str, example: &str, config: &str, name: Option<&str>) {
    let d = root.join(dir);
    crate::copy_dir(&crate::repo_root().join("examples").join(example), &d);
    std::fs::write(d.join("envship.toml"), config).unwrap();
    if let Some(name) = name {
        let env = std::fs::read_to_string(d.join("environment.yml")).unwrap();
        let renamed: String = env
            .lines()
            .map(|l| {
                if l.starts_with("name:") {
                    format!("name: {name}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        std::fs::write(d.join("environment.yml"), renamed).unwrap();
    }
}

/// The Done-when workspace: three members, one shipped for two targets of the same platform, one
/// whose binary needs glibc 2.14 (its audit fails for lcls-rhel6, glibc 2.12).
fn shipping_workspace(root: &Path) {
    std::fs::write(
        root.join("envship.toml"),
        "[workspace]\nmembers = [\"envs/*\"]\n",
    )
    .unwrap();
    let common = "test-script = \"run-test.sh\"\ndest-prefix = \"/opt/envship/hello-envship\"\n";
    example_member(
        root,
        "envs/hello",
        "hello",
        &format!("targets = [\"lcls-rhel6\", \"rhel8\"]\n{common}"),
        None,
    );
    example_member(
        root,
        "envs/greet",
        "hello",
        &format!("target = \"rhel8\"\n{common}"),
        Some("greet"),
    );
    example_member(
        root,
        "envs/memcpy",
        "needs-glibc-2.14",
        "target = \"lcls-rhel6\"\ntest-script = \"run-test.sh\"\n",
        None,
    );
}

#[test]
fn ship_all_ships_every_pair_that_passes_and_names_the_one_that_fails() {
    if let Err(e) = envship_sandbox::namespaces_available() {
        envship_test_support::skip(
            "ship_all_ships_every_pair_that_passes_and_names_the_one_that_fails",
            format!("user namespaces unavailable: {e}"),
        );
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    shipping_workspace(root);
    let cache = root.join(".cache");
    let m = json(&["matrix", "--json"], root);
    assert_eq!(
        m["include"],
        serde_json::json!([
            {"member": "envs/greet", "target": "rhel8"},
            {"member": "envs/hello", "target": "lcls-rhel6"},
            {"member": "envs/hello", "target": "rhel8"},
            {"member": "envs/memcpy", "target": "lcls-rhel6"},
        ])
    );

    let out = envship()
        .current_dir(root)
        .args(["ship", "--all", "-j", "2", "--offline", "--version", "1.0"])
        .arg("--cache-dir")
        .arg(&cache)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("3 of 4 pairs shipped")
            && stdout.contains("NOT shipped: envs/memcpy (lcls-rhel6)"),
        "{stdout}"
    );
    let memcpy_row = stdout
        .lines()
        .find(|l| l.starts_with("envs/memcpy"))
        .unwrap_or_default();
    assert!(
        memcpy_row.contains("failed") && memcpy_row.contains("audit: "),
        "{stdout}"
    );
    assert!(stderr.contains("memcpy@GLIBC_2.14"), "{stderr}");
    // Two targets of one platform: distinct archives, locks and build prefixes.
    let hello = root.join("envs/hello");
    for target in ["lcls-rhel6", "rhel8"] {
        let archive = hello.join(format!("dist/hello-envship-1.0-{target}-linux-64.tar.gz"));
        assert!(
            archive.is_file(),
            "{} missing:\n{stdout}",
            archive.display()
        );
        assert!(hello.join(format!("envship-{target}.lock")).is_file());
        assert!(hello
            .join(format!(".envship/build/hello-envship-{target}"))
            .is_dir());
    }
    assert!(!hello.join("envship.lock").exists());
    assert!(root
        .join("envs/greet/dist/greet-1.0-rhel8-linux-64.tar.gz")
        .is_file());
    let memcpy_dist: Vec<String> = std::fs::read_dir(root.join("envs/memcpy/dist"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        memcpy_dist.iter().all(|f| !f.ends_with(".tar.gz")),
        "the failing pair left an archive: {memcpy_dist:?}"
    );

    let page = |v: &str| {
        std::fs::read_to_string(hello.join(format!("dist/hello-envship-{v}-rhel8-linux-64.html")))
            .unwrap()
    };
    assert!(page("1.0").contains("id=\"no-previous\""));

    // Narrowed, as JSON; the locks of the first run are reused per target, and the new
    // release's evidence page compares it with the one before it in dist/.
    let out = envship()
        .current_dir(root.join("envs"))
        .args(["ship", "--all", "--members", "envs/hello", "--json"])
        .args(["--offline", "--version", "1.1", "--cache-dir"])
        .arg(&cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["shipped"], 2, "{summary:#}");
    for row in summary["pairs"].as_array().unwrap() {
        assert_eq!(row["result"], "shipped", "{row:#}");
        let lock = &row["report"]["stages"][0];
        assert_eq!(lock["stage"], "lock");
        assert_eq!(lock["detail"]["reused"], true, "{row:#}");
    }
    assert!(
        page("1.1").contains(
            "From <strong>hello-envship 1.0</strong> to <strong>hello-envship 1.1</strong>"
        ),
        "no diff on the 1.1 page"
    );
    // Fleet flags without --all are a usage error.
    envship()
        .current_dir(&hello)
        .args(["ship", "--targets", "rhel8"])
        .assert()
        .code(2);
}
