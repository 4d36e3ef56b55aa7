//! Invariant checks driven by arbitrary bytes: the bodies of the fuzz
//! targets (`fuzz/fuzz_targets/*.rs` are one-liners calling these), also
//! replayed on stable by `tests/fuzz_seeds.rs` and run over pseudo-random
//! inputs by the tests below.
//!
//! Owns: the decoding of bytes into operations (no `arbitrary` dependency
//! in the library), the driver that runs the engine's real core
//! ([`EngineCore`], the one the dashboard and the one-shot commands run)
//! against the simulated NFS of [`crate::sim::nfs`], executing and
//! delivering its jobs in the order the input picks, into a real
//! [`Index`], and the invariants, which panic with a message naming the step, the task and
//! the recent operations. Must not: touch the real filesystem.
//!
//! # `check_nfs_model` input format
//!
//! Byte 0 is the mode: bit 0 set = lagging (perturbed listings, moves not
//! bounded), clear = consistent (listings show the truth; a task moves at
//! most once per scanning round of its node). Nodes: `1 + (byte0 >> 1) % 3`.
//! Byte 1: bit `i` set = node `i` has no runner at the start (no heartbeat).
//! Then operations until the bytes run out (missing argument bytes read as
//! 0); see [`Op::decode_from`]. At the end the listings settle and the index
//! must agree with the truth.

use std::collections::BTreeSet;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::index::{
    DirOutcome, Event, Index, Order, ReadStatus, Round, StateSet, TaskId, TaskState, ViewSpec,
};
use crate::model::{
    entry_file_name, parse_entry, CancelRequest, Heartbeat, LeaseEntry, LeaseMeta, LeaseRegistry,
    LocalLeaseMeta, RunnerEvent, SlurmLeaseMeta, TaskName, TaskResult, TaskSpec,
};
use crate::paths::{parse_ui_config, QueueDir, UiConfig};
use std::time::Duration;

use crate::cache::FactsCache;
use crate::engine::core::{CoreConfig, EngineCore, Input as CoreInput, Outputs, Reads};
use crate::engine::jobs::{Completion, Job, Part};
use crate::scan::ROUND_ORDER;
use crate::sim::nfs::{NfsModel, Perturbation, HISTORY};
use std::sync::Arc;

/// `ui.hb_stale_s` of the simulated lease.
pub const STALE_S: u64 = 60;
/// Submissions beyond this many tasks are ignored (keeps executions fast).
pub const MAX_TASKS: usize = 200;
/// Operations shown in a failure message.
const TRAIL: usize = 24;
const START: i64 = 1_736_381_200;

// ----- decoding ------------------------------------------------------------

/// Bytes read front to back; reads past the end give 0.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Input<'a> {
        Input { data, pos: 0 }
    }

    fn next(&mut self) -> Option<u8> {
        let byte = self.data.get(self.pos).copied();
        self.pos += 1;
        byte
    }

    fn byte(&mut self) -> u8 {
        self.next().unwrap_or(0)
    }
}

/// How a run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setup {
    /// Perturbed, lagging listings and unbounded moves.
    pub lagging: bool,
    /// 1 to 3.
    pub nodes: u8,
    /// Bit `i`: node `i`'s runner has not started (no heartbeat file).
    pub no_runner: u8,
    /// The core fills a warm-start cache as it reads; after settling, a
    /// second index is built from that cache plus the listings (a
    /// relaunch) and must agree with the truth too.
    pub cache: bool,
}

impl Setup {
    fn decode(input: &mut Input) -> Option<Setup> {
        let mode = input.next()?;
        let no_runner = input.byte();
        let (lagging, cache) = (mode & 1 != 0, mode & 0x80 != 0);
        Some(Setup { lagging, nodes: 1 + ((mode & 0x7f) >> 1) % 3, no_runner, cache })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.lagging) | (self.nodes.clamp(1, 3) - 1) << 1 | u8::from(self.cache) << 7);
        out.push(self.no_runner);
    }
}

/// A protocol move, at top level or between the listings of a round.
/// `node` is taken modulo the node count; `pick` chooses among the tasks
/// the move applies to (modulo their number, in FIFO order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Move {
    Submit {
        node: u8,
    },
    Claim {
        node: u8,
        pick: u8,
    },
    /// First step of finishing: `<stem>.result.json` with this exit code.
    WriteResult {
        node: u8,
        pick: u8,
        exit_code: i32,
    },
    /// Second step of finishing: the spec goes claimed -> done.
    ArchiveSpec {
        node: u8,
        pick: u8,
    },
    Cancel {
        node: u8,
        pick: u8,
    },
    Skip {
        node: u8,
        pick: u8,
    },
    Crash {
        node: u8,
    },
    /// Runner restart: zombie recovery (claimed -> inbox), heartbeat.
    Restart {
        node: u8,
    },
    DeleteClaimed {
        node: u8,
        pick: u8,
    },
    /// Adds or removes a non-task file (`dir` is an index into `QueueDir::ALL`).
    Stray {
        node: u8,
        dir: u8,
        pick: u8,
    },
}

const MOVE_KINDS: u8 = 10;

/// Exit codes from one byte: even bytes succeed, odd bytes fail with 1..=128.
fn exit_code_of(byte: u8) -> i32 {
    if byte & 1 == 0 {
        0
    } else {
        i32::from(byte >> 1) + 1
    }
}

fn exit_code_byte(code: i32) -> u8 {
    if code == 0 {
        0
    } else {
        ((code.clamp(1, 128) - 1) as u8) << 1 | 1
    }
}

impl Move {
    fn decode(kind: u8, input: &mut Input) -> Move {
        match kind % MOVE_KINDS {
            0 => Move::Submit { node: input.byte() },
            1 => Move::Claim { node: input.byte(), pick: input.byte() },
            2 => Move::WriteResult {
                node: input.byte(),
                pick: input.byte(),
                exit_code: exit_code_of(input.byte()),
            },
            3 => Move::ArchiveSpec { node: input.byte(), pick: input.byte() },
            4 => Move::Cancel { node: input.byte(), pick: input.byte() },
            5 => Move::Skip { node: input.byte(), pick: input.byte() },
            6 => Move::Crash { node: input.byte() },
            7 => Move::Restart { node: input.byte() },
            8 => Move::DeleteClaimed { node: input.byte(), pick: input.byte() },
            _ => Move::Stray { node: input.byte(), dir: input.byte(), pick: input.byte() },
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match *self {
            Move::Submit { node } => out.extend([0, node]),
            Move::Claim { node, pick } => out.extend([1, node, pick]),
            Move::WriteResult { node, pick, exit_code } => {
                out.extend([2, node, pick, exit_code_byte(exit_code)])
            }
            Move::ArchiveSpec { node, pick } => out.extend([3, node, pick]),
            Move::Cancel { node, pick } => out.extend([4, node, pick]),
            Move::Skip { node, pick } => out.extend([5, node, pick]),
            Move::Crash { node } => out.extend([6, node]),
            Move::Restart { node } => out.extend([7, node]),
            Move::DeleteClaimed { node, pick } => out.extend([8, node, pick]),
            Move::Stray { node, dir, pick } => out.extend([9, node, dir, pick]),
        }
    }
}

/// One step of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Move(Move),
    /// Time passes, for the runners (heartbeats) and the engine core
    /// (whatever falls due is asked for, and waits to be executed).
    Advance {
        seconds: u8,
    },
    /// One whole round of one node, as the core schedules it: what the
    /// node already has in flight is finished first, then its next round
    /// (waiting for it to fall due) is listed and delivered, `between[i]`
    /// being the moves made just before the `i`-th listing (in
    /// [`ROUND_ORDER`]). With `refresh`, a "refresh now" comes first, so
    /// the round ignores directory stamps.
    Round {
        node: u8,
        refresh: bool,
        between: Vec<Vec<Move>>,
    },
    /// The core's heartbeat read, executed and delivered.
    Heartbeats,
    /// Read jobs executed and delivered: up to `limit` of them (0: until
    /// the core asks for no more).
    Hydrate {
        limit: u8,
    },
    /// A new perturbation of the listings (consistent mode keeps only the
    /// reordering and the duplicates).
    Perturb {
        a: u8,
        b: u8,
        c: u8,
        seed: u8,
    },
    /// Lagging mode only: one directory lags exactly `back` versions (None:
    /// back to the perturbation's random lag).
    Pin {
        node: u8,
        dir: u8,
        back: Option<u8>,
    },
    /// The UI's "refresh now".
    Refresh,
    /// The UI's "pause auto-refresh" on or off.
    Pause {
        on: bool,
    },
    /// A task (by position among those listed) is on screen.
    Visible {
        pick: u8,
    },
    /// One job the core asked for is executed (the moves first), its
    /// completion kept back until delivered: completions of different
    /// jobs arrive in any order.
    Execute {
        pick: u8,
        moves: Vec<Move>,
    },
    /// One executed job's completion reaches the core.
    Deliver {
        pick: u8,
    },
    /// What the dashboard's keys do, through the same control functions
    /// and the same filesystem seam, then a refresh (as the UI asks after
    /// an action): `kind` 0 cancel, 1 retry, 2 pause the node, 3 resume it;
    /// `pick` chooses among the node's tasks.
    Act {
        kind: u8,
        node: u8,
        pick: u8,
    },
}

