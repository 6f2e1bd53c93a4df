//! The page as HTML: every input shown, everything escaped, nothing loaded from anywhere.

use envship_evidence::{package_sizes, page_path, render, write, BuildInfo, Evidence};
use envship_pack::diff::{self, Side, SideKind};

use crate::common::{self, Fixture, TEST_LOG};

/// The full evidence of the fixture (no previous release).
pub fn evidence(f: &Fixture) -> Evidence<'_> {
    let mut e = Evidence::new(&f.manifest);
    e.audit_report = Some(&f.audit);
    e.test_log = Some(TEST_LOG);
    e.gates = common::gates();
    e.build = BuildInfo {
        commit: Some("6fcb57b0c0ffee".into()),
        time: Some("2026-12-04T18:00:00Z".into()),
    };
    e.package_sizes = package_sizes(&f.prefix, &f.manifest);
    e
}

/// Every attribute value of every tag in `html` (a rough scan: text is escaped, so a `<` in the
/// page starts a tag or sits in the inline script, where it does no harm to this check).
fn attribute_values(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for tag in html.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap_or_default();
        for (i, part) in tag.split('"').enumerate() {
            if i % 2 == 1 {
                out.push(part.to_string());
            }
        }
    }
    out
}

/// No external reference of any kind: no `<link>`, `src=`, `url(`, `@import`, and no URL in any
/// attribute; only in-page `href="#…"`.
pub fn assert_self_contained(html: &str) {
    let lower = html.to_ascii_lowercase();
    for banned in [
        "<link", " src=", "url(", "@import", "<img", "<iframe", "<object", "<embed",
    ] {
        assert!(!lower.contains(banned), "the page has {banned:?}");
    }
    for (i, _) in lower.match_indices("href=") {
        assert!(lower[i..].starts_with("href=\"#"), "external href at {i}");
    }
    for v in attribute_values(&lower) {
        assert!(
            !v.contains("http:") && !v.contains("https:") && !v.contains("//"),
            "an attribute holds a URL: {v:?}"
        );
    }
    assert!(
        html.contains("Content-Security-Policy\" content=\"default-src 'none'"),
        "the page forbids external loads"
    );
}

#[test]
fn every_input_is_on_the_page_escaped_and_self_contained() {
    let f = common::fixture();
    let e = evidence(&f);
    let html = render(&e);
    assert_self_contained(&html);

    // What it is.
    for fact in [
        "evidence-env",
        "2026.12.1",
        "lcls-rhel6",
        "linux-64",
        "2.12",
        "2.6.32",
        "6fcb57b0c0ffee",
        "2026-12-04T18:00:00Z",
    ] {
        assert!(
            html.contains(&format!("<code>{fact}</code>")),
            "{fact} is in the facts table"
        );
    }
    assert!(html.contains("<div class=\"banner fail\" id=\"verdict\">Not fit for production: failed gate(s): audit, test</div>"));
    // Gates.
    for (gate, verdict) in [
        ("lock", "pass"),
        ("build", "pass"),
        ("audit", "fail"),
        ("pack", "pass"),
        ("test", "fail"),
    ] {
        assert!(
            html.contains(&format!(
                "<tr data-gate=\"{gate}\" data-verdict=\"{verdict}\">"
            )),
            "{gate} {verdict}"
        );
    }
    assert!(html.contains("<td class=\"num\">38.4 s</td>"));
    // The test: failed, the log folded and escaped (markup and terminal escapes neutralised).
    assert!(html.contains("The test script <span class=\"verdict fail\">failed</span> (exit code 1; failed step: test"));
    assert!(html.contains("<details id=\"test-log\"><summary>Test log (4 lines)</summary>"));
    assert!(html.contains("&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;"));
    assert!(!html.contains("<script>alert"));
    assert!(!html.contains('\u{1b}'));

    // The audit: errors first, the real GLIBC_2.28 need of bcrypt's extension over the limit,
    // zlib's library within it.
    let findings = html
        .split("<table class=\"findings\">")
        .nth(1)
        .expect("findings table");
    let first = findings
        .split("<tr data-status=")
        .nth(1)
        .expect("a finding");
    assert!(first.starts_with("\"error\""), "errors first: {first}");
    assert!(findings.contains("GLIBC_2.28"));
    let versions = html
        .split("<table class=\"versions\">")
        .nth(1)
        .expect("versions table");
    let versions = versions.split("</table>").next().unwrap();
    let bcrypt = versions
        .split("<tr>")
        .find(|r| r.contains("_bcrypt.abi3.so"))
        .expect("bcrypt row");
    assert!(
        bcrypt.contains("<td>2.28</td><td class=\"over\">over the limit</td>"),
        "{bcrypt}"
    );
    let libz = versions
        .split("<tr>")
        .find(|r| r.contains("libz.so.1.2.11"))
        .expect("libz row");
    assert!(libz.contains("<td class=\"pass\">within</td>"), "{libz}");
    assert!(libz.contains("zlib-1.2.11-h7b6447c_3"), "{libz}");

    // Packages: the real zlib record (its license) and the pip distribution, with sizes.
    assert!(html.contains("<tr data-package=\"zlib\" data-kind=\"conda\"><td>conda</td><td>zlib</td><td>1.2.11</td><td>h7b6447c_3</td><td>zlib</td>"));
    assert!(html.contains("<tr data-package=\"bcrypt\" data-kind=\"pip\"><td>pip</td><td>bcrypt</td><td>4.3.0</td><td>installed by pip</td>"));
    let bcrypt_bytes = e.package_sizes["bcrypt"];
    assert!(
        bcrypt_bytes > 646_600,
        "the extension alone is 646,600 bytes: {bcrypt_bytes}"
    );
    assert!(html.contains(&format!("data-key=\"{bcrypt_bytes}\"")));
    // Where the bytes go: one bar per package, the largest first.
    let svg = html.split("<svg class=\"bars\"").nth(1).expect("chart");
    assert_eq!(svg.matches("<rect ").count(), 2);
    assert!(svg.find("bcrypt (pip)").unwrap() < svg.find("zlib (conda)").unwrap());
    // No previous release.
    assert!(html.contains("id=\"no-previous\">No previous release is known"));
}

