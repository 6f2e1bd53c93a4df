//! Archive formats, the one place that knows them: the [`Format`] pack writes, what an existing
//! archive is ([`ArchiveKind`], by its magic bytes or its file name), the raw compression of a
//! stream ([`Magic`], e.g. a docker image layer), the archive stem (`NAME-VERSION-TARGET-SUBDIR`) and the
//! sidecar files written beside an archive ([`Sidecar`]).
//!
//! Unpack, the sandbox's runner, the sandbox's rootfs import and publish all ask this module, so
//! an archive one stage accepts is one every stage accepts. This module only names and detects:
//! decoding stays with whoever reads the stream.

use std::{
    ffi::OsString,
    fs,
    io::{self, Read},
    path::{Path, PathBuf},
};

use crate::error::{PackError, Result};

/// Output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Format {
    /// gzip-compressed tar (readable by RHEL6's tar); the default.
    #[default]
    #[serde(rename = "tar.gz")]
    TarGz,
    /// zstd-compressed tar.
    #[serde(rename = "tar.zst")]
    TarZst,
    /// zip (no hardlinks: linked files are stored twice; names must be UTF-8).
    #[serde(rename = "zip")]
    Zip,
    /// A plain directory.
    #[serde(rename = "dir")]
    Dir,
    /// A self-extracting installer: a POSIX sh header followed by the tar.gz payload
    /// (`sh NAME.sh -p DEST`; see `pack/installer.rs`).
    #[serde(rename = "sh")]
    Sh,
    /// A squashfs image, baked for its mount point (`--dest-prefix`), compressed per
    /// [`SquashfsCompression`].
    #[serde(rename = "squashfs")]
    Squashfs,
}

impl Format {
    /// The file name extension (`tar.gz`, …; empty for `dir`).
    pub fn extension(self) -> &'static str {
        match self {
            Format::TarGz => "tar.gz",
            Format::TarZst => "tar.zst",
            Format::Zip => "zip",
            Format::Dir => "",
            Format::Sh => "sh",
            Format::Squashfs => "squashfs",
        }
    }

    /// The name used in manifests and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Dir => "dir",
            f => f.extension(),
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tar.gz" | "tgz" => Ok(Format::TarGz),
            "tar.zst" | "tzst" => Ok(Format::TarZst),
            "zip" => Ok(Format::Zip),
            "dir" => Ok(Format::Dir),
            "sh" => Ok(Format::Sh),
            "squashfs" | "sqfs" => Ok(Format::Squashfs),
            _ => Err(format!(
                "unknown format {s:?}: expected tar.gz, tar.zst, zip, dir, sh or squashfs"
            )),
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The compression of a squashfs image's blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SquashfsCompression {
    /// gzip: the only one RHEL 6's kernel squashfs reads (`mount -t squashfs`); the default.
    #[default]
    Gzip,
    /// zstd: smaller and faster to read, for squashfuse or kernels 4.14 and later.
    Zstd,
}

impl SquashfsCompression {
    /// The name on the command line and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            SquashfsCompression::Gzip => "gzip",
            SquashfsCompression::Zstd => "zstd",
        }
    }
}

impl std::str::FromStr for SquashfsCompression {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "gzip" | "gz" => Ok(SquashfsCompression::Gzip),
            "zstd" | "zst" => Ok(SquashfsCompression::Zstd),
            _ => Err(format!(
                "unknown squashfs compression {s:?}: expected gzip or zstd"
            )),
        }
    }
}

/// What an existing archive is: the formats `envship unpack` and the sandbox read (pack's
/// formats, plus a plain tar).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArchiveKind {
    /// gzip-compressed tar.
    TarGz,
    /// zstd-compressed tar.
    TarZst,
    /// An uncompressed (ustar or GNU) tar.
    Tar,
    /// zip.
    Zip,
    /// An unpacked directory (pack's `dir` format).
    Dir,
    /// pack's self-extracting installer: a sh header, then a tar.gz payload.
    Sh,
    /// A squashfs image.
    Squashfs,
}

/// File name extensions of the archives [`ArchiveKind`] covers, longest first where one ends
/// another (`.tar.gz` before `.tar`).
pub const ARCHIVE_EXTENSIONS: &[&str] = &[
    ".tar.gz",
    ".tgz",
    ".tar.zst",
    ".tzst",
    ".tar",
    ".zip",
    ".sh",
    ".squashfs",
    ".sqfs",
];

