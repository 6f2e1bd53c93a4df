//! The CycloneDX SBOM pack writes beside every archive: it names every conda record and every
//! pip distribution of the prefix (counted here from the prefix itself), it is reproducible,
//! and it validates against the official CycloneDX 1.6 schema with cyclonedx-python-lib's
//! strict validator (a venv `.ci/run` makes; `ENVSHIP_TEST_CYCLONEDX_VENV` names it).
use envship_test_support::Deadline;

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use envship_pack::{pack, Format, ManifestTarget, PackOptions, Sidecar};
use envship_test_support::{
    cyclonedx::{validate, validator},
    fixture, python, workspace_root,
};
use serde_json::Value;

use crate::support::install_channel;

const MARKUPSAFE_WHEEL: &str =
    "wheels/MarkupSafe-2.1.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl";

fn opts(prefix: &Path, out: &Path, epoch: Option<u64>) -> PackOptions {
    PackOptions {
        prefix: prefix.to_path_buf(),
        output: Some(out.to_path_buf()),
        name: "sbom-env".into(),
        version: "1.2.3".into(),
        target: ManifestTarget {
            name: "lcls-rhel6".into(),
            subdir: "linux-64".into(),
            glibc: Some("2.12".into()),
        },
        format: Format::TarGz,
        jobs: 1,
        source_date_epoch: epoch,
        ..Default::default()
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output_in_time().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the prefix itself holds: conda records (`name` → (version, build, sha256, md5)) and the
/// distributions in site-packages no conda record lists (normalized name → version).
struct Inventory {
    conda: BTreeMap<String, (String, String, Option<String>, Option<String>)>,
    pip: BTreeMap<String, String>,
    conda_owned_dist_infos: usize,
}

fn normalized(name: &str) -> String {
    name.to_ascii_lowercase().replace(['_', '.'], "-")
}

fn inventory(prefix: &Path) -> Inventory {
    let mut conda = BTreeMap::new();
    let mut owned = BTreeSet::new();
    for e in fs::read_dir(prefix.join("conda-meta")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let r: Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        let s = |k: &str| r[k].as_str().map(String::from);
        for f in r["files"].as_array().unwrap() {
            owned.insert(f.as_str().unwrap().to_string());
        }
        conda.insert(
            s("name").unwrap(),
            (
                s("version").unwrap(),
                s("build").unwrap(),
                s("sha256"),
                s("md5"),
            ),
        );
    }
    let (mut pip, mut conda_owned_dist_infos) = (BTreeMap::new(), 0);
    for lib in fs::read_dir(prefix.join("lib")).unwrap() {
        let site = lib.unwrap().path().join("site-packages");
        let Ok(dists) = fs::read_dir(&site) else {
            continue;
        };
        for d in dists {
            let d = d.unwrap().path();
            if d.extension().is_none_or(|x| x != "dist-info") {
                continue;
            }
            let rel = d
                .strip_prefix(prefix)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            if owned.contains(&format!("{rel}/METADATA")) {
                conda_owned_dist_infos += 1;
                continue;
            }
            let meta = fs::read_to_string(d.join("METADATA")).unwrap();
            let field = |k: &str| {
                meta.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                    .unwrap()
                    .to_string()
            };
            pip.insert(normalized(&field("Name")), field("Version"));
        }
    }
    Inventory {
        conda,
        pip,
        conda_owned_dist_infos,
    }
}

fn components<'a>(bom: &'a Value, purl_type: &str) -> Vec<&'a Value> {
    bom["components"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["purl"].as_str().unwrap().starts_with(purl_type))
        .collect()
}

fn hash<'a>(c: &'a Value, alg: &str) -> Option<&'a str> {
    c["hashes"]
        .as_array()?
        .iter()
        .find(|h| h["alg"] == alg)
        .and_then(|h| h["content"].as_str())
}

