//! `leaseq tui`: the terminal, the pump, and the wiring between the UI
//! state ([`crate::ui::app::App`]), the engine and the background.
//!
//! The pump waits on five sources (keys, snapshots, background replies,
//! signals, a 1 s tick) and never on I/O: requests go out over channels
//! that never block, results come back as data. It draws only when
//! something changed. The terminal is restored on exit, panic and signals.

use crate::clock::unix_now;
use std::io::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{Event as TermEvent, EventStream, KeyEventKind};
use futures_lite::{FutureExt, StreamExt};
use ratatui::DefaultTerminal;
use smol::Timer;

use crate::background::Background;
use crate::cache::CacheUse;
use crate::engine::{Control, Engine, EngineConfig, SnapshotSlot};
use crate::index::{Index, TaskId};
use crate::paths::{Roots, RunDir, UiConfig};
use crate::scan::RunFs;
use crate::ui::app::{App, LeaseFilter};
use crate::ui::draw::draw;
use crate::ui::messages::{Reply, Request};
use crate::ui::theme::Theme;

mod signals;
mod trace;

use signals::{is_suspend_key, signal_channel, suspend, KillCommandsOnExit};
use trace::{Trace, Watchdog};

/// Which lease to open at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenChoice {
    Lease(String),
    Local,
    /// The registry's default lease, else the lease list.
    Default,
    /// The lease list, filtered to Slurm leases.
    SlurmList,
}

pub struct TuiOptions {
    pub roots: Roots,
    pub open: OpenChoice,
    pub max_tasks: Option<usize>,
    pub source: Arc<dyn RunFs>,
    pub config: UiConfig,
    /// Problems found before the dashboard opened (a malformed config):
    /// shown in it, since stderr is hidden until it exits.
    pub notices: Vec<String>,
    /// When the process started (for the launch-to-first-rows figure).
    pub started: Instant,
    /// The environment the warm-start cache is found from; `None`: no cache.
    pub cache: Option<crate::paths::Env>,
}

/// A filesystem call of the engine running this long is shown as stuck.
const STUCK_AFTER: Duration = Duration::from_secs(5);

/// With no key pressed for this long, a snapshot alone is drawn at the
/// next tick rather than at once, and the ticks come every `ui.refresh_s`
/// (2 s) instead of every second: an idle dashboard then draws once per
/// refresh, not once more per heartbeat read or second of the clock, and a
/// long ingest gives the pump's core back to the fold. A frame after a
/// pause costs far more than one after another: its memory has gone cold
/// (`cargo bench --bench frame_after_pause`). Keys are always drawn at once.
const QUIET_AFTER: Duration = Duration::from_secs(3);

/// Ticks while keys are being pressed: ages and the clock move by seconds.
const BUSY_TICK: Duration = Duration::from_secs(1);

/// Typing must pause this long before a search starts on its own.
const SEARCH_DEBOUNCE: Duration = Duration::from_millis(200);

/// Set by the panic hook: a panic on any thread (the hook has already
/// restored the terminal) ends the pump at its next wake.
static PANICKED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Set when the pump has returned (the terminal is being restored).
static PUMP_ENDED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Runs the dashboard until `q`; `Ok(Some(signal))` when a signal ended it
/// (the terminal is restored either way; the caller exits 128+signal).
pub fn run(options: TuiOptions) -> Result<Option<i32>, String> {
    let signals = signal_channel()?;
    let mut terminal = ratatui::try_init().map_err(|e| format!("cannot open the terminal: {e}"))?;
    let restore_and_report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        restore_and_report(info);
    }));
    // Slurm commands end with the dashboard, on every way out (a panic
    // on this thread unwinds through the guard too).
    let _reap = KillCommandsOnExit;
    let result = smol::block_on(pump(&mut terminal, options, signals));
    PUMP_ENDED.store(true, Ordering::SeqCst);
    ratatui::restore();
    result
}

enum Wake {
    Input(Option<std::io::Result<TermEvent>>),
    Reply(Box<Reply>),
    Snapshot(Arc<Index>),
    Signal(i32),
    Tick,
    Debounce,
}

