//! The engine's decisions, with no I/O in them: which listing, heartbeat
//! read, node discovery and file reads to start next, and when to wake.
//!
//! [`EngineCore::on`] takes one [`Input`] (a timer expiry, a finished job,
//! a control from the UI, a newer index) and returns [`Outputs`]: jobs to
//! start, events to fold into the index and the next wake-up. The same
//! core runs the dashboard (jobs on a bounded thread pool, see
//! `engine::Engine`), the one-shot commands (`oneshot::build`, until
//! [`Outputs::settled`]) and the NFS-model fuzz target (jobs executed in
//! an order the fuzzer picks, see `check`).
//!
//! Owns: per-source scheduling (cadence, one job in flight per source, a
//! refresh that arrives while a job runs re-runs it once it is done), the
//! cap on listings in flight, the read planner. Must not: touch a file,
//! read a clock, or decide a task's state (the index does).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use super::jobs::{Completion, Job, ListJob, Part};
use crate::cache::{Facts, FactsCache, LoadFrom};
use crate::hydrate::{ReadJob, ReadPlanner};
use crate::index::{DirOutcome, Event, Index, Round, TaskId};
use crate::paths::RunDir;
use crate::scan::{Cadence, NodeScanner};

/// Time since the core was made. The runtime passes a monotonic clock's
/// elapsed time; the fuzzer passes whatever it likes.
pub type Now = Duration;

/// Which task files to read after listing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Names only.
    None,
    /// Results of listed results, so FINISHED and FAILED are exact.
    Results,
    /// Results and specs (commands, submit times).
    All,
}

/// How the core schedules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Keep watching: sources repeat on their cadence (the dashboard).
    Watch,
    /// Look once and say when everything is known (`status`, `tasks`):
    /// one forced round per node, a second where a task is unaccounted
    /// for after it, every owed read tried once.
    Settle,
}

#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub mode: Mode,
    pub reads: Reads,
    /// Node rounds while things change (ui.refresh_s), and heartbeat reads.
    pub base: Duration,
    /// Node rounds back off to this while nothing changes.
    pub idle_max: Duration,
    /// Every this many rounds a node ignores directory stamps.
    pub full_rescan_every: u32,
    /// How often the node list and pause markers are looked at.
    pub discovery_every: Duration,
    /// Listings (discovery, heartbeats, node rounds) in flight at once.
    pub max_listings: usize,
    /// Files per read job, and read jobs in flight at once.
    pub read_batch: usize,
    pub reads_in_flight: usize,
    /// A read whose file had moved is tried again after this; `None`: never.
    pub retry_reads_after: Option<Duration>,
    /// Idle `done/` listings of at least this many tasks leave memory
    /// (with a cache; see `NodeScanner::parking_from`).
    pub park_listings_from: usize,
}

/// Settling, listings asked for at once: all of them, for any real number
/// of nodes (the caller's threads bound how many run).
const SETTLE_LISTINGS: usize = 4096;

impl CoreConfig {
    /// The dashboard's: spec cadence (2 s while changing, up to 10 s idle),
    /// a full rescan every 15 rounds, reads one batch at a time.
    pub fn watch(refresh_s: u64) -> CoreConfig {
        CoreConfig {
            mode: Mode::Watch,
            reads: Reads::All,
            base: Duration::from_secs(refresh_s.max(1)),
            idle_max: Duration::from_secs(10),
            full_rescan_every: 15,
            discovery_every: Duration::from_secs(5),
            max_listings: 4,
            read_batch: 256,
            reads_in_flight: 1,
            retry_reads_after: Some(Duration::from_secs(3)),
            park_listings_from: crate::scan::PARK_AT_LEAST,
        }
    }

    /// The one-shot commands': every listing asked for at once (the caller
    /// runs them on its own fixed threads, so a lister never waits for the
    /// fold), reads on `readers` at once.
    pub fn settle(reads: Reads, readers: usize) -> CoreConfig {
        CoreConfig {
            mode: Mode::Settle,
            reads,
            max_listings: SETTLE_LISTINGS,
            read_batch: 512,
            reads_in_flight: readers.max(1),
            retry_reads_after: None,
            ..CoreConfig::watch(2)
        }
    }
}

