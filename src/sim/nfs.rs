//! A simulated NFS run directory, for the invariant checks and the fuzz
//! targets (see `crate::check`).
//!
//! Owns: the TRUE contents of one run directory (per node: the names in
//! `inbox/`, `claimed/` and `done/`, the heartbeat, and what each result
//! file says), the protocol's moves on them (ON-DISK.md), and a
//! [`RunFs`] over them that shows what an NFS client may see: each
//! directory at a possibly older version (an independent lag per directory,
//! from a bounded history of versions), in any order, with entries
//! transiently missing or listed twice, and listings that fail outright.
//! [`NfsModel::truth_state`] says what a task really is, by the same rules
//! the index derives states with.
//!
//! Must not: touch the real filesystem or read the clock (time moves only
//! through [`NfsModel::advance`]).
//!
//! Everything is behind one mutex so that the model can be a
//! `&dyn RunFs` for a whole scanning round while the round's
//! `between` callback moves files in it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::index::TaskState;
use crate::model::{
    parse_entry, result_file_name, spec_file_name, EntryKind, Heartbeat, ResultKind, TaskResult, TaskSpec,
};
use crate::paths::{QueueDir, RunDir};
use crate::scan::{DirStamp, ListError, RunFs};

/// Versions kept per directory: how far back a lagging listing can go.
pub const HISTORY: usize = 8;
/// The lease the simulated run directory belongs to.
pub const LEASE_ID: &str = "99887766";
/// Where the simulated run directory pretends to live.
pub const RUN_DIR: &str = "/sim/leaseq/runs/99887766";
/// `seq` of the first task: Unix microseconds, as real leaseq names them.
const FIRST_SEQ: u64 = 1_736_381_200_000_000;

/// How far listings stray from the truth. [`Perturbation::NONE`] gives
/// consistent listings: every listing shows the current version exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Perturbation {
    /// A listing shows one of the last `max_lag + 1` versions of its
    /// directory (each listing draws its own lag).
    pub max_lag: u8,
    /// Per directory, a listing is never older than the previous listing
    /// of that directory (one NFS client's view); otherwise views can go
    /// back in time (several clients, or cache eviction).
    pub monotonic: bool,
    /// Directory stamps lag too, independently of the listings (attribute
    /// caching): an old stamp can make the scanner skip a changed directory.
    pub stamp_lag: bool,
    /// Listings come in a shuffled order.
    pub reorder: bool,
    /// Chance in 256 that an entry is missing from one listing.
    pub missing: u8,
    /// Chance in 256 that an entry is listed twice.
    pub duplicate: u8,
    /// Chance in 256 that a listing fails (a stale NFS handle).
    pub fail: u8,
}

impl Perturbation {
    pub const NONE: Perturbation = Perturbation {
        max_lag: 0,
        monotonic: false,
        stamp_lag: false,
        reorder: false,
        missing: 0,
        duplicate: 0,
        fail: 0,
    };

    /// Decodes a perturbation from three fuzz bytes.
    pub fn from_bytes(a: u8, b: u8, c: u8) -> Perturbation {
        Perturbation {
            max_lag: a % HISTORY as u8,
            monotonic: a & 0x08 != 0,
            stamp_lag: a & 0x10 != 0,
            reorder: a & 0x20 != 0,
            missing: (b & 0x0f) * 8,
            duplicate: (b >> 4) * 8,
            fail: c % 64,
        }
    }

    /// The inverse of [`from_bytes`](Self::from_bytes) for values it can produce.
    pub fn to_bytes(self) -> [u8; 3] {
        let a = self.max_lag
            | u8::from(self.monotonic) << 3
            | u8::from(self.stamp_lag) << 4
            | u8::from(self.reorder) << 5;
        [a, (self.missing / 8) | (self.duplicate / 8) << 4, self.fail]
    }

    pub fn is_consistent(&self) -> bool {
        self.max_lag == 0 && !self.stamp_lag && self.missing == 0 && self.fail == 0
    }
}

/// One version of a directory's contents.
#[derive(Debug, Clone)]
struct Version {
    stamp: u64,
    names: BTreeSet<String>,
}

#[derive(Debug)]
struct DirHistory {
    /// Oldest first; the back is the truth.
    versions: VecDeque<Version>,
    /// Stamp of the version the last listing showed (for monotonic views).
    last_listed: u64,
}

impl DirHistory {
    fn new(stamp: u64) -> DirHistory {
        DirHistory { versions: VecDeque::from([Version { stamp, names: BTreeSet::new() }]), last_listed: 0 }
    }

    fn current(&self) -> &Version {
        self.versions.back().expect("a directory always has a version")
    }
}

#[derive(Debug)]
struct NodeTruth {
    name: String,
    /// inbox, claimed, done (see [`slot`]).
    dirs: [DirHistory; 3],
    runner_alive: bool,
    /// Heartbeat timestamps written, oldest first; empty: no `hb/<node>.json`.
    heartbeats: VecDeque<i64>,
    /// Scanning rounds begun on this node: a task moves at most once per
    /// period (from the start of one round to the start of the next).
    period: u64,
}

