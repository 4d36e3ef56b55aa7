//! The runner and the CLI on local disk, measured from outside with real
//! processes: submit-to-start latency (at the default 250 ms poll and at
//! 1 s), throughput of trivial tasks (`true`) with 8 slots, `submit --file`
//! of 10^4 commands, the runner's idle CPU with an empty inbox, and how
//! late heartbeats get while CPU-bound tasks load both cores.
//!
//! cargo bench --bench runner   (LEASEQ_BENCH_QUICK=1 for a short run)

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use common::{percentile, proc_ticks};

const BIN: &str = env!("CARGO_BIN_EXE_leaseq");

struct Lease {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    run: PathBuf,
}

impl Lease {
    fn new() -> Lease {
        let tmp = tempfile::tempdir().expect("temp dir");
        let home = tmp.path().to_path_buf();
        let run = home.join("runs").join("900");
        std::fs::create_dir_all(&run).expect("run dir");
        Lease { _tmp: tmp, home, run }
    }

    fn cli(&self, args: &[&str]) -> std::process::Output {
        // Tasks get the submitter's environment, HOME included: an empty
        // home keeps the login shell (`bash -lc`) from sourcing this
        // machine's ~/.profile (pyenv init: 80 ms a shell), so the figures
        // are the runner's, not the profile's.
        let out = Command::new(BIN)
            .env("HOME", &self.home)
            .arg("--home")
            .arg(&self.home)
            .args(args)
            .output()
            .expect("leaseq");
        assert!(out.status.success(), "leaseq {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    fn submit(&self, command: &str) {
        let run = self.run.to_str().unwrap();
        self.cli(&["submit", "--run-dir", run, "--node", "n1", "--", command]);
    }

    fn runner(&self, extra: &[&str]) -> Runner {
        let mut command = Command::new(BIN);
        command
            .arg("--home")
            .arg(&self.home)
            .args(["run", "--lease", "900", "--node", "n1", "--root"])
            .arg(&self.run)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().expect("leaseq run");
        let hb = self.run.join("hb/n1.json");
        let until = Instant::now() + Duration::from_secs(10);
        while !hb.exists() {
            assert!(Instant::now() < until, "no heartbeat");
            std::thread::sleep(Duration::from_millis(10));
        }
        Runner(child)
    }

    fn results(&self) -> usize {
        std::fs::read_dir(self.run.join("done/n1"))
            .map(|d| {
                d.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".result.json")).count()
            })
            .unwrap_or(0)
    }
}

struct Runner(Child);

