//! The log viewer pane: the followed tail, or a page of the file.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{focused, pane_block, title};
use crate::logs::{LogUpdate, Stream};
use crate::sanitize::clean_line;
use crate::ui::app::{App, Pane};
use crate::ui::format::fit;
use crate::ui::messages::LogStreams;
use crate::ui::theme::Theme;

pub fn draw(frame: &mut Frame, area: Rect, app: &mut App, theme: &Theme) {
    let height = area.height.saturating_sub(2) as usize;
    app.log_rows = height.max(1);
    let logs = &app.logs;
    let task = logs.task.and_then(|id| app.snapshot.task(id));
    let stream = match logs.streams {
        LogStreams::Stdout => "stdout",
        LogStreams::Stderr => "stderr",
        LogStreams::Merged => "stdout+stderr",
    };
    let mode = if logs.page.is_some() {
        "paged"
    } else if logs.follow {
        "follow"
    } else {
        "scrolled"
    };
    let heading = match task {
        Some(t) => format!(
            "[{stream}] {} {} {} — {mode}",
            clean_line(t.task_id()),
            clean_line(app.snapshot.node_name(t.node)),
            t.command().map(clean_line).unwrap_or_default()
        ),
        None => "log viewer — F/E/A on a task, f: follow the running one".into(),
    };
    let width = area.width.saturating_sub(2) as usize;
    let block =
        pane_block(title(fit(&heading, width.saturating_sub(2)), theme), focused(app, Pane::Logs), theme);
    let mut lines: Vec<Line> = Vec::new();
    if let Some(page) = &logs.page {
        if let Some(error) = &page.error {
            lines.push(Line::from(Span::styled(clean_line(error), theme.error())));
        }
        if page.missing {
            lines.push(Line::from(Span::styled("no such file (yet)", theme.warn())));
        }
        lines.extend(page.lines.iter().take(height).map(|l| Line::from(fit(&l.text, width))));
    } else if let Some(window) = &logs.window {
        for note in notes(window) {
            lines.push(Line::from(Span::styled(fit(&note, width), theme.warn())));
        }
        let room = height.saturating_sub(lines.len());
        let end = window.lines.len().saturating_sub(logs.scroll_back);
        let start = end.saturating_sub(room);
        let merged = logs.streams == LogStreams::Merged;
        for (stream, text) in &window.lines[start..end] {
            let is_err = *stream == Stream::Err;
            let style = if is_err && merged { theme.warn() } else { theme.base() };
            let prefix = if is_err && merged { "err│" } else { "" };
            lines.push(Line::from(Span::styled(fit(&format!("{prefix}{text}"), width), style)));
        }
    } else if task.is_some() {
        lines.push(Line::from(Span::styled("opening…", theme.dim())));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

/// Facts about the followed files worth a line above the text.
fn notes(update: &LogUpdate) -> Vec<String> {
    let mut notes = Vec::new();
    for path in &update.missing {
        notes.push(format!("waiting for {} (not there yet)", clean_line(&path.display().to_string())));
    }
    if let Some(error) = &update.error {
        notes.push(clean_line(error));
    }
    if update.binary {
        notes.push("binary content: unprintable bytes shown as �".into());
    }
    if update.skipped_bytes > 0 {
        notes.push(format!("skipped {} bytes that arrived faster than shown", update.skipped_bytes));
    }
    notes
}
