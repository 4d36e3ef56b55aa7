//! An ordered set for histories of millions that arrive in bulk: most keys
//! sit in one sorted array that every snapshot shares, and changes since it
//! was made sit in two small persistent sets (keys added, keys of the array
//! removed). A key costs its own size in the array, where an `imbl` B-tree
//! costs its nodes' slack and pointers besides (with the views and the
//! name index layered, `cargo bench --bench memory` went from 311 to 235
//! bytes per task at 10^6), and a batch of thousands is one sort and one merge
//! instead of thousands of tree inserts.
//!
//! Changes are queued by [`insert`](LayeredSet::insert) and
//! [`remove`](LayeredSet::remove) and take effect at
//! [`settle`](LayeredSet::settle); queries see the set as last settled (the
//! index settles at the end of every event).

use std::ops::Bound;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use imbl::OrdSet;

/// A batch of at least this many changes, and at least a [`BULK_SHARE`]th
/// of the array, is merged into the array at once; smaller ones go to the
/// overlays. Merging copies the array (16 MB for 10^6 keys of 16 bytes: a
/// memory copy, where 4096 tree inserts each walk and copy tree nodes).
const BULK: usize = 4096;

/// A batch merged at once is at least this share of the array: a merge
/// per batch, whatever the array's size, made ingesting quadratic (at
/// 10^7 tasks, 610 batches of 16 Ki facts, each a pass over arrays of
/// 160 MB). So each change costs at most this many keys moved.
const BULK_SHARE: usize = 64;

/// The most queued changes whose allocation a set keeps between batches
/// (the cache's batches are 16 Ki facts).
const KEEP_QUEUED: usize = 16 * 1024;

#[derive(Debug)]
pub struct LayeredSet<K: Ord + Copy> {
    /// Sorted, without duplicates.
    base: Arc<Vec<K>>,
    /// Keys not in `base`.
    added: OrdSet<K>,
    /// Keys of `base` that are gone.
    removed: OrdSet<K>,
    /// Changes not settled yet, in order (`true`: insert).
    queued: Vec<(K, bool)>,
    /// Where in `base` the last lookup ended: lookups come in about key
    /// order (listings and the cache are sorted by name), so the next one
    /// starts its search there (only a hint: racing readers are harmless).
    near: AtomicUsize,
}

impl<K: Ord + Copy> Default for LayeredSet<K> {
    fn default() -> Self {
        LayeredSet {
            base: Arc::new(Vec::new()),
            added: OrdSet::new(),
            removed: OrdSet::new(),
            queued: Vec::new(),
            near: AtomicUsize::new(0),
        }
    }
}

impl<K: Ord + Copy> Clone for LayeredSet<K> {
    fn clone(&self) -> Self {
        LayeredSet {
            base: self.base.clone(),
            added: self.added.clone(),
            removed: self.removed.clone(),
            queued: self.queued.clone(),
            near: AtomicUsize::new(self.near.load(Ordering::Relaxed)),
        }
    }
}

impl<K: Ord + Copy> LayeredSet<K> {
    /// Queues `key` to be in the set once settled.
    pub fn insert(&mut self, key: K) {
        self.queued.push((key, true));
    }

    /// Queues `key` to be out of the set once settled.
    pub fn remove(&mut self, key: K) {
        self.queued.push((key, false));
    }

    /// Moves a member from one key to another (`None`: not in the set
    /// before, or after); nothing when the key stays.
    pub fn replace(&mut self, before: Option<K>, after: Option<K>) {
        if before == after {
            return;
        }
        if let Some(key) = before {
            self.remove(key);
        }
        if let Some(key) = after {
            self.insert(key);
        }
    }

    /// Applies the queued changes: a big batch, or overlays grown past a
    /// sixteenth of the array, make a new array; anything else goes to the
    /// overlays. (Every read walks past the removed keys in its range, and
    /// every change waits in an overlay for the next array: a sixteenth
    /// keeps both small and copies the array once per that many changes.)
    pub fn settle(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let overlay = self.added.len() + self.removed.len() + self.queued.len();
        let bulk = BULK.max(self.base.len() / BULK_SHARE);
        if self.queued.len() >= bulk || overlay > (self.base.len() / 16).max(BULK) {
            self.rebuild();
            return;
        }
        let queued = std::mem::take(&mut self.queued);
        for &(key, present) in &queued {
            let in_base = self.base.binary_search(&key).is_ok();
            match (present, in_base) {
                (true, true) => {
                    self.removed.remove(&key);
                }
                (true, false) => {
                    self.added.insert(key);
                }
                (false, true) => {
                    self.removed.insert(key);
                }
                (false, false) => {
                    self.added.remove(&key);
                }
            }
        }
        self.keep_allocation(queued);
    }

