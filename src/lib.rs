//! leaseq: a file-based task queue's engine and terminal dashboard.
//!
//! Data flows one way: scanners list directories and emit events, the index
//! folds them into persistent maps, and readers (the TUI, the one-shot CLI)
//! take O(1) snapshots. See README.md for the tour.

pub mod index;
pub mod model;
pub mod paths;
