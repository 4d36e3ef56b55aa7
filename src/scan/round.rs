//! One node's scanning round: list its queue directories in a fixed order,
//! skip the ones whose stamp proves them unchanged, and diff the rest
//! against the previous listing.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cache::{FactsCache, ParkedListing};
use crate::index::{DirOutcome, Round};
use crate::listing::Listing;
use crate::paths::{QueueDir, RunDir};
use crate::runfs::{DirStamp, ListError, RunFs};

/// The order a round lists a node's directories in: `inbox/`, `claimed/`,
/// `inbox/` again, then `done/`.
///
/// A task seen nowhere in a round looks LOST?, so the order must leave no
/// window in which a single move hides a task. Every move's destination is
/// listed after its source: a claim (inbox -> claimed) is caught by the
/// first `inbox/` or by `claimed/`; zombie recovery (claimed -> inbox) by
/// `claimed/` or the second `inbox/`; a finish or skip (claimed -> done)
/// and a cancel (inbox -> done) by their source or by `done/`, which comes
/// last. The second `inbox/` listing only adds (see `list_one`): a claim
/// after `claimed/` was listed keeps the task in `inbox/` until the next
/// round. It is usually skipped by its unchanged stamp. A task can still
/// hide for a round if it moves twice during one round; the index waits a
/// second round before calling it LOST? (see `index::LOST_AFTER_ROUNDS`).
/// Listing `done/` first, as one might think of "downstream first", would
/// hide every task that finished between the `done/` and `claimed/`
/// listings: the commonest move of all.
pub const ROUND_ORDER: [QueueDir; 4] = [QueueDir::Inbox, QueueDir::Claimed, QueueDir::Inbox, QueueDir::Done];

#[derive(Debug, Default)]
struct DirState {
    path: PathBuf,
    /// The last good listing.
    listing: Listing,
    /// What the raw names of the last good listing hash to, when the state
    /// is exactly that listing: a forced listing that hashes the same is
    /// unchanged without parsing and sorting a million names again.
    fingerprint: Option<Fingerprint>,
    stamp: Option<DirStamp>,
    listed_once: bool,
    /// The last good listing, out of memory (`listing` is then empty):
    /// see [`NodeScanner::park_done_if_idle`].
    parked: Option<ParkedListing>,
    /// Rounds in a row this directory was unchanged.
    unchanged_rounds: u32,
}

impl DirState {
    /// Number of files in the last good listing, parked or not.
    fn listed_files(&self) -> usize {
        self.listing.len() + self.parked.as_ref().map_or(0, ParkedListing::files)
    }

    /// Brings a parked listing back into memory, to diff against.
    fn unpark(&mut self) -> Result<(), String> {
        if let Some(parked) = &self.parked {
            self.listing = parked.read().map_err(|e| {
                format!("the last listing of {} could not be read back: {e}", self.path.display())
            })?;
            self.parked = None;
        }
        Ok(())
    }
}

/// The scanning state of one node of one lease.
#[derive(Debug)]
pub struct NodeScanner {
    node: Arc<str>,
    /// One state per queue directory (in `QueueDir::ALL` order), shared by
    /// repeated listings of it within a round.
    dirs: [DirState; 3],
    rounds: u64,
    saved: SavedDone,
}

/// This node's `done/` listing as the cache keeps it between launches.
#[derive(Debug, Default)]
struct SavedDone {
    /// `None`: no cache, or saving failed (said once).
    cache: Option<Arc<FactsCache>>,
    /// The saved listing was looked at (once, before the first listing).
    tried: bool,
    /// The stamp and fingerprint of what the cache has now, when this
    /// process knows them.
    kept: Option<(DirStamp, Fingerprint)>,
    /// The round it was saved in.
    at_round: u64,
    /// Why the saved listing could not be used or saved, to say once.
    problem: Option<String>,
    /// Task entries from which an idle listing is parked.
    park_from: usize,
}

