//! Task and node control by files (no RPC): cancel requests, retries,
//! pause/resume markers and zombie recovery. Every write is atomic (temp
//! dot-file + rename in the target directory), every timestamp an integer.
//! Blocking I/O: run it off the UI thread.

use crate::clock::{unique_micros, unix_now};
use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::model::{
    parse_entry, result_file_name, spec_file_name, CancelRequest, ControlMarker, EntryKind, ResultKind,
    TaskName, TaskResult, TaskSpec,
};
use crate::paths::{new_uuid, QueueDir, RunDir};
use crate::runfs::{ListError, RunFs};
use crate::store::MAX_RECORD_BYTES;

fn io(what: &str, path: &std::path::Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

/// Writes `control/<node>/cancel_<task_id>_<uuid>.json` for the task filed
/// as `stem` (named in the request, so a task id shared by two tasks still
/// cancels one).
pub fn request_cancel(
    fs: &dyn RunFs,
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
    fs.write_atomic(&path, &bytes).map_err(|e| io("writing", &path, e))?;
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
pub fn cancel(
    fs: &dyn RunFs,
    run: &RunDir,
    node: &str,
    stem: &str,
    task_id: &str,
) -> Result<CancelOutcome, String> {
    if cancel_pending(fs, run, node, stem, "cancelled while pending")? {
        return Ok(CancelOutcome::CancelledPending);
    }
    request_cancel(fs, run, node, task_id, Some(stem)).map(CancelOutcome::Requested)
}

/// Takes a pending task out of `inbox/<node>/` and gives it a
/// `.cancelled.json` (exit code -1, no logs). The first step is the same
/// rename a runner's claim is (into `claimed/`), so of a cancel and a claim
/// exactly one wins; then the result is written, then the spec archived,
/// as a runner finishes a task: interrupted anywhere, the task is in
/// `claimed/` (recovered, and archived as done) or finished, never lost.
/// `Ok(false)` when it was not in the inbox (claimed meanwhile, or never
/// there).
pub fn cancel_pending(
    fs: &dyn RunFs,
    run: &RunDir,
    node: &str,
    stem: &str,
    reason: &str,
) -> Result<bool, String> {
    let name = spec_file_name(stem);
    let from = run.queue(QueueDir::Inbox, node).join(&name);
    let claimed_dir = run.queue(QueueDir::Claimed, node);
    fs.create_dir_all(&claimed_dir).map_err(|e| io("creating", &claimed_dir, e))?;
    let claimed = claimed_dir.join(&name);
    match fs.rename(&from, &claimed) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(io("moving", &from, e)),
    }
    let spec = fs
        .read_file(&claimed, MAX_RECORD_BYTES)
        .ok()
        .and_then(|b| crate::model::from_record::<TaskSpec>(&b).ok());
    let task_id = TaskName::parse(stem).map_or(stem, |n| n.task_id);
    let mut result = result_for(task_id, node, spec.as_ref(), unix_now());
    result.exit_code = -1;
    result.error = Some(reason.to_string());
    if let Err(e) = write_result(fs, run, node, stem, ResultKind::Cancelled, &result) {
        // Not cancelled after all: back to the inbox, as it was.
        let _ = fs.rename(&claimed, &from);
        return Err(e);
    }
    archive(fs, run, node, stem)?;
    Ok(true)
}

/// The result of a task as far as its spec tells (key, command, cwd,
/// GPUs asked for), started at `started_at` and finished now, exit 0, no
/// logs: what a runner or a pending cancel fills in from there.
pub fn result_for(task_id: &str, node: &str, spec: Option<&TaskSpec>, started_at: i64) -> TaskResult {
    TaskResult {
        task_id: task_id.to_string(),
        idempotency_key: spec.map(|s| s.idempotency_key.clone()).unwrap_or_default(),
        node: node.to_string(),
        started_at,
        finished_at: unix_now(),
        exit_code: 0,
        stdout: String::new(),
        stderr: String::new(),
        runtime_s: 0.0,
        command: spec.map(|s| s.command.clone()),
        cwd: spec.map(|s| s.cwd.clone()),
        gpus_requested: spec.map(|s| s.gpus),
        gpus_assigned: None,
        error: None,
        signal: None,
    }
}

/// Moves a finished task's spec from `claimed/` into `done/`.
pub fn archive(fs: &dyn RunFs, run: &RunDir, node: &str, stem: &str) -> Result<(), String> {
    let name = spec_file_name(stem);
    let from = run.queue(QueueDir::Claimed, node).join(&name);
    let done = run.queue(QueueDir::Done, node);
    fs.create_dir_all(&done).map_err(|e| io("creating", &done, e))?;
    fs.rename(&from, &done.join(&name)).map_err(|e| io("archiving", &from, e))
}

/// Which result a task already has in `done/<node>/`, if any.
pub fn existing_result(fs: &dyn RunFs, run: &RunDir, node: &str, stem: &str) -> Option<ResultKind> {
    let done = run.queue(QueueDir::Done, node);
    [ResultKind::Ran, ResultKind::Cancelled, ResultKind::Skipped]
        .into_iter()
        .find(|kind| fs.probe(&done.join(result_file_name(stem, *kind))).is_ok_and(|found| found.is_some()))
}

/// Writes `done/<node>/<stem><kind suffix>` atomically.
pub fn write_result(
    fs: &dyn RunFs,
    run: &RunDir,
    node: &str,
    stem: &str,
    kind: ResultKind,
    result: &TaskResult,
) -> Result<PathBuf, String> {
    let path = run.queue(QueueDir::Done, node).join(result_file_name(stem, kind));
    let bytes = serde_json::to_vec(result).map_err(|e| e.to_string())?;
    fs.write_atomic(&path, &bytes).map_err(|e| io("writing", &path, e))?;
    Ok(path)
}

/// Finds a task's spec by its stem: done, claimed or inbox of its node.
pub fn find_spec(fs: &dyn RunFs, run: &RunDir, node: &str, name: &str) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = [QueueDir::Done, QueueDir::Claimed, QueueDir::Inbox]
        .into_iter()
        .map(|dir| run.queue(dir, node).join(spec_file_name(name)))
        .collect();
    // A regular file first: a FIFO planted in done/ must not hide the real
    // spec in claimed/. Else whatever is there, for the reader to refuse
    // with its reason.
    let probed: Vec<(Option<bool>, PathBuf)> =
        candidates.into_iter().map(|p| (fs.probe(&p).ok().flatten(), p)).collect();
    let regular = probed.iter().find(|(found, _)| *found == Some(true));
    regular.or_else(|| probed.iter().find(|(found, _)| found.is_some())).map(|(_, p)| p.clone())
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
pub fn enqueue(fs: &dyn RunFs, run: &RunDir, spec: &TaskSpec) -> Result<PathBuf, String> {
    let stem = stem_of(spec);
    debug_assert!(TaskName::parse(&stem).is_some());
    let path = run.queue(QueueDir::Inbox, &spec.target_node).join(spec_file_name(&stem));
    let bytes = serde_json::to_vec(spec).map_err(|e| e.to_string())?;
    fs.write_atomic(&path, &bytes).map_err(|e| io("writing", &path, e))?;
    Ok(path)
}

/// Re-enqueues a task as a new one: same command, cwd, env and gpus; new
/// seq, uuid, task id and idempotency key. Returns the new file's path.
pub fn retry(fs: &dyn RunFs, run: &RunDir, node: &str, name: &str) -> Result<PathBuf, String> {
    let source =
        find_spec(fs, run, node, name).ok_or_else(|| format!("no spec of {name} on {node} to retry"))?;
    let bytes = fs.read_file(&source, MAX_RECORD_BYTES).map_err(|e| e.describe(&source))?;
    let old: TaskSpec = crate::model::from_record(&bytes)
        .map_err(|e| format!("{}: malformed spec: {e}", source.display()))?;
    enqueue(fs, run, &new_spec(&old.lease_id, node, old.command, old.cwd, old.env, old.gpus))
}

/// Writes `control/<node>/pause.json` (and drops a stale resume marker).
pub fn pause(fs: &dyn RunFs, run: &RunDir, node: &str) -> Result<(), String> {
    set_marker(fs, run, node, "pause.json", "resume.json")
}

/// Writes `control/<node>/resume.json` and removes the pause marker.
pub fn resume(fs: &dyn RunFs, run: &RunDir, node: &str) -> Result<(), String> {
    set_marker(fs, run, node, "resume.json", "pause.json")
}

fn set_marker(fs: &dyn RunFs, run: &RunDir, node: &str, write: &str, remove: &str) -> Result<(), String> {
    let dir = run.control(node);
    let path = dir.join(write);
    let now = crate::clock::unix_micros();
    let marker = ControlMarker { requested_at: (now / 1_000_000) as i64, requested_at_us: now % 1_000_000 };
    let bytes = serde_json::to_vec(&marker).map_err(|e| e.to_string())?;
    fs.write_atomic(&path, &bytes).map_err(|e| io("writing", &path, e))?;
    match fs.remove_file(&dir.join(remove)) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("removing", &dir.join(remove), e)),
    }
}

