//! Production targets: a conda platform, the virtual packages the solver must assume, and the
//! system libraries the target OS provides (for the audit).
//!
//! The system-library lists and the highest symbol versions they export are not hand-written:
//! they come from auditwheel's `manylinux-policy.json` (vendored with its MIT license in
//! `data/`), which is the maintained description of what each manylinux baseline — i.e. each
//! RHEL/CentOS generation — provides.

use std::{collections::BTreeMap, fmt, sync::OnceLock};

use rattler_conda_types::{GenericVirtualPackage, PackageName, Subdir, Version};
use serde::{Deserialize, Serialize};

use crate::version::DottedVersion;

/// The vendored auditwheel policy file.
const MANYLINUX_POLICY: &str = include_str!("../data/manylinux-policy.json");

/// The dynamic loader is always present on a glibc system, but the policy does not list it
/// because wheels never link it by name.
const ALWAYS_PRESENT: &[&str] = &["ld-linux-x86-64.so.2", "linux-vdso.so.1"];

/// Errors about targets and their overrides.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum TargetError {
    /// The name is not one of the built-in profiles.
    #[error("unknown target `{name}`")]
    #[diagnostic(
        code(envship::target::unknown),
        help("known targets: {known} (see `envship targets`)")
    )]
    Unknown {
        /// What was asked for.
        name: String,
        /// The built-in names, comma-separated.
        known: String,
    },

    /// An override value does not parse as a version.
    #[error("invalid value `{value}` for --{field}")]
    #[diagnostic(
        code(envship::target::bad_override),
        help("give a dotted version such as 2.17")
    )]
    BadOverride {
        /// Which field (`glibc`, `linux`, `cuda`).
        field: &'static str,
        /// The rejected value.
        value: String,
    },

    /// The host could not be inspected.
    #[error("could not detect the host's virtual packages")]
    #[diagnostic(code(envship::target::detect))]
    Detect(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// The host is not a glibc Linux system, so there is nothing to audit against.
    #[error("the host is not a glibc-based Linux system; name a target explicitly")]
    #[diagnostic(code(envship::target::host_not_glibc))]
    HostNotGlibc,
}

/// What the target OS provides to programs without shipping them: the manylinux baseline it
/// corresponds to, the sonames found on every such system, and the highest symbol version of
/// each versioned namespace (`GLIBC`, `GLIBCXX`, `CXXABI`, `GCC`, `ZLIB`, …).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemLibraries {
    /// The manylinux policy this list comes from, e.g. `manylinux_2_12`.
    pub policy: String,
    /// Sonames the system provides, sorted.
    pub libraries: Vec<String>,
    /// Highest symbol version the system provides per namespace, e.g. `GLIBCXX` → `3.4.13`.
    pub max_versions: BTreeMap<String, DottedVersion>,
}

/// A production target: where an environment must run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    /// Profile name (`lcls-rhel6`, `rhel7`, …, `host`), with `+overrides` when changed.
    pub name: String,
    /// One line for humans.
    pub description: String,
    /// The conda subdir packages are solved for.
    pub subdir: String,
    /// glibc version of the target (`__glibc`).
    pub glibc: DottedVersion,
    /// Kernel version of the target (`__linux`).
    pub linux: DottedVersion,
    /// Highest CUDA version the target's driver supports (`__cuda`), if any.
    pub cuda: Option<DottedVersion>,
    /// CPU microarchitecture (`__archspec`); generic `x86_64` unless overridden.
    pub archspec: String,
    /// What the OS provides (for the audit).
    pub system: SystemLibraries,
    /// The overrides applied to the profile (kept so a build can record how its target was
    /// asked for; reports show them through the name's suffix instead).
    #[serde(skip)]
    pub overrides: TargetOverrides,
}

/// Field-by-field changes to a target, as given on the command line or in envship.toml.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetOverrides {
    /// `--glibc`.
    pub glibc: Option<String>,
    /// `--linux` (kernel version).
    pub linux: Option<String>,
    /// `--cuda`.
    pub cuda: Option<String>,
    /// `--archspec`.
    pub archspec: Option<String>,
}

impl TargetOverrides {
    /// Whether nothing is overridden.
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    /// These overrides with `later`'s fields taking precedence where it sets them.
    pub fn merged_with(&self, later: &TargetOverrides) -> TargetOverrides {
        TargetOverrides {
            glibc: later.glibc.clone().or_else(|| self.glibc.clone()),
            linux: later.linux.clone().or_else(|| self.linux.clone()),
            cuda: later.cuda.clone().or_else(|| self.cuda.clone()),
            archspec: later.archspec.clone().or_else(|| self.archspec.clone()),
        }
    }
}

