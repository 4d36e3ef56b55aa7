//! The bounded feed of recent state transitions and the per-minute
//! completion counts behind the sparkline.

use imbl::{OrdMap, Vector};

use super::state::TaskState;
use super::task::TaskId;

/// Transitions kept in the feed.
pub const FEED_LEN: usize = 500;
/// Minutes of completion history kept for the sparkline.
pub const COMPLETION_MINUTES: i64 = 60;

/// "T014 RUNNING -> FAILED at <time>".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub task: TaskId,
    /// None when the task was first seen (a new submission).
    pub from: Option<TaskState>,
    pub to: TaskState,
    /// Index clock (Unix seconds) when the change was applied.
    pub at: i64,
}

#[derive(Debug, Clone, Default)]
pub struct Feed {
    transitions: Vector<Transition>,
    /// Minute (Unix seconds / 60) -> tasks that finished in it.
    completions: OrdMap<i64, u32>,
}

impl Feed {
    pub fn record(&mut self, transition: Transition) {
        // A result that was only listed shows as DONE until it is read; when
        // it is, refine the entry already in the feed instead of adding a
        // second one ("RUNNING -> FAILED", not "-> DONE" then "DONE -> FAILED").
        if transition.from == Some(TaskState::Done) {
            let recent = self.transitions.len().saturating_sub(64);
            for i in (recent..self.transitions.len()).rev() {
                if self.transitions[i].task == transition.task && self.transitions[i].to == TaskState::Done {
                    self.transitions[i].to = transition.to;
                    return;
                }
            }
            return;
        }
        self.transitions.push_back(transition);
        if self.transitions.len() > FEED_LEN {
            self.transitions.pop_front();
        }
    }

    /// Newest first.
    pub fn recent(&self) -> impl Iterator<Item = &Transition> {
        self.transitions.iter().rev()
    }

    pub fn count_completion(&mut self, finished_at: i64, now: i64) {
        let minute = finished_at.div_euclid(60);
        if now == 0 || minute > now.div_euclid(60) - COMPLETION_MINUTES {
            *self.completions.entry(minute).or_insert(0) += 1;
        }
    }

    pub fn prune(&mut self, now: i64) {
        let oldest = now.div_euclid(60) - COMPLETION_MINUTES;
        while let Some(&(minute, _)) = self.completions.get_min() {
            if minute > oldest {
                break;
            }
            self.completions.remove(&minute);
        }
    }

    /// Completions per minute for the last `minutes` minutes up to `now`,
    /// oldest first.
    pub fn completions_per_minute(&self, now: i64, minutes: usize) -> Vec<u64> {
        let last = now.div_euclid(60);
        (0..minutes as i64)
            .rev()
            .map(|back| u64::from(self.completions.get(&(last - back)).copied().unwrap_or(0)))
            .collect()
    }
}
