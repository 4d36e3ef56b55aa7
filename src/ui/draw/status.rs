//! The status bar: lease, filters, refresh, pause, filesystem and Slurm
//! health, read progress, and the latest message.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::tasks::states_label;
use crate::index::Index;
use crate::sanitize::clean_line;
use crate::ui::app::{App, Level};
use crate::ui::format::{count, fit};
use crate::ui::theme::Theme;

/// `ok`, `lagging(n)` (tasks unaccounted for), or `errors(n)` (nodes whose
/// listings or heartbeats fail).
pub fn fs_health(index: &Index) -> (String, bool) {
    let failing = index.nodes().filter(|(_, n)| n.has_scan_error()).count()
        + usize::from(index.lease_error().is_some());
    if failing > 0 {
        return (format!("errors({failing})"), true);
    }
    match index.unaccounted_count() {
        0 => ("ok".into(), false),
        n => (format!("lagging({n})"), true),
    }
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let index = &app.snapshot;
    let mut spans = Vec::new();
    let lease = app.lease.as_ref().map_or("-".to_string(), |(id, _)| clean_line(id));
    spans.push(Span::styled(format!("lease={lease} "), theme.title()));
    let view = &app.tasks.view;
    let mut filters = Vec::new();
    if !view.states.is_all() {
        filters.push(format!("state:{}", states_label(view.states)));
    }
    if let Some(node) = view.node {
        filters.push(format!("node:{}", clean_line(index.node_name(node))));
    }
    if let Some(search) = &app.search {
        filters.push(clean_line(&search.label));
    }
    if !filters.is_empty() {
        spans.push(Span::raw(format!("filters={} ", filters.join(","))));
    }
    spans.push(Span::raw(format!("refresh={}s ", app.config.refresh_s)));
    if app.paused {
        spans.push(Span::styled("[PAUSED] ", theme.warn()));
    }
    if let Some((what, for_how_long)) = app.lease.as_ref().and(app.fs_stuck.as_ref()) {
        // Named for what it is: a call that has not returned (a hung mount,
        // or a huge directory), not a verdict.
        let text = format!("fs=waiting({}, {}s) ", clean_line(what), for_how_long.as_secs());
        spans.push(Span::styled(text, theme.error()));
    } else if app.lease.is_some() {
        let (fs, bad) = fs_health(index);
        spans.push(Span::styled(format!("fs={fs} "), if bad { theme.warn() } else { theme.base() }));
        let unread = index.unread_count();
        if unread > 0 {
            spans.push(Span::styled(format!("reading {} ", count(unread as u64)), theme.dim()));
        }
    }
    if app.slurm_error.is_some() {
        spans.push(Span::styled("slurm=err ", theme.error()));
    }
    match &app.status {
        Some((text, level, _)) => {
            let style = if *level == Level::Error { theme.error() } else { theme.ok() };
            spans.push(Span::styled(clean_line(text), style));
        }
        None => spans.push(Span::styled("q:quit ?:help", theme.dim())),
    }
    let text: String = spans.iter().map(|s| s.content.as_ref()).collect();
    if unicode_width::UnicodeWidthStr::width(text.as_str()) > area.width as usize {
        // Too narrow for everything: keep the start, cut the rest.
        let style = spans.last().map(|s| s.style).unwrap_or_default();
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(fit(&text, area.width as usize), style))),
            area,
        );
    } else {
        frame.render_widget(Paragraph::new(Line::from(spans)), area);
    }
}

pub fn draw_search_prompt(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(input) = &app.search_input else { return };
    let text = format!("/{}▏  (Enter: search, Esc: cancel; matches command, or name until read)", input.text);
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled(fit(&text, area.width as usize), theme.title()))),
        area,
    );
}
