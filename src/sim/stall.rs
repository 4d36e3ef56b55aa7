//! A filesystem that stops answering, as a hung NFS mount does: after a
//! set time every call blocks and never returns. For `leaseq demo
//! --stall-fs-after S` (what the dashboard does on a hung mount) and the
//! hang tests.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::scan::{DirStamp, FsSource, ListError, RunFs};

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

impl RunFs for StallingFs {
    fn stamp(&self, dir: &Path) -> Result<DirStamp, ListError> {
        self.gate();
        FsSource.stamp(dir)
    }

    fn list_files(&self, dir: &Path) -> Result<crate::runfs::FileNames, ListError> {
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

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        self.gate();
        FsSource.write_atomic(path, bytes)
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        self.gate();
        FsSource.rename(from, to)
    }

    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        self.gate();
        FsSource.create_dir_all(dir)
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        self.gate();
        FsSource.remove_file(path)
    }

    fn probe(&self, path: &Path) -> std::io::Result<Option<bool>> {
        self.gate();
        FsSource.probe(path)
    }
}
