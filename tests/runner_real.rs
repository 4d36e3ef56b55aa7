//! The runner as users run it: the real `leaseq run` process, real task
//! processes and signals, real directories, driven through the real CLI.
//! Every dashboard action (cancel, retry, pause, resume, recover) is
//! checked here as carried out by the runner.

mod common;

use std::time::{Duration, Instant};

use common::{group_alive, wait_until, Lease};
use serde_json::Value;

const SHORT: Duration = Duration::from_secs(15);

fn run_dir_arg(lease: &Lease) -> String {
    lease.run_dir().display().to_string()
}

fn result_of(lease: &Lease, node: &str, stem: &str, suffix: &str) -> Value {
    let path = lease.run_dir().join("done").join(node).join(format!("{stem}{suffix}"));
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_default()).unwrap_or(Value::Null)
}

/// Waits until the task printed `marker` (a signal trap is set only once
/// bash got that far).
fn wait_for_output(lease: &Lease, stem: &str, marker: &str) {
    let log = lease.run_dir().join("logs/n1").join(format!("{stem}.out"));
    wait_until(&format!("{stem} to print {marker}"), SHORT, || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains(marker))
    });
}

fn claimed_is_empty(lease: &Lease, node: &str) -> bool {
    std::fs::read_dir(lease.run_dir().join("claimed").join(node)).map_or(true, |mut d| d.next().is_none())
}

#[test]
fn a_task_runs_in_its_cwd_with_its_env_and_logs_and_events_are_written() {
    let lease = Lease::new("100");
    let _runner = lease.runner("n1", &[]);
    let cwd = lease.home().join("work");
    std::fs::create_dir_all(&cwd).unwrap();
    let stem = lease.submit(
        "n1",
        &["--cwd", cwd.to_str().unwrap()],
        "pwd; echo \"task=$LEASEQ_TASK_ID\"; echo to-stderr >&2",
    );
    let row = lease.wait_state(&stem, "FINISHED", SHORT);
    assert_eq!(row["exit_code"], 0);
    let out = lease.ok(&["logs", "--run-dir", &run_dir_arg(&lease), &stem]);
    assert!(out.starts_with(&format!("{}\n", cwd.display())), "{out}");
    assert!(out.contains(&format!("task={}", row["task_id"].as_str().unwrap())), "{out}");
    assert_eq!(lease.ok(&["logs", "--run-dir", &run_dir_arg(&lease), &stem, "--err"]), "to-stderr\n");
    let result = result_of(&lease, "n1", &stem, ".result.json");
    assert_eq!(result["stdout"], format!("logs/n1/{stem}.out"));
    assert!(lease.run_dir().join("done/n1").join(format!("{stem}.json")).is_file(), "spec archived");
    let events = std::fs::read_to_string(lease.run_dir().join("events/n1.jsonl")).unwrap();
    let kinds: Vec<String> = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(kinds, vec!["CLAIMED", "STARTED", "FINISHED"]);
}

#[test]
fn tasks_with_the_same_task_id_never_share_a_log() {
    let lease = Lease::new("101");
    let first = lease.submit("n1", &[], "echo first");
    // A second task with the same task id (24-bit ids collide), filed by hand.
    let spec_path = lease.run_dir().join("inbox/n1").join(format!("{first}.json"));
    let mut spec: Value = serde_json::from_slice(&std::fs::read(&spec_path).unwrap()).unwrap();
    let task_id = spec["task_id"].as_str().unwrap().to_string();
    let uuid = "00000000-0000-4000-8000-0000000000ff";
    let seq = spec["seq"].as_u64().unwrap() + 1;
    spec["uuid"] = uuid.into();
    spec["seq"] = seq.into();
    spec["idempotency_key"] = "other-key".into();
    spec["command"] = "echo second".into();
    let second = format!("{seq:016}_{task_id}_{uuid}");
    std::fs::write(lease.run_dir().join("inbox/n1").join(format!("{second}.json")), spec.to_string())
        .unwrap();
    let _runner = lease.runner("n1", &[]);
    lease.wait_state(&first, "FINISHED", SHORT);
    lease.wait_state(&second, "FINISHED", SHORT);
    assert_eq!(lease.ok(&["logs", "--run-dir", &run_dir_arg(&lease), &first]), "first\n");
    assert_eq!(lease.ok(&["logs", "--run-dir", &run_dir_arg(&lease), &second]), "second\n");
    let ambiguous = lease.cli(&["logs", "--run-dir", &run_dir_arg(&lease), &task_id]);
    assert!(!ambiguous.status.success());
    assert!(
        common::text(&ambiguous.stderr).contains("matches 2 tasks"),
        "{}",
        common::text(&ambiguous.stderr)
    );
}

