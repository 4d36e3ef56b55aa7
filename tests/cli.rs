//! The one-shot commands on a generated tree, through the real binary.

use std::collections::BTreeMap;
use std::process::Command;

use leaseq::sim::generate::{generate, GenerateOptions};

fn leaseq(args: &[&str]) -> (String, String, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_leaseq")).args(args).output().expect("run leaseq");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn tasks_json_is_exact_and_status_agrees() {
    let home = tempfile::tempdir().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let options = GenerateOptions { tasks: 3000, nodes: 4, now, ..GenerateOptions::default() };
    let tree = generate(home.path(), &options).unwrap();
    let run = tree.run_dir.display().to_string();

    let (out, err, ok) = leaseq(&["tasks", "--run-dir", &run, "--json"]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).expect("one JSON array");
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for row in &rows {
        for key in ["task_id", "node", "seq", "name", "state"] {
            assert!(row.get(key).is_some(), "{key} missing in {row}");
        }
        *counts.entry(row["state"].as_str().unwrap().to_string()).or_default() += 1;
    }
    let get = |s: &str| counts.get(s).copied().unwrap_or(0);
    assert_eq!(get("FINISHED") + get("FAILED"), tree.done, "{counts:?}");
    assert_eq!(get("FAILED"), tree.failed);
    assert_eq!(get("PENDING"), tree.pending);
    assert_eq!(get("RUNNING") + get("STUCK"), tree.running);
    assert_eq!(get("CANCELLED"), tree.cancelled);
    assert_eq!(get("SKIPPED"), tree.skipped);
    assert_eq!(get("DONE") + get("LOST?"), 0, "every result was read; nothing is lost");

    let (out, _, ok) =
        leaseq(&["tasks", "--run-dir", &run, "--json", "--state", "failed", "--node", "node01"]);
    assert!(ok);
    let failed: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert!(failed.iter().all(|r| r["state"] == "FAILED" && r["node"] == "node01"));

    let (out, _, ok) = leaseq(&["status", "--run-dir", &run, "--json"]);
    assert!(ok);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["tasks"].as_u64().unwrap() as usize, rows.len());
    assert_eq!(status["counts"]["FAILED"].as_u64().unwrap() as usize, tree.failed);
    let stale = status["nodes"].as_array().unwrap().iter().filter(|n| n["health"] == "STALE").count();
    assert_eq!(stale, 1, "the generated stale node");

    let (text, _, ok) = leaseq(&["status", "--run-dir", &run]);
    assert!(ok && text.contains("STALE") && text.contains("node03"), "{text}");
}

#[test]
fn malformed_files_are_shown_not_dropped_and_errors_are_clear() {
    let home = tempfile::tempdir().unwrap();
    let run = home.path().join("runs/1");
    let inbox = run.join("inbox/a");
    std::fs::create_dir_all(&inbox).unwrap();
    let name = "000001_T001_2b7c9c9b-1234-4cde-8f00-0123456789ab";
    std::fs::write(inbox.join(format!("{name}.json")), b"{\"task_id\": \"T001\", \"cre").unwrap();
    std::fs::write(inbox.join("\x1b[31mnot-a-task.json"), b"{}").unwrap();
    let run_dir = run.display().to_string();
    let (out, err, ok) = leaseq(&["tasks", "--run-dir", &run_dir, "--details"]);
    assert!(ok, "{err}");
    assert!(out.contains("PENDING") && out.contains("malformed JSON"), "{out}");
    assert!(!out.contains('\x1b'), "no escape sequences reach the terminal");

    let (_, err, ok) = leaseq(&["tasks", "--run-dir", &run_dir, "--state", "bogus"]);
    assert!(!ok && err.contains("unknown state"), "{err}");
    let (_, err, ok) = leaseq(&["tasks", "--run-dir", &run_dir, "--node", "zz"]);
    assert!(!ok && err.contains("no node \"zz\""), "{err}");
    let (_, err, ok) = leaseq(&["--home", &home.path().join("none").display().to_string(), "status"]);
    assert!(!ok && err.contains("no leases"), "{err}");
}
