//! The SBOM's components: one per conda record in `conda-meta/*.json`, one per pip
//! distribution pack found in site-packages (conda's own `*.dist-info` are already left out
//! there: the conda record names that package).
//!
//! A conda package that ships a Python distribution (numpy's `numpy-1.21.6.dist-info`) also
//! carries that distribution's PyPI identity: a nested component (CycloneDX's "included in the
//! parent", not a dependency) with its `pkg:pypi` purl, which PyPI advisories are keyed on and
//! scanners that read CycloneDX (syft/grype, trivy) walk into.

use std::{collections::BTreeMap, fs, path::Path};

use envship_spec::{conda_meta, python_dists};
use packageurl::PackageUrl;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::license::{self, LicenseChoice};
use crate::{
    error::{PackError, Result},
    prefix::PipPackage,
};

/// A CycloneDX component (the fields envship fills).
#[derive(Clone, Debug, Serialize)]
pub struct Component {
    /// `library` for packages, `application` for the environment and envship.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The id dependencies refer to (the purl, made unique).
    #[serde(rename = "bom-ref", skip_serializing_if = "Option::is_none")]
    pub bom_ref: Option<String>,
    /// Package name as its metadata spells it.
    pub name: String,
    /// Version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Package URL.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
    /// Hashes (of the conda package archive; for pip see the `envship:hashes` property).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hashes: Vec<Hash>,
    /// Licenses.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub licenses: Vec<LicenseChoice>,
    /// envship's facts (`envship:…` names).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub properties: Vec<Property>,
    /// What the component includes: a conda package's Python distributions.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<Component>,
}

/// A CycloneDX hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Hash {
    /// `MD5`, `SHA-256`.
    pub alg: &'static str,
    /// Lowercase hex.
    pub content: String,
}

/// A CycloneDX name/value property.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Property {
    /// `envship:…`.
    pub name: String,
    /// The value.
    pub value: String,
}

impl Property {
    /// A property named `name`.
    pub fn new(name: &str, value: impl Into<String>) -> Self {
        Property {
            name: name.to_string(),
            value: value.into(),
        }
    }
}

/// The fields of a conda record the SBOM states.
#[derive(Deserialize)]
struct CondaRecord {
    name: String,
    version: String,
    build: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    subdir: Option<String>,
    #[serde(default)]
    sha256: Option<String>,
    #[serde(default)]
    md5: Option<String>,
    #[serde(default)]
    license: Option<String>,
}

/// `alg` of `hex` when it is a well-formed digest of that algorithm (the schema refuses others;
/// a record with a malformed one keeps its other facts).
fn hash(alg: &'static str, hex_len: usize, value: Option<&str>) -> Option<Hash> {
    let v = value?.trim().to_ascii_lowercase();
    (v.len() == hex_len && v.bytes().all(|b| b.is_ascii_hexdigit()))
        .then_some(Hash { alg, content: v })
}

fn purl_error(package: &str) -> impl FnOnce(packageurl::Error) -> PackError + '_ {
    move |source| PackError::Purl {
        package: package.to_string(),
        source,
    }
}

/// `pkg:conda/NAME@VERSION?build=…&channel=…&subdir=…`.
fn conda_purl(r: &CondaRecord) -> Result<String> {
    let dist = format!("{}-{}-{}", r.name, r.version, r.build);
    let err = || purl_error(&dist);
    let mut purl = PackageUrl::new("conda", r.name.as_str()).map_err(err())?;
    purl.with_version(r.version.as_str()).map_err(err())?;
    purl.add_qualifier("build", r.build.as_str())
        .map_err(err())?;
    if let Some(channel) = r.channel.as_deref().map(|c| c.trim_end_matches('/')) {
        if !channel.is_empty() {
            purl.add_qualifier("channel", channel).map_err(err())?;
        }
    }
    if let Some(subdir) = r.subdir.as_deref().filter(|s| !s.is_empty()) {
        purl.add_qualifier("subdir", subdir).map_err(err())?;
    }
    Ok(purl.to_string())
}

/// `pkg:pypi/NAME@VERSION` with PEP 503's name.
fn pypi_purl(name: &str, version: &str) -> Result<String> {
    let mut purl =
        PackageUrl::new("pypi", python_dists::normalize(name)).map_err(purl_error(name))?;
    purl.with_version(version).map_err(purl_error(name))?;
    Ok(purl.to_string())
}

