//! What the index keeps per node: its heartbeat, liveness, scan health and
//! exact task counts per state.

use std::sync::Arc;

use super::state::TaskState;
use crate::model::Heartbeat;

/// What is known of a node's heartbeat file.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum HeartbeatSeen {
    /// The `hb/` directory has not been read yet.
    #[default]
    NotYetRead,
    /// `hb/` was read and this node has no heartbeat file.
    Missing,
    Present(Heartbeat),
}

/// A node's health as the nodes pane shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeHealth {
    Ok {
        age_s: i64,
    },
    Stale {
        age_s: i64,
    },
    /// The heartbeat's time is ahead of ours by more than [`SKEW_TOLERANCE_S`]:
    /// one of the two clocks is wrong. Shown as a warning.
    ClockSkew {
        ahead_s: i64,
    },
    NoHeartbeat,
    Unknown,
}

/// Clocks of a cluster differ by a little; a heartbeat this far ahead of
/// ours still reads as fresh.
pub const SKEW_TOLERANCE_S: i64 = 30;

/// A heartbeat more than a day ahead is no proof of life (a runner that
/// wrote a bogus time would never go stale).
const ABSURD_SKEW_S: i64 = 86_400;

impl NodeHealth {
    pub fn label(self) -> &'static str {
        match self {
            NodeHealth::Ok { .. } => "OK",
            NodeHealth::Stale { .. } => "STALE",
            NodeHealth::ClockSkew { .. } => "SKEW",
            NodeHealth::NoHeartbeat => "NO-HB",
            NodeHealth::Unknown => "?",
        }
    }

    /// Tasks in `claimed/` on a node that is not alive are STUCK.
    pub fn is_alive(self) -> bool {
        match self {
            NodeHealth::Ok { .. } | NodeHealth::Unknown => true,
            NodeHealth::ClockSkew { ahead_s } => ahead_s < ABSURD_SKEW_S,
            NodeHealth::Stale { .. } | NodeHealth::NoHeartbeat => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: Arc<str>,
    pub heartbeat: HeartbeatSeen,
    /// The last heartbeat read failed (the previous one, if any, is kept).
    pub heartbeat_error: Option<Arc<str>>,
    pub health: NodeHealth,
    /// Exact number of tasks of this node per state.
    pub counts: [u32; TaskState::COUNT],
    /// Per queue directory (inbox, claimed, done): the last listing error.
    pub scan_errors: [Option<Arc<str>>; 3],
    /// Completed scanning rounds.
    pub rounds: u64,
    /// Files in its queue directories whose names are not task files.
    pub unrecognised: u32,
    /// `control/<node>/pause.json` is present.
    pub paused: bool,
}

impl Node {
    pub fn new(name: Arc<str>) -> Node {
        Node {
            name,
            heartbeat: HeartbeatSeen::NotYetRead,
            heartbeat_error: None,
            health: NodeHealth::Unknown,
            counts: [0; TaskState::COUNT],
            scan_errors: Default::default(),
            rounds: 0,
            unrecognised: 0,
            paused: false,
        }
    }

    pub fn count(&self, state: TaskState) -> u32 {
        self.counts[state.index()]
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    pub fn has_scan_error(&self) -> bool {
        self.heartbeat_error.is_some() || self.scan_errors.iter().any(Option::is_some)
    }

    /// Health judged at `now` against the staleness threshold.
    pub fn judge(&self, now: i64, stale_after_s: i64) -> NodeHealth {
        match &self.heartbeat {
            HeartbeatSeen::NotYetRead => NodeHealth::Unknown,
            HeartbeatSeen::Missing => NodeHealth::NoHeartbeat,
            HeartbeatSeen::Present(hb) => health_at(hb.ts, now, stale_after_s),
        }
    }
}

/// The one liveness rule, for the dashboard, `submit`, `recover` and the
/// runner's start alike: a heartbeat written at `ts` judged at `now`.
/// Saturating: a hostile `ts` (i64::MIN, i64::MAX) neither overflows nor
/// reads as fresh.
pub fn health_at(ts: i64, now: i64, stale_after_s: i64) -> NodeHealth {
    let age_s = now.saturating_sub(ts);
    if age_s < -SKEW_TOLERANCE_S {
        return NodeHealth::ClockSkew { ahead_s: age_s.saturating_neg() };
    }
    let age_s = age_s.max(0);
    if age_s <= stale_after_s {
        NodeHealth::Ok { age_s }
    } else {
        NodeHealth::Stale { age_s }
    }
}
