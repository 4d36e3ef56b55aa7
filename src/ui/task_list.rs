//! The task list's window over a view: which rows are on screen, where the
//! cursor is, and how moving works. The cursor is anchored on a task id,
//! so it stays on its task while the data changes. Pure: every query is a
//! page query on the snapshot, O(log n + rows).

use std::sync::Arc;

use crate::index::{Index, TaskId, ViewSpec};

/// What the list shows: a live view of the index, or a search's matches.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    View,
    /// Ids of matching tasks in view order, as a search streamed them.
    Matches(Arc<Vec<TaskId>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskList {
    pub view: ViewSpec,
    pub source: Source,
    /// The selected task; None selects the first row.
    pub selected: Option<TaskId>,
    /// Screen row of the cursor inside the pane (kept while scrolling).
    pub cursor_row: usize,
    /// Position of the cursor in the list (exact for matches; for views
    /// it is tracked through moves and reset by g/G).
    pub position: u64,
    /// The ids drawn last frame (the engine reads their files first).
    pub last_window: Vec<TaskId>,
}

/// The rows to draw and where the cursor is among them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub ids: Vec<TaskId>,
    pub cursor: Option<usize>,
    pub total: u64,
    pub first_position: u64,
}

impl TaskList {
    pub fn new(view: ViewSpec) -> TaskList {
        TaskList {
            view,
            source: Source::View,
            selected: None,
            cursor_row: 0,
            position: 0,
            last_window: Vec::new(),
        }
    }

    pub fn total(&self, index: &Index) -> u64 {
        match &self.source {
            Source::View => index.view_total(&self.view),
            Source::Matches(ids) => ids.len() as u64,
        }
    }

    /// Up to `limit` ids strictly after (forward) or before the anchor.
    fn step(
        &self,
        index: &Index,
        anchor: Option<TaskId>,
        forward: bool,
        inclusive: bool,
        limit: usize,
    ) -> Vec<TaskId> {
        match &self.source {
            Source::View => index.page(&self.view, anchor, forward, inclusive, limit),
            Source::Matches(ids) => {
                let at = anchor.and_then(|a| self.index_in(ids, a));
                match (at, forward) {
                    (None, true) => ids.iter().take(limit).copied().collect(),
                    (None, false) => ids.iter().rev().take(limit).copied().collect(),
                    (Some(i), true) => {
                        let start = if inclusive { i } else { i + 1 };
                        ids.iter().skip(start).take(limit).copied().collect()
                    }
                    (Some(i), false) => {
                        let end = if inclusive { i + 1 } else { i };
                        ids[..end].iter().rev().take(limit).copied().collect()
                    }
                }
            }
        }
    }

    /// Where `id` sits in a match list: O(1) at or next to the tracked
    /// position (every move keeps it), a scan only when it is off.
    fn index_in(&self, ids: &[TaskId], id: TaskId) -> Option<usize> {
        let at = self.position as usize;
        (at.saturating_sub(1)..(at + 2).min(ids.len()))
            .find(|&i| ids[i] == id)
            .or_else(|| ids.iter().position(|&x| x == id))
    }

    /// The rows for a pane `height` rows high, cursor kept on its task.
    pub fn window(&mut self, index: &Index, height: usize) -> Window {
        let total = self.total(index);
        if height == 0 {
            return Window { ids: vec![], cursor: None, total, first_position: 0 };
        }
        if let Source::Matches(ids) = &self.source {
            if let Some(i) = self.selected.and_then(|s| self.index_in(ids, s)) {
                self.position = i as u64;
            }
        }
        self.cursor_row = self.cursor_row.min(height - 1);
        let mut above = self.step(index, self.selected, false, false, self.cursor_row);
        above.reverse();
        let mut below = self.step(index, self.selected, true, true, height - above.len());
        // Near the end: fill the pane from above instead of leaving it empty.
        if above.len() + below.len() < height && !above.is_empty() {
            let first = above.first().copied();
            let mut more = self.step(index, first, false, false, height - above.len() - below.len());
            more.reverse();
            more.extend(above);
            above = more;
        }
        let selected_shown = self.selected.is_some() && below.first() == self.selected.as_ref();
        if !selected_shown {
            // The selected task left this view: select what now sits where
            // it was, or the last row.
            self.selected = below.first().copied().or(above.last().copied());
            if below.is_empty() && !above.is_empty() {
                below.push(above.pop().unwrap_or_default());
            }
        }
        let cursor = if self.selected.is_some() { Some(above.len()) } else { None };
        self.cursor_row = above.len();
        let first_position = self.position.saturating_sub(above.len() as u64);
        let mut ids = above;
        ids.extend(below);
        ids.truncate(height);
        self.last_window.clone_from(&ids);
        Window { ids, cursor, total, first_position }
    }

