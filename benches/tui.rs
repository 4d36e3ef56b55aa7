//! The dashboard in a real terminal (tmux) on generated trees of 10^5 and
//! 10^6 done tasks over 16 nodes: launch to first screen with task rows,
//! key-to-screen latency while the history is still being ingested, idle
//! CPU over 30 s after ingest, and memory (RSS).
//!
//! cargo bench --bench tui   (LEASEQ_BENCH_SIZES=100000 for one size;
//! LEASEQ_IDLE_SECONDS=30 sets the idle window)
//!
//! Latencies come from the binary's own trace (LEASEQ_TRACE_FILE): from
//! the key event's arrival to the flushed frame. tmux's own delivery and
//! screen time come on top; they are not ours to make faster.

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

fn measure(tasks: usize, idle_seconds: u64) {
    let (root, _) = common::generated_tree(tasks);
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/leaseq");
    assert!(bin.exists(), "build the release binary first: cargo build --release");
    let trace = std::env::temp_dir().join(format!("leaseq-bench-trace-{tasks}.log"));
    let _ = std::fs::remove_file(&trace);
    let session = format!("leaseq-bench-{tasks}");
    let _ = Command::new("tmux").args(["kill-session", "-t", &session]).output();
    // Drop the page cache's advantage as far as we can without root tricks:
    // the tree was just listed by the generator or earlier runs, so these
    // are warm-cache figures.
    let command = format!(
        "env LEASEQ_HOME={} LEASEQ_TRACE_FILE={} {} tui --lease 99887766",
        root.display(),
        trace.display(),
        bin.display()
    );
    Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "200", "-y", "50", &command])
        .status()
        .expect("tmux");
    let shell_pid = tmux(&["display", "-p", "-t", &session, "#{pane_pid}"]).trim().to_string();

    // Keys while ingesting: j/k alternately, 20 per second, for 10 s.
    let started = Instant::now();
    let ingested = |session: &str| {
        let screen = tmux(&["capture-pane", "-p", "-t", session]);
        screen.contains(" of ") && !screen.contains("reading")
    };
    let mut ingest_s = None;
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(10) {
        tmux(&["send-keys", "-t", &session, if sent % 2 == 0 { "j" } else { "k" }]);
        sent += 1;
        // Ingest may end during the key phase: look every half second.
        if ingest_s.is_none() && sent % 10 == 0 && ingested(&session) {
            ingest_s = Some(started.elapsed().as_secs_f64());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // Otherwise wait for it: the status bar stops saying "reading".
    let deadline = Instant::now() + Duration::from_secs(600);
    while ingest_s.is_none() {
        if ingested(&session) {
            ingest_s = Some(started.elapsed().as_secs_f64());
        }
        assert!(Instant::now() < deadline, "ingest did not finish");
        std::thread::sleep(Duration::from_millis(500));
    }
    let ingest_s = ingest_s.unwrap_or_default();
    let pid = find_leaseq(&shell_pid).expect("the dashboard's pid");
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
    let first_rows = text
        .lines()
        .find_map(|l| l.strip_prefix("first_rows_ms ")?.split_whitespace().next())
        .unwrap_or("?")
        .to_string();
    let mut keys: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("key_ms "))
        .filter_map(|l| l.split_whitespace().next()?.parse().ok())
        .collect();
    keys.sort_by(f64::total_cmp);
    println!(
        "tui/{tasks}: first screen with rows {first_rows} ms; keys during ingest n={} median {:.2} ms p99 {:.2} ms max {:.2} ms; \
         ingest {ingest_s:.1} s; idle CPU {idle_cpu:.2} % over {idle_seconds} s; RSS {} MiB (peak {} MiB)",
        keys.len(),
        percentile(&keys, 0.5),
        percentile(&keys, 0.99),
        keys.last().copied().unwrap_or(f64::NAN),
        rss / 1024,
        peak / 1024
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches`: nothing to smoke-test here
    }
    let sizes = common::sizes(&[100_000, 1_000_000]);
    let idle = std::env::var("LEASEQ_IDLE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    for tasks in sizes {
        measure(tasks, idle);
    }
}