impl ArchiveKind {
    /// The kind a file name's extension says (ASCII case ignored); `None` for other names,
    /// e.g. `.tar.bz2`, which unpack does not read.
    pub fn from_file_name(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let ext = ARCHIVE_EXTENSIONS.iter().find(|e| lower.ends_with(*e))?;
        Some(match *ext {
            ".tar.gz" | ".tgz" => ArchiveKind::TarGz,
            ".tar.zst" | ".tzst" => ArchiveKind::TarZst,
            ".zip" => ArchiveKind::Zip,
            ".sh" => ArchiveKind::Sh,
            ".squashfs" | ".sqfs" => ArchiveKind::Squashfs,
            _ => ArchiveKind::Tar,
        })
    }

    /// The kind of the file at `path`, from its first bytes, or [`PackError::BadArchive`] for
    /// anything else (bzip2 and xz tars included: unpack does not read them). The name does not
    /// matter: a `.tar.gz` that holds zstd is read as zstd.
    pub fn sniff_file(path: &Path) -> Result<Self> {
        let mut head = [0u8; Magic::HEAD_LEN];
        let mut f = fs::File::open(path).map_err(PackError::io("opening", path))?;
        let n = read_head(&mut f, &mut head).map_err(PackError::io("reading", path))?;
        let not_an_archive = |what: &str| PackError::BadArchive {
            path: path.to_path_buf(),
            reason: format!(
                "{what}not a tar.gz, tar.zst, tar, zip, envship installer or squashfs file"
            ),
        };
        match Magic::of(&head[..n]) {
            Some(Magic::Gzip) => Ok(ArchiveKind::TarGz),
            Some(Magic::Zstd) => Ok(ArchiveKind::TarZst),
            Some(Magic::Zip) => Ok(ArchiveKind::Zip),
            Some(Magic::Tar) => Ok(ArchiveKind::Tar),
            Some(Magic::EnvshipInstaller) => Ok(ArchiveKind::Sh),
            Some(Magic::Squashfs) => Ok(ArchiveKind::Squashfs),
            Some(m @ (Magic::Bzip2 | Magic::Xz)) => {
                Err(not_an_archive(&format!("{}-compressed, ", m.name())))
            }
            None => Err(not_an_archive("")),
        }
    }

    /// [`ArchiveKind::Dir`] for a directory, else [`ArchiveKind::sniff_file`].
    pub fn detect(path: &Path) -> Result<Self> {
        if path.is_dir() {
            Ok(ArchiveKind::Dir)
        } else {
            Self::sniff_file(path)
        }
    }
}

/// Reads until `buf` is full or the stream ends; the number of bytes read.
fn read_head(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// What a stream's first bytes say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd frame (`28 b5 2f fd`).
    Zstd,
    /// bzip2 (`BZh` and a block size digit).
    Bzip2,
    /// xz (`fd 37 7a 58 5a 00`).
    Xz,
    /// zip (a local file header, or the end record of an empty zip).
    Zip,
    /// tar (`ustar` at offset 257: POSIX ustar and GNU tar).
    Tar,
    /// pack's self-extracting installer (its first two lines).
    EnvshipInstaller,
    /// squashfs 4.0, little-endian (`hsqs`).
    Squashfs,
}

impl Magic {
    /// Bytes needed to tell every kind apart (a tar's magic ends at 262).
    pub const HEAD_LEN: usize = 262;

    /// The kind `head` (a stream's first bytes, up to [`Magic::HEAD_LEN`]) starts with.
    pub fn of(head: &[u8]) -> Option<Self> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Magic::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Magic::Zstd)
        } else if head.starts_with(b"BZh") && head.get(3).is_some_and(|b| (b'1'..=b'9').contains(b))
        {
            Some(Magic::Bzip2)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Some(Magic::Xz)
        } else if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
            Some(Magic::Zip)
        } else if head.starts_with(crate::pack::INSTALLER_MAGIC.as_bytes()) {
            Some(Magic::EnvshipInstaller)
        } else if head.starts_with(b"hsqs") {
            Some(Magic::Squashfs)
        } else if head.get(257..262) == Some(b"ustar") {
            Some(Magic::Tar)
        } else {
            None
        }
    }

    /// A short name for messages (`gzip`, `xz`, …).
    pub fn name(self) -> &'static str {
        match self {
            Magic::Gzip => "gzip",
            Magic::Zstd => "zstd",
            Magic::Bzip2 => "bzip2",
            Magic::Xz => "xz",
            Magic::Zip => "zip",
            Magic::Tar => "tar",
            Magic::EnvshipInstaller => "envship installer",
            Magic::Squashfs => "squashfs",
        }
    }
}

