//! `events/<node>.jsonl`: one JSON object a line, appended as things happen
//! (CLAIMED, STARTED, FINISHED, FAILED, SKIPPED_DUP, CANCELLED).

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::clock::unix_now;

/// The node's event log, shared by the lane and the task waiters. A failed
/// append is reported once on stderr and never stops a task.
pub struct EventLog {
    path: PathBuf,
    file: Mutex<Option<File>>,
    node: String,
}

impl EventLog {
    pub fn open(path: PathBuf, node: &str) -> EventLog {
        let file = path
            .parent()
            .and_then(|d| std::fs::create_dir_all(d).ok())
            .and_then(|()| crate::store::open_for_writing(&path, true).ok());
        if file.is_none() {
            eprintln!("leaseq run: cannot append to {}; events are not recorded", path.display());
        }
        EventLog { path, file: Mutex::new(file), node: node.to_string() }
    }

    /// Appends `{"type": kind, "data": {task_id, node, task, ts, ..extra}}`
    /// in one write (O_APPEND keeps concurrent lines whole).
    pub fn record(&self, kind: &str, task_id: &str, stem: &str, extra: Value) {
        let mut data = json!({"task_id": task_id, "node": self.node, "task": stem, "ts": unix_now()});
        if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
            data.extend(extra);
        }
        let mut line = json!({"type": kind, "data": data}).to_string();
        line.push('\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = file.as_mut() {
            if let Err(e) = f.write_all(line.as_bytes()) {
                eprintln!(
                    "leaseq run: appending to {}: {e}; events are no longer recorded",
                    self.path.display()
                );
                *file = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunnerEvent;

    #[test]
    fn lines_parse_as_runner_events() {
        let tmp = tempfile::tempdir().unwrap();
        let log = EventLog::open(tmp.path().join("events/a.jsonl"), "a");
        log.record("CLAIMED", "T1", "1_T1_x", Value::Null);
        log.record("FINISHED", "T1", "1_T1_x", json!({"exit_code": 0}));
        let text = std::fs::read_to_string(tmp.path().join("events/a.jsonl")).unwrap();
        let events: Vec<RunnerEvent> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].kind, "FINISHED");
        assert_eq!(events[1].data["exit_code"], 0);
        assert_eq!(events[0].data["node"], "a");
    }
}
