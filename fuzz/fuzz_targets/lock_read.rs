//! Lock-file reading (envship.lock, rattler's format): any bytes give records or an error.
//! The reader takes a path: each input is written over one file on tmpfs ([`scratch`]), not
//! into a new temp dir.
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