struct Builtin {
    name: &'static str,
    description: &'static str,
    glibc: &'static str,
    linux: &'static str,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "lcls-rhel6",
        description: "SLAC LCLS production (RHEL 6 / CentOS 6)",
        glibc: "2.12",
        linux: "2.6.32",
    },
    Builtin {
        name: "rhel7",
        description: "RHEL 7 / CentOS 7",
        glibc: "2.17",
        linux: "3.10",
    },
    Builtin {
        name: "rhel8",
        description: "RHEL 8 / Rocky 8 / Alma 8",
        glibc: "2.28",
        linux: "4.18",
    },
    Builtin {
        name: "rhel9",
        description: "RHEL 9 / Rocky 9 / Alma 9",
        glibc: "2.34",
        linux: "5.14",
    },
];

/// The profile a target name starts from: `rhel8+glibc2.17` → `rhel8` (names as reports and
/// manifests write them).
pub fn profile_of(name: &str) -> &str {
    name.split('+').next().unwrap_or(name)
}

/// The name of the profile that describes the machine envship runs on.
pub const HOST: &str = "host";

/// The target used when neither the command line nor envship.toml names one.
pub const DEFAULT_TARGET: &str = "lcls-rhel6";

impl Target {
    /// Names of all built-in profiles, `host` last.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTINS.iter().map(|b| b.name).chain([HOST]).collect()
    }

    /// Look up a built-in profile by name (`host` is detected).
    pub fn builtin(name: &str) -> Result<Self, TargetError> {
        if name == HOST {
            return Self::detect_host();
        }
        let b = BUILTINS
            .iter()
            .find(|b| b.name == name)
            .ok_or_else(|| TargetError::Unknown {
                name: name.to_string(),
                known: Self::builtin_names().join(", "),
            })?;
        let glibc: DottedVersion = b.glibc.parse().map_err(|_| TargetError::BadOverride {
            field: "glibc",
            value: b.glibc.into(),
        })?;
        let linux = b.linux.parse().map_err(|_| TargetError::BadOverride {
            field: "linux",
            value: b.linux.into(),
        })?;
        Ok(Self {
            name: b.name.to_string(),
            description: b.description.to_string(),
            subdir: "linux-64".to_string(),
            system: system_libraries_for(&glibc),
            glibc,
            linux,
            cuda: None,
            archspec: "x86_64".to_string(),
            overrides: TargetOverrides::default(),
        })
    }

    /// Resolve a name and overrides into a target.
    pub fn resolve(name: &str, overrides: &TargetOverrides) -> Result<Self, TargetError> {
        Self::builtin(name)?.with_overrides(overrides)
    }

    /// The machine envship runs on, detected with rattler_virtual_packages.
    pub fn detect_host() -> Result<Self, TargetError> {
        use rattler_virtual_packages::{VirtualPackageOverrides, VirtualPackages};
        let vp = VirtualPackages::detect(&VirtualPackageOverrides::default(), None)
            .map_err(|e| TargetError::Detect(Box::new(e)))?;
        let libc = vp
            .libc
            .filter(|l| l.family.eq_ignore_ascii_case("glibc"))
            .ok_or(TargetError::HostNotGlibc)?;
        let glibc = DottedVersion::parse_prefix(&libc.version.to_string())
            .ok_or(TargetError::HostNotGlibc)?;
        let linux = vp
            .linux
            .and_then(|l| DottedVersion::parse_prefix(&l.version.to_string()))
            .unwrap_or_else(|| DottedVersion::new([0]));
        let cuda = vp
            .cuda
            .and_then(|c| DottedVersion::parse_prefix(&c.version.to_string()));
        let subdir = Subdir::current()
            .map(|s| s.to_string())
            .unwrap_or_else(|| "linux-64".into());
        Ok(Self {
            name: HOST.to_string(),
            description: "this machine (detected)".to_string(),
            subdir,
            system: with_host_libraries(system_libraries_for(&glibc), HOST_LIBRARY_DIRS),
            glibc,
            linux,
            cuda,
            archspec: "x86_64".to_string(),
            overrides: TargetOverrides::default(),
        })
    }

    /// Apply field overrides; the name gains a `+glibc2.17`-style suffix so reports never pass
    /// an overridden target off as the profile.
    pub fn with_overrides(mut self, o: &TargetOverrides) -> Result<Self, TargetError> {
        let parse = |field: &'static str, v: &str| {
            v.parse::<DottedVersion>()
                .map_err(|_| TargetError::BadOverride {
                    field,
                    value: v.to_string(),
                })
        };
        let mut suffix = Vec::new();
        if let Some(g) = &o.glibc {
            self.glibc = parse("glibc", g)?;
            self.system = system_libraries_for(&self.glibc);
            suffix.push(format!("glibc{g}"));
        }
        if let Some(l) = &o.linux {
            self.linux = parse("linux", l)?;
            suffix.push(format!("linux{l}"));
        }
        if let Some(c) = &o.cuda {
            self.cuda = Some(parse("cuda", c)?);
            suffix.push(format!("cuda{c}"));
        }
        if let Some(a) = &o.archspec {
            self.archspec = a.clone();
            suffix.push(format!("archspec-{a}"));
        }
        if !suffix.is_empty() {
            self.name = format!("{}+{}", self.name, suffix.join("+"));
        }
        self.overrides = self.overrides.merged_with(o);
        Ok(self)
    }

    /// The built-in profile this target starts from (the name without its `+override` suffix).
    pub fn profile(&self) -> &str {
        profile_of(&self.name)
    }

    /// The conda subdir as rattler's type.
    pub fn subdir(&self) -> Subdir {
        self.subdir.parse().unwrap_or(Subdir::Linux64)
    }

    /// The virtual packages the solver assumes for this target (never the host's).
    pub fn virtual_packages(&self) -> Vec<GenericVirtualPackage> {
        let vp = |name: &str, version: &str, build: &str| GenericVirtualPackage {
            name: PackageName::new_unchecked(name),
            version: version.parse::<Version>().unwrap_or_else(|_| {
                // DottedVersion always renders as a valid conda version.
                Version::major(0)
            }),
            build_string: rattler_conda_types::package::BuildString::new_unchecked(build),
        };
        let mut out = vec![
            vp("__unix", "0", "0"),
            vp("__linux", &self.linux.to_string(), "0"),
            vp("__glibc", &self.glibc.to_string(), "0"),
            vp("__archspec", "1", &self.archspec),
        ];
        if let Some(cuda) = &self.cuda {
            out.push(vp("__cuda", &cuda.to_string(), "0"));
        }
        out
    }

    /// Whether the target OS provides a library with this soname.
    pub fn provides_library(&self, soname: &str) -> bool {
        ALWAYS_PRESENT.contains(&soname) || self.system.libraries.iter().any(|l| l == soname)
    }

    /// Highest version of a symbol-version namespace (`GLIBC`, `GLIBCXX`, `CXXABI`, `GCC`) the
    /// target's system libraries provide. `GLIBC` is the target's glibc itself.
    pub fn max_system_version(&self, namespace: &str) -> Option<DottedVersion> {
        if namespace == "GLIBC" {
            return Some(self.glibc.clone());
        }
        self.system.max_versions.get(namespace).cloned()
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}, glibc {}, linux {})",
            self.name, self.subdir, self.glibc, self.linux
        )
    }
}

