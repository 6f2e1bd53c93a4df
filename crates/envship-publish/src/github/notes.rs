//! Release notes: what changed since the previous release, written into the release body.
//!
//! After an archive is published, [`update_release_notes`] looks for the newest earlier release
//! of the same repository (not a draft, created before this one) that holds a manifest of the
//! same environment for the same target, downloads it (with its audit report, when there is
//! one), and writes [`envship_pack::diff`]'s Markdown into the body of this release.
//!
//! The section is fenced by HTML comments naming the environment and target, so a re-publish
//! replaces its own section and nothing else: notes written by hand in the web UI, and the
//! sections of the other environments or targets published into the same release (a fleet's
//! one release per member), stay as they are.

use std::path::Path;

use envship_pack::{
    diff::{self, render_markdown, Side, SideKind},
    format::Sidecar,
    Manifest,
};
use reqwest::Method;
use serde::Serialize;

use super::{GithubClient, GithubConfig, Release};
use crate::{artifacts, error::PublishError};

/// At most this many earlier releases are searched for a previous manifest: a repository's
/// releases of other environments come first in a fleet, but a thousand is years of nightlies.
const MAX_RELEASES: usize = 1000;

/// What [`update_release_notes`] did for one archive.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct NotesOutcome {
    /// The archive's environment name.
    pub name: String,
    /// Its target.
    pub target: String,
    /// The release compared against, when one was found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousRelease>,
    /// Whether the release body changed.
    pub written: bool,
}

/// The earlier release a diff was made against.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct PreviousRelease {
    /// Its tag.
    pub tag: String,
    /// The environment version its manifest records.
    pub version: String,
    /// The manifest asset.
    pub manifest: String,
}

/// The markers around the section of `name` for `target` in a release body.
fn markers(name: &str, target: &str) -> (String, String) {
    (
        format!("<!-- envship:changes {name} {target} -->"),
        format!("<!-- /envship:changes {name} {target} -->"),
    )
}

/// `body` with the section between `start` and `end` replaced by `section` (appended when the
/// body has none). Text outside the markers is kept byte for byte.
pub fn splice_section(body: &str, start: &str, end: &str, section: &str) -> String {
    let fenced = format!("{start}\n{}\n{end}", section.trim_end());
    if let Some(s) = body.find(start) {
        if let Some(e) = body[s..].find(end) {
            let e = s + e + end.len();
            return format!("{}{fenced}{}", &body[..s], &body[e..]);
        }
    }
    if body.trim().is_empty() {
        return format!("{fenced}\n");
    }
    format!("{}\n\n{fenced}\n", body.trim_end())
}

impl GithubClient {
    /// The repository's releases, newest first as the API lists them (at most [`MAX_RELEASES`]).
    pub fn list_releases(&self) -> Result<Vec<Release>, PublishError> {
        self.pages("/releases", MAX_RELEASES / 100)
    }

    /// Replace the body (the release notes) of release `id`.
    pub fn set_release_body(&self, id: u64, body: &str) -> Result<Release, PublishError> {
        let url = self.repo_url(&format!("/releases/{id}"));
        let payload = serde_json::json!({ "body": body });
        let (resp, _) = self.send(
            &Method::PATCH,
            &url,
            &[],
            || Ok(self.api_request(Method::PATCH, &url).json(&payload)),
            || Ok(()),
        )?;
        self.json(&url, resp)
    }

    /// Download asset `name` of release `id` into `dir`, if the release has it complete.
    fn fetch_named(
        &self,
        assets: &[super::Asset],
        name: &str,
        dir: &Path,
    ) -> Result<Option<std::path::PathBuf>, PublishError> {
        let Some(asset) = assets
            .iter()
            .find(|a| a.name == name && (a.state.is_empty() || a.state == "uploaded"))
        else {
            return Ok(None);
        };
        let path = dir.join(name);
        let mut file = std::fs::File::create(&path).map_err(PublishError::io("writing", &path))?;
        self.download_asset(asset, &mut file, &envship_spec::NoProgress)?;
        Ok(Some(path))
    }

    /// The newest release before `current` with a manifest of `name` for `target`, downloaded
    /// into `dir` (with its audit report beside it when the release has one).
    fn previous_manifest(
        &self,
        current: &Release,
        name: &str,
        target: &str,
        dir: &Path,
    ) -> Result<Option<(PreviousRelease, std::path::PathBuf)>, PublishError> {
        let mut earlier: Vec<Release> = self
            .list_releases()?
            .into_iter()
            .filter(|r| r.id != current.id && r.tag_name != current.tag_name && !r.draft)
            .filter(|r| match (&r.created_at, &current.created_at) {
                // RFC 3339 UTC timestamps as GitHub writes them compare as text.
                (Some(r), Some(c)) => r < c,
                _ => true,
            })
            .collect();
        // Newest first; the API's order is kept for releases without a time.
        earlier.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        let prefix = format!("{name}-");
        for release in earlier {
            let assets = self.list_assets(release.id)?;
            let candidates = assets.iter().filter(|a| {
                a.name.starts_with(&prefix) && a.name.ends_with(Sidecar::Manifest.suffix())
            });
            for asset in candidates {
                let Some(path) = self.fetch_named(&assets, &asset.name, dir)? else {
                    continue;
                };
                let manifest = match Manifest::read(&path) {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(
                            "release {}: {} is not a manifest envship can read, skipped: {e}",
                            release.tag_name,
                            asset.name
                        );
                        continue;
                    }
                };
                if manifest.name != name || manifest.target.name != target {
                    continue;
                }
                let stem = asset
                    .name
                    .strip_suffix(Sidecar::Manifest.suffix())
                    .unwrap_or(&asset.name);
                let audit = format!("{stem}{}", Sidecar::Audit.suffix());
                self.fetch_named(&assets, &audit, dir)?;
                let previous = PreviousRelease {
                    tag: release.tag_name.clone(),
                    version: manifest.version,
                    manifest: asset.name.clone(),
                };
                return Ok(Some((previous, path)));
            }
        }
        Ok(None)
    }
}

