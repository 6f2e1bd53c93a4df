//! indicatif-backed implementation of the libraries' `Progress` trait: one bar per phase,
//! hidden under `--quiet` or when stderr is not a terminal.

use std::{
    collections::HashMap,
    io::Write,
    sync::{Arc, Mutex},
    time::Duration,
};

use envship_ship::{Reporter, Stage};
use envship_spec::{Progress, ProgressUnit};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress bars on stderr.
pub struct Bars {
    multi: MultiProgress,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    /// Bars that draw only when stderr is a terminal and `quiet` is off.
    pub fn new(quiet: bool) -> Self {
        let target = if quiet || !console::Term::stderr().is_term() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn with_bar(&self, phase: &str, f: impl FnOnce(&ProgressBar)) {
        if let Ok(bars) = self.bars.lock() {
            if let Some(bar) = bars.get(phase) {
                f(bar);
            }
        }
    }
}

impl Progress for Bars {
    fn start(&self, phase: &str, total: Option<u64>, unit: ProgressUnit) {
        let bar = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        let template = match (total.is_some(), unit) {
            (true, ProgressUnit::Bytes) => {
                "{prefix:>10.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}"
            }
            (true, ProgressUnit::Items) => "{prefix:>10.bold} [{bar:30}] {pos}/{len} {wide_msg}",
            (false, _) => "{prefix:>10.bold} {spinner} {wide_msg}",
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(phase.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        let bar = self.multi.add(bar);
        if let Ok(mut bars) = self.bars.lock() {
            bars.insert(phase.to_string(), bar);
        }
    }

    fn advance(&self, phase: &str, delta: u64) {
        self.with_bar(phase, |b| b.inc(delta));
    }

    fn message(&self, phase: &str, msg: &str) {
        self.with_bar(phase, |b| b.set_message(msg.to_string()));
    }

    fn finish(&self, phase: &str) {
        if let Ok(mut bars) = self.bars.lock() {
            if let Some(bar) = bars.remove(phase) {
                bar.finish_and_clear();
            }
        }
    }
}

/// The pipeline's [`Reporter`]: stage lines and the test's output on stderr, progress bars from
/// [`Bars`]; all of it silent under `--quiet` (and `--json`).
pub struct StageReporter {
    bars: Arc<Bars>,
    quiet: bool,
    command: &'static str,
    test_prefix: String,
}

impl StageReporter {
    /// A reporter whose stage lines start with `command` (e.g. `ship`).
    pub fn new(command: &'static str, quiet: bool) -> Self {
        Self {
            bars: Arc::new(Bars::new(quiet)),
            quiet,
            command,
            test_prefix: console::style("  test│").dim().to_string(),
        }
    }
}

impl Reporter for StageReporter {
    fn stage(&self, _stage: Stage, what: &str) {
        if !self.quiet {
            eprintln!("{} {what}", console::style(self.command).bold().cyan());
        }
    }

    fn test_line(&self, line: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr(), "{} {line}", self.test_prefix);
        }
    }

    fn progress(&self) -> Arc<dyn Progress> {
        self.bars.clone()
    }
}

/// The reporter of one pair of `ship --all`: its stage lines on stderr, prefixed with the pair.
/// No bars and no test output: pairs run side by side, and each test's output is in its log.
pub struct PairReporter {
    label: String,
    quiet: bool,
}

impl PairReporter {
    /// A reporter whose lines name `label` (e.g. `envs/psana rhel8`).
    pub fn new(label: String, quiet: bool) -> Self {
        Self { label, quiet }
    }
}

impl Reporter for PairReporter {
    fn stage(&self, _stage: Stage, what: &str) {
        if !self.quiet {
            eprintln!(
                "{} [{}] {what}",
                console::style("ship").bold().cyan(),
                self.label
            );
        }
    }

    fn test_line(&self, _line: &str) {}

    fn progress(&self) -> Arc<dyn Progress> {
        Arc::new(envship_spec::NoProgress)
    }
}
