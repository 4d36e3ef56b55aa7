//! The `leaseq` command line.

use leaseq::clock::unix_now;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use leaseq::cli::{status_json, status_text, view_for, write_tasks_json, write_tasks_text, TaskFilter};
use leaseq::index::TaskState;
use leaseq::leases::{discover_leases, resolve, LeaseChoice};
use leaseq::oneshot::{build, build_counts, Reads};
use leaseq::paths::{load_ui_config, Env, Roots, RunDir, UiConfig};
use leaseq::runner::RunnerOptions;
use leaseq::scan::FsSource;
use leaseq::tui::{OpenChoice, TuiOptions};
use std::sync::Arc;
use std::time::Duration;

mod subcommands;

#[derive(Parser)]
#[command(
    name = "leaseq",
    version,
    about = "A file-based task queue on shared filesystems, and its dashboard"
)]
struct Cli {
    /// Archive root (default: $LEASEQ_HOME, else ~/.leaseq).
    #[arg(long, global = true, value_name = "DIR")]
    home: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// The dashboard: leases, nodes, tasks and logs, live (also `leaseq`
    /// with no subcommand).
    Tui {
        /// Open this lease directly.
        #[arg(long, value_name = "ID", conflicts_with_all = ["local", "slurm"])]
        lease: Option<String>,
        /// Open this host's local lease (local:<hostname>).
        #[arg(long, conflicts_with = "slurm")]
        local: bool,
        /// Open the lease list, showing Slurm leases.
        #[arg(long)]
        slurm: bool,
        /// Memory bound: keep commands and working dirs of at most N
        /// finished tasks (the newest) besides live ones and those on
        /// screen; the others are fetched again from the local cache when
        /// shown or searched. Counts, paging and search still cover every
        /// task. Default: ui.max_tasks_display (5000). Nothing is let go
        /// with --no-cache.
        #[arg(long, value_name = "N")]
        max_tasks: Option<usize>,
        /// Read every task file instead of using (and filling) the local
        /// warm-start cache (~/.cache/leaseq, or $XDG_CACHE_HOME/leaseq).
        #[arg(long)]
        no_cache: bool,
    },
    /// Run tasks: the runner of one node of a lease (what a lease's keeper
    /// script starts on each node, and `daemon start` in the background).
    Run {
        /// The lease (Slurm job id, or local:<host>).
        #[arg(long, value_name = "ID")]
        lease: String,
        /// This node's name (default: the host name).
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// The lease's run directory (default: from the lease id and
        /// LEASEQ_HOME / the runtime dir).
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// Tasks at once (default: the lease's `parallel`, else 1).
        #[arg(long, value_name = "N")]
        parallel: Option<usize>,
        /// GPUs this node hands out (default: the lease's `total_gpus`, else
        /// CUDA_VISIBLE_DEVICES or SLURM_GPUS_ON_NODE, else none).
        #[arg(long, value_name = "N")]
        gpus: Option<usize>,
        /// Seconds between SIGTERM and SIGKILL when a task is cancelled or
        /// the runner is stopped.
        #[arg(long, value_name = "S", default_value_t = RunnerOptions::DEFAULT_GRACE.as_secs())]
        grace_s: u64,
        /// How often the inbox and control requests are looked at, in ms.
        #[arg(long, value_name = "MS", default_value_t = RunnerOptions::DEFAULT_POLL.as_millis() as u64)]
        poll_ms: u64,
        /// Seconds between heartbeats (at most 5).
        #[arg(long, value_name = "S", default_value_t = RunnerOptions::DEFAULT_HEARTBEAT.as_secs())]
        heartbeat_s: u64,
    },
    /// The local lease (local:<hostname>) and its background runner.
    Daemon {
        #[command(subcommand)]
        action: DaemonAction,
    },
    /// Queue a task (or one task per line of --file).
    #[command(trailing_var_arg = true)]
    Submit {
        #[command(flatten)]
        lease: LeaseArgs,
        /// The node to queue on (default: the live node with the fewest
        /// pending tasks).
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
        /// GPUs the task needs (it waits for that many free ones).
        #[arg(long, value_name = "G", default_value_t = 0)]
        gpus: u32,
        /// Working directory of the task (default: this one).
        #[arg(long, value_name = "DIR")]
        cwd: Option<PathBuf>,
        /// Submit one task per line of this file (blank lines and # comments skipped).
        #[arg(long, value_name = "FILE", conflicts_with = "command")]
        file: Option<PathBuf>,
        /// Print the submitted tasks as JSON.
        #[arg(long)]
        json: bool,
        /// The command (after `--`), run with `bash -lc`.
        #[arg(value_name = "CMD", required_unless_present = "file")]
        command: Vec<String>,
    },
    /// Cancel tasks: a pending one at once, a running one by its runner
    /// (SIGTERM to its process group, SIGKILL after the grace period).
    Cancel(TaskArgs),
    /// Queue tasks again as new tasks (same command, cwd, env and GPUs).
    Retry(TaskArgs),
    /// Print a task's stdout (or stderr).
    Logs {
        #[command(flatten)]
        lease: LeaseArgs,
        #[arg(value_name = "TASK")]
        task: String,
        /// Stderr instead of stdout.
        #[arg(long)]
        err: bool,
        /// Only the last N lines.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// Write the log's bytes as they are, escape sequences included
        /// (on a terminal they are removed otherwise; a pipe always gets
        /// the bytes as they are).
        #[arg(long)]
        raw: bool,
    },
    /// Follow a task's output until it ends (default: the only running
    /// task, else a list to choose from).
    Follow {
        #[command(flatten)]
        lease: LeaseArgs,
        #[arg(value_name = "TASK")]
        task: Option<String>,
        /// Stderr instead of stdout.
        #[arg(long)]
        err: bool,
        /// Lines of existing output to show first.
        #[arg(long, value_name = "N", default_value_t = 20)]
        tail: usize,
        /// Write the log's bytes as they are, escape sequences included
        /// (on a terminal they are removed otherwise; a pipe always gets
        /// the bytes as they are).
        #[arg(long)]
        raw: bool,
    },
    /// Slurm leases: create, release, list, choose the default.
    Lease {
        #[command(subcommand)]
        action: LeaseAction,
    },
    /// Stop a node's runner from claiming new tasks (running ones finish).
    Pause {
        #[command(flatten)]
        lease: LeaseArgs,
        #[arg(value_name = "NODE")]
        node: String,
    },
    /// Let a paused node claim tasks again.
    Resume {
        #[command(flatten)]
        lease: LeaseArgs,
        #[arg(value_name = "NODE")]
        node: String,
    },
    /// Move a dead node's claimed tasks back to its inbox (refused while
    /// its runner's heartbeat is fresh).
    Recover {
        #[command(flatten)]
        lease: LeaseArgs,
        #[arg(value_name = "NODE")]
        node: String,
    },
    /// Counts per state and per node, and node health.
    Status {
        #[command(flatten)]
        lease: LeaseArgs,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Read every task file instead of using (and filling) the local
        /// warm-start cache.
        #[arg(long)]
        no_cache: bool,
    },
    /// List tasks, optionally filtered.
    Tasks {
        #[command(flatten)]
        lease: LeaseArgs,
        /// Only tasks in this state (PENDING, RUNNING, STUCK, FINISHED,
        /// FAILED, CANCELLED, SKIPPED, LOST?); repeatable.
        #[arg(long, value_name = "S")]
        state: Vec<String>,
        /// Only tasks of this node.
        #[arg(long, value_name = "N")]
        node: Option<String>,
        /// Sort by seq within each node lane instead of state, newest first.
        #[arg(long)]
        by_seq: bool,
        /// At most this many rows.
        #[arg(long)]
        limit: Option<usize>,
        /// Also read every task's spec (command, submit time): slower.
        #[arg(long)]
        details: bool,
        /// One JSON array of objects.
        #[arg(long)]
        json: bool,
        /// Read every task file instead of using (and filling) the local
        /// warm-start cache.
        #[arg(long)]
        no_cache: bool,
    },
    /// Generate a synthetic history (with --generate), or open a live
    /// simulated cluster in the dashboard.
    Demo {
        /// Write a synthetic archive root into DIR and exit.
        #[arg(long, value_name = "DIR")]
        generate: Option<PathBuf>,
        /// Finished tasks to generate.
        #[arg(long, default_value_t = 20_000)]
        tasks: usize,
        /// Nodes to generate.
        #[arg(long, default_value_t = 8)]
        nodes: usize,
        /// Make the dashboard's view of the run directory hang after S
        /// seconds, as a hung NFS mount does: see what stays usable and
        /// what it says about the stuck filesystem.
        #[arg(long, value_name = "S")]
        stall_fs_after: Option<u64>,
        /// A history of --tasks finished tasks made in memory, with no task
        /// files (for sizes no disk holds: 10^7 is 2 x 10^7 files), opened in
        /// the dashboard. Its warm-start cache and an empty run dir are
        /// kept in DIR and reused by the next launch with the same sizes.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["generate", "stall_fs_after"])]
        synthetic: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DaemonAction {
    /// Start the local runner in the background.
    Start {
        /// Tasks at once (kept for later starts).
        #[arg(long, value_name = "N")]
        parallel: Option<u32>,
        /// GPUs to hand out (kept for later starts).
        #[arg(long, value_name = "N")]
        gpus: Option<u32>,
        /// Seconds between SIGTERM and SIGKILL for cancelled tasks.
        #[arg(long, value_name = "S")]
        grace_s: Option<u64>,
    },
    /// Stop it: its running tasks are stopped and get results.
    Stop {
        /// Seconds to wait for it to exit.
        #[arg(long, value_name = "S", default_value_t = 30)]
        wait_s: u64,
    },
    /// Whether it runs, its heartbeat and tasks.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum LeaseAction {
    /// Submit a Slurm lease: a keeper job that runs a leaseq runner on each node.
    Create {
        /// A Slurm lease (the only kind created here; the local lease is `daemon start`).
        #[arg(long, required = true)]
        slurm: bool,
        #[command(flatten)]
        form: LeaseFormArgs,
        /// Make it the default lease.
        #[arg(long = "use")]
        make_default: bool,
        #[arg(long)]
        json: bool,
    },
    /// End a Slurm lease (scancel); its runners stop their tasks.
    Release {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Every lease and its state.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Make a lease the default for every command.
    Use {
        #[arg(value_name = "ID")]
        id: String,
    },
}

/// The Slurm lease form's fields, as flags.
#[derive(Args)]
struct LeaseFormArgs {
    #[arg(long, value_name = "N", default_value_t = 1)]
    nodes: u32,
    /// Time limit: minutes, HH:MM:SS, D-HH:MM:SS.
    #[arg(long, value_name = "T", default_value = "1:00:00")]
    time: String,
    #[arg(long)]
    name: Option<String>,
    #[arg(long)]
    partition: Option<String>,
    #[arg(long)]
    qos: Option<String>,
    #[arg(long)]
    account: Option<String>,
    #[arg(long)]
    constraint: Option<String>,
    #[arg(long)]
    reservation: Option<String>,
    #[arg(long, value_name = "N", default_value_t = 0)]
    gpus_per_node: u32,
    /// One more sbatch argument (repeatable): --sbatch-arg=--mem=100G.
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    sbatch_args: Vec<String>,
}

impl LeaseFormArgs {
    fn request(self) -> leaseq::slurm::LeaseRequest {
        leaseq::slurm::LeaseRequest {
            name: self.name,
            nodes: self.nodes,
            time: self.time,
            partition: self.partition,
            qos: self.qos,
            account: self.account,
            constraint: self.constraint,
            reservation: self.reservation,
            gpus_per_node: self.gpus_per_node,
            extra_args: self.sbatch_args,
        }
    }
}

/// Commands on tasks of a lease.
#[derive(Args)]
struct TaskArgs {
    #[command(flatten)]
    lease: LeaseArgs,
    /// Task ids, task file names or unique prefixes.
    #[arg(value_name = "TASK", required = true)]
    tasks: Vec<String>,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct LeaseArgs {
    /// Lease id (Slurm job id, or local:<host>).
    #[arg(long, value_name = "ID")]
    lease: Option<String>,
    /// This host's local lease.
    #[arg(long, conflicts_with = "lease")]
    local: bool,
    /// A run directory to read directly, bypassing the lease registry.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["lease", "local"])]
    run_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    let started = std::time::Instant::now();
    leaseq::alloc::tune_malloc();
    let cli = Cli::parse();
    match run(cli, started) {
        Ok(code) => code,
        Err(message) => {
            // Messages quote paths, ids and commands from files: shown safe.
            eprintln!("leaseq: {}", leaseq::sanitize::clean_log(&message));
            ExitCode::FAILURE
        }
    }
}

fn roots(home: Option<PathBuf>) -> Roots {
    let mut env = Env::from_process();
    if let Some(home) = home {
        env.leaseq_home = Some(home.into_os_string());
    }
    Roots::resolve(&env)
}

fn config(roots: &Roots) -> UiConfig {
    let (config, problem) = load_ui_config(&roots.config_path());
    if let Some(problem) = problem {
        eprintln!("leaseq: {}", leaseq::sanitize::clean_log(&problem));
    }
    config
}

/// The config for the dashboard: its problem is shown inside it (stderr
/// is hidden behind the alternate screen until the dashboard exits).
fn dashboard_config(roots: &Roots) -> (UiConfig, Vec<String>) {
    let (config, problem) = load_ui_config(&roots.config_path());
    (config, problem.into_iter().collect())
}

/// The lease id and run dir a command means; the run dir must exist.
fn open_lease(roots: &Roots, args: &LeaseArgs) -> Result<(String, RunDir), String> {
    let (id, run) = lease_of(roots, args)?;
    if !run.0.is_dir() {
        return Err(format!("lease {id}: no run directory at {}", run.0.display()));
    }
    Ok((id, run))
}

/// [`open_lease`] for `submit`: the local lease's run dir may not exist
/// yet (no runner has started), and is made.
fn open_lease_for_submit(roots: &Roots, args: &LeaseArgs) -> Result<(String, RunDir), String> {
    let (id, run) = lease_of(roots, args)?;
    if !leaseq::paths::is_valid_lease_id(&id) {
        // Its id goes into every task's spec and idempotency key.
        return Err(format!(
            "cannot tell the lease of {}: its meta/lease.json names none and {:?} is not a lease id; \
             pass --lease ID",
            run.0.display(),
            leaseq::sanitize::clean_line(&id)
        ));
    }
    if id.starts_with("local:") && args.run_dir.is_none() {
        roots.ensure_private_runtime()?;
    }
    if !run.0.is_dir() && id == roots.local_lease_id() {
        std::fs::create_dir_all(&run.0).map_err(|e| format!("creating {}: {e}", run.0.display()))?;
    }
    if !run.0.is_dir() {
        return Err(format!(
            "lease {id}: no run directory at {} (has the lease started? `leaseq lease ls`)",
            run.0.display()
        ));
    }
    Ok((id, run))
}

/// The lease id of a run directory named directly: its meta's, else its
/// directory name (what `runs/<id>` means).
fn run_dir_lease_id(run: &RunDir) -> String {
    let meta = leaseq::store::read_record(&run.meta(), 1 << 20)
        .ok()
        .and_then(|b| leaseq::model::from_nested_record::<leaseq::model::LeaseMeta>(&b).ok());
    match meta {
        Some(
            leaseq::model::LeaseMeta::Slurm { lease_id, .. }
            | leaseq::model::LeaseMeta::Local { lease_id, .. },
        ) => lease_id,
        None => run.0.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
    }
}

/// The lease id and run dir a command means.
fn lease_of(roots: &Roots, args: &LeaseArgs) -> Result<(String, RunDir), String> {
    if let Some(dir) = &args.run_dir {
        let dir =
            std::fs::canonicalize(dir).or_else(|_| std::path::absolute(dir)).unwrap_or_else(|_| dir.clone());
        let run = RunDir(dir);
        return Ok((run_dir_lease_id(&run), run));
    }
    let (leases, problems) = discover_leases(&FsSource, roots);
    for problem in problems {
        eprintln!("leaseq: {}", leaseq::sanitize::clean_log(&problem));
    }
    let choice = match (&args.lease, args.local) {
        (Some(id), _) => LeaseChoice::Named(id),
        (None, true) => LeaseChoice::Local,
        (None, false) => LeaseChoice::Default,
    };
    let id = resolve(roots, &leases, choice)?;
    // None exactly when the id is no lease id.
    let dir = roots.run_dir(&id).ok_or_else(|| {
        format!(
            "{:?} is not a lease id (a Slurm job id such as 12345, or local:<host>)",
            leaseq::sanitize::clean_line(&id)
        )
    })?;
    Ok((id, RunDir(dir)))
}

fn run(cli: Cli, started: std::time::Instant) -> Result<ExitCode, String> {
    let roots = roots(cli.home);
    let command = cli.command.unwrap_or(Command::Tui {
        lease: None,
        local: false,
        slurm: false,
        max_tasks: None,
        no_cache: false,
    });
    match command {
        Command::Run { lease, node, root, parallel, gpus, grace_s, poll_ms, heartbeat_s } => {
            let flags = subcommands::RunFlags {
                lease,
                node,
                root,
                parallel,
                gpus,
                grace: Duration::from_secs(grace_s),
                poll: Duration::from_millis(poll_ms.clamp(10, 10_000)),
                heartbeat_every: Duration::from_secs(heartbeat_s.clamp(1, 5)),
            };
            let options = subcommands::runner_options(&roots, flags, &config(&roots))?;
            leaseq::runner::run(options)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Daemon { action } => subcommands::daemon(&roots, action),
        Command::Submit { lease, node, gpus, cwd, file, json, command } => {
            let (id, run) = open_lease_for_submit(&roots, &lease)?;
            subcommands::submit(&roots, &id, &run, node, gpus, cwd, file, json, command, &config(&roots))
        }
        Command::Cancel(args) => {
            let (_, run) = open_lease(&roots, &args.lease)?;
            subcommands::cancel(&run, &args.tasks, args.json, &config(&roots))
        }
        Command::Retry(args) => {
            let (_, run) = open_lease(&roots, &args.lease)?;
            subcommands::retry(&run, &args.tasks, args.json, &config(&roots))
        }
        Command::Logs { lease, task, err, tail, raw } => {
            let (_, run) = open_lease(&roots, &lease)?;
            subcommands::logs(&run, &task, err, tail, raw, &config(&roots))
        }
        Command::Follow { lease, task, err, tail, raw } => {
            let (_, run) = open_lease(&roots, &lease)?;
            subcommands::follow(&run, task, err, tail, raw, &config(&roots))
        }
        Command::Lease { action } => subcommands::lease(&roots, action),
        Command::Pause { lease, node } => {
            let (_, run) = open_lease(&roots, &lease)?;
            subcommands::node_action(&roots, &run, &node, subcommands::NodeAction::Pause, &config(&roots))
        }
        Command::Resume { lease, node } => {
            let (_, run) = open_lease(&roots, &lease)?;
            subcommands::node_action(&roots, &run, &node, subcommands::NodeAction::Resume, &config(&roots))
        }
        Command::Recover { lease, node } => {
            let (_, run) = open_lease(&roots, &lease)?;
            subcommands::node_action(&roots, &run, &node, subcommands::NodeAction::Recover, &config(&roots))
        }
        Command::Tui { lease, local, slurm, max_tasks, no_cache } => {
            if local && roots.run_dir(&roots.local_lease_id()).is_none() {
                return Err(format!(
                    "this host's name {:?} cannot name a local lease (letters, digits, '.', '-', '_')",
                    leaseq::sanitize::clean_line(&roots.hostname)
                ));
            }
            if let Some(id) = &lease {
                // Refused here, before the terminal is taken: an id that is no
                // lease id, or a lease with no run directory, opens nothing.
                let dir = roots.run_dir(id).ok_or_else(|| {
                    format!(
                        "{:?} is not a lease id (a Slurm job id, or local:<host>)",
                        leaseq::sanitize::clean_line(id)
                    )
                })?;
                if !dir.is_dir() {
                    let (leases, _) = discover_leases(&FsSource, &roots);
                    let known: Vec<&str> =
                        leases.iter().filter(|l| l.present).map(|l| l.id.as_str()).collect();
                    return Err(format!(
                        "no lease {id}: no run directory at {} (leases here: {})",
                        dir.display(),
                        if known.is_empty() { "none".to_string() } else { known.join(", ") }
                    ));
                }
            }
            let open = match (lease, local, slurm) {
                (Some(id), _, _) => OpenChoice::Lease(id),
                (None, true, _) => OpenChoice::Local,
                (None, false, true) => OpenChoice::SlurmList,
                (None, false, false) => OpenChoice::Default,
            };
            let (config, notices) = dashboard_config(&roots);
            let cache = (!no_cache).then(Env::from_process);
            let options = TuiOptions {
                roots,
                open,
                max_tasks,
                source: Arc::new(FsSource),
                config,
                notices,
                started,
                cache,
            };
            Ok(exit_after(leaseq::tui::run(options)?))
        }
        Command::Status { lease, json, no_cache } => {
            let (id, run) = open_lease(&roots, &lease)?;
            let cache = cache_use(&id, no_cache);
            let index = build_counts(&FsSource, &run, &config(&roots), unix_now(), &cache);
            say_cache_problem(&index);
            let text = if json { status_json(&index, &id) + "\n" } else { status_text(&index, &id, &run.0) };
            print_out(text.as_bytes())
        }
        Command::Tasks { lease, state, node, by_seq, limit, details, json, no_cache } => {
            let states = state
                .iter()
                .map(|s| TaskState::parse(s).ok_or_else(|| format!("unknown state {s:?}")))
                .collect::<Result<Vec<_>, _>>()?;
            let (id, run) = open_lease(&roots, &lease)?;
            let reads = if details { Reads::All } else { Reads::Results };
            let index = build(&FsSource, &run, &config(&roots), unix_now(), reads, &cache_use(&id, no_cache));
            say_cache_problem(&index);
            let view = view_for(&index, &TaskFilter { states, node, by_seq, limit })?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let written = if json {
                write_tasks_json(&index, &view, limit, &mut out)
            } else {
                write_tasks_text(&index, &view, limit, &mut out)
            };
            finish_output(written.and_then(|_| out.flush()))
        }
        Command::Demo { synthetic: Some(dir), tasks, nodes, .. } => {
            run_synthetic(&dir, tasks, nodes, started)
        }
        Command::Demo { generate: Some(dir), tasks, nodes, .. } => {
            let options = leaseq::sim::generate::GenerateOptions {
                tasks,
                nodes,
                now: unix_now(),
                ..Default::default()
            };
            let started = std::time::Instant::now();
            let tree = leaseq::sim::generate::generate(&dir, &options)
                .map_err(|e| format!("generating into {}: {e}", dir.display()))?;
            println!(
                "generated lease {} in {} ({} done, {} pending, {} running, {} nodes) in {:.1}s",
                tree.lease_id,
                tree.run_dir.display(),
                tree.done,
                tree.pending,
                tree.running,
                tree.nodes.len(),
                started.elapsed().as_secs_f64()
            );
            println!("open it with: leaseq --home {} tui", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { generate: None, tasks, nodes, stall_fs_after, .. } => {
            run_demo(tasks, nodes, stall_fs_after.map(std::time::Duration::from_secs), started)
        }
    }
}

/// The dashboard's exit status: 0 after `q`, 128+signal after a signal
/// ended it (as a shell reports a process killed by it).
fn exit_after(ended_by: Option<i32>) -> ExitCode {
    match ended_by {
        Some(signal) => ExitCode::from((128 + signal).clamp(0, 255) as u8),
        None => ExitCode::SUCCESS,
    }
}

fn print_out(bytes: &[u8]) -> Result<ExitCode, String> {
    let mut out = std::io::stdout().lock();
    finish_output(out.write_all(bytes).and_then(|_| out.flush()))
}

/// A closed pipe (`leaseq tasks | head`) is a normal end, not an error.
fn finish_output(result: std::io::Result<()>) -> Result<ExitCode, String> {
    match result {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(format!("writing output: {e}")),
    }
}

/// A temporary directory removed when dropped (on every exit path).
struct DemoDir(PathBuf);

impl Drop for DemoDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `leaseq demo`: a generated history with live simulated runners, opened
/// in the dashboard; everything is removed on exit.
fn run_demo(
    tasks: usize,
    nodes: usize,
    stall_after: Option<std::time::Duration>,
    started: std::time::Instant,
) -> Result<ExitCode, String> {
    use leaseq::sim::generate::{generate, GenerateOptions};
    use leaseq::sim::live::{LiveCluster, LiveOptions};
    let dir = DemoDir(std::env::temp_dir().join(format!("leaseq-demo-{}", std::process::id())));
    eprintln!("leaseq demo: generating {tasks} tasks over {nodes} nodes in {} ...", dir.0.display());
    // A local lease, so its state is RUNNING without asking Slurm; its run
    // dir is <dir>/runs/local:<host> through LEASEQ_RUNTIME_DIR below.
    let lease_id = format!("local:{}", leaseq::paths::hostname());
    let options = GenerateOptions { tasks, nodes, lease_id, now: unix_now(), ..Default::default() };
    let tree = generate(&dir.0, &options).map_err(|e| format!("generating the demo history: {e}"))?;
    if let Some(dead) = &tree.stale_node {
        // The dead node's runner died holding a task: it shows STUCK.
        leaseq::sim::live::strand_task(&RunDir(tree.run_dir.clone()), &tree.lease_id, dead)
            .map_err(|e| format!("preparing the demo: {e}"))?;
    }
    let live = LiveOptions::demo(&tree.lease_id, tree.nodes.clone(), tree.stale_node.clone());
    let cluster = LiveCluster::start(RunDir(tree.run_dir.clone()), live);
    let mut env = Env::from_process();
    env.leaseq_home = Some(dir.0.clone().into_os_string());
    env.leaseq_runtime_dir = Some(dir.0.join("runs").into_os_string());
    // The demo's cluster is made anew each time: its cache lives and dies with it.
    env.leaseq_cache_dir = Some(dir.0.join("cache").into_os_string());
    let cache = Some(env.clone());
    let roots = Roots::resolve(&env);
    let (config, notices) = dashboard_config(&roots);
    let open = OpenChoice::Lease(tree.lease_id.clone());
    let source: Arc<dyn leaseq::scan::RunFs> = match stall_after {
        Some(delay) => Arc::new(leaseq::sim::stall::StallingFs::after(delay)),
        None => Arc::new(FsSource),
    };
    let result = leaseq::tui::run(TuiOptions {
        roots,
        open,
        max_tasks: None,
        source,
        config,
        notices,
        started,
        cache,
    });
    drop(cluster);
    drop(dir);
    result.map(exit_after)
}

/// `leaseq demo --synthetic DIR`: the dashboard on a history made in memory.
fn run_synthetic(
    dir: &Path,
    tasks: usize,
    nodes: usize,
    started: std::time::Instant,
) -> Result<ExitCode, String> {
    let prepared = leaseq::sim::synthetic::prepare(dir, tasks, nodes, &mut |done| {
        eprint!("\rleaseq demo: writing the cache of a synthetic history: {done} of {tasks} tasks");
    })?;
    eprintln!();
    let roots = Roots::resolve(&prepared.env);
    let (config, notices) = dashboard_config(&roots);
    let result = leaseq::tui::run(TuiOptions {
        roots,
        open: OpenChoice::Lease(prepared.lease_id.clone()),
        max_tasks: None,
        source: Arc::new(prepared.history),
        config,
        notices,
        started,
        cache: Some(prepared.env),
    });
    result.map(exit_after)
}

/// The warm-start cache a one-shot command uses.
fn cache_use(lease_id: &str, no_cache: bool) -> leaseq::cache::CacheUse {
    if no_cache {
        leaseq::cache::CacheUse::Off
    } else {
        leaseq::cache::CacheUse::for_lease(lease_id)
    }
}

/// A cache that could not be used costs time, not truth: said on stderr.
fn say_cache_problem(index: &leaseq::index::Index) {
    if let Some(problem) = index.cache_problem() {
        eprintln!("leaseq: {problem}");
    }
}
