//! The `leaseq` command line.

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
    let cli = Cli::parse();
    match run(cli) {
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

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    let roots = roots(cli.home);
    match cli.command {
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
        Command::Demo { generate: Some(_), .. } => Err("GENERATOR-PENDING".into()),
        Command::Demo { generate: None, .. } => {
            Err("the live demo needs the dashboard, which this build does not include yet".into())
        }
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