#[derive(Debug, Clone)]
struct TaskTruth {
    node: usize,
    seq: u64,
    /// Where the spec file is, if anywhere.
    spec: Option<QueueDir>,
    /// The result file and its exit code, if written.
    result: Option<(ResultKind, i32)>,
    /// The node period in which the task last moved.
    moved_in: Option<u64>,
}

#[derive(Debug)]
struct World {
    now: i64,
    stale_s: i64,
    /// Global version counter: every change to a directory takes the next.
    version: u64,
    nodes: Vec<NodeTruth>,
    tasks: BTreeMap<String, TaskTruth>,
    next: u64,
    perturbation: Perturbation,
    rng: fastrand::Rng,
    /// Enforce "a task moves at most once per scanning round".
    move_bound: bool,
    /// Per (node, directory slot): listings show exactly this many versions
    /// back, whatever the perturbation says.
    pins: BTreeMap<(usize, usize), u8>,
    /// Files written through the model that it does not model as tasks or
    /// heartbeats (control requests, pause markers), and the bytes of task
    /// files written through it (a retried spec, a cancel's result).
    written: BTreeMap<PathBuf, Vec<u8>>,
}

fn slot(dir: QueueDir) -> usize {
    match dir {
        QueueDir::Inbox => 0,
        QueueDir::Claimed => 1,
        QueueDir::Done => 2,
    }
}

/// What a path of the simulated run directory names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// `<dir>/`: the parent of the per-node directories.
    QueueRoot,
    /// `<dir>/<node>/`.
    Queue(QueueDir, usize),
    /// `<dir>/<node>/<file>`.
    File(QueueDir, usize, String),
    /// `hb/`.
    HbDir,
    /// `hb/<node>.json`.
    Heartbeat(usize),
    /// `control/`.
    ControlRoot,
    /// `control/<node>/`.
    ControlDir,
}

impl World {
    fn edit(&mut self, node: usize, dir: QueueDir, change: impl FnOnce(&mut BTreeSet<String>)) {
        self.version += 1;
        let history = &mut self.nodes[node].dirs[slot(dir)];
        let mut names = history.current().names.clone();
        change(&mut names);
        history.versions.push_back(Version { stamp: self.version, names });
        while history.versions.len() > HISTORY {
            history.versions.pop_front();
        }
    }

    fn may_move(&self, stem: &str) -> bool {
        let task = &self.tasks[stem];
        !self.move_bound || task.moved_in != Some(self.nodes[task.node].period)
    }

    fn mark_moved(&mut self, stem: &str) {
        let node = self.tasks[stem].node;
        let period = self.nodes[node].period;
        if let Some(task) = self.tasks.get_mut(stem) {
            task.moved_in = Some(period);
        }
    }

    /// Stems of `node`'s tasks that satisfy `want` and may move now, in FIFO
    /// order; `pick` chooses one (modulo their number).
    fn pick(&self, node: usize, pick: usize, want: impl Fn(&TaskTruth) -> bool) -> Option<String> {
        let candidates: Vec<&String> = self
            .tasks
            .iter()
            .filter(|(stem, t)| t.node == node && want(t) && self.may_move(stem))
            .map(|(stem, _)| stem)
            .collect();
        if candidates.is_empty() {
            return None;
        }
        Some(candidates[pick % candidates.len()].clone())
    }

    fn rename_spec(&mut self, stem: &str, to: Option<QueueDir>) {
        let task = &self.tasks[stem];
        let (node, from) = (task.node, task.spec);
        let file = spec_file_name(stem);
        if let Some(from) = from {
            self.edit(node, from, |names| {
                names.remove(&file);
            });
        }
        if let Some(to) = to {
            self.edit(node, to, |names| {
                names.insert(file.clone());
            });
        }
        if let Some(task) = self.tasks.get_mut(stem) {
            task.spec = to;
        }
    }

    fn write_result(&mut self, stem: &str, kind: ResultKind, exit_code: i32) {
        let node = self.tasks[stem].node;
        let file = result_file_name(stem, kind);
        self.edit(node, QueueDir::Done, |names| {
            names.insert(file);
        });
        if let Some(task) = self.tasks.get_mut(stem) {
            task.result = Some((kind, exit_code));
        }
    }

