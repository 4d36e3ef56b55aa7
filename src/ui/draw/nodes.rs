//! The nodes/runners pane, with the activity strip (completions per minute
//! and the latest transitions) under it.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Sparkline};
use ratatui::Frame;

use super::{focused, pane_block, title};
use crate::index::{Index, Node, NodeHealth, NodeId, StateSet, TaskState, Transition, ViewSpec};
use crate::sanitize::clean_line;
use crate::ui::app::{App, Pane};
use crate::ui::format::{age, count, fit, pad};
use crate::ui::theme::Theme;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let index = &app.snapshot;
    let activity_height = if area.height >= 14 { 5 } else { 0 };
    let [nodes_area, activity_area] =
        Layout::vertical([Constraint::Min(3), Constraint::Length(activity_height)]).areas(area);
    let total = index.nodes().count();
    let heading = format!("nodes {total}");
    let block = pane_block(title(heading, theme), focused(app, Pane::Nodes), theme);
    let inner = block.inner(nodes_area);
    let height = inner.height as usize;
    let selected = app.node_selected.min(total.saturating_sub(1));
    let first = selected.saturating_sub(height.saturating_sub(1));
    let width = inner.width as usize;
    let filter = app.tasks.view.node;
    let lines: Vec<Line> = index
        .nodes()
        .skip(first)
        .take(height)
        .map(|(id, node)| {
            let text = pad(&node_line(index, id, node, filter == Some(id), width < 40), width);
            let style = if id as usize == selected && focused(app, Pane::Nodes) {
                theme.selected()
            } else if id as usize == selected {
                theme.title()
            } else {
                theme.health(node.health)
            };
            Line::from(Span::styled(text, style))
        })
        .collect();
    let lines = if lines.is_empty() {
        vec![Line::from(Span::styled(
            if index.revision() == 0 { "scanning…" } else { "no nodes" },
            theme.dim(),
        ))]
    } else {
        lines
    };
    frame.render_widget(Paragraph::new(lines).block(block), nodes_area);
    if activity_height > 0 {
        draw_activity(frame, activity_area, app, theme);
    }
}

/// What a node's row says: health with heartbeat age, running task,
/// pending count, and markers for pause and scan errors.
/// Narrow panes get the short labels (`r=`, `p=`).
pub fn node_line(index: &Index, id: NodeId, node: &Node, filtered: bool, narrow: bool) -> String {
    let hb = match node.health {
        NodeHealth::Ok { age_s } | NodeHealth::Stale { age_s } => format!("hb={}", age(age_s)),
        NodeHealth::ClockSkew { ahead_s } => format!("hb=+{} ahead (clock skew)", age(ahead_s)),
        NodeHealth::NoHeartbeat => "hb=none".into(),
        NodeHealth::Unknown => "hb=?".into(),
    };
    let running = running_label(index, id, node);
    let (running_label, pending_label) = if narrow { ("r", "p") } else { ("running", "pending") };
    let mut line = format!(
        "{}{} {} {} {running_label}={} {pending_label}={}",
        if filtered { "▶" } else { "" },
        clean_line(&node.name),
        node.health.label(),
        hb,
        running,
        node.count(TaskState::Pending)
    );
    if node.count(TaskState::Lost) > 0 {
        line.push_str(&format!(" ⚠lost={}", node.count(TaskState::Lost)));
    }
    if node.paused {
        line.push_str(" [paused]");
    }
    if node.has_scan_error() {
        line.push_str(" [fs err]");
    }
    line
}

fn running_label(index: &Index, id: NodeId, node: &Node) -> String {
    let view = ViewSpec {
        node: Some(id),
        states: StateSet::of(&[TaskState::Running, TaskState::Stuck]),
        ..ViewSpec::default()
    };
    let running = index.view_total(&view);
    let first = index
        .page(&view, None, true, true, 1)
        .first()
        .and_then(|&t| index.task(t))
        .map(|t| clean_line(t.task_id()));
    match (running, first, matches!(node.health, NodeHealth::Stale { .. })) {
        (0, _, true) => "?".into(),
        (0, _, false) => "-".into(),
        (1, Some(task), _) => task,
        (n, Some(task), _) => format!("{task}+{}", n - 1),
        (n, None, _) => n.to_string(),
    }
}

fn draw_activity(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let index = &app.snapshot;
    let inner_width = area.width.saturating_sub(2) as usize;
    let per_minute = index.completions_per_minute(inner_width.min(60));
    let last_hour: u64 = per_minute.iter().sum();
    let block = pane_block(title(format!("activity {}/h", count(last_hour)), theme), false, theme);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let [spark_area, feed_area] = Layout::vertical([Constraint::Length(1), Constraint::Min(1)]).areas(inner);
    frame.render_widget(Sparkline::default().data(&per_minute).style(theme.ok()), spark_area);
    let lines: Vec<Line> = index
        .feed()
        .take(feed_area.height as usize)
        .map(|t| transition_line(app, t, feed_area.width as usize, false, theme))
        .collect();
    frame.render_widget(Paragraph::new(lines), feed_area);
}

/// One line of the transition feed: "T014 RUNNING→FAILED 3s ago", with
/// the node and aligned columns when `wide`.
pub fn transition_line<'a>(app: &App, t: &Transition, width: usize, wide: bool, theme: &Theme) -> Line<'a> {
    let index = &app.snapshot;
    let task = index.task(t.task);
    let name = task.map_or("?".to_string(), |task| clean_line(task.task_id()));
    let from = t.from.map_or("new", TaskState::label);
    let ago = age(app.now.max(index.now()) - t.at);
    let text = if wide {
        let node = task.map_or("?".to_string(), |task| clean_line(index.node_name(task.node)));
        format!("{name:<10} {node:<10} {from:>9} → {:<9} {ago} ago", t.to.label())
    } else {
        format!("{name} {from}→{} {ago} ago", t.to.label())
    };
    Line::from(Span::styled(fit(&text, width), theme.state(t.to)))
}
