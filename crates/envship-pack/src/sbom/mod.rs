//! The SBOM pack writes beside every archive: `NAME-VERSION-TARGET-SUBDIR.cdx.json`, CycloneDX 1.6
//! JSON ([`Sidecar::Sbom`](crate::Sidecar::Sbom)).
//!
//! What it names: every conda record of the prefix (`pkg:conda/…` purl with build, channel and
//! subdir; the package archive's SHA-256 and MD5; the record's license) and every distribution
//! pip installed into site-packages (`pkg:pypi/…`; the license from METADATA; the wheel's
//! SHA-256 when pip recorded it, else the SHA-256 of RECORD, said in an `envship:hashes`
//! property). The environment is `metadata.component`, with the target as properties.
//!
//! **Reproducible**: components sorted by purl, no wall-clock time (`metadata.timestamp` only
//! when `SOURCE_DATE_EPOCH` or pack's explicit epoch says when), and a `serialNumber` derived
//! from the content: the same prefix gives the same bytes.

mod components;
mod license;

use std::{collections::BTreeMap, path::Path};

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use components::{Component, Hash, Property};
pub use license::{License, LicenseChoice};

use crate::{
    error::{PackError, Result},
    manifest::ManifestTarget,
    prefix::PipPackage,
};

/// The CycloneDX version written.
pub const SPEC_VERSION: &str = "1.6";

/// What the SBOM says about the environment as a whole.
#[derive(Clone, Debug)]
pub struct About<'a> {
    /// Environment name.
    pub name: &'a str,
    /// Release version.
    pub version: &'a str,
    /// The target the archive is for.
    pub target: &'a ManifestTarget,
    /// `metadata.timestamp` in seconds since the epoch; `None`: no timestamp.
    pub timestamp: Option<u64>,
}

/// A CycloneDX BOM (the parts envship writes).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Bom {
    /// `CycloneDX`.
    pub bom_format: &'static str,
    /// [`SPEC_VERSION`].
    pub spec_version: &'static str,
    /// `urn:uuid:…` from a hash of the content.
    pub serial_number: String,
    /// The BOM's own version (1: each pack writes a new BOM).
    pub version: u32,
    /// The environment and the tool.
    pub metadata: Metadata,
    /// Conda records and pip distributions, sorted by purl.
    pub components: Vec<Component>,
    /// The environment depends on every component.
    pub dependencies: Vec<Dependency>,
}

/// `metadata`.
#[derive(Clone, Debug, Serialize)]
pub struct Metadata {
    /// RFC 3339, only from an explicit epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// envship.
    pub tools: Tools,
    /// The environment.
    pub component: Component,
}

/// `metadata.tools` (1.6's object form).
#[derive(Clone, Debug, Serialize)]
pub struct Tools {
    /// envship, as an application component.
    pub components: Vec<Component>,
}

/// One `dependencies` entry.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    /// The depending component's bom-ref.
    #[serde(rename = "ref")]
    pub reference: String,
    /// bom-refs it depends on.
    pub depends_on: Vec<String>,
}

/// How many components of each kind an SBOM names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SbomCounts {
    /// Conda records.
    pub conda: usize,
    /// pip distributions.
    pub pip: usize,
}

fn application(name: &str, version: &str, properties: Vec<Property>) -> Component {
    Component {
        kind: "application",
        bom_ref: None,
        name: name.to_string(),
        version: Some(version.to_string()),
        purl: None,
        hashes: Vec::new(),
        licenses: Vec::new(),
        properties,
        components: Vec::new(),
    }
}

