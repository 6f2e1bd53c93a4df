//! How library code reports progress without knowing about terminals.
//!
//! Stages call these methods; the CLI implements the trait with indicatif bars, tests and
//! `--quiet` use [`NoProgress`]. Implementations must be cheap and thread-safe: installers and
//! packers call them from worker threads.

/// A sink for progress events of one long-running stage.
pub trait Progress: Send + Sync {
    /// A phase starts (`download`, `link`, `pip`, `compress`, …) with a known total, in `unit`s
    /// (`bytes` or `files`), or `None` when the total is not known.
    fn start(&self, _phase: &str, _total: Option<u64>, _unit: ProgressUnit) {}
    /// `delta` more units of the current phase are done.
    fn advance(&self, _phase: &str, _delta: u64) {}
    /// A short note about the item being worked on (a package or file name).
    fn message(&self, _phase: &str, _msg: &str) {}
    /// The phase is finished.
    fn finish(&self, _phase: &str) {}
}

/// What a progress count measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressUnit {
    /// Bytes (shown as sizes and rates).
    Bytes,
    /// Countable items (files, packages).
    Items,
}

/// Progress that goes nowhere.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}
