//! What the integration tests with real runner processes share: a lease
//! in a temp dir, the real binary, a runner child that is always killed
//! (with every task it started), and polling with a deadline.

#![allow(dead_code)] // each test binary uses part of it

pub mod slurm;
pub mod tmux;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_leaseq");

/// A lease run dir `<tmp>/runs/<id>` with its archive `<tmp>`.
pub struct Lease {
    pub tmp: tempfile::TempDir,
    pub id: String,
}

impl Lease {
    pub fn new(id: &str) -> Lease {
        let tmp = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(tmp.path().join("runs").join(id)).expect("run dir");
        Lease { tmp, id: id.to_string() }
    }

    /// With `config.json` `{"ui": {"hb_stale_s": N}}`.
    pub fn with_stale_after(id: &str, hb_stale_s: u64) -> Lease {
        let lease = Lease::new(id);
        let config = format!(r#"{{"ui":{{"hb_stale_s":{hb_stale_s}}}}}"#);
        std::fs::write(lease.home().join("config.json"), config).expect("config");
        lease
    }

    pub fn home(&self) -> &Path {
        self.tmp.path()
    }

    pub fn run_dir(&self) -> PathBuf {
        self.tmp.path().join("runs").join(&self.id)
    }

    /// `leaseq --home <tmp> <args>`. HOME is the temp dir too: a submitted
    /// task gets the submitter's environment, and its login shell must not
    /// run this machine's ~/.profile (slow, and with locks a killed task
    /// can leave behind).
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .env("HOME", self.home())
            .env("XDG_CACHE_HOME", self.home().join(".cache"))
            .env_remove("LEASEQ_CACHE_DIR")
            .arg("--home")
            .arg(self.home())
            .args(args)
            .env("LEASEQ_RUNTIME_DIR", self.home().join("rt"))
            .stdin(Stdio::null())
            .output()
            .expect("run leaseq")
    }

    /// [`Lease::cli`], asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "leaseq {args:?} failed: {}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    /// Submits one command to `node`; returns its file stem.
    pub fn submit(&self, node: &str, extra: &[&str], command: &str) -> String {
        let run = self.run_dir();
        let mut args = vec!["submit", "--run-dir", run.to_str().unwrap(), "--node", node, "--json"];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--", command]);
        let out: Value = serde_json::from_str(&self.ok(&args)).expect("submit --json");
        out[0]["name"].as_str().expect("a name").to_string()
    }

    /// `tasks --json` as values keyed by task file stem.
    pub fn tasks(&self) -> std::collections::BTreeMap<String, Value> {
        let run = self.run_dir();
        let out = self.ok(&["tasks", "--run-dir", run.to_str().unwrap(), "--json"]);
        let rows: Vec<Value> = serde_json::from_str(&out).expect("tasks --json");
        rows.into_iter().map(|r| (r["name"].as_str().unwrap_or_default().to_string(), r)).collect()
    }

    pub fn task(&self, stem: &str) -> Value {
        self.tasks().remove(stem).unwrap_or(Value::Null)
    }

    pub fn state(&self, stem: &str) -> String {
        self.task(stem)["state"].as_str().unwrap_or("?").to_string()
    }

    /// Waits until `stem` is in `state` (tasks --json), or panics with what it is.
    pub fn wait_state(&self, stem: &str, state: &str, within: Duration) -> Value {
        let mut last = Value::Null;
        wait_until(&format!("{stem} to be {state}"), within, || {
            last = self.task(stem);
            last["state"] == state
        });
        last
    }

    /// Starts `leaseq run` for `node` on this lease.
    pub fn runner(&self, node: &str, extra: &[&str]) -> Runner {
        let run = self.run_dir();
        let mut command = Command::new(BIN);
        command
            .arg("--home")
            .arg(self.home())
            .args(["run", "--lease", &self.id, "--node", node, "--root"])
            .arg(&run)
            .args(["--poll-ms", "50", "--heartbeat-s", "1"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("start leaseq run");
        let runner = Runner { child: Some(child), run, node: node.to_string() };
        let hb = runner.run.join("hb").join(format!("{node}.json"));
        let pid = runner.pid();
        wait_until("the runner's first heartbeat", Duration::from_secs(10), || {
            std::fs::read(&hb)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .is_some_and(|v| v["runner_pid"] == pid)
        });
        runner
    }
}

/// A `leaseq run` child. Dropped: SIGKILLed, and every task process group
/// it started is killed too (a SIGKILLed runner leaves them running).
pub struct Runner {
    pub child: Option<Child>,
    pub run: PathBuf,
    pub node: String,
}

impl Runner {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child.
        unsafe {
            libc::kill(self.pid() as i32, signal);
        }
    }

    /// Waits for the runner to exit; returns its exit status and stderr.
    pub fn wait(&mut self, within: Duration) -> (std::process::ExitStatus, String) {
        let mut child = self.child.take().expect("a runner child");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                let mut err = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut pipe, &mut err);
                }
                return (status, err);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the runner did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The pids the runner started tasks with (their process group ids).
    pub fn task_pids(&self) -> Vec<i32> {
        task_pids(&self.run, &self.node)
    }
}

pub fn task_pids(run: &Path, node: &str) -> Vec<i32> {
    let events =
        std::fs::read_to_string(run.join("events").join(format!("{node}.jsonl"))).unwrap_or_default();
    events
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "STARTED")
        .filter_map(|v| v["data"]["pid"].as_i64())
        .map(|p| p as i32)
        .collect()
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for pgid in self.task_pids() {
            kill_group(pgid);
        }
    }
}

pub fn kill_group(pgid: i32) {
    // SAFETY: kill(2) on a process group a test runner started.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Whether any live process (not a zombie waiting to be reaped) is left in
/// the process group, from /proc.
pub fn group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|e| {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { return false };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else { return false };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}

pub fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
