//! The task index: a pure, deterministic fold of [`Event`]s.
//!
//! Owns: every task and node the listings ever showed, their derived state,
//! ordered views, exact counts and the transition feed. Must not do I/O or
//! read the clock: time arrives as [`Event::Tick`]. Built on `imbl`
//! persistent maps, so [`Index::clone`] is O(1) and a snapshot shares
//! structure with the index it came from.

mod event;
mod feed;
mod hasher;
mod keys;
mod layered;
mod name_index;
mod node;
mod page_memo;
mod state;
mod task;
mod views;

use crate::task_logs::LogStream;
use std::cmp::Reverse;
use std::sync::Arc;

use imbl::Vector;

pub use event::{DirOutcome, Event, HeartbeatRound, LogPath, ResultSummary, Round, SpecSummary};
pub use feed::{Transition, COMPLETION_MINUTES, FEED_LEN};
pub use node::{health_at, HeartbeatSeen, Node, NodeHealth};
pub use state::{derive_state, Presence, StateSet, TaskState, LOST_AFTER_ROUNDS};
pub use task::{Details, NodeId, ReadStatus, Task, TaskExtra, TaskId};
pub use views::{Order, ViewSpec};

use crate::listing::Listing;
use crate::model::ResultKind;
use crate::names::StoredName;
use crate::paths::QueueDir;
use feed::Feed;
use hasher::NameMap;
use layered::LayeredSet;
use name_index::NameIndex;
use page_memo::{PageMemo, PageQuery};
use views::{NodeKey, Placement, Views};

/// Tasks waiting for a background read, newest first.
type ReadKey = (Reverse<i64>, Reverse<TaskId>);

/// A position in the list of tasks owing reads (see [`Index::unread_after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnreadCursor(ReadKey);

#[derive(Debug, Clone)]
pub struct Index {
    now: i64,
    stale_after_s: i64,
    /// Number of events applied; changes whenever anything may have changed.
    revision: u64,
    tasks: Vector<Task>,
    by_name: NameIndex,
    nodes: Vector<Node>,
    node_by_name: NameMap<Arc<str>, NodeId>,
    views: Views,
    to_read: LayeredSet<ReadKey>,
    /// Tasks with no result that are in neither inbox nor claimed.
    unaccounted: LayeredSet<(NodeId, TaskId)>,
    counts: [u64; TaskState::COUNT],
    feed: Feed,
    lease_error: Option<Arc<str>>,
    /// `hb/` has been read: a node without a heartbeat file from then on
    /// has none (not "not yet read").
    heartbeats_read: bool,
    /// Interned working directories: thousands of tasks share a few.
    cwds: NameMap<Arc<str>, Arc<str>>,
    /// Why the warm-start cache (or part of it) was not used.
    cache_problem: Option<Arc<str>>,
    /// `Event::Cached` batches applied (the engine paces loading by it,
    /// and reads nothing the cache may still have).
    cache_batches: u64,
    /// The most details (commands, cwds) held for finished tasks beyond
    /// those on screen (`--max-tasks`); `None`: all are held.
    details_limit: Option<usize>,
    /// Finished tasks holding details the cache can give back, oldest first.
    held: LayeredSet<(i64, TaskId)>,
    /// Tasks on screen and around, sorted: their details stay.
    on_screen: Arc<[TaskId]>,
    /// Tasks whose details are let go now.
    let_go: usize,
    /// Pages asked for since the views last changed, shared by every
    /// snapshot of this index.
    pages: Arc<PageMemo>,
}

/// One change to a task's presence, from one directory of one round.
struct Sighting {
    dir: QueueDir,
    spec: bool,
    result: Option<ResultKind>,
    added: bool,
}

