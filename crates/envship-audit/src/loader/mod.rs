//! An emulation of glibc's dynamic loader over a prefix whose ELF files are already parsed:
//! which file `ld.so` would map for each `DT_NEEDED` name, walking from a root object the way
//! `_dl_map_object_deps` does (breadth first, every object's needs in order) and searching the
//! way `_dl_map_object` in `elf/dl-load.c` does:
//!
//! 1. a name an already-loaded object answers to (the name it was loaded under, or its
//!    `DT_SONAME`) is that object — a library reached once is reused by every later asker,
//!    wherever their own paths point;
//! 2. a name containing a slash is opened as that path, without any search;
//! 3. when the asking object has no `DT_RUNPATH`: the `DT_RPATH` of the asking object, then of
//!    the object that loaded it, and so on up to the root (an object's `DT_RPATH` is void when
//!    it also has `DT_RUNPATH`, as `elf/get-dynamic-info.h` drops it);
//! 4. `LD_LIBRARY_PATH`, when the environment's activation sets it ([`LoaderSettings`]);
//! 5. the asking object's own `DT_RUNPATH` (never inherited);
//! 6. the target's system libraries (`ld.so.cache` and the default directories), modelled by
//!    the target's system-library list, since the target's file system is not at hand.
//!
//! `$ORIGIN` (the directory of the object whose path list it is), `$LIB` and `$PLATFORM` (also
//! as `${…}`) are expanded; a candidate of the wrong ELF class or machine is skipped, as
//! `open_verify` does. The loader's own names (`ld-linux-x86-64.so.2`, the vDSO) are always
//! loaded before anything else.
//!
//! Not modelled: the hardware-capability subdirectories ld.so also tries inside each directory
//! (`glibc-hwcaps/x86-64-v3/`, `tls/`, `haswell/`, `x86_64/`), `LD_PRELOAD`, `DF_1_NODEFLIB`
//! and `dlopen` calls made by code at run time: a root is treated as the main program, which is
//! what `ld.so --list FILE` does with it.
//!
//! This module knows nothing of findings: it answers "what would be loaded, and why"; the
//! checks in `scan` judge the answers.

mod view;

use std::{
    collections::{HashMap, HashSet},
    io::Read,
    path::Path,
};

use envship_spec::Target;
use serde::{Deserialize, Serialize};

use crate::elf::ElfInfo;

use view::normalize;
pub use view::PrefixView;

/// Names the loader has mapped before it reads any `DT_NEEDED`: itself and the vDSO.
const PRELOADED: [&str; 2] = ["ld-linux-x86-64.so.2", "linux-vdso.so.1"];

/// Where a name the loader looked for ends up.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "kebab-case")]
pub enum Resolution {
    /// A file of the prefix: its prefix-relative path with every symlink followed.
    Prefix {
        /// The file.
        path: String,
    },
    /// The target's system library (or the loader itself).
    System,
    /// Found nowhere: ld.so stops with "cannot open shared object file".
    Missing,
}

/// One library the loader maps for a root, in load order, under the name it was first
/// requested by (what `ld.so --list` prints on the left of `=>`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadedLibrary {
    /// The `DT_NEEDED` name.
    pub name: String,
    /// Where it comes from.
    #[serde(flatten)]
    pub resolution: Resolution,
}

/// What the target's loader expands `$LIB` and `$PLATFORM` to, and the `LD_LIBRARY_PATH` the
/// environment's activation sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderSettings {
    /// `$LIB`: the loader's system library directory without its leading `/` (`lib64` on
    /// RHEL, `lib/x86_64-linux-gnu` on Debian).
    pub lib: String,
    /// `$PLATFORM`, when it does not depend on the CPU: `x86_64` up to glibc 2.25; from glibc
    /// 2.26 ld.so may say `haswell` or `xeon_phi` depending on the machine, so only the host's
    /// own loader can tell.
    pub platform: Option<String>,
    /// `LD_LIBRARY_PATH` entries (absolute paths; those inside the prefix are searched).
    pub library_path: Vec<String>,
    /// The audit runs on the target (`host`): directories outside the prefix named by
    /// RPATH/RUNPATH/LD_LIBRARY_PATH are looked at on this machine.
    pub host_filesystem: bool,
}

