//! What the UI asks the background for ([`Request`]) and what comes back
//! ([`Reply`]). Plain data: every reply carries what it found, so a handler
//! never fetches again, and superseded work is recognised by `generation`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::engine::Control;
use crate::index::{Index, TaskId, ViewSpec};
use crate::logs::{LogUpdate, Page, PageAnchor};
use crate::paths::RunDir;
use crate::task_logs::LogLocation;

/// An action that changes files or Slurm. Each goes through one interface
/// (`actions::perform`) and reports success or a reason.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CancelTask {
        run: RunDir,
        /// The task's file stem (its identity).
        name: String,
        task_id: String,
        node: String,
    },
    RetryTask {
        run: RunDir,
        name: String,
        node: String,
    },
    PauseNode {
        run: RunDir,
        node: String,
    },
    ResumeNode {
        run: RunDir,
        node: String,
    },
    /// Move a dead node's claimed tasks back to its inbox.
    RecoverNode {
        run: RunDir,
        node: String,
    },
    CreateLease(LeaseForm),
    ReleaseLease {
        id: String,
    },
    SetDefaultLease {
        id: String,
    },
}

impl Action {
    pub fn describe(&self) -> String {
        match self {
            Action::CancelTask { task_id, .. } => format!("cancel {task_id}"),
            Action::RetryTask { name, .. } => {
                format!("retry {}", crate::model::TaskName::parse(name).map_or(name.as_str(), |n| n.task_id))
            }
            Action::PauseNode { node, .. } => format!("pause {node}"),
            Action::ResumeNode { node, .. } => format!("resume {node}"),
            Action::RecoverNode { node, .. } => format!("recover {node}"),
            Action::CreateLease(_) => "create lease".into(),
            Action::ReleaseLease { id } => format!("release lease {id}"),
            Action::SetDefaultLease { id } => format!("set default lease {id}"),
        }
    }

    /// Whether the lease list should be re-read afterwards.
    pub fn changes_leases(&self) -> bool {
        matches!(self, Action::CreateLease(_) | Action::ReleaseLease { .. } | Action::SetDefaultLease { .. })
    }
}

/// The Slurm lease create form, as typed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LeaseForm {
    pub name: String,
    pub nodes: String,
    pub time: String,
    pub partition: String,
    pub qos: String,
    pub account: String,
    pub constraint: String,
    pub reservation: String,
    pub gpus_per_node: String,
    /// Extra sbatch arguments, one per entry.
    pub extra_args: Vec<String>,
}

/// Which log stream(s) to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStreams {
    Stdout,
    Stderr,
    Merged,
}

impl LogStreams {
    /// The one file a single-stream view reads (stdout for merged).
    pub fn log_stream(self) -> crate::task_logs::LogStream {
        match self {
            LogStreams::Stderr => crate::task_logs::LogStream::Stderr,
            _ => crate::task_logs::LogStream::Stdout,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Request {
    /// Start (or switch) the engine on a lease.
    OpenLease {
        id: String,
        run_dir: RunDir,
    },
    Engine(Control),
    /// Re-read the lease list and its Slurm states (rate-limited there).
    RefreshLeases {
        force: bool,
    },
    /// Follow (tail) a task's logs; supersedes any earlier follow.
    Follow {
        generation: u64,
        stdout: LogLocation,
        stderr: LogLocation,
        streams: LogStreams,
        max_lines: usize,
    },
    /// A page of a log file, for scrolling back and the paged view.
    ReadPage {
        generation: u64,
        path: LogLocation,
        anchor: PageAnchor,
        lines: usize,
    },
    StopLogs,
    /// The details modal's on-demand reads (env, gpus, duplicates).
    LoadDetails {
        generation: u64,
        snapshot: Arc<Index>,
        task: TaskId,
        run_dir: RunDir,
    },
    /// A search over the whole history; supersedes any earlier search.
    Search {
        generation: u64,
        snapshot: Arc<Index>,
        view: ViewSpec,
        query: SearchQuery,
        /// Where the details the index let go are (the pump fills it in
        /// from the engine: the dashboard's state has no file handles).
        cache: Option<Arc<crate::cache::FactsCache>>,
    },
    CancelSearch,
    Act(Action),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SearchQuery {
    /// Case-insensitive substring of the command (or the name, when the
    /// command was not read yet).
    Text(String),
    /// Tasks with stderr output: non-zero exit, or a non-empty err file.
    HasStderr(RunDir),
}

/// One row of the lease list.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaseRow {
    pub id: String,
    pub slurm: bool,
    pub state: String,
    pub capacity: String,
    pub time_left: String,
    pub name: String,
    pub reason: String,
    pub is_default: bool,
    pub run_dir: RunDir,
    pub present: bool,
}

/// What the details modal reads on demand.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskDetails {
    pub env: Vec<(String, String)>,
    pub idempotency_key: String,
    pub gpus_assigned: Option<String>,
    /// The result's own measure of the run, in seconds.
    pub runtime_s: Option<f64>,
    /// From the spec (the index may have only what a result repeats).
    pub cwd: Option<String>,
    pub created_at: Option<i64>,
    pub spec_path: Option<PathBuf>,
    pub result_path: Option<PathBuf>,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    /// Other tasks in this lease with the same task id (they share logs).
    pub same_task_id: usize,
    pub problems: Vec<String>,
}

/// How far a search has got: `scanned` of `total` rows in its current
/// `stage` (empty, or what it looks at: "exit codes", "err files").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SearchProgress {
    pub scanned: usize,
    pub total: usize,
    pub stage: &'static str,
    pub done: bool,
}

#[derive(Debug, Clone)]
pub enum Reply {
    Leases { rows: Vec<LeaseRow>, problems: Vec<String>, slurm_error: Option<String> },
    Log(LogUpdate),
    Page { generation: u64, page: Page },
    Details { generation: u64, task: TaskId, details: Result<TaskDetails, String> },
    Matches { generation: u64, ids: Vec<TaskId>, progress: SearchProgress },
    ActionDone { what: String, outcome: Result<String, String> },
}
