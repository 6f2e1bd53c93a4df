//! `--format sh`: a self-extracting installer, a POSIX sh header followed by the tar.gz payload
//! (the same bytes `--format tar.gz` writes), for hosts without envship, as conda's constructor
//! installers are used: `sh NAME.sh -p DEST`.
//!
//! The header needs only sh (dash, or RHEL 6's bash 4.1), `tail`, `gzip` and `tar`, plus
//! `sha256sum` or any python to check the payload before anything is written (it refuses to
//! install unchecked unless given `--no-verify`). It refuses a non-empty DEST, removes what it
//! extracted if anything fails, and then runs the bundled `bin/conda-unpack`. Everything in it
//! (the payload's offset, size and sha256) is fixed by the payload, so the installer is as
//! reproducible as the tar.gz.

use std::io::{self, Seek, Write};

use super::{
    output::{temp_file, write_tar_temp, Compression, Destination, HashWriter},
    plan::Item,
    writers::Ctx,
};
use crate::{
    error::{PackError, Result},
    scripts::sh_quote,
};

/// How every installer starts: what [`crate::format::Magic`] recognizes.
pub(crate) const INSTALLER_MAGIC: &str = "#!/bin/sh\n# envship self-extracting installer\n";

/// The line of the header that says where the payload starts (1-based byte offset).
pub(crate) const OFFSET_LINE: &str = "payload_offset=";

/// What the header says about the environment.
pub(super) struct Label<'a> {
    /// `NAME VERSION (SUBDIR)`, shown in messages.
    pub text: String,
    /// The directory the environment is under inside the payload (empty: its root).
    pub arcroot: &'a [u8],
}

/// The python that hashes stdin when `sha256sum` is missing (2.6+ and 3.x: RHEL 6 has 2.6).
const PY_SHA256: &str = r#"import hashlib, sys
h = hashlib.sha256()
s = getattr(sys.stdin, "buffer", sys.stdin)
while True:
    b = s.read(1 << 20)
    if not b:
        break
    h.update(b)
sys.stdout.write(h.hexdigest() + "\n")"#;

/// The header for a payload of `bytes` bytes with `sha256`, starting at byte `offset` (1-based,
/// as `tail -c +N` counts).
fn header(label: &Label<'_>, offset: u64, bytes: u64, sha256: &str) -> Vec<u8> {
    let quoted_label = String::from_utf8_lossy(&sh_quote(label.text.as_bytes())).into_owned();
    let quoted_arcroot = String::from_utf8_lossy(&sh_quote(label.arcroot)).into_owned();
    format!(
        r#"{INSTALLER_MAGIC}# {text}, made by envship {version}.
# Usage: sh THIS_FILE -p DEST   (-h for help)
# Below this header: a tar.gz of the environment (from byte {offset} to the end, sha256 {sha256}).
# Installing needs only sh, tail, gzip and tar, and sha256sum or python to check the payload.
label={quoted_label}
{OFFSET_LINE}{offset}
payload_bytes={bytes}
payload_sha256={sha256}
arcroot={quoted_arcroot}

usage() {{
    echo "usage: sh $0 -p DEST [-b] [--no-verify]"
    echo
    echo "Installs $label into DEST (which must not exist, or be empty), then runs its"
    echo "bin/conda-unpack to relocate it there."
    echo
    echo "  -p DEST, --prefix DEST  where to install (required)"
    echo "  -b                      batch mode, accepted for conda-installer habits (this never asks)"
    echo "  --no-verify             install even if neither sha256sum nor python can check the payload"
    echo "  -h, --help              print this help"
}}

die() {{
    echo "$label installer: $*" >&2
    exit 1
}}

dest=
verify=yes
while [ $# -gt 0 ]; do
    case $1 in
    -h | --help)
        usage
        exit 0
        ;;
    -b | --batch) ;;
    -p | --prefix)
        if [ $# -lt 2 ]; then
            usage >&2
            exit 2
        fi
        dest=$2
        shift
        ;;
    --prefix=*) dest=${{1#--prefix=}} ;;
    --no-verify) verify=no ;;
    *)
        echo "$label installer: unknown option '$1'" >&2
        usage >&2
        exit 2
        ;;
    esac
    shift
done
if [ -z "$dest" ]; then
    echo "$label installer: no destination: pass -p DEST" >&2
    usage >&2
    exit 2
