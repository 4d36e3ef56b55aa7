//! The warm-start cache: facts read from a lease's immutable task files
//! (a spec's command, cwd and submit time; a result's times, exit code and
//! log paths; never `env`), kept on local disk so a relaunch does not read
//! them again.
//!
//! Owns: where the file lives (the XDG cache directory, never the shared
//! run directory), reading it in chunks, appending to it safely from
//! several processes at once (an exclusive `flock` on a lock file beside
//! it; a torn tail left by a crash is cut off by the next writer), and
//! refusing a file from another version or another run directory with the
//! same lease id. Must not decide anything about tasks: the index applies
//! facts only to names a listing confirms.

pub mod format;
mod listings;

pub use listings::{ParkedListing, SavedListing};

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::index::{Event, ResultSummary, SpecSummary};
use crate::model::ResultKind;
use crate::names::StoredName;
use crate::paths::Env;

/// One immutable file's facts.
#[derive(Debug, Clone, PartialEq)]
pub enum Facts {
    Spec { node: Arc<str>, name: StoredName, spec: SpecSummary },
    Result { node: Arc<str>, name: StoredName, kind: ResultKind, result: ResultSummary },
}

impl Facts {
    /// The facts a successful read gave; `None` for anything else (a file
    /// that could not be read is read again next launch).
    pub fn of_event(event: &Event) -> Option<Facts> {
        match event {
            Event::SpecRead { node, name, outcome: Ok(spec) } => {
                Some(Facts::Spec { node: node.clone(), name: name.clone(), spec: spec.clone() })
            }
            Event::ResultRead { node, name, kind, outcome: Ok(result) } => Some(Facts::Result {
                node: node.clone(),
                name: name.clone(),
                kind: *kind,
                result: result.clone(),
            }),
            _ => None,
        }
    }

    pub fn name(&self) -> &StoredName {
        match self {
            Facts::Spec { name, .. } | Facts::Result { name, .. } => name,
        }
    }

    /// The command and cwd this record gives a task, if any: a spec's, or
    /// a result's that repeats them.
    pub fn details(&self) -> Option<(&Arc<str>, Option<&Arc<str>>)> {
        match self {
            Facts::Spec { spec, .. } => Some((&spec.command, Some(&spec.cwd))),
            Facts::Result { result, .. } => result.command.as_ref().map(|c| (c, result.cwd.as_ref())),
        }
    }
}

/// Where loading stands: the next byte to read.
pub type LoadFrom = u64;

/// What one chunk of loading gave.
#[derive(Debug, Default)]
pub struct Loaded {
    pub facts: Vec<Facts>,
    /// Where each fact's record is in the file (for [`FactsCache::read_records`]).
    pub at: Vec<u64>,
    /// Where the next chunk starts; `None`: the readable part is done.
    pub next: Option<LoadFrom>,
    /// Why (part of) the file was not used, said once.
    pub problem: Option<String>,
}

/// Records per loading chunk: bounded memory per step, and the fold gets
/// them in pieces it can interleave with listings.
pub const LOAD_CHUNK: usize = 16 * 1024;
/// Bytes read per chunk (records are ~150 bytes).
const LOAD_BYTES: usize = 4 << 20;

/// A lease's facts file.
#[derive(Debug)]
pub struct FactsCache {
    path: PathBuf,
    lock: PathBuf,
    identity: String,
    /// Bytes known to be whole records (this process read or wrote them):
    /// a writer checks only what others appended after it.
    verified: Mutex<u64>,
}