impl Drop for Runner {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child; SIGTERM lets it stop its tasks.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

fn unix_secs_f64() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

fn wait_for(path: &Path, within: Duration) -> bool {
    let until = Instant::now() + within;
    while !path.exists() {
        if Instant::now() > until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

/// Median and p90 of submit (the CLI process starting) to the task's first
/// instruction (it stamps the time), over `samples` tasks one at a time.
fn submit_to_start(poll_ms: u64, samples: usize) {
    let lease = Lease::new();
    let _runner = lease.runner(&["--poll-ms", &poll_ms.to_string()]);
    let mut latencies = Vec::new();
    for i in 0..samples {
        let stamp = lease.home.join(format!("started-{i}"));
        let command = format!("date +%s.%N > {}.tmp && mv {0}.tmp {0}", stamp.display());
        // Spread submissions over the poll cycle.
        std::thread::sleep(Duration::from_millis(fastrand::u64(0..poll_ms.max(1))));
        let submitted = unix_secs_f64();
        lease.submit(&command);
        assert!(wait_for(&stamp, Duration::from_secs(10)), "task {i} never started");
        let started: f64 = std::fs::read_to_string(&stamp).unwrap().trim().parse().unwrap();
        latencies.push((started - submitted) * 1000.0);
    }
    latencies.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "submit -> start, poll {poll_ms} ms (n={samples}): median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
}

/// Trivial tasks through 8 slots: all queued first, then the runner starts.
/// Each is a whole `bash -lc true` (fork, exec, /etc/profile), its two log
/// files, a result written with fsync and two renames.
fn throughput(tasks: usize) {
    let lease = Lease::new();
    let file = lease.home.join("true.txt");
    std::fs::write(&file, "true\n".repeat(tasks)).unwrap();
    let run = lease.run.to_str().unwrap().to_string();
    lease.cli(&["submit", "--run-dir", &run, "--node", "n1", "--file", file.to_str().unwrap()]);
    let started = Instant::now();
    let _runner = lease.runner(&["--parallel", "8"]);
    while lease.results() < tasks {
        assert!(started.elapsed() < Duration::from_secs(600), "only {} of {tasks} done", lease.results());
        std::thread::sleep(Duration::from_millis(20));
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "throughput, `true` with 8 slots: {tasks} tasks in {secs:.2} s = {:.0} tasks/s",
        tasks as f64 / secs
    );
}

fn submit_file(commands: usize) {
    let lease = Lease::new();
    let file = lease.home.join("commands.txt");
    let text: String = (0..commands).map(|i| format!("python train.py --seed {i}\n")).collect();
    std::fs::write(&file, text).unwrap();
    let run = lease.run.to_str().unwrap().to_string();
    let mut times = Vec::new();
    for round in 0..5 {
        let started = Instant::now();
        lease.cli(&[
            "submit",
            "--run-dir",
            &run,
            "--node",
            &format!("n{round}"),
            "--file",
            file.to_str().unwrap(),
        ]);
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "submit --file with {commands} commands: median {:.3} s, best {:.3} s, worst {:.3} s (5 runs)",
        times[2], times[0], times[4]
    );
}

fn idle_cpu(seconds: u64) {
    let lease = Lease::new();
    let runner = lease.runner(&[]);
    std::thread::sleep(Duration::from_secs(1));
    let pid = runner.0.id().to_string();
    let before = proc_ticks(&pid);
    std::thread::sleep(Duration::from_secs(seconds));
    let used = proc_ticks(&pid) - before;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    println!(
        "runner idle CPU, empty inbox, default 250 ms poll, {seconds} s: {:.2} % of one core",
        used as f64 / hz / seconds as f64 * 100.0
    );
}

/// Two CPU-bound tasks (both cores busy) for `seconds`; the heartbeat file
/// is watched every 50 ms and the longest gap between rewrites reported.
fn heartbeat_under_load(seconds: u64) {
    let lease = Lease::new();
    let _runner = lease.runner(&["--parallel", "2", "--heartbeat-s", "3"]);
    for _ in 0..2 {
        lease.submit(&format!("timeout {} sh -c 'while :; do :; done'", seconds + 2));
    }
    std::thread::sleep(Duration::from_millis(500));
    let hb = lease.run.join("hb/n1.json");
    let mut last_change = Instant::now();
    let mut last_bytes = std::fs::read(&hb).unwrap_or_default();
    let mut worst = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
        let bytes = std::fs::read(&hb).unwrap_or_default();
        // The heartbeat's ts has 1 s resolution: compare mtimes instead.
        let changed = bytes != last_bytes
            || std::fs::metadata(&hb).and_then(|m| m.modified()).ok()
                > Some(SystemTime::now() - last_change.elapsed());
        if changed {
            worst = worst.max(last_change.elapsed());
            last_change = Instant::now();
            last_bytes = bytes;
        }
    }
    println!(
        "heartbeat interval 3 s under 2 CPU-bound tasks on {} cores, {seconds} s: longest gap {:.2} s ({:.2}x the interval)",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        worst.as_secs_f64(),
        worst.as_secs_f64() / 3.0
    );
}

fn main() {
    // `cargo bench` passes --bench; a plain run of the binary is also fine.
    let quick = std::env::var_os("LEASEQ_BENCH_QUICK").is_some();
    let (samples, tasks, idle, load) = if quick { (5, 200, 3, 7) } else { (40, 3000, 30, 30) };
    // First, on a quiet filesystem: right after the thousands of result and
    // log files of the throughput run, ext4's own work (kernel time, not
    // ours: user time stays ~0.05 s) makes the same submit 2-4x slower.
    submit_file(10_000);
    submit_to_start(250, samples);
    submit_to_start(1000, samples / 2);
    throughput(tasks);
    idle_cpu(idle);
    heartbeat_under_load(load);
}