#[test]
fn cancel_of_a_running_task_ends_its_whole_process_group_and_reads_cancelled() {
    let lease = Lease::new("102");
    // A grace longer than the wait below: the group must end by SIGTERM,
    // not by the SIGKILL after the grace.
    let runner = lease.runner("n1", &["--grace-s", "30"]);
    // A child in the background as well: the whole group must go.
    let stem = lease.submit("n1", &[], "sleep 600 & sleep 600; wait");
    lease.wait_state(&stem, "RUNNING", SHORT);
    wait_until("the task to start", SHORT, || !runner.task_pids().is_empty());
    let pgid = runner.task_pids()[0];
    assert!(group_alive(pgid));
    let asked = Instant::now();
    let out = lease.ok(&["cancel", "--run-dir", &run_dir_arg(&lease), &stem]);
    assert!(out.contains("sent to n1's runner"), "{out}");
    wait_until("the task's process group to end", Duration::from_secs(5), || !group_alive(pgid));
    assert!(asked.elapsed() < Duration::from_secs(5), "within the grace period");
    let row = lease.wait_state(&stem, "CANCELLED", SHORT);
    assert_eq!(row["exit_code"], 143);
    let result = result_of(&lease, "n1", &stem, ".cancelled.json");
    assert_eq!(result["signal"], 15);
    assert!(result["runtime_s"].as_f64().unwrap() > 0.0);
    let control = lease.run_dir().join("control/n1");
    wait_until("the request to be consumed", SHORT, || std::fs::read_dir(&control).unwrap().next().is_none());
}

#[test]
fn a_task_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let lease = Lease::new("103");
    let runner = lease.runner("n1", &["--grace-s", "2"]);
    let stem = lease.submit("n1", &[], "trap '' TERM; echo ready; sleep 600");
    wait_for_output(&lease, &stem, "ready");
    wait_until("the task to start", SHORT, || !runner.task_pids().is_empty());
    let pgid = runner.task_pids()[0];
    let asked = Instant::now();
    lease.ok(&["cancel", "--run-dir", &run_dir_arg(&lease), &stem]);
    std::thread::sleep(Duration::from_millis(1000));
    assert!(group_alive(pgid), "it ignores SIGTERM, so it lives until the grace period ends");
    wait_until("SIGKILL after the grace period", Duration::from_secs(6), || !group_alive(pgid));
    assert!(asked.elapsed() >= Duration::from_secs(2), "not before the grace period");
    lease.wait_state(&stem, "CANCELLED", SHORT);
    assert_eq!(result_of(&lease, "n1", &stem, ".cancelled.json")["signal"], 9);
}

#[test]
fn cancel_of_a_pending_task_is_immediate_with_or_without_a_runner() {
    let lease = Lease::new("104");
    // No runner: the CLI takes it out of the inbox itself.
    let stem = lease.submit("n1", &[], "echo never");
    let out = lease.ok(&["cancel", "--run-dir", &run_dir_arg(&lease), &stem]);
    assert!(out.contains("was pending"), "{out}");
    assert_eq!(lease.state(&stem), "CANCELLED");
    assert_eq!(result_of(&lease, "n1", &stem, ".cancelled.json")["exit_code"], -1);
    let again = lease.cli(&["cancel", "--run-dir", &run_dir_arg(&lease), &stem]);
    assert!(!again.status.success() && common::text(&again.stderr).contains("already CANCELLED"));

    // A request file (as the older tool or a lagging dashboard writes it)
    // for a pending task: the runner cancels it instead of running it.
    let _runner = lease.runner("n1", &[]);
    lease.ok(&["pause", "--run-dir", &run_dir_arg(&lease), "n1"]);
    std::thread::sleep(Duration::from_millis(300));
    let queued = lease.submit("n1", &[], "echo never either");
    let task_id = queued.split('_').nth(1).unwrap().to_string();
    leaseq::control::request_cancel(
        &leaseq::scan::FsSource,
        &leaseq::paths::RunDir(lease.run_dir()),
        "n1",
        &task_id,
        None,
    )
    .unwrap();
    lease.wait_state(&queued, "CANCELLED", SHORT);
}

