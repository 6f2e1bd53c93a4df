//! One scratch directory per fuzzing process, made once and reused by every input: on tmpfs
//! (/dev/shm) when there is one, so that the targets that must write files pay for memory, not
//! for a disk and a new temp dir per input. A process that ends (libFuzzer exits without running
//! destructors) leaves its directory behind; the next process of the same target removes those
//! of processes that are gone.
#![allow(dead_code)] // each target uses only part of it
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn base() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// The process's scratch directory for target `name` (made on first use).
pub fn dir(name: &str) -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = base();
        let prefix = format!("envship-fuzz-{name}-");
        for e in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let file_name = e.file_name();
            let Some(pid) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = base.join(format!("{prefix}{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    })
}

/// Remove `path` (a file or a directory tree) if it exists.
pub fn clear(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).expect("emptying the scratch dir"),
        Ok(_) => std::fs::remove_file(path).expect("emptying the scratch dir"),
        Err(_) => {}
    }
}
