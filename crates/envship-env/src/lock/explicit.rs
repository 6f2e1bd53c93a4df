//! Reading `@EXPLICIT` files (`conda list --explicit`, conda-lock's `--kind explicit`): one
//! package URL per line, optionally with `#MD5` or `#sha256:HEX`.
//!
//! The URLs alone do not make a lock: the installer needs each package's record (dependencies,
//! version, subdir), which lives in the archive's `info/index.json`. It is taken, offline, from a
//! local archive (a `file://` URL) or from the package cache; packages found in neither are
//! named in one error rather than fetched, so an import never depends on the network.

use std::path::{Path, PathBuf};

use envship_spec::Target;
use rattler_conda_types::{
    package::{DistArchiveIdentifier, IndexJson, PackageFile},
    PackageRecord, RepoDataRecord,
};
use rattler_digest::{Md5, Md5Hash, Sha256, Sha256Hash};
use url::Url;

use super::LockError;

/// Whether `text` is an @EXPLICIT file (the marker on a line of its own before any URL).
pub(crate) fn is_explicit(text: &str) -> bool {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        == Some("@EXPLICIT")
}

/// The checksum a line names.
enum Expected {
    Md5(Md5Hash),
    Sha256(Sha256Hash),
}

/// One package line.
struct Entry {
    line: usize,
    url: Url,
    file_name: String,
    expected: Option<Expected>,
}

/// The records of the @EXPLICIT file at `path` (text `text`) for `target`, metadata from local
/// archives or `cache_dir`'s package cache.
pub(crate) fn records(
    path: &Path,
    text: &str,
    target: &Target,
    cache_dir: &Path,
) -> Result<Vec<RepoDataRecord>, LockError> {
    let entries = parse(path, text, target)?;
    let pkgs = cache_dir.join(rattler_cache::PACKAGE_CACHE_DIR);
    let mut records = Vec::new();
    let mut missing = Vec::new();
    for entry in entries {
        match record_for(path, &entry, &pkgs)? {
            Some(r) => records.push(r),
            None => missing.push(entry.file_name),
        }
    }
    if !missing.is_empty() {
        return Err(LockError::ExplicitMetadata {
            path: path.to_path_buf(),
            count: missing.len(),
            packages: missing.join(", "),
            cache: pkgs,
        });
    }
    records.sort_by(|a, b| a.package_record.name.cmp(&b.package_record.name));
    Ok(records)
}

fn parse(path: &Path, text: &str, target: &Target) -> Result<Vec<Entry>, LockError> {
    let bad = |line: usize, reason: String| LockError::ExplicitLine {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let mut seen_marker = false;
    let mut entries = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let raw = raw.trim();
        if let Some(platform) = raw.strip_prefix("# platform:").map(str::trim) {
            if platform != target.subdir {
                return Err(LockError::ImportPlatform {
                    path: path.to_path_buf(),
                    subdir: target.subdir.clone(),
                    available: platform.to_string(),
                });
            }
        }
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        if raw == "@EXPLICIT" {
            seen_marker = true;
            continue;
        }
        if !seen_marker {
            return Err(bad(line, "a line before @EXPLICIT".into()));
        }
        let mut url = Url::parse(raw).map_err(|e| bad(line, format!("not a URL: {e}")))?;
        let expected = match url.fragment() {
            None | Some("") => None,
            Some(f) => Some(match f.strip_prefix("sha256:") {
                Some(hex) => Expected::Sha256(
                    rattler_digest::parse_digest_from_hex::<Sha256>(hex)
                        .ok_or_else(|| bad(line, format!("`{hex}` is not a sha256")))?,
                ),
                None => Expected::Md5(
                    rattler_digest::parse_digest_from_hex::<Md5>(f)
                        .ok_or_else(|| bad(line, format!("`{f}` is not an md5")))?,
                ),
            }),
        };
        url.set_fragment(None);
        let file_name = url
            .path_segments()
            .and_then(|mut s| s.next_back())
            .unwrap_or_default()
            .to_string();
        if !(file_name.ends_with(".conda") || file_name.ends_with(".tar.bz2")) {
            return Err(bad(
                line,
                format!("`{file_name}` is not a conda package (.conda or .tar.bz2)"),
            ));
        }
        entries.push(Entry {
            line,
            url,
            file_name,
            expected,
        });
    }
    if !seen_marker {
        return Err(LockError::Import {
            path: path.to_path_buf(),
            reason: "no @EXPLICIT line".into(),
            source: None,
        });
    }
    Ok(entries)
}

