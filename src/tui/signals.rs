//! Signals and suspension for the dashboard: every catchable signal that
//! would end the process ends the pump instead (so the terminal is
//! restored first), with a watchdog for a pump that cannot get to it;
//! Ctrl-Z suspends as a full-screen program should.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crossterm::event::KeyEventKind;
use ratatui::DefaultTerminal;

use super::PUMP_ENDED;

/// Every signal whose default is to end the process and that can be
/// caught ends the pump normally instead, so the terminal is restored
/// first (Ctrl-C in raw mode arrives as a key instead). SIGTSTP (a `kill
/// -TSTP`, or Ctrl-Z where the terminal still sends it) suspends properly.
/// SIGKILL cannot be caught: after one, `reset` gives the terminal back.
fn ending_signals() -> Vec<i32> {
    let mut signals = vec![
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGPWR,
        libc::SIGIO,
        libc::SIGSYS,
    ];
    // Real-time signals end a process by default too (`kill -RTMIN`).
    signals.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    signals
}

/// How long the pump has to act on an ending signal before the signal
/// thread restores the terminal and exits itself (a pump stuck in a write
/// to a blocked terminal must not make the dashboard unkillable).
const SIGNAL_GRACE: Duration = Duration::from_secs(3);

pub(super) fn signal_channel() -> Result<async_channel::Receiver<i32>, String> {
    let (tx, rx) = async_channel::bounded(4);
    let mut watched = ending_signals();
    watched.push(libc::SIGTSTP);
    let mut signals = signal_hook::iterator::Signals::new(watched).map_err(|e| format!("signals: {e}"))?;
    std::thread::Builder::new()
        .name("leaseq-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                let _ = tx.try_send(signal);
                if signal != libc::SIGTSTP {
                    let tx = tx.clone();
                    let _ = std::thread::Builder::new().name("leaseq-signal-grace".into()).spawn(move || {
                        std::thread::sleep(SIGNAL_GRACE);
                        drop(tx);
                        if PUMP_ENDED.load(Ordering::SeqCst) {
                            return; // it did: the exit path is under way
                        }
                        ratatui::restore();
                        crate::slurm::kill_running_commands();
                        std::process::exit(128 + signal);
                    });
                }
            }
        })
        .map_err(|e| format!("signals: {e}"))?;
    Ok(rx)
}

pub(super) struct KillCommandsOnExit;

impl Drop for KillCommandsOnExit {
    fn drop(&mut self) {
        crate::slurm::kill_running_commands();
    }
}

/// Ctrl-Z: in raw mode the terminal sends it as a key, not as SIGTSTP.
pub(super) fn is_suspend_key(key: &crossterm::event::KeyEvent) -> bool {
    key.kind == KeyEventKind::Press
        && key.code == crossterm::event::KeyCode::Char('z')
        && key.modifiers.contains(crossterm::event::KeyModifiers::CONTROL)
}

/// Suspends as a full-screen program should: gives the terminal back
/// (cooked mode, main screen, cursor shown), stops this process as the
/// shell's job control expects, and when continued (`fg`) takes the
/// terminal again and redraws everything.
pub(super) fn suspend(terminal: &mut DefaultTerminal) -> Result<(), String> {
    ratatui::restore();
    // SIGTSTP with its default action, not SIGSTOP: in a process group no
    // shell controls (`tmux new leaseq`, `exec leaseq`) the kernel discards
    // it instead of stopping a dashboard nobody could continue. Returns once
    // continued (SIGCONT), or at once when discarded.
    let _ = signal_hook::low_level::emulate_default_handler(libc::SIGTSTP);
    crossterm::terminal::enable_raw_mode().map_err(|e| format!("taking the terminal back: {e}"))?;
    crossterm::execute!(
        std::io::stdout(),
        crossterm::terminal::EnterAlternateScreen,
        crossterm::cursor::Hide
    )
    .map_err(|e| format!("taking the terminal back: {e}"))?;
    terminal.clear().map_err(|e| format!("redrawing: {e}"))
}
