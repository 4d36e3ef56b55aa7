//! A fixed number of threads for blocking filesystem work.
//!
//! `smol::unblock` grows its pool to hundreds of threads; on a hung NFS
//! mount every new request would then park one more thread forever. Here
//! a service gets at most `threads` of them: work beyond that waits in a
//! queue, and queued work of a kind is replaced by work of the same kind
//! and a newer generation (a newer page, a newer details load) before it
//! ever runs.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

type Work = Box<dyn FnOnce() + Send>;

/// What a piece of work is, for replacing it: its kind and generation.
/// Work waiting in the queue is dropped when work of its kind and the
/// same or a newer generation arrives; work that arrives older than what
/// waits is dropped itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobKey {
    pub kind: &'static str,
    pub generation: u64,
}

impl JobKey {
    pub fn new(kind: &'static str, generation: u64) -> Option<JobKey> {
        Some(JobKey { kind, generation })
    }
}

struct Queued {
    key: Option<JobKey>,
    work: Work,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    idle: usize,
    threads: usize,
    closed: bool,
}

struct Inner {
    name: String,
    cap: usize,
    behind: Behind,
    state: Mutex<State>,
    ready: Condvar,
}

/// Cloning shares the pool.
#[derive(Clone)]
pub struct IoPool {
    inner: Arc<Inner>,
}

impl IoPool {
    /// Threads are started as work needs them, up to `cap`, behind the
    /// fold: for work that feeds the history in.
    pub fn new(name: &str, cap: usize) -> IoPool {
        IoPool::running_behind(name, cap, Behind::Fold)
    }

    /// As [`new`](Self::new), with threads as far behind as `behind`: work
    /// a user waits on (a log, a Slurm command, the cache's facts for the
    /// fold) runs level with the fold, ahead of the history's listers.
    pub fn running_behind(name: &str, cap: usize, behind: Behind) -> IoPool {
        let inner = Inner {
            name: name.to_string(),
            cap: cap.max(1),
            behind,
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
        };
        IoPool { inner: Arc::new(inner) }
    }

    pub fn cap(&self) -> usize {
        self.inner.cap
    }

    /// Threads started so far (never more than the cap).
    pub fn threads(&self) -> usize {
        self.state().threads
    }

    pub fn queued(&self) -> usize {
        self.state().queue.len()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `work` on a pool thread. With a `key`, only the newest work of
    /// its kind waits in the queue (see [`JobKey`]).
    pub fn execute(&self, key: Option<JobKey>, work: impl FnOnce() + Send + 'static) {
        let mut state = self.state();
        if state.closed {
            return;
        }
        if let Some(key) = &key {
            let same_kind = |queued: &Queued| queued.key.as_ref().is_some_and(|k| k.kind == key.kind);
            if state
                .queue
                .iter()
                .any(|q| same_kind(q) && q.key.as_ref().is_some_and(|k| k.generation > key.generation))
            {
                return;
            }
            state.queue.retain(|queued| !same_kind(queued));
        }
        state.queue.push_back(Queued { key, work: Box::new(work) });
        if state.idle == 0 && state.threads < self.inner.cap {
            state.threads += 1;
            let inner = self.inner.clone();
            let spawned = std::thread::Builder::new().name(inner.name.clone()).spawn(move || {
                run_behind(inner.behind);
                worker(&inner)
            });
            if spawned.is_err() {
                state.threads -= 1;
            }
        }
        drop(state);
        self.inner.ready.notify_one();
    }

    /// Runs `work` on a pool thread and waits for its value without
    /// blocking the executor; `None` if newer work of the same key
    /// replaced it before it started, or the pool closed.
    pub async fn run<T: Send + 'static>(
        &self,
        key: Option<JobKey>,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = async_channel::bounded(1);
        self.execute(key, move || {
            let _ = tx.try_send(work());
        });
        rx.recv().await.ok()
    }
}

/// Held by the pool's owner: dropping it closes the pool (idle threads
/// end, queued work is dropped; a hung call ends its thread when it
/// returns, if ever).
pub struct PoolGuard(pub IoPool);

impl Drop for PoolGuard {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.closed = true;
        state.queue.clear();
        drop(state);
        self.0.inner.ready.notify_all();
    }
}

