//! A history too big for any disk here, made in memory: `done/` listings
//! of any number of finished tasks over a few nodes, their files' contents
//! on demand, fresh heartbeats, and the warm-start cache such a history
//! leaves. The real engine, index and dashboard run on it unchanged; only
//! the filesystem is not there. 10^7 tasks would be 2 x 10^7 files and
//! ~120 GB of inodes and blocks on the machines this is measured on.
//!
//! Read-only: every write is refused.

use std::path::Path;
use std::sync::Arc;

use crate::cache::{Facts, FactsCache};
use crate::index::{LogPath, ResultSummary, SpecSummary};
use crate::model::{Heartbeat, ResultKind, TaskResult, TaskSpec};
use crate::names::StoredName;
use crate::paths::{QueueDir, RunDir};
use crate::runfs::{DirStamp, FileNames, ListError, RunFs};
use crate::sim::generate::{write_lease_files, GenerateOptions};

#[derive(Debug, Clone)]
pub struct SyntheticHistory {
    run: RunDir,
    lease_id: String,
    nodes: Vec<String>,
    tasks: usize,
    /// When the newest task finished (Unix seconds).
    now: i64,
}

const COMMANDS: [&str; 4] = [
    "python train.py --cfg cfgs/a{k}.yaml --seed {i}",
    "python eval.py --ckpt runs/b{k}/ckpt_best.pt --split val --shard {i}",
    "torchrun --nproc_per_node=2 train.py --cfg cfgs/big/l{k}.yaml --run {i}",
    "bash scripts/sweep.sh {k} && python collect.py --out results/sweep_{i}.csv",
];

impl SyntheticHistory {
    /// `tasks` finished tasks spread over `nodes` nodes of the run dir
    /// `run` (which need not exist: only its path is used).
    pub fn new(run: RunDir, lease_id: &str, tasks: usize, nodes: usize, now: i64) -> SyntheticHistory {
        let nodes = (0..nodes.max(1)).map(|n| format!("node{n:02}")).collect();
        SyntheticHistory { run, lease_id: lease_id.to_string(), nodes, tasks, now }
    }

    pub fn tasks(&self) -> usize {
        self.tasks
    }

    /// Task `i` (0 = oldest) runs on node `i % nodes`.
    fn stem(&self, i: usize) -> String {
        let micros = self.submitted(i) as u64 * 1_000_000 + (i % 1_000_000) as u64;
        format!("{micros:016}_T{:06x}_{:08x}-0000-4000-8000-{:012x}", i & 0xff_ffff, i >> 20, i)
    }

    fn node_of(&self, i: usize) -> &str {
        &self.nodes[i % self.nodes.len()]
    }

    /// One task a second, the newest finishing at `now`.
    fn submitted(&self, i: usize) -> i64 {
        self.now - (self.tasks - i) as i64 - 60
    }

    fn command(i: usize) -> String {
        COMMANDS[i % COMMANDS.len()].replace("{k}", &(i % 97).to_string()).replace("{i}", &i.to_string())
    }

    fn exit_code(i: usize) -> i32 {
        i32::from(i.is_multiple_of(23))
    }

    fn spec(&self, i: usize) -> SpecSummary {
        SpecSummary {
            created_at: self.submitted(i),
            command: Self::command(i).into(),
            cwd: Arc::from("/home/u/exp"),
            gpus: 1,
        }
    }

    /// A result as the older tool's runner writes it: it repeats the
    /// spec's command, cwd and GPUs.
    fn result(&self, i: usize) -> ResultSummary {
        let spec = self.spec(i);
        ResultSummary {
            started_at: self.submitted(i) + 5,
            finished_at: self.submitted(i) + 50,
            exit_code: Self::exit_code(i),
            runtime_s: 45.0,
            stdout: LogPath::Derived,
            stderr: LogPath::Derived,
            command: Some(spec.command),
            gpus_assigned: None,
            cwd: Some(spec.cwd),
            gpus_requested: Some(spec.gpus),
            error: None,
        }
    }

