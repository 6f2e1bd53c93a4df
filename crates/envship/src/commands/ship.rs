//! `envship ship [DIR]`: lock → build → audit → pack → test for the project in DIR, stopping at
//! the first failing gate, with a summary table (or `--json` for CI).

use std::{
    io::Write,
    path::PathBuf,
    process::ExitCode,
    sync::Arc,
    time::{Duration, Instant},
};

use envship_audit::{Allowlist, AuditOptions};
use envship_env::{build, BuildRequest};
use envship_pack::{Format, ManifestTarget, PackOptions};
use envship_sandbox::TestOptions;
use miette::IntoDiagnostic;
use serde::Serialize;

use crate::{
    commands::{build::PipArgs, lock::LockArgs},
    progress::Bars,
    project::Project,
    target_args::TargetArgs,
    GlobalArgs,
};

/// Run the whole pipeline for a project.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The project directory (with environment.yml and the test script).
    #[arg(default_value = ".", value_name = "DIR")]
    dir: PathBuf,
    /// The environment file, relative to DIR.
    #[arg(
        short = 'f',
        long = "file",
        default_value = "environment.yml",
        value_name = "FILE"
    )]
    file: PathBuf,
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    lock: LockArgs,
    #[command(flatten)]
    pip: PipArgs,
    /// The test script (default: envship.toml's `test-script`, else run-test.sh).
    #[arg(long, short = 's', value_name = "FILE")]
    script: Option<PathBuf>,
    /// Where production unpacks the archive; the test runs there (default: envship.toml's
    /// `dest-prefix`, else /opt/envship/NAME).
    #[arg(long, value_name = "PATH")]
    dest_prefix: Option<String>,
    /// Archive format: tar.gz (default; RHEL 6's tar has no zstd), tar.zst, zip.
    #[arg(long, value_name = "FORMAT")]
    format: Option<String>,
    /// Release version (default: git describe of DIR, else today's date).
    #[arg(long)]
    version: Option<String>,
    /// Output directory (default: DIR/dist).
    #[arg(long, short = 'o', value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Accepted audit exceptions (path glob + check + reason).
    #[arg(long, value_name = "FILE")]
    allow: Option<PathBuf>,
    #[command(flatten)]
    isolation: crate::commands::test::IsolationArgs,
    /// Test timeout in seconds.
    #[arg(long, default_value_t = 1800, value_name = "SECONDS")]
    timeout: u64,
    /// Write a JUnit XML report of the test here.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Machine-readable summary on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize, Clone)]
struct StageResult {
    stage: &'static str,
    ok: bool,
    seconds: f64,
    figure: String,
}

#[derive(Serialize)]
struct ShipSummary {
    name: String,
    version: String,
    target: String,
    passed: bool,
    stages: Vec<StageResult>,
    archive: Option<PathBuf>,
    sha256: Option<String>,
    manifest: Option<PathBuf>,
    audit_report: Option<PathBuf>,
    test_log: Option<PathBuf>,
    seconds: f64,
}