#[derive(Deserialize)]
struct PolicyEntry {
    name: String,
    symbol_versions: BTreeMap<String, BTreeMap<String, Vec<String>>>,
    lib_whitelist: Vec<String>,
}

fn policies() -> &'static [PolicyEntry] {
    static POLICIES: OnceLock<Vec<PolicyEntry>> = OnceLock::new();
    POLICIES.get_or_init(|| {
        // The file is vendored and checked by a unit test, so it always parses.
        serde_json::from_str::<Vec<PolicyEntry>>(MANYLINUX_POLICY)
            .map(|v| {
                v.into_iter()
                    .filter(|p| p.name.starts_with("manylinux_"))
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// Where the host's dynamic loader finds system libraries (Debian multiarch and RHEL layouts).
pub const HOST_LIBRARY_DIRS: &[&str] = &[
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib/aarch64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// The `host` target runs on this machine, so every shared library its loader can find is a
/// system library there, not only the manylinux policy's short list: an environment that links
/// the host's libssl passes for `host` and still fails for a production target.
pub fn with_host_libraries(mut system: SystemLibraries, dirs: &[&str]) -> SystemLibraries {
    let mut found = std::collections::BTreeSet::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Sonames are `libNAME.so.N` or `libNAME-X.Y.so` (libdb-5.3.so); the loader finds
            // any of them by file name.
            if name.starts_with("lib") && (name.contains(".so.") || name.ends_with(".so")) {
                found.insert(name);
            }
        }
    }
    if !found.is_empty() {
        found.extend(system.libraries.drain(..));
        system.libraries = found.into_iter().collect();
        system.policy = format!("{}+host", system.policy);
    }
    system
}

/// The system libraries of the newest manylinux policy whose glibc is not newer than `glibc`.
pub fn system_libraries_for(glibc: &DottedVersion) -> SystemLibraries {
    let policy_glibc = |p: &PolicyEntry| {
        p.name
            .strip_prefix("manylinux_")
            .map(|v| v.replace('_', "."))
            .and_then(|v| v.parse::<DottedVersion>().ok())
    };
    let best = policies()
        .iter()
        .filter_map(|p| policy_glibc(p).map(|g| (g, p)))
        .filter(|(g, _)| g <= glibc)
        .max_by(|a, b| a.0.cmp(&b.0))
        .or_else(|| {
            policies()
                .iter()
                .filter_map(|p| policy_glibc(p).map(|g| (g, p)))
                .min_by(|a, b| a.0.cmp(&b.0))
        });
    let Some((_, p)) = best else {
        return SystemLibraries {
            policy: "none".into(),
            libraries: Vec::new(),
            max_versions: BTreeMap::new(),
        };
    };
    let mut libraries = p.lib_whitelist.clone();
    libraries.sort();
    let max_versions = p
        .symbol_versions
        .get("x86_64")
        .map(|ns| {
            ns.iter()
                .filter_map(|(k, vs)| {
                    vs.iter()
                        .filter_map(|v| v.parse::<DottedVersion>().ok())
                        .max()
                        .map(|m| (k.clone(), m))
                })
                .collect()
        })
        .unwrap_or_default();
    SystemLibraries {
        policy: p.name.clone(),
        libraries,
        max_versions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_libraries_come_from_the_loader_dirs() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in [
            "libssl.so.3",
            "libdb-5.3.so",
            "notalib.so.1",
            "libc.so.6",
            "libx.a",
        ] {
            std::fs::write(dir.path().join(f), "").expect("write");
        }
        let base = system_libraries_for(&DottedVersion::new([2, 17]));
        let path = dir.path().display().to_string();
        let host = with_host_libraries(base.clone(), &[path.as_str(), "/nonexistent"]);
        assert_eq!(host.policy, "manylinux_2_17+host");
        assert!(host.libraries.contains(&"libssl.so.3".to_string()));
        assert!(host.libraries.contains(&"libdb-5.3.so".to_string()));
        assert!(!host.libraries.contains(&"notalib.so.1".to_string()));
        assert!(!host.libraries.contains(&"libx.a".to_string()));
        assert_eq!(host.libraries.len(), base.libraries.len() + 2);
        // Nothing found (another OS layout): the policy list alone.
        assert_eq!(with_host_libraries(base.clone(), &["/nonexistent"]), base);
    }

    #[test]
    fn policy_file_parses() {
        assert!(policies().len() > 10);
    }

    #[test]
    fn lcls_rhel6_is_manylinux_2_12() {
        let t = Target::builtin("lcls-rhel6").expect("builtin");
        assert_eq!(t.glibc.to_string(), "2.12");
        assert_eq!(t.linux.to_string(), "2.6.32");
        assert_eq!(t.system.policy, "manylinux_2_12");
        assert_eq!(
            t.max_system_version("GLIBCXX").map(|v| v.to_string()),
            Some("3.4.13".into())
        );
        assert_eq!(
            t.max_system_version("CXXABI").map(|v| v.to_string()),
            Some("1.3.3".into())
        );
        assert_eq!(
            t.max_system_version("GCC").map(|v| v.to_string()),
            Some("4.3.0".into())
        );
        assert!(t.provides_library("libc.so.6"));
        assert!(t.provides_library("ld-linux-x86-64.so.2"));
        assert!(!t.provides_library("libssl.so.1.0.0"));
    }

    #[test]
    fn every_rhel_maps_to_its_policy() {
        for (name, policy) in [
            ("rhel7", "manylinux_2_17"),
            ("rhel8", "manylinux_2_28"),
            ("rhel9", "manylinux_2_34"),
        ] {
            assert_eq!(
                Target::builtin(name).expect("builtin").system.policy,
                policy
            );
        }
    }

    #[test]
    fn overrides_change_name_and_policy() {
        let t = Target::resolve(
            "lcls-rhel6",
            &TargetOverrides {
                glibc: Some("2.17".into()),
                cuda: Some("11.8".into()),
                ..Default::default()
            },
        )
        .expect("resolve");
        assert_eq!(t.name, "lcls-rhel6+glibc2.17+cuda11.8");
        assert_eq!(t.system.policy, "manylinux_2_17");
        let names: Vec<_> = t.virtual_packages().iter().map(|v| v.to_string()).collect();
        assert!(
            names
                .iter()
                .any(|n| n.contains("__cuda") && n.contains("11.8")),
            "{names:?}"
        );
    }

    #[test]
    fn unknown_target_lists_known() {
        let e = Target::builtin("centos5").expect_err("unknown");
        assert!(format!("{e:?}").contains("lcls-rhel6"));
    }

    #[test]
    fn bad_override_is_refused() {
        let e = Target::resolve(
            "rhel7",
            &TargetOverrides {
                glibc: Some("two".into()),
                ..Default::default()
            },
        )
        .expect_err("bad");
        assert!(e.to_string().contains("--glibc"));
    }
}
