//! Lease-level reads: which nodes exist, their heartbeats and pause markers.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::index::HeartbeatRound;
use crate::model::Heartbeat;
use crate::paths::{is_valid_node_name, QueueDir, RunDir};
use crate::runfs::{FileNames, ListError, RunFs, SMALL_FILE_BYTES};

/// The nodes of a run dir, and what could not be taken as one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovery {
    /// Valid node names (see [`is_valid_node_name`]): subdirectories of
    /// inbox/, claimed/, done/, and heartbeat files.
    pub names: BTreeSet<String>,
    /// Directories that failed to list, and names that are no node name
    /// (not UTF-8, `a b`, ...): reported, never used as a path, never
    /// silently dropped. None when there is nothing to say.
    pub problem: Option<String>,
}

pub fn discover_nodes(source: &dyn RunFs, run: &RunDir) -> Discovery {
    let mut names = BTreeSet::new();
    let mut problems = Vec::new();
    let mut take = |name: String, dir: &std::path::Path, problems: &mut Vec<String>| {
        if name.starts_with('.') {
            return;
        }
        if is_valid_node_name(&name) {
            names.insert(name);
        } else {
            problems.push(format!(
                "{}/{}: not a usable node name (not UTF-8, or not letters, digits, '.', '-', '_'); its tasks are not read",
                dir.display(),
                crate::sanitize::clean_line(&name)
            ));
        }
    };
    for dir in QueueDir::ALL {
        let path = run.queue_root(dir);
        let entries = match source.list_entries(&path) {
            Ok(entries) => entries,
            Err(ListError::NotFound) => continue,
            Err(error) => {
                problems.push(error.describe(&path));
                continue;
            }
        };
        entries.dirs.into_iter().for_each(|n| take(n, &path, &mut problems));
        // What is no directory at a queue root (a task file one level too
        // high, a symlinked node directory) is not scanned: said, not lost.
        let strays: Vec<&str> = entries.files.iter().filter(|n| !n.starts_with('.')).collect();
        if let Some(first) = strays.first() {
            problems.push(format!(
                "{}: {} entr{} that {} not a node directory (e.g. {}: a file or a symlink); not scanned",
                path.display(),
                strays.len(),
                if strays.len() == 1 { "y" } else { "ies" },
                if strays.len() == 1 { "is" } else { "are" },
                crate::sanitize::clean_line(first)
            ));
        }
    }
    let hb = run.hb_dir();
    match source.list_files(&hb) {
        Ok(listed) => heartbeat_nodes(&listed).for_each(|n| take(n, &hb, &mut problems)),
        Err(ListError::NotFound) => {}
        Err(error) => problems.push(error.describe(&hb)),
    }
    problems.dedup();
    Discovery { names, problem: (!problems.is_empty()).then(|| problems.join("; ")) }
}

fn heartbeat_nodes(names: &FileNames) -> impl Iterator<Item = String> + '_ {
    names.iter().filter(|n| !n.starts_with('.')).filter_map(|n| n.strip_suffix(".json").map(str::to_string))
}

