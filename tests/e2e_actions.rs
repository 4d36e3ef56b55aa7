//! End to end: the dashboard's actions carried out by a real runner. The
//! real binary in tmux on a lease served by a real `leaseq run`: `X`
//! cancels a running task (its process group ends, the row reads
//! CANCELLED), `R` retries a finished one (a new task runs), `P` pauses and
//! resumes the node (the runner's heartbeat says so).

mod common;

use std::time::Duration;

use common::tmux::{tmux_available, Session};
use common::{group_alive, wait_until, Lease, BIN};
use serde_json::Value;

const SHORT: Duration = Duration::from_secs(20);

fn dashboard(lease: &Lease, name: &str) -> Session {
    let command = format!(
        "env LEASEQ_STALL_MS=400 LEASEQ_STALL_LOG={} {BIN} --home {} tui --lease {}; echo EXIT=$?; sleep 60",
        lease.home().join("stalls.log").display(),
        lease.home().display(),
        lease.id
    );
    Session::start(name, &command)
}

#[test]
fn cancel_retry_and_pause_from_the_dashboard_are_carried_out_by_the_runner() {
    if !tmux_available() {
        return;
    }
    let lease = Lease::new("500");
    let runner = lease.runner("n1", &["--grace-s", "3", "--parallel", "2"]);
    let finished = lease.submit("n1", &[], "echo first-run");
    lease.wait_state(&finished, "FINISHED", SHORT);
    let running = lease.submit("n1", &[], "sleep 600");
    lease.wait_state(&running, "RUNNING", SHORT);
    wait_until("the task's process", SHORT, || runner.task_pids().len() == 2);
    let pgid = runner.task_pids()[1];

    let session = dashboard(&lease, "leaseq-e2e-actions");
    session.wait_for("the running row", |s| s.contains("RUNNING") && s.contains("sleep 600"));

    // X on the running task, confirmed.
    session.keys(&["2"]);
    session.wait_for("the running filter", |s| s.contains("state:RUNN"));
    session.keys(&["X"]);
    session.wait_for("the confirmation", |s| s.contains("Cancel ") && s.contains("(RUNNING)?"));
    session.keys(&["y"]);
    wait_until("the task's process group to end", Duration::from_secs(6), || !group_alive(pgid));
    lease.wait_state(&running, "CANCELLED", SHORT);
    session.keys(&["0"]);
    session
        .wait_for("the CANCELLED row", |s| s.lines().any(|l| l.contains("CANC") && l.contains("sleep 600")));

    // R on the finished task, confirmed: a new task with the same command runs.
    session.keys(&["4"]);
    session.wait_for("the finished filter", |s| s.contains("state:FINI") && s.contains("first-run"));
    session.keys(&["R"]);
    session.wait_for("the retry question", |s| s.contains("as a new task?"));
    session.keys(&["y"]);
    wait_until("the retried task to finish", SHORT, || {
        let tasks = lease.tasks();
        tasks.values().filter(|t| t["command"] == "echo first-run" && t["state"] == "FINISHED").count() == 2
    });
    session.keys(&["0"]);

    // P on the node pauses it; the runner's heartbeat says so; P resumes.
    let hb = lease.run_dir().join("hb/n1.json");
    let paused = || {
        serde_json::from_slice::<Value>(&std::fs::read(&hb).unwrap_or_default())
            .is_ok_and(|v| v["paused"] == true)
    };
    session.keys(&["BTab", "P"]);
    wait_until("the runner to pause", SHORT, paused);
    session.wait_for("the node row to say paused", |s| s.contains("[paused]"));
    let queued = lease.submit("n1", &[], "echo after-resume");
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(lease.state(&queued), "PENDING", "a paused node claims nothing");
    session.keys(&["P"]);
    wait_until("the runner to resume", SHORT, || !paused());
    session.wait_for("the node row to lose [paused]", |s| !s.contains("[paused]"));
    lease.wait_state(&queued, "FINISHED", SHORT);

    session.keys(&["q"]);
    session.wait_for("the dashboard to exit", |s| s.contains("EXIT=0"));
    let stalls = std::fs::read_to_string(lease.home().join("stalls.log")).unwrap_or_default();
    assert!(stalls.is_empty(), "the pump stalled:\n{stalls}");
}