impl FactsCache {
    /// The cache for a run directory, or why there is none. `lease_id`
    /// names the file; the run dir's path, device, inode and birth time are its
    /// identity (a run dir deleted and made again with the same id is
    /// another run).
    pub fn for_run(env: &Env, lease_id: &str, run_dir: &Path) -> Result<FactsCache, String> {
        let dir = cache_dir(env).ok_or("no cache directory (set XDG_CACHE_HOME or HOME)")?;
        let canonical = std::fs::canonicalize(run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
        let meta = std::fs::metadata(&canonical).map_err(|e| format!("{}: {e}", canonical.display()))?;
        // Inodes are reused at once: a run dir deleted and made again can
        // get the same one. Its birth time (statx; absent on some NFS
        // servers) tells the two apart.
        let born = meta
            .created()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        let identity =
            format!("{lease_id} {} dev {} ino {} born {born}", canonical.display(), meta.dev(), meta.ino());
        crate::paths::ensure_private_dir(&dir)?;
        let safe: String =
            lease_id.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let file =
            format!("facts-{safe}-{:08x}.bin", format::checksum(canonical.as_os_str().as_encoded_bytes()));
        Ok(FactsCache::at(dir.join(file), identity))
    }

    /// A cache file at `path` for a run known by `identity` (tests, fuzzing).
    pub fn at(path: PathBuf, identity: String) -> FactsCache {
        let mut lock = path.clone().into_os_string();
        lock.push(".lock");
        FactsCache { path, lock: PathBuf::from(lock), identity, verified: Mutex::new(0) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn locked(&self, exclusive: bool) -> Result<LockGuard, String> {
        LockGuard::take(&self.lock, exclusive).map_err(|e| format!("{}: {e}", self.lock.display()))
    }

    /// Up to [`LOAD_CHUNK`] records from `from` (0: the start, header
    /// checked). Under a shared lock, so no append is seen half written.
    pub fn load(&self, from: LoadFrom) -> Loaded {
        match self.load_inner(from) {
            Ok(loaded) => loaded,
            Err(problem) => Loaded { problem: Some(self.ignored(&problem)), ..Loaded::default() },
        }
    }

    fn ignored(&self, why: &str) -> String {
        format!("cache {} not used: {why}; the run directory is read instead", self.path.display())
    }

    fn load_inner(&self, from: LoadFrom) -> Result<Loaded, String> {
        let _lock = self.locked(false)?;
        let mut file = match open_cache_file(&self.path, false) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Loaded::default()),
            Err(e) => return Err(e.to_string()),
        };
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        let mut start = from;
        if from == 0 {
            let head = read_at(&mut file, 0, 64 * 1024 + 32).map_err(|e| e.to_string())?;
            if head.is_empty() {
                return Ok(Loaded::default());
            }
            start = format::check_header(&head, &self.identity).map_err(|e| e.to_string())? as u64;
        }
        let mut bytes = read_at(&mut file, start, LOAD_BYTES).map_err(|e| e.to_string())?;
        if let Some(need) =
            format::record_len(&bytes).filter(|&n| n > bytes.len() && n <= format::MAX_RECORD + 8)
        {
            bytes = read_at(&mut file, start, need).map_err(|e| e.to_string())?;
        }
        let decoded = format::decode(&bytes, LOAD_CHUNK);
        let end = start + decoded.consumed as u64;
        self.note_verified(end);
        let problem = match (&decoded.corrupt, decoded.partial) {
            (Some(why), _) => {
                Some(self.ignored(&format!("{why} at byte {end}; the records before it are used")))
            }
            // Whole records end where the file ends: the shared lock rules
            // out an append in progress, so this is a write that was cut.
            (None, true) if decoded.facts.is_empty() && start + bytes.len() as u64 >= len => {
                Some(self.ignored(&format!("it ends inside a record at byte {end} (a write was cut short)")))
            }
            _ => None,
        };
        let more = decoded.corrupt.is_none() && !decoded.facts.is_empty() && end < len;
        let at = decoded.at.iter().map(|&at| start + at as u64).collect();
        Ok(Loaded { facts: decoded.facts, at, next: more.then_some(end), problem })
    }

    fn note_verified(&self, end: u64) {
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        *verified = (*verified).max(end);
    }

    /// The records at these places (from [`Loaded::at`] or
    /// [`append`](Self::append)); `None` where no whole, good record is.
    /// The caller checks that a record is the task it wanted.
    pub fn read_records(&self, at: &[u64]) -> Result<Vec<Option<Facts>>, String> {
        let _lock = self.locked(false)?;
        let io = |e: std::io::Error| format!("{}: {e}", self.path.display());
        let mut file = open_cache_file(&self.path, false).map_err(io)?;
        let mut out = Vec::with_capacity(at.len());
        for &place in at {
            let head = read_at(&mut file, place, format::RECORD_HEAD).map_err(io)?;
            let record = match format::record_len(&head).filter(|&n| n <= format::MAX_RECORD + 8) {
                Some(len) => read_at(&mut file, place, len).map_err(io)?,
                None => Vec::new(),
            };
            out.push(format::decode(&record, 1).facts.pop());
        }
        Ok(out)
    }

    /// Appends facts; returns where each one's record starts. Under an
    /// exclusive lock: a file with a header for another run or version (or
    /// none) is started again; a tail that is not whole records (a writer
    /// that died mid-write) is cut off first.
    pub fn append(&self, facts: &[Facts]) -> Result<Vec<u64>, String> {
        if facts.is_empty() {
            return Ok(Vec::new());
        }
        let mut batch = Vec::with_capacity(facts.len() * 160);
        let mut starts = Vec::with_capacity(facts.len());
        for fact in facts {
            starts.push(batch.len() as u64);
            format::encode(fact, &mut batch);
        }
        let _lock = self.locked(true)?;
        let mut file =
            open_cache_file(&self.path, true).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let end = self.whole_records_end(&mut file).map_err(|e| format!("{}: {e}", self.path.display()))?;
        let io = |e: std::io::Error| format!("{}: {e}", self.path.display());
        file.set_len(end).map_err(io)?;
        file.seek(SeekFrom::Start(end)).map_err(io)?;
        file.write_all(&batch).map_err(io)?;
        *self.verified.lock().unwrap_or_else(|p| p.into_inner()) = end + batch.len() as u64;
        Ok(starts.into_iter().map(|start| end + start).collect())
    }

    /// Where the file's whole records end; writes a fresh header when the
    /// present one is not ours. Called under the exclusive lock.
    fn whole_records_end(&self, file: &mut File) -> std::io::Result<u64> {
        let len = file.metadata()?.len();
        let head = read_at(file, 0, 64 * 1024 + 32)?;
        let body = match format::check_header(&head, &self.identity) {
            Ok(at) => at as u64,
            Err(_) => {
                let fresh = format::header(&self.identity);
                file.set_len(0)?;
                file.seek(SeekFrom::Start(0))?;
                file.write_all(&fresh)?;
                return Ok(fresh.len() as u64);
            }
        };
        let verified = *self.verified.lock().unwrap_or_else(|p| p.into_inner());
        let mut at = if verified >= body && verified <= len { verified } else { body };
        while at < len {
            let bytes = read_at(file, at, LOAD_BYTES)?;
            let decoded = format::decode(&bytes, usize::MAX);
            at += decoded.consumed as u64;
            if decoded.corrupt.is_some() || !decoded.partial {
                break;
            }
            if decoded.consumed == 0 {
                // One record bigger than a read: step over it if it is whole.
                let whole = match format::record_len(&bytes).filter(|&n| n <= format::MAX_RECORD + 8) {
                    Some(n) => read_at(file, at, n)?,
                    None => break,
                };
                match format::decode(&whole, 1) {
                    d if d.consumed == whole.len() && !whole.is_empty() => at += d.consumed as u64,
                    _ => break,
                }
            }
        }
        Ok(at.min(len))
    }
}

/// Whether and for which lease a caller wants the cache; opened where
/// filesystem calls may block (never on the dashboard's pump).
#[derive(Debug, Clone, Default)]
pub enum CacheUse {
    /// `--no-cache`, or nothing to cache for (tests, the simulator).
    #[default]
    Off,
    For {
        env: Env,
        lease_id: String,
    },
}

impl CacheUse {
    /// The cache for this process's environment.
    pub fn for_lease(lease_id: &str) -> CacheUse {
        CacheUse::For { env: Env::from_process(), lease_id: lease_id.to_string() }
    }

