//! The live layout under `ROOT/NAME`: version directories, the `current` symlink, and the
//! renames that change them so that `current` always names a complete tree (see the crate
//! docs). Also the cleanup and repair of what a killed deploy left behind.

use std::path::{Path, PathBuf};

use crate::{pause_point, DeployError, CURRENT, NO_EXCHANGE_ENV};

/// The version `ROOT/NAME/current` points at, if any.
pub fn current_version(root: &Path, name: &str) -> Result<Option<String>, DeployError> {
    let link = root.join(name).join(CURRENT);
    match std::fs::symlink_metadata(&link) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(DeployError::io("reading", &link)(e)),
        Ok(m) if !m.file_type().is_symlink() => Err(DeployError::CurrentNotSymlink { path: link }),
        Ok(_) => {
            let t = std::fs::read_link(&link).map_err(DeployError::io("reading", &link))?;
            Ok(t.file_name().and_then(|n| n.to_str()).map(str::to_string))
        }
    }
}

/// The tree record of the version directory `version_dir` (`ROOT/NAME/.VERSION.tree.json`):
/// every path of the deployed tree with its type, mode, size and sha256 after relocation (see
/// [`envship_pack::tree`]). Written by deploy as the last step before the switch.
pub fn record_path(version_dir: &Path) -> PathBuf {
    envship_pack::tree::record_path(version_dir)
}

/// The copy of the archive's manifest deploy keeps beside `version_dir`
/// (`ROOT/NAME/.VERSION.manifest.json`), written with the tree record.
pub fn manifest_path(version_dir: &Path) -> PathBuf {
    envship_pack::tree::manifest_path(version_dir)
}

/// The record and manifest kept beside a version that is being replaced, renamed to
/// `NAME.old-PID` (a leftover name the next deploy removes) so that no record describes a tree
/// it does not match while the new one is put in place, tested and recorded.
pub(crate) struct KeptAside(Vec<(PathBuf, PathBuf)>);

impl KeptAside {
    /// Set aside what is kept beside `version_dir`, if anything.
    pub(crate) fn take(version_dir: &Path) -> Result<KeptAside, DeployError> {
        let mut moved = Vec::new();
        // The block index too: restored with the old tree, a new archive's index beside it
        // would let the next deploy link files by hashes that are not the tree's.
        let blocks = crate::linked::blocks_path_of(version_dir);
        for kept in [record_path(version_dir), manifest_path(version_dir), blocks] {
            if std::fs::symlink_metadata(&kept).is_err() {
                continue;
            }
            let mut name = kept.file_name().unwrap_or_default().to_os_string();
            name.push(format!(".old-{}", std::process::id()));
            let aside = kept.with_file_name(name);
            if let Err(e) = std::fs::rename(&kept, &aside) {
                KeptAside(moved).restore();
                return Err(DeployError::io("renaming", &kept)(e));
            }
            moved.push((kept, aside));
        }
        Ok(KeptAside(moved))
    }

    /// Put them back (the old tree is back).
    pub(crate) fn restore(&self) {
        for (kept, aside) in &self.0 {
            if let Err(e) = std::fs::rename(aside, kept) {
                tracing::warn!("could not rename {} back: {e}", aside.display());
            }
        }
    }

    /// Remove them (the new tree's are written).
    pub(crate) fn remove(&self) {
        for (_, aside) in &self.0 {
            if let Err(e) = std::fs::remove_file(aside) {
                tracing::warn!("could not remove {}: {e}", aside.display());
            }
        }
    }
}

/// What a deployed version keeps beside its directory: `.VERSION.SUFFIX` for these suffixes
/// (the block index linked deploys read, the tree record `envship verify` checks, the copy of
/// the archive's manifest `envship diff` reads).
pub const VERSION_RECORDS: &[&str] = &[
    ".blocks.json",
    envship_pack::tree::RECORD_SUFFIX,
    ".manifest.json",
];

/// Whether `name` in `env_dir` is a record kept beside an existing version directory.
pub fn is_version_record(env_dir: &Path, name: &str) -> bool {
    version_of_record(name).is_some_and(|v| env_dir.join(v).is_dir())
}

/// The version a record name (`.VERSION.SUFFIX`) belongs to.
fn version_of_record(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?;
    VERSION_RECORDS
        .iter()
        .find_map(|s| rest.strip_suffix(s))
        .filter(|v| !v.is_empty())
}

