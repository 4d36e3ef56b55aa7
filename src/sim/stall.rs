//! A filesystem that stops answering, as a hung NFS mount does: after a
//! set time every call blocks and never returns. For `leaseq demo
//! --stall-fs-after S` (what the dashboard does on a hung mount) and the
//! hang tests.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::scan::{DirStamp, FsSource, ListError, ListingSource};

pub struct StallingFs {
    stall_at: Instant,
    /// Calls blocked now (each holds one thread).
    stalled: AtomicUsize,
}

impl StallingFs {
    pub fn after(delay: Duration) -> StallingFs {
        StallingFs { stall_at: Instant::now() + delay, stalled: AtomicUsize::new(0) }
    }

    /// Calls that are blocked now.
    pub fn stalled_calls(&self) -> usize {
        self.stalled.load(Ordering::SeqCst)
    }

    /// Past the stall time, never returns.
    fn gate(&self) {
        if Instant::now() < self.stall_at {
            return;
        }
        self.stalled.fetch_add(1, Ordering::SeqCst);
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

impl ListingSource for StallingFs {
    fn stamp(&self, dir: &Path) -> Result<DirStamp, ListError> {
        self.gate();
        FsSource.stamp(dir)
    }

    fn list_files(&self, dir: &Path) -> Result<Vec<String>, ListError> {
        self.gate();
        FsSource.list_files(dir)
    }

    fn list_dirs(&self, dir: &Path) -> Result<Vec<String>, ListError> {
        self.gate();
        FsSource.list_dirs(dir)
    }

    fn read_file(&self, path: &Path, max_bytes: u64) -> Result<Vec<u8>, ListError> {
        self.gate();
        FsSource.read_file(path, max_bytes)
    }
}
