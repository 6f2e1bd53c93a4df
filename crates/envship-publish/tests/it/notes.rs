//! Release notes: publish writes what changed since the previous release of the same
//! environment and target into the release body, found among the repository's earlier releases
//! on the GitHub stand-in, from archives envship-pack really packed.

use std::path::{Path, PathBuf};

use envship_publish::{
    artifacts,
    github::notes::{update_release_notes, NotesOutcome},
    publish_release, GithubConfig, RetryPolicy, Secret,
};
use envship_spec::NoProgress;
use envship_test_support::ghserver::GhServer;

const TOKEN: &str = "ghp_NOTEStoken0123456789";

fn config(server: &GhServer) -> GithubConfig {
    GithubConfig {
        api_url: server.api_url.clone(),
        repo: "slac-lcls/psana-env".into(),
        token: Some(Secret::new(TOKEN)),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: std::time::Duration::from_millis(10),
            ..RetryPolicy::default()
        },
    }
}

fn target(name: &str) -> envship_pack::ManifestTarget {
    envship_pack::ManifestTarget {
        name: name.into(),
        subdir: "linux-64".into(),
        glibc: None,
    }
}

/// A prefix with a conda-meta record per `(name, version, build)` and a file for each, packed
/// by envship-pack as `file_name` into `out`; the archive and every sidecar pack wrote.
fn packed(
    out: &Path,
    file_name: &str,
    name: &str,
    version: &str,
    target_name: &str,
    packages: &[(&str, &str, &str)],
) -> Vec<PathBuf> {
    let build = tempfile::tempdir().unwrap();
    let prefix = build.path().join("prefix");
    std::fs::create_dir_all(prefix.join("conda-meta")).unwrap();
    std::fs::create_dir_all(prefix.join("lib")).unwrap();
    for (pkg, ver, b) in packages {
        let file = format!("lib/{pkg}.txt");
        let content = format!("{pkg} {ver}\n").repeat(100);
        std::fs::write(prefix.join(&file), &content).unwrap();
        let record = serde_json::json!({
            "name": pkg, "version": ver, "build": b, "build_number": 0,
            "channel": "https://conda.anaconda.org/conda-forge", "subdir": "linux-64",
            "files": [file],
            "paths_data": {"paths_version": 1, "paths": [{
                "_path": file, "path_type": "hardlink", "size_in_bytes": content.len(),
            }]},
        });
        std::fs::write(
            prefix.join(format!("conda-meta/{pkg}-{ver}-{b}.json")),
            record.to_string(),
        )
        .unwrap();
    }
    std::fs::create_dir_all(out).unwrap();
    let packed = envship_pack::pack(
        &envship_pack::PackOptions {
            prefix,
            build_prefix: None,
            output: Some(out.join(file_name)),
            name: name.into(),
            version: version.into(),
            target: target(target_name),
            format: envship_pack::Format::TarGz,
            squashfs_compression: Default::default(),
            dest_prefix: None,
            arcroot: None,
            exclude: vec![],
            include: vec![],
            jobs: 1,
            compress_level: Some(1),
            force: false,
            allow_missing_files: false,
            allow_modified_files: false,
            allow_editable: false,
            source_date_epoch: None,
            reuse: envship_pack::BlockReuse::Off,
        },
        &NoProgress,
    )
    .unwrap();
    artifacts::collect(&packed.archive)
}

/// Publish `files` to `tag` and write the notes for its archive.
fn publish(server: &GhServer, tag: &str, files: &[PathBuf]) -> NotesOutcome {
    let report = publish_release(&config(server), tag, files, false, &NoProgress).unwrap();
    update_release_notes(&config(server), &report.release, &files[0])
        .unwrap()
        .expect("the archive has a manifest")
}

