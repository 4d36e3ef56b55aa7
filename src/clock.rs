//! The wall clock, in the units the on-disk records use. Everything that
//! is not the index reads time here (the index gets it as an event).

/// Unix seconds (integers: the existing tool rejects floats).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// Unix microseconds: the seq of tasks the existing tool submits.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}
