//! Headless tests: every screen and modal rendered to a `TestBackend`, and
//! keys as pure state transitions.

use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

use super::app::{App, Modal, Pane, Screen};
use super::draw::draw;
use super::messages::{Action, LeaseRow, LogStreams, Reply, Request, SearchQuery, TaskDetails};
use super::theme::Theme;
use crate::engine::Control;
use crate::index::{
    DirOutcome, Event, HeartbeatRound, Index, ResultSummary, Round, SpecSummary, StateSet, TaskState,
};
use crate::logs::{LogUpdate, Stream};
use crate::model::{Heartbeat, ResultKind};
use crate::paths::{QueueDir, RunDir, UiConfig};

const NOW: i64 = 1_736_100_000;

fn name(node: usize, seq: u32) -> String {
    format!("{seq:06}_T{node}{seq:03}_00000000-0000-4000-8000-{seq:012}")
}

fn round(node: &str, dirs: Vec<(QueueDir, Vec<String>)>) -> Event {
    Event::Round(Round {
        node: node.into(),
        dirs: dirs
            .into_iter()
            .map(|(d, mut added)| {
                added.sort();
                (d, DirOutcome::changed(added, vec![]))
            })
            .collect(),
    })
}

fn beat(node: &str, ts: i64) -> (Arc<str>, Result<Heartbeat, String>) {
    let hb = Heartbeat {
        node: node.into(),
        ts,
        running_task_id: None,
        pending_estimate: 0,
        runner_pid: 7,
        version: "0.2.0".into(),
        running_task_ids: Vec::new(),
        paused: false,
        stopped: false,
    };
    (node.into(), Ok(hb))
}

/// Two nodes: nodeA healthy with running, pending, finished and failed
/// tasks; nodeB stale with a task that vanished from claimed (LOST?).
fn sample_index() -> Index {
    let mut index = Index::new(60);
    index.apply(Event::Tick(NOW));
    index.apply(Event::Heartbeats(HeartbeatRound {
        beats: vec![beat("nodeA", NOW - 2), beat("nodeB", NOW - 95)],
        dir_error: None,
    }));
    let spec = |n: usize, s: u32| format!("{}.json", name(n, s));
    let result = |n: usize, s: u32| format!("{}.result.json", name(n, s));
    index.apply(round(
        "nodeA",
        vec![
            (QueueDir::Inbox, vec![spec(0, 5), spec(0, 6)]),
            (QueueDir::Claimed, vec![spec(0, 4)]),
            (QueueDir::Done, vec![spec(0, 1), result(0, 1), spec(0, 2), result(0, 2)]),
        ],
    ));
    index.apply(round("nodeB", vec![(QueueDir::Claimed, vec![spec(1, 3)])]));
    // Task 3 vanishes from claimed/ with no result: LOST? after two rounds.
    index.apply(Event::Round(Round {
        node: "nodeB".into(),
        dirs: vec![(QueueDir::Claimed, DirOutcome::changed(vec![], vec![spec(1, 3)]))],
    }));
    index.apply(Event::Round(Round {
        node: "nodeB".into(),
        dirs: vec![(QueueDir::Claimed, DirOutcome::Unchanged)],
    }));
    for (seq, code) in [(1, 0), (2, 3)] {
        index.apply(Event::ResultRead {
            node: "nodeA".into(),
            name: name(0, seq).into(),
            kind: ResultKind::Ran,
            outcome: Ok(ResultSummary {
                started_at: NOW - 500,
                finished_at: NOW - 100,
                exit_code: code,
                runtime_s: 400.0,
                stdout: format!("logs/T0{seq:03}.out").into(),
                stderr: format!("logs/T0{seq:03}.err").into(),
                command: None,
                gpus_assigned: None,
                cwd: None,
                gpus_requested: None,
                error: None,
            }),
        });
    }
    for seq in [1, 2, 4, 5, 6] {
        index.apply(Event::SpecRead {
            node: "nodeA".into(),
            name: name(0, seq).into(),
            outcome: Ok(SpecSummary {
                created_at: NOW - 1000 + i64::from(seq),
                command: format!("python train.py --cfg cfgs/a{seq}.yaml — résumé ✓").into(),
                cwd: "/home/u/exp".into(),
                gpus: 1,
            }),
        });
    }
    index
}

