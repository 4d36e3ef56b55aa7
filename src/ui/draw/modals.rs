//! Modals drawn over the screen: help, task details, the lease form,
//! confirmations, the follow picker, node stats and the activity feed.

use crate::task_logs::{LogLocation, LogStream};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Sparkline, Wrap};
use ratatui::Frame;

use super::{pane_block, title};
use crate::index::{NodeHealth, Task, TaskState};
use crate::sanitize::clean_line;
use crate::ui::app::{App, Modal, FORM_FIELDS};
use crate::ui::format::{age, count, duration, timestamp};
use crate::ui::messages::LeaseForm;
use crate::ui::theme::Theme;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(modal) = &app.modal else { return };
    match modal {
        Modal::Help => popup(frame, area, "help (Esc closes)", help_lines(theme), theme, 70, 90),
        Modal::Details { task, loaded, show_env, .. } => {
            let lines = details_lines(app, *task, loaded.as_ref(), *show_env, theme);
            popup(frame, area, "task details (Esc closes)", lines, theme, 90, 90)
        }
        Modal::LeaseForm { form, field, error } => {
            let lines = form_lines(form, *field, error.as_deref(), theme);
            popup(frame, area, "new Slurm lease", lines, theme, 80, 80)
        }
        Modal::Confirm { question, .. } => {
            let lines = vec![
                Line::from(clean_line(question)),
                Line::from(""),
                Line::from(Span::styled("y: yes   n/Esc: no", theme.title())),
            ];
            popup(frame, area, "confirm", lines, theme, 60, 30)
        }
        Modal::FollowPicker { candidates, selected } => {
            let mut lines =
                vec![Line::from(Span::styled("several tasks are running; follow which?", theme.title()))];
            for (i, &id) in candidates.iter().enumerate() {
                let Some(task) = app.snapshot.task(id) else { continue };
                let text = format!(
                    "{} {} {}",
                    clean_line(task.task_id()),
                    clean_line(app.snapshot.node_name(task.node)),
                    task.command().map(clean_line).unwrap_or_default()
                );
                let style = if i == *selected { theme.selected() } else { theme.base() };
                lines.push(Line::from(Span::styled(text, style)));
            }
            popup(frame, area, "follow (Enter, Esc)", lines, theme, 80, 60)
        }
        Modal::NodeStats { node } => {
            popup(frame, area, "node stats", node_lines(app, *node, theme), theme, 60, 60)
        }
        Modal::Activity => activity(frame, area, app, theme),
    }
}

fn centered(area: Rect, percent_x: u16, percent_y: u16) -> Rect {
    let [_, middle, _] = Layout::vertical([
        Constraint::Percentage((100 - percent_y) / 2),
        Constraint::Percentage(percent_y),
        Constraint::Percentage((100 - percent_y) / 2),
    ])
    .areas(area);
    let [_, center, _] = Layout::horizontal([
        Constraint::Percentage((100 - percent_x) / 2),
        Constraint::Percentage(percent_x),
        Constraint::Percentage((100 - percent_x) / 2),
    ])
    .areas(middle);
    center
}

fn popup(frame: &mut Frame, area: Rect, heading: &str, lines: Vec<Line>, theme: &Theme, x: u16, y: u16) {
    let rect = centered(area, x, y);
    frame.render_widget(Clear, rect);
    let block = pane_block(title(heading, theme), true, theme);
    frame.render_widget(Paragraph::new(lines).block(block).wrap(Wrap { trim: false }), rect);
}

