//! Where the bytes go: the largest packages as an inline SVG horizontal bar chart (no script,
//! no external font; text in the page's own font).

use std::fmt::Write as _;

use crate::html::{escape, human_bytes};

/// How many packages the chart shows.
pub const TOP: usize = 20;

/// Width of the longest bar, in SVG user units.
const BAR_MAX: u32 = 560;
/// Room for the package names, left of the bars.
const LABEL_W: u32 = 220;
/// Room for the sizes, right of the longest bar.
const VALUE_W: u32 = 110;
/// Height of one row.
const ROW_H: u32 = 22;

/// The length of a bar for `bytes` when the largest package has `max` bytes and gets `full`
/// units: proportional, rounded, and at least 1 for a non-empty package so that it stays
/// visible.
pub fn bar_len(bytes: u64, max: u64, full: u32) -> u32 {
    if bytes == 0 || max == 0 {
        return 0;
    }
    let len = (bytes as f64 / max as f64 * f64::from(full)).round() as u32;
    len.clamp(1, full)
}

/// The [`TOP`] largest of `sizes` (name, bytes), largest first, ties by name.
pub fn largest(sizes: &[(String, u64)]) -> Vec<(String, u64)> {
    let mut v = sizes.to_vec();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v.truncate(TOP);
    v
}

/// The chart of `sizes` (already [`largest`]-sorted), `total` the archive's bytes for the share
/// column; empty when there is nothing to draw.
pub fn bar_chart(sizes: &[(String, u64)], total: u64) -> String {
    let Some(max) = sizes.iter().map(|(_, b)| *b).max().filter(|m| *m > 0) else {
        return String::new();
    };
    let width = LABEL_W + BAR_MAX + VALUE_W;
    let height = ROW_H * sizes.len() as u32 + 4;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg class="bars" role="img" aria-label="the {n} largest packages by installed size" viewBox="0 0 {width} {height}" width="{width}" height="{height}">"#,
        n = sizes.len()
    );
    for (i, (name, bytes)) in sizes.iter().enumerate() {
        let y = ROW_H * i as u32 + 2;
        let len = bar_len(*bytes, max, BAR_MAX);
        let share = if total > 0 {
            format!(" ({:.1} %)", *bytes as f64 * 100.0 / total as f64)
        } else {
            String::new()
        };
        let (name, size) = (escape(name), human_bytes(*bytes));
        let _ = writeln!(
            s,
            r#"<g data-package="{name}"><title>{name}: {size}{share}</title><text x="{lx}" y="{ty}" text-anchor="end">{name}</text><rect x="{LABEL_W}" y="{y}" width="{len}" height="{bh}"></rect><text x="{vx}" y="{ty}">{size}</text></g>"#,
            lx = LABEL_W - 6,
            ty = y + 15,
            bh = ROW_H - 6,
            vx = LABEL_W + len + 6,
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_are_proportional_to_the_largest() {
        assert_eq!(bar_len(100, 100, 560), 560);
        assert_eq!(bar_len(50, 100, 560), 280);
        assert_eq!(bar_len(1, 3, 300), 100);
        assert_eq!(bar_len(0, 100, 560), 0);
        assert_eq!(bar_len(5, 0, 560), 0);
    }

    #[test]
    fn a_tiny_package_keeps_a_visible_bar() {
        assert_eq!(bar_len(1, 10_000_000_000, 560), 1);
    }

    #[test]
    fn the_chart_keeps_the_twenty_largest_largest_first() {
        let sizes: Vec<(String, u64)> = (0..30).map(|i| (format!("p{i:02}"), i * 10)).collect();
        let top = largest(&sizes);
        assert_eq!(top.len(), TOP);
        assert_eq!(top[0], ("p29".to_string(), 290));
        assert_eq!(top[19], ("p10".to_string(), 100));
        let svg = bar_chart(&top, 10_000);
        assert_eq!(svg.matches("<rect ").count(), TOP);
        assert!(
            svg.contains(r#"width="560""#),
            "the largest bar is full length: {svg}"
        );
        assert!(svg.contains(r#"<rect x="220" y="2" width="560""#));
    }

    #[test]
    fn names_in_the_chart_are_escaped_and_nothing_is_drawn_for_nothing() {
        let svg = bar_chart(&[("<b>&".to_string(), 10)], 10);
        assert!(svg.contains("&lt;b&gt;&amp;") && !svg.contains("<b>"));
        assert_eq!(bar_chart(&[("empty".to_string(), 0)], 0), "");
        assert_eq!(bar_chart(&[], 0), "");
    }
}
