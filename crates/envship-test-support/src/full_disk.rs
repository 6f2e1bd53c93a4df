//! A small file system that is (nearly) full: a tmpfs mounted on a temp directory and filled to
//! a chosen number of free bytes, so that a test sees a real ENOSPC halfway through a write.
//!
//! Mounting needs root (CI runs the tests as root). Elsewhere [`FullDisk::mount`] skips the
//! test with the reason, through [`crate::skip`], which fails under `CI=true`. The mount is
//! undone when the value is dropped (also when the test panics).

use std::{
    ffi::CString,
    io::Write,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
};

/// The filler file's name, in the mount's root.
const FILLER: &str = ".filler";

/// A mounted tmpfs of a fixed size; see the module docs.
pub struct FullDisk {
    dir: tempfile::TempDir,
    size: u64,
}

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

impl FullDisk {
    /// A tmpfs of `size` bytes, empty; `None` (after a skip naming `test` and why) when this
    /// process cannot mount one.
    pub fn mount(test: &str, size: u64) -> Option<FullDisk> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            crate::skip(
                test,
                "mounting a small tmpfs to fill needs root (CI runs the tests as root)",
            );
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("envship-full-disk-")
            .tempdir()
            .unwrap();
        let target = c_path(dir.path());
        let fstype = CString::new("tmpfs").unwrap();
        let data = CString::new(format!("size={size},mode=0755")).unwrap();
        // SAFETY: valid NUL-terminated strings that live across the call.
        let rc = unsafe {
            libc::mount(
                fstype.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                data.as_ptr().cast(),
            )
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            crate::skip(
                test,
                format!("cannot mount a tmpfs on {}: {err}", dir.path().display()),
            );
            return None;
        }
        Some(FullDisk { dir, size })
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A path below the mount point.
    pub fn join(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// The file system's size in bytes, as mounted.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The bytes an unprivileged write could still allocate (`statvfs`'s `f_bavail`).
    pub fn free_bytes(&self) -> u64 {
        let path = c_path(self.path());
        // SAFETY: statvfs fills the zeroed struct it is given.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid path and a valid out pointer.
        let rc = unsafe { libc::statvfs(path.as_ptr(), &mut st) };
        assert_eq!(rc, 0, "statvfs {}", self.path().display());
        st.f_bavail as u64 * st.f_frsize as u64
    }

    /// Grow (or shrink) the filler file until about `free` bytes are left (tmpfs counts whole
    /// pages, so up to a page less). Returns the free bytes after it.
    pub fn fill_to(&self, free: u64) -> u64 {
        let filler = self.join(FILLER);
        let current = std::fs::metadata(&filler).map(|m| m.len()).unwrap_or(0);
        let want = (current + self.free_bytes()).saturating_sub(free);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&filler)
            .unwrap();
        // Real bytes, not a sparse file: tmpfs only counts pages that were written.
        let chunk = vec![0xa5u8; 1 << 20];
        let mut left = want;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n])
                .unwrap_or_else(|e| panic!("filling {}: {e}", filler.display()));
            left -= n as u64;
        }
        f.sync_all().unwrap();
        let got = self.free_bytes();
        assert!(
            got <= free + 4096,
            "filled {} to {got} free bytes, wanted at most {free}",
            self.path().display()
        );
        got
    }

    /// Remove the filler: the space the test took back is free again.
    pub fn free_all(&self) -> u64 {
        let _ = std::fs::remove_file(self.join(FILLER));
        self.free_bytes()
    }

    /// Every path below the mount point except the filler, relative to it, sorted: what the
    /// command under test left there.
    pub fn listing(&self) -> Vec<String> {
        let mut out: Vec<String> = walkdir::WalkDir::new(self.path())
            .min_depth(1)
            .into_iter()
            .flatten()
            .map(|e| {
                e.path()
                    .strip_prefix(self.path())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .filter(|p| p != FILLER)
            .collect();
        out.sort();
        out
    }
}

impl Drop for FullDisk {
    fn drop(&mut self) {
        let target = c_path(self.dir.path());
        // SAFETY: a valid path. Lazy: a process still holding a file there cannot keep the
        // mount (and the temp directory) alive.
        let rc = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        if rc != 0 {
            #[allow(clippy::print_stderr)]
            {
                eprintln!(
                    "could not unmount the test tmpfs {}: {}",
                    self.dir.path().display(),
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}
