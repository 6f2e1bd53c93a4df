//! Programs compiled here with gcc/g++ (on this host: glibc 2.34+, a recent libstdc++), the
//! host's own binaries, and runtime proof of the weak-version policy.
use envship_test_support::Deadline;

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use envship_audit::{AuditOptions, Check, Severity, Weakness};
use object::read::elf::{FileHeader, SectionHeader};

use crate::{
    readelf::cross_check_report,
    support::{audit_for, compile, errors, have, of_check, rel_message, run, target},
};

/// Set `VER_FLG_WEAK` on the named version needs of an ELF file, in place.
pub fn flag_needs_weak(path: &Path, names: &[&str]) {
    let mut data = std::fs::read(path).unwrap();
    let mut patches = Vec::new();
    {
        let hdr = object::elf::FileHeader64::<object::Endianness>::parse(&*data).unwrap();
        let e = hdr.endian().unwrap();
        let sections = hdr.sections(e, &*data).unwrap();
        let sec = sections
            .iter()
            .find(|s| s.sh_type(e) == object::elf::SHT_GNU_VERNEED)
            .expect("verneed section");
        let strings = sections.strings(e, &*data, sec.link(e)).unwrap();
        let base = sec.sh_offset(e) as usize;
        let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
        let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap()) as usize;
        let mut need = base;
        loop {
            let cnt = u16_at(need + 2);
            let mut aux = need + u32_at(need + 8);
            for _ in 0..cnt {
                let name = strings.get(u32_at(aux + 8) as u32).unwrap();
                if names.iter().any(|n| n.as_bytes() == name) {
                    patches.push(aux + 4);
                }
                aux += u32_at(aux + 12);
            }
            let next = u32_at(need + 12);
            if next == 0 {
                break;
            }
            need += next;
        }
    }
    assert_eq!(
        patches.len(),
        names.len(),
        "not all of {names:?} found in {}",
        path.display()
    );
    for p in patches {
        let flags = u16::from_le_bytes([data[p], data[p + 1]]) | object::elf::VER_FLG_WEAK;
        data[p..p + 2].copy_from_slice(&flags.to_le_bytes());
    }
    std::fs::write(path, data).unwrap();
}

fn mkdirs(root: &Path, dirs: &[&str]) {
    for d in dirs {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
}

/// A shared library `lib<name>.so` with soname `lib<name>.so.1` built in `dir`.
fn shared_lib(dir: &Path, name: &str, src: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!("lib{name}.so.1"));
    let soname = format!("-Wl,-soname,lib{name}.so.1");
    let mut args = vec!["-shared", "-fPIC", soname.as_str()];
    args.extend_from_slice(extra);
    compile("gcc", src, "c", &out, &args);
    std::os::unix::fs::symlink(&out, dir.join(format!("lib{name}.so"))).ok();
    out
}

