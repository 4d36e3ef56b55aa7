//! The events the index is a fold of. Everything the index knows arrives as
//! one of these, time included, so replaying the same events gives the same
//! index.

use std::sync::Arc;

use crate::listing::Listing;
use crate::model::{Heartbeat, ResultKind};
use crate::names::StoredName;
use crate::paths::QueueDir;
use crate::task_logs::{is_derivable, LogStream};

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The clock, in Unix seconds. Liveness and ages are judged against it.
    Tick(i64),
    /// One scanning round of one node: what each queue directory showed.
    /// Ends the round: unaccounted tasks count one more missing round.
    Round(Round),
    /// The first part of a round (the live directories), sent ahead so
    /// live work shows at once; the round ends with the next `Round`.
    PartialRound(Round),
    /// The heartbeat directory was read.
    Heartbeats(HeartbeatRound),
    /// Listing the lease's top-level directories (node discovery) failed or
    /// recovered; `None` is healthy.
    LeaseScan(Option<String>),
    /// A spec was read (or could not be).
    SpecRead { node: Arc<str>, name: StoredName, outcome: Result<SpecSummary, String> },
    /// A result was read (or could not be).
    ResultRead { node: Arc<str>, name: StoredName, kind: ResultKind, outcome: Result<ResultSummary, String> },
    /// `control/<node>/pause.json` is present or not.
    NodePaused { node: Arc<str>, paused: bool },
    /// Facts from the warm-start cache. They count only for names a
    /// listing shows: a name no listing has shown stays invisible, and a
    /// result's facts only stand if the listing shows that result file.
    /// `at`: where each fact's record is in the cache (empty: unknown).
    Cached { facts: Vec<crate::cache::Facts>, at: Vec<u64> },
    /// Specs just saved to the cache, and where: their details can now be
    /// let go and fetched again.
    CacheStored(Vec<(StoredName, u64)>),
    /// Details fetched again from the cache for tasks that had let them go.
    Recalled(Vec<crate::cache::Facts>),
    /// The tasks on screen (and around): their details stay held.
    OnScreen(Vec<super::TaskId>),
    /// The cache (or part of it) could not be used, and why.
    CacheProblem(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub node: Arc<str>,
    /// In listing order.
    pub dirs: Vec<(QueueDir, DirOutcome)>,
}

/// What one directory listing gave, against the previous listing.
#[derive(Debug, Clone, PartialEq)]
pub enum DirOutcome {
    /// Listed; files added and removed since the last listing.
    Changed { added: Listing, removed: Listing },
    /// Listed, or skipped because its mtime had not changed: same as before.
    Unchanged,
    /// The listing failed; the previous listing stays in force.
    Failed(String),
}

impl DirOutcome {
    /// A change given as file names (any order).
    pub fn changed(added: Vec<String>, removed: Vec<String>) -> DirOutcome {
        DirOutcome::Changed { added: Listing::of(added), removed: Listing::of(removed) }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatRound {
    /// Every node with a heartbeat file, and what reading it gave.
    pub beats: Vec<(Arc<str>, Result<Heartbeat, String>)>,
    /// Set when the `hb/` directory itself could not be listed; `beats` is
    /// then empty and the previous heartbeats stay in force.
    pub dir_error: Option<String>,
}

/// The parts of a TaskSpec the index keeps. The `env` map is deliberately
/// absent: it is large and read on demand.
#[derive(Debug, Clone, PartialEq)]
pub struct SpecSummary {
    pub created_at: i64,
    pub command: Arc<str>,
    pub cwd: Arc<str>,
    pub gpus: u32,
}

/// A log path a result names.
#[derive(Debug, Clone, PartialEq)]
pub enum LogPath {
    /// One of the paths a runner derives from the task's name and node
    /// (`logs/<task_id>.out`, `logs/<node>/<name>.out`): found again from
    /// them, so not kept (the cache stores which, and gives back this).
    Derived,
    /// As the result wrote it (relative to the run directory).
    Named(Arc<str>),
}

impl LogPath {
    /// The path as named, unless a runner derives it from the task's name
    /// and node (then `None`: it is found again from them).
    pub fn unless_derivable(
        &self,
        node: &str,
        stem: &str,
        task_id: &str,
        stream: LogStream,
    ) -> Option<&Arc<str>> {
        match self {
            LogPath::Named(path) if !is_derivable(path, node, stem, task_id, stream) => Some(path),
            _ => None,
        }
    }

    /// As [`unless_derivable`](Self::unless_derivable) for a stored name,
    /// whose text is built only when there is a named path to compare
    /// (most results' paths are derived: a text per result was a cost).
    pub fn unless_derivable_for(
        &self,
        node: &str,
        name: &StoredName,
        stream: LogStream,
    ) -> Option<&Arc<str>> {
        match self {
            LogPath::Derived => None,
            named => named.unless_derivable(node, &name.text(), name.task_id(), stream),
        }
    }
}

impl<T: Into<Arc<str>>> From<T> for LogPath {
    fn from(path: T) -> LogPath {
        LogPath::Named(path.into())
    }
}

/// The parts of a TaskResult the index keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultSummary {
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub runtime_s: f64,
    pub stdout: LogPath,
    pub stderr: LogPath,
    /// The task's command, cwd and GPUs as the result repeats them (the
    /// older tool's runner does; its earliest versions did not): then the
    /// spec need not be read for them.
    pub command: Option<Arc<str>>,
    pub cwd: Option<Arc<str>>,
    pub gpus_requested: Option<u32>,
    pub gpus_assigned: Option<Arc<str>>,
    /// What the runner said of why it did not run or end by itself.
    pub error: Option<Arc<str>>,
}