pub fn execute(args: Args, global: &GlobalArgs) -> miette::Result<ExitCode> {
    let started = Instant::now();
    let file = args.dir.join(&args.file);
    let project = Project::load(&file, &args.target)?;
    let name = project.name();
    let dir = project.dir();
    let version = args
        .version
        .clone()
        .unwrap_or_else(|| crate::project::default_version_in(&dir));
    let out_dir = args.out_dir.clone().unwrap_or_else(|| dir.join("dist"));
    // Bad test flags fail now, not after a build.
    let (isolation, rootfs) = args.isolation.resolve()?;
    let script = match (&args.script, &project.config.test_script) {
        (Some(s), _) => s.clone(),
        (None, Some(s)) => dir.join(s),
        (None, None) => dir.join("run-test.sh"),
    };
    // A missing test script is an error before anything is built (the original workflow
    // skipped the tests silently).
    if !script.is_file() {
        miette::bail!(
            code = "envship::ship::no_script",
            help = "write a bash script that exercises the environment (set -e; imports; pytest), or pass --script",
            "test script {} does not exist",
            script.display()
        );
    }
    let dest_prefix = args
        .dest_prefix
        .clone()
        .or(project.config.dest_prefix.clone())
        .unwrap_or_else(|| format!("/opt/envship/{name}"));
    let format: Format = args
        .format
        .clone()
        .or(project.config.format.clone())
        .unwrap_or_else(|| "tar.gz".into())
        .parse()
        .map_err(|e: String| miette::miette!(code = "envship::ship::format", "{e}"))?;

    let bars = Arc::new(Bars::new(global.quiet || args.json));
    let mut summary = ShipSummary {
        name: name.clone(),
        version: version.clone(),
        target: project.target.name.clone(),
        passed: false,
        stages: Vec::new(),
        archive: None,
        sha256: None,
        manifest: None,
        audit_report: None,
        test_log: None,
        seconds: 0.0,
    };
    let say = |msg: String| {
        if !global.quiet && !args.json {
            eprintln!("{} {msg}", console::style("ship").bold().cyan());
        }
    };

    // lock + build
    let t = Instant::now();
    let prefix = crate::commands::build::prefix_for(&project, None);
    let request = BuildRequest {
        prefix: prefix.clone(),
        lock: args.lock.request(&project, None)?,
        pip: args.pip.options(),
    };
    say(format!("lock + build {name} for {}", project.target));
    let built = build(&project.env_file, &project.target, &request, bars.clone());
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            summary.stages.push(StageResult {
                stage: "lock+build",
                ok: false,
                seconds: t.elapsed().as_secs_f64(),
                figure: "failed".into(),
            });
            print_summary(&summary, &args, started)?;
            return Err(e.into());
        }
    };
    summary.stages.push(StageResult {
        stage: "lock",
        ok: true,
        seconds: built.lock.seconds,
        figure: format!(
            "{} packages{}",
            built.lock.packages.len(),
            if built.lock.reused {
                " (lock up to date)"
            } else {
                ""
            }
        ),
    });
    summary.stages.push(StageResult {
        stage: "build",
        ok: true,
        seconds: (t.elapsed().as_secs_f64() - built.lock.seconds).max(0.0),
        figure: format!(
            "{} installed, {} pip{}",
            built.installed,
            built.pip.as_ref().map(|p| p.packages.len()).unwrap_or(0),
            if built.noop { " (up to date)" } else { "" }
        ),
    });

    // The test script and the environment file travel inside the archive, so the deployer can
    // re-run the same test in production (`envship deploy --test`).
    let share = prefix.join("share").join("envship");
    fs_err::create_dir_all(&share).into_diagnostic()?;
    fs_err::copy(&script, share.join("run-test.sh")).into_diagnostic()?;
    fs_err::copy(&project.env_file.path, share.join("environment.yml")).into_diagnostic()?;

    // audit
    let t = Instant::now();
    say(format!(
        "audit {} for {}",
        prefix.display(),
        project.target.name
    ));
    let allowlist = match &args.allow {
        Some(p) => Allowlist::load(p)?,
        None => Allowlist::default(),
    };
    let report = envship_audit::audit(
        &prefix,
        &AuditOptions {
            target: project.target.clone(),
            build_prefix: None,
            dest_prefix: Some(dest_prefix.clone()),
            strict_weak: false,
            allowlist,
            inventory: false,
        },
        bars.as_ref(),
    )?;
    fs_err::create_dir_all(&out_dir).into_diagnostic()?;
    let stem = envship_pack::default_file_name(&name, &version, &project.target.subdir, format);
    let stem = envship_publish::artifacts::archive_stem(&stem).to_string();
    let audit_path = out_dir.join(format!("{stem}.audit.json"));
    crate::project::write_output(&audit_path, report.to_json().as_bytes())?;
    summary.audit_report = Some(audit_path.clone());
    let audit_ok = report.passed();
    summary.stages.push(StageResult {
        stage: "audit",
        ok: audit_ok,
        seconds: t.elapsed().as_secs_f64(),
        figure: format!(
            "{} errors, {} warnings, {} ELF files",
            report.summary.errors, report.summary.warnings, report.summary.elf_files
        ),
    });
    if !audit_ok {
        if !args.json {
            eprintln!("{}", envship_audit::render_table(&report));
        }
        print_summary(&summary, &args, started)?;
        return Ok(ExitCode::from(1));
    }

    // pack
    let t = Instant::now();
    say(format!("pack {} ({format})", prefix.display()));
    let packed = envship_pack::pack(
        &PackOptions {
            prefix: prefix.clone(),
            build_prefix: None,
            output: Some(out_dir.join(envship_pack::default_file_name(
                &name,
                &version,
                &project.target.subdir,
                format,
            ))),
            name: name.clone(),
            version: version.clone(),
            target: ManifestTarget {
                name: project.target.name.clone(),
                subdir: project.target.subdir.clone(),
                glibc: Some(project.target.glibc.to_string()),
            },
            format,
            dest_prefix: None,
            arcroot: None,
            exclude: Vec::new(),
            include: Vec::new(),
            jobs: 0,
            compress_level: None,
            force: true,
            allow_missing_files: false,
            allow_modified_files: false,
            allow_editable: false,
            source_date_epoch: None,
        },
        bars.as_ref(),
    )?;
    let archive_size = fs_err::metadata(&packed.archive)
        .map(|m| m.len())
        .unwrap_or(0);
    summary.archive = Some(packed.archive.clone());
    summary.sha256 = packed.sha256.clone();
    summary.manifest = Some(packed.manifest_path.clone());
    summary.stages.push(StageResult {
        stage: "pack",
        ok: true,
        seconds: t.elapsed().as_secs_f64(),
        figure: format!("{} files, {}", packed.file_count, human_bytes(archive_size)),
    });

    // test
    let t = Instant::now();
    say(format!(
        "test {} at {dest_prefix}",
        packed.archive.display()
    ));
    let log_path = out_dir.join(format!("{stem}.test.log"));
    let opts = TestOptions {
        archive: packed.archive.clone(),
        script: script.clone(),
        project_dir: dir.clone(),
        environment_file: Some(project.env_file.path.clone()),
        environment_name: name.clone(),
        dest_prefix: PathBuf::from(&dest_prefix),
        isolation,
        rootfs,
        rootfs_cache_dir: None,
        timeout: Duration::from_secs(args.timeout),
        log_path: log_path.clone(),
        extra_env: vec![],
    };
    let quiet = global.quiet || args.json;
    let mut stderr = std::io::stderr();
    let line_prefix = console::style("  test│").dim().to_string();
    let outcome = envship_sandbox::run_test_streaming(&opts, bars.as_ref(), &mut |line| {
        if !quiet {
            let _ = writeln!(stderr, "{line_prefix} {line}");
        }
    })?;
    summary.test_log = Some(outcome.log_path.clone());
    if let Some(junit) = &args.junit {
        let log = std::fs::read_to_string(&outcome.log_path).unwrap_or_default();
        envship_sandbox::write_junit(junit, &name, &[(outcome.clone(), log)])?;
    }
    summary.stages.push(StageResult {
        stage: "test",
        ok: outcome.passed,
        seconds: t.elapsed().as_secs_f64(),
        figure: outcome.summary(),
    });

    // The audit summary and the test result go into the manifest sidecar; the archive's bytes
    // (and its sha256) do not change after pack.
    let mut manifest = envship_pack::Manifest::read(&packed.manifest_path)?;
    manifest.audit = Some(serde_json::to_value(&report.summary).into_diagnostic()?);
    manifest.test = Some(serde_json::to_value(&outcome).into_diagnostic()?);
    manifest.write(&packed.manifest_path)?;

    summary.passed = outcome.passed;
    print_summary(&summary, &args, started)?;
    Ok(if outcome.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

fn print_summary(summary: &ShipSummary, args: &Args, started: Instant) -> miette::Result<()> {
    let mut out = std::io::stdout().lock();
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let mut s = serde_json::to_value(summary).into_diagnostic()?;
        s["seconds"] = seconds.into();
        s["passed"] = summary.stages.iter().all(|st| st.ok).into();
        serde_json::to_writer_pretty(&mut out, &s).into_diagnostic()?;
        writeln!(out).into_diagnostic()?;
        return Ok(());
    }
    writeln!(out, "{:<8} {:<7} {:>8}", "stage", "result", "seconds").into_diagnostic()?;
    for st in &summary.stages {
        writeln!(
            out,
            "{:<8} {:<7} {:>8.2}  {}",
            st.stage,
            if st.ok { "ok" } else { "FAILED" },
            st.seconds,
            st.figure
        )
        .into_diagnostic()?;
    }
    let passed =
        summary.stages.iter().all(|st| st.ok) && summary.stages.iter().any(|s| s.stage == "test");
    writeln!(
        out,
        "{} {} {} for {} in {seconds:.1}s",
        if passed { "shipped" } else { "NOT shipped:" },
        summary.name,
        summary.version,
        summary.target
    )
    .into_diagnostic()?;
    if let (true, Some(a)) = (passed, &summary.archive) {
        writeln!(out, "archive  {}", a.display()).into_diagnostic()?;
        if let Some(s) = &summary.sha256 {
            writeln!(out, "sha256   {s}").into_diagnostic()?;
        }
    }
    Ok(())
}
