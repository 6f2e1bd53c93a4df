//! Differential tests against the real loader: for every ELF file of a corpus that can load on
//! this machine, the audit's resolution for target `host` (the inventory's `libraries`, what
//! the audit's loader model maps when the file is the main program) must match what
//! `ld.so --list FILE` prints, library by library. Failures are planted too (a vendored
//! library removed, an RPATH broken): both must fail, on the same names.
//!
//! The corpus: the example channels' packages, the test python's `lib-dynload`, numpy 1.21.6's
//! manylinux2010 wheel (downloaded by `.ci/run` into `$ENVSHIP_TEST_WHEELS`; tests stay
//! offline), and small programs compiled here for each rule of the search order.
use envship_test_support::Deadline;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use envship_audit::{render_table, AuditOptions, AuditReport, Check, LoadedLibrary, Resolution};
use envship_test_support::skip;

use crate::{
    snapshots::regex_escape,
    support::{audit_for, compile, errors, have, rel_message, run, target, unzip},
};

const LD_SO: &str = "/lib64/ld-linux-x86-64.so.2";
const NUMPY_WHEEL: &str = "numpy-1.21.6-cp39-cp39-manylinux_2_12_x86_64.manylinux2010_x86_64.whl";
const MULTIARRAY: &str = "numpy/core/_multiarray_umath.cpython-39-x86_64-linux-gnu.so";
const OPENBLAS: &str = "libopenblasp-r0-2d23e62b.3.17.so";
const GFORTRAN: &str = "libgfortran-2e0d59d6.so.5.0.0";
const QUADMATH: &str = "libquadmath-2d0c479f.so.0.0.0";

/// One line of `ld.so --list`: the name asked for and the file loaded (`None`: not found).
type Listed = Vec<(String, Option<PathBuf>)>;

/// Run the real loader in trace mode on `file` (`ld.so --list`), with `LD_LIBRARY_PATH` as given (and nothing
/// else from this process's loader environment).
fn ld_so_list(file: &Path, library_path: Option<&str>) -> Listed {
    let cwd = tempfile::tempdir().unwrap();
    // `ld.so --list` stops at the first missing library; trace mode from the environment
    // (what ldd does) lists every name, with `not found` for the missing ones.
    let mut cmd = Command::new(LD_SO);
    cmd.arg(file)
        .env("LD_TRACE_LOADED_OBJECTS", "1")
        .current_dir(cwd.path())
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LD_PRELOAD");
    if let Some(p) = library_path {
        cmd.env("LD_LIBRARY_PATH", p);
    }
    let out = cmd.output_in_time().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut listed = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some((name, rest)) = line.split_once(" => ") {
            let path = if rest.trim() == "not found" {
                None
            } else {
                let p = rest.rsplit_once(" (0x").map(|(p, _)| p).unwrap_or(rest);
                Some(std::fs::canonicalize(p).unwrap_or_else(|_| PathBuf::from(p)))
            };
            listed.push((name.to_string(), path));
        }
        // Without `=>`: a name with a slash that was found (printed once, as the path), or
        // the vDSO and the loader itself, which the audit treats as always present.
        else if let Some((path, _)) = line.rsplit_once(" (0x") {
            let base = path.rsplit('/').next().unwrap_or(path);
            if path.starts_with('/') && !base.starts_with("ld-linux") {
                let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| PathBuf::from(path));
                listed.push((path.to_string(), Some(canonical)));
            }
        }
    }
    assert!(
        out.status.success() || listed.iter().any(|(_, p)| p.is_none()),
        "LD_TRACE_LOADED_OBJECTS=1 {} {} failed: {}",
        LD_SO,
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    listed
}