#[test]
fn missing_dso_fails_naming_the_file_and_rpath_origin_resolves() {
    if !have("gcc") {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let lib = shared_lib(build.path(), "gone", "int gone(void){return 7;}", &[]);
    let prefix = tempfile::tempdir().unwrap();
    let root = prefix.path();
    mkdirs(root, &["bin", "lib", "private", "opt"]);
    let src = "int gone(void); int main(void){return gone() - 7;}";
    let bl = format!("-L{}", build.path().display());
    compile(
        "gcc",
        src,
        "c",
        &root.join("bin/prog"),
        &[&bl, "-lgone", "-Wl,-rpath,$ORIGIN/../lib"],
    );
    // Without any path the loader never looks in the prefix's lib/ (nor does the audit).
    compile(
        "gcc",
        src,
        "c",
        &root.join("bin/prog-nopath"),
        &[&bl, "-lgone"],
    );
    compile(
        "gcc",
        src,
        "c",
        &root.join("bin/prog-origin"),
        &[&bl, "-lgone", "-Wl,-rpath,$ORIGIN/../private"],
    );

    // Present in lib/ (through a symlink chain, as conda installs it) and in private/.
    std::fs::copy(&lib, root.join("lib/libgone.so.1.0")).unwrap();
    std::os::unix::fs::symlink("libgone.so.1.0", root.join("lib/libgone.so.1")).unwrap();
    std::fs::copy(&lib, root.join("private/libgone.so.1")).unwrap();
    let report = audit_for(root, "host");
    let linkage = of_check(&report, Check::Linkage);
    assert_eq!(linkage.len(), 1, "{}", rel_message(&report));
    assert_eq!(linkage[0].path, "bin/prog-nopath");
    assert!(
        linkage[0].message.contains("no RPATH or RUNPATH")
            && linkage[0]
                .message
                .contains("a copy exists at lib/libgone.so.1"),
        "{}",
        linkage[0].message
    );
    cross_check_report(root, &report);

    // The programs really run (or not) as the audit found.
    let ok = Command::new(root.join("bin/prog-origin"))
        .status_in_time()
        .unwrap();
    assert!(ok.success());
    let out = Command::new(root.join("bin/prog-nopath"))
        .env_remove("LD_LIBRARY_PATH")
        .output_in_time()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open shared object file"));
    std::fs::remove_file(root.join("bin/prog-nopath")).unwrap();

    // Delete the library from lib/: bin/prog fails, bin/prog-origin still finds its copy.
    std::fs::remove_file(root.join("lib/libgone.so.1")).unwrap();
    std::fs::rename(
        root.join("lib/libgone.so.1.0"),
        root.join("opt/libgone.so.1"),
    )
    .unwrap();
    let report = audit_for(root, "host");
    let errs = errors(&report);
    assert_eq!(errs.len(), 1, "{}", rel_message(&report));
    let e = errs[0];
    assert_eq!((e.check, e.path.as_str()), (Check::Linkage, "bin/prog"));
    assert_eq!(e.needed.as_deref(), Some("libgone.so.1"));
    assert!(
        e.message.contains("libgone.so.1") && e.message.contains("opt/libgone.so.1"),
        "{}",
        e.message
    );
    assert!(!report.passed());

    // ... and the loader agrees.
    let out = Command::new(root.join("bin/prog"))
        .output_in_time()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot open shared object file"));

    std::fs::remove_file(root.join("private/libgone.so.1")).unwrap();
    let report = audit_for(root, "host");
    let paths: Vec<_> = errors(&report).iter().map(|f| f.path.clone()).collect();
    assert_eq!(
        paths,
        ["bin/prog", "bin/prog-origin"],
        "{}",
        rel_message(&report)
    );
    let origin = errors(&report)[1].message.clone();
    assert!(
        origin.contains("RUNPATH $ORIGIN/../private → private/"),
        "{origin}"
    );

    // An absolute RUNPATH outside the prefix is the target's business: named as not checked.
    compile(
        "gcc",
        src,
        "c",
        &root.join("bin/prog-abs"),
        &[&bl, "-lgone", "-Wl,-rpath,/opt/site/lib"],
    );
    let report = audit_for(root, "host");
    let abs = errors(&report)
        .into_iter()
        .find(|f| f.path == "bin/prog-abs")
        .unwrap()
        .message
        .clone();
    // On the host the audit looked there, as ld.so would.
    assert!(
        abs.contains("not on this machine either: RUNPATH /opt/site/lib"),
        "{abs}"
    );
    let report = audit_for(root, "rhel9");
    let abs = errors(&report)
        .into_iter()
        .find(|f| f.path == "bin/prog-abs")
        .unwrap()
        .message
        .clone();
    assert!(abs.contains("not checked: RUNPATH /opt/site/lib"), "{abs}");
}

const ABI_NOTE: &str = r#"
__asm__(".section .note.ABI-tag, \"a\", @note\n"
        ".p2align 2\n"
        ".long 4\n .long 16\n .long 1\n"
        ".asciz \"GNU\"\n"
        ".long 0, 9, 9, 0\n"
        ".previous\n");
int main(void) { return 0; }
"#;

#[test]
fn too_new_kernel_abi_tag_fails_naming_the_file() {
    if !have("gcc") {
        return;
    }
    let prefix = tempfile::tempdir().unwrap();
    let root = prefix.path();
    mkdirs(root, &["bin"]);
    compile("gcc", ABI_NOTE, "c", &root.join("bin/future"), &[]);
    compile(
        "gcc",
        "int main(void){return 0;}",
        "c",
        &root.join("bin/plain"),
        &[],
    );

    let report = audit_for(root, "rhel8");
    let kernel = of_check(&report, Check::Kernel);
    assert_eq!(kernel.len(), 1, "{}", rel_message(&report));
    assert_eq!(kernel[0].path, "bin/future");
    assert_eq!(kernel[0].needed.as_deref(), Some("9.9.0"));
    assert!(
        kernel[0].message.contains("kernel too old"),
        "{}",
        kernel[0].message
    );
    assert_eq!(kernel[0].severity, Severity::Error);

    // readelf -n agrees on the highest ABI tag of each file.
    if have("readelf") {
        for f in report.files.as_ref().unwrap() {
            let out = Command::new("readelf")
                .arg("-n")
                .arg(root.join(&f.path))
                .output_in_time()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let max = text
                .lines()
                .filter_map(|l| l.split("OS: Linux, ABI: ").nth(1))
                .filter_map(|v| v.trim().parse::<envship_spec::DottedVersion>().ok())
                .max();
            assert_eq!(f.elf.abi_tag, max, "{}", f.path);
        }
    }
}

#[test]
fn unregistered_build_prefix_fails_naming_the_file() {
    if !have("gcc") {
        return;
    }
    let prefix = tempfile::tempdir().unwrap();
    let root = prefix.path().canonicalize().unwrap();
    mkdirs(
        &root,
        &[
            "bin",
            "etc",
            "share/thing",
            "conda-meta",
            "lib/python3.11/__pycache__",
        ],
    );
    let define = format!("-DDATADIR=\"{}/share/thing\"", root.display());
    compile(
        "gcc",
        "#include <stdio.h>\nint main(void){puts(DATADIR);return 0;}",
        "c",
        &root.join("bin/tool"),
        &[&define],
    );
    compile(
        "gcc",
        "int main(void){return 0;}",
        "c",
        &root.join("bin/clean"),
        &[],
    );
    std::fs::write(
        root.join("etc/tool.conf"),
        format!("data = {}/share/thing\n", root.display()),
    )
    .unwrap();
    std::fs::write(
        root.join("share/thing/owned.txt"),
        format!("{}/lib\n", root.display()),
    )
    .unwrap();
    std::fs::write(
        root.join("share/thing/registered.txt"),
        format!("{}/lib\n", root.display()),
    )
    .unwrap();
    // Bytecode embeds the prefix for tracebacks only: not a hazard.
    std::fs::write(
        root.join("lib/python3.11/__pycache__/m.cpython-311.pyc"),
        format!("\0\0{}/lib/python3.11/m.py", root.display()),
    )
    .unwrap();
    std::fs::write(
        root.join("conda-meta/thing-1.0-0.json"),
        r#"{"name":"thing","version":"1.0","build":"0","files":["share/thing/owned.txt","share/thing/registered.txt"],
            "paths_data":{"paths_version":1,"paths":[
              {"_path":"share/thing/owned.txt","path_type":"hardlink"},
              {"_path":"share/thing/registered.txt","path_type":"hardlink","prefix_placeholder":"/opt/anaconda1anaconda2anaconda3","file_mode":"text"}]}}"#,
    )
    .unwrap();

    let report = audit_for(&root, "host");
    let found: Vec<(String, String, Severity)> = of_check(&report, Check::UnregisteredPrefix)
        .iter()
        .map(|f| (f.path.clone(), f.package.clone(), f.severity))
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "share/thing/owned.txt".into(),
                "thing-1.0-0".into(),
                Severity::Error
            ),
            ("bin/tool".into(), "pip/unmanaged".into(), Severity::Error),
            (
                "etc/tool.conf".into(),
                "pip/unmanaged".into(),
                Severity::Warning
            ),
        ],
        "{}",
        rel_message(&report)
    );
    let tool = of_check(&report, Check::UnregisteredPrefix)[1];
    assert!(
        tool.message.contains(&root.display().to_string()),
        "{}",
        tool.message
    );
    assert!(!report.passed());

    // An explicit build prefix that does not occur finds nothing; an empty one disables it.
    for bp in ["/nonexistent/build/prefix", ""] {
        let mut opts = AuditOptions::new(target("host"));
        opts.build_prefix = Some(bp.to_string());
        let r = run(&root, &opts);
        assert!(
            of_check(&r, Check::UnregisteredPrefix).is_empty(),
            "{bp}: {}",
            rel_message(&r)
        );
    }
}