/// RFC 9562's version 8 (custom) UUID from the first 16 bytes of a SHA-256: stable for the same
/// content, and the shape the schema's `urn:uuid:` pattern asks for.
fn uuid_from(digest: &[u8]) -> String {
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The SBOM of the prefix at `root`; `pip` are the distributions pack's scan found.
pub fn build(root: &Path, pip: &[PipPackage], about: &About<'_>) -> Result<(Bom, SbomCounts)> {
    let conda = components::conda(root)?;
    let pip = components::pip(root, pip)?;
    let counts = SbomCounts {
        conda: conda.len(),
        pip: pip.len(),
    };
    let mut all: Vec<Component> = conda.into_iter().chain(pip).collect();
    all.sort_by(|a, b| (&a.purl, &a.name).cmp(&(&b.purl, &b.name)));
    // bom-refs must be unique: the same distribution in two site-packages gets `#2`, `#3`.
    // A conda package's nested Python distribution may be the same as a pip one: counted in
    // the same map, after the top level, so that top-level refs do not change.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut unique_ref = |c: &mut Component| {
        let base = c.purl.clone().unwrap_or_else(|| c.name.clone());
        let n = seen.entry(base.clone()).or_insert(0);
        *n += 1;
        c.bom_ref = Some(if *n == 1 { base } else { format!("{base}#{n}") });
    };
    all.iter_mut().for_each(&mut unique_ref);
    all.iter_mut()
        .flat_map(|c| c.components.iter_mut())
        .for_each(&mut unique_ref);

    let mut target = vec![
        Property::new("envship:target", &about.target.name),
        Property::new("envship:target:subdir", &about.target.subdir),
    ];
    if let Some(glibc) = &about.target.glibc {
        target.push(Property::new("envship:target:glibc", glibc));
    }
    let mut env = application(about.name, about.version, target);
    let env_ref = format!("envship-environment:{}@{}", about.name, about.version);
    env.bom_ref = Some(env_ref.clone());
    let timestamp = match about.timestamp {
        Some(secs) => Some(
            i64::try_from(secs)
                .ok()
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .ok_or(PackError::BadEpoch { epoch: secs })?
                .to_string(),
        ),
        None => None,
    };
    let metadata = Metadata {
        timestamp,
        tools: Tools {
            components: vec![application(
                "envship",
                env!("CARGO_PKG_VERSION"),
                Vec::new(),
            )],
        },
        component: env,
    };
    let dependencies = vec![Dependency {
        reference: env_ref,
        depends_on: all.iter().filter_map(|c| c.bom_ref.clone()).collect(),
    }];
    let mut bom = Bom {
        bom_format: "CycloneDX",
        spec_version: SPEC_VERSION,
        serial_number: String::new(),
        version: 1,
        metadata,
        components: all,
        dependencies,
    };
    let content = serde_json::to_vec(&bom).map_err(PackError::SbomJson)?;
    bom.serial_number = uuid_from(&Sha256::digest(&content));
    Ok((bom, counts))
}

/// `bom` written to `path` atomically (pretty JSON, trailing newline).
pub fn write(path: &Path, bom: &Bom) -> Result<()> {
    stage(path, bom)?
        .commit()
        .map_err(PackError::io("renaming to", path))
}