/// Compare the audit's libraries for one root with ld.so's: every name ld.so loads from the
/// prefix or cannot find, the audit resolves the same way; every library the audit maps,
/// ld.so maps the same way (a system library may also be loaded by another system library,
/// which the audit does not open: those appear on ld.so's side only).
fn compare(
    root: &Path,
    rel: &str,
    audit: &[LoadedLibrary],
    listed: &Listed,
) -> Result<usize, String> {
    let audit_by_name: BTreeMap<&str, &Resolution> = audit
        .iter()
        .map(|l| (l.name.as_str(), &l.resolution))
        .collect();
    let ld_by_name: BTreeMap<&str, &Option<PathBuf>> =
        listed.iter().map(|(n, p)| (n.as_str(), p)).collect();
    let expected = |path: &Option<PathBuf>| -> Resolution {
        match path {
            None => Resolution::Missing,
            Some(p) => match p.strip_prefix(root) {
                Ok(r) => Resolution::Prefix {
                    path: r.to_string_lossy().into_owned(),
                },
                Err(_) => Resolution::System,
            },
        }
    };
    let mut problems = Vec::new();
    for (name, path) in &ld_by_name {
        let want = expected(path);
        match (audit_by_name.get(name), &want) {
            (Some(got), _) if **got == want => {}
            // Loaded by a system library, which the audit does not open.
            (None, Resolution::System) => {}
            (got, _) => problems.push(format!("{name}: ld.so {want:?}, audit {got:?}")),
        }
    }
    for (name, got) in &audit_by_name {
        if !ld_by_name.contains_key(name) {
            problems.push(format!("{name}: audit {got:?}, ld.so does not list it"));
        }
    }
    if problems.is_empty() {
        Ok(audit.len())
    } else {
        Err(format!("{rel}:\n  {}", problems.join("\n  ")))
    }
}

/// Compare every loadable x86-64 ELF file of an audited tree; returns how many files and
/// libraries were compared.
fn compare_tree(root: &Path, report: &AuditReport, library_path: Option<&str>) -> (usize, usize) {
    let root = root.canonicalize().unwrap();
    let mut files = 0;
    let mut libraries = 0;
    let mut problems = Vec::new();
    for f in report.files.as_ref().expect("inventory") {
        let e = &f.elf;
        if !e.is_loadable() || e.class != 64 || e.machine != 62 || e.is_static() {
            continue;
        }
        let listed = ld_so_list(&root.join(&f.path), library_path);
        match compare(&root, &f.path, &f.libraries, &listed) {
            Ok(n) => {
                files += 1;
                libraries += n;
            }
            Err(p) => problems.push(p),
        }
    }
    assert!(
        problems.is_empty(),
        "audit and ld.so disagree:\n{}",
        problems.join("\n")
    );
    eprintln!("audit and ld.so agree on {files} files, {libraries} libraries");
    (files, libraries)
}

fn loader_available(test: &str) -> bool {
    if !Path::new(LD_SO).exists() {
        skip(test, format!("{LD_SO} is not this machine's loader"));
        return false;
    }
    true
}

/// numpy's wheel from the cache `.ci/run` fills, unpacked as pip would into site-packages.
fn numpy(test: &str) -> Option<tempfile::TempDir> {
    let Some(dir) = std::env::var_os("ENVSHIP_TEST_WHEELS") else {
        skip(
            test,
            "ENVSHIP_TEST_WHEELS is not set (.ci/run downloads numpy's wheel there)",
        );
        return None;
    };
    let wheel = Path::new(&dir).join(NUMPY_WHEEL);
    if !wheel.is_file() {
        skip(test, format!("{} is missing", wheel.display()));
        return None;
    }
    let site = tempfile::tempdir().unwrap();
    unzip(&wheel, site.path());
    Some(site)
}

