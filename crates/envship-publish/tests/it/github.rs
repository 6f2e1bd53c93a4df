use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use envship_publish::{
    artifacts, github, publish_release, GithubConfig, PublishError, RetryPolicy, Secret,
};
use envship_spec::{NoProgress, Progress, ProgressUnit};

use envship_test_support::ghserver::{FaultKind, GhServer};

use crate::common::{archive_with_sidecar, bytes};

const TOKEN: &str = "ghp_TESTtoken0123456789abcdefSECRET";

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        max_server_delay: Duration::from_secs(5),
    }
}

fn config(server: &GhServer) -> GithubConfig {
    GithubConfig {
        api_url: server.api_url.clone(),
        repo: "slac-lcls/psana-env".into(),
        token: Some(Secret::new(TOKEN)),
        retry: fast_retry(),
    }
}

/// An archive (2 MiB + odd bytes, so uploads take several reads) with sha256 and manifest.
fn artifacts_in(dir: &std::path::Path, seed: u64) -> Vec<PathBuf> {
    let a = archive_with_sidecar(
        dir,
        "psana-1.2.3-linux-64",
        &bytes(seed, 2 * 1024 * 1024 + 333),
    );
    std::fs::write(
        dir.join("psana-1.2.3-linux-64.manifest.json"),
        br#"{"name":"psana","version":"1.2.3"}"#,
    )
    .unwrap();
    std::fs::write(dir.join("psana-1.2.3-linux-64.test.log"), b"ok\n").unwrap();
    artifacts::collect(&a)
}

/// Exactly one complete copy of each file, byte-identical.
fn assert_published(server: &GhServer, files: &[PathBuf]) {
    for f in files {
        let name = f.file_name().unwrap().to_str().unwrap();
        let copies = server.assets_named(name);
        assert_eq!(copies.len(), 1, "{name}: {copies:?}");
        assert_eq!(copies[0].state, "uploaded", "{name}");
        assert!(
            copies[0].data == std::fs::read(f).unwrap(),
            "{name}: bytes differ"
        );
    }
}

/// Everything a user or log could see must be free of the token.
fn assert_no_token(texts: &[String]) {
    for t in texts {
        assert!(!t.contains(TOKEN), "token leaked in: {t}");
        assert!(!t.contains("TESTtoken"), "token fragment leaked in: {t}");
    }
}

#[test]
fn creates_release_and_uploads_everything() {
    let server = GhServer::start(TOKEN);
    let dir = tempfile::tempdir().unwrap();
    let files = artifacts_in(dir.path(), 10);
    assert_eq!(files.len(), 4);
    let report = publish_release(&config(&server), "v1.2.3", &files, false, &NoProgress).unwrap();
    assert!(report.created);
    assert_eq!(report.release.tag_name, "v1.2.3");
    assert!(
        report.release.upload_url.starts_with(&server.upload_origin),
        "uploads go to the upload host"
    );
    assert_published(&server, &files);
    assert!(report.assets.iter().all(|a| a.attempts == 1));
    // The token went only in the Authorization header, as a Bearer token.
    for l in server.log() {
        assert!(!l.path.contains(TOKEN));
        let auth: Vec<_> = l
            .headers
            .iter()
            .filter(|(_, v)| v.contains(TOKEN))
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(auth, ["authorization"], "{l:?}");
    }
    assert_no_token(&[
        format!("{report:?}"),
        serde_json::to_string(&report).unwrap(),
    ]);
}

#[test]
fn existing_release_and_same_name_asset_is_replaced() {
    let server = GhServer::start(TOKEN);
    let rel = server.add_release("v1.2.3");
    server.add_asset(
        rel,
        "psana-1.2.3-linux-64.tar.gz",
        b"an older build",
        "uploaded",
    );
    server.add_asset(rel, "unrelated.txt", b"keep me", "uploaded");
    let dir = tempfile::tempdir().unwrap();
    let files = artifacts_in(dir.path(), 11);
    let report = publish_release(&config(&server), "v1.2.3", &files, false, &NoProgress).unwrap();
    assert!(!report.created);
    assert_eq!(report.release.id, rel);
    assert_published(&server, &files);
    assert_eq!(
        server.assets_named("unrelated.txt").len(),
        1,
        "other assets are left alone"
    );
    assert_eq!(
        server.count("POST", "/releases"),
        files.len(),
        "no release was created"
    );
}