/// The record of one entry, or `None` when its metadata is not available offline.
fn record_for(
    path: &Path,
    entry: &Entry,
    pkgs: &Path,
) -> Result<Option<RepoDataRecord>, LockError> {
    let read_error = |what: &Path, e: Box<dyn std::error::Error + Send + Sync>| LockError::Import {
        path: path.to_path_buf(),
        reason: format!(
            "line {}: cannot read the metadata of {}",
            entry.line,
            what.display()
        ),
        source: Some(e),
    };
    let (md5, sha256) = match entry.expected {
        Some(Expected::Md5(m)) => (Some(m), None),
        Some(Expected::Sha256(s)) => (None, Some(s)),
        None => (None, None),
    };
    let local = (entry.url.scheme() == "file")
        .then(|| entry.url.to_file_path().ok())
        .flatten()
        .filter(|p| p.is_file());
    let (index, size, md5, sha256) = if let Some(archive) = local {
        let index = rattler_package_streaming::seek::read_package_file::<IndexJson>(&archive)
            .map_err(|e| read_error(&archive, Box::new(e)))?;
        let size = fs_err::metadata(&archive)
            .map_err(|e| read_error(&archive, Box::new(e)))?
            .len();
        let actual_sha256 = rattler_digest::compute_file_digest::<Sha256>(&archive)
            .map_err(|e| read_error(&archive, Box::new(e)))?;
        let actual_md5 = rattler_digest::compute_file_digest::<Md5>(&archive)
            .map_err(|e| read_error(&archive, Box::new(e)))?;
        let mismatch = |algorithm, expected: String, actual: String| LockError::ExplicitChecksum {
            path: path.to_path_buf(),
            line: entry.line,
            archive: archive.clone(),
            algorithm,
            expected,
            actual,
        };
        if let Some(m) = md5.filter(|m| *m != actual_md5) {
            return Err(mismatch("md5", hex::encode(m), hex::encode(actual_md5)));
        }
        if let Some(s) = sha256.filter(|s| *s != actual_sha256) {
            return Err(mismatch(
                "sha256",
                hex::encode(s),
                hex::encode(actual_sha256),
            ));
        }
        (index, Some(size), Some(actual_md5), Some(actual_sha256))
    } else {
        let Some(index_json) = cached_index_json(pkgs, &entry.file_name) else {
            return Ok(None);
        };
        let index =
            IndexJson::from_path(&index_json).map_err(|e| read_error(&index_json, Box::new(e)))?;
        (index, None, md5, sha256)
    };
    let package_record = PackageRecord::from_index_json(index, size, sha256, md5)
        .map_err(|e| read_error(Path::new(&entry.file_name), Box::new(e)))?;
    let identifier: DistArchiveIdentifier = entry.file_name.parse().map_err(
        |e: <DistArchiveIdentifier as std::str::FromStr>::Err| LockError::ExplicitLine {
            path: path.to_path_buf(),
            line: entry.line,
            reason: format!("`{}` is not a package file name: {e}", entry.file_name),
        },
    )?;
    Ok(Some(RepoDataRecord {
        package_record,
        identifier,
        channel: channel_of(&entry.url),
        url: entry.url.clone(),
    }))
}

/// `info/index.json` of the package in the cache: `pkgs/NAME-VERSION-BUILD`, or the same with a
/// `-HASH` of the URL it came from (how rattler keys packages from some sources).
fn cached_index_json(pkgs: &Path, file_name: &str) -> Option<PathBuf> {
    let stem = file_name
        .strip_suffix(".conda")
        .or_else(|| file_name.strip_suffix(".tar.bz2"))?;
    let direct = pkgs.join(stem).join("info").join("index.json");
    if direct.is_file() {
        return Some(direct);
    }
    let prefix = format!("{stem}-");
    let mut candidates: Vec<PathBuf> = fs_err::read_dir(pkgs)
        .ok()?
        .flatten()
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            // `stem-HASH`, never another build (`stem-1` of a longer build string is not ours).
            name.strip_prefix(&prefix)
                .is_some_and(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .map(|e| e.path().join("info").join("index.json"))
        .filter(|p| p.is_file())
        .collect();
    candidates.sort();
    candidates.into_iter().next()
}

/// The channel a package URL belongs to: the URL without `SUBDIR/FILE`.
fn channel_of(url: &Url) -> Option<String> {
    let mut channel = url.clone();
    channel.path_segments_mut().ok()?.pop().pop();
    Some(channel.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_files_are_recognised_by_their_marker() {
        assert!(is_explicit(
            "# platform: linux-64\n\n@EXPLICIT\nhttps://x/linux-64/a-1-0.conda\n"
        ));
        assert!(!is_explicit("version: 1\nmetadata: {}\n"));
        assert!(!is_explicit("https://x/linux-64/a-1-0.conda\n@EXPLICIT\n"));
    }

    #[test]
    fn channel_is_the_url_without_subdir_and_file() {
        let url =
            Url::parse("https://conda.anaconda.org/conda-forge/linux-64/zlib-1.2.13-h0_0.conda")
                .expect("url");
        assert_eq!(
            channel_of(&url).as_deref(),
            Some("https://conda.anaconda.org/conda-forge")
        );
    }

    #[test]
    fn bad_lines_are_named_by_number() {
        let target = Target::builtin("lcls-rhel6").expect("target");
        let text = "@EXPLICIT\nhttps://x/linux-64/a-1-0.conda#nothex\n";
        let err = parse(Path::new("spec.txt"), text, &target)
            .err()
            .expect("a bad md5");
        assert!(err.to_string().starts_with("spec.txt:2: "), "{err}");
        let text = "@EXPLICIT\nhttps://x/linux-64/readme.txt\n";
        let err = parse(Path::new("spec.txt"), text, &target)
            .err()
            .expect("not a package");
        assert!(err.to_string().contains("not a conda package"), "{err}");
        let text = "# platform: osx-64\n@EXPLICIT\n";
        let err = parse(Path::new("spec.txt"), text, &target)
            .err()
            .expect("another platform");
        assert!(err.to_string().contains("osx-64"), "{err}");
    }
}
