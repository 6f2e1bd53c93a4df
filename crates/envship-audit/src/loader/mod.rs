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
//!
//! Layout: `settings` holds what the target's loader expands `$LIB`/`$PLATFORM` to, `search`
//! the search-path expansion and lookup (steps 3-5), `view` the prefix's files; this file walks
//! the dependency chain (steps 1, 2 and 6, and the load order).

mod search;
mod settings;
mod view;

use std::collections::{HashMap, HashSet};

use envship_spec::Target;
use serde::{Deserialize, Serialize};

use crate::elf::ElfInfo;

pub use search::SearchedDir;
use search::{Found, ObjectPaths, PathEntry};
pub use settings::LoaderSettings;
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
