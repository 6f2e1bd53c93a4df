//! What `envship check` can tell about a `pip:` entry without pip: whether build, which installs
//! only wheels the target accepts, will refuse it.

use crate::env_file::{EnvFileWarning, PipDependency};

/// A warning for each pip entry build will refuse on a Linux target: a VCS checkout or URL that
/// can only build from source, an sdist, a local path, or a PEP 508 marker that excludes Linux.
pub fn refused_pip_entries(pip: &[PipDependency]) -> Vec<EnvFileWarning> {
    pip.iter()
        .filter_map(|p| {
            refusal(&p.raw).map(|why| EnvFileWarning {
                message: format!("pip entry `{}` {why}", p.raw),
                location: Some(p.location),
            })
        })
        .collect()
}

/// Why build refuses `raw`, if it does.
fn refusal(raw: &str) -> Option<&'static str> {
    let raw = raw.trim();
    if raw.starts_with('-') {
        // pip options (`--index-url`, `-r`) are not requirements; `-e` is a source checkout.
        return (raw.starts_with("-e ") || raw.starts_with("--editable"))
            .then_some("is an editable source checkout: build installs only wheels");
    }
    let (req, marker) = match raw.split_once(';') {
        Some((r, m)) => (r.trim(), Some(m.trim())),
        None => (raw, None),
    };
    if marker.is_some_and(excludes_linux) {
        return Some("has a marker that excludes Linux: pip would not install it on the target");
    }
    let target = req.split_once(" @ ").map_or(req, |(_, url)| url.trim());
    let lower = target.to_ascii_lowercase();
    if ["git+", "hg+", "svn+", "bzr+"]
        .iter()
        .any(|v| lower.starts_with(v))
    {
        return Some(
            "is a VCS checkout that can only build from source: build installs only wheels",
        );
    }
    if lower.ends_with(".whl") {
        return None;
    }
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Some("is a URL to a source archive: build installs only wheels");
    }
    if lower.starts_with("file:")
        || target.starts_with('.')
        || target.starts_with('/')
        || target.starts_with('~')
    {
        return Some("is a local path: build installs only wheels from the index");
    }
    if [".tar.gz", ".zip", ".tar.bz2", ".tgz"]
        .iter()
        .any(|e| lower.ends_with(e))
    {
        return Some("is an sdist that can only build from source: build installs only wheels");
    }
    None
}

/// Whether a PEP 508 marker of `and`-joined platform comparisons is false on Linux (markers it
/// cannot judge, e.g. on the python version, count as not excluding).
fn excludes_linux(marker: &str) -> bool {
    marker.split(" and ").any(|clause| {
        let clause = clause.trim().trim_matches(|c| c == '(' || c == ')');
        let (key, op, value) = if let Some((k, v)) = clause.split_once("!=") {
            (k, "!=", v)
        } else if let Some((k, v)) = clause.split_once("==") {
            (k, "==", v)
        } else {
            return false;
        };
        let value = value.trim().trim_matches(|c| c == '"' || c == '\'');
        let linux = match key.trim() {
            "sys_platform" => "linux",
            "platform_system" => "Linux",
            "os_name" => "posix",
            _ => return false,
        };
        (op == "==") != (value == linux)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals() {
        assert!(refusal("git+https://github.com/slaclab/pyca").is_some());
        assert!(refusal("pyca @ git+https://github.com/slaclab/pyca").is_some());
        assert!(refusal("./local/pkg").is_some());
        assert!(refusal("https://example.org/x-1.0.tar.gz").is_some());
        assert!(refusal("pywin32; sys_platform == \"win32\"").is_some());
        assert!(refusal("psutil; sys_platform == \"linux\"").is_none());
        assert!(refusal("numpy==1.21; python_version < \"3.9\"").is_none());
        assert!(refusal("https://example.org/x-1.0-py3-none-any.whl").is_none());
        assert!(refusal("--index-url https://example.org/simple").is_none());
        assert!(refusal("Cheetah3").is_none());
    }
}
