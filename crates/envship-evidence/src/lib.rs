//! The evidence page of an archive: `STEM.html` beside `STEM.tar.gz`, one self-contained HTML
//! file (inline CSS and SVG, a few lines of inline script that only sort a table) for whoever
//! decides whether a release goes on production. It opens from a GitHub release or a file share
//! and fetches nothing: a `Content-Security-Policy` meta tag forbids every external load.
//!
//! The page shows what the archive is (name, version, target, platform, build commit and time),
//! the verdict and time of each gate (lock, build, audit, pack, test), the test's result and log
//! (folded), the audit's findings (errors first) and the highest `GLIBC_`/`GLIBCXX_` version each
//! ELF file needs against the target's limit, the packages (a sortable table that is complete
//! without the script), where the bytes go (the 20 largest packages as an SVG bar chart) and,
//! when given, what changed against the previous release ([`ReleaseDiff`]).
//!
//! **Owns**: the page's HTML (escaping every piece of text it is given), its layout and the bar
//! chart; reading package sizes from a prefix's records ([`package_sizes`]) since the manifest
//! does not keep them; mapping the ship report's stages to [`Gate`]s
//! ([`gates_from_ship_json`]). **Must not know**: how the stages run or judge (it reads the
//! manifest, the audit report's documented JSON, the test log and the gates it is given, never
//! re-checking them), where the page is published, or how anything is printed: it returns a
//! `String` or writes one file.

mod audit;
mod chart;
mod error;
mod gates;
mod html;
mod page;
mod sections;
mod sizes;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

pub use envship_pack::{diff::ReleaseDiff, Manifest};
pub use error::EvidenceError;
pub use gates::{gates_from_ship_json, GATE_NAMES};
pub use html::escape;
pub use page::render;
pub use sizes::package_sizes;

/// How a gate ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The gate ran and passed.
    Pass,
    /// The gate ran and failed.
    Fail,
    /// The gate did not run (an earlier one failed, or it was turned off).
    Skipped,
}

impl Verdict {
    /// `pass`, `fail` or `skipped`: the word the page shows and its `data-verdict` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skipped => "skipped",
        }
    }
}

/// One gate of the pipeline (a ship stage) as the page shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    /// `lock`, `build`, `audit`, `pack` or `test` ([`GATE_NAMES`]); any other name is shown as is.
    pub name: String,
    /// How it ended.
    pub verdict: Verdict,
    /// Wall time in seconds, when it ran.
    pub seconds: Option<f64>,
    /// One line of figures (`3 errors, 1 warning`, `passed in 1.2 s`, …).
    pub detail: Option<String>,
}

/// Where and when the archive was built.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BuildInfo {
    /// The source commit (a git sha), if known.
    pub commit: Option<String>,
    /// The build time as the caller formats it (RFC 3339 preferred), if known.
    pub time: Option<String>,
}

/// Everything the page is made from. Only the manifest is required; every other input that is
/// absent is said so on the page.
#[derive(Clone, Debug)]
pub struct Evidence<'a> {
    /// The archive's manifest (name, version, target, packages, totals, audit summary, test).
    pub manifest: &'a Manifest,
    /// The audit report (`STEM.audit.json`, the JSON `envship audit --json` writes).
    pub audit_report: Option<&'a serde_json::Value>,
    /// The test script's log (`STEM.test.log`).
    pub test_log: Option<&'a str>,
    /// Whether the test passed; `None`: the manifest's `test.passed`, if any.
    pub test_passed: Option<bool>,
    /// The gates, in pipeline order.
    pub gates: Vec<Gate>,
    /// Build commit and time.
    pub build: BuildInfo,
    /// The target's kernel version; `None`: the audit report's `target.linux`, if any.
    pub kernel: Option<String>,
    /// Installed bytes per package name (conda and pip names as the manifest spells them): the
    /// manifest does not record them; see [`package_sizes`].
    pub package_sizes: BTreeMap<String, u64>,
    /// What changed against the previous release, if one is known.
    pub diff: Option<&'a ReleaseDiff>,
}

impl<'a> Evidence<'a> {
    /// Evidence with nothing but the manifest.
    pub fn new(manifest: &'a Manifest) -> Self {
        Self {
            manifest,
            audit_report: None,
            test_log: None,
            test_passed: None,
            gates: Vec::new(),
            build: BuildInfo::default(),
            kernel: None,
            package_sizes: BTreeMap::new(),
            diff: None,
        }
    }
}

/// The page's suffix after the archive's stem.
pub const PAGE_SUFFIX: &str = ".html";

/// The evidence page of `archive`: `STEM.html` beside it (`foo-1.0-linux-64.tar.gz` →
/// `foo-1.0-linux-64.html`; a name without an archive extension keeps its whole name).
pub fn page_path(archive: &Path) -> PathBuf {
    let name = archive.file_name().unwrap_or_default().to_string_lossy();
    let stem = envship_pack::archive_stem(&name);
    archive.with_file_name(format!("{stem}{PAGE_SUFFIX}"))
}

/// Render `e` and write it to `path` atomically (a temp file in the same directory, renamed).
pub fn write(path: &Path, e: &Evidence<'_>) -> Result<(), EvidenceError> {
    use std::io::Write as _;
    let html = render(e);
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".evidence-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|source| EvidenceError::TempFile {
            dir: dir.to_path_buf(),
            source,
        })?;
    tmp.write_all(html.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|source| EvidenceError::Write {
            path: tmp.path().to_path_buf(),
            source,
        })?;
    // Readable by everyone who can read the archive (a temp file is 0600).
    std::fs::set_permissions(
        tmp.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .map_err(|source| EvidenceError::Write {
        path: tmp.path().to_path_buf(),
        source,
    })?;
    tmp.persist(path).map_err(|e| EvidenceError::Rename {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_is_beside_the_archive_named_after_its_stem() {
        assert_eq!(
            page_path(Path::new("/out/foo-1.0-linux-64.tar.gz")),
            Path::new("/out/foo-1.0-linux-64.html")
        );
        assert_eq!(
            page_path(Path::new("rel/foo-1.0-linux-64.tar.zst")),
            Path::new("rel/foo-1.0-linux-64.html")
        );
        assert_eq!(
            page_path(Path::new("foo-1.0-linux-64")),
            Path::new("foo-1.0-linux-64.html")
        );
    }
}
