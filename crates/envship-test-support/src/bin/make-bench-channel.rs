//! Builds the channel `bench/install` installs: the repackaged python 3.11 and pip (real, see
//! `python.rs`) plus N packages of real files from this machine (shared libraries, headers,
//! docs, perl modules: the binary/text mix of a scientific environment), about MB megabytes of
//! files each, and an environment.yml that asks for all of them.
//!
//! Usage: make-bench-channel OUT_DIR [N (default 18)] [MB (default 5)]
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};

use envship_test_support::{python, ArchiveFormat, LocalChannel, PackageBuilder};

/// Where the payload comes from, in order; files are taken as they are found (sorted), so the
/// same machine always gives the same packages.
const SOURCES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/include",
    "/usr/share/perl",
    "/usr/lib/python3.11",
    "/usr/share/doc",
    "/usr/share/locale",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(out) = args.next().map(PathBuf::from) else {
        eprintln!("usage: make-bench-channel OUT_DIR [N] [MB]");
        std::process::exit(2);
    };
    let n: usize = args.next().map_or(18, |a| a.parse().unwrap());
    let mb: u64 = args.next().map_or(5, |a| a.parse().unwrap());
    if let Some(why) = python::python_unavailable() {
        eprintln!("cannot build the bench channel: {why}");
        std::process::exit(1);
    }
    let _ = fs_err::remove_dir_all(&out);
    let channel = LocalChannel::at(&out.join("channel"));
    for (archive, subdir) in python::cached_archives() {
        let dest = channel.dir.join(subdir);
        fs_err::create_dir_all(&dest).unwrap();
        fs_err::copy(&archive, dest.join(archive.file_name().unwrap())).unwrap();
    }

    let mut files = SOURCES.iter().flat_map(|s| {
        walkdir::WalkDir::new(s)
            .sort_by_file_name()
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| e.into_path())
    });
    let mut names = Vec::new();
    for i in 0..n {
        let name = format!("bench-payload-{i:02}");
        let mut pkg = PackageBuilder::new(&name, "1.0").depends("python 3.11.*");
        let mut size = 0;
        let mut count = 0;
        while size < mb * 1024 * 1024 {
            let Some(path) = files.next() else { break };
            // One huge library (libLLVM is 100+ MB) would make a package of a single file.
            let Ok(bytes) = fs_err::read(&path) else {
                continue;
            };
            if bytes.len() as u64 > mb * 1024 * 1024 {
                continue;
            }
            size += bytes.len() as u64;
            count += 1;
            pkg = pkg.file(&payload_path(&name, &path), bytes);
        }
        channel.add(&pkg, ArchiveFormat::Conda);
        println!("{name}: {count} files, {:.1} MB", size as f64 / 1e6);
        names.push(name);
    }
    channel.index();

    let mut env = format!(
        "name: bench-install\nchannels:\n  - {}\n  - nodefaults\ndependencies:\n  - python 3.11.*\n  - pip\n",
        channel.url()
    );
    for name in &names {
        env.push_str(&format!("  - {name}\n"));
    }
    fs_err::write(out.join("environment.yml"), env).unwrap();
    println!("channel: {}", channel.dir.display());
}

fn payload_path(pkg: &str, source: &Path) -> String {
    let rel = source.strip_prefix("/").unwrap_or(source);
    format!("lib/{pkg}/{}", rel.display())
}