#[test]
fn pause_stops_claiming_and_resume_starts_again() {
    let lease = Lease::new("105");
    let _runner = lease.runner("n1", &[]);
    lease.ok(&["pause", "--run-dir", &run_dir_arg(&lease), "n1"]);
    let hb = lease.run_dir().join("hb/n1.json");
    wait_until("the heartbeat to say paused", SHORT, || {
        serde_json::from_slice::<Value>(&std::fs::read(&hb).unwrap_or_default())
            .is_ok_and(|v| v["paused"] == true)
    });
    let stem = lease.submit("n1", &[], "echo ran");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(lease.state(&stem), "PENDING", "nothing is claimed while paused");
    assert!(claimed_is_empty(&lease, "n1"));
    let status: Value =
        serde_json::from_str(&lease.ok(&["status", "--run-dir", &run_dir_arg(&lease), "--json"])).unwrap();
    assert_eq!(status["nodes"][0]["paused"], true);
    lease.ok(&["resume", "--run-dir", &run_dir_arg(&lease), "n1"]);
    lease.wait_state(&stem, "FINISHED", SHORT);
    let control = lease.run_dir().join("control/n1");
    assert!(std::fs::read_dir(&control).unwrap().next().is_none(), "pause and resume consumed");
}

#[test]
fn retry_runs_the_task_again_as_a_new_task() {
    let lease = Lease::new("106");
    let _runner = lease.runner("n1", &[]);
    let stem = lease.submit("n1", &[], "echo once; exit 3");
    let row = lease.wait_state(&stem, "FAILED", SHORT);
    assert_eq!(row["exit_code"], 3);
    let out: Value =
        serde_json::from_str(&lease.ok(&["retry", "--run-dir", &run_dir_arg(&lease), &stem, "--json"]))
            .unwrap();
    let again = out[0]["result"]["new_task"].as_str().unwrap().to_string();
    assert_ne!(again, stem);
    lease.wait_state(&again, "FAILED", SHORT);
    let (old, new) =
        (result_of(&lease, "n1", &stem, ".result.json"), result_of(&lease, "n1", &again, ".result.json"));
    assert_ne!(old["idempotency_key"], new["idempotency_key"]);
    assert_eq!(old["command"], new["command"]);
    let seq = |s: &str| s.split('_').next().unwrap().parse::<u64>().unwrap();
    assert!(seq(&again) > seq(&stem));
}

#[test]
fn gpu_slots_run_two_one_gpu_tasks_at_a_time_with_distinct_devices() {
    let lease = Lease::new("107");
    let _runner = lease.runner("n1", &["--parallel", "4", "--gpus", "2"]);
    let marks = lease.home().join("marks");
    let command = format!(
        "echo \"start $(date +%s.%N) $CUDA_VISIBLE_DEVICES\" >> {m}; sleep 1; echo \"end $(date +%s.%N) $CUDA_VISIBLE_DEVICES\" >> {m}",
        m = marks.display()
    );
    let stems: Vec<String> = (0..4).map(|_| lease.submit("n1", &["--gpus", "1"], &command)).collect();
    // More GPUs than the node has: fails at once, does not block the lane.
    let greedy = lease.submit("n1", &["--gpus", "3"], "echo never");
    let row = lease.wait_state(&greedy, "FAILED", SHORT);
    assert!(row["error"].as_str().unwrap().contains("asks for 3 GPU(s)"), "{row}");
    for stem in &stems {
        lease.wait_state(stem, "FINISHED", SHORT);
    }
    // Replay the marks: never more than 2 at once, never one device twice.
    let text = std::fs::read_to_string(&marks).unwrap();
    let mut events: Vec<(f64, bool, String)> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[1].parse().unwrap(), f[0] == "start", f.get(2).unwrap_or(&"").to_string())
        })
        .collect();
    events.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap().then(a.1.cmp(&b.1)));
    let mut busy: Vec<String> = Vec::new();
    let mut most = 0;
    for (_, start, device) in events {
        if start {
            assert!(!busy.contains(&device), "device {device} given twice: {text}");
            assert!(device == "0" || device == "1", "{text}");
            busy.push(device);
            most = most.max(busy.len());
        } else {
            busy.retain(|d| *d != device);
        }
    }
    assert_eq!(most, 2, "{text}");
    let result = result_of(&lease, "n1", &stems[0], ".result.json");
    assert!(["0", "1"].contains(&result["gpus_assigned"].as_str().unwrap()), "{result}");
}