    /// Refuses a write outside the run directory (nothing may be written
    /// there), and fails one now and then as a flaky NFS server does.
    fn fault(&mut self, path: &Path) -> std::io::Result<()> {
        if !path.starts_with(RUN_DIR) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{}: outside the run directory", path.display()),
            ));
        }
        if self.chance(self.perturbation.fail) {
            return Err(std::io::Error::other(format!("{}: Stale file handle (simulated)", path.display())));
        }
        Ok(())
    }

    /// A new spec in `inbox/` (a retry) or a result in `done/` (a cancel).
    fn write_task_file(
        &mut self,
        path: &Path,
        dir: QueueDir,
        node: usize,
        file: &str,
        bytes: &[u8],
    ) -> std::io::Result<()> {
        let Some((stem, kind)) = parse_entry(file) else {
            return Err(unsupported(path, "a file that is not a task"));
        };
        let stem = stem.to_string();
        match (dir, kind) {
            (QueueDir::Done, EntryKind::Result(kind))
                if self.tasks.get(&stem).is_some_and(|t| t.node == node) =>
            {
                let result: TaskResult = serde_json::from_slice(bytes).map_err(std::io::Error::other)?;
                self.write_result(&stem, kind, result.exit_code);
            }
            (QueueDir::Inbox, EntryKind::Spec) if !self.tasks.contains_key(&stem) => {
                let seq = crate::model::TaskName::parse(&stem).map_or(0, |name| name.seq);
                let truth = TaskTruth { node, seq, spec: None, result: None, moved_in: None };
                self.tasks.insert(stem.clone(), truth);
                self.rename_spec(&stem, Some(QueueDir::Inbox));
            }
            _ => return Err(unsupported(path, "this task file")),
        }
        self.written.insert(path.to_path_buf(), bytes.to_vec());
        Ok(())
    }

    /// What is at `path` now (regular files only in the model).
    fn probe(&self, path: &Path) -> Option<bool> {
        match self.locate(path) {
            Some(Place::File(dir, node, file)) => {
                let (stem, kind) = parse_entry(&file)?;
                let task = self.tasks.get(stem).filter(|t| t.node == node)?;
                let there = match kind {
                    EntryKind::Spec => task.spec == Some(dir),
                    EntryKind::Result(kind) => {
                        dir == QueueDir::Done && task.result.is_some_and(|r| r.0 == kind)
                    }
                };
                there.then_some(true)
            }
            Some(Place::Heartbeat(node)) => (!self.nodes[node].heartbeats.is_empty()).then_some(true),
            Some(_) => Some(false),
            None => self.written.contains_key(path).then_some(true),
        }
    }

    fn heartbeat_fresh(&self, node: usize) -> bool {
        self.nodes[node].heartbeats.back().is_some_and(|&ts| self.now - ts <= self.stale_s)
    }

    fn chance(&mut self, per_256: u8) -> bool {
        per_256 > 0 && self.rng.u8(..) < per_256
    }

    fn locate(&self, path: &Path) -> Option<Place> {
        let rest = path.strip_prefix(RUN_DIR).ok()?;
        let parts: Vec<&str> = rest
            .components()
            .map(|c| match c {
                Component::Normal(part) => part.to_str(),
                _ => None,
            })
            .collect::<Option<_>>()?;
        let node_of = |name: &str| self.nodes.iter().position(|n| n.name == name);
        let queue = |name: &str| QueueDir::ALL.into_iter().find(|d| d.name() == name);
        match parts.as_slice() {
            ["hb"] => Some(Place::HbDir),
            ["hb", file] => node_of(file.strip_suffix(".json")?).map(Place::Heartbeat),
            ["control"] => Some(Place::ControlRoot),
            ["control", node] => node_of(node).map(|_| Place::ControlDir),
            [dir] => queue(dir).map(|_| Place::QueueRoot),
            [dir, node] => Some(Place::Queue(queue(dir)?, node_of(node)?)),
            [dir, node, file] => Some(Place::File(queue(dir)?, node_of(node)?, file.to_string())),
            _ => None,
        }
    }

    /// The version of a directory a listing (or a stamp) shows now.
    fn lagged(&mut self, node: usize, dir: QueueDir, for_listing: bool) -> Version {
        let p = self.perturbation;
        let lag = match self.pins.get(&(node, slot(dir))) {
            Some(&pinned) => usize::from(pinned),
            None if p.max_lag == 0 => 0,
            None => self.rng.usize(..=usize::from(p.max_lag)),
        };
        let history = &self.nodes[node].dirs[slot(dir)];
        let floor = if p.monotonic && for_listing { history.last_listed } else { 0 };
        let newest = history.versions.len() - 1;
        // Walk back `lag` versions, but never below the monotonic floor.
        let mut at = newest;
        while at > 0 && newest - at < lag && history.versions[at - 1].stamp >= floor {
            at -= 1;
        }
        let version = history.versions[at].clone();
        if for_listing {
            let history = &mut self.nodes[node].dirs[slot(dir)];
            history.last_listed = history.last_listed.max(version.stamp);
        }
        version
    }

    fn spec_json(&self, stem: &str) -> Vec<u8> {
        let task = &self.tasks[stem];
        let (task_id, uuid) = split_stem(stem);
        let spec = TaskSpec {
            task_id: task_id.to_string(),
            idempotency_key: format!("{LEASE_ID}-{}-{}", self.nodes[task.node].name, task.seq),
            lease_id: LEASE_ID.to_string(),
            target_node: self.nodes[task.node].name.clone(),
            seq: task.seq,
            uuid: uuid.to_string(),
            created_at: (task.seq / 1_000_000) as i64,
            cwd: "/work/exp".to_string(),
            env: BTreeMap::new(),
            gpus: (task.seq % 3) as u32,
            command: format!("python train.py --seed {} # é", task.seq % 1000),
        };
        serde_json::to_vec(&spec).expect("a spec serializes")
    }

    fn result_json(&self, stem: &str, kind: ResultKind, exit_code: i32) -> Vec<u8> {
        let task = &self.tasks[stem];
        let (task_id, _) = split_stem(stem);
        let started_at = (task.seq / 1_000_000) as i64 + 5;
        let ran = kind == ResultKind::Ran;
        let result = TaskResult {
            task_id: task_id.to_string(),
            idempotency_key: format!("{LEASE_ID}-{}-{}", self.nodes[task.node].name, task.seq),
            node: self.nodes[task.node].name.clone(),
            started_at,
            finished_at: started_at + if ran { 30 } else { 0 },
            exit_code,
            stdout: if ran { format!("logs/{task_id}.out") } else { String::new() },
            stderr: if ran { format!("logs/{task_id}.err") } else { String::new() },
            runtime_s: if ran { 30.0 } else { 0.0 },
            ..TaskResult::default()
        };
        serde_json::to_vec(&result).expect("a result serializes")
    }
}

