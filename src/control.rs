//! Task and node control by files (no RPC): cancel requests, retries,
//! pause/resume markers and zombie recovery. Every write is atomic (temp
//! dot-file + rename in the target directory), every timestamp an integer.
//! Blocking I/O: run it off the UI thread.

use crate::clock::{unique_micros, unix_now};
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::model::{
    parse_entry, result_file_name, spec_file_name, CancelRequest, EntryKind, Heartbeat, ResultKind, TaskName,
    TaskResult, TaskSpec,
};
use crate::paths::{new_uuid, write_atomic, QueueDir, RunDir};
use crate::store::{read_record, MAX_RECORD_BYTES};

fn io(what: &str, path: &std::path::Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

/// Writes `control/<node>/cancel_<task_id>_<uuid>.json` for the task filed
/// as `stem` (named in the request, so a task id shared by two tasks still
/// cancels one).
pub fn request_cancel(
    run: &RunDir,
    node: &str,
    task_id: &str,
    stem: Option<&str>,
) -> Result<PathBuf, String> {
    let request = CancelRequest {
        task_id: task_id.to_string(),
        requested_at: unix_now(),
        task: stem.map(str::to_string),
    };
    let path = run.control(node).join(format!("cancel_{task_id}_{}.json", new_uuid()));
    let bytes = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
    write_atomic(&path, &bytes).map_err(|e| io("writing", &path, e))?;
    Ok(path)
}

/// What a cancel did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The task was still pending: taken out of the inbox, with a
    /// `.cancelled.json` result. Done, nothing else to wait for.
    CancelledPending,
    /// The task was not in the inbox (claimed, running): a request for its
    /// node's runner was written.
    Requested(PathBuf),
}

/// Cancels a task: a pending one at once (the same rename a runner's claim
/// is, so exactly one of the two wins), anything else by a request to its
/// node's runner.
pub fn cancel(run: &RunDir, node: &str, stem: &str, task_id: &str) -> Result<CancelOutcome, String> {
    if cancel_pending(run, node, stem, "cancelled while pending")? {
        return Ok(CancelOutcome::CancelledPending);
    }
    request_cancel(run, node, task_id, Some(stem)).map(CancelOutcome::Requested)
}

/// Takes a pending task out of `inbox/<node>/` into `done/<node>/` and
/// writes its `.cancelled.json` (exit code -1, no logs). `Ok(false)` when
/// it was not in the inbox (claimed meanwhile, or never there).
pub fn cancel_pending(run: &RunDir, node: &str, stem: &str, reason: &str) -> Result<bool, String> {
    let from = run.queue(QueueDir::Inbox, node).join(spec_file_name(stem));
    let done = run.queue(QueueDir::Done, node);
    std::fs::create_dir_all(&done).map_err(|e| io("creating", &done, e))?;
    let to = done.join(spec_file_name(stem));
    match std::fs::rename(&from, &to) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io("moving", &from, e)),
    }
    let spec =
        read_record(&to, MAX_RECORD_BYTES).ok().and_then(|b| serde_json::from_slice::<TaskSpec>(&b).ok());
    let task_id = TaskName::parse(stem).map_or(stem, |n| n.task_id);
    let now = unix_now();
    let result = TaskResult {
        task_id: task_id.to_string(),
        idempotency_key: spec.as_ref().map(|s| s.idempotency_key.clone()).unwrap_or_default(),
        node: node.to_string(),
        started_at: now,
        finished_at: now,
        exit_code: -1,
        stdout: String::new(),
        stderr: String::new(),
        runtime_s: 0.0,
        command: spec.as_ref().map(|s| s.command.clone()),
        cwd: spec.as_ref().map(|s| s.cwd.clone()),
        gpus_requested: spec.as_ref().map(|s| s.gpus),
        gpus_assigned: None,
        error: Some(reason.to_string()),
        signal: None,
    };
    write_result(run, node, stem, ResultKind::Cancelled, &result)?;
    Ok(true)
}

