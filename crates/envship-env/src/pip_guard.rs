//! What pip may do to the conda packages of a prefix.
//!
//! pip uninstalls whatever distribution it replaces, and a conda package's `*.dist-info` looks
//! like any other to it: `psutil=5.9.0` from conda plus `pip: [psutil==5.9.8]` leaves
//! `conda-meta` listing files pip deleted, which conda-pack (and envship's pack) only notice
//! much later. So the build asks pip first (`--dry-run --report`) and refuses to let it replace
//! a conda-owned distribution, naming both. With overrides allowed it lets pip go on, as conda
//! does, and prunes the records so that they describe what is really on disk.
//!
//! After pip ran, every conda file must still be there, and none pip wrote over may differ from
//! its record: a distribution that writes into another's directory (two names, one import
//! package) is caught here, naming the package and the file.

use std::{collections::BTreeMap, io::Read, path::Path, time::SystemTime};

use envship_spec::python_dists::{self, Distribution};
use sha2::{Digest, Sha256};

/// A conda-owned distribution that pip's install would replace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replacement {
    /// The distribution's name as pip reports it.
    pub name: String,
    /// The version conda installed.
    pub conda_version: String,
    /// The conda package that owns it (`NAME-VERSION-BUILD`).
    pub conda_package: String,
    /// The version pip would install.
    pub pip_version: String,
}

impl std::fmt::Display for Replacement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pip would replace {} {} of conda package {} with {} {}",
            self.name, self.conda_version, self.conda_package, self.name, self.pip_version
        )
    }
}

/// The distributions of the prefix that a conda record owns.
pub fn conda_distributions(prefix: &Path) -> Vec<Distribution> {
    let owners = python_dists::conda_owners(prefix);
    python_dists::installed(prefix, &owners)
        .into_iter()
        .filter(|d| d.conda_package.is_some())
        .collect()
}

/// Which of `would_install` (`(name, version)` from pip's dry-run report) replace a conda-owned
/// distribution. A distribution pip leaves alone (already satisfied) is not in the report.
pub fn replacements(
    conda: &[Distribution],
    would_install: &[(String, String)],
) -> Vec<Replacement> {
    let mut out = Vec::new();
    for (name, version) in would_install {
        let normalized = python_dists::normalize(name);
        for d in conda.iter().filter(|d| d.normalized == normalized) {
            out.push(Replacement {
                name: name.clone(),
                conda_version: d.version.clone(),
                conda_package: d.conda_package.clone().unwrap_or_default(),
                pip_version: version.clone(),
            });
        }
    }
    out
}

/// A conda file that is not as its record says after pip ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damaged {
    /// The conda package (`NAME-VERSION-BUILD`).
    pub package: String,
    /// The prefix-relative path.
    pub path: String,
    /// `deleted` or `overwritten`.
    pub what: &'static str,
}

/// The conda files missing from the prefix, or modified at or after `since` (when pip started)
/// and no longer as recorded. Only those are hashed: the linker wrote every other file before
/// pip ran. Without `since`, the missing files only.
pub fn damaged_conda_files(prefix: &Path, since: Option<SystemTime>) -> Vec<Damaged> {
    let mut out = Vec::new();
    for (_, record) in envship_spec::conda_meta::readable_records(prefix) {
        for entry in record.path_entries() {
            if entry.path_type.as_deref() == Some("directory") {
                continue;
            }
            let path = prefix.join(&entry.path);
            let Ok(meta) = fs_err::symlink_metadata(&path) else {
                out.push(Damaged {
                    package: record.dist_name(),
                    path: entry.path.clone(),
                    what: "deleted",
                });
                continue;
            };
            let Some(since) = since else { continue };
            if !meta.is_file() || meta.modified().is_ok_and(|m| m < since) {
                continue;
            }
            let Some(expected) = entry.sha256_in_prefix.as_ref().or(entry.sha256.as_ref()) else {
                continue;
            };
            if sha256_file(&path).is_some_and(|got| !got.eq_ignore_ascii_case(expected)) {
                out.push(Damaged {
                    package: record.dist_name(),
                    path: entry.path.clone(),
                    what: "overwritten",
                });
            }
        }
    }
    out
}

/// Drop `damaged` files from their conda records (pip replaced those packages' distributions,
/// overrides allowed): the records then describe the prefix as it is, so pack neither fails on
/// them nor relocates pip's files as conda's. Returns the packages whose records changed.
pub fn prune(prefix: &Path, damaged: &[Damaged]) -> std::io::Result<Vec<String>> {
    let mut by_package: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for d in damaged {
        by_package.entry(&d.package).or_default().push(&d.path);
    }
    let mut changed = Vec::new();
    for (path, record) in envship_spec::conda_meta::readable_records(prefix) {
        let Some(gone) = by_package.get(record.dist_name().as_str()) else {
            continue;
        };
        let text = fs_err::read_to_string(&path)?;
        let mut json: serde_json::Value =
            serde_json::from_str(&text).map_err(std::io::Error::other)?;
        let keep = |v: &serde_json::Value, key: &str| {
            v.get(key)
                .and_then(serde_json::Value::as_str)
                .is_none_or(|p| !gone.contains(&p))
        };
        if let Some(files) = json.get_mut("files").and_then(|f| f.as_array_mut()) {
            files.retain(|f| f.as_str().is_none_or(|p| !gone.contains(&p)));
        }
        if let Some(paths) = json
            .pointer_mut("/paths_data/paths")
            .and_then(|p| p.as_array_mut())
        {
            paths.retain(|p| keep(p, "_path"));
        }
        let bytes = serde_json::to_vec_pretty(&json).map_err(std::io::Error::other)?;
        crate::lock::write_atomic(&path, &bytes)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        changed.push(record.dist_name());
    }
    Ok(changed)
}

