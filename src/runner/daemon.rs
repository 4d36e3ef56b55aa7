//! `leaseq daemon start|stop|status`: this host's local lease
//! (`local:<hostname>`) served by a background runner.
//!
//! Owns: the local lease's `meta/lease.json` and registry entry, starting
//! the runner detached (its own session, output to a log), and its pid
//! file. Everything it writes is inside the local lease's run directory
//! (`daemon/runner.pid`, `daemon/runner.log`) or the registry.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::clock::unix_now;
use crate::model::{Heartbeat, LeaseMeta, LocalLeaseMeta};
use crate::paths::{read_registry, write_atomic, write_registry, Roots, RunDir};
use crate::store::read_record;

/// The local lease's daemon files.
pub struct DaemonFiles {
    pub lease_id: String,
    pub node: String,
    pub run: RunDir,
}

impl DaemonFiles {
    pub fn of(roots: &Roots) -> Result<DaemonFiles, String> {
        let lease_id = roots.local_lease_id();
        let dir = roots.run_dir(&lease_id).ok_or_else(|| {
            format!(
                "this host's name {:?} cannot name a local lease (letters, digits, '.', '-', '_')",
                roots.hostname
            )
        })?;
        Ok(DaemonFiles { run: RunDir(dir), node: roots.hostname.clone(), lease_id })
    }
    pub fn pid_path(&self) -> PathBuf {
        self.run.0.join("daemon").join("runner.pid")
    }
    pub fn log_path(&self) -> PathBuf {
        self.run.0.join("daemon").join("runner.log")
    }

    /// The daemon's pid, when its pid file names a live leaseq runner.
    pub fn live_pid(&self) -> Option<u32> {
        let bytes = read_record(&self.pid_path(), 64).ok()?;
        let pid: u32 = String::from_utf8_lossy(&bytes).trim().parse().ok()?;
        is_our_runner(pid).then_some(pid)
    }

    fn heartbeat(&self) -> Option<Heartbeat> {
        crate::scan::read_heartbeat(&crate::scan::FsSource, &self.run, &self.node).ok()
    }
}

/// Guards a pid file against pid reuse: the process must be a `leaseq run`.
fn is_our_runner(pid: u32) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let args: Vec<&[u8]> = cmdline.split(|&b| b == 0).collect();
    super::process_alive(pid) && args.iter().any(|a| *a == b"run") && args.iter().any(|a| *a == b"--lease")
}

/// What `daemon start` is asked for.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    pub parallel: Option<u32>,
    pub gpus: Option<u32>,
    pub grace_s: Option<u64>,
}