fn worker(inner: &Inner) {
    loop {
        let work = {
            let mut state = inner.state.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(queued) = state.queue.pop_front() {
                    break queued.work;
                }
                if state.closed {
                    state.threads -= 1;
                    return;
                }
                state.idle += 1;
                state = inner.ready.wait(state).unwrap_or_else(|p| p.into_inner());
                state.idle -= 1;
            }
        };
        // A panic in one piece of work must not take the thread's slot.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    }
}

/// How far behind the dashboard's pump a background thread runs (Linux
/// applies `setpriority` with a thread id to that thread only). Every
/// thread that lists, reads, parses or folds takes one, so on a busy
/// 2-core login node a key press still gets a core within the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behind {
    /// Nice +10: the fold, the engine's driver, the cache's jobs (the
    /// fold's feeder, and what the screen fetches back), and what a user
    /// asked for (logs, Slurm commands).
    Pump,
    /// Nice +15, behind the fold too: listers, readers and cleanup. The
    /// fold is the one consumer of everything they produce; run level with
    /// them it got about half a core, a launch waited on it, and what they
    /// read piled up in memory before it was folded.
    Fold,
}

/// The calling thread's id, which `setpriority` and `getpriority` take to
/// mean that thread alone.
fn own_tid() -> libc::id_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::syscall(libc::SYS_gettid) as libc::id_t }
}

/// Lowers the calling thread's priority to `behind`. Best effort: a
/// failure leaves the thread as it was.
pub fn run_behind(behind: Behind) {
    let nice: libc::c_int = match behind {
        Behind::Pump => 10,
        Behind::Fold => 15,
    };
    // SAFETY: setpriority only reads its arguments and fails cleanly for
    // a bad id.
    unsafe {
        let _ = libc::setpriority(libc::PRIO_PROCESS, own_tid(), nice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The calling thread's nice value.
    fn own_nice() -> i32 {
        // SAFETY: getpriority only reads its arguments.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, own_tid()) }
    }

    #[test]
    fn listers_run_behind_the_fold_and_the_fold_behind_the_pump() {
        let before = std::thread::spawn(own_nice).join().unwrap();
        let nice_in = |pool: IoPool| {
            let guard = PoolGuard(pool.clone());
            let (tx, rx) = std::sync::mpsc::channel();
            pool.execute(None, move || {
                let _ = tx.send(own_nice());
            });
            let nice = rx.recv_timeout(Duration::from_secs(10)).expect("the work ran");
            drop(guard);
            nice
        };
        // Niceness only rises without privileges: a test run already
        // niced past these levels keeps its own.
        let fold = nice_in(IoPool::running_behind("test-fold", 1, Behind::Pump));
        let listers = nice_in(IoPool::new("test-listers", 1));
        assert_eq!(fold, before.max(10), "the fold's level");
        assert_eq!(listers, before.max(15), "the listers' level");
        assert_eq!(own_nice(), before, "the caller's own priority is left alone");
    }

    #[test]
    fn hung_work_never_takes_more_than_the_cap_and_newer_work_replaces_queued_work() {
        let pool = IoPool::new("test-pool", 2);
        let guard = PoolGuard(pool.clone());
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Arc::new(Mutex::new(release_rx));
        for _ in 0..2 {
            let rx = release_rx.clone();
            pool.execute(None, move || {
                let _ = rx.lock().unwrap().recv();
            });
        }
        let ran = Arc::new(Mutex::new(Vec::new()));
        for i in 0..50 {
            let ran = ran.clone();
            pool.execute(JobKey::new("page", i), move || ran.lock().unwrap().push(i));
        }
        // Older than what waits: dropped.
        pool.execute(JobKey::new("page", 3), || panic!("an older page never runs"));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(pool.threads(), 2, "two hung calls, fifty more requests: still two threads");
        assert_eq!(pool.queued(), 1, "only the newest of the keyed requests waits");
        release_tx.send(()).unwrap();
        release_tx.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while ran.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(*ran.lock().unwrap(), vec![49]);
        assert_eq!(pool.queued(), 0);
        drop(guard);
    }

    #[test]
    fn a_panicking_job_keeps_its_thread() {
        let pool = IoPool::new("test-pool", 1);
        pool.execute(None, || panic!("boom"));
        let value = smol::block_on(pool.run(None, || 7));
        assert_eq!(value, Some(7));
        assert_eq!(pool.threads(), 1);
    }
}