/// What the core is told.
#[derive(Debug)]
pub enum Input {
    /// Time passed (a wake-up asked for, or any other reason to look).
    Tick,
    /// List everything again now, ignoring directory stamps.
    Refresh,
    /// Stop or resume starting jobs (the UI's "pause auto-refresh").
    SetPaused(bool),
    /// Rows on screen: read their files before anything else.
    Visible(Vec<TaskId>),
    /// The index given with this input is newer than the last one.
    IndexChanged,
    /// A job the core asked for has finished.
    Done(Completion),
}

/// What the core wants done.
#[derive(Debug, Default)]
pub struct Outputs {
    pub jobs: Vec<Job>,
    pub events: Vec<Event>,
    /// Call [`EngineCore::on`] with [`Input::Tick`] at this time, at the
    /// latest; `None`: only when something else happens.
    pub wake_at: Option<Now>,
    /// Settle mode: everything was looked at and every read tried.
    pub settled: bool,
}

/// One source's schedule: at most one job in flight, a refresh during it
/// kept as `dirty`.
#[derive(Debug, Clone, Copy, Default)]
struct Schedule {
    busy: bool,
    dirty: bool,
    due: Option<Now>,
    runs: u64,
}

impl Schedule {
    fn due_now(&self, now: Now) -> bool {
        !self.busy && self.due.is_some_and(|due| due <= now)
    }

    /// A refresh: now if idle, again right after the job if busy.
    fn refresh(&mut self, now: Now) {
        if self.busy {
            self.dirty = true;
        } else {
            self.due = Some(now);
        }
    }

    fn started(&mut self) {
        self.busy = true;
        self.dirty = false;
    }

