//! The adaptive scan interval: quick while things change, backing off
//! while idle, with a periodic forced full rescan.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Cadence {
    base: Duration,
    max: Duration,
    current: Duration,
    full_every: u32,
    since_full: u32,
}

impl Cadence {
    /// `base` while changing (ui.refresh_s, 2 s), up to `max` when idle
    /// (10 s); every `full_every` rounds ignore directory stamps.
    pub fn new(base: Duration, max: Duration, full_every: u32) -> Cadence {
        let max = max.max(base);
        Cadence { base, max, current: base, full_every: full_every.max(1), since_full: 0 }
    }

    /// Whether the next round must ignore stamps.
    pub fn next_is_full(&self) -> bool {
        self.since_full == 0
    }

    /// Records a round's outcome and returns the wait before the next one.
    pub fn after_round(&mut self, changed: bool) -> Duration {
        self.since_full = (self.since_full + 1) % self.full_every;
        self.current = if changed { self.base } else { (self.current * 2).min(self.max) };
        self.current
    }

    /// "Refresh now": back to the quick interval and a full rescan.
    pub fn reset(&mut self) {
        self.current = self.base;
        self.since_full = 0;
    }

    pub fn current(&self) -> Duration {
        self.current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backs_off_when_idle_and_snaps_back_on_change() {
        let mut c = Cadence::new(Duration::from_secs(2), Duration::from_secs(10), 5);
        assert!(c.next_is_full());
        let waits: Vec<u64> = (0..4).map(|_| c.after_round(false).as_secs()).collect();
        assert_eq!(waits, vec![4, 8, 10, 10]);
        assert_eq!(c.after_round(true).as_secs(), 2);
        assert!(c.next_is_full(), "every fifth round is a full rescan");
        c.after_round(false);
        c.reset();
        assert_eq!(c.current().as_secs(), 2);
        assert!(c.next_is_full());
    }
}
