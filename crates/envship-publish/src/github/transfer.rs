//! Moving bytes: asset uploads (streamed, with progress and a sha256 of what was sent) and
//! downloads (release assets and plain URLs), each through the retry loop.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use envship_spec::{Progress, ProgressUnit};
use reqwest::{
    blocking::Client,
    header::{ACCEPT, CONTENT_TYPE},
    Method, StatusCode,
};
use url::Url;

use super::{
    api_message, error_chain, Asset, GithubClient, Release, UploadedAsset, TRANSFER_TIMEOUT,
};
use crate::{
    dropdir,
    error::PublishError,
    hash,
    retry::{parse_retry_after, RetryPolicy},
    secret::Secret,
};

impl GithubClient {
    /// Upload `path` as an asset of `release`, replacing any asset of the same name, streaming
    /// the file with progress in phase `upload`.
    pub fn upload_asset(
        &self,
        release: &Release,
        path: &Path,
        progress: &dyn Progress,
    ) -> Result<UploadedAsset, PublishError> {
        let name = dropdir::file_name(path)?;
        let sha256 = hash::sha256_file(path).map_err(PublishError::io("reading", path))?;
        let len = fs_err::metadata(path)
            .map_err(PublishError::io("reading", path))?
            .len();
        let mut url =
            upload_base(&release.upload_url).map_err(|message| PublishError::BadResponse {
                url: self.scrub(&release.upload_url),
                message,
            })?;
        url.query_pairs_mut().append_pair("name", &name);
        let url = url.to_string();
        self.delete_named(release.id, &name)?;
        // The body must be 'static, so the reader only counts bytes; a scoped thread forwards
        // the count to `progress`, which is borrowed.
        let sent = Arc::new(AtomicU64::new(0));
        let done = AtomicBool::new(false);
        let (resp, attempts) = std::thread::scope(|s| {
            s.spawn(|| {
                let mut last = 0;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let cur = sent.load(Ordering::Acquire);
                    if cur < last {
                        last = 0;
                    }
                    if cur > last {
                        progress.advance("upload", cur - last);
                        last = cur;
                    }
                    if finished {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
            let r = self.send(
                &Method::POST,
                &url,
                &[],
                || {
                    let file =
                        std::fs::File::open(path).map_err(PublishError::io("reading", path))?;
                    sent.store(0, Ordering::Release);
                    progress.start("upload", Some(len), ProgressUnit::Bytes);
                    progress.message("upload", &name);
                    let reader = CountingReader {
                        inner: file,
                        count: Arc::clone(&sent),
                    };
                    Ok(self
                        .http
                        .post(&url)
                        .header(ACCEPT, "application/vnd.github+json")
                        .header(CONTENT_TYPE, "application/octet-stream")
                        .timeout(TRANSFER_TIMEOUT)
                        .body(reqwest::blocking::Body::sized(reader, len)))
                },
                || {
                    progress.finish("upload");
                    self.delete_named(release.id, &name).map(|_| ())
                },
            );
            done.store(true, Ordering::Release);
            r
        })?;
        progress.finish("upload");
        let asset: Asset = self.json(&url, resp)?;
        if asset.size != len || (!asset.state.is_empty() && asset.state != "uploaded") {
            return Err(PublishError::BadResponse {
                url: self.scrub(&url),
                message: format!(
                    "asset {name} is {} bytes in state `{}`, expected {len} bytes uploaded",
                    asset.size, asset.state
                ),
            });
        }
        if let Some(d) = asset
            .digest
            .as_deref()
            .and_then(|d| d.strip_prefix("sha256:"))
        {
            if d != sha256 {
                return Err(PublishError::Checksum {
                    path: path.to_path_buf(),
                    expected: sha256,
                    actual: d.to_string(),
                });
            }
        }
        Ok(UploadedAsset {
            path: path.to_path_buf(),
            asset,
            sha256,
            attempts,
        })
    }

    /// Stream an asset's bytes into `out` (phase `download`); returns the byte count.
    pub fn download_asset(
        &self,
        asset: &Asset,
        out: &mut dyn Write,
        progress: &dyn Progress,
    ) -> Result<u64, PublishError> {
        let url = self.repo_url(&format!("/releases/assets/{}", asset.id));
        download(
            &self.http,
            &url,
            Some("application/octet-stream"),
            out,
            progress,
            &self.retry,
            self.token.as_ref(),
        )
    }
}

/// Download `url` into `out` with retries, streaming (phase `download`). Used for release assets
/// and plain `https://` sources. A retried transfer restarts `out` via the returned count only
/// when nothing was written yet; after partial writes a failure is returned so the caller can
/// discard its temp file.
pub fn download(
    http: &Client,
    url: &str,
    accept: Option<&str>,
    out: &mut dyn Write,
    progress: &dyn Progress,
    retry: &RetryPolicy,
    token: Option<&Secret>,
) -> Result<u64, PublishError> {
    let scrub = |s: &str| token.map(|t| t.scrub(s)).unwrap_or_else(|| s.to_string());
    let shown = scrub(url.split('?').next().unwrap_or(url));
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut req = http.get(url).timeout(TRANSFER_TIMEOUT);
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        let err = match req.send() {
            Ok(mut resp) if resp.status().is_success() => {
                let length = resp.content_length();
                progress.start("download", length, ProgressUnit::Bytes);
                let mut buf = vec![0u8; 256 * 1024];
                let mut total = 0u64;
                let res = loop {
                    match resp.read(&mut buf) {
                        Ok(0) => break Ok(total),
                        Ok(n) => {
                            if let Err(e) = out.write_all(&buf[..n]) {
                                break Err(PublishError::Io {
                                    action: "writing download of",
                                    path: PathBuf::from(&shown),
                                    source: e,
                                });
                            }
                            total += n as u64;
                            progress.advance("download", n as u64);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            break Err(PublishError::Http {
                                method: "GET".into(),
                                url: shown.clone(),
                                message: scrub(&format!("reading body: {e}")),
                            })
                        }
                    }
                };
                progress.finish("download");
                if let Some(expected) = length {
                    if res.as_ref().is_ok_and(|t| *t != expected) {
                        return Err(PublishError::Http {
                            method: "GET".into(),
                            url: shown,
                            message: format!("truncated: {} of {expected} bytes", res.unwrap_or(0)),
                        });
                    }
                }
                return res;
            }
            Ok(resp) => {
                let status = resp.status();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                let body = scrub(&api_message(&resp.text().unwrap_or_default()));
                if !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
                    || attempt >= retry.max_attempts
                {
                    return Err(PublishError::Api {
                        method: "GET".into(),
                        url: shown,
                        status: status.as_u16(),
                        message: body,
                        help: "check the URL, and the token for a private repository".into(),
                    });
                }
                (format!("HTTP {}", status.as_u16()), retry_after)
            }
            Err(e) => {
                if attempt >= retry.max_attempts || e.is_builder() {
                    return Err(PublishError::Http {
                        method: "GET".into(),
                        url: shown,
                        message: scrub(&error_chain(&e)),
                    });
                }
                (scrub(&error_chain(&e)), None)
            }
        };
        let delay = retry.delay(attempt, err.1);
        tracing::warn!(
            "GET {shown}: {}; retrying in {:.1}s",
            err.0,
            delay.as_secs_f64()
        );
        std::thread::sleep(delay);
    }
}

/// `https://host/path/assets{?name,label}` → `https://host/path/assets`.
pub fn upload_base(template: &str) -> Result<Url, String> {
    let base = template.split('{').next().unwrap_or(template);
    Url::parse(base).map_err(|e| format!("upload_url `{base}`: {e}"))
}

/// Counts the bytes reqwest pulls from the file.
struct CountingReader<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::AcqRel);
        Ok(n)
    }
}

/// An HTTP client for plain `https://` downloads (no API headers, no token).
pub fn plain_client() -> Result<Client, PublishError> {
    Client::builder()
        .user_agent(concat!("envship/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .timeout(None)
        .build()
        .map_err(|e| PublishError::Http {
            method: "-".into(),
            url: "-".into(),
            message: e.to_string(),
        })
}

/// [`download`] `url` into a new file `dest`, synced to disk.
pub fn download_to_file(
    http: &Client,
    url: &str,
    dest: &Path,
    retry: &RetryPolicy,
    progress: &dyn Progress,
) -> Result<(), PublishError> {
    let mut f = std::fs::File::create(dest).map_err(PublishError::io("creating", dest))?;
    download(http, url, None, &mut f, progress, retry, None)?;
    f.sync_all().map_err(PublishError::io("writing", dest))?;
    Ok(())
}
