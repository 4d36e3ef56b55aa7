//! The UI's background: everything a key asks for that touches the disk,
//! a process or a big computation runs here, on its own thread, and comes
//! back as a [`Reply`] carrying its data.
//!
//! Owns: log followers, log pages, details reads, searches, actions, and
//! the lease list with its Slurm states. Filesystem work runs on a pool of
//! [`BACKGROUND_IO_THREADS`] threads, one job per kind in the queue (a
//! newer page, details load, search step or follow poll replaces a queued
//! older one; superseded work that already runs stops cooperatively
//! through generation counters); Slurm has its own thread, so a hung
//! `squeue` holds nothing else up.

use crate::task_logs::{LogLocation, LogStream};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use futures_lite::FutureExt;
use smol::{Executor, Timer};

use crate::actions::{self, ActionContext};
use crate::cache::FactsCache;
use crate::control::find_spec;
use crate::index::{Index, TaskId, TaskState, ViewSpec};
use crate::io_pool::{Behind, IoPool, JobKey};
use crate::leases::{discover_leases, LeaseInfo, LeaseKind};
use crate::logs::{self, FollowMode, FollowRequest, LogPaths, Stream};
use crate::model::LeaseMeta;
use crate::paths::{Roots, RunDir, UiConfig};
use crate::scan::RunFs;
use crate::slurm::{self, LeaseSlurmState, SlurmPoller};
use crate::ui::messages::{LeaseRow, LogStreams, Reply, Request, SearchProgress, SearchQuery, TaskDetails};

/// Tasks examined per search step; between steps the search checks that
/// it is still wanted and streams what it found.
const SEARCH_CHUNK: usize = 8192;
/// Bytes a log page may read.
const PAGE_BYTES: u64 = 1 << 20;
/// Threads for the background's filesystem work, all of it together: on
/// a hung mount at most this many hang, and the rest of the dashboard
/// (and Slurm, on its own thread) goes on.
pub const BACKGROUND_IO_THREADS: usize = 4;
/// Tasks whose err file the has-stderr filter looks at per step.
const STDERR_CHUNK: usize = 512;

pub struct Background {
    requests: Sender<Request>,
    _thread: std::thread::JoinHandle<()>,
}

impl Background {
    pub fn start(roots: Roots, config: UiConfig, fs: Arc<dyn RunFs>, replies: Sender<Reply>) -> Background {
        let (requests, incoming) = async_channel::unbounded::<Request>();
        let thread = std::thread::Builder::new()
            .name("leaseq-background".into())
            .spawn(move || {
                let ex = Arc::new(Executor::new());
                let worker = Arc::new(Worker::new(roots, config, fs, replies));
                ex.spawn(lease_listing_loop(worker.clone())).detach();
                ex.spawn(slurm_loop(worker.clone())).detach();
                smol::block_on(ex.run(dispatch(ex.clone(), worker, incoming)));
            })
            .expect("spawn background thread");
        Background { requests, _thread: thread }
    }

    /// Never blocks (the channel is unbounded).
    pub fn send(&self, request: Request) {
        let _ = self.requests.try_send(request);
    }
}

struct Worker {
    roots: Roots,
    /// The run directories' filesystem (details reads).
    fs: Arc<dyn RunFs>,
    config: UiConfig,
    replies: Sender<Reply>,
    follow_generation: Arc<AtomicU64>,
    search_generation: Arc<AtomicU64>,
    board: std::sync::Mutex<LeaseBoard>,
    /// Wakes for the two lease loops (capacity 1: a wake is pending or not).
    listing_wake: (Sender<()>, Receiver<()>),
    slurm_wake: (Sender<()>, Receiver<()>),
    force_refresh: std::sync::atomic::AtomicBool,
    io: IoPool,
    slurm: IoPool,
    /// Actions running now, by description: the same one asked for again
    /// meanwhile is not run twice.
    acting: std::sync::Mutex<std::collections::HashSet<String>>,
}

impl Worker {
    fn new(roots: Roots, config: UiConfig, fs: Arc<dyn RunFs>, replies: Sender<Reply>) -> Worker {
        Worker {
            roots,
            fs,
            config,
            replies,
            follow_generation: Arc::new(AtomicU64::new(0)),
            search_generation: Arc::new(AtomicU64::new(0)),
            board: std::sync::Mutex::new(LeaseBoard::default()),
            listing_wake: async_channel::bounded(1),
            slurm_wake: async_channel::bounded(1),
            force_refresh: std::sync::atomic::AtomicBool::new(false),
            io: IoPool::running_behind("leaseq-bg-io", BACKGROUND_IO_THREADS, Behind::Pump),
            slurm: IoPool::running_behind("leaseq-slurm", 1, Behind::Pump),
            acting: std::sync::Mutex::new(std::collections::HashSet::new()),
        }
    }

