//! `leaseq run`: the runner of one node of one lease.
//!
//! Owns: making the node's directories, refusing to run beside a live
//! runner of the same node, zombie recovery, the heartbeat thread, the
//! stop signals, and the lane (claiming, running, control). See
//! ON-DISK.md for the files; `lane` for the loop.

pub mod daemon;
mod events;
mod finish;
mod heartbeat;
mod lane;
mod process;
mod requests;
pub mod slots;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use heartbeat::VERSION;

use crate::clock::unix_now;
use crate::model::{parse_entry, EntryKind};
use crate::paths::{QueueDir, RunDir};
use crate::store::{read_record, MAX_RECORD_BYTES};

/// How one runner runs.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    pub run: RunDir,
    pub lease_id: String,
    pub node: String,
    /// Tasks at once.
    pub parallel: usize,
    /// The GPU device ids the node hands out.
    pub gpus: Vec<String>,
    /// Between SIGTERM and SIGKILL when a task is cancelled or the runner stops.
    pub grace: Duration,
    /// How often the inbox and control directory are looked at when
    /// nothing else wakes the lane.
    pub poll: Duration,
    pub heartbeat_every: Duration,
    /// A heartbeat younger than this from another process means another
    /// runner serves the node.
    pub live_heartbeat: Duration,
}

impl RunnerOptions {
    pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
    pub const DEFAULT_POLL: Duration = Duration::from_millis(250);
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(3);
}

/// Runs the node until SIGTERM/SIGINT/SIGHUP, then stops every task it
/// runs, writes their results and returns.
pub fn run(options: RunnerOptions) -> Result<(), String> {
    let run = options.run.clone();
    let node = options.node.clone();
    if !crate::paths::is_valid_node_name(&node) {
        return Err(format!("{node:?} is not a usable node name (letters, digits, '.', '-', '_')"));
    }
    for dir in [QueueDir::Inbox, QueueDir::Claimed, QueueDir::Done] {
        let path = run.queue(dir, &node);
        std::fs::create_dir_all(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    }
    for path in [run.control(&node), run.logs().join(&node), run.hb_dir(), run.0.join("events")] {
        std::fs::create_dir_all(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    }
    refuse_beside_a_live_runner(&run, &node, options.live_heartbeat)?;
    let recovered = recover_zombies(&run, &node);
    eprintln!(
        "leaseq run {VERSION}: lease {} node {node}, {} slot(s), {} GPU(s), pid {}{}",
        options.lease_id,
        options.parallel,
        options.gpus.len(),
        std::process::id(),
        if recovered > 0 {
            format!("; {recovered} task(s) from a previous runner back in the inbox")
        } else {
            String::new()
        }
    );

    let finisher = Arc::new(finish_for(&run, &node));
    scan_keys_in_background(run.clone(), node.clone(), finisher.clone());

    let status = Arc::new(Mutex::new(heartbeat::LaneStatus::default()));
    let (beat_now, beat_wake) = std::sync::mpsc::channel();
    let beats =
        heartbeat::start(run.clone(), node.clone(), status.clone(), options.heartbeat_every, beat_wake)
            .map_err(|e| format!("starting the heartbeat thread: {e}"))?;

    let (wake_tx, wake_rx) = std::sync::mpsc::channel();
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT, libc::SIGHUP])
        .map_err(|e| format!("installing signal handlers: {e}"))?;
    let signal_handle = signals.handle();
    let forward = wake_tx.clone();
    let stopped = finisher.clone();
    std::thread::Builder::new()
        .name("leaseq-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                stopped.stop_signal.store(signal, std::sync::atomic::Ordering::SeqCst);
                if forward.send(lane::Wake::Signal(signal)).is_err() {
                    return;
                }
            }
        })
        .map_err(|e| format!("starting the signal thread: {e}"))?;

    lane::Lane::new(options, finisher, status.clone(), beat_now.clone(), (wake_tx, wake_rx)).run();

    signal_handle.close();
    drop(beat_now);
    let _ = beats.join();
    // A last heartbeat that says so: nothing runs, and no one should queue
    // here expecting this runner.
    let last = status.lock().map(|s| s.clone()).unwrap_or_default();
    heartbeat::beat(
        &run,
        &node,
        &heartbeat::LaneStatus { running_task_ids: Vec::new(), stopped: true, ..last },
    );
    eprintln!("leaseq run: node {node} stopped");
    Ok(())
}

