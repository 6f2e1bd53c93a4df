//! `.pyc` files compiled in the build prefix: rewritten by the env's python for the archive, or
//! left out when there is none; never shipped with the build prefix inside.

use std::{fs, path::Path};

use envship_pack::{pack, unpack, Format, PackOptions, UnpackOptions};
use envship_spec::NoProgress;
use envship_test_support::python::{cached_archives, python_unavailable, SYSTEM_PYTHON};

use crate::support::*;

fn opts(prefix: &Path, out: &Path, dest: Option<&Path>) -> PackOptions {
    PackOptions {
        prefix: prefix.to_path_buf(),
        output: Some(out.to_path_buf()),
        name: "pyc".into(),
        version: "1".into(),
        format: Format::TarGz,
        dest_prefix: dest.map(|d| d.to_str().unwrap().to_string()),
        force: true,
        ..Default::default()
    }
}

/// What a .pyc holds, as the env's python sees it: co_filename and the module's DATA, if any.
fn pyc_facts(python: &Path, pyc: &Path) -> String {
    ok(&sh(&format!(
        "{} -c 'import marshal, sys; c = marshal.loads(open(sys.argv[1], \"rb\").read()[16:]); \
         ns = {{}}; exec(c, ns); print(c.co_filename, ns.get(\"DATA\"))' {}",
        python.display(),
        pyc.display()
    )))
    .trim()
    .to_string()
}

/// Whether importlib would use `pyc` for `source` (timestamp and size match) rather than
/// recompile it.
fn pyc_is_current(python: &Path, pyc: &Path, source: &Path) -> bool {
    let out = sh(&format!(
        "{} -c 'import os, sys, importlib._bootstrap_external as e; st = os.stat(sys.argv[2]); \
         e._validate_timestamp_pyc(open(sys.argv[1], \"rb\").read(), int(st.st_mtime), st.st_size, \"m\", {{}})' \
         {} {}",
        python.display(),
        pyc.display(),
        source.display()
    ));
    if !out.status.success() {
        eprintln!("stale: {}", String::from_utf8_lossy(&out.stderr));
    }
    out.status.success()
}

