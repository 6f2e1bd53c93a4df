//! Prefix relocation: the relocation list shipped in every archive, and the byte-level rewrite
//! rules shared by `envship unpack`, `--dest-prefix` and the python/perl programs embedded in
//! `bin/conda-unpack` (see `scripts.rs`; the three implementations must give identical bytes).
//!
//! The list lives at [`RELOCATION_LIST`] inside the environment:
//! ```text
//! envship-relocate 1
//! prefix /the/prefix/the/files/currently/contain
//! t 0 lib/pkgconfig/foo.pc
//! b 255 bin/tool
//! ```
//! `t` = text, `b` = binary, then the room a binary C string has for the prefix (the length of
//! the package's original placeholder: the installer padded the rest with NULs), then the path.
//! Paths and the prefix are `%XX`-escaped (bytes <= 0x20, >= 0x7f, and `%`). Relocating rewrites
//! the `prefix` line, so running it again after a move relocates from the new place.
//!
//! Rules, given the recorded prefix `old` and the new one `new`:
//! - text: every occurrence of `old` becomes `new`; then, for files under `bin/`, a first line
//!   `#!EXE ARGS` longer than 127 bytes becomes `#!/usr/bin/env basename(EXE) ARGS`.
//! - binary: at each occurrence of `old`, the C string running from there to the next NUL (or
//!   end of file) has every `old` replaced; shrinking appends NULs after the terminator,
//!   growing consumes NULs there (they are the installer's padding) and fails if there are none.
//!   `new` longer than the entry's room fails before any file is written.

use std::{fs, io::Read, path::Path};

use rayon::prelude::*;

use crate::{
    archive_path::ArchivePath,
    beneath::{is_link_in_the_way, Beneath},
    error::{PackError, Result},
};

/// Where the relocation list lives inside an environment.
pub const RELOCATION_LIST: &str = "share/envship/relocate.txt";

/// The kernel's limit on a `#!` line (`BINPRM_BUF_SIZE` - 1).
pub const SHEBANG_LIMIT: usize = 127;

/// How a file's prefix occurrences are rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelocMode {
    /// Plain byte replacement (and long-shebang fixing under `bin/`).
    Text,
    /// Replacement inside NUL-terminated C strings, keeping the file length.
    Binary,
}

/// One file to rewrite.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelocEntry {
    /// Path relative to the environment root (raw bytes: may be non-UTF-8).
    pub path: Vec<u8>,
    /// Text or binary.
    pub mode: RelocMode,
    /// For binary files: the longest prefix that fits in its C strings.
    pub capacity: usize,
}

/// The parsed relocation list of an environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelocationList {
    /// The prefix the listed files currently contain.
    pub prefix: Vec<u8>,
    /// Files to rewrite, sorted by path.
    pub entries: Vec<RelocEntry>,
}

/// Escape bytes for the list format.
pub(crate) fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b <= 0x20 || b >= 0x7f || b == b'%' {
            s.push_str(&format!("%{b:02X}"));
        } else {
            s.push(b as char);
        }
    }
    s
}

