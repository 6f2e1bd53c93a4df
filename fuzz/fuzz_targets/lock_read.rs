//! Lock-file reading (envship.lock, rattler's format): any bytes give records or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("envship.lock");
    std::fs::write(&p, data).expect("write");
    let target = envship_spec::Target::builtin("lcls-rhel6").expect("target");
    let _ = envship_env::lock::read_lock_records(&p, &target);
});