    /// The job finished; the next run is `next` from now, or at once if a
    /// refresh came meanwhile.
    fn finished(&mut self, now: Now, next: Option<Duration>) -> bool {
        self.busy = false;
        self.runs += 1;
        let refreshed = self.dirty;
        self.dirty = false;
        self.due = if refreshed { Some(now) } else { next.map(|wait| now + wait) };
        refreshed
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum NodePhase {
    /// Waiting for its next round.
    Idle,
    /// The live part (inbox, claimed, inbox) is being listed.
    Live,
    /// The live part is in; `done/` waits for a listing slot.
    BetweenParts,
    /// `done/` is being listed.
    Done,
    /// `done/` is listed; its round waits in `held` for the cache to load.
    Held,
}

struct NodeSlot {
    name: Arc<str>,
    /// Lent to the listing job while one runs.
    scanner: Option<Box<NodeScanner>>,
    cadence: Cadence,
    phase: NodePhase,
    schedule: Schedule,
    /// This round ignores stamps.
    force: bool,
    /// A refresh asked for a full rescan.
    force_next: bool,
    changed: bool,
    /// Settle mode: this node's last round must be checked for tasks
    /// unaccounted for once the index has it.
    check_after_round: bool,
    /// A `done/` round listed while the cache loads (see `NodePhase::Held`).
    held: Option<Round>,
}

pub struct EngineCore {
    config: CoreConfig,
    run: RunDir,
    now: Now,
    paused: bool,
    discovery: Schedule,
    heartbeats: Schedule,
    nodes: Vec<NodeSlot>,
    by_name: HashMap<Arc<str>, usize>,
    paused_nodes: HashSet<String>,
    planner: ReadPlanner,
    reads_in_flight: usize,
    /// The last read plan came back empty (settle mode waits for this).
    reads_exhausted: bool,
    /// Reads just completed: plan no more until the caller's index has
    /// their events (the next call).
    reads_planned_after_fold: bool,
    cache: CacheState,
}

/// The warm-start cache, from the core's side: loaded in chunks before any
/// file is read (what it has is never read), appended with what reads
/// give, one job at a time each.
#[derive(Debug, Default)]
struct CacheState {
    cache: Option<Arc<FactsCache>>,
    /// The next chunk to load; `None` once loading is over.
    load_from: Option<LoadFrom>,
    loading: bool,
    /// Batches of facts handed out as events.
    batches: u64,
    unsaved: Vec<Facts>,
    saving: bool,
    /// An append failed: said once, and nothing more is saved.
    broken: bool,
    /// Why there is no cache (it could not be opened), to say once.
    problem: Option<String>,
    /// The tasks on screen, whose details are fetched again if let go.
    on_screen: Vec<TaskId>,
    /// Records asked for since the screen last changed.
    asked: Vec<u64>,
    recalling: bool,
    /// A saved `done/` listing was damaged: said for the first node only.
    listing_problem_said: bool,
}

/// The longest a dashboard's `done/` rounds wait for the cache to load.
const HISTORY_WAITS_FOR_CACHE: Duration = Duration::from_secs(5);

/// Loaded batches the fold may lag behind by: loading overlaps folding,
/// and memory holds at most this many batches at once. The core sees the
/// fold's progress only as often as it publishes (every 50 ms), so two
/// left the fold waiting for its next batch most of the time (a warm
/// launch at 10^6 took 3.2-3.8 s for 62 batches that the phases bench
/// folds in 1.2 s).
const BATCHES_AHEAD: u64 = 8;

impl CacheState {
    /// Every chunk has been loaded.
    fn load_done(&self) -> bool {
        self.load_from.is_none() && !self.loading
    }

    /// Loaded, and every batch is in the index the caller passes.
    fn loaded(&self, index: &Index) -> bool {
        self.load_done() && index.cache_batches() >= self.batches
    }

    /// Whether `done/` rounds may go to the index: once the cache is
    /// loaded, so a listed task is placed once, with its cached facts,
    /// instead of placed as DONE and then moved in every view as its facts
    /// arrive (that doubled the fold of a warm launch). Watching, not for
    /// longer than [`HISTORY_WAITS_FOR_CACHE`]: a slow cache never holds
    /// history back.
    fn lets_history_in(&self, now: Duration, watching: bool) -> bool {
        self.cache.is_none() || self.load_done() || (watching && now >= HISTORY_WAITS_FOR_CACHE)
    }

    fn saved(&self) -> bool {
        self.unsaved.is_empty() && !self.saving
    }

    fn jobs(&mut self, index: &Index, out: &mut Outputs) {
        out.events.extend(self.problem.take().map(Event::CacheProblem));
        let Some(cache) = &self.cache else { return };
        let folded = index.cache_batches() + BATCHES_AHEAD > self.batches;
        if let (Some(from), false, true) = (self.load_from, self.loading, folded) {
            self.loading = true;
            out.jobs.push(Job::LoadFacts { cache: cache.clone(), from });
        }
        if !self.saving && !self.unsaved.is_empty() {
            self.saving = true;
            out.jobs.push(Job::SaveFacts { cache: cache.clone(), facts: std::mem::take(&mut self.unsaved) });
        }
        if !self.recalling {
            let dropped =
                self.on_screen.iter().filter_map(|&id| index.task(id)).filter(|t| t.details_dropped);
            let at: Vec<u64> =
                dropped.map(|t| t.details_at).filter(|at| *at != 0 && !self.asked.contains(at)).collect();
            if !at.is_empty() {
                self.asked.extend(&at);
                self.recalling = true;
                out.jobs.push(Job::Recall { cache: cache.clone(), at });
            }
        }
    }

    fn keep(&mut self, event: &Event) {
        if self.cache.is_some() && !self.broken {
            self.unsaved.extend(Facts::of_event(event));
        }
    }
}

impl EngineCore {
    pub fn new(run: RunDir, config: CoreConfig) -> EngineCore {
        let start = Some(Duration::ZERO);
        EngineCore {
            planner: ReadPlanner::new(config.retry_reads_after),
            config,
            run,
            now: Duration::ZERO,
            paused: false,
            discovery: Schedule { due: start, ..Schedule::default() },
            heartbeats: Schedule { due: start, ..Schedule::default() },
            nodes: Vec::new(),
            by_name: HashMap::new(),
            paused_nodes: HashSet::new(),
            reads_in_flight: 0,
            reads_exhausted: false,
            reads_planned_after_fold: false,
            cache: CacheState::default(),
        }
    }

    /// Uses a warm-start cache (as `CacheUse::open` gave it: none, or why
    /// not, which is said once): loaded before any file is read, appended
    /// with every file read.
    pub fn with_cache(mut self, cache: Result<Option<Arc<FactsCache>>, String>) -> EngineCore {
        let (cache, problem) = match cache {
            Ok(cache) => (cache, None),
            Err(problem) => (None, Some(problem)),
        };
        let load_from = cache.is_some().then_some(0);
        self.cache = CacheState { load_from, cache, problem, ..CacheState::default() };
        self
    }

    pub fn run_dir(&self) -> &RunDir {
        &self.run
    }

    /// Whether a newer index could start reads (the runtime then tells the
    /// core about new snapshots; otherwise it need not wake for them).
    pub fn wants_index_changes(&self) -> bool {
        let loading = self.cache.load_from.is_some();
        loading || (self.config.reads != Reads::None && self.reads_in_flight < self.config.reads_in_flight)
    }

    /// Listing and read jobs in flight (for the one-shot driver and the fuzzer).
    pub fn jobs_in_flight(&self) -> usize {
        let cache = usize::from(self.cache.loading) + usize::from(self.cache.saving);
        self.listings_in_flight() + self.reads_in_flight + cache
    }

    pub fn on(&mut self, now: Now, input: Input, index: &Index) -> Outputs {
        self.now = self.now.max(now);
        let mut out = Outputs::default();
        // Before the input: a round just completed is checked on the next
        // call, once the caller has folded its events into `index`.
        self.settle_checks(index);
        match input {
            Input::Tick | Input::IndexChanged => {}
            Input::Refresh => self.refresh(),
            Input::SetPaused(paused) => {
                self.paused = paused;
                if !paused {
                    self.refresh();
                }
            }
            Input::Visible(ids) => {
                self.planner.hint(ids.clone());
                self.cache.on_screen = ids.clone();
                self.cache.asked.clear();
                out.events.push(Event::OnScreen(ids));
            }
            Input::Done(completion) => self.completed(completion, &mut out),
        }
        self.release_held_rounds(&mut out);
        if !self.paused {
            self.start_listings(&mut out);
        }
        self.start_reads(index, &mut out);
        self.cache.jobs(index, &mut out);
        out.wake_at = self.next_wake();
        out.settled = self.settled();
        out
    }

    fn refresh(&mut self) {
        let now = self.now;
        self.discovery.refresh(now);
        self.heartbeats.refresh(now);
        for node in &mut self.nodes {
            node.schedule.refresh(now);
            node.force_next = true;
            node.cadence.reset();
        }
    }

    fn watching(&self) -> bool {
        self.config.mode == Mode::Watch
    }

    fn completed(&mut self, completion: Completion, out: &mut Outputs) {
        let now = self.now;
        match completion {
            Completion::Discovered { nodes, paused } => {
                let next = self.watching().then_some(self.config.discovery_every);
                self.discovery.finished(now, next);
                out.events.push(Event::LeaseScan(nodes.problem));
                for name in nodes.names {
                    self.add_node(&name);
                }
                for (node, is_paused) in paused {
                    let known = self.paused_nodes.contains(&node);
                    if is_paused != known {
                        if is_paused {
                            self.paused_nodes.insert(node.clone());
                        } else {
                            self.paused_nodes.remove(&node);
                        }
                        out.events.push(Event::NodePaused { node: node.into(), paused: is_paused });
                    }
                }
            }
            Completion::Heartbeats { beats, unix_now } => {
                let next = self.watching().then_some(self.config.base);
                self.heartbeats.finished(now, next);
                out.events.push(Event::Tick(unix_now));
                out.events.push(Event::Heartbeats(beats));
            }
            Completion::Listed { part, scanner, round } => self.listed(part, scanner, round, out),
            Completion::FactsLoaded(loaded) => {
                self.cache.loading = false;
                self.cache.load_from = loaded.next;
                if !loaded.facts.is_empty() {
                    self.cache.batches += 1;
                    out.events.push(Event::Cached { facts: loaded.facts, at: loaded.at });
                }
                out.events.extend(loaded.problem.map(Event::CacheProblem));
            }
            Completion::FactsSaved(result) => {
                self.cache.saving = false;
                match result {
                    Ok(stored) if stored.is_empty() => {}
                    Ok(stored) => out.events.push(Event::CacheStored(stored)),
                    Err(problem) => {
                        self.cache.broken = true;
                        self.cache.unsaved = Vec::new();
                        out.events.push(Event::CacheProblem(format!("the cache is not saved: {problem}")));
                    }
                }
            }
            Completion::Recalled(result) => {
                self.cache.recalling = false;
                match result {
                    Ok(facts) => out.events.push(Event::Recalled(facts)),
                    Err(problem) => out.events.push(Event::CacheProblem(format!(
                        "details of older tasks could not be fetched from the cache: {problem}"
                    ))),
                }
            }
            Completion::Read { results } => {
                self.reads_in_flight = self.reads_in_flight.saturating_sub(1);
                for (key, event) in results {
                    self.planner.finished(key, now, event.is_none());
                    if let Some(event) = &event {
                        self.cache.keep(event);
                    }
                    out.events.extend(event);
                }
                // Settling, each file is tried once: the next batch is
                // planned from an index that has these events. Watching,
                // the planner's backoff keeps them from being read twice,
                // and the next batch starts at once (waiting for the fold
                // to publish would cost a frame per batch).
                self.reads_planned_after_fold = self.config.retry_reads_after.is_none();
            }
        }
    }

    fn add_node(&mut self, name: &str) {
        if self.by_name.contains_key(name) {
            return;
        }
        let name: Arc<str> = Arc::from(name);
        let c = &self.config;
        self.by_name.insert(name.clone(), self.nodes.len());
        self.nodes.push(NodeSlot {
            scanner: Some(Box::new(
                NodeScanner::new(&self.run, &name)
                    .with_saved_listings(self.cache.cache.clone())
                    .parking_from(c.park_listings_from),
            )),
            name,
            cadence: Cadence::new(c.base, c.idle_max, c.full_rescan_every),
            phase: NodePhase::Idle,
            schedule: Schedule { due: Some(self.now), ..Schedule::default() },
            force: false,
            force_next: false,
            changed: false,
            check_after_round: false,
            held: None,
        });
    }

    fn listed(&mut self, part: Part, mut scanner: Box<NodeScanner>, round: Round, out: &mut Outputs) {
        if let Some(problem) = scanner.take_problem().filter(|_| !self.cache.listing_problem_said) {
            self.cache.listing_problem_said = true;
            out.events.push(Event::CacheProblem(problem));
        }
        let Some(&i) = self.by_name.get(scanner.node()) else { return };
        let history = !self.history_waits();
        let node = &mut self.nodes[i];
        node.scanner = Some(scanner);
        node.changed |= round.dirs.iter().any(|(_, o)| matches!(o, DirOutcome::Changed { .. }));
        match part {
            Part::Live => {
                node.phase = NodePhase::BetweenParts;
                out.events.push(Event::PartialRound(round));
            }
            Part::Done if history => self.end_round(i, round, out),
            Part::Done => {
                node.phase = NodePhase::Held;
                node.held = Some(round);
            }
        }
    }

    /// Rounds held for the cache go to the index once it is loaded (its
    /// last facts are in the events before them) or the wait is over.
    fn release_held_rounds(&mut self, out: &mut Outputs) {
        if self.history_waits() {
            return;
        }
        for i in 0..self.nodes.len() {
            if let Some(round) = self.nodes[i].held.take() {
                self.end_round(i, round, out);
            }
        }
    }

    /// `done/` rounds wait for the cache now (see `CacheState::lets_history_in`).
    fn history_waits(&self) -> bool {
        !self.cache.lets_history_in(self.now, self.watching())
    }

    /// A node's round is complete: to the index, and the next one planned.
    fn end_round(&mut self, i: usize, round: Round, out: &mut Outputs) {
        let (now, watching) = (self.now, self.watching());
        let node = &mut self.nodes[i];
        node.phase = NodePhase::Idle;
        out.events.push(Event::Round(round));
        let wait = node.cadence.after_round(std::mem::take(&mut node.changed));
        let refreshed = node.schedule.finished(now, watching.then_some(wait));
        if refreshed {
            node.force_next = true;
            node.cadence.reset();
        }
        node.check_after_round = !watching && node.schedule.runs == 1;
    }

    /// Settle mode: a node whose first round left a task unaccounted for
    /// (caught between two listings) gets one more round, which settles it
    /// (moved, or really lost).
    fn settle_checks(&mut self, index: &Index) {
        for node in &mut self.nodes {
            if std::mem::take(&mut node.check_after_round)
                && index.find_node(&node.name).is_some_and(|id| index.unaccounted_on(id) > 0)
            {
                node.schedule.due = Some(self.now);
            }
        }
    }

    fn listings_in_flight(&self) -> usize {
        let nodes =
            self.nodes.iter().filter(|n| matches!(n.phase, NodePhase::Live | NodePhase::Done)).count();
        nodes + usize::from(self.discovery.busy) + usize::from(self.heartbeats.busy)
    }

    fn start_listings(&mut self, out: &mut Outputs) {
        let now = self.now;
        let mut free = self.config.max_listings.saturating_sub(self.listings_in_flight());
        // Rounds already half done first: their live part is on screen and
        // their done/ part completes them. While the cache loads, their
        // rounds wait for it (see `listed`), but the listing goes on: the
        // listers run behind the fold (`io_pool::Behind`), so they take the
        // other core, not the fold's.
        for node in &mut self.nodes {
            if free == 0 {
                return;
            }
            if node.phase == NodePhase::BetweenParts {
                let Some(scanner) = node.scanner.take() else { continue };
                node.phase = NodePhase::Done;
                out.jobs.push(Job::List(ListJob::new(Part::Done, node.force, scanner)));
                free -= 1;
            }
        }
        if free > 0 && self.discovery.due_now(now) {
            self.discovery.started();
            out.jobs.push(Job::Discover);
            free -= 1;
        }
        if free > 0 && self.heartbeats.due_now(now) {
            self.heartbeats.started();
            out.jobs.push(Job::Heartbeats);
            free -= 1;
        }
        // Then the nodes due longest ago.
        let mut due: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].phase == NodePhase::Idle && self.nodes[i].schedule.due_now(now))
            .collect();
        due.sort_by_key(|&i| self.nodes[i].schedule.due);
        let settle = !self.watching();
        for i in due.into_iter().take(free) {
            let node = &mut self.nodes[i];
            let Some(scanner) = node.scanner.take() else { continue };
            node.force = settle || std::mem::take(&mut node.force_next) || node.cadence.next_is_full();
            node.phase = NodePhase::Live;
            node.schedule.started();
            out.jobs.push(Job::List(ListJob::new(Part::Live, node.force, scanner)));
        }
    }

