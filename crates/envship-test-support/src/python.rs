//! Repackage the machine's Debian CPython as a real conda `python` package, and pip's wheel as
//! a `noarch: python` `pip` package, so tests can build environments that really run Python,
//! offline.
//!
//! Debian's `/usr/bin/python3.11` links libpython statically and has no RPATH; it finds its
//! standard library from the `lib/python3.11/os.py` landmark next to `bin/`, so copied into a
//! prefix it is relocatable. Two fixes make it behave like a conda python: drop
//! `EXTERNALLY-MANAGED` (PEP 668 would make pip refuse to install), and replace Debian's
//! `sitecustomize.py` (a symlink into /etc) with one that adds the prefix's `site-packages`
//! (Debian's site.py only looks in `dist-packages`), and make pip's default install scheme
//! upstream's `posix_prefix` instead of Debian's `posix_local`. The archives are built once
//! and cached.
use crate::Deadline;

use std::{
    io::Read,
    path::{Path, PathBuf},
};

use sha2::{Digest, Sha256};

use crate::{package::PackageBuilder, ArchiveFormat, LocalChannel};

/// The interpreter that gets repackaged.
pub const SYSTEM_PYTHON: &str = "/usr/bin/python3.11";
const STDLIB: &str = "/usr/lib/python3.11";
/// Bump when the recipe changes so cached archives are rebuilt.
const RECIPE_VERSION: &str = "3";

const SITECUSTOMIZE: &str = r#"# Written by envship-test-support: Debian's site.py only knows dist-packages.
import os as _os, site as _site, sys as _sys
_site.addsitedir(_os.path.join(_sys.prefix, "lib", "python%d.%d" % _sys.version_info[:2], "site-packages"))
"#;

/// Why the system python cannot be repackaged (the caller skips its test with this reason).
pub fn python_unavailable() -> Option<String> {
    if !Path::new(SYSTEM_PYTHON).exists() {
        return Some(format!("{SYSTEM_PYTHON} is not installed"));
    }
    if !Path::new(STDLIB).join("os.py").exists() {
        return Some(format!("{STDLIB}/os.py is missing"));
    }
    None
}

/// The full version of the system python (e.g. `3.11.2`).
pub fn system_python_version() -> String {
    let out = std::process::Command::new(SYSTEM_PYTHON)
        .args(["-c", "import platform; print(platform.python_version())"])
        .output_in_time()
        .expect("run system python");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A channel with `python` (repackaged) and `pip` (from the fixture wheel), built once per
/// interpreter and cached in [`crate::test_cache_dir`].
pub fn python_channel() -> LocalChannel {
    channel_of(&cached_archives())
}

/// Like [`python_channel`], but the python keeps Debian's install scheme: pip outside a venv
/// installs into `PREFIX/local/lib/python3.11/dist-packages`, as Debian-built CPython does.
pub fn debian_scheme_python_channel() -> LocalChannel {
    channel_of(&archives_for(Scheme::Debian))
}

/// Where the repackaged python's pip installs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// upstream's `posix_prefix` (`lib/python3.11/site-packages`), as a conda python.
    Conda,
    /// Debian's `posix_local` (`local/lib/python3.11/dist-packages`).
    Debian,
}

