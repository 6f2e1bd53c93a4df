//! Root filesystems for `--rootfs`: a directory as is, or an image tarball (`docker save`, or an
//! OCI image layout in a tar) whose layers are unpacked once into a cache keyed by the tarball's
//! sha256, honouring whiteouts (`.wh.NAME` deletes NAME from lower layers, `.wh..wh..opq` hides
//! a directory's lower-layer contents).

use std::{
    collections::{HashMap, HashSet},
    io::{BufReader, Read},
    path::{Component, Path, PathBuf},
};

use envship_pack::format::Magic;
use envship_spec::{Progress, ProgressUnit};

use crate::{RootfsSource, SandboxError};

/// A directory holding the userland for `source`: the directory itself, or the cached unpack of
/// the tarball (unpacked now if not cached yet).
pub fn prepare_rootfs(
    source: &RootfsSource,
    cache_dir: Option<&Path>,
    progress: &dyn Progress,
) -> Result<PathBuf, SandboxError> {
    match source {
        RootfsSource::Dir(dir) => {
            check_rootfs_dir(dir)?;
            Ok(dir.clone())
        }
        RootfsSource::Tarball(tarball) => {
            let cache = match cache_dir {
                Some(c) => c.to_path_buf(),
                None => default_cache_dir().ok_or_else(|| SandboxError::Rootfs {
                    path: tarball.clone(),
                    reason: "no cache directory (HOME is not set)".into(),
                })?,
            };
            unpack_image_cached(tarball, &cache, progress)
        }
    }
}

/// `~/.cache/envship/rootfs` (XDG_CACHE_HOME honoured).
pub fn default_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("envship").join("rootfs"))
}