/// Starts the local lease's runner in the background and waits (a few
/// seconds at most) for its first heartbeat. Returns what to tell the user.
pub fn start(roots: &Roots, exe: &Path, options: &StartOptions) -> Result<String, String> {
    roots.ensure_private_runtime()?;
    let files = DaemonFiles::of(roots)?;
    if let Some(pid) = files.live_pid() {
        return Ok(format!("the local runner is already running (pid {pid}, lease {})", files.lease_id));
    }
    let local = record_local_lease(roots, &files, options)?;
    let log_path = files.log_path();
    std::fs::create_dir_all(log_path.parent().unwrap_or(Path::new(".")))
        .map_err(|e| format!("creating {}: {e}", log_path.display()))?;
    let log = crate::store::open_for_writing(&log_path, true)
        .map_err(|e| format!("opening {}: {e}", log_path.display()))?;
    let log_err = log.try_clone().map_err(|e| e.to_string())?;
    let mut command = Command::new(exe);
    command
        .arg("run")
        .arg("--lease")
        .arg(&files.lease_id)
        .arg("--node")
        .arg(&files.node)
        .arg("--root")
        .arg(&files.run.0)
        .arg("--parallel")
        .arg(local.parallel.max(1).to_string())
        .arg("--gpus")
        .arg(local.total_gpus.to_string())
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err);
    if let Some(grace) = options.grace_s {
        command.arg("--grace-s").arg(grace.to_string());
    }
    // SAFETY: setsid is async-signal-safe; run between fork and exec it
    // detaches the runner from this terminal's session (no SIGHUP when the
    // terminal closes, no Ctrl-C).
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| format!("starting {}: {e}", exe.display()))?;
    let pid = child.id();
    write_atomic(&files.pid_path(), format!("{pid}\n").as_bytes())
        .map_err(|e| format!("writing {}: {e}", files.pid_path().display()))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            let _ = std::fs::remove_file(files.pid_path());
            return Err(format!(
                "the runner exited at once ({status}); its log {} says:\n{}",
                log_path.display(),
                tail(&log_path, 10)
            ));
        }
        if files.heartbeat().is_some_and(|hb| hb.runner_pid == pid) {
            return Ok(format!(
                "started the local runner (pid {pid}) for lease {}: {} slot(s), {} GPU(s); log {}",
                files.lease_id,
                local.parallel.max(1),
                local.total_gpus,
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(format!("started the local runner (pid {pid}), no heartbeat yet; see {}", log_path.display()))
}

/// Writes the local lease's meta (keeping what a previous start set unless
/// asked otherwise) and registers it; the first lease becomes the default.
fn record_local_lease(
    roots: &Roots,
    files: &DaemonFiles,
    options: &StartOptions,
) -> Result<LocalLeaseMeta, String> {
    let previous = crate::leases::read_lease_meta(&crate::runfs::FsSource, &files.run);
    let (created_at, mut local) = match previous {
        Some(LeaseMeta::Local { created_at, local, .. }) => (created_at, local),
        _ => (unix_now(), LocalLeaseMeta { total_gpus: 0, parallel: 1 }),
    };
    if let Some(parallel) = options.parallel {
        local.parallel = parallel.max(1);
    }
    if let Some(gpus) = options.gpus {
        local.total_gpus = gpus;
    }
    let meta = LeaseMeta::Local { lease_id: files.lease_id.clone(), created_at, local: local.clone() };
    let mut bytes = serde_json::to_vec_pretty(&meta).map_err(|e| e.to_string())?;
    bytes.push(b'\n');
    write_atomic(&files.run.meta(), &bytes)
        .map_err(|e| format!("writing {}: {e}", files.run.meta().display()))?;
    let path = roots.registry_path();
    let mut registry = read_registry(&path)?;
    if !registry.leases.contains_key(&files.lease_id) || registry.default_lease.is_none() {
        registry.leases.entry(files.lease_id.clone()).or_default();
        if registry.default_lease.is_none() {
            registry.default_lease = Some(files.lease_id.clone());
        }
        write_registry(&path, &registry).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(local)
}

/// Stops the daemon (SIGTERM: it stops its tasks, writes their results and
/// exits) and waits for it, up to `wait`.
pub fn stop(roots: &Roots, wait: Duration) -> Result<String, String> {
    let files = DaemonFiles::of(roots)?;
    let Some(pid) = files.live_pid() else {
        let _ = std::fs::remove_file(files.pid_path());
        return Ok("the local runner is not running".to_string());
    };
    // SAFETY: kill(2) on a pid just checked to be our runner.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if !is_our_runner(pid) {
            let _ = std::fs::remove_file(files.pid_path());
            return Ok(format!("stopped the local runner (pid {pid})"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "the local runner (pid {pid}) is still stopping after {}s (its tasks have a grace period); \
         see {}",
        wait.as_secs(),
        files.log_path().display()
    ))
}

/// `daemon status`.
#[derive(Debug, Serialize)]
pub struct DaemonStatus {
    pub lease: String,
    pub run_dir: String,
    pub running: bool,
    pub pid: Option<u32>,
    pub heartbeat_age_s: Option<i64>,
    pub running_tasks: Vec<String>,
    pub pending: Option<u64>,
    pub paused: bool,
    pub log: String,
}

pub fn status(roots: &Roots) -> Result<DaemonStatus, String> {
    let files = DaemonFiles::of(roots)?;
    let pid = files.live_pid();
    let hb = files.heartbeat().filter(|hb| pid.is_some_and(|p| p == hb.runner_pid));
    Ok(DaemonStatus {
        lease: files.lease_id.clone(),
        run_dir: files.run.0.display().to_string(),
        running: pid.is_some(),
        pid,
        heartbeat_age_s: hb.as_ref().map(|hb| unix_now().saturating_sub(hb.ts)),
        running_tasks: hb.as_ref().map(|hb| hb.running_task_ids.clone()).unwrap_or_default(),
        pending: hb.as_ref().map(|hb| hb.pending_estimate),
        paused: hb.as_ref().is_some_and(|hb| hb.paused),
        log: files.log_path().display().to_string(),
    })
}

impl DaemonStatus {
    pub fn text(&self) -> String {
        if !self.running {
            return format!(
                "local runner: not running (lease {}; start it with `leaseq daemon start`)\n",
                self.lease
            );
        }
        format!(
            "local runner: running, pid {}, lease {}\n  heartbeat {}  running {}  pending {}{}\n  log {}\n",
            self.pid.unwrap_or(0),
            self.lease,
            self.heartbeat_age_s.map_or("-".into(), |a| format!("{a}s ago")),
            if self.running_tasks.is_empty() { "-".to_string() } else { self.running_tasks.join(",") },
            self.pending.map_or("-".into(), |p| p.to_string()),
            if self.paused { "  PAUSED" } else { "" },
            self.log
        )
    }
}

/// The last lines of the daemon's log, for a message.
fn tail(path: &Path, lines: usize) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok((mut file, _)) = crate::logs::open_regular(path) else { return String::new() };
    let start = crate::task_logs::start_of_last_lines(&mut file, lines).unwrap_or(0);
    let mut text = String::new();
    let _ =
        file.seek(SeekFrom::Start(start)).and_then(|_| (&mut file).take(64 << 10).read_to_string(&mut text));
    text
}
