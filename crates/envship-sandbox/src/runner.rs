//! The bash script that runs inside the sandbox: what a user does with an archive
//! (`mkdir -p DEST && tar -xf ARCHIVE -C DEST && . DEST/bin/activate && conda-unpack`), then the
//! test script from the project directory. The same script serves every isolation mode; only the
//! paths differ.

use std::path::Path;

use crate::SandboxError;

/// How an archive is unpacked, from its file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// Any tar that `tar -xf` reads by itself (plain, gzip, bzip2, xz).
    Tar,
    /// `.tar.zst`: needs `zstd` (or a tar that knows `--zstd`) inside the sandbox.
    TarZst,
    /// `.zip`: `unzip`, else the userland's `python3`.
    Zip,
    /// An unpacked directory: copied.
    Dir,
}

impl ArchiveFormat {
    /// The format of `path` (a directory, or by file extension).
    pub fn detect(path: &Path) -> Result<Self, SandboxError> {
        if path.is_dir() {
            return Ok(Self::Dir);
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let tar_suffixes = [
            ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar",
        ];
        if tar_suffixes.iter().any(|s| name.ends_with(s)) {
            Ok(Self::Tar)
        } else if name.ends_with(".tar.zst") || name.ends_with(".tzst") {
            Ok(Self::TarZst)
        } else if name.ends_with(".zip") {
            Ok(Self::Zip)
        } else {
            Err(SandboxError::UnknownArchiveFormat {
                path: path.to_path_buf(),
            })
        }
    }
}

/// Paths as the runner sees them (inside the sandbox).
#[derive(Clone, Debug)]
pub(crate) struct RunnerPaths<'a> {
    pub archive: &'a Path,
    pub format: ArchiveFormat,
    pub dest: &'a Path,
    pub project: &'a Path,
    pub script: &'a Path,
    /// The runner writes the step it is in here (read back to name the failing step).
    pub state_file: Option<&'a Path>,
}

/// Single-quote for POSIX shells.
pub(crate) fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn q(p: &Path) -> String {
    quote(&p.to_string_lossy())
}

/// The runner script for `bash -c`.
pub(crate) fn runner_script(p: &RunnerPaths<'_>) -> String {
    let archive = q(p.archive);
    let dest = q(p.dest);
    let activate = q(&p.dest.join("bin/activate"));
    let conda_unpack = q(&p.dest.join("bin/conda-unpack"));
    let mut s = String::new();
    s.push_str("set -o pipefail\n");
    match p.state_file {
        Some(f) => s.push_str(&format!("step() {{ printf '%s\\n' \"$1\" > {}; }}\n", q(f))),
        None => s.push_str("step() { :; }\n"),
    }
    s.push_str("fail() { rc=$1; shift; echo \"envship: $* (exit $rc)\" >&2; exit \"$rc\"; }\n");
    s.push_str("step unpack\n");
    s.push_str(&format!(
        "echo \"envship: unpacking {archive} at {dest}\"\n"
    ));
    s.push_str(&format!(
        "mkdir -p {dest} || fail $? \"cannot create {dest}\"\n"
    ));
    let unpack = match p.format {
        ArchiveFormat::Tar => format!("tar --no-same-owner -xf {archive} -C {dest}"),
        ArchiveFormat::TarZst => format!(
            "if command -v zstd >/dev/null 2>&1; then zstd -dc {archive} | tar --no-same-owner -xf - -C {dest}; \
             else echo 'envship: no zstd in this userland to unpack a .tar.zst (pack as tar.gz for it)' >&2; false; fi"
        ),
        ArchiveFormat::Zip => format!(
            "if command -v unzip >/dev/null 2>&1; then unzip -q {archive} -d {dest}; \
             elif command -v python3 >/dev/null 2>&1; then python3 -c {py} {archive} {dest}; \
             else echo 'envship: neither unzip nor python3 in this userland to unpack a .zip' >&2; false; fi",
            py = quote(ZIP_PY)
        ),
        ArchiveFormat::Dir => format!("cp -a {archive}/. {dest}/"),
    };
    s.push_str(&format!(
        "{unpack} || fail $? \"unpacking {archive} failed\"\n"
    ));
    s.push_str("step activate\n");
    s.push_str(&format!(
        "[ -f {activate} ] || fail 1 \"{activate} not found: not a conda-pack compatible archive\"\n"
    ));
    s.push_str(&format!(
        ". {activate} || fail $? \"sourcing {activate} failed\"\n"
    ));
    s.push_str("step conda-unpack\n");
    s.push_str(&format!(
        "if [ -e {conda_unpack} ]; then {conda_unpack} || fail $? \"conda-unpack failed\"; \
         else echo \"envship: no bin/conda-unpack in the archive (prefix baked in at pack time)\"; fi\n"
    ));
    s.push_str("step script\n");
    s.push_str(&format!(
        "cd {} || fail $? \"cannot enter the project directory\"\n",
        q(p.project)
    ));
    s.push_str(&format!("echo \"envship: running bash {}\"\n", q(p.script)));
    s.push_str(&format!("bash {}\n", q(p.script)));
    s
}

/// Unzip keeping the Unix permission bits (python's `zipfile -e` drops them).
const ZIP_PY: &str = "import os, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for i in z.infolist():
    out = z.extract(i, sys.argv[2])
    mode = i.external_attr >> 16
    if mode & 0o777:
        os.chmod(out, mode & 0o7777)
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote("/opt/envship/x"), "/opt/envship/x");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    #[test]
    fn formats() {
        let f = |n: &str| ArchiveFormat::detect(Path::new(n)).ok();
        assert_eq!(f("/x/a-1.0-linux-64.tar.gz"), Some(ArchiveFormat::Tar));
        assert_eq!(f("a.TAR.BZ2"), Some(ArchiveFormat::Tar));
        assert_eq!(f("a.tar.zst"), Some(ArchiveFormat::TarZst));
        assert_eq!(f("a.zip"), Some(ArchiveFormat::Zip));
        assert_eq!(f("a.rar"), None);
    }

    #[test]
    fn script_snapshot() {
        let s = runner_script(&RunnerPaths {
            archive: Path::new("/tmp/.envship/env.tar.gz"),
            format: ArchiveFormat::Tar,
            dest: Path::new("/opt/envship/my env"),
            project: Path::new("/tmp/project"),
            script: Path::new("/tmp/run-test.sh"),
            state_file: Some(Path::new("/tmp/.envship/state/step")),
        });
        insta::assert_snapshot!(s);
    }
}
