//! A CPython that runs on glibc 2.12 (lcls-rhel6), as a conda `python` package.
//!
//! Debian's CPython (see [`crate::python`]) needs GLIBC_2.35, so no Python environment could
//! ship for the mission's own target. `scripts/build-python-glibc2.12.sh` builds CPython 3.9.2
//! from Debian bullseye's source with `zig cc -target x86_64-linux-gnu.2.12` (zlib and libffi
//! static inside it); this module repackages that build as a `linux-64` `python` 3.9.2 package
//! beside the fixture `pip` package. The interpreter is static (no libpython, no RPATH) and
//! finds its standard library from the `lib/python3.9/os.py` landmark, so the prefix is
//! relocatable as it is.
//!
//! The build is minutes of compiling, so tests never start it: they find it through
//! [`BUILD_ENV`] or [`DEFAULT_BUILD_DIR`] (where `.ci/run` builds it) and skip, naming the
//! script, when it is missing. The repackaged archives are cached in
//! [`crate::test_cache_dir`], keyed by the build's interpreter and build record.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::{package::PackageBuilder, ArchiveFormat, LocalChannel};

/// The environment variable naming the build's prefix (`scripts/build-python-glibc2.12.sh`'s
/// OUT_DIR).
pub const BUILD_ENV: &str = "ENVSHIP_TEST_PYTHON_GLIBC212";
/// Where the build script puts the build by default (recipe r1), and `.ci/run` too.
pub const DEFAULT_BUILD_DIR: &str = "/var/cache/envship-ci/python-glibc2.12-r1";
/// The interpreter's full version (bullseye's python3.9 source).
pub const VERSION: &str = "3.9.2";
/// The conda build string of the repackaged interpreter.
pub const BUILD_STRING: &str = "h0_cp39_glibc212";
/// Bump when the repackaging changes so cached archives are rebuilt.
const RECIPE_VERSION: &str = "1";
const SHORT: &str = "3.9";

/// What the build script writes last: a build without it is unfinished.
const BUILD_RECORD: &str = "envship-build.json";

/// Parts of the installed tree a test environment does not need: the test suite, IDLE and Tk,
/// and the static libpython (tens of MB) that only embedding would use.
fn left_out(rel: &str) -> bool {
    let top = rel.split('/').next().unwrap_or_default();
    matches!(
        top,
        "idlelib" | "tkinter" | "turtledemo" | "ensurepip" | "lib2to3"
    ) || rel.ends_with(".a")
        || rel
            .split('/')
            .any(|c| matches!(c, "__pycache__" | "test" | "tests"))
}

/// The build's prefix, or why there is none (the caller skips its test with this reason).
pub fn build_dir() -> Result<PathBuf, String> {
    let (dir, from) = match std::env::var_os(BUILD_ENV) {
        Some(d) => (PathBuf::from(d), format!("${BUILD_ENV}")),
        None => (
            PathBuf::from(DEFAULT_BUILD_DIR),
            "the default path".to_string(),
        ),
    };
    let python = dir.join("bin/python3.9");
    let record = dir.join(BUILD_RECORD);
    if !python.is_file() || !record.is_file() {
        return Err(format!(
            "no CPython for glibc 2.12 at {} ({from}): build it with \
             `scripts/build-python-glibc2.12.sh {}` (a few minutes), or set {BUILD_ENV}",
            dir.display(),
            dir.display()
        ));
    }
    Ok(dir)
}

/// The build script's record (`envship-build.json`: sources, compiler, max GLIBC version,
/// extension modules, build time).
pub fn build_record(build: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs_err::read(build.join(BUILD_RECORD)).unwrap()).unwrap()
}

/// A channel with the glibc 2.12 `python` 3.9.2 and `pip` 24.0, built once per build and cached
/// in [`crate::test_cache_dir`].
pub fn python212_channel(build: &Path) -> LocalChannel {
    fill_channel(LocalChannel::new(), build)
}

