//! Directory drop: publish files into a shared-filesystem staging area.
//!
//! Each file is copied to a hidden temp name in the destination directory, flushed, read back
//! and hashed, and only then linked to its final name with a no-clobber rename. Readers of the
//! drop therefore see either nothing or a complete, verified file; a different file that already
//! has the name is never replaced, and an identical one makes the publish a no-op.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use envship_spec::{Progress, ProgressUnit};

use crate::{artifacts, error::PublishError, hash};

/// What happened to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropAction {
    /// Copied and verified.
    Copied,
    /// An identical file was already there.
    AlreadyPresent,
}

/// One published file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct DropOutcome {
    /// The file's final path in the drop directory.
    pub path: PathBuf,
    /// Its sha256.
    pub sha256: String,
    /// Its size.
    pub bytes: u64,
    /// Copied or already there.
    pub action: DropAction,
}

/// Check every archive among `files` against its `.sha256` sidecar (when one exists), and that
/// no two files share a name. Done before anything is published, so a corrupted archive is
/// never half-published.
pub fn preflight(files: &[PathBuf]) -> Result<(), PublishError> {
    let mut names = std::collections::BTreeSet::new();
    for f in files {
        let name = file_name(f)?;
        if !names.insert(name.clone()) {
            return Err(PublishError::DuplicateName { name });
        }
        let meta = fs_err::metadata(f).map_err(PublishError::io("reading", f))?;
        if !meta.is_file() {
            return Err(PublishError::Io {
                action: "publishing",
                path: f.clone(),
                source: std::io::Error::other("not a regular file"),
            });
        }
        if let Some(expected) = sidecar_sha256(f)? {
            let actual = hash::sha256_file(f).map_err(PublishError::io("reading", f))?;
            if actual != expected {
                return Err(PublishError::Checksum {
                    path: f.clone(),
                    expected,
                    actual,
                });
            }
        }
    }
    Ok(())
}

/// The sha256 recorded for `archive` in its `.sha256` sidecar, if it is an archive and has one.
pub fn sidecar_sha256(archive: &Path) -> Result<Option<String>, PublishError> {
    let Some(name) = archive.file_name().and_then(|n| n.to_str()) else {
        return Ok(None);
    };
    if artifacts::archive_stem(name) == name {
        return Ok(None);
    }
    let Some(sidecar) = artifacts::find_sidecar(archive, ".sha256") else {
        return Ok(None);
    };
    let text = fs_err::read_to_string(&sidecar).map_err(PublishError::io("reading", &sidecar))?;
    match hash::parse_sha256sum(&text, name) {
        Some(h) => Ok(Some(h)),
        None => Err(PublishError::BadResponse {
            url: sidecar.display().to_string(),
            message: format!("no sha256 for `{name}` in sha256sum format"),
        }),
    }
}

pub(crate) fn file_name(p: &Path) -> Result<String, PublishError> {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| PublishError::Io {
            action: "publishing",
            path: p.to_path_buf(),
            source: std::io::Error::other("file name is not UTF-8"),
        })
}

/// Publish `files` into `dir`. Nothing is copied when a preflight check fails, and nothing is
/// published when a copy fails; a conflict found at the renames (someone else published
/// meanwhile) stops with the files already published left in place — each of them is complete
/// and verified.
pub fn publish_to_dir(
    files: &[PathBuf],
    dir: &Path,
    progress: &dyn Progress,
) -> Result<Vec<DropOutcome>, PublishError> {
    if !dir.is_dir() {
        return Err(PublishError::NotADirectory {
            path: dir.to_path_buf(),
        });
    }
    remove_stale_partials(dir);
    preflight(files)?;
    // Refuse conflicts up front too, so the common case of a re-run with changed content fails
    // before anything moves.
    let mut present = std::collections::BTreeMap::new();
    for f in files {
        let dest = dir.join(file_name(f)?);
        if dest.exists() {
            let existing = hash::sha256_file(&dest).map_err(PublishError::io("reading", &dest))?;
            let new = hash::sha256_file(f).map_err(PublishError::io("reading", f))?;
            if existing != new {
                return Err(PublishError::Conflict {
                    path: dest,
                    existing,
                    new,
                });
            }
            present.insert(f.clone(), (dest, new));
        }
    }
    let total: u64 = files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    progress.start("publish", Some(total), ProgressUnit::Bytes);
    // Every file is copied and verified under its temp name first, and only then are they
    // renamed: a copy that fails (a full disk) leaves none of them published, so an archive is
    // never there without its sidecars, nor a sidecar without its archive.
    let mut staged = Vec::new();
    for f in files {
        if let Some((dest, sha256)) = present.remove(f) {
            let bytes = fs_err::metadata(f)
                .map_err(PublishError::io("reading", f))?
                .len();
            progress.advance("publish", bytes);
            staged.push(Err(DropOutcome {
                path: dest,
                sha256,
                bytes,
                action: DropAction::AlreadyPresent,
            }));
        } else {
            staged.push(Ok(copy_one(f, dir, progress)?));
        }
    }
    let mut out = Vec::new();
    for s in staged {
        out.push(match s {
            Ok(copy) => copy.commit()?,
            Err(present) => present,
        });
    }
    progress.finish("publish");
    sync_dir(dir);
    Ok(out)
}

