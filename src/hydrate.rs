//! Hydration: reading TaskSpec and TaskResult files into the index.
//!
//! Owns: locating a task's files, reading and parsing them into the
//! summaries the index keeps, and the background reader that does it once
//! per file, rows the UI asks for first, then newest first. Task files are
//! immutable once published, so a file read successfully is never read
//! again; one that moved while we looked is retried after its next listing.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::index::{Event, Index, ResultSummary, SpecSummary, Task, TaskId, UnreadCursor};
use crate::model::{result_file_name, spec_file_name, ResultKind, TaskSpec};
use crate::names::StoredName;
use crate::paths::{QueueDir, RunDir};
use crate::scan::{ListError, RunFs};
use crate::store::MAX_RECORD_BYTES;

/// Why a file could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// It moved or is not there yet: not a problem, look again later.
    Moved,
    /// Unreadable or malformed: shown with the task.
    Problem(String),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Moved => {
                f.write_str("it moved while being read; it is read again after the next listing")
            }
            ReadError::Problem(problem) => f.write_str(problem),
        }
    }
}

/// A task record's bytes through the run directory's filesystem (on the
/// real one: regular files only, non-blocking, at most [`MAX_RECORD_BYTES`]).
fn read_record(fs: &dyn RunFs, path: &Path) -> Result<Vec<u8>, ReadError> {
    fs.read_file(path, MAX_RECORD_BYTES).map_err(|e| match e {
        ListError::NotFound => ReadError::Moved,
        ListError::Failed(problem) => ReadError::Problem(problem),
    })
}

fn malformed(path: &Path, error: serde_json::Error) -> ReadError {
    ReadError::Problem(format!("{}: malformed JSON: {error}", path.display()))
}

/// The fields of a spec the index keeps; `env` is skipped without being
/// materialised.
#[derive(Deserialize)]
struct SpecHead<'a> {
    created_at: i64,
    #[serde(borrow)]
    command: Cow<'a, str>,
    #[serde(borrow)]
    cwd: Cow<'a, str>,
    #[serde(default)]
    gpus: u32,
}

pub fn parse_spec_summary(bytes: &[u8]) -> Result<SpecSummary, serde_json::Error> {
    let head: SpecHead = crate::model::from_record(bytes)?;
    Ok(SpecSummary {
        created_at: head.created_at,
        command: Arc::from(head.command.as_ref()),
        cwd: Arc::from(head.cwd.as_ref()),
        gpus: head.gpus,
    })
}

#[derive(Deserialize)]
struct ResultHead<'a> {
    started_at: i64,
    finished_at: i64,
    exit_code: i32,
    #[serde(default, borrow)]
    stdout: Cow<'a, str>,
    #[serde(default, borrow)]
    stderr: Cow<'a, str>,
    #[serde(default)]
    runtime_s: f64,
    #[serde(default, borrow)]
    command: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    cwd: Option<Cow<'a, str>>,
    #[serde(default)]
    gpus_requested: Option<u32>,
    #[serde(default, borrow)]
    gpus_assigned: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    error: Option<Cow<'a, str>>,
}

pub fn parse_result_summary(bytes: &[u8]) -> Result<ResultSummary, serde_json::Error> {
    let head: ResultHead = crate::model::from_record(bytes)?;
    Ok(ResultSummary {
        started_at: head.started_at,
        finished_at: head.finished_at,
        exit_code: head.exit_code,
        runtime_s: head.runtime_s,
        stdout: head.stdout.as_ref().into(),
        stderr: head.stderr.as_ref().into(),
        command: head.command.map(|c| Arc::from(c.as_ref())),
        cwd: head.cwd.map(|c| Arc::from(c.as_ref())),
        gpus_requested: head.gpus_requested,
        gpus_assigned: head.gpus_assigned.map(|g| Arc::from(g.as_ref())),
        error: head.error.map(|e| Arc::from(e.as_ref())),
    })
}