#[test]
fn shebangs_and_binary_placeholders_at_the_destination_prefix() {
    let prefix = tempfile::tempdir().unwrap();
    let root = prefix.path().canonicalize().unwrap();
    mkdirs(&root, &["bin", "libexec", "lib", "conda-meta"]);
    let shebang = format!("#!{}/bin/python3.11 -E\nprint('hi')\n", root.display());
    std::fs::write(root.join("bin/tool"), &shebang).unwrap();
    std::fs::write(root.join("libexec/helper"), &shebang).unwrap();
    let placeholder = "/opt/anaconda1anaconda2anaconda3";
    let mut blob = b"DATA\0".to_vec();
    blob.extend_from_slice(root.display().to_string().as_bytes());
    blob.extend_from_slice(&[0; 8]);
    std::fs::write(root.join("lib/libdata.bin"), &blob).unwrap();
    std::fs::write(
        root.join("conda-meta/data-1.0-0.json"),
        format!(
            r#"{{"name":"data","version":"1.0","build":"0","files":["lib/libdata.bin"],
              "paths_data":{{"paths":[{{"_path":"lib/libdata.bin","path_type":"hardlink","prefix_placeholder":"{placeholder}","file_mode":"binary"}}]}}}}"#
        ),
    )
    .unwrap();

    let mut opts = AuditOptions::new(target("host"));
    // Short destination: nothing to report beyond the unmanaged scripts.
    opts.dest_prefix = Some("/opt/env".into());
    let report = run(&root, &opts);
    assert!(
        of_check(&report, Check::Shebang).is_empty(),
        "{}",
        rel_message(&report)
    );
    assert!(of_check(&report, Check::PlaceholderLength).is_empty());

    let long = format!("/reg/g/psdm/sw/conda/inst/envs/{}", "x".repeat(100));
    opts.dest_prefix = Some(long.clone());
    let report = run(&root, &opts);
    let sheb: Vec<_> = of_check(&report, Check::Shebang)
        .iter()
        .map(|f| (f.path.clone(), f.severity))
        .collect();
    assert_eq!(
        sheb,
        vec![
            ("bin/tool".to_string(), Severity::Warning),
            ("libexec/helper".to_string(), Severity::Error)
        ],
        "{}",
        rel_message(&report)
    );
    let expected_len =
        shebang.lines().next().unwrap().len() - root.display().to_string().len() + long.len();
    assert_eq!(
        of_check(&report, Check::Shebang)[0].needed,
        Some(expected_len.to_string())
    );
    let ph = of_check(&report, Check::PlaceholderLength);
    assert_eq!(ph.len(), 1, "{}", rel_message(&report));
    assert_eq!(
        (ph[0].path.as_str(), ph[0].package.as_str()),
        ("lib/libdata.bin", "data-1.0-0")
    );
    assert!(ph[0].message.contains("32 bytes"), "{}", ph[0].message);
}

