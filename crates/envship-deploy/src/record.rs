//! `ROOT/.envship/deployments.jsonl`: one JSON object per line, appended, never rewritten.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::DeployError;

/// One deployment or rollback attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// When it finished (UTC).
    #[serde(with = "rfc3339")]
    pub time: Timestamp,
    /// `deploy` or `rollback`.
    pub action: String,
    /// Who ran it (login name, else uid).
    pub user: String,
    /// On which host.
    pub host: String,
    /// Environment name (the directory under ROOT).
    pub name: String,
    /// Version deployed or rolled back to.
    pub version: String,
    /// sha256 of the archive (`None` for rollbacks).
    #[serde(default)]
    pub sha256: Option<String>,
    /// Change ticket.
    #[serde(default)]
    pub ticket: Option<String>,
    /// The version `current` pointed at before.
    #[serde(default)]
    pub previous: Option<String>,
    /// `success`, `test-failed` or `failed`.
    pub result: String,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Where the archive came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The test log, when `--test` ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_log: Option<PathBuf>,
    /// envship version that did it.
    #[serde(default)]
    pub envship_version: String,
    /// What the trust policies verified: the minisign key, or the repository, workflow and
    /// commit of the build provenance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<serde_json::Value>,
}

/// `2026-11-26T12:00:00Z`: RFC 3339 in UTC, whole seconds.
const TIME_FORMAT: &str = "%Y-%m-%dT%H:%M:%SZ";

mod rfc3339 {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&t.strftime(super::TIME_FORMAT))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Record {
    /// What vouched for the archive, in a few words: the minisign key, or the repository,
    /// workflow and commit of its build provenance.
    pub fn trust_summary(&self) -> Option<String> {
        let t = self.trust.as_ref()?;
        let mut parts = Vec::new();
        if let Some(k) = t["minisign"]["key_id"].as_str() {
            parts.push(format!("minisign key {k}"));
        }
        let g = &t["github"];
        if let Some(repo) = g["repo"].as_str() {
            let mut s = format!("build provenance from {repo}");
            for (label, key) in [
                ("workflow", "workflow"),
                ("ref", "git_ref"),
                ("commit", "commit"),
            ] {
                if let Some(v) = g[key].as_str() {
                    s.push_str(&format!(", {label} {v}"));
                }
            }
            parts.push(s);
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    /// A record stamped now, by this user on this host.
    pub fn now(action: &str, name: &str, version: &str, result: &str) -> Self {
        Self {
            time: Timestamp::now(),
            action: action.into(),
            user: current_user(),
            host: host_name(),
            name: name.into(),
            version: version.into(),
            sha256: None,
            ticket: None,
            previous: None,
            result: result.into(),
            error: None,
            source: None,
            test_log: None,
            envship_version: env!("CARGO_PKG_VERSION").into(),
            trust: None,
        }
    }

    /// `2026-11-26T12:00:00Z`.
    pub fn time_string(&self) -> String {
        self.time.strftime(TIME_FORMAT).to_string()
    }
}

/// The log file of a root.
pub fn log_path(root: &Path) -> PathBuf {
    root.join(crate::STATE_DIR).join("deployments.jsonl")
}

/// Append a record with one `write` of the whole line (O_APPEND), then fsync, so concurrent
/// writers and a kill never interleave or tear a line that was reported written. A write that
/// fails part way (a full disk) is cut off again.
pub fn append(root: &Path, record: &Record) -> Result<(), DeployError> {
    let path = log_path(root);
    let mut line = serde_json::to_vec(record).map_err(|e| DeployError::Io {
        action: "serializing a record for",
        path: path.clone(),
        source: std::io::Error::other(e),
    })?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(DeployError::io("opening", &path))?;
    let before = f
        .metadata()
        .map_err(DeployError::io("reading", &path))?
        .len();
    if let Err(e) = f.write_all(&line) {
        // A short write (a full disk) leaves part of the line; the next record would be glued
        // to it and make a bad line in the middle of the log. Appends run under the deploy
        // lock, so cutting the file back to where this one started removes only its own part.
        let _ = f.set_len(before);
        return Err(DeployError::io("appending to", &path)(e));
    }
    f.sync_all().map_err(DeployError::io("syncing", &path))?;
    Ok(())
}

/// Every record in the log, oldest first; an absent log is empty. A last line without its
/// newline (a writer killed mid-write) is skipped; any other bad line is an error naming it.
pub fn read(root: &Path) -> Result<Vec<Record>, DeployError> {
    let path = log_path(root);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(DeployError::io("reading", &path)(e)),
    };
    let complete = text.ends_with('\n');
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(r) => out.push(r),
            Err(_) if !complete && i + 1 == lines.len() => {
                tracing::warn!(
                    "{}:{}: ignoring an incomplete last line",
                    path.display(),
                    i + 1
                );
            }
            Err(source) => {
                return Err(DeployError::BadRecord {
                    path,
                    line: i + 1,
                    source,
                })
            }
        }
    }
    Ok(out)
}