pub fn read_spec_summary(fs: &dyn RunFs, path: &Path) -> Result<SpecSummary, ReadError> {
    let bytes = read_record(fs, path)?;
    parse_spec_summary(&bytes).map_err(|e| malformed(path, e))
}

pub fn read_result_summary(fs: &dyn RunFs, path: &Path) -> Result<ResultSummary, ReadError> {
    let bytes = read_record(fs, path)?;
    parse_result_summary(&bytes).map_err(|e| malformed(path, e))
}

/// The whole result: for the details view, on demand.
pub fn read_full_result(fs: &dyn RunFs, path: &Path) -> Result<crate::model::TaskResult, ReadError> {
    let bytes = read_record(fs, path)?;
    crate::model::from_record(&bytes).map_err(|e| malformed(path, e))
}

/// The whole spec, `env` included: for the details view, on demand.
pub fn read_full_spec(fs: &dyn RunFs, path: &Path) -> Result<TaskSpec, ReadError> {
    let bytes = read_record(fs, path)?;
    crate::model::from_record(&bytes).map_err(|e| malformed(path, e))
}

/// Where a task's spec is now, by the latest listing (downstream first).
pub fn spec_location(run: &RunDir, node: &str, task: &Task) -> Option<PathBuf> {
    let p = &task.presence;
    let dir = if p.done_spec {
        QueueDir::Done
    } else if p.claimed {
        QueueDir::Claimed
    } else if p.inbox {
        QueueDir::Inbox
    } else {
        return None;
    };
    Some(run.queue(dir, node).join(spec_file_name(&task.name.text())))
}

pub fn result_location(run: &RunDir, node: &str, task: &Task, kind: ResultKind) -> PathBuf {
    run.queue(QueueDir::Done, node).join(result_file_name(&task.name.text(), kind))
}

/// One file to read for one task.
#[derive(Debug, Clone)]
pub struct ReadJob {
    pub id: TaskId,
    pub node: Arc<str>,
    pub name: StoredName,
    pub path: PathBuf,
    pub result: Option<ResultKind>,
}

/// The reads a task still owes, per the snapshot (`specs`: its spec too,
/// not only its result).
pub fn jobs_for(index: &Index, run: &RunDir, id: TaskId, specs: bool, out: &mut Vec<ReadJob>) {
    wanted_jobs_for(index, run, id, specs, &|_| true, out);
}

/// As [`jobs_for`], only the reads `wanted` lets through (a path is built
/// only for those); returns whether it held back a result the task owes.
fn wanted_jobs_for(
    index: &Index,
    run: &RunDir,
    id: TaskId,
    specs: bool,
    wanted: &dyn Fn(ReadKey) -> bool,
    out: &mut Vec<ReadJob>,
) -> bool {
    let Some(task) = index.task(id) else { return false };
    let node = || index.node(task.node).map(|n| n.name.clone()).unwrap_or_else(|| Arc::from("?"));
    if specs && task.spec_owed() && wanted((id, false)) {
        let node = node();
        if let Some(path) = spec_location(run, &node, task) {
            out.push(ReadJob { id, node, name: task.name.clone(), path, result: None });
        }
    }
    let (Some(kind), true) = (task.presence.result, task.result_owed()) else { return false };
    if !wanted((id, true)) {
        return true;
    }
    let node = node();
    let path = result_location(run, &node, task, kind);
    out.push(ReadJob { id, node, name: task.name.clone(), path, result: Some(kind) });
    false
}

/// Performs a read; `None` when the file moved (try again later).
pub fn perform(job: &ReadJob, fs: &dyn RunFs) -> Option<Event> {
    let (node, name) = (job.node.clone(), job.name.clone());
    match job.result {
        None => match read_spec_summary(fs, &job.path) {
            Err(ReadError::Moved) => None,
            Ok(spec) => Some(Event::SpecRead { node, name, outcome: Ok(spec) }),
            Err(ReadError::Problem(p)) => Some(Event::SpecRead { node, name, outcome: Err(p) }),
        },
        Some(kind) => match read_result_summary(fs, &job.path) {
            Err(ReadError::Moved) => None,
            Ok(r) => Some(Event::ResultRead { node, name, kind, outcome: Ok(r) }),
            Err(ReadError::Problem(p)) => Some(Event::ResultRead { node, name, kind, outcome: Err(p) }),
        },
    }
}