/// Remove what killed deploys left in `ROOT/NAME`: partial extractions, swapped-out trees, temp
/// links, half-written records, and the records of versions that are gone. Only called under
/// the lock, so none of them belongs to a live deploy.
pub(crate) fn clean_leftovers(env_dir: &Path, actions: &mut Vec<String>) {
    let Ok(rd) = std::fs::read_dir(env_dir) else {
        return;
    };
    let live = std::fs::read_link(env_dir.join(CURRENT)).ok();
    for e in rd.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        // `..NAME.XXXXXX` is the temp file of an interrupted atomic write of a record.
        let interrupted = n.starts_with('.')
            && (n.contains(".partial-")
                || n.contains(".old-")
                || n.starts_with(".current.tmp-")
                || n.starts_with(".."))
            && live.as_deref() != Some(Path::new(&n));
        // The records of a version that is gone (removed by hand, or an undone deploy that
        // was killed).
        let orphan = version_of_record(&n).is_some_and(|v| !env_dir.join(v).is_dir());
        let stale = interrupted || orphan;
        if !stale {
            continue;
        }
        let p = e.path();
        let res = match e.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
            _ => std::fs::remove_file(&p),
        };
        match res {
            Ok(()) => actions.push(format!(
                "removed {} left by an interrupted deploy",
                p.display()
            )),
            Err(err) => tracing::warn!("could not remove {}: {err}", p.display()),
        }
    }
}

/// Atomically swap two directory entries with `renameat2(RENAME_EXCHANGE)`. `Ok(false)` when
/// the kernel (before 3.15) or the file system (NFS, for one) cannot.
fn exchange(a: &Path, b: &Path) -> Result<bool, DeployError> {
    if std::env::var_os(NO_EXCHANGE_ENV).is_some() {
        return Ok(false);
    }
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).map_err(|_| DeployError::Io {
            action: "exchanging",
            path: p.to_path_buf(),
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        })
    };
    let (ca, cb) = (c(a)?, c(b)?);
    // The raw syscall: musl has no wrapper, and glibc's turns ENOSYS into EINVAL.
    // SAFETY: two NUL-terminated paths that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        // No such syscall, or the file system does not support the flag.
        Some(libc::ENOSYS | libc::EINVAL) => Ok(false),
        _ => Err(DeployError::io("exchanging with", b)(err)),
    }
}

/// Put the complete tree `staged` at `dest` (an existing version directory in `env_dir`, for
/// `version`) and move the tree that was there to `retired`.
///
/// With `renameat2` this is one exchange (returns `true`); without it, [`replace_by_renames`]
/// (returns `false`).
pub(crate) fn replace_tree(
    env_dir: &Path,
    staged: &Path,
    dest: &Path,
    retired: &Path,
    version: &str,
) -> Result<bool, DeployError> {
    if exchange(staged, dest)? {
        std::fs::rename(staged, retired).map_err(DeployError::io("renaming", staged))?;
        return Ok(true);
    }
    replace_by_renames(env_dir, staged, dest, retired, version)?;
    Ok(false)
}

/// [`replace_tree`] with two renames, `dest` missing in between: so if `current` points at
/// `dest`, it points at `staged` meanwhile (module docs). On failure the old tree is back at
/// `dest`, `current` at it, and `staged` where it was.
fn replace_by_renames(
    env_dir: &Path,
    staged: &Path,
    dest: &Path,
    retired: &Path,
    version: &str,
) -> Result<(), DeployError> {
    let staged_name =
        staged
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| DeployError::Io {
                action: "staging",
                path: staged.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            })?;
    let live =
        std::fs::read_link(env_dir.join(CURRENT)).ok().as_deref() == Some(Path::new(version));
    let back = |e: DeployError| {
        if live {
            if let Err(err) = point_current(env_dir, version) {
                tracing::warn!("could not point `current` back at {version}: {err}");
            }
        }
        e
    };
    if live {
        point_current(env_dir, staged_name)?;
        pause_point("staged");
    }
    // Prepared now, so that after the new tree is renamed in, `current` is pointed back at it by
    // the very next syscall.
    let link_back = if live {
        Some(new_link(env_dir, version).map_err(back)?)
    } else {
        None
    };
    std::fs::rename(dest, retired)
        .map_err(DeployError::io("renaming", dest))
        .map_err(back)?;
    pause_point("retired");
    if let Err(e) = std::fs::rename(staged, dest) {
        if let Err(err) = std::fs::rename(retired, dest) {
            tracing::warn!("could not rename {} back: {err}", retired.display());
        }
        return Err(back(DeployError::io("renaming into", dest)(e)));
    }
    if let Some(tmp) = link_back {
        pause_point("moved-in");
        install_link(env_dir, &tmp)?;
    }
    sync_dir(env_dir);
    Ok(())
}