const HELP: &[(&str, &str)] = &[
    ("global", "q quit · ? help · Tab/Shift+Tab focus · / search · r refresh now · p pause auto-refresh · c copy · t activity"),
    ("leases", "j/k move · Enter open · l set default · x release (slurm) · f filter · n new slurm lease"),
    ("nodes", "j/k move · Enter filter tasks to node · s node stats · P pause/resume node · V recover a dead node · f follow running"),
    ("tasks", "j/k PgUp/PgDn g/G move · Enter details · F stdout · E stderr · A both · f follow running · L paged logs"),
    ("", "X cancel · R retry · 1 pending · 2 running · 3 failed · 4 finished · 5 LOST? · 0 clear · s sort by seq · e has stderr · Esc clear search"),
    ("logs", "Space follow · PgUp/PgDn scroll · g/G top/bottom · o stdout↔stderr · m merge · c copy path · Esc collapse"),
    ("states", "LOST? = vanished from claimed/ with no result yet (NFS lag or a lost task) · STUCK = running on a node with a stale heartbeat · DONE = result not read yet"),
    ("memory", "… in COMMAND = let go to save memory, back from the local cache in a moment · --max-tasks N (ui.max_tasks_display, 5000): commands kept for the N newest finished tasks, plus live ones and those on screen; counts, paging and search always cover every task"),
];

fn help_lines(theme: &Theme) -> Vec<Line<'static>> {
    HELP.iter()
        .map(|(pane, keys)| {
            Line::from(vec![Span::styled(format!("{pane:<8}"), theme.title()), Span::raw(keys.to_string())])
        })
        .collect()
}

/// A log path for the details view: the one the background found on disk
/// once the details are loaded, else where it should be.
fn log_shown(
    app: &App,
    task: &crate::index::Task,
    loaded: Option<&Result<crate::ui::messages::TaskDetails, String>>,
    stream: LogStream,
) -> String {
    let Some((_, run)) = &app.lease else { return task.result_log(stream).unwrap_or("-").to_string() };
    let found = match (loaded, stream) {
        (Some(Ok(details)), LogStream::Stdout) => Some(details.stdout_path.clone()),
        (Some(Ok(details)), LogStream::Stderr) => Some(details.stderr_path.clone()),
        _ => None,
    };
    let path = match found.filter(|p| !p.as_os_str().is_empty()) {
        Some(path) => path,
        None => {
            let location = LogLocation::of_indexed(run, &app.snapshot, task, stream);
            if location.is_none() {
                return "(none)".to_string();
            }
            location.primary
        }
    };
    // Relative to the run dir, as results name them.
    path.strip_prefix(&run.0).unwrap_or(&path).display().to_string()
}

