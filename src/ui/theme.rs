//! Colours and emphasis, with a NO_COLOR variant that uses modifiers only.

use ratatui::style::{Color, Modifier, Style};

use crate::index::{NodeHealth, TaskState};

#[derive(Debug, Clone, Copy)]
pub struct Theme {
    pub no_color: bool,
}

impl Theme {
    /// NO_COLOR set and non-empty disables colour (no-color.org).
    pub fn from_env_value(no_color: Option<&str>) -> Theme {
        Theme { no_color: no_color.is_some_and(|v| !v.is_empty()) }
    }

    fn color(&self, color: Color) -> Style {
        if self.no_color {
            Style::new().fg(Color::Reset)
        } else {
            Style::new().fg(color)
        }
    }

    pub fn base(&self) -> Style {
        Style::new()
    }

    pub fn selected(&self) -> Style {
        if self.no_color {
            // Reversed video alone can vanish under NO_COLOR; bold and
            // underline keep the cursor visible with reset colours.
            Style::new()
                .fg(Color::Reset)
                .bg(Color::Reset)
                .add_modifier(Modifier::REVERSED | Modifier::BOLD | Modifier::UNDERLINED)
        } else {
            Style::new().bg(Color::DarkGray).fg(Color::White).add_modifier(Modifier::BOLD)
        }
    }

    pub fn focused_border(&self) -> Style {
        if self.no_color {
            Style::new().add_modifier(Modifier::BOLD)
        } else {
            Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD)
        }
    }

    pub fn border(&self) -> Style {
        self.color(Color::DarkGray)
    }

    pub fn dim(&self) -> Style {
        if self.no_color {
            Style::new().add_modifier(Modifier::DIM)
        } else {
            Style::new().fg(Color::DarkGray)
        }
    }

    pub fn warn(&self) -> Style {
        self.color(Color::Yellow).add_modifier(Modifier::BOLD)
    }

    pub fn error(&self) -> Style {
        self.color(Color::Red).add_modifier(Modifier::BOLD)
    }

    pub fn ok(&self) -> Style {
        self.color(Color::Green)
    }

    pub fn title(&self) -> Style {
        Style::new().add_modifier(Modifier::BOLD)
    }

    pub fn state(&self, state: TaskState) -> Style {
        match state {
            TaskState::Running => self.color(Color::Green).add_modifier(Modifier::BOLD),
            TaskState::Stuck | TaskState::Lost => self.warn(),
            TaskState::Pending => self.color(Color::Blue),
            TaskState::Failed => self.error(),
            TaskState::Finished => self.ok(),
            TaskState::Done | TaskState::Cancelled | TaskState::Skipped => self.dim(),
        }
    }

    pub fn health(&self, health: NodeHealth) -> Style {
        match health {
            NodeHealth::Ok { .. } => self.ok(),
            NodeHealth::Stale { .. } | NodeHealth::NoHeartbeat | NodeHealth::ClockSkew { .. } => self.warn(),
            NodeHealth::Unknown => self.dim(),
        }
    }
}
