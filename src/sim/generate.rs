//! Synthetic histories: a whole archive root (`index.json`, `meta/lease.json`
//! and a Slurm lease's run dir) laid out as real leaseq 0.2.0 runners would
//! have left it (ON-DISK.md), for tests, benches and the demo.
//!
//! Owns: [`generate`]. The same options (seed and `now` included) give a
//! byte-identical tree, whatever the number of threads.
//!
//! Must not: write into a tree that anything else is reading or writing. It
//! uses plain `std::fs::write`, not the protocol's temp file + rename, because
//! it only ever fills a fresh directory and must be fast (a million tasks).

use crate::clock::unix_now;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use fastrand::Rng;

use crate::model::{
    Heartbeat, LeaseEntry, LeaseMeta, LeaseRegistry, LocalLeaseMeta, ResultKind, SlurmLeaseMeta, TaskResult,
    TaskSpec,
};
use crate::paths::{write_registry, QueueDir, RunDir};

/// What to generate. Start from `GenerateOptions::default()` and set `now`
/// and `seed` where the output must be reproducible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Tasks that ran (`.result.json` + archived spec in `done/`), failed ones
    /// included. About 1% more are added as cancelled and 0.5% as skipped.
    pub tasks: usize,
    /// Node names `node00`, `node01`, ... (wider when needed). At least 1.
    pub nodes: usize,
    /// Specs left in `inbox/<node>/` on every node.
    pub pending_per_node: usize,
    /// Specs in `claimed/<node>/` on every node except the stale one.
    pub running_per_node: usize,
    /// The lease: a Slurm job id, or `local:<host>` (then `meta/lease.json`
    /// is a local lease's). Its run dir is `<root>/runs/<lease_id>` either way.
    pub lease_id: String,
    /// Entries of every spec's `env` (40 give the real tool's ~2 KB specs).
    pub env_vars: usize,
    /// Log files are written for the newest N tasks that ran (by
    /// `finished_at`) and for every running task; results always name them.
    pub logs_for_latest: usize,
    /// Percentage of the tasks that ran which exit non-zero.
    pub failure_rate_percent: u32,
    /// Unix seconds; every timestamp is at or before it, heartbeats are
    /// `now - 2` (healthy) and `now - 600` (the stale node).
    pub now: i64,
    /// Same seed (and options), same tree.
    pub seed: u64,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            tasks: 1000,
            nodes: 4,
            pending_per_node: 3,
            running_per_node: 1,
            lease_id: "99887766".to_string(),
            env_vars: 40,
            logs_for_latest: 200,
            failure_rate_percent: 8,
            now: unix_now(),
            seed: 0x1ea5_e9ed,
        }
    }
}

/// What [`generate`] wrote. `done` counts the tasks that ran (`failed` is
/// the part of them with a non-zero exit code); `cancelled` and `skipped`
/// come on top of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedTree {
    pub run_dir: PathBuf,
    pub lease_id: String,
    pub nodes: Vec<String>,
    /// The node whose heartbeat is 600 s old (the last one, when there are
    /// at least two); it has no running task.
    pub stale_node: Option<String>,
    pub done: usize,
    pub pending: usize,
    pub running: usize,
    pub cancelled: usize,
    pub skipped: usize,
    pub failed: usize,
}

/// Writes a synthetic archive root under `root` (created if missing): the
/// lease registry with this lease as default, the lease's `meta/lease.json`,
/// and its run dir with queues, results, heartbeats, logs and the empty
/// per-node directories the real runner creates.
pub fn generate(root: &Path, opts: &GenerateOptions) -> io::Result<GeneratedTree> {
    validate(opts)?;
    let nodes = node_names(opts.nodes);
    let stale = (opts.nodes >= 2).then_some(opts.nodes - 1);
    let plans = plan_all(opts, stale);
    let run = RunDir(root.join("runs").join(&opts.lease_id));

    create_dirs(&run, &nodes)?;

    let lease_created = plans
        .iter()
        .flat_map(|items| items.iter().map(|item| (item.micros / MICROS) as i64))
        .min()
        .unwrap_or(opts.now - 3 * DAY)
        - 300;
    write_lease_files(root, &run, opts, lease_created)?;
    write_heartbeats(&run, opts, &nodes, &plans, stale)?;

    let ctx = WriteContext {
        queues: nodes.iter().map(|node| QueueDir::ALL.map(|queue| run.queue(queue, node))).collect(),
        logs: run.logs(),
        lease_id: &opts.lease_id,
        nodes: &nodes,
        plans: &plans,
        seed: opts.seed,
        env: base_env(opts, &nodes),
    };
    write_items(&ctx)?;

    let count = |kind: Kind| plans.iter().flatten().filter(|item| item.kind == kind).count();
    Ok(GeneratedTree {
        run_dir: run.0.clone(),
        lease_id: opts.lease_id.clone(),
        stale_node: stale.map(|i| nodes[i].clone()),
        done: count(Kind::Ran),
        pending: count(Kind::Pending),
        running: count(Kind::Running),
        cancelled: count(Kind::Cancelled),
        skipped: count(Kind::Skipped),
        failed: plans.iter().flatten().filter(|i| i.kind == Kind::Ran && i.exit_code != 0).count(),
        nodes,
    })
}

const MICROS: u64 = 1_000_000;
const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
/// Tasks written by one unit of work of the writer threads.
const CHUNK: usize = 2048;

fn validate(opts: &GenerateOptions) -> io::Result<()> {
    let invalid = |what: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, what.to_string()));
    if opts.nodes == 0 {
        return invalid("generate: nodes must be at least 1");
    }
    if opts.lease_id.is_empty() || opts.lease_id.contains(['/', '\0']) || opts.lease_id.starts_with('.') {
        return invalid("generate: lease_id must be a non-empty file name");
    }
    // Names carry 16-digit microseconds; keep every timestamp in that range.
    if !(10 * DAY * 365..=9_000_000_000).contains(&opts.now) {
        return invalid("generate: now must be Unix seconds between 1980 and 2255");
    }
    Ok(())
}

/// `node00`, `node01`, ...: two digits, more when there are over 100 nodes.
pub(crate) fn node_names(count: usize) -> Vec<String> {
    let width = count.saturating_sub(1).to_string().len().max(2);
    (0..count).map(|i| format!("node{i:0width$}")).collect()
}

// ---------------------------------------------------------------------------
// Planning: every timestamp, uuid and exit code, per node, in FIFO order.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ran,
    Skipped,
    Cancelled,
    Running,
    Pending,
}

#[derive(Debug, Clone, Copy)]
struct Item {
    uuid: [u8; 16],
    /// Creation time in Unix microseconds: the name's seq.
    micros: u64,
    /// Ran, Skipped: when the runner took it; Cancelled: when it was
    /// cancelled; Running: when it started; Pending: unused.
    started: i64,
    finished: i64,
    exit_code: i32,
    kind: Kind,
    /// The micros in this task's idempotency key: its own, except for a
    /// skipped duplicate, which carries the key of an earlier task.
    key_micros: u64,
    write_logs: bool,
}

