//! pip beside conda, as a user of conda-pack meets it: pip asked to replace a distribution a
//! conda package installed (refused before anything changes, allowed on request with the
//! records kept true), and pip's distributions where a Debian-built interpreter puts them
//! (`local/lib/python3.11/dist-packages`), seen by the no-op check, the manifest and the SBOM.

use std::path::{Path, PathBuf};

use envship_test_support::{fixture, python, ArchiveFormat, LocalChannel, PackageBuilder};

use crate::envship;

const SITE: &str = "lib/python3.11/site-packages";

/// A conda `psutil` 5.9.0 as conda-forge's noarch builds lay one out: the import package and its
/// `.dist-info` with `INSTALLER` = conda and a RECORD pip can uninstall from.
fn conda_psutil() -> PackageBuilder {
    let dist = "site-packages/psutil-5.9.0.dist-info";
    PackageBuilder::new("psutil", "5.9.0")
        .build("pyh0_envship", 0)
        .noarch_python()
        .depends("python >=3.7")
        .file(
            "site-packages/psutil/__init__.py",
            "__version__ = '5.9.0'\n",
        )
        .file(
            &format!("{dist}/METADATA"),
            "Metadata-Version: 2.1\nName: psutil\nVersion: 5.9.0\n\n",
        )
        .file(&format!("{dist}/INSTALLER"), "conda\n")
        .file(
            &format!("{dist}/RECORD"),
            "psutil/__init__.py,,\npsutil-5.9.0.dist-info/METADATA,,\n\
             psutil-5.9.0.dist-info/INSTALLER,,\npsutil-5.9.0.dist-info/RECORD,,\n",
        )
}

fn project(dir: &Path, channel: &LocalChannel, conda: &str, pip: &str) -> PathBuf {
    let project = dir.join("proj");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("environment.yml"),
        format!(
            "name: proj\nchannels:\n  - {}\n  - nodefaults\ndependencies:\n  - python 3.11.*\n  - pip\n{conda}  - pip:\n    - {pip}\n",
            channel.url()
        ),
    )
    .unwrap();
    // Debian's python3.11 needs GLIBC_2.35: of the built-in targets only `host` can run it.
    fs_err::write(project.join("envship.toml"), "target = \"host\"\n").unwrap();
    project
}