/// Which file of a task a read is for: its spec, or its result.
pub type ReadKey = (TaskId, bool);

impl ReadJob {
    pub fn key(&self) -> ReadKey {
        (self.id, self.result.is_some())
    }
}

/// What planning one task gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Reads,
    /// Nothing now: its result's read is done but not in the index yet.
    AwaitingFold,
    /// Nothing it owes can be read now.
    Nothing,
}

/// Chooses what to read next: hinted rows first, then newest first, never
/// a task with a read in flight, nor a file that was just read or had
/// moved away.
#[derive(Debug, Default)]
pub struct ReadPlanner {
    hinted: Vec<TaskId>,
    in_flight: HashMap<TaskId, usize>,
    /// Files read recently, with when they may be tried again: the read's
    /// event may not be in the next snapshot yet, or the file had moved.
    backoff: HashMap<ReadKey, Duration>,
    /// Tasks that owe reads but none that can be made now (their files
    /// backed off, or not asked for, or in no listing), until when: passed
    /// over without being looked at again on every plan.
    set_aside: HashMap<TaskId, Duration>,
    /// `None`: a file is tried once (the one-shot commands).
    retry_after: Option<Duration>,
    /// Trying once, where the last plan stopped in the index's list: the
    /// next one goes on from there (and wraps around once at the end, for
    /// tasks listed meanwhile), so a long history is walked once, not once
    /// per batch.
    cursor: Option<UnreadCursor>,
    /// When `backoff` and `set_aside` were last cleared of what expired.
    pruned_at: Duration,
}

/// How often expired backoffs are cleared away (a lookup checks the expiry
/// itself): a plan runs per batch of reads, a hundred a second while
/// ingesting, and going through tens of thousands of backoffs each time
/// would cost more than the reads.
const PRUNE_EVERY: Duration = Duration::from_millis(250);

/// Whether a backoff or a setting aside (until when, if any) still holds.
fn waits(until: Option<&Duration>, now: Duration) -> bool {
    until.is_some_and(|&until| until > now)
}

impl ReadPlanner {
    pub fn new(retry_after: Option<Duration>) -> ReadPlanner {
        ReadPlanner { retry_after, ..ReadPlanner::default() }
    }

    /// The UI's visible rows: read these before anything else.
    pub fn hint(&mut self, ids: Vec<TaskId>) {
        self.hinted = ids;
    }

    pub fn started(&mut self, jobs: &[ReadJob]) {
        for job in jobs {
            *self.in_flight.entry(job.id).or_default() += 1;
        }
    }

    /// A read is done; `moved`: its file was not there. Watching, every
    /// file read waits `retry_after` (its event may not be in the next
    /// snapshot yet); settling, only a moved one is remembered, never to be
    /// tried again, and the caller folds events before planning more.
    pub fn finished(&mut self, key: ReadKey, now: Duration, moved: bool) {
        if let Some(count) = self.in_flight.get_mut(&key.0) {
            *count -= 1;
            if *count == 0 {
                self.in_flight.remove(&key.0);
            }
        }
        match self.retry_after {
            Some(wait) => {
                self.backoff.insert(key, now.saturating_add(wait));
            }
            None if moved => {
                self.backoff.insert(key, Duration::MAX);
            }
            None => {}
        }
    }

