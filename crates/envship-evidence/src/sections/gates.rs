//! The gates: one row each, verdict as a word (not only a colour) and time in seconds.

use std::fmt::Write as _;

use crate::{
    html::{escape, human_seconds},
    Evidence,
};

/// The gates table, or a line saying none are known.
pub fn render(e: &Evidence<'_>) -> String {
    let mut out = String::from("<h2 id=\"gates\">Gates</h2>\n");
    if e.gates.is_empty() {
        out.push_str("<p class=\"note\">No gate results were given for this archive.</p>\n");
        return out;
    }
    out.push_str(
        "<table class=\"gates\">\n<thead><tr><th>Gate</th><th>Verdict</th><th class=\"num\">Seconds</th><th>Detail</th></tr></thead>\n<tbody>\n",
    );
    for g in &e.gates {
        let v = g.verdict.as_str();
        let secs = g.seconds.map(human_seconds).unwrap_or_else(|| "—".into());
        let _ = writeln!(
            out,
            "<tr data-gate=\"{name}\" data-verdict=\"{v}\"><td>{name}</td><td class=\"verdict {v}\">{v}</td><td class=\"num\">{secs}</td><td>{}</td></tr>",
            escape(g.detail.as_deref().unwrap_or("")),
            name = escape(&g.name),
        );
    }
    out.push_str("</tbody>\n</table>\n");
    out
}
