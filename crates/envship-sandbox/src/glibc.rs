//! The glibc version of a root filesystem, read from its `libc.so.6` without running anything:
//! the library embeds `GNU C Library ... release version X.Y`, and its file name was
//! `libc-X.Y.so` before glibc 2.34.

use std::{
    ffi::OsString,
    path::{Component, Path, PathBuf},
};

use envship_spec::DottedVersion;

/// Where distributions put `libc.so.6`, relative to the root.
const LIBC_CANDIDATES: &[&str] = &[
    "lib/x86_64-linux-gnu/libc.so.6",
    "usr/lib/x86_64-linux-gnu/libc.so.6",
    "lib64/libc.so.6",
    "usr/lib64/libc.so.6",
    "lib/aarch64-linux-gnu/libc.so.6",
    "usr/lib/aarch64-linux-gnu/libc.so.6",
    "lib/libc.so.6",
    "usr/lib/libc.so.6",
];

/// The glibc version of the userland under `root`, if it has one.
pub fn rootfs_glibc(root: &Path) -> Option<DottedVersion> {
    for candidate in LIBC_CANDIDATES {
        let Some(path) = resolve_in_root(root, Path::new(candidate)) else {
            continue;
        };
        if let Ok(bytes) = fs_err::read(&path) {
            if let Some(v) = version_from_bytes(&bytes) {
                return Some(v);
            }
        }
        if let Some(v) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("libc-"))
            .and_then(|n| n.strip_suffix(".so"))
            .and_then(|v| v.parse().ok())
        {
            return Some(v);
        }
    }
    None
}

/// Finds `release version X.Y` after `GNU C Library` in a libc image.
pub(crate) fn version_from_bytes(bytes: &[u8]) -> Option<DottedVersion> {
    let marker = b"GNU C Library";
    let mut from = 0;
    while let Some(pos) = find(&bytes[from..], marker) {
        let start = from + pos;
        let end = bytes[start..]
            .iter()
            .position(|&b| b == 0 || b == b'\n')
            .map_or(bytes.len(), |e| start + e);
        let text = String::from_utf8_lossy(&bytes[start..end]);
        if let Some(idx) = text.find("version ") {
            let rest = &text[idx + "version ".len()..];
            let v: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            if let Ok(v) = v.trim_end_matches('.').parse() {
                return Some(v);
            }
        }
        from = start + marker.len();
    }
    None
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Resolves `rel` under `root`, following symlinks as if `root` were `/` (an absolute link in a
/// rootfs points into the rootfs, not the host).
pub(crate) fn resolve_in_root(root: &Path, rel: &Path) -> Option<PathBuf> {
    let mut todo: Vec<OsString> = rel
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            _ => None,
        })
        .collect();
    let mut cur: Vec<OsString> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            cur.pop();
            continue;
        }
        cur.push(part);
        let host: PathBuf = root.join(cur.iter().collect::<PathBuf>());
        let meta = std::fs::symlink_metadata(&host).ok()?;
        if meta.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = std::fs::read_link(&host).ok()?;
            cur.pop();
            if target.is_absolute() {
                cur.clear();
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(n) => todo.push(n.to_os_string()),
                    Component::ParentDir => todo.push(OsString::from("..")),
                    _ => {}
                }
            }
        }
    }
    Some(root.join(cur.iter().collect::<PathBuf>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_strings() {
        let s = b"\0GNU C Library (Debian GLIBC 2.31-13+deb11u11) stable release version 2.31.\n";
        assert_eq!(version_from_bytes(s), Some("2.31".parse().expect("v")));
        let s = b"xx\0GNU C Library stable release version 2.12, by Roland McGrath et al.\0";
        assert_eq!(version_from_bytes(s), Some("2.12".parse().expect("v")));
        assert_eq!(version_from_bytes(b"GNU C Library\0"), None);
    }

    #[test]
    fn resolves_absolute_links_inside_root() {
        let root = tempfile::tempdir().expect("tmp");
        let r = root.path();
        std::fs::create_dir_all(r.join("usr/lib64")).expect("mkdir");
        std::fs::write(
            r.join("usr/lib64/libc-2.17.so"),
            b"GNU C Library (GNU libc) stable release version 2.17, by Roland McGrath et al.",
        )
        .expect("write");
        std::os::unix::fs::symlink("/usr/lib64", r.join("lib64")).expect("link");
        std::os::unix::fs::symlink("libc-2.17.so", r.join("usr/lib64/libc.so.6")).expect("link");
        assert_eq!(rootfs_glibc(r), Some("2.17".parse().expect("v")));
    }

    #[test]
    fn host_glibc_is_found() {
        // Every machine that runs these tests is a glibc Linux.
        let v = rootfs_glibc(Path::new("/")).expect("host glibc");
        assert!(v >= "2.17".parse().expect("v"), "{v}");
    }
}
