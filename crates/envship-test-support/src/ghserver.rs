//! A real HTTP/1.1 server on 127.0.0.1 implementing the subset of the GitHub REST API that
//! envship uses, with GitHub's semantics where they matter (a same-name upload is a 422
//! `already_exists`; an interrupted upload leaves a `starter` asset), plus fault injection.
//! Uploads are served on a second listener (another port), reached only through the release's
//! `upload_url`, as uploads.github.com is in reality.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
};

use serde_json::{json, Value};

use sha2::{Digest, Sha256};

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Answer 500 (after reading the request).
    Status500,
    /// Answer 403 with a secondary-rate-limit message and `Retry-After: secs`.
    SecondaryRateLimit { retry_after: u64 },
    /// Read half the upload body, record a `starter` asset, and drop the connection.
    DropMidUpload,
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub method: &'static str,
    /// Substring of the path the fault applies to.
    pub path_contains: String,
    pub kind: FaultKind,
    /// How many matching requests it hits.
    pub times: u32,
}

#[derive(Clone, Debug)]
pub struct SAsset {
    pub id: u64,
    pub release_id: u64,
    pub name: String,
    pub state: String,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug)]
pub struct SRelease {
    pub id: u64,
    pub tag: String,
    /// The notes (Markdown).
    pub body: String,
    /// RFC 3339, increasing with each release made.
    pub created_at: String,
    pub draft: bool,
}

impl SRelease {
    /// A release made now: `seq` (the state's id counter) orders the creation times.
    fn new(id: u64, tag: String, body: String) -> Self {
        Self {
            id,
            tag,
            body,
            created_at: format!(
                "2026-01-{:02}T{:02}:{:02}:{:02}Z",
                1 + id / 86400 % 28,
                id / 3600 % 24,
                id / 60 % 60,
                id % 60
            ),
            draft: false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub status: u16,
}

#[derive(Default)]
pub struct State {
    pub releases: Vec<SRelease>,
    pub assets: Vec<SAsset>,
    pub next_id: u64,
    pub faults: Vec<Fault>,
    pub log: Vec<Logged>,
    /// Plain files served at `/files/NAME` (for https-URL sources).
    pub files: BTreeMap<String, Vec<u8>>,
    /// Sigstore bundles served by the attestations API, by `sha256:HEX`.
    pub attestations: BTreeMap<String, Vec<Value>>,
}

pub struct GhServer {
    pub api_url: String,
    pub upload_origin: String,
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    addrs: Vec<std::net::SocketAddr>,
}

impl GhServer {
    pub fn start(token: &str) -> Self {
        let state = Arc::new(Mutex::new(State {
            next_id: 1000,
            ..State::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let api = TcpListener::bind("127.0.0.1:0").unwrap();
        let up = TcpListener::bind("127.0.0.1:0").unwrap();
        let api_addr = api.local_addr().unwrap();
        let up_addr = up.local_addr().unwrap();
        let ctx = Arc::new(Ctx {
            state: Arc::clone(&state),
            token: token.to_string(),
            api_origin: format!("http://{api_addr}"),
            upload_origin: format!("http://{up_addr}"),
        });
        for (listener, is_upload) in [(api, false), (up, true)] {
            let ctx = Arc::clone(&ctx);
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let ctx = Arc::clone(&ctx);
                    thread::spawn(move || {
                        let _ = ctx.handle(conn, is_upload);
                    });
                }
            });
        }
        Self {
            api_url: format!("http://{api_addr}"),
            upload_origin: format!("http://{up_addr}"),
            state,
            stop,
            addrs: vec![api_addr, up_addr],
        }
    }

    pub fn fault(&self, method: &'static str, path_contains: &str, kind: FaultKind, times: u32) {
        self.state.lock().unwrap().faults.push(Fault {
            method,
            path_contains: path_contains.into(),
            kind,
            times,
        });
    }

    /// Create a release directly (as if made in the web UI).
    pub fn add_release(&self, tag: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        s.releases
            .push(SRelease::new(id, tag.into(), String::new()));
        id
    }

    /// The notes of the release for `tag`.
    pub fn release_body(&self, tag: &str) -> Option<String> {
        let s = self.state.lock().unwrap();
        s.releases
            .iter()
            .find(|r| r.tag == tag)
            .map(|r| r.body.clone())
    }

    /// Set the notes of release `id` (as if edited in the web UI).
    pub fn set_release_body(&self, id: u64, body: &str) {
        let mut s = self.state.lock().unwrap();
        if let Some(r) = s.releases.iter_mut().find(|r| r.id == id) {
            r.body = body.into();
        }
    }

    /// Mark release `id` a draft.
    pub fn make_draft(&self, id: u64) {
        let mut s = self.state.lock().unwrap();
        if let Some(r) = s.releases.iter_mut().find(|r| r.id == id) {
            r.draft = true;
        }
    }

    /// Serve `bundle` as an attestation of the artifact with this sha256.
    pub fn add_attestation(&self, sha256: &str, bundle: Value) {
        let mut s = self.state.lock().unwrap();
        s.attestations
            .entry(format!("sha256:{sha256}"))
            .or_default()
            .push(bundle);
    }

    pub fn add_asset(&self, release_id: u64, name: &str, data: &[u8], state: &str) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.next_id += 1;
        let id = s.next_id;
        s.assets.push(SAsset {
            id,
            release_id,
            name: name.into(),
            state: state.into(),
            data: data.to_vec(),
        });
        id
    }

    pub fn assets_named(&self, name: &str) -> Vec<SAsset> {
        self.state
            .lock()
            .unwrap()
            .assets
            .iter()
            .filter(|a| a.name == name)
            .cloned()
            .collect()
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn count(&self, method: &str, path_contains: &str) -> usize {
        self.log()
            .iter()
            .filter(|l| l.method == method && l.path.contains(path_contains))
            .count()
    }
}

impl Drop for GhServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for a in &self.addrs {
            let _ = TcpStream::connect(a);
        }
    }
}