    fn start_reads(&mut self, index: &Index, out: &mut Outputs) {
        if std::mem::take(&mut self.reads_planned_after_fold) {
            self.reads_exhausted = false;
            return;
        }
        if self.config.reads == Reads::None {
            self.reads_exhausted = true;
            return;
        }
        if !self.cache.loaded(index) {
            // What the cache has is never read: wait for all of it.
            self.reads_exhausted = false;
            return;
        }
        if !self.watching() && !self.listings_settled() {
            // Settling, the files are read once every node is listed: one
            // walk through what they owe, nothing listed behind it.
            self.reads_exhausted = false;
            return;
        }
        while self.reads_in_flight < self.config.reads_in_flight {
            let specs = self.config.reads == Reads::All;
            let jobs: Vec<ReadJob> =
                self.planner.next_batch(index, &self.run, self.config.read_batch, specs, self.now);
            if jobs.is_empty() {
                self.reads_exhausted = true;
                return;
            }
            self.reads_exhausted = false;
            self.planner.started(&jobs);
            self.reads_in_flight += 1;
            out.jobs.push(Job::Read(jobs));
        }
    }

    /// When `node`'s next round falls due, if it is waiting for one.
    pub fn next_round_of(&self, node: &str) -> Option<Now> {
        let slot = &self.nodes[*self.by_name.get(node)?];
        (slot.phase == NodePhase::Idle).then_some(slot.schedule.due).flatten()
    }

