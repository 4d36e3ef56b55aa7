//! The live engine on a real directory tree: real files, real renames.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leaseq::engine::{Control, Engine, EngineConfig};
use leaseq::index::{Index, TaskState};
use leaseq::model::{Heartbeat, TaskResult, TaskSpec};
use leaseq::paths::{write_atomic, QueueDir, RunDir, UiConfig};
use leaseq::scan::FsSource;

fn name(seq: u64) -> String {
    format!("{seq:06}_T{seq:03}_2b7c9c9b-1234-4cde-8f00-{seq:012}")
}

fn spec(seq: u64) -> Vec<u8> {
    let spec = TaskSpec {
        task_id: format!("T{seq:03}"),
        idempotency_key: format!("1-a-{seq}"),
        lease_id: "1".into(),
        target_node: "a".into(),
        seq,
        uuid: "u".into(),
        created_at: 1_700_000_000 + seq as i64,
        cwd: "/work".into(),
        env: Default::default(),
        gpus: 0,
        command: format!("echo {seq}"),
    };
    serde_json::to_vec(&spec).unwrap()
}

fn result(seq: u64, exit_code: i32) -> Vec<u8> {
    let result = TaskResult {
        task_id: format!("T{seq:03}"),
        idempotency_key: format!("1-a-{seq}"),
        node: "a".into(),
        started_at: 1_700_000_100,
        finished_at: 1_700_000_200,
        exit_code,
        stdout: format!("logs/T{seq:03}.out"),
        stderr: format!("logs/T{seq:03}.err"),
        runtime_s: 100.0,
        command: None,
        cwd: None,
        gpus_requested: None,
        gpus_assigned: None,
        error: None,
        signal: None,
    };
    serde_json::to_vec(&result).unwrap()
}

fn heartbeat(run: &RunDir) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let hb = Heartbeat {
        node: "a".into(),
        ts: now,
        running_task_id: None,
        pending_estimate: 0,
        runner_pid: 1,
        version: "test".into(),
        running_task_ids: Vec::new(),
        paused: false,
        stopped: false,
    };
    write_atomic(&run.heartbeat("a"), &serde_json::to_vec(&hb).unwrap()).unwrap();
}

fn put(dir: &Path, file: &str, bytes: &[u8]) {
    write_atomic(&dir.join(file), bytes).unwrap();
}

