//! Hostile archives, built here in code, against the three ways an archive gets unpacked in
//! production: `envship unpack`, `envship deploy`, and `tar -x` followed by the archive's own
//! `bin/conda-unpack` (with its python and with its perl relocator). Each one must be refused or
//! contained: nothing outside DEST is created or changed, and a refusal leaves DEST as it was.
use envship_test_support::Deadline;

use std::{
    collections::BTreeMap,
    fs,
    io::Write,
    path::{Path, PathBuf},
    process::Command,
};

use envship_pack::{Manifest, ManifestTarget, RelocationSummary};
use sha2::Digest;

use crate::envship;

/// The prefix the hostile relocation lists claim; the victim outside DEST contains it, so a
/// relocator that rewrites the victim changes it.
const OLD_PREFIX: &str = "/opt/old-prefix-of-the-build";

use envship_test_support::raw_tar::{write_tar_gz as write_tar, RawEntry as E};

fn b(s: impl AsRef<str>) -> Vec<u8> {
    s.as_ref().as_bytes().to_vec()
}

fn file(name: impl AsRef<str>, data: impl AsRef<[u8]>) -> E {
    E::File(b(name), data.as_ref().to_vec(), 0o644)
}

/// A working `bin/conda-unpack` and a relocation list: what makes `tar -x` + `conda-unpack` run.
fn relocatable(list_lines: &[String]) -> Vec<E> {
    let mut list = format!("envship-relocate 1\nprefix {OLD_PREFIX}\n");
    for l in list_lines {
        list.push_str(l);
        list.push('\n');
    }
    vec![
        E::Dir(b("bin")),
        E::File(
            b("bin/conda-unpack"),
            envship_pack::scripts::conda_unpack(),
            0o755,
        ),
        // The environment's python, as conda-unpack looks for it (an absolute link is fine).
        E::Symlink(b("bin/python"), b("/usr/bin/python3")),
        E::Dir(b("share")),
        E::Dir(b("share/envship")),
        file("share/envship/relocate.txt", list),
        file("etc/ok.txt", format!("prefix={OLD_PREFIX}\n")),
    ]
}

fn write_zip(path: &Path, entries: &[E]) {
    let f = fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    for e in entries {
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        match e {
            E::Dir(n) => z.add_directory(String::from_utf8(n.clone()).unwrap(), opts),
            E::File(n, d, mode) => {
                z.start_file(
                    String::from_utf8(n.clone()).unwrap(),
                    opts.unix_permissions(*mode),
                )
                .unwrap();
                z.write_all(d).map_err(zip::result::ZipError::Io)
            }
            E::Symlink(n, t) => z.add_symlink(
                String::from_utf8(n.clone()).unwrap(),
                String::from_utf8(t.clone()).unwrap(),
                opts,
            ),
            _ => panic!("zip has no such entry"),
        }
        .unwrap();
    }
    z.finish().unwrap();
}

/// The sidecars `envship deploy` needs: `.sha256` and `.manifest.json`.
fn write_sidecars(archive: &Path, stem: &str, format: &str) {
    let data = fs::read(archive).unwrap();
    let sum = hex::encode(sha2::Sha256::digest(&data));
    let name = archive.file_name().unwrap().to_str().unwrap();
    let dir = archive.parent().unwrap();
    fs::write(
        dir.join(format!("{name}.sha256")),
        format!("{sum}  {name}\n"),
    )
    .unwrap();
    let m = Manifest {
        manifest_version: 1,
        envship_version: "0.1.0".into(),
        name: "hostile".into(),
        version: "1.0".into(),
        target: ManifestTarget {
            name: "host".into(),
            subdir: "linux-64".into(),
            glibc: None,
        },
        archive: name.into(),
        format: format.into(),
        sha256: Some(sum),
        arcroot: None,
        build_prefix: OLD_PREFIX.into(),
        dest_prefix: None,
        recorded_prefix: OLD_PREFIX.into(),
        source_date_epoch: 0,
        file_count: 0,
        bytes: 0,
        relocation: RelocationSummary::default(),
        conda_packages: vec![],
        pip_packages: vec![],
        sbom: None,
        block_index: None,
        evidence: None,
        env_vars: BTreeMap::new(),
        audit: None,
        test: None,
        extra: BTreeMap::new(),
    };
    m.write(&dir.join(format!("{stem}.manifest.json"))).unwrap();
}