#[test]
fn the_notes_say_what_changed_since_the_previous_release_of_the_same_env_and_target() {
    let server = GhServer::start(TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The first release has nothing to compare with: its notes stay as they are.
    let v1 = packed(
        &d.join("1"),
        "psana-1.0-linux-64.tar.gz",
        "psana",
        "1.0",
        "lcls-rhel6",
        &[
            ("zlib", "1.2.11", "h7b6447c_3"),
            ("numpy", "1.26.4", "py311_0"),
        ],
    );
    let first = publish(&server, "psana-1.0", &v1);
    assert_eq!(first.previous, None);
    assert!(!first.written);
    assert_eq!(server.release_body("psana-1.0").unwrap(), "");

    // Later releases that are not the previous one of psana for lcls-rhel6: another
    // environment's, a draft, and one whose manifest is damaged.
    let other = packed(
        &d.join("other"),
        "other-9-linux-64.tar.gz",
        "other",
        "9",
        "lcls-rhel6",
        &[("zlib", "1.3", "0")],
    );
    let report = publish_release(&config(&server), "other-9", &other, false, &NoProgress).unwrap();
    let draft = server.add_release("psana-1.5-draft");
    server.make_draft(draft);
    let v15 = packed(
        &d.join("15"),
        "psana-1.5-linux-64.tar.gz",
        "psana",
        "1.5",
        "lcls-rhel6",
        &[("zlib", "9.9", "0")],
    );
    for f in &v15 {
        let name = f.file_name().unwrap().to_str().unwrap();
        server.add_asset(draft, name, &std::fs::read(f).unwrap(), "uploaded");
    }
    let broken = server.add_release("psana-1.6-broken");
    server.add_asset(
        broken,
        "psana-1.6-linux-64.manifest.json",
        b"{\"name\": \"psana\", trunc",
        "uploaded",
    );
    assert!(report.created);

    // The next release: one package changed, one added, one removed; hand-written notes are
    // already in its body.
    let release = server.add_release("psana-2.0");
    server.set_release_body(release, "Fixes the detector geometry.\n");
    let v2 = packed(
        &d.join("2"),
        "psana-2.0-linux-64.tar.gz",
        "psana",
        "2.0",
        "lcls-rhel6",
        &[
            ("zlib", "1.2.13", "h5eee18b_1"),
            ("scipy", "1.11.4", "py311_0"),
        ],
    );
    let second = publish(&server, "psana-2.0", &v2);
    let previous = second.previous.as_ref().expect("psana-1.0 found");
    assert_eq!(previous.tag, "psana-1.0");
    assert_eq!(previous.version, "1.0");
    assert_eq!(previous.manifest, "psana-1.0-linux-64.manifest.json");
    assert!(second.written);
    let body = server.release_body("psana-2.0").unwrap();
    assert!(
        body.starts_with("Fixes the detector geometry.\n\n"),
        "{body}"
    );
    assert!(body.contains("### Changes since 1.0"), "{body}");
    for row in [
        "| ~ | `zlib` | 1.2.11 (h7b6447c_3) | 1.2.13 (h5eee18b_1) |",
        "| + | `scipy` |",
        "| - | `numpy` |",
    ] {
        assert!(body.contains(row), "{row} missing from:\n{body}");
    }
    assert!(!body.contains("9.9"), "the draft was taken: {body}");
    assert_eq!(
        body.matches("<!-- envship:changes psana lcls-rhel6 -->")
            .count(),
        1
    );

    // Publishing again changes nothing; a second target gets a section of its own.
    let again = publish(&server, "psana-2.0", &v2);
    assert!(!again.written);
    assert_eq!(server.release_body("psana-2.0").unwrap(), body);
    let rhel8 = packed(
        &d.join("2-rhel8"),
        "psana-2.0-rhel8-linux-64.tar.gz",
        "psana",
        "2.0",
        "rhel8",
        &[("zlib", "1.2.13", "h5eee18b_1")],
    );
    let eight = publish(&server, "psana-2.0", &rhel8);
    assert_eq!(
        eight.previous, None,
        "no earlier release has psana for rhel8"
    );
    assert_eq!(server.release_body("psana-2.0").unwrap(), body);
}