/// Reads every heartbeat file. A file that cannot be read or parsed is
/// reported per node; the `hb/` directory failing is reported as a whole.
pub fn read_heartbeats(source: &dyn RunFs, run: &RunDir) -> HeartbeatRound {
    let names = match source.list_files(&run.hb_dir()) {
        Ok(names) => names,
        Err(ListError::NotFound) => FileNames::default(),
        Err(error) => {
            return HeartbeatRound { beats: Vec::new(), dir_error: Some(error.describe(&run.hb_dir())) }
        }
    };
    // Names that are no node name are reported by discovery, never used.
    let mut nodes: Vec<String> = heartbeat_nodes(&names).filter(|n| is_valid_node_name(n)).collect();
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
pub fn read_heartbeat(source: &dyn RunFs, run: &RunDir, node: &str) -> Result<Heartbeat, String> {
    let path = run.heartbeat(node);
    let bytes = source.read_file(&path, SMALL_FILE_BYTES).map_err(|e| e.describe(&path))?;
    crate::model::from_record::<Heartbeat>(&bytes)
        .map_err(|e| format!("{}: malformed heartbeat: {e}", path.display()))
}

/// Which of `nodes` have a lane pause marker: `control/<node>/pause.json`
/// present and no later `resume.json`. `control/` is listed first and only
/// the nodes with a directory there are listed themselves: a tree of the
/// older tool has no `control/` at all, and costs one read, not one per
/// node. If `control/` cannot be listed, every node is tried.
pub fn read_paused_nodes(source: &dyn RunFs, run: &RunDir, nodes: &BTreeSet<String>) -> Vec<(String, bool)> {
    let with_markers: Option<BTreeSet<String>> = match source.list_dirs(&run.control_root()) {
        Ok(dirs) => Some(dirs.into_iter().collect()),
        Err(ListError::NotFound) => Some(BTreeSet::new()),
        Err(_) => None,
    };
    nodes
        .iter()
        .map(|node| {
            let listed = with_markers.as_ref().is_none_or(|dirs| dirs.contains(node));
            (node.clone(), listed && read_paused(source, run, node))
        })
        .collect()
}

/// Whether `control/<node>/pause.json` is present (and no later resume).
pub fn read_paused(source: &dyn RunFs, run: &RunDir, node: &str) -> bool {
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
        let nodes = discover_nodes(&FsSource, &run).names;
        assert_eq!(nodes.into_iter().collect::<Vec<_>>(), vec!["a", "b", "c"]);
        let beats = read_heartbeats(&FsSource, &run);
        assert_eq!(beats.beats.len(), 2);
        assert_eq!(beats.beats[0].1.as_ref().unwrap().ts, 7);
        assert!(beats.beats[1].1.as_ref().unwrap_err().contains("malformed heartbeat"));
    }

    /// The real filesystem, with every directory read written down.
    #[derive(Default)]
    struct ReadLog(std::sync::Mutex<Vec<std::path::PathBuf>>);

    impl ReadLog {
        fn noted(&self, dir: &std::path::Path) {
            self.0.lock().unwrap().push(dir.to_path_buf());
        }
        fn reads(&self) -> Vec<std::path::PathBuf> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }

    impl RunFs for ReadLog {
        fn stamp(&self, dir: &std::path::Path) -> Result<crate::runfs::DirStamp, ListError> {
            FsSource.stamp(dir)
        }
        fn list_files(&self, dir: &std::path::Path) -> Result<FileNames, ListError> {
            self.noted(dir);
            FsSource.list_files(dir)
        }
        fn list_dirs(&self, dir: &std::path::Path) -> Result<Vec<String>, ListError> {
            self.noted(dir);
            FsSource.list_dirs(dir)
        }
        fn list_entries(&self, dir: &std::path::Path) -> Result<crate::runfs::Entries, ListError> {
            self.noted(dir);
            FsSource.list_entries(dir)
        }
        fn read_file(&self, path: &std::path::Path, max: u64) -> Result<Vec<u8>, ListError> {
            FsSource.read_file(path, max)
        }
        crate::runfs::real_writes!();
    }

    #[test]
    fn each_queue_root_is_read_once_for_its_nodes_and_its_strays() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        for dir in QueueDir::ALL {
            std::fs::create_dir_all(run.queue(dir, "a")).unwrap();
        }
        std::fs::write(run.queue_root(QueueDir::Done).join("1_T1_x.json"), b"{}").unwrap();
        let log = ReadLog::default();
        let found = discover_nodes(&log, &run);
        assert_eq!(found.names.into_iter().collect::<Vec<_>>(), vec!["a"]);
        assert!(found.problem.unwrap().contains("1 entry that is not a node directory"));
        let mut expected: Vec<_> = QueueDir::ALL.iter().map(|&d| run.queue_root(d)).collect();
        expected.push(run.hb_dir());
        assert_eq!(log.reads(), expected, "one read per queue root, and hb/");
    }

    #[test]
    fn pause_markers_are_read_only_where_control_has_a_node_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        let nodes: BTreeSet<String> = ["a", "b", "c"].map(String::from).into();
        let log = ReadLog::default();
        // The older tool writes no control/: one read for all the nodes.
        let none = read_paused_nodes(&log, &run, &nodes);
        assert_eq!(none, vec![("a".into(), false), ("b".into(), false), ("c".into(), false)]);
        assert_eq!(log.reads(), vec![run.control_root()]);

        std::fs::create_dir_all(run.control("a")).unwrap();
        std::fs::write(run.control("a").join("pause.json"), b"{}").unwrap();
        std::fs::create_dir_all(run.control("b")).unwrap();
        std::fs::write(run.control("b").join("pause.json"), b"{}").unwrap();
        std::fs::write(run.control("b").join("resume.json"), b"{}").unwrap();
        let paused = read_paused_nodes(&log, &run, &nodes);
        assert_eq!(paused, vec![("a".into(), true), ("b".into(), false), ("c".into(), false)]);
        assert_eq!(log.reads(), vec![run.control_root(), run.control("a"), run.control("b")]);

        // control/ unreadable as a directory: every node is tried, none is
        // taken for paused.
        std::fs::remove_dir_all(run.control_root()).unwrap();
        std::fs::write(run.control_root(), b"not a directory").unwrap();
        let tried = read_paused_nodes(&log, &run, &nodes);
        assert!(tried.iter().all(|(_, paused)| !paused));
        assert_eq!(log.reads().len(), 1 + nodes.len());
    }

    #[test]
    fn a_missing_run_dir_is_empty_not_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().join("nope"));
        assert_eq!(discover_nodes(&FsSource, &run), Discovery::default());
        assert!(read_heartbeats(&FsSource, &run).dir_error.is_none());
    }
}