    fn wake_lease_loops(&self) {
        let _ = self.listing_wake.0.try_send(());
        let _ = self.slurm_wake.0.try_send(());
    }

    async fn reply(&self, reply: Reply) {
        let _ = self.replies.send(reply).await;
    }
}

async fn dispatch(ex: Arc<Executor<'static>>, worker: Arc<Worker>, incoming: Receiver<Request>) {
    while let Ok(request) = incoming.recv().await {
        let w = worker.clone();
        match request {
            Request::OpenLease { .. } | Request::Engine(_) => {} // the pump's own
            Request::RefreshLeases { force } => {
                w.force_refresh.store(force, Ordering::SeqCst);
                w.wake_lease_loops();
            }
            Request::Follow { generation, stdout, stderr, streams, max_lines } => {
                w.follow_generation.store(generation, Ordering::SeqCst);
                let mode = match streams {
                    LogStreams::Stdout => FollowMode::Single(Stream::Out),
                    LogStreams::Stderr => FollowMode::Single(Stream::Err),
                    LogStreams::Merged => FollowMode::Merged,
                };
                ex.spawn(async move {
                    // Which file a running task writes is a stat away: not on the pump.
                    let resolve = move || LogPaths { stdout: stdout.resolve(), stderr: stderr.resolve() };
                    let Some(paths) = w.io.run(JobKey::new("follow", generation), resolve).await else {
                        return;
                    };
                    let request = FollowRequest::new(generation, paths, mode, max_lines);
                    follow(w, request).await;
                })
                .detach();
            }
            Request::StopLogs => {
                w.follow_generation.fetch_add(1 << 32, Ordering::SeqCst);
            }
            Request::ReadPage { generation, path, anchor, lines } => {
                ex.spawn(async move {
                    let read = move || logs::read_page(&path.resolve(), anchor, lines, PAGE_BYTES);
                    // None: a newer page was asked for before this one started.
                    if let Some(page) = w.io.run(JobKey::new("page", generation), read).await {
                        w.reply(Reply::Page { generation, page }).await;
                    }
                })
                .detach();
            }
            Request::LoadDetails { generation, snapshot, task, run_dir } => {
                ex.spawn(async move {
                    let fs = w.fs.clone();
                    let load = move || load_details(&*fs, &snapshot, task, &run_dir);
                    if let Some(details) = w.io.run(JobKey::new("details", generation), load).await {
                        w.reply(Reply::Details { generation, task, details }).await;
                    }
                })
                .detach();
            }
            Request::Search { generation, snapshot, view, query, cache } => {
                w.search_generation.store(generation, Ordering::SeqCst);
                ex.spawn(search(w, generation, snapshot, view, query, cache)).detach();
            }
            Request::CancelSearch => {
                w.search_generation.fetch_add(1 << 32, Ordering::SeqCst);
            }
            Request::Act(action) => {
                ex.spawn(async move {
                    let what = action.describe();
                    if !w.acting.lock().unwrap_or_else(|e| e.into_inner()).insert(what.clone()) {
                        let outcome = Ok("already under way; asked once".to_string());
                        w.reply(Reply::ActionDone { what, outcome }).await;
                        return;
                    }
                    let context = ActionContext {
                        roots: w.roots.clone(),
                        stale_after_s: w.config.hb_stale_s as i64,
                        fs: w.fs.clone(),
                    };
                    let refresh = action.changes_leases();
                    let outcome = w.io.run(None, move || actions::perform(&action, &context)).await;
                    w.acting.lock().unwrap_or_else(|e| e.into_inner()).remove(&what);
                    let outcome = outcome.unwrap_or_else(|| Err("the dashboard is closing".into()));
                    w.reply(Reply::ActionDone { what, outcome }).await;
                    if refresh {
                        w.force_refresh.store(true, Ordering::SeqCst);
                        w.wake_lease_loops();
                    }
                })
                .detach();
            }
        }
    }
}