/// Zombie recovery for a dead runner, as `V` and `leaseq recover` ask:
/// [`return_claimed`], refused while the node's heartbeat is fresh (its
/// runner may still be working on them).
pub fn recover(fs: &dyn RunFs, run: &RunDir, node: &str, stale_after_s: i64) -> Result<usize, String> {
    if let Ok(hb) = crate::scan::read_heartbeat(fs, run, node) {
        let health = crate::index::health_at(hb.ts, unix_now(), stale_after_s);
        if health.is_alive() && !hb.stopped {
            let age = unix_now().saturating_sub(hb.ts);
            return Err(format!("{node}'s runner is alive (heartbeat {age}s ago); not recovering"));
        }
    }
    let claimed = run.queue(QueueDir::Claimed, node);
    if matches!(fs.stamp(&claimed), Err(ListError::NotFound)) {
        return Ok(0);
    }
    Ok(return_claimed(fs, run, node)?.returned)
}

/// The stems of the task specs in a queue directory, in FIFO (name)
/// order; other files are left out.
pub fn spec_stems(fs: &dyn RunFs, dir: &std::path::Path) -> Result<Vec<String>, ListError> {
    let mut stems: Vec<String> = fs
        .list_files(dir)?
        .iter()
        .filter_map(|n| match parse_entry(n) {
            Some((stem, EntryKind::Spec)) => Some(stem.to_string()),
            _ => None,
        })
        .collect();
    stems.sort_unstable();
    Ok(stems)
}