#[test]
fn a_sigkilled_runner_leaves_a_stuck_task_that_recover_and_a_new_runner_finish() {
    let lease = Lease::with_stale_after("108", 2);
    let mut runner = lease.runner("n1", &[]);
    let stem = lease.submit("n1", &[], "sleep 3; echo finally");
    lease.wait_state(&stem, "RUNNING", SHORT);
    wait_until("the task to start", SHORT, || !runner.task_pids().is_empty());
    let orphan = runner.task_pids()[0];
    runner.signal(libc::SIGKILL);
    runner.wait(SHORT);
    common::kill_group(orphan); // what the dead runner started runs on, unreaped by it
    lease.wait_state(&stem, "STUCK", SHORT);
    let out = lease.ok(&["recover", "--run-dir", &run_dir_arg(&lease), "n1"]);
    assert!(out.contains("moved 1 task"), "{out}");
    assert_eq!(lease.state(&stem), "PENDING");
    let _again = lease.runner("n1", &[]);
    let row = lease.wait_state(&stem, "FINISHED", Duration::from_secs(20));
    assert_eq!(row["exit_code"], 0);
}

#[test]
fn recover_is_refused_while_the_runner_is_alive() {
    let lease = Lease::new("109");
    let _runner = lease.runner("n1", &[]);
    let out = lease.cli(&["recover", "--run-dir", &run_dir_arg(&lease), "n1"]);
    assert!(!out.status.success());
    assert!(common::text(&out.stderr).contains("alive"), "{}", common::text(&out.stderr));
}

#[test]
fn sigterm_to_the_runner_stops_its_tasks_with_results_and_leaves_nothing_claimed() {
    let lease = Lease::new("110");
    let mut runner = lease.runner("n1", &["--parallel", "2", "--grace-s", "3"]);
    let a = lease.submit("n1", &[], "sleep 600");
    let b = lease.submit("n1", &[], "trap '' TERM; echo ready; sleep 600");
    lease.wait_state(&a, "RUNNING", SHORT);
    wait_for_output(&lease, &b, "ready");
    runner.signal(libc::SIGTERM);
    let (status, stderr) = runner.wait(Duration::from_secs(10));
    assert!(status.success(), "{status}: {stderr}");
    assert!(claimed_is_empty(&lease, "n1"), "nothing left in claimed/");
    for stem in [&a, &b] {
        let result = result_of(&lease, "n1", stem, ".result.json");
        assert!(result["error"].as_str().unwrap().contains("runner was stopped"), "{result}");
        assert_eq!(lease.state(stem), "FAILED");
    }
    assert_eq!(result_of(&lease, "n1", &b, ".result.json")["signal"], 9);
}

#[test]
fn bad_specs_a_missing_cwd_and_an_unknown_command_fail_with_the_reason() {
    let lease = Lease::new("111");
    let inbox = lease.run_dir().join("inbox/n1");
    std::fs::create_dir_all(&inbox).unwrap();
    let malformed = "0000000000000001_Tbad001_00000000-0000-4000-8000-000000000001";
    std::fs::write(inbox.join(format!("{malformed}.json")), b"{\"task_id\": ").unwrap();
    let fifo = "0000000000000002_Tbad002_00000000-0000-4000-8000-000000000002";
    let path = std::ffi::CString::new(inbox.join(format!("{fifo}.json")).to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
    let missing = lease.submit("n1", &["--cwd", "/nonexistent/dir"], "echo never");
    let unknown = lease.submit("n1", &[], "no-such-command-here --flag");
    let fine = lease.submit("n1", &[], "echo still-runs");
    let _runner = lease.runner("n1", &[]);
    lease.wait_state(&fine, "FINISHED", SHORT);
    let reason = |stem: &str| {
        let row = lease.wait_state(stem, "FAILED", SHORT);
        row["error"].as_str().unwrap_or_default().to_string()
    };
    assert!(reason(malformed).contains("malformed spec"));
    assert!(reason(fifo).contains("FIFO"));
    assert!(reason(&missing).contains("/nonexistent/dir does not exist"));
    let unknown_row = lease.task(&unknown);
    assert_eq!(unknown_row["exit_code"], 127);
    assert!(reason(&unknown).contains("could not find or run"));
    let err = lease.ok(&["logs", "--run-dir", &run_dir_arg(&lease), &unknown, "--err"]);
    assert!(err.contains("no-such-command-here"), "{err}");
    assert!(claimed_is_empty(&lease, "n1"));
}

#[test]
fn a_duplicate_idempotency_key_is_skipped_not_run() {
    let lease = Lease::new("112");
    let _runner = lease.runner("n1", &[]);
    let marks = lease.home().join("ran");
    let stem = lease.submit("n1", &[], &format!("echo x >> {}", marks.display()));
    lease.wait_state(&stem, "FINISHED", SHORT);
    let spec = std::fs::read(lease.run_dir().join("done/n1").join(format!("{stem}.json"))).unwrap();
    let mut copy: Value = serde_json::from_slice(&spec).unwrap();
    let uuid = "00000000-0000-4000-8000-00000000abcd";
    copy["uuid"] = uuid.into();
    let dup =
        format!("{:016}_{}_{uuid}", copy["seq"].as_u64().unwrap() + 5, copy["task_id"].as_str().unwrap());
    std::fs::write(lease.run_dir().join("inbox/n1").join(format!("{dup}.json")), copy.to_string()).unwrap();
    lease.wait_state(&dup, "SKIPPED", SHORT);
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "x\n", "ran once");
}