/// Where the damage is recorded. The records stay as they were, so pack refuses the prefix;
/// the next build starts the prefix again.
const DAMAGED_FILE: &str = python_dists::PIP_DAMAGED_FILE;

/// Record that pip damaged `packages`' files in this prefix.
pub fn mark_damaged(prefix: &Path, packages: &[&str]) -> std::io::Result<()> {
    let mut text = packages.join("\n");
    text.push('\n');
    crate::lock::write_atomic(&prefix.join(DAMAGED_FILE), text.as_bytes())
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// The packages an earlier build's pip damaged here, if it did.
pub fn damaged_by_pip(prefix: &Path) -> Option<Vec<String>> {
    let text = fs_err::read_to_string(prefix.join(DAMAGED_FILE)).ok()?;
    Some(text.lines().map(str::to_string).collect())
}

/// Ask the environment's interpreter where pip installs (`purelib`, `platlib`) and record the
/// answer in the prefix, so that every later reader finds pip's distributions there, whatever
/// the interpreter's install scheme (Debian's CPython uses `local/lib/python3.X/dist-packages`).
pub fn record_site_dirs(python: &Path, prefix: &Path) -> std::io::Result<Vec<String>> {
    let out = std::process::Command::new(python)
        .args([
            "-c",
            "import sysconfig\nfor k in ('purelib', 'platlib'): print(sysconfig.get_path(k))",
        ])
        .env("PYTHONNOUSERSITE", "1")
        .stdin(std::process::Stdio::null())
        .output()?;
    if !out.status.success() {
        return Err(std::io::Error::other(format!(
            "{} could not say where pip installs ({}): {}",
            python.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut dirs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            Path::new(l.trim())
                .strip_prefix(prefix)
                .ok()
                .map(Path::to_path_buf)
        })
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    dirs.dedup();
    let mut text = dirs.join("\n");
    text.push('\n');
    crate::lock::write_atomic(&prefix.join(python_dists::SITE_DIRS_FILE), text.as_bytes())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(dirs)
}

fn sha256_file(path: &Path) -> Option<String> {
    let mut file = fs_err::File::open(path).ok()?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Some(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(name: &str, version: &str, owner: Option<&str>) -> Distribution {
        Distribution {
            path: format!("lib/python3.11/site-packages/{name}-{version}.dist-info"),
            name: name.into(),
            normalized: python_dists::normalize(name),
            version: version.into(),
            installer: None,
            conda_package: owner.map(str::to_string),
        }
    }

    #[test]
    fn a_conda_distribution_pip_would_install_again_is_a_replacement() {
        let conda = [dist("psutil", "5.9.0", Some("psutil-5.9.0-py311_0"))];
        let found = replacements(
            &conda,
            &[
                ("psutil".into(), "5.9.8".into()),
                ("six".into(), "1.16.0".into()),
            ],
        );
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].to_string(),
            "pip would replace psutil 5.9.0 of conda package psutil-5.9.0-py311_0 with psutil 5.9.8"
        );
        assert!(replacements(&conda, &[("PsUtil".into(), "5.9.0".into())]).len() == 1);
        assert!(replacements(&conda, &[]).is_empty());
    }

    #[test]
    fn deleted_and_overwritten_files_are_found_and_deleted_ones_pruned() {
        let t = tempfile::tempdir().expect("tmp");
        let p = t.path();
        fs_err::create_dir_all(p.join("conda-meta")).expect("mkdir");
        fs_err::create_dir_all(p.join("lib")).expect("mkdir");
        fs_err::write(p.join("lib/kept"), "kept").expect("write");
        fs_err::write(p.join("lib/changed"), "original").expect("write");
        let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
        let record = serde_json::json!({
            "name": "pkg", "version": "1", "build": "0",
            "files": ["lib/kept", "lib/changed", "lib/gone"],
            "paths_data": {"paths": [
                {"_path": "lib/kept", "sha256": sha(b"kept")},
                {"_path": "lib/changed", "sha256": sha(b"original")},
                {"_path": "lib/gone", "sha256": sha(b"gone")},
            ]}
        });
        let record_path = p.join("conda-meta/pkg-1-0.json");
        fs_err::write(&record_path, record.to_string()).expect("write");
        let since = SystemTime::now() - std::time::Duration::from_secs(5);
        fs_err::write(p.join("lib/changed"), "pip's").expect("write");
        let damaged = damaged_conda_files(p, Some(since));
        let summary: Vec<_> = damaged.iter().map(|d| (d.path.as_str(), d.what)).collect();
        assert_eq!(
            summary,
            [("lib/changed", "overwritten"), ("lib/gone", "deleted")]
        );

        assert_eq!(prune(p, &damaged).expect("prune"), ["pkg-1-0"]);
        let pruned = fs_err::read_to_string(&record_path).expect("read");
        assert!(
            !pruned.contains("lib/gone") && !pruned.contains("lib/changed"),
            "{pruned}"
        );
        assert!(pruned.contains("lib/kept"), "{pruned}");
        assert!(damaged_conda_files(p, Some(since)).is_empty());
    }
}
