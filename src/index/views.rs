//! Ordered views over the tasks, kept incrementally, and page queries on
//! them: O(log n + rows) from an anchor, so a cursor stays on its task while
//! the data changes under it.

use super::layered::LayeredSet;
use super::state::{StateSet, TaskState};
use super::task::{NodeId, Task, TaskId};

/// Default order within a node (across nodes: the nodes' runs of each
/// state merged, see [`Views::page`]); FIFO order within a node lane
/// (lanes one after another).
pub use super::keys::{NodeKey, SeqKey};

/// How a view is sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// State priority (RUNNING > ... > FINISHED), then start time descending.
    #[default]
    StateThenNewest,
    /// By seq within each node lane.
    SeqInNode,
}

/// Which tasks a view shows and in what order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewSpec {
    pub node: Option<NodeId>,
    pub states: StateSet,
    pub order: Order,
}

impl Default for ViewSpec {
    fn default() -> Self {
        ViewSpec { node: None, states: StateSet::ALL, order: Order::StateThenNewest }
    }
}

/// The two ordered sets every task is in. The default order across all
/// nodes has no set of its own: it is the nodes' runs of each state merged
/// at query time, which costs a page O(nodes x log n) and saves a third
/// set (~32 B and an insert per task: at 10^6 tasks, 30 MB and a second of
/// a warm launch's fold). Both are layered sets: a listing of a history is
/// one merge, not a tree insert per task. Changes take effect at
/// [`Views::settle`].
#[derive(Debug, Clone, Default)]
pub struct Views {
    pub by_node: LayeredSet<NodeKey>,
    pub by_seq: LayeredSet<SeqKey>,
    /// Changes with every settle that moved a task (see
    /// [`generation`](Views::generation)).
    generation: u64,
    /// A task moved since the last settle.
    moved: bool,
}

/// Generations come from one counter for the whole process: two copies of
/// an index changed apart never share one.
static GENERATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Everything that decides where a task sits in the views and sets: two
/// placements compared tell what must move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    pub node: NodeId,
    pub seq: u64,
    pub state: TaskState,
    pub time: i64,
    pub needs_read: bool,
    pub unaccounted: bool,
    /// Known from a listing (not only from the cache): in views and counts.
    pub listed: bool,
    /// Holds details it may let go (see `Task::details_droppable`).
    pub droppable: bool,
}

impl Placement {
    /// Whether moving from `self` to `other` moves the task in the views
    /// (the ordered sets and counts), not only in the side sets.
    pub fn moves_in_views(&self, other: &Placement) -> bool {
        (self.node, self.seq, self.state, self.time, self.listed)
            != (other.node, other.seq, other.state, other.time, other.listed)
    }

    pub fn of(task: &Task) -> Placement {
        Placement {
            node: task.node,
            seq: task.seq(),
            state: task.state,
            time: task.sort_time(),
            needs_read: task.needs_read(),
            unaccounted: task.presence.is_unaccounted(),
            listed: task.listed,
            droppable: task.details_droppable(),
        }
    }
}

impl Views {
    /// Moves a task from where `before` placed it to where `after` does
    /// (`None`: in no view); a set whose key for it stays is not touched
    /// (the seq order does not change with the state).
    pub fn relocate(&mut self, id: TaskId, before: Option<Placement>, after: Option<Placement>) {
        self.moved |= before != after;
        let node_key = |at: Placement| NodeKey::new(at.node, at.state, at.time, id);
        let seq_key = |at: Placement| SeqKey::new(at.node, at.seq, id);
        self.by_node.replace(before.map(node_key), after.map(node_key));
        self.by_seq.replace(before.map(seq_key), after.map(seq_key));
    }