impl Item {
    fn task_id(&self) -> [u8; 7] {
        let mut id = [b'T'; 7];
        for (i, byte) in self.uuid[..3].iter().enumerate() {
            id[1 + 2 * i] = HEX[usize::from(byte >> 4)];
            id[2 + 2 * i] = HEX[usize::from(byte & 15)];
        }
        id
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A version-4 uuid from a seeded generator (the bytes of
/// `crate::paths::new_uuid`, made reproducible).
fn seeded_uuid(rng: &mut Rng) -> [u8; 16] {
    let mut bytes = rng.u128(..).to_le_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    bytes
}

fn push_uuid(out: &mut String, bytes: &[u8; 16]) {
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 15)]));
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `total` spread over `parts`, the remainder going to the first ones.
fn share(total: usize, parts: usize, index: usize) -> usize {
    total / parts + usize::from(index < total % parts)
}

fn plan_all(opts: &GenerateOptions, stale: Option<usize>) -> Vec<Vec<Item>> {
    let cancelled = opts.tasks.div_ceil(100);
    let skipped = opts.tasks.div_ceil(200);
    let busiest = share(opts.tasks + cancelled + skipped, opts.nodes, 0) + 2 + opts.nodes;
    // Three days, or longer when the nodes need it to run everything.
    let span = (3 * DAY).max(busiest as i64 * 4 + 2 * HOUR);
    let history_start = opts.now - span;
    let mut plans: Vec<Vec<Item>> = (0..opts.nodes)
        .map(|index| {
            let done = share(opts.tasks, opts.nodes, index);
            let counts = NodeCounts {
                done,
                cancelled: share(cancelled, opts.nodes, index),
                skipped: if done > 0 { share(skipped, opts.nodes, index) } else { 0 },
                running: if stale == Some(index) { 0 } else { opts.running_per_node },
                pending: opts.pending_per_node,
            };
            let mut rng = Rng::with_seed(splitmix(opts.seed ^ splitmix(index as u64 + 1)));
            plan_node(opts, &counts, stale == Some(index), history_start, &mut rng)
        })
        .collect();
    select_logs(&mut plans, opts.logs_for_latest);
    plans
}

struct NodeCounts {
    done: usize,
    cancelled: usize,
    skipped: usize,
    running: usize,
    pending: usize,
}

fn plan_node(
    opts: &GenerateOptions,
    counts: &NodeCounts,
    stale: bool,
    history_start: i64,
    rng: &mut Rng,
) -> Vec<Item> {
    let now = opts.now;
    let mut kinds = Vec::with_capacity(counts.done + counts.cancelled + counts.skipped);
    kinds.extend(std::iter::repeat_n(Kind::Ran, counts.done));
    kinds.extend(std::iter::repeat_n(Kind::Cancelled, counts.cancelled));
    kinds.extend(std::iter::repeat_n(Kind::Skipped, counts.skipped));
    rng.shuffle(&mut kinds);
    // A skipped task duplicates the key of one that ran before it.
    let mut ran_seen = false;
    for i in 0..kinds.len() {
        match kinds[i] {
            Kind::Ran => ran_seen = true,
            Kind::Skipped if !ran_seen => {
                if let Some(j) = kinds[i..].iter().position(|k| *k == Kind::Ran) {
                    kinds.swap(i, i + j);
                    ran_seen = true;
                }
            }
            _ => {}
        }
    }

    // The last hour is busier than the days before it, so per-minute
    // completion counts have something to show.
    let run_start = now - rng.i64(60..=1800);
    let end_done = if stale {
        now - 600 - rng.i64(30..=300)
    } else if counts.running > 0 {
        run_start - rng.i64(1..=30)
    } else {
        now - rng.i64(5..=120)
    };
    let recent_from = now - HOUR;
    let recent_cap = usize::try_from((end_done - recent_from) / 6).unwrap_or(0);
    let recent = (kinds.len() / 4).max(kinds.len().min(2)).min(recent_cap).min(kinds.len());
    let old = kinds.len() - recent;

    let total = kinds.len() + counts.running + counts.pending;
    let mut items = Vec::with_capacity(total);
    fill_window(&kinds[..old], history_start, recent_from - 1, opts.failure_rate_percent, rng, &mut items);
    fill_window(&kinds[old..], recent_from, end_done, opts.failure_rate_percent, rng, &mut items);
    let mut start = run_start;
    for _ in 0..counts.running {
        items.push(Item::new(Kind::Running, start.min(now - 1), 0, 0));
        start += rng.i64(1..=20);
    }

    // Creation times, newest first: each before its start by a lag (now and
    // then hours: a batch submitted at once) and before the next one's.
    let mut next = u64::MAX;
    for item in items.iter_mut().rev() {
        let lag = if rng.u32(0..10) == 0 {
            rng.u64(600 * MICROS..=6 * 3600 * MICROS)
        } else {
            rng.u64(MICROS..=600 * MICROS)
        };
        let bound = (item.started as u64 * MICROS).saturating_sub(1 + lag);
        item.micros = bound.min(next.saturating_sub(1 + rng.u64(0..5000)));
        next = item.micros;
    }
    // Pending tasks were submitted after all of those, up to now.
    let last = items.last().map_or(0, |item| item.micros);
    let low = (last + 1).max((now - HOUR) as u64 * MICROS);
    let high = (now as u64 * MICROS).max(low + counts.pending as u64 + 1);
    let mut pending: Vec<u64> = (0..counts.pending).map(|_| rng.u64(low..high)).collect();
    pending.sort_unstable();
    let mut previous = last;
    for micros in pending {
        let micros = micros.max(previous + 1);
        let mut item = Item::new(Kind::Pending, 0, 0, 0);
        item.micros = micros;
        items.push(item);
        previous = micros;
    }

    let mut recent_ran: Vec<u64> = Vec::new();
    for item in &mut items {
        item.uuid = seeded_uuid(rng);
        item.key_micros = item.micros;
        match item.kind {
            Kind::Ran => {
                if recent_ran.len() == 32 {
                    recent_ran.remove(0);
                }
                recent_ran.push(item.micros);
            }
            Kind::Skipped if !recent_ran.is_empty() => {
                item.key_micros = recent_ran[rng.usize(..recent_ran.len())];
            }
            _ => {}
        }
    }
    items
}

impl Item {
    fn new(kind: Kind, started: i64, finished: i64, exit_code: i32) -> Item {
        Item {
            uuid: [0; 16],
            micros: 0,
            started,
            finished,
            exit_code,
            kind,
            key_micros: 0,
            write_logs: false,
        }
    }
}

