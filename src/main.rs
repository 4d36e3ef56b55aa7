//! The `leaseq` command line.

use leaseq::clock::unix_now;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use leaseq::cli::{status_json, status_text, view_for, write_tasks_json, write_tasks_text, TaskFilter};
use leaseq::index::TaskState;
use leaseq::leases::{discover_leases, resolve, LeaseChoice};
use leaseq::oneshot::{build, Reads};
use leaseq::paths::{load_ui_config, Env, Roots, RunDir, UiConfig};
use leaseq::scan::FsSource;
use leaseq::tui::{OpenChoice, TuiOptions};
use std::sync::Arc;

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
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The dashboard: leases, nodes, tasks and logs, live.
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
        /// Task rows materialised at most (default ui.max_tasks_display).
        #[arg(long, value_name = "N")]
        max_tasks: Option<usize>,
    },
    /// Counts per state and per node, and node health.
    Status {
        #[command(flatten)]
        lease: LeaseArgs,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
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
    },
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
    let cli = Cli::parse();
    match run(cli, started) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("leaseq: {message}");
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
        eprintln!("leaseq: {problem}");
    }
    config
}

/// The lease id and run dir a command means.
fn open_lease(roots: &Roots, args: &LeaseArgs) -> Result<(String, RunDir), String> {
    if let Some(dir) = &args.run_dir {
        let id = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        return Ok((id, RunDir(dir.clone())));
    }
    let (leases, problems) = discover_leases(roots);
    for problem in problems {
        eprintln!("leaseq: {problem}");
    }
    let choice = match (&args.lease, args.local) {
        (Some(id), _) => LeaseChoice::Named(id),
        (None, true) => LeaseChoice::Local,
        (None, false) => LeaseChoice::Default,
    };
    let id = resolve(roots, &leases, choice)?;
    let run = RunDir(roots.run_dir(&id));
    if !run.0.is_dir() {
        return Err(format!("lease {id}: no run directory at {}", run.0.display()));
    }
    Ok((id, run))
}

fn run(cli: Cli, started: std::time::Instant) -> Result<ExitCode, String> {
    let roots = roots(cli.home);
    match cli.command {
        Command::Tui { lease, local, slurm, max_tasks } => {
            let open = match (lease, local, slurm) {
                (Some(id), _, _) => OpenChoice::Lease(id),
                (None, true, _) => OpenChoice::Local,
                (None, false, true) => OpenChoice::SlurmList,
                (None, false, false) => OpenChoice::Default,
            };
            let config = config(&roots);
            let options = TuiOptions { roots, open, max_tasks, source: Arc::new(FsSource), config, started };
            leaseq::tui::run(options)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { lease, json } => {
            let (id, run) = open_lease(&roots, &lease)?;
            let index = build(&FsSource, &run, &config(&roots), unix_now(), Reads::Results);
            let text = if json { status_json(&index, &id) + "\n" } else { status_text(&index, &id, &run.0) };
            print_out(text.as_bytes())
        }
        Command::Tasks { lease, state, node, by_seq, limit, details, json } => {
            let states = state
                .iter()
                .map(|s| TaskState::parse(s).ok_or_else(|| format!("unknown state {s:?}")))
                .collect::<Result<Vec<_>, _>>()?;
            let (_, run) = open_lease(&roots, &lease)?;
            let reads = if details { Reads::All } else { Reads::Results };
            let index = build(&FsSource, &run, &config(&roots), unix_now(), reads);
            let view = view_for(&index, &TaskFilter { states, node, by_seq, limit })?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let written = if json {
                write_tasks_json(&index, &view, limit, &mut out)
            } else {
                write_tasks_text(&index, &view, limit, &mut out)
            };
            finish_output(written.and_then(|_| out.flush()))
        }
        Command::Demo { generate: Some(dir), tasks, nodes } => {
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
        Command::Demo { generate: None, tasks, nodes } => run_demo(tasks, nodes, started),
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
fn run_demo(tasks: usize, nodes: usize, started: std::time::Instant) -> Result<ExitCode, String> {
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
    let roots = Roots::resolve(&env);
    let config = config(&roots);
    let open = OpenChoice::Lease(tree.lease_id.clone());
    let result = leaseq::tui::run(TuiOptions {
        roots,
        open,
        max_tasks: None,
        source: Arc::new(FsSource),
        config,
        started,
    });
    drop(cluster);
    drop(dir);
    result.map(|()| ExitCode::SUCCESS)
}
