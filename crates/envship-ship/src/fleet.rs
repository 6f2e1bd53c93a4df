//! The fleet: a workspace's (member, target) pairs handed to GitHub Actions as matrices.
//!
//! envship plans the fan-out and Actions runs it: [`matrix`] lists the pairs (only the members
//! whose files changed since a git ref, when asked) and splits them into chunks of at most
//! [`MAX_JOBS`], GitHub's limit for one matrix.

use std::path::Path;

use envship_spec::workspace::{Pair, Workspace, WorkspaceError};
use serde::Serialize;

/// GitHub's cap on the jobs of one matrix.
pub const MAX_JOBS: usize = 256;

/// Errors of planning the fleet.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum FleetError {
    /// The workspace could not be read.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Workspace(#[from] WorkspaceError),

    /// `git diff` failed (not a repository, or an unknown ref).
    #[error("git diff --name-only {git_ref} in {}: {message}", dir.display())]
    #[diagnostic(
        code(envship::fleet::git),
        help("--changed-since takes a ref the checkout has: in Actions fetch it first (actions/checkout with fetch-depth: 0)")
    )]
    Git {
        /// The ref.
        git_ref: String,
        /// Where git ran.
        dir: std::path::PathBuf,
        /// What git said.
        message: String,
    },

    /// More pairs than one matrix may hold, and no chunk asked for.
    #[error("{pairs} pairs: more than GitHub's {MAX_JOBS} jobs per matrix")]
    #[diagnostic(
        code(envship::fleet::too_many),
        help("split them: `--chunk N/{chunks}` for N in 1..={chunks} (`--chunks` lists them for a matrix of matrices)")
    )]
    TooMany {
        /// How many pairs.
        pairs: usize,
        /// The fewest chunks that fit.
        chunks: usize,
    },

    /// A `--chunk` that is not `N/M` with 1 <= N <= M, or whose chunks would still be too big.
    #[error("bad chunk {given}: {reason}")]
    #[diagnostic(code(envship::fleet::chunk))]
    Chunk {
        /// The value given.
        given: String,
        /// What is wrong.
        reason: String,
    },
}

/// One chunk of the plan, as GitHub's `strategy.matrix` takes it: `{"include": [...]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Matrix {
    /// The pairs, each one job.
    pub include: Vec<Pair>,
}

/// What to plan.
#[derive(Clone, Debug, Default)]
pub struct MatrixOptions {
    /// Only members whose name matches this glob.
    pub members: Option<String>,
    /// Only these targets.
    pub targets: Vec<String>,
    /// Only members with files changed since this git ref (a change to the workspace's own
    /// envship.toml counts for all).
    pub changed_since: Option<String>,
}

/// A `--chunk N/M`, 1-based.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// Which (1..=of).
    pub index: usize,
    /// Of how many.
    pub of: usize,
}

impl std::str::FromStr for Chunk {
    type Err = FleetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| FleetError::Chunk {
            given: s.to_string(),
            reason: reason.to_string(),
        };
        let (n, m) = s.split_once('/').ok_or_else(|| bad("expected N/M"))?;
        let index: usize = n.trim().parse().map_err(|_| bad("N is not a number"))?;
        let of: usize = m.trim().parse().map_err(|_| bad("M is not a number"))?;
        if index == 0 || index > of {
            return Err(bad("N must be between 1 and M"));
        }
        Ok(Self { index, of })
    }
}

/// The pairs to run, in workspace order.
pub fn plan(ws: &Workspace, opts: &MatrixOptions) -> Result<Vec<Pair>, FleetError> {
    let mut pairs = ws.pairs(opts.members.as_deref(), &opts.targets)?;
    if let Some(r) = &opts.changed_since {
        let changed = changed_paths(&ws.root, r)?;
        let all = changed.iter().any(|p| ws.root.join(p) == ws.config_path);
        if !all {
            pairs.retain(|pair| {
                let prefix = format!("{}/", pair.member);
                changed.iter().any(|p| p.starts_with(&prefix))
            });
        }
    }
    Ok(pairs)
}

/// The fewest chunks of at most [`MAX_JOBS`] that hold `pairs` (0 for none).
pub fn chunks_needed(pairs: usize) -> usize {
    pairs.div_ceil(MAX_JOBS)
}

