//! Regenerates the bundled example channels under `examples/` from the C sources in
//! `examples/recipe/` (compiled by `examples/recipe/build.sh`, which then runs this program).
//!
//! Usage: make-example-channels BUILT_BINARIES_DIR EXAMPLES_DIR
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::path::PathBuf;

use envship_test_support::{
    package::{PLACEHOLDER, SHORT_PLACEHOLDER},
    ArchiveFormat, LocalChannel, PackageBuilder, PlaceholderMode,
};

fn main() {
    let mut args = std::env::args_os().skip(1).map(PathBuf::from);
    let (Some(bins), Some(examples)) = (args.next(), args.next()) else {
        eprintln!("usage: make-example-channels BUILT_BINARIES_DIR EXAMPLES_DIR");
        std::process::exit(2);
    };
    let read = |name: &str| fs_err::read(bins.join(name)).unwrap();

    // examples/hello: runs on glibc 2.12 — nothing in it needs a glibc symbol version.
    let hello_channel = examples.join("hello/channel");
    let _ = fs_err::remove_dir_all(&hello_channel);
    let channel = LocalChannel::at(&hello_channel);
    channel.add(
        &PackageBuilder::new("libhello", "1.0")
            .build("h0_0", 0)
            .executable("lib/libhello.so.1", read("libhello.so.1"))
            .symlink("lib/libhello.so", "libhello.so.1"),
        ArchiveFormat::Conda,
    );
    channel.add(
        &PackageBuilder::new("hello", "1.0")
            .build("h0_0", 0)
            .depends("libhello 1.0.*")
            .depends("__glibc >=2.5")
            .file_with_placeholder("bin/hello", read("hello"), PLACEHOLDER, PlaceholderMode::Binary, true)
            .file_with_placeholder(
                "bin/hello-info",
                format!(
                    "#!/bin/sh\n# Prints where this environment lives (the prefix is written in at install time).\necho \"hello-envship lives in {SHORT_PLACEHOLDER}\"\n"
                ),
                SHORT_PLACEHOLDER,
                PlaceholderMode::Text,
                true,
            )
            .file_with_placeholder(
                "etc/hello/hello.conf",
                format!("# hello configuration\ndata_dir = {PLACEHOLDER}/share/hello\n"),
                PLACEHOLDER,
                PlaceholderMode::Text,
                false,
            )
            .file("share/hello/greeting.txt", "Hello, production!\n"),
        ArchiveFormat::TarBz2,
    );
    channel.add(
        &PackageBuilder::new("hello-scripts", "1.0")
            .build("0", 0)
            .subdir("noarch")
            .file(
                "etc/conda/activate.d/hello-scripts.sh",
                "# Set by hello-scripts on activation.\nexport HELLO_ACTIVATED=1\n",
            )
            .executable(
                "bin/hello-greet",
                "#!/bin/sh\n# Reads data relative to the active environment.\ncat \"$CONDA_PREFIX/share/hello/greeting.txt\"\n",
            ),
        ArchiveFormat::Conda,
    );
    channel.index();
    println!("wrote {}", hello_channel.display());

    // examples/needs-glibc-2.14: a binary that needs memcpy@GLIBC_2.14, so the audit stops it
    // for lcls-rhel6 (glibc 2.12) and passes it for rhel7/rhel8.
    let demo_channel = examples.join("needs-glibc-2.14/channel");
    let _ = fs_err::remove_dir_all(&demo_channel);
    let channel = LocalChannel::at(&demo_channel);
    channel.add(
        // Like many real packages, it does not declare the glibc it needs: only the audit can tell.
        &PackageBuilder::new("memcpy-demo", "1.0")
            .build("h0_0", 0)
            .executable("bin/memcpy-demo", read("memcpy-demo")),
        ArchiveFormat::Conda,
    );
    channel.index();
    println!("wrote {}", demo_channel.display());
}
