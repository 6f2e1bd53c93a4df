//! The prefix as the loader sees it: parsed ELF files by prefix-relative path, symlinks
//! followed the way the kernel follows them, and the absolute paths that name the prefix.

use std::collections::{HashMap, VecDeque};

use crate::elf::ElfInfo;

/// Symlink hops before giving up (the kernel's limit).
const MAX_HOPS: usize = 40;

/// The prefix as the loader sees it: parsed ELF files by prefix-relative path, symlinks, and
/// the absolute paths under which the prefix may be named.
pub struct PrefixView<'a> {
    pub(super) files: HashMap<&'a str, &'a ElfInfo>,
    symlinks: HashMap<String, String>,
    /// Absolute paths that mean the prefix root (the audited directory, the build prefix).
    bases: Vec<String>,
}

impl<'a> PrefixView<'a> {
    /// A view over `files` (every parsed ELF file, by prefix-relative path) and `symlinks`
    /// (prefix-relative link → target as stored).
    pub fn new(
        files: HashMap<&'a str, &'a ElfInfo>,
        symlinks: HashMap<String, String>,
        bases: Vec<String>,
    ) -> Self {
        Self {
            files,
            symlinks,
            bases: bases.into_iter().filter(|b| b.len() > 1).collect(),
        }
    }

    /// The symlinks of the prefix.
    pub fn symlinks(&self) -> impl Iterator<Item = &str> {
        self.symlinks.keys().map(String::as_str)
    }

    /// Map an absolute path that lies in the prefix to a prefix-relative one.
    pub fn absolute_to_rel(&self, abs: &str) -> Option<String> {
        self.bases.iter().find_map(|base| {
            let rest = abs.strip_prefix(base.as_str())?;
            (rest.is_empty() || rest.starts_with('/'))
                .then(|| rest.trim_start_matches('/').to_string())
        })
    }

    /// Resolve a prefix-relative path through symlinks (of any component) to a parsed ELF
    /// file: its canonical relative path and facts.
    pub fn resolve(&self, rel: &str) -> Option<(&'a str, &'a ElfInfo)> {
        let mut queue: VecDeque<String> = rel.split('/').map(str::to_string).collect();
        let mut out: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = queue.pop_front() {
            match part.as_str() {
                "" | "." => {}
                ".." => {
                    out.pop()?;
                }
                name => {
                    out.push(name.to_string());
                    let cur = out.join("/");
                    if let Some(target) = self.symlinks.get(&cur) {
                        hops += 1;
                        if hops > MAX_HOPS {
                            return None;
                        }
                        out.pop();
                        let target_parts: Vec<String> = if target.starts_with('/') {
                            out.clear();
                            self.absolute_to_rel(target)?
                                .split('/')
                                .map(str::to_string)
                                .collect()
                        } else {
                            target.split('/').map(str::to_string).collect()
                        };
                        for p in target_parts.into_iter().rev() {
                            queue.push_front(p);
                        }
                    }
                }
            }
        }
        self.files
            .get_key_value(out.join("/").as_str())
            .map(|(k, v)| (*k, *v))
    }
}

/// Resolve `.` and `..` lexically; `None` when the path climbs out of the root.
pub(super) fn normalize(rel: &str) -> Option<String> {
    let mut out: Vec<&str> = Vec::new();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop()?;
            }
            p => out.push(p),
        }
    }
    Some(out.join("/"))
}
