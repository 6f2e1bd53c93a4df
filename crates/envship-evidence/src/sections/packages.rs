//! The packages (conda and pip) as a sortable table, and where the bytes go as a bar chart.

use std::fmt::Write as _;

use crate::{
    chart,
    html::{escape, human_bytes, td},
    Evidence,
};

/// One row of the table.
struct Row<'a> {
    kind: &'static str,
    name: &'a str,
    version: &'a str,
    build: String,
    license: Option<&'a str>,
    size: Option<u64>,
}

fn rows<'a>(e: &'a Evidence<'_>) -> Vec<Row<'a>> {
    let m = e.manifest;
    let size = |n: &str| e.package_sizes.get(n).copied();
    let conda = m.conda_packages.iter().map(|p| Row {
        kind: "conda",
        name: &p.name,
        version: &p.version,
        build: p.build.clone(),
        license: p.license.as_deref(),
        size: size(&p.name),
    });
    let pip = m.pip_packages.iter().map(|p| Row {
        kind: "pip",
        name: &p.name,
        version: &p.version,
        build: match (&p.installer, p.editable) {
            (_, true) => "editable".to_string(),
            (Some(i), false) => format!("installed by {i}"),
            (None, false) => String::new(),
        },
        // METADATA's license is not in the manifest.
        license: None,
        size: size(&p.name),
    });
    conda.chain(pip).collect()
}

fn table(rows: &[Row<'_>]) -> String {
    let mut out = String::from(
        "<table class=\"packages sortable\" id=\"packages\">\n<thead><tr><th data-sort=\"text\">Kind</th><th data-sort=\"text\">Name</th><th data-sort=\"text\">Version</th><th data-sort=\"text\">Build</th><th data-sort=\"text\">License</th><th data-sort=\"num\" class=\"num\">Size</th></tr></thead>\n<tbody>\n",
    );
    for r in rows {
        let license = match r.license {
            Some(l) => td(l),
            None => "<td class=\"note\">not recorded</td>".to_string(),
        };
        let size = match r.size {
            Some(b) => format!("<td class=\"num\" data-key=\"{b}\">{}</td>", human_bytes(b)),
            None => "<td class=\"num note\" data-key=\"-1\">unknown</td>".to_string(),
        };
        let _ = writeln!(
            out,
            "<tr data-package=\"{}\" data-kind=\"{}\">{}{}{}{}{license}{size}</tr>",
            escape(r.name),
            r.kind,
            td(r.kind),
            td(r.name),
            td(r.version),
            td(&r.build),
        );
    }
    out.push_str("</tbody>\n</table>\n");
    out
}

/// The packages section.
pub fn render(e: &Evidence<'_>) -> String {
    let m = e.manifest;
    let rows = rows(e);
    let mut out = String::from("<h2 id=\"packages-heading\">Packages</h2>\n");
    let _ = writeln!(
        out,
        "<p>{} conda packages and {} pip distributions. Click a column heading to sort.</p>",
        m.conda_packages.len(),
        m.pip_packages.len()
    );
    if e.package_sizes.is_empty() {
        out.push_str("<p class=\"note\">Package sizes were not measured for this archive.</p>\n");
    }
    out.push_str(&table(&rows));

    out.push_str("<h2 id=\"bytes\">Where the bytes go</h2>\n");
    let sizes: Vec<(String, u64)> = rows
        .iter()
        .filter_map(|r| Some((format!("{} ({})", r.name, r.kind), r.size?)))
        .collect();
    let top = chart::largest(&sizes);
    let svg = chart::bar_chart(&top, m.bytes);
    if svg.is_empty() {
        out.push_str("<p class=\"note\">No package sizes are known.</p>\n");
    } else {
        let counted: u64 = sizes.iter().map(|(_, b)| *b).sum();
        let _ = writeln!(
            out,
            "<p>The {} largest of {} packages by installed size. The archive holds {} in {} files; the packages account for {}.</p>",
            top.len(),
            sizes.len(),
            human_bytes(m.bytes),
            m.file_count,
            human_bytes(counted)
        );
        out.push_str(&svg);
    }
    out
}
