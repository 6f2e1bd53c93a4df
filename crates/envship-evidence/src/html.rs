//! HTML escaping and the small formatting helpers every section uses.

/// `s` escaped for HTML text and for double- or single-quoted attribute values: `&`, `<`, `>`,
/// `"` and `'` become entities. Control characters other than tab and newline (terminal escape
/// sequences in test logs) become U+FFFD, so they cannot hide text.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' => out.push(c),
            '\r' => {}
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Bytes for people: `512 B`, `1.5 KiB`, `12.0 MiB`.
pub fn human_bytes(n: u64) -> String {
    envship_pack::diff::human_bytes(n)
}

/// Seconds for people: `0.42 s`, `12.3 s`, `4 min 05 s`.
pub fn human_seconds(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "?".to_string();
    }
    if s < 10.0 {
        format!("{s:.2} s")
    } else if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let total = s.round() as u64;
        format!("{} min {:02} s", total / 60, total % 60)
    }
}

/// A table cell holding `text`, escaped.
pub fn td(text: &str) -> String {
    format!("<td>{}</td>", escape(text))
}

/// A table cell holding `text` in monospace, escaped.
pub fn td_code(text: &str) -> String {
    format!("<td><code>{}</code></td>", escape(text))
}

/// A dotted version (`2.12`, `3.4.21`) as numbers, for comparing; `None` unless every part is
/// a number.
pub fn dotted(v: &str) -> Option<Vec<u64>> {
    v.split('.').map(|p| p.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x&y")</script>"#),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;"
        );
        assert_eq!(escape("it's"), "it&#39;s");
        assert_eq!(escape("plain-name_1.2"), "plain-name_1.2");
    }

    #[test]
    fn control_characters_cannot_hide_text() {
        assert_eq!(
            escape("\u{1b}[31mred\u{1b}[0m\r\n"),
            "\u{FFFD}[31mred\u{FFFD}[0m\n"
        );
        assert_eq!(escape("a\tb"), "a\tb");
    }

    #[test]
    fn an_escaped_string_holds_no_markup() {
        let nasty = "\"><img src=x onerror=alert(1)>&lt;";
        let e = escape(nasty);
        assert!(!e.contains('<') && !e.contains('>') && !e.contains('"'));
        assert!(
            e.contains("&amp;lt;"),
            "an existing entity is escaped again: {e}"
        );
    }

    #[test]
    fn seconds_read_naturally() {
        assert_eq!(human_seconds(0.4234), "0.42 s");
        assert_eq!(human_seconds(12.34), "12.3 s");
        assert_eq!(human_seconds(245.0), "4 min 05 s");
        assert_eq!(human_seconds(f64::NAN), "?");
    }

    #[test]
    fn dotted_versions_compare_numerically() {
        assert!(dotted("2.14") > dotted("2.4"));
        assert!(dotted("2.12") < dotted("2.12.1"));
        assert_eq!(dotted("PRIVATE"), None);
    }
}
