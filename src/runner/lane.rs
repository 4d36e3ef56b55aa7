//! The lane: one node's loop. It claims tasks FIFO by name (a rename from
//! `inbox/` to `claimed/`, so of two runners exactly one wins), starts up
//! to `parallel` of them within the node's GPUs, acts on control requests,
//! escalates cancels from SIGTERM to SIGKILL after the grace period, and
//! on a stop signal ends every task it runs before it exits. Each task has
//! a thread that waits for it and writes its result, so a slow disk never
//! holds up claiming or the heartbeat.

use std::collections::{BTreeMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::finish::{Claimed, Ending, Finisher, Started};
use super::heartbeat::LaneStatus;
use super::process::{signal_group, spawn, Launch};
use super::requests;
use super::slots::GpuPool;
use super::RunnerOptions;
use crate::clock::unix_now;
use crate::model::{
    parse_entry, result_file_name, spec_file_name, EntryKind, ResultKind, TaskName, TaskSpec,
};
use crate::paths::QueueDir;
use crate::store::{read_record, MAX_RECORD_BYTES};
use crate::task_logs::{runner_log_relative, LogStream};

/// What wakes the lane besides its poll timer.
pub enum Wake {
    /// A task's waiter wrote its result: its slot and GPUs are free.
    Ended { stem: String },
    /// SIGTERM, SIGINT or SIGHUP to the runner.
    Signal(i32),
}

/// Why the lane signalled a running task (read by its waiter).
const KILL_NONE: u8 = 0;
const KILL_CANCEL: u8 = 1;
/// Stopped with the runner: this plus the signal the runner got.
const KILL_STOP: u8 = 2;

struct Running {
    task_id: String,
    pgid: u32,
    gpus: Vec<String>,
    why: Arc<AtomicU8>,
    /// When SIGKILL follows the SIGTERM already sent.
    kill_at: Option<Instant>,
}

pub struct Lane {
    options: RunnerOptions,
    finisher: Arc<Finisher>,
    status: Arc<Mutex<LaneStatus>>,
    beat_now: Sender<()>,
    wake_tx: Sender<Wake>,
    wake_rx: Receiver<Wake>,
    gpus: GpuPool,
    running: BTreeMap<String, Running>,
    /// Inbox names from the last listing not yet claimed, in FIFO order.
    queue: VecDeque<String>,
    listed_at: Option<Instant>,
    paused: bool,
    /// The signal that is stopping the runner, once one came.
    stopping: Option<i32>,
    /// The inbox listing's last error, reported once.
    list_error: Option<String>,
}

impl Lane {
    pub fn new(
        options: RunnerOptions,
        finisher: Arc<Finisher>,
        status: Arc<Mutex<LaneStatus>>,
        beat_now: Sender<()>,
        wake: (Sender<Wake>, Receiver<Wake>),
    ) -> Lane {
        let gpus = GpuPool::new(options.gpus.clone());
        Lane {
            options,
            finisher,
            status,
            beat_now,
            wake_tx: wake.0,
            wake_rx: wake.1,
            gpus,
            running: BTreeMap::new(),
            queue: VecDeque::new(),
            listed_at: None,
            paused: false,
            stopping: None,
            list_error: None,
        }
    }

    /// Runs until a stop signal came and every task it started has ended.
    pub fn run(mut self) {
        loop {
            self.control();
            self.escalate();
            if self.stopping.is_some() && self.running.is_empty() {
                return;
            }
            if self.stopping.is_none() {
                // Listed while paused too: the heartbeat's pending count stays true.
                self.refill_queue();
                if !self.paused {
                    self.claim_what_fits();
                }
            }
            self.publish_status();
            let wait = self.next_wait();
            match self.wake_rx.recv_timeout(wait) {
                Ok(wake) => self.on_wake(wake),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            // Take every wake that is already queued before looking again.
            while let Ok(wake) = self.wake_rx.try_recv() {
                self.on_wake(wake);
            }
        }
    }

    fn next_wait(&self) -> Duration {
        let now = Instant::now();
        let kill = self.running.values().filter_map(|r| r.kill_at).min();
        let poll = self.options.poll;
        kill.map_or(poll, |at| at.saturating_duration_since(now).min(poll))
    }

    fn on_wake(&mut self, wake: Wake) {
        match wake {
            Wake::Ended { stem } => {
                if let Some(done) = self.running.remove(&stem) {
                    self.gpus.give(done.gpus);
                }
            }
            Wake::Signal(signal) => self.stop(signal),
        }
    }

    /// The first stop signal ends every task gracefully (SIGTERM, then
    /// SIGKILL after the grace period); a second one kills them at once.
    fn stop(&mut self, signal: i32) {
        let again = self.stopping.is_some();
        self.stopping = Some(signal);
        eprintln!(
            "leaseq run: {} received; {} running task(s) {}",
            super::process::signal_name(signal),
            self.running.len(),
            if again { "killed now" } else { "are being stopped" }
        );
        let grace = self.options.grace;
        for task in self.running.values_mut() {
            if task.why.load(Ordering::SeqCst) == KILL_NONE {
                task.why.store(KILL_STOP + signal as u8, Ordering::SeqCst);
            }
            if again {
                signal_group(task.pgid, libc::SIGKILL);
            } else if task.kill_at.is_none() {
                signal_group(task.pgid, libc::SIGTERM);
                task.kill_at = Some(Instant::now() + grace);
            }
        }
    }

    fn escalate(&mut self) {
        let now = Instant::now();
        for task in self.running.values_mut() {
            if task.kill_at.is_some_and(|at| at <= now) {
                signal_group(task.pgid, libc::SIGKILL);
                task.kill_at = None;
            }
        }
    }

    fn publish_status(&self) {
        let status = LaneStatus {
            running_task_ids: self.running.values().map(|r| r.task_id.clone()).collect(),
            pending: self.queue.len() as u64,
            paused: self.paused,
        };
        let mut shared = self.status.lock().unwrap_or_else(|e| e.into_inner());
        let changed = shared.paused != status.paused || shared.running_task_ids != status.running_task_ids;
        *shared = status;
        drop(shared);
        if changed {
            let _ = self.beat_now.send(());
        }
    }

    // ------------------------------------------------------------ control

    fn control(&mut self) {
        let run = &self.options.run;
        let node = &self.options.node;
        let requests = requests::read(run, node);
        for (path, problem) in &requests.broken {
            eprintln!("leaseq run: {problem}; moved aside");
            let aside = path.with_file_name(format!(
                ".broken.{}",
                path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
            ));
            let _ = std::fs::rename(path, aside);
        }
        let paused = requests.paused();
        if requests.resume.is_some() {
            // Resume consumes itself and the pause it ends.
            let dir = run.control(node);
            if !paused {
                let _ = std::fs::remove_file(dir.join("pause.json"));
            }
            let _ = std::fs::remove_file(dir.join("resume.json"));
        }
        if paused != self.paused {
            eprintln!(
                "leaseq run: {node} {}",
                if paused { "paused: claiming nothing new" } else { "resumed" }
            );
            self.paused = paused;
        }
        for (path, request) in requests.cancels {
            if self.cancel(&request)
                || unix_now().saturating_sub(request.requested_at) > UNMATCHED_CANCEL_KEEP_S
            {
                if let Err(e) = std::fs::remove_file(&path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        eprintln!("leaseq run: removing {}: {e}", path.display());
                    }
                }
            }
        }
    }

    /// Acts on a cancel request; false when no task of this node matches
    /// it yet (a listing may lag: it is kept for a while).
    fn cancel(&mut self, request: &crate::model::CancelRequest) -> bool {
        let matches = |stem: &str, task_id: &str| match &request.task {
            Some(wanted) => wanted == stem,
            None => task_id == request.task_id,
        };
        let grace = self.options.grace;
        let mut hit = false;
        for (stem, task) in self.running.iter_mut().filter(|(stem, t)| matches(stem, &t.task_id)) {
            hit = true;
            if task.why.load(Ordering::SeqCst) != KILL_NONE {
                continue;
            }
            task.why.store(KILL_CANCEL, Ordering::SeqCst);
            signal_group(task.pgid, libc::SIGTERM);
            task.kill_at = Some(Instant::now() + grace);
            eprintln!("leaseq run: cancelling {stem} (SIGTERM, SIGKILL in {}s)", grace.as_secs_f32());
        }
        if hit {
            return true;
        }
        let inbox = self.list_inbox();
        for stem in inbox.into_iter().filter(|s| TaskName::parse(s).is_some_and(|n| matches(s, n.task_id))) {
            match crate::control::cancel_pending(
                &self.options.run,
                &self.options.node,
                &stem,
                "cancelled while pending",
            ) {
                Ok(true) => {
                    hit = true;
                    let task_id = TaskName::parse(&stem).map_or("", |n| n.task_id).to_string();
                    self.finisher.events.record("CANCELLED", &task_id, &stem, json!({"pending": true}));
                    self.queue.retain(|q| q != &stem);
                }
                Ok(false) => {}
                Err(e) => eprintln!("leaseq run: {e}"),
            }
        }
        hit
    }

    // ------------------------------------------------------------ claiming

    /// The inbox's task stems in FIFO (name) order.
    fn list_inbox(&mut self) -> Vec<String> {
        let dir = self.options.run.queue(QueueDir::Inbox, &self.options.node);
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) => {
                // Said (once per new error): a shared filesystem that fails
                // (ESTALE, EACCES) must not look like an empty queue.
                let message =
                    format!("listing {}: {e}; claiming nothing until it lists again", dir.display());
                if self.list_error.as_ref() != Some(&message) {
                    eprintln!("leaseq run: {message}");
                    self.list_error = Some(message);
                }
                return Vec::new();
            }
        };
        if self.list_error.take().is_some() {
            eprintln!("leaseq run: {} lists again", dir.display());
        }
        let mut stems: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|name| match parse_entry(&name) {
                Some((stem, EntryKind::Spec)) => Some(stem.to_string()),
                _ => None,
            })
            .collect();
        stems.sort_unstable();
        stems
    }

    fn refill_queue(&mut self) {
        let stale = self.listed_at.is_none_or(|at| at.elapsed() >= self.options.poll);
        if self.queue.is_empty() || stale {
            self.queue = self.list_inbox().into();
            self.listed_at = Some(Instant::now());
        }
    }

    fn claim_what_fits(&mut self) {
        while self.running.len() < self.options.parallel {
            let Some(stem) = self.queue.front().cloned() else { return };
            let inbox_path =
                self.options.run.queue(QueueDir::Inbox, &self.options.node).join(spec_file_name(&stem));
            // Read before claiming, so a task waiting for GPUs stays pending.
            let read = read_record(&inbox_path, MAX_RECORD_BYTES);
            if matches!(read, Err(crate::store::RecordError::NotFound)) {
                self.queue.pop_front(); // claimed by another runner, or cancelled
                continue;
            }
            let spec = read.map_err(|e| e.describe(&inbox_path)).and_then(|bytes| {
                serde_json::from_slice::<TaskSpec>(&bytes)
                    .map_err(|e| format!("{}: malformed spec: {e}", inbox_path.display()))
            });
            let wanted = spec.as_ref().map_or(0, |s| s.gpus as usize);
            if wanted <= self.gpus.total() && wanted > self.gpus.free() {
                return; // FIFO: the head waits for its GPUs
            }
            self.queue.pop_front();
            if !self.claim(&stem) {
                continue;
            }
            let task_id = TaskName::parse(&stem).map_or("", |n| n.task_id).to_string();
            self.finisher.events.record("CLAIMED", &task_id, &stem, serde_json::Value::Null);
            let claimed = Claimed { stem: stem.clone(), task_id, spec: spec.as_ref().ok().cloned() };
            match spec {
                Err(problem) => self.finisher.not_started(&claimed, &problem),
                Ok(spec) => self.start(claimed, spec),
            }
        }
    }

    /// The claim itself: `inbox/<node>/<name>` to `claimed/<node>/<name>`.
    fn claim(&self, stem: &str) -> bool {
        let name = spec_file_name(stem);
        let from = self.options.run.queue(QueueDir::Inbox, &self.options.node).join(&name);
        let to = self.options.run.queue(QueueDir::Claimed, &self.options.node).join(&name);
        match std::fs::rename(&from, &to) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false, // lost the race: normal
            Err(e) => {
                eprintln!("leaseq run: claiming {}: {e}", from.display());
                false
            }
        }
    }

    fn already_done(&self, claimed: &Claimed, spec: &TaskSpec) -> Option<bool> {
        let done = self.options.run.queue(QueueDir::Done, &self.options.node);
        let own = [ResultKind::Ran, ResultKind::Skipped, ResultKind::Cancelled]
            .iter()
            .any(|kind| done.join(result_file_name(&claimed.stem, *kind)).exists());
        if own {
            return Some(true);
        }
        let keys = self.finisher.keys.lock().unwrap_or_else(|e| e.into_inner());
        (!spec.idempotency_key.is_empty() && keys.contains(&spec.idempotency_key)).then_some(false)
    }

    fn start(&mut self, claimed: Claimed, spec: TaskSpec) {
        let node = self.options.node.clone();
        match self.already_done(&claimed, &spec) {
            // Its own result exists: a runner died between writing it and
            // archiving the spec. Finish the archive; it must not run twice.
            Some(true) => return self.finisher.archive(&claimed.stem),
            Some(false) => return self.finisher.skipped(&claimed),
            None => {}
        }
        if spec.gpus as usize > self.gpus.total() {
            let reason = format!("asks for {} GPU(s); node {node} has {}", spec.gpus, self.gpus.total());
            return self.finisher.not_started(&claimed, &reason);
        }
        if !std::path::Path::new(&spec.cwd).is_dir() {
            let reason = format!("working directory {} does not exist on {node}", spec.cwd);
            return self.finisher.not_started(&claimed, &reason);
        }
        let stdout_rel = runner_log_relative(&node, &claimed.stem, LogStream::Stdout);
        let stderr_rel = runner_log_relative(&node, &claimed.stem, LogStream::Stderr);
        let run = &self.options.run;
        let files = (|| {
            std::fs::create_dir_all(run.logs().join(&node))?;
            Ok::<_, std::io::Error>((
                std::fs::File::create(run.resolve(&stdout_rel))?,
                std::fs::File::create(run.resolve(&stderr_rel))?,
            ))
        })();
        let (stdout, stderr) = match files {
            Ok(files) => files,
            Err(e) => {
                return self.finisher.not_started(
                    &claimed,
                    &format!("cannot create its log files under {}: {e}", run.logs().display()),
                )
            }
        };
        let Some(gpus) = self.gpus.take(spec.gpus as usize) else {
            return self.finisher.not_started(&claimed, "no free GPUs (internal: checked before the claim)");
        };
        let visible_devices = (self.gpus.total() > 0).then(|| gpus.join(","));
        let launch = Launch {
            spec: &spec,
            stdout,
            stderr,
            visible_devices,
            lease_id: &self.options.lease_id,
            node: &node,
            stem: &claimed.stem,
        };
        let started_at = unix_now();
        let child = match spawn(launch) {
            Ok(child) => child,
            Err(e) => {
                self.gpus.give(gpus);
                return self.finisher.not_started(&claimed, &format!("cannot start bash: {e}"));
            }
        };
        let started = Started {
            started_at,
            clock: Instant::now(),
            gpus_assigned: gpus.clone(),
            stdout: stdout_rel,
            stderr: stderr_rel,
        };
        self.finisher.events.record(
            "STARTED",
            &claimed.task_id,
            &claimed.stem,
            json!({"pid": child.id(), "gpus": gpus.join(",")}),
        );
        let why = Arc::new(AtomicU8::new(KILL_NONE));
        self.running.insert(
            claimed.stem.clone(),
            Running {
                task_id: claimed.task_id.clone(),
                pgid: child.id(),
                gpus,
                why: why.clone(),
                kill_at: None,
            },
        );
        let finisher = self.finisher.clone();
        let wake = self.wake_tx.clone();
        let waiter = std::thread::Builder::new().name("leaseq-task".into()).spawn(move || {
            wait_and_finish(child, claimed, started, why, finisher, wake);
        });
        if let Err(e) = waiter {
            eprintln!("leaseq run: cannot start a thread to wait for a task: {e}");
        }
    }
}

