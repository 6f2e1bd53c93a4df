//! Whether this host can run an archive: its subdir, glibc and kernel against what the
//! archive's target (as its manifest records it) needs.

use envship_pack::ManifestTarget;
use envship_spec::{DottedVersion, Target};

use crate::DeployError;

/// Check that `host` can run an archive made for `target` (as recorded in its manifest).
pub fn check_host(
    name: &str,
    version: &str,
    target: &ManifestTarget,
    host: &Target,
) -> Result<(), DeployError> {
    let refuse = |reason: String| DeployError::IncompatibleHost {
        name: name.into(),
        version: version.into(),
        target: target.name.clone(),
        reason,
    };
    if !target.subdir.is_empty() && target.subdir != host.subdir {
        return Err(refuse(format!("is {}, not {}", host.subdir, target.subdir)));
    }
    let (glibc, linux) = target_requirements(target);
    if let Some(g) = glibc {
        if host.glibc < g {
            return Err(refuse(format!("has glibc {} (older than {g})", host.glibc)));
        }
    }
    if let Some(l) = linux {
        if host.linux < l {
            return Err(refuse(format!(
                "runs Linux {} (older than {l})",
                host.linux
            )));
        }
    }
    Ok(())
}

/// The glibc and kernel an archive's target needs: the manifest's glibc, else the built-in
/// profile's; the kernel from the profile, with `+glibcX`/`+linuxX` override suffixes applied.
pub fn target_requirements(
    target: &ManifestTarget,
) -> (Option<DottedVersion>, Option<DottedVersion>) {
    let mut parts = target.name.split('+');
    let base = parts.next().unwrap_or_default();
    let profile = Target::builtin(base)
        .ok()
        .filter(|_| base != envship_spec::target::HOST);
    let mut glibc = profile.as_ref().map(|p| p.glibc.clone());
    let mut linux = profile.as_ref().map(|p| p.linux.clone());
    for p in parts {
        if let Some(v) = p.strip_prefix("glibc").and_then(|v| v.parse().ok()) {
            glibc = Some(v);
        } else if let Some(v) = p.strip_prefix("linux").and_then(|v| v.parse().ok()) {
            linux = Some(v);
        }
    }
    if let Some(g) = target.glibc.as_deref().and_then(|g| g.parse().ok()) {
        glibc = Some(g);
    }
    (glibc, linux)
}

/// `NAME (SUBDIR, glibc X)` for messages.
pub(crate) fn target_label(t: &ManifestTarget) -> String {
    match &t.glibc {
        Some(g) => format!("{} ({}, glibc {g})", t.name, t.subdir),
        None => format!("{} ({})", t.name, t.subdir),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mt(name: &str, glibc: Option<&str>) -> ManifestTarget {
        ManifestTarget {
            name: name.into(),
            subdir: "linux-64".into(),
            glibc: glibc.map(Into::into),
        }
    }

    fn host(glibc: &str, linux: &str) -> Target {
        let mut h = Target::builtin("rhel8").expect("rhel8");
        h.glibc = glibc.parse().expect("v");
        h.linux = linux.parse().expect("v");
        h
    }

    #[test]
    fn host_checks() {
        assert!(check_host(
            "e",
            "1",
            &mt("lcls-rhel6", Some("2.12")),
            &host("2.12", "2.6.32")
        )
        .is_ok());
        let e =
            check_host("e", "1", &mt("rhel8", None), &host("2.17", "5.0")).expect_err("old glibc");
        assert!(
            e.to_string().contains("glibc 2.17 (older than 2.28)"),
            "{e}"
        );
        let e = check_host("e", "1", &mt("rhel8", None), &host("2.28", "3.10"))
            .expect_err("old kernel");
        assert!(
            e.to_string().contains("Linux 3.10 (older than 4.18)"),
            "{e}"
        );
        let e = check_host(
            "e",
            "1",
            &mt("lcls-rhel6+glibc2.17", None),
            &host("2.12", "2.6.32"),
        )
        .expect_err("override");
        assert!(e.to_string().contains("older than 2.17"), "{e}");
        let mut osx = mt("custom", None);
        osx.subdir = "osx-64".into();
        let e = check_host("e", "1", &osx, &host("2.28", "4.18")).expect_err("subdir");
        assert!(e.to_string().contains("not osx-64"), "{e}");
        // An unknown profile with no glibc recorded: only the subdir can be checked.
        assert!(check_host("e", "1", &mt("custom", None), &host("2.5", "2.6")).is_ok());
    }
}
