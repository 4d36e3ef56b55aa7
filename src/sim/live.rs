//! A live simulated cluster for the demo: runner threads that claim,
//! log, finish and fail tasks by the protocol's real renames, a submitter
//! that keeps the queues fed, one node whose runner is dead (stale
//! heartbeat, its task STUCK), and one task that goes missing (LOST?).
//!
//! Real files and renames, so the dashboard reads it like a real tree.
//! Simulated runners honour cancel requests and pause markers.

use crate::clock::unix_now;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::model::{
    parse_entry, result_file_name, spec_file_name, CancelRequest, EntryKind, Heartbeat, ResultKind,
    TaskResult, TaskSpec,
};
use crate::paths::{write_atomic, QueueDir, RunDir};

/// How the simulated cluster behaves.
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub lease_id: String,
    pub nodes: Vec<String>,
    /// This node's runner is dead: no heartbeats, nothing claimed.
    pub dead_node: Option<String>,
    /// Runner loop period.
    pub tick: Duration,
    /// A new task is submitted this often (to a random node).
    pub submit_every: Duration,
    /// Task run time, in ticks.
    pub task_ticks: std::ops::Range<u32>,
    pub failure_percent: u32,
    /// After this long, one running task's claimed file is deleted.
    pub lose_one_after: Option<Duration>,
    pub seed: u64,
}

impl LiveOptions {
    pub fn demo(lease_id: &str, nodes: Vec<String>, dead_node: Option<String>) -> LiveOptions {
        LiveOptions {
            lease_id: lease_id.to_string(),
            nodes,
            dead_node,
            tick: Duration::from_millis(400),
            submit_every: Duration::from_millis(1500),
            task_ticks: 10..60,
            failure_percent: 15,
            lose_one_after: Some(Duration::from_secs(8)),
            seed: 7,
        }
    }
}

/// Running simulated runners; dropping it stops and joins them.
pub struct LiveCluster {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl LiveCluster {
    pub fn start(run: RunDir, options: LiveOptions) -> LiveCluster {
        let stop = Arc::new(AtomicBool::new(false));
        let lose_token = Arc::new(AtomicBool::new(options.lose_one_after.is_some()));
        let started = Instant::now();
        let mut threads = Vec::new();
        for (i, node) in options.nodes.iter().enumerate() {
            if options.dead_node.as_deref() == Some(node.as_str()) {
                continue;
            }
            let runner = Runner {
                run: run.clone(),
                node: node.clone(),
                options: options.clone(),
                rng: fastrand::Rng::with_seed(options.seed.wrapping_add(i as u64)),
                current: None,
                last_heartbeat: None,
                lose_token: lose_token.clone(),
                started,
            };
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || runner.run(&stop)));
        }
        let submitter = {
            let (run, options, stop) = (run.clone(), options.clone(), stop.clone());
            std::thread::spawn(move || submit_loop(&run, &options, &stop))
        };
        threads.push(submitter);
        LiveCluster { stop, threads }
    }
}

impl Drop for LiveCluster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

const COMMANDS: [&str; 6] = [
    "python train.py --cfg cfgs/sweep.yaml --lr 3e-4",
    "python eval.py --ckpt runs/last.pt --split val",
    "bash scripts/preprocess.sh shard-07",
    "python train.py --cfg cfgs/big.yaml --seed 3",
    "echo 'résumé ✓' && python report.py",
    "python finetune.py --base llama --data d/ß",
];

/// Writes a new task into a node's inbox, named as the real tool names
/// them.
pub fn submit(run: &RunDir, lease_id: &str, node: &str, command: &str) -> std::io::Result<String> {
    let env =
        [("WANDB_MODE".to_string(), "offline".to_string()), ("CUDA_VISIBLE_DEVICES".into(), "0".into())];
    let spec =
        crate::control::new_spec(lease_id, node, command.to_string(), "/home/demo/exp".into(), env.into(), 1);
    crate::control::enqueue(&crate::runfs::FsSource, run, &spec).map_err(std::io::Error::other)?;
    Ok(crate::control::stem_of(&spec))
}

