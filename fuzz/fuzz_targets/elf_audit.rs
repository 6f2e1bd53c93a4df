//! The ELF audit of arbitrary bytes: the parser, then a whole audit of a prefix holding the
//! bytes as an executable and as a library; errors are fine, panics are not.
//!
//! The audit half cannot reach a million executions in 10 minutes: it is the audit of a real
//! prefix (both files written, the tree listed and read, the loader's search run over it). The
//! prefix is a reused directory on tmpfs ([`scratch`]) rather than a temp dir per input, and
//! only inputs that start like an ELF file get that far; the parser alone is fast.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "scratch.rs"]
mod scratch;

fuzz_target!(|data: &[u8]| {
    let _ = envship_audit::parse_elf(data);
    if !data.starts_with(b"\x7fELF") {
        return;
    }
    let root = scratch::dir("elf_audit");
    for rel in ["bin/x", "lib/libx.so.1"] {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, data).expect("write");
    }
    let target = envship_spec::Target::builtin("lcls-rhel6").expect("target");
    let opts = envship_audit::AuditOptions::new(target);
    let _ = envship_audit::audit(root, &opts, &envship_spec::NoProgress);
});