fi
self=$0
[ -f "$self" ] || die "cannot read myself ($self): run me as 'sh FILE -p DEST', not from a pipe"
case $dest in
/*) ;;
*) dest=$(pwd)/$dest ;;
esac

payload() {{
    tail -c +"$payload_offset" "$self"
}}

# A truncated copy is refused even with --no-verify.
total=$(wc -c <"$self") || die "cannot read $self"
total=$((total))
if [ "$((total - payload_offset + 1))" -ne "$payload_bytes" ]; then
    die "$self is $total bytes, expected $((payload_offset - 1 + payload_bytes)): a truncated or damaged copy; nothing installed"
fi
if [ "$verify" = yes ]; then
    if command -v sha256sum >/dev/null 2>&1; then
        actual=$(payload | sha256sum) || die "sha256sum failed on $self"
        actual=${{actual%% *}}
    else
        py=
        for candidate in python3 python python2; do
            if command -v "$candidate" >/dev/null 2>&1; then
                py=$candidate
                break
            fi
        done
        [ -n "$py" ] || die "cannot check the payload: neither sha256sum nor python is installed; pass --no-verify to install it unchecked"
        actual=$(payload | "$py" -c '{PY_SHA256}') || die "$py failed to hash $self"
    fi
    if [ "$actual" != "$payload_sha256" ]; then
        die "$self is corrupted: its payload's sha256 is $actual, expected $payload_sha256; nothing installed"
    fi
fi

if [ -e "$dest" ] || [ -L "$dest" ]; then
    [ -d "$dest" ] || die "$dest exists and is not a directory; nothing installed"
    [ -z "$(ls -A "$dest")" ] || die "$dest exists and is not empty; nothing installed"
    made_dest=no
else
    mkdir -p "$dest" || die "cannot create $dest"
    made_dest=yes
fi
undo() {{
    if [ "$made_dest" = yes ]; then
        rm -rf "$dest"
    else
        rm -rf "$dest"/* "$dest"/.[!.]* "$dest"/..?*
    fi
}}
trap 'undo; exit 130' INT TERM HUP

# Each stage reports its own failure on fd 3: sh has no pipefail.
failed=$( {{ {{ payload || echo tail >&3; }} | {{ gzip -dc || echo gzip >&3; }} | {{ (cd "$dest" && tar -xf -) || echo tar >&3; }}; }} 3>&1 >&2)
if [ -n "$failed" ]; then
    undo
    die "extracting into $dest failed ($(echo $failed)); nothing installed"
fi
env_root=$dest
[ -z "$arcroot" ] || env_root=$dest/$arcroot
if ! sh "$env_root/bin/conda-unpack"; then
    undo
    die "$env_root/bin/conda-unpack failed; nothing installed"
fi
trap - INT TERM HUP
echo "installed $label into $env_root"
echo "activate it with: . '$env_root/bin/activate'"
exit 0
"#,
        text = label.text,
        version = env!("CARGO_PKG_VERSION"),
    )
    .into_bytes()
}

/// The header whose stated payload offset is its own length plus one (the offset's digits are
/// part of the header, so it is rendered until the length stops changing).
fn fitted_header(label: &Label<'_>, bytes: u64, sha256: &str) -> Vec<u8> {
    let mut offset = 1;
    loop {
        let h = header(label, offset, bytes, sha256);
        let fitted = h.len() as u64 + 1;
        if fitted == offset {
            return h;
        }
        offset = fitted;
    }
}

/// Writes the installer to a synced temp file in `out`'s directory and returns it and its
/// sha256 (of the whole file, as for every format).
pub(super) fn write_installer(
    items: &[Item],
    ctx: &Ctx<'_>,
    out: &Destination,
    how: &Compression,
    label: &Label<'_>,
) -> Result<(tempfile::NamedTempFile, String)> {
    let (mut payload, payload_sha256, _) = write_tar_temp(items, ctx, &out.dir, how)?;
    let payload_path = payload.path().to_path_buf();
    let payload_bytes = payload
        .as_file()
        .metadata()
        .map_err(PackError::io("reading", payload_path.clone()))?
        .len();
    let head = fitted_header(label, payload_bytes, &payload_sha256);

    let tmp = temp_file(&out.dir)?;
    let tmp_path = tmp.path().to_path_buf();
    let handle = tmp
        .as_file()
        .try_clone()
        .map_err(PackError::io("opening", tmp_path.clone()))?;
    let mut hw = HashWriter::new(io::BufWriter::with_capacity(1 << 20, handle));
    hw.write_all(&head)
        .map_err(PackError::io("writing", tmp_path.clone()))?;
    payload
        .as_file_mut()
        .rewind()
        .map_err(PackError::io("reading", payload_path.clone()))?;
    // 1 MiB reads: each one is a chunk for the sha256 thread.
    let mut reader = io::BufReader::with_capacity(1 << 20, payload.as_file_mut());
    io::copy(&mut reader, &mut hw).map_err(PackError::io("writing", tmp_path.clone()))?;
    let sha256 = hw
        .finish()
        .map_err(PackError::io("writing", tmp_path.clone()))?;
    tmp.as_file()
        .sync_all()
        .map_err(PackError::io("syncing", tmp_path))?;
    drop(payload);
    Ok((tmp, sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stated_offset_is_where_the_payload_starts() {
        for arcroot in [&b""[..], b"env", &[b'x'; 5000]] {
            let label = Label {
                text: "it's 1.0 (linux-64)".into(),
                arcroot,
            };
            let h = fitted_header(&label, 12345, &"a".repeat(64));
            let text = String::from_utf8(h.clone()).expect("ascii header");
            let stated: u64 = text
                .lines()
                .find_map(|l| l.strip_prefix("payload_offset="))
                .expect("offset line")
                .parse()
                .expect("a number");
            assert_eq!(stated, h.len() as u64 + 1);
            assert!(text.ends_with("exit 0\n"), "nothing runs past the header");
        }
    }
}