/// The Python distributions of the prefix that conda records own, by package
/// (`NAME-VERSION-BUILD`), as nested components.
fn conda_python_distributions(root: &Path) -> Result<BTreeMap<String, Vec<Component>>> {
    let mut out: BTreeMap<String, Vec<Component>> = BTreeMap::new();
    let owners = python_dists::conda_owners(root);
    for d in python_dists::installed(root, &owners) {
        let Some(package) = d.conda_package else {
            continue;
        };
        out.entry(package).or_default().push(Component {
            kind: "library",
            bom_ref: None,
            purl: Some(pypi_purl(&d.name, &d.version)?),
            name: d.name,
            version: Some(d.version),
            hashes: Vec::new(),
            licenses: Vec::new(),
            properties: vec![Property::new("envship:python:dist-info", d.path)],
            components: Vec::new(),
        });
    }
    Ok(out)
}

/// One component per `conda-meta/*.json`, in record file order.
pub fn conda(root: &Path) -> Result<Vec<Component>> {
    let meta = root.join("conda-meta");
    let paths = conda_meta::record_paths(root)
        .map_err(PackError::io("listing", &meta))?
        .ok_or_else(|| PackError::NotAPrefix {
            prefix: root.to_path_buf(),
        })?;
    let python = conda_python_distributions(root)?;
    paths
        .into_par_iter()
        .map(|path| {
            let bytes = fs::read(&path).map_err(PackError::io("reading", &path))?;
            let r: CondaRecord =
                serde_json::from_slice(&bytes).map_err(|source| PackError::BadRecord {
                    path: path.clone(),
                    source,
                })?;
            let hashes = [
                hash("SHA-256", 64, r.sha256.as_deref()),
                hash("MD5", 32, r.md5.as_deref()),
            ]
            .into_iter()
            .flatten()
            .collect();
            Ok(Component {
                kind: "library",
                bom_ref: None,
                purl: Some(conda_purl(&r)?),
                hashes,
                licenses: r
                    .license
                    .as_deref()
                    .map(license::from_text)
                    .unwrap_or_default(),
                properties: Vec::new(),
                components: python
                    .get(&format!("{}-{}-{}", r.name, r.version, r.build))
                    .cloned()
                    .unwrap_or_default(),
                name: r.name,
                version: Some(r.version),
            })
        })
        .collect()
}

/// The header fields of a METADATA file (RFC 822 style: the headers end at the first blank
/// line; continuation lines start with whitespace). Repeated fields keep every value.
pub fn metadata_headers(text: &str) -> Vec<(&str, String)> {
    let mut out: Vec<(&str, String)> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = out.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((key, value)) = line.split_once(':') {
            out.push((key.trim(), value.trim().to_string()));
        }
    }
    out
}

