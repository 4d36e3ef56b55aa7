//! Scanners: list queue directories by name and turn listings into events.
//!
//! Owns: the listing source abstraction (real filesystem or simulated NFS),
//! the per-node round (which directories, in which order, when to skip),
//! listing diffs, node discovery, heartbeat reads and the adaptive cadence.
//! Must not: stat or read task files (names only), or hold index state.

mod cadence;
mod discover;
mod round;

pub use crate::runfs::{DirStamp, FsSource, ListError, RunFs, SMALL_FILE_BYTES};
pub use cadence::Cadence;
pub use discover::{
    discover_nodes, read_heartbeat, read_heartbeats, read_paused, read_paused_nodes, Discovery,
};
pub use round::{NodeScanner, PARK_AT_LEAST, ROUND_ORDER};