/// Rounds between two saves of a `done/` that keeps changing (2-10 s each):
/// each save writes the node's whole listing, so a busy node is not saved
/// every round; one saved a little stale costs the next launch one listing.
const SAVE_EVERY_ROUNDS: u64 = 30;

/// Unchanged rounds after which a `done/` listing is parked (2-20 s).
const PARK_AFTER_UNCHANGED: u32 = 2;
/// Task entries below which a listing stays in memory (a few KB).
pub const PARK_AT_LEAST: usize = 1024;

fn slot(dir: QueueDir) -> usize {
    QueueDir::ALL.iter().position(|d| *d == dir).unwrap_or(0)
}

impl NodeScanner {
    pub fn new(run_dir: &RunDir, node: &str) -> NodeScanner {
        let dirs =
            QueueDir::ALL.map(|dir| DirState { path: run_dir.queue(dir, node), ..DirState::default() });
        let saved = SavedDone { park_from: PARK_AT_LEAST, ..SavedDone::default() };
        NodeScanner { node: Arc::from(node), dirs, rounds: 0, saved }
    }

    /// Parks idle `done/` listings of at least `tasks` entries (the
    /// default, [`PARK_AT_LEAST`], keeps small ones in memory; the NFS
    /// model's check parks every one, to prove a parked listing diffs as
    /// one held would).
    pub fn parking_from(mut self, tasks: usize) -> NodeScanner {
        self.saved.park_from = tasks.max(1);
        self
    }

    /// Keeps `done/`'s listing in `cache` between launches: a relaunch
    /// takes it instead of listing while the directory's stamp says it has
    /// not changed since.
    pub fn with_saved_listings(mut self, cache: Option<Arc<FactsCache>>) -> NodeScanner {
        self.saved.cache = cache;
        self
    }

    /// Why the saved listing could not be used or saved, once.
    pub fn take_problem(&mut self) -> Option<String> {
        self.saved.problem.take()
    }

    pub fn node(&self) -> &Arc<str> {
        &self.node
    }

    pub fn rounds(&self) -> u64 {
        self.rounds
    }

    /// Total names in the last listings (for progress and benches).
    pub fn listed_names(&self) -> usize {
        self.dirs.iter().map(DirState::listed_files).sum()
    }

    /// Lists the directories and returns what changed. With `force`, stamps
    /// are ignored (a periodic full rescan against attribute caching).
    pub fn round(&mut self, source: &dyn RunFs, force: bool) -> Round {
        self.round_with(source, force, &mut |_| {})
    }

    /// As [`round`](Self::round), calling `between` before each directory is
    /// listed; the simulation uses it to let the world move mid-round.
    pub fn round_with(
        &mut self,
        source: &dyn RunFs,
        force: bool,
        between: &mut dyn FnMut(QueueDir),
    ) -> Round {
        let outcomes = self.list(&ROUND_ORDER, source, force, between);
        self.rounds += 1;
        Round { node: self.node.clone(), dirs: outcomes }
    }

    /// The first part of a round: the small directories of live work
    /// (`inbox/`, `claimed/`, `inbox/`), so running and pending tasks reach
    /// the screen before a large `done/` is listed. Send it as
    /// `Event::PartialRound`; [`finish_round_with`](Self::finish_round_with)
    /// completes it. `between` is called before each directory is listed.
    pub fn start_round_with(
        &mut self,
        source: &dyn RunFs,
        force: bool,
        between: &mut dyn FnMut(QueueDir),
    ) -> Round {
        let live = &ROUND_ORDER[..ROUND_ORDER.len() - 1];
        let outcomes = self.list(live, source, force, between);
        Round { node: self.node.clone(), dirs: outcomes }
    }

    /// The rest of a round started with
    /// [`start_round_with`](Self::start_round_with): `done/`. Send it as
    /// `Event::Round`.
    pub fn finish_round_with(
        &mut self,
        source: &dyn RunFs,
        force: bool,
        between: &mut dyn FnMut(QueueDir),
    ) -> Round {
        let done = &ROUND_ORDER[ROUND_ORDER.len() - 1..];
        let outcomes = self.list(done, source, force, between);
        self.rounds += 1;
        Round { node: self.node.clone(), dirs: outcomes }
    }