fn unsupported(path: &Path, what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        format!("{}: {what} (not in the model)", path.display()),
    )
}

/// `(task_id, uuid)` of a stem the model made.
fn split_stem(stem: &str) -> (&str, &str) {
    let rest = stem.split_once('_').map_or(stem, |(_, rest)| rest);
    rest.rsplit_once('_').unwrap_or((rest, ""))
}

/// The true state of a simulated run directory, and a lagging NFS view of it.
#[derive(Debug)]
pub struct NfsModel {
    run: RunDir,
    world: Mutex<World>,
}

impl NfsModel {
    /// A run directory with the given nodes (their queue directories exist
    /// and are empty; no runner has started yet), clock at `now`.
    pub fn new(nodes: &[&str], stale_s: u64, now: i64) -> NfsModel {
        let mut version = 0;
        let mut dir = || {
            version += 1;
            DirHistory::new(version)
        };
        let nodes = nodes
            .iter()
            .map(|name| NodeTruth {
                name: name.to_string(),
                dirs: [dir(), dir(), dir()],
                runner_alive: false,
                heartbeats: VecDeque::new(),
                period: 0,
            })
            .collect();
        let world = World {
            now,
            stale_s: stale_s as i64,
            version,
            nodes,
            tasks: BTreeMap::new(),
            next: 0,
            perturbation: Perturbation::NONE,
            rng: fastrand::Rng::with_seed(0),
            move_bound: true,
            pins: BTreeMap::new(),
            written: BTreeMap::new(),
        };
        NfsModel { run: RunDir(PathBuf::from(RUN_DIR)), world: Mutex::new(world) }
    }

    fn world(&self) -> MutexGuard<'_, World> {
        // A panic elsewhere (a failed check) must not hide behind poisoning.
        self.world.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn run_dir(&self) -> &RunDir {
        &self.run
    }