impl Index {
    /// An empty index; `stale_after_s` is `ui.hb_stale_s`.
    pub fn new(stale_after_s: u64) -> Index {
        Index {
            now: 0,
            stale_after_s: stale_after_s as i64,
            revision: 0,
            tasks: Vector::new(),
            by_name: NameIndex::default(),
            nodes: Vector::new(),
            node_by_name: NameMap::default(),
            views: Views::default(),
            to_read: LayeredSet::default(),
            unaccounted: LayeredSet::default(),
            counts: [0; TaskState::COUNT],
            feed: Feed::default(),
            lease_error: None,
            heartbeats_read: false,
            cwds: NameMap::default(),
            cache_problem: None,
            cache_batches: 0,
            details_limit: None,
            held: LayeredSet::default(),
            on_screen: Arc::from([]),
            let_go: 0,
            pages: Arc::default(),
        }
    }

    /// Holds the details of at most `limit` finished tasks beyond those on
    /// screen; the others are let go once the cache has them, and fetched
    /// again (`Event::Recalled`) when they come on screen.
    pub fn with_details_limit(self, limit: usize) -> Index {
        Index { details_limit: Some(limit), ..self }
    }

    /// Folds one event into the index.
    pub fn apply(&mut self, event: Event) {
        self.revision += 1;
        match event {
            Event::Tick(now) => self.tick(now),
            Event::Round(round) => {
                let node = self.apply_dirs(round);
                self.end_round(node);
            }
            Event::PartialRound(round) => {
                self.apply_dirs(round);
            }
            Event::Heartbeats(beats) => self.apply_heartbeats(beats),
            Event::LeaseScan(error) => self.lease_error = error.map(Arc::from),
            Event::SpecRead { name, outcome, .. } => {
                if let Some(id) = self.by_name.get_stored(&self.tasks, &name) {
                    self.apply_spec(id, outcome, 0);
                }
            }
            Event::ResultRead { name, kind, outcome, .. } => {
                if let Some(id) = self.by_name.get_stored(&self.tasks, &name) {
                    self.apply_result(id, kind, outcome, 0);
                }
            }
            Event::NodePaused { node, paused } => {
                let id = self.intern_node(&node);
                self.nodes[id as usize].paused = paused;
            }
            Event::Cached { facts, at } => {
                self.cache_batches += 1;
                self.apply_cached(facts, at);
            }
            Event::CacheStored(stored) => {
                for (name, at) in stored {
                    if let Some(id) = self.by_name.get_stored(&self.tasks, &name) {
                        self.details_stored_at(id, at);
                    }
                }
            }
            Event::Recalled(facts) => self.apply_recalled(facts),
            Event::OnScreen(mut ids) => {
                ids.sort_unstable();
                self.on_screen = Arc::from(ids);
            }
            Event::CacheProblem(problem) => self.cache_problem = Some(Arc::from(problem)),
        }
        self.keep_details_within_limit();
        self.settle();
    }

    /// Applies what the event changed to the views and sets: one merge for
    /// the whole event (a listing of a history is tens of thousands of
    /// tasks), and queries from here on see it.
    fn settle(&mut self) {
        self.views.settle();
        self.by_name.settle();
        self.to_read.settle();
        self.unaccounted.settle();
        self.held.settle();
    }

    /// Copies the tasks into fresh, packed storage, once the history is in.
    /// Folding it copied each storage chunk the dashboard's snapshot
    /// shared, over and over, and the holes the copies left, a few KB
    /// each between live chunks, are memory malloc cannot give back: at
    /// 10^6 tasks the live tasks took 112 MB of a 277 MB heap. Packed
    /// anew, and the old chunks freed together when the last old snapshot
    /// goes, they can be.
    pub fn compact_tasks(&mut self) {
        self.tasks = self.tasks.iter().cloned().collect();
    }

    /// Finished tasks holding details that may be let go.
    pub fn details_held(&self) -> usize {
        self.held.len()
    }
    /// Tasks whose details are let go (fetched again when shown).
    pub fn details_let_go(&self) -> usize {
        self.let_go
    }

    // ----- queries -------------------------------------------------------