    fn list(
        &mut self,
        order: &[QueueDir],
        source: &dyn RunFs,
        force: bool,
        between: &mut dyn FnMut(QueueDir),
    ) -> Vec<(QueueDir, DirOutcome)> {
        let mut outcomes = Vec::with_capacity(order.len());
        for (i, &dir) in order.iter().enumerate() {
            between(dir);
            // A repeated listing in the same round may use the stamp even
            // in a forced round: the first listing just refreshed it.
            let repeated = order[..i].contains(&dir);
            let outcome = match self.saved_listing_stands_in(source, dir) {
                Some(outcome) => outcome,
                None => list_one(source, &mut self.dirs[slot(dir)], force && !repeated, repeated),
            };
            if dir == QueueDir::Done {
                self.save_done(false);
                self.park_done_if_idle(&outcome);
            }
            outcomes.push((dir, outcome));
        }
        outcomes
    }

    /// The first listing of `done/` in this process, taken from the cache
    /// when the directory's stamp is still the one it was saved with: a
    /// finished lease's history is not listed again on every launch. In
    /// any round, forced or not: a forced round distrusts stamps this
    /// process kept, which a `stat` may have answered from the attribute
    /// cache; this stamp is taken by opening the directory, as fresh as a
    /// listing (see `RunFs::open_stamp`). A racy stamp never matches: a
    /// change within the filesystem's timestamp granularity of the save
    /// would leave it the same.
    fn saved_listing_stands_in(&mut self, source: &dyn RunFs, dir: QueueDir) -> Option<DirOutcome> {
        if dir != QueueDir::Done || std::mem::replace(&mut self.saved.tried, true) {
            return None;
        }
        let state = &mut self.dirs[slot(dir)];
        let cache = self.saved.cache.as_ref().filter(|_| !state.listed_once)?;
        let saved = match cache.load_listing(&self.node) {
            Ok(saved) => saved?,
            Err(problem) => {
                self.saved.problem = Some(problem);
                return None;
            }
        };
        let stamp = source.open_stamp(&state.path).ok()?;
        if stamp.racy || stamp.mtime_ns != saved.stamp_ns {
            return None;
        }
        let fingerprint = Fingerprint::from_words(saved.fingerprint);
        state.listing = saved.listing;
        state.fingerprint = Some(fingerprint);
        state.stamp = Some(stamp);
        state.listed_once = true;
        self.saved.kept = Some((stamp, fingerprint));
        self.saved.at_round = self.rounds;
        Some(if state.listing.is_empty() {
            DirOutcome::Unchanged
        } else {
            DirOutcome::Changed { added: state.listing.clone(), removed: Listing::default() }
        })
    }

    /// Saves `done/`'s listing when a stamp that can vouch for it is newer
    /// than what the cache has (at most every [`SAVE_EVERY_ROUNDS`], unless
    /// `now`). Never while parked: the listing in memory is then empty, and
    /// the saved copy was this listing when it was parked (a later stamp
    /// over the same names goes unsaved until the directory changes).
    fn save_done(&mut self, now: bool) {
        let Some(cache) = &self.saved.cache else { return };
        let state = &self.dirs[slot(QueueDir::Done)];
        let (Some(stamp), Some(fingerprint)) = (state.stamp, state.fingerprint) else { return };
        if state.parked.is_some() {
            return;
        }
        let due = match self.saved.kept {
            None => true,
            // Other names under the same stamp: what was saved came from a
            // listing that lagged behind its stamp (NFS can serve one);
            // replaced at once.
            Some(kept) if kept.0 == stamp => kept.1 != fingerprint,
            Some(_) => now || self.rounds >= self.saved.at_round + SAVE_EVERY_ROUNDS,
        };
        if !due {
            return;
        }
        match cache.save_listing(&self.node, stamp.mtime_ns, fingerprint.words(), &state.listing) {
            Ok(()) => {
                self.saved.kept = Some((stamp, fingerprint));
                self.saved.at_round = self.rounds;
            }
            Err(problem) => {
                self.saved.problem = Some(format!("done/ listings are not saved: {problem}"));
                self.saved.cache = None;
            }
        }
    }

