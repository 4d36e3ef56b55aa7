//! Name -> task id, keeping no second copy of any name: the index holds
//! the low bits of each name's seq, a 32-bit hash of it and the task id,
//! sorted; the name itself is the task's. Names that share those are
//! neighbours and told apart by the task's name. A layered set (a sorted
//! array with small overlays, 12 bytes a name, where a B-tree map costs
//! its nodes' slack besides and `imbl`'s hash map ~100 bytes an entry),
//! with the names of the event being folded in a small ordered set until
//! it settles: a batch of cache facts or a listing of a history is one
//! merge.
use std::collections::BTreeSet;
use std::hash::BuildHasher;

use imbl::Vector;

use super::hasher::BuildNameHasher;
use super::layered::LayeredSet;
use super::task::{Task, TaskId};
use crate::names::StoredName;

#[derive(Debug, Clone, Default)]
pub struct NameIndex {
    settled: LayeredSet<Entry>,
    /// Names added since the last settle, found by lookups meanwhile.
    fresh: BTreeSet<Entry>,
}

/// The low 32 bits of the seq a name starts with (0 if none), a hash of
/// the whole name (of its stored form: a name has one, and hashing it
/// builds no text), and the task's id: 12 bytes. The seq comes first so
/// that lookups in name order (listings, the cache) fall near each other;
/// its low bits are enough for that, and names that share them are told
/// apart by the name itself, as names that share a hash are.
type Entry = (u32, u32, TaskId);

/// The first and last entry a name's seq and hash can have.
fn entries_of(name: &StoredName) -> (Entry, Entry) {
    let (seq, hash) = (name.seq() as u32, (BuildNameHasher.hash_one(name) >> 32) as u32);
    ((seq, hash, 0), (seq, hash, TaskId::MAX))
}

impl NameIndex {
    /// The id of `name`; `tasks` are the tasks the ids refer to.
    pub fn get(&self, tasks: &Vector<Task>, name: &str) -> Option<TaskId> {
        self.get_stored(tasks, &StoredName::new(name))
    }

    /// As [`get`](Self::get), for a name already stored (from a listing).
    pub fn get_stored(&self, tasks: &Vector<Task>, name: &StoredName) -> Option<TaskId> {
        let (lo, hi) = entries_of(name);
        let is_it = |entry: Entry| tasks[entry.2 as usize].name == *name;
        let fresh = || self.fresh.range(lo..=hi).copied().find(|&e| is_it(e));
        fresh().or_else(|| self.settled.find(lo, hi, is_it)).map(|e| e.2)
    }

    /// Records a name not in the index yet.
    pub fn insert(&mut self, tasks: &Vector<Task>, name: &StoredName, id: TaskId) {
        debug_assert!(self.get_stored(tasks, name).is_none());
        let (lo, _) = entries_of(name);
        self.fresh.insert((lo.0, lo.1, id));
    }

    /// Moves the names added since the last settle into the layered set.
    pub fn settle(&mut self) {
        for entry in std::mem::take(&mut self.fresh) {
            self.settled.insert(entry);
        }
        self.settled.settle();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clash_of_hashes_keeps_both_names() {
        // Force the clash path by putting an id under another name's hash.
        let mut tasks = Vector::new();
        let mut index = NameIndex::default();
        tasks.push_back(Task::new(StoredName::new("a"), 0));
        index.insert(&tasks, &StoredName::new("a"), 0);
        tasks.push_back(Task::new(StoredName::new("b"), 0));
        let (b, _) = entries_of(&StoredName::new("b"));
        index.fresh.insert((b.0, b.1, 0)); // "b" now hashes to a's id
        assert_eq!(index.get(&tasks, "b"), None, "a's id is not b's");
        index.fresh.insert((b.0, b.1, 1));
        // The same before and after the names move to the layered set.
        for settled in [false, true] {
            if settled {
                index.settle();
                assert!(index.fresh.is_empty());
            }
            assert_eq!(index.get(&tasks, "b"), Some(1));
            assert_eq!(index.get(&tasks, "a"), Some(0));
            assert_eq!(index.get(&tasks, "c"), None);
            assert_eq!(index.get_stored(&tasks, &StoredName::new("b")), Some(1));
            assert_eq!(index.get_stored(&tasks, &StoredName::new("a")), Some(0));
        }
    }
}
