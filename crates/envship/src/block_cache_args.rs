//! The flags of the compressed-block cache, shared by `pack` and `ship`.

use std::path::{Path, PathBuf};

use envship_pack::BlockReuse;

/// Where the cache lives and how big it may grow.
#[derive(clap::Args, Debug, Clone)]
pub struct BlockCacheArgs {
    /// Compress every block again instead of reusing the compressed blocks of earlier packs
    /// (tar.gz and tar.zst; the archive is byte-identical either way).
    #[arg(long)]
    pub no_reuse: bool,
    /// The block cache's size bound (e.g. 4G, 500M); the least recently used blocks go first.
    #[arg(
        long,
        value_name = "SIZE",
        env = "ENVSHIP_BLOCK_CACHE_SIZE",
        default_value = "4G",
        value_parser = parse_size
    )]
    pub block_cache_size: u64,
}

impl BlockCacheArgs {
    /// The library's option: `blocks/` in `cache_dir` (`--cache-dir`, else `ENVSHIP_CACHE_DIR`),
    /// else in the user's cache directory (`$XDG_CACHE_HOME/envship`, `~/.cache/envship`).
    pub fn reuse(&self, cache_dir: Option<&Path>) -> BlockReuse {
        if self.no_reuse {
            return BlockReuse::Off;
        }
        let base = cache_dir
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("ENVSHIP_CACHE_DIR").map(PathBuf::from))
            .map(|d| d.join("envship-blocks"))
            .or_else(|| {
                std::env::var_os("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                    .map(|c| c.join("envship").join("blocks"))
            });
        match base {
            Some(dir) => BlockReuse::Cache {
                dir,
                max_bytes: self.block_cache_size,
            },
            None => BlockReuse::Off,
        }
    }
}

/// A size with an optional K, M, G or T suffix (powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("{s:?}: the suffix is K, M, G or T")),
            };
            (&t[..i], mult)
        }
        _ => (t, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a size (e.g. 4G, 500M, 1048576)"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("4G"), Ok(4 << 30));
        assert_eq!(parse_size("500m"), Ok(500 << 20));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("4X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
