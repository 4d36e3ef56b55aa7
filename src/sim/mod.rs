//! Synthetic histories and simulated clusters, for tests, benches and the demo.

pub mod generate;
pub mod live;
pub mod nfs;
pub mod stall;
pub mod synthetic;
