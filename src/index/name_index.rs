//! Name -> task id, keeping no second copy of any name: the map holds the
//! name's seq and a 32-bit hash of it, and the id; the name itself is the
//! task's. The rare second name with a key already taken goes to a small
//! map keyed by the name. Ordered maps (B-trees), not hash maps: `imbl`'s
//! hash map costs ~100 bytes an entry at a million, its B-tree ~27
//! (benches/memory.rs). The seq first: listings and the cache come in
//! about seq order, so lookups walk nodes just touched instead of a
//! random leaf of a million-entry tree each.

use std::hash::BuildHasher;

use imbl::{OrdMap, Vector};

use super::hasher::BuildNameHasher;
use super::task::{Task, TaskId};
use crate::names::StoredName;

#[derive(Debug, Clone, Default)]
pub struct NameIndex {
    by_hash: OrdMap<Key, TaskId>,
    /// Names whose hash an earlier name already had.
    clashes: OrdMap<StoredName, TaskId>,
}

/// The seq a name starts with (0 if none), and a hash of the whole name
/// (of its stored form: a name has one, and hashing it builds no text).
type Key = (u64, u32);

fn key(name: &StoredName) -> Key {
    (name.seq(), (BuildNameHasher.hash_one(name) >> 32) as u32)
}

impl NameIndex {
    /// The id of `name`; `tasks` are the tasks the ids refer to.
    pub fn get(&self, tasks: &Vector<Task>, name: &str) -> Option<TaskId> {
        self.get_stored(tasks, &StoredName::new(name))
    }

    /// As [`get`](Self::get), for a name already stored (from a listing).
    pub fn get_stored(&self, tasks: &Vector<Task>, name: &StoredName) -> Option<TaskId> {
        let &id = self.by_hash.get(&key(name))?;
        if tasks[id as usize].name == *name {
            return Some(id);
        }
        self.clashes.get(name).copied()
    }

    /// Records a name not in the index yet.
    pub fn insert(&mut self, tasks: &Vector<Task>, name: &StoredName, id: TaskId) {
        debug_assert!(self.get_stored(tasks, name).is_none());
        let key = key(name);
        if self.by_hash.contains_key(&key) {
            self.clashes.insert(name.clone(), id);
        } else {
            self.by_hash.insert(key, id);
        }
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
        index.by_hash.insert(key(&StoredName::new("b")), 0); // "b" now hashes to a's id
        assert_eq!(index.get(&tasks, "b"), None, "a's id is not b's");
        index.clashes.insert(StoredName::new("b"), 1);
        assert_eq!(index.get(&tasks, "b"), Some(1));
        assert_eq!(index.get(&tasks, "a"), Some(0));
        assert_eq!(index.get(&tasks, "c"), None);
        assert_eq!(index.get_stored(&tasks, &StoredName::new("b")), Some(1));
        assert_eq!(index.get_stored(&tasks, &StoredName::new("a")), Some(0));
    }
}
