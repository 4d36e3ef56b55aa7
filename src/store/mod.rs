//! Reading and writing run-directory files safely.
//!
//! Owns: the one bounded reader of small records (specs, results,
//! heartbeats, control requests): regular files only, checked on the opened
//! descriptor (a FIFO, a device or a symlink to `/dev/tty` is refused, never
//! read), opened non-blocking, and at most a stated number of bytes; and the
//! staged writer that publishes many files with one sync.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The most a task record (spec or result) may hold. Specs carry the
/// submitter's environment (~2 KB); 16 MiB is far past any real one.
pub const MAX_RECORD_BYTES: u64 = 16 << 20;

/// Why a record could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordError {
    /// Not there (moved, removed, not created yet).
    NotFound,
    /// There, but not a regular file: never opened for reading.
    NotRegular(&'static str),
    /// Larger than the bound.
    TooLarge { len: u64, limit: u64 },
    /// Any other I/O error, as text.
    Io(String),
}

impl RecordError {
    /// A message for a person: the path and what is wrong.
    pub fn describe(&self, path: &Path) -> String {
        match self {
            RecordError::NotFound => format!("{}: not found", path.display()),
            RecordError::NotRegular(kind) => {
                format!("{}: is a {kind}, not a regular file; not read", path.display())
            }
            RecordError::TooLarge { len, limit } => format!(
                "{}: {len} bytes, more than the {limit}-byte limit for a record; not read",
                path.display()
            ),
            RecordError::Io(e) => format!("{}: {e}", path.display()),
        }
    }
}

/// Why [`open_regular_file`] refused.
#[derive(Debug)]
pub enum OpenError {
    Io(io::Error),
    NotRegular(&'static str),
}

/// Opens a file for reading only if it is a regular file, without opening
/// anything else on the way: the path is opened with O_PATH|O_NOFOLLOW
/// (which opens no device, does not block on a FIFO, and takes a symlink
/// as itself), checked with fstat, and only then opened for reading
/// through that same descriptor (`/proc/self/fd/N`), so no rename in
/// between can swap what is read. Without /proc the path is opened again
/// with O_NOFOLLOW and must be the same inode.
pub fn open_regular_file(path: &Path) -> Result<(File, std::fs::Metadata), OpenError> {
    use std::os::unix::fs::MetadataExt;
    let handle = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW)
        .open(path)
        .map_err(OpenError::Io)?;
    let meta = handle.metadata().map_err(OpenError::Io)?;
    if !meta.file_type().is_file() {
        return Err(OpenError::NotRegular(kind_of(meta.file_type())));
    }
    let reopened = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&handle));
    let through_proc = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&reopened);
    let file = match through_proc {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_NOFOLLOW)
            .open(path)
            .map_err(OpenError::Io)?,
        Err(e) => return Err(OpenError::Io(e)),
    };
    let opened = file.metadata().map_err(OpenError::Io)?;
    if !opened.file_type().is_file() || (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
        return Err(OpenError::NotRegular(kind_of(opened.file_type())));
    }
    Ok((file, opened))
}

fn kind_of(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "directory"
    } else if file_type.is_fifo() {
        "FIFO"
    } else if file_type.is_char_device() {
        "character device"
    } else if file_type.is_block_device() {
        "block device"
    } else if file_type.is_socket() {
        "socket"
    } else if file_type.is_symlink() {
        "symbolic link"
    } else {
        "special file"
    }
}

/// Reads a whole small file: regular files only (see
/// [`open_regular_file`]: nothing else is ever opened), at most `limit`
/// bytes.
pub fn read_record(path: &Path, limit: u64) -> Result<Vec<u8>, RecordError> {
    let io_error = |e: io::Error| match e.kind() {
        io::ErrorKind::NotFound => RecordError::NotFound,
        _ => RecordError::Io(e.to_string()),
    };
    let (file, meta) = open_regular_file(path).map_err(|e| match e {
        OpenError::Io(e) => io_error(e),
        OpenError::NotRegular(kind) => RecordError::NotRegular(kind),
    })?;
    if meta.len() > limit {
        return Err(RecordError::TooLarge { len: meta.len(), limit });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // One more byte than the limit tells a file that grew after the fstat.
    file.take(limit + 1).read_to_end(&mut bytes).map_err(|e| RecordError::Io(e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(RecordError::TooLarge { len: bytes.len() as u64, limit });
    }
    Ok(bytes)
}

/// Opens a file of ours for writing (a task's log, the events log, the
/// daemon's log): created if missing, truncated or appended to; never
/// through a symlink (O_NOFOLLOW: a planted link cannot make us write
/// elsewhere), never blocking on a FIFO, and only a regular file.
pub fn open_for_writing(path: &Path, append: bool) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY);
    if append {
        options.append(true);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::other(format!("is a {}, not a regular file", kind_of(meta.file_type()))));
    }
    if std::os::unix::fs::MetadataExt::nlink(&meta) > 1 {
        // A planted hard link to someone's file: never truncated or written.
        return Err(io::Error::other("has other hard links; not written"));
    }
    if !append {
        file.set_len(0)?;
    }
    Ok(file)
}

