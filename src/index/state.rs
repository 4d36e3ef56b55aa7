//! A task's derived state and how it is derived from what the listings and
//! the hydrated files showed. Pure: no I/O, no clock.

use serde::{Serialize, Serializer};

use crate::model::ResultKind;

/// Derived task state. The declaration order is the default sort priority:
/// live work first (RUNNING, then the two that need attention), then the
/// queue, then history (failures before successes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskState {
    Running,
    /// In `claimed/` on a node whose heartbeat is stale or missing.
    Stuck,
    /// Was seen, vanished from every queue directory, and no result yet.
    Lost,
    Pending,
    Failed,
    /// A `.result.json` exists but has not been read yet, so finished and
    /// failed cannot be told apart. Terminal.
    Done,
    Finished,
    Cancelled,
    Skipped,
}

impl TaskState {
    pub const ALL: [TaskState; 9] = [
        TaskState::Running,
        TaskState::Stuck,
        TaskState::Lost,
        TaskState::Pending,
        TaskState::Failed,
        TaskState::Done,
        TaskState::Finished,
        TaskState::Cancelled,
        TaskState::Skipped,
    ];
    pub const COUNT: usize = 9;

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn label(self) -> &'static str {
        match self {
            TaskState::Running => "RUNNING",
            TaskState::Stuck => "STUCK",
            TaskState::Lost => "LOST?",
            TaskState::Pending => "PENDING",
            TaskState::Failed => "FAILED",
            TaskState::Done => "DONE",
            TaskState::Finished => "FINISHED",
            TaskState::Cancelled => "CANCELLED",
            TaskState::Skipped => "SKIPPED",
        }
    }

    /// Accepts the labels and a few short forms people type (`run`, `lost`).
    pub fn parse(text: &str) -> Option<TaskState> {
        let upper = text.trim().trim_end_matches('?').to_ascii_uppercase();
        TaskState::ALL.into_iter().find(|s| {
            let label = s.label().trim_end_matches('?');
            label == upper || (upper.len() >= 3 && label.starts_with(&upper))
        })
    }

    /// A result was seen: listings can never move the task out again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            TaskState::Failed
                | TaskState::Done
                | TaskState::Finished
                | TaskState::Cancelled
                | TaskState::Skipped
        )
    }
}

impl std::fmt::Display for TaskState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl Serialize for TaskState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.label())
    }
}

/// A set of states, for filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateSet(u16);

impl StateSet {
    pub const ALL: StateSet = StateSet((1 << TaskState::COUNT) - 1);
    pub const NONE: StateSet = StateSet(0);

    pub fn of(states: &[TaskState]) -> StateSet {
        StateSet(states.iter().fold(0, |bits, s| bits | 1 << s.index()))
    }
    pub fn contains(self, state: TaskState) -> bool {
        self.0 & (1 << state.index()) != 0
    }
    pub fn is_all(self) -> bool {
        self == StateSet::ALL
    }
    pub fn iter(self) -> impl DoubleEndedIterator<Item = TaskState> {
        TaskState::ALL.into_iter().filter(move |s| self.contains(*s))
    }
}

/// Where the listings last saw a task, and which result file exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Presence {
    pub inbox: bool,
    pub claimed: bool,
    /// The spec archived in `done/` (a result is tracked separately).
    pub done_spec: bool,
    /// Sticky: once a result file was listed it stays, whatever a lagging
    /// listing says later (results are immutable and never move).
    pub result: Option<ResultKind>,
}

impl Presence {
    /// Neither queued, nor running, nor finished: the task is somewhere the
    /// listings cannot see (in flight, lagging, or lost).
    pub fn is_unaccounted(&self) -> bool {
        self.result.is_none() && !self.inbox && !self.claimed
    }
}

/// Listing rounds a task must be unaccounted for before it is LOST?. The
/// scan order (`scan::ROUND_ORDER`) sees every task that moves once during
/// a round; one that moves twice in a round (claimed, recovered, claimed
/// again) can hide for that round, so one round of absence is not proof.
pub const LOST_AFTER_ROUNDS: u8 = 2;

/// The state the evidence supports. `previous` is kept while a task is
/// unaccounted for fewer than [`LOST_AFTER_ROUNDS`] rounds ("missing is
/// unknown, not gone").
pub fn derive_state(
    presence: &Presence,
    exit_code: Option<i32>,
    node_alive: bool,
    missing_rounds: u8,
    previous: Option<TaskState>,
) -> TaskState {
    if let Some(kind) = presence.result {
        return match kind {
            ResultKind::Ran => match exit_code {
                None => TaskState::Done,
                Some(0) => TaskState::Finished,
                Some(_) => TaskState::Failed,
            },
            ResultKind::Skipped => TaskState::Skipped,
            ResultKind::Cancelled => TaskState::Cancelled,
        };
    }
    if presence.claimed {
        return if node_alive { TaskState::Running } else { TaskState::Stuck };
    }
    if presence.inbox {
        return TaskState::Pending;
    }
    match previous {
        Some(prev) if missing_rounds < LOST_AFTER_ROUNDS && !prev.is_terminal() => {
            // Keep showing the last state, with liveness kept current.
            match prev {
                TaskState::Running | TaskState::Stuck if !node_alive => TaskState::Stuck,
                TaskState::Running | TaskState::Stuck => TaskState::Running,
                other => other,
            }
        }
        _ => TaskState::Lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(inbox: bool, claimed: bool, result: Option<ResultKind>) -> Presence {
        Presence { inbox, claimed, done_spec: false, result }
    }

    #[test]
    fn result_wins_over_everything() {
        let p = present(true, true, Some(ResultKind::Ran));
        assert_eq!(derive_state(&p, Some(0), true, 0, None), TaskState::Finished);
        assert_eq!(derive_state(&p, Some(3), true, 0, None), TaskState::Failed);
        assert_eq!(derive_state(&p, None, true, 0, None), TaskState::Done);
        let c = present(false, false, Some(ResultKind::Cancelled));
        assert_eq!(derive_state(&c, Some(-1), true, 5, None), TaskState::Cancelled);
    }

    #[test]
    fn claimed_is_running_or_stuck() {
        let p = present(true, true, None);
        assert_eq!(derive_state(&p, None, true, 0, None), TaskState::Running);
        assert_eq!(derive_state(&p, None, false, 0, None), TaskState::Stuck);
    }

    #[test]
    fn vanished_keeps_last_state_for_one_round_then_lost() {
        let gone = present(false, false, None);
        let prev = Some(TaskState::Running);
        assert_eq!(derive_state(&gone, None, true, 1, prev), TaskState::Running);
        assert_eq!(derive_state(&gone, None, true, 2, prev), TaskState::Lost);
        assert_eq!(derive_state(&gone, None, true, 1, None), TaskState::Lost);
    }

    #[test]
    fn parse_labels_and_short_forms() {
        assert_eq!(TaskState::parse("lost?"), Some(TaskState::Lost));
        assert_eq!(TaskState::parse("LOST"), Some(TaskState::Lost));
        assert_eq!(TaskState::parse("run"), Some(TaskState::Running));
        assert_eq!(TaskState::parse("fail"), Some(TaskState::Failed));
        assert_eq!(TaskState::parse("x"), None);
    }

    #[test]
    fn state_sets() {
        let set = StateSet::of(&[TaskState::Running, TaskState::Stuck]);
        assert!(set.contains(TaskState::Stuck) && !set.contains(TaskState::Pending));
        assert_eq!(set.iter().count(), 2);
        assert_eq!(StateSet::ALL.iter().count(), TaskState::COUNT);
    }
}
