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
    /// A stamp as fresh as a listing would be. On NFS a `stat` may answer
    /// from the client's attribute cache (up to a minute old), where
    /// opening the directory asks the server (close-to-open consistency);
    /// a saved listing is trusted only on this one.
    fn open_stamp(&self, dir: &Path) -> Result<DirStamp, ListError> {
        self.stamp(dir)
    }
    /// Names of the regular files (and anything not a directory) in `dir`,
    /// in any order, possibly with duplicates: callers sort and dedupe.
    fn list_files(&self, dir: &Path) -> Result<FileNames, ListError>;
    /// Names of the subdirectories of `dir`.
    fn list_dirs(&self, dir: &Path) -> Result<Vec<String>, ListError>;
    /// Both of the above from one read of `dir`: a directory that holds
    /// node directories and, by mistake, files is read once, not twice
    /// (on NFS each read of a directory is a round trip).
    fn list_entries(&self, dir: &Path) -> Result<Entries, ListError> {
        Ok(Entries { files: self.list_files(dir)?, dirs: self.list_dirs(dir)? })
    }
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

/// The names of a listing in one buffer: a `done/` of two million files
/// costs a few allocations, not two million strings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileNames {
    text: String,
    /// Where each name ends in `text`.
    ends: Vec<usize>,
}

impl FileNames {
    pub fn push(&mut self, name: &str) {
        self.text.push_str(name);
        self.ends.push(self.text.len());
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> + Clone {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter()).map(|(start, &end)| &self.text[start..end])
    }

    pub fn into_vec(self) -> Vec<String> {
        self.iter().map(str::to_string).collect()
    }
}

impl<S: AsRef<str>> FromIterator<S> for FileNames {
    fn from_iter<I: IntoIterator<Item = S>>(names: I) -> FileNames {
        let mut out = FileNames::default();
        names.into_iter().for_each(|name| out.push(name.as_ref()));
        out
    }
}

/// For test filesystems that vary how directories and files are read: the
/// writes, renames and probes of the real filesystem, as they are.
#[cfg(test)]
macro_rules! real_writes {
    () => {
        fn write_atomic(&self, path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
            $crate::runfs::FsSource.write_atomic(path, bytes)
        }
        fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
            $crate::runfs::FsSource.rename(from, to)
        }
        fn create_dir_all(&self, dir: &std::path::Path) -> std::io::Result<()> {
            $crate::runfs::FsSource.create_dir_all(dir)
        }
        fn remove_file(&self, path: &std::path::Path) -> std::io::Result<()> {
            $crate::runfs::FsSource.remove_file(path)
        }
        fn probe(&self, path: &std::path::Path) -> std::io::Result<Option<bool>> {
            $crate::runfs::FsSource.probe(path)
        }
    };
}
#[cfg(test)]
pub(crate) use real_writes;

