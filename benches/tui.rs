//! The dashboard in a real terminal (tmux) on generated trees of 10^5 and
//! 10^6 done tasks over 16 nodes: launch to first screen with task rows,
//! key-to-screen latency while the history is still being ingested, idle
//! CPU over 30 s after ingest, and memory (RSS).
//!
//! cargo bench --bench tui   (LEASEQ_BENCH_SIZES=100000 for one size;
//! LEASEQ_IDLE_SECONDS=30 sets the idle window; LEASEQ_BENCH_LAUNCHES=warm
//! only relaunches against the cache an earlier run left;
//! LEASEQ_BENCH_SYNTHETIC=10000000 measures a history made in memory,
//! `leaseq demo --synthetic`, instead: no disk holds 2 x 10^7 task files)
//!
//! Each size is launched twice: against an empty cache directory (first
//! launch: every task file is read) and again (second launch: the warm
//! cache). Key latency is measured from outside, as a user sees it (tmux
//! send-keys, then capture-pane until the screen shows the key's effect),
//! and inside, from the binary's own trace (LEASEQ_TRACE_FILE: key event
//! to flushed frame). "Complete" is the trace's `ingested_ms`: every node
//! listed and nothing left to read; file opens are counted by the binary
//! at that moment.

mod common;

use common::{percentile, proc_ticks};

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status_kib(pid: &str, key: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The pane's process, or its descendant, that is the dashboard (shells
/// may or may not exec their last command).
fn find_leaseq(pid: &str) -> Option<String> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() == "leaseq" {
        return Some(pid.to_string());
    }
    let children = Command::new("pgrep").args(["-P", pid]).output().ok()?;
    String::from_utf8_lossy(&children.stdout).lines().find_map(|child| find_leaseq(child.trim()))
}

/// A launch against an empty cache directory, or the one after it; or a
/// history made in memory (`leaseq demo --synthetic`: no task files, its
/// cache written once before the dashboard first opens).
#[derive(Clone, Copy, PartialEq)]
enum Launch {
    Cold,
    Warm,
    Synthetic,
}

/// Key -> screen as a user sees it: `?` is sent with tmux and the pane is
/// captured until the help popup is there, then Escape until it is gone.
/// Each capture is a tmux round trip (~1-2 ms), which bounds the
/// resolution; a change of the task rows meanwhile cannot fake a hit.
fn outside_key_ms(session: &str, key: &str, shown: bool) -> Option<f64> {
    let sent = Instant::now();
    tmux(&["send-keys", "-t", session, key]);
    while sent.elapsed() < Duration::from_secs(2) {
        let screen = tmux(&["capture-pane", "-p", "-t", session]);
        if screen.contains("help (Esc closes)") == shown {
            return Some(sent.elapsed().as_secs_f64() * 1e3);
        }
        // Polling flat out would take a core from the dashboard.
        std::thread::sleep(Duration::from_millis(1));
    }
    None
}

fn trace_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(key)).map(str::trim)
}

