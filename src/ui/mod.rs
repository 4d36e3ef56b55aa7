//! The terminal UI: state, keys, drawing. No I/O here: no filesystem, no
//! processes, no sleeping. Work is requested from the background
//! ([`messages::Request`]) and results come back as data
//! ([`messages::Reply`]); the engine's snapshots arrive through a slot.

pub mod app;
pub mod draw;
pub mod format;
pub mod messages;
pub mod task_list;
pub mod theme;

#[cfg(test)]
mod tests;