const CXX_SRC: &str = r#"
#include <iostream>
#include <string>
#include <sstream>
int main() { std::ostringstream o; o << std::string("x") << 1; std::cout << o.str() << std::endl; return 0; }
"#;

#[test]
fn cxx_runtime_is_checked_against_the_library_that_will_load() {
    if !have("g++") || !have("gcc") {
        return;
    }
    let prefix = tempfile::tempdir().unwrap();
    let root = prefix.path();
    mkdirs(root, &["bin", "lib"]);
    compile(
        "g++",
        CXX_SRC,
        "cpp",
        &root.join("bin/cxx"),
        &["-Wl,-rpath,$ORIGIN/../lib"],
    );

    // No libstdc++ in the environment: the target's system one (GLIBCXX 3.4.13 on RHEL 6).
    let report = audit_for(root, "lcls-rhel6");
    let cxx = of_check(&report, Check::CxxRuntime);
    assert!(!cxx.is_empty(), "{}", rel_message(&report));
    for f in &cxx {
        assert_eq!(f.path, "bin/cxx");
        assert_eq!(
            f.library.as_deref(),
            Some("libstdc++.so.6"),
            "{}",
            f.message
        );
        assert!(
            f.message.contains("3.4.13") && f.message.contains("does not ship"),
            "{}",
            f.message
        );
    }
    assert!(
        cxx.iter()
            .any(|f| f.needed.as_deref() == Some("GLIBCXX_3.4.21")),
        "{}",
        rel_message(&report)
    );
    cross_check_report(root, &report);

    // The environment ships the host's libstdc++: the program's needs are all defined there.
    let host_lib = Path::new("/usr/lib/x86_64-linux-gnu/libstdc++.so.6");
    if host_lib.exists() {
        std::fs::copy(host_lib, root.join("lib/libstdc++.so.6")).unwrap();
        let report = audit_for(root, "lcls-rhel6");
        let cxx_bin: Vec<_> = of_check(&report, Check::CxxRuntime)
            .into_iter()
            .filter(|f| f.path == "bin/cxx")
            .collect();
        assert!(cxx_bin.is_empty(), "{}", rel_message(&report));
        // The library itself needs a newer glibc than RHEL 6: reported against it.
        assert!(of_check(&report, Check::Glibc)
            .iter()
            .any(|f| f.path == "lib/libstdc++.so.6"));
        cross_check_report(root, &report);
    } else {
        envship_test_support::skip(
            "host libstdc++ check",
            format!("no host libstdc++ at {}", host_lib.display()),
        );
    }

    // An old libstdc++ in the environment (defines GLIBCXX_3.4 … 3.4.13 only) wins over the
    // system: the program fails against *it*.
    let build = tempfile::tempdir().unwrap();
    let mut map = String::new();
    let mut src = String::new();
    for i in 0..=13 {
        let v = if i == 0 {
            "GLIBCXX_3.4".to_string()
        } else {
            format!("GLIBCXX_3.4.{i}")
        };
        map.push_str(&format!("{v} {{ global: f{i}; }};\n"));
        src.push_str(&format!("int f{i}(void) {{ return {i}; }}\n"));
    }
    std::fs::write(build.path().join("v.map"), map).unwrap();
    let vs = format!(
        "-Wl,--version-script={}",
        build.path().join("v.map").display()
    );
    compile(
        "gcc",
        &src,
        "c",
        &root.join("lib/libstdc++.so.6"),
        &["-shared", "-fPIC", "-Wl,-soname,libstdc++.so.6", &vs],
    );
    let report = audit_for(root, "rhel9");
    let cxx = of_check(&report, Check::CxxRuntime);
    assert!(!cxx.is_empty(), "{}", rel_message(&report));
    for f in &cxx {
        assert!(
            f.message.contains("the environment's lib/libstdc++.so.6"),
            "{}",
            f.message
        );
        if f.needed
            .as_deref()
            .is_some_and(|n| n.starts_with("GLIBCXX_"))
        {
            assert!(
                f.message.contains("defines only up to GLIBCXX_3.4.13"),
                "{}",
                f.message
            );
            assert_eq!(f.available.as_deref(), Some("GLIBCXX_3.4.13"));
        } else {
            // CXXABI_*: the stand-in library defines none.
            assert!(
                f.message.contains("defines no CXXABI versions"),
                "{}",
                f.message
            );
        }
    }
    assert!(cxx
        .iter()
        .any(|f| f.needed.as_deref() == Some("GLIBCXX_3.4.21")));
    cross_check_report(root, &report);
}

