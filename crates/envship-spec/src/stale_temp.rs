//! Temp files that say whose they are, so that the next run can remove what a killed one left.
//!
//! A process killed with SIGKILL runs no destructor: its temp files stay. Their names carry
//! `HOST-PID-` ([`owner_tag`]) after the caller's prefix, and [`remove_left_by_dead`] removes
//! those of processes of this host that no longer run. Another host's (on a shared file
//! system) cannot be told dead from here, and a live process's temp file is its own: both are
//! left alone.

use std::path::Path;

/// `HOST-PID-`: put it right after a temp name's fixed prefix.
pub fn owner_tag() -> String {
    format!("{}-{}-", host_name(), std::process::id())
}

/// This host's name (the kernel's), if it can be read: what deployment records and temp-file
/// owner tags name the host by.
pub fn host_name_of_this_machine() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
}

fn host_name() -> String {
    host_name_of_this_machine().unwrap_or_else(|| "localhost".to_string())
}

/// The pid of a process of this host that no longer runs, when `tagged` (a temp name with its
/// fixed prefix removed) starts with such a process's [`owner_tag`]; the rest of the name (the
/// random part and any suffix) has no `-`.
fn dead_owner(tagged: &str, host: &str) -> Option<u32> {
    let mut parts = tagged.rsplitn(3, '-');
    let (_, pid, owner) = (parts.next(), parts.next(), parts.next());
    let pid: u32 = pid?.parse().ok()?;
    let running = Path::new("/proc").join(pid.to_string()).exists();
    (owner == Some(host) && pid != std::process::id() && !running).then_some(pid)
}

/// Remove the entries of `dir` named `PREFIX` + [`owner_tag`] + … that processes of this host
/// which no longer run left there (files or directories); `what` names them in the log (e.g.
/// "pack"). Returns the paths removed.
pub fn remove_left_by_dead(
    dir: &Path,
    prefix_of: impl Fn(&str) -> Option<usize>,
    what: &str,
) -> Vec<std::path::PathBuf> {
    let mut removed = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return removed;
    };
    let host = host_name();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(start) = prefix_of(&name) else {
            continue;
        };
        let Some(pid) = name.get(start..).and_then(|t| dead_owner(t, &host)) else {
            continue;
        };
        let path = entry.path();
        let gone = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match gone {
            Ok(()) => {
                tracing::info!(
                    "removed {}, left by a {what} that was killed (pid {pid})",
                    path.display()
                );
                removed.push(path);
            }
            Err(e) => tracing::warn!(
                "{} was left by a {what} that was killed (pid {pid}); cannot remove it: {e}",
                path.display()
            ),
        }
    }
    removed
}

/// Where the owner tag starts in `.NAME.HOST-PID-RANDOM` + `suffix` (the temp names of
/// [`crate::output::write_atomic`] and of copies like it). NAME may hold dots and dashes, so
/// the tag is found from the end; a host name with a dot is not matched (and its temp files
/// are left alone).
pub fn tag_after_name(n: &str, suffix: &str) -> Option<usize> {
    let body = n.strip_prefix('.')?.strip_suffix(suffix)?;
    let dash_pid = body.rfind('-')?;
    let dash_host = body[..dash_pid].rfind('-')?;
    let dot = body[..dash_host].rfind('.')?;
    Some(1 + dot + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_temps_of_dead_processes_of_this_host_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let host = host_name();
        // No pid reaches 4194304 (the kernel's largest pid_max): those processes are gone.
        let dead = format!(".t-{host}-4194305-AbC123");
        let mine = format!(".t-{}XyZ", owner_tag());
        let other_host = format!(".t-{host}x-4194305-AbC123");
        let other = "bulk-1.0-rhel8-linux-64.tar.gz".to_string();
        for n in [&dead, &mine, &other_host, &other] {
            std::fs::write(dir.path().join(n), b"x").expect("write");
        }
        let dead_dir = format!(".t-{host}-4194306-Dir1");
        std::fs::create_dir(dir.path().join(&dead_dir)).expect("mkdir");
        std::fs::write(dir.path().join(&dead_dir).join("f"), b"x").expect("write");
        let removed =
            remove_left_by_dead(dir.path(), |n| n.starts_with(".t-").then_some(3), "test");
        assert_eq!(removed.len(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want = vec![mine, other_host, other];
        want.sort();
        assert_eq!(left, want);
    }

    #[test]
    fn the_tag_is_found_after_a_name_with_dots_and_dashes() {
        let n = ".bulk-1.0-rhel8-linux-64.sha256.myhost-77-taM3VR";
        assert_eq!(tag_after_name(n, ""), Some(n.find("myhost").expect("host")));
        let p = ".a.tar.gz.h-1-x.partial";
        assert_eq!(
            tag_after_name(p, ".partial"),
            Some(p.find("h-1").expect("host"))
        );
        assert_eq!(tag_after_name("plain", ""), None);
    }
}