fn unescape(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

impl RelocationList {
    /// Serialize to the list format.
    pub fn to_text(&self) -> String {
        let mut s = String::from("envship-relocate 1\n");
        s.push_str(&format!("prefix {}\n", escape(&self.prefix)));
        for e in &self.entries {
            let m = match e.mode {
                RelocMode::Text => 't',
                RelocMode::Binary => 'b',
            };
            s.push_str(&format!("{m} {} {}\n", e.capacity, escape(&e.path)));
        }
        s
    }

    /// Parse the list format; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bad = |line: usize, reason: &str| PackError::BadRelocationList {
            path: path.to_path_buf(),
            line,
            reason: reason.to_string(),
        };
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, "envship-relocate 1")) => {}
            _ => return Err(bad(1, "expected header `envship-relocate 1`")),
        }
        let prefix = match lines.next() {
            Some((_, l)) if l.starts_with("prefix ") => {
                unescape(&l[7..]).ok_or_else(|| bad(2, "bad escape in prefix"))?
            }
            _ => return Err(bad(2, "expected `prefix PATH`")),
        };
        let mut entries = Vec::new();
        for (i, line) in lines {
            if line.is_empty() {
                continue;
            }
            let mut parts = line.splitn(3, ' ');
            let (Some(m), Some(cap), Some(p)) = (parts.next(), parts.next(), parts.next()) else {
                return Err(bad(i + 1, "expected `MODE ROOM PATH`"));
            };
            let mode = match m {
                "t" => RelocMode::Text,
                "b" => RelocMode::Binary,
                _ => return Err(bad(i + 1, "mode must be t or b")),
            };
            let capacity = cap
                .parse()
                .map_err(|_| bad(i + 1, "room must be a number"))?;
            let raw = unescape(p).ok_or_else(|| bad(i + 1, "bad escape in path"))?;
            let path = match ArchivePath::parse(&raw) {
                Ok(Some(path)) => path.into_bytes(),
                Ok(None) => return Err(bad(i + 1, "empty path")),
                Err(v) => {
                    return Err(bad(
                        i + 1,
                        &format!("{}: {v}", String::from_utf8_lossy(&raw)),
                    ))
                }
            };
            entries.push(RelocEntry {
                path,
                mode,
                capacity,
            });
        }
        Ok(Self { prefix, entries })
    }

    /// Read the list of the environment at `root`; `None` if it has none.
    pub fn read(root: &Path) -> Result<Option<Self>> {
        let dir = Beneath::open(root).map_err(PackError::io("opening", root))?;
        Self::read_beneath(&dir)
    }

    /// Read the list of the environment `root` without following symlinks to it.
    pub(crate) fn read_beneath(root: &Beneath) -> Result<Option<Self>> {
        let rel = list_path();
        let path = root.display(rel.as_bytes());
        let mut text = String::new();
        match root.open_existing(&rel, false) {
            Ok(Some(mut f)) => {
                f.read_to_string(&mut text)
                    .map_err(PackError::io("reading", &path))?;
                Self::parse(&text, &path).map(Some)
            }
            Ok(None) => Ok(None),
            Err(e) => Err(through_link_or_io(e, "reading", &path, RELOCATION_LIST)),
        }
    }
}

/// Rewrite a text file's content; `None` when nothing changes.
pub fn relocate_text(data: &[u8], old: &[u8], new: &[u8], in_bin: bool) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    if old != new && !old.is_empty() {
        let finder = memchr::memmem::Finder::new(old);
        let mut hits = finder.find_iter(data).peekable();
        if hits.peek().is_some() {
            let mut buf = Vec::with_capacity(data.len());
            let mut pos = 0;
            for i in hits {
                buf.extend_from_slice(&data[pos..i]);
                buf.extend_from_slice(new);
                pos = i + old.len();
            }
            buf.extend_from_slice(&data[pos..]);
            out = Some(buf);
        }
    }
    if in_bin {
        let current = out.as_deref().unwrap_or(data);
        if let Some(fixed) = fix_long_shebang(current) {
            return Some(fixed);
        }
    }
    out
}

/// `#!/very/long/prefix/bin/python -u` → `#!/usr/bin/env python -u` when over the kernel limit.
pub fn fix_long_shebang(data: &[u8]) -> Option<Vec<u8>> {
    if !data.starts_with(b"#!") {
        return None;
    }
    let line_end = memchr::memchr(b'\n', data).unwrap_or(data.len());
    if line_end <= SHEBANG_LIMIT {
        return None;
    }
    let body = &data[2..line_end];
    let exe_end = body
        .iter()
        .position(|&b| b == b' ' || b == b'\t' || b == b'\r')
        .unwrap_or(body.len());
    let exe = &body[..exe_end];
    let name = match exe.iter().rposition(|&b| b == b'/') {
        Some(p) => &exe[p + 1..],
        None => exe,
    };
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(b"#!/usr/bin/env ");
    out.extend_from_slice(name);
    out.extend_from_slice(&body[exe_end..]);
    out.extend_from_slice(&data[line_end..]);
    Some(out)
}

/// Why a binary rewrite is impossible: the offset of the C string without room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoRoomAt(pub usize);

