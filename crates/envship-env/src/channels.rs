//! Turning the file's channel list into channel URLs, the way conda does: names resolve against
//! the channel alias (default `https://conda.anaconda.org`, or a mirror), `defaults` expands to
//! Anaconda's main and r channels, paths resolve against the environment file's directory, and
//! `nodefaults` is only a marker.

use std::path::Path;

use envship_spec::EnvironmentFile;
use rattler_conda_types::{Channel, ChannelConfig, NamedChannelOrUrl};
use url::Url;

/// The channels conda's `defaults` stands for on Linux.
pub const DEFAULT_CHANNELS: &[&str] = &[
    "https://repo.anaconda.com/pkgs/main",
    "https://repo.anaconda.com/pkgs/r",
];

/// The channel used when the file names none: the workflow envship replaces ran Mambaforge,
/// whose only configured channel is conda-forge.
pub const FALLBACK_CHANNEL: &str = "conda-forge";

/// The alias channel names resolve against unless `--channel-alias` says otherwise.
pub const DEFAULT_CHANNEL_ALIAS: &str = "https://conda.anaconda.org";

/// A channel that cannot be resolved.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum ChannelError {
    /// The channel alias is not a URL.
    #[error("invalid channel alias `{alias}`")]
    #[diagnostic(
        code(envship::channels::alias),
        help("give a URL such as https://conda.anaconda.org")
    )]
    BadAlias {
        /// As given.
        alias: String,
        /// Why.
        #[source]
        source: url::ParseError,
    },
    /// A channel entry cannot be turned into a URL.
    #[error("invalid channel `{raw}` in {file}")]
    #[diagnostic(code(envship::channels::invalid))]
    Invalid {
        /// As written.
        raw: String,
        /// The environment file.
        file: String,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The channel configuration for a project: alias and the root for relative paths.
pub fn channel_config(root_dir: &Path, alias: Option<&str>) -> Result<ChannelConfig, ChannelError> {
    let alias = alias.unwrap_or(DEFAULT_CHANNEL_ALIAS);
    // No trailing slash: rattler appends the channel name as a path segment.
    let alias_url =
        Url::parse(alias.trim_end_matches('/')).map_err(|source| ChannelError::BadAlias {
            alias: alias.to_string(),
            source,
        })?;
    let root_dir = root_dir
        .canonicalize()
        .unwrap_or_else(|_| root_dir.to_path_buf());
    Ok(ChannelConfig {
        channel_alias: alias_url,
        root_dir,
    })
}

/// The channels to solve against, in priority order.
pub fn resolve_channels(
    file: &EnvironmentFile,
    config: &ChannelConfig,
) -> Result<Vec<Channel>, ChannelError> {
    let mut raws: Vec<String> = file
        .channels
        .iter()
        .map(|c| c.raw.clone())
        .filter(|r| r != "nodefaults")
        .collect();
    // Only a file that names no channel at all gets the fallback: `channels: [nodefaults]`
    // asks for nothing implicit (its packages then come from `chan::pkg` specs).
    if file.channels.is_empty() {
        raws.push(FALLBACK_CHANNEL.to_string());
    }
    let mut out: Vec<Channel> = Vec::new();
    for raw in raws {
        let expanded: Vec<String> = if raw == "defaults" {
            DEFAULT_CHANNELS.iter().map(|s| s.to_string()).collect()
        } else {
            vec![raw.clone()]
        };
        for item in expanded {
            let channel = item
                .parse::<NamedChannelOrUrl>()
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)
                .and_then(|c| c.into_channel(config).map_err(|e| Box::new(e) as _))
                .map_err(|source| ChannelError::Invalid {
                    raw: raw.clone(),
                    file: file.path.display().to_string(),
                    source,
                })?;
            if !out.iter().any(|c| c.base_url == channel.base_url) {
                out.push(channel);
            }
        }
    }
    Ok(out)
}

/// rattler resolves `chan::pkg` against the public alias at parse time; move such channels
/// under the configured alias so a mirror serves them too.
pub fn remap_to_alias(url: &Url, config: &ChannelConfig) -> Url {
    let public = DEFAULT_CHANNEL_ALIAS.trim_end_matches('/');
    let configured = config.channel_alias.as_str().trim_end_matches('/');
    match url.as_str().strip_prefix(public) {
        Some(rest) if public != configured => {
            Url::parse(&format!("{configured}{rest}")).unwrap_or_else(|_| url.clone())
        }
        _ => url.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn file(text: &str) -> EnvironmentFile {
        EnvironmentFile::from_str_with_path(text, Path::new("/tmp/x/environment.yml"))
            .expect("parse")
    }

    #[test]
    fn names_defaults_and_paths() {
        let f = file("channels:\n  - conda-forge\n  - defaults\n  - ./local\n  - nodefaults\n");
        let cfg = channel_config(Path::new("/tmp/x"), None).expect("cfg");
        let chans = resolve_channels(&f, &cfg).expect("resolve");
        let urls: Vec<_> = chans
            .iter()
            .map(|c| c.base_url.as_str().to_string())
            .collect();
        assert_eq!(
            urls,
            [
                "https://conda.anaconda.org/conda-forge/",
                "https://repo.anaconda.com/pkgs/main/",
                "https://repo.anaconda.com/pkgs/r/",
                "file:///tmp/x/local/",
            ]
        );
    }

    #[test]
    fn alias_points_names_at_a_mirror() {
        let f = file("channels: [conda-forge]\n");
        let cfg = channel_config(Path::new("/tmp"), Some("https://mirror.example.org/conda"))
            .expect("cfg");
        let chans = resolve_channels(&f, &cfg).expect("resolve");
        assert_eq!(
            chans[0].base_url.as_str(),
            "https://mirror.example.org/conda/conda-forge/"
        );
        let remapped = remap_to_alias(
            &Url::parse("https://conda.anaconda.org/bioconda/").expect("url"),
            &cfg,
        );
        assert_eq!(
            remapped.as_str(),
            "https://mirror.example.org/conda/bioconda/"
        );
    }

    #[test]
    fn nodefaults_alone_means_no_implicit_channel() {
        let f = file("channels: [nodefaults]\ndependencies: [idx::python]\n");
        let cfg = channel_config(Path::new("/tmp"), None).expect("cfg");
        assert!(resolve_channels(&f, &cfg).expect("resolve").is_empty());
    }

    #[test]
    fn no_channels_means_conda_forge() {
        let f = file("dependencies: [python]\n");
        let cfg = channel_config(Path::new("/tmp"), None).expect("cfg");
        let chans = resolve_channels(&f, &cfg).expect("resolve");
        assert_eq!(chans.len(), 1);
        assert!(chans[0].base_url.as_str().ends_with("/conda-forge/"));
    }
}