/// The matrix of `pairs`: all of them (at most [`MAX_JOBS`]), or chunk `chunk` of an even split.
pub fn matrix(pairs: &[Pair], chunk: Option<Chunk>) -> Result<Matrix, FleetError> {
    let Some(c) = chunk else {
        if pairs.len() > MAX_JOBS {
            return Err(FleetError::TooMany {
                pairs: pairs.len(),
                chunks: chunks_needed(pairs.len()),
            });
        }
        return Ok(Matrix {
            include: pairs.to_vec(),
        });
    };
    // Even chunks: the first `len % of` get one more.
    let (base, extra) = (pairs.len() / c.of, pairs.len() % c.of);
    let size = |i: usize| base + usize::from(i < extra);
    if size(0) > MAX_JOBS {
        return Err(FleetError::Chunk {
            given: format!("{}/{}", c.index, c.of),
            reason: format!(
                "{} pairs in {} chunks is more than {MAX_JOBS} per chunk: use at least {} chunks",
                pairs.len(),
                c.of,
                chunks_needed(pairs.len())
            ),
        });
    }
    let start: usize = (0..c.index - 1).map(size).sum();
    Ok(Matrix {
        include: pairs[start..start + size(c.index - 1)].to_vec(),
    })
}

/// Run `ship_one` for every pair, at most `jobs` at a time (at least one), and return the
/// results in the pairs' order: `None` for a pair that never started because a stop was
/// requested (SIGINT, SIGTERM) first. One pair's failure does not stop the others; what a
/// failure is, and how it is shown, is the caller's.
///
/// Pairs share nothing here but the threads: each ship run has its own prefix and lock (see
/// [`crate::Project::per_target`]), and the package cache they share locks per package.
pub fn run_pairs<T, F>(pairs: &[Pair], jobs: usize, ship_one: F) -> Vec<Option<T>>
where
    T: Send,
    F: Fn(&Pair) -> T + Sync,
{
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    };
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..pairs.len()).map(|_| None).collect());
    let workers = jobs.clamp(1, pairs.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if envship_spec::cancel::is_requested() {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(pair) = pairs.get(i) else { break };
                let result = ship_one(pair);
                // A worker that panicked poisons the lock; the others' results still count.
                let mut guard = results.lock().unwrap_or_else(|p| p.into_inner());
                guard[i] = Some(result);
            });
        }
    });
    results.into_inner().unwrap_or_else(|p| p.into_inner())
}

/// Paths (relative to `dir`) that differ between `git_ref` and the working tree, untracked
/// files included.
fn changed_paths(dir: &Path, git_ref: &str) -> Result<Vec<String>, FleetError> {
    let run = |args: &[&str]| -> Result<Vec<String>, FleetError> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .map_err(|e| FleetError::Git {
                git_ref: git_ref.to_string(),
                dir: dir.to_path_buf(),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(FleetError::Git {
                git_ref: git_ref.to_string(),
                dir: dir.to_path_buf(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect())
    };
    let mut paths = run(&["diff", "--name-only", "--relative", git_ref, "--"])?;
    paths.extend(run(&["ls-files", "--others", "--exclude-standard"])?);
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(n: usize) -> Vec<Pair> {
        (0..n)
            .map(|i| Pair {
                member: format!("envs/e{i:03}"),
                target: "rhel8".into(),
            })
            .collect()
    }

    #[test]
    fn pairs_run_at_most_jobs_at_a_time_and_report_in_order() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (running, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let all = pairs(9);
        let out = run_pairs(&all, 3, |p| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(30));
            running.fetch_sub(1, Ordering::SeqCst);
            p.member.clone()
        });
        let got: Vec<String> = out.into_iter().map(|r| r.expect("ran")).collect();
        let want: Vec<String> = all.iter().map(|p| p.member.clone()).collect();
        assert_eq!(got, want);
        let peak = peak.load(Ordering::SeqCst);
        assert!((2..=3).contains(&peak), "peak {peak}");
        assert_eq!(run_pairs(&all[..1], 0, |_| 1), vec![Some(1)]);
    }

    #[test]
    fn chunks_split_evenly_and_cover_every_pair_once() {
        let all = pairs(300);
        let err = matrix(&all, None).expect_err("too many");
        assert!(err.to_string().contains("300 pairs"), "{err}");
        assert_eq!(chunks_needed(300), 2);
        let a = matrix(&all, Some("1/2".parse().expect("chunk"))).expect("1/2");
        let b = matrix(&all, Some("2/2".parse().expect("chunk"))).expect("2/2");
        assert_eq!((a.include.len(), b.include.len()), (150, 150));
        let joined: Vec<Pair> = a.include.into_iter().chain(b.include).collect();
        assert_eq!(joined, all);
        let three: usize = (1..=3)
            .map(|i| {
                matrix(&pairs(7), Some(Chunk { index: i, of: 3 }))
                    .expect("c")
                    .include
                    .len()
            })
            .sum();
        assert_eq!(three, 7);
        assert!(matrix(&pairs(600), Some("1/2".parse().expect("chunk"))).is_err());
        assert!("0/2".parse::<Chunk>().is_err() && "3/2".parse::<Chunk>().is_err());
    }
}