const OP_KINDS: u8 = 23;

impl Op {
    /// Decodes a whole sequence of operations (no setup bytes in front).
    /// Each starts with an opcode byte taken modulo 22: 0-9 are moves (see
    /// [`Move`]; then their argument bytes), 10 advance, 11 a round (node,
    /// flags, then per listing a count modulo 4 and that many moves), 12
    /// heartbeats, 13 hydrate, 14 perturb, 15 pin, 16 refresh, 17 pause,
    /// 18 visible, 19 execute (pick, a count modulo 4, moves), 20 deliver,
    /// 21 a round with nothing in between, 22 act (kind, node, pick).
    pub fn decode_from(data: &[u8]) -> Vec<Op> {
        let mut input = Input::new(data);
        std::iter::from_fn(|| Op::decode(&mut input)).collect()
    }

    fn moves(input: &mut Input) -> Vec<Move> {
        let count = input.byte() % 4;
        (0..count)
            .map(|_| {
                let kind = input.byte();
                Move::decode(kind, input)
            })
            .collect()
    }

    fn decode(input: &mut Input) -> Option<Op> {
        let code = input.next()? % OP_KINDS;
        Some(match code {
            0..=9 => Op::Move(Move::decode(code, input)),
            10 => Op::Advance { seconds: input.byte() },
            11 => {
                let node = input.byte();
                let refresh = input.byte() & 1 != 0;
                let between = ROUND_ORDER.iter().map(|_| Op::moves(input)).collect();
                Op::Round { node, refresh, between }
            }
            12 => Op::Heartbeats,
            13 => Op::Hydrate { limit: input.byte() },
            14 => Op::Perturb { a: input.byte(), b: input.byte(), c: input.byte(), seed: input.byte() },
            15 => {
                let (node, dir, back) = (input.byte(), input.byte(), input.byte());
                Op::Pin { node, dir, back: back.checked_sub(1).map(|b| b % HISTORY as u8) }
            }
            16 => Op::Refresh,
            17 => Op::Pause { on: input.byte() & 1 != 0 },
            18 => Op::Visible { pick: input.byte() },
            19 => Op::Execute { pick: input.byte(), moves: Op::moves(input) },
            20 => Op::Deliver { pick: input.byte() },
            22 => Op::Act { kind: input.byte() % 4, node: input.byte(), pick: input.byte() },
            _ => {
                Op::Round { node: input.byte(), refresh: false, between: vec![Vec::new(); ROUND_ORDER.len()] }
            }
        })
    }

    fn encode_moves(moves: &[Move], out: &mut Vec<u8>) {
        assert!(moves.len() < 4, "at most 3 moves at once");
        out.push(moves.len() as u8);
        for m in moves {
            m.encode(out);
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Op::Move(m) => m.encode(out),
            Op::Advance { seconds } => out.extend([10, *seconds]),
            Op::Round { node, refresh, between } => {
                out.extend([11, *node, u8::from(*refresh)]);
                assert!(between.len() <= ROUND_ORDER.len(), "one move list per listing at most");
                for at in 0..ROUND_ORDER.len() {
                    Op::encode_moves(between.get(at).map_or(&[][..], Vec::as_slice), out);
                }
            }
            Op::Heartbeats => out.push(12),
            Op::Hydrate { limit } => out.extend([13, *limit]),
            Op::Perturb { a, b, c, seed } => out.extend([14, *a, *b, *c, *seed]),
            Op::Pin { node, dir, back } => out.extend([15, *node, *dir, back.map_or(0, |b| b + 1)]),
            Op::Refresh => out.push(16),
            Op::Pause { on } => out.extend([17, u8::from(*on)]),
            Op::Visible { pick } => out.extend([18, *pick]),
            Op::Execute { pick, moves } => {
                out.extend([19, *pick]);
                Op::encode_moves(moves, out);
            }
            Op::Deliver { pick } => out.extend([20, *pick]),
            Op::Act { kind, node, pick } => out.extend([22, *kind, *node, *pick]),
        }
    }
}

/// The bytes `check_nfs_model` decodes into this setup and these operations.
pub fn encode(setup: Setup, ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    setup.encode(&mut out);
    for op in ops {
        op.encode(&mut out);
    }
    out
}

// ----- the NFS model check ---------------------------------------------------

/// After settling: every task with files is in the index in its true
/// state with its command known, and the index has no task the model never made.
fn agrees_with_truth(model: &NfsModel, index: &Index) -> Result<(), String> {
    for stem in model.stems() {
        let truth = model.truth_state(&stem);
        match index.find(&stem) {
            None if model.has_files(&stem) => {
                return Err(format!("{stem} has files ({truth}) but the index never saw it"))
            }
            None => {}
            Some(id) => {
                let task = index.task(id).expect("found ids exist");
                if task.state != truth {
                    return Err(format!(
                            "after settling, {stem} is {} but really {truth} (presence {:?}, exit {:?}, model {:?} {:?})",
                            task.state,
                            task.presence,
                            task.exit_code(),
                            model.spec_location(&stem),
                            model.result_of(&stem),
                        ));
                }
                // The command comes from the spec, or from a result that
                // repeats it (then the spec is not read).
                let unknown = task.command().is_none() && task.spec_read != ReadStatus::Failed;
                if model.spec_location(&stem).is_some() && (task.spec_owed() || unknown) {
                    return Err(format!("{stem}: its spec is there and its command was never read {task:?}"));
                }
            }
        }
    }
    for id in 0..index.id_bound() {
        let Some(task) = index.task(id) else { continue };
        let name = &task.name;
        if model.node_of(&name.text()).is_none() {
            return Err(format!("the index has {name}, which the model never made"));
        }
    }
    Ok(())
}

/// Runs the operations the bytes describe against the simulated NFS and
/// the engine's real core (its jobs executed against the model in the
/// order the operations say) into a real [`Index`], checking the
/// invariants after every delivery; then lets the listings settle and
/// checks that the index agrees with the truth. Panics on a violation.
pub fn check_nfs_model(data: &[u8]) {
    let mut input = Input::new(data);
    let Some(setup) = Setup::decode(&mut input) else { return };
    let mut check = NfsCheck::new(setup);
    while let Some(op) = Op::decode(&mut input) {
        check.apply(&op);
    }
    check.settle_and_compare();
}

/// Jobs the core asked for at once, at most (beyond, the run is cut short:
/// the core must never pile work up).
const MAX_OUTSTANDING: usize = 64;
/// Steps a macro operation (a round, the heartbeats) may take.
const MACRO_STEPS: usize = 16;

/// The driver of [`check_nfs_model`], usable step by step in tests.
pub struct NfsCheck {
    model: NfsModel,
    index: Index,
    core: EngineCore,
    now: Duration,
    /// Jobs asked for, not yet executed, oldest first.
    pending: Vec<Job>,
    /// Executed, not yet delivered.
    completed: Vec<Completion>,
    paused: bool,
    /// Per node: the step of a "refresh now" not yet followed by a listing
    /// of that node that started after it.
    refresh_owed: Vec<Option<usize>>,
    consistent: bool,
    /// Every stem a listing ever showed.
    seen: BTreeSet<String>,
    /// States at the last check, by task id.
    states: Vec<TaskState>,
    max_tasks: usize,
    step: usize,
    trail: Vec<Op>,
    /// Events were folded since the views were last checked.
    folded_since_check: bool,
    cache: Option<CheckCache>,
}

/// A warm-start cache in a directory of its own (the facts file, the saved
/// `done/` listings, the lock), removed with the check.
struct CheckCache {
    cache: Arc<FactsCache>,
    dir: std::path::PathBuf,
}

impl CheckCache {
    fn new() -> CheckCache {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("leaseq-check-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for the check's cache");
        CheckCache { cache: Arc::new(FactsCache::at(dir.join("facts.bin"), "the NFS model".into())), dir }
    }
}

impl Drop for CheckCache {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl NfsCheck {
    pub fn new(setup: Setup) -> NfsCheck {
        let names = ["nodeA", "nodeB", "nodeC"];
        let nodes = &names[..usize::from(setup.nodes.clamp(1, 3))];
        let model = NfsModel::new(nodes, STALE_S, START);
        if setup.lagging {
            model.set_move_bound(false);
            let default = Perturbation {
                max_lag: 3,
                reorder: true,
                missing: 16,
                duplicate: 16,
                fail: 4,
                ..Perturbation::NONE
            };
            model.set_perturbation(default, 1);
        }
        for node in 0..nodes.len() {
            if setup.no_runner & (1 << node) == 0 {
                model.restart_runner(node);
            }
        }
        // Small read batches, two in flight: batching and out-of-order
        // read completions get exercised with a few tasks.
        // Every idle `done/` listing is parked: a parked one must diff as a
        // held one does.
        let config =
            CoreConfig { read_batch: 4, reads_in_flight: 2, park_listings_from: 1, ..CoreConfig::watch(2) };
        let cache = setup.cache.then(CheckCache::new);
        let core = EngineCore::new(model.run_dir().clone(), config)
            .with_cache(Ok(cache.as_ref().map(|c| c.cache.clone())));
        let mut index = Index::new(STALE_S);
        index.apply(Event::Tick(START));
        let mut check = NfsCheck {
            model,
            index,
            core,
            now: Duration::ZERO,
            pending: Vec::new(),
            completed: Vec::new(),
            paused: false,
            refresh_owed: vec![None; nodes.len()],
            consistent: !setup.lagging,
            seen: BTreeSet::new(),
            states: Vec::new(),
            max_tasks: 0,
            step: 0,
            trail: Vec::new(),
            folded_since_check: false,
            cache,
        };
        // The node list first, as the dashboard starts.
        check.feed(CoreInput::Tick);
        if let Some(at) = check.pending.iter().position(|j| matches!(j, Job::Discover)) {
            check.execute(at, &[]);
            check.deliver(check.completed.len() - 1);
        }
        check
    }