/// Lays `kinds` one after the other in `[t0, t1]`: each task that ran gets at
/// least one second and a heavy-tailed share of the rest, separated by idle
/// gaps; skipped and cancelled tasks take no time.
fn fill_window(kinds: &[Kind], t0: i64, t1: i64, failure_percent: u32, rng: &mut Rng, out: &mut Vec<Item>) {
    let ran = kinds.iter().filter(|k| **k == Kind::Ran).count() as i64;
    let weights: Vec<(f64, f64)> = kinds
        .iter()
        .map(|kind| {
            let gap = if rng.u32(0..20) == 0 { 3.0 + rng.f64() * 30.0 } else { rng.f64() * 0.3 };
            let run = if *kind == Kind::Ran { (rng.f64() * 4.5).exp() } else { 0.0 };
            (gap, run)
        })
        .collect();
    let total: f64 = weights.iter().map(|(gap, run)| gap + run).sum();
    let spare = (t1 - t0 - ran).max(0) as f64;
    let scale = if total > 0.0 { spare / total } else { 0.0 };
    let (mut cum, mut ones) = (0.0f64, 0i64);
    for (kind, (gap, run)) in kinds.iter().zip(weights) {
        cum += gap * scale;
        let started = t0 + ones + cum.floor() as i64;
        let item = match kind {
            Kind::Ran => {
                cum += run * scale;
                ones += 1;
                let finished = t0 + ones + cum.floor() as i64;
                let exit_code = if rng.u32(0..100) < failure_percent { failure_exit_code(rng) } else { 0 };
                Item::new(Kind::Ran, started, finished, exit_code)
            }
            Kind::Skipped => Item::new(Kind::Skipped, started, started, 0),
            _ => Item::new(Kind::Cancelled, started, started, -1),
        };
        out.push(item);
    }
}

fn failure_exit_code(rng: &mut Rng) -> i32 {
    match rng.u32(0..20) {
        0..=13 => 1,
        14 | 15 => 137,
        16 => 2,
        17 => 139,
        18 => 124,
        _ => 143,
    }
}

/// Marks the tasks whose logs are written: the newest `latest` that ran and
/// every running one. Logs are named by task id alone, so of tasks sharing
/// an id only the one started last keeps its log, as with the real runner
/// (and no two threads ever write the same file).
fn select_logs(plans: &mut [Vec<Item>], latest: usize) {
    let mut newest: Vec<(i64, u32, u32)> = Vec::new();
    let mut chosen: Vec<(u32, u32)> = Vec::new();
    for (node, items) in plans.iter().enumerate() {
        for (index, item) in items.iter().enumerate() {
            match item.kind {
                Kind::Ran => newest.push((item.finished, node as u32, index as u32)),
                Kind::Running => chosen.push((node as u32, index as u32)),
                _ => {}
            }
        }
    }
    if newest.len() > latest {
        if latest > 0 {
            newest.select_nth_unstable_by(latest - 1, |a, b| b.cmp(a));
        }
        newest.truncate(latest);
    }
    chosen.extend(newest.iter().map(|&(_, node, index)| (node, index)));

    let mut owner: HashMap<[u8; 7], (i64, u32, u32)> = HashMap::with_capacity(chosen.len());
    for (node, index) in chosen {
        let item = &plans[node as usize][index as usize];
        let candidate = (item.started, node, index);
        let entry = owner.entry(item.task_id()).or_insert(candidate);
        *entry = (*entry).max(candidate);
    }
    for (_, node, index) in owner.into_values() {
        plans[node as usize][index as usize].write_logs = true;
    }
}

// ---------------------------------------------------------------------------
// Writing.

fn create_dirs(run: &RunDir, nodes: &[String]) -> io::Result<()> {
    let mkdir = |path: PathBuf| std::fs::create_dir_all(&path).map_err(|e| with_path(e, &path));
    mkdir(run.0.join("meta"))?;
    for node in nodes {
        for dir in ["inbox", "claimed", "ack", "done", "logs", "hb", "events"] {
            mkdir(run.0.join(dir).join(node))?;
        }
    }
    Ok(())
}

pub(crate) fn write_lease_files(
    root: &Path,
    run: &RunDir,
    opts: &GenerateOptions,
    created_at: i64,
) -> io::Result<()> {
    let meta = if opts.lease_id.starts_with("local:") {
        let local = LocalLeaseMeta { total_gpus: 8, parallel: 1 };
        LeaseMeta::Local { lease_id: opts.lease_id.clone(), created_at, local }
    } else {
        LeaseMeta::Slurm {
            lease_id: opts.lease_id.clone(),
            name: Some("synthetic".to_string()),
            created_at,
            slurm: SlurmLeaseMeta {
                sbatch_args: vec![
                    format!("--nodes={}", opts.nodes),
                    "--time=96:00:00".to_string(),
                    "--gres=gpu:8".to_string(),
                    "--exclusive".to_string(),
                ],
            },
            mode: Some("exclusive-per-node".to_string()),
        }
    };
    let mut bytes = serde_json::to_vec_pretty(&meta).map_err(io::Error::other)?;
    bytes.push(b'\n');
    write_file(&run.meta(), &bytes)?;

    let mut registry = LeaseRegistry { default_lease: Some(opts.lease_id.clone()), ..Default::default() };
    let entry = LeaseEntry { created_at: Some(created_at), name: Some("synthetic".to_string()) };
    registry.leases.insert(opts.lease_id.clone(), entry);
    write_registry(&root.join("index.json"), &registry)
}

fn write_heartbeats(
    run: &RunDir,
    opts: &GenerateOptions,
    nodes: &[String],
    plans: &[Vec<Item>],
    stale: Option<usize>,
) -> io::Result<()> {
    for (index, (node, items)) in nodes.iter().zip(plans).enumerate() {
        let running = items.iter().find(|item| item.kind == Kind::Running);
        let heartbeat = Heartbeat {
            node: node.clone(),
            ts: if stale == Some(index) { opts.now - 600 } else { opts.now - 2 },
            running_task_id: running.map(|item| String::from_utf8_lossy(&item.task_id()).into_owned()),
            pending_estimate: items.iter().filter(|item| item.kind == Kind::Pending).count() as u64,
            runner_pid: 1000 + (splitmix(opts.seed ^ index as u64) % 4_000_000) as u32,
            version: "0.2.0".to_string(),
            running_task_ids: Vec::new(),
            paused: false,
            stopped: false,
        };
        let bytes = serde_json::to_vec(&heartbeat).map_err(io::Error::other)?;
        write_file(&run.heartbeat(node), &bytes)?;
    }
    Ok(())
}

fn with_path(error: io::Error, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    std::fs::write(path, bytes).map_err(|e| with_path(e, path))
}

struct WriteContext<'a> {
    /// Per node: `inbox/<node>`, `claimed/<node>`, `done/<node>`.
    queues: Vec<[PathBuf; 3]>,
    logs: PathBuf,
    lease_id: &'a str,
    nodes: &'a [String],
    plans: &'a [Vec<Item>],
    seed: u64,
    env: BTreeMap<String, String>,
}

