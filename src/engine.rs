//! The live engine for one lease: scanners, heartbeat reader and hydrator
//! on a smol executor, the index fold on its own thread, and the latest
//! snapshot published through a [`SnapshotSlot`].
//!
//! Owns: threads, cadence, back-pressure and shutdown. Must not: decide
//! task state (the index does) or draw anything (the UI does).

use crate::clock::unix_now;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use futures_lite::FutureExt;
use smol::lock::Semaphore;
use smol::{Executor, Timer};

use crate::hydrate::{perform, ReadPlanner};
use crate::index::{Event, Index, TaskId};
use crate::paths::{RunDir, UiConfig};
use crate::scan::{discover_nodes, read_heartbeats, read_paused, Cadence, ListingSource, NodeScanner};

/// The newest snapshot of the index, and a way to wait for a newer one.
#[derive(Clone)]
pub struct SnapshotSlot {
    inner: Arc<SlotInner>,
}

struct SlotInner {
    latest: Mutex<Arc<Index>>,
    changed: event_listener::Event,
}

impl SnapshotSlot {
    pub fn new(index: Index) -> SnapshotSlot {
        let inner = SlotInner { latest: Mutex::new(Arc::new(index)), changed: event_listener::Event::new() };
        SnapshotSlot { inner: Arc::new(inner) }
    }