#[test]
fn python_environment_sbom_names_every_package_and_validates() {
    if let Some(why) = python::python_unavailable() {
        envship_test_support::skip(
            "python_environment_sbom_names_every_package_and_validates",
            why,
        );
        return;
    }
    let channel = python::python_channel();
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("env");
    install_channel(
        &prefix,
        &tmp.path().join("pkgs"),
        &channel.dir,
        channel.url().as_str(),
    );
    // As `envship build`'s pip section installs (--find-links: pip records no wheel hash), and
    // one wheel by path (pip records its sha256 in direct_url.json).
    let python = prefix.join("bin/python");
    let pip = ["-m", "pip", "install", "-q", "--no-index", "--no-deps"];
    run(Command::new(&python)
        .args(pip)
        .arg("--find-links")
        .arg(fixture("wheels"))
        .arg("psutil==6.1.1"));
    run(Command::new(&python)
        .args(pip)
        .arg(fixture(MARKUPSAFE_WHEEL)));

    let archive = tmp.path().join("dist/sbom-env.tar.gz");
    let out = pack(&opts(&prefix, &archive, None), &envship_spec::NoProgress).unwrap();
    assert_eq!(out.sbom_path, Sidecar::Sbom.path_for(&archive));
    assert_eq!(out.sbom_path, tmp.path().join("dist/sbom-env.cdx.json"));
    assert_eq!(out.manifest.sbom.as_deref(), Some("sbom-env.cdx.json"));
    let text = fs::read_to_string(&out.sbom_path).unwrap();
    let bom: Value = serde_json::from_str(&text).unwrap();

    // Every conda record, with its hashes; every pip distribution, none of conda's twice.
    let inv = inventory(&prefix);
    assert!(inv.conda.contains_key("python") && inv.conda.contains_key("pip"));
    assert!(
        inv.conda_owned_dist_infos >= 1,
        "pip's own dist-info is conda's"
    );
    assert_eq!(
        inv.pip.keys().map(String::as_str).collect::<Vec<_>>(),
        ["markupsafe", "psutil"]
    );
    let conda = components(&bom, "pkg:conda/");
    assert_eq!(conda.len(), inv.conda.len());
    assert_eq!(out.sbom_counts.conda, inv.conda.len());
    for c in &conda {
        let name = c["name"].as_str().unwrap();
        let (version, build, sha256, md5) = &inv.conda[name];
        assert_eq!(c["version"], version.as_str());
        let purl = c["purl"].as_str().unwrap();
        assert!(
            purl.starts_with(&format!(
                "pkg:conda/{name}@{version}?build={build}&channel=file:"
            )),
            "{purl}"
        );
        assert!(purl.ends_with("&subdir=linux-64") || purl.ends_with("&subdir=noarch"));
        assert!(
            sha256.is_some() && md5.is_some(),
            "the channel's repodata has both"
        );
        assert_eq!(hash(c, "SHA-256"), sha256.as_deref());
        assert_eq!(hash(c, "MD5"), md5.as_deref());
    }
    // conda's pip package ships pip's distribution: its PyPI identity is nested in it.
    let conda_pip = conda.iter().find(|c| c["name"] == "pip").unwrap();
    let nested = conda_pip["components"]
        .as_array()
        .expect("nested components");
    assert_eq!(nested.len(), 1, "{conda_pip:#}");
    assert_eq!(nested[0]["purl"], "pkg:pypi/pip@24.0");
    let pypi = components(&bom, "pkg:pypi/");
    let named: BTreeMap<String, String> = pypi
        .iter()
        .map(|c| {
            (
                normalized(c["name"].as_str().unwrap()),
                c["version"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(named, inv.pip);
    assert_eq!(pypi.len(), inv.pip.len());
    assert_eq!(out.sbom_counts.pip, inv.pip.len());
    assert_eq!(
        bom["components"].as_array().unwrap().len(),
        inv.conda.len() + inv.pip.len()
    );

    let psutil = pypi.iter().find(|c| c["name"] == "psutil").unwrap();
    assert_eq!(psutil["purl"], "pkg:pypi/psutil@6.1.1");
    assert!(!psutil["licenses"].as_array().unwrap().is_empty());
    let record = prefix.join("lib/python3.11/site-packages/psutil-6.1.1.dist-info/RECORD");
    assert_eq!(
        hash(psutil, "SHA-256"),
        Some(envship_spec::digest::sha256_file(&record).unwrap().as_str())
    );
    let markupsafe = pypi.iter().find(|c| c["name"] == "MarkupSafe").unwrap();
    assert_eq!(markupsafe["purl"], "pkg:pypi/markupsafe@2.1.5");
    assert_eq!(
        hash(markupsafe, "SHA-256"),
        Some(
            envship_spec::digest::sha256_file(&fixture(MARKUPSAFE_WHEEL))
                .unwrap()
                .as_str()
        ),
        "the wheel's own hash, from direct_url.json"
    );

    let env = &bom["metadata"]["component"];
    assert_eq!(
        (&env["name"], &env["version"]),
        (&"sbom-env".into(), &"1.2.3".into())
    );
    if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
        assert!(bom["metadata"].get("timestamp").is_none(), "no epoch given");
    }
    let deps = &bom["dependencies"][0]["dependsOn"];
    assert_eq!(
        deps.as_array().unwrap().len(),
        inv.conda.len() + inv.pip.len()
    );

    let python = match validator() {
        Ok(p) => p,
        Err(why) => {
            envship_test_support::skip(
                "python_environment_sbom_names_every_package_and_validates",
                why,
            );
            return;
        }
    };
    if let Err(e) = validate(&python, &text) {
        panic!("the SBOM does not validate against CycloneDX 1.6: {e}\n{text}");
    }
    // The validator does refuse: a malformed hash fails the schema.
    let mut broken = bom.clone();
    broken["components"][0]["hashes"][0]["content"] = "not-hex".into();
    assert!(validate(&python, &broken.to_string()).is_err());
}

/// The bundled example's environment, installed from `examples/hello/channel`.
fn hello_prefix(tmp: &Path) -> PathBuf {
    let prefix = tmp.join("hello-env");
    let channel = workspace_root().join("examples/hello/channel");
    let url = envship_test_support::file_url(&channel);
    install_channel(&prefix, &tmp.join("pkgs"), &channel, url.as_str());
    prefix
}

#[test]
fn hello_sbom_is_reproducible_and_matches_the_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = hello_prefix(tmp.path());
    let epoch = 1_704_067_200; // 2024-01-01
    let hello = |out: &str| PackOptions {
        name: "hello-envship".into(),
        version: "1.0".into(),
        ..opts(&prefix, &tmp.path().join(out), Some(epoch))
    };
    let first = pack(&hello("a/hello.tar.gz"), &envship_spec::NoProgress).unwrap();
    let mut again = hello("b/hello.zip");
    again.format = Format::Zip;
    again.jobs = 2;
    let second = pack(&again, &envship_spec::NoProgress).unwrap();
    let text = fs::read_to_string(&first.sbom_path).unwrap();
    assert_eq!(
        text,
        fs::read_to_string(&second.sbom_path).unwrap(),
        "same prefix, same SBOM"
    );
    assert_eq!(
        (first.sbom_counts.conda, first.sbom_counts.pip),
        (3, 0),
        "hello, libhello, hello-scripts"
    );
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"channel=file:[^&]*&", "channel=[CHANNEL]&");
    settings.add_filter(
        r#""serialNumber": "[^"]*""#,
        r#""serialNumber": "[SERIAL]""#,
    );
    settings.add_filter(
        r#"("name": "envship",\s*"version": )"[^"]*""#,
        r#"$1"[VERSION]""#,
    );
    settings.bind(|| insta::assert_snapshot!(text));

    if let Ok(python) = validator() {
        if let Err(e) = validate(&python, &text) {
            panic!("the hello SBOM does not validate: {e}");
        }
    }
}

#[test]
fn without_an_epoch_there_is_no_timestamp_and_a_dir_pack_has_its_sbom_too() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = hello_prefix(tmp.path());
    let mut o = opts(&prefix, &tmp.path().join("out/hello-dir"), None);
    o.format = Format::Dir;
    let out = pack(&o, &envship_spec::NoProgress).unwrap();
    assert_eq!(out.sbom_path, tmp.path().join("out/hello-dir.cdx.json"));
    let bom: Value = serde_json::from_slice(&fs::read(&out.sbom_path).unwrap()).unwrap();
    if std::env::var_os("SOURCE_DATE_EPOCH").is_none() {
        assert!(bom["metadata"].get("timestamp").is_none());
    }
    assert_eq!(bom["specVersion"], "1.6");
    let serial = bom["serialNumber"].as_str().unwrap();
    assert!(serial.starts_with("urn:uuid:"), "{serial}");
}