/// The runtime proof behind the weak policy: a need used only by a weak symbol but not flagged
/// `VER_FLG_WEAK` makes ld.so refuse the program; flagging it lets the program run.
#[test]
fn weak_policy_matches_the_loader() {
    if !have("gcc") {
        return;
    }
    let build = tempfile::tempdir().unwrap();
    std::fs::write(
        build.path().join("v2.map"),
        "FOO_1 { global: a; local: *; };\nFOO_2 { global: b; } FOO_1;\n",
    )
    .unwrap();
    std::fs::write(
        build.path().join("v1.map"),
        "FOO_1 { global: a; local: *; };\n",
    )
    .unwrap();
    let v2 = format!(
        "-Wl,--version-script={}",
        build.path().join("v2.map").display()
    );
    let v1 = format!(
        "-Wl,--version-script={}",
        build.path().join("v1.map").display()
    );
    shared_lib(
        build.path(),
        "foo",
        "int a(void){return 1;} int b(void){return 2;}",
        &[&v2],
    );

    let prefix = tempfile::tempdir().unwrap();
    let root = prefix.path();
    mkdirs(root, &["bin", "lib"]);
    let bl = format!("-L{}", build.path().display());
    compile(
        "gcc",
        "#include <stdio.h>\nint a(void); __attribute__((weak)) int b(void);\nint main(void){printf(\"b=%s\\n\", b ? \"yes\" : \"no\"); return a() - 1;}",
        "c",
        &root.join("bin/p"),
        &[&bl, "-lfoo", "-Wl,-rpath,$ORIGIN/../lib"],
    );
    // The environment ships the old library (FOO_1 only).
    compile(
        "gcc",
        "int a(void){return 1;}",
        "c",
        &root.join("lib/libfoo.so.1"),
        &["-shared", "-fPIC", "-Wl,-soname,libfoo.so.1", &v1],
    );

    let out = Command::new(root.join("bin/p")).output_in_time().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("version `FOO_2' not found"),
        "{stderr}"
    );
    let report = audit_for(root, "host");
    let f = of_check(&report, Check::Linkage);
    assert_eq!(f.len(), 1, "{}", rel_message(&report));
    assert_eq!(
        (f[0].severity, f[0].weak),
        (Severity::Error, Some(Weakness::SymbolsOnly))
    );
    assert_eq!(f[0].symbols, vec!["b@FOO_2".to_string()]);
    assert!(
        f[0].message.contains("lib/libfoo.so.1") && f[0].message.contains("FOO_1"),
        "{}",
        f[0].message
    );

    flag_needs_weak(&root.join("bin/p"), &["FOO_2"]);
    let out = Command::new(root.join("bin/p")).output_in_time().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "b=no\n");
    let report = audit_for(root, "host");
    let f = of_check(&report, Check::Linkage);
    assert_eq!(
        (f[0].severity, f[0].weak),
        (Severity::Warning, Some(Weakness::Flagged))
    );
    assert!(report.passed());
    cross_check_report(root, &report);
}