/// The version a staged or retired tree's hidden name is for: `.VERSION.partial-XXXX`,
/// `.VERSION.old-PID`.
fn hidden_tree_version(name: &str) -> Option<&str> {
    let rest = name.strip_prefix('.')?;
    rest.rsplit_once(".partial-")
        .or_else(|| rest.rsplit_once(".old-"))
        .map(|(v, _)| v)
        .filter(|v| !v.is_empty() && !v.starts_with('.') && !v.contains('/'))
}

/// Finish a replacement that was killed while `current` named a hidden tree (see the module
/// docs): that tree is the one meant for `VERSION`, so move it there (the tree at `VERSION`, if
/// any, to a leftover name) and point `current` at `VERSION`. Only called under the lock.
pub fn repair_current(env_dir: &Path, actions: &mut Vec<String>) -> Result<(), DeployError> {
    let link = env_dir.join(CURRENT);
    let Ok(target) = std::fs::read_link(&link) else {
        return Ok(());
    };
    let Some(name) = target.to_str() else {
        return Ok(());
    };
    let Some(version) = hidden_tree_version(name) else {
        return Ok(());
    };
    let hidden = env_dir.join(name);
    let dest = env_dir.join(version);
    if hidden.is_dir() {
        if dest.exists() {
            let retired = env_dir.join(format!(".{version}.old-{}-repair", std::process::id()));
            std::fs::rename(&dest, &retired).map_err(DeployError::io("renaming", &dest))?;
        }
        std::fs::rename(&hidden, &dest).map_err(DeployError::io("renaming into", &dest))?;
    }
    if dest.is_dir() {
        point_current(env_dir, version)?;
        actions.push(format!(
            "pointed {} back at {version}: an interrupted deploy had left it at {name}",
            link.display()
        ));
    }
    Ok(())
}

/// Point `ENV_DIR/current` at `version`: a new relative symlink under a temp name, renamed over
/// the old one (rename replaces atomically; readers see the old or the new target).
pub(crate) fn switch_current(env_dir: &Path, version: &str) -> Result<(), DeployError> {
    let link = env_dir.join(CURRENT);
    if let Ok(m) = std::fs::symlink_metadata(&link) {
        if !m.file_type().is_symlink() {
            return Err(DeployError::CurrentNotSymlink { path: link });
        }
    }
    let tmp = new_link(env_dir, version)?;
    pause_point("linked");
    install_link(env_dir, &tmp)
}

/// `switch_current` without the checks and pause point, for the steps of `replace_tree`.
fn point_current(env_dir: &Path, target: &str) -> Result<(), DeployError> {
    let tmp = new_link(env_dir, target)?;
    install_link(env_dir, &tmp)
}