impl LoaderSettings {
    /// The settings of the target's loader, without `LD_LIBRARY_PATH`. For `host`, asked from
    /// the host's ld.so itself (`--help`, glibc 2.33+); for the RHEL profiles, the x86-64
    /// values of their glibc.
    pub fn for_target(target: &Target) -> Self {
        let host = target.name == envship_spec::target::HOST || target.name.starts_with("host+");
        if host {
            if let Some(s) = Self::from_host_loader() {
                return s;
            }
        }
        // A host whose ld.so has no --help (glibc < 2.33) still has its own file system.
        let cpu_dependent = target.glibc >= envship_spec::DottedVersion::new([2, 26]);
        Self {
            lib: "lib64".to_string(),
            platform: (!cpu_dependent).then(|| "x86_64".to_string()),
            library_path: Vec::new(),
            host_filesystem: host,
        }
    }

    /// Parse `ld.so --help`: the first "(system search path)" line is `/$LIB`, the
    /// "(AT_PLATFORM; …)" line names `$PLATFORM`.
    fn from_host_loader() -> Option<Self> {
        let out = std::process::Command::new("/lib64/ld-linux-x86-64.so.2")
            .arg("--help")
            .output()
            .ok()?;
        Self::parse_loader_help(&String::from_utf8_lossy(&out.stdout))
    }

    fn parse_loader_help(help: &str) -> Option<Self> {
        let lib = help
            .lines()
            .find_map(|l| l.trim().strip_suffix("(system search path)"))?
            .trim()
            .trim_start_matches('/')
            .to_string();
        let platform = help.lines().find_map(|l| {
            let (name, rest) = l.trim().split_once(' ')?;
            rest.starts_with("(AT_PLATFORM").then(|| name.to_string())
        });
        Some(Self {
            lib,
            platform,
            library_path: Vec::new(),
            host_filesystem: true,
        })
    }
}

/// One directory of an object's search list, expanded.
#[derive(Clone, Debug)]
struct PathEntry {
    /// The entry as written in the ELF file.
    raw: String,
    /// Prefix-relative directory; `None` when it lies outside the prefix or uses a token that
    /// cannot be expanded for this target.
    dir: Option<String>,
    /// The absolute directory outside the prefix, when the audit runs on the target itself
    /// and can look there.
    host_dir: Option<String>,
}

/// An object's `DT_RPATH` (void when it has `DT_RUNPATH`) and `DT_RUNPATH`, expanded once.
#[derive(Clone, Debug, Default)]
struct ObjectPaths {
    rpath: Vec<PathEntry>,
    runpath: Vec<PathEntry>,
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
enum Found<'a> {
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

/// The directory part of a prefix-relative path (`""` for a file at the root).
fn parent(rel: &str) -> &str {
    rel.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

/// One object the walk mapped from the prefix.
#[derive(Clone, Debug)]
pub struct WalkObject<'a> {
    /// Canonical prefix-relative path.
    pub path: &'a str,
    /// Its facts.
    pub info: &'a ElfInfo,
    /// Index of the object whose `DT_NEEDED` first loaded it (`None` for the root).
    pub loader: Option<usize>,
}

/// One name an object asked for, and the answer.
#[derive(Clone, Debug)]
pub struct WalkEdge {
    /// Index of the asking object in [`Walk::objects`].
    pub asker: usize,
    /// The name (`DT_NEEDED`, or the file of a version need that is not in `DT_NEEDED`).
    pub name: String,
    /// Where it resolved.
    pub resolution: Resolution,
    /// The name came from a version need only (`.gnu.version_r`), not from `DT_NEEDED`.
    pub version_only: bool,
}

/// Everything the loader maps for one root.
#[derive(Clone, Debug)]
pub struct Walk<'a> {
    /// Prefix objects in load order: the host's closure first in a hosted walk, then the
    /// root and what it brings.
    pub objects: Vec<WalkObject<'a>>,
    /// Every name asked for, in the order the loader asks.
    pub edges: Vec<WalkEdge>,
    /// What `ld.so --list ROOT` would print: each library once, in load order.
    pub loaded: Vec<LoadedLibrary>,
    /// Index of the root in `objects` (0, or after the host's closure in a hosted walk).
    pub root: usize,
}