/// A cancel request that matches no task yet is kept this long (a listing
/// on another host may lag behind the request), then dropped.
const UNMATCHED_CANCEL_KEEP_S: i64 = 60;

/// When a lease ends, Slurm signals every process of the job at once: a
/// task can die of the same SIGTERM as the runner before the lane hears of
/// it. A task killed by a signal is counted as stopped with the runner when
/// the runner got a stop signal too, within a moment.
fn stopped_with_the_runner(finisher: &Finisher) -> Option<Ending> {
    for _ in 0..20 {
        match finisher.stop_signal.load(Ordering::SeqCst) {
            0 => std::thread::sleep(Duration::from_millis(10)),
            signal => return Some(Ending::RunnerStopped(signal)),
        }
    }
    None
}

fn wait_and_finish(
    mut child: std::process::Child,
    claimed: Claimed,
    started: Started,
    why: Arc<AtomicU8>,
    finisher: Arc<Finisher>,
    wake: Sender<Wake>,
) {
    let status = match child.wait() {
        Ok(status) => status,
        Err(e) => {
            eprintln!("leaseq run: waiting for {}: {e}", claimed.stem);
            std::process::ExitStatus::from_raw(255 << 8)
        }
    };
    let ending = match why.load(Ordering::SeqCst) {
        KILL_CANCEL => Ending::Cancelled,
        KILL_NONE if status.signal().is_some() => {
            stopped_with_the_runner(&finisher).unwrap_or(Ending::Natural)
        }
        KILL_NONE => Ending::Natural,
        stop => Ending::RunnerStopped(i32::from(stop - KILL_STOP)),
    };
    finisher.ended(&claimed, &started, status, ending);
    let _ = wake.send(Wake::Ended { stem: claimed.stem });
}
