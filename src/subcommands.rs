//! What each subcommand of the binary does, beyond parsing: resolving its
//! arguments against the lease, calling the library, and printing for
//! people (`--json` for scripts). Errors say what to do and exit non-zero.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use leaseq::clock::unix_now;
use leaseq::commands::resolve::{resolve_task, TaskRef};
use leaseq::commands::submit::{self, Submission};
use leaseq::control::{self, CancelOutcome};
use leaseq::index::{Index, TaskState};
use leaseq::model::LeaseMeta;
use leaseq::oneshot::{build, Reads};
use leaseq::paths::{Roots, RunDir, UiConfig};
use leaseq::runner::daemon;
use leaseq::runner::slots::devices;
use leaseq::runner::RunnerOptions;
use leaseq::sanitize::{clean_line, clean_log};
use leaseq::scan::FsSource;
use leaseq::task_logs::LogStream;

use super::{DaemonAction, LeaseAction};

/// `leaseq run`'s flags, as given.
pub struct RunFlags {
    pub lease: String,
    pub node: Option<String>,
    pub root: Option<PathBuf>,
    pub parallel: Option<usize>,
    pub gpus: Option<usize>,
    pub grace: Duration,
    pub poll: Duration,
    pub heartbeat_every: Duration,
}

/// The runner's options from its flags, the lease's meta, the config and
/// the environment Slurm gives a job step.
pub fn runner_options(roots: &Roots, flags: RunFlags, config: &UiConfig) -> Result<RunnerOptions, String> {
    let RunFlags { lease, node, root, parallel, gpus, grace, poll, heartbeat_every } = flags;
    if root.is_none() && !leaseq::paths::is_valid_lease_id(&lease) {
        return Err(format!("{:?} is not a lease id (a Slurm job id, or local:<host>)", clean_line(&lease)));
    }
    if root.is_none() && lease.starts_with("local:") {
        roots.ensure_private_runtime()?;
    }
    let run = match root {
        Some(root) => RunDir(root),
        None => RunDir(
            roots.run_dir(&lease).ok_or_else(|| format!("{:?} is not a lease id", clean_line(&lease)))?,
        ),
    };
    let meta = leaseq::leases::read_lease_meta(&FsSource, &run);
    let (meta_parallel, meta_gpus) = match &meta {
        Some(LeaseMeta::Local { local, .. }) => {
            (Some(local.parallel as usize), Some(local.total_gpus as usize))
        }
        _ => (None, None),
    };
    let slurm_gpus = std::env::var("SLURM_GPUS_ON_NODE").ok().and_then(|g| g.trim().parse::<usize>().ok());
    let count = gpus.or(meta_gpus).or(slurm_gpus);
    let visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
    Ok(RunnerOptions {
        run,
        lease_id: lease,
        node: node.unwrap_or_else(leaseq::paths::hostname),
        parallel: parallel.or(meta_parallel).unwrap_or(1).max(1),
        gpus: devices(visible.as_deref(), count),
        grace,
        poll,
        heartbeat_every,
        live_heartbeat: Duration::from_secs(config.hb_stale_s),
    })
}

