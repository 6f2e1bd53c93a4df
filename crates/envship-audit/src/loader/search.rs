//! Search-path logic: an object's `DT_RPATH`/`DT_RUNPATH` and `LD_LIBRARY_PATH` entries with
//! `$ORIGIN`, `$LIB` and `$PLATFORM` expanded, and the search along them in ld.so's order
//! (`_dl_map_object` in `elf/dl-load.c`). Which object asks, and which loaded it, comes from the
//! walk in the parent module.

use std::{io::Read, path::Path};

use super::{view::normalize, Loader, Walk};
use crate::elf::ElfInfo;

/// One directory of an object's search list, expanded.
#[derive(Clone, Debug)]
pub(super) struct PathEntry {
    /// The entry as written in the ELF file.
    pub raw: String,
    /// Prefix-relative directory; `None` when it lies outside the prefix or uses a token that
    /// cannot be expanded for this target.
    pub dir: Option<String>,
    /// The absolute directory outside the prefix, when the audit runs on the target itself
    /// and can look there.
    pub host_dir: Option<String>,
}

/// An object's `DT_RPATH` (void when it has `DT_RUNPATH`) and `DT_RUNPATH`, expanded once.
#[derive(Clone, Debug, Default)]
pub(super) struct ObjectPaths {
    pub rpath: Vec<PathEntry>,
    pub runpath: Vec<PathEntry>,
}

/// A directory the loader searched for a name, with how it came to search it, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchedDir {
    /// `RPATH $ORIGIN/../lib`, `RPATH of lib/libA.so.1 $ORIGIN`, `LD_LIBRARY_PATH /x`, …
    pub how: String,
    /// The prefix-relative directory, or `None` outside the prefix.
    pub dir: Option<String>,
    /// Outside the prefix, but looked at on this machine (the `host` target).
    pub on_host: bool,
}

/// What a search found.
pub(super) enum Found<'a> {
    /// A file of the prefix.
    Prefix(&'a str),
    /// A file outside the prefix, on this machine (the `host` target).
    Host,
}

/// Whether `path` is an ELF file of the asker's class and machine, as `open_verify` checks.
fn host_file_matches(path: &Path, want: &ElfInfo) -> bool {
    let mut header = [0u8; 20];
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    if file.read_exact(&mut header).is_err() || !crate::elf::is_elf(&header) {
        return false;
    }
    let class = if header[4] == 2 { 64 } else { 32 };
    let machine = if header[5] == 2 {
        u16::from_be_bytes([header[18], header[19]])
    } else {
        u16::from_le_bytes([header[18], header[19]])
    };
    class == want.class && machine == want.machine
}