#[test]
fn numpy_wheel_passes_lcls_rhel6_through_the_inherited_rpath() {
    let Some(site) = numpy("numpy_wheel_passes_lcls_rhel6_through_the_inherited_rpath") else {
        return;
    };
    let report = audit_for(site.path(), "lcls-rhel6");
    assert!(report.passed(), "{}", rel_message(&report));
    assert!(report.findings.is_empty(), "{}", rel_message(&report));
    // The vendored libraries are reached through _multiarray_umath's RPATH, two and three
    // levels down.
    let files = report.files.as_ref().unwrap();
    let multiarray = files.iter().find(|f| f.path == MULTIARRAY).unwrap();
    let from_prefix: Vec<&str> = multiarray
        .libraries
        .iter()
        .filter_map(|l| match &l.resolution {
            Resolution::Prefix { path } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        from_prefix,
        [OPENBLAS, GFORTRAN, QUADMATH].map(|l| format!("numpy.libs/{l}")),
        "{:?}",
        multiarray.libraries
    );
}

#[test]
fn numpy_wheel_agrees_with_ld_so_and_so_do_its_planted_failures() {
    let test = "numpy_wheel_agrees_with_ld_so_and_so_do_its_planted_failures";
    if !loader_available(test) {
        return;
    }
    let Some(site) = numpy(test) else { return };
    let root = site.path();
    let report = audit_for(root, "host");
    assert!(report.passed(), "{}", rel_message(&report));
    let (files, libraries) = compare_tree(root, &report, None);
    assert!(
        files >= 20 && libraries >= 70,
        "{files} files, {libraries} libraries"
    );

    // Plant 1: the last library of the chain is gone.
    let libs = root.join("numpy.libs");
    std::fs::rename(libs.join(QUADMATH), root.join(QUADMATH)).unwrap();
    let report = audit_for(root, "host");
    compare_tree(root, &report, None);
    let errs = errors(&report);
    assert!(!errs.is_empty());
    for e in &errs {
        assert_eq!(
            (e.check, e.path.as_str(), e.needed.as_deref()),
            (
                Check::Linkage,
                format!("numpy.libs/{GFORTRAN}").as_str(),
                Some(QUADMATH)
            ),
            "{}",
            rel_message(&report)
        );
    }
    // The chain that asked for it, root first, and the copy that is not on the path.
    let chain = format!("{MULTIARRAY} → numpy.libs/{OPENBLAS} → numpy.libs/{GFORTRAN}");
    assert!(
        errs.iter().any(|e| e.message.contains(&chain)),
        "{}",
        rel_message(&report)
    );
    assert!(
        errs[0]
            .message
            .contains(&format!("a copy exists at {QUADMATH}")),
        "{}",
        errs[0].message
    );
    let with_chain = errs
        .iter()
        .find(|e| e.chain.first().map(String::as_str) == Some(MULTIARRAY))
        .unwrap_or_else(|| panic!("{}", rel_message(&report)));
    assert_eq!(
        with_chain.chain,
        [
            MULTIARRAY.to_string(),
            format!("numpy.libs/{OPENBLAS}"),
            format!("numpy.libs/{GFORTRAN}")
        ]
    );
    let listed = ld_so_list(&root.join(MULTIARRAY), None);
    assert!(
        listed.iter().any(|(n, p)| n == QUADMATH && p.is_none()),
        "{listed:?}"
    );

    // What a person reads for lcls-rhel6.
    let rhel6 = audit_for(root, "lcls-rhel6");
    let mut settings = insta::Settings::clone_current();
    let canonical = root.canonicalize().unwrap();
    settings.add_filter(&regex_escape(&canonical.display().to_string()), "[PREFIX]");
    settings.add_filter(r"\d+\.\d [KMG]iB|\d+ B\b", "[SIZE]");
    settings.bind(|| insta::assert_snapshot!("numpy_without_libquadmath", render_table(&rhel6)));
    std::fs::rename(root.join(QUADMATH), libs.join(QUADMATH)).unwrap();

    // Plant 2: _multiarray_umath's RPATH points at a directory that does not exist.
    let so = root.join(MULTIARRAY);
    let data = std::fs::read(&so).unwrap();
    let from = b"$ORIGIN/../../numpy.libs";
    let at = data
        .windows(from.len())
        .position(|w| w == from)
        .expect("rpath string");
    let mut broken = data.clone();
    broken[at..at + from.len()].copy_from_slice(b"$ORIGIN/../../numpy.libX");
    std::fs::write(&so, broken).unwrap();
    let report = audit_for(root, "host");
    compare_tree(root, &report, None);
    let errs: Vec<_> = errors(&report)
        .into_iter()
        .filter(|e| e.path == MULTIARRAY)
        .collect();
    assert_eq!(errs.len(), 1, "{}", rel_message(&report));
    assert_eq!(errs[0].needed.as_deref(), Some(OPENBLAS));
    assert!(
        errs[0]
            .message
            .contains("RPATH $ORIGIN/../../numpy.libX → numpy.libX/"),
        "{}",
        errs[0].message
    );
    let listed = ld_so_list(&so, None);
    assert!(
        listed.iter().any(|(n, p)| n == OPENBLAS && p.is_none()),
        "{listed:?}"
    );
}

#[test]
fn example_packages_agree_with_ld_so() {
    let test = "example_packages_agree_with_ld_so";
    if !loader_available(test) || !crate::packages::can_extract() {
        return;
    }
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let prefix = tempfile::tempdir().unwrap();
    let mut installed = 0;
    for channel in ["hello", "needs-glibc-2.14"] {
        let dir = examples.join(channel).join("channel/linux-64");
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".conda") || name.ends_with(".tar.bz2") {
                crate::packages::install(&p, prefix.path());
                installed += 1;
            }
        }
    }
    assert!(installed >= 3, "{installed} packages");
    let report = audit_for(prefix.path(), "host");
    assert!(report.passed(), "{}", rel_message(&report));
    let (files, libraries) = compare_tree(prefix.path(), &report, None);
    assert!(
        files >= 3 && libraries >= 2,
        "{files} files, {libraries} libraries"
    );
}