async fn follow(worker: Arc<Worker>, request: FollowRequest) {
    let (tx, rx) = async_channel::bounded(4);
    let forward = {
        let worker = worker.clone();
        async move {
            while let Ok(update) = rx.recv().await {
                worker.reply(Reply::Log(update)).await;
            }
        }
    };
    let run = logs::follow(request, worker.follow_generation.clone(), tx, worker.io.clone());
    futures_lite::future::zip(run, forward).await;
}

/// What the lease pane shows, kept from two sources that never wait on
/// each other: the lease directories (listed every few seconds) and Slurm
/// (asked every `ui.slurm_refresh_s`, and slow or hung at times). A hung
/// `squeue` marks only the Slurm rows; local leases, new run directories
/// and everything else keep updating.
#[derive(Default)]
struct LeaseBoard {
    leases: Vec<LeaseInfo>,
    problems: Vec<String>,
    slurm: HashMap<String, LeaseSlurmState>,
    slurm_error: Option<String>,
    /// A Slurm query has been running since then.
    asking_since: Option<Instant>,
}

/// A Slurm query running this long is shown as waiting in its rows.
const SLOW_SLURM: Duration = Duration::from_secs(2);

impl LeaseBoard {
    fn reply(&self) -> Reply {
        let waiting = self.asking_since.map(|at| at.elapsed()).filter(|d| *d >= SLOW_SLURM);
        let rows = self
            .leases
            .iter()
            .map(|info| lease_row(info, self.slurm.get(&info.id), self.slurm_error.as_deref(), waiting))
            .collect();
        Reply::Leases { rows, problems: self.problems.clone(), slurm_error: self.slurm_error.clone() }
    }

    fn slurm_ids(&self) -> Vec<String> {
        self.leases.iter().filter(|l| l.kind == LeaseKind::Slurm).map(|l| l.id.clone()).collect()
    }
}

/// Waits until `wait` passes or a wake arrives (a wake sent while the
/// loop was busy is kept in the channel, never lost).
async fn sleep_or_wake(wait: Duration, wake: &Receiver<()>) {
    async {
        Timer::after(wait).await;
    }
    .or(async {
        let _ = wake.recv().await;
    })
    .await;
}

/// The lease directories: listed now, every few seconds, and at once on
/// request.
async fn lease_listing_loop(worker: Arc<Worker>) {
    loop {
        let roots = worker.roots.clone();
        let fs = worker.fs.clone();
        let listed = worker.io.run(JobKey::new("leases", 0), move || discover_leases(&*fs, &roots)).await;
        let Some((leases, problems)) = listed else { return };
        let (reply, new_slurm_leases) = {
            let mut board = worker.board.lock().unwrap_or_else(|e| e.into_inner());
            let before = board.slurm_ids();
            board.leases = leases;
            board.problems = problems;
            (board.reply(), board.slurm_ids() != before)
        };
        if new_slurm_leases {
            let _ = worker.slurm_wake.0.try_send(());
        }
        worker.reply(reply).await;
        sleep_or_wake(Duration::from_secs(3), &worker.listing_wake.1).await;
    }
}

/// Slurm: asked when the poller says so (every `ui.slurm_refresh_s`,
/// backing off after errors, at most one forced query per couple of
/// seconds), one `squeue` for every Slurm lease.
async fn slurm_loop(worker: Arc<Worker>) {
    let mut poller = SlurmPoller::from_config(&worker.config);
    loop {
        if worker.force_refresh.swap(false, Ordering::SeqCst) {
            poller.refresh_now();
        }
        let ids = worker.board.lock().unwrap_or_else(|e| e.into_inner()).slurm_ids();
        if !ids.is_empty() && poller.due(Instant::now()) {
            poller.started(Instant::now());
            worker.board.lock().unwrap_or_else(|e| e.into_inner()).asking_since = Some(Instant::now());
            let query = move || slurm::query_leases(&ids).map_err(|e| e.to_string());
            let Some(answer) = worker.slurm.run(None, query).await else { return };
            poller.finished(Instant::now(), answer.is_ok());
            let reply = {
                let mut board = worker.board.lock().unwrap_or_else(|e| e.into_inner());
                board.asking_since = None;
                match answer {
                    Ok(states) => {
                        board.slurm = states;
                        board.slurm_error = None;
                    }
                    Err(error) => board.slurm_error = Some(error),
                }
                board.reply()
            };
            worker.reply(reply).await;
        }
        let until_due =
            poller.next_due().map_or(Duration::ZERO, |at| at.saturating_duration_since(Instant::now()));
        sleep_or_wake(until_due.clamp(Duration::from_secs(1), Duration::from_secs(10)), &worker.slurm_wake.1)
            .await;
    }
}

