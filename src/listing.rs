//! A directory's listing, kept compactly: one entry per task (its packed
//! name and which of its files were there), not one string per file. A
//! `done/` of a million tasks is two million file names; kept as strings
//! they cost ~200 MB, as entries ~33 MB. Scanners keep their last listing
//! this way, and what changed since reaches the index in the same form, so
//! a first listing of a million tasks is parsed once, not formatted back
//! into names and parsed again.

use crate::model::{entry_file_name, parse_task_entry, EntryKind, ResultKind};
use crate::names::StoredName;

/// Which files of one task a listing showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TaskFiles(u8);

/// Every kind of task file, in the order of their names' suffixes when
/// sorted (`.cancelled.json` < `.json` < `.result.json` < `.skipped.json`).
const KINDS: [EntryKind; 4] = [
    EntryKind::Result(ResultKind::Cancelled),
    EntryKind::Spec,
    EntryKind::Result(ResultKind::Ran),
    EntryKind::Result(ResultKind::Skipped),
];

impl TaskFiles {
    fn bit(kind: EntryKind) -> u8 {
        1 << KINDS.iter().position(|k| *k == kind).unwrap_or(0)
    }
    fn with(self, kind: EntryKind) -> TaskFiles {
        TaskFiles(self.0 | TaskFiles::bit(kind))
    }
    pub fn has(self, kind: EntryKind) -> bool {
        self.0 & TaskFiles::bit(kind) != 0
    }
    pub fn spec(self) -> bool {
        self.has(EntryKind::Spec)
    }
    /// The kinds present, in sorted-name order.
    pub fn kinds(self) -> impl Iterator<Item = EntryKind> {
        KINDS.into_iter().filter(move |k| self.has(*k))
    }
    /// Result files present (a task has one; more is a broken tree).
    pub fn results(self) -> impl Iterator<Item = ResultKind> {
        self.kinds().filter_map(|k| match k {
            EntryKind::Result(r) => Some(r),
            EntryKind::Spec => None,
        })
    }
    /// The result that counts when several are there: the last in sorted
    /// order, as a reader of the sorted names would take it.
    pub fn result(self) -> Option<ResultKind> {
        self.results().last()
    }
    pub fn count(self) -> usize {
        self.0.count_ones() as usize
    }
    fn minus(self, other: TaskFiles) -> TaskFiles {
        TaskFiles(self.0 & !other.0)
    }
    /// The files as one byte (for the cache's copy of a listing).
    pub fn bits(self) -> u8 {
        self.0
    }
    /// The files a [`bits`](Self::bits) byte names; `None` for a byte no
    /// listing gives (no file, or a kind that does not exist).
    pub fn from_bits(bits: u8) -> Option<TaskFiles> {
        (bits != 0 && bits >> KINDS.len() == 0).then_some(TaskFiles(bits))
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Listing {
    /// Sorted, one per task; `files[i]` are the files of `names[i]`. Apart,
    /// not as pairs: a pair pads its one byte of files to eight (a kept
    /// `done/` of a million tasks: 33 MB, not 40).
    names: Vec<StoredName>,
    files: Vec<TaskFiles>,
    /// Names that are not task files, sorted.
    others: Vec<String>,
}

impl Listing {
    /// The listing of these file names (any order, duplicates allowed).
    pub fn of<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Listing {
        let names = names.into_iter();
        let mut tasks = Vec::with_capacity(names.size_hint().0 / 2 + 1);
        let mut others = Vec::new();
        for name in names {
            let name = name.as_ref();
            match parse_task_entry(name) {
                Some((stem, parsed, kind)) => {
                    tasks.push((StoredName::parsed(stem, &parsed), TaskFiles::default().with(kind)))
                }
                None => others.push(name.to_string()),
            }
        }
        tasks.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        tasks.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 = TaskFiles(kept.1 .0 | later.1 .0);
            }
            same
        });
        others.sort_unstable();
        others.dedup();
        let (names, files) = tasks.into_iter().unzip();
        Listing { names, files, others }
    }

    /// A listing made of its parts (the cache's copy of one); `None`
    /// unless the names are sorted and free of duplicates, as
    /// [`of`](Self::of) makes them (every merge and diff relies on it), and
    /// each has its files.
    pub fn from_parts(names: Vec<StoredName>, files: Vec<TaskFiles>, others: Vec<String>) -> Option<Listing> {
        let sorted_names = names.windows(2).all(|w| w[0] < w[1]);
        let sorted_others = others.windows(2).all(|w| w[0] < w[1]);
        (sorted_names && sorted_others && names.len() == files.len()).then_some(Listing {
            names,
            files,
            others,
        })
    }

    /// Number of files listed.
    pub fn len(&self) -> usize {
        self.files.iter().map(|files| files.count()).sum::<usize>() + self.others.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.others.is_empty()
    }

    /// Each task's name and files, in name order.
    pub fn tasks(&self) -> impl Iterator<Item = (&StoredName, TaskFiles)> {
        self.names.iter().zip(self.files.iter().copied())
    }

    /// Number of tasks listed.
    pub fn task_count(&self) -> usize {
        self.names.len()
    }

    /// Names that are not task files, sorted.
    pub fn others(&self) -> &[String] {
        &self.others
    }

    /// Every file name, tasks' files adjacent (for tests and checks).
    pub fn file_names(&self) -> Vec<String> {
        let mut names = self.others.clone();
        for (name, files) in self.tasks() {
            let stem = name.text();
            names.extend(files.kinds().map(|kind| entry_file_name(&stem, kind)));
        }
        names
    }

    /// Adds a task after every name there (callers go in name order).
    fn push(&mut self, name: &StoredName, files: TaskFiles) {
        self.names.push(name.clone());
        self.files.push(files);
    }

    /// What `new` lists and this does not, and what this lists and `new`
    /// does not.
    pub fn diff(&self, new: &Listing) -> (Listing, Listing) {
        let (others_added, others_removed) = diff_sorted(&self.others, &new.others);
        let mut added = Listing { others: others_added, ..Listing::default() };
        let mut removed = Listing { others: others_removed, ..Listing::default() };
        merge(self, new, |name, old, new| {
            let (more, fewer) = (new.minus(old), old.minus(new));
            if more.count() > 0 {
                added.push(name, more);
            }
            if fewer.count() > 0 {
                removed.push(name, fewer);
            }
        });
        (added, removed)
    }

    /// Adds what `other` lists (a listing that only adds).
    pub fn add(&mut self, other: &Listing) {
        let capacity = self.names.len().max(other.names.len());
        let mut both = Listing {
            names: Vec::with_capacity(capacity),
            files: Vec::with_capacity(capacity),
            others: std::mem::take(&mut self.others),
        };
        merge(self, other, |name, old, new| both.push(name, TaskFiles(old.0 | new.0)));
        both.others.extend(other.others.iter().cloned());
        both.others.sort_unstable();
        both.others.dedup();
        *self = both;
    }
}

