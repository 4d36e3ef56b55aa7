//! The log viewer pane: the followed tail, or a page of the file.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{focused, pane_block, title};
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
            t.command.as_deref().map(clean_line).unwrap_or_default()
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
        lines.extend(page.lines.iter().take(height).map(|l| Line::from(fit(l, width))));
    } else if let Some(window) = &logs.window {
        for note in &window.notes {
            lines.push(Line::from(Span::styled(fit(note, width), theme.warn())));
        }
        let room = height.saturating_sub(lines.len());
        let end = window.lines.len().saturating_sub(logs.scroll_back);
        let start = end.saturating_sub(room);
        for line in &window.lines[start..end] {
            let style =
                if line.stderr && logs.streams == LogStreams::Merged { theme.warn() } else { theme.base() };
            let prefix = if line.stderr && logs.streams == LogStreams::Merged { "err│" } else { "" };
            lines.push(Line::from(Span::styled(fit(&format!("{prefix}{}", line.text), width), style)));
        }
    } else if task.is_some() {
        lines.push(Line::from(Span::styled("opening…", theme.dim())));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