/// Rewrite the C strings of a binary file; `Ok(None)` when nothing changes.
pub fn relocate_binary(
    data: &[u8],
    old: &[u8],
    new: &[u8],
) -> std::result::Result<Option<Vec<u8>>, NoRoomAt> {
    if old == new || old.is_empty() {
        return Ok(None);
    }
    let finder = memchr::memmem::Finder::new(old);
    let mut out: Vec<u8> = Vec::new();
    let mut changed = false;
    let mut pos = 0;
    while let Some(rel) = finder.find(&data[pos..]) {
        let i = pos + rel;
        if !changed {
            out.reserve(data.len());
            changed = true;
        }
        let j = memchr::memchr(0, &data[i + old.len()..]).map_or(data.len(), |p| i + old.len() + p);
        let seg = &data[i..j];
        let count = finder.find_iter(seg).count();
        out.extend_from_slice(&data[pos..i]);
        let mut k = j;
        let mut sp = 0;
        for o in finder.find_iter(seg) {
            out.extend_from_slice(&seg[sp..o]);
            out.extend_from_slice(new);
            sp = o + old.len();
        }
        out.extend_from_slice(&seg[sp..]);
        if j < data.len() {
            out.push(0);
            k = j + 1;
        }
        if new.len() < old.len() {
            out.resize(out.len() + count * (old.len() - new.len()), 0);
        } else if new.len() > old.len() {
            let grow = count * (new.len() - old.len());
            if k + grow > data.len() || data[k..k + grow].iter().any(|&b| b != 0) {
                return Err(NoRoomAt(i));
            }
            k += grow;
        }
        pos = k;
    }
    if !changed {
        return Ok(None);
    }
    out.extend_from_slice(&data[pos..]);
    Ok(Some(out))
}

/// Apply one entry's rule to content (shared by unpack and `--dest-prefix` packing).
pub(crate) fn relocate_content(
    entry: &RelocEntry,
    data: &[u8],
    old: &[u8],
    new: &[u8],
) -> Result<Option<Vec<u8>>> {
    match entry.mode {
        RelocMode::Text => Ok(relocate_text(
            data,
            old,
            new,
            entry.path.starts_with(b"bin/"),
        )),
        RelocMode::Binary => {
            relocate_binary(data, old, new).map_err(|NoRoomAt(offset)| PackError::NoRoom {
                path: String::from_utf8_lossy(&entry.path).into_owned(),
                offset,
                new: String::from_utf8_lossy(new).into_owned(),
            })
        }
    }
}

/// A prefix as relocation writes it, without a trailing `/`: `given` when set, else `dir`'s
/// path, which must then be UTF-8.
pub(crate) fn prefix_string(given: Option<&str>, dir: &Path) -> Result<String> {
    let s = match given {
        Some(g) => g,
        None => dir.to_str().ok_or_else(|| PackError::BadPrefix {
            prefix: dir.to_string_lossy().into_owned(),
            reason: "not valid UTF-8",
        })?,
    };
    Ok(s.trim_end_matches('/').to_string())
}

/// Check up front that `new` fits every binary entry's room.
pub(crate) fn check_capacity(list: &RelocationList, new: &[u8]) -> Result<()> {
    for e in &list.entries {
        if e.mode == RelocMode::Binary && new.len() > e.capacity && new.len() > list.prefix.len() {
            return Err(PackError::PrefixTooLong {
                prefix: String::from_utf8_lossy(new).into_owned(),
                len: new.len(),
                capacity: e.capacity.max(list.prefix.len()),
                path: String::from_utf8_lossy(&e.path).into_owned(),
            });
        }
    }
    Ok(())
}

/// What [`relocate`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RelocateOutput {
    /// The prefix the files contained before.
    pub old_prefix: String,
    /// Files whose bytes changed.
    pub files_changed: usize,
    /// Listed files that do not exist (skipped).
    pub missing: Vec<String>,
}

/// The relocation list's own path, as an [`ArchivePath`].
fn list_path() -> ArchivePath {
    match ArchivePath::parse(RELOCATION_LIST.as_bytes()) {
        Ok(Some(p)) => p,
        // A constant that keeps the rule; checked by a unit test.
        _ => unreachable!("RELOCATION_LIST is a valid archive path"),
    }
}

