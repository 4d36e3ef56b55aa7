//! The last `done/` listing of each node, kept beside the facts file so a
//! relaunch need not list a `done/` that has not changed since.
//!
//! A node's `done/` only grows while its lease runs and never changes after:
//! at 10^6 tasks, listing the 16 `done/` directories of a finished lease
//! again was 2 of a warm launch's 5 CPU-seconds, to learn nothing. A saved
//! listing carries the directory's stamp (its mtime when listed); it
//! stands in for a listing only while the directory's stamp is still that
//! one (see `scan::round`), so it can cost time, never truth.
//!
//! Owns: the file per node (replaced whole by an atomic rename, so two
//! dashboards on one lease each leave a whole file), its bytes, refusing
//! one from another version, run directory or node. Must not decide when
//! a saved listing may be used.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use super::format::{self, Fields, HeaderError};
use super::FactsCache;
use crate::listing::{Listing, TaskFiles};

/// A `done/` listing as a scanner last had it.
#[derive(Debug, Clone, PartialEq)]
pub struct SavedListing {
    /// The directory's mtime when it was listed (never a racy one).
    pub stamp_ns: i128,
    /// What the raw names of the listing hash to (see `scan::round`).
    pub fingerprint: [u64; 3],
    pub listing: Listing,
}

/// Task entries no real `done/` comes near; a count beyond it is corruption.
const MAX_ENTRIES: u64 = 1 << 32;

impl FactsCache {
    /// Where `node`'s saved listing lives: beside the facts file, named
    /// after it and the node (made safe for a file name, its checksum
    /// telling apart nodes that the making-safe would merge).
    fn listing_path(&self, node: &str) -> PathBuf {
        let safe: String = node
            .chars()
            .take(64)
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '.' { c } else { '_' })
            .collect();
        let mut name = self.path.file_name().unwrap_or_default().to_os_string();
        name.push(format!(".done-{safe}-{:08x}", format::checksum(node.as_bytes())));
        self.path.with_file_name(name)
    }

    /// The identity a node's listing file must carry: this run's and the node's.
    fn listing_identity(&self, node: &str) -> String {
        format!("{} done/ of {node}", self.identity)
    }

    /// `node`'s saved listing; `Ok(None)` when there is none for this run
    /// and build; an error says why the one there is damaged.
    pub fn load_listing(&self, node: &str) -> Result<Option<SavedListing>, String> {
        let path = self.listing_path(node);
        let mut file = match super::open_cache_file(&path, false) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        let refused =
            |why: String| format!("saved listing {} not used: {why}; done/ is listed", path.display());
        let start = match format::check_header(&bytes, &self.listing_identity(node)) {
            Ok(start) => start,
            // Whole, but written by another build or for another run: the
            // facts file says so already, and the next save replaces it.
            Err(HeaderError::Version(_) | HeaderError::OtherRun(_)) => return Ok(None),
            Err(problem) => return Err(refused(problem.to_string())),
        };
        decode(&bytes[start..]).map(Some).ok_or_else(|| refused("it is cut short or corrupt".into()))
    }

    /// Saves `node`'s listing with the stamp and fingerprint it was
    /// listed with, replacing the one before at once.
    pub fn save_listing(
        &self,
        node: &str,
        stamp_ns: i128,
        fingerprint: [u64; 3],
        listing: &Listing,
    ) -> Result<(), String> {
        let path = self.listing_path(node);
        let mut bytes = format::header(&self.listing_identity(node));
        encode(stamp_ns, fingerprint, listing, &mut bytes);
        let mut temp = path.clone().into_os_string();
        temp.push(format!(".{}.tmp", std::process::id()));
        let temp = PathBuf::from(temp);
        let io = |e: std::io::Error| format!("{}: {e}", temp.display());
        let _ = std::fs::remove_file(&temp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&temp)
            .map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
        drop(file);
        std::fs::rename(&temp, &path).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            format!("{}: {e}", path.display())
        })
    }
}

