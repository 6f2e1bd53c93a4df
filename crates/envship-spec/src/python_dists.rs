//! The Python distributions installed in a prefix, wherever its interpreter put them: one
//! finder for build's pip no-op check and its conda-overwrite check, and for pack's manifest and
//! SBOM.
//!
//! A distribution is a `NAME-VERSION.dist-info` directory (or an `.egg-info` directory or file)
//! in a *site directory*: one of the environment interpreter's own `purelib`/`platlib` (asked
//! once by the build and recorded in `conda-meta/envship-site-dirs`), or any directory named
//! `site-packages` or `dist-packages` in the prefix (conda's layout, Debian's scheme, a prefix
//! built by another tool). A `.dist-info` elsewhere (a package's vendored copy, such as
//! setuptools' `_vendor/`) is not an installed distribution and is not listed.
//!
//! A distribution a conda record owns (its `METADATA`/`PKG-INFO` is among the record's files,
//! or its `INSTALLER` says `conda`) carries that package's name.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

/// Where the build records the interpreter's site directories, one prefix-relative path a line
/// (not `*.json`: every JSON file in conda-meta must be a package record).
pub const SITE_DIRS_FILE: &str = "conda-meta/envship-site-dirs";

/// Where the build records that pip deleted or overwrote files of conda packages (one
/// `NAME-VERSION-BUILD` a line): pack refuses such a prefix, the next build makes it again.
pub const PIP_DAMAGED_FILE: &str = "conda-meta/envship-pip-damaged";

/// An installed Python distribution.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Distribution {
    /// The `.dist-info`/`.egg-info`, relative to the prefix.
    pub path: String,
    /// `Name:` from its metadata.
    pub name: String,
    /// The PEP 503 normalized name.
    pub normalized: String,
    /// `Version:` from its metadata.
    pub version: String,
    /// `INSTALLER` (`pip`, `conda`, `uv`, …), if recorded.
    pub installer: Option<String>,
    /// The conda package (`NAME-VERSION-BUILD`) that owns it, if one does.
    pub conda_package: Option<String>,
}

/// PEP 503 name normalization: lowercase, runs of `-`, `_`, `.` become one `-`.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
            continue;
        }
        if sep && !out.is_empty() {
            out.push('-');
        }
        sep = false;
        out.extend(c.to_lowercase());
    }
    out
}

/// The site directories of `prefix` (absolute), sorted: those recorded from the interpreter,
/// and every `site-packages`/`dist-packages` directory up to four levels below the prefix.
pub fn site_dirs(prefix: &Path) -> Vec<PathBuf> {
    let mut dirs = BTreeSet::new();
    if let Ok(text) = fs_err::read_to_string(prefix.join(SITE_DIRS_FILE)) {
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let dir = prefix.join(line);
            if dir.is_dir() {
                dirs.insert(dir);
            }
        }
    }
    find_named_site_dirs(prefix, 0, &mut dirs);
    dirs.into_iter().collect()
}

fn find_named_site_dirs(dir: &Path, depth: usize, out: &mut BTreeSet<PathBuf>) {
    // lib/pythonX.Y/site-packages is depth 3; local/lib/python3/dist-packages is 4.
    if depth > 4 {
        return;
    }
    let Ok(entries) = fs_err::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if !ft.is_dir() {
            continue;
        }
        let name = e.file_name();
        if depth == 0 && (name == "conda-meta" || name == "pkgs") {
            continue;
        }
        if name == "site-packages" || name == "dist-packages" {
            out.insert(e.path());
        } else {
            find_named_site_dirs(&e.path(), depth + 1, out);
        }
    }
}