/// A symlink on the way is the archive's doing, not an I/O problem: say so.
fn through_link_or_io(
    e: std::io::Error,
    action: &'static str,
    path: &Path,
    rel: &str,
) -> PackError {
    if is_link_in_the_way(&e) {
        PackError::ThroughSymlink {
            path: rel.to_string(),
        }
    } else {
        PackError::io(action, path)(e)
    }
}

/// Relocate the environment at `root` (which has a [`RELOCATION_LIST`]) to `new_prefix`: the
/// same rules as `bin/conda-unpack`. Every binary file is checked before any file is written;
/// files are rewritten in place (same inode, same mode), never through a symlink; the list then
/// records `new_prefix`.
pub fn relocate(root: &Path, new_prefix: &str) -> Result<RelocateOutput> {
    let dir = Beneath::open(root).map_err(PackError::io("opening", root))?;
    relocate_beneath(&dir, new_prefix)
}

/// [`relocate`] of an already opened environment root.
pub(crate) fn relocate_beneath(root: &Beneath, new_prefix: &str) -> Result<RelocateOutput> {
    let list_rel = list_path();
    let list_path = root.display(list_rel.as_bytes());
    let list = RelocationList::read_beneath(root)?.ok_or_else(|| PackError::BadRelocationList {
        path: list_path.clone(),
        line: 0,
        reason: "file not found: this environment was not packed by envship".into(),
    })?;
    let new = new_prefix.as_bytes();
    let old = list.prefix.clone();
    let mut out = RelocateOutput {
        old_prefix: String::from_utf8_lossy(&old).into_owned(),
        ..Default::default()
    };
    if old == new {
        return Ok(out);
    }
    check_capacity(&list, new)?;
    let entries: Vec<(ArchivePath, &RelocEntry)> = list
        .entries
        .iter()
        .map(|e| match ArchivePath::parse(&e.path) {
            Ok(Some(p)) => Ok((p, e)),
            _ => Err(PackError::BadRelocationList {
                path: list_path.clone(),
                line: 0,
                reason: format!("bad path {}", String::from_utf8_lossy(&e.path)),
            }),
        })
        .collect::<Result<_>>()?;
    let read = |rel: &ArchivePath, write: bool| -> Result<Option<(fs::File, Vec<u8>)>> {
        let shown = String::from_utf8_lossy(rel.as_bytes()).into_owned();
        let p = root.display(rel.as_bytes());
        match root.open_existing(rel, write) {
            Ok(Some(mut f)) => {
                let mut data = Vec::new();
                f.read_to_end(&mut data)
                    .map_err(PackError::io("reading", &p))?;
                Ok(Some((f, data)))
            }
            Ok(None) => Ok(None),
            Err(e) => Err(through_link_or_io(e, "opening", &p, &shown)),
        }
    };
    // Nothing is written before every listed file is known to be safe to rewrite, and (for a
    // longer prefix) every binary file has the NUL room it needs.
    let grow = new.len() > old.len();
    entries.par_iter().try_for_each(|(rel, e)| -> Result<()> {
        if grow && e.mode == RelocMode::Binary {
            if let Some((_, data)) = read(rel, false)? {
                relocate_content(e, &data, &old, new)?;
            }
        } else {
            let p = root.display(rel.as_bytes());
            root.open_existing(rel, false).map_err(|err| {
                through_link_or_io(err, "opening", &p, &String::from_utf8_lossy(&e.path))
            })?;
        }
        Ok(())
    })?;
    let results: Vec<Result<(bool, Option<String>)>> = entries
        .par_iter()
        .map(|(rel, e)| {
            let Some((f, data)) = read(rel, true)? else {
                return Ok((false, Some(String::from_utf8_lossy(&e.path).into_owned())));
            };
            match relocate_content(e, &data, &old, new)? {
                Some(new_data) => {
                    write_in_place(&f, &new_data, &root.display(rel.as_bytes()))?;
                    Ok((true, None))
                }
                None => Ok((false, None)),
            }
        })
        .collect();
    for r in results {
        let (changed, missing) = r?;
        out.files_changed += usize::from(changed);
        out.missing.extend(missing);
    }
    out.missing.sort();
    let updated = RelocationList {
        prefix: new.to_vec(),
        entries: list.entries,
    };
    root.replace_file(&list_rel, updated.to_text().as_bytes())
        .map_err(|e| through_link_or_io(e, "writing", &list_path, RELOCATION_LIST))?;
    Ok(out)
}