/// A listing moved out of memory into a private file while its directory
/// does not change: a finished lease's `done/` listings are 33 MB at 10^6
/// tasks, needed only to diff a listing that changed. The file is
/// unlinked from the moment it exists (nothing is left behind, whatever
/// ends the process) and only this process holds it, so no other
/// dashboard can replace it under us.
#[derive(Debug)]
pub struct ParkedListing {
    file: std::fs::File,
    files: usize,
}

impl ParkedListing {
    /// Number of files the listing holds (as [`Listing::len`]).
    pub fn files(&self) -> usize {
        self.files
    }

    /// The listing, exactly as parked.
    pub fn read(&self) -> Result<Listing, String> {
        use std::os::unix::fs::FileExt;
        let size = self.file.metadata().map_err(|e| e.to_string())?.len();
        let mut bytes = vec![0; usize::try_from(size).map_err(|e| e.to_string())?];
        self.file.read_exact_at(&mut bytes, 0).map_err(|e| e.to_string())?;
        decode(&bytes).map(|saved| saved.listing).ok_or_else(|| "it came back damaged".to_string())
    }
}

impl FactsCache {
    /// Moves `listing` into a private file beside the facts file.
    pub fn park_listing(&self, listing: &Listing) -> Result<ParkedListing, String> {
        let dir = self.path.parent().unwrap_or(std::path::Path::new("."));
        let mut file = private_file(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut bytes = Vec::new();
        encode(0, [0; 3], listing, &mut bytes);
        file.write_all(&bytes).map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(ParkedListing { file, files: listing.len() })
    }
}

/// A file no other process can open: made unnamed where the filesystem
/// can (`O_TMPFILE`), else made under a fresh name and unlinked at once.
fn private_file(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    match private_options(libc::O_TMPFILE).open(dir) {
        Ok(file) => Ok(file),
        Err(_) => named_then_unlinked(dir),
    }
}

fn private_options(flags: i32) -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).mode(0o600).custom_flags(libc::O_CLOEXEC | flags);
    options
}

fn named_then_unlinked(dir: &std::path::Path) -> std::io::Result<std::fs::File> {
    let path = dir.join(format!(".parked-{}-{:016x}", std::process::id(), fastrand::u64(..)));
    let file = private_options(libc::O_NOFOLLOW).create_new(true).open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// The body: stamp, fingerprint, task entries (name, files), other names,
/// and a checksum of all of it (the header has its own).
fn encode(stamp_ns: i128, fingerprint: [u64; 3], listing: &Listing, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&stamp_ns.to_le_bytes());
    for word in fingerprint {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&(listing.task_count() as u64).to_le_bytes());
    for (name, files) in listing.tasks() {
        format::put_name(out, name);
        out.push(files.bits());
    }
    let others = listing.others();
    out.extend_from_slice(&(others.len() as u64).to_le_bytes());
    for other in others {
        format::put_str(out, other);
    }
    let sum = format::checksum(&out[start..]);
    out.extend_from_slice(&sum.to_le_bytes());
}

