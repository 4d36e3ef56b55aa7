//! How a claimed task ends on disk: its result is written first, then its
//! spec is archived from `claimed/` into `done/`, then the event is
//! appended. A reader therefore never sees a task leave `claimed/` before
//! its result exists.

use std::collections::HashSet;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::json;

use super::events::EventLog;
use super::process::signal_name;
use crate::clock::unix_now;
use crate::control::write_result;
use crate::model::{ResultKind, TaskResult, TaskSpec};
use crate::paths::RunDir;
use crate::runfs::FsSource;

/// The exit code of a task the runner refused to start (malformed spec,
/// missing cwd, more GPUs than the node has): its `error` says why. A task
/// cancelled while pending has -1, as with the older tool.
pub const NOT_STARTED_EXIT: i32 = -2;

/// A task taken from the inbox into `claimed/`.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub stem: String,
    pub task_id: String,
    /// None when the spec could not be read or parsed.
    pub spec: Option<TaskSpec>,
}

/// Why a running task's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// By itself (an exit code or a signal nobody here sent).
    Natural,
    /// A cancel request: the result is `.cancelled.json`.
    Cancelled,
    /// The runner was told to stop (the lease ended) and stopped the task.
    RunnerStopped(i32),
}

/// What the lane knows of a task it started.
#[derive(Debug, Clone)]
pub struct Started {
    pub started_at: i64,
    pub clock: Instant,
    pub gpus_assigned: Vec<String>,
    pub stdout: String,
    pub stderr: String,
}

/// Writes results and archives specs; shared by the lane and the threads
/// that wait for tasks.
pub struct Finisher {
    pub run: RunDir,
    pub node: String,
    pub events: EventLog,
    /// Idempotency keys that already have a result on this node.
    pub keys: Mutex<HashSet<String>>,
    /// The stop signal the runner got (0: none yet), set by the signal
    /// thread itself, before the lane hears of it.
    pub stop_signal: std::sync::atomic::AtomicI32,
}

impl Finisher {
    fn base(&self, claimed: &Claimed, started_at: i64) -> TaskResult {
        crate::control::result_for(&claimed.task_id, &self.node, claimed.spec.as_ref(), started_at)
    }

    fn publish(&self, claimed: &Claimed, kind: ResultKind, result: &TaskResult) {
        if let Err(e) = write_result(&FsSource, &self.run, &self.node, &claimed.stem, kind, result) {
            // The spec stays in claimed/ (STUCK once this runner is gone, and
            // recoverable) rather than vanishing without a result.
            eprintln!("leaseq run: {e}; {} stays in claimed/", claimed.stem);
            return;
        }
        if !result.idempotency_key.is_empty() {
            self.keys.lock().unwrap_or_else(|e| e.into_inner()).insert(result.idempotency_key.clone());
        }
        self.archive(&claimed.stem);
    }

    /// Moves a spec from `claimed/` into `done/`.
    pub fn archive(&self, stem: &str) {
        if let Err(e) = crate::control::archive(&FsSource, &self.run, &self.node, stem) {
            eprintln!("leaseq run: {e}");
        }
    }

    /// A task that was claimed but never started, and why.
    pub fn not_started(&self, claimed: &Claimed, reason: &str) {
        let mut result = self.base(claimed, unix_now());
        result.exit_code = NOT_STARTED_EXIT;
        result.error = Some(reason.to_string());
        eprintln!("leaseq run: {}: not started: {reason}", claimed.stem);
        self.publish(claimed, ResultKind::Ran, &result);
        self.events.record("FAILED", &claimed.task_id, &claimed.stem, json!({"error": reason}));
    }

    /// A task whose idempotency key already has a result: not run.
    pub fn skipped(&self, claimed: &Claimed) {
        let mut result = self.base(claimed, unix_now());
        result.error =
            Some(format!("idempotency key {} already has a result; not run", result.idempotency_key));
        let key = result.idempotency_key.clone();
        self.publish(claimed, ResultKind::Skipped, &result);
        self.events.record("SKIPPED_DUP", &claimed.task_id, &claimed.stem, json!({"key": key}));
    }

    /// A task whose process ended.
    pub fn ended(&self, claimed: &Claimed, started: &Started, status: ExitStatus, ending: Ending) {
        let mut result = self.base(claimed, started.started_at);
        result.runtime_s = started.clock.elapsed().as_secs_f64();
        result.stdout = started.stdout.clone();
        result.stderr = started.stderr.clone();
        result.gpus_assigned = Some(started.gpus_assigned.join(","));
        result.signal = status.signal();
        result.exit_code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let by_signal = status.signal().map(signal_name);
        result.error = match (ending, &by_signal) {
            (Ending::Cancelled, Some(name)) => Some(format!("cancelled by request; ended by {name}")),
            (Ending::Cancelled, None) => Some(format!("cancelled by request; exited {}", result.exit_code)),
            (Ending::RunnerStopped(signal), _) => {
                Some(format!("the runner was stopped ({}) and stopped this task", signal_name(signal)))
            }
            (Ending::Natural, Some(name)) => Some(format!("killed by {name}")),
            (Ending::Natural, None) if matches!(result.exit_code, 126 | 127) => Some(format!(
                "exit {}: bash could not find or run the command (see stderr)",
                result.exit_code
            )),
            (Ending::Natural, None) => None,
        };
        let (kind, event) = match ending {
            Ending::Cancelled => (ResultKind::Cancelled, "CANCELLED"),
            _ if result.exit_code == 0 => (ResultKind::Ran, "FINISHED"),
            _ => (ResultKind::Ran, "FAILED"),
        };
        let exit_code = result.exit_code;
        let error = result.error.clone();
        self.publish(claimed, kind, &result);
        self.events.record(
            event,
            &claimed.task_id,
            &claimed.stem,
            json!({"exit_code": exit_code, "error": error}),
        );
    }
}
