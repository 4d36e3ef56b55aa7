//! Building an index once, for commands that print and exit (`status`,
//! `tasks`): the engine's own core in settle mode, its jobs on one thread
//! per core, the fold on this one.

use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Instant;

use crate::cache::CacheUse;
pub use crate::engine::core::Reads;
use crate::engine::core::{CoreConfig, EngineCore, Input};
use crate::engine::jobs::Job;
use crate::index::{Event, Index};
use crate::io_pool::{run_behind, Behind};
use crate::paths::{RunDir, UiConfig};
use crate::scan::RunFs;

/// Lists every node of a run dir, reads what `reads` asks for, and
/// returns the folded index. `now` is the wall clock heartbeats are
/// judged by.
pub fn build(
    source: &dyn RunFs,
    run: &RunDir,
    ui: &UiConfig,
    now: i64,
    reads: Reads,
    cache: &CacheUse,
) -> Index {
    fold(Index::new(ui.hb_stale_s), source, run, now, reads, cache)
}

/// As [`build`] with every result read, for counts (`status`): commands
/// and cwds the cache can give back are not held (at 10^6 tasks, a
/// hundred megabytes no count needs).
pub fn build_counts(source: &dyn RunFs, run: &RunDir, ui: &UiConfig, now: i64, cache: &CacheUse) -> Index {
    fold(Index::new(ui.hb_stale_s).with_details_limit(0), source, run, now, Reads::Results, cache)
}

fn fold(
    mut index: Index,
    source: &dyn RunFs,
    run: &RunDir,
    now: i64,
    reads: Reads,
    cache: &CacheUse,
) -> Index {
    index.apply(Event::Tick(now));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Listings and reads on every core, behind this thread, which folds
    // what they give as it comes (the fold is the serial part). The
    // readers also load the cache, which the fold waits for: the listers
    // run behind them (see `io_pool::Behind`).
    let mut core =
        EngineCore::new(run.clone(), CoreConfig::settle(reads, cores)).with_cache(cache.open(&run.0));
    let started = Instant::now();
    let (list_tx, list_rx) = mpsc::channel::<Job>();
    let (read_tx, read_rx) = mpsc::channel::<Job>();
    let (list_rx, read_rx) = (Mutex::new(list_rx), Mutex::new(read_rx));
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel();
        let queues = std::iter::repeat_n((&list_rx, Behind::Fold), cores)
            .chain(std::iter::repeat_n((&read_rx, Behind::Pump), cores));
        for (jobs, behind) in queues {
            let done_tx = done_tx.clone();
            scope.spawn(move || {
                run_behind(behind);
                loop {
                    let job = jobs.lock().map(|rx| rx.recv());
                    let Ok(Ok(job)) = job else { return };
                    if done_tx.send(job.execute(source, run, now)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);
        let mut input = Input::Tick;
        loop {
            let after_completion = matches!(input, Input::Done(_));
            let out = core.on(started.elapsed(), input, &index);
            // Jobs first: the next listing runs while this thread folds.
            for job in out.jobs {
                // Cache jobs are local disk: on the readers, idle while listing.
                let queue = if matches!(job, Job::List(_) | Job::Discover | Job::Heartbeats) {
                    &list_tx
                } else {
                    &read_tx
                };
                let _ = queue.send(job);
            }
            for event in out.events {
                index.apply(event);
            }
            if out.settled {
                break;
            }
            input = if after_completion {
                // The core plans reads and checks rounds on a folded index.
                Input::IndexChanged
            } else if core.jobs_in_flight() == 0 {
                break; // nothing more can come (never expected)
            } else {
                match done_rx.recv() {
                    Ok(completion) => Input::Done(completion),
                    Err(_) => break,
                }
            };
        }
        drop((list_tx, read_tx));
    });
    index
}
