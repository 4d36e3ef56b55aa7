//! The lease list: the full-screen table (screen 1) and the dashboard's
//! top pane.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{focused, pane_block, title};
use crate::sanitize::clean_line;
use crate::ui::app::{App, Pane, Screen};
use crate::ui::format::pad;
use crate::ui::messages::LeaseRow;
use crate::ui::theme::Theme;

pub fn draw_full(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let heading = format!(
        "leases [{}]  Enter:open  n:new slurm lease  x:release  l:set default  f:filter",
        app.lease_filter.label()
    );
    let block = pane_block(title(heading, theme), app.modal.is_none(), theme);
    let inner = block.inner(area);
    let mut lines = vec![Line::from(Span::styled(header(inner.width as usize), theme.dim()))];
    lines.extend(rows(app, theme, inner.width as usize, inner.height.saturating_sub(1) as usize));
    if app.leases.is_empty() {
        lines.push(Line::from(Span::styled("  no leases found (r: refresh)", theme.dim())));
    }
    for problem in app.lease_problems.iter().take(3) {
        lines.push(Line::from(Span::styled(format!("  ! {}", clean_line(problem)), theme.error())));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

pub fn draw_pane(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let is_focused = focused(app, Pane::Leases) || app.screen == Screen::LeaseList;
    let block = pane_block(title(format!("leases [{}]", app.lease_filter.label()), theme), is_focused, theme);
    let inner = block.inner(area);
    let lines = rows(app, theme, inner.width as usize, inner.height as usize);
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn header(width: usize) -> String {
    pad(
        &format!(
            "  {:<18} {:<6} {:<10} {:<18} {:<10} {}",
            "LEASE", "TYPE", "STATE", "CAPACITY", "LEFT", "NAME"
        ),
        width,
    )
}

fn rows<'a>(app: &App, theme: &Theme, width: usize, height: usize) -> Vec<Line<'a>> {
    let visible = app.visible_leases();
    let selected = app.lease_selected.min(visible.len().saturating_sub(1));
    let first = selected.saturating_sub(height.saturating_sub(1));
    let open = app.lease.as_ref().map(|(id, _)| id.as_str());
    visible
        .iter()
        .enumerate()
        .skip(first)
        .take(height)
        .map(|(i, row)| {
            let text = pad(&row_text(row, open == Some(row.id.as_str())), width);
            let style = if i == selected { theme.selected() } else { state_style(row, theme) };
            Line::from(Span::styled(text, style))
        })
        .collect()
}

fn row_text(row: &LeaseRow, open: bool) -> String {
    let mut tail = clean_line(&row.name);
    if row.is_default {
        tail.push_str(" *default");
    }
    if !row.reason.is_empty() {
        tail.push_str(&format!(" reason={}", clean_line(&row.reason)));
    }
    if !row.present {
        tail.push_str(" (no run dir)");
    }
    format!(
        "{}{:<18} {:<6} {:<10} {:<18} {:<10} {}",
        if open { "▶ " } else { "  " },
        clean_line(&row.id),
        if row.slurm { "slurm" } else { "local" },
        clean_line(&row.state),
        clean_line(&row.capacity),
        clean_line(&row.time_left),
        tail
    )
}

fn state_style(row: &LeaseRow, theme: &Theme) -> ratatui::style::Style {
    match row.state.as_str() {
        "RUNNING" => theme.ok(),
        "PENDING" => theme.warn(),
        "?" | "ERROR" => theme.error(),
        _ => theme.dim(),
    }
}