    /// Moves the cursor by `delta` rows; the pane is `height` rows high.
    pub fn move_by(&mut self, index: &Index, delta: i64, height: usize) {
        let forward = delta > 0;
        let steps = delta.unsigned_abs() as usize;
        if steps == 0 {
            return;
        }
        let path = self.step(index, self.selected, forward, false, steps);
        if let Some(&last) = path.last() {
            if self.selected.is_none() && forward {
                // From "first row" implicit selection.
                self.selected = self.step(index, None, true, true, 1).first().copied();
                return self.move_by(index, delta, height);
            }
            self.selected = Some(last);
            let moved = path.len() as i64;
            if forward {
                self.position += moved as u64;
                self.cursor_row = (self.cursor_row + path.len()).min(height.saturating_sub(1));
            } else {
                self.position = self.position.saturating_sub(moved as u64);
                self.cursor_row = self.cursor_row.saturating_sub(path.len());
            }
        }
    }

    pub fn home(&mut self, index: &Index) {
        self.selected = self.step(index, None, true, true, 1).first().copied();
        self.cursor_row = 0;
        self.position = 0;
    }

    pub fn end(&mut self, index: &Index, height: usize) {
        self.selected = self.step(index, None, false, true, 1).first().copied();
        self.cursor_row = height.saturating_sub(1);
        self.position = self.total(index).saturating_sub(1);
    }

    /// A new filter or order: back to the top, same cursor task if it is
    /// still in view.
    pub fn set_view(&mut self, view: ViewSpec) {
        self.view = view;
        self.source = Source::View;
        self.position = 0;
        self.cursor_row = 0;
    }

    pub fn set_matches(&mut self, ids: Arc<Vec<TaskId>>) {
        self.source = Source::Matches(ids);
        self.position = 0;
        self.cursor_row = 0;
        self.selected = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::{DirOutcome, Event, Order, Round, StateSet, TaskState};
    use crate::paths::QueueDir;

    fn index(n: u32) -> Index {
        let mut index = Index::new(60);
        let added: Vec<String> =
            (1..=n).map(|i| format!("{i:06}_T{i}_00000000-0000-4000-8000-{i:012}.json")).collect();
        let dirs = vec![(QueueDir::Inbox, DirOutcome::changed(added, vec![]))];
        index.apply(Event::Round(Round { node: "a".into(), dirs }));
        index
    }

    fn seqs(index: &Index, ids: &[TaskId]) -> Vec<u64> {
        ids.iter().map(|&id| index.task(id).unwrap().seq()).collect()
    }

    #[test]
    fn windows_scroll_and_keep_the_cursor() {
        let index = index(100);
        let mut list = TaskList::new(ViewSpec { order: Order::SeqInNode, ..ViewSpec::default() });
        let w = list.window(&index, 5);
        assert_eq!(seqs(&index, &w.ids), vec![1, 2, 3, 4, 5]);
        assert_eq!(w.cursor, Some(0));
        list.move_by(&index, 7, 5);
        let w = list.window(&index, 5);
        assert_eq!(w.cursor, Some(4));
        assert_eq!(seqs(&index, &w.ids), vec![4, 5, 6, 7, 8]);
        assert_eq!(list.position, 7);
        list.move_by(&index, -2, 5);
        let w = list.window(&index, 5);
        assert_eq!(seqs(&index, &w.ids), vec![4, 5, 6, 7, 8]);
        assert_eq!(w.cursor, Some(2));
        list.end(&index, 5);
        let w = list.window(&index, 5);
        assert_eq!(seqs(&index, &w.ids), vec![96, 97, 98, 99, 100]);
        assert_eq!(w.cursor, Some(4));
        list.home(&index);
        assert_eq!(seqs(&index, &list.window(&index, 5).ids), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn a_selected_task_leaving_the_view_moves_the_cursor_to_its_neighbour() {
        let mut index = index(10);
        let pending = ViewSpec { states: StateSet::of(&[TaskState::Pending]), ..ViewSpec::default() };
        let mut list = TaskList::new(ViewSpec { order: Order::SeqInNode, ..pending });
        list.move_by(&index, 3, 5);
        let claimed = format!("{:06}_T{}_00000000-0000-4000-8000-{:012}.json", 4, 4, 4);
        let dirs = vec![
            (QueueDir::Claimed, DirOutcome::changed(vec![claimed.clone()], vec![])),
            (QueueDir::Inbox, DirOutcome::changed(vec![], vec![claimed])),
        ];
        index.apply(Event::Round(Round { node: "a".into(), dirs }));
        let w = list.window(&index, 5);
        let at = w.cursor.unwrap();
        assert_eq!(index.task(w.ids[at]).unwrap().seq(), 5);
        assert_eq!(w.total, 9);
    }

    #[test]
    fn matches_page_exactly() {
        let index = index(20);
        let mut list = TaskList::new(ViewSpec::default());
        let ids: Vec<TaskId> = (0..20).filter(|i| i % 2 == 0).collect();
        list.set_matches(Arc::new(ids));
        list.move_by(&index, 3, 4);
        let w = list.window(&index, 4);
        assert_eq!(w.total, 10);
        assert_eq!(w.ids[w.cursor.unwrap()], 6);
        assert_eq!(list.position, 3);
    }
}