/// Every file, dir and link under `root` (but the skipped top-level names) with its content or
/// target: what must not change.
fn snapshot(root: &Path, skip: &[&str]) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e.unwrap();
        let rel = e.path().strip_prefix(root).unwrap().to_path_buf();
        if rel
            .components()
            .next()
            .is_some_and(|c| skip.iter().any(|s| c.as_os_str() == *s))
        {
            continue;
        }
        let ft = e.file_type();
        let what = if ft.is_symlink() {
            format!("-> {}", fs::read_link(e.path()).unwrap().display())
        } else if ft.is_file() {
            String::from_utf8_lossy(&fs::read(e.path()).unwrap()).into_owned()
        } else {
            "dir".into()
        };
        out.insert(rel, what);
    }
    out
}

/// A work dir with `outside/victim` (holding the old prefix) and `outside/dir/`.
struct Stage {
    work: tempfile::TempDir,
    before: BTreeMap<PathBuf, String>,
}

/// DEST's tree record (`.dest.tree.json`) is written beside DEST by design; it records what was
/// unpacked and is checked below (present only when the unpack succeeded).
const WORK_SKIP: &[&str] = &["dest", ".dest.tree.json", "root", "tardest", "arch"];

impl Stage {
    fn new() -> Self {
        let work = tempfile::tempdir().unwrap();
        let out = work.path().join("outside");
        fs::create_dir_all(out.join("dir")).unwrap();
        fs::write(out.join("victim"), format!("PATH={OLD_PREFIX}/bin\n")).unwrap();
        fs::create_dir_all(work.path().join("arch")).unwrap();
        let before = snapshot(work.path(), WORK_SKIP);
        Self { work, before }
    }

    fn outside(&self) -> String {
        self.work.path().join("outside").display().to_string()
    }

    #[track_caller]
    fn assert_outside_unchanged(&self, who: &str, case: &str) {
        let after = snapshot(self.work.path(), WORK_SKIP);
        assert_eq!(
            self.before, after,
            "{case}: {who} changed something outside DEST"
        );
    }
}