fn decode(body: &[u8]) -> Option<SavedListing> {
    let (body, sum) = body.split_at_checked(body.len().checked_sub(4)?)?;
    if format::checksum(body) != u32::from_le_bytes(sum.try_into().ok()?) {
        return None;
    }
    let mut f = Fields::new(body);
    let (low, high) = (f.u64()?, f.u64()?);
    let stamp_ns = (i128::from(high as i64) << 64) | i128::from(low);
    let fingerprint = [f.u64()?, f.u64()?, f.u64()?];
    let count = f.u64()?;
    if count > MAX_ENTRIES {
        return None;
    }
    // Each entry is at least two bytes: no allocation beyond what is there.
    let capacity = (count as usize).min(body.len() / 2);
    let (mut names, mut files) = (Vec::with_capacity(capacity), Vec::with_capacity(capacity));
    for _ in 0..count {
        names.push(f.name()?);
        files.push(TaskFiles::from_bits(f.u8()?)?);
    }
    let count = f.u64()?;
    let mut others = Vec::with_capacity((count.min(MAX_ENTRIES) as usize).min(body.len() / 4));
    for _ in 0..count {
        others.push(f.text()?.to_string());
    }
    if !f.is_done() {
        return None;
    }
    let listing = Listing::from_parts(names, files, others)?;
    Some(SavedListing { stamp_ns, fingerprint, listing })
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "2b7c9c9b-0000-4000-8000-00000000abcd";

    fn sample() -> SavedListing {
        let names = ["1_T1_U.json", "1_T1_U.result.json", "2_T2_U.cancelled.json", "odd name", "7_x_U.json"];
        let listing = Listing::of(names.iter().map(|n| n.replace('U', UUID)));
        SavedListing { stamp_ns: -5 << 70 | 12345, fingerprint: [3, u64::MAX, 9], listing }
    }

    fn save(cache: &FactsCache, node: &str, saved: &SavedListing) {
        cache.save_listing(node, saved.stamp_ns, saved.fingerprint, &saved.listing).unwrap();
    }

    fn cache(dir: &std::path::Path, identity: &str) -> FactsCache {
        FactsCache::at(dir.join("facts.bin"), identity.into())
    }

    #[test]
    fn a_saved_listing_comes_back_exactly_for_its_run_and_node_only() {
        let tmp = tempfile::tempdir().unwrap();
        let ours = cache(tmp.path(), "run");
        assert_eq!(ours.load_listing("a"), Ok(None), "nothing saved yet");
        save(&ours, "a", &sample());
        assert_eq!(ours.load_listing("a"), Ok(Some(sample())));
        assert_eq!(ours.load_listing("b"), Ok(None), "another node has its own file");
        let other_run = cache(tmp.path(), "another run");
        assert_eq!(
            other_run.load_listing("a"),
            Ok(None),
            "another run's is not used, and not worth a message"
        );
        // Nodes whose names make the same safe file name do not share a file.
        save(&ours, "x/y", &sample());
        assert_eq!(ours.load_listing("x_y"), Ok(None));
        let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
        assert_eq!(leftovers.len(), 2, "no temporary file is left behind: {leftovers:?}");
    }

    #[test]
    fn every_cut_and_every_flipped_byte_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let ours = cache(tmp.path(), "run");
        save(&ours, "a", &sample());
        let path = ours.listing_path("a");
        let good = std::fs::read(&path).unwrap();
        for cut in 0..good.len() {
            std::fs::write(&path, &good[..cut]).unwrap();
            assert!(ours.load_listing("a").is_err(), "cut at {cut} of {}", good.len());
        }
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x20;
            std::fs::write(&path, &bad).unwrap();
            assert!(ours.load_listing("a").is_err(), "byte {at} flipped");
        }
    }

    #[test]
    fn a_parked_listing_comes_back_exactly_and_leaves_no_file() {
        let tmp = tempfile::tempdir().unwrap();
        let ours = cache(tmp.path(), "run");
        let parked = ours.park_listing(&sample().listing).unwrap();
        assert_eq!(parked.files(), sample().listing.len());
        let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
        assert!(names.is_empty(), "a parked listing has no name: {names:?}");
        assert_eq!(parked.read(), Ok(sample().listing));
        let empty = ours.park_listing(&Listing::default()).unwrap();
        assert_eq!(empty.read(), Ok(Listing::default()));
        // Where the filesystem cannot make an unnamed file.
        let mut file = named_then_unlinked(tmp.path()).unwrap();
        file.write_all(b"x").unwrap();
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_listing_out_of_order_is_refused() {
        let saved = sample();
        let mut bytes = Vec::new();
        encode(saved.stamp_ns, saved.fingerprint, &saved.listing, &mut bytes);
        assert_eq!(decode(&bytes), Some(saved.clone()));
        let (mut names, files): (Vec<_>, Vec<_>) = saved.listing.tasks().map(|(n, f)| (n.clone(), f)).unzip();
        assert!(Listing::from_parts(names.clone(), files.clone(), Vec::new()).is_some());
        assert!(Listing::from_parts(names.clone(), files[1..].to_vec(), Vec::new()).is_none());
        names.reverse();
        assert!(Listing::from_parts(names, files, Vec::new()).is_none());
    }
}