    /// A number that changes whenever a settle moved a task in the views:
    /// two snapshots of one index with the same generation page the same
    /// (pages are remembered by it, see `page_memo`).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Applies the changes since the last settle (queries see only those
    /// settled).
    pub fn settle(&mut self) {
        self.by_node.settle();
        self.by_seq.settle();
        if std::mem::take(&mut self.moved) {
            self.generation = GENERATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Up to `limit` task ids of `view` strictly after (`forward`) or before
    /// the position `anchor` occupies (or would occupy) in it; with no
    /// anchor, from the start (or the end, going backwards).
    pub fn page(
        &self,
        view: &ViewSpec,
        anchor: Option<(TaskId, &Task)>,
        forward: bool,
        inclusive: bool,
        limit: usize,
        state_of: &dyn Fn(TaskId) -> TaskState,
    ) -> Vec<TaskId> {
        let mut out = Vec::with_capacity(limit.min(1024));
        match (view.order, view.node) {
            (Order::StateThenNewest, None) => {
                let nodes = self.nodes();
                for state in ordered(view.states, forward) {
                    // Each node's run of this state, from the anchor's place
                    // in it (the anchor's key with the node put in).
                    let mut runs: Vec<_> = nodes
                        .iter()
                        .map(|&node| {
                            let key = anchor.map(|(id, t)| NodeKey::new(node, t.state, t.sort_time(), id));
                            let (lo, hi) = (NodeKey::first_of(node, state), NodeKey::last_of(node, state));
                            range_from(&self.by_node, lo, hi, key, forward, inclusive).peekable()
                        })
                        .collect();
                    // Within a state the order is newest first, then id:
                    // the same in every node's run, so merging keeps it.
                    while out.len() < limit {
                        let next = runs
                            .iter_mut()
                            .enumerate()
                            .filter_map(|(i, run)| run.peek().map(|k| (i, k.within_state())))
                            .reduce(|a, b| if (b.1 < a.1) == forward { b } else { a });
                        let Some((i, _)) = next else { break };
                        out.extend(runs[i].next().map(NodeKey::id));
                    }
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            (Order::StateThenNewest, Some(node)) => {
                let key = anchor.map(|(id, t)| NodeKey::new(t.node, t.state, t.sort_time(), id));
                for state in ordered(view.states, forward) {
                    let (lo, hi) = (NodeKey::first_of(node, state), NodeKey::last_of(node, state));
                    collect(&self.by_node, lo, hi, key, forward, inclusive, limit, &mut out, |k| k.id());
                    if out.len() >= limit {
                        break;
                    }
                }
            }
            (Order::SeqInNode, node) => {
                let key = anchor.map(|(id, t)| SeqKey::new(t.node, t.seq(), id));
                let (lo, hi) = match node {
                    Some(n) => (SeqKey::new(n, 0, 0), SeqKey::new(n, u64::MAX, TaskId::MAX)),
                    None => (SeqKey::new(0, 0, 0), SeqKey::new(NodeId::MAX, u64::MAX, TaskId::MAX)),
                };
                // Seq order has no state component: filter while walking.
                let keys = range_from(&self.by_seq, lo, hi, key, forward, inclusive);
                let matching = keys
                    .map(SeqKey::id)
                    .filter(|&id| view.states.is_all() || view.states.contains(state_of(id)));
                out.extend(matching.take(limit));
            }
        }
        out
    }
}

impl Views {
    /// The nodes with tasks in the views, each found from the one before.
    fn nodes(&self) -> Vec<NodeId> {
        use std::ops::Bound::{Excluded, Unbounded};
        let mut nodes = Vec::new();
        let first = |from| self.by_node.range(from, Unbounded, true).next().map(NodeKey::node);
        let mut next = first(Unbounded);
        while let Some(node) = next {
            nodes.push(node);
            let past = NodeKey::last_of(node, TaskState::ALL[TaskState::COUNT - 1]);
            next = first(Excluded(past));
        }
        nodes
    }
}

/// States of a set in the direction of travel.
fn ordered(states: StateSet, forward: bool) -> Vec<TaskState> {
    let mut list: Vec<TaskState> = states.iter().collect();
    if !forward {
        list.reverse();
    }
    list
}

/// Keys of `set` within `[lo, hi]`, after/before `anchor` when given.
fn range_from<K: Ord + Copy>(
    set: &LayeredSet<K>,
    lo: K,
    hi: K,
    anchor: Option<K>,
    forward: bool,
    inclusive: bool,
) -> Box<dyn Iterator<Item = K> + '_> {
    use std::ops::Bound::{Excluded, Included};
    let (start, end) = match (anchor, forward) {
        (None, _) => (Included(lo), Included(hi)),
        (Some(a), true) => {
            let a = if a < lo { lo } else { a };
            (if inclusive { Included(a) } else { Excluded(a) }, Included(hi))
        }
        (Some(a), false) => {
            let a = if a > hi { hi } else { a };
            let end = if inclusive { Included(a) } else { Excluded(a) };
            (Included(lo), end)
        }
    };
    set.range(start, end, forward)
}

#[allow(clippy::too_many_arguments)]
fn collect<K: Ord + Copy>(
    set: &LayeredSet<K>,
    lo: K,
    hi: K,
    anchor: Option<K>,
    forward: bool,
    inclusive: bool,
    limit: usize,
    out: &mut Vec<TaskId>,
    id_of: impl Fn(&K) -> TaskId,
) {
    for key in range_from(set, lo, hi, anchor, forward, inclusive) {
        if out.len() >= limit {
            return;
        }
        out.push(id_of(&key));
    }
}