/// What each unpacker did with an archive (all of them contained it).
#[derive(Debug, Default)]
struct Outcomes {
    unpack_ok: bool,
    deploy_ok: bool,
    /// `(relocator, succeeded, stderr)` of `bin/conda-unpack` after `tar -x`.
    conda_unpack: Vec<(&'static str, bool, String)>,
}

/// Run one hostile archive through the three unpackers.
#[track_caller]
fn contained(case: &str, entries: &[E], zip: bool) -> Outcomes {
    let mut outcomes = Outcomes::default();
    let stage = Stage::new();
    let w = stage.work.path();
    let (ext, format) = if zip {
        ("zip", "zip")
    } else {
        ("tar.gz", "tar.gz")
    };
    let stem = "hostile-1.0-linux-64";
    let archive = w.join("arch").join(format!("{stem}.{ext}"));
    if zip {
        write_zip(&archive, entries);
    } else {
        write_tar(&archive, entries);
    }
    write_sidecars(&archive, stem, format);

    // envship unpack: refused (exit 2, DEST not created) or contained.
    let dest = w.join("dest");
    let out = envship()
        .arg("unpack")
        .arg(&archive)
        .arg(&dest)
        .output()
        .unwrap();
    stage.assert_outside_unchanged("envship unpack", case);
    outcomes.unpack_ok = out.status.success();
    assert_eq!(
        w.join(".dest.tree.json").is_file(),
        out.status.success(),
        "{case}: the tree record is written exactly when the unpack succeeded"
    );
    if !out.status.success() {
        assert_eq!(
            out.status.code(),
            Some(2),
            "{case}: unpack exit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!dest.exists(), "{case}: a refused unpack left {dest:?}");
    }

    // envship deploy: refused (no partial dir, no current) or contained.
    let root = w.join("root");
    let out = envship()
        .arg("deploy")
        .arg(&archive)
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    stage.assert_outside_unchanged("envship deploy", case);
    outcomes.deploy_ok = out.status.success();
    if !out.status.success() {
        let env_dir = root.join("hostile");
        let left: Vec<_> = fs::read_dir(&env_dir)
            .map(|rd| rd.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "{case}: a refused deploy left {left:?} in {env_dir:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    if zip {
        return outcomes;
    }
    // tar -x, then the archive's own conda-unpack with each relocator.
    for relocator in ["python", "perl"] {
        let tardest = w.join("tardest");
        let _ = fs::remove_dir_all(&tardest);
        fs::create_dir_all(&tardest).unwrap();
        let _ = Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&tardest)
            .output_in_time()
            .unwrap();
        stage.assert_outside_unchanged("tar -x", case);
        let script = tardest.join("bin/conda-unpack");
        if fs::symlink_metadata(&script).is_ok_and(|m| m.is_file()) {
            let out = Command::new("sh")
                .arg(&script)
                .env("ENVSHIP_RELOCATOR", relocator)
                .env("PATH", "/usr/bin:/bin")
                .output_in_time()
                .unwrap();
            stage.assert_outside_unchanged(&format!("conda-unpack ({relocator})"), case);
            outcomes.conda_unpack.push((
                relocator,
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ));
        }
    }
    outcomes
}

fn have_tools() -> bool {
    for tool in ["tar", "perl", "python3"] {
        if Command::new(tool)
            .arg("--version")
            .output_in_time()
            .is_err()
        {
            envship_test_support::skip("hostile archives", format!("{tool} is not installed"));
            return false;
        }
    }
    true
}

#[test]
fn traversal_and_absolute_entries() {
    if !have_tools() {
        return;
    }
    contained("dotdot file", &[file("../outside/evil", "x")], false);
    contained("deep dotdot", &[file("a/../../outside/evil", "x")], false);
    let abs = Stage::new().outside();
    contained("absolute file", &[file(format!("{abs}/evil"), "x")], false);
}

#[test]
fn writes_through_symlinks() {
    if !have_tools() {
        return;
    }
    let stage = Stage::new();
    let outside = stage.outside();
    // Absolute and climbing symlinks, then a file below them.
    contained(
        "write through absolute symlink",
        &[
            E::Symlink(b("l"), b(&outside)),
            file("l/evil", "x"),
            file("l/victim", "overwritten"),
        ],
        false,
    );
    contained(
        "write through climbing symlink",
        &[
            E::Symlink(b("l"), b("../outside")),
            file("l/victim", "overwritten"),
        ],
        false,
    );
    // A symlink to the victim itself, then a regular file of the same name.
    contained(
        "replace a symlink to a file",
        &[
            E::Symlink(b("v"), b(format!("{outside}/victim"))),
            file("v", "overwritten"),
        ],
        false,
    );
}

#[test]
fn hardlinks_and_devices() {
    if !have_tools() {
        return;
    }
    let outside = Stage::new().outside();
    contained(
        "hardlink outside (absolute)",
        &[E::Hardlink(b("h"), b(format!("{outside}/victim")))],
        false,
    );
    contained(
        "hardlink outside (dotdot) then write",
        &[
            E::Hardlink(b("h"), b("../outside/victim")),
            file("h", "overwritten"),
        ],
        false,
    );
    contained("char device", &[E::CharDevice(b("dev-null"))], false);
    contained("fifo", &[E::Fifo(b("fifo"))], false);
}

#[test]
fn zip_slip() {
    if !have_tools() {
        return;
    }
    let outside = Stage::new().outside();
    contained("zip dotdot", &[file("../outside/evil", "x")], true);
    contained(
        "zip absolute",
        &[file(format!("{outside}/evil"), "x")],
        true,
    );
    contained(
        "zip symlink then write",
        &[E::Symlink(b("l"), b(&outside)), file("l/evil", "x")],
        true,
    );
}

#[test]
fn relocation_lists_that_point_outside() {
    if !have_tools() {
        return;
    }
    let outside = Stage::new().outside();
    // Every relocator refuses these lists, before writing anything.
    let refused = |case: &str, entries: &[E], why: &str| {
        let o = contained(case, entries, false);
        assert!(!o.unpack_ok && !o.deploy_ok, "{case}: {o:?}");
        assert_eq!(o.conda_unpack.len(), 2, "{case}: conda-unpack did not run");
        for (relocator, ok, stderr) in &o.conda_unpack {
            assert!(
                !ok && stderr.contains(why),
                "{case} ({relocator}): {stderr}"
            );
        }
    };
    refused(
        "list: absolute path",
        &relocatable(&[format!("t 0 {outside}/victim")]),
        "absolute path",
    );
    refused(
        "list: dotdot path",
        &relocatable(&["t 0 ../outside/victim".into()]),
        "path contains `..`",
    );
    let mut entries = relocatable(&["t 0 lnk/victim".into()]);
    entries.push(E::Symlink(b("lnk"), b(&outside)));
    refused(
        "list: through a symlinked dir",
        &entries,
        "a symlink is on its way",
    );
    let mut entries = relocatable(&["b 255 vlink".into()]);
    entries.push(E::Symlink(b("vlink"), b(format!("{outside}/victim"))));
    refused(
        "list: a symlink to a file",
        &entries,
        "a symlink is on its way",
    );
    // The list's temp file planted as a link to the victim: relocation works, the victim stays.
    let mut entries = relocatable(&["t 0 etc/ok.txt".into()]);
    entries.push(E::Symlink(
        b("share/envship/relocate.txt.tmp"),
        b(format!("{outside}/victim")),
    ));
    let o = contained("list: planted temp file", &entries, false);
    assert!(o.unpack_ok && o.deploy_ok, "{o:?}");
    assert!(o.conda_unpack.iter().all(|(_, ok, _)| *ok), "{o:?}");
}

/// The lists above, read by envship's own relocator: refused with the line named.
#[test]
fn envship_unpack_names_the_bad_line() {
    let stage = Stage::new();
    let w = stage.work.path();
    let archive = w.join("arch/x.tar.gz");
    write_tar(&archive, &relocatable(&["t 0 ../outside/victim".into()]));
    let out = envship()
        .arg("unpack")
        .arg(&archive)
        .arg(w.join("dest"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("relocate.txt, line")
            && err.contains("3: ../outside/victim: path contains `..`"),
        "{err}"
    );
    assert!(!w.join("dest").exists());
}

/// What `envship pack` writes, `envship unpack` and `envship deploy` accept: a prefix with
/// absolute symlinks and relative ones that leave it (as Debian's python and copies of /usr
/// have) packs, unpacks and deploys, with the links kept as they were.
#[test]
fn absolute_and_escaping_symlinks_pack_unpack_and_deploy() {
    let dir = crate::example("hello");
    let cache = dir.path().join(".cache");
    for stage in ["lock", "build"] {
        envship()
            .current_dir(dir.path())
            .args([stage, "--offline", "--cache-dir"])
            .arg(&cache)
            .assert()
            .success();
    }
    let prefix = dir.path().join(".envship/build/hello-envship");
    let links = [
        ("etc/hosts-of-the-host", "/etc/hosts"),
        ("share/up-and-out", "../../../../.."),
        ("lib/sitecustomize.py", "/etc/python3.11/sitecustomize.py"),
    ];
    for (link, target) in links {
        std::os::unix::fs::symlink(target, prefix.join(link)).unwrap();
    }
    envship()
        .current_dir(dir.path())
        .args(["pack", "--version", "1", "--prefix"])
        .arg(&prefix)
        .assert()
        .success();
    let archive = dir
        .path()
        .join("dist/hello-envship-1-lcls-rhel6-linux-64.tar.gz");
    let dest = dir.path().join("unpacked");
    envship()
        .arg("unpack")
        .arg(&archive)
        .arg(&dest)
        .assert()
        .success();
    let root = dir.path().join("root");
    envship()
        .arg("deploy")
        .arg(&archive)
        .arg("--root")
        .arg(&root)
        .assert()
        .success();
    for env in [dest, root.join("hello-envship/1")] {
        for (link, target) in links {
            assert_eq!(
                fs::read_link(env.join(link)).unwrap(),
                Path::new(target),
                "{link} in {env:?}"
            );
        }
        let out = Command::new(env.join("bin/hello"))
            .output_in_time()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}