    pub fn model(&self) -> &NfsModel {
        &self.model
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// The index's state of a task, if it was ever listed.
    pub fn state_of(&self, stem: &str) -> Option<TaskState> {
        self.index.find(stem).and_then(|id| self.index.task(id)).map(|t| t.state)
    }

    fn node(&self, byte: u8) -> usize {
        usize::from(byte) % self.model.node_count()
    }

    fn node_name(&self, node: usize) -> String {
        self.model.node_names()[node].clone()
    }

    pub fn apply(&mut self, op: &Op) {
        self.step += 1;
        if self.trail.len() == TRAIL {
            self.trail.remove(0);
        }
        self.trail.push(op.clone());
        match op {
            Op::Move(m) => apply_move(&self.model, m),
            Op::Advance { seconds } => {
                self.model.advance(i64::from(*seconds));
                self.now += Duration::from_secs(u64::from(*seconds));
                self.feed(CoreInput::Tick);
            }
            Op::Round { node, refresh, between } => {
                if *refresh {
                    self.refresh();
                }
                self.round(self.node(*node), between);
            }
            Op::Heartbeats => self.heartbeats(),
            Op::Hydrate { limit } => self.hydrate(if *limit == 0 { usize::MAX } else { usize::from(*limit) }),
            Op::Perturb { a, b, c, seed } => {
                let mut p = Perturbation::from_bytes(*a, *b, *c);
                if self.consistent {
                    // Order and duplicates do not change what a listing says.
                    p = Perturbation { reorder: p.reorder, duplicate: p.duplicate, ..Perturbation::NONE };
                }
                self.model.set_perturbation(p, u64::from(*seed));
            }
            Op::Pin { node, dir, back } => {
                if !self.consistent {
                    let dir = QueueDir::ALL[usize::from(*dir) % 3];
                    self.model.pin_lag(self.node(*node), dir, *back);
                }
            }
            Op::Refresh => self.refresh(),
            Op::Pause { on } => self.pause(*on),
            Op::Visible { pick } => {
                let count = self.index.id_bound() as usize;
                if count > 0 {
                    let id = (usize::from(*pick) % count) as TaskId;
                    self.feed(CoreInput::Visible(vec![id]));
                }
            }
            Op::Execute { pick, moves } => {
                if !self.pending.is_empty() {
                    self.execute(usize::from(*pick) % self.pending.len(), moves);
                }
            }
            Op::Deliver { pick } => {
                if !self.completed.is_empty() {
                    self.deliver(usize::from(*pick) % self.completed.len());
                }
            }
            Op::Act { kind, node, pick } => self.act(*kind, self.node(*node), *pick),
        }
        // After each operation rather than each delivery: a round's two
        // parts are one step, and the checks are most of an execution.
        if std::mem::take(&mut self.folded_since_check) {
            self.check_views();
        }
    }

    /// An action as the dashboard performs it (failures are fine: a task
    /// that moved meanwhile, a flaky write; they must leave nothing wrong).
    fn act(&mut self, kind: u8, node: usize, pick: u8) {
        let name = self.node_name(node);
        let run = self.model.run_dir().clone();
        let model = &self.model;
        let stems: Vec<String> =
            model.stems().into_iter().filter(|s| model.node_of(s) == Some(node)).collect();
        let picked = (!stems.is_empty()).then(|| stems[usize::from(pick) % stems.len()].clone());
        if model.task_count() >= MAX_TASKS && kind == 1 {
            return;
        }
        let _ = match (kind, picked) {
            (0, Some(stem)) => {
                let task_id = TaskName::parse(&stem).map_or(String::new(), |n| n.task_id.to_string());
                crate::control::cancel(model, &run, &name, &stem, &task_id).map(|_| ())
            }
            (1, Some(stem)) => crate::control::retry(model, &run, &name, &stem).map(|_| ()),
            (2, _) => crate::control::pause(model, &run, &name),
            (3, _) => crate::control::resume(model, &run, &name),
            _ => Ok(()),
        };
        self.refresh();
    }

    fn refresh(&mut self) {
        if !self.paused {
            self.refresh_owed.iter_mut().for_each(|owed| *owed = Some(self.step));
        }
        self.feed(CoreInput::Refresh);
    }

    fn pause(&mut self, on: bool) {
        self.paused = on;
        if on {
            // A pause supersedes a refresh not yet acted on; unpausing is one.
            self.refresh_owed.iter_mut().for_each(|owed| *owed = None);
        } else {
            self.refresh_owed.iter_mut().for_each(|owed| *owed = Some(self.step));
        }
        self.feed(CoreInput::SetPaused(on));
    }

    /// One input to the core; its events are folded at once (the dashboard
    /// folds on another thread, which only delays them), its jobs queued.
    fn feed(&mut self, input: CoreInput) {
        let delivered = matches!(input, CoreInput::Done(_));
        let out = self.core.on(self.now, input, &self.index);
        self.take(out);
        if delivered {
            // As the runtime does once the fold has the events.
            let out = self.core.on(self.now, CoreInput::IndexChanged, &self.index);
            self.take(out);
        }
    }

    fn take(&mut self, out: Outputs) {
        let folded = !out.events.is_empty();
        for event in out.events {
            self.fold(event);
        }
        for job in out.jobs {
            if let Job::List(list) = &job {
                if list.part() == Part::Live {
                    let node = self.model.node_index(list.node());
                    if let Some(owed) = node.and_then(|n| self.refresh_owed.get_mut(n)) {
                        *owed = None;
                    }
                }
            }
            self.pending.push(job);
        }
        if self.pending.len() + self.completed.len() > MAX_OUTSTANDING {
            self.fail(format!("{} jobs outstanding: the core piles work up", self.pending.len()));
        }
        if folded {
            self.check_invariants();
            self.folded_since_check = true;
        }
    }

    fn fold(&mut self, event: Event) {
        match &event {
            Event::PartialRound(round) | Event::Round(round) => self.note_seen(round),
            Event::ResultRead { name, kind, outcome: Ok(result), .. }
                if self.model.result_of(&name.text()) != Some((*kind, result.exit_code)) =>
            {
                self.fail(format!("{name}: result {kind:?} {} disagrees with the model", result.exit_code))
            }
            Event::ResultRead { name, outcome: Err(problem), .. } => {
                self.fail(format!("{name}: a listed result cannot be read: {problem}"))
            }
            _ => {}
        }
        self.index.apply(event);
    }

    /// Executes pending job `at` against the model; `before[i]` are moves
    /// made just before its `i`-th listing (the moves of a read or other
    /// job all come first).
    fn execute_with(&mut self, at: usize, before: &[Vec<Move>]) {
        let job = self.pending.remove(at);
        let model = &self.model;
        let completion = match job {
            Job::List(list) => {
                if list.part() == Part::Live {
                    if let Some(node) = model.node_index(list.node()) {
                        model.begin_round(node);
                    }
                }
                let mut listing = 0;
                list.run_with(model, &mut |_dir| {
                    for m in before.get(listing).into_iter().flatten() {
                        apply_move(model, m);
                    }
                    listing += 1;
                })
            }
            other => {
                for m in before.iter().flatten() {
                    apply_move(model, m);
                }
                other.execute(model, model.run_dir(), model.now())
            }
        };
        self.completed.push(completion);
    }

    fn execute(&mut self, at: usize, moves: &[Move]) {
        self.execute_with(at, &[moves.to_vec()]);
    }

    fn deliver(&mut self, at: usize) {
        let completion = self.completed.remove(at);
        self.feed(CoreInput::Done(completion));
    }

    fn is_list_of(job: &Job, node: &str) -> Option<Part> {
        match job {
            Job::List(list) if list.node() == node => Some(list.part()),
            _ => None,
        }
    }

    /// A whole round of `node` (see [`Op::Round`]).
    fn round(&mut self, node: usize, between: &[Vec<Move>]) {
        let name = self.node_name(node);
        let live = between.len().min(ROUND_ORDER.len() - 1);
        let mut listed_live = false;
        for _ in 0..MACRO_STEPS {
            let finished = self
                .completed
                .iter()
                .position(|c| matches!(c, Completion::Listed { scanner, .. } if **scanner.node() == *name));
            if let Some(at) = finished {
                let done_part = matches!(self.completed[at], Completion::Listed { part: Part::Done, .. });
                self.deliver(at);
                if done_part && listed_live {
                    return;
                }
                continue;
            }
            if let Some(at) = self.pending.iter().position(|j| NfsCheck::is_list_of(j, &name).is_some()) {
                let part = NfsCheck::is_list_of(&self.pending[at], &name);
                if part == Some(Part::Live) && !listed_live {
                    listed_live = true;
                    self.execute_with(at, &between[..live]);
                } else if part == Some(Part::Live) {
                    return; // a round done, the next asked for: leave it
                } else {
                    let moves = if listed_live { &between[live..] } else { &[] };
                    self.execute_with(at, moves);
                }
                continue;
            }
            if let Some(at) = self.pending.iter().position(|j| matches!(j, Job::List(_))) {
                // Other listings hold the slots: let the oldest finish.
                self.execute(at, &[]);
                let last = self.completed.len() - 1;
                self.deliver(last);
                continue;
            }
            match self.core.next_round_of(&name) {
                Some(due) if !self.paused => {
                    self.now = self.now.max(due);
                    self.feed(CoreInput::Tick);
                }
                _ => return,
            }
        }
    }

    /// The core's heartbeat read, executed and delivered (asked for first,
    /// by waiting for it to fall due, if need be).
    fn heartbeats(&mut self) {
        for _ in 0..MACRO_STEPS {
            if let Some(at) = self.completed.iter().position(|c| matches!(c, Completion::Heartbeats { .. })) {
                self.deliver(at);
                return;
            }
            if let Some(at) = self.pending.iter().position(|j| matches!(j, Job::Heartbeats)) {
                self.execute(at, &[]);
                continue;
            }
            if let Some(at) = self.pending.iter().position(|j| matches!(j, Job::List(_) | Job::Discover)) {
                self.execute(at, &[]);
                let last = self.completed.len() - 1;
                self.deliver(last);
                continue;
            }
            match self.core.next_wake() {
                Some(at) if !self.paused => {
                    self.now = self.now.max(at);
                    self.feed(CoreInput::Tick);
                }
                _ => return,
            }
        }
    }

    /// Read jobs, executed and delivered, up to `limit`.
    fn hydrate(&mut self, limit: usize) {
        let mut done = 0;
        while done < limit {
            if let Some(at) = self.completed.iter().position(|c| matches!(c, Completion::Read { .. })) {
                self.deliver(at);
                done += 1;
                continue;
            }
            let Some(at) = self.pending.iter().position(|j| matches!(j, Job::Read(_))) else {
                // Ask for reads: the planner runs on a newer index.
                let before = self.pending.len();
                self.feed(CoreInput::IndexChanged);
                if self.pending.len() == before {
                    return;
                }
                continue;
            };
            self.execute(at, &[]);
        }
    }

    /// Everything in flight is executed and delivered, in order, and
    /// whatever that asks for too, until the core asks for nothing more
    /// at this time.
    pub fn drain(&mut self) {
        for _ in 0..10_000 {
            if !self.completed.is_empty() {
                self.deliver(0);
            } else if !self.pending.is_empty() {
                self.execute(0, &[]);
            } else {
                return;
            }
        }
        self.fail("the core kept asking for work without time passing".into());
    }

    /// First: a refresh asked for is never lost (every node it applied to
    /// is listed after it once what is in flight is done). Then listings
    /// show the truth, nothing moves, and two refreshes (each a forced
    /// round of every node) and every owed read (time passes for files
    /// that had moved) bring every task to its true state.
    pub fn settle_and_compare(&mut self) {
        self.drain();
        if let Some(node) = self.refresh_owed.iter().position(Option::is_some) {
            self.fail(format!(
                "a refresh asked for at step {} never led to a listing of {}",
                self.refresh_owed[node].unwrap_or_default(),
                self.node_name(node)
            ));
        }
        self.model.set_perturbation(Perturbation::NONE, 0);
        for node in 0..self.model.node_count() {
            for dir in QueueDir::ALL {
                self.model.pin_lag(node, dir, None);
            }
        }
        if self.paused {
            self.pause(false);
        }
        for _ in 0..2 {
            // Reads that found a moved file may be tried again.
            self.now += Duration::from_secs(5);
            self.refresh();
            self.drain();
        }
        self.hydrate(usize::MAX);
        self.drain();
        if self.core.jobs_in_flight() != 0 {
            self.fail(format!("{} jobs never completed", self.core.jobs_in_flight()));
        }
        if let Err(message) = check_counts(&self.index) {
            self.fail(message);
        }
        if let Err(message) = agrees_with_truth(&self.model, &self.index) {
            self.fail(message);
        }
        for node in 0..self.model.node_count() {
            let name = self.node_name(node);
            let paused = crate::scan::read_paused(&self.model, self.model.run_dir(), &name);
            let shown =
                self.index.find_node(&name).and_then(|id| self.index.node(id)).is_some_and(|n| n.paused);
            if paused != shown {
                self.fail(format!("{name}: paused is {paused}, the index says {shown}"));
            }
        }
        self.warm_start_agrees();
    }

    /// A relaunch: a fresh index from the cache this run filled plus
    /// settled listings must agree with the truth as the first did.
    fn warm_start_agrees(&mut self) {
        let Some(cache) = &self.cache else { return };
        let run = self.model.run_dir().clone();
        let mut core = EngineCore::new(run.clone(), CoreConfig::settle(Reads::All, 2))
            .with_cache(Ok(Some(cache.cache.clone())));
        let mut index = Index::new(STALE_S);
        index.apply(Event::Tick(self.model.now()));
        let mut pending: std::collections::VecDeque<Job> = Default::default();
        let mut input = CoreInput::Tick;
        for _ in 0..100_000 {
            let after_completion = matches!(input, CoreInput::Done(_));
            let out = core.on(self.now, input, &index);
            pending.extend(out.jobs);
            out.events.into_iter().for_each(|e| index.apply(e));
            if out.settled {
                let read_before = (0..self.index.id_bound())
                    .filter_map(|id| self.index.task(id))
                    .any(|t| t.result_read == ReadStatus::Read);
                if read_before && index.cache_batches() == 0 {
                    self.fail("warm start: the first run read results but the cache gave nothing".into());
                }
                if let Some(problem) = index.cache_problem() {
                    self.fail(format!("the cache this run wrote is refused: {problem}"));
                }
                if let Err(message) = agrees_with_truth(&self.model, &index) {
                    self.fail(format!("warm start: {message}"));
                }
                return;
            }
            let next = if after_completion { None } else { pending.pop_front() };
            input = match (after_completion, next) {
                (true, _) => CoreInput::IndexChanged,
                (false, Some(job)) => CoreInput::Done(job.execute(&self.model, &run, self.model.now())),
                (false, None) => {
                    self.fail(format!(
                        "warm start: the core waits for nothing and is not settled ({} in flight, wake {:?}, now {:?})",
                        core.jobs_in_flight(),
                        out.wake_at,
                        self.now
                    ))
                }
            };
        }
        self.fail("warm start: never settled".into());
    }

    fn note_seen(&mut self, round: &Round) {
        for (_, outcome) in &round.dirs {
            if let DirOutcome::Changed { added, .. } = outcome {
                self.seen.extend(added.tasks().map(|(name, _)| name.text().to_string()));
            }
        }
    }

    fn check_invariants(&mut self) {
        let count = self.index.id_bound() as usize;
        // A task once seen is never dropped by a listing alone.
        if count < self.max_tasks {
            self.fail(format!("task_count fell from {} to {count}", self.max_tasks));
        }
        self.max_tasks = count;
        for id in 0..count {
            let task = self.index.task(id as TaskId).expect("ids are dense");
            let now = task.state;
            if let Some(&before) = self.states.get(id) {
                // A terminal state is never left; DONE only refines once read.
                let refined =
                    before == TaskState::Done && matches!(now, TaskState::Finished | TaskState::Failed);
                if before.is_terminal() && now != before && !refined {
                    self.fail(format!("{} left terminal state {before} for {now}", task.name));
                }
            }
            // Consistent listings: LOST? only for tasks that are really lost.
            if self.consistent && now == TaskState::Lost {
                let truth = self.model.truth_state(&task.name.text());
                if truth != TaskState::Lost {
                    self.fail(format!(
                        "{} is LOST? on consistent listings but really {truth} (presence {:?}, missing {} rounds)",
                        task.name, task.presence, task.missing_rounds
                    ));
                }
            }
        }
        self.states = (0..count).map(|id| self.index.task(id as TaskId).expect("dense").state).collect();
    }

    /// Counts equal rows: once per operation, the per-state views of one
    /// state per step in turn (the dearest check; all of them at the end).
    fn check_views(&self) {
        if let Some(stem) = self.seen.iter().find(|s| self.index.find(s).is_none()) {
            self.fail(format!("{stem} was listed once and is no longer in the index"));
        }
        let only = TaskState::ALL[self.step % TaskState::ALL.len()];
        if let Err(message) = check_counts_of(&self.index, Some(only)) {
            self.fail(message);
        }
    }

    fn fail(&self, message: String) -> ! {
        let trail: Vec<String> = self.trail.iter().map(|op| format!("    {op:?}")).collect();
        panic!(
            "nfs model check failed at step {} ({} listings): {message}\n  last operations:\n{}",
            self.step,
            if self.consistent { "consistent" } else { "lagging" },
            trail.join("\n")
        );
    }
}

fn apply_move(model: &NfsModel, m: &Move) {
    let nodes = model.node_count();
    let node = |byte: u8| usize::from(byte) % nodes;
    match *m {
        Move::Submit { node: n } => {
            if model.task_count() < MAX_TASKS {
                model.submit(node(n));
            }
        }
        Move::Claim { node: n, pick } => {
            model.claim(node(n), usize::from(pick));
        }
        Move::WriteResult { node: n, pick, exit_code } => {
            model.write_result(node(n), usize::from(pick), exit_code);
        }
        Move::ArchiveSpec { node: n, pick } => {
            model.archive_spec(node(n), usize::from(pick));
        }
        Move::Cancel { node: n, pick } => {
            model.cancel_pending(node(n), usize::from(pick));
        }
        Move::Skip { node: n, pick } => {
            model.skip(node(n), usize::from(pick));
        }
        Move::Crash { node: n } => {
            model.crash_runner(node(n));
        }
        Move::Restart { node: n } => {
            model.restart_runner(node(n));
        }
        Move::DeleteClaimed { node: n, pick } => {
            model.delete_claimed(node(n), usize::from(pick));
        }
        Move::Stray { node: n, dir, pick } => {
            model.toggle_stray(node(n), QueueDir::ALL[usize::from(dir) % 3], pick);
        }
    }
}

/// Counts equal rows in every view: per state, per node, per node and
/// state, in both orders; and the index's own tallies (unaccounted,
/// unread) equal what its tasks say.
pub fn check_counts(index: &Index) -> Result<(), String> {
    check_counts_of(index, None)
}

/// As [`check_counts`], the per-state views of `only` (all states if None).
pub fn check_counts_of(index: &Index, only: Option<TaskState>) -> Result<(), String> {
    let states: Vec<TaskState> =
        TaskState::ALL.into_iter().filter(|s| only.is_none_or(|o| o == *s)).collect();
    let total = index.task_count();
    let states_total: u64 = TaskState::ALL.iter().map(|&s| index.count(s)).sum();
    if states_total != total as u64 {
        return Err(format!("state counts add up to {states_total}, but there are {total} tasks"));
    }
    let rows = |view: &ViewSpec| index.all_in_view(view);
    for order in [Order::StateThenNewest, Order::SeqInNode] {
        let all = ViewSpec { order, ..ViewSpec::default() };
        let ids = rows(&all);
        let unique: BTreeSet<TaskId> = ids.iter().copied().collect();
        if ids.len() != total || unique.len() != total || index.view_total(&all) != total as u64 {
            return Err(format!("{order:?}: {} rows ({} unique) for {total} tasks", ids.len(), unique.len()));
        }
        for &state in &states {
            let view = ViewSpec { states: StateSet::of(&[state]), order, node: None };
            let ids = rows(&view);
            if ids.len() as u64 != index.count(state) || index.view_total(&view) != index.count(state) {
                return Err(format!("{order:?} {state}: {} rows, count {}", ids.len(), index.count(state)));
            }
            if let Some(&id) = ids.iter().find(|&&id| index.task(id).map(|t| t.state) != Some(state)) {
                return Err(format!("{order:?}: task {id} in the {state} view is not {state}"));
            }
        }
    }
    for (node, info) in index.nodes() {
        let tasks = (0..total as TaskId).filter(|&id| index.task(id).is_some_and(|t| t.node == node)).count();
        let all = ViewSpec { node: Some(node), ..ViewSpec::default() };
        if rows(&all).len() != tasks || index.view_total(&all) != tasks as u64 || info.total() != tasks as u64
        {
            return Err(format!(
                "node {}: {} rows, total {}, {tasks} tasks",
                info.name,
                rows(&all).len(),
                info.total()
            ));
        }
        for &state in &states {
            for order in [Order::StateThenNewest, Order::SeqInNode] {
                let view = ViewSpec { node: Some(node), states: StateSet::of(&[state]), order };
                let n = rows(&view).len() as u64;
                if n != u64::from(info.count(state)) || index.view_total(&view) != n {
                    return Err(format!(
                        "node {} {state} {order:?}: {n} rows, count {}",
                        info.name,
                        info.count(state)
                    ));
                }
            }
        }
    }
    let tasks: Vec<_> = (0..total as TaskId).filter_map(|id| index.task(id)).collect();
    let unaccounted = tasks.iter().filter(|t| t.presence.is_unaccounted()).count();
    if unaccounted != index.unaccounted_count() {
        return Err(format!("{unaccounted} tasks unaccounted for, index says {}", index.unaccounted_count()));
    }
    let unread = tasks.iter().filter(|t| t.needs_read()).count();
    if unread != index.unread_count() {
        return Err(format!("{unread} tasks owe a read, index says {}", index.unread_count()));
    }
    Ok(())
}

// ----- the parsers check -----------------------------------------------------

/// Feeds the bytes to every record parser and name parser, whole and line
/// by line; a record that parses must re-serialize and parse to an equal
/// value, a parsed name must be rebuilt exactly from its parts, and the
/// lines, as file names in listings, must leave the index consistent.
pub fn check_parsers(data: &[u8]) {
    records(data);
    let text = String::from_utf8_lossy(data);
    names(&text);
    let mut lines = Vec::new();
    for line in data.split(|&b| b == b'\n') {
        records(line);
        let line = String::from_utf8_lossy(line).into_owned();
        names(&line);
        lines.push(line);
    }
    names_through_index(lines);
    hostile_text(&text);
}

/// The rules that keep hostile text in its place, on arbitrary input:
/// ids and names that may become paths never hold a separator or `..`; a
/// path from a record never leaves the run dir; what is shown holds no
/// control, bidi or invisible character and no pile of combining marks;
/// JSON escaping changes no value; a record is an object or nothing.
fn hostile_text(text: &str) {
    use crate::sanitize::{clean_line, escape_json_text, is_deceptive, MAX_COMBINING};
    for candidate in std::iter::once(text).chain(text.split(['\n', ' '])) {
        for (what, ok) in [
            ("node name", crate::paths::is_valid_node_name(candidate)),
            ("lease id", crate::paths::is_valid_lease_id(candidate)),
        ] {
            if ok {
                let part = candidate.strip_prefix("local:").unwrap_or(candidate);
                assert!(
                    !part.contains('/')
                        && part != ".."
                        && part != "."
                        && !part.is_empty()
                        && !part.contains('\0'),
                    "{what} {candidate:?} could escape as a path component"
                );
            }
        }
        let run = crate::paths::RunDir(std::path::PathBuf::from("/run/dir"));
        if let Some(path) = run.resolve_inside(candidate) {
            assert!(path.starts_with("/run/dir/"), "{candidate:?} resolved to {}", path.display());
            let up = path.components().any(|c| matches!(c, std::path::Component::ParentDir));
            assert!(!up, "{candidate:?} resolved to {} with ..", path.display());
        }
    }
    let shown = clean_line(text);
    let mut combining = 0;
    for c in shown.chars() {
        assert!(!c.is_control() && !is_deceptive(c), "{c:?} reached the screen from {text:?}");
        combining = if crate::sanitize::is_combining(c) { combining + 1 } else { 0 };
        assert!(combining <= MAX_COMBINING, "a pile of combining marks from {text:?}");
    }
    let as_json = serde_json::Value::String(text.to_string()).to_string();
    let escaped = escape_json_text(&as_json);
    assert!(!escaped.chars().any(|c| ('\u{80}'..='\u{9f}').contains(&c) || is_deceptive(c)));
    let back: serde_json::Value = serde_json::from_str(&escaped).expect("escaped JSON parses");
    assert_eq!(back.as_str(), Some(text), "escaping changed the value");
    if text.trim_start().starts_with('[') {
        assert!(
            crate::model::from_record::<TaskResult>(text.as_bytes()).is_err(),
            "an array read as a record"
        );
    }
}

fn records(bytes: &[u8]) {
    round_trip::<TaskSpec>(bytes);
    round_trip::<TaskResult>(bytes);
    round_trip::<Heartbeat>(bytes);
    round_trip::<LeaseMeta>(bytes);
    round_trip::<SlurmLeaseMeta>(bytes);
    round_trip::<LocalLeaseMeta>(bytes);
    round_trip::<LeaseRegistry>(bytes);
    round_trip::<LeaseEntry>(bytes);
    round_trip::<CancelRequest>(bytes);
    round_trip::<RunnerEvent>(bytes);
    round_trip::<UiConfig>(bytes);
    if let Ok(config) = parse_ui_config(bytes) {
        let file = serde_json::json!({ "ui": config });
        let text = serde_json::to_vec(&file).expect("a config serializes");
        match parse_ui_config(&text) {
            Ok(again) if again == config => {}
            other => panic!("config.json round trip: {config:?} became {other:?}"),
        }
    }
}

/// A record that parses re-serializes and parses to an equal value, except
/// that a float may move by an ulp or two: serde_json without its
/// `float_roundtrip` feature does not round its parse correctly (`1.5e-83`
/// reads as `1.4999999999999999e-83`, which is printed as such and then
/// reads as `1.5e-83`), found by the `parsers` target.
fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(bytes: &[u8]) {
    let Ok(value) = crate::model::from_record::<T>(bytes) else { return };
    let what = std::any::type_name::<T>();
    let text =
        serde_json::to_vec(&value).unwrap_or_else(|e| panic!("{what} {value:?} does not serialize: {e}"));
    match crate::model::from_record::<T>(&text) {
        Ok(again) if again == value => {}
        Ok(again) if same_json_within_an_ulp(&json_of(&value), &json_of(&again)) => {}
        Ok(again) => panic!("{what} round trip changed {value:?} into {again:?}"),
        Err(e) => {
            panic!("{what} {value:?} serialized as {} does not parse: {e}", String::from_utf8_lossy(&text))
        }
    }
}

fn json_of<T: Serialize + Debug>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_else(|e| panic!("{value:?} does not convert to JSON: {e}"))
}

/// Equal JSON, floats allowed to differ by at most 2 ulps.
fn same_json_within_an_ulp(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => {
                x == y || (x.signum() == y.signum() && x.to_bits().abs_diff(y.to_bits()) <= 2)
            }
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json_within_an_ulp(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json_within_an_ulp(v, w)))
        }
        _ => a == b,
    }
}

