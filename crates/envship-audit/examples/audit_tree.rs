//! A minimal front end to the library for benchmarking without the full CLI (which pulls the
//! rattler stack): `audit_tree PATH [--target NAME] [--build-prefix P] [--json]`.
//! Exit 1 when errors remain, like `envship audit`.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::process::ExitCode;

use envship_audit::{audit, render_table, AuditOptions};
use envship_spec::{NoProgress, Target};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut path = None;
    let mut target = "host".to_string();
    let mut build_prefix = None;
    let mut json = false;
    let mut inventory = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--target" => target = args.next().unwrap_or_default(),
            "--build-prefix" => build_prefix = args.next(),
            "--json" => json = true,
            "--inventory" => inventory = true,
            _ => path = Some(a),
        }
    }
    let Some(path) = path else {
        eprintln!(
            "usage: audit_tree PATH [--target NAME] [--build-prefix P] [--inventory] [--json]"
        );
        return ExitCode::from(2);
    };
    let target = match Target::builtin(&target) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let mut opts = AuditOptions::new(target);
    opts.build_prefix = build_prefix;
    opts.inventory = inventory;
    match audit(path.as_ref(), &opts, &NoProgress) {
        Ok(report) => {
            if json {
                print!("{}", report.to_json());
            } else {
                print!("{}", render_table(&report));
            }
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