fn lease_rows() -> Vec<LeaseRow> {
    let row = |id: &str, slurm: bool, state: &str| LeaseRow {
        id: id.into(),
        slurm,
        state: state.into(),
        capacity: if slurm { "nodes=4 gpn=8".into() } else { "gpus=8".into() },
        time_left: if slurm { "10:42".into() } else { String::new() },
        name: if slurm { "expA".into() } else { String::new() },
        reason: if state == "PENDING" { "Resources".into() } else { String::new() },
        is_default: !slurm,
        run_dir: RunDir(format!("/runs/{id}").into()),
        present: true,
    };
    vec![
        row("local:myhost", false, "RUNNING"),
        row("99887766", true, "RUNNING"),
        row("11223344", true, "PENDING"),
    ]
}

fn dashboard() -> App {
    let mut app = App::new(UiConfig::default(), Arc::new(Index::new(60)));
    app.now = NOW;
    app.on_reply(Reply::Leases { rows: lease_rows(), problems: vec![], slurm_error: None });
    let requests = app.open_lease("99887766".into(), RunDir("/runs/99887766".into()));
    assert!(requests.iter().any(|r| matches!(r, Request::OpenLease { .. })));
    app.on_snapshot(Arc::new(sample_index()));
    app
}

fn render(app: &mut App, width: u16, height: u16, theme: Theme) -> Terminal<TestBackend> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal.draw(|f| draw(f, app, &theme)).unwrap();
    terminal
}