/// The same channel in a given directory (kept), e.g. `examples/lcls-numpy/channel`.
pub fn python212_channel_at(dir: &Path, build: &Path) -> LocalChannel {
    fill_channel(LocalChannel::at(dir), build)
}

fn fill_channel(channel: LocalChannel, build: &Path) -> LocalChannel {
    for (archive, subdir) in cached_archives(build) {
        let sub = channel.dir.join(subdir);
        fs_err::create_dir_all(&sub).unwrap();
        let dest = sub.join(archive.file_name().unwrap());
        if std::fs::hard_link(&archive, &dest).is_err() {
            fs_err::copy(&archive, &dest).unwrap();
        }
    }
    channel.index();
    channel
}

/// Build (or reuse) the python and pip archives; returns `(path, subdir)` pairs.
pub fn cached_archives(build: &Path) -> Vec<(PathBuf, &'static str)> {
    let key = {
        let mut h = Sha256::new();
        h.update(fs_err::read(build.join("bin/python3.9")).unwrap());
        h.update(fs_err::read(build.join(BUILD_RECORD)).unwrap());
        h.update(RECIPE_VERSION);
        hex::encode(&h.finalize()[..8])
    };
    let dir = crate::test_cache_dir().join(format!("python212-{key}"));
    let python = dir
        .join("linux-64")
        .join(format!("python-{VERSION}-{BUILD_STRING}.conda"));
    let pip = dir.join("noarch").join("pip-24.0-pyh0_envship.conda");
    crate::build_cache_entry(&dir, |tmp| {
        build_python(build).write_to_channel(tmp, ArchiveFormat::Conda);
        crate::python::build_pip().write_to_channel(tmp, ArchiveFormat::Conda);
    });
    assert!(python.exists(), "missing {}", python.display());
    assert!(pip.exists(), "missing {}", pip.display());
    vec![(python, "linux-64"), (pip, "noarch")]
}

fn build_python(build: &Path) -> PackageBuilder {
    let mut pkg = PackageBuilder::new("python", VERSION)
        .build(BUILD_STRING, 0)
        .license(Some("PSF-2.0"))
        .executable(
            "bin/python3.9",
            fs_err::read(build.join("bin/python3.9")).unwrap(),
        )
        .symlink("bin/python3", "python3.9")
        .symlink("bin/python", "python3.9")
        .file(
            &format!("lib/python{SHORT}/site-packages/README.txt"),
            "This directory exists so that packages can be installed here.\n",
        );
    let stdlib = build.join(format!("lib/python{SHORT}"));
    for entry in walkdir::WalkDir::new(&stdlib).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(&stdlib).unwrap();
        let rel_str = rel.to_string_lossy();
        if rel_str.is_empty() || rel_str.starts_with("site-packages") || left_out(&rel_str) {
            continue;
        }
        let dest = format!("lib/python{SHORT}/{rel_str}");
        let ft = entry.file_type();
        if ft.is_symlink() {
            let target = fs_err::read_link(entry.path()).unwrap();
            pkg = pkg.symlink(&dest, &target.to_string_lossy());
        } else if ft.is_file() {
            let bytes = fs_err::read(entry.path()).unwrap();
            pkg = pkg.file_like(&dest, bytes, &entry.metadata().unwrap());
        }
    }
    pkg
}

#[cfg(test)]
mod tests {
    use super::left_out;

    #[test]
    fn the_test_suite_and_static_libpython_are_left_out_and_the_stdlib_kept() {
        assert!(left_out("test/test_os.py"));
        assert!(left_out("config-3.9-x86_64-linux-gnu/libpython3.9.a"));
        assert!(left_out("ctypes/test/test_bytes.py"));
        assert!(!left_out("ctypes/__init__.py"));
        assert!(!left_out("unittest/case.py"));
        assert!(left_out("json/__pycache__/decoder.cpython-39.pyc"));
        assert!(!left_out("os.py"));
        assert!(!left_out(
            "lib-dynload/_ctypes.cpython-39-x86_64-linux-gnu.so"
        ));
        assert!(!left_out("config-3.9-x86_64-linux-gnu/Makefile"));
    }
}