    /// The next wake-up the core wants (as in [`Outputs::wake_at`]).
    pub fn next_wake(&self) -> Option<Now> {
        if self.paused {
            return None;
        }
        let idle_nodes = self.nodes.iter().filter(|n| n.phase == NodePhase::Idle).map(|n| &n.schedule);
        let dues = [&self.discovery, &self.heartbeats]
            .into_iter()
            .chain(idle_nodes)
            .filter(|s| !s.busy)
            .filter_map(|s| s.due);
        // History held for the cache goes to the index when the wait is
        // over, whatever else wakes the core meanwhile.
        let waiting = self.nodes.iter().any(|n| n.phase == NodePhase::Held) && self.history_waits();
        let history = (waiting && self.watching()).then_some(HISTORY_WAITS_FOR_CACHE);
        let earliest = dues.chain(history).min()?;
        // A source due already waits for a listing slot: a finishing job
        // wakes the core, no timer needed.
        (earliest > self.now).then_some(earliest)
    }

    /// Settle mode: discovery, heartbeats and every node's rounds are done.
    fn listings_settled(&self) -> bool {
        let looked = self.discovery.runs > 0 && self.heartbeats.runs > 0;
        looked
            && self.nodes.iter().all(|n| {
                n.phase == NodePhase::Idle
                    && !n.check_after_round
                    && !n.schedule.due_now(self.now)
                    && n.schedule.runs > 0
            })
    }

