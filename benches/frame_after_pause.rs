//! A frame drawn after the dashboard sat idle: what the first key after a
//! pause, or the once-a-second redraw of an idle dashboard, costs. The
//! criterion bench (`--bench frame`) draws frame after frame, with every
//! cache line it touches still in the CPU's caches; after a pause they are
//! not, and on a shared or virtual machine a frame pays for each one.
//!
//! cargo bench --bench frame_after_pause   (LEASEQ_BENCH_SIZES=100000 for
//! one size; LEASEQ_PAUSE_MS=1000 sets the pause)

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use leaseq::paths::{RunDir, UiConfig};
use leaseq::ui::app::App;
use leaseq::ui::draw::draw;
use leaseq::ui::theme::Theme;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const FRAMES: usize = 15;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let pause = Duration::from_millis(
        std::env::var("LEASEQ_PAUSE_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(1000),
    );
    let theme = Theme { no_color: false };
    for tasks in common::sizes(&[100_000, 1_000_000]) {
        let index = Arc::new(common::hydrated_index(tasks));
        let mut app = App::new(UiConfig::default(), Arc::new(leaseq::index::Index::new(60)));
        app.open_lease("99887766".into(), RunDir("/bench".into()));
        app.on_snapshot(index.clone());
        app.now = 1_736_100_000;
        let mut terminal = Terminal::new(TestBackend::new(200, 50)).expect("terminal");
        for _ in 0..3 {
            app.on_key(KeyEvent::new(KeyCode::PageDown, KeyModifiers::NONE));
        }
        let mut frame = |app: &mut App| {
            let started = Instant::now();
            terminal.draw(|f| draw(f, app, &theme)).expect("draw");
            started.elapsed().as_secs_f64() * 1e3
        };
        let mut warm: Vec<f64> = (0..FRAMES).map(|_| frame(&mut app)).collect();
        let mut paused: Vec<f64> = (0..FRAMES)
            .map(|_| {
                std::thread::sleep(pause);
                app.now += 1;
                frame(&mut app)
            })
            .collect();
        let mut key: Vec<f64> = (0..FRAMES)
            .map(|_| {
                std::thread::sleep(pause);
                let started = Instant::now();
                app.on_key(KeyEvent::new(KeyCode::Char('j'), KeyModifiers::NONE));
                started.elapsed().as_secs_f64() * 1e3 + frame(&mut app)
            })
            .collect();
        let summary = |ms: &mut Vec<f64>| {
            ms.sort_by(f64::total_cmp);
            format!("median {:.2} ms max {:.2} ms", common::percentile(ms, 0.5), ms[ms.len() - 1])
        };
        println!(
            "frame_after_pause/{tasks} 200x50: back to back {}; after {} ms idle {}; key j and its frame after {} ms idle {}",
            summary(&mut warm),
            pause.as_millis(),
            summary(&mut paused),
            pause.as_millis(),
            summary(&mut key),
        );
    }
}