/// Publishes many new files with one sync: each is written to a dot-file
/// beside its target, then one `syncfs` makes all of them durable, then
/// each is renamed into place. Readers see whole files or nothing, as with
/// one atomic write per file, at a fraction of the cost of a sync each.
#[derive(Default)]
pub struct StagedWrites {
    staged: Vec<(PathBuf, PathBuf)>,
}

impl StagedWrites {
    pub fn new() -> StagedWrites {
        StagedWrites::default()
    }

    /// Writes `bytes` to a temp file for `target` (the directory must exist).
    pub fn stage(&mut self, target: &Path, bytes: &[u8]) -> io::Result<()> {
        let temp = crate::paths::temp_path_for(target);
        let result = File::create_new(&temp).and_then(|mut file| file.write_all(bytes));
        if let Err(e) = result {
            let _ = std::fs::remove_file(&temp);
            return Err(e);
        }
        self.staged.push((temp, target.to_path_buf()));
        Ok(())
    }

    /// Syncs the filesystem of the staged files once, then renames each into
    /// place, in the order staged. Returns how many were published; on an
    /// error, how many were published before it (the rest are removed).
    pub fn publish(mut self) -> Result<usize, (usize, io::Error)> {
        if let Some((first, _)) = self.staged.first() {
            let dir = File::open(first.parent().unwrap_or(Path::new("."))).map_err(|e| (0, e))?;
            // SAFETY: syncfs takes any open descriptor of the filesystem;
            // `dir` stays open for the call.
            if unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&dir)) } != 0 {
                return Err((0, io::Error::last_os_error()));
            }
        }
        let staged = std::mem::take(&mut self.staged);
        for (i, (temp, target)) in staged.iter().enumerate() {
            if let Err(e) = std::fs::rename(temp, target) {
                for (rest, _) in &staged[i..] {
                    let _ = std::fs::remove_file(rest);
                }
                return Err((i, e));
            }
        }
        Ok(staged.len())
    }
}

impl Drop for StagedWrites {
    fn drop(&mut self) {
        for (temp, _) in &self.staged {
            let _ = std::fs::remove_file(temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_within_the_bound() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("r.json");
        std::fs::write(&path, b"{}").unwrap();
        assert_eq!(read_record(&path, 10).unwrap(), b"{}");
        assert_eq!(read_record(&path, 1), Err(RecordError::TooLarge { len: 2, limit: 1 }));
        assert!(read_record(&path, 1).unwrap_err().describe(&path).contains("1-byte limit"));
        assert_eq!(read_record(&tmp.path().join("none"), 10), Err(RecordError::NotFound));
        assert_eq!(read_record(tmp.path(), 10), Err(RecordError::NotRegular("directory")));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("fifo.json");
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert_eq!(read_record(&path, 10), Err(RecordError::NotRegular("FIFO")));
    }

    #[test]
    fn a_device_is_refused_without_being_opened() {
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("spec.json");
        std::os::unix::fs::symlink("/dev/tty", &link).unwrap();
        assert_eq!(read_record(&link, 10), Err(RecordError::NotRegular("symbolic link")), "not followed");
        // Refused from the O_PATH descriptor's fstat, before any open of
        // the device itself: the same answer with or without a terminal.
        assert_eq!(read_record(Path::new("/dev/null"), 10), Err(RecordError::NotRegular("character device")));
        assert_eq!(read_record(Path::new("/dev/tty"), 10), Err(RecordError::NotRegular("character device")));
    }

    #[test]
    fn writing_never_follows_a_planted_link_nor_blocks_on_a_fifo() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = tmp.path().join("task.out");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        assert!(open_for_writing(&link, false).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let fifo = tmp.path().join("events.jsonl");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        assert!(open_for_writing(&fifo, true).is_err(), "no reader: ENXIO at once, never a hang");
        let mut file = open_for_writing(&tmp.path().join("new.out"), false).unwrap();
        file.write_all(b"x").unwrap();
        let hard = tmp.path().join("hard.out");
        std::fs::hard_link(&victim, &hard).unwrap();
        assert!(open_for_writing(&hard, false).is_err());
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
    }

    #[test]
    fn staged_writes_publish_all_and_leave_no_temp_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut writes = StagedWrites::new();
        for i in 0..5 {
            writes.stage(&tmp.path().join(format!("{i}.json")), b"x").unwrap();
        }
        assert_eq!(writes.publish().unwrap(), 5);
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
        assert_eq!(names.len(), 5);
        let mut dropped = StagedWrites::new();
        dropped.stage(&tmp.path().join("late.json"), b"x").unwrap();
        drop(dropped);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 5);
    }
}
