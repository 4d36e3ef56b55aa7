//! The GPUs of one node and which task holds which. Pure: no I/O.

/// The node's GPU device ids, free ones in a fixed order, so assignment is
/// predictable (`0,1` before `2,3`).
#[derive(Debug, Clone)]
pub struct GpuPool {
    all: Vec<String>,
    free: Vec<String>,
}

impl GpuPool {
    pub fn new(devices: Vec<String>) -> GpuPool {
        GpuPool { free: devices.clone(), all: devices }
    }

    pub fn total(&self) -> usize {
        self.all.len()
    }

    /// Takes `n` devices (the lowest free ones), or None while fewer are free.
    pub fn take(&mut self, n: usize) -> Option<Vec<String>> {
        if n > self.free.len() {
            return None;
        }
        Some(self.free.drain(..n).collect())
    }

    /// Gives devices back after their task ended.
    pub fn give(&mut self, devices: Vec<String>) {
        self.free.extend(devices);
        let order = |d: &String| self.all.iter().position(|a| a == d).unwrap_or(usize::MAX);
        let mut free = std::mem::take(&mut self.free);
        free.sort_by_key(order);
        free.dedup();
        self.free = free;
    }
}

/// The GPU devices a node has: `CUDA_VISIBLE_DEVICES` as Slurm or the
/// user set it (the ids are passed on as they are), else `0..count`.
pub fn devices(visible: Option<&str>, count: Option<usize>) -> Vec<String> {
    let listed: Vec<String> = visible
        .map(|v| v.split(',').map(str::trim).filter(|d| !d.is_empty()).map(str::to_string).collect())
        .unwrap_or_default();
    match (count, listed.is_empty()) {
        (Some(n), false) => listed.into_iter().take(n).collect(),
        (Some(n), true) => (0..n).map(|i| i.to_string()).collect(),
        (None, _) => listed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_lowest_free_and_waits_when_short() {
        let mut pool = GpuPool::new(devices(None, Some(2)));
        let a = pool.take(1).unwrap();
        let b = pool.take(1).unwrap();
        assert_eq!((a.as_slice(), b.as_slice()), (&["0".to_string()][..], &["1".to_string()][..]));
        assert!(pool.take(1).is_none());
        pool.give(b);
        pool.give(a);
        assert_eq!(pool.take(2).unwrap(), vec!["0", "1"]);
        assert_eq!(pool.take(0).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn devices_from_the_environment_or_a_count() {
        assert_eq!(devices(Some("3,5"), None), vec!["3", "5"]);
        assert_eq!(devices(Some("3,5,7"), Some(2)), vec!["3", "5"]);
        assert_eq!(devices(None, Some(3)), vec!["0", "1", "2"]);
        assert!(devices(Some(""), None).is_empty());
    }
}