async fn pump(
    terminal: &mut DefaultTerminal,
    options: TuiOptions,
    signals: async_channel::Receiver<i32>,
) -> Result<Option<i32>, String> {
    let config = options.config.clone();
    let theme = Theme::from_env_value(std::env::var("NO_COLOR").ok().as_deref());
    let trace = Trace::from_env(options.started);
    let watchdog = Watchdog::from_env();
    let (reply_tx, replies) = async_channel::unbounded();
    let background =
        Background::start(options.roots.clone(), config.clone(), options.source.clone(), reply_tx);
    let mut app = App::new(config.clone(), Arc::new(Index::new(config.hb_stale_s)));
    for notice in &options.notices {
        app.say(notice.clone(), crate::ui::app::Level::Error);
    }
    let mut engine: Option<(Engine, SnapshotSlot)> = None;
    let mut pending = match &options.open {
        OpenChoice::Lease(id) => match options.roots.run_dir(id) {
            Some(dir) => app.open_lease(id.clone(), RunDir(dir)),
            None => Vec::new(), // refused before the dashboard opens
        },
        OpenChoice::Local => {
            let id = options.roots.local_lease_id();
            match options.roots.run_dir(&id) {
                Some(dir) => app.open_lease(id.clone(), RunDir(dir)),
                None => Vec::new(),
            }
        }
        OpenChoice::Default => {
            app.open_default_when_listed = true;
            Vec::new()
        }
        OpenChoice::SlurmList => {
            app.lease_filter = LeaseFilter::Slurm;
            Vec::new()
        }
    };
    let mut events = EventStream::new();
    let mut seen_revision = u64::MAX;
    let mut dirty = true;
    let mut hinted: Vec<TaskId> = Vec::new();
    let mut search_deadline: Option<Instant> = None;
    let mut search_edits = 0u64;
    let mut key_at: Option<Instant> = None;
    let mut next_tick = Instant::now();
    let mut ended_by = None;
    // The launch counts as a key: the first screens come at once.
    let mut last_key = Instant::now();
    let mut held_back = false;
    let quiet_tick = Duration::from_secs(config.refresh_s.max(1));
    loop {
        for request in pending.drain(..) {
            dispatch(request, &mut engine, &background, &options, &config);
        }
        if dirty {
            terminal.draw(|frame| draw(frame, &mut app, &theme)).map_err(|e| format!("drawing: {e}"))?;
            dirty = false;
            trace.frame(&app, key_at.take());
            if let Some(text) = app.clipboard.take() {
                copy_osc52(&text);
            }
            let visible = app.tasks.last_window.clone();
            if visible != hinted {
                if let Some((engine, _)) = &engine {
                    engine.send(Control::Visible(visible.clone()));
                }
                hinted = visible;
            }
        }
        if app.quit {
            break;
        }
        watchdog.idle();
        let slot = engine.as_ref().map(|e| &e.1);
        let wake =
            next_wake(&mut events, &replies, &signals, slot, seen_revision, next_tick, search_deadline).await;
        watchdog.busy();
        if PANICKED.load(Ordering::SeqCst) {
            return Err(
                "a background thread panicked (its message is above); the terminal was restored".into()
            );
        }
        match wake {
            Wake::Input(Some(Ok(TermEvent::Key(key)))) if is_suspend_key(&key) => {
                suspend(terminal)?;
                dirty = true;
            }
            Wake::Input(Some(Ok(TermEvent::Key(key)))) if key.kind != KeyEventKind::Release => {
                key_at = Some(Instant::now());
                last_key = Instant::now();
                held_back = false; // drawn below with the key
                pending = app.on_key(key);
                if let Some(input) = &app.search_input {
                    if input.edited_at_ms != search_edits {
                        search_edits = input.edited_at_ms;
                        search_deadline = Some(Instant::now() + SEARCH_DEBOUNCE);
                    }
                } else {
                    search_deadline = None;
                    search_edits = 0;
                }
                dirty = true;
            }
            Wake::Input(Some(Ok(TermEvent::Resize(..)))) => dirty = true,
            Wake::Input(Some(Ok(_))) => {}
            Wake::Input(Some(Err(e))) => match signals.try_recv() {
                // A hangup closes the terminal as it signals: its exit
                // status is the signal's, not a read error's.
                Ok(signal) => {
                    ended_by = Some(signal);
                    break;
                }
                Err(_) => return Err(format!("reading the terminal: {e}")),
            },
            Wake::Input(None) => break,
            Wake::Reply(reply) => {
                pending = app.on_reply(*reply);
                while let Ok(reply) = replies.try_recv() {
                    pending.extend(app.on_reply(reply));
                }
                dirty = true;
            }
            Wake::Snapshot(snapshot) => {
                seen_revision = snapshot.revision();
                let first_rows = app.snapshot.task_count() == 0;
                // The moment the counts are whole is shown at once, not
                // at the next quiet tick.
                let completed = snapshot.is_complete() && !app.snapshot.is_complete();
                let old = app.snapshot.clone();
                pending = app.on_snapshot(snapshot);
                // Last owner of what the fold copied since: not freed here.
                crate::alloc::drop_elsewhere(old);
                if !app.paused {
                    let now = first_rows || completed || last_key.elapsed() < QUIET_AFTER;
                    dirty |= now;
                    held_back |= !now;
                }
            }
            Wake::Signal(libc::SIGTSTP) => {
                suspend(terminal)?;
                dirty = true;
            }
            Wake::Signal(signal) => {
                ended_by = Some(signal);
                break;
            }
            Wake::Tick => {
                let quiet = last_key.elapsed() >= QUIET_AFTER;
                let every = if quiet { quiet_tick } else { BUSY_TICK };
                next_tick = Instant::now() + every;
                dirty |= app.tick(unix_now()) | std::mem::take(&mut held_back);
                let stuck = engine.as_ref().and_then(|(_, slot)| slot.stuck(STUCK_AFTER));
                if stuck != app.fs_stuck {
                    app.fs_stuck = stuck;
                    dirty = true;
                }
            }
            Wake::Debounce => {
                search_deadline = None;
                pending = app.debounced_search();
                dirty = true;
            }
        }
        if pending.iter().any(|r| matches!(r, Request::OpenLease { .. })) {
            // A new engine publishes from revision 0 again.
            seen_revision = u64::MAX;
        }
    }
    drop(engine);
    Ok(ended_by)
}

