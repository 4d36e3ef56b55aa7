//! Slurm leases run by this project's own runner, on the REAL single-node
//! Slurm (`scripts/ensure-slurm.sh` starts it; see tests/slurm_real.rs for
//! when these skip). `leaseq lease create --slurm` and the dashboard's
//! create form each submit a keeper that starts `leaseq run` on the node
//! with srun; a submitted task runs there and finishes; `lease release`
//! (and `x` in the dashboard) ends the lease, its runner stops what runs,
//! and the lease list says CANCELLED; `lease ls` and `lease use` agree
//! with the dashboard's lease list.

mod common;

use std::time::Duration;

use common::slurm::{skip, Jobs};
use common::tmux::{tmux_available, Session};
use common::{text, wait_until, Lease, BIN};
use serde_json::Value;

const SLURM_WAIT: Duration = Duration::from_secs(40);

/// The lease's row of `lease ls --json`.
fn lease_row(lease: &Lease, id: &str) -> Value {
    let rows: Vec<Value> =
        serde_json::from_str(&lease.ok(&["lease", "ls", "--json"])).expect("lease ls --json");
    rows.into_iter().find(|r| r["lease"] == id).unwrap_or(Value::Null)
}

/// Waits for a runner heartbeat in the lease's run dir; returns the node.
fn wait_for_runner(lease: &Lease, id: &str) -> String {
    let hb_dir = lease.home().join("runs").join(id).join("hb");
    let mut node = String::new();
    wait_until("the keeper's runner to heartbeat", SLURM_WAIT, || {
        let found = std::fs::read_dir(&hb_dir).ok().and_then(|d| {
            d.flatten().find_map(|e| e.file_name().to_str()?.strip_suffix(".json").map(str::to_string))
        });
        found.map(|n| node = n).is_some()
    });
    node
}

#[test]
fn cli_lease_runs_tasks_on_our_runner_and_release_ends_it() {
    if skip("cli_lease_runs_tasks_on_our_runner_and_release_ends_it") {
        return;
    }
    let lease = Lease::new("unused");
    let out: Value = serde_json::from_str(&lease.ok(&[
        "lease",
        "create",
        "--slurm",
        "--nodes",
        "1",
        "--time",
        "5",
        "--name",
        "leaseq-runner-test",
        "--json",
    ]))
    .expect("lease create --json");
    let id = out["lease"].as_str().expect("a lease id").to_string();
    let _jobs = Jobs(vec![id.clone()]);
    let node = wait_for_runner(&lease, &id);

    // A task submitted without --node goes to the live node and runs there.
    let submitted: Value = serde_json::from_str(&lease.ok(&[
        "submit",
        "--lease",
        &id,
        "--json",
        "--",
        "echo hello from $SLURM_JOB_ID",
    ]))
    .unwrap();
    assert_eq!(submitted[0]["node"], node.as_str());
    let stem = submitted[0]["name"].as_str().unwrap().to_string();
    wait_until("the task to finish on the Slurm node", SLURM_WAIT, || {
        let rows: Vec<Value> =
            serde_json::from_str(&lease.ok(&["tasks", "--lease", &id, "--json"])).unwrap_or_default();
        rows.iter().any(|r| r["name"] == stem.as_str() && r["state"] == "FINISHED")
    });
    let log = lease.ok(&["logs", "--lease", &id, &stem]);
    assert_eq!(log, format!("hello from {id}\n"));

    // lease ls and lease use agree with the registry the dashboard reads.
    assert_eq!(lease_row(&lease, &id)["state"], "RUNNING");
    lease.ok(&["lease", "use", &id]);
    assert_eq!(lease_row(&lease, &id)["default"], true);
    let registry: Value =
        serde_json::from_slice(&std::fs::read(lease.home().join("index.json")).unwrap()).unwrap();
    assert_eq!(registry["default_lease"], id.as_str());

    // A long task, then release: the runner stops it with a result.
    let long: Value = serde_json::from_str(&lease.ok(&["submit", "--json", "--", "sleep 600"])).unwrap();
    let long_stem = long[0]["name"].as_str().unwrap().to_string();
    wait_until("the long task to run", SLURM_WAIT, || {
        lease
            .home()
            .join("runs")
            .join(&id)
            .join("claimed")
            .join(&node)
            .join(format!("{long_stem}.json"))
            .exists()
    });
    let released = lease.ok(&["lease", "release", &id]);
    assert!(released.contains(&id), "{released}");
    wait_until("the lease to read CANCELLED", SLURM_WAIT, || {
        let state = lease_row(&lease, &id)["state"].as_str().unwrap_or_default().to_string();
        state == "CANCELLED" || state == "ENDED"
    });
    let result =
        lease.home().join("runs").join(&id).join("done").join(&node).join(format!("{long_stem}.result.json"));
    wait_until("the runner to write the stopped task's result", SLURM_WAIT, || result.exists());
    let result: Value = serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();
    assert!(result["error"].as_str().unwrap_or_default().contains("runner was stopped"), "{result}");
    let claimed = lease.home().join("runs").join(&id).join("claimed").join(&node);
    assert!(std::fs::read_dir(&claimed).unwrap().next().is_none(), "nothing left in claimed/");
}