/// Writes `done/<node>/<stem><kind suffix>` atomically.
pub fn write_result(
    run: &RunDir,
    node: &str,
    stem: &str,
    kind: ResultKind,
    result: &TaskResult,
) -> Result<PathBuf, String> {
    let path = run.queue(QueueDir::Done, node).join(result_file_name(stem, kind));
    let bytes = serde_json::to_vec(result).map_err(|e| e.to_string())?;
    write_atomic(&path, &bytes).map_err(|e| io("writing", &path, e))?;
    Ok(path)
}

/// Finds a task's spec by its stem: done, claimed or inbox of its node.
pub fn find_spec(run: &RunDir, node: &str, name: &str) -> Option<PathBuf> {
    [QueueDir::Done, QueueDir::Claimed, QueueDir::Inbox]
        .into_iter()
        .map(|dir| run.queue(dir, node).join(spec_file_name(name)))
        .find(|p| p.is_file())
}

/// A task submitted now, as the existing tool's `submit` does it: seq is
/// Unix microseconds, task id `T` + the uuid's first 6 hex digits,
/// idempotency key `{lease}-{node}-{micros}`, file `{micros:016}_{id}_{uuid}`.
pub fn new_spec(
    lease_id: &str,
    node: &str,
    command: String,
    cwd: String,
    env: BTreeMap<String, String>,
    gpus: u32,
) -> TaskSpec {
    let micros = unique_micros();
    let uuid = new_uuid();
    TaskSpec {
        task_id: format!("T{}", &uuid[..6]),
        idempotency_key: format!("{lease_id}-{node}-{micros}"),
        lease_id: lease_id.to_string(),
        target_node: node.to_string(),
        seq: micros,
        uuid,
        created_at: unix_now(),
        cwd,
        env,
        gpus,
        command,
    }
}

/// The stem a spec is filed under.
pub fn stem_of(spec: &TaskSpec) -> String {
    format!("{:016}_{}_{}", spec.seq, spec.task_id, spec.uuid)
}

/// Writes a spec into `inbox/<node>/` (atomically) and returns its path.
pub fn enqueue(run: &RunDir, spec: &TaskSpec) -> Result<PathBuf, String> {
    let stem = stem_of(spec);
    debug_assert!(TaskName::parse(&stem).is_some());
    let path = run.queue(QueueDir::Inbox, &spec.target_node).join(spec_file_name(&stem));
    let bytes = serde_json::to_vec(spec).map_err(|e| e.to_string())?;
    write_atomic(&path, &bytes).map_err(|e| io("writing", &path, e))?;
    Ok(path)
}

/// Re-enqueues a task as a new one: same command, cwd, env and gpus; new
/// seq, uuid, task id and idempotency key. Returns the new file's path.
pub fn retry(run: &RunDir, node: &str, name: &str) -> Result<PathBuf, String> {
    let source = find_spec(run, node, name).ok_or_else(|| format!("no spec of {name} on {node} to retry"))?;
    let bytes = std::fs::read(&source).map_err(|e| io("reading", &source, e))?;
    let old: TaskSpec =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: malformed spec: {e}", source.display()))?;
    enqueue(run, &new_spec(&old.lease_id, node, old.command, old.cwd, old.env, old.gpus))
}

#[derive(Serialize)]
struct Marker {
    requested_at: i64,
}

/// Writes `control/<node>/pause.json` (and drops a stale resume marker).
pub fn pause(run: &RunDir, node: &str) -> Result<(), String> {
    set_marker(run, node, "pause.json", "resume.json")
}

/// Writes `control/<node>/resume.json` and removes the pause marker.
pub fn resume(run: &RunDir, node: &str) -> Result<(), String> {
    set_marker(run, node, "resume.json", "pause.json")
}

fn set_marker(run: &RunDir, node: &str, write: &str, remove: &str) -> Result<(), String> {
    let dir = run.control(node);
    let path = dir.join(write);
    let bytes = serde_json::to_vec(&Marker { requested_at: unix_now() }).map_err(|e| e.to_string())?;
    write_atomic(&path, &bytes).map_err(|e| io("writing", &path, e))?;
    match std::fs::remove_file(dir.join(remove)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("removing", &dir.join(remove), e)),
    }
}

