//! Pages of the views remembered until the views change. An idle
//! dashboard redraws once a second (ages tick) and gets a new snapshot
//! with every heartbeat round, while its task rows and each node's running
//! task stay the same; recomputing them is a few hundred binary searches
//! over arrays of megabytes, each step a cache miss once the process has
//! slept (`cargo bench --bench frame_after_pause`). Shared by every
//! snapshot of one index: an entry is keyed by the views' generation, the
//! same in every snapshot whose views are the same.

use std::sync::Mutex;

use super::task::TaskId;
use super::views::ViewSpec;

/// Pages longer than this are not kept (a search's chunks, a CLI listing).
const LONGEST_KEPT: usize = 256;

/// Distinct pages kept for one generation: a frame asks for about twenty
/// (the task window's two or three, one per node row).
const MOST_KEPT: usize = 64;

/// One page query, as `Index::page` takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    pub view: ViewSpec,
    pub anchor: Option<TaskId>,
    pub forward: bool,
    pub inclusive: bool,
    pub limit: usize,
}

#[derive(Debug, Default)]
pub struct PageMemo {
    inner: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    generation: u64,
    pages: Vec<(PageQuery, Vec<TaskId>)>,
}

impl PageMemo {
    /// The page `query` gives at `generation`: remembered, or made by
    /// `make` (outside the lock) and remembered.
    pub fn page(&self, generation: u64, query: PageQuery, make: impl FnOnce() -> Vec<TaskId>) -> Vec<TaskId> {
        if query.limit > LONGEST_KEPT {
            return make();
        }
        if let Some(found) = self.lookup(generation, &query) {
            return found;
        }
        let page = make();
        let mut kept = self.kept();
        if kept.generation != generation {
            // Only a newer generation replaces what is kept: an older
            // snapshot still drawn must not evict the current pages.
            if generation < kept.generation {
                return page;
            }
            kept.generation = generation;
            kept.pages.clear();
        }
        if kept.pages.len() >= MOST_KEPT {
            kept.pages.clear();
        }
        kept.pages.push((query, page.clone()));
        page
    }

    fn lookup(&self, generation: u64, query: &PageQuery) -> Option<Vec<TaskId>> {
        let kept = self.kept();
        if kept.generation != generation {
            return None;
        }
        kept.pages.iter().find(|(q, _)| q == query).map(|(_, page)| page.clone())
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        // What is kept is a plain cache: a panic elsewhere cannot leave it
        // inconsistent, at worst incomplete.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(limit: usize) -> PageQuery {
        PageQuery { view: ViewSpec::default(), anchor: None, forward: true, inclusive: true, limit }
    }

    #[test]
    fn a_page_is_made_once_per_generation() {
        let memo = PageMemo::default();
        let made = std::cell::Cell::new(0);
        let ask = |generation, limit| {
            memo.page(generation, query(limit), || {
                made.set(made.get() + 1);
                vec![generation as TaskId]
            })
        };
        assert_eq!(ask(1, 5), vec![1]);
        assert_eq!(ask(1, 5), vec![1]);
        assert_eq!(ask(2, 5), vec![2], "a new generation makes it again");
        assert_eq!(ask(1, 5), vec![1], "an older snapshot gets its own page");
        assert_eq!(ask(2, 5), vec![2], "and does not evict the newer one");
        assert_eq!(ask(2, 6), vec![2]);
        assert_eq!(ask(2, LONGEST_KEPT + 1), vec![2]);
        assert_eq!(ask(2, LONGEST_KEPT + 1), vec![2]);
        assert_eq!(made.get(), 6, "made: 1 and 2 of limit 5, 1 again, limit 6, and the long page twice");
    }
}