/// A symlink to `target` under a temp name in `env_dir`, to be renamed over `current`.
fn new_link(env_dir: &Path, target: &str) -> Result<PathBuf, DeployError> {
    let tmp = env_dir.join(format!(".current.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(DeployError::io("creating", &tmp))?;
    Ok(tmp)
}

fn install_link(env_dir: &Path, tmp: &Path) -> Result<(), DeployError> {
    let link = env_dir.join(CURRENT);
    std::fs::rename(tmp, &link).map_err(DeployError::io("renaming over", &link))?;
    sync_dir(env_dir);
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Flush the extracted files' data before the rename makes them visible under the final name
/// (ext4 and xfs order data before the rename's metadata only with this `syncfs`).
pub(crate) fn sync_tree_root(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        // syncfs is Linux 2.6.39+: RHEL 6's kernel may lack it, and then all file systems are
        // flushed instead.
        if nix::unistd::syncfs(&d) == Err(nix::errno::Errno::ENOSYS) {
            nix::unistd::sync();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ENV_DIR/NAME` as a version tree holding `marker` with `content`.
    fn tree(env_dir: &Path, name: &str, content: &str) -> PathBuf {
        let dir = env_dir.join(name);
        std::fs::create_dir_all(dir.join("bin")).expect("mkdir");
        std::fs::write(dir.join("bin/marker"), content).expect("write");
        dir
    }

    fn marker(dir: &Path) -> String {
        std::fs::read_to_string(dir.join("bin/marker")).expect("marker")
    }

    fn link(env_dir: &Path) -> String {
        std::fs::read_link(env_dir.join(CURRENT))
            .expect("current")
            .to_string_lossy()
            .into_owned()
    }

    fn hidden(env_dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(env_dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    #[test]
    fn renames_replace_the_live_version_and_point_current_back() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = tmp.path();
        let dest = tree(env, "2", "old");
        let staged = tree(env, ".2.partial-abc", "new");
        switch_current(env, "2").expect("switch");
        let retired = env.join(".2.old-1");
        replace_by_renames(env, &staged, &dest, &retired, "2").expect("replace");
        assert_eq!(marker(&dest), "new");
        assert_eq!(marker(&retired), "old");
        assert_eq!(link(env), "2");
        assert_eq!(
            hidden(env),
            [".2.old-1"],
            "no temp link or staged tree left"
        );
    }

    #[test]
    fn renames_replace_a_version_that_is_not_live_without_touching_current() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = tmp.path();
        tree(env, "1", "one");
        let dest = tree(env, "2", "old");
        let staged = tree(env, ".2.partial-abc", "new");
        switch_current(env, "1").expect("switch");
        let retired = env.join(".2.old-1");
        replace_by_renames(env, &staged, &dest, &retired, "2").expect("replace");
        assert_eq!(marker(&dest), "new");
        assert_eq!(link(env), "1");
    }

    #[test]
    fn a_failed_rename_puts_the_old_tree_and_current_back() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = tmp.path();
        let dest = tree(env, "2", "old");
        switch_current(env, "2").expect("switch");
        // The staged tree vanished: the second rename fails after the old tree was moved away.
        let staged = env.join(".2.partial-gone");
        let retired = env.join(".2.old-1");
        let err = replace_by_renames(env, &staged, &dest, &retired, "2").expect_err("fails");
        assert!(err.to_string().contains("renaming into"), "{err}");
        assert_eq!(marker(&dest), "old");
        assert_eq!(link(env), "2");
        assert!(hidden(env).is_empty(), "{:?}", hidden(env));
    }

    #[test]
    fn kept_file_names_give_their_version() {
        assert_eq!(version_of_record(".1.0.tree.json"), Some("1.0"));
        assert_eq!(version_of_record(".2.manifest.json"), Some("2"));
        assert_eq!(version_of_record(".2.blocks.json"), Some("2"));
        assert_eq!(version_of_record(".2.tree.json.old-77"), None);
        assert_eq!(version_of_record("..2.tree.json.AbC123"), None);
        assert_eq!(version_of_record(".tree.json"), None);
        assert_eq!(version_of_record(".current.tmp-5"), None);
    }

    #[test]
    fn hidden_tree_names_give_their_version() {
        assert_eq!(hidden_tree_version(".1.2.3.partial-Xy9"), Some("1.2.3"));
        assert_eq!(hidden_tree_version(".2.old-123"), Some("2"));
        assert_eq!(hidden_tree_version(".2.old-123-untested"), Some("2"));
        assert_eq!(hidden_tree_version("2"), None);
        assert_eq!(hidden_tree_version(".current.tmp-5"), None);
        assert_eq!(hidden_tree_version("..partial-x"), None);
    }

    #[test]
    fn repair_moves_the_tree_current_names_into_place() {
        // Killed after the old tree was renamed away: `current` names the complete new tree.
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = tmp.path();
        tree(env, ".2.partial-abc", "new");
        tree(env, ".2.old-7", "old");
        point_current(env, ".2.partial-abc").expect("point");
        let mut actions = Vec::new();
        repair_current(env, &mut actions).expect("repair");
        assert_eq!(link(env), "2");
        assert_eq!(marker(&env.join("2")), "new");
        assert_eq!(actions.len(), 1, "{actions:?}");

        // Killed before that: the old tree is still at VERSION; the named tree replaces it.
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = tmp.path();
        tree(env, "2", "old");
        tree(env, ".2.partial-abc", "new");
        point_current(env, ".2.partial-abc").expect("point");
        repair_current(env, &mut Vec::new()).expect("repair");
        assert_eq!(link(env), "2");
        assert_eq!(marker(&env.join("2")), "new");

        // Killed after the new tree was renamed in: `current` dangles until pointed back.
        let tmp = tempfile::tempdir().expect("tempdir");
        let env = tmp.path();
        tree(env, "2", "new");
        point_current(env, ".2.partial-abc").expect("point");
        repair_current(env, &mut Vec::new()).expect("repair");
        assert_eq!(link(env), "2");

        // An ordinary `current` is left alone.
        let mut actions = Vec::new();
        repair_current(env, &mut actions).expect("repair");
        assert!(actions.is_empty());
    }
}
