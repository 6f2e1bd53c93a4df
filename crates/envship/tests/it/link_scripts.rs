//! Packages' link scripts run as `conda env create` runs them: the real `link-scripts` fixture
//! (a post-link that writes a file and a message, a pre-unlink that removes the file) and
//! packages built here (a post-link that writes the prefix into a file, one that fails, one
//! that tries the network).

use std::path::{Path, PathBuf};

use envship_test_support::{fixture, ArchiveFormat, Deadline, LocalChannel, PackageBuilder};

use crate::envship;

const FIXTURE: &str = "packages/noarch/link-scripts-0.1.0-h4616a5c_0.conda";

/// The fixture, plus `writer` (its post-link writes `$PREFIX` into `etc/writer.conf`, a file no
/// package owns, and says so in `.messages.txt`), `broken` (its post-link fails) and `probe`
/// (its post-link records whether 127.0.0.1:`port` answers).
fn channel(port: u16) -> LocalChannel {
    let channel = LocalChannel::new();
    channel.add_file(&fixture(FIXTURE), "noarch");
    channel.add(
        &PackageBuilder::new("writer", "1").file(
            "bin/.writer-post-link.sh",
            "mkdir -p \"$PREFIX/etc\"\n\
             echo \"data_dir = $PREFIX/share/writer\" > \"$PREFIX/etc/writer.conf\"\n\
             echo \"writer $PKG_VERSION build $PKG_BUILDNUM configured $PKG_NAME\" >> \"$PREFIX/.messages.txt\"\n",
        ),
        ArchiveFormat::Conda,
    );
    channel.add(
        &PackageBuilder::new("broken", "1").file(
            "bin/.broken-post-link.sh",
            "echo 'checking the license server'\necho 'no license server' >&2\nexit 3\n",
        ),
        ArchiveFormat::Conda,
    );
    channel.add(
        &PackageBuilder::new("probe", "1").file(
            "bin/.probe-post-link.sh",
            format!(
                "if (echo hi > /dev/tcp/127.0.0.1/{port}) 2>/dev/null; then r=on; else r=off; fi\n\
                 echo \"network $r\" > \"$PREFIX/.messages.txt\"\n"
            ),
        ),
        ArchiveFormat::Conda,
    );
    channel.index();
    channel
}

fn project(dir: &Path, channel: &LocalChannel, deps: &[&str]) -> PathBuf {
    let file = dir.join("environment.yml");
    fs_err::write(
        &file,
        format!(
            "name: scripts\nchannels: ['{}']\ndependencies: [{}]\n",
            channel.url(),
            deps.join(", ")
        ),
    )
    .unwrap();
    file
}

fn build(dir: &Path, prefix: &Path, extra: &[&str]) -> std::process::Output {
    envship()
        .current_dir(dir)
        .args(["build", "--offline", "--cache-dir"])
        .arg(dir.join("cache"))
        .arg("--prefix")
        .arg(prefix)
        .args(if extra.contains(&"--target") {
            &[][..]
        } else {
            &["--target", "rhel8"][..]
        })
        .args(extra)
        .output()
        .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn post_link_runs_its_message_shows_and_what_it_wrote_is_relocated() {
    let channel = channel(1);
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), &channel, &["link-scripts", "writer"]);
    let prefix = dir.path().join("env");
    let out = build(dir.path(), &prefix, &[]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(prefix.join("i-was-post-linked").is_file(), "{shown}");
    assert!(
        shown.contains("This is a post-link script that just ran for the recipe package."),
        "the fixture's message is shown: {shown}"
    );
    assert!(
        shown.contains("writer 1 build 0 configured writer"),
        "conda's variables reach the script: {shown}"
    );
    assert!(
        !prefix.join(".messages.txt").exists(),
        "the messages file is removed, as conda does"
    );
    let conf = fs_err::read_to_string(prefix.join("etc/writer.conf")).unwrap();
    assert_eq!(
        conf,
        format!("data_dir = {}/share/writer\n", prefix.display())
    );

    // Pack, and unpack somewhere else: the script's file follows the environment.
    let archive = dir.path().join("scripts.tar.gz");
    let out = envship()
        .args(["pack", "--version", "1", "--prefix"])
        .arg(&prefix)
        .arg("--output")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let moved = dir.path().join("elsewhere/scripts");
    let out = envship()
        .arg("unpack")
        .arg(&archive)
        .arg(&moved)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let conf = fs_err::read_to_string(moved.join("etc/writer.conf")).unwrap();
    assert_eq!(
        conf,
        format!("data_dir = {}/share/writer\n", moved.display())
    );
    assert!(moved.join("i-was-post-linked").is_file());

    // Removing the package runs its pre-unlink, which removes the file its post-link made.
    project(dir.path(), &channel, &["writer"]);
    let out = build(dir.path(), &prefix, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !prefix.join("i-was-post-linked").exists(),
        "pre-unlink ran before link-scripts was removed: {}",
        text(&out)
    );
}