#[test]
fn a_second_runner_for_a_live_node_is_refused() {
    let lease = Lease::new("113");
    let _runner = lease.runner("n1", &[]);
    let out = std::process::Command::new(common::BIN)
        .arg("--home")
        .arg(lease.home())
        .args(["run", "--lease", "113", "--node", "n1", "--root"])
        .arg(lease.run_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(common::text(&out.stderr).contains("another runner"), "{}", common::text(&out.stderr));
}

#[test]
fn the_heartbeat_lists_running_tasks_and_keeps_its_interval() {
    let lease = Lease::new("114");
    let _runner = lease.runner("n1", &["--parallel", "2"]);
    let a = lease.submit("n1", &[], "sleep 3");
    lease.wait_state(&a, "RUNNING", SHORT);
    let hb_path = lease.run_dir().join("hb/n1.json");
    let read = || serde_json::from_slice::<Value>(&std::fs::read(&hb_path).unwrap()).unwrap();
    wait_until("the heartbeat to name the task", SHORT, || {
        read()["running_task_ids"].as_array().is_some_and(|a| a.len() == 1)
    });
    let hb = read();
    assert_eq!(hb["running_task_id"], lease.task(&a)["task_id"]);
    let first = hb["ts"].as_i64().unwrap();
    wait_until("a newer heartbeat", Duration::from_secs(4), || read()["ts"].as_i64().unwrap() > first);
}

#[test]
fn submit_file_queues_every_line_in_order() {
    let lease = Lease::new("115");
    let file = lease.home().join("commands.txt");
    let lines: String = (0..500).map(|i| format!("echo {i}\n")).collect::<String>() + "\n# a comment\n";
    std::fs::write(&file, lines).unwrap();
    let out = lease.ok(&[
        "submit",
        "--run-dir",
        &run_dir_arg(&lease),
        "--node",
        "n1",
        "--file",
        file.to_str().unwrap(),
        "--json",
    ]);
    let submitted: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(submitted.len(), 500);
    let names: Vec<&str> = submitted.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "FIFO order is submission order");
    assert_eq!(std::fs::read_dir(lease.run_dir().join("inbox/n1")).unwrap().count(), 500);
}

#[test]
fn submit_without_a_node_picks_the_live_node_with_the_fewest_pending() {
    let lease = Lease::new("116");
    let _a = lease.runner("na", &[]);
    let _b = lease.runner("nb", &[]);
    lease.ok(&["pause", "--run-dir", &run_dir_arg(&lease), "na"]);
    std::thread::sleep(Duration::from_millis(200));
    lease.submit("na", &[], "echo queued");
    let run = run_dir_arg(&lease);
    let out: Value =
        serde_json::from_str(&lease.ok(&["submit", "--run-dir", &run, "--json", "--", "echo", "hi"]))
            .unwrap();
    assert_eq!(out[0]["node"], "nb");
    let dead = Lease::new("117");
    std::fs::create_dir_all(dead.run_dir().join("inbox/gone")).unwrap();
    let refused = dead.cli(&["submit", "--run-dir", &run_dir_arg(&dead), "--", "echo"]);
    assert!(!refused.status.success());
    assert!(common::text(&refused.stderr).contains("no live runner"), "{}", common::text(&refused.stderr));
}

