//! Text and JSON output of the one-shot commands (`status`, `tasks`).
//! Pure formatting over a snapshot; everything shown is sanitised.

use serde::Serialize;

use crate::index::{Index, NodeHealth, Order, StateSet, TaskState, ViewSpec};
use crate::sanitize::clean_line;

/// JSON for people's terminals and scripts alike: pretty, with C1
/// controls, bidi overrides and invisible characters escaped.
pub fn json_text(value: &impl Serialize) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_default();
    crate::sanitize::escape_json_text(&text).into_owned()
}

pub fn status_text(index: &Index, lease: &str, run_dir: &std::path::Path) -> String {
    let mut out = String::new();
    out.push_str(&format!("lease {}  ({})\n", clean_line(lease), clean_line(&run_dir.display().to_string())));
    if let Some(error) = index.lease_error() {
        out.push_str(&format!("scan error: {}\n", clean_line(error)));
    }
    out.push_str(&format!("tasks {}", index.task_count()));
    for state in TaskState::ALL {
        let n = index.count(state);
        if n > 0 {
            out.push_str(&format!("  {} {}", state.label(), n));
        }
    }
    out.push('\n');
    if index.unaccounted_count() > 0 {
        out.push_str(&format!(
            "warning: {} task(s) not seen in any queue directory\n",
            index.unaccounted_count()
        ));
    }
    out.push_str(&format!(
        "\n{:<16} {:<6} {:>7} {:>8} {:>7} {:>6} {:>7} {:>9} {:>7}  {}\n",
        "NODE", "HEALTH", "HB", "RUNNING", "PENDING", "LOST?", "FAILED", "FINISHED", "OTHER", "NOTES"
    ));
    for (_, node) in index.nodes() {
        let hb = match node.health {
            NodeHealth::Ok { age_s } | NodeHealth::Stale { age_s } => format!("{age_s}s"),
            NodeHealth::ClockSkew { ahead_s } => format!("+{ahead_s}s"),
            _ => "-".into(),
        };
        let running = node.count(TaskState::Running) + node.count(TaskState::Stuck);
        let other =
            node.count(TaskState::Done) + node.count(TaskState::Cancelled) + node.count(TaskState::Skipped);
        let mut notes = Vec::new();
        if node.paused {
            notes.push("paused".to_string());
        }
        if let NodeHealth::ClockSkew { ahead_s } = node.health {
            notes.push(format!("heartbeat {ahead_s}s in the future: clock skew"));
        }
        if node.count(TaskState::Stuck) > 0 {
            notes.push(format!("{} stuck", node.count(TaskState::Stuck)));
        }
        if let Some(e) = &node.heartbeat_error {
            notes.push(clean_line(e));
        }
        for e in node.scan_errors.iter().flatten() {
            notes.push(clean_line(e));
        }
        if node.unrecognised > 0 {
            notes.push(format!("{} unrecognised file(s)", node.unrecognised));
        }
        out.push_str(&format!(
            "{:<16} {:<6} {:>7} {:>8} {:>7} {:>6} {:>7} {:>9} {:>7}  {}\n",
            clean_line(&node.name),
            node.health.label(),
            hb,
            running,
            node.count(TaskState::Pending),
            node.count(TaskState::Lost),
            node.count(TaskState::Failed),
            node.count(TaskState::Finished),
            other,
            notes.join("; ")
        ));
    }
    out
}

#[derive(Serialize)]
struct StatusJson<'a> {
    lease: &'a str,
    tasks: usize,
    counts: std::collections::BTreeMap<&'static str, u64>,
    nodes: Vec<NodeJson>,
    scan_error: Option<&'a str>,
}

#[derive(Serialize)]
struct NodeJson {
    node: String,
    health: &'static str,
    heartbeat_age_s: Option<i64>,
    paused: bool,
    counts: std::collections::BTreeMap<&'static str, u32>,
    errors: Vec<String>,
}