    /// The cache, `None` when off; an error says why there is none.
    pub fn open(&self, run_dir: &Path) -> Result<Option<Arc<FactsCache>>, String> {
        match self {
            CacheUse::Off => Ok(None),
            CacheUse::For { env, lease_id } => FactsCache::for_run(env, lease_id, run_dir)
                .map(|cache| Some(Arc::new(cache)))
                .map_err(|why| format!("no warm-start cache ({why}); every task file is read")),
        }
    }
}

/// `$LEASEQ_CACHE_DIR`, else `$XDG_CACHE_HOME/leaseq`, else `~/.cache/leaseq`.
pub fn cache_dir(env: &Env) -> Option<PathBuf> {
    if let Some(dir) = &env.leaseq_cache_dir {
        return Some(PathBuf::from(dir));
    }
    if let Some(xdg) = &env.xdg_cache_home {
        return Some(Path::new(xdg).join("leaseq"));
    }
    env.home.as_ref().map(|home| Path::new(home).join(".cache").join("leaseq"))
}

/// The cache file (or its lock file): regular, ours, never through a
/// symlink, never blocking on a FIFO planted in its place.
fn open_cache_file(path: &Path, create: bool) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

fn read_at(file: &mut File, at: u64, max: usize) -> std::io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(at))?;
    let mut bytes = Vec::with_capacity(max.min(LOAD_BYTES));
    file.take(max as u64).read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// An `flock` held on the lock file until dropped.
struct LockGuard(File);

impl LockGuard {
    fn take(path: &Path, exclusive: bool) -> std::io::Result<LockGuard> {
        use std::os::fd::AsRawFd;
        let file = open_cache_file(path, true)?;
        let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
        // SAFETY: the descriptor is open for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), op) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(LockGuard(file))
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as above; closing the file would release it anyway.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests;
