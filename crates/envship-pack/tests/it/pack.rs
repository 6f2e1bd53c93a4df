use std::{fs, path::Path};

use envship_pack::{pack, unpack, Format, ManifestTarget, PackError, PackOptions, UnpackOptions};
use envship_spec::NoProgress;

use crate::support::*;

fn opts(env: &TestEnv, out: &Path, format: Format) -> PackOptions {
    PackOptions {
        prefix: env.prefix.clone(),
        output: Some(out.to_path_buf()),
        name: "demo".into(),
        version: "1.0".into(),
        target: ManifestTarget {
            name: "lcls-rhel6".into(),
            subdir: "linux-64".into(),
            glibc: Some("2.12".into()),
        },
        format,
        ..Default::default()
    }
}

fn rm(p: &Path) {
    if p.exists() {
        fs::remove_dir_all(p).unwrap();
    }
}

/// The documented user flow with no envship involved, with perl and with python, gives the same
/// tree as `envship unpack`; the env runs there, moves again, and keeps no build prefix.
#[test]
fn user_flow_perl_python_and_envship_unpack_agree() {
    let Some(env) = build_env() else { return };
    if !have("perl") {
        envship_test_support::skip(
            "user_flow_perl_python_and_envship_unpack_agree",
            "perl not installed",
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("demo-1.0-linux-64.tar.gz");
    let out = pack(&opts(&env, &archive, Format::TarGz), &NoProgress).unwrap();
    let build = env.prefix_str();
    assert!(out
        .manifest
        .conda_packages
        .iter()
        .any(|p| p.name == "xtensor-io"));
    assert!(out
        .manifest
        .pip_packages
        .iter()
        .any(|p| p.name == "mypkg" && p.installer.as_deref() == Some("pip")));
    assert!(
        out.manifest.relocation.binary_files >= 1 && out.manifest.relocation.text_files >= 3,
        "{:?}",
        out.manifest.relocation
    );
    let sidecar = fs::read_to_string(out.sha256_path.as_ref().unwrap()).unwrap();
    assert_eq!(
        sidecar,
        format!(
            "{}  demo-1.0-linux-64.tar.gz\n",
            out.sha256.as_ref().unwrap()
        )
    );
    // sha256sum agrees with the sidecar.
    ok(&sh(&format!(
        "cd {} && sha256sum -c demo-1.0-linux-64.sha256",
        work.path().display()
    )));
    // plain gzip reads the parallel gzip stream.
    ok(&sh(&format!("gzip -t {}", archive.display())));

    let dest = work.path().join("deployed/env");
    let d = dest.display();
    let a = archive.display();

    // 1. perl, through the documented flow in bash.
    let flow = ok(&sh(&format!(
        "set -e; mkdir -p {d} && tar -xzf {a} -C {d} && source {d}/bin/activate && conda-unpack && \
         echo \"PREFIX=$CONDA_PREFIX VAR=$HELLO_VAR ACT=$HELLO_ACTIVATED\" && phello && \
         source {d}/bin/deactivate && echo \"after=${{CONDA_PREFIX:-none}} ${{HELLO_VAR:-unset}}\""
    )));
    assert!(
        flow.contains(&format!("PREFIX={d} VAR=it's set ACT=yes")),
        "{flow}"
    );
    assert!(
        flow.contains(&format!("{d}/share/hello/data.txt: hello data")),
        "{flow}"
    );
    assert!(flow.contains("after=none unset"), "{flow}");
    let perl_tree = snapshot(&dest, &[]);
    rm(&dest);

    // 2. python: the host python3 as the env's bin/python.
    // (resolved to the real interpreter: python3 may be a pyenv shim that dispatches on $0)
    let py = if have("python3") {
        Some(
            ok(&sh(
                "python3 -c 'import os, sys; print(os.path.realpath(sys.executable))'",
            ))
            .trim()
            .to_string(),
        )
    } else {
        None
    };
    let python_tree = py.as_ref().map(|py| {
        fs::create_dir_all(&dest).unwrap();
        ok(&sh(&format!("tar -xzf {a} -C {d} && ln -s {py} {d}/bin/python && ENVSHIP_RELOCATOR=python sh {d}/bin/conda-unpack")));
        let t = snapshot(&dest, &["bin/python"]);
        rm(&dest);
        t
    });
    if py.is_none() {
        envship_test_support::skip(
            "user_flow_perl_python_and_envship_unpack_agree",
            "python3 not installed; python relocator not compared",
        );
    }

    // 3. envship unpack.
    let u = unpack(&archive, &dest, &UnpackOptions::default(), &NoProgress).unwrap();
    assert_eq!(u.env_root, dest);
    let native_tree = snapshot(&dest, &[]);

    assert_trees_equal(
        &perl_tree,
        &native_tree,
        "perl conda-unpack vs envship unpack",
    );
    if let Some(t) = &python_tree {
        assert_trees_equal(t, &native_tree, "python conda-unpack vs envship unpack");
    }
    assert_eq!(
        files_containing(&native_tree, build.as_bytes()),
        Vec::<String>::new(),
        "build prefix left"
    );
    // the hardlink survived, the absolute symlink became relative, the empty dir exists
    let md1 = fs::metadata(dest.join("share/hello/data.txt")).unwrap();
    let md2 = fs::metadata(dest.join("share/hello/data-link.txt")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&md1),
        std::os::unix::fs::MetadataExt::ino(&md2)
    );
    assert_eq!(
        fs::read_link(dest.join("share/hello/conf-abs")).unwrap(),
        Path::new("../../etc/hello.conf")
    );
    assert!(dest.join("share/empty-dir").is_dir());
    assert!(dest.join(std::ffi::OsStr::new(unsafe_latin1())).exists());

    // Move (to a path long enough for the long-shebang rule) and run conda-unpack again.
    let long = work.path().join(format!("moved/{}/env", "deep".repeat(28)));
    fs::create_dir_all(long.parent().unwrap()).unwrap();
    fs::rename(&dest, &long).unwrap();
    let l = long.display();
    let again = ok(&sh(&format!("sh {l}/bin/conda-unpack && {l}/bin/phello && sh -c '. {l}/bin/activate && echo CP=$CONDA_PREFIX'")));
    assert!(
        again.contains(&format!("{l}/share/hello/data.txt: hello data")),
        "{again}"
    );
    assert!(again.contains(&format!("CP={l}")), "{again}");
    let moved = snapshot(&long, &[]);
    assert_eq!(
        files_containing(&moved, dest.to_str().unwrap().as_bytes()),
        Vec::<String>::new()
    );
    let tool = String::from_utf8(moved[&b"bin/mytool".to_vec()].2.clone()).unwrap();
    assert!(tool.starts_with("#!/usr/bin/env python\n"), "{tool}");
    let conf = String::from_utf8(moved[&b"etc/hello.conf".to_vec()].2.clone()).unwrap();
    assert_eq!(conf, format!("data_dir={l}/share/hello\nbin={l}/bin\n"));
}

fn unsafe_latin1() -> &'static std::ffi::OsStr {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(b"share/hello/caf\xe9.txt")
}