struct Ctx {
    state: Arc<Mutex<State>>,
    token: String,
    api_origin: String,
    upload_origin: String,
}

struct Req {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    headers: Vec<(String, String)>,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn respond(
    w: &mut TcpStream,
    status: u16,
    extra: &[(&str, String)],
    ctype: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        422 => "Unprocessable Entity",
        _ => "Internal Server Error",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in extra {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.write_all(body)?;
    w.flush()
}

/// `per_page` (default 30, as GitHub's) and `page` (from 1) of a list request.
fn paging(req: &Req) -> (usize, usize) {
    let get = |k: &str, d: usize| {
        req.query
            .get(k)
            .and_then(|p| p.parse().ok())
            .filter(|n: &usize| *n > 0)
            .unwrap_or(d)
    };
    (get("per_page", 30), get("page", 1))
}

fn json_resp(w: &mut TcpStream, status: u16, v: &Value) -> std::io::Result<()> {
    respond(
        w,
        status,
        &[],
        "application/json; charset=utf-8",
        v.to_string().as_bytes(),
    )
}

impl Ctx {
    fn asset_json(&self, a: &SAsset, owner_repo: &str) -> Value {
        let mut v = json!({
            "id": a.id, "name": a.name, "size": if a.state == "uploaded" { a.data.len() } else { 0 },
            "state": a.state,
            "url": format!("{}/repos/{owner_repo}/releases/assets/{}", self.api_origin, a.id),
            "browser_download_url": format!("{}/download/{}", self.api_origin, a.name),
        });
        if a.state == "uploaded" {
            v["digest"] = json!(format!("sha256:{}", sha256(&a.data)));
        }
        v
    }

    fn release_json(&self, r: &SRelease, owner_repo: &str) -> Value {
        json!({
            "id": r.id, "tag_name": r.tag, "name": r.tag,
            "body": r.body, "created_at": r.created_at, "draft": r.draft,
            "html_url": format!("{}/{owner_repo}/releases/tag/{}", self.api_origin, r.tag),
            "upload_url": format!("{}/repos/{owner_repo}/releases/{}/assets{{?name,label}}", self.upload_origin, r.id),
            "assets": [],
        })
    }

    fn handle(&self, stream: TcpStream, is_upload: bool) -> std::io::Result<()> {
        let mut w = stream.try_clone()?;
        let mut r = BufReader::new(stream);
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            r.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let (path, q) = target.split_once('?').unwrap_or((&target, ""));
        let query = url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect();
        let req = Req {
            method,
            path: path.to_string(),
            query,
            headers,
        };
        let len: usize = req
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);

        let fault = {
            let mut s = self.state.lock().unwrap();
            let found = s.faults.iter_mut().find(|f| {
                f.times > 0 && f.method == req.method && req.path.contains(&f.path_contains)
            });
            found.map(|f| {
                f.times -= 1;
                f.kind.clone()
            })
        };
        let log = |status: u16| {
            self.state.lock().unwrap().log.push(Logged {
                method: req.method.clone(),
                path: target.clone(),
                headers: req.headers.clone(),
                status,
            });
        };

        if fault == Some(FaultKind::DropMidUpload) && is_upload {
            let mut half = vec![0u8; len / 2];
            r.read_exact(&mut half)?;
            let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
            let release_id: u64 = segs.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);
            let name = req.query.get("name").cloned().unwrap_or_default();
            let mut s = self.state.lock().unwrap();
            s.next_id += 1;
            let id = s.next_id;
            s.assets.push(SAsset {
                id,
                release_id,
                name,
                state: "starter".into(),
                data: half,
            });
            drop(s);
            log(0);
            // Closing with unread body bytes makes the kernel send RST: a connection reset.
            let _ = w.shutdown(std::net::Shutdown::Both);
            return Ok(());
        }

        let mut body = Vec::with_capacity(len);
        (&mut r).take(len as u64).read_to_end(&mut body)?;
        if body.len() != len {
            log(0);
            return Ok(());
        }
        match fault {
            Some(FaultKind::Status500) => {
                log(500);
                return json_resp(&mut w, 500, &json!({"message": "Server Error"}));
            }
            Some(FaultKind::SecondaryRateLimit { retry_after }) => {
                log(403);
                let b = json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                    "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"});
                return respond(
                    &mut w,
                    403,
                    &[("Retry-After", retry_after.to_string())],
                    "application/json",
                    b.to_string().as_bytes(),
                );
            }
            _ => {}
        }
        if req.path.starts_with("/files/") {
            let name = req.path.trim_start_matches("/files/");
            let data = self.state.lock().unwrap().files.get(name).cloned();
            return match data {
                Some(d) => {
                    log(200);
                    respond(&mut w, 200, &[], "application/octet-stream", &d)
                }
                None => {
                    log(404);
                    json_resp(&mut w, 404, &json!({"message": "Not Found"}))
                }
            };
        }
        if req.header("authorization") != Some(&format!("Bearer {}", self.token)) {
            log(401);
            return json_resp(&mut w, 401, &json!({"message": "Bad credentials"}));
        }
        let (status, resp_body, raw) = self.route(&req, &body, is_upload);
        log(status);
        match raw {
            Some(bytes) => respond(&mut w, status, &[], "application/octet-stream", &bytes),
            None if status == 204 => respond(&mut w, 204, &[], "application/json", b""),
            None => json_resp(&mut w, status, &resp_body),
        }
    }

    fn route(&self, req: &Req, body: &[u8], is_upload: bool) -> (u16, Value, Option<Vec<u8>>) {
        let segs: Vec<&str> = req.path.trim_matches('/').split('/').collect();
        let not_found = (404, json!({"message": "Not Found"}), None);
        if segs.len() < 4 || segs[0] != "repos" || !matches!(segs[3], "releases" | "attestations") {
            return not_found;
        }
        let owner_repo = format!("{}/{}", segs[1], segs[2]);
        let mut s = self.state.lock().unwrap();
        if segs[3] == "attestations" {
            if req.method != "GET" || is_upload {
                return not_found;
            }
            return match segs.get(4).and_then(|d| s.attestations.get(*d)) {
                Some(list) => {
                    let items: Vec<Value> = list.iter().map(|b| json!({ "bundle": b })).collect();
                    (200, json!({ "attestations": items }), None)
                }
                None => not_found,
            };
        }
        match (req.method.as_str(), &segs[4..], is_upload) {
            ("GET", ["tags", tag], false) => match s.releases.iter().find(|r| r.tag == *tag) {
                Some(r) => (200, self.release_json(r, &owner_repo), None),
                None => not_found,
            },
            ("POST", [], false) => {
                let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                let tag = v["tag_name"].as_str().unwrap_or("").to_string();
                if s.releases.iter().any(|r| r.tag == tag) {
                    return (
                        422,
                        json!({"message": "Validation Failed", "errors": [{"resource": "Release", "code": "already_exists", "field": "tag_name"}]}),
                        None,
                    );
                }
                s.next_id += 1;
                let body = v["body"].as_str().unwrap_or("").to_string();
                let r = SRelease::new(s.next_id, tag, body);
                s.releases.push(r.clone());
                (201, self.release_json(&r, &owner_repo), None)
            }
            ("GET", [], false) => {
                let (per_page, page) = paging(req);
                // Newest first, as GitHub lists them.
                let list: Vec<Value> = s
                    .releases
                    .iter()
                    .rev()
                    .skip((page - 1) * per_page)
                    .take(per_page)
                    .map(|r| self.release_json(r, &owner_repo))
                    .collect();
                (200, Value::Array(list), None)
            }
            ("PATCH", [id], false) => {
                let id: u64 = id.parse().unwrap_or(0);
                let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
                match s.releases.iter_mut().find(|r| r.id == id) {
                    Some(r) => {
                        if let Some(b) = v["body"].as_str() {
                            r.body = b.to_string();
                        }
                        let r = r.clone();
                        (200, self.release_json(&r, &owner_repo), None)
                    }
                    None => not_found,
                }
            }
            ("GET", [id, "assets"], false) => {
                let id: u64 = id.parse().unwrap_or(0);
                let (per_page, page) = paging(req);
                let list: Vec<Value> = s
                    .assets
                    .iter()
                    .filter(|a| a.release_id == id)
                    .skip((page - 1) * per_page)
                    .take(per_page)
                    .map(|a| self.asset_json(a, &owner_repo))
                    .collect();
                (200, Value::Array(list), None)
            }
            ("GET", ["assets", id], false) => {
                let id: u64 = id.parse().unwrap_or(0);
                match s.assets.iter().find(|a| a.id == id) {
                    Some(a) if req.header("accept") == Some("application/octet-stream") => {
                        (200, Value::Null, Some(a.data.clone()))
                    }
                    Some(a) => (200, self.asset_json(a, &owner_repo), None),
                    None => not_found,
                }
            }
            ("DELETE", ["assets", id], false) => {
                let id: u64 = id.parse().unwrap_or(0);
                let before = s.assets.len();
                s.assets.retain(|a| a.id != id);
                if s.assets.len() == before {
                    not_found
                } else {
                    (204, Value::Null, None)
                }
            }
            ("POST", [id, "assets"], true) => {
                let id: u64 = id.parse().unwrap_or(0);
                let Some(name) = req.query.get("name").cloned() else {
                    return (422, json!({"message": "name is required"}), None);
                };
                if !s.releases.iter().any(|r| r.id == id) {
                    return not_found;
                }
                if s.assets
                    .iter()
                    .any(|a| a.release_id == id && a.name == name)
                {
                    return (
                        422,
                        json!({"message": "Validation Failed", "errors": [{"resource": "ReleaseAsset", "code": "already_exists", "field": "name"}]}),
                        None,
                    );
                }
                s.next_id += 1;
                let a = SAsset {
                    id: s.next_id,
                    release_id: id,
                    name,
                    state: "uploaded".into(),
                    data: body.to_vec(),
                };
                s.assets.push(a.clone());
                (201, self.asset_json(&a, &owner_repo), None)
            }
            _ => not_found,
        }
    }
}
