//! The one way into a run directory: every listing, stamp, record read,
//! atomic write and rename of the dashboard, the one-shot commands and the
//! control actions goes through [`RunFs`], with the real filesystem
//! ([`FsSource`]) and, in `sim`, a simulated lagging NFS and a filesystem
//! that hangs behind it, so faults can be put anywhere.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// A directory's modification stamp. Two equal stamps mean "unchanged"
/// unless `racy`: a stamp taken within the filesystem's timestamp
/// granularity of now cannot prove that nothing changed after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirStamp {
    pub mtime_ns: i128,
    pub racy: bool,
}

/// Why a listing failed, kept short and readable for the status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListError {
    /// The directory does not exist (never did, or vanished).
    NotFound,
    /// Permission denied, stale NFS handle, I/O error...: the message says.
    Failed(String),
}

impl ListError {
    pub fn from_io(path: &Path, error: &std::io::Error) -> ListError {
        match error.kind() {
            std::io::ErrorKind::NotFound => ListError::NotFound,
            _ => ListError::Failed(format!("{}: {error}", path.display())),
        }
    }

    pub fn describe(&self, path: &Path) -> String {
        match self {
            ListError::NotFound => format!("{}: directory vanished", path.display()),
            ListError::Failed(message) => message.clone(),
        }
    }
}

/// A run directory's filesystem. Listings are names only: implementations
/// must not stat entries beyond what the directory read itself returns.
pub trait RunFs: Send + Sync {
    fn stamp(&self, dir: &Path) -> Result<DirStamp, ListError>;
    /// Names of the regular files (and anything not a directory) in `dir`,
    /// in any order, possibly with duplicates: callers sort and dedupe.
    fn list_files(&self, dir: &Path) -> Result<Vec<String>, ListError>;
    /// Names of the subdirectories of `dir`.
    fn list_dirs(&self, dir: &Path) -> Result<Vec<String>, ListError>;
    /// Reads a regular file whole, refusing more than `max_bytes` (and
    /// FIFOs, devices, symlinks: see `store::read_record`).
    fn read_file(&self, path: &Path, max_bytes: u64) -> Result<Vec<u8>, ListError>;
    /// Writes `path` whole, durably, through a dot-file and a rename:
    /// readers see the old file or the new one, never a part.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()>;
    /// Renames, atomically (within one directory tree of one filesystem).
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()>;
    fn remove_file(&self, path: &Path) -> std::io::Result<()>;
    /// What is at `path`, without following a symlink: `None` if nothing,
    /// else whether it is a regular file.
    fn probe(&self, path: &Path) -> std::io::Result<Option<bool>>;
}

/// Heartbeats and markers are a few hundred bytes; 1 MiB is no heartbeat.
pub const SMALL_FILE_BYTES: u64 = 1 << 20;

/// The real filesystem.
#[derive(Debug, Clone, Copy, Default)]
pub struct FsSource;

/// Timestamps closer to now than this may hide a change in the same tick
/// (NFS servers commonly keep 1 s or coarser mtimes).
const RACY_WINDOW: Duration = Duration::from_secs(2);

impl FsSource {
    fn entries(dir: &Path, want_dirs: bool) -> Result<Vec<String>, ListError> {
        let reader = std::fs::read_dir(dir).map_err(|e| ListError::from_io(dir, &e))?;
        let mut names = Vec::new();
        for entry in reader {
            // An error mid-listing (a vanishing directory, ESTALE) fails the
            // whole listing: a partial one would look like deletions.
            let entry = entry.map_err(|e| ListError::from_io(dir, &e))?;
            // d_type from the directory read itself; no stat on most filesystems.
            let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
            if is_dir == want_dirs {
                // into_string reuses the allocation; only non-UTF-8 names
                // (never task files) pay for a lossy copy.
                let name =
                    entry.file_name().into_string().unwrap_or_else(|raw| raw.to_string_lossy().into_owned());
                names.push(name);
            }
        }
        Ok(names)
    }
}

/// Files and directories this process opened through [`FsSource`]: on
/// NFS each open is a round trip, so this is the figure a launch costs.
static OPENS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// See [`OPENS`].
pub fn opens() -> u64 {
    OPENS.load(std::sync::atomic::Ordering::Relaxed)
}

fn count_open() {
    OPENS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

impl RunFs for FsSource {
    fn stamp(&self, dir: &Path) -> Result<DirStamp, ListError> {
        let meta = std::fs::metadata(dir).map_err(|e| ListError::from_io(dir, &e))?;
        let modified = meta.modified().map_err(|e| ListError::from_io(dir, &e))?;
        let mtime_ns = match modified.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        };
        let age = SystemTime::now().duration_since(modified).unwrap_or(Duration::ZERO);
        Ok(DirStamp { mtime_ns, racy: age < RACY_WINDOW })
    }

    fn list_files(&self, dir: &Path) -> Result<Vec<String>, ListError> {
        count_open();
        FsSource::entries(dir, false)
    }

    fn list_dirs(&self, dir: &Path) -> Result<Vec<String>, ListError> {
        count_open();
        FsSource::entries(dir, true)
    }

    fn read_file(&self, path: &Path, max_bytes: u64) -> Result<Vec<u8>, ListError> {
        count_open();
        crate::store::read_record(path, max_bytes).map_err(|e| match e {
            crate::store::RecordError::NotFound => ListError::NotFound,
            other => ListError::Failed(other.describe(path)),
        })
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        crate::paths::write_atomic(path, bytes)
    }

    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }

    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_file(path)
    }

    fn probe(&self, path: &Path) -> std::io::Result<Option<bool>> {
        match std::fs::symlink_metadata(path) {
            Ok(meta) => Ok(Some(meta.is_file())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}