    /// O(1): an `Arc` clone under a lock held for that long only.
    pub fn latest(&self) -> Arc<Index> {
        self.inner.latest.lock().map(|g| g.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    pub fn publish(&self, index: Arc<Index>) {
        match self.inner.latest.lock() {
            Ok(mut guard) => *guard = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
        self.inner.changed.notify(usize::MAX);
    }

    /// Waits until the published revision differs from `seen`.
    pub async fn newer_than(&self, seen: u64) -> Arc<Index> {
        loop {
            let listener = self.inner.changed.listen();
            let latest = self.latest();
            if latest.revision() != seen {
                return latest;
            }
            listener.await;
        }
    }
}

/// What the engine is asked to do while it runs.
#[derive(Debug, Clone)]
pub enum Control {
    /// Scan every node now, and back to the quick cadence.
    RefreshNow,
    /// Stop or resume scanning (the UI's "pause auto-refresh").
    SetPaused(bool),
    /// Rows on screen: read their files before anything else.
    Visible(Vec<TaskId>),
}

#[derive(Clone)]
pub struct EngineConfig {
    pub run_dir: RunDir,
    pub ui: UiConfig,
    pub source: Arc<dyn ListingSource>,
    /// Read specs and results in the background.
    pub hydrate: bool,
    /// Listings in flight at once, across all nodes.
    pub max_listings: usize,
    /// Scan cadence bounds (spec: 2 s while changing, up to 10 s idle).
    pub idle_max: Duration,
    /// Every this many rounds a node ignores directory stamps.
    pub full_rescan_every: u32,
}

impl EngineConfig {
    pub fn new(run_dir: RunDir, ui: UiConfig, source: Arc<dyn ListingSource>) -> EngineConfig {
        EngineConfig {
            run_dir,
            ui,
            source,
            hydrate: true,
            max_listings: 4,
            idle_max: Duration::from_secs(10),
            full_rescan_every: 15,
        }
    }
}

/// Snapshots are published at most this often while events stream in.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);
/// Files read per hydration batch.
const HYDRATE_BATCH: usize = 256;

/// A running engine. Dropping it stops every thread it started.
pub struct Engine {
    slot: SnapshotSlot,
    control: Sender<Control>,
    stop: Sender<()>,
}

impl Engine {
    pub fn start(config: EngineConfig) -> Engine {
        let slot = SnapshotSlot::new(Index::new(config.ui.hb_stale_s));
        let (events_tx, events_rx) = async_channel::bounded::<Event>(256);
        let (control_tx, control_rx) = async_channel::unbounded::<Control>();
        let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);

        let fold = {
            let slot = slot.clone();
            let index = Index::new(config.ui.hb_stale_s);
            std::thread::Builder::new()
                .name("leaseq-index".into())
                .spawn(move || smol::block_on(fold_events(index, events_rx, slot)))
                .expect("spawn index thread")
        };
        let io = {
            let slot = slot.clone();
            std::thread::Builder::new()
                .name("leaseq-io".into())
                .spawn(move || {
                    let ex = Arc::new(Executor::new());
                    let shared = Arc::new(Shared::new(&config, events_tx, slot));
                    ex.spawn(dispatch_controls(shared.clone(), control_rx)).detach();
                    ex.spawn(discovery_loop(shared.clone(), ex.clone())).detach();
                    ex.spawn(heartbeat_loop(shared.clone())).detach();
                    if config.hydrate {
                        ex.spawn(hydrate_loop(shared.clone())).detach();
                    }
                    // Runs until the stop channel closes (the Engine dropped).
                    let _ = smol::block_on(ex.run(stop_rx.recv()));
                })
                .expect("spawn io thread")
        };
        // Both threads are detached: they end when the channels close.
        drop((fold, io));
        Engine { slot, control: control_tx, stop: stop_tx }
    }

    pub fn snapshots(&self) -> SnapshotSlot {
        self.slot.clone()
    }

    /// Never blocks: the control channel is unbounded.
    pub fn send(&self, control: Control) {
        let _ = self.control.try_send(control);
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop.close();
        self.control.close();
        // The threads end on their own once the channels close; nothing
        // waits for them (a hung NFS read must not hang the caller).
    }
}

/// What the engine's async tasks share.
struct Shared {
    run: RunDir,
    source: Arc<dyn ListingSource>,
    events: Sender<Event>,
    slot: SnapshotSlot,
    listings: Semaphore,
    paused: AtomicBool,
    refresh: event_listener::Event,
    refresh_generation: AtomicU64,
    planner: Mutex<ReadPlanner>,
    hinted: event_listener::Event,
    base: Duration,
    idle_max: Duration,
    full_every: u32,
}

impl Shared {
    fn new(config: &EngineConfig, events: Sender<Event>, slot: SnapshotSlot) -> Shared {
        Shared {
            run: config.run_dir.clone(),
            source: config.source.clone(),
            events,
            slot,
            listings: Semaphore::new(config.max_listings.max(1)),
            paused: AtomicBool::new(false),
            refresh: event_listener::Event::new(),
            refresh_generation: AtomicU64::new(0),
            planner: Mutex::new(ReadPlanner::default()),
            hinted: event_listener::Event::new(),
            base: Duration::from_secs(config.ui.refresh_s.max(1)),
            idle_max: config.idle_max,
            full_every: config.full_rescan_every,
        }
    }

    fn paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// How many "refresh now"s have been asked for: a loop reads it before
    /// its work and hands it to [`Shared::sleep_or_refresh`].
    fn refresh_seen(&self) -> u64 {
        self.refresh_generation.load(Ordering::SeqCst)
    }

    fn refresh_now(&self) {
        self.refresh_generation.fetch_add(1, Ordering::SeqCst);
        self.refresh.notify(usize::MAX);
    }

    /// Sleeps `wait`, or less if "refresh now" arrives; true if it did. A
    /// refresh asked for since `seen` (while the loop's listing ran, when
    /// no one was listening) returns at once: it is never lost, and the
    /// next listing sees what changed after it was asked for.
    async fn sleep_or_refresh(&self, wait: Duration, seen: u64) -> bool {
        let listener = self.refresh.listen();
        if self.refresh_seen() != seen {
            return true;
        }
        async {
            Timer::after(wait).await;
            false
        }
        .or(async {
            listener.await;
            true
        })
        .await
    }

    async fn emit(&self, event: Event) -> bool {
        self.events.send(event).await.is_ok()
    }

    /// Runs blocking filesystem work off the executor, bounded in number.
    async fn listing<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> T {
        let _permit = self.listings.acquire().await;
        smol::unblock(work).await
    }
}

async fn fold_events(mut index: Index, events: Receiver<Event>, slot: SnapshotSlot) {
    let mut last_publish = Instant::now() - PUBLISH_EVERY;
    let mut dirty = false;
    loop {
        let wait = PUBLISH_EVERY.saturating_sub(last_publish.elapsed());
        let next = async { events.recv().await.ok().map(Some) }
            .or(async {
                if dirty {
                    Timer::after(wait).await;
                    Some(None)
                } else {
                    std::future::pending().await
                }
            })
            .await;
        match next {
            None => break, // all senders gone
            Some(Some(event)) => {
                index.apply(event);
                dirty = true;
                // Drain what is queued, within the publish budget.
                while last_publish.elapsed() < PUBLISH_EVERY {
                    match events.try_recv() {
                        Ok(event) => index.apply(event),
                        Err(_) => break,
                    }
                }
            }
            Some(None) => {}
        }
        if dirty && (last_publish.elapsed() >= PUBLISH_EVERY || events.is_empty()) {
            slot.publish(Arc::new(index.clone()));
            last_publish = Instant::now();
            dirty = false;
        }
    }
    if dirty {
        slot.publish(Arc::new(index));
    }
}

async fn dispatch_controls(shared: Arc<Shared>, controls: Receiver<Control>) {
    while let Ok(control) = controls.recv().await {
        match control {
            Control::RefreshNow => shared.refresh_now(),
            Control::SetPaused(paused) => {
                shared.paused.store(paused, Ordering::Relaxed);
                if !paused {
                    shared.refresh_now();
                }
            }
            Control::Visible(ids) => {
                if let Ok(mut planner) = shared.planner.lock() {
                    planner.hint(ids);
                }
                shared.hinted.notify(usize::MAX);
            }
        }
    }
}

async fn discovery_loop(shared: Arc<Shared>, ex: Arc<Executor<'static>>) {
    let mut known: HashSet<String> = HashSet::new();
    let mut paused_nodes: HashSet<String> = HashSet::new();
    loop {
        let seen = shared.refresh_seen();
        if !shared.paused() {
            let (source, run) = (shared.source.clone(), shared.run.clone());
            let listed = shared
                .listing(move || {
                    let nodes = discover_nodes(&*source, &run);
                    let paused: Vec<(String, bool)> =
                        nodes.names.iter().map(|n| (n.clone(), read_paused(&*source, &run, n))).collect();
                    (nodes, paused)
                })
                .await;
            let (nodes, paused) = listed;
            if !shared.emit(Event::LeaseScan(nodes.problem)).await {
                return;
            }
            for node in nodes.names {
                if known.insert(node.clone()) {
                    ex.spawn(node_loop(shared.clone(), node)).detach();
                }
            }
            for (node, is_paused) in paused {
                if is_paused != paused_nodes.contains(&node) {
                    if is_paused {
                        paused_nodes.insert(node.clone());
                    } else {
                        paused_nodes.remove(&node);
                    }
                    if !shared.emit(Event::NodePaused { node: node.into(), paused: is_paused }).await {
                        return;
                    }
                }
            }
        }
        shared.sleep_or_refresh(shared.idle_max.min(Duration::from_secs(5)), seen).await;
    }
}

async fn node_loop(shared: Arc<Shared>, node: String) {
    let mut scanner = Some(NodeScanner::new(&shared.run, &node));
    let mut cadence = Cadence::new(shared.base, shared.idle_max, shared.full_every);
    loop {
        let seen = shared.refresh_seen();
        let mut wait = cadence.current();
        if !shared.paused() {
            let force = cadence.next_is_full();
            let Some(mut owned) = scanner.take() else { return };
            // Live directories first, sent at once: running and pending
            // tasks show before a large done/ has been listed.
            let source = shared.source.clone();
            let (mut owned, live) = shared
                .listing(move || {
                    let round = owned.start_round(&*source, force);
                    (owned, round)
                })
                .await;
            let mut changed = has_changes(&live);
            if !shared.emit(Event::PartialRound(live)).await {
                return;
            }
            let source = shared.source.clone();
            let (owned, done) = shared
                .listing(move || {
                    let round = owned.finish_round(&*source, force);
                    (owned, round)
                })
                .await;
            scanner = Some(owned);
            changed |= has_changes(&done);
            if !shared.emit(Event::Round(done)).await {
                return;
            }
            wait = cadence.after_round(changed);
        }
        if shared.sleep_or_refresh(wait, seen).await {
            cadence.reset();
        }
    }
}

fn has_changes(round: &crate::index::Round) -> bool {
    round.dirs.iter().any(|(_, o)| matches!(o, crate::index::DirOutcome::Changed { .. }))
}

async fn heartbeat_loop(shared: Arc<Shared>) {
    loop {
        let seen = shared.refresh_seen();
        if !shared.paused() {
            let (source, run) = (shared.source.clone(), shared.run.clone());
            let beats = shared.listing(move || read_heartbeats(&*source, &run)).await;
            if !shared.emit(Event::Tick(unix_now())).await || !shared.emit(Event::Heartbeats(beats)).await {
                return;
            }
        }
        shared.sleep_or_refresh(shared.base, seen).await;
    }
}

async fn hydrate_loop(shared: Arc<Shared>) {
    loop {
        let index = shared.slot.latest();
        let jobs = match shared.planner.lock() {
            Ok(mut planner) => planner.next_batch(&index, &shared.run, HYDRATE_BATCH, Instant::now()),
            Err(_) => return,
        };
        if jobs.is_empty() {
            // Nothing to read until the index changes or rows are hinted.
            let hinted = shared.hinted.listen();
            let slot = shared.slot.clone();
            let revision = index.revision();
            async {
                slot.newer_than(revision).await;
            }
            .or(hinted)
            .await;
            continue;
        }
        let results =
            smol::unblock(move || jobs.into_iter().map(|job| (job.id, perform(&job))).collect::<Vec<_>>())
                .await;
        for (id, event) in results {
            if let Ok(mut planner) = shared.planner.lock() {
                planner.attempted(id, Instant::now());
            }
            if let Some(event) = event {
                if !shared.emit(event).await {
                    return;
                }
            }
        }
    }
}
