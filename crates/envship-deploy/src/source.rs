//! Where a deploy's archive comes from, and getting it (with its sidecars) onto local disk.

use std::path::{Path, PathBuf};

use envship_pack::Sidecar;
use envship_spec::Progress;
use url::Url;

use envship_publish::{
    artifacts,
    github::{self, GithubClient, GithubConfig},
    PublishError,
};

use crate::DeployError;

/// A parsed SOURCE argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A local archive file.
    Archive(PathBuf),
    /// A directory drop holding archives.
    Directory(PathBuf),
    /// An `https://` (or, for tests and internal mirrors, `http://`) URL of an archive.
    Url(Url),
    /// `github:OWNER/REPO@TAG`: the release's archive asset.
    Github {
        /// `OWNER/REPO`.
        repo: String,
        /// Release tag.
        tag: String,
    },
}

impl Source {
    /// Parse SOURCE.
    pub fn parse(s: &str) -> Result<Self, DeployError> {
        let bad = |reason: &str| DeployError::Source {
            source_arg: s.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = s.strip_prefix("github:") {
            let (repo, tag) = rest
                .rsplit_once('@')
                .ok_or_else(|| bad("expected github:OWNER/REPO@TAG"))?;
            github::split_repo(repo).map_err(|e| bad(&e.to_string()))?;
            if tag.is_empty() {
                return Err(bad("empty tag"));
            }
            return Ok(Self::Github {
                repo: repo.into(),
                tag: tag.into(),
            });
        }
        if s.starts_with("https://") || s.starts_with("http://") {
            let u = Url::parse(s).map_err(|e| bad(&e.to_string()))?;
            return Ok(Self::Url(u));
        }
        if s.contains("://") {
            return Err(bad("only https:// URLs are supported"));
        }
        let p = PathBuf::from(s);
        let meta = std::fs::metadata(&p).map_err(|e| bad(&e.to_string()))?;
        Ok(if meta.is_dir() {
            Self::Directory(p)
        } else {
            Self::Archive(p)
        })
    }
}

/// An archive on local disk with the sidecars found beside it.
#[derive(Debug)]
pub struct Fetched {
    /// The archive.
    pub archive: PathBuf,
    /// Its `.sha256`.
    pub sha256_file: Option<PathBuf>,
    /// Its `.manifest.json`.
    pub manifest_file: Option<PathBuf>,
    /// Its `.blocks.json` (for linked deploys; optional).
    pub blocks_file: Option<PathBuf>,
    /// Keeps a download directory alive (removed when dropped).
    _tmp: Option<tempfile::TempDir>,
}

impl Fetched {
    /// A local archive with the sidecars beside it.
    pub fn local_file(archive: PathBuf) -> Self {
        Self::local(archive)
    }

    fn local(archive: PathBuf) -> Self {
        Self {
            sha256_file: artifacts::find_sidecar(&archive, ".sha256"),
            manifest_file: artifacts::find_sidecar(&archive, ".manifest.json"),
            blocks_file: artifacts::find_sidecar(&archive, Sidecar::Blocks.suffix()),
            archive,
            _tmp: None,
        }
    }
}

fn is_archive(name: &str) -> bool {
    artifacts::archive_stem(name) != name
}

/// Pick the one archive among `names`: those of environment `name` (`NAME-…`) when given, then
/// those for `subdir` (`…-SUBDIR.ext`) when that leaves several.
pub fn select<'a>(names: &[&'a str], name: Option<&str>, subdir: &str) -> Result<&'a str, String> {
    let mut c: Vec<&str> = names.iter().copied().filter(|n| is_archive(n)).collect();
    if c.is_empty() {
        return Err("no archive (.tar.gz, .tar.zst, .zip) found".into());
    }
    if let Some(n) = name {
        let prefix = format!("{n}-");
        let m: Vec<&str> = c
            .iter()
            .copied()
            .filter(|x| x.starts_with(&prefix))
            .collect();
        if !m.is_empty() {
            c = m;
        }
    }
    if c.len() > 1 {
        let suffix = format!("-{subdir}");
        let m: Vec<&str> = c
            .iter()
            .copied()
            .filter(|x| artifacts::archive_stem(x).ends_with(&suffix))
            .collect();
        if !m.is_empty() {
            c = m;
        }
    }
    match c.as_slice() {
        [one] => Ok(one),
        many => Err(format!(
            "several archives match: {}; name one, or pick the target's with --target",
            many.join(", ")
        )),
    }
}

