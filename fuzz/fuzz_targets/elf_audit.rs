//! The ELF audit of arbitrary bytes: the parser, then a whole audit of a prefix holding the
//! bytes as an executable and as a library; errors are fine, panics are not.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = envship_audit::parse_elf(data);
    if !data.starts_with(b"\x7fELF") {
        return;
    }
    let root = tempfile::tempdir().expect("tempdir");
    for rel in ["bin/x", "lib/libx.so.1"] {
        let p = root.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write");
    }
    let target = envship_spec::Target::builtin("lcls-rhel6").expect("target");
    let opts = envship_audit::AuditOptions::new(target);
    let _ = envship_audit::audit(root.path(), &opts, &envship_spec::NoProgress);
});
