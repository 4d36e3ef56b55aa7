//! The lane: one node's loop. It claims tasks FIFO by name (a rename from
//! `inbox/` to `claimed/`, so of two runners exactly one wins), starts up
//! to `parallel` of them within the node's GPUs, acts on control requests,
//! escalates cancels from SIGTERM to SIGKILL after the grace period, and
//! on a stop signal ends every task it runs before it exits. Each task has
//! a thread that waits for it and writes its result, so a slow disk never
//! holds up claiming or the heartbeat.

use crate::runfs::FsSource;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ExitStatus};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::finish::{Claimed, Ending, Finisher, Started};
use super::heartbeat::LaneStatus;
use super::process::{group_has_live_members, signal_group, spawn, wait_leader, Launch};
use super::requests::{self, Requests};
use super::slots::GpuPool;
use super::RunnerOptions;
use crate::clock::unix_now;
use crate::model::{spec_file_name, CancelRequest, TaskName, TaskSpec};
use crate::paths::QueueDir;
use crate::store::{open_for_writing, read_record, RecordError, MAX_RECORD_BYTES};
use crate::task_logs::{runner_log_relative, LogStream};

/// What wakes the lane besides its poll timer.
pub enum Wake {
    /// A task's waiter wrote its result: its slot and GPUs are free.
    Ended { stem: String },
    /// SIGTERM, SIGINT or SIGHUP to the runner.
    Signal(i32),
}

/// A cancel request that matches no task yet is kept this long (a listing
/// on another host may lag behind the request), then dropped.
const UNMATCHED_CANCEL_KEEP_S: i64 = 60;

/// A spec that cannot be read for a reason that may pass (ESTALE, EIO on a
/// shared filesystem) is tried this many polls before it fails.
const READ_ATTEMPTS: u32 = 10;

/// Why the lane signalled a task, and whether its waiter has reaped it,
/// under one lock: the lane signals a group only while it is unreaped, so
/// its id cannot belong to anyone else.
#[derive(Debug, Default)]
struct TaskControl {
    ending: Option<Ending>,
    reaped: bool,
}

type Shared = Arc<Mutex<TaskControl>>;

/// Signals the task's group unless its waiter already reaped it.
fn signal(control: &Shared, pgid: u32, signal: i32) {
    let control = control.lock().unwrap_or_else(|e| e.into_inner());
    if !control.reaped {
        signal_group(pgid, signal);
    }
}

struct Running {
    task_id: String,
    pgid: u32,
    gpus: Vec<String>,
    control: Shared,
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
    /// Failed reads of a spec that may succeed later, by stem.
    read_failures: HashMap<String, u32>,
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
            read_failures: HashMap::new(),
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
    fn stop(&mut self, sig: i32) {
        let again = self.stopping.is_some();
        self.stopping = Some(sig);
        eprintln!(
            "leaseq run: {} received; {} running task(s) {}",
            super::process::signal_name(sig),
            self.running.len(),
            if again { "killed now" } else { "are being stopped" }
        );
        let grace = self.options.grace;
        for task in self.running.values_mut() {
            task.control
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .ending
                .get_or_insert(Ending::RunnerStopped(sig));
            if again {
                signal(&task.control, task.pgid, libc::SIGKILL);
            } else if task.kill_at.is_none() {
                signal(&task.control, task.pgid, libc::SIGTERM);
                task.kill_at = Some(Instant::now() + grace);
            }
        }
    }

    fn escalate(&mut self) {
        let now = Instant::now();
        for task in self.running.values_mut() {
            if task.kill_at.is_some_and(|at| at <= now) {
                signal(&task.control, task.pgid, libc::SIGKILL);
                task.kill_at = None;
            }
        }
    }

