//! Writing beneath a directory without ever following a symlink: the write half of the path
//! rule (see [`crate::archive_path`]). Every reader of an archive and every relocator writes
//! through a [`Beneath`], so a symlink that an archive (or anyone) put in DEST can point
//! anywhere without any write going through it.
//!
//! Directories are opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` where the kernel
//! has it (Linux 5.6), else one `openat(O_NOFOLLOW | O_DIRECTORY)` per component, which every
//! Linux has (RHEL 6's 2.6.32 included); the last component is always opened, created, linked
//! or removed relative to its parent's descriptor with `O_NOFOLLOW`/`O_EXCL`.
//!
//! With a journal, everything created is remembered, so a failed unpack can remove exactly
//! what it made ([`Beneath::rollback`]).

use std::{
    ffi::{CString, OsStr},
    fs::File,
    io,
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
        unix::ffi::OsStrExt,
    },
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
};

use crate::archive_path::ArchivePath;

/// Set once `openat2` answered ENOSYS (or EPERM from a container's seccomp profile).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_NO_SYMLINKS: u64 = 0x04;
const RESOLVE_BENEATH: u64 = 0x08;

/// `struct open_how` of `openat2(2)`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Whether an error means "a symlink (or a non-directory) was in the way".
pub fn is_link_in_the_way(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EXDEV)
    )
}

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path"))
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn owned(fd: libc::c_int) -> OwnedFd {
    // SAFETY: `fd` was just returned by a successful open and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

fn openat(dir: RawFd, name: &CString, flags: libc::c_int, mode: u32) -> io::Result<OwnedFd> {
    loop {
        // SAFETY: `name` is a valid NUL-terminated string; `dir` is an open descriptor.
        let r = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
        match cvt(r) {
            Ok(fd) => return Ok(owned(fd)),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

fn openat2_dir(dir: RawFd, rel: &CString) -> io::Result<OwnedFd> {
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    loop {
        // SAFETY: the arguments are what openat2(2) takes: a directory fd, a C string, a
        // pointer to an `open_how` and its size.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir,
                rel.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if r >= 0 {
            return Ok(owned(r as libc::c_int));
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn mkdirat(dir: RawFd, name: &CString) -> io::Result<()> {
    // SAFETY: valid fd and C string.
    cvt(unsafe { libc::mkdirat(dir, name.as_ptr(), 0o755) }).map(drop)
}

fn unlinkat(dir: RawFd, name: &CString, flags: libc::c_int) -> io::Result<()> {
    // SAFETY: valid fd and C string.
    cvt(unsafe { libc::unlinkat(dir, name.as_ptr(), flags) }).map(drop)
}

/// `lstat` of `name` in `dir`: is it a directory?
fn is_dir_at(dir: RawFd, name: &CString) -> io::Result<bool> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: valid fd, C string and out pointer.
    cvt(unsafe {
        libc::fstatat(
            dir,
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    // SAFETY: fstatat succeeded, so it filled `st`.
    let st = unsafe { st.assume_init() };
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// One thing a journaled [`Beneath`] created.
struct Created {
    rel: Vec<u8>,
    dir: bool,
}

/// Hard-link `from` in `from_dir` as `name` in `dir`, never following `from` if it is a symlink.
fn link_nofollow(
    from_dir: &OwnedFd,
    from: &CString,
    dir: &OwnedFd,
    name: &CString,
) -> io::Result<()> {
    // SAFETY: valid C strings and fds; flags 0 = do not follow `from`.
    cvt(unsafe {
        libc::linkat(
            from_dir.as_raw_fd(),
            from.as_ptr(),
            dir.as_raw_fd(),
            name.as_ptr(),
            0,
        )
    })
    .map(|_| ())
}

/// Whether `name` in `dir` is a regular file (the link itself is examined) of this size,
/// permission bits and mtime.
fn stat_matches(dir: &OwnedFd, name: &CString, (size, mode, mtime): (u64, u32, i64)) -> bool {
    // SAFETY: an all-zero stat is a valid value; fstatat fills it.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd, C string and out pointer.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    r == 0
        && st.st_mode & libc::S_IFMT == libc::S_IFREG
        && st.st_size as u64 == size
        && st.st_mode & 0o7777 == mode
        && st.st_mtime == mtime
}

/// A directory that is written beneath, never through a symlink (see the module docs).
pub struct Beneath {
    root: OwnedFd,
    path: PathBuf,
    journal: Option<Mutex<Vec<Created>>>,
}

impl Beneath {
    /// Open `root` (a path the user chose: a symlink *to* it is followed).
    pub fn open(root: &Path) -> io::Result<Self> {
        let c = cstr(root.as_os_str().as_bytes())?;
        let fd = openat(libc::AT_FDCWD, &c, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
        Ok(Self {
            root: fd,
            path: root.to_path_buf(),
            journal: None,
        })
    }

    /// The directory `rel` below this one, opened without following symlinks.
    pub fn sub(&self, rel: &ArchivePath) -> io::Result<Self> {
        Ok(Self {
            root: self.open_dir(rel.as_bytes())?,
            path: self.display(rel.as_bytes()),
            journal: None,
        })
    }

    /// Remember everything created from now on, for [`Beneath::rollback`].
    pub fn with_journal(mut self) -> Self {
        self.journal = Some(Mutex::new(Vec::new()));
        self
    }

    /// The root's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` as a path below the root, for messages.
    pub fn display(&self, rel: &[u8]) -> PathBuf {
        self.path.join(OsStr::from_bytes(rel))
    }

    fn note(&self, rel: &[u8], dir: bool) {
        if let Some(j) = &self.journal {
            if let Ok(mut j) = j.lock() {
                j.push(Created {
                    rel: rel.to_vec(),
                    dir,
                });
            }
        }
    }

    /// Open the directory `rel` (`b""` is the root) without following any symlink.
    fn open_dir(&self, rel: &[u8]) -> io::Result<OwnedFd> {
        if rel.is_empty() {
            return self.root.try_clone();
        }
        let c = cstr(rel)?;
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            match openat2_dir(self.root.as_raw_fd(), &c) {
                Ok(fd) => return Ok(fd),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let mut cur: Option<OwnedFd> = None;
        for comp in rel.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
            let base = cur
                .as_ref()
                .map_or(self.root.as_raw_fd(), |f| f.as_raw_fd());
            let fd = openat(
                base,
                &cstr(comp)?,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )?;
            cur = Some(fd);
        }
        match cur {
            Some(fd) => Ok(fd),
            None => self.root.try_clone(),
        }
    }

    /// Create the directory `rel` and its missing parents; a symlink or file on the way fails
    /// (ELOOP/ENOTDIR, see [`is_link_in_the_way`]).
    pub fn create_dir_all(&self, rel: &[u8]) -> io::Result<()> {
        match self.open_dir(rel) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut cur = self.root.try_clone()?;
        let mut done = 0;
        for comp in rel.split(|&b| b == b'/') {
            let end = done + comp.len();
            if !comp.is_empty() {
                let c = cstr(comp)?;
                match mkdirat(cur.as_raw_fd(), &c) {
                    Ok(()) => self.note(&rel[..end], true),
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
                cur = openat(
                    cur.as_raw_fd(),
                    &c,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )?;
            }
            done = end + 1;
        }
        Ok(())
    }

    /// Make room for a new entry `name` in `dir`: nothing there is fine; a non-directory is
    /// removed when `replace`; a directory is never replaced.
    fn clear(&self, dir: RawFd, name: &CString, replace: bool) -> io::Result<()> {
        match is_dir_at(dir, name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
            Ok(true) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a directory already exists at this path",
            )),
            Ok(false) if replace => unlinkat(dir, name, 0),
            Ok(false) => Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a file already exists at this path",
            )),
        }
    }

    /// Create the regular file `rel` (its parent must exist) with `mode`, exclusively: an
    /// existing non-directory is removed first when `replace` (never written through).
    pub fn create_file(&self, rel: &ArchivePath, mode: u32, replace: bool) -> io::Result<File> {
        let dir = self.open_dir(rel.parent())?;
        let name = cstr(rel.file_name())?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        // The common case (nothing there) costs one call; only a clash looks closer.
        let fd = match openat(dir.as_raw_fd(), &name, flags, mode) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                self.clear(dir.as_raw_fd(), &name, replace)?;
                openat(dir.as_raw_fd(), &name, flags, mode)?
            }
            other => other?,
        };
        self.note(rel.as_bytes(), false);
        let f = File::from(fd);
        // Exactly `mode`, whatever the umask: archives record 0755/0644.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        Ok(f)
    }

    /// Create the symlink `rel` → `target` (the target is not checked: it may point anywhere).
    pub fn symlink(&self, rel: &ArchivePath, target: &[u8], replace: bool) -> io::Result<()> {
        let dir = self.open_dir(rel.parent())?;
        let name = cstr(rel.file_name())?;
        self.clear(dir.as_raw_fd(), &name, replace)?;
        let t = cstr(target)?;
        // SAFETY: valid C strings and fd.
        cvt(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), name.as_ptr()) })?;
        self.note(rel.as_bytes(), false);
        Ok(())
    }

    /// Create `rel` as a hard link to `existing` (itself never followed if it is a symlink).
    pub fn hard_link(
        &self,
        existing: &ArchivePath,
        rel: &ArchivePath,
        replace: bool,
    ) -> io::Result<()> {
        let from_dir = self.open_dir(existing.parent())?;
        let from = cstr(existing.file_name())?;
        let dir = self.open_dir(rel.parent())?;
        let name = cstr(rel.file_name())?;
        self.clear(dir.as_raw_fd(), &name, replace)?;
        link_nofollow(&from_dir, &from, &dir, &name)?;
        self.note(rel.as_bytes(), false);
        Ok(())
    }

    /// Whether `rel` is a regular file (not a symlink, none on the way) with `size` bytes,
    /// exactly the permission bits `mode` and the mtime `mtime`.
    pub fn regular_file_matches(&self, rel: &ArchivePath, how: (u64, u32, i64)) -> bool {
        let (Ok(dir), Ok(name)) = (self.open_dir(rel.parent()), cstr(rel.file_name())) else {
            return false;
        };
        stat_matches(&dir, &name, how)
    }

    /// Create `rel` as a hard link to the regular file `existing` of another tree `src` (a
    /// deployed version), if that file has `size` bytes, exactly the permission bits `mode` and
    /// the mtime `mtime`.
    /// Neither tree is followed through a symlink. `Ok(false)` when the file is not there or
    /// differs: the caller writes it instead.
    pub fn link_from(
        &self,
        src: &Beneath,
        existing: &ArchivePath,
        rel: &ArchivePath,
        (size, mode, mtime): (u64, u32, i64),
    ) -> io::Result<bool> {
        let Ok(from_dir) = src.open_dir(existing.parent()) else {
            return Ok(false);
        };
        let from = cstr(existing.file_name())?;
        if !stat_matches(&from_dir, &from, (size, mode, mtime)) {
            return Ok(false);
        }
        let dir = self.open_dir(rel.parent())?;
        let name = cstr(rel.file_name())?;
        link_nofollow(&from_dir, &from, &dir, &name)?;
        self.note(rel.as_bytes(), false);
        Ok(true)
    }

    /// Open the existing regular file `rel` for reading and rewriting in place; `None` when it
    /// does not exist. A symlink anywhere on the way, or a non-regular file, is an error.
    pub fn open_existing(&self, rel: &ArchivePath, write: bool) -> io::Result<Option<File>> {
        let dir = match self.open_dir(rel.parent()) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let name = cstr(rel.file_name())?;
        let access = if write { libc::O_RDWR } else { libc::O_RDONLY };
        let fd = match openat(dir.as_raw_fd(), &name, access | libc::O_NOFOLLOW, 0) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let f = File::from(fd);
        if !f.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(Some(f))
    }

    /// Replace the file `rel` with `data` atomically (temp file beside it, then rename; both
    /// relative to the parent's descriptor). A replaced file keeps its mode.
    pub fn replace_file(&self, rel: &ArchivePath, data: &[u8]) -> io::Result<()> {
        use std::io::Write;
        let dir = self.open_dir(rel.parent())?;
        let name = cstr(rel.file_name())?;
        let mode = self
            .open_existing(rel, false)?
            .and_then(|f| f.metadata().ok())
            .map_or(0o644, |m| {
                std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777
            });
        let mut tmp_name = rel.file_name().to_vec();
        tmp_name.extend_from_slice(format!(".envship-tmp-{}", std::process::id()).as_bytes());
        let tmp = cstr(&tmp_name)?;
        let _ = unlinkat(dir.as_raw_fd(), &tmp, 0);
        let fd = openat(
            dir.as_raw_fd(),
            &tmp,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            mode,
        )?;
        let mut f = File::from(fd);
        let written = f.write_all(data).and_then(|()| {
            use std::os::unix::fs::PermissionsExt;
            f.set_permissions(std::fs::Permissions::from_mode(mode))
        });
        // SAFETY: valid fds and C strings.
        let renamed = written.and_then(|()| {
            cvt(unsafe {
                libc::renameat(
                    dir.as_raw_fd(),
                    tmp.as_ptr(),
                    dir.as_raw_fd(),
                    name.as_ptr(),
                )
            })
            .map(drop)
        });
        if renamed.is_err() {
            let _ = unlinkat(dir.as_raw_fd(), &tmp, 0);
        }
        renamed
    }

    /// Remove everything the journal recorded, newest first (a directory only if empty).
    /// Best effort: returns how many entries could not be removed.
    pub fn rollback(&self) -> usize {
        let Some(j) = &self.journal else { return 0 };
        let created = match j.lock() {
            Ok(mut j) => std::mem::take(&mut *j),
            Err(_) => return 0,
        };
        let mut left = 0;
        for c in created.iter().rev() {
            let Ok(Some(p)) = ArchivePath::parse(&c.rel) else {
                continue;
            };
            let removed = self.open_dir(p.parent()).and_then(|dir| {
                let flags = if c.dir { libc::AT_REMOVEDIR } else { 0 };
                unlinkat(dir.as_raw_fd(), &cstr(p.file_name())?, flags)
            });
            if let Err(e) = removed {
                if e.kind() != io::ErrorKind::NotFound {
                    left += 1;
                }
            }
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ap(s: &str) -> ArchivePath {
        ArchivePath::parse(s.as_bytes())
            .expect("valid")
            .expect("not root")
    }

    fn both_ways(f: impl Fn()) {
        f();
        NO_OPENAT2.store(true, Ordering::Relaxed);
        f();
        NO_OPENAT2.store(false, Ordering::Relaxed);
    }

    #[test]
    fn never_writes_through_a_symlink() {
        both_ways(|| {
            let t = tempfile::tempdir().expect("tempdir");
            let dest = t.path().join("dest");
            let outside = t.path().join("outside");
            std::fs::create_dir_all(&dest).expect("mkdir");
            std::fs::create_dir_all(&outside).expect("mkdir");
            std::fs::write(outside.join("victim"), "keep").expect("write");
            std::os::unix::fs::symlink(&outside, dest.join("link")).expect("symlink");
            std::os::unix::fs::symlink(outside.join("victim"), dest.join("flink"))
                .expect("symlink");
            let b = Beneath::open(&dest).expect("open");
            let e = b
                .create_file(&ap("link/victim"), 0o644, true)
                .expect_err("refused");
            assert!(is_link_in_the_way(&e), "{e}");
            let e = b.create_dir_all(b"link/sub").expect_err("refused");
            assert!(is_link_in_the_way(&e), "{e}");
            let e = b.open_existing(&ap("flink"), true).expect_err("refused");
            assert!(is_link_in_the_way(&e), "{e}");
            let e = b
                .open_existing(&ap("link/victim"), true)
                .expect_err("refused");
            assert!(is_link_in_the_way(&e), "{e}");
            // Replacing the symlink itself is fine: the link goes, its target stays.
            b.create_file(&ap("flink"), 0o644, true)
                .expect("replace link");
            assert_eq!(
                std::fs::read_to_string(outside.join("victim")).expect("read"),
                "keep"
            );
            assert!(std::fs::read_dir(&outside).expect("ls").count() == 1);
        });
    }

    #[test]
    fn rollback_removes_what_was_made() {
        both_ways(|| {
            let t = tempfile::tempdir().expect("tempdir");
            std::fs::write(t.path().join("before"), "x").expect("write");
            let b = Beneath::open(t.path()).expect("open").with_journal();
            b.create_dir_all(b"a/b/c").expect("mkdir");
            b.create_file(&ap("a/b/f"), 0o755, false).expect("file");
            b.symlink(&ap("a/l"), b"/etc/passwd", false)
                .expect("symlink");
            b.hard_link(&ap("a/b/f"), &ap("h"), false).expect("link");
            assert_eq!(b.rollback(), 0);
            let left: Vec<_> = std::fs::read_dir(t.path())
                .expect("ls")
                .map(|e| e.expect("entry").file_name())
                .collect();
            assert_eq!(left, vec![std::ffi::OsString::from("before")]);
        });
    }

    #[test]
    fn replace_file_keeps_mode_and_refuses_links() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().expect("tempdir");
        let b = Beneath::open(t.path()).expect("open");
        b.create_dir_all(b"s").expect("mkdir");
        drop(b.create_file(&ap("s/x"), 0o600, false).expect("file"));
        b.replace_file(&ap("s/x"), b"new").expect("replace");
        let md = std::fs::metadata(t.path().join("s/x")).expect("stat");
        assert_eq!(md.permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read(t.path().join("s/x")).expect("read"), b"new");
        std::os::unix::fs::symlink("/tmp", t.path().join("l")).expect("symlink");
        assert!(b.replace_file(&ap("l/x"), b"no").is_err());
    }
}