/// [`write`] up to the rename: a temp file next to `path`.
pub fn stage(path: &Path, bom: &Bom) -> Result<envship_spec::output::StagedFile> {
    let mut bytes = serde_json::to_vec_pretty(bom).map_err(PackError::SbomJson)?;
    bytes.push(b'\n');
    crate::relocate::stage_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn write(path: &Path, text: &str) {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).expect("mkdir");
        }
        fs::write(path, text).expect("write");
    }

    fn pip_package(dist_info: &str) -> PipPackage {
        PipPackage {
            name: "Foo.Bar".into(),
            version: "2.0".into(),
            installer: Some("pip".into()),
            direct_url: None,
            editable: false,
            dist_info: dist_info.into(),
            files: 1,
        }
    }

    #[test]
    fn components_are_sorted_unique_and_keep_only_well_formed_hashes() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        write(
            &root.join("conda-meta/zlib-1.3-h0.json"),
            r#"{"name":"zlib","version":"1.3","build":"h0","subdir":"linux-64",
                "channel":"https://conda.anaconda.org/conda-forge","license":"Zlib",
                "sha256":"not-a-digest","md5":"0123456789ABCDEF0123456789abcdef"}"#,
        );
        write(
            &root.join("conda-meta/abc-1-0.json"),
            r#"{"name":"abc","version":"1","build":"0"}"#,
        );
        // The same distribution in two site-packages: two components, two bom-refs.
        let dists = [
            "lib/python3.9/site-packages",
            "lib/python3.11/site-packages",
        ]
        .map(|site| format!("{site}/Foo.Bar-2.0.dist-info"));
        for d in &dists {
            write(
                &root.join(d).join("METADATA"),
                "Name: Foo.Bar\nVersion: 2.0\nLicense: UNKNOWN\nClassifier: License :: OSI Approved :: MIT License\n",
            );
            write(&root.join(d).join("RECORD"), "foo_bar/__init__.py,,\n");
        }
        let target = ManifestTarget {
            name: "rhel8".into(),
            subdir: "linux-64".into(),
            glibc: None,
        };
        let about = About {
            name: "e",
            version: "1",
            target: &target,
            timestamp: Some(0),
        };
        let pip: Vec<PipPackage> = dists.iter().map(|d| pip_package(d)).collect();
        let (bom, counts) = build(root, &pip, &about).expect("sbom");
        assert_eq!(counts, SbomCounts { conda: 2, pip: 2 });
        let refs: Vec<&str> = bom
            .components
            .iter()
            .filter_map(|c| c.bom_ref.as_deref())
            .collect();
        assert_eq!(
            refs,
            [
                "pkg:conda/abc@1?build=0",
                "pkg:conda/zlib@1.3?build=h0&channel=https:%2F%2Fconda.anaconda.org%2Fconda-forge&subdir=linux-64",
                "pkg:pypi/foo-bar@2.0",
                "pkg:pypi/foo-bar@2.0#2",
            ]
        );
        let zlib = &bom.components[1];
        assert_eq!(
            zlib.hashes,
            [Hash {
                alg: "MD5",
                content: "0123456789abcdef0123456789abcdef".into()
            }]
        );
        let json = serde_json::to_value(&bom).expect("json");
        assert_eq!(json["metadata"]["timestamp"], "1970-01-01T00:00:00Z");
        assert_eq!(
            json["components"][2]["licenses"],
            serde_json::json!([{"license": {"name": "MIT License"}}])
        );
        assert_eq!(
            json["components"][1]["licenses"][0]["license"]["id"],
            "Zlib"
        );
        assert_eq!(bom.dependencies[0].depends_on.len(), 4);
        let (again, _) = build(root, &pip, &about).expect("sbom");
        assert_eq!(again.serial_number, bom.serial_number);
    }

    #[test]
    fn a_conda_packages_python_distribution_has_its_pypi_identity_nested() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        let dist = "lib/python3.9/site-packages/numpy-1.21.6.dist-info";
        write(
            &root.join("conda-meta/numpy-1.21.6-py39h0_0.json"),
            &format!(
                r#"{{"name":"numpy","version":"1.21.6","build":"py39h0_0",
                    "files":["{dist}/METADATA","{dist}/INSTALLER"]}}"#
            ),
        );
        write(
            &root.join(dist).join("METADATA"),
            "Name: numpy\nVersion: 1.21.6\n",
        );
        write(&root.join(dist).join("INSTALLER"), "conda\n");
        let target = ManifestTarget {
            name: "lcls-rhel6".into(),
            subdir: "linux-64".into(),
            glibc: Some("2.12".into()),
        };
        let about = About {
            name: "e",
            version: "1",
            target: &target,
            timestamp: Some(0),
        };
        let (bom, counts) = build(root, &[], &about).expect("sbom");
        assert_eq!(counts, SbomCounts { conda: 1, pip: 0 });
        let json = serde_json::to_value(&bom).expect("json");
        let numpy = &json["components"][0];
        assert_eq!(numpy["purl"], "pkg:conda/numpy@1.21.6?build=py39h0_0");
        assert_eq!(
            numpy["components"],
            serde_json::json!([{
                "type": "library",
                "bom-ref": "pkg:pypi/numpy@1.21.6",
                "name": "numpy",
                "version": "1.21.6",
                "purl": "pkg:pypi/numpy@1.21.6",
                "properties": [{"name": "envship:python:dist-info", "value": dist}],
            }])
        );
    }

    #[test]
    fn a_malformed_record_names_its_file() {
        let dir = tempfile::tempdir().expect("tmp");
        write(&dir.path().join("conda-meta/x-1-0.json"), "{\"name\": ");
        let target = ManifestTarget::default();
        let about = About {
            name: "e",
            version: "1",
            target: &target,
            timestamp: None,
        };
        match build(dir.path(), &[], &about) {
            Err(PackError::BadRecord { path, .. }) => {
                assert!(path.ends_with("conda-meta/x-1-0.json"))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn serial_numbers_are_version_8_uuids() {
        let u = uuid_from(&Sha256::digest(b"x"));
        assert_eq!(u.len(), "urn:uuid:".len() + 36);
        let hex = &u["urn:uuid:".len()..];
        assert_eq!(hex.as_bytes()[14], b'8', "{u}");
        assert!(
            matches!(hex.as_bytes()[19], b'8' | b'9' | b'a' | b'b'),
            "{u}"
        );
        assert_eq!(u, uuid_from(&Sha256::digest(b"x")));
        assert_ne!(u, uuid_from(&Sha256::digest(b"y")));
    }
}
