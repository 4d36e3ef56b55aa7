//! Lease-level reads: which nodes exist, their heartbeats and pause markers.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::listing::{ListError, ListingSource};
use crate::index::HeartbeatRound;
use crate::model::Heartbeat;
use crate::paths::{QueueDir, RunDir};

/// Node names: subdirectories of inbox/, claimed/, done/, and heartbeat
/// files. Fails only if none of those could be listed for a reason other
/// than not existing.
pub fn discover_nodes(source: &dyn ListingSource, run: &RunDir) -> Result<BTreeSet<String>, String> {
    let mut nodes = BTreeSet::new();
    let mut errors = Vec::new();
    for dir in QueueDir::ALL {
        let path = run.queue_root(dir);
        match source.list_dirs(&path) {
            Ok(names) => nodes.extend(names.into_iter().filter(|n| !n.starts_with('.'))),
            Err(ListError::NotFound) => {}
            Err(error) => errors.push(error.describe(&path)),
        }
    }
    match source.list_files(&run.hb_dir()) {
        Ok(names) => nodes.extend(heartbeat_nodes(names)),
        Err(ListError::NotFound) => {}
        Err(error) => errors.push(error.describe(&run.hb_dir())),
    }
    if errors.len() == QueueDir::ALL.len() + 1 {
        Err(errors.join("; "))
    } else {
        Ok(nodes)
    }
}

fn heartbeat_nodes(names: Vec<String>) -> impl Iterator<Item = String> {
    names
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
}

/// Reads every heartbeat file. A file that cannot be read or parsed is
/// reported per node; the `hb/` directory failing is reported as a whole.
pub fn read_heartbeats(source: &dyn ListingSource, run: &RunDir) -> HeartbeatRound {
    let names = match source.list_files(&run.hb_dir()) {
        Ok(names) => names,
        Err(ListError::NotFound) => Vec::new(),
        Err(error) => {
            return HeartbeatRound { beats: Vec::new(), dir_error: Some(error.describe(&run.hb_dir())) }
        }
    };
    let mut nodes: Vec<String> = heartbeat_nodes(names).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let beats = nodes
        .into_iter()
        .map(|node| {
            let outcome = read_heartbeat(source, run, &node);
            (Arc::from(node.as_str()), outcome)
        })
        .collect();
    HeartbeatRound { beats, dir_error: None }
}

/// One node's heartbeat, or why it cannot be read.
pub fn read_heartbeat(source: &dyn ListingSource, run: &RunDir, node: &str) -> Result<Heartbeat, String> {
    let path = run.heartbeat(node);
    let bytes = source.read_small(&path).map_err(|e| e.describe(&path))?;
    serde_json::from_slice::<Heartbeat>(&bytes)
        .map_err(|e| format!("{}: malformed heartbeat: {e}", path.display()))
}

/// Whether `control/<node>/pause.json` is present (and no later resume).
pub fn read_paused(source: &dyn ListingSource, run: &RunDir, node: &str) -> bool {
    source
        .list_files(&run.control(node))
        .map(|names| names.iter().any(|n| n == "pause.json") && !names.iter().any(|n| n == "resume.json"))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::FsSource;

    #[test]
    fn discovers_nodes_and_reads_heartbeats_skipping_the_runners_empty_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        std::fs::create_dir_all(run.queue(QueueDir::Inbox, "a")).unwrap();
        std::fs::create_dir_all(run.hb_dir().join("b")).unwrap(); // runner's empty hb/<node>/
        std::fs::write(run.heartbeat("b"), br#"{"node":"b","ts":7}"#).unwrap();
        std::fs::write(run.heartbeat("c"), b"{truncated").unwrap();
        let nodes = discover_nodes(&FsSource, &run).unwrap();
        assert_eq!(nodes.into_iter().collect::<Vec<_>>(), vec!["a", "b", "c"]);
        let beats = read_heartbeats(&FsSource, &run);
        assert_eq!(beats.beats.len(), 2);
        assert_eq!(beats.beats[0].1.as_ref().unwrap().ts, 7);
        assert!(beats.beats[1].1.as_ref().unwrap_err().contains("malformed heartbeat"));
    }

    #[test]
    fn a_missing_run_dir_is_empty_not_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().join("nope"));
        assert!(discover_nodes(&FsSource, &run).unwrap().is_empty());
        assert!(read_heartbeats(&FsSource, &run).dir_error.is_none());
    }
}
