//! environment.yml parsing: any bytes give a file or an error, never a panic.
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
