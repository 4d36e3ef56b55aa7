//! What the index keeps per task: identity, where the listings saw it, its
//! derived state, and the few hydrated fields the views need.

use std::sync::Arc;

use super::state::{Presence, TaskState};
use crate::model::ResultKind;
use crate::names::StoredName;

/// Dense id of a task inside one index, assigned in order of discovery.
pub type TaskId = u32;
/// Dense id of a node inside one index.
pub type NodeId = u16;

/// Whether an immutable file was read yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadStatus {
    #[default]
    Unread,
    Read,
    /// Unreadable or unparsable; the reason is in [`Task::problem`].
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The file stem `<seq>_<task_id>_<uuid>`: the identity.
    pub name: StoredName,
    pub node: NodeId,
    pub presence: Presence,
    /// Consecutive rounds of its node in which it was unaccounted for.
    pub missing_rounds: u8,
    pub state: TaskState,
    pub spec_read: ReadStatus,
    pub result_read: ReadStatus,
    /// Unix seconds; 0 while unknown.
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    /// The result's exit code: see [`exit_code`](Task::exit_code).
    exit: i32,
    pub gpus: u32,
    /// Its command and cwd, apart: `--max-tasks` lets them go for most
    /// finished tasks, and a task without them costs one pointer.
    pub details: Option<Arc<Details>>,
    /// Rarely set fields, boxed so the common task stays small.
    pub extra: Option<Box<TaskExtra>>,
    /// A listing has shown it. A task known only from the cache is not in
    /// any view or count until one does.
    pub listed: bool,
    /// Its result facts came from the cache, for this kind of result file,
    /// and no listing has confirmed them yet.
    pub cached_result: Option<ResultKind>,
    /// Where the cache record holding its command and cwd is (its spec's,
    /// or its result's when the result repeats them; 0: none known).
    /// Details can only be let go when they can be fetched back.
    pub details_at: u64,
    /// Its command and cwd were let go to bound memory (`--max-tasks`);
    /// fetched again from the cache when it comes on screen.
    pub details_dropped: bool,
}

/// What a task's spec (or the result repeating it) says it runs, and where.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Details {
    pub command: Option<Arc<str>>,
    pub cwd: Option<Arc<str>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskExtra {
    /// Why a file of this task could not be read or parsed.
    pub problem: Option<String>,
    /// Log paths a result named, when not the default `logs/<task_id>.*`.
    pub stdout: Option<Arc<str>>,
    pub stderr: Option<Arc<str>>,
    /// The runner's reason a task failed to start or was ended (the
    /// result's `error`).
    pub error: Option<Arc<str>>,
}

impl TaskExtra {
    /// Adds a problem; one already there stays (a broken spec and a broken
    /// result are both shown).
    pub fn add_problem(&mut self, problem: String) {
        match &mut self.problem {
            Some(existing) if existing.contains(&problem) => {}
            Some(existing) => {
                existing.push_str("; ");
                existing.push_str(&problem);
            }
            None => self.problem = Some(problem),
        }
    }
}

impl Task {
    pub fn new(name: StoredName, node: NodeId) -> Task {
        Task {
            name,
            node,
            presence: Presence::default(),
            missing_rounds: 0,
            state: TaskState::Lost,
            spec_read: ReadStatus::Unread,
            result_read: ReadStatus::Unread,
            created_at: 0,
            started_at: 0,
            finished_at: 0,
            exit: 0,
            gpus: 0,
            details: None,
            extra: None,
            listed: false,
            cached_result: None,
            details_at: 0,
            details_dropped: false,
        }
    }

    /// Its exit code, once its result is read (no flag of its own: a task
    /// of a million is 8 bytes smaller for it).
    pub fn exit_code(&self) -> Option<i32> {
        (self.result_read == ReadStatus::Read).then_some(self.exit)
    }

    /// Records what its result says: read, with this exit code.
    pub fn set_result_read(&mut self, exit_code: i32) {
        self.result_read = ReadStatus::Read;
        self.exit = exit_code;
    }