impl Walk<'_> {
    /// How many objects the chain from the root down to `index` has.
    pub fn chain_len(&self, index: usize) -> usize {
        let mut n = 0;
        let mut cur = Some(index);
        while let Some(i) = cur {
            n += 1;
            cur = self.objects[i].loader;
        }
        n
    }

    /// The objects from the root down to `index`, as prefix-relative paths.
    pub fn chain(&self, index: usize) -> Vec<&str> {
        let mut out = Vec::new();
        let mut cur = Some(index);
        while let Some(i) = cur {
            out.push(self.objects[i].path);
            cur = self.objects[i].loader;
        }
        out.reverse();
        out
    }
}

/// What one walk has mapped so far: the names loaded objects answer to, and the files.
#[derive(Default)]
struct LoadState<'a> {
    by_name: HashMap<String, Resolution>,
    by_path: HashMap<&'a str, usize>,
}

impl<'a> LoadState<'a> {
    /// Map a new object (queued after everything mapped before it); returns its index.
    fn start(
        &mut self,
        walk: &mut Walk<'a>,
        path: &'a str,
        info: &'a ElfInfo,
        loader: Option<usize>,
    ) -> usize {
        let index = walk.objects.len();
        self.by_path.insert(path, index);
        if let Some(so) = &info.soname {
            self.by_name
                .entry(so.clone())
                .or_insert_with(|| Resolution::Prefix {
                    path: path.to_string(),
                });
        }
        walk.objects.push(WalkObject { path, info, loader });
        index
    }
}

/// The loader of one target over one prefix, with every object's search list expanded once.
pub struct Loader<'v, 'a> {
    view: &'v PrefixView<'a>,
    settings: &'v LoaderSettings,
    paths: HashMap<&'a str, ObjectPaths>,
    library_path: Vec<PathEntry>,
    /// The target's system libraries as a set (the `host` target lists thousands).
    system: HashSet<&'v str>,
}

impl<'v, 'a> Loader<'v, 'a> {
    /// Prepare the loader: expand every object's `DT_RPATH`/`DT_RUNPATH` and the
    /// `LD_LIBRARY_PATH` once, so walks only do lookups.
    pub fn new(view: &'v PrefixView<'a>, target: &'v Target, settings: &'v LoaderSettings) -> Self {
        let mut loader = Self {
            view,
            settings,
            paths: HashMap::with_capacity(view.files.len()),
            library_path: Vec::new(),
            system: target
                .system
                .libraries
                .iter()
                .map(String::as_str)
                .chain(PRELOADED)
                .collect(),
        };
        let paths: HashMap<&'a str, ObjectPaths> = view
            .files
            .iter()
            .map(|(rel, info)| {
                let expand = |list: &[String]| {
                    list.iter()
                        .map(|raw| PathEntry {
                            raw: raw.clone(),
                            dir: loader.expand(raw, Some(parent(rel))),
                            host_dir: loader.outside(raw, Some(parent(rel))),
                        })
                        .collect::<Vec<_>>()
                };
                let paths = ObjectPaths {
                    rpath: if info.runpath.is_empty() {
                        expand(&info.rpath)
                    } else {
                        Vec::new()
                    },
                    runpath: expand(&info.runpath),
                };
                (*rel, paths)
            })
            .collect();
        loader.library_path = settings
            .library_path
            .iter()
            .map(|raw| PathEntry {
                raw: raw.clone(),
                // ld.so expands $LIB/$PLATFORM in LD_LIBRARY_PATH too; $ORIGIN there means
                // the executable's directory, which differs per root: not followed.
                dir: loader.expand(raw, None),
                host_dir: loader.outside(raw, None),
            })
            .collect();
        loader.paths = paths;
        loader
    }