fn names(text: &str) {
    if let Some(name) = TaskName::parse(text) {
        let (seq_text, _) = text.split_once('_').expect("a parsed name has a '_'");
        assert_eq!(seq_text.parse::<u64>().ok(), Some(name.seq), "seq of {text:?}");
        assert_eq!(format!("{seq_text}_{}_{}", name.task_id, name.uuid), text, "parts of {text:?}");
        assert!(!name.task_id.is_empty() && name.uuid.len() == 36, "{text:?} gave {name:?}");
    }
    if let Some((stem, kind)) = parse_entry(text) {
        let rebuilt = entry_file_name(stem, kind);
        assert_eq!(rebuilt, text, "parse_entry({text:?}) = ({stem:?}, {kind:?})");
        assert!(TaskName::parse(stem).is_some() && !text.starts_with('.'), "{text:?}");
    }
    if let Some(state) = TaskState::parse(text) {
        assert_eq!(TaskState::parse(state.label()), Some(state), "{text:?}");
    }
}

/// The lines as file names: listed in every queue directory, then gone.
fn names_through_index(mut lines: Vec<String>) {
    lines.retain(|n| !n.starts_with('.'));
    lines.sort_unstable();
    lines.dedup();
    let mut index = Index::new(STALE_S);
    let stems: BTreeSet<&str> = lines.iter().filter_map(|n| parse_entry(n)).map(|(s, _)| s).collect();
    let changed =
        |added: &[String], removed: &[String]| DirOutcome::changed(added.to_vec(), removed.to_vec());
    let listed = ROUND_ORDER.iter().map(|&dir| (dir, changed(&lines, &[]))).collect();
    index.apply(Event::Round(Round { node: "a".into(), dirs: listed }));
    let gone = ROUND_ORDER.iter().map(|&dir| (dir, changed(&[], &lines))).collect();
    index.apply(Event::Round(Round { node: "a".into(), dirs: gone }));
    index.apply(Event::Round(Round { node: "a".into(), dirs: Vec::new() }));
    assert_eq!(index.task_count(), stems.len(), "one task per distinct stem");
    for stem in &stems {
        let task = index.find(stem).and_then(|id| index.task(id)).expect("listed stems stay");
        assert!(task.state.is_terminal() || task.state == TaskState::Lost, "{stem}: {}", task.state);
    }
    if let Err(message) = check_counts(&index) {
        panic!("names as listings: {message}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE: Setup = Setup { lagging: false, nodes: 1, no_runner: 0, cache: false };
    const LAGGING: Setup = Setup { lagging: true, nodes: 1, no_runner: 0, cache: false };

    fn round() -> Op {
        round_with_moves_at(0, Vec::new())
    }

    /// A round with `moves` made just before the listing of `dir`.
    /// A round with `moves` made just before the first listing of `dir`.
    fn before(dir: QueueDir, moves: Vec<Move>) -> Op {
        let at = ROUND_ORDER.iter().position(|&d| d == dir).expect("every dir is listed");
        round_with_moves_at(at, moves)
    }

    /// A round with `moves` made just after the first listing of `dir`.
    fn after(dir: QueueDir, moves: Vec<Move>) -> Op {
        let at = ROUND_ORDER.iter().position(|&d| d == dir).expect("every dir is listed") + 1;
        assert!(at < ROUND_ORDER.len(), "nothing is listed after {dir:?}");
        round_with_moves_at(at, moves)
    }

    fn round_with_moves_at(at: usize, moves: Vec<Move>) -> Op {
        let mut between = vec![Vec::new(); ROUND_ORDER.len()];
        between[at] = moves;
        Op::Round { node: 0, refresh: false, between }
    }

    /// A split round (as the engine runs it) with `moves` between its
    /// live part and its `done/` part.
    fn split(moves: Vec<Move>) -> Op {
        let mut between = vec![Vec::new(); ROUND_ORDER.len()];
        between[ROUND_ORDER.len() - 1] = moves;
        Op::Round { node: 0, refresh: false, between }
    }

    /// As decoding gives it: one move list per listing.
    fn normalized(op: &Op) -> Op {
        match op {
            Op::Round { node, refresh, between } => {
                let mut between = between.clone();
                between.resize(ROUND_ORDER.len(), Vec::new());
                Op::Round { node: *node, refresh: *refresh, between }
            }
            other => other.clone(),
        }
    }

    fn mv(m: Move) -> Op {
        Op::Move(m)
    }

    /// Runs `ops` and records the state of the first task after each step.
    fn run(setup: Setup, ops: &[Op]) -> (NfsCheck, Vec<Option<TaskState>>) {
        let mut check = NfsCheck::new(setup);
        let mut states = Vec::new();
        for op in ops {
            check.apply(op);
            let first = check.model().stems().first().cloned();
            states.push(first.and_then(|stem| check.state_of(&stem)));
        }
        (check, states)
    }

    /// The hand-written scenarios, also written out as fuzz seeds.
    fn scenarios() -> Vec<(&'static str, Setup, Vec<Op>)> {
        use Move::*;
        let zombie = vec![
            mv(Submit { node: 0 }),
            round(),
            mv(Claim { node: 0, pick: 0 }),
            round(),
            mv(Crash { node: 0 }),
            after(QueueDir::Claimed, vec![Restart { node: 0 }]),
            round(),
            round(),
        ];
        let claim_mid_round = vec![
            mv(Submit { node: 0 }),
            round(),
            after(QueueDir::Claimed, vec![Claim { node: 0, pick: 0 }]),
            round(),
            round(),
        ];
        let finish_between_steps = vec![
            mv(Submit { node: 0 }),
            mv(Claim { node: 0, pick: 0 }),
            round(),
            after(QueueDir::Claimed, vec![WriteResult { node: 0, pick: 0, exit_code: 2 }]),
            before(QueueDir::Claimed, vec![ArchiveSpec { node: 0, pick: 0 }]),
            round(),
            Op::Hydrate { limit: 0 },
            round(),
        ];
        let deleted = vec![
            mv(Submit { node: 0 }),
            mv(Claim { node: 0, pick: 0 }),
            round(),
            mv(DeleteClaimed { node: 0, pick: 0 }),
            round(),
            round(),
            round(),
        ];
        let lagging_done = vec![
            mv(Submit { node: 0 }),
            mv(Claim { node: 0, pick: 0 }),
            Op::Perturb { a: 0, b: 0, c: 0, seed: 0 },
            round(),
            mv(WriteResult { node: 0, pick: 0, exit_code: 0 }),
            mv(ArchiveSpec { node: 0, pick: 0 }),
            Op::Pin { node: 0, dir: 2, back: Some(2) },
            round(),
            round(),
            Op::Pin { node: 0, dir: 2, back: None },
            Op::Perturb { a: 0, b: 0, c: 0, seed: 0 },
            round(),
            Op::Pin { node: 0, dir: 2, back: Some(2) },
            Op::Round { node: 0, refresh: true, between: Default::default() },
            Op::Hydrate { limit: 0 },
            Op::Round { node: 0, refresh: true, between: Default::default() },
        ];
        let crash_goes_stuck = vec![
            mv(Submit { node: 0 }),
            mv(Claim { node: 0, pick: 0 }),
            round(),
            Op::Heartbeats,
            mv(Crash { node: 0 }),
            Op::Advance { seconds: 90 },
            Op::Heartbeats,
            round(),
        ];
        let cancel_and_skip = vec![
            mv(Submit { node: 0 }),
            mv(Submit { node: 0 }),
            mv(Submit { node: 0 }),
            round(),
            before(QueueDir::Done, vec![Cancel { node: 0, pick: 0 }, Claim { node: 0, pick: 0 }]),
            after(QueueDir::Claimed, vec![Skip { node: 0, pick: 0 }, Stray { node: 0, dir: 0, pick: 0 }]),
            Op::Hydrate { limit: 1 },
            round(),
        ];
        let busy_three_nodes = {
            // Consistent listings in any order, with duplicates.
            let mut ops = vec![Op::Perturb { a: 0x20, b: 0x80, c: 0, seed: 5 }];
            for node in 0..3 {
                ops.push(mv(Submit { node }));
                ops.push(mv(Submit { node }));
            }
            for step in 0..6u8 {
                let node = step % 3;
                ops.push(mv(Claim { node, pick: 0 }));
                ops.push(Op::Round {
                    node,
                    refresh: step % 2 == 0,
                    between: vec![
                        vec![Submit { node }],
                        vec![WriteResult { node, pick: step, exit_code: i32::from(step % 2) }],
                        vec![Claim { node, pick: 1 }],
                    ],
                });
                ops.push(Op::Advance { seconds: 20 });
                ops.push(Op::Heartbeats);
            }
            ops
        };
        let no_runner = vec![
            mv(Submit { node: 1 }),
            Op::Round { node: 1, refresh: false, between: Default::default() },
            Op::Heartbeats,
        ];
        let lagging_churn = {
            let mut ops = vec![Op::Perturb { a: 0x3f, b: 0x44, c: 8, seed: 9 }];
            for i in 0..8u8 {
                ops.push(mv(Submit { node: i % 2 }));
                ops.push(mv(Claim { node: i % 2, pick: 0 }));
                ops.push(Op::Round {
                    node: i % 2,
                    refresh: i % 3 == 0,
                    between: vec![
                        vec![WriteResult { node: i % 2, pick: 0, exit_code: 0 }],
                        vec![ArchiveSpec { node: i % 2, pick: 0 }],
                        vec![Restart { node: i % 2 }],
                    ],
                });
                ops.push(Op::Hydrate { limit: 2 });
            }
            ops
        };
        let restart_after_stale = vec![
            mv(Submit { node: 0 }),
            mv(Submit { node: 0 }),
            mv(Claim { node: 0, pick: 0 }),
            round(),
            mv(Crash { node: 0 }),
            Op::Advance { seconds: 200 },
            Op::Heartbeats,
            before(QueueDir::Claimed, vec![Restart { node: 0 }]),
            Op::Heartbeats,
            after(QueueDir::Claimed, vec![Claim { node: 0, pick: 1 }]),
            round(),
        ];
        let lagging_stamps_and_failures = {
            let mut ops = vec![Op::Perturb { a: 0x17, b: 0x22, c: 40, seed: 3 }];
            for i in 0..6u8 {
                ops.push(mv(Submit { node: 0 }));
                ops.push(mv(Cancel { node: 0, pick: i }));
                ops.push(mv(Claim { node: 0, pick: 0 }));
                ops.push(Op::Round {
                    node: 0,
                    refresh: false,
                    between: vec![
                        vec![Skip { node: 0, pick: 0 }],
                        vec![DeleteClaimed { node: 0, pick: 0 }, Stray { node: 0, dir: i, pick: i }],
                        vec![],
                    ],
                });
                ops.push(Op::Pin { node: 0, dir: i, back: Some(i) });
                ops.push(Op::Advance { seconds: 30 });
                ops.push(Op::Heartbeats);
            }
            ops
        };
        // The engine's split rounds, with a move between the two parts.
        let split_rounds = vec![
            mv(Submit { node: 0 }),
            mv(Submit { node: 0 }),
            mv(Claim { node: 0, pick: 0 }),
            split(vec![Claim { node: 0, pick: 0 }]),
            mv(WriteResult { node: 0, pick: 0, exit_code: 1 }),
            split(vec![ArchiveSpec { node: 0, pick: 0 }]),
            split(vec![WriteResult { node: 0, pick: 0, exit_code: 0 }]),
            Op::Hydrate { limit: 0 },
            split(vec![]),
        ];
        // The dashboard's actions through the seam, between rounds.
        let dashboard_actions = vec![
            mv(Submit { node: 0 }),
            mv(Submit { node: 0 }),
            round(),
            Op::Act { kind: 0, node: 0, pick: 0 },
            round(),
            Op::Act { kind: 1, node: 0, pick: 0 },
            Op::Act { kind: 2, node: 0, pick: 0 },
            round(),
            Op::Act { kind: 3, node: 0, pick: 0 },
            round(),
        ];
        vec![
            ("dashboard_actions", ONE, dashboard_actions),
            ("split_rounds", ONE, split_rounds),
            ("restart_after_stale", ONE, restart_after_stale),
            ("lagging_stamps_and_failures", LAGGING, lagging_stamps_and_failures),
            ("zombie_recovery_mid_round", ONE, zombie),
            ("claim_between_claimed_and_inbox", ONE, claim_mid_round),
            ("finish_listed_between_result_and_rename", ONE, finish_between_steps),
            ("deleted_claimed_file", ONE, deleted),
            ("lagging_done_after_finish", LAGGING, lagging_done),
            ("crash_goes_stuck", ONE, crash_goes_stuck),
            ("cancel_and_skip", ONE, cancel_and_skip),
            (
                "busy_three_nodes",
                Setup { lagging: false, nodes: 3, no_runner: 0, cache: true },
                busy_three_nodes,
            ),
            (
                "node_without_runner",
                Setup { lagging: false, nodes: 2, no_runner: 2, cache: false },
                no_runner,
            ),
            ("lagging_churn", Setup { lagging: true, nodes: 2, no_runner: 0, cache: true }, lagging_churn),
        ]
    }

    fn scenario(name: &str) -> Vec<Op> {
        scenarios().into_iter().find(|s| s.0 == name).expect("a scenario of that name").2
    }

    #[test]
    fn encoding_round_trips() {
        for (name, setup, ops) in scenarios() {
            let bytes = encode(setup, &ops);
            let mut input = Input::new(&bytes);
            assert_eq!(Setup::decode(&mut input), Some(setup), "{name}");
            let decoded: Vec<Op> = std::iter::from_fn(|| Op::decode(&mut input)).collect();
            assert_eq!(decoded, ops.iter().map(normalized).collect::<Vec<_>>(), "{name}");
        }
    }

    #[test]
    fn every_scenario_passes_the_check() {
        for (_, setup, ops) in scenarios() {
            check_nfs_model(&encode(setup, &ops));
        }
    }

    #[test]
    fn zombie_recovery_mid_round_is_never_lost() {
        let ops = scenario("zombie_recovery_mid_round");
        let (mut check, states) = run(ONE, &ops);
        assert!(!states.contains(&Some(TaskState::Lost)), "{states:?}");
        assert_eq!(states[3], Some(TaskState::Running));
        // Seen in claimed/ (listed before the restart) and in inbox/ (after).
        assert_eq!(states[5], Some(TaskState::Running));
        assert_eq!(states[6], Some(TaskState::Pending));
        check.settle_and_compare();
    }

    #[test]
    fn a_claim_between_the_claimed_and_inbox_listings_is_not_lost() {
        let ops = scenario("claim_between_claimed_and_inbox");
        let mut check = NfsCheck::new(ONE);
        let mut states = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            check.apply(op);
            let stem = check.model().stems()[0].clone();
            states.push(check.state_of(&stem));
            if i == 2 {
                // Claimed after claimed/ was listed: the second inbox/
                // listing only adds, so the task is still accounted for in
                // inbox/ at the end of this round (never missing).
                let task = check.index().find(&stem).and_then(|id| check.index().task(id)).unwrap();
                assert!(task.presence.inbox && task.missing_rounds == 0, "{task:?}");
            }
        }
        assert_eq!(states[1], Some(TaskState::Pending));
        // Still in inbox/ as far as this round knows.
        assert_eq!(states[2], Some(TaskState::Pending));
        assert_eq!(states[3], Some(TaskState::Running));
        assert!(!states.contains(&Some(TaskState::Lost)), "{states:?}");
        check.settle_and_compare();
    }

    #[test]
    fn a_listing_between_result_write_and_rename_is_done() {
        let ops = scenario("finish_listed_between_result_and_rename");
        let (mut check, states) = run(ONE, &ops);
        assert_eq!(states[2], Some(TaskState::Running));
        assert_eq!(states[3], Some(TaskState::Done), "result listed while the spec is still claimed");
        assert_eq!(states[4], Some(TaskState::Done));
        assert_eq!(states[6], Some(TaskState::Failed));
        assert!(!states.contains(&Some(TaskState::Lost)), "{states:?}");
        check.settle_and_compare();
    }

    #[test]
    fn a_deleted_claimed_file_is_lost_after_two_rounds() {
        let ops = scenario("deleted_claimed_file");
        let (mut check, states) = run(ONE, &ops);
        assert_eq!(states[2], Some(TaskState::Running));
        assert_eq!(states[4], Some(TaskState::Running), "one round is not enough");
        assert_eq!(states[5], Some(TaskState::Lost));
        let stem = check.model().stems()[0].clone();
        assert_eq!(check.model().truth_state(&stem), TaskState::Lost);
        check.settle_and_compare();
        assert_eq!(check.state_of(&stem), Some(TaskState::Lost));
    }

    #[test]
    fn lagging_done_may_show_lost_but_never_leaves_a_terminal_state() {
        let ops = scenario("lagging_done_after_finish");
        let (mut check, states) = run(LAGGING, &ops);
        assert_eq!(states[3], Some(TaskState::Running));
        // claimed/ shows it gone, the lagging done/ does not show it yet.
        assert_eq!(states[7], Some(TaskState::Running));
        assert_eq!(states[8], Some(TaskState::Lost));
        assert_eq!(states[11], Some(TaskState::Done));
        assert_eq!(states[13], Some(TaskState::Done), "a lagging done/ hides the result again");
        assert_eq!(states[14], Some(TaskState::Finished));
        assert_eq!(states[15], Some(TaskState::Finished));
        check.settle_and_compare();
    }

    #[test]
    fn split_rounds_show_moves_between_their_parts() {
        let ops = scenario("split_rounds");
        let (mut check, states) = run(ONE, &ops);
        let second = check.model().stems()[1].clone();
        // The first task: claimed before, result after the first round.
        assert_eq!(states[3], Some(TaskState::Running));
        assert_eq!(states[5], Some(TaskState::Done), "archived between the parts: done/ shows it");
        assert_eq!(states[7], Some(TaskState::Failed));
        // The second: claimed between the parts, so still pending in that
        // round; finished between the parts of the third.
        assert_eq!(check.model().truth_state(&second), TaskState::Finished);
        check.settle_and_compare();
        assert_eq!(check.state_of(&second), Some(TaskState::Finished));
    }

    #[test]
    fn dashboard_actions_through_the_seam_reach_the_index() {
        let ops = scenario("dashboard_actions");
        let mut check = NfsCheck::new(ONE);
        let mut paused = Vec::new();
        for op in &ops {
            check.apply(op);
            // What an action's refresh brings, once it has all come in.
            check.drain();
            let node =
                check.index().find_node("nodeA").and_then(|id| check.index().node(id)).map(|n| n.paused);
            paused.push(node);
        }
        let stems = check.model().stems();
        assert_eq!(stems.len(), 3, "the retry made a new task: {stems:?}");
        assert_eq!(check.state_of(&stems[0]), Some(TaskState::Cancelled), "cancelled while pending");
        assert_eq!(check.state_of(&stems[1]), Some(TaskState::Pending));
        assert_eq!(check.state_of(&stems[2]), Some(TaskState::Pending), "the retry, listed");
        assert_eq!(paused[6], Some(true), "the pause, shown");
        assert_eq!(paused[8], Some(false), "and the resume");
        check.settle_and_compare();
    }

    #[test]
    fn a_crashed_runner_makes_its_task_stuck() {
        let ops = scenario("crash_goes_stuck");
        let (mut check, states) = run(ONE, &ops);
        assert_eq!(states[3], Some(TaskState::Running));
        assert_eq!(states[6], Some(TaskState::Stuck));
        check.settle_and_compare();
    }

    #[test]
    fn pseudo_random_inputs() {
        let mut rng = fastrand::Rng::with_seed(0x1ea5e9);
        for i in 0..3000 {
            let len = rng.usize(..if i % 10 == 0 { 2000 } else { 300 });
            let mut data: Vec<u8> = std::iter::repeat_with(|| rng.u8(..)).take(len).collect();
            if let Some(first) = data.first_mut() {
                // Half consistent, half lagging.
                *first = (*first & !1) | (i & 1) as u8;
            }
            check_nfs_model(&data);
        }
    }

    #[test]
    fn pseudo_random_parser_inputs() {
        let uuid = "2b7c9c9b-1234-4cde-8f00-0123456789ab";
        let samples = [
            r#"{"task_id":"T014","idempotency_key":"k","lease_id":"1","target_node":"a","seq":12,"uuid":"u","created_at":1,"cwd":"/","env":{"A":"b"},"gpus":1,"command":"echo é"}"#.to_string(),
            r#"{"task_id":"T014","idempotency_key":"k","node":"a","started_at":1,"finished_at":2,"exit_code":-1,"stdout":"","stderr":"","runtime_s":0.5}"#.to_string(),
            r#"{"node":"a","ts":5,"running_task_id":null,"pending_estimate":3}"#.to_string(),
            r#"{"lease_type":"slurm","lease_id":"9","name":"x","created_at":1,"slurm":{"sbatch_args":["-N2"]}}"#.to_string(),
            r#"{"default_lease":"local:h","leases":{"9":{"created_at":1,"name":"e"}}}"#.to_string(),
            r#"{"type":"FINISHED","data":{"task_id":"T1","exit_code":0,"x":[1.5,null,true]}}"#.to_string(),
            r#"{"ui":{"hb_stale_s":120,"refresh_s":3}}"#.to_string(),
            format!("000012_T014_{uuid}.json\n0001736381200123456_Tab_{uuid}.result.json\nrunning\nlost?"),
        ];
        let mut rng = fastrand::Rng::with_seed(7);
        for sample in &samples {
            check_parsers(sample.as_bytes());
        }
        for _ in 0..3000 {
            let mut data = samples[rng.usize(..samples.len())].clone().into_bytes();
            for _ in 0..rng.usize(..4) {
                match rng.u8(..4) {
                    0 if !data.is_empty() => {
                        let at = rng.usize(..data.len());
                        data[at] = rng.u8(..);
                    }
                    1 if !data.is_empty() => {
                        let at = rng.usize(..data.len());
                        data.truncate(at);
                    }
                    2 => {
                        let at = rng.usize(..=data.len());
                        data.insert(at, b"0123456789_-.\n\":{}[]e"[rng.usize(..21)]);
                    }
                    _ => {
                        let n = rng.usize(..8);
                        data.extend(std::iter::repeat_with(|| rng.u8(..)).take(n))
                    }
                }
            }
            check_parsers(&data);
        }
    }

    /// Found by `pseudo_random_parser_inputs`: `TaskName::parse` sliced
    /// 36 bytes from the end without checking that this is a character
    /// boundary, so a file named like this in any queue directory panicked
    /// the index when a scanner listed it. Fixed in model.rs; kept as a
    /// regression test (and as the parsers seed
    /// `crash_task_name_multibyte_before_uuid.txt`).
    #[test]
    fn a_multibyte_char_before_the_uuid_is_not_a_task_name() {
        let stem = format!("1_a\u{e9}{}", "0".repeat(35));
        assert_eq!(TaskName::parse(&stem), None);
        assert_eq!(parse_entry(&format!("{stem}.json")), None);
        let mut index = Index::new(STALE_S);
        let added = vec![format!("{stem}.json")];
        let dirs = vec![(QueueDir::Inbox, DirOutcome::changed(added, vec![]))];
        index.apply(Event::Round(Round { node: "a".into(), dirs }));
        assert_eq!(index.node(0).map(|n| n.unrecognised), Some(1));
        check_parsers(format!("{stem}.json\n{stem}").as_bytes());
    }

    #[test]
    fn floats_may_move_by_an_ulp_through_serde_json() {
        let event = br#"{"type":"CANCELLED","data":{"task_id":"T251","runtime":1.5e-83}}"#;
        check_parsers(event);
        let result = br#"{"task_id":"T","idempotency_key":"k","node":"a","started_at":1,"finished_at":2,"exit_code":0,"runtime_s":1.5e-83}"#;
        check_parsers(result);
        let (a, b) = (serde_json::json!([1.0, {"x": 2.5}]), serde_json::json!([1.0, {"x": 2.6}]));
        assert!(!same_json_within_an_ulp(&a, &b));
        assert!(same_json_within_an_ulp(
            &serde_json::json!(1.5e-83),
            &serde_json::json!(1.4999999999999999e-83)
        ));
    }

    /// A limit of the two-round LOST? rule (src/index/state.rs), shown by
    /// lifting the model's move bound: a task claimed just after the
    /// `claimed/` listing of one round (hidden for that round), then, in
    /// the next round, put back by zombie recovery just before the
    /// `claimed/` listing and claimed again just after it (hidden again),
    /// is seen nowhere for two rounds in a row on perfectly consistent
    /// listings, so it shows LOST? for a round (RUNNING again the round
    /// after). It takes two moves of one task within milliseconds, twice
    /// straddling a listing, so the checks bound moves to one per task per
    /// round instead of calling this a bug.
    #[test]
    #[ignore = "known limit of LOST_AFTER_ROUNDS = 2: false LOST? after two moves in one round"]
    fn known_limit_two_moves_in_one_round_can_show_a_false_lost() {
        use Move::*;
        let mut check = NfsCheck::new(ONE);
        check.model().set_move_bound(false);
        let mut twice = after(QueueDir::Claimed, vec![Claim { node: 0, pick: 0 }]);
        if let Op::Round { between, .. } = &mut twice {
            let at = ROUND_ORDER.iter().position(|&d| d == QueueDir::Claimed).expect("listed");
            between[at] = vec![Restart { node: 0 }];
        }
        for op in [
            mv(Submit { node: 0 }),
            round(),
            after(QueueDir::Claimed, vec![Claim { node: 0, pick: 0 }]),
            twice,
        ] {
            check.apply(&op); // panics: "... is LOST? on consistent listings but really RUNNING"
        }
    }

    /// Writes the scenarios as seed files: `cargo test --lib
    /// write_nfs_model_seeds -- --ignored`.
    #[test]
    #[ignore = "writes fuzz/seeds/nfs_model; run by hand after changing the scenarios"]
    fn write_nfs_model_seeds() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/nfs_model");
        std::fs::create_dir_all(&dir).unwrap();
        for (name, setup, ops) in scenarios() {
            std::fs::write(dir.join(name), encode(setup, &ops)).unwrap();
        }
    }
}
