//! The jobs the engine core asks for, and how each is carried out against
//! a run directory's filesystem. Carrying one out is the only I/O in the
//! engine; who runs it, when and on which thread is the caller's choice.

use std::sync::Arc;

use crate::cache::{Facts, FactsCache, LoadFrom, Loaded};
use crate::hydrate::{perform, ReadJob, ReadKey};
use crate::index::{Event, HeartbeatRound, Round};
use crate::paths::{QueueDir, RunDir};
use crate::scan::{discover_nodes, read_heartbeats, read_paused_nodes, Discovery, NodeScanner, RunFs};

/// The two halves of a node's round, listed as two jobs so that running
/// and pending tasks reach the screen before a large `done/` is listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `inbox/`, `claimed/`, `inbox/` (sent as `Event::PartialRound`).
    Live,
    /// `done/` (sent as `Event::Round`).
    Done,
}

/// One half of a node's round. It carries the node's scanner (its last
/// listings) to the thread that lists, and back in its completion.
#[derive(Debug)]
pub struct ListJob {
    part: Part,
    force: bool,
    scanner: Box<NodeScanner>,
}

impl ListJob {
    pub(super) fn new(part: Part, force: bool, scanner: Box<NodeScanner>) -> ListJob {
        ListJob { part, force, scanner }
    }

    pub fn node(&self) -> &str {
        self.scanner.node()
    }

    pub fn part(&self) -> Part {
        self.part
    }

    pub fn force(&self) -> bool {
        self.force
    }

    /// Lists, calling `before` ahead of each directory (the fuzzer moves
    /// tasks there; everyone else passes a no-op).
    pub fn run_with(mut self, fs: &dyn RunFs, before: &mut dyn FnMut(QueueDir)) -> Completion {
        let round = match self.part {
            Part::Live => self.scanner.start_round_with(fs, self.force, before),
            Part::Done => self.scanner.finish_round_with(fs, self.force, before),
        };
        Completion::Listed { part: self.part, scanner: self.scanner, round }
    }
}

/// Work for the filesystem.
#[derive(Debug)]
pub enum Job {
    /// The node list (queue subdirectories, heartbeat files) and each
    /// node's pause marker.
    Discover,
    /// Every heartbeat file.
    Heartbeats,
    List(ListJob),
    /// Task files to read and parse.
    Read(Vec<ReadJob>),
    /// The next chunk of the warm-start cache.
    LoadFacts {
        cache: Arc<FactsCache>,
        from: LoadFrom,
    },
    /// Facts of files just read, for the next launch.
    SaveFacts {
        cache: Arc<FactsCache>,
        facts: Vec<Facts>,
    },
    /// Specs of tasks that let their details go, from the cache.
    Recall {
        cache: Arc<FactsCache>,
        at: Vec<u64>,
    },
}

impl Job {
    /// Loading, saving or fetching back from the cache (a local file,
    /// not the run directory).
    pub fn uses_the_cache(&self) -> bool {
        matches!(self, Job::LoadFacts { .. } | Job::SaveFacts { .. } | Job::Recall { .. })
    }

    /// A short name for traces and "stuck" reports.
    pub fn describe(&self) -> String {
        match self {
            Job::Discover => "the node list".into(),
            Job::Heartbeats => "the heartbeats".into(),
            Job::List(list) => match list.part {
                Part::Live => format!("{}'s inbox/ and claimed/", list.node()),
                Part::Done => format!("{}'s done/", list.node()),
            },
            Job::Read(reads) => format!("{} task files", reads.len()),
            Job::LoadFacts { .. } => "the cache".into(),
            Job::SaveFacts { facts, .. } => format!("saving {} facts to the cache", facts.len()),
            Job::Recall { at, .. } => format!("{} tasks' details from the cache", at.len()),
        }
    }

    /// Carries the job out, blocking. `unix_now`: the wall clock that
    /// heartbeats are judged by.
    pub fn execute(self, fs: &dyn RunFs, run: &RunDir, unix_now: i64) -> Completion {
        match self {
            Job::Discover => {
                let nodes = discover_nodes(fs, run);
                let paused = read_paused_nodes(fs, run, &nodes.names);
                Completion::Discovered { nodes, paused }
            }
            Job::Heartbeats => Completion::Heartbeats { beats: read_heartbeats(fs, run), unix_now },
            Job::List(list) => list.run_with(fs, &mut |_| {}),
            Job::Read(reads) => Completion::Read {
                results: reads.into_iter().map(|job| (job.key(), perform(&job, fs))).collect(),
            },
            Job::LoadFacts { cache, from } => Completion::FactsLoaded(cache.load(from)),
            Job::SaveFacts { cache, facts } => Completion::FactsSaved(cache.append(&facts).map(|at| {
                let details = facts.iter().zip(at).filter(|(f, _)| f.details().is_some());
                details.map(|(f, at)| (f.name().clone(), at)).collect()
            })),
            Job::Recall { cache, at } => Completion::Recalled(
                cache.read_records(&at).map(|found| found.into_iter().flatten().collect()),
            ),
        }
    }
}

/// A finished job, handed back to the core.
#[derive(Debug)]
pub enum Completion {
    Discovered {
        nodes: Discovery,
        paused: Vec<(String, bool)>,
    },
    /// `unix_now`: the wall clock when they were read.
    Heartbeats {
        beats: HeartbeatRound,
        unix_now: i64,
    },
    Listed {
        part: Part,
        scanner: Box<NodeScanner>,
        round: Round,
    },
    /// Per file: its event, or `None` when the file had moved (tried again
    /// after its next listing).
    Read {
        results: Vec<(ReadKey, Option<Event>)>,
    },
    FactsLoaded(Loaded),
    /// Where the specs saved went.
    FactsSaved(Result<Vec<(crate::names::StoredName, u64)>, String>),
    Recalled(Result<Vec<Facts>, String>),
}