/// The suffix of a copy in progress: `.NAME.HOST-PID-RANDOM.partial`.
const PARTIAL: &str = ".partial";

/// Remove the copies in progress that killed publishes of this host left in the drop.
fn remove_stale_partials(dir: &Path) {
    envship_spec::stale_temp::remove_left_by_dead(
        dir,
        |n| envship_spec::stale_temp::tag_after_name(n, PARTIAL),
        "publish",
    );
}

fn copy_one(src: &Path, dir: &Path, progress: &dyn Progress) -> Result<Copied, PublishError> {
    let name = file_name(src)?;
    let dest = dir.join(&name);
    progress.message("publish", &name);
    let mut input = fs_err::File::open(src).map_err(PublishError::io("reading", src))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(
            ".{name}.{}",
            envship_spec::stale_temp::owner_tag()
        ))
        .suffix(PARTIAL)
        .tempfile_in(dir)
        .map_err(PublishError::io("creating a temp file in", dir))?;
    let mut bytes = 0u64;
    // Hash while copying; a failed write is told apart from a failed read by the flag.
    let mut write_failed = false;
    let copied = envship_spec::digest::sha256_reader_with(&mut input, |chunk| {
        tmp.write_all(chunk).inspect_err(|_| write_failed = true)?;
        bytes += chunk.len() as u64;
        progress.advance("publish", chunk.len() as u64);
        Ok(())
    });
    let sha256 = match copied {
        Ok(sum) => sum,
        Err(e) if write_failed => return Err(PublishError::io("writing", tmp.path())(e)),
        Err(e) => return Err(PublishError::io("reading", src)(e)),
    };
    tmp.as_file()
        .sync_all()
        .map_err(PublishError::io("writing", tmp.path()))?;
    // Read back what landed on the (possibly network) filesystem, not what we meant to write.
    let written = hash::sha256_file(tmp.path()).map_err(PublishError::io("reading", tmp.path()))?;
    if written != sha256 {
        return Err(PublishError::Checksum {
            path: tmp.path().to_path_buf(),
            expected: sha256,
            actual: written,
        });
    }
    // Temp files are 0600; a published archive is for everyone who deploys from this directory.
    envship_spec::output::set_output_mode(tmp.as_file())
        .map_err(PublishError::io("setting mode of", tmp.path()))?;
    Ok(Copied {
        tmp,
        dest,
        sha256,
        bytes,
    })
}

/// A file copied and verified under a temp name in the drop directory (removed if dropped).
struct Copied {
    tmp: tempfile::NamedTempFile,
    dest: PathBuf,
    sha256: String,
    bytes: u64,
}

impl Copied {
    /// Link it to its final name, unless someone else published there meanwhile.
    fn commit(self) -> Result<DropOutcome, PublishError> {
        let Copied {
            tmp,
            dest,
            sha256,
            bytes,
        } = self;
        match tmp.persist_noclobber(&dest) {
            Ok(_) => Ok(DropOutcome {
                path: dest,
                sha256,
                bytes,
                action: DropAction::Copied,
            }),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => {
                // The temp file is removed when `e.file` drops.
                let existing =
                    hash::sha256_file(&dest).map_err(PublishError::io("reading", &dest))?;
                if existing == sha256 {
                    Ok(DropOutcome {
                        path: dest,
                        sha256,
                        bytes,
                        action: DropAction::AlreadyPresent,
                    })
                } else {
                    Err(PublishError::Conflict {
                        path: dest,
                        existing,
                        new: sha256,
                    })
                }
            }
            Err(e) => Err(PublishError::io("renaming into", dest)(e.error)),
        }
    }
}

/// Make the renames durable; failure only costs durability, not correctness.
fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
