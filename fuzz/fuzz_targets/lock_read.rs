//! Lock-file reading (envship.lock, rattler's format): any bytes give records or an error.
//! The reader takes a path: each input is written over one file on tmpfs ([`scratch`]), not
//! into a new temp dir.
//!
//! This target does not reach a million executions in 10 minutes: what an input costs is
//! rattler_lock's reading of it (YAML into its whole lock model, every URL, version and match
//! spec parsed), about 1.5 ms of CPU for inputs of up to 16 KiB, not the file write. The cap is
//! therefore small (-max_len=4096 in scripts/fuzz.sh; the small v4 and v5 seeds are ~1.3 KiB).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "scratch.rs"]
mod scratch;

fuzz_target!(|data: &[u8]| {
    let p = scratch::dir("lock_read").join("envship.lock");
    std::fs::write(&p, data).expect("write");
    let target = envship_spec::Target::builtin("lcls-rhel6").expect("target");
    let _ = envship_env::lock::read_lock_records(&p, &target);
});
