//! A directory's last listing, kept compactly between rounds: one entry per
//! task (its packed name and which of its files were there), not one string
//! per file. A `done/` of a million tasks is two million file names; kept
//! as strings they cost ~200 MB, as entries ~48 MB.

use crate::model::{parse_task_entry, result_file_name, spec_file_name, EntryKind, ResultKind};
use crate::names::StoredName;

/// Which files of one task a listing showed (bits of [`file_bit`]).
type Files = u8;

const KINDS: [EntryKind; 4] = [
    EntryKind::Spec,
    EntryKind::Result(ResultKind::Ran),
    EntryKind::Result(ResultKind::Skipped),
    EntryKind::Result(ResultKind::Cancelled),
];

fn file_bit(kind: EntryKind) -> Files {
    1 << KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

fn file_name(stem: &str, kind: EntryKind) -> String {
    match kind {
        EntryKind::Spec => spec_file_name(stem),
        EntryKind::Result(result) => result_file_name(stem, result),
    }
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Listing {
    /// Sorted by name, one entry per task.
    tasks: Vec<(StoredName, Files)>,
    /// Names that are not task files, sorted.
    others: Vec<String>,
}

impl Listing {
    /// The listing of these file names (any order, duplicates allowed).
    pub fn of(names: Vec<String>) -> Listing {
        let mut tasks = Vec::with_capacity(names.len() / 2 + 1);
        let mut others = Vec::new();
        for name in names {
            match parse_task_entry(&name) {
                Some((stem, parsed, kind)) => tasks.push((StoredName::parsed(stem, &parsed), file_bit(kind))),
                None => others.push(name),
            }
        }
        tasks.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        tasks.dedup_by(|later, kept| {
            let same = later.0 == kept.0;
            if same {
                kept.1 |= later.1;
            }
            same
        });
        tasks.shrink_to_fit();
        others.sort_unstable();
        others.dedup();
        Listing { tasks, others }
    }

    /// Number of files listed.
    pub fn len(&self) -> usize {
        self.tasks.iter().map(|(_, files)| files.count_ones() as usize).sum::<usize>() + self.others.len()
    }

    /// File names in `new` but not here, and here but not in `new`; the
    /// files of one task are adjacent in both.
    pub fn diff(&self, new: &Listing) -> (Vec<String>, Vec<String>) {
        let (mut added, mut removed) = super::diff::diff_sorted(&self.others, &new.others);
        merge(&self.tasks, &new.tasks, |name, old, new| {
            let stem = name.text();
            for kind in KINDS {
                let bit = file_bit(kind);
                if new & bit != 0 && old & bit == 0 {
                    added.push(file_name(&stem, kind));
                } else if old & bit != 0 && new & bit == 0 {
                    removed.push(file_name(&stem, kind));
                }
            }
        });
        (added, removed)
    }

    /// Adds what `other` lists (a listing that only adds).
    pub fn add(&mut self, other: &Listing) {
        let mut tasks = Vec::with_capacity(self.tasks.len().max(other.tasks.len()));
        merge(&self.tasks, &other.tasks, |name, old, new| tasks.push((name.clone(), old | new)));
        self.tasks = tasks;
        self.others.extend(other.others.iter().cloned());
        self.others.sort_unstable();
        self.others.dedup();
    }
}

/// Walks two sorted entry lists together, calling `each(name, files in a,
/// files in b)` once per name in either.
fn merge(
    a: &[(StoredName, Files)],
    b: &[(StoredName, Files)],
    mut each: impl FnMut(&StoredName, Files, Files),
) {
    use std::cmp::Ordering;
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let order = match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) => x.0.cmp(&y.0),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        match order {
            Ordering::Less => {
                each(&a[i].0, a[i].1, 0);
                i += 1;
            }
            Ordering::Greater => {
                each(&b[j].0, 0, b[j].1);
                j += 1;
            }
            Ordering::Equal => {
                each(&a[i].0, a[i].1, b[j].1);
                i += 1;
                j += 1;
            }
        }
    }
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
        assert_eq!(added, names(&["y", "3_T3_U.cancelled.json"]));
        assert_eq!(removed, names(&["x.txt", "1_T1_U.json"]));
        assert_eq!(new.diff(&new), (vec![], vec![]));
    }

    #[test]
    fn a_task_with_a_file_more_or_less_is_a_change_of_that_file_only() {
        let old = Listing::of(names(&["2_T2_U.json"]));
        let new = Listing::of(names(&["2_T2_U.json", "2_T2_U.result.json"]));
        assert_eq!(old.diff(&new), (names(&["2_T2_U.result.json"]), vec![]));
        assert_eq!(new.diff(&old), (vec![], names(&["2_T2_U.result.json"])));
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
        let mut added = added;
        added.sort();
        assert_eq!(added, names(&["000012_Long_task_id_U.json", "7_T_U.JSON", "7_T_U.json"]));
    }
}
