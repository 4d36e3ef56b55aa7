//! The command line's subcommands beyond the dashboard and `status`/`tasks`:
//! submitting, acting on tasks, reading logs, leases. Each module formats
//! for people and for `--json`; the work itself is in `control`, `runner`,
//! `slurm` and the index, shared with the dashboard.

pub mod leases;
pub mod logs;
pub mod resolve;
pub mod submit;
