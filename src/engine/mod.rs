//! The live engine for one lease: the [`EngineCore`] driven on its own
//! thread, its jobs on a bounded [`IoPool`], the index fold on another
//! thread, and the latest snapshot published through a [`SnapshotSlot`].
//!
//! Owns: threads, the clock, back-pressure and shutdown. Must not: decide
//! what to list or read next (the core does), decide task state (the
//! index does) or draw anything (the UI does).

pub mod core;
pub mod jobs;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_channel::{Receiver, Sender};
use futures_lite::FutureExt;
use smol::Timer;

use self::core::{CoreConfig, EngineCore, Input};
use self::jobs::{Completion, Job};
use crate::cache::CacheUse;
use crate::index::{Event, Index, TaskId};
use crate::io_pool::{run_behind, Behind, IoPool, PoolGuard};
use crate::paths::{RunDir, UiConfig};
use crate::scan::RunFs;

/// The newest snapshot of the index, and a way to wait for a newer one.
#[derive(Clone)]
pub struct SnapshotSlot {
    inner: Arc<SlotInner>,
}

struct SlotInner {
    latest: Mutex<Arc<Index>>,
    changed: event_listener::Event,
    /// Jobs in flight and since when, for "stuck" reports.
    in_flight: Mutex<BTreeMap<u64, (String, Instant)>>,
    /// The warm-start cache, once the engine opened it (a search reads
    /// the details the index let go from it).
    cache: std::sync::OnceLock<Arc<crate::cache::FactsCache>>,
}

impl SnapshotSlot {
    pub fn new(index: Index) -> SnapshotSlot {
        let inner = SlotInner {
            latest: Mutex::new(Arc::new(index)),
            changed: event_listener::Event::new(),
            in_flight: Mutex::new(BTreeMap::new()),
            cache: std::sync::OnceLock::new(),
        };
        SnapshotSlot { inner: Arc::new(inner) }
    }

    /// O(1): an `Arc` clone under a lock held for that long only.
    pub fn latest(&self) -> Arc<Index> {
        self.inner.latest.lock().map(|g| g.clone()).unwrap_or_else(|p| p.into_inner().clone())
    }

    /// The cache the engine uses, once it is open.
    pub fn cache(&self) -> Option<Arc<crate::cache::FactsCache>> {
        self.inner.cache.get().cloned()
    }

    pub fn publish(&self, index: Arc<Index>) {
        match self.inner.latest.lock() {
            Ok(mut guard) => *guard = index,
            Err(poisoned) => *poisoned.into_inner() = index,
        }
        self.inner.changed.notify(usize::MAX);
    }

    /// The job running longest, if it has run `at_least`: what it is and
    /// for how long (a hung NFS call shows here). O(1).
    pub fn stuck(&self, at_least: Duration) -> Option<(String, Duration)> {
        let jobs = self.inner.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = jobs.values().min_by_key(|(_, since)| *since)?;
        let age = oldest.1.elapsed();
        (age >= at_least).then(|| (oldest.0.clone(), age))
    }

    fn job_started(&self, id: u64, what: String) {
        let mut jobs = self.inner.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        jobs.insert(id, (what, Instant::now()));
    }

    fn job_finished(&self, id: u64) {
        self.inner.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
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
    /// List everything now, ignoring directory stamps.
    RefreshNow,
    /// Stop or resume scanning (the UI's "pause auto-refresh").
    SetPaused(bool),
    /// Rows on screen: read their files before anything else.
    Visible(Vec<TaskId>),
}

impl Control {
    fn input(self) -> Input {
        match self {
            Control::RefreshNow => Input::Refresh,
            Control::SetPaused(paused) => Input::SetPaused(paused),
            Control::Visible(ids) => Input::Visible(ids),
        }
    }
}

#[derive(Clone)]
pub struct EngineConfig {
    pub run_dir: RunDir,
    pub ui: UiConfig,
    pub source: Arc<dyn RunFs>,
    pub core: CoreConfig,
    /// Opened on the engine's thread (it may touch a slow mount).
    pub cache: CacheUse,
    /// The most finished tasks' details held beyond those on screen
    /// (`--max-tasks`); `None`: all.
    pub details_limit: Option<usize>,
}

impl EngineConfig {
    pub fn new(run_dir: RunDir, ui: UiConfig, source: Arc<dyn RunFs>) -> EngineConfig {
        let core = CoreConfig::watch(ui.refresh_s);
        EngineConfig { run_dir, ui, source, core, cache: CacheUse::Off, details_limit: None }
    }