/// Login name of the real user, else `$USER`, else the uid.
pub fn current_user() -> String {
    let uid = nix::unistd::getuid();
    if let Ok(Some(u)) = nix::unistd::User::from_uid(uid) {
        return u.name;
    }
    std::env::var("USER").unwrap_or_else(|_| uid.to_string())
}

/// This host's name.
pub fn host_name() -> String {
    envship_spec::stale_temp::host_name_of_this_machine().unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_torn_last_line() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join(crate::STATE_DIR)).expect("mkdir");
        let mut r = Record::now("deploy", "env", "1.0", "success");
        r.ticket = Some("CHG-1".into());
        append(d.path(), &r).expect("append");
        append(d.path(), &r).expect("append");
        let back = read(d.path()).expect("read");
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].ticket.as_deref(), Some("CHG-1"));
        assert_eq!(back[0].time_string(), r.time_string());
        let p = log_path(d.path());
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .expect("open");
        f.write_all(b"{\"time\":\"20").expect("write");
        assert_eq!(read(d.path()).expect("torn line skipped").len(), 2);
        f.write_all(b"\n{}\n").expect("write");
        let err = read(d.path()).expect_err("bad line");
        assert!(err.to_string().contains("deployments.jsonl:3"), "{err}");
    }

    /// Logs written before the move to jiff (by chrono, `Secs` precision, `Z`) still read, and
    /// a record is written back in the same form.
    #[test]
    fn time_format_is_unchanged() {
        let line = r#"{"time":"2026-11-26T12:00:00Z","action":"deploy","user":"u","host":"h","name":"env","version":"1.0","sha256":null,"ticket":null,"previous":null,"result":"success","envship_version":"0.1.0"}"#;
        let r: Record = serde_json::from_str(line).expect("old record");
        assert_eq!(r.time_string(), "2026-11-26T12:00:00Z");
        assert_eq!(serde_json::to_string(&r).expect("json"), line);
        let with_offset: Record =
            serde_json::from_str(&line.replace("12:00:00Z", "13:00:00+01:00")).expect("offset");
        assert_eq!(with_offset.time, r.time);

        let now = Record::now("deploy", "env", "1.0", "success").time_string();
        assert_eq!(now.len(), "2026-11-26T12:00:00Z".len(), "{now}");
        assert!(now.ends_with('Z'), "{now}");
    }

    #[test]
    fn the_trust_summary_names_the_key_or_the_build() {
        let mut r = Record::now("deploy", "env", "1.0", "success");
        assert_eq!(r.trust_summary(), None);
        r.trust = Some(serde_json::json!({
            "policies": ["/r/.envship/trust.toml"],
            "minisign": {"key_id": "0123456789ABCDEF", "trusted_comment": "t"},
            "github": {"repo": "slaclab/lcls-env", "workflow": ".github/workflows/publish.yml",
                       "git_ref": "refs/tags/v1", "commit": "abc123"},
        }));
        assert_eq!(
            r.trust_summary().as_deref(),
            Some(
                "minisign key 0123456789ABCDEF; build provenance from slaclab/lcls-env, \
                 workflow .github/workflows/publish.yml, ref refs/tags/v1, commit abc123"
            )
        );
    }
}
