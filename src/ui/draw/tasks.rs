//! The task list pane: a window of the current view or search, with exact
//! totals.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{focused, pane_block, title};
use crate::index::{Index, Order, StateSet, Task, TaskState, ViewSpec};
use crate::sanitize::clean_line;
use crate::ui::app::{App, Pane};
use crate::ui::format::{age, count, duration, fit, pad};
use crate::ui::theme::Theme;

pub fn draw(frame: &mut Frame, area: Rect, app: &mut App, theme: &Theme) {
    let height = area.height.saturating_sub(3) as usize; // borders + header
    app.task_rows = height.max(1);
    let index = app.snapshot.clone();
    let window = app.tasks.window(&index, height);
    let label = filter_label(&index, &app.tasks.view, app.search.as_ref().map(|s| s.label.as_str()));
    let range = if window.ids.is_empty() {
        "0".to_string()
    } else {
        format!(
            "{}-{}",
            count(window.first_position + 1),
            count(window.first_position + window.ids.len() as u64)
        )
    };
    let searching = match &app.search {
        Some(s) if !s.progress.done => {
            let p = &s.progress;
            let stage = if p.stage.is_empty() { String::new() } else { format!("{} ", p.stage) };
            format!(" searching… {stage}{}/{}", count(p.scanned as u64), count(p.total as u64))
        }
        _ => String::new(),
    };
    let heading = format!("tasks {label} {range} of {}{searching}", count(window.total));
    let block = pane_block(title(heading, theme), focused(app, Pane::Tasks), theme);
    let inner = block.inner(area);
    let width = inner.width as usize;
    // The node column is dropped when a node filter makes it redundant or
    // the pane is too narrow to leave room for the command.
    let show_node = app.tasks.view.node.is_none() && width >= 64;
    let node_header = if show_node { format!("{:<10} ", "NODE") } else { String::new() };
    let header =
        format!("  {:<9} {node_header}{:<9} {:>7} {:>4}  {}", "STATE", "TASK", "AGE", "EXIT", "COMMAND");
    let mut lines = vec![Line::from(Span::styled(pad(&header, width), theme.dim()))];
    for (row, &id) in window.ids.iter().enumerate() {
        let Some(task) = index.task(id) else { continue };
        let text = pad(&task_line(&index, task, app.now, show_node), width);
        let style = if window.cursor == Some(row) && focused(app, Pane::Tasks) {
            theme.selected()
        } else if window.cursor == Some(row) {
            theme.title()
        } else {
            theme.state(task.state)
        };
        lines.push(Line::from(Span::styled(text, style)));
    }
    if window.ids.is_empty() {
        let empty =
            if index.revision() == 0 { "scanning…" } else { "no tasks in this view (0: clear filters)" };
        lines.push(Line::from(Span::styled(empty, theme.dim())));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// One row: a warning mark for LOST?/STUCK, state, node, id, age or
/// runtime, exit code, and the command (or the name until it is read).
pub fn task_line(index: &Index, task: &Task, now: i64, show_node: bool) -> String {
    let mark = match task.state {
        TaskState::Lost | TaskState::Stuck => "⚠ ",
        _ if task.problem().is_some() => "! ",
        _ => "  ",
    };
    let when = if task.finished_at != 0 && task.started_at != 0 {
        duration(task.finished_at.saturating_sub(task.started_at) as f64)
    } else if task.sort_time() != 0 && now != 0 {
        age(now.saturating_sub(task.sort_time()))
    } else {
        "-".into()
    };
    let exit = task.exit_code().map_or("-".to_string(), |c| c.to_string());
    let what = match (task.problem(), task.command()) {
        (Some(problem), _) => clean_line(problem),
        (None, Some(command)) => clean_line(command),
        // Let go to bound memory; back from the cache in a moment.
        (None, None) if task.details_dropped => "…".into(),
        (None, None) => clean_line(&task.name.text()),
    };
    let node = if show_node {
        format!("{:<10} ", fit(&clean_line(index.node_name(task.node)), 10))
    } else {
        String::new()
    };
    format!(
        "{mark}{:<9} {node}{:<9} {:>7} {:>4}  {}",
        task.state.label(),
        fit(&clean_line(task.task_id()), 9),
        when,
        exit,
        what
    )
}

fn filter_label(index: &Index, view: &ViewSpec, search: Option<&str>) -> String {
    let mut parts = Vec::new();
    if !view.states.is_all() {
        parts.push(format!("state:{}", states_label(view.states)));
    }
    if let Some(node) = view.node {
        parts.push(format!("node:{}", clean_line(index.node_name(node))));
    }
    if view.order == Order::SeqInNode {
        parts.push("by seq".into());
    }
    if let Some(search) = search {
        parts.push(clean_line(search));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("[{}]", parts.join(" "))
    }
}

pub fn states_label(states: StateSet) -> String {
    states
        .iter()
        .map(|s| s.label().trim_end_matches('?').chars().take(4).collect::<String>())
        .collect::<Vec<_>>()
        .join(",")
}