/// Zombie recovery for a dead runner: moves `claimed/<node>/*` back to
/// `inbox/<node>/`, as a restarting runner would. Refuses while the node's
/// heartbeat is fresh (its runner may still be working on them).
pub fn recover(run: &RunDir, node: &str, stale_after_s: i64) -> Result<usize, String> {
    if let Ok(bytes) = std::fs::read(run.heartbeat(node)) {
        if let Ok(hb) = serde_json::from_slice::<Heartbeat>(&bytes) {
            let age = unix_now() - hb.ts;
            if age <= stale_after_s {
                return Err(format!("{node}'s runner is alive (heartbeat {age}s ago); not recovering"));
            }
        }
    }
    let claimed = run.queue(QueueDir::Claimed, node);
    let inbox = run.queue(QueueDir::Inbox, node);
    std::fs::create_dir_all(&inbox).map_err(|e| io("creating", &inbox, e))?;
    let entries = std::fs::read_dir(&claimed).map_err(|e| io("listing", &claimed, e))?;
    let mut moved = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if matches!(parse_entry(&name), Some((_, EntryKind::Spec))) {
            let to = inbox.join(&name);
            std::fs::rename(entry.path(), &to).map_err(|e| io("moving", &entry.path(), e))?;
            moved += 1;
        }
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(node: &str) -> TaskSpec {
        TaskSpec {
            task_id: "T014".into(),
            idempotency_key: "1-a-12".into(),
            lease_id: "1".into(),
            target_node: node.into(),
            seq: 12,
            uuid: "2b7c9c9b-1234-4cde-8f00-0123456789ab".into(),
            created_at: 5,
            cwd: "/w".into(),
            env: [("A".to_string(), "1".to_string())].into(),
            gpus: 2,
            command: "python train.py".into(),
        }
    }

    const NAME: &str = "000012_T014_2b7c9c9b-1234-4cde-8f00-0123456789ab";

    #[test]
    fn retry_writes_a_new_task_with_the_same_command() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        write_atomic(
            &run.queue(QueueDir::Done, "a").join(format!("{NAME}.json")),
            &serde_json::to_vec(&spec("a")).unwrap(),
        )
        .unwrap();
        let path = retry(&run, "a", NAME).unwrap();
        let stem = path.file_name().unwrap().to_str().unwrap().strip_suffix(".json").unwrap();
        let name = TaskName::parse(stem).unwrap();
        let new: TaskSpec = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!((new.command.as_str(), new.gpus, new.env.len()), ("python train.py", 2, 1));
        assert_eq!(new.seq, name.seq);
        assert_ne!(new.idempotency_key, "1-a-12");
        assert_eq!(new.task_id, name.task_id);
        assert!(retry(&run, "a", "000001_T1_2b7c9c9b-1234-4cde-8f00-0123456789ab").is_err());
    }

    #[test]
    fn cancel_pause_resume_markers() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        let path = request_cancel(&run, "a", "T014", Some(NAME)).unwrap();
        let request: CancelRequest = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!((request.task_id.as_str(), request.task.as_deref()), ("T014", Some(NAME)));
        pause(&run, "a").unwrap();
        assert!(crate::scan::read_paused(&crate::scan::FsSource, &run, "a"));
        resume(&run, "a").unwrap();
        assert!(!crate::scan::read_paused(&crate::scan::FsSource, &run, "a"));
    }

    #[test]
    fn recover_moves_claimed_back_only_for_dead_runners() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        write_atomic(&run.queue(QueueDir::Claimed, "a").join(format!("{NAME}.json")), b"{}").unwrap();
        let hb = format!(r#"{{"node":"a","ts":{}}}"#, unix_now());
        write_atomic(&run.heartbeat("a"), hb.as_bytes()).unwrap();
        assert!(recover(&run, "a", 60).unwrap_err().contains("alive"));
        write_atomic(&run.heartbeat("a"), br#"{"node":"a","ts":1}"#).unwrap();
        assert_eq!(recover(&run, "a", 60).unwrap(), 1);
        assert!(run.queue(QueueDir::Inbox, "a").join(format!("{NAME}.json")).exists());
    }
}
