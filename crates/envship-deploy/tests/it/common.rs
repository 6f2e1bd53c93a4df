//! Shared helpers: real packed environments (envship-pack) to deploy.

use std::path::{Path, PathBuf};

pub use envship_test_support::{random_bytes as bytes, sha256_hex as sha256};

/// A real conda-style prefix (conda-meta record with a text placeholder, a script that prints
/// its own prefix, a test script under share/envship/) packed with envship-pack into `out_dir`.
/// Returns the archive path; `.sha256` and `.manifest.json` are beside it.
pub fn packed_env(
    out_dir: &Path,
    name: &str,
    version: &str,
    test_script: &str,
    target: envship_pack::ManifestTarget,
) -> PathBuf {
    packed_env_as(
        out_dir,
        name,
        version,
        test_script,
        target,
        envship_pack::Format::TarGz,
    )
}

/// [`packed_env`] in `format` (a squashfs image is baked for `/opt/envship/NAME`).
pub fn packed_env_as(
    out_dir: &Path,
    name: &str,
    version: &str,
    test_script: &str,
    target: envship_pack::ManifestTarget,
    format: envship_pack::Format,
) -> PathBuf {
    let env = Env {
        name,
        version,
        test_script,
        extra: &[],
    };
    packed_env_with(out_dir, &env, target, format)
}

/// What [`packed_env_with`] packs.
pub struct Env<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub test_script: &'a str,
    /// More files (path in the prefix, content), no package owns them.
    pub extra: &'a [(&'a str, Vec<u8>)],
}

/// [`packed_env_as`] with more files in the prefix.
pub fn packed_env_with(
    out_dir: &Path,
    env: &Env<'_>,
    target: envship_pack::ManifestTarget,
    format: envship_pack::Format,
) -> PathBuf {
    packed_env_pkg(out_dir, env, target, format, "1.0")
}

/// [`packed_env_with`] whose `hello` conda package has version `pkg_version`.
pub fn packed_env_pkg(
    out_dir: &Path,
    env: &Env<'_>,
    target: envship_pack::ManifestTarget,
    format: envship_pack::Format,
    pkg_version: &str,
) -> PathBuf {
    let (name, version, test_script) = (env.name, env.version, env.test_script);
    let build = tempfile::tempdir().unwrap();
    let prefix = build
        .path()
        .join("build-prefix-with-a-long-name-to-relocate");
    let p = prefix.to_str().unwrap().to_string();
    std::fs::create_dir_all(prefix.join("bin")).unwrap();
    std::fs::create_dir_all(prefix.join("conda-meta")).unwrap();
    std::fs::create_dir_all(prefix.join("share/envship")).unwrap();
    let hello = format!("#!/bin/sh\necho \"hello from {p}\"\n");
    std::fs::write(prefix.join("bin/hello"), &hello).unwrap();
    std::fs::set_permissions(
        prefix.join("bin/hello"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(prefix.join("share/envship/run-test.sh"), test_script).unwrap();
    std::fs::write(
        prefix.join("share/payload.bin"),
        bytes(version.len() as u64 + 7, 200_000),
    )
    .unwrap();
    for (path, data) in env.extra {
        let p = prefix.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let record = serde_json::json!({
        "name": "hello", "version": pkg_version, "build": "0", "build_number": 0,
        "channel": "https://conda.anaconda.org/conda-forge", "subdir": "linux-64",
        "files": ["bin/hello"],
        "paths_data": {"paths_version": 1, "paths": [{
            "_path": "bin/hello", "path_type": "hardlink", "prefix_placeholder": p,
            "file_mode": "text", "size_in_bytes": hello.len(),
        }]},
    });
    std::fs::write(
        prefix.join(format!("conda-meta/hello-{pkg_version}-0.json")),
        record.to_string(),
    )
    .unwrap();
    let out = envship_pack::pack(
        &envship_pack::PackOptions {
            prefix: prefix.clone(),
            build_prefix: None,
            output: Some(out_dir.join(envship_pack::default_file_name(
                name,
                version,
                &target.name,
                &target.subdir,
                format,
            ))),
            name: name.into(),
            version: version.into(),
            target,
            format,
            squashfs_compression: Default::default(),
            dest_prefix: (format == envship_pack::Format::Squashfs)
                .then(|| format!("/opt/envship/{name}")),
            arcroot: None,
            exclude: vec![],
            include: vec![],
            jobs: 2,
            compress_level: Some(1),
            force: false,
            allow_missing_files: false,
            allow_modified_files: false,
            allow_editable: false,
            source_date_epoch: None,
            reuse: Default::default(),
        },
        &envship_spec::NoProgress,
    )
    .unwrap();
    out.archive
}

pub fn rhel6() -> envship_pack::ManifestTarget {
    envship_pack::ManifestTarget {
        name: "lcls-rhel6".into(),
        subdir: "linux-64".into(),
        glibc: Some("2.12".into()),
    }
}

/// A test script that passes only when `hello` comes from the activated, relocated env.
pub const GOOD_TEST: &str = r#"set -e
here="$(cd "$(dirname "$(command -v hello)")/.." && pwd -P)"
test "$CONDA_PREFIX" -ef "$here"
test "$(hello)" = "hello from $here"
echo "test ok in $here"
"#;