/// Overwrite an open file's bytes keeping its inode (hardlinks stay linked) and mode.
fn write_in_place(f: &fs::File, data: &[u8], path: &Path) -> Result<()> {
    use std::os::unix::fs::FileExt;
    f.set_len(0).map_err(PackError::io("writing", path))?;
    f.write_all_at(data, 0)
        .map_err(PackError::io("writing", path))
}

/// An output written through a temp file in the same directory and synced, renamed into place
/// by its `commit` (a replaced file keeps its mode).
pub(crate) fn stage_atomic(path: &Path, data: &[u8]) -> Result<envship_spec::output::StagedFile> {
    envship_spec::output::stage(path, data).map_err(PackError::io("writing", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_replaces_every_occurrence() {
        let got = relocate_text(b"a=/old/p;b=/old/p/lib", b"/old/p", b"/n", false);
        assert_eq!(got.as_deref(), Some(&b"a=/n;b=/n/lib"[..]));
        assert_eq!(relocate_text(b"nothing", b"/old/p", b"/n", false), None);
    }

    #[test]
    fn long_shebang_becomes_env() {
        let long = format!("#!/{}/bin/python3.11 -u\nprint(1)\n", "x".repeat(130));
        let got = fix_long_shebang(long.as_bytes()).expect("rewritten");
        assert_eq!(got, b"#!/usr/bin/env python3.11 -u\nprint(1)\n");
        assert_eq!(fix_long_shebang(b"#!/bin/sh\necho\n"), None);
        // Only under bin/.
        assert_eq!(relocate_text(long.as_bytes(), b"/zz", b"/y", false), None);
        assert!(relocate_text(long.as_bytes(), b"/zz", b"/y", true).is_some());
    }

    #[test]
    fn binary_shrinks_with_nul_padding_and_grows_into_it() {
        let mut data = b"xx/build/pfx/lib:/build/pfx/x\0yy".to_vec();
        data.extend_from_slice(b"\0\0\0\0tail");
        let shrunk = relocate_binary(&data, b"/build/pfx", b"/b")
            .expect("fits")
            .expect("changed");
        assert_eq!(shrunk.len(), data.len());
        assert_eq!(&shrunk[..15], b"xx/b/lib:/b/x\0\0");
        // Grow back: the padding we added is consumed again, giving the original bytes.
        let back = relocate_binary(&shrunk, b"/b", b"/build/pfx")
            .expect("room")
            .expect("changed");
        assert_eq!(back, data);
        // Growing without padding fails and names the offset.
        let tight = b"/b/lib\0x".to_vec();
        assert_eq!(relocate_binary(&tight, b"/b", b"/bbb"), Err(NoRoomAt(0)));
    }

    #[test]
    fn list_round_trips_odd_bytes() {
        let list = RelocationList {
            prefix: b"/p with space/%x".to_vec(),
            entries: vec![RelocEntry {
                path: b"bin/\xff\tname".to_vec(),
                mode: RelocMode::Binary,
                capacity: 9,
            }],
        };
        let text = list.to_text();
        assert!(text.is_ascii());
        assert_eq!(
            RelocationList::parse(&text, Path::new("x")).expect("parses"),
            list
        );
        assert!(RelocationList::parse("nope", Path::new("x")).is_err());
    }

    #[test]
    fn list_paths_keep_the_path_rule() {
        assert_eq!(list_path().as_bytes(), RELOCATION_LIST.as_bytes());
        let head = "envship-relocate 1\nprefix /p\n";
        for (line, why) in [
            ("t 0 /home/u/.bashrc", "absolute path"),
            ("t 0 lib/../../x", "`..`"),
            ("b 9 %00", "NUL"),
            ("t 0 ./", "empty path"),
        ] {
            let err = RelocationList::parse(&format!("{head}{line}\n"), Path::new("list"))
                .expect_err(line)
                .to_string();
            assert!(err.contains("line 3") && err.contains(why), "{line}: {err}");
        }
        let ok = RelocationList::parse(&format!("{head}t 0 ./lib//a.pc\n"), Path::new("l"))
            .expect("normalized");
        assert_eq!(ok.entries[0].path, b"lib/a.pc");
    }
}