/// Submits a task and claims it at once, as a runner that then died would
/// leave it: in `claimed/` with nobody working on it.
pub fn strand_task(run: &RunDir, lease_id: &str, node: &str) -> std::io::Result<String> {
    let stem = submit(run, lease_id, node, "python train.py --cfg cfgs/stranded.yaml")?;
    let claimed = run.queue(QueueDir::Claimed, node);
    std::fs::create_dir_all(&claimed)?;
    let file = spec_file_name(&stem);
    std::fs::rename(run.queue(QueueDir::Inbox, node).join(&file), claimed.join(&file))?;
    Ok(stem)
}

fn submit_loop(run: &RunDir, options: &LiveOptions, stop: &AtomicBool) {
    let mut rng = fastrand::Rng::with_seed(options.seed ^ 0x5eed);
    let live: Vec<&String> =
        options.nodes.iter().filter(|n| options.dead_node.as_deref() != Some(n.as_str())).collect();
    while !stop.load(Ordering::SeqCst) {
        if let Some(node) = live.get(rng.usize(..live.len().max(1))) {
            let _ = submit(run, &options.lease_id, node, COMMANDS[rng.usize(..COMMANDS.len())]);
        }
        sleep_unless_stopped(options.submit_every, stop);
    }
}

fn sleep_unless_stopped(total: Duration, stop: &AtomicBool) {
    let step = Duration::from_millis(50);
    let until = Instant::now() + total;
    while Instant::now() < until && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(step.min(until.saturating_duration_since(Instant::now())));
    }
}

struct Current {
    stem: String,
    spec: TaskSpec,
    started_at: i64,
    ticks_left: u32,
    step: u32,
}

struct Runner {
    run: RunDir,
    node: String,
    options: LiveOptions,
    rng: fastrand::Rng,
    current: Option<Current>,
    last_heartbeat: Option<Instant>,
    lose_token: Arc<AtomicBool>,
    started: Instant,
}