fn text(terminal: &Terminal<TestBackend>) -> String {
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..buffer.area.height {
        for x in 0..buffer.area.width {
            out.push_str(buffer[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn color() -> Theme {
    Theme { no_color: false }
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn press(app: &mut App, codes: &[KeyCode]) -> Vec<Request> {
    codes.iter().flat_map(|c| app.on_key(key(*c))).collect()
}

#[test]
fn dashboard_at_80x24() {
    let mut app = dashboard();
    let terminal = render(&mut app, 80, 24, color());
    insta::assert_snapshot!("dashboard_80x24", terminal.backend());
    let screen = text(&terminal);
    assert!(screen.contains("⚠ LOST?"), "LOST? carries a warning mark");
    assert!(screen.contains("STALE hb=95s"), "stale nodes show their heartbeat age");
    assert!(screen.contains("of 6"), "exact totals");
    assert!(screen.contains("fs=ok") || screen.contains("fs=lagging"), "filesystem health");
    assert!(screen.contains("lease=99887766"));
}

#[test]
fn dashboard_on_a_large_screen() {
    let mut app = dashboard();
    let terminal = render(&mut app, 160, 48, color());
    insta::assert_snapshot!("dashboard_160x48", terminal.backend());
}

#[test]
fn lease_list_screen() {
    let mut app = App::new(UiConfig::default(), Arc::new(Index::new(60)));
    app.on_reply(Reply::Leases {
        rows: lease_rows(),
        problems: vec!["index.json: bad".into()],
        slurm_error: None,
    });
    assert_eq!(app.screen, Screen::LeaseList);
    let terminal = render(&mut app, 100, 12, color());
    insta::assert_snapshot!("lease_list", terminal.backend());
    let screen = text(&terminal);
    assert!(screen.contains("reason=Resources"));
    assert!(screen.contains("*default"));
}

#[test]
fn every_modal_renders() {
    let mut app = dashboard();
    app.on_key(key(KeyCode::Char('?')));
    insta::assert_snapshot!("help", render(&mut app, 100, 30, color()).backend());
    app.on_key(key(KeyCode::Esc));

    let requests = app.on_key(key(KeyCode::Enter));
    let Some(Request::LoadDetails { generation, task, .. }) = requests.first().cloned() else {
        panic!("Enter asks for details: {requests:?}")
    };
    let details = TaskDetails {
        env: vec![("WANDB_MODE".into(), "offline".into())],
        idempotency_key: "99887766-nodeA-1".into(),
        same_task_id: 1,
        ..TaskDetails::default()
    };
    app.on_reply(Reply::Details { generation, task, details: Ok(details) });
    app.on_key(key(KeyCode::Char('v')));
    let screen = text(&render(&mut app, 100, 30, color()));
    assert!(screen.contains("WANDB_MODE=offline"));
    assert!(screen.contains("share task id"), "duplicate task ids are warned about");
    insta::assert_snapshot!("details", render(&mut app, 100, 30, color()).backend());
    app.on_key(key(KeyCode::Esc));

    app.focus = Pane::Leases;
    app.on_key(key(KeyCode::Char('n')));
    insta::assert_snapshot!("lease_form", render(&mut app, 100, 30, color()).backend());
    app.on_key(key(KeyCode::Esc));

    app.on_key(key(KeyCode::Char('t')));
    assert_eq!(app.modal, Some(Modal::Activity));
    render(&mut app, 100, 30, color());
    app.on_key(key(KeyCode::Esc));

    app.focus = Pane::Nodes;
    app.on_key(key(KeyCode::Char('s')));
    let screen = text(&render(&mut app, 100, 30, color()));
    assert!(screen.contains("pid 7"), "{screen}");
}

#[test]
fn no_color_uses_modifiers_only() {
    let mut app = dashboard();
    let terminal = render(&mut app, 80, 24, Theme { no_color: true });
    let buffer = terminal.backend().buffer();
    for cell in buffer.content() {
        assert!(
            matches!(cell.fg, ratatui::style::Color::Reset)
                && matches!(cell.bg, ratatui::style::Color::Reset),
            "a coloured cell under NO_COLOR: {cell:?}"
        );
    }
}

#[test]
fn tab_cycles_focus_and_quick_filters_filter() {
    let mut app = dashboard();
    assert_eq!(app.focus, Pane::Tasks);
    press(&mut app, &[KeyCode::Tab]);
    assert_eq!(app.focus, Pane::Logs);
    press(&mut app, &[KeyCode::Tab]);
    assert_eq!(app.focus, Pane::Leases);
    app.on_key(KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT));
    assert_eq!(app.focus, Pane::Logs);
    app.focus = Pane::Tasks;
    press(&mut app, &[KeyCode::Char('3')]);
    assert_eq!(app.tasks.view.states, StateSet::of(&[TaskState::Failed]));
    assert_eq!(app.snapshot.view_total(&app.tasks.view), 1);
    press(&mut app, &[KeyCode::Char('5')]);
    let screen = text(&render(&mut app, 80, 24, color()));
    assert!(screen.contains("state:LOST"), "{screen}");
    assert!(screen.contains("1-1 of 1"));
    press(&mut app, &[KeyCode::Char('0')]);
    assert!(app.tasks.view.states.is_all());
}

#[test]
fn enter_on_a_node_filters_the_task_list() {
    let mut app = dashboard();
    app.focus = Pane::Nodes;
    press(&mut app, &[KeyCode::Char('j'), KeyCode::Enter]);
    assert_eq!(app.focus, Pane::Tasks);
    let node_b = app.snapshot.find_node("nodeB");
    assert_eq!(app.tasks.view.node, node_b);
    assert_eq!(app.snapshot.view_total(&app.tasks.view), 1);
}

#[test]
fn cancel_and_retry_confirm_then_act() {
    let mut app = dashboard();
    press(&mut app, &[KeyCode::Char('2')]); // running
    render(&mut app, 80, 24, color());
    assert!(press(&mut app, &[KeyCode::Char('X')]).is_empty());
    assert!(matches!(app.modal, Some(Modal::Confirm { .. })));
    let requests = press(&mut app, &[KeyCode::Char('y')]);
    assert!(
        matches!(&requests[..], [Request::Act(Action::CancelTask { task_id, node, .. })] if task_id == "T0004" && node == "nodeA"),
        "{requests:?}"
    );
    press(&mut app, &[KeyCode::Char('R')]);
    assert!(press(&mut app, &[KeyCode::Char('n')]).is_empty(), "n declines");
    assert!(app.modal.is_none());
}

#[test]
fn follow_keys_request_logs_and_replies_fill_the_pane() {
    let mut app = dashboard();
    press(&mut app, &[KeyCode::Char('2')]);
    render(&mut app, 80, 24, color());
    let requests = press(&mut app, &[KeyCode::Char('F')]);
    let Some(Request::Follow { generation, stdout, streams, .. }) = requests.first().cloned() else {
        panic!("{requests:?}")
    };
    assert_eq!(streams, LogStreams::Stdout);
    // Running: this project's per-task log first, the older runner's after.
    assert!(
        stdout.primary.to_string_lossy().contains("logs/nodeA/")
            && stdout.primary.to_string_lossy().ends_with(".out"),
        "{stdout:?}"
    );
    assert!(stdout.legacy.as_ref().is_some_and(|p| p.ends_with("logs/T0004.out")), "{stdout:?}");
    assert_eq!(app.focus, Pane::Logs);
    let update = |generation, text: &str| LogUpdate {
        generation,
        lines: vec![(Stream::Out, text.to_string())],
        truncated_front: false,
        missing: vec![],
        error: None,
        binary: false,
        skipped_bytes: 0,
        file_len: 10,
        restarts: 0,
    };
    app.on_reply(Reply::Log(update(generation - 1, "stale generation")));
    app.on_reply(Reply::Log(update(generation, "epoch 3 loss=0.12")));
    let screen = text(&render(&mut app, 80, 24, color()));
    assert!(screen.contains("epoch 3 loss=0.12"));
    assert!(!screen.contains("stale generation"), "superseded replies are dropped");
    let requests = press(&mut app, &[KeyCode::Char('m')]);
    assert!(matches!(&requests[..], [Request::Follow { streams: LogStreams::Merged, .. }]));
    let requests = press(&mut app, &[KeyCode::Esc]);
    assert!(matches!(&requests[..], [Request::StopLogs]));
    assert!(!app.logs.visible);
}

#[test]
fn f_follows_the_only_running_task() {
    let mut app = dashboard();
    let requests = press(&mut app, &[KeyCode::Char('f')]);
    assert!(matches!(&requests[..], [Request::Follow { .. }]), "{requests:?}");
}

#[test]
fn search_streams_matches_into_the_list() {
    let mut app = dashboard();
    let mut requests = press(&mut app, &[KeyCode::Char('/'), KeyCode::Char('a'), KeyCode::Char('5')]);
    assert!(requests.is_empty(), "typing alone waits for the debounce");
    requests.extend(app.debounced_search());
    let Some(Request::Search { generation, query, .. }) = requests.last().cloned() else {
        panic!("{requests:?}")
    };
    assert_eq!(query, SearchQuery::Text("a5".into()));
    let id = app.snapshot.find(&name(0, 5)).unwrap();
    let progress = crate::ui::messages::SearchProgress { scanned: 6, total: 6, stage: "", done: true };
    app.on_reply(Reply::Matches { generation, ids: vec![id], progress });
    app.on_key(key(KeyCode::Enter));
    let screen = text(&render(&mut app, 80, 24, color()));
    assert!(screen.contains("1-1 of 1"), "{screen}");
    assert!(screen.contains("T0005"));
}

#[test]
fn global_keys() {
    let mut app = dashboard();
    assert_eq!(press(&mut app, &[KeyCode::Char('p')]).len(), 1);
    assert!(app.paused);
    let snapshot_before = app.snapshot.revision();
    app.on_snapshot(Arc::new(Index::new(60)));
    assert_eq!(app.snapshot.revision(), snapshot_before, "paused: snapshots are not taken");
    let requests = press(&mut app, &[KeyCode::Char('r')]);
    assert!(requests.iter().any(|r| matches!(r, Request::Engine(Control::RefreshNow))));
    press(&mut app, &[KeyCode::Char('c')]);
    assert!(app.clipboard.is_some(), "c copies the selected value");
    app.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
    assert!(app.quit);
}

#[test]
fn a_large_history_draws_only_the_visible_rows() {
    let mut index = Index::new(60);
    let added: Vec<String> = (0..100_000).map(|i| format!("{}.json", name(0, i))).collect();
    index.apply(round("nodeA", vec![(QueueDir::Inbox, added)]));
    let mut app = App::new(UiConfig::default(), Arc::new(Index::new(60)));
    app.open_lease("1".into(), RunDir("/r".into()));
    app.on_snapshot(Arc::new(index));
    press(&mut app, &[KeyCode::Char('G')]);
    let screen = text(&render(&mut app, 80, 24, color()));
    assert!(screen.contains("of 100,000"), "{screen}");
    assert!(app.tasks.last_window.len() <= 24);
}

#[test]
fn copy_cleans_what_came_from_files_and_refuses_what_a_terminal_would_drop() {
    let mut app = dashboard();
    let mut index = (*app.snapshot).clone();
    let hostile = "echo \u{1b}]0;pwned\u{7} \u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2J done \u{202e}";
    index.apply(Event::Round(Round {
        node: "nodeA".into(),
        dirs: vec![(
            QueueDir::Inbox,
            DirOutcome::changed(vec![format!("{}.json", name(0, 7)), format!("{}.json", name(0, 8))], vec![]),
        )],
    }));
    index.apply(Event::SpecRead {
        node: "nodeA".into(),
        name: name(0, 7).into(),
        outcome: Ok(SpecSummary { created_at: NOW, command: hostile.into(), cwd: "/".into(), gpus: 0 }),
    });
    index.apply(Event::SpecRead {
        node: "nodeA".into(),
        name: name(0, 8).into(),
        outcome: Ok(SpecSummary {
            created_at: NOW,
            command: "x".repeat(1 << 20).into(),
            cwd: "/".into(),
            gpus: 0,
        }),
    });
    app.on_snapshot(Arc::new(index));
    let copy_command_of = |app: &mut App, seq: u32| {
        let id = app.snapshot.find(&name(0, seq)).unwrap();
        app.modal = Some(Modal::Details { task: id, generation: 0, loaded: None, show_env: false });
        app.clipboard = None;
        press(app, &[KeyCode::Char('c')]);
    };
    copy_command_of(&mut app, 7);
    let copied = app.clipboard.clone().expect("copied");
    assert!(!copied.chars().any(|c| c.is_control() || c == '\u{202e}'), "{copied:?}");
    assert!(copied.starts_with("echo ") && copied.contains("done"), "{copied:?}");
    copy_command_of(&mut app, 8);
    assert!(app.clipboard.is_none(), "a 1 MiB command is not sent");
    let (message, _, _) = app.status.clone().unwrap();
    assert!(message.contains("not copied") && message.contains("1024 KiB"), "{message}");
}

#[test]
fn extreme_timestamps_from_files_neither_overflow_nor_panic() {
    let mut app = dashboard();
    let mut index = (*app.snapshot).clone();
    index.apply(Event::Round(Round {
        node: "nodeA".into(),
        dirs: vec![(
            QueueDir::Done,
            DirOutcome::changed(
                vec![format!("{}.json", name(0, 9)), format!("{}.result.json", name(0, 9))],
                vec![],
            ),
        )],
    }));
    index.apply(Event::SpecRead {
        node: "nodeA".into(),
        name: name(0, 9).into(),
        outcome: Ok(SpecSummary { created_at: i64::MIN, command: "x".into(), cwd: "/".into(), gpus: 0 }),
    });
    index.apply(Event::ResultRead {
        node: "nodeA".into(),
        name: name(0, 9).into(),
        kind: ResultKind::Ran,
        outcome: Ok(ResultSummary {
            started_at: i64::MIN,
            finished_at: i64::MAX,
            exit_code: i32::MIN,
            runtime_s: f64::MAX,
            stdout: "".into(),
            stderr: "".into(),
            command: None,
            gpus_assigned: None,
            cwd: None,
            gpus_requested: None,
            error: None,
        }),
    });
    app.on_snapshot(Arc::new(index));
    render(&mut app, 160, 48, color());
    let id = app.snapshot.find(&name(0, 9)).unwrap();
    app.modal = Some(Modal::Details { task: id, generation: 0, loaded: None, show_env: false });
    render(&mut app, 160, 48, color());
}

#[test]
fn a_cache_that_could_not_be_used_is_said_once() {
    let mut app = dashboard();
    let mut index = sample_index();
    index.apply(Event::CacheProblem("cache /c/f.bin not used: it is cut short".into()));
    let index = Arc::new(index);
    app.on_snapshot(index.clone());
    let shown = app.status.as_ref().map(|s| s.0.clone());
    assert!(shown.as_deref().is_some_and(|t| t.contains("cut short")), "{shown:?}");
    app.status = None;
    app.on_snapshot(index);
    assert!(app.status.is_none(), "the same problem is not said again");
}
