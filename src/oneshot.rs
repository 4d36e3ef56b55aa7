//! Building an index once, for commands that print and exit (`status`,
//! `tasks`), with the same scanners, index and readers the TUI uses.

use std::sync::Arc;

use crate::hydrate::{jobs_for, perform, ReadJob};
use crate::index::{Event, Index, Round};
use crate::paths::{RunDir, UiConfig};
use crate::scan::{discover_nodes, read_heartbeats, read_paused, ListingSource, NodeScanner};

/// Which files to read after the listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reads {
    /// Names only.
    None,
    /// Results of listed results, so FINISHED and FAILED are exact.
    Results,
    /// Results and specs (commands, submit times).
    All,
}

/// Scans every node of a run dir and returns the folded index.
pub fn build(source: &dyn ListingSource, run: &RunDir, ui: &UiConfig, now: i64, reads: Reads) -> Index {
    let mut index = Index::new(ui.hb_stale_s);
    index.apply(Event::Tick(now));
    let discovery = discover_nodes(source, run);
    index.apply(Event::LeaseScan(discovery.problem));
    let nodes = discovery.names;
    if nodes.is_empty() {
        return index;
    }
    index.apply(Event::Heartbeats(read_heartbeats(source, run)));
    let mut scanners: Vec<NodeScanner> = nodes.iter().map(|n| NodeScanner::new(run, n)).collect();
    scan_all(source, &mut scanners, |round| index.apply(Event::Round(round)));
    // A task caught between listings is unaccounted for after one round;
    // one more round of those nodes settles it (moved, or really lost).
    let unsettled: Vec<usize> = (0..scanners.len())
        .filter(|&i| index.find_node(scanners[i].node()).is_some_and(|id| index.unaccounted_on(id) > 0))
        .collect();
    for i in unsettled {
        let round = scanners[i].round(source, true);
        index.apply(Event::Round(round));
    }
    for node in &nodes {
        if read_paused(source, run, node) {
            index.apply(Event::NodePaused { node: Arc::from(node.as_str()), paused: true });
        }
    }
    if reads != Reads::None {
        hydrate(&mut index, run, reads);
    }
    index
}

/// Lists nodes on one thread per core and hands each round to `apply` as
/// soon as it is listed, so folding overlaps listing.
fn scan_all(source: &dyn ListingSource, scanners: &mut [NodeScanner], mut apply: impl FnMut(Round)) {
    // One core stays with the fold (this thread), which is the serial part.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let threads = cores.saturating_sub(1).max(1).min(scanners.len().max(1));
    let chunk = scanners.len().div_ceil(threads).max(1);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Round>(threads);
    std::thread::scope(|scope| {
        for part in scanners.chunks_mut(chunk) {
            let tx = tx.clone();
            scope.spawn(move || {
                for scanner in part {
                    if tx.send(scanner.round(source, true)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        for round in rx {
            apply(round);
        }
    });
}

/// Reads every file the index still owes, in parallel, and applies them.
pub fn hydrate(index: &mut Index, run: &RunDir, reads: Reads) {
    let mut jobs: Vec<ReadJob> = Vec::new();
    for id in index.unread(usize::MAX, |_| false) {
        jobs_for(index, run, id, &mut jobs);
    }
    if reads == Reads::Results {
        jobs.retain(|j| j.result.is_some());
    }
    for event in read_parallel(&jobs) {
        index.apply(event);
    }
}

/// Performs reads on one thread per core.
pub fn read_parallel(jobs: &[ReadJob]) -> Vec<Event> {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = jobs.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().filter_map(perform).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap_or_default()).collect()
    })
}