    /// Writes what a launch over the whole history would have saved (the
    /// results: they name the commands, so no spec was read), in chunks
    /// (memory stays bounded); `progress` hears the tasks done.
    pub fn fill_cache(&self, cache: &FactsCache, progress: &mut dyn FnMut(usize)) -> Result<(), String> {
        const CHUNK: usize = 50_000;
        for start in (0..self.tasks).step_by(CHUNK) {
            let end = (start + CHUNK).min(self.tasks);
            let mut facts = Vec::with_capacity(end - start);
            for i in start..end {
                let (node, name): (Arc<str>, StoredName) = (self.node_of(i).into(), self.stem(i).into());
                let result = self.result(i);
                facts.push(Facts::Result { node, name, kind: ResultKind::Ran, result });
            }
            cache.append(&facts)?;
            progress(end);
        }
        Ok(())
    }

    fn node_index(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n == name)
    }

    /// The task a file name in `done/` of node `node` is.
    fn task_of(&self, node: usize, file: &str) -> Option<(usize, bool)> {
        let (stem, is_result) = match file.strip_suffix(".result.json") {
            Some(stem) => (stem, true),
            None => (file.strip_suffix(".json")?, false),
        };
        let uuid_tail = stem.rsplit('-').next()?;
        let i = usize::from_str_radix(uuid_tail, 16).ok()?;
        (i < self.tasks && i % self.nodes.len() == node && self.stem(i) == stem).then_some((i, is_result))
    }

    fn file_json(&self, i: usize, is_result: bool) -> Vec<u8> {
        let node = self.node_of(i).to_string();
        let task_id = format!("T{:06x}", i & 0xff_ffff);
        let key = format!("{}-{node}-{i}", self.lease_id);
        let bytes = if is_result {
            let r = self.result(i);
            serde_json::to_vec(&TaskResult {
                task_id: task_id.clone(),
                idempotency_key: key,
                node,
                started_at: r.started_at,
                finished_at: r.finished_at,
                exit_code: r.exit_code,
                // The older runner's paths, which the cache keeps as derived.
                stdout: format!("logs/{task_id}.out"),
                stderr: format!("logs/{task_id}.err"),
                runtime_s: r.runtime_s,
                command: r.command.map(|c| c.to_string()),
                cwd: r.cwd.map(|c| c.to_string()),
                gpus_requested: r.gpus_requested,
                ..TaskResult::default()
            })
        } else {
            let s = self.spec(i);
            serde_json::to_vec(&TaskSpec {
                task_id,
                idempotency_key: key,
                lease_id: self.lease_id.clone(),
                target_node: node,
                seq: self.submitted(i) as u64,
                uuid: self.stem(i).rsplit('_').next().unwrap_or_default().to_string(),
                created_at: s.created_at,
                cwd: s.cwd.to_string(),
                env: Default::default(),
                gpus: s.gpus,
                command: s.command.to_string(),
            })
        };
        bytes.unwrap_or_default()
    }

    /// Which queue directory of which node `dir` is, if any.
    fn queue_dir(&self, dir: &Path) -> Option<(QueueDir, usize)> {
        QueueDir::ALL.into_iter().find_map(|q| {
            let node = dir.strip_prefix(self.run.queue_root(q)).ok()?.to_str()?;
            self.node_index(node).map(|n| (q, n))
        })
    }
}

fn read_only() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, "the synthetic history is read-only")
}

impl RunFs for SyntheticHistory {
    fn stamp(&self, dir: &Path) -> Result<DirStamp, ListError> {
        // Nothing ever changes: one stamp for every directory there is.
        let known = dir == self.run.0
            || dir == self.run.hb_dir()
            || QueueDir::ALL.iter().any(|q| dir == self.run.queue_root(*q))
            || self.queue_dir(dir).is_some();
        if known {
            Ok(DirStamp { mtime_ns: 1, racy: false })
        } else {
            Err(ListError::NotFound)
        }
    }