#[test]
fn a_shell_that_dies_at_once_does_not_leave_its_children_past_the_grace() {
    let lease = Lease::new("118");
    let runner = lease.runner("n1", &["--grace-s", "2"]);
    // The leader (bash) dies of the SIGTERM; its subshell ignores it.
    let stem = lease.submit("n1", &[], "(trap '' TERM; echo ready; sleep 600)");
    wait_for_output(&lease, &stem, "ready");
    let pgid = runner.task_pids()[0];
    lease.ok(&["cancel", "--run-dir", &run_dir_arg(&lease), &stem]);
    std::thread::sleep(Duration::from_millis(800));
    assert!(group_alive(pgid), "the subshell ignores SIGTERM until the grace period ends");
    wait_until("SIGKILL to what the shell left", Duration::from_secs(6), || !group_alive(pgid));
    lease.wait_state(&stem, "CANCELLED", SHORT);
}

#[test]
fn what_a_finished_task_left_in_its_group_is_ended() {
    let lease = Lease::new("119");
    let runner = lease.runner("n1", &["--grace-s", "2"]);
    let stem = lease.submit("n1", &[], "sleep 600 & echo started-background");
    let row = lease.wait_state(&stem, "FINISHED", SHORT);
    assert_eq!(row["exit_code"], 0);
    let pgid = runner.task_pids()[0];
    assert!(!group_alive(pgid), "the background sleep was ended with its task");
}

#[test]
fn a_task_recovered_while_its_runner_is_suspended_does_not_run_twice() {
    let lease = Lease::with_stale_after("120", 2);
    let runner = lease.runner("n1", &[]);
    let marks = lease.home().join("runs.txt");
    let stem = lease.submit("n1", &[], &format!("echo ran >> {}; sleep 4", marks.display()));
    lease.wait_state(&stem, "RUNNING", SHORT);
    runner.signal(libc::SIGSTOP);
    lease.wait_state(&stem, "STUCK", SHORT);
    lease.ok(&["recover", "--run-dir", &run_dir_arg(&lease), "n1"]);
    runner.signal(libc::SIGCONT);
    let row = lease.wait_state(&stem, "FINISHED", Duration::from_secs(20));
    assert_eq!(row["exit_code"], 0);
    assert_eq!(std::fs::read_to_string(&marks).unwrap(), "ran\n", "started once");
    assert_eq!(runner.task_pids().len(), 1);
    assert!(claimed_is_empty(&lease, "n1"));
}

#[test]
fn pause_resume_pause_in_one_second_ends_paused() {
    let lease = Lease::new("121");
    let _runner = lease.runner("n1", &[]);
    let run = run_dir_arg(&lease);
    for what in ["pause", "resume", "pause"] {
        lease.ok(&[what, "--run-dir", &run, "n1"]);
    }
    let hb = lease.run_dir().join("hb/n1.json");
    wait_until("the heartbeat to say paused", SHORT, || {
        serde_json::from_slice::<Value>(&std::fs::read(&hb).unwrap_or_default())
            .is_ok_and(|v| v["paused"] == true)
    });
    let stem = lease.submit("n1", &[], "echo later");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(lease.state(&stem), "PENDING", "the last word was pause");
    assert!(lease.run_dir().join("control/n1/pause.json").exists(), "the pause marker stands");
}

#[test]
fn submit_keeps_the_words_as_typed_and_a_pending_cancel_has_no_log() {
    let lease = Lease::new("122");
    let _runner = lease.runner("n1", &[]);
    let run = run_dir_arg(&lease);
    let out: Value = serde_json::from_str(&lease.ok(&[
        "submit",
        "--run-dir",
        &run,
        "--node",
        "n1",
        "--json",
        "--",
        "printf",
        "%s|",
        "a b",
        "c",
    ]))
    .unwrap();
    let stem = out[0]["name"].as_str().unwrap().to_string();
    lease.wait_state(&stem, "FINISHED", SHORT);
    assert_eq!(lease.ok(&["logs", "--run-dir", &run, &stem]), "a b|c|");

    lease.ok(&["pause", "--run-dir", &run, "n1"]);
    std::thread::sleep(Duration::from_millis(300));
    let pending = lease.submit("n1", &[], "echo never");
    lease.ok(&["cancel", "--run-dir", &run, &pending]);
    let logs = lease.cli(&["logs", "--run-dir", &run, &pending]);
    assert!(!logs.status.success());
    assert!(common::text(&logs.stderr).contains("has no stdout log"), "{}", common::text(&logs.stderr));
}
