//! The one rule for paths that come from an archive: tar and zip entry names, hardlink targets,
//! relocation-list lines and the manifest's `arcroot`. The python and perl relocators of
//! `bin/conda-unpack` apply the same rule (`relocate.py`, `relocate.pl`: keep them in sync).
//!
//! A path is relative, `/`-separated and normalized (empty and `.` components dropped), has no
//! `..` component and no NUL byte. Whether it may be *written* is the other half of the rule,
//! kept by [`crate::beneath::Beneath`]: never through a symlink, never outside the destination.
//! A symlink's own target is not an archive path: it may point anywhere, as tar allows.

/// Why a path breaks the rule (shown after the path in errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathRuleViolation {
    /// It starts with `/`.
    Absolute,
    /// One of its components is `..`.
    ParentComponent,
    /// It contains a NUL byte (no file system can store it).
    Nul,
}

impl PathRuleViolation {
    /// The reason, for error messages.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Absolute => "absolute path",
            Self::ParentComponent => "path contains `..`",
            Self::Nul => "path contains a NUL byte",
        }
    }
}

impl std::fmt::Display for PathRuleViolation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason())
    }
}

/// A path that keeps the rule: relative, normalized, without `..` or NUL, never empty.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ArchivePath(Vec<u8>);

impl ArchivePath {
    /// Check and normalize `raw`. `Ok(None)` is the root itself (`""`, `.`, `./`): an entry
    /// that names the destination, which readers skip.
    pub fn parse(raw: &[u8]) -> Result<Option<Self>, PathRuleViolation> {
        if raw.starts_with(b"/") {
            return Err(PathRuleViolation::Absolute);
        }
        if raw.contains(&0) {
            return Err(PathRuleViolation::Nul);
        }
        let mut out = Vec::with_capacity(raw.len());
        for c in raw.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => return Err(PathRuleViolation::ParentComponent),
                c => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(c);
                }
            }
        }
        Ok((!out.is_empty()).then_some(Self(out)))
    }

    /// The normalized bytes (`a/b/c`).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Into the normalized bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The directory part (`a/b` of `a/b/c`; empty for a top-level name).
    pub fn parent(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[..i],
            None => b"",
        }
    }

    /// The last component (`c` of `a/b/c`).
    pub fn file_name(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// Every proper ancestor, shortest first (`a`, `a/b` for `a/b/c`).
    pub fn ancestors(&self) -> impl Iterator<Item = &[u8]> {
        self.0
            .iter()
            .enumerate()
            .filter(|(_, &b)| b == b'/')
            .map(|(i, _)| &self.0[..i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &[u8]) -> Option<Vec<u8>> {
        ArchivePath::parse(raw)
            .expect("valid")
            .map(ArchivePath::into_bytes)
    }

    #[test]
    fn normalizes_dots_and_slashes() {
        assert_eq!(norm(b"./a//b/./c/"), Some(b"a/b/c".to_vec()));
        assert_eq!(norm(b"."), None);
        assert_eq!(norm(b"./"), None);
        assert_eq!(norm(b""), None);
        assert_eq!(norm(b"a..b/c.."), Some(b"a..b/c..".to_vec()));
    }

    #[test]
    fn refuses_absolute_parent_and_nul() {
        use PathRuleViolation::*;
        assert_eq!(ArchivePath::parse(b"/etc/passwd"), Err(Absolute));
        assert_eq!(ArchivePath::parse(b"a/../../x"), Err(ParentComponent));
        assert_eq!(ArchivePath::parse(b"a/b/.."), Err(ParentComponent));
        assert_eq!(ArchivePath::parse(b"a\0b"), Err(Nul));
    }

    #[test]
    fn parts() {
        let p = ArchivePath::parse(b"a/b/c").expect("ok").expect("not root");
        assert_eq!(p.parent(), b"a/b");
        assert_eq!(p.file_name(), b"c");
        assert_eq!(p.ancestors().collect::<Vec<_>>(), vec![&b"a"[..], b"a/b"]);
        let top = ArchivePath::parse(b"top").expect("ok").expect("not root");
        assert_eq!(top.parent(), b"");
        assert_eq!(top.ancestors().count(), 0);
    }
}