    /// Gives `queued` back its emptied allocation, up to the size of a
    /// cache batch: a new one per batch was a new mapping for the kernel to
    /// fault in. A bigger one (a node's history listed at once) is let go:
    /// kept by every set, it would hold megabytes for good.
    fn keep_allocation(&mut self, mut queued: Vec<(K, bool)>) {
        if queued.capacity() <= KEEP_QUEUED {
            queued.clear();
            self.queued = queued;
        }
    }

    /// One array of what the set holds, with the overlays and the queued
    /// changes (the last change of a key decides) merged in. In place when
    /// no snapshot shares the array: a fresh array per batch was a fresh
    /// mapping of megabytes for the kernel to fault in and zero, page by
    /// page (at 10^6 tasks, two fifths of a warm launch's fold thread was
    /// in the kernel). A shared array is merged into a new one, which the
    /// batches until the next snapshot merge into in place.
    fn rebuild(&mut self) {
        let queued = std::mem::take(&mut self.queued);
        // The overlays first: a stable sort keeps a queued change after
        // an overlay's change of the same key, and the last one decides.
        let overlays = self.added.iter().map(|&k| (k, true)).chain(self.removed.iter().map(|&k| (k, false)));
        let mut changes: Vec<(K, bool)> = overlays.chain(queued.iter().copied()).collect();
        self.keep_allocation(queued);
        changes.sort_by_key(|change| change.0);
        changes.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = later.1;
            }
            same
        });
        match Arc::get_mut(&mut self.base) {
            Some(base) => merge_in_place(base, &changes),
            // A snapshot shares it: one pass into a new array, not a copy
            // and then two passes over the copy (at 10^7 tasks, arrays of
            // 160 MB after nearly every batch: the copy, its page faults
            // and the removals' pass were half of the fold's time).
            None => self.base = Arc::new(merge_into_new(&self.base, &changes)),
        }
        self.added = OrdSet::new();
        self.removed = OrdSet::new();
    }

    /// Whether nothing is queued (queries see only settled changes).
    pub fn is_settled(&self) -> bool {
        self.queued.is_empty()
    }

    /// Keys within the bounds, ascending (`forward`) or descending.
    pub fn range(&self, lo: Bound<K>, hi: Bound<K>, forward: bool) -> Box<dyn Iterator<Item = K> + '_> {
        debug_assert!(self.is_settled(), "query on an unsettled set");
        if bound_is_empty(&lo, &hi) {
            return Box::new(std::iter::empty());
        }
        let base = self.base_within(lo, hi);
        // An overlay's range costs a descent even when empty: skipped then.
        let added = (!self.added.is_empty()).then(|| self.added.range((lo, hi))).into_iter().flatten();
        let removed = (!self.removed.is_empty()).then(|| self.removed.range((lo, hi))).into_iter().flatten();
        if forward {
            let kept = Without::new(base.iter().copied(), removed.copied(), true);
            Box::new(Merge::new(kept, added.copied(), true))
        } else {
            let kept = Without::new(base.iter().rev().copied(), removed.rev().copied(), false);
            Box::new(Merge::new(kept, added.rev().copied(), false))
        }
    }

    /// Every key, ascending (`forward`) or descending.
    pub fn iter(&self, forward: bool) -> Box<dyn Iterator<Item = K> + '_> {
        self.range(Bound::Unbounded, Bound::Unbounded, forward)
    }

    /// The first key within `[lo, hi]` that `matches`, without building an
    /// iterator (for lookups by a key's prefix).
    pub fn find(&self, lo: K, hi: K, mut matches: impl FnMut(K) -> bool) -> Option<K> {
        debug_assert!(self.is_settled(), "query on an unsettled set");
        let start = self.lower_bound_near(&lo);
        let base = self.base[start..].iter().take_while(|&&k| k <= hi).copied();
        let removed = (!self.removed.is_empty()).then(|| self.removed.range(lo..=hi)).into_iter().flatten();
        let in_base = Without::new(base, removed.copied(), true).find(|&k| matches(k));
        in_base.or_else(|| {
            if self.added.is_empty() {
                return None;
            }
            self.added.range(lo..=hi).copied().find(|&k| matches(k))
        })
    }

    /// The first position in `base` not below `key`, searched outwards
    /// from where the last search ended (a few steps when lookups come in
    /// order, a binary search's when not).
    fn lower_bound_near(&self, key: &K) -> usize {
        let base = &self.base[..];
        let near = self.near.load(Ordering::Relaxed).min(base.len());
        let (mut lo, mut hi) = (0, base.len());
        let mut step = 1;
        if near < base.len() && base[near] < *key {
            // Right of `near`: gallop until a key not below.
            lo = near + 1;
            while near + step < base.len() {
                if base[near + step] >= *key {
                    hi = near + step;
                    break;
                }
                lo = near + step + 1;
                step *= 2;
            }
        } else {
            // At or left of `near`: gallop back until a key below.
            hi = near;
            while step <= near {
                if base[near - step] < *key {
                    lo = near - step + 1;
                    break;
                }
                hi = near - step;
                step *= 2;
            }
        }
        let found = lo + base[lo..hi].partition_point(|k| k < key);
        self.near.store(found, Ordering::Relaxed);
        found
    }

    /// Keys held, as last settled.
    pub fn len(&self) -> usize {
        debug_assert!(self.is_settled(), "query on an unsettled set");
        self.base.len() - self.removed.len() + self.added.len()
    }

    fn base_within(&self, lo: Bound<K>, hi: Bound<K>) -> &[K] {
        let start = match lo {
            Bound::Included(k) => self.base.partition_point(|x| *x < k),
            Bound::Excluded(k) => self.base.partition_point(|x| *x <= k),
            Bound::Unbounded => 0,
        };
        let end = match hi {
            Bound::Included(k) => self.base.partition_point(|x| *x <= k),
            Bound::Excluded(k) => self.base.partition_point(|x| *x < k),
            Bound::Unbounded => self.base.len(),
        };
        &self.base[start..end.max(start)]
    }
}