fn details_lines<'a>(
    app: &App,
    id: crate::index::TaskId,
    loaded: Option<&Result<crate::ui::messages::TaskDetails, String>>,
    show_env: bool,
    theme: &Theme,
) -> Vec<Line<'a>> {
    let index = &app.snapshot;
    let Some(task) = index.task(id) else { return vec![Line::from("task not in this snapshot")] };
    let spec_read = loaded.and_then(|l| l.as_ref().ok());
    let field = |name: &str, value: String| {
        Line::from(vec![Span::styled(format!("{name:<12}"), theme.dim()), Span::raw(clean_line(&value))])
    };
    let mut lines = vec![
        Line::from(vec![
            Span::styled(format!("{} ", clean_line(task.task_id())), theme.title()),
            Span::styled(task.state.label(), theme.state(task.state)),
            Span::raw(format!("  on {}", clean_line(index.node_name(task.node)))),
        ]),
        field("name", task.name.to_string()),
        field(
            "command",
            match (task.command(), task.spec_read) {
                (Some(command), _) => command.to_string(),
                (None, _) if task.details_dropped => "(being fetched from the cache)".into(),
                (None, crate::index::ReadStatus::Failed) => "(its spec could not be read: see below)".into(),
                (None, _) => "(not read yet)".into(),
            },
        ),
        // A finished task's spec is read only when its details are opened
        // (its result named the command): its cwd and submit time then.
        field("cwd", task.cwd().or(spec_read.and_then(|d| d.cwd.as_deref())).unwrap_or("-").to_string()),
        field(
            "created",
            timestamp(if task.created_at != 0 {
                task.created_at
            } else {
                spec_read.and_then(|d| d.created_at).unwrap_or(0)
            }),
        ),
        field("started", timestamp(task.started_at)),
        field("finished", timestamp(task.finished_at)),
        field(
            "exit code",
            task.exit_code().map_or("-".into(), |c| c.to_string())
                + &match runtime_s(task, spec_read) {
                    Some(runtime) => format!("  runtime {}", duration(runtime)),
                    None => String::new(),
                },
        ),
        field("stdout", log_shown(app, task, loaded, LogStream::Stdout)),
        field("stderr", log_shown(app, task, loaded, LogStream::Stderr)),
    ];
    if let Some(error) = task.runner_error() {
        lines.push(field("error", error.to_string()));
    }
    if task.state == TaskState::Lost {
        lines.push(Line::from(Span::styled(
            "⚠ LOST?: it left claimed/ and no result is visible yet. NFS may be lagging; this clears when a result or the task reappears.",
            theme.warn(),
        )));
    }
    if let Some(problem) = task.problem() {
        lines.push(Line::from(Span::styled(format!("! {}", clean_line(problem)), theme.error())));
    }
    match loaded {
        None => lines.push(Line::from(Span::styled("reading spec and result…", theme.dim()))),
        Some(Err(e)) => lines.push(Line::from(Span::styled(format!("! {}", clean_line(e)), theme.error()))),
        Some(Ok(details)) => {
            lines.push(field("idem. key", details.idempotency_key.clone()));
            if let Some(gpus) = &details.gpus_assigned {
                lines.push(field("gpus", gpus.clone()));
            }
            if details.same_task_id > 0 {
                lines.push(Line::from(Span::styled(
                    format!(
                        "⚠ {} other task(s) in this lease share task id {}: they share one log file",
                        details.same_task_id,
                        clean_line(task.task_id())
                    ),
                    theme.warn(),
                )));
            }
            for problem in &details.problems {
                lines.push(Line::from(Span::styled(format!("! {}", clean_line(problem)), theme.error())));
            }
            if show_env {
                lines.push(Line::from(Span::styled(
                    format!("env ({} vars, v hides)", details.env.len()),
                    theme.title(),
                )));
                for (k, v) in &details.env {
                    lines.push(Line::from(format!("  {}={}", clean_line(k), clean_line(v))));
                }
            } else {
                lines.push(field("env", format!("{} variables (v shows)", details.env.len())));
            }
        }
    }
    push_hint(
        &mut lines,
        "F stdout · E stderr · A both · L paged logs · c copy command · v env · Esc close",
        theme,
    );
    lines
}

fn form_lines<'a>(form: &LeaseForm, field: usize, error: Option<&str>, theme: &Theme) -> Vec<Line<'a>> {
    let values = [
        &form.name,
        &form.nodes,
        &form.time,
        &form.partition,
        &form.qos,
        &form.account,
        &form.constraint,
        &form.reservation,
        &form.gpus_per_node,
    ];
    let mut lines: Vec<Line> = FORM_FIELDS
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let value = match values.get(i) {
                Some(v) => v.to_string(),
                None => form.extra_args.join("  "),
            };
            let cursor = if i == field { "▏" } else { "" };
            let style = if i == field { theme.selected() } else { theme.base() };
            Line::from(vec![
                Span::styled(format!("{label:>17}: "), theme.dim()),
                Span::styled(format!("{}{cursor}", clean_line(&value)), style),
            ])
        })
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled("preview", theme.title())));
    for line in crate::actions::form_preview(form) {
        lines.push(Line::from(clean_line(&line)));
    }
    if let Some(error) = error {
        lines.push(Line::from(Span::styled(clean_line(error), theme.error())));
    }
    push_hint(
        &mut lines,
        "Tab/↑↓ field · Enter on the last field adds an arg · F2 or Ctrl+Enter submit · Esc cancel",
        theme,
    );
    lines
}