fn check_rootfs_dir(dir: &Path) -> Result<(), SandboxError> {
    let meta = fs_err::metadata(dir).map_err(|e| SandboxError::Rootfs {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    if !meta.is_dir() {
        return Err(SandboxError::Rootfs {
            path: dir.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    if !dir.join("usr").exists() && !dir.join("bin").exists() {
        return Err(SandboxError::Rootfs {
            path: dir.to_path_buf(),
            reason: "does not look like a root filesystem: no usr/ or bin/".into(),
        });
    }
    if !dir.join("bin/bash").exists() && !dir.join("usr/bin/bash").exists() {
        return Err(SandboxError::Rootfs {
            path: dir.to_path_buf(),
            reason: "has no bash (bin/bash): the test runner and test scripts need it".into(),
        });
    }
    Ok(())
}

fn rootfs_err(path: &Path, reason: impl Into<String>) -> SandboxError {
    SandboxError::Rootfs {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Unpacks `tarball` into `cache/<sha256>` unless already there.
pub fn unpack_image_cached(
    tarball: &Path,
    cache: &Path,
    progress: &dyn Progress,
) -> Result<PathBuf, SandboxError> {
    let sha = sha256_file(tarball, progress)?;
    let target = cache.join(&sha);
    if target.is_dir() {
        tracing::debug!(
            "rootfs {} cached at {}",
            tarball.display(),
            target.display()
        );
        return Ok(target);
    }
    fs_err::create_dir_all(cache).map_err(|e| SandboxError::io("create", cache, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".unpack-")
        .tempdir_in(cache)
        .map_err(|e| SandboxError::io("create a temp dir in", cache, e))?;
    let root = tmp.path().join("rootfs");
    fs_err::create_dir(&root).map_err(|e| SandboxError::io("create", &root, e))?;
    let layers = image_layers(tarball)?;
    progress.start("rootfs", Some(layers.len() as u64), ProgressUnit::Items);
    let mut dir_modes = Vec::new();
    for layer in &layers {
        progress.message("rootfs", layer);
        let file = open_tar(tarball)?;
        let mut outer = tar::Archive::new(BufReader::new(file));
        let mut found = false;
        for entry in outer
            .entries()
            .map_err(|e| rootfs_err(tarball, format!("not a tar file: {e}")))?
        {
            let entry = entry.map_err(|e| rootfs_err(tarball, format!("corrupt tar: {e}")))?;
            let name = entry_name(&entry);
            if name == *layer {
                let reader = decompress(BufReader::new(entry))
                    .map_err(|e| rootfs_err(tarball, format!("layer {layer}: {e}")))?;
                apply_layer(reader, &root, &mut dir_modes)
                    .map_err(|e| rootfs_err(tarball, format!("layer {layer}: {e}")))?;
                found = true;
                break;
            }
        }
        if !found {
            return Err(rootfs_err(
                tarball,
                format!("layer {layer} is named in the manifest but missing"),
            ));
        }
        progress.advance("rootfs", 1);
    }
    progress.finish("rootfs");
    // Directory modes last: a read-only directory must not stop later entries.
    for (dir, mode) in dir_modes.iter().rev() {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(*mode));
    }
    match std::fs::rename(&root, &target) {
        Ok(()) => {}
        // Another process unpacked the same image meanwhile: use theirs.
        Err(_) if target.is_dir() => {}
        Err(e) => return Err(SandboxError::io("rename into", &target, e)),
    }
    drop(tmp);
    Ok(target)
}

fn open_tar(tarball: &Path) -> Result<std::fs::File, SandboxError> {
    std::fs::File::open(tarball).map_err(|e| SandboxError::Rootfs {
        path: tarball.to_path_buf(),
        reason: format!("cannot open: {e}"),
    })
}

fn sha256_file(path: &Path, progress: &dyn Progress) -> Result<String, SandboxError> {
    let mut f = open_tar(path)?;
    let len = f.metadata().map(|m| m.len()).ok();
    progress.start("rootfs-hash", len, ProgressUnit::Bytes);
    let sum = envship_spec::digest::sha256_reader_with(&mut f, |chunk| {
        progress.advance("rootfs-hash", chunk.len() as u64);
        Ok(())
    })
    .map_err(|e| SandboxError::io("read", path, e))?;
    progress.finish("rootfs-hash");
    Ok(sum)
}

fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    let p = entry.path().map(|p| p.into_owned()).unwrap_or_default();
    normalize(&p)
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A relative path without `.`, or `None` if it escapes (`..`).
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The layer files of the image, bottom first, from `manifest.json` (docker save) or
/// `index.json` (OCI layout).
fn image_layers(tarball: &Path) -> Result<Vec<String>, SandboxError> {
    // Manifests, indexes and configs are small; layers are not read here.
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    let file = open_tar(tarball)?;
    let mut outer = tar::Archive::new(BufReader::new(file));
    for entry in outer
        .entries()
        .map_err(|e| rootfs_err(tarball, format!("not a tar file: {e}")))?
    {
        let mut entry = entry.map_err(|e| rootfs_err(tarball, format!("corrupt tar: {e}")))?;
        if entry.header().entry_type().is_file() && entry.size() <= 4 << 20 {
            let name = entry_name(&entry);
            let mut buf = Vec::new();
            entry
                .read_to_end(&mut buf)
                .map_err(|e| rootfs_err(tarball, format!("corrupt tar: {e}")))?;
            if buf.first().is_some_and(|b| *b == b'{' || *b == b'[') {
                small.insert(name, buf);
            }
        }
    }
    let json = |name: &str| -> Result<serde_json::Value, SandboxError> {
        let bytes = small
            .get(name)
            .ok_or_else(|| rootfs_err(tarball, format!("{name} is missing")))?;
        serde_json::from_slice(bytes).map_err(|e| rootfs_err(tarball, format!("{name}: {e}")))
    };
    if small.contains_key("manifest.json") {
        let m = json("manifest.json")?;
        let images = m.as_array().cloned().unwrap_or_default();
        let first = images
            .first()
            .ok_or_else(|| rootfs_err(tarball, "manifest.json lists no image"))?;
        if images.len() > 1 {
            tracing::warn!(
                "{} holds {} images; using the first",
                tarball.display(),
                images.len()
            );
        }
        let layers = first["Layers"]
            .as_array()
            .ok_or_else(|| rootfs_err(tarball, "manifest.json: no Layers"))?;
        return Ok(layers
            .iter()
            .filter_map(|l| l.as_str())
            .filter_map(|l| normalize(Path::new(l)))
            .map(|p| p.to_string_lossy().into_owned())
            .collect());
    }
    if small.contains_key("index.json") {
        let blob = |digest: &str| digest.replacen(':', "/", 1);
        let mut doc = json("index.json")?;
        for _ in 0..4 {
            if let Some(layers) = doc["layers"].as_array() {
                return Ok(layers
                    .iter()
                    .filter_map(|l| l["digest"].as_str())
                    .map(|d| format!("blobs/{}", blob(d)))
                    .collect());
            }
            let manifests = doc["manifests"].as_array().cloned().unwrap_or_default();
            let pick = manifests
                .iter()
                .find(|m| {
                    m["platform"]["os"] == "linux"
                        && (m["platform"]["architecture"] == std::env::consts::ARCH
                            || (std::env::consts::ARCH == "x86_64"
                                && m["platform"]["architecture"] == "amd64")
                            || (std::env::consts::ARCH == "aarch64"
                                && m["platform"]["architecture"] == "arm64"))
                })
                .or_else(|| manifests.first())
                .ok_or_else(|| rootfs_err(tarball, "index.json lists no manifest"))?;
            let digest = pick["digest"]
                .as_str()
                .ok_or_else(|| rootfs_err(tarball, "index.json: manifest without digest"))?;
            doc = json(&format!("blobs/{}", blob(digest)))?;
        }
        return Err(rootfs_err(tarball, "index.json: nested too deeply"));
    }
    Err(rootfs_err(
        tarball,
        "neither manifest.json (docker save) nor index.json (OCI layout) found: not an image tarball",
    ))
}

/// gzip, zstd or plain, by magic bytes.
/// A layer's reader, decompressed by what its first bytes say (envship-pack's [`Magic`]).
fn decompress<'a, R: Read + 'a>(mut r: BufReader<R>) -> std::io::Result<Box<dyn Read + 'a>> {
    use std::io::BufRead;
    match Magic::of(r.fill_buf()?) {
        Some(Magic::Gzip) => Ok(Box::new(flate2::read::MultiGzDecoder::new(r))),
        Some(Magic::Zstd) => Ok(Box::new(zstd::stream::read::Decoder::with_buffer(r)?)),
        Some(m @ (Magic::Bzip2 | Magic::Xz)) => Err(std::io::Error::other(format!(
            "{}-compressed layers are not supported (gzip, zstd or plain tar are)",
            m.name()
        ))),
        _ => Ok(Box::new(r)),
    }
}

fn remove_any(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            make_tree_writable(path);
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Gives the owner write permission on every directory under `path` (so it can be removed).
pub(crate) fn make_tree_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if let Ok(m) = std::fs::symlink_metadata(&dir) {
            if m.is_dir() {
                let mode = m.permissions().mode();
                if mode & 0o700 != 0o700 {
                    let _ = std::fs::set_permissions(
                        &dir,
                        std::fs::Permissions::from_mode(mode | 0o700),
                    );
                }
                if let Ok(rd) = std::fs::read_dir(&dir) {
                    stack.extend(rd.flatten().map(|e| e.path()));
                }
            }
        }
    }
}

/// Applies one layer on `root`.
fn apply_layer(
    reader: impl Read,
    root: &Path,
    dir_modes: &mut Vec<(PathBuf, u32)>,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_mtime(true);
    ar.set_overwrite(true);
    ar.set_unpack_xattrs(false);
    let mut this_layer: HashSet<PathBuf> = HashSet::new();
    for entry in ar.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let Some(rel) = normalize(&raw) else {
            continue;
        };
        let Some(name) = rel.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        if name == ".wh..wh..opq" {
            if let Ok(rd) = std::fs::read_dir(root.join(&parent)) {
                for child in rd.flatten() {
                    let child_rel = parent.join(child.file_name());
                    if !this_layer.contains(&child_rel) {
                        remove_any(&child.path());
                    }
                }
            }
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            remove_any(&root.join(&parent).join(hidden));
            continue;
        }
        let kind = entry.header().entry_type();
        if kind.is_character_special() || kind.is_block_special() || kind.is_fifo() {
            // Devices come from the sandbox's own /dev; mknod needs privileges.
            continue;
        }
        let dst = root.join(&rel);
        if let Ok(existing) = std::fs::symlink_metadata(&dst) {
            if !(existing.is_dir() && kind.is_dir()) {
                remove_any(&dst);
            }
        }
        this_layer.insert(rel.clone());
        entry.unpack_in(root)?;
        if kind.is_dir() {
            let mode = entry.header().mode().unwrap_or(0o755) & 0o7777;
            dir_modes.push((dst.clone(), mode));
            let _ = std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(mode | 0o700));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use envship_spec::NoProgress;
    use sha2::{Digest, Sha256};

    fn layer(entries: &[(&str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut h = tar::Header::new_gnu();
            match content {
                Some(c) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(c.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, path, c.as_bytes()).expect("append");
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, path, &[][..]).expect("append");
                }
            }
        }
        b.into_inner().expect("tar")
    }

    fn docker_save(layers: &[Vec<u8>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut names = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let name = format!("{i:064}/layer.tar");
            let mut h = tar::Header::new_gnu();
            h.set_size(l.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, &name, &l[..]).expect("append");
            names.push(name);
        }
        let manifest =
            serde_json::json!([{"Config": "config.json", "RepoTags": ["t:1"], "Layers": names}]);
        let m = serde_json::to_vec(&manifest).expect("json");
        let mut h = tar::Header::new_gnu();
        h.set_size(m.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, "manifest.json", &m[..])
            .expect("append");
        b.into_inner().expect("tar")
    }

    #[test]
    fn whiteouts_are_honoured() {
        let tmp = tempfile::tempdir().expect("tmp");
        let l1 = layer(&[
            ("etc/", None),
            ("etc/keep", Some("1")),
            ("etc/gone", Some("1")),
            ("opt/", None),
            ("opt/old/", None),
            ("opt/old/a", Some("1")),
        ]);
        let l2 = layer(&[
            ("etc/.wh.gone", Some("")),
            ("etc/new", Some("2")),
            ("opt/old/", None),
            ("opt/old/b", Some("2")),
            ("opt/old/.wh..wh..opq", Some("")),
        ]);
        let tarball = tmp.path().join("img.tar");
        std::fs::write(&tarball, docker_save(&[l1, l2])).expect("write");
        let cache = tmp.path().join("cache");
        let root = unpack_image_cached(&tarball, &cache, &NoProgress).expect("unpack");
        assert!(root.join("etc/keep").is_file());
        assert!(root.join("etc/new").is_file());
        assert!(!root.join("etc/gone").exists());
        assert!(!root.join("etc/.wh.gone").exists());
        assert!(
            root.join("opt/old/b").is_file(),
            "same-layer entry survives opaque"
        );
        assert!(!root.join("opt/old/a").exists(), "opaque hides lower layer");
        // Cached: the second call finds the same directory.
        let again = unpack_image_cached(&tarball, &cache, &NoProgress).expect("cached");
        assert_eq!(root, again);
        assert_eq!(std::fs::read_dir(&cache).expect("ls").count(), 1);
    }

    #[test]
    fn oci_layout_and_gzip_layers() {
        use std::io::Write;
        let tmp = tempfile::tempdir().expect("tmp");
        let l1 = layer(&[("usr/", None), ("usr/hello", Some("hi"))]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&l1).expect("gz");
        let l1 = gz.finish().expect("gz");
        let d = hex::encode(Sha256::digest(&l1));
        let manifest =
            serde_json::json!({"schemaVersion": 2, "layers": [{"digest": format!("sha256:{d}")}]});
        let mbytes = serde_json::to_vec(&manifest).expect("json");
        let md = hex::encode(Sha256::digest(&mbytes));
        let index = serde_json::json!({"schemaVersion": 2, "manifests": [{"digest": format!("sha256:{md}"), "platform": {"os": "linux", "architecture": "amd64"}}]});
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in [
            (
                "oci-layout".to_string(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            (
                "index.json".to_string(),
                serde_json::to_vec(&index).expect("json"),
            ),
            (format!("blobs/sha256/{md}"), mbytes.clone()),
            (format!("blobs/sha256/{d}"), l1.clone()),
        ] {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, &name, &data[..]).expect("append");
        }
        let tarball = tmp.path().join("oci.tar");
        std::fs::write(&tarball, b.into_inner().expect("tar")).expect("write");
        let root =
            unpack_image_cached(&tarball, &tmp.path().join("c"), &NoProgress).expect("unpack");
        assert_eq!(
            std::fs::read_to_string(root.join("usr/hello")).expect("read"),
            "hi"
        );
    }

    #[test]
    fn not_an_image() {
        let tmp = tempfile::tempdir().expect("tmp");
        let tarball = tmp.path().join("plain.tar");
        std::fs::write(&tarball, layer(&[("a", Some("1"))])).expect("write");
        let err = unpack_image_cached(&tarball, &tmp.path().join("c"), &NoProgress)
            .expect_err("not an image");
        assert!(err.to_string().contains("plain.tar"), "{err}");
        assert!(format!("{err:?}").contains("manifest.json"), "{err:?}");
    }
}