fn wait_for(engine: &Engine, what: &str, ok: impl Fn(&Index) -> bool) -> Arc<Index> {
    let slot = engine.snapshots();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let index = slot.latest();
        if ok(&index) {
            return index;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        engine.send(Control::RefreshNow);
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn state_of(index: &Index, seq: u64) -> Option<TaskState> {
    index.find(&name(seq)).and_then(|id| index.task(id)).map(|t| t.state)
}

#[test]
fn follows_a_task_through_the_queue_on_a_real_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir(tmp.path().to_path_buf());
    let (inbox, claimed, done) =
        (run.queue(QueueDir::Inbox, "a"), run.queue(QueueDir::Claimed, "a"), run.queue(QueueDir::Done, "a"));
    heartbeat(&run);
    put(&inbox, &format!("{}.json", name(1)), &spec(1));
    put(&inbox, &format!("{}.json", name(2)), &spec(2));
    put(&done, &format!("{}.json", name(3)), &spec(3));
    put(&done, &format!("{}.result.json", name(3)), &result(3, 0));
    std::fs::write(claimed.with_file_name(".keep"), b"").ok();

    let config =
        EngineConfig::new(run.clone(), UiConfig { refresh_s: 1, ..UiConfig::default() }, Arc::new(FsSource));
    let engine = Engine::start(config);
    let index = wait_for(&engine, "the first scan and hydration", |i| {
        i.task_count() == 3 && state_of(i, 3) == Some(TaskState::Finished) && i.unread_count() == 0
    });
    assert_eq!(state_of(&index, 1), Some(TaskState::Pending));
    let task = index.task(index.find(&name(1)).unwrap()).unwrap();
    assert_eq!(task.command(), Some("echo 1"), "specs are hydrated");

    // Claim task 1, as a runner does: a rename.
    std::fs::create_dir_all(&claimed).unwrap();
    std::fs::rename(inbox.join(format!("{}.json", name(1))), claimed.join(format!("{}.json", name(1))))
        .unwrap();
    wait_for(&engine, "task 1 running", |i| state_of(i, 1) == Some(TaskState::Running));

    // Finish it with a failure: result first, then archive the spec.
    put(&done, &format!("{}.result.json", name(1)), &result(1, 3));
    std::fs::rename(claimed.join(format!("{}.json", name(1))), done.join(format!("{}.json", name(1))))
        .unwrap();
    let index = wait_for(&engine, "task 1 failed", |i| state_of(i, 1) == Some(TaskState::Failed));
    let feed: Vec<_> = index.feed().map(|t| (t.from, t.to)).collect();
    assert!(feed.contains(&(Some(TaskState::Running), TaskState::Failed)), "{feed:?}");

    // A malformed spec shows up with its reason instead of vanishing.
    put(&inbox, &format!("{}.json", name(4)), b"{\"task_id\": \"T004\", trunc");
    let index = wait_for(&engine, "task 4 with a problem", |i| {
        i.find(&name(4)).and_then(|id| i.task(id)).is_some_and(|t| t.problem().is_some())
    });
    let task = index.task(index.find(&name(4)).unwrap()).unwrap();
    assert_eq!(task.state, TaskState::Pending);
    assert!(task.problem().unwrap().contains("malformed JSON"));
}

#[test]
fn an_unreadable_directory_is_a_node_status_not_a_loss() {
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir(tmp.path().to_path_buf());
    let claimed = run.queue(QueueDir::Claimed, "a");
    put(&claimed, &format!("{}.json", name(1)), &spec(1));
    heartbeat(&run);
    let config =
        EngineConfig::new(run.clone(), UiConfig { refresh_s: 1, ..UiConfig::default() }, Arc::new(FsSource));
    let engine = Engine::start(config);
    wait_for(&engine, "task 1 running", |i| state_of(i, 1) == Some(TaskState::Running));
    // Tests run as root, who may read anything: make the listing fail by
    // putting a file where the directory was (read_dir: ENOTDIR).
    std::fs::remove_dir_all(&claimed).unwrap();
    std::fs::write(&claimed, b"not a directory").unwrap();
    let index = wait_for(&engine, "a scan error on node a", |i| {
        i.find_node("a").and_then(|n| i.node(n)).is_some_and(|n| n.has_scan_error())
    });
    assert_eq!(state_of(&index, 1), Some(TaskState::Running), "the last good listing stands");
}

/// The real filesystem, with listings of `done/` that can be held until
/// released: a listing in flight, for as long as a test needs.
struct GatedSource {
    hold: std::sync::Mutex<bool>,
    released: std::sync::Condvar,
    held: std::sync::atomic::AtomicBool,
}

impl GatedSource {
    fn set_hold(&self, hold: bool) {
        *self.hold.lock().unwrap() = hold;
        self.released.notify_all();
    }
}

impl leaseq::scan::RunFs for GatedSource {
    fn stamp(&self, dir: &Path) -> Result<leaseq::scan::DirStamp, leaseq::scan::ListError> {
        FsSource.stamp(dir)
    }
    fn list_files(&self, dir: &Path) -> Result<leaseq::runfs::FileNames, leaseq::scan::ListError> {
        if dir.to_string_lossy().contains("/done/") {
            let mut hold = self.hold.lock().unwrap();
            while *hold {
                self.held.store(true, std::sync::atomic::Ordering::SeqCst);
                hold = self.released.wait(hold).unwrap();
            }
            self.held.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        FsSource.list_files(dir)
    }
    fn list_dirs(&self, dir: &Path) -> Result<Vec<String>, leaseq::scan::ListError> {
        FsSource.list_dirs(dir)
    }
    fn read_file(&self, path: &Path, max_bytes: u64) -> Result<Vec<u8>, leaseq::scan::ListError> {
        FsSource.read_file(path, max_bytes)
    }
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        FsSource.write_atomic(path, bytes)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        FsSource.rename(from, to)
    }
    fn create_dir_all(&self, dir: &Path) -> std::io::Result<()> {
        FsSource.create_dir_all(dir)
    }
    fn remove_file(&self, path: &Path) -> std::io::Result<()> {
        FsSource.remove_file(path)
    }
    fn probe(&self, path: &Path) -> std::io::Result<Option<bool>> {
        FsSource.probe(path)
    }
}

#[test]
fn a_refresh_asked_for_while_a_listing_runs_is_not_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir(tmp.path().to_path_buf());
    let inbox = run.queue(QueueDir::Inbox, "a");
    heartbeat(&run);
    put(&inbox, &format!("{}.json", name(1)), &spec(1));
    std::fs::create_dir_all(run.queue(QueueDir::Done, "a")).unwrap();
    let source = Arc::new(GatedSource {
        hold: std::sync::Mutex::new(false),
        released: std::sync::Condvar::new(),
        held: false.into(),
    });
    // A slow cadence: without the refresh, the next round is 10 s away.
    let ui = UiConfig { refresh_s: 10, ..UiConfig::default() };
    let engine = Engine::start(EngineConfig::new(run.clone(), ui, source.clone()));
    wait_for(&engine, "the first scan", |i| state_of(i, 1) == Some(TaskState::Pending));
    // The next round's done/ listing is held; its inbox/ was already listed.
    source.set_hold(true);
    engine.send(Control::RefreshNow);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !source.held.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(Instant::now() < deadline, "the round never reached done/");
        std::thread::sleep(Duration::from_millis(10));
    }
    // A task submitted now, and a refresh asked for while that listing runs.
    put(&inbox, &format!("{}.json", name(2)), &spec(2));
    engine.send(Control::RefreshNow);
    std::thread::sleep(Duration::from_millis(100));
    source.set_hold(false);
    let released = Instant::now();
    // Watched without asking for more refreshes (wait_for does).
    let slot = engine.snapshots();
    while state_of(&slot.latest(), 2) != Some(TaskState::Pending) {
        let waited = released.elapsed();
        assert!(waited < Duration::from_secs(3), "not seen after {waited:?}: the refresh was lost");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_filesystem_that_never_answers_holds_a_bounded_number_of_threads_and_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let run = RunDir(tmp.path().to_path_buf());
    heartbeat(&run);
    let source = Arc::new(leaseq::sim::stall::StallingFs::after(Duration::ZERO));
    let engine = Engine::start(EngineConfig::new(run, UiConfig::default(), source.clone()));
    for i in 0..200 {
        engine.send(Control::RefreshNow);
        engine.send(Control::Visible(vec![i]));
        if i % 50 == 0 {
            engine.send(Control::SetPaused(false));
        }
    }
    let slot = engine.snapshots();
    let deadline = Instant::now() + Duration::from_secs(10);
    while slot.stuck(Duration::from_secs(1)).is_none() {
        assert!(Instant::now() < deadline, "the hung calls are never reported");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (what, _) = slot.stuck(Duration::from_secs(1)).unwrap();
    assert!(what.contains("node list") || what.contains("heartbeats"), "{what}");
    // One hung call per source (the node list, the heartbeats), however
    // many refreshes come: a refresh while a job hangs waits for it.
    assert_eq!(source.stalled_calls(), 2, "one call per source");
    for _ in 0..200 {
        engine.send(Control::RefreshNow);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(source.stalled_calls(), 2, "two hundred more refreshes start nothing new");
    assert!(engine.io_threads() <= 2, "{} I/O threads for two hung calls", engine.io_threads());
}
