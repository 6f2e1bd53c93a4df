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
