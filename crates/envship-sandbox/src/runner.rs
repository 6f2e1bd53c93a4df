//! The bash script that runs inside the sandbox: what a user does with an archive
//! (`mkdir -p DEST && tar -xf ARCHIVE -C DEST && . DEST/bin/activate && conda-unpack`), then the
//! test script from the project directory. The same script serves every isolation mode; only the
//! paths differ.

use std::path::Path;

use crate::SandboxError;

/// How an archive is unpacked, from its file name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveFormat {
    /// A plain or gzip-compressed tar (`tar -xf` reads both by itself).
    Tar,
    /// `.tar.zst`: needs `zstd` (or a tar that knows `--zstd`) inside the sandbox.
    TarZst,
    /// `.zip`: `unzip`, else the userland's `python3`.
    Zip,
    /// An unpacked directory: copied.
    Dir,
}

impl ArchiveFormat {
    /// The format of `path`: a directory, or what its first bytes say, as `envship unpack`
    /// decides ([`envship_pack::ArchiveKind`]), so the sandbox takes exactly the archives
    /// unpack takes.
    pub fn detect(path: &Path) -> Result<Self, SandboxError> {
        use envship_pack::ArchiveKind;
        match ArchiveKind::detect(path) {
            Ok(ArchiveKind::Dir) => Ok(Self::Dir),
            Ok(ArchiveKind::TarGz | ArchiveKind::Tar) => Ok(Self::Tar),
            Ok(ArchiveKind::TarZst) => Ok(Self::TarZst),
            Ok(ArchiveKind::Zip) => Ok(Self::Zip),
            Err(e) => Err(SandboxError::UnknownArchiveFormat(Box::new(e))),
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

    /// Detection by content, agreeing with `envship unpack`: real archives, names that lie, and
    /// a real bzip2 tar (which `tar -xf` could read but unpack refuses) refused with unpack's
    /// message.
    #[test]
    fn formats() {
        use std::io::Write;
        let d = tempfile::tempdir().expect("tempdir");
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_cksum();
        b.append_data(&mut h, "a", &b"abc"[..]).expect("tar entry");
        let tar = b.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let zst = zstd::encode_all(&tar[..], 3).expect("zstd");
        // The end record of an empty zip: a complete, valid zip file.
        let mut zip = b"PK\x05\x06".to_vec();
        zip.resize(22, 0);
        let f = |name: &str, data: &[u8]| {
            let p = d.path().join(name);
            std::fs::write(&p, data).expect("write");
            ArchiveFormat::detect(&p)
        };
        assert_eq!(
            f("a-1.0-linux-64.tar.gz", &gz).ok(),
            Some(ArchiveFormat::Tar)
        );
        assert_eq!(f("a.tar", &tar).ok(), Some(ArchiveFormat::Tar));
        assert_eq!(f("a.tar.gz", &zst).ok(), Some(ArchiveFormat::TarZst));
        assert_eq!(f("a.zip", &zip).ok(), Some(ArchiveFormat::Zip));
        assert_eq!(
            ArchiveFormat::detect(d.path()).ok(),
            Some(ArchiveFormat::Dir)
        );
        let e = f("a.rar", b"Rar!\x1a\x07\x00").expect_err("refused");
        assert!(
            e.to_string()
                .contains("not a tar.gz, tar.zst, tar or zip file"),
            "{e}"
        );

        let plain = d.path().join("b.tar");
        std::fs::write(&plain, &tar).expect("write");
        match std::process::Command::new("bzip2").arg(&plain).status() {
            Ok(s) if s.success() => {
                let e = ArchiveFormat::detect(&d.path().join("b.tar.bz2")).expect_err("bzip2");
                assert!(
                    matches!(e, SandboxError::UnknownArchiveFormat(_))
                        && e.to_string().contains("bzip2-compressed"),
                    "{e}"
                );
            }
            _ => envship_test_support::skip("formats", "no bzip2 to make a .tar.bz2"),
        }
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