/// Whether no key can lie between the bounds (`imbl` panics on such a range).
pub fn bound_is_empty<K: Ord>(start: &Bound<K>, end: &Bound<K>) -> bool {
    use std::ops::Bound::{Excluded, Included, Unbounded};
    match (start, end) {
        (Included(s), Included(e)) => s > e,
        (Included(s), Excluded(e)) | (Excluded(s), Included(e)) | (Excluded(s), Excluded(e)) => s >= e,
        (Unbounded, _) | (_, Unbounded) => false,
    }
}

/// A sorted run without the keys of another run sorted the same way (and
/// within it): the two are walked side by side, so skipping a removed key
/// costs a step, not a lookup (a reader that starts at the front of a set
/// whose first thousands are removed walks past them at memory speed).
struct Without<A: Iterator, R: Iterator<Item = A::Item>> {
    keys: A,
    removed: std::iter::Peekable<R>,
    ascending: bool,
}

impl<A: Iterator, R: Iterator<Item = A::Item>> Without<A, R> {
    fn new(keys: A, removed: R, ascending: bool) -> Self {
        Without { keys, removed: removed.peekable(), ascending }
    }
}

impl<K: Ord, A: Iterator<Item = K>, R: Iterator<Item = K>> Iterator for Without<A, R> {
    type Item = K;
    fn next(&mut self) -> Option<K> {
        'keys: for key in self.keys.by_ref() {
            while let Some(gone) = self.removed.peek() {
                match gone.cmp(&key) {
                    std::cmp::Ordering::Equal => {
                        self.removed.next();
                        continue 'keys;
                    }
                    // Behind the key in the direction of travel: passed.
                    order if (order == std::cmp::Ordering::Less) == self.ascending => {
                        self.removed.next();
                    }
                    _ => break,
                }
            }
            return Some(key);
        }
        None
    }
}

/// Two runs sorted the same way (and with no key in both), as one.
struct Merge<A: Iterator, B: Iterator<Item = A::Item>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
    ascending: bool,
}

impl<A: Iterator, B: Iterator<Item = A::Item>> Merge<A, B> {
    fn new(a: A, b: B, ascending: bool) -> Self {
        Merge { a: a.peekable(), b: b.peekable(), ascending }
    }
}