fn finish_for(run: &RunDir, node: &str) -> finish::Finisher {
    finish::Finisher {
        run: run.clone(),
        node: node.to_string(),
        events: events::EventLog::open(run.events(node), node),
        keys: Mutex::new(HashSet::new()),
        stop_signal: std::sync::atomic::AtomicI32::new(0),
    }
}

/// Two runners on one node would recover each other's running tasks as
/// zombies: refuse while another process's heartbeat is fresh, unless that
/// process is on this host and gone.
fn refuse_beside_a_live_runner(run: &RunDir, node: &str, live: Duration) -> Result<(), String> {
    let Ok(hb) = crate::scan::read_heartbeat(&crate::scan::FsSource, run, node) else { return Ok(()) };
    if hb.stopped {
        return Ok(());
    }
    let age = unix_now().saturating_sub(hb.ts);
    let alive = crate::index::health_at(hb.ts, unix_now(), live.as_secs() as i64).is_alive();
    if hb.runner_pid == std::process::id() || !alive {
        return Ok(());
    }
    let here = node == crate::paths::hostname();
    if here && !process_alive(hb.runner_pid) {
        return Ok(());
    }
    Err(format!(
        "another runner (pid {}{}) heartbeat {age}s ago for node {node}; stop it first, or wait until its \
         heartbeat is older than {}s",
        hb.runner_pid,
        if here { " on this host" } else { "" },
        live.as_secs()
    ))
}

pub fn process_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    pid != 0 && unsafe { libc::kill(pid as i32, 0) } == 0
}

/// Zombie recovery: what a dead runner left in `claimed/<node>/` goes back
/// to the inbox (see [`crate::control::return_claimed`]).
fn recover_zombies(run: &RunDir, node: &str) -> usize {
    match crate::control::return_claimed(&crate::runfs::FsSource, run, node) {
        Ok(done) => done.returned,
        Err(e) => {
            eprintln!("leaseq run: recovering what a previous runner left: {e}");
            0
        }
    }
}

/// Fills the set of idempotency keys that already have a result on this
/// node, from `done/<node>/`, off the lane (a long history must not delay
/// the first claim; until it is done only a task's own result is checked).
fn scan_keys_in_background(run: RunDir, node: String, finisher: Arc<finish::Finisher>) {
    let spawned = std::thread::Builder::new().name("leaseq-keys".into()).spawn(move || {
        #[derive(serde::Deserialize)]
        struct Key {
            #[serde(default)]
            idempotency_key: String,
        }
        let done = run.queue(QueueDir::Done, &node);
        let Ok(entries) = std::fs::read_dir(&done) else { return };
        for entry in entries.flatten() {
            let Ok(name) = entry.file_name().into_string() else { continue };
            if !matches!(parse_entry(&name), Some((_, EntryKind::Result(_)))) {
                continue;
            }
            let key = read_record(&entry.path(), MAX_RECORD_BYTES)
                .ok()
                .and_then(|b| crate::model::from_record::<Key>(&b).ok())
                .map(|k| k.idempotency_key);
            if let Some(key) = key.filter(|k| !k.is_empty()) {
                finisher.keys.lock().unwrap_or_else(|e| e.into_inner()).insert(key);
            }
        }
    });
    if let Err(e) = spawned {
        eprintln!("leaseq run: cannot scan earlier results for duplicate keys: {e}");
    }
}
