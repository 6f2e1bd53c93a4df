//! The Python environment of the build stage (a real CPython, pip, two wheels from the pip
//! section) shipped end to end: lock → build → audit → pack → test, with the test running the
//! unpacked archive at a destination prefix that differs from the build prefix; its SBOM names
//! every package and validates.
use crate::envship;

#[test]
fn python_environment_ships_and_runs_at_the_destination_prefix() {
    if let Some(why) = envship_test_support::python::python_unavailable() {
        envship_test_support::skip(
            "python_environment_ships_and_runs_at_the_destination_prefix",
            why,
        );
        return;
    }
    if let Err(e) = envship_sandbox::namespaces_available() {
        envship_test_support::skip(
            "python_environment_ships_and_runs_at_the_destination_prefix",
            format!("user namespaces unavailable: {e}"),
        );
        return;
    }
    let channel = envship_test_support::python::python_channel();
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("pyship");
    fs_err::create_dir_all(&project).unwrap();
    fs_err::write(
        project.join("environment.yml"),
        format!(
            "name: pyship\nchannels:\n  - {}\n  - nodefaults\ndependencies:\n  - python 3.11.*\n  - pip\n  - pip:\n    - psutil==6.1.1\n    - markupsafe==2.1.5\nvariables:\n  PYSHIP_GREETING: hello\n",
            channel.url()
        ),
    )
    .unwrap();
    // Debian's python3.11 needs GLIBC_2.35: of the built-in targets only `host` can run it.
    let dest = "/opt/envship/pyship";
    fs_err::write(
        project.join("envship.toml"),
        format!("target = \"host\"\ndest-prefix = \"{dest}\"\n"),
    )
    .unwrap();
    let build_prefix = project.join(".envship/build/pyship");
    fs_err::write(
        project.join("run-test.sh"),
        format!(
            r#"set -euo pipefail
test "$CONDA_PREFIX" = "{dest}"
test "$PYSHIP_GREETING" = hello
python - <<'PY'
import sys, psutil, markupsafe
assert sys.prefix == "{dest}", sys.prefix
assert markupsafe.escape("<b>") == "&lt;b&gt;"
print("python", sys.version.split()[0], "psutil", psutil.__version__, "markupsafe", markupsafe.__version__, "at", sys.prefix)
PY
pip --version
if grep -rlF "{build}" "$CONDA_PREFIX"; then
    echo "files above still name the build prefix" >&2
    exit 1
fi
"#,
            build = build_prefix.display()
        ),
    )
    .unwrap();

    let out = envship()
        .current_dir(&project)
        .args([
            "ship",
            "--offline",
            "--json",
            "--version",
            "1.0",
            "--no-index",
            "--find-links",
        ])
        .arg(envship_test_support::fixture("wheels"))
        .arg("--cache-dir")
        .arg(dir.path().join("cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = project.join("dist/pyship-1.0-host-linux-64.audit.json");
    let report = fs_err::read_to_string(&report).unwrap_or_default();
    let log = project.join("dist/pyship-1.0-host-linux-64.test.log");
    let log = fs_err::read_to_string(&log).unwrap_or_default();
    assert!(
        out.status.success(),
        "ship failed:\n{stdout}\n{stderr}\naudit: {report}\ntest log:\n{log}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["passed"], true, "{json:#}");
    assert!(build_prefix.join("bin/python3.11").exists());

    let manifest: serde_json::Value = serde_json::from_slice(
        &fs_err::read(project.join("dist/pyship-1.0-host-linux-64.manifest.json")).unwrap(),
    )
    .unwrap();
    // The archive stays relocatable (conda-unpack); the test ran it at the destination.
    assert_eq!(manifest["test"]["dest_prefix"], dest, "{manifest:#}");
    assert_eq!(manifest["test"]["passed"], true, "{manifest:#}");
    let pip = manifest["pip_packages"].to_string().to_lowercase();
    assert!(
        pip.contains("psutil") && pip.contains("markupsafe"),
        "{pip}"
    );
    // The SBOM beside the archive names every conda record of the build prefix and both pip
    // wheels (pip's own dist-info belongs to the conda `pip` record), and validates.
    let sbom_text =
        fs_err::read_to_string(project.join("dist/pyship-1.0-host-linux-64.cdx.json")).unwrap();
    let sbom: serde_json::Value = serde_json::from_str(&sbom_text).unwrap();
    assert_eq!(manifest["sbom"], "pyship-1.0-host-linux-64.cdx.json");
    let purls: Vec<&str> = sbom["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["purl"].as_str().unwrap())
        .collect();
    let records = fs_err::read_dir(build_prefix.join("conda-meta"))
        .unwrap()
        .filter(|e| {
            let path = e.as_ref().unwrap().path();
            path.extension().is_some_and(|x| x == "json")
        })
        .count();
    let conda = purls.iter().filter(|p| p.starts_with("pkg:conda/")).count();
    assert_eq!(conda, records, "{purls:#?}");
    let pypi: Vec<&str> = purls
        .iter()
        .copied()
        .filter(|p| p.starts_with("pkg:pypi/"))
        .collect();
    assert_eq!(
        pypi,
        ["pkg:pypi/markupsafe@2.1.5", "pkg:pypi/psutil@6.1.1"],
        "{purls:#?}"
    );
    assert_eq!(purls.len(), conda + pypi.len());
    match envship_test_support::cyclonedx::validator() {
        Ok(python) => {
            if let Err(e) = envship_test_support::cyclonedx::validate(&python, &sbom_text) {
                panic!("the SBOM does not validate against CycloneDX 1.6: {e}\n{sbom_text}");
            }
        }
        Err(why) => envship_test_support::skip(
            "python_environment_ships_and_runs_at_the_destination_prefix",
            why,
        ),
    }
    // The test's own output (saved next to the archive) shows it ran at the destination.
    let log =
        fs_err::read_to_string(project.join("dist/pyship-1.0-host-linux-64.test.log")).unwrap();
    assert!(
        log.contains(&format!("psutil 6.1.1 markupsafe 2.1.5 at {dest}")),
        "{log}"
    );
}