#[test]
fn survives_a_500_on_every_kind_of_call() {
    let server = GhServer::start(TOKEN);
    server.fault("GET", "/releases/tags/", FaultKind::Status500, 1);
    server.fault(
        "POST",
        "/repos/slac-lcls/psana-env/releases",
        FaultKind::Status500,
        1,
    );
    server.fault("GET", "/assets", FaultKind::Status500, 2);
    server.fault("POST", "/assets", FaultKind::Status500, 1);
    let dir = tempfile::tempdir().unwrap();
    let files = artifacts_in(dir.path(), 12);
    let report = publish_release(&config(&server), "v1.2.3", &files, false, &NoProgress).unwrap();
    assert_published(&server, &files);
    assert_eq!(
        report.assets[0].attempts, 2,
        "the first upload was retried once"
    );
    assert_eq!(
        server.state.lock().unwrap().releases.len(),
        1,
        "the retried create made one release"
    );
}

#[test]
fn connection_dropped_mid_upload_leaves_no_half_asset() {
    let server = GhServer::start(TOKEN);
    // Two drops in a row on the archive, then one on a sidecar.
    server.fault("POST", "/assets", FaultKind::DropMidUpload, 2);
    let dir = tempfile::tempdir().unwrap();
    let files = artifacts_in(dir.path(), 13);
    let progress = Recorder::default();
    let report = publish_release(&config(&server), "v9", &files, false, &progress).unwrap();
    assert_eq!(report.assets[0].attempts, 3);
    let starters = server.log().iter().filter(|l| l.status == 0).count();
    assert_eq!(starters, 2, "both drops happened");
    assert_published(&server, &files);
    assert!(server
        .state
        .lock()
        .unwrap()
        .assets
        .iter()
        .all(|a| a.state == "uploaded"));
    // Progress: restarted per attempt, and the last attempt reached the full size.
    let ev = progress.0.lock().unwrap().clone();
    let archive_len = std::fs::metadata(&files[0]).unwrap().len();
    let starts = ev.iter().filter(|e| e.starts_with("start upload")).count();
    assert!(starts >= 3 + files.len() - 1, "{ev:?}");
    let total: u64 = ev
        .iter()
        .rev()
        .skip_while(|e| !e.starts_with("finish upload"))
        .take_while(|e| !e.starts_with("start upload"))
        .filter_map(|e| {
            e.strip_prefix("advance upload ")
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum();
    assert!(total > 0);
    assert!(
        ev.contains(&format!("start upload {archive_len}")),
        "{ev:?}"
    );
}

#[test]
fn interrupted_upload_left_by_an_earlier_run_is_cleaned() {
    // A previous publish died mid-upload: the release holds a `starter` asset of that name.
    let server = GhServer::start(TOKEN);
    let rel = server.add_release("v2");
    server.add_asset(rel, "psana-1.2.3-linux-64.tar.gz", b"half", "starter");
    let dir = tempfile::tempdir().unwrap();
    let files = artifacts_in(dir.path(), 14);
    publish_release(&config(&server), "v2", &files, false, &NoProgress).unwrap();
    assert_published(&server, &files);
}

#[test]
fn secondary_rate_limit_honours_retry_after() {
    let server = GhServer::start(TOKEN);
    server.fault(
        "POST",
        "/assets",
        FaultKind::SecondaryRateLimit { retry_after: 1 },
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let files = artifacts_in(dir.path(), 15);
    let t = Instant::now();
    let report = publish_release(&config(&server), "v3", &files, false, &NoProgress).unwrap();
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(1),
        "Retry-After: 1 was not honoured ({waited:?})"
    );
    assert_eq!(report.assets[0].attempts, 2);
    assert_published(&server, &files);
}

#[test]
fn a_too_long_server_wait_fails_clearly() {
    let server = GhServer::start(TOKEN);
    server.fault(
        "GET",
        "/releases/tags/",
        FaultKind::SecondaryRateLimit { retry_after: 3600 },
        1,
    );
    let dir = tempfile::tempdir().unwrap();
    let files = artifacts_in(dir.path(), 16);
    let err = publish_release(&config(&server), "v4", &files, false, &NoProgress).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("3600s") && msg.contains("rate limit"), "{msg}");
    assert_no_token(&[msg, format!("{err:?}")]);
}

#[test]
fn persistent_failure_gives_up_after_max_attempts() {
    let server = GhServer::start(TOKEN);
    server.fault("GET", "/releases/tags/", FaultKind::Status500, 100);
    let dir = tempfile::tempdir().unwrap();
    let files = artifacts_in(dir.path(), 17);
    let err = publish_release(&config(&server), "v5", &files, false, &NoProgress).unwrap_err();
    assert!(
        err.to_string().contains("gave up after 5 attempts"),
        "{err}"
    );
    assert_eq!(server.count("GET", "/releases/tags/"), 5);
}

#[test]
fn bad_token_is_an_error_that_does_not_contain_it() {
    let server = GhServer::start("the-right-token");
    let dir = tempfile::tempdir().unwrap();
    let files = artifacts_in(dir.path(), 18);
    let cfg = config(&server);
    let err = publish_release(&cfg, "v6", &files, false, &NoProgress).unwrap_err();
    assert!(
        matches!(err, PublishError::Api { status: 401, .. }),
        "{err:?}"
    );
    let client = github::GithubClient::new(&cfg).unwrap();
    let report = miette::Report::new(err);
    assert_no_token(&[
        report.to_string(),
        format!("{report:?}"),
        format!("{cfg:?}"),
        format!("{client:?}"),
    ]);
    assert!(
        format!("{report:?}").contains("invalid or expired"),
        "{report:?}"
    );
}

#[test]
fn transport_errors_and_logs_do_not_contain_the_token() {
    // Nothing listens on this port: every attempt fails to connect.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = GithubConfig {
        api_url: format!("http://127.0.0.1:{port}"),
        ..config(&GhServer::start(TOKEN))
    };
    let dir = tempfile::tempdir().unwrap();
    let files = artifacts_in(dir.path(), 19);
    let logs = LogCapture::default();
    let err = tracing::subscriber::with_default(logs.subscriber(), || {
        publish_release(&cfg, "v7", &files, false, &NoProgress).unwrap_err()
    });
    let text = logs.text();
    assert!(text.contains("retrying"), "the retries were logged: {text}");
    assert_no_token(&[text, err.to_string(), format!("{err:?}")]);
}