/// One row of the lease pane. `waiting`: how long a Slurm query has run,
/// once that is long enough to say so.
pub fn lease_row(
    info: &LeaseInfo,
    slurm: Option<&LeaseSlurmState>,
    slurm_error: Option<&str>,
    waiting: Option<Duration>,
) -> LeaseRow {
    let (state, capacity, time_left, reason, name) = match (info.kind, slurm) {
        (LeaseKind::Local, _) => {
            let gpus = match &info.meta {
                Some(LeaseMeta::Local { local, .. }) => format!("gpus={}", local.total_gpus),
                _ => "local".into(),
            };
            let state = if info.present { "RUNNING" } else { "-" };
            (state.to_string(), gpus, String::new(), String::new(), info.name.clone().unwrap_or_default())
        }
        (LeaseKind::Slurm, Some(LeaseSlurmState::Job(job))) => (
            job.state.clone(),
            format!("nodes={} gpn={}", job.nodes, job.gpus_per_node.unwrap_or(0)),
            job.time_left.clone().unwrap_or_default(),
            job.reason.clone().unwrap_or_default(),
            info.name.clone().unwrap_or_else(|| job.name.clone()),
        ),
        (LeaseKind::Slurm, Some(LeaseSlurmState::Gone)) => (
            "ENDED".into(),
            String::new(),
            String::new(),
            "no longer known to Slurm".into(),
            info.name.clone().unwrap_or_default(),
        ),
        (LeaseKind::Slurm, None) => {
            let state = if slurm_error.is_some() { "?" } else { "…" };
            // Why the state is unknown, in the row where it is missing.
            let reason = match (slurm_error, waiting) {
                (Some(e), _) => format!("slurm: {e}"),
                (None, Some(waiting)) => format!("slurm: no answer yet ({}s)", waiting.as_secs()),
                (None, None) => String::new(),
            };
            (state.into(), String::new(), String::new(), reason, info.name.clone().unwrap_or_default())
        }
    };
    LeaseRow {
        id: info.id.clone(),
        slurm: info.kind == LeaseKind::Slurm,
        state,
        capacity,
        time_left,
        name,
        reason,
        is_default: info.is_default,
        run_dir: info.run(),
        present: info.present,
    }
}

/// Reads what the details modal shows beyond the index: the whole spec
/// (env, idempotency key), the result's GPU assignment, and how many other
/// tasks share this task id (they share a log file).
fn load_details(fs: &dyn RunFs, snapshot: &Index, id: TaskId, run: &RunDir) -> Result<TaskDetails, String> {
    let task = snapshot.task(id).ok_or("task not in the snapshot")?;
    let node = snapshot.node_name(task.node);
    let mut details = TaskDetails {
        stdout_path: LogLocation::of_indexed(run, snapshot, task, LogStream::Stdout).resolve(),
        stderr_path: LogLocation::of_indexed(run, snapshot, task, LogStream::Stderr).resolve(),
        ..TaskDetails::default()
    };
    match find_spec(fs, run, node, &task.name.text()) {
        Some(path) => {
            match crate::hydrate::read_full_spec(fs, &path) {
                Ok(spec) => {
                    details.env = spec.env.into_iter().collect();
                    details.idempotency_key = spec.idempotency_key;
                    details.cwd = Some(spec.cwd);
                    details.created_at = Some(spec.created_at);
                }
                Err(e) => details.problems.push(format!("spec: {e}")),
            }
            details.spec_path = Some(path);
        }
        None => details.problems.push("spec file not found (moved or removed)".into()),
    }
    if let Some(kind) = task.presence.result {
        let path = crate::hydrate::result_location(run, node, task, kind);
        match crate::hydrate::read_full_result(fs, &path) {
            Ok(result) => {
                details.gpus_assigned = result.gpus_assigned;
                details.runtime_s = Some(result.runtime_s);
            }
            Err(e) => details.problems.push(format!("result: {e}")),
        }
        details.result_path = Some(path);
    }
    let task_id = task.task_id();
    details.same_task_id = (0..snapshot.id_bound())
        .filter(|&other| other != id && snapshot.task(other).is_some_and(|t| t.task_id() == task_id))
        .count();
    Ok(details)
}