/// The host's own libraries: a sample of /usr/lib/x86_64-linux-gnu read in place, every parsed
/// version cross-checked with readelf, and nothing on the host needs a newer glibc than the host.
#[test]
fn host_libraries_agree_with_readelf() {
    let dir = Path::new("/usr/lib/x86_64-linux-gnu");
    if !dir.is_dir() || !have("readelf") {
        envship_test_support::skip(
            "host_libraries_agree_with_readelf",
            format!("no {} or readelf", dir.display()),
        );
        return;
    }
    let mut opts = AuditOptions::new(target("host"));
    opts.inventory = true;
    opts.build_prefix = Some(String::new());
    let report = run(dir, &opts);
    let files = report.files.as_ref().unwrap();
    assert!(files.len() > 50, "only {} ELF files", files.len());
    let glibc: Vec<_> = of_check(&report, Check::Glibc)
        .into_iter()
        .filter(|f| f.severity == Severity::Error)
        .collect();
    assert!(glibc.is_empty(), "{:?}", glibc.first());
    let step = (files.len() / 150).max(1);
    let mut checked = 0;
    for f in files.iter().step_by(step) {
        crate::readelf::cross_check(&dir.join(&f.path), &f.elf);
        checked += 1;
    }
    eprintln!(
        "cross-checked {checked} of {} host ELF files with readelf",
        files.len()
    );
}

/// `-z pack-relative-relocs` (binutils 2.38+) makes the file need `GLIBC_ABI_DT_RELR`, which
/// only glibc 2.36+ defines: an unnumbered need the audit still maps to a glibc version.
#[test]
fn dt_relr_marker_needs_glibc_2_36() {
    if !have("gcc") {
        return;
    }
    let prefix = tempfile::tempdir().unwrap();
    let root = prefix.path();
    mkdirs(root, &["bin"]);
    let out = root.join("bin/relr");
    let probe = Command::new("gcc")
        .args(["-x", "c", "-", "-o"])
        .arg(&out)
        .arg("-Wl,-z,pack-relative-relocs")
        .output_with_stdin(b"int main(void){return 0;}");
    if !probe.is_ok_and(|o| o.status.success()) {
        envship_test_support::skip(
            "dt_relr",
            "this linker does not support -z pack-relative-relocs",
        );
        return;
    }
    let report = audit_for(root, "rhel9");
    if !report.files.as_ref().unwrap()[0]
        .elf
        .version_needs
        .iter()
        .any(|n| n.name == "GLIBC_ABI_DT_RELR")
    {
        envship_test_support::skip(
            "dt_relr",
            "the linker did not emit GLIBC_ABI_DT_RELR (no relative relocations)",
        );
        return;
    }
    let relr: Vec<_> = of_check(&report, Check::Glibc)
        .into_iter()
        .filter(|f| f.needed.as_deref() == Some("GLIBC_ABI_DT_RELR"))
        .collect();
    assert_eq!(relr.len(), 1, "{}", rel_message(&report));
    assert!(
        relr[0].message.contains("(glibc 2.36)"),
        "{}",
        relr[0].message
    );
    assert_eq!(relr[0].path, "bin/relr");
    cross_check_report(root, &report);
}