    pub fn with_details_limit(self, limit: usize) -> EngineConfig {
        EngineConfig { details_limit: Some(limit), ..self }
    }

    pub fn with_cache(self, cache: CacheUse) -> EngineConfig {
        EngineConfig { cache, ..self }
    }
}

/// Snapshots are published at most this often while events stream in.
const PUBLISH_EVERY: Duration = Duration::from_millis(50);

/// A running engine. Dropping it stops every thread it started (a thread
/// in a hung filesystem call ends when the call returns).
pub struct Engine {
    slot: SnapshotSlot,
    control: Sender<Control>,
    pool: PoolGuard,
    _cache_pool: PoolGuard,
}

impl Engine {
    pub fn start(config: EngineConfig) -> Engine {
        let slot = SnapshotSlot::new(Index::new(config.ui.hb_stale_s));
        let (events_tx, events_rx) = async_channel::bounded::<Event>(256);
        // What the screen waits for (details fetched back for the rows
        // shown) passes the history still queued for the fold.
        let (urgent_tx, urgent_rx) = async_channel::unbounded::<Event>();
        let (control_tx, control_rx) = async_channel::unbounded::<Control>();
        // The core never has more listings and reads in flight than this.
        let pool = IoPool::new("leaseq-io", config.core.max_listings + config.core.reads_in_flight);
        // Loading, saving and fetching back from the cache (one job of each
        // at a time): the fold's feeder and what the screen waits for run
        // ahead of the listers.
        let cache_pool = IoPool::running_behind("leaseq-cache", 3, Behind::Pump);

        let fold = {
            let slot = slot.clone();
            let index = Index::new(config.ui.hb_stale_s);
            let index = match config.details_limit {
                Some(limit) => index.with_details_limit(limit),
                None => index,
            };
            std::thread::Builder::new()
                .name("leaseq-index".into())
                .spawn(move || {
                    run_behind(Behind::Pump);
                    smol::block_on(fold_events(index, Inbound { events: events_rx, urgent: urgent_rx }, slot))
                })
                .expect("spawn index thread")
        };
        let driver = {
            let (slot, pool, cache_pool) = (slot.clone(), pool.clone(), cache_pool.clone());
            std::thread::Builder::new()
                .name("leaseq-engine".into())
                .spawn(move || {
                    run_behind(Behind::Pump);
                    let cache = config.cache.open(&config.run_dir.0);
                    if let Ok(Some(open)) = &cache {
                        let _ = slot.inner.cache.set(open.clone());
                    }
                    let core = EngineCore::new(config.run_dir.clone(), config.core.clone()).with_cache(cache);
                    let runtime = Runtime {
                        fs: config.source,
                        slot,
                        pool,
                        cache_pool,
                        events: events_tx,
                        urgent: urgent_tx,
                        next_job: 0,
                    };
                    smol::block_on(runtime.drive(core, control_rx));
                })
                .expect("spawn engine thread")
        };
        // Both threads are detached: they end when the channels close.
        drop((fold, driver));
        Engine { slot, control: control_tx, pool: PoolGuard(pool), _cache_pool: PoolGuard(cache_pool) }
    }

    pub fn snapshots(&self) -> SnapshotSlot {
        self.slot.clone()
    }

    /// Never blocks: the control channel is unbounded.
    pub fn send(&self, control: Control) {
        let _ = self.control.try_send(control);
    }