/// Write what changed since the previous release of `archive`'s environment and target into
/// the body of `release`. `Ok(None)` when the archive has no manifest beside it (nothing to
/// compare); an outcome without `previous` when no earlier release has one.
pub fn update_release_notes(
    config: &GithubConfig,
    release: &Release,
    archive: &Path,
) -> Result<Option<NotesOutcome>, PublishError> {
    let Some(manifest_path) = artifacts::find_sidecar(archive, Sidecar::Manifest.suffix()) else {
        return Ok(None);
    };
    let notes_error = |source: diff::DiffError| PublishError::Notes {
        path: manifest_path.clone(),
        source: Box::new(source),
    };
    let manifest = Manifest::read(&manifest_path).map_err(|e| {
        notes_error(diff::DiffError::Read {
            path: manifest_path.clone(),
            source: Box::new(e),
        })
    })?;
    let audit = Sidecar::Audit.path_for(archive);
    let new = Side::from_manifest(SideKind::Archive, archive, &manifest, Some(&audit))
        .map_err(notes_error)?;
    let client = GithubClient::new(config)?;
    let dir = tempfile::tempdir().map_err(PublishError::io("creating a temp dir in", "/tmp"))?;
    let mut outcome = NotesOutcome {
        name: manifest.name.clone(),
        target: manifest.target.name.clone(),
        previous: None,
        written: false,
    };
    let Some((previous, old_path)) =
        client.previous_manifest(release, &manifest.name, &manifest.target.name, dir.path())?
    else {
        return Ok(Some(outcome));
    };
    let old = Side::open(&old_path).map_err(|source| PublishError::Notes {
        path: old_path.clone(),
        source: Box::new(source),
    })?;
    let section = render_markdown(&diff::diff(&old, &new));
    // The body as it is now: another archive of this publish may have written its section.
    let body = match client.release_by_tag(&release.tag_name)? {
        Some(r) => r.body.unwrap_or_default(),
        None => release.body.clone().unwrap_or_default(),
    };
    let (start, end) = markers(&manifest.name, &manifest.target.name);
    let new_body = splice_section(&body, &start, &end, &section);
    if new_body != body {
        client.set_release_body(release.id, &new_body)?;
        outcome.written = true;
    }
    outcome.previous = Some(previous);
    Ok(Some(outcome))
}

impl GithubClient {
    /// The Sigstore bundles GitHub keeps for an artifact with this sha256 (the attestations
    /// API: `GET /repos/OWNER/REPO/attestations/sha256:DIGEST`), as JSON texts; empty when
    /// there are none.
    pub fn attestation_bundles(&self, sha256: &str) -> Result<Vec<String>, PublishError> {
        let url = self.repo_url(&format!("/attestations/sha256:{sha256}"));
        let (resp, _) = self.send(
            &Method::GET,
            &url,
            &[reqwest::StatusCode::NOT_FOUND],
            || Ok(self.api_request(Method::GET, &url)),
            || Ok(()),
        )?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(Vec::new());
        }
        let v: serde_json::Value = self.json(&url, resp)?;
        Ok(v["attestations"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|x| x["bundle"].is_object())
                    .map(|x| x["bundle"].to_string())
                    .collect()
            })
            .unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_appended_then_replaced_and_the_rest_is_kept() {
        let (s, e) = markers("psana", "lcls-rhel6");
        let first = splice_section("Hand-written notes.\n", &s, &e, "### Changes\none\n");
        assert_eq!(
            first,
            format!("Hand-written notes.\n\n{s}\n### Changes\none\n{e}\n")
        );
        let (s2, e2) = markers("psana", "rhel8");
        let both = splice_section(&first, &s2, &e2, "rhel8 changes");
        let again = splice_section(&both, &s, &e, "### Changes\ntwo");
        assert!(again.starts_with("Hand-written notes.\n\n"), "{again}");
        assert!(
            again.contains(&format!("{s}\n### Changes\ntwo\n{e}")),
            "{again}"
        );
        assert!(!again.contains("one"), "{again}");
        assert!(
            again.contains(&format!("{s2}\nrhel8 changes\n{e2}")),
            "{again}"
        );
        assert_eq!(splice_section(&again, &s, &e, "### Changes\ntwo"), again);
    }

    #[test]
    fn an_empty_body_gets_just_the_section() {
        let (s, e) = markers("a", "t");
        assert_eq!(splice_section("", &s, &e, "x\n"), format!("{s}\nx\n{e}\n"));
    }
}