impl<'a> Loader<'_, 'a> {
    /// Substitute `$ORIGIN` (as `/` + the prefix-relative origin), `$LIB` and `$PLATFORM`;
    /// also says whether the result is rooted at `$ORIGIN`.
    pub(super) fn substitute(&self, raw: &str, origin: Option<&str>) -> Option<(String, bool)> {
        let mut s = String::with_capacity(raw.len() + 16);
        let mut rest = raw;
        // `$ORIGIN` stands for an absolute directory, which here lies inside the prefix.
        let mut from_origin = false;
        while let Some(pos) = rest.find('$') {
            s.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            let (token, tail) = if let Some(braced) = after.strip_prefix('{') {
                let end = braced.find('}')?;
                (&braced[..end], &braced[end + 1..])
            } else {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (&after[..end], &after[end..])
            };
            match token {
                "ORIGIN" if s.is_empty() => {
                    s.push('/');
                    s.push_str(origin?);
                    from_origin = true;
                }
                "LIB" => s.push_str(&self.settings.lib),
                "PLATFORM" => s.push_str(self.settings.platform.as_deref()?),
                _ => return None,
            }
            rest = tail;
        }
        s.push_str(rest);
        Some((s, from_origin))
    }

    /// Expand one path-list entry to a prefix-relative directory.
    pub(super) fn expand(&self, raw: &str, origin: Option<&str>) -> Option<String> {
        let (s, from_origin) = self.substitute(raw, origin)?;
        if from_origin {
            return normalize(&s);
        }
        if s.starts_with('/') {
            return self.view.absolute_to_rel(&s).and_then(|r| normalize(&r));
        }
        // A relative entry is relative to the working directory: not the prefix's business.
        None
    }

    /// The absolute directory an entry names outside the prefix, when this machine is the
    /// target and can be looked at.
    pub(super) fn outside(&self, raw: &str, origin: Option<&str>) -> Option<String> {
        if !self.settings.host_filesystem {
            return None;
        }
        let (s, from_origin) = self.substitute(raw, origin)?;
        (!from_origin && s.starts_with('/') && self.view.absolute_to_rel(&s).is_none()).then_some(s)
    }

    /// The directories searched for a name asked by `walk.objects[asker]` (without the
    /// system's), in the loader's order, with how each was obtained.
    pub fn search_list(&self, walk: &Walk<'_>, asker: usize) -> Vec<SearchedDir> {
        let mut out = Vec::new();
        let obj = &walk.objects[asker];
        let own = self.paths.get(obj.path);
        if obj.info.runpath.is_empty() {
            let mut cur = Some(asker);
            while let Some(i) = cur {
                let o = &walk.objects[i];
                if let Some(p) = self.paths.get(o.path) {
                    for e in &p.rpath {
                        out.push(SearchedDir {
                            how: if i == asker {
                                format!("RPATH {}", e.raw)
                            } else {
                                format!("RPATH of {} {}", o.path, e.raw)
                            },
                            dir: e.dir.clone(),
                            on_host: e.host_dir.is_some(),
                        });
                    }
                }
                cur = o.loader;
            }
        }
        for e in &self.library_path {
            out.push(SearchedDir {
                how: format!("LD_LIBRARY_PATH {}", e.raw),
                dir: e.dir.clone(),
                on_host: e.host_dir.is_some(),
            });
        }
        if let Some(p) = own {
            for e in &p.runpath {
                out.push(SearchedDir {
                    how: format!("RUNPATH {}", e.raw),
                    dir: e.dir.clone(),
                    on_host: e.host_dir.is_some(),
                });
            }
        }
        out
    }

    /// Look for `name` along the search list; the first candidate of the asker's class and
    /// machine wins (a prefix file, or on the `host` target a file outside the prefix).
    pub(super) fn search(&self, walk: &Walk<'a>, asker: usize, name: &str) -> Option<Found<'a>> {
        let want = walk.objects[asker].info;
        let try_entry = |e: &PathEntry| -> Option<Found<'a>> {
            if let Some(dir) = &e.dir {
                let cand = if dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{dir}/{name}")
                };
                let (path, info) = self.view.resolve(&cand)?;
                return (info.class == want.class && info.machine == want.machine)
                    .then_some(Found::Prefix(path));
            }
            let dir = e.host_dir.as_deref()?;
            host_file_matches(&Path::new(dir).join(name), want).then_some(Found::Host)
        };
        if want.runpath.is_empty() {
            let mut cur = Some(asker);
            while let Some(i) = cur {
                let o = &walk.objects[i];
                if let Some(p) = self.paths.get(o.path) {
                    if let Some(found) = p.rpath.iter().find_map(try_entry) {
                        return Some(found);
                    }
                }
                cur = o.loader;
            }
        }
        if let Some(found) = self.library_path.iter().find_map(try_entry) {
            return Some(found);
        }
        let own = self.paths.get(walk.objects[asker].path)?;
        own.runpath.iter().find_map(try_entry)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use envship_spec::Target;

    use super::super::{Loader, LoaderSettings, PrefixView};

    fn expand_with(raw: &str, origin: &str) -> Option<String> {
        let view = PrefixView::new(HashMap::new(), HashMap::new(), vec!["/build/env".into()]);
        let target = Target::builtin("lcls-rhel6").expect("target");
        let settings = LoaderSettings::for_target(&target);
        let loader = Loader::new(&view, &target, &settings);
        loader.expand(raw, Some(origin))
    }

    #[test]
    fn expands_tokens_like_ld_so() {
        assert_eq!(expand_with("$ORIGIN/../lib", "bin").as_deref(), Some("lib"));
        assert_eq!(
            expand_with("${ORIGIN}/../lib", "bin").as_deref(),
            Some("lib")
        );
        assert_eq!(expand_with("$ORIGIN", "lib").as_deref(), Some("lib"));
        assert_eq!(expand_with("$ORIGIN/x", "").as_deref(), Some("x"));
        assert_eq!(
            expand_with("$ORIGIN/../$LIB", "bin").as_deref(),
            Some("lib64")
        );
        assert_eq!(
            expand_with("$ORIGIN/${PLATFORM}/lib", "opt").as_deref(),
            Some("opt/x86_64/lib")
        );
        assert_eq!(expand_with("/build/env/lib", "bin").as_deref(), Some("lib"));
        // Outside the prefix, climbing out of it, relative, unknown tokens: not followed.
        assert_eq!(expand_with("/usr/lib64", "bin"), None);
        assert_eq!(expand_with("$ORIGIN/../..", "bin"), None);
        assert_eq!(expand_with("lib", "bin"), None);
        assert_eq!(expand_with("$ORIGIN/$FOO", "bin"), None);
    }
}
