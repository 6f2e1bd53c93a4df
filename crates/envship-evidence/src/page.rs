//! The whole page: head (inline style, a security policy that forbids every external load),
//! the sections in reading order, and the few lines of script that sort the package table.

use crate::{html::escape, sections, Evidence};

/// Plain, printable, readable in dark and light: no web font, no image.
const STYLE: &str = r#"
:root { color-scheme: light; --ok: #1a7f37; --bad: #b42318; --skip: #6b7280; --line: #d0d7de; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328;
  background: #fff; max-width: 1100px; margin: 1.5em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin: 0 0 .2em; }
h2 { font-size: 1.2em; margin: 1.6em 0 .5em; border-bottom: 1px solid var(--line); padding-bottom: .2em; }
table { border-collapse: collapse; margin: .4em 0 1em; }
th, td { border: 1px solid var(--line); padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.facts th { width: 11em; }
code, pre { font: 13px/1.4 ui-monospace, "SF Mono", Menlo, Consolas, monospace; }
pre { background: #f6f8fa; border: 1px solid var(--line); padding: .6em; overflow-x: auto;
  white-space: pre-wrap; word-break: break-all; }
.verdict { font-weight: 700; text-transform: uppercase; }
.pass { color: var(--ok); } .fail, .error, .over { color: var(--bad); font-weight: 700; }
.skipped, .allowed { color: var(--skip); } .warning { color: #9a6700; }
.banner { padding: .6em 1em; border: 2px solid; border-radius: 4px; margin: .8em 0 1.2em; font-weight: 700; }
.banner.pass { border-color: var(--ok); background: #dafbe1; }
.banner.fail { border-color: var(--bad); background: #ffebe9; }
.banner.skipped { border-color: var(--skip); background: #f6f8fa; }
.note { color: #57606a; }
svg.bars { max-width: 100%; height: auto; font: 12px system-ui, sans-serif; }
svg.bars rect { fill: #4a7ab5; } svg.bars text { fill: #1f2328; }
th[data-sort] { cursor: pointer; }
footer { margin-top: 2em; color: #57606a; font-size: .85em; }
"#;

/// Sorts the package table when a header is clicked; the table is complete without it.
const SORT_SCRIPT: &str = r#"
for (const th of document.querySelectorAll("table.sortable th[data-sort]")) {
  th.addEventListener("click", () => {
    const table = th.closest("table"), body = table.tBodies[0], col = th.cellIndex;
    const num = th.dataset.sort === "num", dir = th.dataset.dir === "asc" ? -1 : 1;
    th.dataset.dir = dir === 1 ? "asc" : "desc";
    const key = (tr) => { const c = tr.cells[col]; return num ? Number(c.dataset.key) : c.textContent.toLowerCase(); };
    const rows = Array.from(body.rows);
    rows.sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * dir; });
    for (const r of rows) body.appendChild(r);
  });
}
"#;

/// The page's security policy: nothing is loaded from anywhere; inline style and script only.
const CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:";

/// The evidence page of `e`, a complete HTML document.
pub fn render(e: &Evidence<'_>) -> String {
    let m = e.manifest;
    let title = format!("{} {} ({}) — evidence", m.name, m.version, m.target.name);
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str(&format!(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
    ));
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str(&format!("<title>{}</title>\n", escape(&title)));
    out.push_str(&format!("<style>{STYLE}</style>\n</head>\n<body>\n"));
    out.push_str(&sections::summary::render(e));
    out.push_str(&sections::gates::render(e));
    out.push_str(&sections::test::render(e));
    out.push_str(&sections::audit::render(e));
    out.push_str(&sections::packages::render(e));
    out.push_str(&sections::diff::render(e));
    out.push_str(&format!(
        "<footer>Written by envship {} from the archive's manifest{}. This page is a single file: it loads nothing.</footer>\n",
        escape(&m.envship_version),
        if e.audit_report.is_some() { ", audit report" } else { "" },
    ));
    out.push_str(&format!(
        "<script>{SORT_SCRIPT}</script>\n</body>\n</html>\n"
    ));
    out
}
