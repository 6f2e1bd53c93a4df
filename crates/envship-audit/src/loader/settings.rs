//! The target's loader settings: what `$LIB` and `$PLATFORM` expand to (from the host's own
//! ld.so for the `host` target, from the glibc version otherwise) and the `LD_LIBRARY_PATH` the
//! environment's activation sets.

use envship_spec::Target;

/// What the target's loader expands `$LIB` and `$PLATFORM` to, and the `LD_LIBRARY_PATH` the
/// environment's activation sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderSettings {
    /// `$LIB`: the loader's system library directory without its leading `/` (`lib64` on
    /// RHEL, `lib/x86_64-linux-gnu` on Debian).
    pub lib: String,
    /// `$PLATFORM`, when it does not depend on the CPU: `x86_64` up to glibc 2.25; from glibc
    /// 2.26 ld.so may say `haswell` or `xeon_phi` depending on the machine, so only the host's
    /// own loader can tell.
    pub platform: Option<String>,
    /// `LD_LIBRARY_PATH` entries (absolute paths; those inside the prefix are searched).
    pub library_path: Vec<String>,
    /// The audit runs on the target (`host`): directories outside the prefix named by
    /// RPATH/RUNPATH/LD_LIBRARY_PATH are looked at on this machine.
    pub host_filesystem: bool,
}

impl LoaderSettings {
    /// The settings of the target's loader, without `LD_LIBRARY_PATH`. For `host`, asked from
    /// the host's ld.so itself (`--help`, glibc 2.33+); for the RHEL profiles, the x86-64
    /// values of their glibc.
    pub fn for_target(target: &Target) -> Self {
        let host = target.name == envship_spec::target::HOST || target.name.starts_with("host+");
        if host {
            if let Some(s) = Self::from_host_loader() {
                return s;
            }
        }
        // A host whose ld.so has no --help (glibc < 2.33) still has its own file system.
        let cpu_dependent = target.glibc >= envship_spec::DottedVersion::new([2, 26]);
        Self {
            lib: "lib64".to_string(),
            platform: (!cpu_dependent).then(|| "x86_64".to_string()),
            library_path: Vec::new(),
            host_filesystem: host,
        }
    }

    /// Parse `ld.so --help`: the first "(system search path)" line is `/$LIB`, the
    /// "(AT_PLATFORM; …)" line names `$PLATFORM`.
    fn from_host_loader() -> Option<Self> {
        let out = std::process::Command::new("/lib64/ld-linux-x86-64.so.2")
            .arg("--help")
            .output()
            .ok()?;
        Self::parse_loader_help(&String::from_utf8_lossy(&out.stdout))
    }

    fn parse_loader_help(help: &str) -> Option<Self> {
        let lib = help
            .lines()
            .find_map(|l| l.trim().strip_suffix("(system search path)"))?
            .trim()
            .trim_start_matches('/')
            .to_string();
        let platform = help.lines().find_map(|l| {
            let (name, rest) = l.trim().split_once(' ')?;
            rest.starts_with("(AT_PLATFORM").then(|| name.to_string())
        });
        Some(Self {
            lib,
            platform,
            library_path: Vec::new(),
            host_filesystem: true,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_loader_help() {
        let help = "Shared library search path:\n  (libraries located via /etc/ld.so.cache)\n  /lib/x86_64-linux-gnu (system search path)\n  /usr/lib/x86_64-linux-gnu (system search path)\n\nLegacy HWCAP subdirectories under library search path directories:\n  haswell (AT_PLATFORM; supported, searched)\n  tls (supported, searched)\n";
        let s = LoaderSettings::parse_loader_help(help).expect("parse");
        assert_eq!(s.lib, "lib/x86_64-linux-gnu");
        assert_eq!(s.platform.as_deref(), Some("haswell"));
        assert!(LoaderSettings::parse_loader_help("usage: ld.so\n").is_none());
    }

    #[test]
    fn rhel_targets_know_lib_and_platform_up_to_glibc_2_25() {
        let rhel6 = Target::builtin("lcls-rhel6").expect("target");
        let s = LoaderSettings::for_target(&rhel6);
        assert_eq!(
            (s.lib.as_str(), s.platform.as_deref()),
            ("lib64", Some("x86_64"))
        );
        let rhel8 = Target::builtin("rhel8").expect("target");
        assert_eq!(LoaderSettings::for_target(&rhel8).platform, None);
    }
}