    /// Substitute `$ORIGIN` (as `/` + the prefix-relative origin), `$LIB` and `$PLATFORM`;
    /// also says whether the result is rooted at `$ORIGIN`.
    fn substitute(&self, raw: &str, origin: Option<&str>) -> Option<(String, bool)> {
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
    fn expand(&self, raw: &str, origin: Option<&str>) -> Option<String> {
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
    fn outside(&self, raw: &str, origin: Option<&str>) -> Option<String> {
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
    fn search(&self, walk: &Walk<'a>, asker: usize, name: &str) -> Option<Found<'a>> {
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

    /// Where a name containing a slash leads: the path itself, no search.
    fn open_path(&self, name: &str) -> Resolution {
        if !name.starts_with('/') {
            // Relative to whatever the working directory is when the program starts.
            return Resolution::Missing;
        }
        if let Some(rel) = self.view.absolute_to_rel(name) {
            return match self.view.resolve(&rel) {
                Some((path, _)) => Resolution::Prefix {
                    path: path.to_string(),
                },
                None => Resolution::Missing,
            };
        }
        let base = name.rsplit('/').next().unwrap_or(name);
        if self.system.contains(base) {
            Resolution::System
        } else {
            Resolution::Missing
        }
    }

    /// Walk everything the loader maps when `root` (a prefix-relative path of a parsed ELF
    /// file) is the main program, as `ld.so --list ROOT` does.
    pub fn walk(&self, root: &str) -> Option<Walk<'a>> {
        self.walk_from(None, root)
    }

    /// Walk what the loader maps when the executable `host` starts (its whole dependency
    /// closure) and then `dlopen`s `module`, as a Python interpreter imports an extension
    /// module: the module's loader is the host, so the host's `DT_RPATH` applies to the
    /// module's needs (unless the module has `DT_RUNPATH`), and everything the host loaded is
    /// reused by soname.
    pub fn walk_hosted(&self, host: &str, module: &str) -> Option<Walk<'a>> {
        self.walk_from(Some(host), module)
    }

    fn walk_from(&self, host: Option<&str>, root: &str) -> Option<Walk<'a>> {
        let mut walk = Walk {
            objects: Vec::new(),
            edges: Vec::new(),
            loaded: Vec::new(),
            root: 0,
        };
        // Names the loaded objects answer to, and the files already mapped.
        let mut state = LoadState::default();
        for name in PRELOADED {
            state.by_name.insert(name.to_string(), Resolution::System);
        }
        let mut next = 0;
        if let Some(host) = host {
            let (path, info) = self.view.resolve(host)?;
            state.start(&mut walk, path, info, None);
            self.run_queue(&mut walk, &mut state, &mut next);
        }
        let (path, info) = self.view.resolve(root)?;
        walk.root = match state.by_path.get(path) {
            Some(&i) => i,
            None => state.start(&mut walk, path, info, host.map(|_| 0)),
        };
        self.run_queue(&mut walk, &mut state, &mut next);
        Some(walk)
    }

    /// `_dl_map_object_deps`: read the needs of every queued object in order, queueing what
    /// gets newly mapped.
    fn run_queue(&self, walk: &mut Walk<'a>, state: &mut LoadState<'a>, next: &mut usize) {
        while *next < walk.objects.len() {
            let asker = *next;
            *next += 1;
            let info = walk.objects[asker].info;
            for name in &info.needed {
                let resolution = self.map_object(walk, state, asker, name);
                walk.edges.push(WalkEdge {
                    asker,
                    name: name.clone(),
                    resolution,
                    version_only: false,
                });
            }
            // A version need names its library by soname; one not in DT_NEEDED is looked up
            // among what is loaded, else searched as the asker would (without loading it).
            let mut extra: Vec<&str> = info
                .version_needs
                .iter()
                .map(|n| n.library.as_str())
                .filter(|l| !info.needed.iter().any(|n| n == l))
                .collect();
            extra.sort_unstable();
            extra.dedup();
            for name in extra {
                let resolution = match state.by_name.get(name) {
                    Some(r) => r.clone(),
                    None => self.lookup(walk, asker, name),
                };
                walk.edges.push(WalkEdge {
                    asker,
                    name: name.to_string(),
                    resolution,
                    version_only: true,
                });
            }
        }
    }

    /// Search for `name` on behalf of `asker` without loading anything.
    fn lookup(&self, walk: &Walk<'a>, asker: usize, name: &str) -> Resolution {
        if name.contains('/') {
            return self.open_path(name);
        }
        match self.search(walk, asker, name) {
            Some(Found::Prefix(path)) => Resolution::Prefix {
                path: path.to_string(),
            },
            Some(Found::Host) => Resolution::System,
            None if self.system.contains(name) => Resolution::System,
            None => Resolution::Missing,
        }
    }

    /// `_dl_map_object`: reuse an object that answers to `name`, else search and load.
    fn map_object(
        &self,
        walk: &mut Walk<'a>,
        state: &mut LoadState<'a>,
        asker: usize,
        name: &str,
    ) -> Resolution {
        if let Some(r) = state.by_name.get(name) {
            return r.clone();
        }
        let resolution = self.lookup(walk, asker, name);
        match &resolution {
            Resolution::Prefix { path } => {
                let Some((path, info)) = self.view.resolve(path) else {
                    return Resolution::Missing;
                };
                if !state.by_path.contains_key(path) {
                    state.start(walk, path, info, Some(asker));
                    walk.loaded.push(LoadedLibrary {
                        name: name.to_string(),
                        resolution: resolution.clone(),
                    });
                }
                state.by_name.insert(name.to_string(), resolution.clone());
            }
            Resolution::System => {
                state.by_name.insert(name.to_string(), Resolution::System);
                walk.loaded.push(LoadedLibrary {
                    name: name.to_string(),
                    resolution: Resolution::System,
                });
            }
            Resolution::Missing => {
                // Not remembered: every later asker searches again with its own paths.
                walk.loaded.push(LoadedLibrary {
                    name: name.to_string(),
                    resolution: Resolution::Missing,
                });
            }
        }
        resolution
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_loader_help() {
        let help = "Shared library search path:\n  (libraries located via /etc/ld.so.cache)\n  /lib/x86_64-linux-gnu (system search path)\n  /usr/lib/x86_64-linux-gnu (system search path)\n\nLegacy HWCAP subdirectories under library search path directories:\n  haswell (AT_PLATFORM; supported, searched)\n  tls (supported, searched)\n";
        let s = LoaderSettings::parse_loader_help(help).expect("parse");
        assert_eq!(s.lib, "lib/x86_64-linux-gnu");
        assert_eq!(s.platform.as_deref(), Some("haswell"));
        assert!(LoaderSettings::parse_loader_help("usage: ld.so\n").is_none());
    }

    #[test]
    fn rhel_targets_know_lib_and_platform_up_to_glibc_2_25() {
        let rhel6 = Target::builtin("lcls-rhel6").expect("target");
        let s = LoaderSettings::for_target(&rhel6);
        assert_eq!(
            (s.lib.as_str(), s.platform.as_deref()),
            ("lib64", Some("x86_64"))
        );
        let rhel8 = Target::builtin("rhel8").expect("target");
        assert_eq!(LoaderSettings::for_target(&rhel8).platform, None);
    }

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