    /// Parks `done/`'s listing in the cache's directory once the directory
    /// has stayed unchanged for [`PARK_AFTER_UNCHANGED`] rounds: a
    /// finished history's listings leave memory, and come back (one local
    /// read) only when the directory changes. Only once the cache's saved
    /// copy is this listing (saved first if it was behind): a listing whose
    /// stamp cannot vouch for it (racy, or none) is not saved, and stays.
    fn park_done_if_idle(&mut self, outcome: &DirOutcome) {
        let state = &mut self.dirs[slot(QueueDir::Done)];
        match outcome {
            DirOutcome::Unchanged => state.unchanged_rounds = state.unchanged_rounds.saturating_add(1),
            _ => state.unchanged_rounds = 0,
        }
        let idle = state.unchanged_rounds >= PARK_AFTER_UNCHANGED;
        if !idle || state.parked.is_some() || state.listing.task_count() < self.saved.park_from {
            return;
        }
        self.save_done(true);
        let state = &mut self.dirs[slot(QueueDir::Done)];
        let saved_is_this = matches!((state.stamp, state.fingerprint), (Some(stamp), Some(fingerprint))
            if self.saved.kept == Some((stamp, fingerprint)));
        let Some(cache) = self.saved.cache.as_ref().filter(|_| saved_is_this) else { return };
        match cache.park_listing(&state.listing) {
            Ok(parked) => {
                state.parked = Some(parked);
                state.listing = Listing::default();
            }
            Err(problem) => {
                self.saved.problem = Some(format!("done/ listings are kept in memory: {problem}"));
                self.saved.cache = None;
            }
        }
    }
}

/// An order-independent 128-bit hash of a listing's names, and their
/// number. Two different listings agreeing on all three is a chance of
/// about 2^-128 per forced listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    names: usize,
    sum: u64,
    mixed: u64,
}

impl Fingerprint {
    fn words(self) -> [u64; 3] {
        [self.names as u64, self.sum, self.mixed]
    }

    fn from_words([names, sum, mixed]: [u64; 3]) -> Fingerprint {
        Fingerprint { names: names as usize, sum, mixed }
    }

    fn of<'a>(names: impl Iterator<Item = &'a str>) -> Fingerprint {
        use std::hash::Hasher;
        // `DefaultHasher::new()` has fixed keys: the same name hashes the
        // same in every listing.
        let (mut sum, mut mixed, mut count) = (0u64, 0u64, 0);
        for name in names {
            count += 1;
            let mut a = std::hash::DefaultHasher::new();
            a.write(name.as_bytes());
            let h = a.finish();
            let mut b = std::hash::DefaultHasher::new();
            b.write_u8(0x5c);
            b.write(name.as_bytes());
            sum = sum.wrapping_add(h);
            mixed = mixed.wrapping_add(b.finish().rotate_left(17) ^ h);
        }
        Fingerprint { names: count, sum, mixed }
    }
}

/// Lists one directory against its last listing. A `repeat` listing (the
/// second `inbox/` of a round) reports additions only: a task that left
/// between the two listings was claimed after `claimed/` was listed, and
/// reporting its removal now would leave it seen nowhere this round. Its
/// removal is reported by the next round's first listing instead.
fn list_one(source: &dyn RunFs, state: &mut DirState, force: bool, repeat: bool) -> DirOutcome {
    let outcome = list_or_skip(source, state, force, repeat);
    if matches!(outcome, DirOutcome::Failed(_)) {
        // A stamp cannot vouch for a directory that failed to list (made
        // unreadable without a change of mtime): it is listed again every
        // round, and stays reported as failing until it lists.
        state.stamp = None;
    }
    outcome
}

