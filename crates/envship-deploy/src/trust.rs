//! The trust gate: before anything is written, an archive must satisfy the root's
//! `.envship/trust.toml` and the command line's policy (envship-trust checks signatures and
//! provenance), and, when the policy has a `[stage]`, must have been deployed (and tested) in
//! the root it names first: that rule reads the other root's `deployments.jsonl`, which this
//! crate owns.

use std::path::Path;

use envship_trust::{
    check::{self, TrustOptions, Verified},
    policy::{Stage, TrustPolicy},
};

use crate::{record, DeployError};

/// Apply every policy that holds under `root` to `archive` (and, where a policy trusts minisign
/// keys, to its manifest too: deploy takes the name and version from it). `Ok(None)` when no
/// policy applies.
pub fn check_trust(
    root: &Path,
    archive: &Path,
    manifest: &Path,
    sha256: &str,
    opts: &TrustOptions,
    fetch_bundle: &dyn Fn() -> Result<(), DeployError>,
) -> Result<Option<Verified>, DeployError> {
    let policies = opts.policies(Some(root)).map_err(DeployError::untrusted)?;
    if policies.is_empty() {
        return Ok(None);
    }
    // No bundle came with the archive: the source may have one elsewhere (GitHub keeps
    // attestations by digest).
    if policies.iter().any(|p| !p.github.is_empty()) && !check::bundle_path(archive).is_file() {
        fetch_bundle()?;
    }
    let refs: Vec<&TrustPolicy> = policies.iter().collect();
    let verified =
        check::check(archive, &refs, None, &opts.roots).map_err(DeployError::untrusted)?;
    let signed: Vec<TrustPolicy> = policies
        .iter()
        .filter(|p| !p.minisign.is_empty())
        .map(|p| TrustPolicy {
            github: Vec::new(),
            ..p.clone()
        })
        .collect();
    let signed_refs: Vec<&TrustPolicy> = signed.iter().collect();
    // Only when the archive's own minisign signature was what held: a provenance-only pass
    // leaves the manifest checked by its sha256 record alone.
    if verified.minisign.is_some() && !signed_refs.is_empty() {
        check::check(manifest, &signed_refs, None, &opts.roots).map_err(DeployError::untrusted)?;
    }
    for p in &policies {
        if let Some(stage) = &p.stage {
            check_stage(stage, sha256, archive)?;
        }
    }
    Ok(Some(verified))
}

/// The archive with `sha256` was deployed under `stage.after` (and its `--test` passed when
/// `stage.tested`).
fn check_stage(stage: &Stage, sha256: &str, archive: &Path) -> Result<(), DeployError> {
    let records = record::read(&stage.after)?;
    let deployed: Vec<_> = records
        .iter()
        .filter(|r| r.action == "deploy" && r.sha256.as_deref() == Some(sha256))
        .collect();
    let passed = deployed.iter().any(|r| r.result == "success");
    let tested = deployed
        .iter()
        .any(|r| r.result == "success" && r.test_log.is_some());
    let missing = if !passed {
        Some("it was never deployed there")
    } else if stage.tested && !tested {
        Some("it was deployed there without --test")
    } else {
        None
    };
    match missing {
        None => Ok(()),
        Some(why) => Err(DeployError::NotStaged {
            archive: archive.to_path_buf(),
            after: stage.after.clone(),
            why,
            command: format!(
                "envship deploy --root {}{} {}",
                stage.after.display(),
                if stage.tested { " --test" } else { "" },
                archive.display()
            ),
        }),
    }
}

/// One line for the actions and `envship deployments`: the key, or the repository, workflow and
/// commit, that vouched for the archive.
pub fn trust_summary(v: &Verified) -> String {
    let mut parts = Vec::new();
    if let Some(m) = &v.minisign {
        parts.push(format!("minisign key {}", m.key_id));
    }
    if let Some(g) = &v.github {
        parts.push(format!(
            "build provenance from {} ({} at {}, commit {})",
            g.repo, g.workflow, g.git_ref, g.commit
        ));
    }
    format!("{} (policy: {})", parts.join(", "), v.policies.join(", "))
}

/// What `envship verify-release` checks.
#[derive(Clone, Debug)]
pub struct ReleaseCheck {
    /// The file.
    pub file: std::path::PathBuf,
    /// A deployment root whose policy applies.
    pub root: Option<std::path::PathBuf>,
    /// The command line's policy and the Sigstore roots.
    pub trust: TrustOptions,
}

/// Deploy's trust gate without the deploy: an archive's `.sha256` and manifest are checked
/// when they are beside it, then the policies (and a root's `[stage]`) are applied.
pub fn verify_release(opts: &ReleaseCheck) -> Result<Verified, DeployError> {
    let policies = opts
        .trust
        .policies(opts.root.as_deref())
        .map_err(DeployError::untrusted)?;
    if policies.is_empty() {
        return Err(DeployError::NoPolicy {
            root: opts.root.clone(),
        });
    }
    let name = opts
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let is_archive = envship_pack::archive_stem(&name) != name;
    let fetched = crate::source::Fetched::local_file(opts.file.clone());
    if is_archive && fetched.manifest_file.is_some() {
        let v = crate::verify::verify(&fetched)?;
        let root = opts.root.clone().unwrap_or_default();
        let with_root = TrustOptions {
            flags: None,
            ..opts.trust.clone()
        };
        // The root's policy (with its stage rule) through the deploy gate, then the flags'.
        let mut verified = match &opts.root {
            Some(_) => check_trust(
                &root,
                &opts.file,
                &v.manifest_path,
                &v.sha256,
                &with_root,
                &|| Ok(()),
            )?
            .unwrap_or_default(),
            None => Verified::default(),
        };
        if let Some(flags) = &opts.trust.flags {
            let more = check::check(&opts.file, &[flags], None, &opts.trust.roots)
                .map_err(DeployError::untrusted)?;
            verified.policies.extend(more.policies);
            verified.minisign = verified.minisign.or(more.minisign);
            verified.github = verified.github.or(more.github);
        }
        return Ok(verified);
    }
    let refs: Vec<&TrustPolicy> = policies.iter().collect();
    check::check(&opts.file, &refs, None, &opts.trust.roots).map_err(DeployError::untrusted)
}
