//! Reading `control/<node>/`: cancel requests, and the pause and resume
//! markers. Each cancel request is acted on once and then removed; the
//! pause marker is the lane's lasting state (a restarted runner stays
//! paused) until a later resume request ends it.

use std::path::PathBuf;

use crate::model::{CancelRequest, ControlMarker};
use crate::paths::RunDir;
use crate::store::read_record;

/// Control files are tiny; anything bigger is not one of ours.
const MAX_CONTROL_BYTES: u64 = 64 << 10;

/// What `control/<node>/` asks for now.
#[derive(Debug, Default)]
pub struct Requests {
    pub cancels: Vec<(PathBuf, CancelRequest)>,
    /// `pause.json` is there, with when it was asked for.
    pub pause: Option<ControlMarker>,
    /// `resume.json` is there.
    pub resume: Option<ControlMarker>,
    /// Files that could not be read or parsed, with the reason; the lane
    /// moves them aside so they are reported once.
    pub broken: Vec<(PathBuf, String)>,
}

impl Requests {
    /// Whether the lane should be paused: a pause marker not followed by a
    /// later resume.
    pub fn paused(&self) -> bool {
        match (self.pause, self.resume) {
            (Some(pause), Some(resume)) => pause.order() > resume.order(),
            (Some(_), None) => true,
            _ => false,
        }
    }
}

/// Reads the marker at `path`, if it is one.
pub fn read_marker(path: &std::path::Path) -> Option<ControlMarker> {
    read_record(path, MAX_CONTROL_BYTES).ok().map(|b| crate::model::from_record(&b).unwrap_or_default())
}

/// Lists and reads the node's control directory. A missing directory is
/// no requests.
pub fn read(run: &RunDir, node: &str) -> Requests {
    let dir = run.control(node);
    let mut requests = Requests::default();
    let Ok(entries) = std::fs::read_dir(&dir) else { return requests };
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else { continue };
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let path = entry.path();
        let bytes = match read_record(&path, MAX_CONTROL_BYTES) {
            Ok(bytes) => bytes,
            Err(crate::store::RecordError::NotFound) => continue,
            Err(e) => {
                requests.broken.push((path.clone(), e.describe(&path)));
                continue;
            }
        };
        if name == "pause.json" || name == "resume.json" {
            let at = crate::model::from_record::<ControlMarker>(&bytes).unwrap_or_default();
            if name == "pause.json" {
                requests.pause = Some(at);
            } else {
                requests.resume = Some(at);
            }
        } else if name.starts_with("cancel_") {
            match crate::model::from_record::<CancelRequest>(&bytes) {
                Ok(request) => requests.cancels.push((path, request)),
                Err(e) => requests
                    .broken
                    .push((path.clone(), format!("{}: malformed cancel request: {e}", path.display()))),
            }
        }
    }
    requests.cancels.sort_by_key(|(_, r)| r.requested_at);
    requests
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cancels_markers_and_reports_broken_files() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        assert!(!read(&run, "a").paused());
        let dir = run.control("a");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cancel_T1_u.json"), br#"{"task_id":"T1","requested_at":5}"#).unwrap();
        std::fs::write(dir.join("cancel_T2_u.json"), b"{oops").unwrap();
        std::fs::write(dir.join("pause.json"), br#"{"requested_at":10}"#).unwrap();
        let requests = read(&run, "a");
        assert_eq!(requests.cancels.len(), 1);
        assert_eq!(requests.broken.len(), 1);
        assert!(requests.paused());
        std::fs::write(dir.join("resume.json"), br#"{"requested_at":11}"#).unwrap();
        assert!(!read(&run, "a").paused());
    }
}
