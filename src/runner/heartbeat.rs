//! The heartbeat: `hb/<node>.json`, rewritten from its own thread every few
//! seconds, so neither a busy lane nor a slow listing ever delays it.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::clock::unix_now;
use crate::model::Heartbeat;
use crate::paths::{write_atomic_volatile, RunDir};

/// What the lane tells the heartbeat.
#[derive(Debug, Clone, Default)]
pub struct LaneStatus {
    pub running_task_ids: Vec<String>,
    pub pending: u64,
    pub paused: bool,
    /// The runner has exited (its last heartbeat).
    pub stopped: bool,
}

/// The runner version written into heartbeats.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn heartbeat(node: &str, status: &LaneStatus) -> Heartbeat {
    Heartbeat {
        node: node.to_string(),
        ts: unix_now(),
        running_task_id: status.running_task_ids.first().cloned(),
        pending_estimate: status.pending,
        runner_pid: std::process::id(),
        version: VERSION.to_string(),
        running_task_ids: status.running_task_ids.clone(),
        paused: status.paused,
        stopped: status.stopped,
    }
}

/// Writes one heartbeat now.
pub fn beat(run: &RunDir, node: &str, status: &LaneStatus) {
    let path = run.heartbeat(node);
    let bytes = serde_json::to_vec(&heartbeat(node, status)).unwrap_or_default();
    if let Err(e) = write_atomic_volatile(&path, &bytes) {
        eprintln!("leaseq run: writing heartbeat {}: {e}", path.display());
    }
}

/// Beats every `every` until `wake`'s sender is dropped; a send makes it
/// beat at once (the lane does that when something changed).
pub fn start(
    run: RunDir,
    node: String,
    status: Arc<Mutex<LaneStatus>>,
    every: Duration,
    wake: Receiver<()>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new().name("leaseq-heartbeat".into()).spawn(move || loop {
        let now = status.lock().unwrap_or_else(|e| e.into_inner()).clone();
        beat(&run, &node, &now);
        match wake.recv_timeout(every) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    })
}