#[test]
fn reproducible_in_every_format_and_thread_count() {
    let Some(env) = build_env() else { return };
    let work = tempfile::tempdir().unwrap();
    for format in [Format::TarGz, Format::TarZst, Format::Zip] {
        let mut sums = Vec::new();
        for (i, jobs) in [1usize, 2, 2].into_iter().enumerate() {
            let out = work.path().join(format!("r{i}.{}", format.extension()));
            let mut o = opts(&env, &out, format);
            o.jobs = jobs;
            if format == Format::Zip {
                o.exclude = vec!["share/hello/caf*".into()]; // zip names must be UTF-8
            }
            sums.push(pack(&o, &NoProgress).unwrap().sha256.unwrap());
        }
        assert_eq!(sums[0], sums[1], "{format}: -j1 vs -j2");
        assert_eq!(sums[1], sums[2], "{format}: packed twice");
    }
    // A different SOURCE_DATE_EPOCH changes the bytes (the mtime is really stored).
    let mut o = opts(&env, &work.path().join("epoch.tar.gz"), Format::TarGz);
    o.source_date_epoch = Some(1_700_000_000);
    let s1 = pack(&o, &NoProgress).unwrap().sha256.unwrap();
    o.output = Some(work.path().join("epoch2.tar.gz"));
    o.source_date_epoch = None;
    let s2 = pack(&o, &NoProgress).unwrap().sha256.unwrap();
    assert_ne!(s1, s2);
    // Entries: sorted, owner 0, fixed mtime, normalized modes (GNU tar's own listing).
    let listing = ok(&sh(&format!(
        "tar -tvzf {}",
        work.path().join("epoch.tar.gz").display()
    )));
    assert!(listing.lines().all(|l| l.contains(" 0/0 ")), "{listing}");
    assert!(
        listing.lines().all(|l| l.contains("2023-11-14")),
        "{listing}"
    );
    assert!(
        listing.contains("-rwxr-xr-x 0/0") && listing.contains("hrw-r--r-- 0/0"),
        "{listing}"
    );
}

