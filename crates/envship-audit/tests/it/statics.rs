//! Static executables (issue 12): no interpreter, no `DT_NEEDED`, no symbol versions. What the
//! audit says about each kind, on real binaries built here:
//! * musl (`musl-gcc -static`) and freestanding code (raw system calls, as Go binaries are):
//!   they need nothing of the target, carry no kernel tag, and pass every target;
//! * glibc (`gcc -static`, `-static-pie`): glibc is inside, so no glibc version is needed,
//!   but glibc's `NT_GNU_ABI_TAG` stays and is checked (Debian 12's glibc says Linux 3.2.0,
//!   so such a binary fails lcls-rhel6 on the kernel and passes rhel7);
//! * glibc with NSS (`getpwnam`): as above, plus a warning, because at run time it loads the
//!   target's libnss_* modules, which must come from the glibc release it was linked with.
use envship_test_support::Deadline;

use std::{path::Path, process::Command};

use envship_audit::Check;
use envship_test_support::skip;

use crate::support::{audit_for, compile, errors, have, installed, of_check, rel_message};

const HELLO: &str = "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n";
const NSS: &str = "#include <pwd.h>\n#include <stdio.h>\nint main(void){struct passwd *p = getpwnam(\"root\"); printf(\"%s\\n\", p ? p->pw_dir : \"?\"); return 0;}\n";
const FREESTANDING: &str =
    "void _start(void){ __asm__ volatile(\"mov $60, %eax\\n xor %edi, %edi\\n syscall\"); }\n";

fn runs(exe: &Path) {
    let status = Command::new(exe).status_in_time().unwrap();
    assert!(status.success(), "{}", exe.display());
}

fn static_prefix(build: impl FnOnce(&Path)) -> tempfile::TempDir {
    let prefix = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(prefix.path().join("bin")).unwrap();
    build(&prefix.path().join("bin"));
    prefix
}

#[test]
fn static_musl_and_freestanding_executables_pass_lcls_rhel6() {
    let test = "static_musl_and_freestanding_executables_pass_lcls_rhel6";
    if !have("gcc") {
        return;
    }
    if !installed("musl-gcc") {
        skip(
            test,
            "musl-gcc is not installed (apt-get install musl-tools)",
        );
        return;
    }
    let prefix = static_prefix(|bin| {
        compile(
            "musl-gcc",
            HELLO,
            "c",
            &bin.join("hello-musl"),
            &["-static"],
        );
        compile(
            "gcc",
            FREESTANDING,
            "c",
            &bin.join("bare"),
            &["-static", "-nostdlib", "-ffreestanding"],
        );
    });
    for exe in ["hello-musl", "bare"] {
        runs(&prefix.path().join("bin").join(exe));
    }
    let report = audit_for(prefix.path(), "lcls-rhel6");
    assert!(report.findings.is_empty(), "{}", rel_message(&report));
    for f in report.files.as_ref().unwrap() {
        let e = &f.elf;
        assert!(e.is_static(), "{}: {e:?}", f.path);
        assert!(e.interp.is_none() && e.needed.is_empty() && e.version_needs.is_empty());
        assert_eq!(e.abi_tag, None, "{}", f.path);
        assert!(f.libraries.is_empty(), "{}", f.path);
    }
}

#[test]
fn static_glibc_executables_are_judged_by_their_kernel_tag() {
    if !have("gcc") {
        return;
    }
    let prefix = static_prefix(|bin| {
        compile("gcc", HELLO, "c", &bin.join("hello-static"), &["-static"]);
        compile(
            "gcc",
            HELLO,
            "c",
            &bin.join("hello-static-pie"),
            &["-static-pie"],
        );
    });
    for exe in ["hello-static", "hello-static-pie"] {
        runs(&prefix.path().join("bin").join(exe));
    }
    let report = audit_for(prefix.path(), "lcls-rhel6");
    let files = report.files.as_ref().unwrap();
    assert_eq!(files.len(), 2);
    for f in files {
        assert!(f.elf.is_static(), "{}: {:?}", f.path, f.elf);
        assert!(f.elf.version_needs.is_empty(), "{}", f.path);
    }
    assert!(
        files.iter().any(|f| f.elf.pie),
        "the static-pie has DF_1_PIE"
    );
    assert!(
        of_check(&report, Check::Glibc).is_empty(),
        "{}",
        rel_message(&report)
    );
    // Every error is the kernel tag, one per binary, and only when the tag is above 2.6.32.
    let tagged: Vec<_> = files
        .iter()
        .filter(|f| {
            f.elf
                .abi_tag
                .as_ref()
                .is_some_and(|k| k.to_string() != "2.6.32")
        })
        .collect();
    let errs = errors(&report);
    assert_eq!(errs.len(), tagged.len(), "{}", rel_message(&report));
    for e in &errs {
        assert_eq!(e.check, Check::Kernel, "{}", e.message);
        assert!(e.message.contains("kernel too old"), "{}", e.message);
    }
    // On a kernel the tag allows, nothing remains.
    let rhel9 = audit_for(prefix.path(), "rhel9");
    assert!(rhel9.findings.is_empty(), "{}", rel_message(&rhel9));
}

#[test]
fn static_glibc_with_nss_is_a_warning() {
    if !have("gcc") {
        return;
    }
    let prefix = static_prefix(|bin| {
        compile("gcc", NSS, "c", &bin.join("whoami-static"), &["-static"]);
    });
    runs(&prefix.path().join("bin/whoami-static"));
    let report = audit_for(prefix.path(), "rhel9");
    let link = of_check(&report, Check::Linkage);
    assert_eq!(link.len(), 1, "{}", rel_message(&report));
    assert_eq!(link[0].severity, envship_audit::Severity::Warning);
    assert!(
        link[0].message.contains("libnss_") && link[0].message.contains("glibc release"),
        "{}",
        link[0].message
    );
    assert!(report.passed());
}
