//! The page in a real headless chromium, with the network blocked: the DOM holds every package
//! row and gate verdict, and the screenshot is a rendered page, not a blank one.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use envship_evidence::{page_path, write};
use envship_test_support::{skip, Deadline as _};

use crate::{common, page::evidence};

/// A hung browser cannot block the run: it is killed (with its process group) after this.
const LIMIT: Duration = Duration::from_secs(60);

/// The chromium binary: `$CHROMIUM`, else the first of Debian's and other distributions' names
/// on PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|n| std::env::split_paths(&path).map(move |d| d.join(n)))
        .find(|p| p.is_file())
}

/// Run chromium headless on `page` with `args`, offline: every host name resolves to nothing
/// and every proxied request goes to a closed port. Its profile and caches live in `home`.
fn run(chromium: &Path, home: &Path, page: &Path, args: &[String]) -> std::process::Output {
    let url = format!("file://{}", page.display());
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--proxy-server=127.0.0.1:9",
        ])
        .arg(format!(
            "--user-data-dir={}",
            home.join("profile").display()
        ))
        .args(args)
        .arg(url)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .output_within(LIMIT)
        .expect("run chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Distinct colours of a PNG and the share of pixels that are not the most common one.
fn colours(png_path: &Path) -> (usize, f64, (u32, u32)) {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    assert_eq!(
        info.bit_depth,
        png::BitDepth::Eight,
        "chromium writes 8-bit PNGs"
    );
    let mut counts: std::collections::HashMap<&[u8], usize> = Default::default();
    for px in buf[..info.buffer_size()].chunks_exact(channels) {
        *counts.entry(px).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    let top = counts.values().copied().max().unwrap_or(0);
    let other = (total - top) as f64 / total as f64;
    (counts.len(), other, (info.width, info.height))
}

#[test]
fn chromium_renders_the_page_offline_with_every_row_and_verdict() {
    let test = skip::current_test("browser::chromium_renders_the_page_offline");
    let Some(chromium) = chromium() else {
        skip::skip(
            &test,
            "chromium is not installed (apt-get install chromium, or set CHROMIUM)",
        );
        return;
    };
    let f = common::fixture();
    let e = evidence(&f);
    let page = page_path(&f.archive);
    write(&page, &e).unwrap();
    let home = tempfile::tempdir().unwrap();

    // The DOM after loading (and running the page's script) with no network.
    let out = run(&chromium, home.path(), &page, &["--dump-dom".to_string()]);
    let dom = String::from_utf8(out.stdout).expect("utf-8 DOM");
    assert!(dom.contains("</footer>"), "the whole page loaded:\n{dom}");
    for p in &f.manifest.conda_packages {
        assert!(
            dom.contains(&format!(
                "<tr data-package=\"{}\" data-kind=\"conda\"><td>conda</td><td>{}</td><td>{}</td>",
                p.name, p.name, p.version
            )),
            "conda row {}",
            p.name
        );
    }
    for p in &f.manifest.pip_packages {
        assert!(
            dom.contains(&format!(
                "<tr data-package=\"{}\" data-kind=\"pip\"><td>pip</td><td>{}</td><td>{}</td>",
                p.name, p.name, p.version
            )),
            "pip row {}",
            p.name
        );
    }
    let rows = dom
        .split("<table class=\"packages sortable\"")
        .nth(1)
        .unwrap();
    let rows = rows.split("</table>").next().unwrap();
    assert_eq!(
        rows.matches("<tr data-package=").count(),
        f.manifest.conda_packages.len() + f.manifest.pip_packages.len()
    );
    for g in &e.gates {
        let v = g.verdict.as_str();
        assert!(
            dom.contains(&format!("<tr data-gate=\"{}\" data-verdict=\"{v}\"><td>{}</td><td class=\"verdict {v}\">{v}</td>", g.name, g.name)),
            "gate {} {v} in the DOM",
            g.name
        );
    }
    // The log's markup stayed text: no script element but the page's own.
    assert_eq!(dom.matches("<script>").count(), 1, "only the sort script");
    assert!(dom.contains("&lt;script&gt;alert('log')&lt;/script&gt;"));
    assert!(dom.contains("<svg class=\"bars\""));

    // The rendering: a page with text, tables and bars, not a blank or error page.
    let shot = home.path().join("page.png");
    run(
        &chromium,
        home.path(),
        &page,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1200,1600".to_string(),
        ],
    );
    // ENVSHIP_EVIDENCE_KEEP=DIR keeps the page and its screenshot for a person to look at.
    if let Some(keep) = std::env::var_os("ENVSHIP_EVIDENCE_KEEP") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        std::fs::copy(&page, keep.join(page.file_name().unwrap())).unwrap();
        std::fs::copy(&shot, keep.join("page.png")).unwrap();
    }
    let (distinct, other, size) = colours(&shot);
    assert_eq!(size, (1200, 1600));
    assert!(
        distinct > 16,
        "a rendered page has many colours (antialiased text, verdicts, bars): {distinct}"
    );
    assert!(
        other > 0.01,
        "more than 1 % of the pixels are not the background: {other}"
    );
}