#[test]
fn python_lib_dynload_agrees_with_ld_so() {
    let test = "python_lib_dynload_agrees_with_ld_so";
    if !loader_available(test) {
        return;
    }
    if let Some(why) = envship_test_support::python::python_unavailable() {
        skip(test, why);
        return;
    }
    let python = Path::new(envship_test_support::python::SYSTEM_PYTHON);
    let name = python.file_name().unwrap().to_string_lossy().into_owned();
    let dynload = Path::new("/usr/lib").join(&name).join("lib-dynload");
    let prefix = tempfile::tempdir().unwrap();
    let root = prefix.path();
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy(python, root.join("bin").join(&name)).unwrap();
    let dest = root.join("lib").join(&name).join("lib-dynload");
    std::fs::create_dir_all(&dest).unwrap();
    for entry in std::fs::read_dir(&dynload).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "so") {
            std::fs::copy(&p, dest.join(p.file_name().unwrap())).unwrap();
        }
    }
    let report = audit_for(root, "host");
    assert!(report.passed(), "{}", rel_message(&report));
    let (files, libraries) = compare_tree(root, &report, None);
    assert!(
        files >= 20 && libraries >= 40,
        "{files} files, {libraries} libraries"
    );
}

/// A shared library `lib<name>.so.1` (soname `lib<name>.so.1`) in `dir`, from C source.
fn lib(dir: &Path, name: &str, src: &str, args: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let out = dir.join(format!("lib{name}.so.1"));
    let soname = format!("-Wl,-soname,lib{name}.so.1");
    let mut all = vec!["-shared", "-fPIC", soname.as_str()];
    all.extend_from_slice(args);
    compile("gcc", src, "c", &out, &all);
    out
}

/// Link flags that record `path` as DT_RPATH (`old`) or DT_RUNPATH.
fn path_flags(path: &str, old: bool) -> Vec<String> {
    vec![
        format!("-Wl,-rpath,{path}"),
        if old {
            "-Wl,--disable-new-dtags"
        } else {
            "-Wl,--enable-new-dtags"
        }
        .to_string(),
    ]
}