/// Writes every task's files: chunks of a node's tasks are handed to one
/// thread per core. Content depends only on the plan, not on the threads.
fn write_items(ctx: &WriteContext<'_>) -> io::Result<()> {
    // Chunk k of every node before chunk k + 1 of any: threads work in
    // different directories and do not queue on one directory's lock.
    let mut work: Vec<(usize, usize)> = ctx
        .plans
        .iter()
        .enumerate()
        .flat_map(|(node, items)| (0..items.len()).step_by(CHUNK).map(move |start| (node, start)))
        .collect();
    work.sort_by_key(|&(node, start)| (start, node));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(work.len()).max(1);
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| -> io::Result<()> {
                    let mut writer = TaskWriter::new(ctx);
                    while !failed.load(Ordering::Relaxed) {
                        let Some(&(node, start)) = work.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            break;
                        };
                        let items = &ctx.plans[node];
                        let end = (start + CHUNK).min(items.len());
                        for item in &items[start..end] {
                            if let Err(e) = writer.write(node, item) {
                                failed.store(true, Ordering::Relaxed);
                                return Err(e);
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|worker| worker.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
    })
}

/// One thread's reusable records and buffers.
struct TaskWriter<'a> {
    ctx: &'a WriteContext<'a>,
    spec: TaskSpec,
    result: TaskResult,
    json: Vec<u8>,
    name: String,
    path: PathBuf,
    text: String,
}

impl<'a> TaskWriter<'a> {
    fn new(ctx: &'a WriteContext<'a>) -> TaskWriter<'a> {
        TaskWriter {
            ctx,
            spec: TaskSpec {
                task_id: String::new(),
                idempotency_key: String::new(),
                lease_id: ctx.lease_id.to_string(),
                target_node: String::new(),
                seq: 0,
                uuid: String::new(),
                created_at: 0,
                cwd: String::new(),
                env: ctx.env.clone(),
                gpus: 0,
                command: String::new(),
            },
            result: TaskResult {
                task_id: String::new(),
                idempotency_key: String::new(),
                node: String::new(),
                started_at: 0,
                finished_at: 0,
                exit_code: 0,
                stdout: String::new(),
                stderr: String::new(),
                runtime_s: 0.0,
                command: Some(String::new()),
                cwd: Some(String::new()),
                gpus_requested: Some(0),
                gpus_assigned: Some(String::new()),
                error: None,
                signal: None,
            },
            json: Vec::with_capacity(4096),
            name: String::with_capacity(128),
            path: PathBuf::new(),
            text: String::with_capacity(4096),
        }
    }

    fn write(&mut self, node_index: usize, item: &Item) -> io::Result<()> {
        let node = &self.ctx.nodes[node_index];
        let task_id = item.task_id();
        let task_id = std::str::from_utf8(&task_id).unwrap_or("T000000");
        let mut rng = Rng::with_seed(splitmix(self.ctx.seed ^ u64::from_le_bytes(item_seed(&item.uuid))));
        let flavor = self.fill_spec(node, task_id, item, &mut rng);

        self.name.clear();
        let _ = write!(self.name, "{:016}_{task_id}_", item.micros);
        push_uuid(&mut self.name, &item.uuid);
        let stem_len = self.name.len();

        let queue = match item.kind {
            Kind::Pending => QueueDir::Inbox,
            Kind::Running => QueueDir::Claimed,
            _ => QueueDir::Done,
        };
        // `queues` was built from `QueueDir::ALL`, in declaration order.
        let dir = &self.ctx.queues[node_index][queue as usize];
        if item.kind != Kind::Cancelled {
            // A cancelled pending task leaves no spec anywhere.
            self.json.clear();
            serde_json::to_writer(&mut self.json, &self.spec).map_err(io::Error::other)?;
            self.name.push_str(".json");
            self.write_named(dir, FileBytes::Json)?;
        }
        let result_kind = match item.kind {
            Kind::Ran => Some(ResultKind::Ran),
            Kind::Skipped => Some(ResultKind::Skipped),
            Kind::Cancelled => Some(ResultKind::Cancelled),
            Kind::Running | Kind::Pending => None,
        };
        if let Some(kind) = result_kind {
            self.fill_result(node, item, &mut rng);
            self.json.clear();
            serde_json::to_writer(&mut self.json, &self.result).map_err(io::Error::other)?;
            self.name.truncate(stem_len);
            self.name.push_str(kind.suffix());
            self.write_named(dir, FileBytes::Json)?;
        }
        if item.write_logs {
            let logs = &self.ctx.logs;
            self.text.clear();
            write_stdout(&mut self.text, flavor, &self.spec, item, node, &mut rng);
            self.name.clear();
            let _ = write!(self.name, "{task_id}.out");
            self.write_named(logs, FileBytes::Text)?;
            self.text.clear();
            write_stderr(&mut self.text, flavor, &self.spec, item, &mut rng);
            self.name.clear();
            let _ = write!(self.name, "{task_id}.err");
            self.write_named(logs, FileBytes::Text)?;
        }
        Ok(())
    }

    fn write_named(&mut self, dir: &Path, which: FileBytes) -> io::Result<()> {
        self.path.as_mut_os_string().clear();
        self.path.push(dir);
        self.path.push(&self.name);
        let bytes = match which {
            FileBytes::Json => &self.json[..],
            FileBytes::Text => self.text.as_bytes(),
        };
        write_file(&self.path, bytes)
    }

    fn fill_spec(&mut self, node: &str, task_id: &str, item: &Item, rng: &mut Rng) -> Flavor {
        let spec = &mut self.spec;
        spec.task_id.clear();
        spec.task_id.push_str(task_id);
        spec.idempotency_key.clear();
        let _ = write!(spec.idempotency_key, "{}-{node}-{}", self.ctx.lease_id, item.key_micros);
        spec.target_node.clear();
        spec.target_node.push_str(node);
        spec.seq = item.micros;
        spec.uuid.clear();
        push_uuid(&mut spec.uuid, &item.uuid);
        spec.created_at = (item.micros / MICROS) as i64;
        let serious = item.kind == Kind::Ran && (item.exit_code != 0 || item.finished - item.started > 600);
        let (flavor, cwd, gpus) = write_command(&mut spec.command, serious, rng);
        spec.cwd.clear();
        spec.cwd.push_str(cwd);
        spec.gpus = gpus;
        if let Some(pwd) = spec.env.get_mut("PWD") {
            pwd.clear();
            pwd.push_str(cwd);
        }
        if let Some(group) = spec.env.get_mut("WANDB_RUN_GROUP") {
            group.clear();
            let _ = write!(group, "sweep-{:04}", (item.micros / (6 * 3600 * MICROS)) % 10_000);
        }
        flavor
    }

    fn fill_result(&mut self, node: &str, item: &Item, rng: &mut Rng) {
        let (spec, result) = (&self.spec, &mut self.result);
        result.task_id.clone_from(&spec.task_id);
        result.idempotency_key.clone_from(&spec.idempotency_key);
        result.node.clear();
        result.node.push_str(node);
        result.started_at = item.started;
        result.finished_at = item.finished;
        result.exit_code = item.exit_code;
        result.stdout.clear();
        result.stderr.clear();
        let assigned = result.gpus_assigned.get_or_insert_with(String::new);
        assigned.clear();
        if item.kind == Kind::Ran {
            let _ = write!(result.stdout, "logs/{}.out", spec.task_id);
            let _ = write!(result.stderr, "logs/{}.err", spec.task_id);
            let elapsed = (item.finished - item.started) as f64 + rng.f64() - 0.5;
            result.runtime_s = (elapsed.max(0.001) * 1000.0).round() / 1000.0;
            for gpu in 0..spec.gpus {
                if gpu > 0 {
                    assigned.push(',');
                }
                let _ = write!(assigned, "{gpu}");
            }
        } else {
            result.runtime_s = 0.0;
        }
        result.command.get_or_insert_with(String::new).clone_from(&spec.command);
        result.cwd.get_or_insert_with(String::new).clone_from(&spec.cwd);
        result.gpus_requested = Some(spec.gpus);
    }
}