    pub fn node_names(&self) -> Vec<String> {
        self.world().nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// The position of the node named `name`.
    pub fn node_index(&self, name: &str) -> Option<usize> {
        self.world().nodes.iter().position(|n| n.name == name)
    }

    pub fn node_count(&self) -> usize {
        self.world().nodes.len()
    }

    pub fn now(&self) -> i64 {
        self.world().now
    }

    pub fn stale_s(&self) -> i64 {
        self.world().stale_s
    }

    /// Sets how listings stray from the truth, with a seed for the draws.
    /// Clears every pinned lag.
    pub fn set_perturbation(&self, perturbation: Perturbation, seed: u64) {
        let mut world = self.world();
        world.perturbation = perturbation;
        world.rng = fastrand::Rng::with_seed(seed);
        world.pins.clear();
    }

    /// Pins the lag of one directory: its listings (and lagging stamps)
    /// show the version `versions_back` before the current one (as far as
    /// the history goes), until unpinned with None. For scenarios that
    /// need a particular directory to lag.
    pub fn pin_lag(&self, node: usize, dir: QueueDir, versions_back: Option<u8>) {
        let mut world = self.world();
        match versions_back {
            Some(back) => world.pins.insert((node, slot(dir)), back),
            None => world.pins.remove(&(node, slot(dir))),
        };
    }

    /// Whether listings can differ from the truth right now.
    pub fn is_consistent(&self) -> bool {
        let world = self.world();
        world.perturbation.is_consistent() && world.pins.values().all(|&back| back == 0)
    }

    pub fn perturbation(&self) -> Perturbation {
        self.world().perturbation
    }

    /// With the bound on (the default), a task moves at most once from the
    /// start of one scanning round of its node to the start of the next:
    /// rounds take milliseconds, tasks seconds. Moves beyond it are refused.
    pub fn set_move_bound(&self, on: bool) {
        self.world().move_bound = on;
    }

    /// A scanning round of `node` begins: a new move period.
    pub fn begin_round(&self, node: usize) {
        self.world().nodes[node].period += 1;
    }

    /// Time passes; live runners rewrite their heartbeat.
    pub fn advance(&self, seconds: i64) {
        let mut world = self.world();
        world.now += seconds.max(0);
        let now = world.now;
        for node in world.nodes.iter_mut().filter(|n| n.runner_alive) {
            node.heartbeats.push_back(now);
            while node.heartbeats.len() > HISTORY {
                node.heartbeats.pop_front();
            }
        }
    }

    pub fn runner_alive(&self, node: usize) -> bool {
        self.world().nodes[node].runner_alive
    }

    /// The runner dies: its heartbeat stops advancing, its claimed files stay.
    pub fn crash_runner(&self, node: usize) -> bool {
        std::mem::replace(&mut self.world().nodes[node].runner_alive, false)
    }

    /// A runner (re)starts: zombie recovery moves everything in its
    /// `claimed/` back to `inbox/` (or, with a result, to `done/`), then it
    /// writes a heartbeat. Refused
    /// (None) when the move bound forbids moving one of those tasks now.
    pub fn restart_runner(&self, node: usize) -> Option<Vec<String>> {
        let mut world = self.world();
        let claimed: Vec<String> = world
            .tasks
            .iter()
            .filter(|(_, t)| t.node == node && t.spec == Some(QueueDir::Claimed))
            .map(|(stem, _)| stem.clone())
            .collect();
        if !claimed.iter().all(|stem| world.may_move(stem)) {
            return None;
        }
        for stem in &claimed {
            // As the real runner's recovery: a task that has its result
            // (its runner died between the two steps of finishing, or a
            // pending cancel was interrupted) is archived, never rerun.
            let to = if world.tasks[stem].result.is_some() { QueueDir::Done } else { QueueDir::Inbox };
            world.rename_spec(stem, Some(to));
            world.mark_moved(stem);
        }
        let now = world.now;
        let truth = &mut world.nodes[node];
        truth.runner_alive = true;
        truth.heartbeats.push_back(now);
        while truth.heartbeats.len() > HISTORY {
            truth.heartbeats.pop_front();
        }
        Some(claimed)
    }

    /// A new task in `node`'s inbox; its name sorts after every earlier one.
    pub fn submit(&self, node: usize) -> String {
        let mut world = self.world();
        world.next += 1;
        let n = world.next;
        let seq = FIRST_SEQ + n * 1_000;
        // Few task ids, so they collide as real ones do: names are the identity.
        let stem = format!("{seq:016}_T{:06x}_{:08x}-0000-4000-8000-{n:012x}", n % 61, n);
        world.tasks.insert(stem.clone(), TaskTruth { node, seq, spec: None, result: None, moved_in: None });
        world.rename_spec(&stem, Some(QueueDir::Inbox));
        stem
    }

    /// The runner claims a task (inbox -> claimed).
    pub fn claim(&self, node: usize, pick: usize) -> Option<String> {
        let mut world = self.world();
        if !world.nodes[node].runner_alive {
            return None;
        }
        let stem = world.pick(node, pick, |t| t.spec == Some(QueueDir::Inbox))?;
        world.rename_spec(&stem, Some(QueueDir::Claimed));
        world.mark_moved(&stem);
        Some(stem)
    }

    /// First step of finishing: the runner writes `<stem>.result.json` in
    /// `done/` (the spec is still in `claimed/`).
    pub fn write_result(&self, node: usize, pick: usize, exit_code: i32) -> Option<String> {
        let mut world = self.world();
        if !world.nodes[node].runner_alive {
            return None;
        }
        let stem = world.pick(node, pick, |t| t.spec == Some(QueueDir::Claimed) && t.result.is_none())?;
        world.write_result(&stem, ResultKind::Ran, exit_code);
        world.mark_moved(&stem);
        Some(stem)
    }

    /// Second step of finishing: the spec is archived (claimed -> done).
    pub fn archive_spec(&self, node: usize, pick: usize) -> Option<String> {
        let mut world = self.world();
        if !world.nodes[node].runner_alive {
            return None;
        }
        let stem = world.pick(node, pick, |t| {
            t.spec == Some(QueueDir::Claimed) && matches!(t.result, Some((ResultKind::Ran, _)))
        })?;
        world.rename_spec(&stem, Some(QueueDir::Done));
        world.mark_moved(&stem);
        Some(stem)
    }

    /// A pending task is cancelled: `.cancelled.json` (exit code -1) is
    /// written, then the spec is removed from the inbox.
    pub fn cancel_pending(&self, node: usize, pick: usize) -> Option<String> {
        let mut world = self.world();
        let stem = world.pick(node, pick, |t| t.spec == Some(QueueDir::Inbox) && t.result.is_none())?;
        world.write_result(&stem, ResultKind::Cancelled, -1);
        world.rename_spec(&stem, None);
        world.mark_moved(&stem);
        Some(stem)
    }

    /// The runner skips a claimed task with a duplicate idempotency key:
    /// `.skipped.json`, and the spec goes claimed -> done.
    pub fn skip(&self, node: usize, pick: usize) -> Option<String> {
        let mut world = self.world();
        if !world.nodes[node].runner_alive {
            return None;
        }
        let stem = world.pick(node, pick, |t| t.spec == Some(QueueDir::Claimed) && t.result.is_none())?;
        world.write_result(&stem, ResultKind::Skipped, 0);
        world.rename_spec(&stem, Some(QueueDir::Done));
        world.mark_moved(&stem);
        Some(stem)
    }

    /// An operator deletes a claimed spec that has no result: the only way
    /// a task is really lost.
    pub fn delete_claimed(&self, node: usize, pick: usize) -> Option<String> {
        let mut world = self.world();
        let stem = world.pick(node, pick, |t| t.spec == Some(QueueDir::Claimed) && t.result.is_none())?;
        world.rename_spec(&stem, None);
        world.mark_moved(&stem);
        Some(stem)
    }

    /// Adds a file that is not a task file (a temp dot-file or a stray
    /// note) to a queue directory, or removes it if present.
    pub fn toggle_stray(&self, node: usize, dir: QueueDir, pick: u8) -> String {
        let name = match pick % 3 {
            0 => format!(".tmp.{pick:03}.json.0123456789abcdef"),
            1 => "notes.txt".to_string(),
            _ => format!("{pick}_not_a_task.json"),
        };
        let mut world = self.world();
        let present = world.nodes[node].dirs[slot(dir)].current().names.contains(&name);
        world.edit(node, dir, |names| {
            if present {
                names.remove(&name);
            } else {
                names.insert(name.clone());
            }
        });
        name
    }

    /// Tasks ever submitted.
    pub fn task_count(&self) -> usize {
        self.world().tasks.len()
    }

    /// Every task ever submitted, in name order.
    pub fn stems(&self) -> Vec<String> {
        self.world().tasks.keys().cloned().collect()
    }

    /// The node a task belongs to.
    pub fn node_of(&self, stem: &str) -> Option<usize> {
        self.world().tasks.get(stem).map(|t| t.node)
    }

    /// Where the task's spec really is.
    pub fn spec_location(&self, stem: &str) -> Option<QueueDir> {
        self.world().tasks.get(stem).and_then(|t| t.spec)
    }

    /// The task's result file and exit code, if written.
    pub fn result_of(&self, stem: &str) -> Option<(ResultKind, i32)> {
        self.world().tasks.get(stem).and_then(|t| t.result)
    }

    /// Whether any file of the task exists (spec or result).
    pub fn has_files(&self, stem: &str) -> bool {
        self.world().tasks.get(stem).is_some_and(|t| t.spec.is_some() || t.result.is_some())
    }

    /// What the task really is, by the index's rules: a result decides
    /// (FINISHED / FAILED by exit code, CANCELLED, SKIPPED); else in
    /// `claimed/` it is RUNNING, or STUCK when its node's heartbeat is
    /// missing or older than the stale threshold; else in `inbox/` it is
    /// PENDING; else it is LOST.
    pub fn truth_state(&self, stem: &str) -> TaskState {
        let world = self.world();
        let Some(task) = world.tasks.get(stem) else { return TaskState::Lost };
        match (task.result, task.spec) {
            (Some((ResultKind::Ran, 0)), _) => TaskState::Finished,
            (Some((ResultKind::Ran, _)), _) => TaskState::Failed,
            (Some((ResultKind::Cancelled, _)), _) => TaskState::Cancelled,
            (Some((ResultKind::Skipped, _)), _) => TaskState::Skipped,
            (None, Some(QueueDir::Claimed)) if world.heartbeat_fresh(task.node) => TaskState::Running,
            (None, Some(QueueDir::Claimed)) => TaskState::Stuck,
            (None, Some(QueueDir::Inbox)) => TaskState::Pending,
            (None, _) => TaskState::Lost,
        }
    }
}

impl RunFs for NfsModel {
    fn stamp(&self, dir: &Path) -> Result<DirStamp, ListError> {
        let mut world = self.world();
        match world.locate(dir) {
            Some(Place::Queue(kind, node)) => {
                let pinned = world.pins.contains_key(&(node, slot(kind)));
                let stamp = if world.perturbation.stamp_lag || pinned {
                    world.lagged(node, kind, false).stamp
                } else {
                    world.nodes[node].dirs[slot(kind)].current().stamp
                };
                Ok(DirStamp { mtime_ns: i128::from(stamp), racy: false })
            }
            Some(Place::QueueRoot | Place::HbDir) => Ok(DirStamp { mtime_ns: 0, racy: false }),
            _ => Err(ListError::NotFound),
        }
    }

