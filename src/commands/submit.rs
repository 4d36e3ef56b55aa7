//! `leaseq submit`: new tasks into a lease's inbox.
//!
//! A task is filed as the older tool files it (seq = Unix microseconds,
//! task id `T` + 6 hex digits of its uuid, key `{lease}-{node}-{micros}`),
//! with the submitter's environment, so it runs as it would from this
//! shell. Without `--node`, each task goes to the live node with the
//! fewest pending tasks.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::clock::unix_now;
use crate::control::{new_spec, stem_of};
use crate::index::health_at;
use crate::model::{spec_file_name, TaskSpec};
use crate::paths::{is_valid_node_name, QueueDir, RunDir};
use crate::store::StagedWrites;

/// One node of a lease as submit sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLoad {
    pub node: String,
    /// When its heartbeat was written; None without a readable heartbeat.
    pub heartbeat_ts: Option<i64>,
    pub pending: usize,
    /// Its runner says it claims nothing new, or it has exited.
    pub paused: bool,
    pub stopped: bool,
}

/// Every node of the run dir with its heartbeat age and inbox length.
pub fn node_loads(run: &RunDir) -> Vec<NodeLoad> {
    let nodes = crate::scan::discover_nodes(&crate::scan::FsSource, run).names;
    nodes
        .into_iter()
        .filter(|n| is_valid_node_name(n))
        .map(|node| {
            let heartbeat = crate::scan::read_heartbeat(&crate::scan::FsSource, run, &node).ok();
            let heartbeat_ts = heartbeat.as_ref().map(|hb| hb.ts);
            let paused = heartbeat.as_ref().is_some_and(|hb| hb.paused)
                || crate::scan::read_paused(&crate::scan::FsSource, run, &node);
            let stopped = heartbeat.as_ref().is_some_and(|hb| hb.stopped);
            let pending =
                crate::control::spec_stems(&crate::runfs::FsSource, &run.queue(QueueDir::Inbox, &node))
                    .map_or(0, |s| s.len());
            NodeLoad { node, heartbeat_ts, pending, paused, stopped }
        })
        .collect()
}

/// The nodes a new task should go to: live (heartbeat no older than
/// `stale_after_s`, runner not stopped) and not paused; paused live nodes
/// when every live node is paused; or why there are none.
pub fn live_nodes(loads: &[NodeLoad], stale_after_s: i64, lease: &str) -> Result<Vec<NodeLoad>, String> {
    let now = unix_now();
    let live: Vec<NodeLoad> = loads
        .iter()
        .filter(|n| {
            !n.stopped && n.heartbeat_ts.is_some_and(|ts| health_at(ts, now, stale_after_s).is_alive())
        })
        .cloned()
        .collect();
    let running: Vec<NodeLoad> = live.iter().filter(|n| !n.paused).cloned().collect();
    if !running.is_empty() {
        return Ok(running);
    }
    if !live.is_empty() {
        return Ok(live);
    }
    if loads.is_empty() {
        return Err(format!(
            "lease {lease} has no nodes yet (no runner has started: a Slurm lease may still be pending); \
             pass --node NAME to queue for a node anyway"
        ));
    }
    let seen: Vec<String> = loads
        .iter()
        .map(|n| match n.heartbeat_ts {
            Some(_) if n.stopped => format!("{} (its runner stopped)", n.node),
            Some(ts) => format!("{} (heartbeat {}s ago)", n.node, now.saturating_sub(ts)),
            None => format!("{} (no heartbeat)", n.node),
        })
        .collect();
    Err(format!(
        "no live runner in lease {lease}: {}; pass --node NAME to queue anyway, or start a runner \
         (`leaseq daemon start` for the local lease)",
        seen.join(", ")
    ))
}

/// What to submit.
#[derive(Debug, Clone)]
pub struct Submission {
    pub lease_id: String,
    pub commands: Vec<String>,
    pub cwd: String,
    pub env: BTreeMap<String, String>,
    pub gpus: u32,
}

/// One submitted task, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct Submitted {
    pub task_id: String,
    pub name: String,
    pub node: String,
    pub lease: String,
    pub seq: u64,
}