    /// Reads in flight, by task.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The reads a task owes, less those backed off.
    fn plan(
        &self,
        index: &Index,
        run: &RunDir,
        id: TaskId,
        specs: bool,
        now: Duration,
        jobs: &mut Vec<ReadJob>,
    ) -> Plan {
        let from = jobs.len();
        let wanted = |key| !waits(self.backoff.get(&key), now);
        let result_awaits_fold = wanted_jobs_for(index, run, id, specs, &wanted, jobs);
        match (jobs.len() > from, result_awaits_fold) {
            (true, _) => Plan::Reads,
            // Its result was just read, and the index does not have it yet:
            // once it does, the spec may be owed (a result naming no
            // command), so the task is not set aside.
            (false, true) => Plan::AwaitingFold,
            (false, false) => Plan::Nothing,
        }
    }

    /// Reads for up to `limit` tasks, specs only if `specs`.
    pub fn next_batch(
        &mut self,
        index: &Index,
        run: &RunDir,
        limit: usize,
        specs: bool,
        now: Duration,
    ) -> Vec<ReadJob> {
        if self.retry_after.is_some() && now.saturating_sub(self.pruned_at) >= PRUNE_EVERY {
            self.pruned_at = now;
            self.backoff.retain(|_, until| waits(Some(until), now));
            self.set_aside.retain(|_, until| waits(Some(until), now));
        }
        let mut jobs = Vec::new();
        // Tasks looked at by this plan, and how many of them gave reads.
        let mut considered: HashSet<TaskId> = HashSet::new();
        let mut planned = 0;
        for id in std::mem::take(&mut self.hinted) {
            if !self.in_flight.contains_key(&id) && considered.insert(id) {
                planned += usize::from(self.plan(index, run, id, specs, now, &mut jobs) == Plan::Reads);
            }
        }
        // Tasks owing reads in index order; one that owes nothing readable
        // now (backed off, no file listed) is passed over.
        let mut wrapped = false;
        let mut walked = None;
        while planned < limit {
            let skip = |id| {
                self.in_flight.contains_key(&id)
                    || considered.contains(&id)
                    || waits(self.set_aside.get(&id), now)
            };
            let candidates = if self.retry_after.is_none() {
                let (ids, stopped) = index.unread_after(self.cursor, limit - planned, skip);
                if ids.is_empty() && self.cursor.is_some() && !wrapped {
                    wrapped = true;
                    self.cursor = None;
                    continue;
                }
                self.cursor = stopped;
                ids
            } else {
                // Newest first on every plan, from the top of the list;
                // within one plan, on from where the last step stopped.
                let (ids, stopped) = index.unread_after(walked, limit - planned, skip);
                walked = stopped;
                ids
            };
            if candidates.is_empty() {
                break;
            }
            let until = self.retry_after.map_or(Duration::MAX, |wait| now.saturating_add(wait));
            for id in candidates {
                considered.insert(id);
                match self.plan(index, run, id, specs, now, &mut jobs) {
                    Plan::Reads => planned += 1,
                    Plan::AwaitingFold => {}
                    Plan::Nothing => {
                        self.set_aside.insert(id, until);
                    }
                }
            }
        }
        jobs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_summary_skips_env_and_tolerates_missing_gpus() {
        let spec = parse_spec_summary(
            br#"{"task_id":"T1","idempotency_key":"k","lease_id":"1","target_node":"a","seq":1,
                "uuid":"u","created_at":5,"cwd":"/w","env":{"A":"1"},"command":"echo \u00e9"}"#,
        )
        .unwrap();
        assert_eq!((spec.created_at, &*spec.command, spec.gpus), (5, "echo é", 0));
        assert!(parse_spec_summary(br#"{"created_at":1.5,"cwd":"/","command":"x"}"#).is_err());
    }

    #[test]
    fn missing_file_is_moved_and_garbage_is_a_problem() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(
            read_result_summary(&crate::scan::FsSource, &tmp.path().join("nope")).unwrap_err(),
            ReadError::Moved
        );
        let bad = tmp.path().join("bad.json");
        std::fs::write(&bad, b"{\"started_at\": 1, \"fin").unwrap();
        match read_result_summary(&crate::scan::FsSource, &bad) {
            Err(ReadError::Problem(p)) => assert!(p.contains("malformed JSON"), "{p}"),
            other => panic!("{other:?}"),
        }
    }
}