#[test]
fn zip_zst_and_dir_unpack_to_the_same_tree() {
    let Some(env) = build_env() else { return };
    let work = tempfile::tempdir().unwrap();
    let mut trees = Vec::new();
    for format in [Format::TarGz, Format::TarZst, Format::Zip, Format::Dir] {
        let out = work.path().join(format!(
            "a.{}",
            if format == Format::Dir {
                "d"
            } else {
                format.extension()
            }
        ));
        let mut o = opts(&env, &out, format);
        o.exclude = vec!["share/hello/caf*".into()];
        let packed = pack(&o, &NoProgress).unwrap();
        let dest = work.path().join("u");
        rm(&dest);
        if format == Format::Dir {
            fs::rename(&packed.archive, &dest).unwrap();
            envship_pack::relocate(&dest, dest.to_str().unwrap()).unwrap();
        } else {
            unpack(
                &packed.archive,
                &dest,
                &UnpackOptions::default(),
                &NoProgress,
            )
            .unwrap();
        }
        trees.push((format, snapshot(&dest, &[])));
    }
    for (format, t) in &trees[1..] {
        assert_trees_equal(&trees[0].1, t, &format!("tar.gz vs {format}"));
    }
}

#[test]
fn dest_prefix_is_baked_in_and_checked_against_binary_room() {
    let Some(env) = build_env() else { return };
    let work = tempfile::tempdir().unwrap();
    let final_prefix = work.path().join("final");
    let mut o = opts(&env, &work.path().join("baked.tar.gz"), Format::TarGz);
    o.dest_prefix = Some(final_prefix.to_str().unwrap().to_string());
    pack(&o, &NoProgress).unwrap();
    // Extract with tar only: runs in place without conda-unpack.
    fs::create_dir_all(&final_prefix).unwrap();
    let f = final_prefix.display();
    let out = ok(&sh(&format!(
        "tar -xzf {} -C {f} && {f}/bin/phello",
        work.path().join("baked.tar.gz").display()
    )));
    assert!(
        out.contains(&format!("{f}/share/hello/data.txt: hello data")),
        "{out}"
    );
    let tree = snapshot(&final_prefix, &[]);
    assert_eq!(
        files_containing(&tree, env.prefix_str().as_bytes()),
        Vec::<String>::new()
    );

    // Longer than the binary's room: refused at pack time, nothing written.
    o.dest_prefix = Some(format!("/{}", "p".repeat(HELLO_ROOM + 10)));
    o.output = Some(work.path().join("toolong.tar.gz"));
    match pack(&o, &NoProgress) {
        Err(PackError::PrefixTooLong { path, .. }) => assert_eq!(path, "bin/phello"),
        other => panic!("expected PrefixTooLong, got {other:?}"),
    }
    assert!(!work.path().join("toolong.tar.gz").exists());
}