fn run(project: &Path, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let out = envship()
        .current_dir(project)
        .args(args)
        .args(["--offline", "--no-index", "--find-links"])
        .arg(fixture("wheels"))
        .arg("--cache-dir")
        .arg(dir.join("cache"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pack(project: &Path, prefix: &Path) -> (i32, String) {
    let out = envship()
        .current_dir(project)
        .args(["pack", "--version", "1", "--prefix"])
        .arg(prefix)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The text without whitespace and miette's frame: miette wraps messages at 80 columns, also
/// inside words at a `-`.
fn unwrapped(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace() && *c != '│')
        .collect()
}

fn skip_without_python(test: &str) -> bool {
    if let Some(why) = python::python_unavailable() {
        envship_test_support::skip(test, why);
        return true;
    }
    false
}

#[test]
fn pip_replacing_a_conda_distribution_is_refused_first_and_allowed_on_request() {
    if skip_without_python(
        "pip_replacing_a_conda_distribution_is_refused_first_and_allowed_on_request",
    ) {
        return;
    }
    let channel = python::python_channel();
    channel.add(&conda_psutil(), ArchiveFormat::Conda);
    channel.index();
    let dir = tempfile::tempdir().unwrap();
    let project = project(dir.path(), &channel, "  - psutil 5.9.0\n", "psutil==6.1.1");
    let prefix = project.join(".envship/build/proj");

    let (code, stdout, stderr) = run(&project, dir.path(), &["build"]);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(
        unwrapped(&stderr).contains(&unwrapped(
            "pip would replace psutil 5.9.0 of conda package psutil-5.9.0-pyh0_envship with psutil 6.1.1"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("--allow-pip-overrides"), "{stderr}");
    assert!(
        stderr.contains("environment.yml"),
        "the entry is shown: {stderr}"
    );
    // Refused before pip touched anything: conda's files are as conda linked them.
    assert_eq!(
        fs_err::read_to_string(prefix.join(SITE).join("psutil/__init__.py")).unwrap(),
        "__version__ = '5.9.0'\n"
    );
    assert!(prefix
        .join(SITE)
        .join("psutil-5.9.0.dist-info/METADATA")
        .exists());

    // Allowed: pip replaces it, as conda would, with a warning; the records match the disk, so
    // pack (conda-pack's "deleted or overwritten" complaint) has nothing to object to.
    let (code, stdout, stderr) = run(&project, dir.path(), &["build", "--allow-pip-overrides"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("warning: pip would replace psutil 5.9.0 of conda package"),
        "{stdout}"
    );
    assert!(prefix
        .join(SITE)
        .join("psutil-6.1.1.dist-info/METADATA")
        .exists());
    assert!(!prefix.join(SITE).join("psutil-5.9.0.dist-info").exists());
    let record =
        fs_err::read_to_string(prefix.join("conda-meta/psutil-5.9.0-pyh0_envship.json")).unwrap();
    assert!(
        !record.contains("psutil-5.9.0.dist-info/METADATA"),
        "{record}"
    );
    assert!(!record.contains("psutil/__init__.py"), "{record}");
    let (code, text) = pack(&project, &prefix);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(" conda, 1 pip)"), "{text}");

    // The same request again is a no-op (pip does not run, the override is still reported).
    let (code, stdout, stderr) = run(&project, dir.path(), &["build", "--allow-pip-overrides"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("up to date:"), "{stdout}");
}

#[test]
fn pip_overwriting_a_conda_file_fails_the_build_and_pack_refuses_the_prefix() {
    let test = "pip_overwriting_a_conda_file_fails_the_build_and_pack_refuses_the_prefix";
    if skip_without_python(test) {
        return;
    }
    // A conda package that ships the `psutil` import package under another distribution's
    // name: pip's psutil is no replacement of it, yet writes over its file.
    let shim = PackageBuilder::new("psutil-shim", "1.0")
        .build("pyh0_envship", 0)
        .noarch_python()
        .depends("python >=3.7")
        .file("site-packages/psutil/__init__.py", "# the shim's psutil\n");
    let channel = python::python_channel();
    channel.add(&shim, ArchiveFormat::Conda);
    channel.index();
    let dir = tempfile::tempdir().unwrap();
    let project = project(dir.path(), &channel, "  - psutil-shim\n", "psutil==6.1.1");
    let prefix = project.join(".envship/build/proj");
    let expected = format!(
        "{SITE}/psutil/__init__.py of conda package psutil-shim-1.0-pyh0_envship was overwritten by pip"
    );
    for attempt in ["first build", "the same build again"] {
        let (code, stdout, stderr) = run(&project, dir.path(), &["build"]);
        assert_eq!(code, 2, "{attempt}: {stdout}\n{stderr}");
        assert!(
            unwrapped(&stderr).contains(&unwrapped(&expected)),
            "{attempt}: {stderr}"
        );
        // Nothing is packed from that prefix.
        let (code, text) = pack(&project, &prefix);
        assert_eq!(code, 2, "{attempt}: {text}");
        assert!(
            text.contains("psutil-shim-1.0-pyh0_envship"),
            "{attempt}: {text}"
        );
        assert!(!project.join("dist/proj-1-host-linux-64.tar.gz").exists());
    }
}

#[test]
fn pip_distributions_where_a_debian_python_puts_them_are_seen() {
    if skip_without_python("pip_distributions_where_a_debian_python_puts_them_are_seen") {
        return;
    }
    let channel = python::debian_scheme_python_channel();
    let dir = tempfile::tempdir().unwrap();
    let project = project(dir.path(), &channel, "", "psutil==6.1.1");
    let prefix = project.join(".envship/build/proj");

    let (code, stdout, stderr) = run(&project, dir.path(), &["build"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let dist = "local/lib/python3.11/dist-packages/psutil-6.1.1.dist-info";
    assert!(
        prefix.join(dist).join("METADATA").exists(),
        "pip used Debian's scheme"
    );
    let site_dirs = fs_err::read_to_string(prefix.join("conda-meta/envship-site-dirs")).unwrap();
    assert!(
        site_dirs.contains("local/lib/python3.11/dist-packages"),
        "{site_dirs}"
    );

    // The no-op check finds the distribution: pip does not run again.
    let (code, stdout, stderr) = run(&project, dir.path(), &["build"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("up to date:"), "{stdout}");
    // Its time, for the record (bench/install/run.sh compares it with the peers).
    eprintln!(
        "no-op rebuild: {}",
        stdout.lines().last().unwrap_or_default()
    );

    // The manifest and the SBOM list it.
    let (code, text) = pack(&project, &prefix);
    assert_eq!(code, 0, "{text}");
    let manifest: serde_json::Value = serde_json::from_slice(
        &fs_err::read(project.join("dist/proj-1-host-linux-64.manifest.json")).unwrap(),
    )
    .unwrap();
    let pip = &manifest["pip_packages"];
    assert!(
        pip.as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "psutil" && p["dist_info"] == dist),
        "{pip:#}"
    );
    let sbom = fs_err::read_to_string(project.join("dist/proj-1-host-linux-64.cdx.json")).unwrap();
    assert!(sbom.contains("pkg:pypi/psutil@6.1.1"), "{sbom}");
}
