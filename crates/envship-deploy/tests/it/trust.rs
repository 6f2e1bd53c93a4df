//! The trust gate end to end: archives published with a minisign signature to the GitHub
//! stand-in, deployed under a root whose `.envship/trust.toml` names the key; and the staged
//! rollout between a dev and a production root.

use std::{path::Path, time::Duration};

use envship_deploy::{self as deploy, record, DeployError};
use envship_publish::{
    artifacts, publish_release, sign::sign_files, GithubConfig, RetryPolicy, Secret,
};
use envship_spec::NoProgress;
use envship_test_support::ghserver::GhServer;
use envship_trust::minisig::{keygen, SigningKey};

use crate::{
    common::{packed_env, rhel6, GOOD_TEST},
    deploy::{current, opts},
};

const TOKEN: &str = "ghp_trust_TOKEN_42";

/// The root as a listing: every entry under `ROOT/NAME`, and where `current` points.
fn state(root: &Path, name: &str) -> (Vec<String>, Option<String>) {
    let mut names: Vec<String> = std::fs::read_dir(root.join(name))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    (names, current(root, name))
}

fn publish(server: &GhServer, tag: &str, files: &[std::path::PathBuf]) -> GithubConfig {
    let cfg = GithubConfig {
        api_url: server.api_url.clone(),
        repo: "slaclab/lcls-env".into(),
        token: Some(Secret::new(TOKEN)),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(5),
            ..RetryPolicy::default()
        },
    };
    publish_release(&cfg, tag, files, false, &NoProgress).unwrap();
    cfg
}

/// `ROOT/.envship/trust.toml` trusting the public key at `public`.
fn trust_key(root: &Path, public: &Path) {
    let dir = root.join(".envship/keys");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(public, dir.join("facility.pub")).unwrap();
    std::fs::write(
        root.join(".envship/trust.toml"),
        "require = \"any\"\n[[minisign]]\npublic-key-file = \"keys/facility.pub\"\n",
    )
    .unwrap();
}

#[test]
fn a_signed_release_goes_live_and_every_forgery_is_refused_before_anything_is_written() {
    let server = GhServer::start(TOKEN);
    let dist = tempfile::tempdir().unwrap();
    let keys = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let facility = keygen(&keys.path().join("facility"), false).unwrap();
    let intruder = keygen(&keys.path().join("intruder"), false).unwrap();
    let key = SigningKey::from_file(&facility.secret).unwrap();
    trust_key(root.path(), &facility.public);

    // Signed by the facility's key: it goes live, and the record says who vouched for it.
    let d1 = dist.path().join("1");
    let a1 = packed_env(&d1, "lcls", "1", GOOD_TEST, rhel6());
    let mut files = artifacts::collect(&a1);
    files.extend(sign_files(&files, &key).unwrap());
    let cfg = publish(&server, "lcls-1", &files);
    let deploy_tag = |tag: &str| {
        let mut o = opts(&a1, root.path());
        o.source = format!("github:slaclab/lcls-env@{tag}");
        o.github = cfg.clone();
        deploy::deploy(&o, &NoProgress)
    };
    let out = deploy_tag("lcls-1").unwrap();
    let trust = out.trust.expect("verified");
    assert_eq!(trust.minisign.unwrap().key_id, facility.key_id);
    assert_eq!(current(root.path(), "lcls").as_deref(), Some("1"));
    let rec = record::read(root.path()).unwrap().pop().unwrap();
    let recorded = rec.trust.expect("recorded");
    assert_eq!(recorded["minisign"]["key_id"], facility.key_id.as_str());
    let before = state(root.path(), "lcls");

    // Release 2, signed by the facility; its signatures are kept for the forgery below.
    let d2 = dist.path().join("2");
    let a2 = packed_env(&d2, "lcls", "2", GOOD_TEST, rhel6());
    let mut genuine = artifacts::collect(&a2);
    let signatures = sign_files(&genuine, &key).unwrap();
    let kept: Vec<(String, Vec<u8>)> = signatures
        .iter()
        .map(|s| {
            let name = s.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(s).unwrap())
        })
        .collect();
    genuine.extend(signatures);
    publish(&server, "lcls-2", &genuine);

    // The same archive re-signed by another key.
    let mut resigned = artifacts::collect(&a2);
    let other = SigningKey::from_file(&intruder.secret).unwrap();
    resigned.extend(sign_files(&resigned, &other).unwrap());
    publish(&server, "lcls-2-resigned", &resigned);
    let err = deploy_tag("lcls-2-resigned").unwrap_err();
    assert!(matches!(err, DeployError::Untrusted(_)), "{err:?}");
    assert!(err.to_string().contains(&intruder.key_id), "{err}");
    assert!(err.to_string().contains("not trusted"), "{err}");
    assert_eq!(state(root.path(), "lcls"), before);

    // Unsigned.
    publish(&server, "lcls-2-unsigned", &artifacts::collect(&a2));
    let err = deploy_tag("lcls-2-unsigned").unwrap_err();
    assert!(
        err.to_string().contains("has no minisign signature"),
        "{err}"
    );
    assert_eq!(state(root.path(), "lcls"), before);

    // Replaced after signing: another archive of the same name with its own .sha256 and
    // manifest, as an attacker with write access to the release would upload, beside the
    // facility's real signatures of release 2.
    let d3 = dist.path().join("3");
    let evil = packed_env(&d3, "lcls", "2", "echo owned\n", rhel6());
    let mut forged = artifacts::collect(&evil);
    for (name, bytes) in &kept {
        std::fs::write(d3.join(name), bytes).unwrap();
    }
    forged.extend(envship_publish::sign::existing_signatures(&forged));
    publish(&server, "lcls-2-replaced", &forged);
    let err = deploy_tag("lcls-2-replaced").unwrap_err();
    assert!(
        err.to_string().contains("does not match its signature"),
        "{err}"
    );
    assert_eq!(state(root.path(), "lcls"), before);

    // The genuine release 2 goes live.
    deploy_tag("lcls-2").unwrap();
    assert_eq!(current(root.path(), "lcls").as_deref(), Some("2"));
}