#[allow(clippy::too_many_arguments)]
async fn next_wake(
    events: &mut EventStream,
    replies: &async_channel::Receiver<Reply>,
    signals: &async_channel::Receiver<i32>,
    slot: Option<&SnapshotSlot>,
    seen_revision: u64,
    next_tick: Instant,
    search_deadline: Option<Instant>,
) -> Wake {
    // Keys first: `or` polls its first arm first, so input never waits
    // behind a stream of snapshots.
    let input = async { Wake::Input(events.next().await) };
    let reply = async {
        match replies.recv().await {
            Ok(reply) => Wake::Reply(Box::new(reply)),
            Err(_) => std::future::pending().await,
        }
    };
    let snapshot = async {
        match slot {
            Some(slot) => Wake::Snapshot(slot.newer_than(seen_revision).await),
            None => std::future::pending().await,
        }
    };
    let signal = async {
        match signals.recv().await {
            Ok(signal) => Wake::Signal(signal),
            Err(_) => std::future::pending().await,
        }
    };
    let tick = async {
        Timer::at(next_tick).await;
        Wake::Tick
    };
    let debounce = async {
        match search_deadline {
            Some(at) => {
                Timer::at(at).await;
                Wake::Debounce
            }
            None => std::future::pending().await,
        }
    };
    input.or(signal).or(reply).or(snapshot).or(debounce).or(tick).await
}

fn dispatch(
    request: Request,
    engine: &mut Option<(Engine, SnapshotSlot)>,
    background: &Background,
    options: &TuiOptions,
    config: &UiConfig,
) {
    match request {
        Request::OpenLease { id, run_dir } => {
            // Dropping the old engine stops its threads without waiting.
            *engine = None;
            let cache = match &options.cache {
                Some(env) => CacheUse::For { env: env.clone(), lease_id: id },
                None => CacheUse::Off,
            };
            let max_tasks = options.max_tasks.unwrap_or(config.max_tasks_display).max(1);
            let config = EngineConfig::new(run_dir, config.clone(), options.source.clone())
                .with_cache(cache)
                .with_details_limit(max_tasks);
            let started = Engine::start(config);
            let slot = started.snapshots();
            *engine = Some((started, slot));
        }
        Request::Engine(control) => {
            if let Some((engine, _)) = engine {
                engine.send(control);
            }
        }
        Request::Search { generation, snapshot, view, query, .. } => {
            let cache = engine.as_ref().and_then(|(_, slot)| slot.cache());
            background.send(Request::Search { generation, snapshot, view, query, cache });
        }
        other => background.send(other),
    }
}

/// OSC 52: the terminal (local, or across SSH) puts the text on the
/// clipboard. Written on the terminal's own output, like a frame.
fn copy_osc52(text: &str) {
    let mut out = std::io::stdout();
    let _ = write!(out, "\x1b]52;c;{}\x07", base64(text.as_bytes()));
    let _ = out.flush();
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64("T014 é".as_bytes()), "VDAxNCDDqQ==");
    }
}
