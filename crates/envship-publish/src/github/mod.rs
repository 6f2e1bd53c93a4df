//! GitHub releases: the subset of the REST API publish and deploy need, with retries.
//!
//! Every request goes through one retry loop that backs off on 5xx, transport failures (resets,
//! EOFs, timeouts) and rate limits (429, or 403 with `Retry-After`/`x-ratelimit-remaining: 0` —
//! GitHub's secondary rate limit), honouring the server's wait. Uploads go to the host named by
//! the release's `upload_url` template (uploads.github.com in reality, anything in tests and on
//! GitHub Enterprise). Before every upload attempt the release's assets are listed and any asset
//! of the same name is deleted: that is how a same-name asset is replaced, and how the half
//! (`starter`) asset an interrupted upload leaves behind disappears, so after a successful
//! publish exactly one complete copy of each file exists.

pub mod notes;
mod transfer;

use std::{path::PathBuf, time::Duration};

use envship_spec::Progress;
use reqwest::{
    blocking::{Client, RequestBuilder, Response},
    header::{HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION},
    Method, StatusCode,
};
use serde::{Deserialize, Serialize};

use crate::{
    dropdir,
    error::PublishError,
    retry::{parse_retry_after, until_epoch, RetryPolicy},
    secret::Secret,
};

pub use transfer::{download, download_to_file, plain_client, upload_base};

/// The public GitHub API.
pub const DEFAULT_API_URL: &str = "https://api.github.com";

/// How to reach a repository's releases.
#[derive(Clone, Debug)]
pub struct GithubConfig {
    /// API base, e.g. `https://api.github.com` or `https://ghe.example/api/v3` (`GITHUB_API_URL`).
    pub api_url: String,
    /// `OWNER/REPO`.
    pub repo: String,
    /// Token with `contents: write` (publish) or read access (deploy of a private repo).
    pub token: Option<Secret>,
    /// Backoff for failed requests.
    pub retry: RetryPolicy,
}

/// A release as the API returns it (the fields envship uses).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Release {
    /// Release id.
    pub id: u64,
    /// Its tag.
    pub tag_name: String,
    /// RFC 6570 template of the upload endpoint, e.g. `https://uploads.github.com/repos/o/r/releases/1/assets{?name,label}`.
    pub upload_url: String,
    /// The release's web page.
    #[serde(default)]
    pub html_url: String,
    /// Its notes (Markdown), as the API returns them; not part of envship's reports.
    #[serde(default, skip_serializing)]
    pub body: Option<String>,
    /// When it was created (RFC 3339), which orders "the previous release".
    #[serde(default, skip_serializing)]
    pub created_at: Option<String>,
    /// A draft is nobody's previous release.
    #[serde(default, skip_serializing)]
    pub draft: bool,
}

/// A release asset.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Asset {
    /// Asset id.
    pub id: u64,
    /// File name.
    pub name: String,
    /// Size in bytes.
    #[serde(default)]
    pub size: u64,
    /// `uploaded` when complete; `starter` while (or after an interrupted) upload.
    #[serde(default)]
    pub state: String,
    /// `sha256:HEX`, when GitHub computed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Public download URL.
    #[serde(default)]
    pub browser_download_url: String,
}

/// One uploaded file.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct UploadedAsset {
    /// The local file.
    pub path: PathBuf,
    /// The asset.
    pub asset: Asset,
    /// sha256 of the local file.
    pub sha256: String,
    /// Attempts it took.
    pub attempts: u32,
}

/// What a release publish did.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ReleaseReport {
    /// The release.
    pub release: Release,
    /// Whether envship created it.
    pub created: bool,
    /// Uploaded files, in order.
    pub assets: Vec<UploadedAsset>,
}

/// A client for one repository.
pub struct GithubClient {
    http: Client,
    api: String,
    owner: String,
    repo: String,
    token: Option<Secret>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for GithubClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubClient")
            .field("api", &self.api)
            .field("repo", &format_args!("{}/{}", self.owner, self.repo))
            .field("token", &self.token)
            .finish()
    }
}

