//! The views' keys, packed into words whose order is the order of their
//! fields: 12 and 16 bytes where the tuples took 24 each (padding after
//! the node and the state), so the two views of a 10^6 history hold 28 MB
//! instead of 48.

use super::state::TaskState;
use super::task::{NodeId, TaskId};

/// Default order within a node: node, state priority, newest first, id.
/// Node (16 bits), state (8) and the time reversed (32) in one word, the
/// id in another, packed to 12 bytes (two integer comparisons, where an
/// array of three words compared slower in the fold's sorts). The time is
/// clamped to Unix seconds in `u32` (1970 to 2106) for the order only:
/// tasks beyond either end (hostile or broken times) sort among
/// themselves by id; the times shown are the task's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(C, packed(4))]
pub struct NodeKey {
    place: u64,
    id: TaskId,
}

impl NodeKey {
    pub fn new(node: NodeId, state: TaskState, time: i64, id: TaskId) -> NodeKey {
        let clamped = time.clamp(0, i64::from(u32::MAX)) as u32;
        let place = u64::from(node) << 40 | (state.index() as u64) << 32 | u64::from(!clamped);
        NodeKey { place, id }
    }

    /// The first key of a node's run of `state`.
    pub fn first_of(node: NodeId, state: TaskState) -> NodeKey {
        NodeKey::new(node, state, i64::MAX, 0)
    }

    /// The last key of a node's run of `state`.
    pub fn last_of(node: NodeId, state: TaskState) -> NodeKey {
        NodeKey::new(node, state, i64::MIN, TaskId::MAX)
    }

    pub fn node(self) -> NodeId {
        (self.place >> 40) as NodeId
    }

    pub fn id(self) -> TaskId {
        self.id
    }

    /// Where a key stands among keys of one state of any node: newest
    /// first, then by id (what merging the nodes' runs compares).
    pub fn within_state(self) -> (u32, u32) {
        (self.place as u32, self.id)
    }
}

/// FIFO order within a node lane: node, seq, id.
/// Bits from the top: node (16), seq (64), id (32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeqKey(u128);

impl SeqKey {
    pub fn new(node: NodeId, seq: u64, id: TaskId) -> SeqKey {
        SeqKey(u128::from(node) << 96 | u128::from(seq) << 32 | u128::from(id))
    }

    pub fn id(self) -> TaskId {
        self.0 as TaskId
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;

    use super::*;

    const NODES: [NodeId; 4] = [0, 1, 7, NodeId::MAX];
    /// Times the order keeps apart (Unix seconds from 1970 to 2106).
    const TIMES: [i64; 5] = [0, 1, 1_764_000_000, 1_764_000_001, u32::MAX as i64];
    const IDS: [TaskId; 4] = [0, 1, 99, TaskId::MAX];

    #[test]
    fn a_node_key_takes_twelve_bytes() {
        assert_eq!(std::mem::size_of::<NodeKey>(), 12);
    }

    #[test]
    fn a_node_key_orders_and_reads_back_as_its_fields_do() {
        let mut keys = Vec::new();
        for node in NODES {
            for state in TaskState::ALL {
                for time in TIMES {
                    for id in IDS {
                        let key = NodeKey::new(node, state, time, id);
                        assert_eq!((key.node(), key.id()), (node, id));
                        keys.push(((node, state, Reverse(time), id), key));
                    }
                }
            }
        }
        let mut by_fields = keys.clone();
        by_fields.sort_by_key(|k| k.0);
        keys.sort_by_key(|k| k.1);
        assert_eq!(keys, by_fields);
        for ((node, state, _, _), key) in &keys {
            assert!(NodeKey::first_of(*node, *state) <= *key);
            assert!(*key <= NodeKey::last_of(*node, *state));
        }
    }

    #[test]
    fn times_beyond_the_order_s_range_sort_with_its_ends_by_id() {
        let key = |time, id| NodeKey::new(0, TaskState::Done, time, id);
        assert_eq!(key(-5, 1), key(0, 1));
        assert_eq!(key(i64::MAX, 1), key(u32::MAX as i64, 1));
        assert!(key(i64::MAX, 1) < key(1_764_000_000, 0), "newest first");
        assert!(key(i64::MIN, 1) > key(1, 2), "oldest last");
        assert!(key(i64::MIN, 1) < key(i64::MIN, 2));
    }

    #[test]
    fn within_a_state_keys_of_any_node_compare_newest_first_then_by_id() {
        let a = NodeKey::new(3, TaskState::Done, 100, 5);
        let b = NodeKey::new(1, TaskState::Done, 50, 2);
        let c = NodeKey::new(9, TaskState::Done, 50, 7);
        assert!(a.within_state() < b.within_state());
        assert!(b.within_state() < c.within_state());
    }

    #[test]
    fn a_seq_key_orders_as_its_fields_do() {
        let seqs = [0, 1, 41, u64::MAX - 1, u64::MAX];
        let mut keys = Vec::new();
        for node in NODES {
            for seq in seqs {
                for id in IDS {
                    let key = SeqKey::new(node, seq, id);
                    assert_eq!(key.id(), id);
                    keys.push(((node, seq, id), key));
                }
            }
        }
        let mut by_fields = keys.clone();
        by_fields.sort_by_key(|k| k.0);
        keys.sort_by_key(|k| k.1);
        assert_eq!(keys, by_fields);
    }
}
