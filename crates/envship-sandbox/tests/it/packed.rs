//! End to end with envship-pack: a real prefix (a conda-meta record with a text placeholder)
//! packed by `envship_pack::pack`, unpacked by the sandbox at a different destination prefix,
//! relocated by the archive's own `conda-unpack`, then tested.
use envship_test_support::Deadline;

use std::{fs, os::unix::fs::PermissionsExt, path::Path};

use envship_pack::{Format, ManifestTarget, PackOptions};
use envship_sandbox::{Isolation, NoProgress};

use crate::fixtures::{namespaces_or_skip, run, sha256, Project};

fn make_prefix(prefix: &Path) {
    let build = prefix.to_str().unwrap();
    fs::create_dir_all(prefix.join("bin")).unwrap();
    fs::create_dir_all(prefix.join("share/greet")).unwrap();
    fs::create_dir_all(prefix.join("conda-meta")).unwrap();
    fs::write(
        prefix.join("bin/greet"),
        format!("#!/bin/sh\n# installed at {build}\ncat {build}/share/greet/greeting\n"),
    )
    .unwrap();
    fs::set_permissions(prefix.join("bin/greet"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(prefix.join("share/greet/greeting"), "hello relocated\n").unwrap();
    let record = serde_json::json!({
        "name": "greet", "version": "1.0", "build": "0", "build_number": 0,
        "subdir": "noarch", "channel": "file:///fixtures",
        "files": ["bin/greet", "share/greet/greeting"],
        "paths_data": {"paths_version": 1, "paths": [
            {"_path": "bin/greet", "path_type": "hardlink", "prefix_placeholder": build, "file_mode": "text"},
            {"_path": "share/greet/greeting", "path_type": "hardlink"}
        ]}
    });
    fs::write(
        prefix.join("conda-meta/greet-1.0-0.json"),
        serde_json::to_vec_pretty(&record).unwrap(),
    )
    .unwrap();
}

#[test]
fn envship_pack_archive_relocates_and_passes_in_the_sandbox() {
    if !namespaces_or_skip("envship_pack_archive_relocates_and_passes_in_the_sandbox") {
        return;
    }
    let script = r#"set -e
test "$CONDA_PREFIX" = /opt/envship/greet
greet | grep -qx 'hello relocated'
grep -q '/opt/envship/greet/share' "$CONDA_PREFIX/bin/greet"
if grep -rq "$BUILD_PREFIX" "$CONDA_PREFIX/bin"; then echo "build prefix left"; exit 8; fi
echo packed-ok
"#;
    let p = Project::new(script, &[]);
    let prefix = p.tmp.path().join("build/envs/greet");
    make_prefix(&prefix);
    let base = PackOptions {
        prefix: prefix.clone(),
        build_prefix: None,
        output: Some(p.dir().join("dist/greet-1.0-noarch.tar.gz")),
        name: "greet".into(),
        version: "1.0".into(),
        target: ManifestTarget {
            name: "host".into(),
            subdir: "linux-64".into(),
            glibc: None,
        },
        format: Format::TarGz,
        squashfs_compression: Default::default(),
        dest_prefix: None,
        arcroot: None,
        exclude: vec![],
        include: vec![],
        jobs: 1,
        compress_level: None,
        force: true,
        allow_missing_files: false,
        allow_modified_files: false,
        allow_editable: false,
        source_date_epoch: None,
        reuse: Default::default(),
    };
    let pack = |o: &PackOptions| {
        envship_pack::pack(o, &NoProgress)
            .unwrap_or_else(|e| panic!("pack: {:?}", miette::Report::new(e)))
    };
    let out = pack(&base);
    // The same prefix as the other formats the sandbox takes: the sh installer, and a squashfs
    // image baked for the destination.
    let installer = pack(&PackOptions {
        output: Some(p.dir().join("dist/greet-installer.sh")),
        format: Format::Sh,
        ..base.clone()
    });
    let image = pack(&PackOptions {
        output: Some(p.dir().join("dist/greet-image.squashfs")),
        format: Format::Squashfs,
        dest_prefix: Some("/opt/envship/greet".into()),
        ..base.clone()
    });
    // The build prefix is gone: only the archive can make the test pass.
    fs::remove_dir_all(p.tmp.path().join("build")).unwrap();
    let mut opts = p.options(Isolation::Namespace);
    opts.archive = out.archive.clone();
    opts.dest_prefix = "/opt/envship/greet".into();
    opts.environment_name = "greet".into();
    opts.extra_env = vec![("BUILD_PREFIX".into(), prefix.display().to_string())];
    let before = sha256(&out.archive);
    let (outcome, lines) = run(&opts);
    assert!(
        outcome.passed,
        "{}\n{}",
        outcome.summary(),
        lines.join("\n")
    );
    assert!(lines.iter().any(|l| l == "packed-ok"));
    assert_eq!(sha256(&out.archive), before);

    for (archive, says) in [
        (
            &installer.archive,
            "installed greet 1.0 (linux-64) into /opt/envship/greet",
        ),
        (
            &image.archive,
            "envship: extracted the squashfs image with unsquashfs",
        ),
    ] {
        if archive == &image.archive && !unsquashfs_or_skip() {
            continue;
        }
        opts.archive = archive.clone();
        let (outcome, lines) = run(&opts);
        assert!(
            outcome.passed,
            "{}: {}\n{}",
            archive.display(),
            outcome.summary(),
            lines.join("\n")
        );
        assert!(lines.iter().any(|l| l == "packed-ok"));
        assert!(
            lines.iter().any(|l| l.starts_with(says)),
            "the log says how it was installed: {}",
            lines.join("\n")
        );
    }
}

fn unsquashfs_or_skip() -> bool {
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v unsquashfs"])
        .output_in_time()
        .is_ok_and(|o| o.status.success());
    if !found {
        envship_test_support::skip(
            "envship_pack_archive_relocates_and_passes_in_the_sandbox",
            "unsquashfs is not installed (apt: squashfs-tools)",
        );
    }
    found
}