/// Bring `source` to local disk. Downloads go into a new temp directory under `workdir`.
pub fn fetch(
    source: &Source,
    source_arg: &str,
    name: Option<&str>,
    subdir: &str,
    workdir: &Path,
    github: &GithubConfig,
    progress: &dyn Progress,
) -> Result<Fetched, DeployError> {
    let bad = |reason: String| DeployError::Source {
        source_arg: source_arg.to_string(),
        reason,
    };
    match source {
        Source::Archive(p) => Ok(Fetched::local(p.clone())),
        Source::Directory(d) => {
            let mut names = Vec::new();
            for e in std::fs::read_dir(d).map_err(DeployError::io("reading", d))? {
                let e = e.map_err(DeployError::io("reading", d))?;
                if let Some(n) = e.file_name().to_str() {
                    if !n.starts_with('.') && e.path().is_file() {
                        names.push(n.to_string());
                    }
                }
            }
            names.sort();
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let pick =
                select(&refs, name, subdir).map_err(|r| bad(format!("in {}: {r}", d.display())))?;
            Ok(Fetched::local(d.join(pick)))
        }
        Source::Url(u) => {
            let tmp = download_dir(workdir)?;
            let file = u
                .path_segments()
                .and_then(|mut s| s.next_back())
                .filter(|n| is_archive(n))
                .ok_or_else(|| bad("the URL does not end in an archive file name".into()))?
                .to_string();
            let http = github::plain_client().map_err(|e| DeployError::Fetch {
                what: u.to_string(),
                source: Box::new(e),
            })?;
            let get = |name: &str, required: bool| -> Result<Option<PathBuf>, DeployError> {
                let mut url = u.clone();
                url.path_segments_mut()
                    .map_err(|_| bad("not a hierarchical URL".into()))?
                    .pop()
                    .push(name);
                let dest = tmp.path().join(name);
                match github::download_to_file(&http, url.as_str(), &dest, &github.retry, progress)
                {
                    Ok(()) => Ok(Some(dest)),
                    Err(PublishError::Api { status: 404, .. }) if !required => Ok(None),
                    Err(e) => Err(DeployError::Fetch {
                        what: url.to_string(),
                        source: Box::new(e),
                    }),
                }
            };
            let archive = get(&file, true)?.unwrap_or_default();
            let stem = artifacts::archive_stem(&file).to_string();
            let sha = match get(&format!("{stem}{}", Sidecar::Sha256.suffix()), false)? {
                Some(p) => Some(p),
                None => get(&format!("{file}.sha256"), false)?,
            };
            let manifest = match get(&format!("{stem}{}", Sidecar::Manifest.suffix()), false)? {
                Some(p) => Some(p),
                None => get(&format!("{file}.manifest.json"), false)?,
            };
            let blocks = get(&format!("{stem}{}", Sidecar::Blocks.suffix()), false)?;
            // Signatures and provenance, for the trust gate, which finds them beside the files.
            for extra in trust_files(&file, manifest.as_deref()) {
                get(&extra, false)?;
            }
            Ok(Fetched {
                archive,
                sha256_file: sha,
                manifest_file: manifest,
                blocks_file: blocks,
                _tmp: Some(tmp),
            })
        }
        Source::Github { repo, tag } => {
            let cfg = GithubConfig {
                repo: repo.clone(),
                ..github.clone()
            };
            let fetch_err = |what: String| {
                move |source| DeployError::Fetch {
                    what,
                    source: Box::new(source),
                }
            };
            let client =
                GithubClient::new(&cfg).map_err(fetch_err(format!("github:{repo}@{tag}")))?;
            let release = client
                .release_by_tag(tag)
                .map_err(fetch_err(format!("release {tag} of {repo}")))?
                .ok_or_else(|| bad(format!("{repo} has no release {tag}")))?;
            let assets = client
                .list_assets(release.id)
                .map_err(fetch_err(format!("assets of {repo}@{tag}")))?;
            let complete: Vec<_> = assets
                .iter()
                .filter(|a| a.state.is_empty() || a.state == "uploaded")
                .collect();
            let names: Vec<&str> = complete.iter().map(|a| a.name.as_str()).collect();
            let pick = select(&names, name, subdir)
                .map_err(|r| bad(format!("release {tag}: {r}")))?
                .to_string();
            let tmp = download_dir(workdir)?;
            let get = |asset_name: &str| -> Result<Option<PathBuf>, DeployError> {
                let Some(a) = complete.iter().find(|a| a.name == asset_name) else {
                    return Ok(None);
                };
                let dest = tmp.path().join(asset_name);
                let mut f =
                    std::fs::File::create(&dest).map_err(DeployError::io("creating", &dest))?;
                client
                    .download_asset(a, &mut f, progress)
                    .map_err(fetch_err(format!("{asset_name} from {repo}@{tag}")))?;
                f.sync_all().map_err(DeployError::io("writing", &dest))?;
                Ok(Some(dest))
            };
            let archive = get(&pick)?.unwrap_or_default();
            let stem = artifacts::archive_stem(&pick).to_string();
            let sha = match get(&format!("{stem}.sha256"))? {
                Some(p) => Some(p),
                None => get(&format!("{pick}.sha256"))?,
            };
            let manifest = match get(&format!("{stem}.manifest.json"))? {
                Some(p) => Some(p),
                None => get(&format!("{pick}.manifest.json"))?,
            };
            let blocks = get(&format!("{stem}{}", Sidecar::Blocks.suffix()))?;
            for extra in trust_files(&pick, manifest.as_deref()) {
                get(&extra)?;
            }
            Ok(Fetched {
                archive,
                sha256_file: sha,
                manifest_file: manifest,
                blocks_file: blocks,
                _tmp: Some(tmp),
            })
        }
    }
}

