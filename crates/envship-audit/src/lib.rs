//! Static proof that a conda prefix (or an unpacked archive, or any directory) will load and
//! relocate on a production target — the check that would have caught the production break in
//! envship's origin story, where a wheel needed newer glibc/C++ features than RHEL 6 has.
//!
//! [`audit`] walks the tree once, memory-maps every regular file in parallel (rayon) and:
//!
//! * for ELF files, reads only the dynamic section, the dynamic symbols, the version sections and
//!   the notes ([`elf::parse_elf`]), then checks
//!   - **glibc**: every `GLIBC_x.y` need against the target's glibc, split into strong and weak
//!     needs (see [`report::Weakness`] for why a need used only by weak symbols still fails);
//!   - **kernel**: the `NT_GNU_ABI_TAG` minimum kernel against the target's kernel;
//!   - **static executables** need no library and no glibc version of the target; one linked
//!     against glibc still carries its kernel tag, and one that uses NSS is a warning;
//! * for every loadable ELF file, what the target's `ld.so` would map, from the **roots**
//!   (executables, and shared objects nothing in the prefix names in `DT_NEEDED`: extension
//!   modules, walked as `bin/pythonX.Y` dlopens them, and plugins) through every chain of
//!   `DT_NEEDED`, as [`loader`] emulates glibc's
//!   loader (`DT_RPATH` inherited along the chain while the asker has no `DT_RUNPATH`,
//!   `LD_LIBRARY_PATH` from the activation's `variables:`, `DT_RUNPATH`, the target's system
//!   libraries, sonames already loaded reused), then checks
//!   - **linkage**: every name resolves; a missing one is reported at the file that asks for
//!     it, with the chain of objects that loaded that file; libraries found in the prefix must
//!     define every version needed from them;
//!   - **C++ runtime**: `GLIBCXX_`/`CXXABI_`/`GCC_` needs against the library the loader
//!     really uses — the environment's own libstdc++/libgcc_s (its `.gnu.version_d`) when the
//!     walk finds it there, else the target's system one;
//! * for every file, relocation hazards for packing: the build prefix where no placeholder
//!   records it, shebangs that would exceed 127 bytes at the destination prefix, and binary
//!   placeholders shorter than the destination prefix.
//!
//! Ownership comes from `conda-meta/*.json` ([`meta::CondaMeta`]); files nobody owns are
//! reported as `pip/unmanaged`. The result is an [`AuditReport`] (stable JSON, documented in
//! [`report`]) plus [`render_table`] for people. Accepted exceptions come from an
//! [`Allowlist`] (TOML, documented in [`allow`]).
//!
//! Relocation policy, in the words of the checks:
//! * A conda-owned file containing the build prefix without a recorded placeholder is an error
//!   (pack relocates only what conda-meta records). Python entry points
//!   (`path_type: unix_python_entry_point`) are written by the installer with the prefix in the
//!   shebang and count as text placeholders, as conda treats them.
//! * An unmanaged file containing the build prefix is a warning when it is text (pack rewrites
//!   unmanaged text from content) and an error when it is binary (a compiled-in path nobody
//!   recorded; rewriting it blind is unsafe and it breaks when the destination is longer).
//! * `conda-meta/` and `*.pyc` are not searched: they legitimately embed the prefix (bytecode
//!   keeps the source path only for tracebacks).
//!
//! **Owns**: ELF parsing for the checks ([`elf`]), the emulation of glibc's loader ([`loader`]:
//! what would be mapped and why, with no opinion on it), the checks that judge its answers
//! (`checks`), the report format and the allowlist. **Must not know**: how the prefix was built
//! or will be packed (it reads files and `conda-meta/` only), archive formats (an archive is
//! audited after `envship unpack`), or where the report goes: it returns an [`AuditReport`],
//! never prints, and writes nothing.

pub mod allow;
mod checks;
pub mod elf;
pub mod loader;
pub mod meta;
pub mod report;
mod scan;

use std::path::PathBuf;

pub use allow::{AllowRule, Allowlist};
pub use elf::{parse_elf, ElfInfo, VersionNeed};
pub use loader::{LoadedLibrary, Resolution};
pub use report::{
    render_table, AuditReport, Check, Finding, Severity, Summary, Weakness, SCHEMA_VERSION,
    UNMANAGED,
};
pub use scan::audit;

use envship_spec::Target;

/// The Linux kernel's limit on a `#!` line (`BINPRM_BUF_SIZE` - 1 before Linux 5.1, which is
/// what RHEL 6/7/8 kernels enforce).
pub const SHEBANG_LIMIT: usize = 127;

/// What to audit against.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// The production target.
    pub target: Target,
    /// The string searched for in files (the prefix the environment was installed at). `None`:
    /// the audited root's canonical path, which is right when auditing the build prefix itself.
    /// `Some("")` turns the unregistered-prefix and shebang checks off.
    pub build_prefix: Option<String>,
    /// Where the environment will be unpacked; enables the placeholder-length check and makes
    /// the shebang check measure at this prefix instead of the build prefix.
    pub dest_prefix: Option<String>,
    /// Weak version needs (`VER_FLG_WEAK`) are errors instead of warnings.
    pub strict_weak: bool,
    /// Accepted exceptions.
    pub allowlist: Allowlist,
    /// Put every ELF file and what the loader sees into [`AuditReport::files`].
    pub inventory: bool,
}

impl AuditOptions {
    /// Options with defaults for everything but the target.
    pub fn new(target: Target) -> Self {
        Self {
            target,
            build_prefix: None,
            dest_prefix: None,
            strict_weak: false,
            allowlist: Allowlist::default(),
            inventory: false,
        }
    }
}

/// Why an audit could not run (findings are not errors: they are in the report).
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum AuditError {
    /// The path to audit is missing or not a directory.
    #[error("cannot audit {}: not a directory", path.display())]
    #[diagnostic(
        code(envship::audit::not_a_directory),
        help("give the environment's prefix directory (or an unpacked archive)")
    )]
    NotADirectory {
        /// What was given.
        path: PathBuf,
    },

    /// A file or directory could not be read.
    #[error("cannot read {}", path.display())]
    #[diagnostic(code(envship::audit::io))]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A `conda-meta/*.json` record does not parse.
    #[error("invalid conda-meta record {}", path.display())]
    #[diagnostic(
        code(envship::audit::conda_meta),
        help("the prefix's package metadata is damaged; reinstall the package or remove the stray file")
    )]
    CondaMeta {
        /// The record.
        path: PathBuf,
        /// The JSON error (with line and column).
        #[source]
        source: serde_json::Error,
    },

    /// The allowlist file is invalid.
    #[error("invalid allowlist {}: {message}", path.display())]
    #[diagnostic(
        code(envship::audit::allowlist),
        help("each [[allow]] needs path (a glob), check (a check name or \"*\") and a non-empty reason")
    )]
    Allowlist {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the rule number or TOML position.
        message: String,
    },
}