/// A directory's entries, files and subdirectories apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entries {
    /// Everything that is not a directory (as [`RunFs::list_files`]).
    pub files: FileNames,
    pub dirs: Vec<String>,
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
    /// Everything in `dir`, read with `readdir`: names that are no
    /// directory straight into one buffer (the standard library's reader
    /// makes two allocations per entry, four million for a `done/` of a
    /// million tasks), and subdirectories' names apart.
    #[cfg(target_os = "linux")]
    fn entries(dir: &Path) -> Result<Entries, ListError> {
        use std::ffi::{CStr, CString};
        use std::os::unix::ffi::OsStrExt;
        let failed = |error: std::io::Error| ListError::from_io(dir, &error);
        let path = CString::new(dir.as_os_str().as_bytes())
            .map_err(|_| ListError::Failed(format!("{}: a NUL byte in the path", dir.display())))?;
        // SAFETY: a valid C string; the stream is closed by `Stream`'s drop.
        let stream = Stream(unsafe { libc::opendir(path.as_ptr()) });
        if stream.0.is_null() {
            return Err(failed(std::io::Error::last_os_error()));
        }
        let mut out = Entries::default();
        loop {
            // readdir says "end" and "error" both with NULL; errno tells them apart.
            // SAFETY: errno is this thread's; the stream is open.
            let entry = unsafe {
                *libc::__errno_location() = 0;
                libc::readdir64(stream.0)
            };
            if entry.is_null() {
                let error = std::io::Error::last_os_error();
                if error.raw_os_error() == Some(0) {
                    return Ok(out);
                }
                // An error mid-listing (a vanishing directory, ESTALE) fails the
                // whole listing: a partial one would look like deletions.
                return Err(failed(error));
            }
            // SAFETY: readdir returned an entry valid until the next call.
            let (name, kind) = unsafe { (CStr::from_ptr((*entry).d_name.as_ptr()), (*entry).d_type) };
            let name = name.to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if stream.is_dir(name, kind) {
                out.dirs.push(String::from_utf8_lossy(name).into_owned());
                continue;
            }
            match std::str::from_utf8(name) {
                Ok(name) => out.files.push(name),
                // Only names that are no task file pay for a lossy copy.
                Err(_) => out.files.push(&String::from_utf8_lossy(name)),
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn entries(dir: &Path) -> Result<Entries, ListError> {
        let reader = std::fs::read_dir(dir).map_err(|e| ListError::from_io(dir, &e))?;
        let mut out = Entries::default();
        for entry in reader {
            // An error mid-listing (a vanishing directory, ESTALE) fails the
            // whole listing: a partial one would look like deletions.
            let entry = entry.map_err(|e| ListError::from_io(dir, &e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.dirs.push(name);
            } else {
                out.files.push(&name);
            }
        }
        Ok(out)
    }
}

/// An open directory stream, closed when dropped.
#[cfg(target_os = "linux")]
struct Stream(*mut libc::DIR);

#[cfg(target_os = "linux")]
impl Stream {
    /// Whether the entry is a directory: from `d_type`, or, where the
    /// filesystem does not fill it in, from `lstat` (a symlink is no
    /// directory, as for the standard library's reader).
    fn is_dir(&self, name: &[u8], kind: u8) -> bool {
        if kind != libc::DT_UNKNOWN {
            return kind == libc::DT_DIR;
        }
        let Ok(name) = std::ffi::CString::new(name) else { return false };
        // SAFETY: an open stream's fd, a valid C string, a zeroed stat to fill.
        unsafe {
            let mut stat: libc::stat64 = std::mem::zeroed();
            libc::fstatat64(libc::dirfd(self.0), name.as_ptr(), &mut stat, libc::AT_SYMLINK_NOFOLLOW) == 0
                && stat.st_mode & libc::S_IFMT == libc::S_IFDIR
        }
    }
}

#[cfg(target_os = "linux")]
impl Drop for Stream {
    fn drop(&mut self) {
        // SAFETY: opened by opendir, closed once.
        unsafe { libc::closedir(self.0) };
    }
}

/// A directory's stamp from its metadata.
fn stamp_of(dir: &Path, meta: &std::fs::Metadata) -> Result<DirStamp, ListError> {
    let modified = meta.modified().map_err(|e| ListError::from_io(dir, &e))?;
    let mtime_ns = match modified.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    let age = SystemTime::now().duration_since(modified).unwrap_or(Duration::ZERO);
    Ok(DirStamp { mtime_ns, racy: age < RACY_WINDOW })
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
        stamp_of(dir, &meta)
    }

    fn open_stamp(&self, dir: &Path) -> Result<DirStamp, ListError> {
        use std::os::unix::fs::OpenOptionsExt;
        count_open();
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(dir);
        let meta = opened.and_then(|dir| dir.metadata()).map_err(|e| ListError::from_io(dir, &e))?;
        stamp_of(dir, &meta)
    }

    fn list_files(&self, dir: &Path) -> Result<FileNames, ListError> {
        self.list_entries(dir).map(|entries| entries.files)
    }

    fn list_dirs(&self, dir: &Path) -> Result<Vec<String>, ListError> {
        self.list_entries(dir).map(|entries| entries.dirs)
    }

    fn list_entries(&self, dir: &Path) -> Result<Entries, ListError> {
        count_open();
        FsSource::entries(dir)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_has_every_file_once_and_no_directory() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("1_T1_x.json"), b"{}").unwrap();
        std::fs::write(root.join(".hidden"), b"").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::os::unix::fs::symlink(root.join("sub"), root.join("link-to-dir")).unwrap();
        std::fs::write(root.join(std::ffi::OsStr::from_bytes(b"bad\xffname")), b"").unwrap();
        let mut names = FsSource.list_files(root).unwrap().into_vec();
        names.sort();
        // A symlink is not followed (it is no directory), a bad name is lossy.
        assert_eq!(names, [".hidden", "1_T1_x.json", "bad\u{fffd}name", "link-to-dir"]);
        assert_eq!(FsSource.list_dirs(root).unwrap(), ["sub"]);
        assert_eq!(FsSource.list_files(&root.join("absent")), Err(ListError::NotFound));
        let file = root.join("1_T1_x.json");
        assert!(
            matches!(FsSource.list_files(&file), Err(ListError::Failed(m)) if m.contains("Not a directory"))
        );
    }

    #[test]
    fn file_names_keep_order_and_empty_names() {
        let names: FileNames = ["a", "", "bc"].into_iter().collect();
        assert_eq!(names.iter().collect::<Vec<_>>(), ["a", "", "bc"]);
        assert_eq!((names.len(), FileNames::default().is_empty()), (3, true));
    }
}
