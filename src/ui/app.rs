//! The dashboard's state and every state transition: keys in, requests
//! out, replies and snapshots folded in. Pure: no I/O, no clock reads (the
//! pump passes `now`), so every key is testable as a state transition.

use crate::task_logs::{LogLocation, LogStream};
use std::sync::Arc;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::messages::{
    Action, LeaseForm, LeaseRow, LogStreams, Reply, Request, SearchProgress, SearchQuery, TaskDetails,
};
use super::task_list::TaskList;
use crate::engine::Control;
use crate::index::{Index, NodeId, Order, StateSet, TaskId, TaskState, ViewSpec};
use crate::logs::{LogUpdate, Page, PageAnchor as PageAt};
use crate::paths::{RunDir, UiConfig};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Screen 1: the lease table, full screen.
    LeaseList,
    /// Screen 2: leases, nodes, tasks and logs.
    Dashboard,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pane {
    Leases,
    Nodes,
    Tasks,
    Logs,
}

impl Pane {
    const ORDER: [Pane; 4] = [Pane::Leases, Pane::Nodes, Pane::Tasks, Pane::Logs];
}

#[derive(Debug, Clone, PartialEq)]
pub enum Modal {
    Help,
    Details {
        task: TaskId,
        generation: u64,
        loaded: Option<Result<TaskDetails, String>>,
        show_env: bool,
    },
    LeaseForm {
        form: LeaseForm,
        field: usize,
        error: Option<String>,
    },
    Confirm {
        question: String,
        action: Action,
    },
    /// Choose a RUNNING task to follow (more than one is running).
    FollowPicker {
        candidates: Vec<TaskId>,
        selected: usize,
    },
    NodeStats {
        node: NodeId,
    },
    /// Recent transitions and the completions sparkline, full size.
    Activity,
}