    fn list_files(&self, dir: &Path) -> Result<FileNames, ListError> {
        if dir == self.run.hb_dir() {
            return Ok(self.nodes.iter().map(|n| format!("{n}.json")).collect());
        }
        match self.queue_dir(dir) {
            Some((QueueDir::Done, node)) => {
                let mut names = FileNames::default();
                let mut name = String::new();
                for i in (node..self.tasks).step_by(self.nodes.len()) {
                    let stem = self.stem(i);
                    for suffix in [".result.json", ".json"] {
                        name.clear();
                        name.push_str(&stem);
                        name.push_str(suffix);
                        names.push(&name);
                    }
                }
                Ok(names)
            }
            Some(_) => Ok(FileNames::default()),
            None if self.stamp(dir).is_ok() => Ok(FileNames::default()),
            None => Err(ListError::NotFound),
        }
    }

    fn list_dirs(&self, dir: &Path) -> Result<Vec<String>, ListError> {
        if QueueDir::ALL.iter().any(|q| dir == self.run.queue_root(*q)) {
            return Ok(self.nodes.clone());
        }
        self.stamp(dir).map(|_| Vec::new())
    }

    fn read_file(&self, path: &Path, max_bytes: u64) -> Result<Vec<u8>, ListError> {
        let (dir, file) = match (path.parent(), path.file_name().and_then(|f| f.to_str())) {
            (Some(dir), Some(file)) => (dir, file),
            _ => return Err(ListError::NotFound),
        };
        if dir == self.run.hb_dir() {
            let node = file.strip_suffix(".json").ok_or(ListError::NotFound)?;
            self.node_index(node).ok_or(ListError::NotFound)?;
            let beat = Heartbeat {
                node: node.to_string(),
                ts: crate::clock::unix_now(),
                running_task_id: None,
                pending_estimate: 0,
                runner_pid: 1,
                version: "synthetic".into(),
                running_task_ids: Vec::new(),
                paused: false,
                stopped: false,
            };
            return serde_json::to_vec(&beat).map_err(|e| ListError::Failed(e.to_string()));
        }
        match self.queue_dir(dir) {
            Some((QueueDir::Done, node)) => {
                let (i, is_result) = self.task_of(node, file).ok_or(ListError::NotFound)?;
                Ok(self.file_json(i, is_result))
            }
            Some(_) => Err(ListError::NotFound),
            // The lease's meta is a real file of the (real, empty) run dir.
            None => crate::runfs::FsSource.read_file(path, max_bytes),
        }
    }

    fn write_atomic(&self, _: &Path, _: &[u8]) -> std::io::Result<()> {
        Err(read_only())
    }
    fn rename(&self, _: &Path, _: &Path) -> std::io::Result<()> {
        Err(read_only())
    }
    fn create_dir_all(&self, _: &Path) -> std::io::Result<()> {
        Err(read_only())
    }
    fn remove_file(&self, _: &Path) -> std::io::Result<()> {
        Err(read_only())
    }
    fn probe(&self, path: &Path) -> std::io::Result<Option<bool>> {
        if self.stamp(path).is_ok() {
            return Ok(Some(false)); // a directory
        }
        Ok(self.read_file(path, 0).ok().map(|_| true))
    }
}

/// A synthetic history ready to open: its (empty, real) run dir under
/// `root/runs/`, and the environment that finds its cache in `root/cache`.
pub struct Prepared {
    pub history: SyntheticHistory,
    pub lease_id: String,
    pub env: crate::paths::Env,
}