#[test]
fn the_changes_against_the_previous_release_are_listed() {
    let f = common::fixture();
    let mut old = f.manifest.clone();
    old.version = "2026.11.0".into();
    old.pip_packages.clear();
    old.conda_packages[0].version = "1.2.8".into();
    old.conda_packages[0].build = "0".into();
    let mut gone = old.conda_packages[0].clone();
    gone.name = "openssl".into();
    old.conda_packages.push(gone);
    old.audit = Some(serde_json::json!({"errors": 0, "passed": true}));
    let old =
        Side::from_manifest(SideKind::Manifest, "old.manifest.json".as_ref(), &old, None).unwrap();
    let new = Side::from_manifest(SideKind::Archive, &f.archive, &f.manifest, None).unwrap();
    let d = diff::diff(&old, &new);
    let mut e = evidence(&f);
    e.diff = Some(&d);
    let html = render(&e);
    assert_self_contained(&html);
    assert!(html.contains(
        "From <strong>evidence-env 2026.11.0</strong> to <strong>evidence-env 2026.12.1</strong>"
    ));
    assert!(html.contains("<tr data-change=\"changed\"><td class=\"changed\">changed</td><td>conda</td><td>zlib</td><td>1.2.8 (0)</td><td>1.2.11 (h7b6447c_3)</td></tr>"));
    assert!(html.contains("<tr data-change=\"removed\"><td class=\"removed\">removed</td><td>conda</td><td>openssl</td>"));
    assert!(html.contains("<tr data-change=\"added\"><td class=\"added\">added</td><td>pip</td><td>bcrypt</td><td>—</td><td>4.3.0</td></tr>"));
    assert!(html.contains("Audit errors: 0 before, "));
    assert!(!html.contains("no-previous"));
}

#[test]
fn a_manifest_alone_makes_a_page_that_says_what_is_unknown() {
    let f = common::fixture();
    let html = render(&Evidence::new(&f.manifest));
    assert_self_contained(&html);
    assert!(html.contains("No gate results were given"));
    assert!(html.contains("No audit report was given"));
    assert!(html.contains("No test log was given"));
    assert!(html.contains("Package sizes were not measured"));
    // The manifest's own audit summary and test outcome still give a verdict.
    assert!(html.contains("The audit <span class=\"verdict fail\">failed</span>"));
    assert!(html.contains("<div class=\"banner fail\" id=\"verdict\">"));
}

#[test]
fn write_puts_the_page_beside_the_archive_atomically() {
    let f = common::fixture();
    let e = evidence(&f);
    let path = page_path(&f.archive);
    assert_eq!(
        path.file_name().unwrap(),
        "evidence-env-2026.12.1-lcls-rhel6-linux-64.html"
    );
    write(&path, &e).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), render(&e));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .flatten()
        .filter(|d| {
            // The pack that made the fixture keeps its lock file beside the archive.
            let n = d.file_name().to_string_lossy().into_owned();
            n.starts_with(".evidence-") && !n.ends_with(".envship-lock")
        })
        .collect();
    assert!(leftovers.is_empty(), "no temp file is left");
    let err = write(&f.dir.path().join("no/such/dir/x.html"), &e).unwrap_err();
    assert!(
        matches!(err, envship_evidence::EvidenceError::TempFile { .. }),
        "{err:?}"
    );
}