#[derive(Clone, Copy)]
enum FileBytes {
    Json,
    Text,
}

fn item_seed(uuid: &[u8; 16]) -> [u8; 8] {
    let mut seed = [0; 8];
    seed.copy_from_slice(&uuid[8..]);
    seed
}

// ---------------------------------------------------------------------------
// Content: commands, environment, logs.

const CWDS: [&str; 6] = [
    "/home/alice/proj/vision",
    "/home/alice/proj/vision",
    "/home/alice/proj/nlp",
    "/scratch/alice/sweeps",
    "/home/alice/proj/vision/experiments/ablation",
    "/home/alice/projets/modèle-α",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Train,
    Eval,
    Preprocess,
    Shell,
}

/// Writes a realistic command into `out`; returns its kind, cwd and GPUs.
/// A `serious` task (one that failed or ran long) is not a toy command.
fn write_command(out: &mut String, serious: bool, rng: &mut Rng) -> (Flavor, &'static str, u32) {
    out.clear();
    let cwd = CWDS[rng.usize(..CWDS.len())];
    let n = rng.u32(1..100);
    let lr = ["1e-3", "3e-4", "1e-4", "5e-5", "2e-4"][rng.usize(..5)];
    let (flavor, gpus) = match rng.u32(0..if serious { 83 } else { 100 }) {
        0..=37 => {
            let family = ['a', 'b', 'c'][rng.usize(..3)];
            let _ = write!(out, "python train.py --cfg cfgs/{family}{n}.yaml --lr {lr}");
            if rng.bool() {
                let _ = write!(out, " --seed {}", rng.u32(0..5));
            }
            (Flavor::Train, if rng.u32(0..10) == 0 { 2 } else { 1 })
        }
        38..=49 => {
            let gpus = [2, 4, 8][rng.usize(..3)];
            let _ = write!(
                out,
                "torchrun --nproc_per_node={gpus} train.py --cfg cfgs/big/l{n}.yaml --lr {lr} --bf16"
            );
            (Flavor::Train, gpus)
        }
        50..=61 => {
            let split = ["val", "test"][rng.usize(..2)];
            let _ = write!(out, "python eval.py --ckpt runs/a{n}/ckpt_best.pt --split {split}");
            (Flavor::Eval, 1)
        }
        62..=71 => {
            let _ = write!(out, "python preprocess.py --shard {n:03}/256 --out /scratch/alice/shards");
            (Flavor::Preprocess, 0)
        }
        72..=77 => {
            let _ = write!(
                out,
                "python train.py --cfg cfgs/ablation.yaml --note \"λ=0.{} — no attn\"",
                rng.u32(1..10)
            );
            (Flavor::Train, 1)
        }
        78..=82 => {
            let _ = write!(out, "bash scripts/sweep.sh {n} && python collect.py --out results/sweep_{n}.csv");
            (Flavor::Shell, 0)
        }
        83..=86 => {
            let _ = write!(out, "./bin/simulate --steps {} --seed {}", n * 1000, rng.u32(0..1000));
            (Flavor::Shell, 0)
        }
        87..=91 => {
            out.push_str("echo 'résumé ✓'");
            (Flavor::Shell, 0)
        }
        92..=95 => {
            let _ = write!(out, "python plot.py --title \"Δ loss (μ ± σ), run {n}\" --out figs/");
            (Flavor::Shell, 0)
        }
        _ => {
            let _ = write!(out, "sleep {n} && echo 完了");
            (Flavor::Shell, 0)
        }
    };
    (flavor, cwd, gpus)
}