    fn publish_status(&self) {
        let status = LaneStatus {
            running_task_ids: self.running.values().map(|r| r.task_id.clone()).collect(),
            pending: self.queue.len() as u64,
            paused: self.paused,
            stopped: false,
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
        let requests = requests::read(&self.options.run, &self.options.node);
        for (path, problem) in &requests.broken {
            eprintln!("leaseq run: {problem}; moved aside");
            let aside = path.with_file_name(format!(
                ".broken.{}",
                path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
            ));
            let _ = std::fs::rename(path, aside);
        }
        self.apply_markers(&requests);
        // One inbox listing for every unmatched request of this pass.
        let mut inbox: Option<Vec<String>> = None;
        for (path, request) in &requests.cancels {
            let acted = self.cancel(request, &mut inbox);
            let expired = unix_now().saturating_sub(request.requested_at) > UNMATCHED_CANCEL_KEEP_S;
            if acted || expired {
                if let Err(e) = std::fs::remove_file(path) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        eprintln!("leaseq run: removing {}: {e}", path.display());
                    }
                }
            }
        }
    }

    /// Pause and resume. The dashboard and CLI write one marker and remove
    /// the other; the runner only consumes a resume, and a pause that an
    /// older resume did not remove (another writer) is taken away by a
    /// rename first, so a pause written meanwhile is never lost.
    fn apply_markers(&mut self, requests: &Requests) {
        let dir = self.options.run.control(&self.options.node);
        let paused = requests.paused();
        if let Some(resume) = requests.resume {
            if requests.pause.is_some() && !paused {
                let taken = dir.join(format!(".consumed.pause.{}.json", crate::paths::new_uuid()));
                if std::fs::rename(dir.join("pause.json"), &taken).is_ok() {
                    match requests::read_marker(&taken) {
                        // Written after the resume: it stands.
                        Some(pause) if pause.order() > resume.order() => {
                            let _ = std::fs::rename(&taken, dir.join("pause.json"));
                        }
                        _ => {
                            let _ = std::fs::remove_file(&taken);
                        }
                    }
                }
            }
            let _ = std::fs::remove_file(dir.join("resume.json"));
        }
        if paused != self.paused {
            let node = &self.options.node;
            eprintln!(
                "leaseq run: {node} {}",
                if paused { "paused: claiming nothing new" } else { "resumed" }
            );
            self.paused = paused;
        }
    }

    /// Acts on a cancel request; false when no task of this node matches
    /// it yet (a listing may lag: it is kept for a while).
    fn cancel(&mut self, request: &CancelRequest, inbox: &mut Option<Vec<String>>) -> bool {
        let matches = |stem: &str, task_id: &str| match &request.task {
            Some(wanted) => wanted == stem,
            None => task_id == request.task_id,
        };
        let grace = self.options.grace;
        let mut hit = false;
        for (stem, task) in self.running.iter_mut().filter(|(stem, t)| matches(stem, &t.task_id)) {
            hit = true;
            let first = {
                let mut control = task.control.lock().unwrap_or_else(|e| e.into_inner());
                let first = control.ending.is_none();
                control.ending.get_or_insert(Ending::Cancelled);
                first
            };
            if first {
                signal(&task.control, task.pgid, libc::SIGTERM);
                task.kill_at = Some(Instant::now() + grace);
                eprintln!("leaseq run: cancelling {stem} (SIGTERM, SIGKILL in {}s)", grace.as_secs_f32());
            }
        }
        if hit {
            return true;
        }
        let listed = match inbox {
            Some(listed) => listed,
            None => inbox.insert(self.list_inbox()),
        };
        let wanted: Vec<String> = listed
            .iter()
            .filter(|s| TaskName::parse(s).is_some_and(|n| matches(s, n.task_id)))
            .cloned()
            .collect();
        for stem in wanted {
            let (run, node) = (&self.options.run, &self.options.node);
            match crate::control::cancel_pending(&FsSource, run, node, &stem, "cancelled while pending") {
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
        match crate::control::spec_stems(&FsSource, &dir) {
            Ok(stems) => {
                if self.list_error.take().is_some() {
                    eprintln!("leaseq run: {} lists again", dir.display());
                }
                stems
            }
            Err(e) => {
                // Said (once per new error): a shared filesystem that fails
                // (ESTALE, EACCES) must not look like an empty queue.
                let message = format!("{}; claiming nothing until it lists again", e.describe(&dir));
                if self.list_error.as_ref() != Some(&message) {
                    eprintln!("leaseq run: {message}");
                    self.list_error = Some(message);
                }
                Vec::new()
            }
        }
    }

    fn refill_queue(&mut self) {
        let stale = self.listed_at.is_none_or(|at| at.elapsed() >= self.options.poll);
        if self.queue.is_empty() || stale {
            self.queue = self.list_inbox().into();
            self.listed_at = Some(Instant::now());
        }
    }

    /// The inbox head's spec: Ok(None) when it is gone (claimed by another
    /// runner, cancelled), Err for a read that may succeed later.
    fn read_head(&mut self, stem: &str) -> Result<Option<Result<TaskSpec, String>>, ()> {
        let path = self.options.run.queue(QueueDir::Inbox, &self.options.node).join(spec_file_name(stem));
        let bytes = match read_record(&path, MAX_RECORD_BYTES) {
            Ok(bytes) => bytes,
            Err(RecordError::NotFound) => return Ok(None),
            Err(RecordError::Io(e)) => {
                let failures = self.read_failures.entry(stem.to_string()).or_default();
                *failures += 1;
                if *failures < READ_ATTEMPTS {
                    if *failures == 1 {
                        eprintln!("leaseq run: reading {}: {e}; trying again", path.display());
                    }
                    return Err(());
                }
                return Ok(Some(Err(format!("{}: {e} ({READ_ATTEMPTS} attempts)", path.display()))));
            }
            Err(e) => return Ok(Some(Err(e.describe(&path)))),
        };
        self.read_failures.remove(stem);
        Ok(Some(
            crate::model::from_record::<TaskSpec>(&bytes)
                .map_err(|e| format!("{}: malformed spec: {e}", path.display())),
        ))
    }

    fn claim_what_fits(&mut self) {
        while self.running.len() < self.options.parallel {
            let Some(stem) = self.queue.front().cloned() else { return };
            if self.running.contains_key(&stem) {
                // Someone returned a task this lane still runs to the inbox
                // (a recover while this runner was suspended): it is ours.
                self.queue.pop_front();
                self.reclaim_running(&stem);
                continue;
            }
            // Read before claiming, so a task waiting for GPUs stays pending.
            let spec = match self.read_head(&stem) {
                Err(()) => return, // FIFO: the head is tried again next poll
                Ok(None) => {
                    self.queue.pop_front();
                    continue;
                }
                Ok(Some(spec)) => spec,
            };
            let wanted = spec.as_ref().map_or(0, |s| s.gpus as usize);
            // More than the node has: claimed and failed at once by start().
            let never_fits = wanted > self.gpus.total();
            let gpus = if never_fits { Some(Vec::new()) } else { self.gpus.take(wanted) };
            let Some(gpus) = gpus else { return }; // FIFO: the head waits for its GPUs
            self.queue.pop_front();
            if !self.claim(&stem) {
                self.gpus.give(gpus);
                continue;
            }
            let task_id = TaskName::parse(&stem).map_or("", |n| n.task_id).to_string();
            self.finisher.events.record("CLAIMED", &task_id, &stem, serde_json::Value::Null);
            let claimed = Claimed { stem: stem.clone(), task_id, spec: spec.as_ref().ok().cloned() };
            match spec {
                Err(problem) => {
                    self.gpus.give(gpus);
                    self.finisher.not_started(&claimed, &problem);
                }
                Ok(spec) => self.start(claimed, spec, gpus),
            }
        }
    }

    /// `inbox/<node>/<name>` to `claimed/<node>/<name>`: the claim.
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

    fn reclaim_running(&self, stem: &str) {
        if self.claim(stem) {
            eprintln!("leaseq run: {stem} was moved back to the inbox while it runs here; claimed it again");
        }
    }

    /// Whether the task must not run: Some(true) when its own result exists
    /// (a runner died between the result and the archive), Some(false) when
    /// another task with its idempotency key has one.
    fn already_done(&self, claimed: &Claimed, spec: &TaskSpec) -> Option<bool> {
        if crate::control::existing_result(&FsSource, &self.options.run, &self.options.node, &claimed.stem)
            .is_some()
        {
            return Some(true);
        }
        let keys = self.finisher.keys.lock().unwrap_or_else(|e| e.into_inner());
        (!spec.idempotency_key.is_empty() && keys.contains(&spec.idempotency_key)).then_some(false)
    }

    fn start(&mut self, claimed: Claimed, spec: TaskSpec, gpus: Vec<String>) {
        let node = self.options.node.clone();
        let refuse = |lane: &mut Lane, gpus: Vec<String>, reason: &str| {
            lane.gpus.give(gpus);
            lane.finisher.not_started(&claimed, reason);
        };
        match self.already_done(&claimed, &spec) {
            Some(true) => {
                self.gpus.give(gpus);
                return self.finisher.archive(&claimed.stem);
            }
            Some(false) => {
                self.gpus.give(gpus);
                return self.finisher.skipped(&claimed);
            }
            None => {}
        }
        if spec.gpus as usize > self.gpus.total() {
            let reason = format!("asks for {} GPU(s); node {node} has {}", spec.gpus, self.gpus.total());
            return refuse(self, gpus, &reason);
        }
        if !std::path::Path::new(&spec.cwd).is_dir() {
            let reason = format!("working directory {} does not exist on {node}", spec.cwd);
            return refuse(self, gpus, &reason);
        }
        let stdout_rel = runner_log_relative(&node, &claimed.stem, LogStream::Stdout);
        let stderr_rel = runner_log_relative(&node, &claimed.stem, LogStream::Stderr);
        let run = &self.options.run;
        let files = (|| {
            std::fs::create_dir_all(run.logs().join(&node))?;
            let stdout = open_for_writing(&run.resolve(&stdout_rel), false)?;
            Ok::<_, std::io::Error>((stdout, open_for_writing(&run.resolve(&stderr_rel), false)?))
        })();
        let (stdout, stderr) = match files {
            Ok(files) => files,
            Err(e) => {
                let reason = format!("cannot create its log files under {}: {e}", run.logs().display());
                return refuse(self, gpus, &reason);
            }
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
            Err(e) => return refuse(self, gpus, &format!("cannot start bash: {e}")),
        };
        let pgid = child.id();
        let started = Started {
            started_at,
            clock: Instant::now(),
            gpus_assigned: gpus.clone(),
            stdout: stdout_rel,
            stderr: stderr_rel,
        };
        let gpu_list = gpus.join(",");
        self.finisher.events.record(
            "STARTED",
            &claimed.task_id,
            &claimed.stem,
            json!({"pid": pgid, "gpus": gpu_list}),
        );
        let control = Shared::default();
        let running =
            Running { task_id: claimed.task_id.clone(), pgid, gpus, control: control.clone(), kill_at: None };
        self.running.insert(claimed.stem.clone(), running);
        let waiter = Waiter {
            claimed,
            started,
            control,
            finisher: self.finisher.clone(),
            wake: self.wake_tx.clone(),
            grace: self.options.grace,
        };
        // A waiter that cannot be started on its own thread waits here:
        // slower, but the task is never left unreaped and unfinished.
        let slot = Arc::new(Mutex::new(Some((waiter, child))));
        let handed = slot.clone();
        let spawned = std::thread::Builder::new().name("leaseq-task".into()).spawn(move || {
            if let Some((waiter, child)) = handed.lock().unwrap_or_else(|e| e.into_inner()).take() {
                waiter.run(child);
            }
        });
        if let Err(e) = spawned {
            eprintln!("leaseq run: cannot start a thread to wait for a task ({e}); waiting for it here");
            if let Some((waiter, child)) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                waiter.run(child);
            }
        }
    }
}