/// Timeout of API calls (not transfers).
const API_TIMEOUT: Duration = Duration::from_secs(60);
/// Timeout of one upload or download; archives can be gigabytes on a slow link.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// `OWNER/REPO` → (owner, repo).
pub fn split_repo(repo: &str) -> Result<(String, String), PublishError> {
    let bad = || PublishError::BadRepo(repo.to_string());
    let (o, r) = repo.split_once('/').ok_or_else(bad)?;
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && s != "."
            && s != ".."
    };
    if ok(o) && ok(r) {
        Ok((o.to_string(), r.to_string()))
    } else {
        Err(bad())
    }
}

/// Outcome of one attempt, for the retry loop.
enum Attempt {
    Done(Response),
    Retry { why: String, wait: Option<Duration> },
    Fail(PublishError),
}

impl GithubClient {
    /// A client for `config.repo`.
    pub fn new(config: &GithubConfig) -> Result<Self, PublishError> {
        let (owner, repo) = split_repo(&config.repo)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            "X-GitHub-Api-Version",
            HeaderValue::from_static("2022-11-28"),
        );
        if let Some(t) = &config.token {
            let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose())).map_err(|_| {
                PublishError::BadResponse {
                    url: "token".into(),
                    message: "the token contains characters not allowed in an HTTP header".into(),
                }
            })?;
            // Keeps it out of reqwest's and hyper's Debug output.
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        let http = Client::builder()
            .user_agent(concat!("envship/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(30))
            .timeout(None)
            .build()
            .map_err(|e| PublishError::Http {
                method: "-".into(),
                url: config.api_url.clone(),
                message: e.to_string(),
            })?;
        Ok(Self {
            http,
            api: config.api_url.trim_end_matches('/').to_string(),
            owner,
            repo,
            token: config.token.clone(),
            retry: config.retry.clone(),
        })
    }

    fn repo_url(&self, rest: &str) -> String {
        format!("{}/repos/{}/{}{rest}", self.api, self.owner, self.repo)
    }

    fn scrub(&self, s: &str) -> String {
        match &self.token {
            Some(t) => t.scrub(s),
            None => s.to_string(),
        }
    }

    /// Send with retries. `build` makes a fresh request per attempt; `before_retry` runs before
    /// every attempt after the first (uploads use it to delete half assets). Statuses in `ok`
    /// other than 2xx (404 for "no such release") are returned rather than failed.
    fn send(
        &self,
        method: &Method,
        url: &str,
        ok: &[StatusCode],
        mut build: impl FnMut() -> Result<RequestBuilder, PublishError>,
        mut before_retry: impl FnMut() -> Result<(), PublishError>,
    ) -> Result<(Response, u32), PublishError> {
        let shown_url = self.scrub(url.split('?').next().unwrap_or(url));
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            if attempt > 1 {
                before_retry()?;
            }
            let outcome = match build()?.send() {
                Ok(resp) => self.classify(method, &shown_url, ok, resp),
                Err(e) if e.is_builder() => Attempt::Fail(PublishError::Http {
                    method: method.to_string(),
                    url: shown_url.clone(),
                    message: self.scrub(&error_chain(&e)),
                }),
                Err(e) => Attempt::Retry {
                    why: self.scrub(&error_chain(&e)),
                    wait: None,
                },
            };
            match outcome {
                Attempt::Done(r) => return Ok((r, attempt)),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { why, wait } => {
                    if attempt >= self.retry.max_attempts {
                        return Err(PublishError::Http {
                            method: method.to_string(),
                            url: shown_url,
                            message: format!("gave up after {attempt} attempts; last: {why}"),
                        });
                    }
                    if let Some(w) = wait {
                        if w > self.retry.max_server_delay {
                            return Err(PublishError::Http {
                                method: method.to_string(),
                                url: shown_url,
                                message: format!(
                                    "{why}; the server asks to wait {}s, more than the {}s allowed",
                                    w.as_secs(),
                                    self.retry.max_server_delay.as_secs()
                                ),
                            });
                        }
                    }
                    let delay = self.retry.delay(attempt, wait);
                    tracing::warn!(
                        "{method} {shown_url}: {why}; retrying in {:.1}s (attempt {}/{})",
                        delay.as_secs_f64(),
                        attempt + 1,
                        self.retry.max_attempts
                    );
                    std::thread::sleep(delay);
                }
            }
        }
    }

    fn classify(&self, method: &Method, url: &str, ok: &[StatusCode], resp: Response) -> Attempt {
        let status = resp.status();
        if status.is_success() || ok.contains(&status) {
            return Attempt::Done(resp);
        }
        let headers = resp.headers().clone();
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header("retry-after").and_then(|v| parse_retry_after(&v));
        let body = resp.text().unwrap_or_default();
        let message = self.scrub(&api_message(&body));
        let remaining_zero = header("x-ratelimit-remaining").as_deref() == Some("0");
        let rate_limited = status == StatusCode::TOO_MANY_REQUESTS
            || (status == StatusCode::FORBIDDEN
                && (retry_after.is_some()
                    || remaining_zero
                    || message.to_ascii_lowercase().contains("rate limit")));
        if rate_limited {
            let wait = retry_after.or_else(|| {
                if remaining_zero {
                    header("x-ratelimit-reset").and_then(|r| until_epoch(&r))
                } else {
                    None
                }
            });
            // GitHub: without a hint, wait at least a minute for a secondary limit.
            let wait = wait.or(Some(
                self.retry
                    .backoff(1)
                    .max(Duration::from_secs(60))
                    .min(self.retry.max_delay),
            ));
            return Attempt::Retry {
                why: format!("rate limited (HTTP {}): {message}", status.as_u16()),
                wait,
            };
        }
        if status.is_server_error() {
            return Attempt::Retry {
                why: format!("HTTP {}: {message}", status.as_u16()),
                wait: retry_after,
            };
        }
        let help = match status.as_u16() {
            401 => "the token is invalid or expired".to_string(),
            403 => "the token lacks permission: publishing needs `contents: write` (in Actions: `permissions: contents: write`)".to_string(),
            404 => format!("check that {}/{} exists and the token can see it", self.owner, self.repo),
            422 => "the API refused the request as invalid".to_string(),
            _ => "see the message above".to_string(),
        };
        Attempt::Fail(PublishError::Api {
            method: method.to_string(),
            url: url.to_string(),
            status: status.as_u16(),
            message,
            help,
        })
    }

    fn json<T: serde::de::DeserializeOwned>(
        &self,
        url: &str,
        resp: Response,
    ) -> Result<T, PublishError> {
        let text = resp.text().map_err(|e| PublishError::Http {
            method: "read".into(),
            url: self.scrub(url),
            message: self.scrub(&error_chain(&e)),
        })?;
        serde_json::from_str(&text).map_err(|e| PublishError::BadResponse {
            url: self.scrub(url),
            message: e.to_string(),
        })
    }

    fn api_request(&self, method: Method, url: &str) -> RequestBuilder {
        self.http
            .request(method, url)
            .header(ACCEPT, "application/vnd.github+json")
            .timeout(API_TIMEOUT)
    }

    /// The release for `tag`, if there is one.
    pub fn release_by_tag(&self, tag: &str) -> Result<Option<Release>, PublishError> {
        let url = self.repo_url(&format!("/releases/tags/{}", encode_segment(tag)));
        let (resp, _) = self.send(
            &Method::GET,
            &url,
            &[StatusCode::NOT_FOUND],
            || Ok(self.api_request(Method::GET, &url)),
            || Ok(()),
        )?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        self.json(&url, resp).map(Some)
    }

    /// Create a release for `tag` (the tag is created from the default branch if absent).
    pub fn create_release(&self, tag: &str, prerelease: bool) -> Result<Release, PublishError> {
        let url = self.repo_url("/releases");
        let body = serde_json::json!({ "tag_name": tag, "name": tag, "prerelease": prerelease });
        let (resp, _) = self.send(
            &Method::POST,
            &url,
            &[],
            || Ok(self.api_request(Method::POST, &url).json(&body)),
            || {
                // A retried create whose first attempt did land must not create a second release.
                Ok(())
            },
        )?;
        self.json(&url, resp)
    }

    /// The release for `tag`, created when absent; `true` when created.
    pub fn ensure_release(
        &self,
        tag: &str,
        prerelease: bool,
    ) -> Result<(Release, bool), PublishError> {
        if let Some(r) = self.release_by_tag(tag)? {
            return Ok((r, false));
        }
        match self.create_release(tag, prerelease) {
            Ok(r) => Ok((r, true)),
            // Another job created it in between (422 already_exists), or a retried create landed.
            Err(PublishError::Api { status: 422, .. }) => match self.release_by_tag(tag)? {
                Some(r) => Ok((r, false)),
                None => self.create_release(tag, prerelease).map(|r| (r, true)),
            },
            Err(e) => Err(e),
        }
    }

    /// Every asset of a release (all pages).
    pub fn list_assets(&self, release_id: u64) -> Result<Vec<Asset>, PublishError> {
        self.pages(&format!("/releases/{release_id}/assets"), usize::MAX)
    }

    /// Every item of the list at `path` (`/releases`, …), 100 per page, at most `max_pages`.
    fn pages<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        max_pages: usize,
    ) -> Result<Vec<T>, PublishError> {
        let mut out = Vec::new();
        for page in 1..=max_pages {
            let url = self.repo_url(&format!("{path}?per_page=100&page={page}"));
            let (resp, _) = self.send(
                &Method::GET,
                &url,
                &[],
                || Ok(self.api_request(Method::GET, &url)),
                || Ok(()),
            )?;
            let batch: Vec<T> = self.json(&url, resp)?;
            let n = batch.len();
            out.extend(batch);
            if n < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// Delete an asset; one that is already gone counts as deleted.
    pub fn delete_asset(&self, asset_id: u64) -> Result<(), PublishError> {
        let url = self.repo_url(&format!("/releases/assets/{asset_id}"));
        self.send(
            &Method::DELETE,
            &url,
            &[StatusCode::NOT_FOUND],
            || Ok(self.api_request(Method::DELETE, &url)),
            || Ok(()),
        )?;
        Ok(())
    }

    fn delete_named(&self, release_id: u64, name: &str) -> Result<usize, PublishError> {
        let mut n = 0;
        for a in self
            .list_assets(release_id)?
            .into_iter()
            .filter(|a| a.name == name)
        {
            tracing::info!(
                "deleting existing asset {} (id {}, state {}, {} bytes)",
                a.name,
                a.id,
                a.state,
                a.size
            );
            self.delete_asset(a.id)?;
            n += 1;
        }
        Ok(n)
    }
}

/// Publish `files` to the release for `tag` in `config.repo`, creating it when absent.
/// Archives are checked against their `.sha256` sidecar before anything is uploaded; after the
/// uploads the asset list is read back to confirm exactly one complete copy of each file.
pub fn publish_release(
    config: &GithubConfig,
    tag: &str,
    files: &[PathBuf],
    prerelease: bool,
    progress: &dyn Progress,
) -> Result<ReleaseReport, PublishError> {
    dropdir::preflight(files)?;
    let client = GithubClient::new(config)?;
    let (release, created) = client.ensure_release(tag, prerelease)?;
    let mut assets = Vec::new();
    for f in files {
        assets.push(client.upload_asset(&release, f, progress)?);
    }
    let listed = client.list_assets(release.id)?;
    for up in &assets {
        let same: Vec<_> = listed.iter().filter(|a| a.name == up.asset.name).collect();
        let complete = same.len() == 1
            && same[0].size == up.asset.size
            && (same[0].state.is_empty() || same[0].state == "uploaded");
        if !complete {
            return Err(PublishError::BadResponse {
                url: client.scrub(&release.html_url),
                message: format!("after upload the release lists {} asset(s) named {}, expected one complete copy", same.len(), up.asset.name),
            });
        }
    }
    Ok(ReleaseReport {
        release,
        created,
        assets,
    })
}

fn encode_segment(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// The `message` of a GitHub error body (plus `errors[].code`), else the body's start.
fn api_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            let codes: Vec<_> = v
                .get("errors")
                .and_then(|e| e.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.get("code").and_then(|c| c.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            return if codes.is_empty() {
                m.to_string()
            } else {
                format!("{m} ({})", codes.join(", "))
            };
        }
    }
    let t = body.trim();
    t.chars().take(300).collect()
}

/// An error and its causes on one line (reqwest hides the useful part in the sources).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        src = c.source();
    }
    s
}
