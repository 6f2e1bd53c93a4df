//! `.pyc` files that hold the build prefix (Python writes `co_filename`, and constants from the
//! source, into them when it compiles inside the build prefix, e.g. pip installs). Byte
//! replacement would break them: marshal data stores string lengths. So, at pack time, the
//! prefix's own python rewrites them into a temp dir (never into the prefix) and the archive
//! stores those copies; where no python runs, they are left out of the archive and Python
//! recompiles them from source on import. importlib's `_fix_co_filename` sets the real path on
//! import, so the stored `co_filename` is only cosmetic either way.

use std::{
    collections::BTreeMap,
    io::Write,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use crate::error::{PackError, Result};

const SCRIPT: &str = include_str!("pyc_rewrite.py");

/// What became of the `.pyc` files handed to [`rewrite`].
pub(crate) struct Rewritten {
    /// Holds the rewritten copies until the archive is written.
    pub _dir: Option<tempfile::TempDir>,
    /// Relative path → its rewritten copy.
    pub files: BTreeMap<Vec<u8>, PathBuf>,
    /// Relative path → why it is left out of the archive.
    pub dropped: BTreeMap<Vec<u8>, String>,
}

/// The prefix's interpreter, if it has one.
fn python_of(root: &Path) -> Option<PathBuf> {
    ["bin/python3", "bin/python"]
        .iter()
        .map(|p| root.join(p))
        .find(|p| p.is_file())
}

/// Rewrite the `.pyc` files `rels` (relative to `root`): `old` (the build prefix) becomes
/// `new` (the destination prefix) when given, else is stripped from `co_filename`.
pub(crate) fn rewrite(
    root: &Path,
    rels: &[Vec<u8>],
    old: &str,
    new: Option<&str>,
) -> Result<Rewritten> {
    let mut out = Rewritten {
        _dir: None,
        files: BTreeMap::new(),
        dropped: BTreeMap::new(),
    };
    if rels.is_empty() {
        return Ok(out);
    }
    let drop_all = |out: &mut Rewritten, why: &str| {
        for r in rels {
            out.dropped.insert(r.clone(), why.to_string());
        }
    };
    let Some(python) = python_of(root) else {
        drop_all(&mut out, "the prefix has no bin/python to rewrite it with");
        return Ok(out);
    };
    let dir = tempfile::Builder::new()
        .prefix(".envship-pyc-")
        .tempdir()
        .map_err(PackError::io("creating a temp dir for", &python))?;
    let mut input = Vec::new();
    for r in rels {
        input.extend_from_slice(
            root.join(std::ffi::OsStr::from_bytes(r))
                .as_os_str()
                .as_bytes(),
        );
        input.push(0);
    }
    // Not -I/-E: they would ignore PYTHONHASHSEED, and frozenset constants are marshalled in
    // hash order, so a random seed would make the archive differ from run to run. The
    // environment is cleared instead, so the user's PYTHONPATH etc. cannot interfere.
    let child = Command::new(&python)
        .args(["-s", "-S", "-B", "-c", SCRIPT, old, new.unwrap_or("")])
        .env_clear()
        .env("PYTHONHASHSEED", "0")
        .env("PYTHONUTF8", "1")
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let output = child.and_then(|mut c| {
        // The script reads all of stdin before it writes anything, so this cannot deadlock.
        if let Some(mut stdin) = c.stdin.take() {
            stdin.write_all(&input)?;
        }
        c.wait_with_output()
    });
    let output = match output {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            let err = String::from_utf8_lossy(&o.stderr);
            let last = err.lines().last().unwrap_or("no message");
            drop_all(
                &mut out,
                &format!("{} failed ({}): {last}", python.display(), o.status),
            );
            return Ok(out);
        }
        Err(e) => {
            drop_all(
                &mut out,
                &format!("{} could not run: {e}", python.display()),
            );
            return Ok(out);
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut answered = vec![false; rels.len()];
    for line in stdout.lines() {
        let mut parts = line.splitn(3, ' ');
        let (Some(i), Some(status)) = (
            parts.next().and_then(|i| i.parse::<usize>().ok()),
            parts.next(),
        ) else {
            continue;
        };
        let Some(rel) = rels.get(i) else { continue };
        answered[i] = true;
        if status == "ok" {
            out.files
                .insert(rel.clone(), dir.path().join(format!("{i}.pyc")));
        } else {
            let why = parts.next().unwrap_or("unknown reason").to_string();
            out.dropped.insert(rel.clone(), why);
        }
    }
    for (i, rel) in rels.iter().enumerate() {
        if !answered[i] {
            out.dropped
                .insert(rel.clone(), "the rewrite script gave no answer".into());
        }
    }
    out._dir = Some(dir);
    Ok(out)
}
