//! Drawing: the layout and one module per pane. Draws only what is on
//! screen: each pane asks the snapshot for its visible rows (O(log n +
//! rows)) and nothing walks the history.

mod leases;
mod logs;
mod modals;
mod nodes;
mod status;
mod tasks;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders};
use ratatui::Frame;

use super::app::{App, Pane, Screen};
use super::theme::Theme;

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &mut App, theme: &Theme) {
    let area = frame.area();
    let [body, status_area] = Layout::vertical([Constraint::Min(3), Constraint::Length(1)]).areas(area);
    match app.screen {
        Screen::LeaseList => leases::draw_full(frame, body, app, theme),
        Screen::Dashboard => dashboard(frame, body, app, theme),
    }
    status::draw(frame, status_area, app, theme);
    if app.search_input.is_some() {
        status::draw_search_prompt(frame, status_area, app, theme);
    }
    modals::draw(frame, area, app, theme);
}

fn dashboard(frame: &mut Frame, area: Rect, app: &mut App, theme: &Theme) {
    let lease_rows = app.visible_leases().len().clamp(1, 4) as u16;
    let leases_height = (lease_rows + 2).min(area.height / 5 + 2);
    let log_height =
        if app.logs.visible { (area.height.saturating_sub(leases_height) * 2 / 5).max(5) } else { 0 };
    let [leases_area, middle, logs_area] = Layout::vertical([
        Constraint::Length(leases_height),
        Constraint::Min(5),
        Constraint::Length(log_height),
    ])
    .areas(area);
    leases::draw_pane(frame, leases_area, app, theme);
    let nodes_width =
        if middle.width < 100 { 26 } else { (middle.width * 2 / 5).clamp(26, 60) }.min(middle.width / 2);
    let [nodes_area, tasks_area] =
        Layout::horizontal([Constraint::Length(nodes_width), Constraint::Min(20)]).areas(middle);
    nodes::draw(frame, nodes_area, app, theme);
    tasks::draw(frame, tasks_area, app, theme);
    if app.logs.visible {
        logs::draw(frame, logs_area, app, theme);
    }
}

/// A bordered block whose border shows focus.
fn pane_block<'a>(title: Line<'a>, focused: bool, theme: &Theme) -> Block<'a> {
    let style = if focused { theme.focused_border() } else { theme.border() };
    Block::new().borders(Borders::ALL).border_style(style).title(title)
}

fn focused(app: &App, pane: Pane) -> bool {
    app.modal.is_none() && app.focus == pane
}

fn title<'a>(text: impl Into<String>, theme: &Theme) -> Line<'a> {
    Line::from(Span::styled(format!(" {} ", text.into()), theme.title()))
}