/// Walks two listings' tasks together, calling `each(name, files in a,
/// files in b)` once per name in either.
fn merge(a: &Listing, b: &Listing, mut each: impl FnMut(&StoredName, TaskFiles, TaskFiles)) {
    use std::cmp::Ordering;
    let none = TaskFiles::default();
    let (mut i, mut j) = (0, 0);
    while i < a.names.len() || j < b.names.len() {
        let order = match (a.names.get(i), b.names.get(j)) {
            (Some(x), Some(y)) => x.cmp(y),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                each(&a.names[i], a.files[i], none);
                i += 1;
            }
            Ordering::Greater => {
                each(&b.names[j], none, b.files[j]);
                j += 1;
            }
            Ordering::Equal => {
                each(&a.names[i], a.files[i], b.files[j]);
                i += 1;
                j += 1;
            }
        }
    }
}

/// Names in `new` but not `old`, and in `old` but not `new`. Both inputs
/// must be sorted and free of duplicates; so are the outputs.
fn diff_sorted(old: &[String], new: &[String]) -> (Vec<String>, Vec<String>) {
    use std::cmp::Ordering;
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() && j < new.len() {
        match old[i].cmp(&new[j]) {
            Ordering::Less => {
                removed.push(old[i].clone());
                i += 1;
            }
            Ordering::Greater => {
                added.push(new[j].clone());
                j += 1;
            }
            Ordering::Equal => {
                i += 1;
                j += 1;
            }
        }
    }
    removed.extend_from_slice(&old[i..]);
    added.extend_from_slice(&new[j..]);
    (added, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "2b7c9c9b-0000-4000-8000-00000000abcd";

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| n.replace("U", UUID)).collect()
    }

    #[test]
    fn diffs_files_of_tasks_and_other_names() {
        let old = Listing::of(names(&["1_T1_U.json", "2_T2_U.json", "2_T2_U.result.json", "x.txt"]));
        let new = Listing::of(names(&["2_T2_U.result.json", "2_T2_U.json", "3_T3_U.cancelled.json", "y"]));
        assert_eq!(old.len(), 4);
        let (added, removed) = old.diff(&new);
        assert_eq!(added.file_names(), names(&["y", "3_T3_U.cancelled.json"]));
        assert_eq!(removed.file_names(), names(&["x.txt", "1_T1_U.json"]));
        assert_eq!(new.diff(&new), (Listing::default(), Listing::default()));
    }

    #[test]
    fn a_task_with_a_file_more_or_less_is_a_change_of_that_file_only() {
        let old = Listing::of(names(&["2_T2_U.json"]));
        let new = Listing::of(names(&["2_T2_U.json", "2_T2_U.result.json"]));
        let result_only = Listing::of(names(&["2_T2_U.result.json"]));
        assert_eq!(old.diff(&new), (result_only.clone(), Listing::default()));
        assert_eq!(new.diff(&old), (Listing::default(), result_only));
    }

    #[test]
    fn adding_a_listing_keeps_both() {
        let mut a = Listing::of(names(&["1_T1_U.json", "o"]));
        a.add(&Listing::of(names(&["1_T1_U.result.json", "2_T2_U.json", "o", "p"])));
        assert_eq!(a, Listing::of(names(&["1_T1_U.json", "1_T1_U.result.json", "2_T2_U.json", "o", "p"])));
        assert_eq!(a.len(), 5);
    }

    #[test]
    fn duplicates_and_odd_names_come_back_exactly() {
        let odd = names(&["000012_Long_task_id_U.json", "7_T_U.JSON", "7_T_U.json", "7_T_U.json"]);
        let listing = Listing::of(odd);
        let (added, removed) = Listing::default().diff(&listing);
        assert!(removed.is_empty());
        let mut added = added.file_names();
        added.sort();
        assert_eq!(added, names(&["000012_Long_task_id_U.json", "7_T_U.JSON", "7_T_U.json"]));
    }

    #[test]
    fn several_results_count_as_the_last_a_sorted_listing_shows() {
        let all = Listing::of(names(&["1_T1_U.cancelled.json", "1_T1_U.result.json", "1_T1_U.json"]));
        let (_, files) = all.tasks().next().unwrap();
        assert!(files.spec());
        assert_eq!(files.results().collect::<Vec<_>>(), [ResultKind::Cancelled, ResultKind::Ran]);
        assert_eq!(files.result(), Some(ResultKind::Ran));
        let mut sorted = all.file_names();
        sorted.sort();
        assert_eq!(sorted, all.file_names(), "a task's files come in sorted order");
    }

    #[test]
    fn diffs_sorted_other_names() {
        let v = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (added, removed) = diff_sorted(&v(&["a", "b", "d"]), &v(&["b", "c", "d", "e"]));
        assert_eq!(added, v(&["c", "e"]));
        assert_eq!(removed, v(&["a"]));
        assert_eq!(diff_sorted(&[], &v(&["x"])), (v(&["x"]), vec![]));
        assert_eq!(diff_sorted(&v(&["x"]), &[]), (vec![], v(&["x"])));
    }
}
