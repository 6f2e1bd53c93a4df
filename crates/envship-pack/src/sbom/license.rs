//! Licenses as CycloneDX states them: an SPDX id when the text is exactly one (the schema checks
//! ids against the SPDX list), an SPDX expression when the text parses as one (`MIT OR
//! Apache-2.0`), else the text as a free `name`. Python METADATA adds its own order: PEP 639's
//! `License-Expression`, then the older `License` field, then the `License ::` classifiers.

use serde::Serialize;

/// One entry of a component's `licenses` array.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum LicenseChoice {
    /// `{"license": {"id": …}}` or `{"license": {"name": …}}`.
    License {
        /// The license.
        license: License,
    },
    /// `{"expression": …}`: CycloneDX allows it only as the array's single entry.
    Expression {
        /// The SPDX expression.
        expression: String,
    },
}

/// A license by SPDX id or by name (exactly one is set).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct License {
    /// An SPDX license id from the SPDX list.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Free text, when the license is no SPDX id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Longest `License:` value taken as a name: longer ones are usually the whole license text.
const MAX_NAME_LEN: usize = 120;

/// The licenses `text` states: none for empty or `UNKNOWN` text.
pub fn from_text(text: &str) -> Vec<LicenseChoice> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("unknown") {
        return Vec::new();
    }
    // `license_id` ignores a trailing `+`; an id is only the exact name (`GPL-2.0+` is an
    // expression, whose `+` the id would drop).
    if let Some(id) = spdx::license_id(text).filter(|id| id.name == text) {
        return vec![LicenseChoice::License {
            license: License {
                id: Some(id.name.to_string()),
                name: None,
            },
        }];
    }
    if spdx::Expression::parse(text).is_ok() {
        return vec![LicenseChoice::Expression {
            expression: text.to_string(),
        }];
    }
    vec![named(text)]
}

fn named(text: &str) -> LicenseChoice {
    LicenseChoice::License {
        license: License {
            id: None,
            name: Some(text.to_string()),
        },
    }
}

/// The licenses a Python distribution's METADATA states.
pub fn from_python_metadata(
    license_expression: Option<&str>,
    license: Option<&str>,
    classifiers: &[&str],
) -> Vec<LicenseChoice> {
    if let Some(expr) = license_expression {
        let found = from_text(expr);
        if !found.is_empty() {
            return found;
        }
    }
    let license = license.map(str::trim).unwrap_or_default();
    let short = !license.contains('\n') && license.len() <= MAX_NAME_LEN;
    if short {
        let found = from_text(license);
        if !found.is_empty() {
            return found;
        }
    }
    let mut from_classifiers: Vec<LicenseChoice> = classifiers
        .iter()
        .filter_map(|c| c.trim().strip_prefix("License ::"))
        .filter_map(|c| c.rsplit("::").next().map(str::trim))
        // `License :: OSI Approved` alone says which body approved, not which license.
        .filter(|name| !name.is_empty() && *name != "OSI Approved")
        .map(named)
        .collect();
    from_classifiers.dedup();
    if !from_classifiers.is_empty() {
        return from_classifiers;
    }
    // Only the long text is left: its first line usually names the license.
    match license.lines().map(str::trim).find(|l| !l.is_empty()) {
        Some(first) if !first.eq_ignore_ascii_case("unknown") => vec![named(first)],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(l: &[LicenseChoice]) -> String {
        serde_json::to_string(l).unwrap_or_default()
    }

    #[test]
    fn spdx_ids_expressions_and_names() {
        assert_eq!(json(&from_text("MIT")), r#"[{"license":{"id":"MIT"}}]"#);
        assert_eq!(
            json(&from_text("BSD-3-Clause AND MIT")),
            r#"[{"expression":"BSD-3-Clause AND MIT"}]"#
        );
        assert_eq!(
            json(&from_text("GPL-2.0-or-later WITH Classpath-exception-2.0")),
            r#"[{"expression":"GPL-2.0-or-later WITH Classpath-exception-2.0"}]"#
        );
        // `license_id` would find GPL-2.0 and drop the `+`; strict SPDX refuses the deprecated
        // form as an expression, so it stays the text it is.
        assert_eq!(
            json(&from_text("GPL-2.0+")),
            r#"[{"license":{"name":"GPL-2.0+"}}]"#
        );
        assert_eq!(
            json(&from_text("BSD 3-Clause")),
            r#"[{"license":{"name":"BSD 3-Clause"}}]"#
        );
        assert!(from_text(" UNKNOWN ").is_empty());
        assert!(from_text("").is_empty());
    }

    #[test]
    fn python_metadata_order() {
        let classifiers = [
            "Programming Language :: Python",
            "License :: OSI Approved :: BSD License",
            "License :: OSI Approved",
        ];
        assert_eq!(
            json(&from_python_metadata(
                Some("Apache-2.0 OR MIT"),
                Some("MIT"),
                &classifiers
            )),
            r#"[{"expression":"Apache-2.0 OR MIT"}]"#
        );
        assert_eq!(
            json(&from_python_metadata(None, Some("MIT"), &classifiers)),
            r#"[{"license":{"id":"MIT"}}]"#
        );
        let text = "Copyright (c) 2009, Jay Loden\nAll rights reserved.\n";
        assert_eq!(
            json(&from_python_metadata(None, Some(text), &classifiers)),
            r#"[{"license":{"name":"BSD License"}}]"#
        );
        assert_eq!(
            json(&from_python_metadata(None, Some(text), &[])),
            r#"[{"license":{"name":"Copyright (c) 2009, Jay Loden"}}]"#
        );
        assert!(from_python_metadata(None, Some("UNKNOWN"), &[]).is_empty());
    }
}