/// The `/` prompt while typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchInput {
    pub text: String,
    /// Keystroke count when last edited; the pump fires the search once
    /// typing pauses (debounce).
    pub edited_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SearchState {
    pub query: SearchQuery,
    pub label: String,
    pub generation: u64,
    pub matches: Arc<Vec<TaskId>>,
    pub progress: SearchProgress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseFilter {
    All,
    Local,
    Slurm,
    Running,
    Pending,
}

impl LeaseFilter {
    fn next(self) -> LeaseFilter {
        match self {
            LeaseFilter::All => LeaseFilter::Local,
            LeaseFilter::Local => LeaseFilter::Slurm,
            LeaseFilter::Slurm => LeaseFilter::Running,
            LeaseFilter::Running => LeaseFilter::Pending,
            LeaseFilter::Pending => LeaseFilter::All,
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            LeaseFilter::All => "all",
            LeaseFilter::Local => "local",
            LeaseFilter::Slurm => "slurm",
            LeaseFilter::Running => "running",
            LeaseFilter::Pending => "pending",
        }
    }
    pub fn accepts(self, row: &LeaseRow) -> bool {
        match self {
            LeaseFilter::All => true,
            LeaseFilter::Local => !row.slurm,
            LeaseFilter::Slurm => row.slurm,
            LeaseFilter::Running => row.state == "RUNNING",
            LeaseFilter::Pending => row.state == "PENDING",
        }
    }
}

/// The log pane: what it follows and what it holds.
#[derive(Debug, Clone, PartialEq)]
pub struct LogPane {
    pub visible: bool,
    pub task: Option<TaskId>,
    pub streams: LogStreams,
    /// Tail -f mode: the view sticks to the end as lines arrive.
    pub follow: bool,
    pub window: Option<LogUpdate>,
    /// Lines scrolled up from the bottom while following.
    pub scroll_back: usize,
    /// The paged (non-follow) view: `L`, or scrolling past the tail window.
    pub page: Option<Page>,
    pub generation: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

pub struct App {
    pub screen: Screen,
    pub focus: Pane,
    pub modal: Option<Modal>,
    pub config: UiConfig,
    pub snapshot: Arc<Index>,
    pub lease: Option<(String, RunDir)>,
    pub leases: Vec<LeaseRow>,
    pub lease_filter: LeaseFilter,
    pub lease_selected: usize,
    pub lease_problems: Vec<String>,
    pub slurm_error: Option<String>,
    /// The engine's longest-running filesystem call, once it has run long
    /// enough to say so (a hung mount): what it is, and for how long.
    pub fs_stuck: Option<(String, std::time::Duration)>,
    pub node_selected: usize,
    pub tasks: TaskList,
    pub search_input: Option<SearchInput>,
    pub search: Option<SearchState>,
    pub logs: LogPane,
    pub status: Option<(String, Level, i64)>,
    pub paused: bool,
    pub quit: bool,
    /// UI clock (Unix seconds), passed in by the pump.
    pub now: i64,
    /// Rows the task pane showed last frame (for paging keys).
    pub task_rows: usize,
    pub log_rows: usize,
    generation: u64,
    /// Open the registry's default lease once the lease list arrives.
    pub open_default_when_listed: bool,
    /// Text to put on the clipboard; the pump writes it (OSC 52).
    pub clipboard: Option<String>,
}

/// How long a status message stays.
const STATUS_SECONDS: i64 = 6;

impl App {
    pub fn new(config: UiConfig, snapshot: Arc<Index>) -> App {
        App {
            screen: Screen::LeaseList,
            focus: Pane::Leases,
            modal: None,
            config,
            snapshot,
            lease: None,
            leases: Vec::new(),
            lease_filter: LeaseFilter::All,
            lease_selected: 0,
            lease_problems: Vec::new(),
            slurm_error: None,
            fs_stuck: None,
            node_selected: 0,
            tasks: TaskList::new(ViewSpec::default()),
            search_input: None,
            search: None,
            logs: LogPane {
                visible: true,
                task: None,
                streams: LogStreams::Stdout,
                follow: true,
                window: None,
                scroll_back: 0,
                page: None,
                generation: 0,
            },
            status: None,
            paused: false,
            quit: false,
            now: 0,
            task_rows: 10,
            log_rows: 8,
            generation: 0,
            open_default_when_listed: false,
            clipboard: None,
        }
    }

    fn next_generation(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    pub fn say(&mut self, text: impl Into<String>, level: Level) {
        self.status = Some((text.into(), level, self.now + STATUS_SECONDS));
    }

    /// Opens a lease's dashboard.
    pub fn open_lease(&mut self, id: String, run_dir: RunDir) -> Vec<Request> {
        self.screen = Screen::Dashboard;
        self.focus = Pane::Tasks;
        self.lease = Some((id.clone(), run_dir.clone()));
        self.snapshot = Arc::new(Index::new(self.config.hb_stale_s));
        self.tasks = TaskList::new(ViewSpec::default());
        self.search = None;
        self.node_selected = 0;
        self.logs.task = None;
        self.logs.window = None;
        self.logs.page = None;
        vec![Request::StopLogs, Request::CancelSearch, Request::OpenLease { id, run_dir }]
    }

    /// The clock moved (the pump calls this about once a second).
    pub fn tick(&mut self, now: i64) -> bool {
        let before = self.now;
        self.now = now;
        if self.status.as_ref().is_some_and(|s| s.2 <= now) {
            self.status = None;
            return true;
        }
        before != now
    }

    /// A new snapshot arrived; returns requests it calls for.
    pub fn on_snapshot(&mut self, snapshot: Arc<Index>) -> Vec<Request> {
        if self.paused {
            return Vec::new();
        }
        let problem = snapshot.cache_problem().filter(|p| self.snapshot.cache_problem() != Some(*p));
        if let Some(problem) = problem.map(str::to_string) {
            // Said once: the cache costs time, never truth.
            self.say(problem, Level::Error);
        }
        self.snapshot = snapshot;
        let mut out = Vec::new();
        // A followed task with no log yet may have one now; the follower
        // polls on its own, nothing to do. Auto-follow the newest running
        // task when configured and nothing is followed.
        if self.config.follow_auto_latest && self.logs.task.is_none() {
            if let Some(id) = self.running_tasks(1).first().copied() {
                out.extend(self.follow(id, LogStreams::Stdout));
            }
        }
        out
    }

    pub fn on_reply(&mut self, reply: Reply) -> Vec<Request> {
        match reply {
            Reply::Leases { rows, problems, slurm_error } => {
                self.leases = rows;
                self.lease_problems = problems;
                self.slurm_error = slurm_error;
                self.lease_selected = self.lease_selected.min(self.visible_leases().len().saturating_sub(1));
                if std::mem::take(&mut self.open_default_when_listed) {
                    let default = self.leases.iter().find(|r| r.is_default && r.present).cloned();
                    let only = match self.leases.as_slice() {
                        [only] if only.present => Some(only.clone()),
                        _ => None,
                    };
                    if let Some(row) = default.or(only) {
                        return self.open_lease(row.id, row.run_dir);
                    }
                }
            }
            Reply::Log(update) if update.generation == self.logs.generation => {
                self.logs.window = Some(update);
            }
            Reply::Page { generation, page } if generation == self.logs.generation => {
                self.logs.page = Some(page);
            }
            Reply::Details { generation, task, details } => {
                if let Some(Modal::Details { task: t, generation: g, loaded, .. }) = &mut self.modal {
                    if *g == generation && *t == task {
                        *loaded = Some(details);
                    }
                }
            }
            Reply::Matches { generation, ids, progress } => {
                if let Some(search) = &mut self.search {
                    if search.generation == generation {
                        // Release the list's share first, so appending a
                        // chunk never copies the matches streamed so far.
                        self.tasks.source = super::task_list::Source::View;
                        Arc::make_mut(&mut search.matches).extend(ids);
                        search.progress = progress;
                        self.tasks.source = super::task_list::Source::Matches(search.matches.clone());
                    }
                }
            }
            Reply::ActionDone { what, outcome } => match outcome {
                Ok(message) => {
                    self.say(format!("{what}: {message}"), Level::Info);
                    // What the action changed shows at once, not at the
                    // next idle scan (a second `P` must see the first).
                    return vec![Request::Engine(crate::engine::Control::RefreshNow)];
                }
                Err(reason) => self.say(format!("{what} failed: {reason}"), Level::Error),
            },
            Reply::Log(_) | Reply::Page { .. } => {}
        }
        Vec::new()
    }

    pub fn visible_leases(&self) -> Vec<&LeaseRow> {
        self.leases.iter().filter(|r| self.lease_filter.accepts(r)).collect()
    }

    /// Running tasks, newest first.
    pub fn running_tasks(&self, limit: usize) -> Vec<TaskId> {
        let view = ViewSpec { states: StateSet::of(&[TaskState::Running]), ..ViewSpec::default() };
        self.snapshot.page(&view, None, true, true, limit)
    }

    pub fn selected_node(&self) -> Option<NodeId> {
        let count = self.snapshot.nodes().count();
        (count > 0).then(|| self.node_selected.min(count - 1) as NodeId)
    }

    /// The task the cursor is on: as last drawn, else the first row.
    pub fn selected_task(&self) -> Option<TaskId> {
        self.tasks.selected.or_else(|| self.tasks.last_window.first().copied()).or_else(|| {
            match &self.tasks.source {
                super::task_list::Source::View => {
                    self.snapshot.page(&self.tasks.view, None, true, true, 1).first().copied()
                }
                super::task_list::Source::Matches(ids) => ids.first().copied(),
            }
        })
    }

    // ----- keys ----------------------------------------------------------

    /// Handles one key; returns the requests it calls for.
    pub fn on_key(&mut self, key: KeyEvent) -> Vec<Request> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return Vec::new();
        }
        if self.search_input.is_some() {
            return self.on_search_key(key);
        }
        if self.modal.is_some() {
            return self.on_modal_key(key);
        }
        match key.code {
            KeyCode::Char('q') => {
                self.quit = true;
                Vec::new()
            }
            KeyCode::Char('?') => {
                self.modal = Some(Modal::Help);
                Vec::new()
            }
            KeyCode::Char('r') => {
                self.say("refreshing", Level::Info);
                vec![Request::Engine(Control::RefreshNow), Request::RefreshLeases { force: true }]
            }
            KeyCode::Char('p') => {
                self.paused = !self.paused;
                self.say(
                    if self.paused { "auto-refresh paused" } else { "auto-refresh resumed" },
                    Level::Info,
                );
                vec![Request::Engine(Control::SetPaused(self.paused))]
            }
            KeyCode::Char('t') if self.screen == Screen::Dashboard => {
                self.modal = Some(Modal::Activity);
                Vec::new()
            }
            KeyCode::Char('/') => {
                self.search_input = Some(SearchInput { text: String::new(), edited_at_ms: 0 });
                Vec::new()
            }
            KeyCode::Tab => {
                self.cycle_focus(1);
                Vec::new()
            }
            KeyCode::BackTab => {
                self.cycle_focus(-1);
                Vec::new()
            }
            _ => match (self.screen, self.focus) {
                (Screen::LeaseList, _) | (_, Pane::Leases) => self.on_leases_key(key),
                (_, Pane::Nodes) => self.on_nodes_key(key),
                (_, Pane::Tasks) => self.on_tasks_key(key),
                (_, Pane::Logs) => self.on_logs_key(key),
            },
        }
    }

    fn cycle_focus(&mut self, by: i32) {
        if self.screen == Screen::LeaseList {
            return;
        }
        let panes: Vec<Pane> =
            Pane::ORDER.into_iter().filter(|p| *p != Pane::Logs || self.logs.visible).collect();
        let at = panes.iter().position(|p| *p == self.focus).unwrap_or(0) as i32;
        let next = (at + by).rem_euclid(panes.len() as i32) as usize;
        self.focus = panes[next];
    }

    fn on_leases_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let count = self.visible_leases().len();
        match key.code {
            KeyCode::Char('j') | KeyCode::Down => {
                self.lease_selected = (self.lease_selected + 1).min(count.saturating_sub(1));
            }
            KeyCode::Char('k') | KeyCode::Up => self.lease_selected = self.lease_selected.saturating_sub(1),
            KeyCode::Char('f') => {
                self.lease_filter = self.lease_filter.next();
                self.lease_selected = 0;
                self.say(format!("leases: {}", self.lease_filter.label()), Level::Info);
            }
            KeyCode::Enter => {
                if let Some(row) = self.visible_leases().get(self.lease_selected).map(|r| (*r).clone()) {
                    if !row.present {
                        self.say(format!("lease {}: no run directory yet", row.id), Level::Error);
                        return Vec::new();
                    }
                    return self.open_lease(row.id, row.run_dir);
                }
            }
            KeyCode::Char('l') => {
                if let Some(row) = self.visible_leases().get(self.lease_selected) {
                    return vec![Request::Act(Action::SetDefaultLease { id: row.id.clone() })];
                }
            }
            KeyCode::Char('x') => {
                if let Some(row) = self.visible_leases().get(self.lease_selected).map(|r| (*r).clone()) {
                    if !row.slurm {
                        self.say("only Slurm leases can be released", Level::Error);
                    } else {
                        self.modal = Some(Modal::Confirm {
                            question: format!("Release Slurm lease {} (scancel)?", row.id),
                            action: Action::ReleaseLease { id: row.id },
                        });
                    }
                }
            }
            KeyCode::Char('n') => {
                let form = LeaseForm {
                    nodes: "1".into(),
                    time: "1:00:00".into(),
                    gpus_per_node: "0".into(),
                    ..LeaseForm::default()
                };
                self.modal = Some(Modal::LeaseForm { form, field: 0, error: None });
            }
            KeyCode::Char('c') => {
                if let Some(row) = self.visible_leases().get(self.lease_selected) {
                    return self.copy(row.id.clone(), "lease id");
                }
            }
            KeyCode::Esc if self.screen == Screen::LeaseList && self.lease.is_some() => {
                self.screen = Screen::Dashboard;
            }
            _ => {}
        }
        Vec::new()
    }

    fn on_nodes_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let count = self.snapshot.nodes().count();
        match key.code {
            KeyCode::Char('j') | KeyCode::Down => {
                self.node_selected = (self.node_selected + 1).min(count.saturating_sub(1))
            }
            KeyCode::Char('k') | KeyCode::Up => self.node_selected = self.node_selected.saturating_sub(1),
            KeyCode::Enter => {
                let node = self.selected_node();
                let view = self.tasks.view;
                let node = if view.node == node { None } else { node };
                self.set_view(ViewSpec { node, ..view });
                self.focus = Pane::Tasks;
            }
            KeyCode::Char('s') => {
                if let Some(node) = self.selected_node() {
                    self.modal = Some(Modal::NodeStats { node });
                }
            }
            KeyCode::Char('P') => {
                let Some((_, run)) = self.lease.clone() else { return Vec::new() };
                if let Some(node) = self.selected_node().and_then(|n| self.snapshot.node(n)) {
                    let name = node.name.to_string();
                    let action = if node.paused {
                        Action::ResumeNode { run, node: name }
                    } else {
                        Action::PauseNode { run, node: name }
                    };
                    return vec![Request::Act(action)];
                }
            }
            KeyCode::Char('V') => {
                let Some((_, run)) = self.lease.clone() else { return Vec::new() };
                if let Some(node) = self.selected_node().and_then(|n| self.snapshot.node(n)) {
                    self.modal = Some(Modal::Confirm {
                        question: format!(
                            "Recover {}: move its claimed tasks back to its inbox? Only do this when its runner is dead.",
                            node.name
                        ),
                        action: Action::RecoverNode { run, node: node.name.to_string() },
                    });
                }
            }
            KeyCode::Char('f') => return self.follow_current(),
            KeyCode::Char('c') => {
                if let Some(node) = self.selected_node().and_then(|n| self.snapshot.node(n)) {
                    return self.copy(node.name.to_string(), "node");
                }
            }
            _ => {}
        }
        Vec::new()
    }

    fn on_tasks_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let snapshot = self.snapshot.clone();
        let rows = self.task_rows.max(1);
        match key.code {
            KeyCode::Char('j') | KeyCode::Down => self.tasks.move_by(&snapshot, 1, rows),
            KeyCode::Char('k') | KeyCode::Up => self.tasks.move_by(&snapshot, -1, rows),
            KeyCode::PageDown => self.tasks.move_by(&snapshot, rows as i64, rows),
            KeyCode::PageUp => self.tasks.move_by(&snapshot, -(rows as i64), rows),
            KeyCode::Char('g') | KeyCode::Home => self.tasks.home(&snapshot),
            KeyCode::Char('G') | KeyCode::End => self.tasks.end(&snapshot, rows),
            KeyCode::Enter => return self.open_details(),
            KeyCode::Char('F') => return self.follow_selected(LogStreams::Stdout),
            KeyCode::Char('E') => return self.follow_selected(LogStreams::Stderr),
            KeyCode::Char('A') => return self.follow_selected(LogStreams::Merged),
            KeyCode::Char('f') => return self.follow_current(),
            KeyCode::Char('L') => return self.open_paged(),
            KeyCode::Char('X') => self.confirm_task_action(true),
            KeyCode::Char('R') => self.confirm_task_action(false),
            KeyCode::Char('c') => {
                if let Some(task) = self.selected_task().and_then(|id| snapshot.task(id)) {
                    return self.copy(task.task_id().to_string(), "task id");
                }
            }
            KeyCode::Char('s') => {
                let order = match self.tasks.view.order {
                    Order::StateThenNewest => Order::SeqInNode,
                    Order::SeqInNode => Order::StateThenNewest,
                };
                let view = ViewSpec { order, ..self.tasks.view };
                self.set_view(view);
                self.say(
                    match order {
                        Order::SeqInNode => "sort: seq within node",
                        Order::StateThenNewest => "sort: state, newest first",
                    },
                    Level::Info,
                );
            }
            KeyCode::Char(c @ '0'..='5') => {
                let states = match c {
                    '1' => StateSet::of(&[TaskState::Pending]),
                    '2' => StateSet::of(&[TaskState::Running, TaskState::Stuck]),
                    '3' => StateSet::of(&[TaskState::Failed]),
                    '4' => StateSet::of(&[TaskState::Finished]),
                    '5' => StateSet::of(&[TaskState::Lost]),
                    _ => StateSet::ALL,
                };
                let states = if states == self.tasks.view.states { StateSet::ALL } else { states };
                let node = if c == '0' { None } else { self.tasks.view.node };
                self.set_view(ViewSpec { states, node, ..self.tasks.view });
                if c == '0' {
                    self.search = None;
                    return vec![Request::CancelSearch];
                }
            }
            KeyCode::Char('e') => {
                // "has stderr output": a background filter over the view.
                if let Some((_, run)) = &self.lease {
                    return self.start_search(SearchQuery::HasStderr(run.clone()), "has stderr".into());
                }
            }
            KeyCode::Esc if self.search.is_some() => {
                self.search = None;
                self.tasks.set_view(self.tasks.view);
                return vec![Request::CancelSearch];
            }
            _ => {}
        }
        Vec::new()
    }

    fn on_logs_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let rows = self.log_rows.max(1);
        match key.code {
            KeyCode::Char(' ') => {
                self.logs.follow = !self.logs.follow;
                if self.logs.follow {
                    self.logs.scroll_back = 0;
                    self.logs.page = None;
                }
                self.say(if self.logs.follow { "follow on" } else { "follow off" }, Level::Info);
            }
            KeyCode::PageUp | KeyCode::Char('k') | KeyCode::Up => {
                let by = if key.code == KeyCode::PageUp { rows } else { 1 };
                if let Some(page) = &self.logs.page {
                    if key.code == KeyCode::PageUp && !page.at_start {
                        let at = PageAt::Before(page.start);
                        return self.request_page(at);
                    }
                } else {
                    self.logs.follow = false;
                    let held = self.logs.window.as_ref().map_or(0, |w| w.lines.len());
                    self.logs.scroll_back = (self.logs.scroll_back + by).min(held.saturating_sub(rows));
                }
            }
            KeyCode::PageDown | KeyCode::Char('j') | KeyCode::Down => {
                let by = if key.code == KeyCode::PageDown { rows } else { 1 };
                if let Some(page) = &self.logs.page {
                    if key.code == KeyCode::PageDown && !page.at_end {
                        let at = PageAt::After(page.end);
                        return self.request_page(at);
                    }
                } else {
                    self.logs.scroll_back = self.logs.scroll_back.saturating_sub(by);
                }
            }
            KeyCode::Char('g') | KeyCode::Home => {
                self.logs.follow = false;
                return self.request_page(PageAt::Start);
            }
            KeyCode::Char('G') | KeyCode::End => {
                self.logs.page = None;
                self.logs.scroll_back = 0;
                self.logs.follow = true;
            }
            KeyCode::Char('o') => {
                let streams = match self.logs.streams {
                    LogStreams::Stdout => LogStreams::Stderr,
                    _ => LogStreams::Stdout,
                };
                if let Some(task) = self.logs.task {
                    return self.follow(task, streams);
                }
            }
            KeyCode::Char('m') => {
                let streams = if self.logs.streams == LogStreams::Merged {
                    LogStreams::Stdout
                } else {
                    LogStreams::Merged
                };
                if let Some(task) = self.logs.task {
                    return self.follow(task, streams);
                }
            }
            KeyCode::Char('c') => {
                if let Some(task) = self.logs.task.and_then(|id| self.snapshot.task(id)) {
                    let stream = self.logs.streams.log_stream();
                    let full = match &self.lease {
                        Some((_, run)) => LogLocation::of_indexed(run, &self.snapshot, task, stream)
                            .primary
                            .display()
                            .to_string(),
                        None => task.result_log(stream).unwrap_or_default().to_string(),
                    };
                    return self.copy(full, "log path");
                }
            }
            KeyCode::Esc => {
                self.logs.visible = false;
                self.focus = Pane::Tasks;
                return vec![Request::StopLogs];
            }
            _ => {}
        }
        Vec::new()
    }

    fn on_search_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let Some(input) = &mut self.search_input else { return Vec::new() };
        match key.code {
            KeyCode::Esc => {
                self.search_input = None;
            }
            KeyCode::Enter => {
                let text = input.text.clone();
                self.search_input = None;
                if self.search.as_ref().is_some_and(|s| s.label == format!("/{text}")) {
                    return Vec::new(); // already running from the debounce
                }
                if text.is_empty() {
                    self.search = None;
                    self.tasks.set_view(self.tasks.view);
                    return vec![Request::CancelSearch];
                }
                return self.start_search(SearchQuery::Text(text.clone()), format!("/{text}"));
            }
            KeyCode::Backspace => {
                input.text.pop();
                input.edited_at_ms += 1;
            }
            KeyCode::Char(c) => {
                input.text.push(c);
                input.edited_at_ms += 1;
            }
            _ => {}
        }
        Vec::new()
    }

    /// Called by the pump when typing paused long enough: searches as you
    /// type, without waiting for Enter.
    pub fn debounced_search(&mut self) -> Vec<Request> {
        let Some(input) = &self.search_input else { return Vec::new() };
        let text = input.text.clone();
        if text.is_empty() || self.search.as_ref().is_some_and(|s| s.label == format!("/{text}")) {
            return Vec::new();
        }
        self.start_search(SearchQuery::Text(text.clone()), format!("/{text}"))
    }

    fn start_search(&mut self, query: SearchQuery, label: String) -> Vec<Request> {
        let generation = self.next_generation();
        self.search = Some(SearchState {
            query: query.clone(),
            label,
            generation,
            matches: Arc::new(Vec::new()),
            progress: SearchProgress::default(),
        });
        self.tasks.set_matches(Arc::new(Vec::new()));
        self.focus = Pane::Tasks;
        vec![Request::Search {
            generation,
            snapshot: self.snapshot.clone(),
            view: self.tasks.view,
            query,
            cache: None,
        }]
    }

    fn on_modal_key(&mut self, key: KeyEvent) -> Vec<Request> {
        let Some(modal) = self.modal.take() else { return Vec::new() };
        match modal {
            Modal::Help | Modal::NodeStats { .. } | Modal::Activity => {
                let close = matches!(
                    key.code,
                    KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('?') | KeyCode::Enter
                );
                if !close {
                    self.modal = Some(modal);
                }
                Vec::new()
            }
            Modal::Confirm { question, action } => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    self.say(format!("{}…", action.describe()), Level::Info);
                    vec![Request::Act(action)]
                }
                KeyCode::Char('n') | KeyCode::Esc | KeyCode::Char('q') => Vec::new(),
                _ => {
                    self.modal = Some(Modal::Confirm { question, action });
                    Vec::new()
                }
            },
            Modal::FollowPicker { candidates, mut selected } => match key.code {
                KeyCode::Char('j') | KeyCode::Down => {
                    selected = (selected + 1).min(candidates.len().saturating_sub(1));
                    self.modal = Some(Modal::FollowPicker { candidates, selected });
                    Vec::new()
                }
                KeyCode::Char('k') | KeyCode::Up => {
                    selected = selected.saturating_sub(1);
                    self.modal = Some(Modal::FollowPicker { candidates, selected });
                    Vec::new()
                }
                KeyCode::Enter => match candidates.get(selected) {
                    Some(&task) => self.follow(task, LogStreams::Stdout),
                    None => Vec::new(),
                },
                KeyCode::Esc | KeyCode::Char('q') => Vec::new(),
                _ => {
                    self.modal = Some(Modal::FollowPicker { candidates, selected });
                    Vec::new()
                }
            },
            Modal::Details { task, generation, loaded, show_env } => match key.code {
                KeyCode::Esc | KeyCode::Char('q') | KeyCode::Enter => Vec::new(),
                KeyCode::Char('v') => {
                    self.modal = Some(Modal::Details { task, generation, loaded, show_env: !show_env });
                    Vec::new()
                }
                KeyCode::Char('F') | KeyCode::Char('E') | KeyCode::Char('A') => {
                    let streams = match key.code {
                        KeyCode::Char('E') => LogStreams::Stderr,
                        KeyCode::Char('A') => LogStreams::Merged,
                        _ => LogStreams::Stdout,
                    };
                    self.follow(task, streams)
                }
                KeyCode::Char('L') => {
                    self.tasks.selected = Some(task);
                    self.open_paged()
                }
                KeyCode::Char('c') => {
                    let command = self.snapshot.task(task).and_then(|t| t.command().map(str::to_string));
                    self.modal = Some(Modal::Details { task, generation, loaded, show_env });
                    match command {
                        Some(command) => self.copy(command, "command"),
                        None => {
                            self.say("command not read yet", Level::Error);
                            Vec::new()
                        }
                    }
                }
                _ => {
                    self.modal = Some(Modal::Details { task, generation, loaded, show_env });
                    Vec::new()
                }
            },
            Modal::LeaseForm { form, field, error } => self.on_form_key(key, form, field, error),
        }
    }

    fn on_form_key(
        &mut self,
        key: KeyEvent,
        mut form: LeaseForm,
        mut field: usize,
        error: Option<String>,
    ) -> Vec<Request> {
        const FIELDS: usize = 10;
        match key.code {
            KeyCode::Esc => return Vec::new(),
            KeyCode::Tab | KeyCode::Down => field = (field + 1) % FIELDS,
            KeyCode::BackTab | KeyCode::Up => field = (field + FIELDS - 1) % FIELDS,
            KeyCode::Enter
                if key.modifiers.contains(KeyModifiers::CONTROL)
                    || field == FIELDS - 1 && form.extra_args.last().is_none_or(|a| a.is_empty()) =>
            {
                form.extra_args.retain(|a| !a.trim().is_empty());
                self.say("submitting lease…", Level::Info);
                return vec![Request::Act(Action::CreateLease(form))];
            }
            KeyCode::Enter if field == FIELDS - 1 => form.extra_args.push(String::new()),
            KeyCode::Enter => field = (field + 1) % FIELDS,
            KeyCode::F(2) => {
                form.extra_args.retain(|a| !a.trim().is_empty());
                self.say("submitting lease…", Level::Info);
                return vec![Request::Act(Action::CreateLease(form))];
            }
            KeyCode::Backspace => {
                form_field(&mut form, field).pop();
            }
            KeyCode::Char(c) => form_field(&mut form, field).push(c),
            _ => {}
        }
        self.modal = Some(Modal::LeaseForm { form, field, error });
        Vec::new()
    }

    fn set_view(&mut self, view: ViewSpec) {
        let search = self.search.take();
        self.tasks.set_view(view);
        if search.is_some() {
            self.say("search cleared by the new filter", Level::Info);
        }
    }

    fn confirm_task_action(&mut self, cancel: bool) {
        let Some((_, run)) = self.lease.clone() else { return };
        let Some(task) = self.selected_task().and_then(|id| self.snapshot.task(id)) else { return };
        let node = self.snapshot.node_name(task.node).to_string();
        let (question, action) = if cancel {
            if task.state.is_terminal() {
                self.say(format!("{} is already {}", task.task_id(), task.state), Level::Error);
                return;
            }
            (
                format!("Cancel {} on {node} ({})?", task.task_id(), task.state),
                Action::CancelTask {
                    run,
                    name: task.name.to_string(),
                    task_id: task.task_id().to_string(),
                    node,
                },
            )
        } else {
            (
                format!("Retry {} on {node} as a new task?", task.task_id()),
                Action::RetryTask { run, name: task.name.to_string(), node },
            )
        };
        self.modal = Some(Modal::Confirm { question, action });
    }

    fn open_details(&mut self) -> Vec<Request> {
        let Some(task) = self.selected_task() else { return Vec::new() };
        let Some((_, run_dir)) = self.lease.clone() else { return Vec::new() };
        let generation = self.next_generation();
        self.modal = Some(Modal::Details { task, generation, loaded: None, show_env: false });
        vec![Request::LoadDetails { generation, snapshot: self.snapshot.clone(), task, run_dir }]
    }

    fn follow_selected(&mut self, streams: LogStreams) -> Vec<Request> {
        match self.selected_task() {
            Some(task) => self.follow(task, streams),
            None => self.follow_current(),
        }
    }

    /// `f`: follow the one running task, or pick among several.
    fn follow_current(&mut self) -> Vec<Request> {
        let running = self.running_tasks(200);
        match running.as_slice() {
            [] => {
                self.say("no running task to follow", Level::Error);
                Vec::new()
            }
            [only] => self.follow(*only, LogStreams::Stdout),
            _ => {
                self.modal = Some(Modal::FollowPicker { candidates: running, selected: 0 });
                Vec::new()
            }
        }
    }

    pub fn follow(&mut self, task: TaskId, streams: LogStreams) -> Vec<Request> {
        let Some((_, run)) = &self.lease else { return Vec::new() };
        let Some(t) = self.snapshot.task(task) else { return Vec::new() };
        let stdout = LogLocation::of_indexed(run, &self.snapshot, t, LogStream::Stdout);
        let stderr = LogLocation::of_indexed(run, &self.snapshot, t, LogStream::Stderr);
        let generation = self.next_generation();
        self.logs = LogPane {
            visible: true,
            task: Some(task),
            streams,
            follow: true,
            window: None,
            scroll_back: 0,
            page: None,
            generation,
        };
        self.focus = Pane::Logs;
        let max_lines = self.config.log_tail_lines.max(self.log_rows * 4).max(200);
        vec![Request::Follow { generation, stdout, stderr, streams, max_lines }]
    }

    fn open_paged(&mut self) -> Vec<Request> {
        let Some(task) = self.selected_task() else { return Vec::new() };
        let mut out = self.follow(task, LogStreams::Stdout);
        self.logs.follow = false;
        out.extend(self.request_page(PageAt::Start));
        out
    }

    fn request_page(&mut self, at: PageAt) -> Vec<Request> {
        let Some(task) = self.logs.task.and_then(|id| self.snapshot.task(id)) else { return Vec::new() };
        let Some((_, run)) = &self.lease else { return Vec::new() };
        let path = LogLocation::of_indexed(run, &self.snapshot, task, self.logs.streams.log_stream());
        vec![Request::ReadPage {
            generation: self.logs.generation,
            path,
            anchor: at,
            lines: self.log_rows.max(1),
        }]
    }

    /// Copies with OSC 52: what came from files is cleaned first (no
    /// escape sequence, bidi override or control character reaches the
    /// clipboard), and text past [`MAX_COPY_BYTES`] is refused with a
    /// message rather than sent for the terminal to drop while we say
    /// "copied".
    fn copy(&mut self, text: String, what: &str) -> Vec<Request> {
        // Measured before cleaning too: cleaning a 16 MiB command would
        // stall the pump, and cleaning never shrinks honest text 4-fold.
        let text = if text.len() > 4 * MAX_COPY_BYTES { text } else { crate::sanitize::clean_line(&text) };
        if text.len() > MAX_COPY_BYTES {
            let message = format!(
                "{what} not copied: {} KiB is more than a terminal takes in one OSC 52 copy ({} KiB)",
                text.len() / 1024,
                MAX_COPY_BYTES / 1024
            );
            self.say(message, Level::Error);
            return Vec::new();
        }
        self.say(format!("copied {what} to the clipboard (OSC 52)"), Level::Info);
        self.clipboard = Some(text);
        Vec::new()
    }
}

/// The most text `c` copies: base64 makes it 4/3 larger, and terminals
/// drop OSC 52 sequences past about 100 KB (xterm, tmux's default).
pub const MAX_COPY_BYTES: usize = 64 << 10;

fn form_field(form: &mut LeaseForm, field: usize) -> &mut String {
    match field {
        0 => &mut form.name,
        1 => &mut form.nodes,
        2 => &mut form.time,
        3 => &mut form.partition,
        4 => &mut form.qos,
        5 => &mut form.account,
        6 => &mut form.constraint,
        7 => &mut form.reservation,
        8 => &mut form.gpus_per_node,
        _ => {
            if form.extra_args.is_empty() {
                form.extra_args.push(String::new());
            }
            let last = form.extra_args.len() - 1;
            &mut form.extra_args[last]
        }
    }
}

/// Labels of the form's fields, in order.
pub const FORM_FIELDS: [&str; 10] = [
    "name",
    "nodes",
    "time",
    "partition",
    "qos",
    "account",
    "constraint",
    "reservation",
    "gpus-per-node",
    "extra sbatch arg",
];
