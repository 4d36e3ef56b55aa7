//! The dashboard's own measurements, off the pump: the latency trace
//! (`LEASEQ_TRACE_FILE`) and the stall watchdog (`LEASEQ_STALL_MS`). The
//! pump only stamps times and hands lines to a channel; threads here do
//! the writing, so no file I/O ever runs on the pump.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::ui::app::App;

/// Optional measurements, on when `LEASEQ_TRACE_FILE` names a file: the
/// time from process start to the first frame with task rows, and for each
/// key the time until its frame was flushed.
pub(super) struct Trace {
    /// Lines for the writer thread; None when tracing is off.
    lines: Option<std::sync::mpsc::Sender<String>>,
    started: Instant,
    first_rows_seen: std::sync::atomic::AtomicBool,
    ingested_seen: std::sync::atomic::AtomicBool,
}

impl Trace {
    pub(super) fn from_env(started: Instant) -> Trace {
        let lines = std::env::var_os("LEASEQ_TRACE_FILE").and_then(|path| {
            let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).ok()?;
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            std::thread::Builder::new()
                .name("leaseq-trace".into())
                .spawn(move || {
                    for line in rx {
                        let _ = writeln!(file, "{line}");
                    }
                })
                .ok()?;
            Some(tx)
        });
        let (first_rows_seen, ingested_seen) = Default::default();
        Trace { lines, started, first_rows_seen, ingested_seen }
    }

    fn write(&self, line: String) {
        if let Some(lines) = &self.lines {
            let _ = lines.send(line);
        }
    }

    pub(super) fn frame(&self, app: &App, key_at: Option<Instant>) {
        if self.lines.is_none() {
            return;
        }
        if !app.tasks.last_window.is_empty() && !self.first_rows_seen.swap(true, Ordering::Relaxed) {
            let tasks = app.snapshot.task_count();
            self.write(format!(
                "first_rows_ms {:.3} tasks {tasks}",
                self.started.elapsed().as_secs_f64() * 1e3
            ));
        }
        if app.snapshot.is_complete() && !self.ingested_seen.swap(true, Ordering::Relaxed) {
            self.write(format!(
                "ingested_ms {:.3} tasks {} opens {} details_held {} let_go {}",
                self.started.elapsed().as_secs_f64() * 1e3,
                app.snapshot.task_count(),
                crate::runfs::opens(),
                app.snapshot.details_held(),
                app.snapshot.details_let_go()
            ));
        }
        if let Some(at) = key_at {
            let ingested = app.snapshot.task_count();
            self.write(format!("key_ms {:.3} tasks {ingested}", at.elapsed().as_secs_f64() * 1e3));
        }
    }
}

/// A stall watchdog, on when `LEASEQ_STALL_MS` is set: a thread checks
/// that the pump never stays busy (between waking and waiting again)
/// longer than that; stalls are appended to `LEASEQ_STALL_LOG` (default
/// `leaseq-stalls.log` in the temp dir).
pub(super) struct Watchdog {
    busy_since_ms: Option<Arc<AtomicU64>>,
    epoch: Instant,
}

impl Watchdog {
    pub(super) fn from_env() -> Watchdog {
        let epoch = Instant::now();
        let Some(limit) = std::env::var("LEASEQ_STALL_MS").ok().and_then(|v| v.parse::<u64>().ok()) else {
            return Watchdog { busy_since_ms: None, epoch };
        };
        let log = std::env::var_os("LEASEQ_STALL_LOG")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::env::temp_dir().join("leaseq-stalls.log"));
        let busy = Arc::new(AtomicU64::new(0));
        let watched = busy.clone();
        let _ = std::thread::Builder::new().name("leaseq-watchdog".into()).spawn(move || {
            let mut reported = 0;
            loop {
                std::thread::sleep(Duration::from_millis((limit / 4).max(1)));
                let since = watched.load(Ordering::Relaxed);
                let now = epoch.elapsed().as_millis() as u64;
                if since != 0 && since != reported && now.saturating_sub(since) > limit {
                    reported = since;
                    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&log) {
                        let _ = writeln!(f, "stall: pump busy for more than {limit} ms (at {since} ms)");
                    }
                }
            }
        });
        Watchdog { busy_since_ms: Some(busy), epoch }
    }

    pub(super) fn busy(&self) {
        if let Some(busy) = &self.busy_since_ms {
            busy.store((self.epoch.elapsed().as_millis() as u64).max(1), Ordering::Relaxed);
        }
    }

    pub(super) fn idle(&self) {
        if let Some(busy) = &self.busy_since_ms {
            busy.store(0, Ordering::Relaxed);
        }
    }
}