pub fn status_json(index: &Index, lease: &str) -> String {
    let counts = TaskState::ALL.iter().map(|s| (s.label(), index.count(*s))).collect();
    let nodes = index
        .nodes()
        .map(|(_, n)| NodeJson {
            node: n.name.to_string(),
            health: n.health.label(),
            heartbeat_age_s: match n.health {
                NodeHealth::Ok { age_s } | NodeHealth::Stale { age_s } => Some(age_s),
                _ => None,
            },
            paused: n.paused,
            counts: TaskState::ALL.iter().map(|s| (s.label(), n.count(*s))).collect(),
            errors: n
                .heartbeat_error
                .iter()
                .chain(n.scan_errors.iter().flatten())
                .map(|e| e.to_string())
                .collect(),
        })
        .collect();
    let status =
        StatusJson { lease, tasks: index.task_count(), counts, nodes, scan_error: index.lease_error() };
    json_text(&status)
}

/// Filters of `leaseq tasks`.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub states: Vec<TaskState>,
    pub node: Option<String>,
    pub by_seq: bool,
    pub limit: Option<usize>,
}

/// The view for a filter, or a message when the node does not exist.
pub fn view_for(index: &Index, filter: &TaskFilter) -> Result<ViewSpec, String> {
    let node = match &filter.node {
        None => None,
        Some(name) => Some(index.find_node(name).ok_or_else(|| {
            let known: Vec<String> = index.nodes().map(|(_, n)| n.name.to_string()).collect();
            format!("no node {name:?} in this lease (nodes: {})", known.join(", "))
        })?),
    };
    let states = if filter.states.is_empty() { StateSet::ALL } else { StateSet::of(&filter.states) };
    let order = if filter.by_seq { Order::SeqInNode } else { Order::StateThenNewest };
    Ok(ViewSpec { node, states, order })
}

#[derive(Serialize)]
struct TaskJson<'a> {
    task_id: &'a str,
    node: &'a str,
    seq: u64,
    name: &'a str,
    state: TaskState,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    created_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    problem: Option<&'a str>,
}

fn nonzero(t: i64) -> Option<i64> {
    (t != 0).then_some(t)
}

/// Writes the tasks of a view as one JSON array, streaming (a million rows
/// need not be held as a string).
pub fn write_tasks_json(
    index: &Index,
    view: &ViewSpec,
    limit: Option<usize>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    out.write_all(b"[")?;
    let ids = index.page(view, None, true, true, limit.unwrap_or(usize::MAX));
    for (i, id) in ids.into_iter().enumerate() {
        let Some(task) = index.task(id) else { continue };
        let name = task.name.text();
        let row = TaskJson {
            task_id: task.task_id(),
            node: index.node_name(task.node),
            seq: task.seq(),
            name: &name,
            state: task.state,
            exit_code: task.exit_code(),
            created_at: nonzero(task.created_at),
            started_at: nonzero(task.started_at),
            finished_at: nonzero(task.finished_at),
            command: task.command(),
            error: task.runner_error(),
            problem: task.problem(),
        };
        if i > 0 {
            out.write_all(b",")?;
        }
        out.write_all(b"\n")?;
        let text = serde_json::to_string(&row).map_err(std::io::Error::other)?;
        out.write_all(crate::sanitize::escape_json_text(&text).as_bytes())?;
    }
    out.write_all(b"\n]\n")
}

pub fn write_tasks_text(
    index: &Index,
    view: &ViewSpec,
    limit: Option<usize>,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    writeln!(out, "{:<9} {:<12} {:<10} {:>5}  COMMAND / NAME", "STATE", "NODE", "TASK", "EXIT")?;
    for id in index.page(view, None, true, true, limit.unwrap_or(usize::MAX)) {
        let Some(task) = index.task(id) else { continue };
        let exit = task.exit_code().map_or("-".to_string(), |c| c.to_string());
        let name = task.name.text();
        let what = task.problem().or(task.command()).unwrap_or(&name);
        writeln!(
            out,
            "{:<9} {:<12} {:<10} {:>5}  {}",
            task.state.label(),
            clean_line(index.node_name(task.node)),
            clean_line(task.task_id()),
            exit,
            clean_line(what)
        )?;
    }
    Ok(())
}
