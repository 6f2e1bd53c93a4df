//! The bash script that runs inside the sandbox: what a user does with an archive
//! (`mkdir -p DEST && tar -xf ARCHIVE -C DEST && . DEST/bin/activate && conda-unpack`), then the
//! test script from the project directory. The same script serves every isolation mode; only the
//! paths differ.

use std::{
    ffi::{OsStr, OsString},
    os::unix::ffi::OsStringExt,
    path::Path,
};

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
    /// pack's self-extracting installer: run with `sh` (it checks its payload, extracts it and
    /// runs conda-unpack).
    Sh,
    /// A squashfs image: extracted with the userland's `unsquashfs` (the sandbox has no
    /// `/dev/fuse` for squashfuse).
    Squashfs,
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
            Ok(ArchiveKind::Sh) => Ok(Self::Sh),
            Ok(ArchiveKind::Squashfs) => Ok(Self::Squashfs),
            Err(e) => Err(SandboxError::UnknownArchiveFormat(Box::new(e))),
        }
    }
}

/// How the environment gets to its prefix before it is activated.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Install<'a> {
    /// Unpack this archive at the prefix, then run its `conda-unpack`, as a user does.
    Unpack {
        archive: &'a Path,
        format: ArchiveFormat,
    },
    /// Already unpacked and relocated there (`deploy --test`): nothing to do but activate.
    Installed,
}

/// Paths as the runner sees them (inside the sandbox).
#[derive(Clone, Debug)]
pub(crate) struct RunnerPaths<'a> {
    pub install: Install<'a>,
    pub dest: &'a Path,
    pub project: &'a Path,
    pub script: &'a Path,
    /// The runner writes the step it is in here (read back to name the failing step).
    pub state_file: Option<&'a Path>,
}

/// Quote for POSIX shells, byte for byte: a path that is not UTF-8 stays the path it was.
pub(crate) fn quote(s: &OsStr) -> Vec<u8> {
    shell_quote::Sh::quote_vec(s)
}

/// Shell variables holding the runner's paths. Every path enters the script once, quoted byte
/// for byte, and is used as `"$VAR"` after that, so messages show the path as it is. The
/// names are prefixed so that an activation script does not clobber them.
const ARCHIVE_VAR: &str = "__envship_archive";
const DEST_VAR: &str = "__envship_dest";
const PROJECT_VAR: &str = "__envship_project";
const SCRIPT_VAR: &str = "__envship_script";
const STATE_VAR: &str = "__envship_state";

/// The command that puts the archive at the prefix (both in the runner's variables).
fn unpack_command(format: ArchiveFormat) -> String {
    let (a, d) = (ARCHIVE_VAR, DEST_VAR);
    match format {
        ArchiveFormat::Tar => format!("tar --no-same-owner -xf \"${a}\" -C \"${d}\""),
        ArchiveFormat::TarZst => format!(
            "if command -v zstd >/dev/null 2>&1; then zstd -dc \"${a}\" | tar --no-same-owner -xf - -C \"${d}\"; \
             else echo 'envship: no zstd in this userland to unpack a .tar.zst (pack as tar.gz for it)' >&2; false; fi"
        ),
        ArchiveFormat::Zip => format!(
            "if command -v unzip >/dev/null 2>&1; then unzip -q \"${a}\" -d \"${d}\"; \
             elif command -v python3 >/dev/null 2>&1; then python3 -c {py} \"${a}\" \"${d}\"; \
             else echo 'envship: neither unzip nor python3 in this userland to unpack a .zip' >&2; false; fi",
            py = String::from_utf8_lossy(&quote(OsStr::new(ZIP_PY)))
        ),
        ArchiveFormat::Dir => format!("cp -a \"${a}\"/. \"${d}\"/"),
        ArchiveFormat::Sh => format!("sh \"${a}\" -b -p \"${d}\""),
        ArchiveFormat::Squashfs => format!(
            "if command -v unsquashfs >/dev/null 2>&1; then unsquashfs -q -n -f -d \"${d}\" \"${a}\" >/dev/null && \
             echo \"envship: extracted the squashfs image with unsquashfs (not mounted: no /dev/fuse in the sandbox)\"; \
             else echo 'envship: no unsquashfs in this userland to extract a squashfs image (install squashfs-tools)' >&2; false; fi"
        ),
    }
}