fn node_lines<'a>(app: &App, id: crate::index::NodeId, theme: &Theme) -> Vec<Line<'a>> {
    let index = &app.snapshot;
    let Some(node) = index.node(id) else { return vec![] };
    let mut lines = vec![Line::from(vec![
        Span::styled(clean_line(&node.name), theme.title()),
        Span::raw("  "),
        Span::styled(node.health.label(), theme.health(node.health)),
    ])];
    let hb = match (&node.heartbeat, node.health) {
        (
            crate::index::HeartbeatSeen::Present(hb),
            NodeHealth::Ok { age_s } | NodeHealth::Stale { age_s },
        ) => format!(
            "heartbeat {} ago · running {} · pending estimate {} · runner pid {} · version {}",
            age(age_s),
            hb.running_task_id.as_deref().map(clean_line).unwrap_or_else(|| "-".into()),
            hb.pending_estimate,
            hb.runner_pid,
            clean_line(&hb.version)
        ),
        (crate::index::HeartbeatSeen::Present(hb), NodeHealth::ClockSkew { ahead_s }) => format!(
            "heartbeat {} in the future (ts {}): this node's clock or ours is wrong · runner pid {}",
            age(ahead_s),
            hb.ts,
            hb.runner_pid
        ),
        (crate::index::HeartbeatSeen::Missing, _) => "no heartbeat file".into(),
        _ => "heartbeat not read yet".into(),
    };
    lines.push(Line::from(hb));
    for state in TaskState::ALL {
        let n = node.count(state);
        if n > 0 {
            lines.push(Line::from(vec![
                Span::styled(format!("{:<10}", state.label()), theme.state(state)),
                Span::raw(count(n as u64)),
            ]));
        }
    }
    if node.paused {
        lines.push(Line::from(Span::styled("paused: its runner claims no new tasks", theme.warn())));
    }
    for error in node.heartbeat_error.iter().chain(node.scan_errors.iter().flatten()) {
        lines.push(Line::from(Span::styled(format!("! {}", clean_line(error)), theme.error())));
    }
    if node.unrecognised > 0 {
        lines.push(Line::from(format!("{} file(s) in its queue dirs are not task files", node.unrecognised)));
    }
    lines
}

fn activity(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let rect = centered(area, 90, 90);
    frame.render_widget(Clear, rect);
    let index = &app.snapshot;
    let block = pane_block(
        title("activity: completions per minute, last hour · recent transitions (Esc)", theme),
        true,
        theme,
    );
    let inner = block.inner(rect);
    frame.render_widget(block, rect);
    let [spark, feed] = Layout::vertical([Constraint::Length(4), Constraint::Min(1)]).areas(inner);
    let data = index.completions_per_minute(60);
    frame.render_widget(Sparkline::default().data(&data).style(theme.ok()), spark);
    let lines: Vec<Line> = index
        .feed()
        .take(feed.height as usize)
        .map(|t| super::nodes::transition_line(app, t, feed.width as usize, true, theme))
        .collect();
    frame.render_widget(Paragraph::new(lines), feed);
}

/// A blank line and the modal's key hints.
fn push_hint(lines: &mut Vec<Line>, hint: &'static str, theme: &Theme) {
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(hint, theme.dim())));
}

/// How long a finished task ran: the result's own figure once its details
/// are read, else its times (the index keeps no more, at 10^6 tasks).
fn runtime_s(task: &Task, read: Option<&crate::ui::messages::TaskDetails>) -> Option<f64> {
    let from_result = read.and_then(|d| d.runtime_s).filter(|r| *r > 0.0);
    // Times come from files: any two may be far enough apart to overflow.
    let ran = task.finished_at.checked_sub(task.started_at).filter(|s| *s > 0 && task.started_at != 0);
    let from_times = ran.map(|s| s as f64);
    from_result.or(from_times)
}