impl Runner {
    fn run(mut self, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            // A simulation hiccup must not kill the runner: note and go on.
            if let Err(e) = self.step() {
                self.append_log("err", &format!("runner: {e}"));
            }
            sleep_unless_stopped(self.options.tick, stop);
        }
    }

    fn step(&mut self) -> std::io::Result<()> {
        self.heartbeat()?;
        self.handle_cancels()?;
        match self.current.take() {
            None => {
                if !self.paused() {
                    self.claim()?;
                }
            }
            Some(mut current) => {
                if self.maybe_lose(&current) {
                    return Ok(());
                }
                current.step += 1;
                self.progress(&current);
                if current.ticks_left == 0 {
                    let code = if self.rng.u32(..100) < self.options.failure_percent { 1 } else { 0 };
                    self.finish(current, code, ResultKind::Ran)?;
                } else {
                    current.ticks_left -= 1;
                    self.current = Some(current);
                }
            }
        }
        Ok(())
    }

    fn heartbeat(&mut self) -> std::io::Result<()> {
        if self.last_heartbeat.is_some_and(|at| at.elapsed() < Duration::from_secs(2)) {
            return Ok(());
        }
        self.last_heartbeat = Some(Instant::now());
        let pending =
            std::fs::read_dir(self.run.queue(QueueDir::Inbox, &self.node)).map_or(0, |d| d.count() as u64);
        let hb = Heartbeat {
            node: self.node.clone(),
            ts: unix_now(),
            running_task_id: self.current.as_ref().map(|c| c.spec.task_id.clone()),
            pending_estimate: pending,
            runner_pid: std::process::id(),
            version: "demo".into(),
            running_task_ids: Vec::new(),
            paused: false,
            stopped: false,
        };
        let bytes = serde_json::to_vec(&hb).map_err(std::io::Error::other)?;
        write_atomic(&self.run.heartbeat(&self.node), &bytes)
    }

    fn paused(&self) -> bool {
        crate::scan::read_paused(&crate::scan::FsSource, &self.run, &self.node)
    }

    fn claim(&mut self) -> std::io::Result<()> {
        let inbox = self.run.queue(QueueDir::Inbox, &self.node);
        let Ok(entries) = std::fs::read_dir(&inbox) else { return Ok(()) };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| matches!(parse_entry(n), Some((_, EntryKind::Spec))))
            .collect();
        names.sort();
        let Some(first) = names.first() else { return Ok(()) };
        let claimed = self.run.queue(QueueDir::Claimed, &self.node);
        std::fs::create_dir_all(&claimed)?;
        std::fs::rename(inbox.join(first), claimed.join(first))?;
        let spec: TaskSpec =
            serde_json::from_slice(&std::fs::read(claimed.join(first))?).map_err(std::io::Error::other)?;
        let stem = first.trim_end_matches(".json").to_string();
        let ticks = self.rng.u32(self.options.task_ticks.clone());
        self.current = Some(Current { stem, spec, started_at: unix_now(), ticks_left: ticks, step: 0 });
        if let Some(current) = &self.current {
            let line = format!("\x1b[1mstarting\x1b[0m {} on {}", current.spec.command, self.node);
            self.write_log(&current.spec.task_id, "out", &line)?;
        }
        Ok(())
    }

    /// The chaos step: once, a running task's claimed file disappears and
    /// no result is written, so the dashboard must show LOST?.
    fn maybe_lose(&mut self, current: &Current) -> bool {
        let due = self.options.lose_one_after.is_some_and(|after| self.started.elapsed() > after);
        if !due || !self.lose_token.swap(false, Ordering::SeqCst) {
            return false;
        }
        let path = self.run.queue(QueueDir::Claimed, &self.node).join(spec_file_name(&current.stem));
        let _ = std::fs::remove_file(path);
        true
    }

    fn progress(&mut self, current: &Current) {
        let loss = 2.0 / f64::from(current.step + 1);
        let line =
            format!("epoch {} step {} loss={loss:.4} \x1b[32m✓\x1b[0m", current.step / 10, current.step);
        self.append_log("out", &format!("{}\t{line}", current.spec.task_id));
        if current.step.is_multiple_of(7) {
            self.append_log(
                "err",
                &format!("{}\tUserWarning: step {} slower than expected", current.spec.task_id, current.step),
            );
        }
    }

    fn append_log(&self, ext: &str, tagged: &str) {
        let (task_id, line) = tagged.split_once('\t').unwrap_or(("runner", tagged));
        let _ = self.write_log(task_id, ext, line);
    }

    fn write_log(&self, task_id: &str, ext: &str, line: &str) -> std::io::Result<()> {
        let dir = self.run.logs();
        std::fs::create_dir_all(&dir)?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{task_id}.{ext}")))?;
        writeln!(file, "{line}")
    }

    fn finish(&mut self, current: Current, exit_code: i32, kind: ResultKind) -> std::io::Result<()> {
        let spec = &current.spec;
        let now = unix_now();
        let result = TaskResult {
            task_id: spec.task_id.clone(),
            idempotency_key: spec.idempotency_key.clone(),
            node: self.node.clone(),
            started_at: current.started_at,
            finished_at: now,
            exit_code,
            stdout: format!("logs/{}.out", spec.task_id),
            stderr: format!("logs/{}.err", spec.task_id),
            runtime_s: (now - current.started_at) as f64,
            command: Some(spec.command.clone()),
            cwd: Some(spec.cwd.clone()),
            gpus_requested: Some(spec.gpus),
            gpus_assigned: Some("0".into()),
            error: None,
            signal: None,
        };
        if exit_code != 0 {
            self.append_log(
                "err",
                &format!(
                    "{}\tTraceback (most recent call last):\n  RuntimeError: CUDA out of memory",
                    spec.task_id
                ),
            );
        }
        let done = self.run.queue(QueueDir::Done, &self.node);
        // Result first, then archive the spec: never a moment with neither.
        let bytes = serde_json::to_vec(&result).map_err(std::io::Error::other)?;
        write_atomic(&done.join(result_file_name(&current.stem, kind)), &bytes)?;
        let claimed = self.run.queue(QueueDir::Claimed, &self.node).join(spec_file_name(&current.stem));
        if claimed.exists() {
            std::fs::rename(claimed, done.join(spec_file_name(&current.stem)))?;
        }
        Ok(())
    }

    /// Honours `control/<node>/cancel_*.json`: the running task ends with
    /// SIGTERM's exit code, a pending one gets a `.cancelled.json`.
    fn handle_cancels(&mut self) -> std::io::Result<()> {
        let control = self.run.control(&self.node);
        let Ok(entries) = std::fs::read_dir(&control) else { return Ok(()) };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.starts_with("cancel_") {
                continue;
            }
            let request: Option<CancelRequest> =
                std::fs::read(entry.path()).ok().and_then(|b| serde_json::from_slice(&b).ok());
            let _ = std::fs::remove_file(entry.path());
            let Some(request) = request else { continue };
            if self.current.as_ref().is_some_and(|c| c.spec.task_id == request.task_id) {
                if let Some(current) = self.current.take() {
                    self.finish(current, 143, ResultKind::Ran)?;
                }
            } else {
                self.cancel_pending(&request.task_id)?;
            }
        }
        Ok(())
    }

    fn cancel_pending(&mut self, task_id: &str) -> std::io::Result<()> {
        let inbox = self.run.queue(QueueDir::Inbox, &self.node);
        let Ok(entries) = std::fs::read_dir(&inbox) else { return Ok(()) };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some((stem, EntryKind::Spec)) = parse_entry(&name) else { continue };
            if crate::model::TaskName::parse(stem).is_some_and(|n| n.task_id == task_id) {
                let spec: TaskSpec =
                    serde_json::from_slice(&std::fs::read(entry.path())?).map_err(std::io::Error::other)?;
                let stem = stem.to_string();
                std::fs::remove_file(entry.path())?;
                let result = TaskResult {
                    task_id: spec.task_id.clone(),
                    idempotency_key: spec.idempotency_key.clone(),
                    node: self.node.clone(),
                    started_at: 0,
                    finished_at: unix_now(),
                    exit_code: -1,
                    stdout: String::new(),
                    stderr: String::new(),
                    runtime_s: 0.0,
                    command: Some(spec.command),
                    cwd: Some(spec.cwd),
                    gpus_requested: None,
                    gpus_assigned: None,
                    error: None,
                    signal: None,
                };
                let bytes = serde_json::to_vec(&result).map_err(std::io::Error::other)?;
                let done = self.run.queue(QueueDir::Done, &self.node);
                write_atomic(&done.join(result_file_name(&stem, ResultKind::Cancelled)), &bytes)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runners_claim_finish_and_honour_cancels() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        let mut options = LiveOptions::demo("1", vec!["a".into(), "b".into()], Some("b".into()));
        options.tick = Duration::from_millis(20);
        options.task_ticks = 2..4;
        options.lose_one_after = None;
        options.submit_every = Duration::from_secs(3600);
        let first = submit(&run, "1", "a", "echo one").unwrap();
        let second = submit(&run, "1", "a", "echo two").unwrap();
        let task_id = crate::model::TaskName::parse(&second).unwrap().task_id.to_string();
        crate::control::request_cancel(&crate::runfs::FsSource, &run, "a", &task_id, None).unwrap();
        let cluster = LiveCluster::start(run.clone(), options);
        let deadline = Instant::now() + Duration::from_secs(20);
        let done = run.queue(QueueDir::Done, "a");
        let finished = loop {
            let ran = done.join(result_file_name(&first, ResultKind::Ran)).exists();
            let cancelled = done.join(result_file_name(&second, ResultKind::Cancelled)).exists();
            if (ran && cancelled) || Instant::now() > deadline {
                break ran && cancelled;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(cluster);
        assert!(finished, "task one finished and task two was cancelled while pending");
        assert!(done.join(spec_file_name(&first)).exists(), "the spec is archived after the result");
        assert!(!run.heartbeat("b").exists(), "the dead node writes no heartbeat");
        assert!(run.heartbeat("a").exists());
    }
}