    fn list_files(&self, dir: &Path) -> Result<crate::runfs::FileNames, ListError> {
        let mut world = self.world();
        match world.locate(dir) {
            Some(Place::Queue(kind, node)) => {
                let p = world.perturbation;
                if world.chance(p.fail) {
                    return Err(ListError::Failed(format!(
                        "{}: Stale file handle (simulated)",
                        dir.display()
                    )));
                }
                let version = world.lagged(node, kind, true);
                let mut names = Vec::with_capacity(version.names.len());
                for name in version.names {
                    if world.chance(p.missing) {
                        continue;
                    }
                    if world.chance(p.duplicate) {
                        names.push(name.clone());
                    }
                    names.push(name);
                }
                if p.reorder {
                    world.rng.shuffle(&mut names);
                }
                Ok(names.into_iter().collect())
            }
            Some(Place::QueueRoot) => Ok(Default::default()),
            Some(Place::ControlDir) => Ok(world
                .written
                .keys()
                .filter(|p| p.parent() == Some(dir))
                .filter_map(|p| p.file_name()?.to_str().map(str::to_string))
                .collect()),
            Some(Place::HbDir) => Ok(world
                .nodes
                .iter()
                .filter(|n| !n.heartbeats.is_empty())
                .map(|n| format!("{}.json", n.name))
                .collect()),
            _ => Err(ListError::NotFound),
        }
    }