pub fn daemon(roots: &Roots, action: DaemonAction) -> Result<ExitCode, String> {
    match action {
        DaemonAction::Start { parallel, gpus, grace_s } => {
            let exe = leaseq::slurm::runner_binary()?;
            let options = daemon::StartOptions { parallel, gpus, grace_s };
            println!("{}", daemon::start(roots, &exe, &options)?);
        }
        DaemonAction::Stop { wait_s } => println!("{}", daemon::stop(roots, Duration::from_secs(wait_s))?),
        DaemonAction::Status { json } => {
            let status = daemon::status(roots)?;
            if json {
                println!("{}", leaseq::cli::json_text(&status));
            } else {
                print!("{}", status.text());
            }
            if !status.running {
                return Ok(ExitCode::from(3));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[allow(clippy::too_many_arguments)]
pub fn submit(
    roots: &Roots,
    lease_id: &str,
    run: &RunDir,
    node: Option<String>,
    gpus: u32,
    cwd: Option<PathBuf>,
    file: Option<PathBuf>,
    json: bool,
    command: Vec<String>,
    config: &UiConfig,
) -> Result<ExitCode, String> {
    let commands = match &file {
        Some(path) => submit::commands_from_file(path)?,
        None => vec![submit::command_line(&command)],
    };
    if commands.iter().any(|c| c.trim().is_empty()) {
        return Err("the command is empty (leaseq submit -- CMD ARGS...)".into());
    }
    let cwd = match cwd {
        Some(dir) => std::path::absolute(&dir).map_err(|e| format!("{}: {e}", dir.display()))?,
        None => std::env::current_dir().map_err(|e| format!("the current directory: {e}"))?,
    };
    let cwd = cwd.to_str().ok_or_else(|| format!("{} is not UTF-8; pass --cwd", cwd.display()))?.to_string();
    let mut chooser: Box<dyn FnMut() -> String> = match node {
        Some(node) => {
            if !leaseq::paths::is_valid_node_name(&node) {
                return Err(format!("{:?} is not a node name", clean_line(&node)));
            }
            Box::new(move || node.clone())
        }
        None if lease_id == roots.local_lease_id() => {
            if !daemon::status(roots).is_ok_and(|s| s.running) {
                eprintln!(
                    "leaseq: note: the local runner is not running; `leaseq daemon start` runs the queue"
                );
            }
            let host = roots.hostname.clone();
            Box::new(move || host.clone())
        }
        None => {
            let loads = submit::node_loads(run);
            let live = submit::live_nodes(&loads, config.hb_stale_s as i64, lease_id)?;
            Box::new(submit::least_pending(live))
        }
    };
    let submission =
        Submission { lease_id: lease_id.to_string(), commands, cwd, env: submit::submitter_env(), gpus };
    let submitted = submit::submit(run, &submission, &mut *chooser)?;
    let mut out = std::io::stdout().lock();
    if json {
        let _ = writeln!(out, "{}", leaseq::cli::json_text(&submitted));
    } else if let [one] = submitted.as_slice() {
        let _ =
            writeln!(out, "submitted {} to {} (lease {}): {}", one.task_id, one.node, one.lease, one.name);
    } else {
        let mut per_node = std::collections::BTreeMap::<&str, usize>::new();
        for s in &submitted {
            *per_node.entry(&s.node).or_default() += 1;
        }
        let spread: Vec<String> = per_node.iter().map(|(n, c)| format!("{n}: {c}")).collect();
        let _ =
            writeln!(out, "submitted {} tasks to lease {lease_id} ({})", submitted.len(), spread.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

fn names_index(run: &RunDir, config: &UiConfig) -> Index {
    build(&FsSource, run, config, unix_now(), Reads::None, &leaseq::cache::CacheUse::Off)
}

/// Runs `act` on each TASK; prints one line (or JSON object) per task and
/// fails when any did.
fn each_task(
    run: &RunDir,
    wanted: &[String],
    json: bool,
    config: &UiConfig,
    act: impl Fn(&TaskRef) -> Result<(String, serde_json::Value), String>,
) -> Result<ExitCode, String> {
    let index = names_index(run, config);
    let mut failed = 0;
    let mut rows = Vec::new();
    for arg in wanted {
        let outcome = resolve_task(&index, arg).and_then(|task| act(&task).map(|done| (task, done)));
        match outcome {
            Ok((task, (text, value))) => {
                if json {
                    rows.push(serde_json::json!({"task": task.name, "task_id": task.task_id, "node": task.node, "ok": true, "result": value}));
                } else {
                    println!("{}", clean_log(&text));
                }
            }
            Err(message) => {
                failed += 1;
                if json {
                    rows.push(serde_json::json!({"task": arg, "ok": false, "error": message}));
                } else {
                    eprintln!("leaseq: {}", clean_log(&message));
                }
            }
        }
    }
    if json {
        println!("{}", leaseq::cli::json_text(&rows));
    }
    Ok(if failed > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

pub fn cancel(run: &RunDir, tasks: &[String], json: bool, config: &UiConfig) -> Result<ExitCode, String> {
    each_task(run, tasks, json, config, |task| {
        if task.state.is_terminal() {
            return Err(format!("{} is already {}; nothing to cancel", task.task_id, task.state));
        }
        match control::cancel(&FsSource, run, &task.node, &task.name, &task.task_id)? {
            CancelOutcome::CancelledPending => Ok((
                format!("cancelled {} (it was pending on {})", task.task_id, task.node),
                "cancelled".into(),
            )),
            CancelOutcome::Requested(path) => {
                let waits = match task.state {
                    TaskState::Stuck => format!(
                        "; its node's runner is not alive, so it waits for one (or `leaseq recover {}` then cancel)",
                        task.node
                    ),
                    TaskState::Lost => {
                        "; the task is LOST? (in no queue directory): a runner acts only if it reappears".into()
                    }
                    _ => String::new(),
                };
                Ok((
                    format!(
                        "cancel of {} ({}) sent to {}'s runner: SIGTERM, then SIGKILL after its grace period{waits}",
                        task.task_id, task.state, task.node
                    ),
                    serde_json::json!({"requested": path.display().to_string()}),
                ))
            }
        }
    })
}

pub fn retry(run: &RunDir, tasks: &[String], json: bool, config: &UiConfig) -> Result<ExitCode, String> {
    each_task(run, tasks, json, config, |task| {
        let path = control::retry(&FsSource, run, &task.node, &task.name)?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let id = leaseq::model::TaskName::parse(&stem).map_or(stem.clone(), |n| n.task_id.to_string());
        Ok((
            format!("{} queued again as {id} on {}: {stem}", task.task_id, task.node),
            serde_json::json!({"new_task_id": id, "new_task": stem}),
        ))
    })
}

fn stream(err: bool) -> LogStream {
    if err {
        LogStream::Stderr
    } else {
        LogStream::Stdout
    }
}

/// Where log bytes go: as they are to a pipe (or with `--raw`), cleaned of
/// escape sequences on a terminal (a log can set the title, write the
/// clipboard or answer queries as if typed).
fn log_output(raw: bool) -> Box<dyn Write> {
    let stdout = std::io::stdout();
    if raw || !stdout.is_terminal() {
        Box::new(stdout.lock())
    } else {
        Box::new(leaseq::commands::logs::TerminalSafe(stdout.lock()))
    }
}

pub fn logs(
    run: &RunDir,
    task: &str,
    err: bool,
    tail: Option<usize>,
    raw: bool,
    config: &UiConfig,
) -> Result<ExitCode, String> {
    let index = names_index(run, config);
    let task = resolve_task(&index, task)?;
    let mut out = log_output(raw);
    match leaseq::commands::logs::print_log(run, &task, stream(err), tail, &mut out) {
        Err(e) if e.is_empty() => Ok(ExitCode::SUCCESS), // closed pipe
        other => other.map(|()| ExitCode::SUCCESS),
    }
}

pub fn follow(
    run: &RunDir,
    task: Option<String>,
    err: bool,
    tail: usize,
    raw: bool,
    config: &UiConfig,
) -> Result<ExitCode, String> {
    let index = names_index(run, config);
    let task = match task {
        Some(wanted) => resolve_task(&index, &wanted)?,
        None => choose_running(&index)?,
    };
    let what = format!("following {} {} on {} ({})", stream(err).label(), task.task_id, task.node, task.name);
    eprintln!("leaseq: {}", clean_line(&what));
    let mut out = log_output(raw);
    match leaseq::commands::logs::follow_log(run, &task, stream(err), tail, &mut out) {
        Err(e) if e.is_empty() => Ok(ExitCode::SUCCESS),
        other => other.map(|()| ExitCode::SUCCESS),
    }
}

/// The dashboard's rule: the only running task, else a choice among them
/// (asked on a terminal, listed otherwise).
fn choose_running(index: &Index) -> Result<TaskRef, String> {
    let filter =
        leaseq::cli::TaskFilter { states: vec![TaskState::Running, TaskState::Stuck], ..Default::default() };
    let view = leaseq::cli::view_for(index, &filter)?;
    let mut running: Vec<TaskRef> = index
        .page(&view, None, true, true, 200)
        .into_iter()
        .filter_map(|id| index.task(id).map(|t| t.name.to_string()))
        .filter_map(|name| resolve_task(index, &name).ok())
        .collect();
    match running.len() {
        0 => Err("no running task to follow (name one: leaseq follow TASK)".into()),
        1 => Ok(running.swap_remove(0)),
        n => {
            let list: Vec<String> = running
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    format!(
                        "  {:>3}  {}  {}  {}",
                        i + 1,
                        clean_line(&t.task_id),
                        clean_line(&t.node),
                        clean_line(&t.name)
                    )
                })
                .collect();
            if !std::io::stdin().is_terminal() {
                return Err(format!(
                    "{n} tasks are running; follow one with `leaseq follow TASK`:\n{}",
                    list.join("\n")
                ));
            }
            eprintln!("{n} tasks are running:\n{}", list.join("\n"));
            eprint!("follow which (1-{n})? ");
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer).map_err(|e| e.to_string())?;
            let pick: usize = answer
                .trim()
                .parse()
                .map_err(|_| format!("{:?} is not a number from 1 to {n}", answer.trim()))?;
            running
                .into_iter()
                .nth(pick.wrapping_sub(1))
                .ok_or_else(|| format!("{pick} is not a number from 1 to {n}"))
        }
    }
}

pub fn lease(roots: &Roots, action: LeaseAction) -> Result<ExitCode, String> {
    use leaseq::actions::{perform, ActionContext};
    use leaseq::ui::messages::Action;
    let context = ActionContext::new(roots.clone(), 60);
    match action {
        LeaseAction::Create { slurm: _, form, make_default, json } => {
            let request = form.request();
            request.validate()?;
            let runner = leaseq::slurm::runner_binary()?;
            let id = leaseq::slurm::create_lease(&request, roots, &runner).map_err(|e| e.to_string())?;
            if make_default {
                perform(&Action::SetDefaultLease { id: id.clone() }, &context)?;
            }
            if json {
                println!("{}", serde_json::json!({"lease": id, "default": make_default}));
            } else {
                println!(
                    "submitted Slurm lease {id}{}",
                    if make_default { " (now the default lease)" } else { "" }
                );
            }
        }
        LeaseAction::Release { id } => println!("{}", perform(&Action::ReleaseLease { id }, &context)?),
        LeaseAction::Use { id } => {
            if !leaseq::paths::is_valid_lease_id(&id) {
                return Err(format!(
                    "{:?} is not a lease id (a Slurm job id, or local:<host>)",
                    clean_line(&id)
                ));
            }
            println!("{}", perform(&Action::SetDefaultLease { id }, &context)?);
        }
        LeaseAction::Ls { json } => {
            let (leases, problems) = leaseq::leases::discover_leases(&FsSource, roots);
            for problem in problems {
                eprintln!("leaseq: {problem}");
            }
            let ids: Vec<String> = leases
                .iter()
                .filter(|l| l.kind == leaseq::leases::LeaseKind::Slurm)
                .map(|l| l.id.clone())
                .collect();
            let (states, error) = if ids.is_empty() {
                (Default::default(), None)
            } else {
                match leaseq::slurm::query_leases(&ids) {
                    Ok(states) => (states, None),
                    Err(e) => (Default::default(), Some(e.to_string())),
                }
            };
            let rows: Vec<_> = leases
                .iter()
                .map(|info| leaseq::background::lease_row(info, states.get(&info.id), error.as_deref(), None))
                .collect();
            if json {
                print!("{}", leaseq::commands::leases::leases_json(&rows));
            } else {
                print!("{}", leaseq::commands::leases::leases_text(&rows, error.as_deref()));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `pause`, `resume`, `recover`: the dashboard's node actions.
#[derive(Debug, Clone, Copy)]
pub enum NodeAction {
    Pause,
    Resume,
    Recover,
}

pub fn node_action(
    roots: &Roots,
    run: &RunDir,
    node: &str,
    what: NodeAction,
    config: &UiConfig,
) -> Result<ExitCode, String> {
    use leaseq::actions::{perform, ActionContext};
    use leaseq::ui::messages::Action;
    let index = names_index(run, config);
    if index.find_node(node).is_none() {
        let known: Vec<String> = index.nodes().map(|(_, n)| n.name.to_string()).collect();
        return Err(format!("no node {:?} in this lease (nodes: {})", clean_line(node), known.join(", ")));
    }
    let (run, node) = (run.clone(), node.to_string());
    let action = match what {
        NodeAction::Pause => Action::PauseNode { run, node },
        NodeAction::Resume => Action::ResumeNode { run, node },
        NodeAction::Recover => Action::RecoverNode { run, node },
    };
    let roots = roots.clone();
    println!("{}", perform(&action, &ActionContext::new(roots, config.hb_stale_s as i64))?);
    Ok(ExitCode::SUCCESS)
}
