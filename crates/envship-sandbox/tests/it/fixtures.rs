//! Test fixtures: small conda-pack shaped archives (a `bin/activate` and a `bin/conda-unpack`
//! written for these tests, not produced by envship-pack) and helpers to run them.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use envship_sandbox::{Isolation, TestOptions};
use sha2::{Digest, Sha256};

/// TEST FIXTURE: a minimal activate that finds its prefix the way conda-pack's does.
pub const ACTIVATE: &str = r#"# envship-sandbox test fixture: minimal conda-pack style activate
_fixture_bin="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONDA_PREFIX="$(dirname "$_fixture_bin")"
export PATH="$CONDA_PREFIX/bin:$PATH"
unset _fixture_bin
"#;

/// TEST FIXTURE: a conda-unpack that leaves a marker (the real one rewrites prefixes).
pub const CONDA_UNPACK: &str = "#!/bin/sh\n# envship-sandbox test fixture\necho \"conda-unpack in $CONDA_PREFIX\"\ntouch \"$CONDA_PREFIX/.unpacked\"\n";

/// An archive's files: (path, mode, content).
pub fn env_files(extra: &[(&str, u32, &[u8])]) -> Vec<(String, u32, Vec<u8>)> {
    let mut v: Vec<(String, u32, Vec<u8>)> = vec![
        ("bin/activate".into(), 0o644, ACTIVATE.as_bytes().to_vec()),
        (
            "bin/conda-unpack".into(),
            0o755,
            CONDA_UNPACK.as_bytes().to_vec(),
        ),
        (
            "bin/hello".into(),
            0o755,
            b"#!/bin/sh\necho hello-from-env\n".to_vec(),
        ),
    ];
    for (p, m, c) in extra {
        v.push((p.to_string(), *m, c.to_vec()));
    }
    v
}

fn tar_bytes(files: &[(String, u32, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, mode, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(*mode);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, &content[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Writes `dir/name` as .tar.gz or .tar.zst (by name).
pub fn write_archive(dir: &Path, name: &str, files: &[(String, u32, Vec<u8>)]) -> PathBuf {
    let tar = tar_bytes(files);
    let path = dir.join(name);
    let bytes = if name.ends_with(".tar.zst") {
        zstd::encode_all(&tar[..], 3).unwrap()
    } else {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    };
    std::fs::write(&path, bytes).unwrap();
    path
}

pub fn sha256(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// A project dir with environment.yml and run-test.sh (the given script body).
pub struct Project {
    pub tmp: tempfile::TempDir,
    pub archive: PathBuf,
}

impl Project {
    pub fn new(script: &str, files: &[(String, u32, Vec<u8>)]) -> Self {
        Self::with_archive_name(script, files, "demo-1.0-linux-64.tar.gz")
    }

    pub fn with_archive_name(script: &str, files: &[(String, u32, Vec<u8>)], name: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let proj = tmp.path().join("project");
        std::fs::create_dir_all(proj.join("dist")).unwrap();
        std::fs::write(
            proj.join("environment.yml"),
            "name: demo\nchannels: [conda-forge]\ndependencies: [python]\n",
        )
        .unwrap();
        std::fs::write(proj.join("run-test.sh"), script).unwrap();
        std::fs::write(proj.join("data.txt"), "project data\n").unwrap();
        let archive = write_archive(&proj.join("dist"), name, files);
        Self { tmp, archive }
    }

    pub fn dir(&self) -> PathBuf {
        self.tmp.path().join("project")
    }

    pub fn options(&self, isolation: Isolation) -> TestOptions {
        TestOptions {
            archive: self.archive.clone(),
            script: self.dir().join("run-test.sh"),
            project_dir: self.dir(),
            environment_file: Some(self.dir().join("environment.yml")),
            environment_name: "demo".into(),
            dest_prefix: "/opt/envship/demo".into(),
            isolation,
            rootfs: None,
            rootfs_cache_dir: Some(self.tmp.path().join("cache")),
            timeout: Duration::from_secs(60),
            log_path: self.dir().join("dist/demo.test.log"),
            extra_env: vec![],
        }
    }
}

/// Runs and collects the streamed lines.
pub fn run(opts: &TestOptions) -> (envship_sandbox::TestOutcome, Vec<String>) {
    let lines = Mutex::new(Vec::new());
    let outcome =
        envship_sandbox::run_test_streaming(opts, &envship_sandbox::NoProgress, &mut |l| {
            eprintln!("  test│ {l}");
            lines.lock().unwrap().push(l.to_string());
        })
        .unwrap_or_else(|e| panic!("run_test: {:?}", miette::Report::new(e)));
    (outcome, lines.into_inner().unwrap())
}

/// Namespaces usable here? Otherwise print why and skip.
pub fn namespaces_or_skip(test: &str) -> bool {
    match envship_sandbox::namespaces_available() {
        Ok(()) => true,
        Err(e) => {
            envship_test_support::skip(test, format!("user namespaces unavailable: {e}"));
            false
        }
    }
}