/// Walks the view in chunks, streaming matching ids, until done or
/// superseded. The has-stderr filter answers from what the index knows
/// first (failed, non-zero exit: every such row at once, no file touched),
/// then looks at the err files of the other tasks that ran, a few hundred
/// per step, with its progress in the reply.
async fn search(
    worker: Arc<Worker>,
    generation: u64,
    snapshot: Arc<Index>,
    view: ViewSpec,
    query: SearchQuery,
    cache: Option<Arc<FactsCache>>,
) {
    let total = snapshot.view_total(&view) as usize;
    let walk = Walk { worker, generation, snapshot, view, total };
    match query {
        SearchQuery::Text(text) => {
            let test = move |index: &Index, ids: &[TaskId]| {
                let fetched = commands_let_go(cache.as_deref(), index, ids);
                let matches = |&id: &TaskId| text_matches(index, id, fetched.get(&id).map(|c| &**c), &text);
                ids.iter().copied().filter(matches).collect()
            };
            walk.run("", SEARCH_CHUNK, true, test).await;
        }
        SearchQuery::HasStderr(run) => {
            let exit_codes =
                |index: &Index, ids: &[TaskId]| ids.iter().copied().filter(|&id| failed(index, id)).collect();
            if walk.run("exit codes", SEARCH_CHUNK, false, exit_codes).await {
                let current = walk.worker.search_generation.clone();
                let test = move |index: &Index, ids: &[TaskId]| {
                    let passes = |&id: &TaskId| {
                        current.load(Ordering::SeqCst) == generation
                            && !failed(index, id)
                            && err_file_has_text(&run, index, id)
                    };
                    ids.iter().copied().filter(passes).collect()
                };
                walk.run("err files", STDERR_CHUNK, true, test).await;
            }
        }
    }
}

/// The commands of the tasks among `ids` whose details the index let go
/// (`--max-tasks`), read back from the cache in one pass.
fn commands_let_go(cache: Option<&FactsCache>, index: &Index, ids: &[TaskId]) -> HashMap<TaskId, Arc<str>> {
    let wanted: Vec<(TaskId, u64)> = ids
        .iter()
        .filter_map(|&id| index.task(id).filter(|t| t.details_dropped).map(|t| (id, t.details_at)))
        .collect();
    let (Some(cache), false) = (cache, wanted.is_empty()) else { return HashMap::new() };
    let at: Vec<u64> = wanted.iter().map(|w| w.1).collect();
    let Ok(found) = cache.read_records(&at) else { return HashMap::new() };
    let mut out = HashMap::with_capacity(wanted.len());
    for ((id, _), facts) in wanted.into_iter().zip(found) {
        // The record must be this task's: a cache cut and written again by
        // another dashboard could have something else there.
        let Some(facts) = facts else { continue };
        let Some((command, _)) = facts.details() else { continue };
        if index.task(id).is_some_and(|t| t.name == *facts.name()) {
            out.insert(id, command.clone());
        }
    }
    out
}

/// One pass of a search over a view.
struct Walk {
    worker: Arc<Worker>,
    generation: u64,
    snapshot: Arc<Index>,
    view: ViewSpec,
    total: usize,
}

impl Walk {
    fn current(&self) -> bool {
        self.worker.search_generation.load(Ordering::SeqCst) == self.generation
    }

    /// Streams the ids passing `test`, `chunk` tasks per step on the pool;
    /// false if superseded. `last`: its end ends the search.
    async fn run(
        &self,
        stage: &'static str,
        chunk: usize,
        last: bool,
        test: impl Fn(&Index, &[TaskId]) -> Vec<TaskId> + Clone + Send + 'static,
    ) -> bool {
        let mut anchor: Option<TaskId> = None;
        let mut scanned = 0usize;
        loop {
            if !self.current() {
                return false;
            }
            let (snap, view, test) = (self.snapshot.clone(), self.view, test.clone());
            let step = move || {
                let ids = snap.page(&view, anchor, true, false, chunk);
                let matches = test(&snap, &ids);
                (ids.len(), matches, ids.last().copied())
            };
            let Some((count, ids, next)) =
                self.worker.io.run(JobKey::new("search", self.generation), step).await
            else {
                return false;
            };
            scanned += count;
            let finished = count < chunk;
            if !self.current() {
                return false;
            }
            let progress = SearchProgress { scanned, total: self.total, stage, done: finished && last };
            self.worker.reply(Reply::Matches { generation: self.generation, ids, progress }).await;
            if finished {
                return true;
            }
            anchor = next;
        }
    }
}

