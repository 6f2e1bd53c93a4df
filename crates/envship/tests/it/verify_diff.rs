//! `envship verify` and `envship diff` on real archives of the bundled example: two builds of
//! it, the second with one package at another version and a file added, packed, unpacked,
//! tampered with and compared.
use std::path::Path;

use crate::{
    example,
    snapshots::{run, snap},
};

/// Build the example into `prefix` (offline, from its bundled channel).
fn build(dir: &Path, prefix: &str) {
    let (code, _, stderr) = run(dir, &["--quiet", "build", "--offline", "--prefix", prefix]);
    assert_eq!(code, 0, "{stderr}");
}

/// Pack `prefix` as `version` into dist/.
fn pack(dir: &Path, prefix: &str, version: &str) -> String {
    let out = format!("dist/hello-envship-{version}-linux-64.tar.gz");
    let (code, _, stderr) = run(
        dir,
        &[
            "--quiet",
            "pack",
            "--prefix",
            prefix,
            "--name",
            "hello-envship",
            "--version",
            version,
            "-o",
            &out,
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    out
}

/// The second release: `hello-scripts` recorded at 1.1 (its conda-meta record renamed and
/// edited, as an install of 1.1 would leave it), a new file and a new script.
fn bump_hello_scripts(prefix: &Path) {
    let meta = prefix.join("conda-meta");
    let old = fs_err::read_dir(&meta)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("hello-scripts-1.0-")
        })
        .expect("hello-scripts record");
    let text = fs_err::read_to_string(&old).unwrap();
    let mut rec: serde_json::Value = serde_json::from_str(&text).unwrap();
    rec["version"] = "1.1".into();
    let name = old
        .file_name()
        .unwrap()
        .to_string_lossy()
        .replace("-1.0-", "-1.1-");
    fs_err::write(meta.join(name), serde_json::to_string_pretty(&rec).unwrap()).unwrap();
    fs_err::remove_file(&old).unwrap();
    fs_err::write(prefix.join("share/release-notes.txt"), "1.1\n").unwrap();
    // A script holding the build prefix with no placeholder recorded: a new audit finding.
    let script = prefix.join("bin/stray-tool");
    fs_err::write(&script, format!("#!/bin/sh\necho {}\n", prefix.display())).unwrap();
    fs_err::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// The audit report of `prefix` beside the archive `archive`, as ship writes it.
fn audit(dir: &Path, prefix: &str, archive: &str) {
    let report = archive.replace(".tar.gz", ".audit.json");
    let (code, _, stderr) = run(
        dir,
        &[
            "audit",
            prefix,
            "--target",
            "lcls-rhel6",
            "--json",
            "-o",
            &report,
        ],
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn diff_of_two_releases_and_verify_of_an_unpacked_one() {
    let d = example("hello");
    let dir = d.path();
    build(dir, "build/one");
    build(dir, "build/two");
    bump_hello_scripts(&dir.join("build/two"));
    let a1 = pack(dir, "build/one", "1.0");
    let a2 = pack(dir, "build/two", "1.1");
    audit(dir, "build/one", &a1);
    audit(dir, "build/two", &a2);

    let (code, table, stderr) = run(dir, &["diff", &a1, &a2]);
    assert_eq!(code, 0, "{stderr}");
    snap("diff_table_of_two_archives", &table);
    let (code, md, stderr) = run(dir, &["diff", &a1, &a2, "--format", "md"]);
    assert_eq!(code, 0, "{stderr}");
    snap("diff_markdown_of_two_archives", &md);
    let (code, json, stderr) = run(dir, &["diff", &a1, &a2, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["conda"]["changed"][0]["name"], "hello-scripts");
    assert_eq!(v["conda"]["changed"][0]["new_version"], "1.1");
    assert_eq!(
        v["new"]["files"].as_u64(),
        v["old"]["files"].as_u64().map(|n| n + 2)
    );
    assert_eq!(v["audit"]["appeared"][0]["path"], "bin/stray-tool");
    assert_eq!(v["audit"]["gone"].as_array().map(Vec::len), Some(0));

    // Two prefixes: the file-level changes too.
    let (code, table, stderr) = run(dir, &["diff", "build/one", "build/two"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(table.contains("~ hello-scripts"), "{table}");
    // The renamed record, the new file and script; files holding their own prefix differ too.
    assert!(table.contains("3 added"), "{table}");

    // Unpack writes the record; verify passes, then names every change.
    let (code, stdout, stderr) = run(dir, &["unpack", &a2, "prod/env"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("recorded the tree in prod/.env.tree.json"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(dir, &["verify", "prod/env"]);
    snap("verify_clean", &format!("exit {code}\n{stdout}{stderr}"));
    assert_eq!(code, 0);
    // The diff between the archive and what was unpacked from it: same packages.
    let (code, table, _) = run(dir, &["diff", &a2, "prod/env"]);
    assert_eq!(code, 0);
    assert!(
        table.contains("conda packages: 0 added, 0 removed, 0 changed"),
        "{table}"
    );

    let env = dir.join("prod/env");
    fs_err::write(env.join("share/release-notes.txt"), "1.2\n").unwrap();
    fs_err::remove_file(env.join("bin/deactivate")).unwrap();
    fs_err::write(env.join("share/stray.txt"), "x").unwrap();
    let (code, stdout, stderr) = run(dir, &["verify", "prod/env"]);
    snap("verify_drift", &format!("exit {code}\n{stdout}{stderr}"));
    assert_eq!(code, 1);
    let (code, json, _) = run(dir, &["verify", "prod/env", "--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["clean"], false);
    assert_eq!(v["modified"][0]["path"], "share/release-notes.txt");
    assert_eq!(v["missing"][0]["path"], "bin/deactivate");
    assert_eq!(v["added"][0]["path"], "share/stray.txt");

    // No record: exit 2, naming where it looked.
    let (code, _, stderr) = run(dir, &["unpack", "--no-record", &a1, "prod/bare"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(dir, &["verify", "prod/bare"]);
    snap(
        "verify_no_record",
        &format!("exit {code}\n{stdout}{stderr}"),
    );
    assert_eq!(code, 2);

    // Deployed: the dry run of the next release shows the diff against current; both deployed
    // versions verify clean, and diff between them counts the paths.
    let (code, _, stderr) = run(dir, &["--quiet", "deploy", "--root", "root", &a1]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = run(dir, &["deploy", "--root", "root", &a2, "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("diff hello-envship 1.0 -> hello-envship 1.1"),
        "{stdout}"
    );
    assert!(stdout.contains("~ hello-scripts"), "{stdout}");
    let (code, _, stderr) = run(dir, &["--quiet", "deploy", "--root", "root", &a2]);
    assert_eq!(code, 0, "{stderr}");
    for v in ["root/hello-envship/current", "root/hello-envship/1.0"] {
        let (code, stdout, stderr) = run(dir, &["verify", v]);
        assert_eq!(code, 0, "{v}: {stdout}{stderr}");
    }
    let (code, table, stderr) = run(
        dir,
        &[
            "diff",
            "root/hello-envship/1.0",
            "root/hello-envship/current",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        table.contains("diff hello-envship 1.0 -> hello-envship 1.1"),
        "{table}"
    );
    assert!(table.contains("3 added"), "{table}");
}
