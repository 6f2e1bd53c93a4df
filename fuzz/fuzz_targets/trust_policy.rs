//! `.envship/trust.toml`: any bytes give a policy or an error (whose message renders), never a
//! panic. The policy file's directory holds `keys/facility.pub` (a real minisign key) so that
//! `public-key-file = "keys/facility.pub"` reads a key; it is written once, not per input, in a
//! scratch directory.
#![no_main]
use std::{path::PathBuf, sync::OnceLock};

use envship_trust::policy::TrustPolicy;
use libfuzzer_sys::fuzz_target;

#[path = "scratch.rs"]
mod scratch;

fn policy_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = scratch::dir("trust_policy");
        std::fs::create_dir_all(dir.join("keys")).expect("mkdir");
        std::fs::write(
            dir.join("keys/facility.pub"),
            include_str!("../seeds/minisign/facility.pub"),
        )
        .expect("write");
        dir.join("trust.toml")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match TrustPolicy::parse(text, policy_path()) {
        Ok(p) => assert!(!p.minisign.is_empty() || !p.github.is_empty() || p.stage.is_some()),
        Err(e) => drop(e.to_string()),
    }
});
