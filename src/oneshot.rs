//! Building an index once, for commands that print and exit (`status`,
//! `tasks`): the engine's own core in settle mode, its jobs on one thread
//! per core, the fold on this one.

use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Instant;

pub use crate::engine::core::Reads;
use crate::engine::core::{CoreConfig, EngineCore, Input};
use crate::engine::jobs::Job;
use crate::index::{Event, Index};
use crate::paths::{RunDir, UiConfig};
use crate::scan::RunFs;

/// Lists every node of a run dir, reads what `reads` asks for, and
/// returns the folded index. `now` is the wall clock heartbeats are
/// judged by.
pub fn build(source: &dyn RunFs, run: &RunDir, ui: &UiConfig, now: i64, reads: Reads) -> Index {
    let mut index = Index::new(ui.hb_stale_s);
    index.apply(Event::Tick(now));
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut core = EngineCore::new(run.clone(), CoreConfig::settle(reads, threads));
    let started = Instant::now();
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Mutex::new(job_rx);
    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel();
        for _ in 0..threads {
            let (job_rx, done_tx) = (&job_rx, done_tx.clone());
            scope.spawn(move || loop {
                let job = job_rx.lock().map(|rx| rx.recv());
                let Ok(Ok(job)) = job else { return };
                if done_tx.send(job.execute(source, run, now)).is_err() {
                    return;
                }
            });
        }
        drop(done_tx);
        let mut input = Input::Tick;
        loop {
            let after_completion = matches!(input, Input::Done(_));
            let out = core.on(started.elapsed(), input, &index);
            for event in out.events {
                index.apply(event);
            }
            for job in out.jobs {
                let _ = job_tx.send(job);
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
        drop(job_tx);
    });
    index
}