/// `fetched`: its command from the cache, when the index let it go.
fn text_matches(index: &Index, id: TaskId, fetched: Option<&str>, text: &str) -> bool {
    let Some(task) = index.task(id) else { return false };
    let name = task.name.text();
    let hay = task.command().or(fetched).unwrap_or(&name);
    contains_ignore_case(hay, text) || contains_ignore_case(task.task_id(), text)
}

/// Known without a file: the task failed, or exited non-zero.
fn failed(index: &Index, id: TaskId) -> bool {
    index.task(id).is_some_and(|t| t.state == TaskState::Failed || t.exit_code().is_some_and(|c| c != 0))
}

/// Whether a task that ran wrote anything to stderr (one or two stats;
/// tasks that never started have no err file to look at).
fn err_file_has_text(run: &RunDir, index: &Index, id: TaskId) -> bool {
    let Some(task) = index.task(id) else { return false };
    if matches!(task.state, TaskState::Pending) {
        return false;
    }
    std::fs::metadata(LogLocation::of_indexed(run, index, task, LogStream::Stderr).resolve())
        .is_ok_and(|m| m.len() > 0)
}

/// Case-insensitive substring test without allocating for ASCII needles.
pub fn contains_ignore_case(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if needle.is_ascii() {
        let (h, n) = (hay.as_bytes(), needle.as_bytes());
        return h.len() >= n.len() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n));
    }
    hay.to_lowercase().contains(&needle.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Facts;
    use crate::index::{DirOutcome, Event, ResultSummary, Round, SpecSummary};

    fn stem(i: u32) -> String {
        format!("{i:06}_T{i:06x}_2b7c9c9b-0000-4000-8000-{i:012}")
    }

    /// Twenty finished tasks whose specs are in a real cache file, in an
    /// index that may hold two of their commands.
    fn index_letting_go(cache: &FactsCache) -> Index {
        let mut index = Index::new(60).with_details_limit(2);
        let added = (0..20).flat_map(|i| [format!("{}.json", stem(i)), format!("{}.result.json", stem(i))]);
        let dirs = vec![(crate::paths::QueueDir::Done, DirOutcome::changed(added.collect(), vec![]))];
        index.apply(Event::Round(Round { node: "a".into(), dirs }));
        let specs: Vec<Facts> = (0..20)
            .map(|i| Facts::Spec {
                node: "a".into(),
                name: stem(i).into(),
                spec: SpecSummary {
                    created_at: 10,
                    command: format!("python train.py --seed {i}").into(),
                    cwd: "/w".into(),
                    gpus: 0,
                },
            })
            .collect();
        let at = cache.append(&specs).unwrap();
        index.apply(Event::Cached { facts: specs, at });
        for i in 0..20 {
            index.apply(Event::ResultRead {
                node: "a".into(),
                name: stem(i).into(),
                kind: crate::model::ResultKind::Ran,
                outcome: Ok(ResultSummary {
                    started_at: 100 + i64::from(i),
                    finished_at: 200,
                    exit_code: 0,
                    runtime_s: 1.0,
                    stdout: "x".into(),
                    stderr: "y".into(),
                    command: None,
                    gpus_assigned: None,
                    cwd: None,
                    gpus_requested: None,
                    error: None,
                }),
            });
        }
        index
    }

    #[test]
    fn a_search_reads_the_commands_the_index_let_go_from_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = FactsCache::at(tmp.path().join("facts.bin"), "run".into());
        let index = index_letting_go(&cache);
        assert_eq!(index.details_let_go(), 18);
        let ids = index.all_in_view(&ViewSpec::default());
        let fetched = commands_let_go(Some(&cache), &index, &ids);
        assert_eq!(fetched.len(), 18, "every command let go comes back");
        let seed_3 = index.find(&stem(3)).unwrap();
        assert!(index.task(seed_3).unwrap().command().is_none());
        let matching: Vec<TaskId> = ids
            .iter()
            .copied()
            .filter(|&id| text_matches(&index, id, fetched.get(&id).map(|c| &**c), "--seed 3"))
            .collect();
        assert_eq!(matching, vec![seed_3]);
        // Without the cache (it went away), nothing is made up.
        assert!(commands_let_go(None, &index, &ids).is_empty());
    }

    #[test]
    fn case_insensitive_contains() {
        assert!(contains_ignore_case("python Train.py", "train"));
        assert!(contains_ignore_case("echo RÉSUMÉ", "résumé"));
        assert!(!contains_ignore_case("abc", "abcd"));
    }
}
