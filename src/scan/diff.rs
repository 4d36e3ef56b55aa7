//! Diffing two sorted listings.

/// Names in `new` but not `old`, and in `old` but not `new`. Both inputs
/// must be sorted and free of duplicates; so are the outputs.
pub fn diff_sorted(old: &[String], new: &[String]) -> (Vec<String>, Vec<String>) {
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

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn diffs_sorted_listings() {
        let (added, removed) = diff_sorted(&v(&["a", "b", "d"]), &v(&["b", "c", "d", "e"]));
        assert_eq!(added, v(&["c", "e"]));
        assert_eq!(removed, v(&["a"]));
        assert_eq!(diff_sorted(&[], &v(&["x"])), (v(&["x"]), vec![]));
        assert_eq!(diff_sorted(&v(&["x"]), &[]), (vec![], v(&["x"])));
    }
}