/// The runner script for `bash -c`.
pub(crate) fn runner_script(p: &RunnerPaths<'_>) -> OsString {
    let mut script: Vec<u8> = b"set -o pipefail\n".to_vec();
    let mut set = |name: &str, path: &Path| {
        script.extend_from_slice(name.as_bytes());
        script.push(b'=');
        script.extend(quote(path.as_os_str()));
        script.push(b'\n');
    };
    if let Install::Unpack { archive, .. } = p.install {
        set(ARCHIVE_VAR, archive);
    }
    set(DEST_VAR, p.dest);
    set(PROJECT_VAR, p.project);
    set(SCRIPT_VAR, p.script);
    if let Some(f) = p.state_file {
        set(STATE_VAR, f);
    }
    let (a, d) = (ARCHIVE_VAR, DEST_VAR);
    let mut s = String::new();
    match p.state_file {
        Some(_) => s.push_str(&format!(
            "step() {{ printf '%s\\n' \"$1\" > \"${STATE_VAR}\"; }}\n"
        )),
        None => s.push_str("step() { :; }\n"),
    }
    s.push_str("fail() { rc=$1; shift; echo \"envship: $* (exit $rc)\" >&2; exit \"$rc\"; }\n");
    if let Install::Unpack { format, .. } = p.install {
        s.push_str("step unpack\n");
        s.push_str(&format!("echo \"envship: unpacking ${a} at ${d}\"\n"));
        s.push_str(&format!(
            "mkdir -p \"${d}\" || fail $? \"cannot create ${d}\"\n"
        ));
        s.push_str(&format!(
            "{} || fail $? \"unpacking ${a} failed\"\n",
            unpack_command(format)
        ));
    }
    s.push_str("step activate\n");
    s.push_str(&format!(
        "[ -f \"${d}/bin/activate\" ] || fail 1 \"${d}/bin/activate not found: not a conda-pack compatible archive\"\n"
    ));
    s.push_str(&format!(
        ". \"${d}/bin/activate\" || fail $? \"sourcing ${d}/bin/activate failed\"\n"
    ));
    if let Install::Unpack { .. } = p.install {
        s.push_str("step conda-unpack\n");
        s.push_str(&format!(
            "if [ -e \"${d}/bin/conda-unpack\" ]; then \"${d}/bin/conda-unpack\" || fail $? \"conda-unpack failed\"; \
             else echo \"envship: no bin/conda-unpack in the archive (prefix baked in at pack time)\"; fi\n"
        ));
    }
    s.push_str("step script\n");
    s.push_str(&format!(
        "cd \"${PROJECT_VAR}\" || fail $? \"cannot enter the project directory\"\n"
    ));
    s.push_str(&format!("echo \"envship: running bash ${SCRIPT_VAR}\"\n"));
    s.push_str(&format!("bash \"${SCRIPT_VAR}\"\n"));
    script.extend_from_slice(s.as_bytes());
    OsString::from_vec(script)
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
    use std::os::unix::ffi::OsStrExt;

    use super::*;

    #[test]
    fn quoting() {
        let q = |s: &str| String::from_utf8(quote(OsStr::new(s))).expect("utf-8");
        assert_eq!(q("/opt/envship/x"), "/opt/envship/x");
        assert_eq!(q("a b"), "a' b'");
        assert_eq!(q(""), "''");
    }

    /// What bash makes of a quoted word is the original bytes, UTF-8 or not.
    #[test]
    fn quoted_bytes_survive_bash() {
        for raw in [
            &b"/opt/it's a \"path\" $HOME `x`"[..],
            b"/opt/latin1-\xe9t\xe9/env",
            b"/opt/tab\tand\nnewline",
        ] {
            let mut script = b"printf %s ".to_vec();
            script.extend(quote(OsStr::from_bytes(raw)));
            let out = std::process::Command::new("bash")
                .arg("-c")
                .arg(OsString::from_vec(script))
                .output()
                .expect("bash");
            assert!(out.status.success());
            assert_eq!(out.stdout, raw);
        }
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
                .contains("not a tar.gz, tar.zst, tar, zip, envship installer or squashfs file"),
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
            install: Install::Unpack {
                archive: Path::new("/tmp/.envship/env.tar.gz"),
                format: ArchiveFormat::Tar,
            },
            dest: Path::new("/opt/envship/my env"),
            project: Path::new("/tmp/project"),
            script: Path::new("/tmp/run-test.sh"),
            state_file: Some(Path::new("/tmp/.envship/state/step")),
        });
        insta::assert_snapshot!(s.to_string_lossy());
    }

    #[test]
    fn installed_script_snapshot() {
        let s = runner_script(&RunnerPaths {
            install: Install::Installed,
            dest: Path::new("/sdf/envs/demo/1.0"),
            project: Path::new("/tmp/envship-test-x/project"),
            script: Path::new("/sdf/envs/demo/1.0/share/envship/run-test.sh"),
            state_file: Some(Path::new("/tmp/envship-test-x/state/step")),
        });
        insta::assert_snapshot!(s.to_string_lossy());
    }
}