/// `NAME-VERSION-TARGET-SUBDIR`: what every file of one release for one target is named
/// after. The target is in the name because two targets of one platform (lcls-rhel6 and rhel8
/// are both linux-64) ship different archives of the same environment, which must not
/// overwrite each other in `dist/`, a release or a drop.
pub fn stem(name: &str, version: &str, target: &str, subdir: &str) -> String {
    format!("{name}-{version}-{target}-{subdir}")
}

/// The byte offset (0-based) of the tar.gz payload in pack's installer at `path`, from the
/// header's `payload_offset=` line.
pub fn installer_payload_offset(path: &Path) -> Result<u64> {
    let bad = |reason: &str| PackError::BadArchive {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let f = fs::File::open(path).map_err(PackError::io("opening", path))?;
    // The line is in the first few lines; the header is a few KiB.
    let mut head = Vec::new();
    f.take(1 << 20)
        .read_to_end(&mut head)
        .map_err(PackError::io("reading", path))?;
    let line = head
        .split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(crate::pack::OFFSET_LINE.as_bytes()))
        .ok_or_else(|| bad("an envship installer without a payload_offset= line"))?;
    let offset: u64 = std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&n: &u64| n >= 1)
        .ok_or_else(|| bad("an envship installer with a bad payload_offset= line"))?;
    Ok(offset - 1)
}

/// `NAME-VERSION-TARGET-SUBDIR.EXT` (no extension for `dir`).
pub fn default_file_name(
    name: &str,
    version: &str,
    target: &str,
    subdir: &str,
    format: Format,
) -> String {
    let stem = stem(name, version, target, subdir);
    match format {
        Format::Dir => stem,
        f => format!("{stem}.{}", f.extension()),
    }
}

/// The archive's file name without its archive extension ([`ARCHIVE_EXTENSIONS`]):
/// `foo-1.0-linux-64.tar.gz` → `foo-1.0-linux-64`; other names are returned whole.
pub fn archive_stem(file_name: &str) -> &str {
    for ext in ARCHIVE_EXTENSIONS {
        if let Some(stem) = file_name.strip_suffix(ext) {
            if !stem.is_empty() {
                return stem;
            }
        }
    }
    file_name
}

/// A file the stages write beside an archive, named `STEM{suffix}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Sidecar {
    /// The archive's sha256, in `sha256sum` format (pack).
    Sha256,
    /// What is in the archive ([`crate::Manifest`]; pack, updated by audit and test).
    Manifest,
    /// The audit report (audit).
    Audit,
    /// The test script's output (test).
    TestLog,
    /// The software bill of materials, CycloneDX 1.6 JSON (pack; see [`crate::sbom`]).
    Sbom,
    /// Where each compressed block of a tar.gz or tar.zst is (pack; see
    /// [`crate::blocks::index`]): lets deploy and unpack inflate blocks alone.
    Blocks,
    /// The evidence page: one self-contained HTML file for whoever deploys (ship; see
    /// envship-evidence).
    Evidence,
}

impl Sidecar {
    /// Every sidecar, in the order they are written.
    pub const ALL: &'static [Sidecar] = &[
        Sidecar::Sha256,
        Sidecar::Manifest,
        Sidecar::Sbom,
        Sidecar::Blocks,
        Sidecar::Audit,
        Sidecar::TestLog,
        Sidecar::Evidence,
    ];

    /// What is appended to the stem (`.sha256`, …).
    pub const fn suffix(self) -> &'static str {
        match self {
            Sidecar::Sha256 => ".sha256",
            Sidecar::Manifest => ".manifest.json",
            Sidecar::Audit => ".audit.json",
            Sidecar::TestLog => ".test.log",
            Sidecar::Sbom => ".cdx.json",
            Sidecar::Blocks => ".blocks.json",
            Sidecar::Evidence => ".html",
        }
    }

    /// This sidecar of `archive`: beside it, named after its [`archive_stem`] (pack's `dir`
    /// output has no extension: it is its own stem).
    pub fn path_for(self, archive: &Path) -> PathBuf {
        let name = archive.file_name().unwrap_or_default();
        let mut sidecar = match name.to_str() {
            Some(n) => OsString::from(archive_stem(n)),
            None => name.to_os_string(),
        };
        sidecar.push(self.suffix());
        archive.with_file_name(sidecar)
    }
}

#[cfg(test)]
mod tests;