/// Each rule of the search order, on programs compiled here, checked against ld.so; then
/// the same prefix with the library the rules lead to taken away.
#[test]
fn search_order_rules_agree_with_ld_so() {
    let test = "search_order_rules_agree_with_ld_so";
    if !loader_available(test) || !have("gcc") {
        return;
    }
    let prefix = tempfile::tempdir().unwrap();
    let root = prefix.path().canonicalize().unwrap();
    let r = |p: &str| root.join(p);
    // deep/libd: needed by lib/libmid, which has no path of its own.
    lib(&r("deep"), "d", "int d(void){return 4;}", &[]);
    let l = |dir: &Path| format!("-L{}", dir.display());
    lib(
        &r("lib"),
        "mid",
        "int d(void); int mid(void){return d();}",
        &[&l(&r("deep")), "-l:libd.so.1"],
    );
    let main_src = "int mid(void); int main(void){return mid() - 4;}";
    // -rpath-link lets the link editor find libmid's own need; it records nothing.
    let link_mid = [
        l(&r("lib")),
        l(&r("deep")),
        format!("-Wl,-rpath-link,{}", r("deep").display()),
        "-l:libmid.so.1".to_string(),
    ];
    let args =
        |extra: Vec<String>| -> Vec<String> { link_mid.iter().cloned().chain(extra).collect() };
    let build_exe = |rel: &str, extra: Vec<String>, src: &str| {
        std::fs::create_dir_all(r(rel).parent().unwrap()).unwrap();
        let a = args(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        compile("gcc", src, "c", &r(rel), &a);
    };
    // DT_RPATH of the executable is inherited by lib/libmid: deep/ is searched for libd.
    build_exe(
        "bin/rpath",
        path_flags("$ORIGIN/../lib:$ORIGIN/../deep", true),
        main_src,
    );
    // DT_RUNPATH is not inherited: libmid cannot find libd.
    build_exe(
        "bin/runpath",
        path_flags("$ORIGIN/../lib:$ORIGIN/../deep", false),
        main_src,
    );
    // ${ORIGIN} and $LIB (this machine's loader says what $LIB is).
    let host_lib = {
        let out = Command::new(LD_SO).arg("--help").output_in_time().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines()
            .find_map(|l| l.trim().strip_suffix("(system search path)"))
            .map(|d| d.trim().trim_start_matches('/').to_string())
    };
    if let Some(host_lib) = &host_lib {
        std::fs::create_dir_all(r(host_lib)).unwrap();
        std::fs::copy(r("lib/libmid.so.1"), r(&format!("{host_lib}/libmid.so.1"))).unwrap();
        build_exe(
            "bin/dollar-lib",
            path_flags("${ORIGIN}/../$LIB:$ORIGIN/../deep", true),
            main_src,
        );
    } else {
        eprintln!("note: this ld.so has no --help (glibc < 2.33): $LIB not compared");
    }
    // Soname reuse: bin/reuse loads libd first through its RUNPATH; libmid then gets the
    // loaded libd although its own search would find nothing.
    build_exe(
        "bin/reuse",
        {
            let mut f = path_flags("$ORIGIN/../deep:$ORIGIN/../lib", false);
            f.insert(0, "-l:libd.so.1".into());
            f.insert(0, "-Wl,--no-as-needed".into());
            f
        },
        "int mid(void); int d(void); int main(void){return mid() + d() - 8;}",
    );
    // LD_LIBRARY_PATH, as the environment's `variables:` set it (conda-meta/state).
    build_exe("bin/env-path", vec![], main_src);
    std::fs::create_dir_all(r("conda-meta")).unwrap();
    std::fs::write(
        r("conda-meta/state"),
        r#"{"env_vars": {"LD_LIBRARY_PATH": "$CONDA_PREFIX/lib:$CONDA_PREFIX/deep"}}"#,
    )
    .unwrap();
    let library_path = format!("{}:{}", r("lib").display(), r("deep").display());
    // A DT_NEEDED with a slash: a library without soname linked by its absolute path.
    compile(
        "gcc",
        "int ns(void){return 0;}",
        "c",
        &r("lib/libnoso.so"),
        &["-shared", "-fPIC"],
    );
    let noso = r("lib/libnoso.so").display().to_string();
    compile(
        "gcc",
        "int ns(void); int main(void){return ns();}",
        "c",
        &r("bin/slash"),
        &[&noso],
    );

    // A RUNPATH outside the prefix: on the host the audit looks there, as ld.so does.
    let site = tempfile::tempdir().unwrap();
    let site_dir = site.path().canonicalize().unwrap();
    lib(&site_dir, "out", "int out(void){return 0;}", &[]);
    let site_flags = {
        let mut f = path_flags(&site_dir.display().to_string(), false);
        f.extend([l(&site_dir), "-l:libout.so.1".to_string()]);
        f
    };
    build_exe(
        "bin/outside",
        site_flags,
        "int out(void); int main(void){return out();}",
    );

    // The programs run as the audit says they load.
    for (exe, ok) in [
        ("bin/outside", true),
        ("bin/rpath", true),
        ("bin/runpath", false),
        ("bin/reuse", true),
        ("bin/slash", true),
    ] {
        let status = Command::new(r(exe))
            .env_remove("LD_LIBRARY_PATH")
            .status_in_time()
            .unwrap();
        assert_eq!(status.success(), ok, "{exe}");
    }
    let mut opts = AuditOptions::new(target("host"));
    opts.inventory = true;
    // bin/slash records the prefix's path on purpose: not a relocation finding here.
    opts.build_prefix = Some(String::new());
    let report = run(&root, &opts);
    let (files, libraries) = compare_tree(&root, &report, Some(&library_path));
    assert!(
        files >= 7 && libraries >= 12,
        "{files} files, {libraries} libraries"
    );
    assert!(report.passed(), "{}", rel_message(&report));

    // For another target, a directory outside the prefix is that machine's business.
    let mut rhel9 = AuditOptions::new(target("rhel9"));
    rhel9.build_prefix = Some(String::new());
    let report9 = run(&root, &rhel9);
    let outside = errors(&report9)
        .into_iter()
        .find(|f| f.path == "bin/outside" && f.needed.as_deref() == Some("libout.so.1"))
        .unwrap_or_else(|| panic!("{}", rel_message(&report9)));
    assert!(
        outside
            .message
            .contains(&format!("not checked: RUNPATH {}", site_dir.display())),
        "{}",
        outside.message
    );

    // Without the activation's LD_LIBRARY_PATH, bin/runpath fails (RUNPATH is not inherited)
    // and so does bin/env-path; the findings name the file that asked and the chain.
    std::fs::remove_file(r("conda-meta/state")).unwrap();
    let report = run(&root, &opts);
    compare_tree(&root, &report, None);
    let missing: Vec<(String, Option<String>)> = errors(&report)
        .iter()
        .map(|f| (f.path.clone(), f.needed.clone()))
        .collect();
    assert!(
        missing.contains(&("lib/libmid.so.1".to_string(), Some("libd.so.1".to_string())))
            && missing.contains(&("bin/env-path".to_string(), Some("libmid.so.1".to_string()))),
        "{}",
        rel_message(&report)
    );
    let via_runpath = errors(&report)
        .into_iter()
        .find(|f| {
            f.path == "lib/libmid.so.1" && f.message.contains("bin/runpath → lib/libmid.so.1")
        })
        .unwrap_or_else(|| panic!("{}", rel_message(&report)));
    assert!(
        via_runpath
            .message
            .contains("a copy exists at deep/libd.so.1"),
        "{}",
        via_runpath.message
    );
    // bin/rpath and bin/reuse still load: the inherited RPATH and the reused soname.
    assert!(
        !errors(&report)
            .iter()
            .any(|f| f.message.contains("bin/rpath →") || f.message.contains("bin/reuse →")),
        "{}",
        rel_message(&report)
    );

    // The slash name's file is gone: both fail on the absolute path.
    std::fs::remove_file(r("lib/libnoso.so")).unwrap();
    let report = run(&root, &opts);
    compare_tree(&root, &report, None);
    assert!(
        errors(&report)
            .iter()
            .any(|f| f.path == "bin/slash" && f.needed.as_deref() == Some(noso.as_str())),
        "{}",
        rel_message(&report)
    );

    // An activation script that sets LD_LIBRARY_PATH is not run by the audit: it says so.
    std::fs::create_dir_all(r("etc/conda/activate.d")).unwrap();
    std::fs::write(
        r("etc/conda/activate.d/paths.sh"),
        "export LD_LIBRARY_PATH=\"$CONDA_PREFIX/deep:$LD_LIBRARY_PATH\"\n",
    )
    .unwrap();
    let report = run(&root, &opts);
    let warning = report
        .findings
        .iter()
        .find(|f| f.path == "etc/conda/activate.d/paths.sh")
        .unwrap_or_else(|| panic!("{}", rel_message(&report)));
    assert_eq!(
        (warning.check, warning.severity),
        (Check::Linkage, envship_audit::Severity::Warning)
    );
    assert!(
        warning.message.contains("LD_LIBRARY_PATH"),
        "{}",
        warning.message
    );
}

const INTERPRETER: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
int foo(void);
int main(int argc, char **argv) {
#ifdef LINK_FOO
    if (foo() != 3) return 3;
#endif
    void *h = dlopen(argv[1], RTLD_NOW);
    if (!h) { fprintf(stderr, "%s\n", dlerror()); return 1; }
    int (*ext)(void) = (int (*)(void))dlsym(h, "ext");
    return ext() == 3 ? 0 : 2;
}
"#;

/// An extension module is loaded by `dlopen` from its interpreter: the interpreter's
/// DT_RPATH applies to the module's needs and what the interpreter loaded is reused. A small
/// C program that dlopens its argument stands in for `bin/python3.11`; the real loader
/// decides, the audit must agree.
#[test]
fn extension_modules_load_as_their_interpreter_dlopens_them() {
    let test = "extension_modules_load_as_their_interpreter_dlopens_them";
    if !loader_available(test) || !have("gcc") {
        return;
    }
    let prefix = tempfile::tempdir().unwrap();
    let root = prefix.path().canonicalize().unwrap();
    let r = |p: &str| root.join(p);
    lib(&r("lib"), "foo", "int foo(void){return 3;}", &[]);
    let site = r("lib/python3.11/site-packages");
    std::fs::create_dir_all(&site).unwrap();
    let ll = format!("-L{}", r("lib").display());
    compile(
        "gcc",
        "int foo(void); int ext(void){return foo();}",
        "c",
        &site.join("ext.so"),
        &["-shared", "-fPIC", &ll, "-l:libfoo.so.1"],
    );
    let module = site.join("ext.so").display().to_string();
    let interpreter = |flags: Vec<String>| {
        let f: Vec<&str> = flags.iter().map(String::as_str).collect();
        std::fs::create_dir_all(r("bin")).unwrap();
        compile("gcc", INTERPRETER, "c", &r("bin/python3.11"), &f);
        let out = Command::new(r("bin/python3.11"))
            .arg(&module)
            .env_remove("LD_LIBRARY_PATH")
            .output_in_time()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let audit = || {
        let mut opts = AuditOptions::new(target("host"));
        opts.build_prefix = Some(String::new());
        run(&root, &opts)
    };

    // DT_RPATH on the interpreter: inherited by what it dlopens.
    let (ok, stderr) = interpreter(path_flags("$ORIGIN/../lib", true));
    assert!(ok, "{stderr}");
    let report = audit();
    assert!(report.passed(), "{}", rel_message(&report));

    // DT_RUNPATH on the interpreter: not inherited; dlopen fails and the audit names the chain.
    let (ok, stderr) = interpreter(path_flags("$ORIGIN/../lib", false));
    assert!(!ok && stderr.contains("libfoo.so.1"), "{stderr}");
    let report = audit();
    let errs = errors(&report);
    assert_eq!(errs.len(), 1, "{}", rel_message(&report));
    assert_eq!(errs[0].path, "lib/python3.11/site-packages/ext.so");
    assert!(
        errs[0]
            .message
            .contains("loaded through bin/python3.11 → lib/python3.11/site-packages/ext.so"),
        "{}",
        errs[0].message
    );

    // The interpreter itself links libfoo: loaded at start, the module's need reuses it.
    let mut flags = path_flags("$ORIGIN/../lib", false);
    flags.extend([ll.clone(), "-l:libfoo.so.1".into(), "-DLINK_FOO".into()]);
    let (ok, stderr) = interpreter(flags);
    assert!(ok, "{stderr}");
    let report = audit();
    assert!(report.passed(), "{}", rel_message(&report));
}