#[test]
fn a_failing_post_link_fails_the_build_naming_the_package_and_script() {
    let channel = channel(1);
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), &channel, &["broken"]);
    let prefix = dir.path().join("env");
    let out = build(dir.path(), &prefix, &[]);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(
        shown.contains("the post-link script of broken-1-h0_0 failed")
            && shown.contains("bin/.broken-post-link.sh"),
        "{shown}"
    );
    assert!(
        shown.contains("no license server") && shown.contains("checking the license server"),
        "the script's output tail is shown: {shown}"
    );
    assert!(
        !prefix.exists(),
        "a new prefix whose post-link failed is not left in place"
    );

    // Skipped, the build passes with a warning naming the package.
    let out = build(dir.path(), &prefix, &["--link-scripts", "skip"]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("skipped the post-link script of broken-1-h0_0"),
        "{shown}"
    );
}

#[test]
fn a_post_link_script_runs_with_the_network_off() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let channel = channel(port);
    let dir = tempfile::tempdir().unwrap();
    project(dir.path(), &channel, &["probe"]);
    let prefix = dir.path().join("env");
    let out = build(dir.path(), &prefix, &[]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    // The probe's own check works: from the test process the port answers.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(
        shown.contains("network off"),
        "the script reached 127.0.0.1:{port}: {shown}"
    );
}

/// A 2017 openssl whose post-link copies `libcrypto.so.1.0.0` and runs a binary the package
/// ships to patch the prefix into it, in place, same size: the packed archive relocates that
/// file too, so the unpacked `openssl` looks for its configuration where it was unpacked.
#[test]
fn a_file_a_post_link_rewrote_in_place_is_relocated() {
    let channel = fixture("channels/venicegeo-2017");
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(
        dir.path().join("environment.yml"),
        format!(
            "name: ossl\nchannels: ['{}']\ndependencies: ['openssl 1.0.2l']\n",
            envship_test_support::file_url(&channel)
        ),
    )
    .unwrap();
    let prefix = dir.path().join("env");
    let out = build(dir.path(), &prefix, &["--target", "lcls-rhel6"]);
    assert!(out.status.success(), "{}", text(&out));
    let openssl_dir = |root: &Path| {
        let out = std::process::Command::new(root.join("bin/openssl"))
            .args(["version", "-d"])
            .env_clear()
            .output_in_time()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        openssl_dir(&prefix),
        format!("OPENSSLDIR: \"{}/ssl\"", prefix.display()),
        "the post-link patched the build prefix in"
    );
    let archive = dir.path().join("ossl.tar.gz");
    let out = envship()
        .args(["pack", "--version", "1", "--prefix"])
        .arg(&prefix)
        .arg("--output")
        .arg(&archive)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let moved = dir.path().join("mv");
    let out = envship()
        .arg("unpack")
        .arg(&archive)
        .arg(&moved)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        openssl_dir(&moved),
        format!("OPENSSLDIR: \"{}/ssl\"", moved.display())
    );
    let longer = dir.path().join("a/longer/place");
    let out = envship()
        .arg("unpack")
        .arg(&archive)
        .arg(&longer)
        .output()
        .unwrap();
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(2), "{shown}");
    assert!(shown.contains("lib/libcrypto.so.1.0.0"), "{shown}");
}
