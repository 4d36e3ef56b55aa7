//! leaseq: a file-based task queue's engine and terminal dashboard.
//!
//! Data flows one way: scanners list directories and emit events, the index
//! folds them into persistent maps, and readers (the TUI, the one-shot CLI)
//! take O(1) snapshots. See README.md for the tour.

pub mod actions;
pub mod alloc;
pub mod background;
pub mod cache;
pub mod check;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod control;
pub mod engine;
pub mod hydrate;
pub mod index;
pub mod io_pool;
pub mod leases;
pub mod listing;
pub mod logs;
pub mod model;
pub mod names;
pub mod oneshot;
pub mod paths;
pub mod runfs;
pub mod runner;
pub mod sanitize;
pub mod scan;
pub mod sim;
pub mod slurm;
pub mod store;
pub mod task_logs;
pub mod tui;
pub mod ui;