fn measure(tasks: usize, idle_seconds: u64, launch: Launch, max_tasks: Option<usize>) {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/leaseq");
    assert!(bin.exists(), "build the release binary first: cargo build --release");
    let trace = std::env::temp_dir().join(format!("leaseq-bench-trace-{tasks}.log"));
    let _ = std::fs::remove_file(&trace);
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-cache/{tasks}"));
    if launch == Launch::Cold {
        let _ = std::fs::remove_dir_all(&cache);
    }
    let session = format!("leaseq-bench-{tasks}");
    let _ = Command::new("tmux").args(["kill-session", "-t", &session]).output();
    // The tree was just listed by the generator or earlier runs: these are
    // warm-page-cache figures ("cold" is about our cache, not the kernel's).
    let limit = max_tasks.map(|n| format!(" --max-tasks {n}")).unwrap_or_default();
    let command = if launch == Launch::Synthetic {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-synthetic/{tasks}"));
        format!(
            "env LEASEQ_TRACE_FILE={} {} demo --synthetic {} --tasks {tasks} --nodes 16",
            trace.display(),
            bin.display(),
            dir.display()
        )
    } else {
        let (root, _) = common::generated_tree(tasks);
        format!(
            "env LEASEQ_HOME={} LEASEQ_CACHE_DIR={} LEASEQ_TRACE_FILE={} {} tui --lease 99887766{limit}",
            root.display(),
            cache.display(),
            trace.display(),
            bin.display()
        )
    };
    Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "200", "-y", "50", &command])
        .status()
        .expect("tmux");
    let shell_pid = tmux(&["display", "-p", "-t", &session, "#{pane_pid}"]).trim().to_string();
    let started = Instant::now();
    let ingested = || std::fs::read_to_string(&trace).unwrap_or_default().contains("ingested_ms");
    // A synthetic history's cache is written before the dashboard opens.
    let rows_within = Duration::from_secs(if launch == Launch::Synthetic { 1200 } else { 60 });
    // The task pane's title ("┌ tasks  1-25 of N"), not a progress line.
    while !tmux(&["capture-pane", "-p", "-t", &session]).contains("┌ tasks") {
        assert!(started.elapsed() < rows_within, "no task rows");
        std::thread::sleep(Duration::from_millis(5));
    }

    // Keys while ingesting (or for 10 s): help open and closed, measured
    // from outside, and the same keys' own trace inside.
    let mut outside = Vec::new();
    let keys_until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < keys_until && !(ingested() && outside.len() >= 40) {
        outside.extend(outside_key_ms(&session, "?", true));
        std::thread::sleep(Duration::from_millis(20));
        outside.extend(outside_key_ms(&session, "Escape", false));
        std::thread::sleep(Duration::from_millis(20));
    }
    let deadline = Instant::now() + Duration::from_secs(900);
    while !ingested() {
        assert!(Instant::now() < deadline, "ingest did not finish");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = find_leaseq(&shell_pid).expect("the dashboard's pid");
    // Rounds back off from 2 s to 10 s once nothing changes: idle is
    // measured after that.
    std::thread::sleep(Duration::from_secs(15));
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let before = proc_ticks(&pid);
    std::thread::sleep(Duration::from_secs(idle_seconds));
    let after = proc_ticks(&pid);
    let idle_cpu = (after - before) as f64 / ticks_per_s / idle_seconds as f64 * 100.0;
    let rss = status_kib(&pid, "VmRSS:");
    let peak = status_kib(&pid, "VmHWM:");
    tmux(&["send-keys", "-t", &session, "q"]);
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("tmux").args(["kill-session", "-t", &session]).output();

    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    let first_rows =
        trace_value(&text, "first_rows_ms ").and_then(|v| v.split_whitespace().next()).unwrap_or("?");
    let ingest = trace_value(&text, "ingested_ms ").unwrap_or("?");
    let (ingest_ms, opens, held, let_go) = {
        let words: Vec<&str> = ingest.split_whitespace().collect();
        let word = |i: usize| words.get(i).copied().unwrap_or("?");
        (word(0), word(4), word(6), word(8))
    };
    let mut inside: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("key_ms "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    inside.sort_by(f64::total_cmp);
    outside.sort_by(f64::total_cmp);
    let label = match launch {
        Launch::Cold => "first launch (no cache)",
        Launch::Warm => "second launch (warm cache)",
        Launch::Synthetic => "synthetic history in memory, warm cache",
    };
    println!(
        "tui/{tasks}{limit} {label}: first screen with rows {first_rows} ms; complete counts and commands {:.2} s; \
         file opens {opens}; details held {held}, let go {let_go}; keys while ingesting, from outside (tmux) n={} median {:.1} ms p99 {:.1} ms max {:.1} ms, \
         inside n={} p99 {:.2} ms; idle CPU {idle_cpu:.2} % over {idle_seconds} s (from 15 s after); RSS {} MiB (peak {} MiB), {:.0} B per task",
        ingest_ms.parse::<f64>().unwrap_or(f64::NAN) / 1e3,
        outside.len(),
        percentile(&outside, 0.5),
        percentile(&outside, 0.99),
        outside.last().copied().unwrap_or(f64::NAN),
        inside.len(),
        percentile(&inside, 0.99),
        rss / 1024,
        peak / 1024,
        rss as f64 * 1024.0 / tasks as f64
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches`: nothing to smoke-test here
    }
    let sizes = common::sizes(&[100_000, 1_000_000]);
    let idle = std::env::var("LEASEQ_IDLE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    if let Some(tasks) = std::env::var("LEASEQ_BENCH_SYNTHETIC").ok().and_then(|v| v.parse().ok()) {
        measure(tasks, idle, Launch::Synthetic, None);
        return;
    }
    let warm_only = std::env::var("LEASEQ_BENCH_LAUNCHES").is_ok_and(|v| v == "warm");
    for tasks in sizes {
        if !warm_only {
            measure(tasks, idle, Launch::Cold, None);
        }
        measure(tasks, idle, Launch::Warm, None);
        measure(tasks, idle, Launch::Warm, Some(1000));
    }
}