impl<K: Ord, A: Iterator<Item = K>, B: Iterator<Item = K>> Iterator for Merge<A, B> {
    type Item = K;
    fn next(&mut self) -> Option<K> {
        let take_a = match (self.a.peek(), self.b.peek()) {
            (Some(a), Some(b)) => (a < b) == self.ascending,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if take_a {
            self.a.next()
        } else {
            self.b.next()
        }
    }
}

/// Applies sorted changes of distinct keys (`true`: in the set) to a
/// sorted array without a second array: removals by one compacting pass,
/// then insertions merged from the back into the grown array (each key
/// written once; an insertion of a key already there takes one slot too
/// many, closed at the end).
fn merge_in_place<K: Ord + Copy>(base: &mut Vec<K>, changes: &[(K, bool)]) {
    if changes.iter().any(|c| !c.1) {
        let mut removals = changes.iter().filter(|c| !c.1).map(|c| c.0).peekable();
        base.retain(|key| {
            while removals.next_if(|gone| gone < key).is_some() {}
            removals.peek() != Some(key)
        });
    }
    let inserts = changes.iter().filter(|c| c.1).count();
    let Some(filler) = changes.iter().find(|c| c.1).map(|c| c.0) else { return };
    let old = base.len();
    // Exactly what is needed: the doubling growth would leave up to half
    // of an array of a million keys unused for good (it is one mapping,
    // grown by remapping, not by copying).
    base.reserve_exact(inserts);
    base.resize(old + inserts, filler);
    // Invariant: write >= read + left, so a write never lands on an
    // element not yet read. `next` walks the changes from the back.
    let (mut read, mut left, mut write) = (old, inserts, old + inserts);
    let mut next = changes.len();
    while left > 0 {
        next -= 1;
        let (insert, present) = changes[next];
        if !present {
            continue;
        }
        loop {
            write -= 1;
            if read > 0 && base[read - 1] > insert {
                base[write] = base[read - 1];
                read -= 1;
                continue;
            }
            base[write] = insert;
            if read > 0 && base[read - 1] == insert {
                read -= 1;
            }
            left -= 1;
            break;
        }
    }
    // base[..read] is in place; base[read..write] are the slots that keys
    // already there did not need.
    base.drain(read..write);
}

/// `base` with sorted, distinct `changes` applied, as a new array, in one
/// pass.
fn merge_into_new<K: Ord + Copy>(base: &[K], changes: &[(K, bool)]) -> Vec<K> {
    let inserts = changes.iter().filter(|c| c.1).count();
    let mut out = Vec::with_capacity(base.len() + inserts);
    let mut keys = base.iter().copied().peekable();
    for &(key, present) in changes {
        while let Some(kept) = keys.next_if(|k| *k < key) {
            out.push(kept);
        }
        // The key itself, if there, is replaced by what the change says.
        keys.next_if_eq(&key);
        if present {
            out.push(key);
        }
    }
    out.extend(keys);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// A small deterministic generator (no dependency for a test).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, below: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % below
        }
    }

    fn check(set: &LayeredSet<u32>, truth: &BTreeSet<u32>) {
        assert_eq!(set.len(), truth.len());
        let all: Vec<u32> = set.iter(true).collect();
        assert_eq!(all, truth.iter().copied().collect::<Vec<_>>());
        let back: Vec<u32> = set.iter(false).collect();
        assert_eq!(back, truth.iter().rev().copied().collect::<Vec<_>>());
        for (lo, hi) in [(0, 10), (100, 700), (333, 333), (900, 100)] {
            let got: Vec<u32> = set.range(Bound::Included(lo), Bound::Excluded(hi), true).collect();
            let want: Vec<u32> = if lo < hi { truth.range(lo..hi).copied().collect() } else { Vec::new() };
            assert_eq!(got, want, "[{lo}, {hi})");
            let got: Vec<u32> = set.range(Bound::Excluded(lo), Bound::Included(hi), false).collect();
            let want: Vec<u32> = if lo < hi {
                truth.range((Bound::Excluded(lo), Bound::Included(hi))).rev().copied().collect()
            } else {
                Vec::new()
            };
            assert_eq!(got, want, "({lo}, {hi}] backwards");
        }
        for key in [0, 1, 500, 999] {
            let found = set.find(key, key + 20, |k| k % 2 == 0);
            let want = truth.range(key..=key + 20).copied().find(|k| k % 2 == 0);
            assert_eq!(found, want);
        }
    }

    #[test]
    fn agrees_with_a_btree_through_batches_big_and_small() {
        let mut rng = Lcg(7);
        let mut set = LayeredSet::default();
        let mut truth = BTreeSet::new();
        // Batch sizes that go to the overlays and ones that rebuild, with
        // keys inserted and removed again inside one batch.
        for (i, batch) in [1, 5000, 3, 200, 1, 9000, 40, 4096, 2, 700, 6000, 5000].into_iter().enumerate() {
            // A snapshot before every other batch: the array is merged into
            // in place when unshared, copied when shared, and the snapshot
            // keeps what it saw either way.
            let snapshot = (i % 2 == 0).then(|| (set.clone(), truth.clone()));
            for _ in 0..batch {
                let key = rng.next(1000) as u32;
                if rng.next(3) == 0 {
                    set.remove(key);
                    truth.remove(&key);
                } else {
                    set.insert(key);
                    truth.insert(key);
                }
            }
            set.settle();
            check(&set, &truth);
            if let Some((before, truth_before)) = snapshot {
                check(&before, &truth_before);
            }
        }
    }

    #[test]
    fn merges_in_place_and_into_a_new_array_agree_with_a_btree() {
        let mut rng = Lcg(3);
        for _ in 0..300 {
            let base: BTreeSet<u32> = (0..rng.next(60)).map(|_| rng.next(100) as u32).collect();
            let mut changes: Vec<(u32, bool)> =
                (0..rng.next(60)).map(|_| (rng.next(100) as u32, rng.next(2) == 0)).collect();
            changes.sort_by_key(|c| c.0);
            changes.dedup_by_key(|c| c.0);
            let mut want = base.clone();
            for &(key, present) in &changes {
                if present {
                    want.insert(key);
                } else {
                    want.remove(&key);
                }
            }
            let base: Vec<u32> = base.into_iter().collect();
            let want: Vec<u32> = want.into_iter().collect();
            assert_eq!(merge_into_new(&base, &changes), want, "{base:?} + {changes:?}");
            let mut got = base.clone();
            merge_in_place(&mut got, &changes);
            assert_eq!(got, want, "{base:?} + {changes:?}");
        }
    }

    #[test]
    fn lookups_in_any_order_find_what_a_btree_finds() {
        let mut rng = Lcg(11);
        let mut set = LayeredSet::default();
        let mut truth = BTreeSet::new();
        for _ in 0..20_000 {
            let key = rng.next(100_000) as u32;
            set.insert(key);
            truth.insert(key);
        }
        set.settle();
        // Ascending runs (as listings look up), descending, and jumps.
        let mut probes: Vec<u32> = (0..3000).map(|i| i * 33).collect();
        probes.extend((0..3000).rev().map(|i| i * 31));
        probes.extend((0..3000).map(|_| rng.next(110_000) as u32));
        for lo in probes {
            let hi = lo.saturating_add(7);
            assert_eq!(set.find(lo, hi, |_| true), truth.range(lo..=hi).next().copied(), "[{lo}, {hi}]");
        }
    }

    #[test]
    fn the_last_change_of_a_key_in_a_batch_decides() {
        for bulk in [false, true] {
            let mut set = LayeredSet::default();
            set.insert(5u32);
            set.settle();
            let filler = if bulk { BULK as u32 } else { 0 };
            (1000..1000 + filler).for_each(|k| set.insert(k));
            set.remove(5);
            set.insert(5);
            set.insert(6);
            set.remove(6);
            set.settle();
            let all: Vec<u32> = set.range(Bound::Unbounded, Bound::Included(999), true).collect();
            assert_eq!(all, vec![5], "bulk: {bulk}");
        }
    }

    #[test]
    fn snapshots_keep_what_they_saw() {
        let mut set = LayeredSet::default();
        (0..10_000u32).for_each(|k| set.insert(k));
        set.settle();
        let before = set.clone();
        (0..10_000u32).filter(|k| k % 2 == 0).for_each(|k| set.remove(k));
        set.settle();
        assert_eq!(before.len(), 10_000);
        assert_eq!(set.len(), 5_000);
        assert_eq!(before.iter(true).nth(1), Some(1));
    }
}