/// Waits for one task, ends what it left in its process group, reaps it,
/// writes its result and wakes the lane.
struct Waiter {
    claimed: Claimed,
    started: Started,
    control: Shared,
    finisher: Arc<Finisher>,
    wake: Sender<Wake>,
    grace: Duration,
}

impl Waiter {
    fn run(self, mut child: Child) {
        let pgid = child.id();
        let status = wait_leader(pgid).unwrap_or_else(|e| {
            eprintln!("leaseq run: waiting for {}: {e}", self.claimed.stem);
            ExitStatus::from_raw(255 << 8)
        });
        self.drain_group(pgid);
        let ending = {
            let mut control = self.control.lock().unwrap_or_else(|e| e.into_inner());
            // Reaping frees the group id: under the lock, so the lane never
            // signals it afterwards.
            let _ = child.wait();
            control.reaped = true;
            control.ending
        };
        let ending = match ending {
            Some(ending) => ending,
            None if status.signal().is_some() => {
                stopped_with_the_runner(&self.finisher).unwrap_or(Ending::Natural)
            }
            None => Ending::Natural,
        };
        self.finisher.ended(&self.claimed, &self.started, status, ending);
        let _ = self.wake.send(Wake::Ended { stem: self.claimed.stem });
    }

    /// The task is its process group: when its shell has exited, whatever
    /// it left running in the group is ended too (SIGTERM, SIGKILL after
    /// the grace period), so no process outlives its slot. During a cancel
    /// or a stop the lane sends those signals itself.
    fn drain_group(&self, pgid: u32) {
        if !group_has_live_members(pgid) {
            return;
        }
        let lane_is_ending_it = self.control.lock().unwrap_or_else(|e| e.into_inner()).ending.is_some();
        if !lane_is_ending_it {
            signal_group(pgid, libc::SIGTERM);
        }
        let kill_at = Instant::now() + self.grace;
        while group_has_live_members(pgid) {
            if Instant::now() >= kill_at {
                signal_group(pgid, libc::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// When a lease ends, Slurm signals every process of the job at once: a
/// task can die of the same SIGTERM as the runner before the lane hears of
/// it. A task killed by a signal is counted as stopped with the runner when
/// the runner got a stop signal too, within a moment.
fn stopped_with_the_runner(finisher: &Finisher) -> Option<Ending> {
    for _ in 0..20 {
        match finisher.stop_signal.load(std::sync::atomic::Ordering::SeqCst) {
            0 => std::thread::sleep(Duration::from_millis(10)),
            signal => return Some(Ending::RunnerStopped(signal)),
        }
    }
    None
}