#[test]
fn a_staged_rollout_needs_the_dev_root_and_its_test_first() {
    let dist = tempfile::tempdir().unwrap();
    let dev = tempfile::tempdir().unwrap();
    let prod = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(prod.path().join(".envship")).unwrap();
    std::fs::write(
        prod.path().join(".envship/trust.toml"),
        format!(
            "[stage]\nafter = \"{}\"\ntested = true\n",
            dev.path().display()
        ),
    )
    .unwrap();
    let a = packed_env(dist.path(), "psana", "4.1", GOOD_TEST, rhel6());
    let empty = state(prod.path(), "psana");

    let err = deploy::deploy(&opts(&a, prod.path()), &NoProgress).unwrap_err();
    assert!(matches!(err, DeployError::NotStaged { .. }), "{err:?}");
    assert!(err.to_string().contains("never deployed there"), "{err}");
    let help = miette::Diagnostic::help(&err).unwrap().to_string();
    assert!(
        help.contains(&format!(
            "envship deploy --root {} --test",
            dev.path().display()
        )),
        "{help}"
    );
    assert_eq!(state(prod.path(), "psana"), empty);

    deploy::deploy(&opts(&a, dev.path()), &NoProgress).unwrap();
    let err = deploy::deploy(&opts(&a, prod.path()), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("without --test"), "{err}");
    assert_eq!(state(prod.path(), "psana"), empty);

    let mut tested = opts(&a, dev.path());
    tested.test = true;
    tested.force = true;
    deploy::deploy(&tested, &NoProgress).unwrap();
    deploy::deploy(&opts(&a, prod.path()), &NoProgress).unwrap();
    assert_eq!(current(prod.path(), "psana").as_deref(), Some("4.1"));
}

#[test]
fn build_provenance_is_fetched_from_the_attestations_api_and_checked_before_anything_is_written() {
    let server = GhServer::start(TOKEN);
    let dist = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join(".envship")).unwrap();
    std::fs::write(
        root.path().join(".envship/trust.toml"),
        "[[github]]\nrepo = \"prefix-dev/sigstore-example\"\n",
    )
    .unwrap();
    let a = packed_env(dist.path(), "lcls", "1", GOOD_TEST, rhel6());
    let cfg = publish(&server, "lcls-1", &artifacts::collect(&a));
    let mut o = opts(&a, root.path());
    o.source = "github:slaclab/lcls-env@lcls-1".into();
    o.github = cfg;

    // No bundle anywhere: refused, naming what is missing.
    let err = deploy::deploy(&o, &NoProgress).unwrap_err();
    assert!(err.to_string().contains("no bundle"), "{err}");
    assert!(!root.path().join("lcls").exists());

    // A real bundle (of another file) served by the attestations API for this archive's
    // digest: it is fetched and checked, and its subject is not this archive.
    let sha = envship_test_support::sha256_hex(&std::fs::read(&a).unwrap());
    let bundle = std::fs::read_to_string(
        envship_test_support::workspace_root()
            .join("crates/envship-trust/tests/data/sigstore/conda-attestation.sigstore.json"),
    )
    .unwrap();
    server.add_attestation(&sha, serde_json::from_str(&bundle).unwrap());
    let err = deploy::deploy(&o, &NoProgress).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("attests signed-package-2.1.0-hb0f4dca_0.conda"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("but the file is sha256:{sha}")),
        "{msg}"
    );
    assert!(server.count("GET", &format!("/attestations/sha256:{sha}")) >= 1);
    assert!(!root.path().join("lcls").exists());
}
