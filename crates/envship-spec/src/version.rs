//! Dotted numeric versions as the loader and the kernel see them (`2.12`, `2.6.32`, `3.4.13`).
//!
//! `rattler_conda_types::Version` follows conda's ordering rules (letters, epochs, local
//! parts); glibc symbol versions and kernel releases are plain dotted numbers, and `2.2.5` must
//! differ from `2.2` (they are different symbol versions), so they get their own small type.

use std::{cmp::Ordering, fmt, str::FromStr};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A version made only of dot-separated unsigned integers, compared component-wise, where
/// missing trailing components count as zero for ordering (`2.12 < 2.12.1`, `2.2 == 2.2.0`
/// for ordering) but the written form is kept for display.
#[derive(Clone, Debug, Eq)]
pub struct DottedVersion {
    parts: Vec<u32>,
}

/// A string that is not a dotted numeric version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a dotted numeric version (expected something like 2.17 or 3.10.0)")]
pub struct ParseDottedVersionError(pub String);

impl DottedVersion {
    /// Build from components; at least one is required.
    pub fn new(parts: impl Into<Vec<u32>>) -> Self {
        let parts = parts.into();
        assert!(!parts.is_empty(), "a version has at least one component");
        Self { parts }
    }

    /// The numeric components as written.
    pub fn parts(&self) -> &[u32] {
        &self.parts
    }

    /// Parse the leading dotted-number part of a kernel release or a version with a suffix,
    /// e.g. `6.1.0-18-amd64` → `6.1.0`, `2.36+deb12` → `2.36`.
    pub fn parse_prefix(s: &str) -> Option<Self> {
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        s[..end].trim_end_matches('.').parse().ok()
    }
}

impl FromStr for DottedVersion {
    type Err = ParseDottedVersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseDottedVersionError(s.to_string());
        if s.is_empty() {
            return Err(err());
        }
        let parts = s
            .split('.')
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    Err(err())
                } else {
                    p.parse::<u32>().map_err(|_| err())
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { parts })
    }
}

impl fmt::Display for DottedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for p in &self.parts {
            if !first {
                f.write_str(".")?;
            }
            first = false;
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

impl Ord for DottedVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.parts.len().max(other.parts.len());
        for i in 0..n {
            let a = self.parts.get(i).copied().unwrap_or(0);
            let b = other.parts.get(i).copied().unwrap_or(0);
            match a.cmp(&b) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        Ordering::Equal
    }
}

impl PartialOrd for DottedVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for DottedVersion {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl std::hash::Hash for DottedVersion {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut parts = self.parts.as_slice();
        while let [rest @ .., 0] = parts {
            parts = rest;
        }
        parts.hash(state);
    }
}

impl Serialize for DottedVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DottedVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> DottedVersion {
        s.parse().expect("valid")
    }

    #[test]
    fn orders_numerically() {
        assert!(v("2.12") < v("2.17"));
        assert!(v("2.9") < v("2.12"));
        assert!(v("2.2") < v("2.2.5"));
        assert_eq!(v("2.2"), v("2.2.0"));
        assert!(v("3.4.13") < v("3.4.9.1").max(v("3.4.14")));
    }

    #[test]
    fn keeps_written_form() {
        assert_eq!(v("2.6.32").to_string(), "2.6.32");
        assert_eq!(v("2.2.0").to_string(), "2.2.0");
    }

    #[test]
    fn rejects_junk() {
        assert!("".parse::<DottedVersion>().is_err());
        assert!("2.x".parse::<DottedVersion>().is_err());
        assert!("2..1".parse::<DottedVersion>().is_err());
        assert!("PYTHONVER".parse::<DottedVersion>().is_err());
    }

    #[test]
    fn parses_prefix_of_kernel_release() {
        assert_eq!(
            DottedVersion::parse_prefix("6.1.0-18-amd64"),
            Some(v("6.1.0"))
        );
        assert_eq!(DottedVersion::parse_prefix("2.36+deb12"), Some(v("2.36")));
        assert_eq!(DottedVersion::parse_prefix("abc"), None);
    }
}