    fn list_dirs(&self, dir: &Path) -> Result<Vec<String>, ListError> {
        let world = self.world();
        match world.locate(dir) {
            Some(Place::QueueRoot) => Ok(world.nodes.iter().map(|n| n.name.clone()).collect()),
            // The real runner leaves an empty `hb/<node>/` beside `hb/<node>.json`.
            Some(Place::HbDir) => {
                Ok(world.nodes.iter().filter(|n| !n.heartbeats.is_empty()).map(|n| n.name.clone()).collect())
            }
            Some(Place::Queue(..)) => Ok(Vec::new()),
            // A node's control directory exists once something was written
            // in it (the writer makes it).
            Some(Place::ControlRoot) => {
                let mut dirs: Vec<String> = world
                    .written
                    .keys()
                    .filter_map(|p| p.parent().filter(|d| d.parent() == Some(dir)))
                    .filter_map(|d| d.file_name()?.to_str().map(str::to_string))
                    .collect();
                dirs.dedup();
                Ok(dirs)
            }
            _ => Err(ListError::NotFound),
        }
    }

    // The model's files are all far below any record limit.
    fn read_file(&self, path: &Path, _max_bytes: u64) -> Result<Vec<u8>, ListError> {
        let mut world = self.world();
        if let Some(bytes) = world.written.get(path) {
            // Written through the model; a task file only while it is there.
            if world.probe(path) != Some(true) {
                return Err(ListError::NotFound);
            }
            return Ok(bytes.clone());
        }
        match world.locate(path) {
            Some(Place::Heartbeat(node)) => {
                let p = world.perturbation;
                let lag = if p.max_lag == 0 { 0 } else { world.rng.usize(..=usize::from(p.max_lag)) };
                let beats = &world.nodes[node].heartbeats;
                let Some(&ts) = beats.iter().rev().nth(lag).or(beats.front()) else {
                    return Err(ListError::NotFound);
                };
                let beat = Heartbeat {
                    node: world.nodes[node].name.clone(),
                    ts,
                    running_task_id: None,
                    pending_estimate: 0,
                    runner_pid: 4242,
                    version: "sim".to_string(),
                    running_task_ids: Vec::new(),
                    paused: false,
                    stopped: false,
                };
                Ok(serde_json::to_vec(&beat).expect("a heartbeat serializes"))
            }
            Some(Place::File(kind, node, file)) => {
                // Files are immutable once published: contents never lag.
                for result_kind in [ResultKind::Ran, ResultKind::Skipped, ResultKind::Cancelled] {
                    if let Some(stem) = file.strip_suffix(result_kind.suffix()) {
                        return match world.tasks.get(stem) {
                            Some(t) if kind == QueueDir::Done && t.node == node => match t.result {
                                Some((k, code)) if k == result_kind => Ok(world.result_json(stem, k, code)),
                                _ => Err(ListError::NotFound),
                            },
                            _ => Err(ListError::NotFound),
                        };
                    }
                }
                let stem = file.strip_suffix(".json").ok_or(ListError::NotFound)?;
                match world.tasks.get(stem) {
                    Some(t) if t.node == node && t.spec == Some(kind) => Ok(world.spec_json(stem)),
                    _ => Err(ListError::NotFound),
                }
            }
            _ => Err(ListError::NotFound),
        }
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let mut world = self.world();
        world.fault(path)?;
        match world.locate(path) {
            Some(Place::File(dir, node, file)) => world.write_task_file(path, dir, node, &file, bytes),
            Some(_) => Err(unsupported(path, "a directory or heartbeat")),
            None => {
                world.written.insert(path.to_path_buf(), bytes.to_vec());
                Ok(())
            }
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        let mut world = self.world();
        world.fault(from)?;
        let (Some(Place::File(from_dir, node, file)), Some(Place::File(to_dir, to_node, to_file))) =
            (world.locate(from), world.locate(to))
        else {
            return Err(unsupported(from, "a rename outside the queue directories"));
        };
        let stem = file.strip_suffix(".json").filter(|_| file == to_file && node == to_node);
        let Some(stem) = stem.filter(|s| world.tasks.get(*s).is_some_and(|t| t.node == node)) else {
            return Err(unsupported(from, "a rename that changes the name or node"));
        };
        if world.tasks[stem].spec != Some(from_dir) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{}: not there", from.display()),
            ));
        }
        if !world.may_move(stem) {
            // The bounded mode's promise (one move per task per round)
            // holds for the dashboard's moves too.
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "moved already this round (simulated)",
            ));
        }
        let stem = stem.to_string();
        world.rename_spec(&stem, Some(to_dir));
        world.mark_moved(&stem);
        if let Some(bytes) = world.written.remove(from) {
            world.written.insert(to.to_path_buf(), bytes);
        }
        Ok(())
    }

    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.world().fault(dir)
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        let mut world = self.world();
        world.fault(path)?;
        match world.locate(path) {
            Some(_) => Err(unsupported(path, "removing a task file")),
            None => match world.written.remove(path) {
                Some(_) => Ok(()),
                None => Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{}", path.display()))),
            },
        }
    }

    fn probe(&self, path: &Path) -> std::io::Result<Option<bool>> {
        Ok(self.world().probe(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{parse_entry, TaskName};

    fn listing(model: &NfsModel, dir: QueueDir, node: &str) -> Vec<String> {
        let mut names = model.list_files(&model.run_dir().queue(dir, node)).unwrap().into_vec();
        names.sort();
        names
    }

    #[test]
    fn protocol_moves_and_truth() {
        let model = NfsModel::new(&["nodeA"], 60, 1000);
        let stem = model.submit(0);
        assert!(TaskName::parse(&stem).is_some(), "{stem}");
        assert_eq!(model.truth_state(&stem), TaskState::Pending);
        assert_eq!(model.claim(0, 0), None, "no runner yet");
        model.restart_runner(0).unwrap();
        assert_eq!(model.claim(0, 0).as_deref(), Some(stem.as_str()));
        assert_eq!(model.truth_state(&stem), TaskState::Running);
        assert_eq!(listing(&model, QueueDir::Claimed, "nodeA"), vec![format!("{stem}.json")]);
        model.begin_round(0);
        model.write_result(0, 0, 3).unwrap();
        assert_eq!(model.truth_state(&stem), TaskState::Failed);
        assert_eq!(listing(&model, QueueDir::Done, "nodeA"), vec![format!("{stem}.result.json")]);
        assert_eq!(model.archive_spec(0, 0), None, "one move per round");
        model.begin_round(0);
        model.archive_spec(0, 0).unwrap();
        let done = listing(&model, QueueDir::Done, "nodeA");
        assert_eq!(done, vec![format!("{stem}.json"), format!("{stem}.result.json")]);
        assert!(done.iter().all(|n| parse_entry(n).is_some()));
        let path = model.run_dir().queue(QueueDir::Done, "nodeA").join(&done[1]);
        let result: TaskResult = serde_json::from_slice(&model.read_file(&path, 1 << 20).unwrap()).unwrap();
        assert_eq!(result.exit_code, 3);
    }

    #[test]
    fn crash_makes_claimed_stuck_and_restart_recovers() {
        let model = NfsModel::new(&["a", "b"], 60, 1000);
        model.restart_runner(1).unwrap();
        let stem = model.submit(1);
        model.claim(1, 0).unwrap();
        model.crash_runner(1);
        model.advance(61);
        assert_eq!(model.truth_state(&stem), TaskState::Stuck);
        model.begin_round(1);
        assert_eq!(model.restart_runner(1), Some(vec![stem.clone()]));
        assert_eq!(model.truth_state(&stem), TaskState::Pending);
        let beats = crate::scan::read_heartbeats(&model, model.run_dir());
        assert_eq!(beats.beats.len(), 1);
        assert_eq!(beats.beats[0].1.as_ref().unwrap().ts, 1061);
    }

    #[test]
    fn lagging_listings_show_older_versions_only() {
        let model = NfsModel::new(&["a"], 60, 0);
        let stems: Vec<String> = (0..5).map(|_| model.submit(0)).collect();
        let lag = Perturbation { max_lag: 7, reorder: true, duplicate: 128, ..Perturbation::NONE };
        model.set_perturbation(lag, 7);
        let dir = model.run_dir().queue(QueueDir::Inbox, "a");
        let mut sizes = BTreeSet::new();
        for _ in 0..64 {
            let names = model.list_files(&dir).unwrap().into_vec();
            let unique: BTreeSet<&String> = names.iter().collect();
            // Older versions are prefixes of the submissions.
            let expected: BTreeSet<String> =
                stems.iter().take(unique.len()).map(|s| spec_file_name(s)).collect();
            assert_eq!(unique, expected.iter().collect());
            sizes.insert(unique.len());
        }
        assert!(sizes.len() > 2, "{sizes:?}");
        model.set_perturbation(Perturbation { monotonic: true, ..lag }, 7);
        let mut last = 0;
        for _ in 0..64 {
            let n = model.list_files(&dir).unwrap().into_vec().into_iter().collect::<BTreeSet<_>>().len();
            assert!(n >= last, "monotonic views never go back");
            last = n;
        }
    }

    #[test]
    fn perturbation_bytes_round_trip() {
        for a in 0..64u8 {
            let p = Perturbation::from_bytes(a, a.wrapping_mul(37), a);
            let [x, y, z] = p.to_bytes();
            assert_eq!(Perturbation::from_bytes(x, y, z), p);
        }
        assert!(Perturbation::NONE.is_consistent());
    }

    #[test]
    fn paths_outside_the_model_are_not_found() {
        let model = NfsModel::new(&["a"], 60, 0);
        assert_eq!(model.list_files(Path::new("/elsewhere")), Err(ListError::NotFound));
        assert_eq!(model.list_files(&model.run_dir().queue(QueueDir::Inbox, "zz")), Err(ListError::NotFound));
        let nodes = crate::scan::discover_nodes(&model, model.run_dir()).names;
        assert_eq!(nodes.into_iter().collect::<Vec<_>>(), vec!["a"]);
    }
}
