//! The views' keys, each packed into one `u128` whose integer order is the
//! order of its fields: 16 bytes a key where the tuples took 24 (padding
//! after the node and the state), so the two views of a 10^6 history hold
//! 32 MB instead of 48, and sorting and merging them compares integers.

use super::state::TaskState;
use super::task::{NodeId, TaskId};

/// An `i64` as a `u64` of the same order (the sign bit flipped).
fn ordered_u64(value: i64) -> u64 {
    (value as u64) ^ (1 << 63)
}

/// Default order within a node: node, state priority, newest first, id.
/// Bits from the top: node (16), state (8), time reversed (64), id (32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeKey(u128);

impl NodeKey {
    pub fn new(node: NodeId, state: TaskState, time: i64, id: TaskId) -> NodeKey {
        let newest_first = !ordered_u64(time);
        NodeKey(
            u128::from(node) << 104
                | (state.index() as u128) << 96
                | u128::from(newest_first) << 32
                | u128::from(id),
        )
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
        (self.0 >> 104) as NodeId
    }

    pub fn id(self) -> TaskId {
        self.0 as TaskId
    }

    /// Where a key stands among keys of one state of any node: newest
    /// first, then by id (what merging the nodes' runs compares).
    pub fn within_state(self) -> u128 {
        self.0 & ((1 << 96) - 1)
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
    const TIMES: [i64; 7] = [i64::MIN, -1_000_000, -1, 0, 1, 1_764_000_000, i64::MAX];
    const IDS: [TaskId; 4] = [0, 1, 99, TaskId::MAX];

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