#[test]
fn upload_url_template_and_bad_repo() {
    let u =
        github::upload_base("https://uploads.github.com/repos/o/r/releases/1/assets{?name,label}")
            .unwrap();
    assert_eq!(
        u.as_str(),
        "https://uploads.github.com/repos/o/r/releases/1/assets"
    );
    assert!(github::split_repo("owner").is_err());
    assert!(github::split_repo("o/r/x").is_err());
    assert!(github::split_repo("../r").is_err());
    assert_eq!(
        github::split_repo("slac-lcls/psana.env").unwrap(),
        ("slac-lcls".into(), "psana.env".into())
    );
}

#[test]
fn downloads_an_asset_byte_for_byte() {
    let server = GhServer::start(TOKEN);
    let rel = server.add_release("v8");
    let data = bytes(20, 1_500_000);
    let id = server.add_asset(rel, "x.tar.gz", &data, "uploaded");
    server.fault(
        "GET",
        &format!("/releases/assets/{id}"),
        FaultKind::Status500,
        1,
    );
    let client = github::GithubClient::new(&config(&server)).unwrap();
    let asset = client
        .list_assets(rel)
        .unwrap()
        .into_iter()
        .find(|a| a.id == id)
        .unwrap();
    let mut out = Vec::new();
    let n = client
        .download_asset(&asset, &mut out, &NoProgress)
        .unwrap();
    assert_eq!(n, data.len() as u64);
    assert!(out == data);
}

/// Records progress events as strings.
#[derive(Default)]
struct Recorder(Mutex<Vec<String>>);

impl Progress for Recorder {
    fn start(&self, phase: &str, total: Option<u64>, _unit: ProgressUnit) {
        self.0
            .lock()
            .unwrap()
            .push(format!("start {phase} {}", total.unwrap_or(0)));
    }
    fn advance(&self, phase: &str, delta: u64) {
        self.0
            .lock()
            .unwrap()
            .push(format!("advance {phase} {delta}"));
    }
    fn finish(&self, phase: &str) {
        self.0.lock().unwrap().push(format!("finish {phase}"));
    }
}

/// Collects tracing output at every level.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync {
        let me = self.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || me.clone())
            .with_ansi(false)
            .finish()
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