/// Every distribution in the prefix's site directories, sorted by path. `owners` maps a
/// prefix-relative file path to the conda package that owns it (see [`conda_owners`]).
pub fn installed(prefix: &Path, owners: &BTreeMap<String, String>) -> Vec<Distribution> {
    let mut out = Vec::new();
    for site in site_dirs(prefix) {
        let Ok(entries) = fs_err::read_dir(&site) else {
            continue;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths {
            if let Some(d) = read_distribution(prefix, &p, owners) {
                out.push(d);
            }
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    out
}

fn read_distribution(
    prefix: &Path,
    path: &Path,
    owners: &BTreeMap<String, String>,
) -> Option<Distribution> {
    let metadata_path = metadata_path(path)?;
    let is_dir = metadata_path != path;
    let Some(metadata) = fs_err::read_to_string(&metadata_path)
        .ok()
        .filter(|m| header(m, "Name").is_some())
    else {
        // Not a distribution pip or conda would list either; said, so a broken one is noticed.
        tracing::warn!(
            "{}: no readable metadata with a Name, not listed as a Python distribution",
            path.display()
        );
        return None;
    };
    let name = header(&metadata, "Name").unwrap_or_default().to_string();
    let version = header(&metadata, "Version").unwrap_or_default().to_string();
    let rel = |p: &Path| {
        p.strip_prefix(prefix)
            .unwrap_or(p)
            .to_string_lossy()
            .into_owned()
    };
    let installer = is_dir
        .then(|| fs_err::read_to_string(path.join("INSTALLER")).ok())
        .flatten()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let conda_package = owners.get(&rel(&metadata_path)).cloned().or_else(|| {
        (installer.as_deref() == Some("conda")).then(|| format!("{name}-{version} (conda)"))
    });
    Some(Distribution {
        path: rel(path),
        normalized: normalize(&name),
        name,
        version,
        installer,
        conda_package,
    })
}

/// The metadata file of a distribution: `METADATA` in a `.dist-info`, `PKG-INFO` in an
/// `.egg-info` directory, an `.egg-info` file itself; `None` for anything else.
pub fn metadata_path(dist: &Path) -> Option<PathBuf> {
    let file_name = dist.file_name()?.to_str()?;
    if file_name.ends_with(".dist-info") {
        Some(dist.join("METADATA"))
    } else if file_name.ends_with(".egg-info") {
        Some(if dist.is_dir() {
            dist.join("PKG-INFO")
        } else {
            dist.to_path_buf()
        })
    } else {
        None
    }
}

/// The first `Key: value` header of an email-style metadata file.
pub fn header<'a>(metadata: &'a str, key: &str) -> Option<&'a str> {
    metadata
        .lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(key).then(|| v.trim())
        })
}

/// Which conda package owns each file of the prefix whose name ends a distribution's metadata
/// (`…/METADATA`, `…/PKG-INFO`, `….egg-info`): read from `conda-meta/*.json`.
pub fn conda_owners(prefix: &Path) -> BTreeMap<String, String> {
    let mut owners = BTreeMap::new();
    for (_, rec) in crate::conda_meta::readable_records(prefix) {
        let package = rec.dist_name();
        for f in rec.path_entries() {
            if f.path.ends_with("/METADATA")
                || f.path.ends_with("/PKG-INFO")
                || f.path.ends_with(".egg-info")
            {
                owners.insert(f.path, package.clone());
            }
        }
    }
    owners
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(site: &Path, dir: &str, name: &str, version: &str) {
        let d = site.join(dir);
        fs_err::create_dir_all(&d).expect("mkdir");
        fs_err::write(
            d.join("METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n\nName: body\n"),
        )
        .expect("write");
        fs_err::write(d.join("INSTALLER"), "pip\n").expect("write");
    }

    #[test]
    fn finds_distributions_wherever_the_scheme_puts_them_and_not_vendored_copies() {
        let t = tempfile::tempdir().expect("tmp");
        let p = t.path();
        dist(
            &p.join("lib/python3.9/site-packages"),
            "numpy-1.21.6.dist-info",
            "numpy",
            "1.21.6",
        );
        dist(
            &p.join("local/lib/python3.11/dist-packages"),
            "ruamel.yaml-0.17.21.dist-info",
            "ruamel.yaml",
            "0.17.21",
        );
        dist(
            &p.join("lib/python3.9/site-packages/setuptools/_vendor"),
            "packaging-24.0.dist-info",
            "packaging",
            "24.0",
        );
        // An interpreter-reported site dir with an unusual name.
        dist(
            &p.join("opt/pylib"),
            "Foo_Bar-2.0.dist-info",
            "Foo_Bar",
            "2.0",
        );
        fs_err::create_dir_all(p.join("conda-meta")).expect("mkdir");
        fs_err::write(p.join(SITE_DIRS_FILE), "opt/pylib\n").expect("write");
        let found = installed(p, &BTreeMap::new());
        let names: Vec<_> = found.iter().map(|d| d.normalized.as_str()).collect();
        assert_eq!(names, ["numpy", "ruamel-yaml", "foo-bar"]);
        assert_eq!(
            found[1].path,
            "local/lib/python3.11/dist-packages/ruamel.yaml-0.17.21.dist-info"
        );
        assert_eq!(found[0].installer.as_deref(), Some("pip"));
    }

    #[test]
    fn names_are_normalized_as_pep_503_says() {
        assert_eq!(normalize("Foo__Bar.baz-Qux"), "foo-bar-baz-qux");
        assert_eq!(normalize("ruamel.yaml"), "ruamel-yaml");
        assert_eq!(normalize("MarkupSafe"), "markupsafe");
        assert_eq!(normalize("a__b-.c"), "a-b-c");
    }
}