fn header<'a>(headers: &'a [(&str, String)], key: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// The wheel's sha256 when pip recorded it: `direct_url.json`'s `archive_info` (installs from a
/// URL or a wheel path; installs through an index or `--find-links` have no such file).
fn wheel_sha256(dist_info: &Path) -> Option<String> {
    let bytes = fs::read(dist_info.join("direct_url.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let info = v.get("archive_info")?;
    let from_hashes = info.pointer("/hashes/sha256").and_then(|h| h.as_str());
    let from_hash = info
        .get("hash")
        .and_then(|h| h.as_str())
        .and_then(|h| h.strip_prefix("sha256="));
    hash("SHA-256", 64, from_hashes.or(from_hash)).map(|h| h.content)
}

/// One component per pip distribution (`pip` as pack's scan found them).
pub fn pip(root: &Path, dists: &[PipPackage]) -> Result<Vec<Component>> {
    dists
        .par_iter()
        .map(|d| {
            let dir = root.join(&d.dist_info);
            let metadata_path = envship_spec::python_dists::metadata_path(&dir)
                .unwrap_or_else(|| dir.join("METADATA"));
            let metadata = fs::read_to_string(&metadata_path)
                .map_err(PackError::io("reading", &metadata_path))?;
            let headers = metadata_headers(&metadata);
            let classifiers: Vec<&str> = headers
                .iter()
                .filter(|(k, _)| k.eq_ignore_ascii_case("Classifier"))
                .map(|(_, v)| v.as_str())
                .collect();
            let licenses = license::from_python_metadata(
                header(&headers, "License-Expression"),
                header(&headers, "License"),
                &classifiers,
            );
            let mut properties = vec![Property::new("envship:pip:dist-info", &d.dist_info)];
            if let Some(installer) = &d.installer {
                properties.push(Property::new("envship:pip:installer", installer));
            }
            // A distribution has no one installed file to hash: the wheel's sha256 when pip
            // recorded it, else RECORD's, which lists the sha256 of every installed file.
            let hashes = if let Some(sum) = wheel_sha256(&dir) {
                properties.push(Property::new(
                    "envship:hashes",
                    "SHA-256 of the wheel (direct_url.json)",
                ));
                vec![Hash {
                    alg: "SHA-256",
                    content: sum,
                }]
            } else {
                let record = dir.join("RECORD");
                match envship_spec::digest::sha256_file(&record) {
                    Ok(sum) => {
                        properties.push(Property::new(
                            "envship:hashes",
                            format!(
                                "SHA-256 of {}/RECORD, which lists the SHA-256 of each installed file",
                                d.dist_info
                            ),
                        ));
                        vec![Hash {
                            alg: "SHA-256",
                            content: sum,
                        }]
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                    Err(e) => return Err(PackError::io("reading", &record)(e)),
                }
            };
            Ok(Component {
                kind: "library",
                bom_ref: None,
                name: d.name.clone(),
                version: Some(d.version.clone()),
                purl: Some(pypi_purl(&d.name, &d.version)?),
                hashes,
                licenses,
                properties,
                components: Vec::new(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(channel: Option<&str>) -> CondaRecord {
        CondaRecord {
            name: "libstdcxx-ng".into(),
            version: "12.2.0+1".into(),
            build: "h46fd767_19".into(),
            channel: channel.map(String::from),
            subdir: Some("linux-64".into()),
            sha256: None,
            md5: None,
            license: None,
        }
    }

    #[test]
    fn conda_purls_are_percent_encoded_with_sorted_qualifiers() {
        assert_eq!(
            conda_purl(&record(Some("https://conda.anaconda.org/conda-forge/"))).ok(),
            Some(
                "pkg:conda/libstdcxx-ng@12.2.0%2B1?build=h46fd767_19\
                 &channel=https:%2F%2Fconda.anaconda.org%2Fconda-forge&subdir=linux-64"
                    .to_string()
            )
        );
        assert_eq!(
            conda_purl(&record(Some("file:///tmp/a b"))).ok(),
            Some(
                "pkg:conda/libstdcxx-ng@12.2.0%2B1?build=h46fd767_19\
                 &channel=file:%2F%2F%2Ftmp%2Fa%20b&subdir=linux-64"
                    .to_string()
            )
        );
        assert_eq!(
            conda_purl(&record(None)).ok(),
            Some("pkg:conda/libstdcxx-ng@12.2.0%2B1?build=h46fd767_19&subdir=linux-64".into())
        );
    }

    #[test]
    fn malformed_hashes_are_left_out() {
        assert_eq!(
            hash("MD5", 32, Some("ABCDEF0123456789abcdef0123456789")),
            Some(Hash {
                alg: "MD5",
                content: "abcdef0123456789abcdef0123456789".into()
            })
        );
        assert_eq!(hash("MD5", 32, Some("xyz")), None);
        assert_eq!(
            hash("SHA-256", 64, Some("abcdef0123456789abcdef0123456789")),
            None
        );
    }

    #[test]
    fn metadata_headers_keep_repeats_and_continuations() {
        let m = "Metadata-Version: 2.1\nName: psutil\nLicense: BSD-3-Clause\n        more\n\
                 Classifier: A\nClassifier: B\n\nLicense: body text\n";
        let h = metadata_headers(m);
        assert_eq!(header(&h, "name"), Some("psutil"));
        assert_eq!(header(&h, "License"), Some("BSD-3-Clause\nmore"));
        let classifiers: Vec<&str> = h
            .iter()
            .filter(|(k, _)| *k == "Classifier")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(classifiers, ["A", "B"]);
    }
}