    pub fn now(&self) -> i64 {
        self.now
    }
    pub fn revision(&self) -> u64 {
        self.revision
    }
    pub fn stale_after_s(&self) -> i64 {
        self.stale_after_s
    }
    /// Tasks the listings show (facts of names no listing showed are not
    /// counted).
    pub fn task_count(&self) -> usize {
        self.counts.iter().sum::<u64>() as usize
    }
    /// One past the highest task id (listed or not): for walking ids.
    pub fn id_bound(&self) -> TaskId {
        self.tasks.len() as TaskId
    }
    pub fn task(&self, id: TaskId) -> Option<&Task> {
        self.tasks.get(id as usize).filter(|t| t.listed)
    }
    /// A task a listing showed, by name.
    pub fn find(&self, name: &str) -> Option<TaskId> {
        self.by_name.get(&self.tasks, name).filter(|&id| self.tasks[id as usize].listed)
    }
    /// `Event::Cached` batches folded in so far.
    pub fn cache_batches(&self) -> u64 {
        self.cache_batches
    }
    /// Why the warm-start cache was not (wholly) used, if it was not.
    pub fn cache_problem(&self) -> Option<&str> {
        self.cache_problem.as_deref()
    }
    pub fn nodes(&self) -> impl Iterator<Item = (NodeId, &Node)> {
        self.nodes.iter().enumerate().map(|(i, n)| (i as NodeId, n))
    }
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id as usize)
    }
    pub fn find_node(&self, name: &str) -> Option<NodeId> {
        self.node_by_name.get(name).copied()
    }
    pub fn node_name(&self, id: NodeId) -> &str {
        self.nodes.get(id as usize).map_or("?", |n| &n.name)
    }
    /// Exact number of tasks in a state.
    pub fn count(&self, state: TaskState) -> u64 {
        self.counts[state.index()]
    }
    /// Exact number of tasks a view shows.
    pub fn view_total(&self, view: &ViewSpec) -> u64 {
        let per_state = |s: TaskState| match view.node {
            None => self.count(s),
            Some(n) => self.node(n).map_or(0, |node| u64::from(node.count(s))),
        };
        view.states.iter().map(per_state).sum()
    }
    pub fn lease_error(&self) -> Option<&str> {
        self.lease_error.as_deref()
    }
    /// Every node listed at least once and nothing left to read: counts
    /// and commands are complete.
    pub fn is_complete(&self) -> bool {
        self.task_count() > 0 && self.unread_count() == 0 && self.nodes().all(|(_, n)| n.rounds > 0)
    }
    /// Tasks whose spec or result is still to be read.
    pub fn unread_count(&self) -> usize {
        self.to_read.len()
    }
    /// Up to `limit` tasks owing a read, newest first, skipping `skip`.
    pub fn unread(&self, limit: usize, skip: impl Fn(TaskId) -> bool) -> Vec<TaskId> {
        self.unread_after(None, limit, skip).0
    }
    /// As [`unread`](Self::unread), starting after `after` (where an
    /// earlier call stopped); also returns where this one stopped. For a
    /// reader that goes through the whole list once without coming back
    /// to what it passed over.
    pub fn unread_after(
        &self,
        after: Option<UnreadCursor>,
        limit: usize,
        skip: impl Fn(TaskId) -> bool,
    ) -> (Vec<TaskId>, Option<UnreadCursor>) {
        let mut last = after;
        let mut ids = Vec::new();
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, |UnreadCursor(key)| Excluded(key));
        let range = self.to_read.range(from, Unbounded, true);
        for key in range {
            if ids.len() >= limit {
                break;
            }
            last = Some(UnreadCursor(key));
            if !skip(key.1 .0) {
                ids.push(key.1 .0);
            }
        }
        (ids, last)
    }
    /// Tasks currently unaccounted for (vanished, lagging or lost).
    pub fn unaccounted_count(&self) -> usize {
        self.unaccounted.len()
    }
    /// Tasks of one node currently unaccounted for.
    pub fn unaccounted_on(&self, node: NodeId) -> usize {
        self.unaccounted_ids(node).count()
    }
    fn unaccounted_ids(&self, node: NodeId) -> impl Iterator<Item = TaskId> + '_ {
        use std::ops::Bound::Included;
        self.unaccounted.range(Included((node, 0)), Included((node, TaskId::MAX)), true).map(|k| k.1)
    }
    pub fn feed(&self) -> impl Iterator<Item = &Transition> {
        self.feed.recent()
    }
    pub fn completions_per_minute(&self, minutes: usize) -> Vec<u64> {
        self.feed.completions_per_minute(self.now, minutes)
    }

    /// A page of `view`: up to `limit` ids after (or before) `anchor`'s
    /// position; `inclusive` includes the anchor itself when it is in view.
    pub fn page(
        &self,
        view: &ViewSpec,
        anchor: Option<TaskId>,
        forward: bool,
        inclusive: bool,
        limit: usize,
    ) -> Vec<TaskId> {
        let query = PageQuery { view: *view, anchor, forward, inclusive, limit };
        self.pages.page(self.views.generation(), query, || {
            let anchor = anchor.and_then(|id| self.task(id).map(|t| (id, t)));
            let state_of = |id: TaskId| self.tasks[id as usize].state;
            self.views.page(view, anchor, forward, inclusive, limit, &state_of)
        })
    }

    /// Ids of every task in view order (for one-shot commands; O(n)).
    pub fn all_in_view(&self, view: &ViewSpec) -> Vec<TaskId> {
        self.page(view, None, true, true, usize::MAX)
    }

    // ----- events --------------------------------------------------------

    fn tick(&mut self, now: i64) {
        self.now = now;
        self.feed.prune(now);
        self.judge_all_nodes();
    }

    /// Applies what each listed directory showed; returns the node.
    fn apply_dirs(&mut self, round: Round) -> NodeId {
        let node = self.intern_node(&round.node);
        for (dir, outcome) in round.dirs {
            let slot = dir_slot(dir);
            match outcome {
                DirOutcome::Unchanged => self.nodes[node as usize].scan_errors[slot] = None,
                DirOutcome::Failed(reason) => {
                    self.nodes[node as usize].scan_errors[slot] = Some(Arc::from(reason))
                }
                DirOutcome::Changed { added, removed } => {
                    self.nodes[node as usize].scan_errors[slot] = None;
                    self.apply_names(node, dir, &removed, false);
                    self.apply_names(node, dir, &added, true);
                }
            }
        }
        node
    }

    /// Applies what a listing added or removed, one task (a spec and its
    /// result together) at a time.
    fn apply_names(&mut self, node: NodeId, dir: QueueDir, listing: &Listing, added: bool) {
        let mut not_ours: usize = listing.others().iter().filter(|name| !name.starts_with('.')).count();
        for (name, files) in listing.tasks() {
            // A result belongs in done/: one in inbox/ or claimed/ says
            // nothing about a task's state, and is counted as not ours.
            let result = if dir == QueueDir::Done {
                files.result()
            } else {
                not_ours += files.results().count();
                None
            };
            if files.spec() || result.is_some() {
                self.apply_sighting(node, name, Sighting { dir, spec: files.spec(), result, added });
            }
        }
        let n = &mut self.nodes[node as usize];
        let not_ours = not_ours as u32;
        n.unrecognised =
            if added { n.unrecognised + not_ours } else { n.unrecognised.saturating_sub(not_ours) };
    }

    fn apply_sighting(&mut self, node: NodeId, name: &StoredName, s: Sighting) {
        let first_round = self.nodes[node as usize].rounds == 0;
        let change = |task: &mut Task| {
            let p = &mut task.presence;
            match s.dir {
                QueueDir::Inbox if s.spec => p.inbox = s.added,
                QueueDir::Claimed if s.spec => p.claimed = s.added,
                QueueDir::Done if s.spec => p.done_spec = s.added,
                _ => {}
            }
            // Results never move and never change: a later listing that no
            // longer shows one is lagging, not news.
            if let (Some(kind), true) = (s.result, s.added) {
                p.result.get_or_insert(kind);
            }
            if !p.is_unaccounted() {
                task.missing_rounds = 0;
            }
            if s.added && !task.listed {
                task.listed = true;
                confirm_cached(task);
            }
        };
        match self.by_name.get_stored(&self.tasks, name) {
            Some(id) => {
                let was_cached = self.tasks[id as usize].cached_result.is_some();
                self.update_task(id, !first_round, change);
                let task = &self.tasks[id as usize];
                // Cached facts a listing confirmed count as the completion they are.
                if was_cached
                    && task.result_read == ReadStatus::Read
                    && task.presence.result == Some(ResultKind::Ran)
                {
                    let at = task.finished_at;
                    self.feed.count_completion(at, self.now);
                }
            }
            None if s.added => self.insert_task(node, name.clone(), !first_round, change),
            None => {}
        }
    }

    /// Facts from the cache: onto the task a listing showed, or onto one
    /// kept out of every view until a listing shows its name.
    fn apply_cached(&mut self, facts: Vec<crate::cache::Facts>, at: Vec<u64>) {
        use crate::cache::Facts;
        let mut places = at.into_iter();
        // A spec and its result are often neighbours: one lookup for both.
        let mut last: Option<TaskId> = None;
        let mut task_of = |index: &mut Index, node: &str, name: &StoredName| match last {
            Some(id) if index.tasks[id as usize].name == *name => id,
            _ => {
                let id = index.known_task(node, name);
                last = Some(id);
                id
            }
        };
        for fact in facts {
            let place = places.next().unwrap_or(0);
            match fact {
                Facts::Spec { node, name, spec } => {
                    let id = task_of(self, &node, &name);
                    self.apply_spec(id, Ok(spec), place);
                }
                Facts::Result { node, name, kind, result } => {
                    let id = task_of(self, &node, &name);
                    let task = &self.tasks[id as usize];
                    if task.listed && task.presence.result != Some(kind) {
                        continue; // its listing shows no such result file
                    }
                    let unlisted = !task.listed;
                    self.apply_result(id, kind, Ok(result), place);
                    if unlisted && self.tasks[id as usize].result_read == ReadStatus::Read {
                        self.tasks[id as usize].cached_result = Some(kind);
                    }
                }
            }
        }
    }

    /// The task of a name, made (unlisted, in no view) if new.
    fn known_task(&mut self, node: &str, name: &StoredName) -> TaskId {
        if let Some(id) = self.by_name.get_stored(&self.tasks, name) {
            return id;
        }
        let node = self.intern_node(node);
        self.new_task(node, name.clone())
    }

    /// A new task, unlisted (in no view or count until `update_task`
    /// places it).
    fn new_task(&mut self, node: NodeId, name: StoredName) -> TaskId {
        let id = self.tasks.len() as TaskId;
        self.by_name.insert(&self.tasks, &name, id);
        self.tasks.push_back(Task::new(name, node));
        id
    }

    /// A task first seen in a listing: placed and, unless history is
    /// loading, reported as new.
    fn insert_task(&mut self, node: NodeId, name: StoredName, report: bool, change: impl FnOnce(&mut Task)) {
        let id = self.new_task(node, name);
        self.update_task(id, report, change);
    }

    /// Counts a round for the node's unaccounted tasks; those unaccounted
    /// for long enough become LOST?.
    fn end_round(&mut self, node: NodeId) {
        self.unaccounted.settle();
        let missing: Vec<TaskId> = self.unaccounted_ids(node).collect();
        let first_round = self.nodes[node as usize].rounds == 0;
        for id in missing {
            self.update_task(id, !first_round, |task| {
                task.missing_rounds = task.missing_rounds.saturating_add(1);
            });
        }
        self.nodes[node as usize].rounds += 1;
    }

    fn apply_heartbeats(&mut self, round: HeartbeatRound) {
        if let Some(error) = round.dir_error {
            for node in self.nodes.iter_mut() {
                node.heartbeat_error = Some(Arc::from(error.as_str()));
            }
            return;
        }
        self.heartbeats_read = true;
        let mut seen = vec![false; self.nodes.len()];
        for (name, outcome) in round.beats {
            let id = self.intern_node(&name) as usize;
            seen.resize(self.nodes.len(), false);
            seen[id] = true;
            let node = &mut self.nodes[id];
            match outcome {
                Ok(hb) => {
                    node.heartbeat = HeartbeatSeen::Present(hb);
                    node.heartbeat_error = None;
                }
                Err(reason) => {
                    if node.heartbeat == HeartbeatSeen::NotYetRead {
                        node.heartbeat = HeartbeatSeen::Missing;
                    }
                    node.heartbeat_error = Some(Arc::from(reason));
                }
            }
        }
        for (id, was_seen) in seen.into_iter().enumerate() {
            if !was_seen {
                self.nodes[id].heartbeat = HeartbeatSeen::Missing;
                self.nodes[id].heartbeat_error = None;
            }
        }
        self.judge_all_nodes();
    }

    /// Re-judges liveness; tasks in `claimed/` on nodes that died or came
    /// back move between RUNNING and STUCK.
    fn judge_all_nodes(&mut self) {
        for id in 0..self.nodes.len() {
            let node = &self.nodes[id];
            let health = node.judge(self.now, self.stale_after_s);
            if health == node.health {
                continue;
            }
            let liveness_changed = health.is_alive() != node.health.is_alive();
            self.nodes[id].health = health;
            if liveness_changed {
                let node = id as NodeId;
                let lo = NodeKey::first_of(node, TaskState::Running);
                let hi = NodeKey::last_of(node, TaskState::Stuck);
                self.views.settle();
                let (lo, hi) = (std::ops::Bound::Included(lo), std::ops::Bound::Included(hi));
                let live: Vec<TaskId> = self.views.by_node.range(lo, hi, true).map(NodeKey::id).collect();
                for task in live {
                    self.update_task(task, true, |_| {});
                }
            }
        }
    }

    /// `at`: where the cache has this spec's record (0: unknown).
    fn apply_spec(&mut self, id: TaskId, outcome: Result<SpecSummary, String>, at: u64) {
        if self.tasks[id as usize].spec_read != ReadStatus::Unread {
            // Immutable: the first read stands; the cache may have it too.
            return self.details_stored_at(id, at);
        }
        let cwd = outcome.as_ref().ok().map(|s| self.intern_cwd(&s.cwd));
        self.update_task(id, true, |task| match outcome {
            Ok(spec) => {
                task.spec_read = ReadStatus::Read;
                task.created_at = spec.created_at;
                task.gpus = spec.gpus;
                task.set_details(Some(spec.command), cwd);
            }
            Err(reason) => {
                task.spec_read = ReadStatus::Failed;
                task.extra_mut().add_problem(format!("spec: {reason}"));
            }
        });
        self.details_stored_at(id, at);
    }

    /// The cache holds a record with this task's command at `at` (0: it
    /// does not): its details may be let go, since they can be fetched back.
    fn details_stored_at(&mut self, id: TaskId, at: u64) {
        let task = &self.tasks[id as usize];
        if at != 0 && task.command().is_some() && task.details_at == 0 {
            self.update_task(id, false, |task| task.details_at = at);
        }
    }

    /// `at`: where the result's record is in the cache (0: not known).
    fn apply_result(
        &mut self,
        id: TaskId,
        kind: ResultKind,
        outcome: Result<ResultSummary, String>,
        at: u64,
    ) {
        // A result record that names the command can give the details back.
        let holds_details = outcome.as_ref().is_ok_and(|r| r.command.is_some());
        if self.tasks[id as usize].result_read != ReadStatus::Unread {
            // Immutable: the first read stands; the cache may have it too.
            if holds_details {
                self.details_stored_at(id, at);
            }
            return;
        }
        let born_let_go = holds_details && self.would_let_go_at_once(id, at);
        let cwd = outcome.as_ref().ok().and_then(|r| r.cwd.as_ref());
        let cwd = cwd.filter(|_| !born_let_go).map(|cwd| self.intern_cwd(cwd));
        let listed = self.tasks[id as usize].listed;
        let now = self.now;
        let mut finished_at = None;
        let node_name = self.nodes[self.tasks[id as usize].node as usize].name.clone();
        self.update_task(id, true, |task| {
            if listed {
                task.presence.result.get_or_insert(kind);
            }
            match outcome {
                Ok(result) => {
                    task.set_result_read(result.exit_code);
                    task.started_at = result.started_at;
                    task.finished_at = result.finished_at;
                    // What the spec says stands; what the result repeats
                    // of it serves until (or instead of) the spec's read.
                    if born_let_go {
                        (task.details_dropped, task.details_at) = (true, at);
                    } else if !task.details_dropped {
                        let held = task.details.as_deref().cloned().unwrap_or_default();
                        task.set_details(held.command.or(result.command), held.cwd.or(cwd));
                    }
                    if task.spec_read != ReadStatus::Read {
                        task.gpus = result.gpus_requested.unwrap_or(task.gpus);
                    }
                    // Paths either runner derives from the name are not kept:
                    // `LogLocation` finds them again without memory per task.
                    let kept = |path: &LogPath, stream| {
                        path.unless_derivable_for(&node_name, &task.name, stream).cloned()
                    };
                    let (stdout, stderr) =
                        (kept(&result.stdout, LogStream::Stdout), kept(&result.stderr, LogStream::Stderr));
                    if stdout.is_some() || stderr.is_some() {
                        let extra = task.extra_mut();
                        (extra.stdout, extra.stderr) = (stdout, stderr);
                    }
                    if let Some(error) = result.error {
                        task.extra_mut().error = Some(error);
                    }
                    if kind == ResultKind::Ran {
                        finished_at = Some(result.finished_at);
                    }
                }
                Err(reason) => {
                    task.result_read = ReadStatus::Failed;
                    task.extra_mut().add_problem(format!("result: {reason}"));
                }
            }
        });
        if let Some(at) = finished_at.filter(|_| listed) {
            self.feed.count_completion(at, now);
        }
        if born_let_go && self.tasks[id as usize].details_dropped {
            self.let_go += 1;
        }
        if holds_details {
            self.details_stored_at(id, at);
        }
    }

    /// Whether details a record at `at` gives this task would be let go at
    /// the end of the event (`keep_details_within_limit` with a limit of 0:
    /// `status`, `--max-tasks 0`): then they are not taken at all, which at
    /// 10^6 tasks spares an allocation and a let-go per task.
    fn would_let_go_at_once(&self, id: TaskId, at: u64) -> bool {
        let task = &self.tasks[id as usize];
        let live = task.presence.inbox || task.presence.claimed;
        self.details_limit == Some(0)
            && at != 0
            && task.details.is_none()
            && !live
            && self.on_screen.binary_search(&id).is_err()
    }

    // ----- the one place a task changes ----------------------------------

    /// Applies `change` to a task, re-derives its state and keeps every
    /// view, set, count and the feed in step. `report` records a state
    /// change in the feed (off during a node's first round: history loading
    /// is not news).
    fn update_task(&mut self, id: TaskId, report: bool, change: impl FnOnce(&mut Task)) {
        let task = &self.tasks[id as usize];
        let before = Placement::of(task);
        let node_alive = self.nodes[task.node as usize].health.is_alive();
        let task = &mut self.tasks[id as usize];
        change(task);
        task.state = derive_state(
            &task.presence,
            task.exit_code(),
            node_alive,
            task.missing_rounds,
            Some(before.state),
        );
        let after = Placement::of(task);
        if before == after {
            return;
        }
        self.move_task(id, &before, &after);
        // A task known only from the cache is not news (it is in no view).
        if report && after.listed && (before.state != after.state || !before.listed) {
            let from = before.listed.then_some(before.state);
            self.feed.record(Transition { task: id, from, to: after.state, at: self.now });
        }
    }

    /// Moves a task from where `before` put it to where `after` does: in
    /// the views and counts only if its place in them changed, and in each
    /// side set (reads owed, unaccounted, details held) only if its key
    /// there did. Unlisted tasks are in none of them.
    fn move_task(&mut self, id: TaskId, before: &Placement, after: &Placement) {
        if before.moves_in_views(after) {
            let listed = |at: &Placement| at.listed.then_some(*at);
            self.views.relocate(id, listed(before), listed(after));
            if before.listed {
                self.counts[before.state.index()] -= 1;
                self.nodes[before.node as usize].counts[before.state.index()] -= 1;
            }
            if after.listed {
                self.counts[after.state.index()] += 1;
                self.nodes[after.node as usize].counts[after.state.index()] += 1;
            }
        }
        let to_read =
            |at: &Placement| (at.listed && at.needs_read).then_some((Reverse(at.time), Reverse(id)));
        self.to_read.replace(to_read(before), to_read(after));
        let unaccounted = |at: &Placement| (at.listed && at.unaccounted).then_some((at.node, id));
        self.unaccounted.replace(unaccounted(before), unaccounted(after));
        let held = |at: &Placement| (at.listed && at.droppable).then_some((at.time, id));
        self.held.replace(held(before), held(after));
    }

    /// Lets the details of the oldest finished tasks go until no more than
    /// the limit are held, keeping those on screen. Live tasks and tasks
    /// the cache cannot give back are never in `held`.
    fn keep_details_within_limit(&mut self) {
        let Some(limit) = self.details_limit else { return };
        self.held.settle();
        let over = self.held.len().saturating_sub(limit);
        if over == 0 {
            return;
        }
        let on_screen = self.on_screen.clone();
        let oldest: Vec<TaskId> = (self.held.iter(true))
            .map(|(_, id)| id)
            .filter(|id| on_screen.binary_search(id).is_err())
            .take(over)
            .collect();
        for id in oldest {
            self.update_task(id, false, |task| {
                task.details = None;
                task.details_dropped = true;
            });
            self.let_go += 1;
        }
    }

    /// Details fetched again: onto tasks that still lack them.
    fn apply_recalled(&mut self, facts: Vec<crate::cache::Facts>) {
        for fact in facts {
            let Some((command, cwd)) = fact.details() else { continue };
            let Some(id) = self.by_name.get_stored(&self.tasks, fact.name()) else { continue };
            if !self.tasks[id as usize].details_dropped {
                continue;
            }
            let (command, cwd) = (command.clone(), cwd.map(|cwd| self.intern_cwd(cwd)));
            self.update_task(id, false, |task| {
                task.set_details(Some(command), cwd);
                task.details_dropped = false;
            });
            self.let_go -= 1;
        }
    }

    fn intern_node(&mut self, name: &str) -> NodeId {
        if let Some(&id) = self.node_by_name.get(name) {
            return id;
        }
        let id = self.nodes.len() as NodeId;
        let name: Arc<str> = Arc::from(name);
        let mut node = Node::new(name.clone());
        if self.heartbeats_read {
            node.heartbeat = HeartbeatSeen::Missing;
        }
        node.health = node.judge(self.now, self.stale_after_s);
        self.nodes.push_back(node);
        self.node_by_name.insert(name, id);
        id
    }

    fn intern_cwd(&mut self, cwd: &Arc<str>) -> Arc<str> {
        if let Some(existing) = self.cwds.get(cwd) {
            return existing.clone();
        }
        self.cwds.insert(cwd.clone(), cwd.clone());
        cwd.clone()
    }
}

/// A task's first listing: result facts from the cache stand only if the
/// listing shows that very result file (a name can reappear, in `inbox/`
/// again or with its result gone); otherwise the result is read again.
fn confirm_cached(task: &mut Task) {
    if let Some(kind) = task.cached_result.take() {
        if task.presence.result != Some(kind) {
            task.forget_result();
        }
    }
}

fn dir_slot(dir: QueueDir) -> usize {
    match dir {
        QueueDir::Inbox => 0,
        QueueDir::Claimed => 1,
        QueueDir::Done => 2,
    }
}

#[cfg(test)]
mod tests;
