//! environment.yml parsing: any bytes give a file or an error, never a panic.
//!
//! This target does not reach a million executions in 10 minutes: a 2-minute run made 283
//! exec/s with inputs of up to 8 KiB (corpus average 1.6 KiB), ~3.5 ms of CPU each, all of it
//! in the parser (marked_yaml, then every entry's match spec and source location); the input
//! is only borrowed. Where that time goes is not known yet (it may grow faster than the input);
//! the cap is 4 KiB (-max_len in scripts/fuzz.sh).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = envship_spec::EnvironmentFile::from_str_with_path(
            text,
            std::path::Path::new("environment.yml"),
        );
    }
});