    /// Threads it has started for it so far.
    pub fn io_threads(&self) -> usize {
        self.pool.0.threads()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.control.close();
        // The threads end on their own once the channels close; nothing
        // waits for them (a hung NFS read must not hang the caller).
    }
}

/// What the driver waits for.
enum Next {
    Control(Control),
    Done(u64, Completion),
    Wake,
    IndexChanged,
    Closed,
}

/// Carries out the core's outputs: jobs on the pool, events to the fold.
struct Runtime {
    fs: Arc<dyn RunFs>,
    slot: SnapshotSlot,
    /// Listings and file reads.
    pool: IoPool,
    /// The cache's jobs.
    cache_pool: IoPool,
    events: Sender<Event>,
    /// For events the screen waits for (see [`is_urgent`]).
    urgent: Sender<Event>,
    next_job: u64,
}

impl Runtime {
    async fn drive(mut self, mut core: EngineCore, controls: Receiver<Control>) {
        let started = Instant::now();
        let (done_tx, done_rx) = async_channel::unbounded::<(u64, Completion)>();
        let mut input = Input::Tick;
        loop {
            let index = self.slot.latest();
            let out = core.on(started.elapsed(), input, &index);
            // Jobs first: they run while the fold takes the events (a full
            // fold channel must not hold the next listing back).
            for job in out.jobs {
                self.launch(job, core.run_dir(), &done_tx);
            }
            for event in out.events {
                let sent = if is_urgent(&event) {
                    self.urgent.send(event).await.is_ok()
                } else {
                    self.events.send(event).await.is_ok()
                };
                if !sent {
                    return;
                }
            }
            let seen = index.revision();
            drop(index);
            let wants_index = core.wants_index_changes();
            let next = async { controls.recv().await.map_or(Next::Closed, Next::Control) }
                .or(async { done_rx.recv().await.map_or(Next::Closed, |(id, c)| Next::Done(id, c)) })
                .or(async {
                    match out.wake_at {
                        Some(at) => {
                            Timer::at(started + at).await;
                            Next::Wake
                        }
                        None => std::future::pending().await,
                    }
                })
                .or(async {
                    if wants_index {
                        self.slot.newer_than(seen).await;
                        Next::IndexChanged
                    } else {
                        std::future::pending().await
                    }
                })
                .await;
            input = match next {
                Next::Control(control) => control.input(),
                Next::Done(id, completion) => {
                    self.slot.job_finished(id);
                    Input::Done(completion)
                }
                Next::Wake => Input::Tick,
                Next::IndexChanged => Input::IndexChanged,
                Next::Closed => return,
            };
        }
    }

    fn launch(&mut self, job: Job, run: &RunDir, done: &Sender<(u64, Completion)>) {
        let id = self.next_job;
        self.next_job += 1;
        self.slot.job_started(id, job.describe());
        let (fs, run, done) = (self.fs.clone(), run.clone(), done.clone());
        let pool = if job.uses_the_cache() { &self.cache_pool } else { &self.pool };
        pool.execute(None, move || {
            let completion = job.execute(&*fs, &run, crate::clock::unix_now());
            let _ = done.send_blocking((id, completion));
        });
    }
}

/// Events that only concern what is on screen: folded ahead of the
/// history still queued (a warm start queues hundreds of batches), so a row
/// shown without its command gets it back in a frame or two, not after the
/// whole history is in. Their order relative to other events does not
/// matter: they touch only tasks already listed.
fn is_urgent(event: &Event) -> bool {
    matches!(event, Event::OnScreen(_) | Event::Recalled(_))
}

/// The fold's two inbound queues.
struct Inbound {
    events: Receiver<Event>,
    urgent: Receiver<Event>,
}

impl Inbound {
    /// The next event, urgent ones first; `None` once the engine is gone.
    async fn next(&self) -> Option<Event> {
        loop {
            if let Ok(event) = self.urgent.try_recv() {
                return Some(event);
            }
            // One queue closed and drained: the other has what is left.
            if self.urgent.is_closed() {
                return self.events.recv().await.ok();
            }
            if self.events.is_closed() && self.events.is_empty() {
                return self.urgent.recv().await.ok();
            }
            let urgent = async { self.urgent.recv().await.ok() };
            let events = async { self.events.recv().await.ok() };
            if let Some(event) = urgent.or(events).await {
                return Some(event);
            }
        }
    }

    fn try_next(&self) -> Option<Event> {
        self.urgent.try_recv().or_else(|_| self.events.try_recv()).ok()
    }

    fn is_empty(&self) -> bool {
        self.urgent.is_empty() && self.events.is_empty()
    }
}

async fn fold_events(mut index: Index, inbound: Inbound, slot: SnapshotSlot) {
    let mut last_publish = Instant::now() - PUBLISH_EVERY;
    let mut dirty = false;
    // Once, when the history is first in: later changes are small.
    let mut trimmed = false;
    loop {
        let wait = PUBLISH_EVERY.saturating_sub(last_publish.elapsed());
        let next = async { inbound.next().await.map(Some) }
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
                    match inbound.try_next() {
                        Some(event) => index.apply(event),
                        None => break,
                    }
                }
            }
            Some(None) => {}
        }
        if dirty && (last_publish.elapsed() >= PUBLISH_EVERY || inbound.is_empty()) {
            slot.publish(Arc::new(index.clone()));
            last_publish = Instant::now();
            dirty = false;
            if !trimmed && index.is_complete() {
                // After the complete history is on screen, not before it.
                index.compact_tasks();
                slot.publish(Arc::new(index.clone()));
                crate::alloc::give_back_freed_memory();
                trimmed = true;
            }
        }
    }
    if dirty {
        slot.publish(Arc::new(index));
    }
}