/// Makes (or finds, from an earlier launch with the same sizes) the run
/// dir and the filled cache of a synthetic history in `root`. The names
/// depend on the time the history was made, kept in `root/synthetic.txt`
/// so the cache matches again next time.
pub fn prepare(
    root: &Path,
    tasks: usize,
    nodes: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<Prepared, String> {
    let lease_id = "99887766".to_string();
    let run = RunDir(root.join("runs").join(&lease_id));
    // Real, empty directories: the lease list looks for them (and the
    // cache's identity is the run dir's); the engine lists the synthetic ones.
    for dir in ["meta", "inbox", "claimed", "done"] {
        std::fs::create_dir_all(run.0.join(dir)).map_err(|e| format!("{}: {e}", run.0.display()))?;
    }
    let mut env = crate::paths::Env::from_process();
    env.leaseq_home = Some(root.as_os_str().to_owned());
    env.leaseq_cache_dir = Some(root.join("cache").into_os_string());
    let marker = root.join("synthetic.txt");
    let wanted = |now: i64| format!("tasks {tasks} nodes {nodes} made {now}\n");
    let kept = std::fs::read_to_string(&marker).ok().and_then(|text| {
        let now: i64 = text.split_whitespace().nth(5)?.parse().ok()?;
        (text == wanted(now)).then_some(now)
    });
    let now = kept.unwrap_or_else(crate::clock::unix_now);
    let history = SyntheticHistory::new(run.clone(), &lease_id, tasks, nodes, now);
    if kept.is_none() {
        // The lease's own files (its meta and the registry), so the lease
        // list shows it as a generated tree's is shown.
        let options =
            GenerateOptions { lease_id: lease_id.clone(), nodes, now, ..GenerateOptions::default() };
        write_lease_files(root, &run, &options, now - tasks as i64)
            .map_err(|e| format!("writing the synthetic lease: {e}"))?;
        let cache = FactsCache::for_run(&env, &lease_id, &run.0)?;
        let _ = std::fs::remove_file(cache.path());
        history.fill_cache(&cache, progress)?;
        std::fs::write(&marker, wanted(now)).map_err(|e| format!("{}: {e}", marker.display()))?;
    }
    Ok(Prepared { history, lease_id, env })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oneshot::Reads;

    #[test]
    fn a_synthetic_history_lists_and_reads_like_a_tree_and_fills_a_cache_that_agrees() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().join("run"));
        let history = SyntheticHistory::new(run.clone(), "99887766", 1000, 4, 1_800_000_000);
        let ui = crate::paths::UiConfig::default();
        // Read from its "files" (no cache) ...
        let read = crate::oneshot::build(&history, &run, &ui, 1_800_000_000, Reads::All, &Default::default());
        assert_eq!(read.task_count(), 1000);
        assert_eq!(
            read.count(crate::index::TaskState::Failed),
            (0..1000usize).filter(|i| i.is_multiple_of(23)).count() as u64
        );
        assert_eq!(read.unread_count(), 0);
        // ... and from its cache: the same facts.
        let cache = FactsCache::at(tmp.path().join("facts.bin"), "synthetic".into());
        let mut done = 0;
        history.fill_cache(&cache, &mut |n| done = n).unwrap();
        assert_eq!(done, 1000);
        let mut from = Some(0);
        let mut facts = Vec::new();
        while let Some(at) = from {
            let loaded = cache.load(at);
            assert!(loaded.problem.is_none());
            facts.extend(loaded.facts);
            from = loaded.next;
        }
        assert_eq!(facts.len(), 1000, "one result per task: results name the commands");
        let some = read.find(&history.stem(7)).unwrap();
        let task = read.task(some).unwrap();
        assert_eq!(task.command(), Some(&*SyntheticHistory::command(7)));
        assert_eq!(task.cwd(), Some("/home/u/exp"));
        assert_eq!(task.spec_read, crate::index::ReadStatus::Unread, "the result said it all");
        assert!(facts.contains(&Facts::Result {
            node: "node03".into(),
            name: history.stem(7).into(),
            kind: ResultKind::Ran,
            result: history.result(7)
        }));
    }
}