    fn settled(&self) -> bool {
        !self.watching()
            && self.listings_settled()
            && self.reads_in_flight == 0
            && self.reads_exhausted
            && self.cache.load_done()
            && self.cache.saved()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::RunFs;
    use crate::sim::nfs::NfsModel;

    fn model() -> NfsModel {
        let model = NfsModel::new(&["a", "b"], 60, 1_736_000_000);
        model.restart_runner(0);
        model.restart_runner(1);
        model.set_move_bound(false);
        model
    }

    /// Runs every job at once and delivers it; returns the listings made.
    fn run_all(
        core: &mut EngineCore,
        now: Now,
        index: &mut Index,
        fs: &dyn RunFs,
        mut jobs: Vec<Job>,
    ) -> usize {
        let mut listings = 0;
        while let Some(job) = jobs.pop() {
            listings += usize::from(matches!(job, Job::List(_)));
            let completion = job.execute(fs, &fs_run(fs), 1_736_000_000);
            let out = core.on(now, Input::Done(completion), index);
            out.events.into_iter().for_each(|e| index.apply(e));
            jobs.extend(out.jobs);
            jobs.extend(core.on(now, Input::IndexChanged, index).jobs);
        }
        listings
    }

    fn fs_run(_: &dyn RunFs) -> RunDir {
        model().run_dir().clone()
    }

    #[test]
    fn a_refresh_during_a_listing_relists_that_node_once_it_is_done() {
        let model = model();
        let mut index = Index::new(60);
        let mut core = EngineCore::new(model.run_dir().clone(), CoreConfig::watch(2));
        let first = core.on(Duration::ZERO, Input::Tick, &index).jobs;
        run_all(&mut core, Duration::ZERO, &mut index, &model, first);
        let t = Duration::from_secs(20);
        let mut out = core.on(t, Input::Tick, &index);
        let live =
            out.jobs.iter().position(|j| matches!(j, Job::List(l) if l.node() == "a")).expect("a is due");
        let job = out.jobs.swap_remove(live);
        // The refresh comes while a's live part is being listed.
        let refreshed = core.on(t, Input::Refresh, &index);
        assert!(
            !refreshed.jobs.iter().any(|j| matches!(j, Job::List(l) if l.node() == "a")),
            "one listing of a node at a time"
        );
        let done = core.on(t, Input::Done(job.execute(&model, model.run_dir(), 0)), &index);
        let Some(Job::List(rest)) =
            done.jobs.into_iter().find(|j| matches!(j, Job::List(l) if l.node() == "a"))
        else {
            panic!("a's done/ part follows")
        };
        assert_eq!(rest.part(), Part::Done);
        let after = core.on(t, Input::Done(Job::List(rest).execute(&model, model.run_dir(), 0)), &index);
        let again = after.jobs.iter().find_map(|j| match j {
            Job::List(l) if l.node() == "a" => Some((l.part(), l.force())),
            _ => None,
        });
        assert_eq!(again, Some((Part::Live, true)), "the refresh is not lost: a full round starts at once");
    }

    #[test]
    fn listings_in_flight_stay_under_the_cap_and_paused_starts_nothing() {
        let model = NfsModel::new(&["a", "b", "c", "d", "e", "f"], 60, 1_736_000_000);
        let index = Index::new(60);
        let config = CoreConfig { max_listings: 2, ..CoreConfig::watch(2) };
        let mut core = EngineCore::new(model.run_dir().clone(), config);
        let out = core.on(Duration::ZERO, Input::Tick, &index);
        assert_eq!(out.jobs.len(), 2, "discovery and heartbeats fill the two slots");
        let discover = out.jobs.into_iter().find(|j| matches!(j, Job::Discover)).unwrap();
        let out = core.on(Duration::ZERO, Input::Done(discover.execute(&model, model.run_dir(), 0)), &index);
        assert_eq!(out.jobs.len(), 1, "six nodes due, one free slot");
        assert_eq!(core.jobs_in_flight(), 2);
        core.on(Duration::ZERO, Input::SetPaused(true), &index);
        let out = core.on(Duration::from_secs(60), Input::Tick, &index);
        assert!(out.jobs.is_empty() && out.wake_at.is_none(), "paused: no jobs, no timer");
    }

    #[test]
    fn settle_mode_settles_once_everything_was_listed_and_read() {
        let model = model();
        model.submit(0);
        let name = model.submit(1);
        model.claim(1, 0);
        model.write_result(1, 0, 3);
        model.archive_spec(1, 0);
        let mut index = Index::new(60);
        let mut core = EngineCore::new(model.run_dir().clone(), CoreConfig::settle(Reads::All, 2));
        let first = core.on(Duration::ZERO, Input::Tick, &index);
        assert!(!first.settled);
        let listings = run_all(&mut core, Duration::ZERO, &mut index, &model, first.jobs);
        assert_eq!(listings, 4, "two nodes, two parts each, once");
        assert!(core.on(Duration::ZERO, Input::Tick, &index).settled);
        let task = index.task(index.find(&name).unwrap()).unwrap();
        assert_eq!((task.state, task.exit_code()), (crate::index::TaskState::Failed, Some(3)));
        assert_eq!(index.unread_count(), 0);
    }

    #[test]
    fn history_rounds_wait_for_the_cache_to_load_but_not_for_long() {
        let model = model();
        let tmp = tempfile::tempdir().unwrap();
        let cache = Arc::new(FactsCache::at(tmp.path().join("facts.bin"), "run".into()));
        let index = Index::new(60);
        let mut core =
            EngineCore::new(model.run_dir().clone(), CoreConfig::watch(2)).with_cache(Ok(Some(cache)));
        let is_history = |j: &Job| matches!(j, Job::List(l) if l.part() == Part::Done);
        let rounds = |out: &Outputs| out.events.iter().filter(|e| matches!(e, Event::Round(_))).count();
        // Everything runs but the cache load: the live parts are listed and
        // go to the index; the done/ parts are listed and wait.
        let mut pending = core.on(Duration::ZERO, Input::Tick, &index).jobs;
        let (mut load, mut history_listed, mut history_outstanding) = (None, 0, 0);
        for _ in 0..10 {
            let mut next = Vec::new();
            for job in pending.drain(..) {
                if matches!(job, Job::LoadFacts { .. }) {
                    load = Some(job);
                    continue;
                }
                if is_history(&job) {
                    history_listed += 1;
                    history_outstanding -= 1;
                }
                let done = job.execute(&model, model.run_dir(), 0);
                let out = core.on(Duration::ZERO, Input::Done(done), &index);
                assert_eq!(rounds(&out), 0, "a done/ round went to the index before the cache");
                history_outstanding += out.jobs.iter().filter(|j| is_history(j)).count();
                assert!(
                    history_outstanding <= CoreConfig::watch(2).max_listings,
                    "done/ listings stay within the cap while the cache loads"
                );
                next.extend(out.jobs);
            }
            pending = next;
        }
        assert_eq!(history_listed, 2, "done/ is listed while the cache loads");
        let load = load.expect("the cache is being loaded");
        // Loaded (an empty file): the held rounds go to the index at once.
        let loaded = core.on(Duration::ZERO, Input::Done(load.execute(&model, model.run_dir(), 0)), &index);
        assert_eq!(rounds(&loaded), 2, "done/ rounds follow the cache");

        // A cache that takes long does not hold the history back for long
        // (nothing else is due before then: the wait has its own timer).
        let tmp = tempfile::tempdir().unwrap();
        let cache = Arc::new(FactsCache::at(tmp.path().join("facts.bin"), "run".into()));
        let slow = CoreConfig { discovery_every: Duration::from_secs(60), ..CoreConfig::watch(60) };
        let mut core = EngineCore::new(model.run_dir().clone(), slow).with_cache(Ok(Some(cache)));
        let mut pending = core.on(Duration::ZERO, Input::Tick, &index).jobs;
        for _ in 0..10 {
            let mut next = Vec::new();
            for job in pending.drain(..).filter(|j| !matches!(j, Job::LoadFacts { .. })) {
                let done = job.execute(&model, model.run_dir(), 0);
                next.extend(core.on(Duration::ZERO, Input::Done(done), &index).jobs);
            }
            pending = next;
        }
        let idle = core.on(Duration::ZERO, Input::Tick, &index);
        assert_eq!(rounds(&idle), 0);
        assert_eq!(idle.wake_at, Some(HISTORY_WAITS_FOR_CACHE), "a timer ends the wait");
        let later = core.on(HISTORY_WAITS_FOR_CACHE, Input::Tick, &index);
        assert_eq!(rounds(&later), 2, "done/ rounds go to the index after the wait");
    }
}