fn channel_of(cached: &[(PathBuf, &'static str)]) -> LocalChannel {
    let channel = LocalChannel::new();
    for (archive, subdir) in cached {
        let sub = channel.dir.join(subdir);
        fs_err::create_dir_all(&sub).unwrap();
        let dest = sub.join(archive.file_name().unwrap());
        if std::fs::hard_link(archive, &dest).is_err() {
            fs_err::copy(archive, &dest).unwrap();
        }
    }
    channel.index();
    channel
}

/// Build (or reuse) the python and pip archives; returns `(path, subdir)` pairs.
pub fn cached_archives() -> Vec<(PathBuf, &'static str)> {
    archives_for(Scheme::Conda)
}

fn archives_for(scheme: Scheme) -> Vec<(PathBuf, &'static str)> {
    let build = match scheme {
        Scheme::Conda => "h0_envship",
        Scheme::Debian => "h1_envship_debian_scheme",
    };
    let key = {
        let mut h = Sha256::new();
        let mut f = fs_err::File::open(SYSTEM_PYTHON).unwrap();
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).unwrap();
        h.update(&buf);
        h.update(RECIPE_VERSION);
        h.update(build);
        hex::encode(&h.finalize()[..8])
    };
    let dir = crate::test_cache_dir().join(format!("python-{key}"));
    let version = system_python_version();
    let python = dir
        .join("linux-64")
        .join(format!("python-{version}-{build}.conda"));
    let pip = dir.join("noarch").join("pip-24.0-pyh0_envship.conda");
    crate::build_cache_entry(&dir, |tmp| {
        build_python(&version, scheme, build).write_to_channel(tmp, ArchiveFormat::Conda);
        build_pip().write_to_channel(tmp, ArchiveFormat::Conda);
    });
    assert!(python.exists(), "missing {}", python.display());
    assert!(pip.exists(), "missing {}", pip.display());
    vec![(python, "linux-64"), (pip, "noarch")]
}

fn build_python(version: &str, scheme: Scheme, build: &str) -> PackageBuilder {
    let short = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let mut pkg = PackageBuilder::new("python", version)
        .build(build, 0)
        .license(Some("PSF-2.0"))
        .executable("bin/python3.11", fs_err::read(SYSTEM_PYTHON).unwrap())
        .symlink("bin/python3", "python3.11")
        .symlink("bin/python", "python3.11")
        .file("lib/python3.11/sitecustomize.py", SITECUSTOMIZE)
        .file(
            "lib/python3.11/site-packages/README.txt",
            "This directory exists so that packages can be installed here.\n",
        );
    for entry in walkdir::WalkDir::new(STDLIB).sort_by_file_name() {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(STDLIB).unwrap();
        let rel_str = rel.to_string_lossy();
        if rel_str.is_empty()
            || rel_str == "EXTERNALLY-MANAGED"
            || rel_str == "sitecustomize.py"
            || rel_str.starts_with("dist-packages")
            || rel.components().any(|c| c.as_os_str() == "__pycache__")
        {
            continue;
        }
        let dest = format!("lib/python{short}/{rel_str}");
        let ft = entry.file_type();
        if ft.is_symlink() {
            let target = fs_err::read_link(entry.path()).unwrap();
            if target.is_absolute() {
                // Absolute links point outside the prefix: copy the file they point at.
                if let Ok(bytes) = fs_err::read(entry.path()) {
                    pkg = pkg.file(&dest, bytes);
                }
            } else {
                pkg = pkg.symlink(&dest, &target.to_string_lossy());
            }
        } else if ft.is_file() {
            let mut bytes = fs_err::read(entry.path()).unwrap();
            if rel_str == "sysconfig.py" && scheme == Scheme::Conda {
                bytes = conda_install_scheme(bytes);
            }
            pkg = pkg.file_like(&dest, bytes, &entry.metadata().unwrap());
        }
    }
    pkg
}

/// Debian patches sysconfig so that pip outside a venv installs into
/// `PREFIX/local/lib/python3.11/dist-packages`; a conda python installs into
/// `PREFIX/lib/python3.11/site-packages`. Make the default scheme `posix_prefix`, as upstream's.
fn conda_install_scheme(sysconfig: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8(sysconfig).expect("sysconfig.py is UTF-8");
    let patched = text.replace(
        "            prefix_scheme = 'posix_local'",
        "            prefix_scheme = 'posix_prefix'",
    );
    assert_ne!(
        patched, text,
        "Debian's sysconfig.py changed: update the patch"
    );
    patched.into_bytes()
}

pub(crate) fn build_pip() -> PackageBuilder {
    let wheel = crate::fixture("wheels/pip-24.0-py3-none-any.whl");
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new(SYSTEM_PYTHON)
        .args(["-m", "zipfile", "-e"])
        .arg(&wheel)
        .arg(out.path())
        .status_in_time()
        .unwrap();
    assert!(status.success(), "unzip {}", wheel.display());
    let mut pkg = PackageBuilder::new("pip", "24.0")
        .build("pyh0_envship", 0)
        .noarch_python()
        .depends("python >=3.7")
        .entry_point("pip = pip._internal.cli.main:main")
        .entry_point("pip3 = pip._internal.cli.main:main");
    for entry in walkdir::WalkDir::new(out.path()).sort_by_file_name() {
        let entry = entry.unwrap();
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(out.path())
            .unwrap()
            .to_string_lossy()
            .to_string();
        let bytes = fs_err::read(entry.path()).unwrap();
        let rel = if rel.ends_with(".dist-info/INSTALLER") {
            pkg = pkg.file(&format!("site-packages/{rel}"), "conda\n");
            continue;
        } else {
            rel
        };
        pkg = pkg.file(&format!("site-packages/{rel}"), bytes);
    }
    pkg
}