/// The submitter's environment as the real tool captures it: `env_vars`
/// entries, the per-task ones (`PWD`, `WANDB_RUN_GROUP`) first.
fn base_env(opts: &GenerateOptions, nodes: &[String]) -> BTreeMap<String, String> {
    let last = nodes.len().saturating_sub(1);
    let width = nodes.first().map_or(2, |n| n.len() - 4);
    let node_list = format!("node[{:0width$}-{last:0width$}]", 0);
    let fixed: [(&str, String); 44] = [
        ("PWD", "/home/alice/proj/vision".into()),
        ("WANDB_RUN_GROUP", "sweep-0000".into()),
        ("HOME", "/home/alice".into()),
        ("USER", "alice".into()),
        ("LOGNAME", "alice".into()),
        ("SHELL", "/bin/bash".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("LC_ALL", "en_US.UTF-8".into()),
        ("TERM", "xterm-256color".into()),
        (
            "PATH",
            "/home/alice/.local/bin:/home/alice/miniconda3/envs/torch/bin:/home/alice/miniconda3/condabin:\
             /usr/local/cuda-12.4/bin:/opt/slurm/current/bin:/home/alice/.cargo/bin:\
             /opt/nvidia/hpc_sdk/Linux_x86_64/24.3/compilers/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:\
             /usr/bin:/sbin:/bin"
                .into(),
        ),
        (
            "LS_COLORS",
            "rs=0:di=01;34:ln=01;36:mh=00:pi=40;33:so=01;35:do=01;35:bd=40;33;01:cd=40;33;01:\
             or=40;31;01:mi=00:su=37;41:sg=30;43:ca=30;41:tw=30;42:ow=34;42:st=37;44:ex=01;32:\
             *.tar=01;31:*.tgz=01;31:*.zip=01;31:*.gz=01;31:*.jpg=01;35:*.png=01;35:*.mp4=01;35"
                .into(),
        ),
        ("BASH_FUNC_module%%", "() {  eval `/usr/bin/modulecmd bash $*`\n}".into()),
        (
            "LD_LIBRARY_PATH",
            "/usr/local/cuda-12.4/lib64:/usr/local/nccl/lib:/opt/nvidia/hpc_sdk/Linux_x86_64/24.3/math_libs/lib64:\
             /home/alice/miniconda3/envs/torch/lib"
                .into(),
        ),
        ("CUDA_HOME", "/usr/local/cuda-12.4".into()),
        ("CONDA_DEFAULT_ENV", "torch".into()),
        ("CONDA_PREFIX", "/home/alice/miniconda3/envs/torch".into()),
        ("CONDA_EXE", "/home/alice/miniconda3/bin/conda".into()),
        ("CONDA_PYTHON_EXE", "/home/alice/miniconda3/bin/python".into()),
        ("PYTHONPATH", "/home/alice/proj/src".into()),
        ("PYTHONUNBUFFERED", "1".into()),
        ("HF_HOME", "/scratch/alice/.cache/huggingface".into()),
        ("TORCH_HOME", "/scratch/alice/.cache/torch".into()),
        ("WANDB_MODE", "offline".into()),
        ("WANDB_PROJECT", "vision-sweeps".into()),
        ("WANDB_DIR", "/scratch/alice/wandb".into()),
        ("OMP_NUM_THREADS", "8".into()),
        ("NCCL_DEBUG", "WARN".into()),
        ("NCCL_IB_DISABLE", "0".into()),
        ("SLURM_JOB_ID", opts.lease_id.clone()),
        ("SLURM_JOB_NAME", "leaseq-synthetic".into()),
        ("SLURM_JOB_NODELIST", node_list),
        ("SLURM_SUBMIT_DIR", "/home/alice/proj".into()),
        ("SLURM_CLUSTER_NAME", "hpc".into()),
        ("SLURM_JOB_PARTITION", "gpu".into()),
        ("SLURM_CPUS_ON_NODE", "64".into()),
        ("SSH_CLIENT", "10.1.2.3 51514 22".into()),
        ("SSH_CONNECTION", "10.1.2.3 51514 10.1.9.20 22".into()),
        ("EDITOR", "vim".into()),
        ("LESS", "-R".into()),
        ("HISTCONTROL", "ignoredups:erasedups".into()),
        ("MAIL", "/var/spool/mail/alice".into()),
        ("MANPATH", "/usr/local/share/man:/usr/share/man".into()),
        ("MODULEPATH", "/etc/modulefiles:/usr/share/modulefiles".into()),
        ("XDG_SESSION_ID", "4211".into()),
    ];
    let mut env: BTreeMap<String, String> =
        fixed.into_iter().take(opts.env_vars).map(|(key, value)| (key.to_string(), value)).collect();
    for i in env.len()..opts.env_vars {
        env.insert(format!("LQ_SYNTH_{i:04}"), format!("value-{i}"));
    }
    env
}

fn script_name(command: &str) -> &str {
    command.split_whitespace().find(|word| word.ends_with(".py")).unwrap_or("train.py")
}

/// A few lines of plausible output; a running or failed task's stops mid-way.
fn write_stdout(out: &mut String, flavor: Flavor, spec: &TaskSpec, item: &Item, node: &str, rng: &mut Rng) {
    let finished = item.kind == Kind::Ran;
    match flavor {
        Flavor::Train => {
            let epochs = rng.u32(3..8);
            let shown = if finished && item.exit_code == 0 { epochs } else { rng.u32(1..epochs) };
            let _ = writeln!(out, "Host {node}, device cuda:0 (NVIDIA A100-SXM4-80GB)");
            let _ = writeln!(out, "Loaded 1281167 training samples, 50000 validation samples");
            let mut loss = 2.5 + rng.f64();
            let mut acc = 0.2 + rng.f64() * 0.1;
            for epoch in 1..=shown {
                loss *= 0.7 + rng.f64() * 0.2;
                acc += (0.95 - acc) * (0.2 + rng.f64() * 0.2);
                let speed = 700.0 + rng.f64() * 200.0;
                let _ = writeln!(
                    out,
                    "epoch {epoch:>3}/{epochs} | loss {loss:.4} | val_acc {acc:.4} | {speed:.1} samples/s"
                );
            }
            if finished && item.exit_code == 0 {
                let _ = writeln!(out, "Saved checkpoint to runs/{}/ckpt_best.pt", &spec.task_id);
            }
        }
        Flavor::Eval => {
            let _ = writeln!(out, "Evaluating {}", spec.command);
            for metric in ["top1", "top5", "nll"] {
                let _ = writeln!(out, "{metric:>5}: {:.4}", rng.f64());
            }
        }
        Flavor::Preprocess => {
            let files = rng.u32(100..5000);
            for part in 1..=4 {
                let _ = writeln!(out, "[{part}/4] wrote {} records", files * part);
            }
        }
        Flavor::Shell => {
            if spec.command.starts_with("echo") {
                let _ = writeln!(out, "résumé ✓");
            } else {
                let _ = writeln!(out, "step {}: ok", rng.u32(1..1000));
                let _ = writeln!(out, "完了");
            }
        }
    }
    if finished && item.exit_code == 0 {
        let _ = writeln!(out, "done in {}s", item.finished - item.started);
    }
}

/// Warnings, or the error that made the task fail.
fn write_stderr(out: &mut String, flavor: Flavor, spec: &TaskSpec, item: &Item, rng: &mut Rng) {
    if flavor == Flavor::Train && rng.bool() {
        let _ = writeln!(
            out,
            "/home/alice/miniconda3/envs/torch/lib/python3.11/site-packages/torch/utils/data/dataloader.py:557: \
             UserWarning: This DataLoader will create 16 worker processes in total."
        );
    }
    if item.kind != Kind::Ran || item.exit_code == 0 {
        return;
    }
    let script = script_name(&spec.command);
    match item.exit_code {
        1 if flavor != Flavor::Shell => {
            let errors = [
                "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total \
                 capacity of 79.15 GiB of which 1.21 GiB is free.",
                "KeyError: 'optimizer'",
                "FileNotFoundError: [Errno 2] No such file or directory: 'data/imagenet/train.lmdb'",
                "ValueError: Expected input batch_size (64) to match target batch_size (32).",
            ];
            let _ = writeln!(out, "Traceback (most recent call last):");
            let _ =
                writeln!(out, "  File \"{}/{script}\", line {}, in <module>", spec.cwd, rng.u32(200..400));
            let _ = writeln!(out, "    main(parse_args())");
            let _ = writeln!(out, "  File \"{}/{script}\", line {}, in main", spec.cwd, rng.u32(50..200));
            let _ = writeln!(out, "    loss.backward()");
            let _ = writeln!(out, "{}", errors[rng.usize(..errors.len())]);
        }
        1 => {
            let _ = writeln!(out, "error: step {} failed: résultat invalide", rng.u32(1..100));
        }
        2 => {
            let _ = writeln!(out, "usage: {script} [-h] --cfg CFG [--lr LR] [--seed SEED]");
            let _ = writeln!(out, "{script}: error: unrecognized arguments: --lr-sched cosine");
        }
        137 => {
            let _ = writeln!(
                out,
                "slurmstepd: error: Detected 1 oom_kill event in StepId={}.0. Some of the step tasks have \
                 been OOM Killed.",
                spec.lease_id
            );
            let _ = writeln!(
                out,
                "bash: line 1: {} Killed                  {}",
                rng.u32(1000..60000),
                spec.command
            );
        }
        124 => {
            let _ = writeln!(out, "timeout: sending signal TERM to command '{script}'");
        }
        139 => {
            let _ = writeln!(out, "Segmentation fault (core dumped)");
        }
        _ => {
            let _ = writeln!(out, "Terminated");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::model::{parse_entry, EntryKind, TaskName};
    use crate::paths::read_registry;

    const NOW: i64 = 1_736_400_000;

    fn small() -> GenerateOptions {
        GenerateOptions { tasks: 50, nodes: 4, now: NOW, seed: 7, ..GenerateOptions::default() }
    }

    /// Every file and directory under `root`, by relative path, with its
    /// bytes (None for directories).
    fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        let mut out = BTreeMap::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let relative = path.strip_prefix(root).unwrap().to_path_buf();
                if path.is_dir() {
                    out.insert(relative, None);
                    stack.push(path);
                } else {
                    out.insert(relative, Some(std::fs::read(&path).unwrap()));
                }
            }
        }
        out
    }

    fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .map(|path| {
                (path.file_name().unwrap().to_str().unwrap().to_string(), std::fs::read(&path).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    #[derive(Default)]
    struct Seen {
        done: usize,
        failed: usize,
        cancelled: usize,
        skipped: usize,
        running: usize,
        pending: usize,
        recent_completions: usize,
        non_ascii_commands: usize,
    }

    fn check_spec(spec: &TaskSpec, stem: &str, node: &str, lease: &str) {
        let name = TaskName::parse(stem).unwrap();
        assert_eq!(name.seq, spec.seq);
        assert_eq!(format!("{:016}", spec.seq), stem.split('_').next().unwrap());
        assert_eq!(name.task_id, spec.task_id);
        assert_eq!(name.uuid, spec.uuid);
        assert_eq!(spec.task_id, format!("T{}", &spec.uuid[..6]));
        assert_eq!(spec.created_at, (spec.seq / 1_000_000) as i64);
        assert!(spec.created_at <= NOW);
        assert_eq!(spec.target_node, node);
        assert_eq!(spec.lease_id, lease);
        assert!(spec.idempotency_key.starts_with(&format!("{lease}-{node}-")), "{}", spec.idempotency_key);
        assert_eq!(spec.env.len(), 40);
        assert_eq!(spec.env["PWD"], spec.cwd);
    }

    fn read_back(tree: &GeneratedTree) -> Seen {
        let run = RunDir(tree.run_dir.clone());
        let mut seen = Seen::default();
        for node in &tree.nodes {
            let mut previous_seq = 0;
            let mut first_live_seq = u64::MAX;
            for queue in [QueueDir::Claimed, QueueDir::Inbox] {
                for (name, bytes) in files_in(&run.queue(queue, node)) {
                    let (stem, kind) = parse_entry(&name).unwrap();
                    assert_eq!(kind, EntryKind::Spec);
                    let spec: TaskSpec = serde_json::from_slice(&bytes).unwrap();
                    check_spec(&spec, stem, node, &tree.lease_id);
                    assert!(spec.seq > previous_seq, "FIFO: claimed before inbox");
                    previous_seq = spec.seq;
                    first_live_seq = first_live_seq.min(spec.seq);
                    seen.non_ascii_commands += usize::from(!spec.command.is_ascii());
                    if queue == QueueDir::Claimed {
                        seen.running += 1;
                        assert!(run.logs().join(format!("{}.out", spec.task_id)).is_file());
                        assert!(run.logs().join(format!("{}.err", spec.task_id)).is_file());
                    } else {
                        seen.pending += 1;
                    }
                }
            }

            let done = files_in(&run.queue(QueueDir::Done, node));
            let mut specs = BTreeMap::new();
            let mut results = Vec::new();
            for (name, bytes) in &done {
                match parse_entry(name).unwrap() {
                    (stem, EntryKind::Spec) => {
                        let spec: TaskSpec = serde_json::from_slice(bytes).unwrap();
                        check_spec(&spec, stem, node, &tree.lease_id);
                        seen.non_ascii_commands += usize::from(!spec.command.is_ascii());
                        specs.insert(stem.to_string(), spec);
                    }
                    (stem, EntryKind::Result(kind)) => {
                        let result: TaskResult = serde_json::from_slice(bytes).unwrap();
                        results.push((stem.to_string(), kind, result));
                    }
                }
            }
            let keys: BTreeSet<&str> = specs.values().map(|s| s.idempotency_key.as_str()).collect();
            for (stem, kind, result) in &results {
                assert_eq!(result.node, *node);
                assert!(result.finished_at <= NOW);
                assert!(result.started_at <= result.finished_at);
                let seq = TaskName::parse(stem).unwrap().seq;
                assert!(seq < first_live_seq, "FIFO: done before claimed and inbox");
                match kind {
                    ResultKind::Cancelled => {
                        seen.cancelled += 1;
                        assert!(!specs.contains_key(stem), "a cancelled task has no spec");
                        assert_eq!(result.exit_code, -1);
                        assert!(result.stdout.is_empty() && result.stderr.is_empty());
                        assert!((seq / 1_000_000) as i64 <= result.started_at);
                    }
                    ResultKind::Skipped => {
                        seen.skipped += 1;
                        let spec = &specs[stem];
                        assert_eq!(result.idempotency_key, spec.idempotency_key);
                        let original = results.iter().any(|(other, kind, r)| {
                            *kind == ResultKind::Ran
                                && other < stem
                                && r.idempotency_key == result.idempotency_key
                        });
                        assert!(original, "a skipped task duplicates the key of an earlier one");
                        assert!(result.stdout.is_empty());
                    }
                    ResultKind::Ran => {
                        seen.done += 1;
                        seen.failed += usize::from(result.exit_code != 0);
                        let spec = &specs[stem];
                        assert_eq!(result.task_id, spec.task_id);
                        assert_eq!(result.idempotency_key, spec.idempotency_key);
                        assert!(spec.created_at < result.started_at);
                        assert!(result.started_at < result.finished_at);
                        assert_eq!(result.stdout, format!("logs/{}.out", spec.task_id));
                        assert_eq!(result.stderr, format!("logs/{}.err", spec.task_id));
                        assert_eq!(result.command.as_deref(), Some(spec.command.as_str()));
                        assert_eq!(result.cwd.as_deref(), Some(spec.cwd.as_str()));
                        assert_eq!(result.gpus_requested, Some(spec.gpus));
                        let assigned = result.gpus_assigned.as_deref().unwrap();
                        assert_eq!(assigned.split(',').filter(|s| !s.is_empty()).count(), spec.gpus as usize);
                        seen.recent_completions += usize::from(result.finished_at > NOW - HOUR);
                    }
                }
            }
            // Every spec in done has a result, and the runner's timeline is
            // sequential in FIFO order.
            let ran: BTreeMap<&str, &TaskResult> = results
                .iter()
                .filter(|(_, kind, _)| *kind == ResultKind::Ran)
                .map(|(stem, _, r)| (stem.as_str(), r))
                .collect();
            for stem in specs.keys() {
                assert!(results.iter().any(|(s, _, _)| s == stem), "spec without result: {stem}");
            }
            for pair in ran.values().collect::<Vec<_>>().windows(2) {
                assert!(pair[0].finished_at <= pair[1].started_at);
            }
            assert!(keys.len() <= specs.len());
        }
        seen
    }

    #[test]
    fn small_tree_reads_back_with_the_model_types() {
        let dir = tempfile::tempdir().unwrap();
        let opts = small();
        let tree = generate(dir.path(), &opts).unwrap();
        assert_eq!(tree.nodes, ["node00", "node01", "node02", "node03"]);
        assert_eq!(tree.stale_node.as_deref(), Some("node03"));
        assert_eq!(tree.run_dir, dir.path().join("runs/99887766"));
        assert_eq!(tree.done, 50);
        assert_eq!((tree.running, tree.pending), (3, 12));
        assert!(tree.cancelled >= 1 && tree.skipped >= 1);

        let seen = read_back(&tree);
        assert_eq!(seen.done, tree.done);
        assert_eq!(seen.failed, tree.failed);
        assert_eq!(seen.cancelled, tree.cancelled);
        assert_eq!(seen.skipped, tree.skipped);
        assert_eq!(seen.running, tree.running);
        assert_eq!(seen.pending, tree.pending);
        assert!(seen.recent_completions > 0, "the last hour has completions");

        let registry = read_registry(&dir.path().join("index.json")).unwrap();
        assert_eq!(registry.default_lease.as_deref(), Some("99887766"));
        assert!(registry.leases.contains_key("99887766"));
        let meta: LeaseMeta =
            serde_json::from_slice(&std::fs::read(tree.run_dir.join("meta/lease.json")).unwrap()).unwrap();
        assert!(matches!(meta, LeaseMeta::Slurm { ref lease_id, .. } if lease_id == "99887766"));
    }

    #[test]
    fn exactly_one_stale_heartbeat_and_runner_dirs_exist() {
        let dir = tempfile::tempdir().unwrap();
        let tree = generate(dir.path(), &small()).unwrap();
        let run = RunDir(tree.run_dir.clone());
        let heartbeats = files_in(&run.hb_dir());
        assert_eq!(heartbeats.len(), tree.nodes.len());
        let mut stale = Vec::new();
        for (name, bytes) in heartbeats {
            let hb: Heartbeat = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(name, format!("{}.json", hb.node));
            if NOW - hb.ts > 60 {
                assert_eq!(hb.running_task_id, None);
                stale.push(hb.node);
            } else {
                assert_eq!(hb.ts, NOW - 2);
                assert!(hb.running_task_id.is_some());
                assert_eq!(hb.pending_estimate, 3);
            }
        }
        assert_eq!(stale, ["node03"]);
        for node in &tree.nodes {
            for dir in ["hb", "logs", "ack", "events", "inbox", "claimed", "done"] {
                assert!(run.0.join(dir).join(node).is_dir(), "{dir}/{node}");
            }
            assert_eq!(std::fs::read_dir(run.0.join("hb").join(node)).unwrap().count(), 0);
        }
        assert!(std::fs::read_dir(run.queue(QueueDir::Claimed, "node03")).unwrap().next().is_none());
    }

    #[test]
    fn same_seed_same_tree_other_seed_other_tree() {
        let (a, b, c) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        generate(a.path(), &small()).unwrap();
        generate(b.path(), &small()).unwrap();
        generate(c.path(), &GenerateOptions { seed: 8, ..small() }).unwrap();
        let first = snapshot(a.path());
        assert!(first.len() > 150);
        assert!(first == snapshot(b.path()), "same seed, same files and bytes");
        assert!(first != snapshot(c.path()));
    }

    #[test]
    fn logs_only_for_the_newest_and_the_running() {
        let dir = tempfile::tempdir().unwrap();
        let opts = GenerateOptions { tasks: 300, logs_for_latest: 10, ..small() };
        let tree = generate(dir.path(), &opts).unwrap();
        let logs = files_in(&RunDir(tree.run_dir.clone()).logs());
        let outs = logs.iter().filter(|(name, _)| name.ends_with(".out")).count();
        assert_eq!(outs, 10 + tree.running);
        assert_eq!(logs.len(), 2 * outs);
        assert!(logs.iter().any(|(_, text)| String::from_utf8_lossy(text).contains("Traceback")
            || String::from_utf8_lossy(text).contains("Killed")
            || tree.failed == 0));
        let seen = read_back(&tree);
        assert!(seen.non_ascii_commands > 0, "some commands are not ASCII");
        assert!(seen.recent_completions >= 4);
    }

    #[test]
    fn spec_size_is_like_the_real_tools() {
        let dir = tempfile::tempdir().unwrap();
        let tree = generate(dir.path(), &small()).unwrap();
        let specs = files_in(&RunDir(tree.run_dir.clone()).queue(QueueDir::Inbox, "node00"));
        let average = specs.iter().map(|(_, bytes)| bytes.len()).sum::<usize>() / specs.len();
        assert!((1800..2600).contains(&average), "{average}");
    }

    #[test]
    fn one_node_has_no_stale_node_and_empty_options_work() {
        let dir = tempfile::tempdir().unwrap();
        let tree = generate(dir.path(), &GenerateOptions { nodes: 1, ..small() }).unwrap();
        assert_eq!(tree.stale_node, None);
        assert_eq!(read_back(&tree).done, 50);

        let dir = tempfile::tempdir().unwrap();
        let opts =
            GenerateOptions { tasks: 0, pending_per_node: 0, running_per_node: 0, env_vars: 0, ..small() };
        let tree = generate(dir.path(), &opts).unwrap();
        assert_eq!((tree.done, tree.cancelled, tree.skipped, tree.pending, tree.running), (0, 0, 0, 0, 0));

        assert!(generate(dir.path(), &GenerateOptions { nodes: 0, ..small() }).is_err());

        let dir = tempfile::tempdir().unwrap();
        let tree =
            generate(dir.path(), &GenerateOptions { lease_id: "local:myhost".into(), ..small() }).unwrap();
        assert_eq!(tree.run_dir, dir.path().join("runs/local:myhost"));
        let meta: LeaseMeta =
            serde_json::from_slice(&std::fs::read(tree.run_dir.join("meta/lease.json")).unwrap()).unwrap();
        assert!(matches!(meta, LeaseMeta::Local { .. }));
        assert_eq!(node_names(101)[7], "node007");
    }

    /// Run with `cargo test --release --lib sim::generate -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing: 10^5 tasks"]
    fn time_100k_tasks_over_16_nodes() {
        let dir = tempfile::tempdir().unwrap();
        let opts = GenerateOptions { tasks: 100_000, nodes: 16, ..GenerateOptions::default() };
        let start = std::time::Instant::now();
        let tree = generate(dir.path(), &opts).unwrap();
        let elapsed = start.elapsed();
        println!(
            "generated {} done + {} cancelled + {} skipped + {} running + {} pending over 16 nodes in {:.2?}",
            tree.done, tree.cancelled, tree.skipped, tree.running, tree.pending, elapsed
        );
    }
}