fn list_or_skip(source: &dyn RunFs, state: &mut DirState, force: bool, repeat: bool) -> DirOutcome {
    let stamp = match source.stamp(&state.path) {
        Ok(stamp) => Some(stamp),
        Err(ListError::NotFound) if !state.listed_once => return DirOutcome::Unchanged,
        Err(error) => return DirOutcome::Failed(error.describe(&state.path)),
    };
    let unchanged_since_last = !force && state.listed_once && state.stamp.is_some() && state.stamp == stamp;
    if unchanged_since_last {
        return DirOutcome::Unchanged;
    }
    match source.list_files(&state.path) {
        Ok(names) => {
            let names = names.iter().filter(|n| !n.starts_with('.'));
            let fingerprint = Fingerprint::of(names.clone());
            if state.listed_once && state.fingerprint == Some(fingerprint) {
                state.stamp = stamp.filter(|s| !s.racy);
                return DirOutcome::Unchanged;
            }
            if let Err(problem) = state.unpark() {
                return DirOutcome::Failed(problem);
            }
            let listing = Listing::of(names);
            let (added, mut removed) = state.listing.diff(&listing);
            if repeat && !removed.is_empty() {
                // Keep what left in the state (and no stamp, which would
                // vouch for contents the state no longer matches).
                removed = Listing::default();
                state.listing.add(&listing);
                state.stamp = None;
                state.fingerprint = None;
            } else {
                state.listing = listing;
                state.fingerprint = Some(fingerprint);
                // A racy stamp cannot vouch for this listing later.
                state.stamp = stamp.filter(|s| !s.racy);
            }
            state.listed_once = true;
            if added.is_empty() && removed.is_empty() {
                DirOutcome::Unchanged
            } else {
                DirOutcome::Changed { added, removed }
            }
        }
        // Never listed and not there: an empty directory, not an error.
        Err(ListError::NotFound) if !state.listed_once => DirOutcome::Unchanged,
        Err(error) => DirOutcome::Failed(error.describe(&state.path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::FsSource;

    fn touch(path: &std::path::Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"{}").unwrap();
    }

    /// A directory whose mtime never changes and whose listing can be made
    /// to fail, as `chmod 000` does to a non-root reader.
    struct Flaky {
        fail: std::sync::atomic::AtomicBool,
    }

    impl RunFs for Flaky {
        fn stamp(&self, _: &std::path::Path) -> Result<crate::scan::DirStamp, ListError> {
            Ok(crate::scan::DirStamp { mtime_ns: 1, racy: false })
        }
        fn list_files(&self, _: &std::path::Path) -> Result<crate::runfs::FileNames, ListError> {
            if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                Err(ListError::Failed("Permission denied".into()))
            } else {
                Ok(["000001_T1_00000000-0000-4000-8000-000000000001.json"].into_iter().collect())
            }
        }
        fn list_dirs(&self, _: &std::path::Path) -> Result<Vec<String>, ListError> {
            Ok(Vec::new())
        }
        fn read_file(&self, _: &std::path::Path, _: u64) -> Result<Vec<u8>, ListError> {
            Err(ListError::NotFound)
        }
        crate::runfs::real_writes!();
    }

    #[test]
    fn a_listing_that_starts_failing_stays_reported_with_an_unchanged_mtime() {
        let source = Flaky { fail: false.into() };
        let mut scanner = NodeScanner::new(&RunDir("/r".into()), "a");
        scanner.round(&source, false);
        source.fail.store(true, std::sync::atomic::Ordering::SeqCst);
        let failed = |round: &Round| round.dirs.iter().any(|(_, o)| matches!(o, DirOutcome::Failed(_)));
        assert!(!failed(&scanner.round(&source, false)), "unchanged mtime: skipped, as it should be");
        assert!(failed(&scanner.round(&source, true)), "the forced rescan notices");
        assert!(failed(&scanner.round(&source, false)), "and the next rounds too, while it fails");
        source.fail.store(false, std::sync::atomic::Ordering::SeqCst);
        assert!(!failed(&scanner.round(&source, false)), "until it lists again");
    }

    #[test]
    fn lists_in_order_ignores_dotfiles_and_dirs_and_diffs() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        touch(&run.queue(QueueDir::Inbox, "a").join("1.json"));
        touch(&run.queue(QueueDir::Inbox, "a").join(".tmp.2.json.x"));
        std::fs::create_dir_all(run.queue(QueueDir::Inbox, "a").join("subdir")).unwrap();
        let mut scanner = NodeScanner::new(&run, "a");
        let round = scanner.round(&FsSource, false);
        let order: Vec<QueueDir> = round.dirs.iter().map(|d| d.0).collect();
        assert_eq!(order, ROUND_ORDER.to_vec());
        assert_eq!(round.dirs[0].1, DirOutcome::changed(vec!["1.json".into()], vec![]));
        // claimed/ and done/ never existed: empty, not an error.
        assert_eq!(round.dirs[1].1, DirOutcome::Unchanged);
        assert_eq!(round.dirs[2].1, DirOutcome::Unchanged, "the second inbox listing sees no change");

        std::fs::rename(
            run.queue(QueueDir::Inbox, "a").join("1.json"),
            run.queue(QueueDir::Inbox, "a").join("3.json"),
        )
        .unwrap();
        let round = scanner.round(&FsSource, true);
        assert_eq!(round.dirs[0].1, DirOutcome::changed(vec!["3.json".into()], vec!["1.json".into()]));
    }

    #[test]
    fn the_second_inbox_listing_only_adds() {
        use std::cell::Cell;
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        let inbox = run.queue(QueueDir::Inbox, "a");
        touch(&inbox.join("1.json"));
        let mut scanner = NodeScanner::new(&run, "a");
        scanner.round(&FsSource, true);
        // Claimed right after claimed/ is listed: gone from the second inbox/.
        let listings = Cell::new(0);
        let round = scanner.round_with(&FsSource, true, &mut |dir| {
            if dir == QueueDir::Inbox {
                listings.set(listings.get() + 1);
                if listings.get() == 2 {
                    std::fs::remove_file(inbox.join("1.json")).unwrap();
                    touch(&inbox.join("2.json"));
                }
            }
        });
        assert_eq!(round.dirs[2].1, DirOutcome::changed(vec!["2.json".into()], vec![]));
        let next = scanner.round(&FsSource, false);
        assert_eq!(next.dirs[0].1, DirOutcome::changed(vec![], vec!["1.json".into()]));
    }

    /// Sets a directory's mtime (to one well past, as a finished lease's
    /// `done/` has it).
    fn set_mtime(dir: &std::path::Path, when: std::time::SystemTime) {
        std::fs::File::open(dir).unwrap().set_modified(when).unwrap();
    }

    fn done_of(round: &Round) -> &DirOutcome {
        &round.dirs.iter().find(|(dir, _)| *dir == QueueDir::Done).unwrap().1
    }

    const NAME: &str = "000001_T1_00000000-0000-4000-8000-000000000001";

    #[test]
    fn a_saved_done_listing_stands_in_while_the_directory_stamp_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().join("run"));
        let done = run.queue(QueueDir::Done, "a");
        touch(&done.join(format!("{NAME}.json")));
        touch(&done.join(format!("{NAME}.result.json")));
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        set_mtime(&done, hour_ago);
        let cache = Some(Arc::new(FactsCache::at(tmp.path().join("facts.bin"), "run".into())));
        let scanner = || NodeScanner::new(&run, "a").with_saved_listings(cache.clone());
        let first = scanner().round(&FsSource, true);
        assert!(matches!(done_of(&first), DirOutcome::Changed { added, .. } if added.len() == 2));

        // A file slipped in and the stamp put back as it was: a relaunch
        // takes the saved listing, even in a forced round, so the file is
        // not seen. Nothing was listed.
        touch(&done.join("000002_T2_00000000-0000-4000-8000-000000000002.json"));
        set_mtime(&done, hour_ago);
        let mut relaunched = scanner();
        let warm = relaunched.round(&FsSource, true);
        assert_eq!(done_of(&warm), done_of(&first), "the saved listing, not a new one");
        assert_eq!(relaunched.take_problem(), None);
        // The process's own forced rescan lists it.
        let rescan = relaunched.round(&FsSource, true);
        assert!(matches!(done_of(&rescan), DirOutcome::Changed { added, .. } if added.len() == 1));

        // Any other stamp and the directory is listed.
        set_mtime(&done, hour_ago - std::time::Duration::from_secs(1));
        let listed = scanner().round(&FsSource, false);
        assert!(matches!(done_of(&listed), DirOutcome::Changed { added, .. } if added.len() == 3));
    }

    fn task_file(seq: u64) -> String {
        format!("{seq:06}_T{seq}_00000000-0000-4000-8000-{seq:012}.json")
    }

    #[test]
    fn an_idle_done_listing_is_parked_saved_first_and_diffs_exactly_when_it_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().join("run"));
        let done = run.queue(QueueDir::Done, "a");
        let tasks = PARK_AT_LEAST as u64 + 50;
        for seq in 1..=tasks {
            touch(&done.join(task_file(seq)));
        }
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        set_mtime(&done, hour_ago);
        let cache_dir = tmp.path().join("cache");
        std::fs::create_dir(&cache_dir).unwrap();
        let cache = Arc::new(FactsCache::at(cache_dir.join("facts.bin"), "run".into()));
        let mut scanner = NodeScanner::new(&run, "a").with_saved_listings(Some(cache.clone()));
        let first = scanner.round(&FsSource, false);
        assert!(
            matches!(done_of(&first), DirOutcome::Changed { added, .. } if added.len() == tasks as usize)
        );

        // A change the save waits for (a busy node is saved every 30 rounds).
        touch(&done.join(task_file(tasks + 1)));
        set_mtime(&done, hour_ago + std::time::Duration::from_secs(60));
        let grew = scanner.round(&FsSource, false);
        assert!(matches!(done_of(&grew), DirOutcome::Changed { added, .. } if added.len() == 1));
        let held = scanner.dirs[slot(QueueDir::Done)].listing.clone();
        assert!(scanner.dirs[slot(QueueDir::Done)].parked.is_none(), "changing: kept in memory");

        for _ in 0..PARK_AFTER_UNCHANGED {
            assert_eq!(done_of(&scanner.round(&FsSource, false)), &DirOutcome::Unchanged);
        }
        let state = &scanner.dirs[slot(QueueDir::Done)];
        assert!(state.parked.is_some() && state.listing.is_empty(), "idle: out of memory");
        assert_eq!(scanner.listed_names(), tasks as usize + 1, "still counted");
        let saved = cache.load_listing("a").unwrap().expect("saved before parking");
        assert_eq!(saved.listing, held, "the saved copy is the parked one, not the older save");
        let files: Vec<_> = std::fs::read_dir(&cache_dir).unwrap().flatten().map(|e| e.file_name()).collect();
        assert_eq!(files.len(), 1, "the parked listing has no name, only the saved one: {files:?}");
        // A forced rescan that finds the same names leaves it parked.
        assert_eq!(done_of(&scanner.round(&FsSource, true)), &DirOutcome::Unchanged);
        assert!(scanner.dirs[slot(QueueDir::Done)].parked.is_some());

        // A change: read back and diffed, exactly.
        std::fs::remove_file(done.join(task_file(7))).unwrap();
        touch(&done.join(task_file(tasks + 2)));
        set_mtime(&done, hour_ago + std::time::Duration::from_secs(120));
        let changed = scanner.round(&FsSource, false);
        let DirOutcome::Changed { added, removed } = done_of(&changed) else { panic!("{changed:?}") };
        let names = |l: &Listing| l.tasks().map(|(n, _)| n.to_string()).collect::<Vec<_>>();
        assert_eq!(names(added), [task_file(tasks + 2).trim_end_matches(".json")]);
        assert_eq!(names(removed), [task_file(7).trim_end_matches(".json")]);
        assert!(scanner.dirs[slot(QueueDir::Done)].parked.is_none());
        assert_eq!(scanner.listed_names(), tasks as usize + 1);
    }

    #[test]
    fn a_done_listing_no_stamp_vouches_for_stays_in_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().join("run"));
        let done = run.queue(QueueDir::Done, "a");
        for seq in 1..=PARK_AT_LEAST as u64 {
            touch(&done.join(task_file(seq)));
        }
        // An mtime in the future is racy whatever the clock does meanwhile.
        set_mtime(&done, std::time::SystemTime::now() + std::time::Duration::from_secs(3600));
        let cache = Arc::new(FactsCache::at(tmp.path().join("facts.bin"), "run".into()));
        let mut scanner = NodeScanner::new(&run, "a").with_saved_listings(Some(cache.clone()));
        for _ in 0..=PARK_AFTER_UNCHANGED + 1 {
            scanner.round(&FsSource, false);
        }
        assert_eq!(cache.load_listing("a"), Ok(None), "nothing vouches for it: not saved");
        let state = &scanner.dirs[slot(QueueDir::Done)];
        assert!(state.parked.is_none() && state.listing.task_count() == PARK_AT_LEAST, "so not parked");
    }

    #[test]
    fn a_racy_done_is_not_saved_and_a_damaged_save_is_said_once_and_listed_past() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().join("run"));
        let done = run.queue(QueueDir::Done, "a");
        touch(&done.join(format!("{NAME}.json")));
        let cache_dir = tmp.path().join("cache");
        std::fs::create_dir(&cache_dir).unwrap();
        let cache = Some(Arc::new(FactsCache::at(cache_dir.join("facts.bin"), "run".into())));
        let saved = || std::fs::read_dir(&cache_dir).unwrap().flatten().map(|e| e.path()).collect::<Vec<_>>();
        let mut scanner = NodeScanner::new(&run, "a").with_saved_listings(cache.clone());
        scanner.round(&FsSource, false);
        assert_eq!(saved(), Vec::<PathBuf>::new(), "a stamp of just now cannot vouch for the listing");
        set_mtime(&done, std::time::SystemTime::now() - std::time::Duration::from_secs(60));
        scanner.round(&FsSource, false);
        let files = saved();
        assert_eq!(files.len(), 1, "saved once the stamp can vouch for it");

        let mut bytes = std::fs::read(&files[0]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&files[0], &bytes).unwrap();
        let mut relaunched = NodeScanner::new(&run, "a").with_saved_listings(cache);
        let round = relaunched.round(&FsSource, false);
        assert!(matches!(done_of(&round), DirOutcome::Changed { added, .. } if added.len() == 1));
        let problem = relaunched.take_problem().expect("the damage is said");
        assert!(problem.contains("not used") && problem.contains("done/ is listed"), "{problem}");
        assert_eq!(relaunched.take_problem(), None, "once");
        relaunched.round(&FsSource, true);
        assert_eq!(relaunched.take_problem(), None, "and not again");
    }

    #[test]
    fn a_vanished_directory_is_a_failure_not_an_empty_listing() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        touch(&run.queue(QueueDir::Claimed, "a").join("1.json"));
        let mut scanner = NodeScanner::new(&run, "a");
        scanner.round(&FsSource, false);
        std::fs::remove_dir_all(run.queue(QueueDir::Claimed, "a")).unwrap();
        let round = scanner.round(&FsSource, true);
        assert!(matches!(&round.dirs[1].1, DirOutcome::Failed(m) if m.contains("vanished")));
        assert_eq!(scanner.listed_names(), 1, "the last good listing is kept");
    }
}