/// What [`return_claimed`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Returned {
    /// Back in the inbox, to run again.
    pub returned: usize,
    /// Already had a result (its runner died between the result and the
    /// archive): archived instead, never run twice.
    pub archived: usize,
}

/// Moves what `claimed/<node>/` holds back to `inbox/<node>/`, oldest
/// first, what a restarting runner does with its own node.
pub fn return_claimed(fs: &dyn RunFs, run: &RunDir, node: &str) -> Result<Returned, String> {
    let claimed = run.queue(QueueDir::Claimed, node);
    let inbox = run.queue(QueueDir::Inbox, node);
    fs.create_dir_all(&inbox).map_err(|e| io("creating", &inbox, e))?;
    let stems = spec_stems(fs, &claimed).map_err(|e| e.describe(&claimed))?;
    let mut done = Returned::default();
    for stem in stems {
        if existing_result(fs, run, node, &stem).is_some() {
            archive(fs, run, node, &stem)?;
            done.archived += 1;
        } else {
            let name = spec_file_name(&stem);
            fs.rename(&claimed.join(&name), &inbox.join(&name))
                .map_err(|e| io("moving", &claimed.join(&name), e))?;
            done.returned += 1;
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::write_atomic;
    use crate::runfs::FsSource;

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
        let path = retry(&FsSource, &run, "a", NAME).unwrap();
        let stem = path.file_name().unwrap().to_str().unwrap().strip_suffix(".json").unwrap();
        let name = TaskName::parse(stem).unwrap();
        let new: TaskSpec = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!((new.command.as_str(), new.gpus, new.env.len()), ("python train.py", 2, 1));
        assert_eq!(new.seq, name.seq);
        assert_ne!(new.idempotency_key, "1-a-12");
        assert_eq!(new.task_id, name.task_id);
        assert!(retry(&FsSource, &run, "a", "000001_T1_2b7c9c9b-1234-4cde-8f00-0123456789ab").is_err());
    }

    #[test]
    fn cancel_pause_resume_markers() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        let path = request_cancel(&FsSource, &run, "a", "T014", Some(NAME)).unwrap();
        let request: CancelRequest = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!((request.task_id.as_str(), request.task.as_deref()), ("T014", Some(NAME)));
        pause(&FsSource, &run, "a").unwrap();
        assert!(crate::scan::read_paused(&crate::scan::FsSource, &run, "a"));
        resume(&FsSource, &run, "a").unwrap();
        assert!(!crate::scan::read_paused(&crate::scan::FsSource, &run, "a"));
    }

    #[test]
    fn recover_moves_claimed_back_only_for_dead_runners() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        write_atomic(&run.queue(QueueDir::Claimed, "a").join(format!("{NAME}.json")), b"{}").unwrap();
        let hb = format!(r#"{{"node":"a","ts":{}}}"#, unix_now());
        write_atomic(&run.heartbeat("a"), hb.as_bytes()).unwrap();
        assert!(recover(&FsSource, &run, "a", 60).unwrap_err().contains("alive"));
        write_atomic(&run.heartbeat("a"), br#"{"node":"a","ts":1}"#).unwrap();
        assert_eq!(recover(&FsSource, &run, "a", 60).unwrap(), 1);
        assert!(run.queue(QueueDir::Inbox, "a").join(format!("{NAME}.json")).exists());
    }
}
