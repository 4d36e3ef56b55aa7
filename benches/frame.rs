//! Frame render time: the whole dashboard drawn to an in-memory terminal,
//! at 10^5 and 10^6 tasks, 80x24 and 200x60.
//!
//! cargo bench --bench frame

mod common;

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use leaseq::paths::{RunDir, UiConfig};
use leaseq::ui::app::App;
use leaseq::ui::draw::draw;
use leaseq::ui::theme::Theme;
use ratatui::backend::TestBackend;
use ratatui::Terminal;

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    let theme = Theme { no_color: false };
    for tasks in common::sizes(&[100_000, 1_000_000]) {
        let index = Arc::new(common::hydrated_index(tasks));
        for (w, h) in [(80u16, 24u16), (200, 60)] {
            let mut app = App::new(UiConfig::default(), Arc::new(leaseq::index::Index::new(60)));
            app.open_lease("99887766".into(), RunDir("/bench".into()));
            app.on_snapshot(index.clone());
            app.now = 1_736_100_000;
            let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("terminal");
            // Put the cursor in the middle of the history.
            for _ in 0..3 {
                app.on_key(KeyEvent::new(KeyCode::PageDown, KeyModifiers::NONE));
            }
            group.bench_function(format!("draw/{w}x{h}/{tasks}"), |b| {
                b.iter(|| terminal.draw(|f| draw(f, &mut app, &theme)).map(|_| ()).expect("draw"))
            });
            group.bench_function(format!("key_j_and_draw/{w}x{h}/{tasks}"), |b| {
                b.iter(|| {
                    app.on_key(KeyEvent::new(KeyCode::Char('j'), KeyModifiers::NONE));
                    terminal.draw(|f| draw(f, &mut app, &theme)).map(|_| ()).expect("draw")
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, frames);
criterion_main!(benches);
