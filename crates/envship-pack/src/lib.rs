//! Relocatable, reproducible archives of conda environments: envship's `pack` stage, the
//! `unpack` used by `envship unpack`, the sandboxed test and deploy, and the relocation rules.
//!
//! **Archive layout** (conda-pack compatible): the environment at the archive root (or under
//! `arcroot`), plus generated `bin/activate`, `bin/deactivate`, `bin/conda-unpack` and the
//! relocation list `share/envship/relocate.txt` (see [`mod@relocate`]). On the target nothing but
//! `tar`, `sh` and the environment's python or the system perl is needed:
//! `mkdir env && tar -xf X.tar.gz -C env && source env/bin/activate && conda-unpack`.
//! `conda-unpack` may be run again after moving the environment.
//!
//! **Relocation data** comes from the prefix itself: `conda-meta/*.json` says which files hold
//! a placeholder and whether text or binary; files no package owns (pip) and conda files whose
//! size changed are scanned for the build prefix (binary if they contain a NUL byte).
//!
//! **Reproducible bytes**: entries sorted by name; every entry has mtime `SOURCE_DATE_EPOCH`
//! (else [`DEFAULT_EPOCH`], 1980-01-01, the earliest zip can store), uid/gid 0, empty user and
//! group names, mode 0755 (directories and files with any execute bit) or 0644 (symlinks 0777);
//! gzip blocks and zstd's multithreaded mode do not depend on the thread count. Consequence:
//! a `.pyc` whose header matches its source gets the epoch as source mtime, so it stays valid
//! where mtimes are kept (tar, `envship unpack`, `dir`); others are recompiled on import.
//!
//! **`.pyc` files holding the build prefix** cannot be byte-relocated: the prefix's python
//! rewrites copies of them for the archive, else they are left out (see `pyc.rs`).
//!
//! **Bounded memory**: files are streamed; only files rewritten for `--dest-prefix` are held
//! whole. Compression keeps at most 2 × threads blocks of about 1 MiB in flight.
//!
//! **Safe output**: written to a temp file in the output directory and renamed; `.sha256`
//! (sha256sum format), `.manifest.json` ([`Manifest`]) and `.cdx.json` (a CycloneDX 1.6 SBOM,
//! [`mod@sbom`]) sidecars beside it.
//!
//! **Owns**: archives of environments, end to end: the [formats](mod@format) (detection by magic bytes
//! and name, the `NAME-VERSION-TARGET-SUBDIR` stem, the sidecar names every stage uses), pack (plan →
//! writers → output, in `pack/`), the hardened [`unpack`], the relocation list and
//! `conda-unpack`, the [`Manifest`], the [record of an unpacked or deployed tree](mod@tree) that
//! `envship verify` checks, and the [diff of two releases](mod@diff). **Must not know**: targets
//! beyond the [`ManifestTarget`] it is given, solving or building (it reads an installed prefix
//! and its `conda-meta/`), the audit's and test's results (later stages add them to the
//! manifest; the diff compares an audit report's findings as documented JSON, never interpreting
//! them), or where archives are published or deployed. It never prints; progress goes through
//! [`envship_spec::Progress`].

pub mod archive_path;
pub mod beneath;
pub mod blocks;
mod deflate_walk;
pub mod diff;
mod error;
pub mod format;
pub mod manifest;
mod pack;
mod pgzip;
mod prefix;
mod pyc;
pub mod relocate;
pub mod sbom;
pub mod scripts;
pub mod tree;
mod unpack;

pub use blocks::{cache::BlockCache, BlockStats};
pub use error::{PackError, Result};
pub use format::{
    archive_stem, default_file_name, ArchiveKind, Format, Sidecar, SquashfsCompression,
};
pub use manifest::{BlockIndexRef, Manifest, ManifestTarget, RelocationSummary};
pub use pack::{pack, BlockReuse, PackOptions, PackOutput, DEFAULT_EPOCH};
pub use prefix::{CondaPackage, PipPackage};
pub use relocate::{relocate, RelocateOutput, RelocationList, RELOCATION_LIST};
pub use unpack::{
    finished as unpack_finished, unpack, unpack_unfinished, unpacking_marker, LinkFrom, Linked,
    UnpackOptions, UnpackOutput,
};

/// What the fuzz targets (`fuzz/`) reach that is otherwise private. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::deflate_walk::{FinalBlock, Walker};
}