/// For a `github:` source whose release has no `ARCHIVE.sigstore.json`: the archive's
/// attestation from the GitHub attestations API, written beside it (nothing when there is none,
/// or for other sources).
pub fn fetch_attestation(
    src: &Source,
    archive: &Path,
    sha256: &str,
    github: &GithubConfig,
) -> Result<(), DeployError> {
    let Source::Github { repo, .. } = src else {
        return Ok(());
    };
    let cfg = GithubConfig {
        repo: repo.clone(),
        ..github.clone()
    };
    let what = format!("the attestations of sha256:{sha256} in {repo}");
    let fetch_err = |source| DeployError::Fetch {
        what: what.clone(),
        source: Box::new(source),
    };
    let client = GithubClient::new(&cfg).map_err(fetch_err)?;
    let bundles = client.attestation_bundles(sha256).map_err(fetch_err)?;
    if let Some(first) = bundles.first() {
        let dest = envship_trust::check::bundle_path(archive);
        std::fs::write(&dest, first).map_err(DeployError::io("writing", &dest))?;
    }
    Ok(())
}

/// The names of the archive's and its manifest's signatures and the archive's provenance
/// bundle (`FILE.minisig`, `ARCHIVE.sigstore.json`).
fn trust_files(archive: &str, manifest: Option<&Path>) -> Vec<String> {
    let mut out = vec![
        format!("{archive}.minisig"),
        format!("{archive}.sigstore.json"),
    ];
    if let Some(m) = manifest.and_then(|m| m.file_name()) {
        out.push(format!("{}.minisig", m.to_string_lossy()));
    }
    out
}

fn download_dir(workdir: &Path) -> Result<tempfile::TempDir, DeployError> {
    std::fs::create_dir_all(workdir).map_err(DeployError::io("creating", workdir))?;
    tempfile::Builder::new()
        .prefix("download-")
        .tempdir_in(workdir)
        .map_err(DeployError::io("creating a download directory in", workdir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sources() {
        assert_eq!(
            Source::parse("github:slac-lcls/env@v1.2").expect("github"),
            Source::Github {
                repo: "slac-lcls/env".into(),
                tag: "v1.2".into()
            }
        );
        assert!(matches!(
            Source::parse("https://x.org/a/e-1-linux-64.tar.gz"),
            Ok(Source::Url(_))
        ));
        assert!(Source::parse("github:nope@v1").is_err());
        assert!(Source::parse("github:o/r@").is_err());
        assert!(Source::parse("ftp://x/y.tar.gz").is_err());
        let err = Source::parse("/does/not/exist.tar.gz").expect_err("missing");
        assert!(err.to_string().contains("/does/not/exist.tar.gz"));
    }

    #[test]
    fn selects_one_archive() {
        let names = [
            "a-1-linux-64.tar.gz",
            "a-1-linux-64.sha256",
            "a-1-osx-64.tar.gz",
            "b-2-linux-64.tar.gz",
        ];
        assert_eq!(
            select(&names, Some("a"), "linux-64"),
            Ok("a-1-linux-64.tar.gz")
        );
        assert_eq!(
            select(&names, Some("b"), "linux-64"),
            Ok("b-2-linux-64.tar.gz")
        );
        assert!(select(&names, None, "linux-64")
            .expect_err("ambiguous")
            .contains("several"));
        assert!(select(&["x.txt"], None, "linux-64").is_err());
    }
}