#[test]
fn conda_unpack_refuses_too_long_prefix_before_touching_files() {
    let Some(env) = build_env() else { return };
    if !have("perl") {
        envship_test_support::skip(
            "conda_unpack_refuses_too_long_prefix_before_touching_files",
            "perl not installed",
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("x.tar.gz");
    pack(&opts(&env, &archive, Format::TarGz), &NoProgress).unwrap();
    let dest = work.path().join(format!("{}/env", "q".repeat(HELLO_ROOM)));
    fs::create_dir_all(&dest).unwrap();
    let d = dest.display();
    let out = sh(&format!(
        "tar -xzf {} -C {d} && sh {d}/bin/conda-unpack",
        archive.display()
    ));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bin/phello") && err.contains("longer than the 255 bytes"),
        "{err}"
    );
    let conf = fs::read_to_string(dest.join("etc/hello.conf")).unwrap();
    assert!(
        conf.contains(&env.prefix_str()),
        "text file was touched: {conf}"
    );
    // envship unpack refuses the same way.
    let dest2 = work.path().join(format!("{}/env2", "q".repeat(HELLO_ROOM)));
    let e = unpack(&archive, &dest2, &UnpackOptions::default(), &NoProgress).unwrap_err();
    assert!(matches!(e, PackError::PrefixTooLong { .. }), "{e:?}");
}

#[test]
fn refusals_missing_modified_editable_and_existing_output() {
    let Some(env) = build_env() else { return };
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("o.tar.gz");

    // Output exists → refused without --force; with it, replaced.
    fs::write(&out, b"old").unwrap();
    assert!(matches!(
        pack(&opts(&env, &out, Format::TarGz), &NoProgress),
        Err(PackError::OutputExists { .. })
    ));
    assert_eq!(fs::read(&out).unwrap(), b"old");
    let mut o = opts(&env, &out, Format::TarGz);
    o.force = true;
    pack(&o, &NoProgress).unwrap();
    assert_ne!(fs::read(&out).unwrap(), b"old");

    // Modified (pip overwrote a conda file).
    let data = env.prefix.join("share/hello/data.txt");
    fs::write(&data, b"overwritten by pip, longer\n").unwrap();
    let e = pack(&o, &NoProgress).unwrap_err();
    assert!(
        e.to_string().contains("modified") && format!("{e:?}").contains("share/hello/data.txt"),
        "{e:?}"
    );
    o.allow_modified_files = true;
    pack(&o, &NoProgress).unwrap();

    // Missing.
    fs::remove_file(env.prefix.join("etc/hello.conf")).unwrap();
    let e = pack(&o, &NoProgress).unwrap_err();
    assert!(
        matches!(&e, PackError::ManagedFiles { what: "missing", details, .. } if details.contains("hello-1.0-0: etc/hello.conf")),
        "{e:?}"
    );
    o.allow_missing_files = true;
    pack(&o, &NoProgress).unwrap();

    // Editable pip install.
    let di = env
        .prefix
        .join("lib/python3.10/site-packages/mypkg-1.0.dist-info");
    fs::write(
        di.join("direct_url.json"),
        br#"{"url": "file:///home/me/mypkg", "dir_info": {"editable": true}}"#,
    )
    .unwrap();
    let e = pack(&o, &NoProgress).unwrap_err();
    assert!(
        matches!(&e, PackError::EditableInstalls { packages } if packages.contains("mypkg (file:///home/me/mypkg)")),
        "{e:?}"
    );
    o.allow_editable = true;
    let done = pack(&o, &NoProgress).unwrap();
    assert!(done.manifest.pip_packages.iter().any(|p| p.editable));

    // No temp files left behind by the failed attempts.
    let names: Vec<String> = fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".envship")),
        "{names:?}"
    );
}

#[test]
fn arcroot_exclude_and_manifest() {
    let Some(env) = build_env() else { return };
    let work = tempfile::tempdir().unwrap();
    let mut o = opts(&env, &work.path().join("a.tar.gz"), Format::TarGz);
    o.arcroot = Some("demo-1.0".into());
    o.exclude = vec!["share/hello".into(), "include/**".into()];
    o.include = vec!["share/hello/data.txt".into()];
    let out = pack(&o, &NoProgress).unwrap();
    let listing = ok(&sh(&format!("tar -tzf {}", out.archive.display())));
    assert!(
        listing.lines().all(|l| l.starts_with("demo-1.0")),
        "{listing}"
    );
    assert!(
        listing.contains("demo-1.0/share/hello/data.txt") && !listing.contains("data-link.txt"),
        "{listing}"
    );
    assert!(!listing.contains("demo-1.0/include/"), "{listing}");
    assert!(listing.contains("demo-1.0/bin/conda-unpack"));
    // unpack finds the environment under the top directory.
    let dest = work.path().join("u");
    let u = unpack(&out.archive, &dest, &UnpackOptions::default(), &NoProgress).unwrap();
    assert_eq!(u.env_root, dest.join("demo-1.0"));
    let m = envship_pack::Manifest::read(&out.manifest_path).unwrap();
    assert_eq!(m.name, "demo");
    assert_eq!(m.arcroot.as_deref(), Some("demo-1.0"));
    assert_eq!(m.build_prefix, env.prefix_str());
    assert_eq!(m.sha256, out.sha256);
    assert_eq!(
        m.env_vars.get("HELLO_VAR").map(String::as_str),
        Some("it's set")
    );
    let names: Vec<&str> = m.conda_packages.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "_r-mutex",
            "bcj-cffi",
            "conda-forge-repodata-patches",
            "cph_test_data",
            "hello",
            "xtensor-io"
        ]
    );
    assert!(m.conda_packages.iter().all(|p| p.sha256.is_some()));
}