/// Files every command as a task, each on `choose()`'s node, with one
/// filesystem sync for all of them. Returns them in submission order.
pub fn submit(
    run: &RunDir,
    submission: &Submission,
    mut choose: impl FnMut() -> String,
) -> Result<Vec<Submitted>, String> {
    let mut specs: Vec<TaskSpec> = Vec::with_capacity(submission.commands.len());
    for command in &submission.commands {
        let node = choose();
        specs.push(new_spec(
            &submission.lease_id,
            &node,
            command.clone(),
            submission.cwd.clone(),
            submission.env.clone(),
            submission.gpus,
        ));
    }
    let mut writes = StagedWrites::new();
    let mut made = std::collections::HashSet::new();
    let mut submitted = Vec::with_capacity(specs.len());
    for spec in &specs {
        let dir = run.queue(QueueDir::Inbox, &spec.target_node);
        if made.insert(dir.clone()) {
            std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        let stem = stem_of(spec);
        let bytes = serde_json::to_vec(spec).map_err(|e| e.to_string())?;
        let path = dir.join(spec_file_name(&stem));
        writes.stage(&path, &bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
        submitted.push(Submitted {
            task_id: spec.task_id.clone(),
            name: stem,
            node: spec.target_node.clone(),
            lease: spec.lease_id.clone(),
            seq: spec.seq,
        });
    }
    writes.publish().map_err(|(published, e)| {
        format!(
            "publishing the tasks in {}: {e}; {published} of {} were queued (the first ones; \
             `leaseq tasks` shows them)",
            run.0.display(),
            specs.len()
        )
    })?;
    Ok(submitted)
}

/// A chooser that spreads tasks over `nodes`, each to the one with the
/// fewest pending (counting what this submission already sent).
pub fn least_pending(nodes: Vec<NodeLoad>) -> impl FnMut() -> String {
    let mut loads: Vec<(usize, String)> = nodes.into_iter().map(|n| (n.pending, n.node)).collect();
    move || {
        let best = loads.iter_mut().min_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
        match best {
            Some(best) => {
                best.0 += 1;
                best.1.clone()
            }
            None => String::new(),
        }
    }
}

/// The command `submit -- ARGS...` runs: one argument as it is (a whole
/// shell command line: `"make && make test"`), several as their words,
/// each quoted as needed, so what runs is exactly what was typed
/// (`python -c 'print("a b")'`).
pub fn command_line(args: &[String]) -> String {
    match args {
        [one] => one.clone(),
        many => many.iter().map(|a| crate::slurm::shell_quote(a)).collect::<Vec<_>>().join(" "),
    }
}

/// The commands of `submit --file`: one a line; blank lines and lines
/// starting with `#` are skipped.
pub fn commands_from_file(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let commands: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if commands.is_empty() {
        return Err(format!("{} has no commands (one a line; # starts a comment)", path.display()));
    }
    Ok(commands)
}

/// The submitter's environment, as the older tool records it, less what
/// belongs to this shell's session rather than to the task.
pub fn submitter_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| {
            !k.starts_with("SLURM_") && !matches!(k.as_str(), "CUDA_VISIBLE_DEVICES" | "_" | "OLDPWD")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(node: &str, age: Option<i64>, pending: usize) -> NodeLoad {
        let heartbeat_ts = age.map(|a| unix_now() - a);
        NodeLoad { node: node.into(), heartbeat_ts, pending, paused: false, stopped: false }
    }

    #[test]
    fn a_command_line_is_what_was_typed() {
        let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(command_line(&words(&["make && make test"])), "make && make test");
        assert_eq!(command_line(&words(&["python", "train.py", "--lr", "0.1"])), "python train.py --lr 0.1");
        assert_eq!(command_line(&words(&["python", "-c", "print(\"a b\")"])), "python -c 'print(\"a b\")'");
    }

    #[test]
    fn paused_and_stopped_nodes_are_not_chosen_while_others_run() {
        let paused = NodeLoad { paused: true, ..load("a", Some(1), 0) };
        let stopped = NodeLoad { stopped: true, ..load("b", Some(1), 0) };
        let live = live_nodes(&[paused.clone(), stopped.clone(), load("c", Some(1), 9)], 60, "7").unwrap();
        assert_eq!(live.iter().map(|n| n.node.as_str()).collect::<Vec<_>>(), vec!["c"]);
        let only_paused = live_nodes(&[paused, stopped.clone()], 60, "7").unwrap();
        assert_eq!(only_paused[0].node, "a", "queued there, to run on resume");
        assert!(live_nodes(&[stopped], 60, "7").unwrap_err().contains("its runner stopped"));
    }

    #[test]
    fn least_pending_spreads_and_breaks_ties_by_name() {
        let mut choose = least_pending(vec![load("b", Some(1), 2), load("a", Some(1), 0)]);
        let picks: Vec<String> = (0..4).map(|_| choose()).collect();
        assert_eq!(picks, vec!["a", "a", "a", "b"]);
    }

    #[test]
    fn only_live_nodes_or_a_message_naming_them() {
        let loads = vec![load("a", Some(500), 0), load("b", None, 0)];
        let error = live_nodes(&loads, 60, "7").unwrap_err();
        assert!(error.contains("a (heartbeat 500s ago)") && error.contains("b (no heartbeat)"), "{error}");
        assert!(live_nodes(&[], 60, "7").unwrap_err().contains("no nodes yet"));
        let live = live_nodes(&[load("a", Some(3), 0), load("b", Some(90), 0)], 60, "7").unwrap();
        assert_eq!(live.len(), 1);
    }

    #[test]
    fn submitted_tasks_have_unique_increasing_seqs_and_keys() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        let submission = Submission {
            lease_id: "7".into(),
            commands: (0..200).map(|i| format!("echo {i}")).collect(),
            cwd: "/".into(),
            env: BTreeMap::new(),
            gpus: 0,
        };
        let out = submit(&run, &submission, || "a".to_string()).unwrap();
        assert!(out.windows(2).all(|w| w[0].seq < w[1].seq && w[0].name < w[1].name));
        let files = std::fs::read_dir(run.queue(QueueDir::Inbox, "a")).unwrap().count();
        assert_eq!(files, 200, "no temp files left");
    }
}