#[test]
fn pyc_files_are_rewritten_by_the_envs_python_and_import() {
    if let Some(why) = python_unavailable() {
        envship_test_support::skip("pyc_files_are_rewritten_by_the_envs_python_and_import", why);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("build-prefix");
    let python_pkg = cached_archives()
        .into_iter()
        .find(|(a, _)| a.to_string_lossy().contains("python-3"))
        .expect("python archive")
        .0;
    install(
        &prefix,
        &tmp.path().join("pkgs"),
        &[python_pkg.to_str().unwrap()],
    );
    let p = prefix.to_str().unwrap();
    let site = prefix.join("lib/python3.11/site-packages/pycmod");
    fs::create_dir_all(&site).unwrap();
    // a constant with the prefix (only right once the destination is known) and one without,
    // with a frozenset constant (marshalled in hash order: must still be reproducible)
    fs::write(
        site.join("__init__.py"),
        format!("DATA = '{p}/share/pycmod'\n"),
    )
    .unwrap();
    fs::write(
        site.join("plain.py"),
        "def f(x):\n    return 42 if x in {'a', 'b', 'c', 'd'} else 0\n",
    )
    .unwrap();
    // What pip does after installing: compile in the build prefix.
    ok(&sh(&format!(
        "{p}/bin/python -m compileall -q {}",
        site.display()
    )));
    let pycache = "lib/python3.11/site-packages/pycmod/__pycache__";
    let build_tree = snapshot(&prefix, &[]);
    let holding = files_containing(&build_tree, p.as_bytes());
    assert!(
        holding.iter().filter(|f| f.ends_with(".pyc")).count() == 2,
        "the test needs compiled files holding the build prefix: {holding:?}"
    );

    // 1. No --dest-prefix: the documented flow at another path.
    let archive = tmp.path().join("pyc.tar.gz");
    pack(&opts(&prefix, &archive, None), &NoProgress).unwrap();
    let dest = tmp.path().join("elsewhere/env");
    fs::create_dir_all(&dest).unwrap();
    let d = dest.display();
    ok(&sh(&format!(
        "tar -xzf {} -C {d} && source {d}/bin/activate && conda-unpack",
        archive.display()
    )));
    let tree = snapshot(&dest, &[]);
    assert_eq!(files_containing(&tree, p.as_bytes()), Vec::<String>::new());
    let plain_pyc = dest.join(pycache).join("plain.cpython-311.pyc");
    assert!(plain_pyc.exists(), "the prefix-free .pyc is kept");
    assert!(
        !dest.join(pycache).join("__init__.cpython-311.pyc").exists(),
        "a .pyc whose constants hold the build prefix is left out without --dest-prefix"
    );
    assert_eq!(
        pyc_facts(&dest.join("bin/python"), &plain_pyc),
        "lib/python3.11/site-packages/pycmod/plain.py None"
    );
    // stored with the archive's epoch as source mtime: still valid after extraction
    let plain_py = "lib/python3.11/site-packages/pycmod/plain.py";
    assert!(pyc_is_current(
        &dest.join("bin/python"),
        &plain_pyc,
        &dest.join(plain_py)
    ));
    let native = tmp.path().join("native/env");
    unpack(&archive, &native, &UnpackOptions::default(), &NoProgress).unwrap();
    assert!(pyc_is_current(
        &native.join("bin/python"),
        &native.join(pycache).join("plain.cpython-311.pyc"),
        &native.join(plain_py)
    ));
    let run = ok(&sh(&format!(
        "source {d}/bin/activate && python -c 'import pycmod, pycmod.plain; \
         print(pycmod.DATA, pycmod.plain.f(\"c\"), pycmod.plain.__file__)'"
    )));
    assert_eq!(
        run.trim(),
        format!("{d}/share/pycmod 42 {d}/lib/python3.11/site-packages/pycmod/plain.py")
    );

    // 2. --dest-prefix: constants and co_filename get the destination; reproducible.
    let final_dest = tmp.path().join("opt/final");
    let a1 = tmp.path().join("d1.tar.gz");
    let a2 = tmp.path().join("d2.tar.gz");
    let o1 = pack(&opts(&prefix, &a1, Some(&final_dest)), &NoProgress).unwrap();
    let o2 = pack(&opts(&prefix, &a2, Some(&final_dest)), &NoProgress).unwrap();
    assert_eq!(
        o1.sha256, o2.sha256,
        "rewritten .pyc files are reproducible"
    );
    fs::create_dir_all(&final_dest).unwrap();
    let f = final_dest.display();
    ok(&sh(&format!("tar -xzf {} -C {f}", a1.display())));
    let tree = snapshot(&final_dest, &[]);
    assert_eq!(files_containing(&tree, p.as_bytes()), Vec::<String>::new());
    assert_eq!(
        pyc_facts(
            &final_dest.join("bin/python"),
            &final_dest.join(pycache).join("__init__.cpython-311.pyc")
        ),
        format!("{f}/lib/python3.11/site-packages/pycmod/__init__.py {f}/share/pycmod")
    );
    assert!(pyc_is_current(
        &final_dest.join("bin/python"),
        &final_dest.join(pycache).join("plain.cpython-311.pyc"),
        &final_dest.join(plain_py)
    ));
    let run = ok(&sh(&format!(
        "{f}/bin/python -c 'import pycmod.plain; print(pycmod.DATA, pycmod.plain.f(\"a\"))'"
    )));
    assert_eq!(run.trim(), format!("{f}/share/pycmod 42"));
    // the build prefix itself was not touched
    assert_eq!(snapshot(&prefix, &[]), build_tree);
}

#[test]
fn pyc_files_are_left_out_where_no_python_runs() {
    if !Path::new(SYSTEM_PYTHON).exists() {
        envship_test_support::skip(
            "pyc_files_are_left_out_where_no_python_runs",
            format!("{SYSTEM_PYTHON} not installed (needed to compile the .pyc)"),
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("build-prefix");
    let p = prefix.to_str().unwrap();
    fs::create_dir_all(prefix.join("conda-meta")).unwrap();
    fs::create_dir_all(prefix.join("lib/mods")).unwrap();
    fs::write(prefix.join("lib/mods/m.py"), "X = 1\n").unwrap();
    ok(&sh(&format!(
        "{SYSTEM_PYTHON} -c 'import py_compile; py_compile.compile(\"{p}/lib/mods/m.py\")'"
    )));
    let pyc = "lib/mods/__pycache__/m.cpython-311.pyc";
    assert!(prefix.join(pyc).exists());
    let archive = tmp.path().join("nopy.tar.gz");
    let out = pack(&opts(&prefix, &archive, None), &NoProgress).unwrap();
    let dest = tmp.path().join("x");
    fs::create_dir_all(&dest).unwrap();
    ok(&sh(&format!(
        "tar -xzf {} -C {}",
        archive.display(),
        dest.display()
    )));
    assert!(dest.join("lib/mods/m.py").exists());
    assert!(!dest.join(pyc).exists(), "left out: nothing can rewrite it");
    // (conda-unpack's own inputs record the build prefix until it runs)
    let tree = snapshot(&dest, &[]);
    assert_eq!(
        files_containing(&tree, p.as_bytes()),
        ["bin/activate", "share/envship/relocate.txt"]
    );
    let list = fs::read_to_string(dest.join("share/envship/relocate.txt")).unwrap();
    assert!(!list.contains(".pyc"), "{list}");
    assert_eq!(out.manifest.file_count, 5, "m.py + the 4 generated files");
}