#[test]
fn the_dashboard_form_creates_a_lease_our_runner_serves_and_x_releases_it() {
    if skip("the_dashboard_form_creates_a_lease_our_runner_serves_and_x_releases_it") || !tmux_available() {
        return;
    }
    let lease = Lease::new("unused");
    std::fs::remove_dir_all(lease.home().join("runs")).unwrap();
    let command = format!("{BIN} --home {} tui --slurm; echo EXIT=$?; sleep 60", lease.home().display());
    let session = Session::start("leaseq-e2e-slurm-form", &command);
    session.wait_for("the lease list", |s| s.contains("leases"));
    session.keys(&["n"]);
    session.wait_for("the form", |s| s.contains("sbatch"));
    session.keys(&["f", "o", "r", "m", "F2"]);
    let mut id = String::new();
    wait_until("the form's lease in the registry", SLURM_WAIT, || {
        let registry: Value = std::fs::read(lease.home().join("index.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null);
        registry["leases"].as_object().and_then(|l| l.keys().next().cloned()).map(|k| id = k).is_some()
    });
    let _jobs = Jobs(vec![id.clone()]);
    wait_for_runner(&lease, &id);
    session.wait_for("the new lease RUNNING in the list", |s| {
        s.lines().any(|l| l.contains(&id) && l.contains("RUNNING"))
    });
    assert_eq!(lease_row(&lease, &id)["state"], "RUNNING", "lease ls agrees");
    // A task on it runs on our runner.
    let submitted: Value =
        serde_json::from_str(&lease.ok(&["submit", "--lease", &id, "--json", "--", "echo via-form"]))
            .unwrap();
    let stem = submitted[0]["name"].as_str().unwrap().to_string();
    wait_until("the task to finish", SLURM_WAIT, || {
        text(&lease.cli(&["logs", "--lease", &id, &stem]).stdout) == "via-form\n"
    });

    session.keys(&["x"]);
    session.wait_for("the release question", |s| s.contains("Release Slurm lease"));
    session.keys(&["y"]);
    session.keys(&["r"]);
    session.wait_for("the lease CANCELLED in the list", |s| {
        s.lines().any(|l| l.contains(&id) && (l.contains("CANCELLED") || l.contains("ENDED")))
    });
    let out = lease.cli(&["lease", "ls"]);
    assert!(text(&out.stdout)
        .lines()
        .any(|l| l.contains(&id) && (l.contains("CANCELLED") || l.contains("ENDED"))));
    session.keys(&["q"]);
    session.wait_for("the dashboard to exit", |s| s.contains("EXIT=0"));
}
