//! pip's `--report` JSON (pip 22.2 on): what pip installed or would install, with where each
//! distribution came from.

use std::path::Path;

use envship_spec::python_dists::normalize;
use serde::Deserialize;

use super::{PipError, PipPackage};

#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    install: Vec<ReportItem>,
}

#[derive(Deserialize)]
struct ReportItem {
    download_info: DownloadInfo,
    #[serde(default)]
    requested: bool,
    metadata: ReportMetadata,
}

#[derive(Deserialize)]
struct DownloadInfo {
    url: String,
    #[serde(default)]
    archive_info: Option<ArchiveInfo>,
}

#[derive(Deserialize)]
struct ArchiveInfo {
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    hashes: Option<std::collections::BTreeMap<String, String>>,
}

#[derive(Deserialize)]
struct ReportMetadata {
    name: String,
    version: String,
}

pub(super) fn read_report(path: &Path) -> Result<Vec<PipPackage>, PipError> {
    let io = |source| PipError::Io {
        action: "read pip's report",
        path: path.to_path_buf(),
        source,
    };
    let text = fs_err::read_to_string(path).map_err(io)?;
    let report: Report = serde_json::from_str(&text).map_err(|e| io(e.into()))?;
    let mut out: Vec<PipPackage> = report
        .install
        .into_iter()
        .map(|item| {
            let file_name = item
                .download_info
                .url
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            let file_name = file_name.split('#').next().unwrap_or("").to_string();
            let wheel = file_name.ends_with(".whl").then(|| file_name.clone());
            let sha256 = item.download_info.archive_info.as_ref().and_then(|a| {
                a.hashes
                    .as_ref()
                    .and_then(|h| h.get("sha256").cloned())
                    .or_else(|| {
                        a.hash
                            .as_ref()
                            .and_then(|h| h.strip_prefix("sha256=").map(str::to_string))
                    })
            });
            PipPackage {
                tags: wheel.as_deref().map(wheel_tags).unwrap_or_default(),
                name: item.metadata.name,
                version: item.metadata.version,
                url: item.download_info.url,
                wheel,
                sha256,
                requested: item.requested,
            }
        })
        .collect();
    out.sort_by_key(|p| normalize(&p.name));
    Ok(out)
}

/// Expand a wheel file name's compressed tag set (`cp36-abi3-manylinux_2_12_x86_64.manylinux2010_x86_64`).
pub fn wheel_tags(file_name: &str) -> Vec<String> {
    let stem = file_name.trim_end_matches(".whl");
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() < 5 {
        return Vec::new();
    }
    let (py, abi, plat) = (
        parts[parts.len() - 3],
        parts[parts.len() - 2],
        parts[parts.len() - 1],
    );
    let mut tags = Vec::new();
    for p in py.split('.') {
        for a in abi.split('.') {
            for pl in plat.split('.') {
                tags.push(format!("{p}-{a}-{pl}"));
            }
        }
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_expand() {
        let tags =
            wheel_tags("psutil-6.1.1-cp36-abi3-manylinux_2_12_x86_64.manylinux2010_x86_64.whl");
        assert_eq!(
            tags,
            [
                "cp36-abi3-manylinux_2_12_x86_64",
                "cp36-abi3-manylinux2010_x86_64"
            ]
        );
    }
}