    pub fn command(&self) -> Option<&str> {
        self.details.as_ref()?.command.as_deref()
    }

    pub fn cwd(&self) -> Option<&str> {
        self.details.as_ref()?.cwd.as_deref()
    }

    /// Sets the command and cwd (both `None`: holds none).
    pub fn set_details(&mut self, command: Option<Arc<str>>, cwd: Option<Arc<str>>) {
        self.details = (command.is_some() || cwd.is_some()).then(|| Arc::new(Details { command, cwd }));
    }

    /// The task id inside the name (not unique: see ON-DISK.md).
    pub fn task_id(&self) -> &str {
        self.name.task_id()
    }

    /// The seq inside the name: FIFO order within a node.
    pub fn seq(&self) -> u64 {
        self.name.seq()
    }

    /// The time the default order sorts by, newest first: when it started,
    /// else when it was submitted, else the seq when it is Unix microseconds.
    pub fn sort_time(&self) -> i64 {
        const MICROS_SINCE_2001: u64 = 1_000_000_000_000_000;
        if self.started_at != 0 {
            self.started_at
        } else if self.created_at != 0 {
            self.created_at
        } else if self.seq() >= MICROS_SINCE_2001 {
            (self.seq() / 1_000_000) as i64
        } else {
            0
        }
    }

    /// Finished, with details the cache can give back: may let them go.
    pub fn details_droppable(&self) -> bool {
        self.listed && self.command().is_some() && self.details_at != 0 && self.state.is_terminal()
    }

    /// Whether a background read of its spec or result is still owed.
    pub fn needs_read(&self) -> bool {
        self.spec_owed() || self.result_owed()
    }

    pub fn result_owed(&self) -> bool {
        self.presence.result.is_some() && self.result_read == ReadStatus::Unread
    }

    /// Whether its spec is still to be read. A finished task's result is
    /// read first: the older tool's runner repeats the command and cwd in
    /// it, and then the spec is not read at all (half the files of a
    /// history; its env and submit time are read when its details are
    /// opened). Only a result that could not be read, or names no command,
    /// sends the reader to the spec.
    pub fn spec_owed(&self) -> bool {
        let located = self.presence.inbox || self.presence.claimed || self.presence.done_spec;
        let result_tells = self.presence.result.is_some()
            && match self.result_read {
                ReadStatus::Unread => true,
                ReadStatus::Read => self.command().is_some() || self.details_dropped,
                ReadStatus::Failed => false,
            };
        self.spec_read == ReadStatus::Unread && located && !result_tells
    }

    /// Forgets what a result said (cached facts the listing did not confirm).
    pub fn forget_result(&mut self) {
        self.result_read = ReadStatus::Unread;
        self.started_at = 0;
        self.finished_at = 0;
        self.exit = 0;
        if let Some(extra) = &mut self.extra {
            extra.stdout = None;
            extra.stderr = None;
            extra.error = None;
        }
    }

    /// The runner's reason it did not run or end by itself.
    pub fn runner_error(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.error.as_deref())
    }

    pub fn problem(&self) -> Option<&str> {
        self.extra.as_ref().and_then(|e| e.problem.as_deref())
    }

    pub fn extra_mut(&mut self) -> &mut TaskExtra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// The log path its result names (relative to the run dir), once the
    /// result was read.
    pub fn result_log(&self, stream: crate::task_logs::LogStream) -> Option<&str> {
        let extra = self.extra.as_ref()?;
        match stream {
            crate::task_logs::LogStream::Stdout => extra.stdout.as_deref(),
            crate::task_logs::LogStream::Stderr => extra.stderr.as_deref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte here is a megabyte at 10^6 tasks (`cargo bench --bench
    /// memory`); a field added makes this fail, to be weighed on purpose.
    #[test]
    fn a_task_stays_within_its_budget() {
        assert_eq!(std::mem::size_of::<Task>(), 104);
    }
}
