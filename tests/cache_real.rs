//! The warm-start cache with real processes on a generated tree: what a
//! warm run prints is what reading every file prints; two processes
//! filling one cache at once leave it whole; a cache that is cut short,
//! flipped, or from a run dir made again costs time and says so once,
//! never changes an answer; a saved `done/` listing stands in for one only
//! while that directory has not changed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use leaseq::sim::generate::{generate, GenerateOptions};

const BIN: &str = env!("CARGO_BIN_EXE_leaseq");
const LEASE: &str = "99887766";

fn tree(dir: &Path, tasks: usize) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    generate(dir, &GenerateOptions { tasks, nodes: 4, now, ..GenerateOptions::default() }).expect("generate");
}

fn leaseq(home: &Path, cache: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command
        .env("HOME", home)
        .env("LEASEQ_CACHE_DIR", cache)
        .env("LEASEQ_RUNTIME_DIR", home.join("rt"))
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(Stdio::null());
    command
}

fn run(home: &Path, cache: &Path, args: &[&str]) -> Output {
    let out = leaseq(home, cache, args).output().expect("run leaseq");
    assert!(out.status.success(), "leaseq {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Task rows with times that do not move between runs (`tasks` prints
/// ages relative to now, which can tick between two runs).
fn tasks_json(home: &Path, cache: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec!["tasks", "--lease", LEASE, "--details", "--json"];
    args.extend_from_slice(extra);
    let out = run(home, cache, &args);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows: Vec<serde_json::Value> = serde_json::from_str(&text).expect("a JSON array");
    for row in &mut rows {
        if let Some(map) = row.as_object_mut() {
            map.retain(|k, _| !k.contains("age"));
        }
    }
    (serde_json::to_string(&rows).unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// The same rows in the same order of state and time (tasks that tie on
/// both may come in either order: ids follow discovery), or the first
/// that differs (10^3 rows do not fit a message).
#[track_caller]
fn assert_same_rows(found: &str, truth: &str) {
    let parse = |text: &str| {
        let rows: Vec<serde_json::Value> = serde_json::from_str(text).unwrap();
        let order: Vec<(String, String)> =
            rows.iter().map(|r| (r["state"].to_string(), r["started_at"].to_string())).collect();
        let mut by_name = rows;
        by_name.sort_by_key(|r| r["name"].to_string());
        (order, by_name)
    };
    let ((order, rows), (true_order, true_rows)) = (parse(found), parse(truth));
    assert_eq!(rows.len(), true_rows.len(), "row count");
    if let Some(i) = rows.iter().zip(&true_rows).position(|(x, y)| x != y) {
        panic!("task differs:\n  found {}\n  truth {}", rows[i], true_rows[i]);
    }
    assert!(order == true_order, "the rows are in another order of state and start time");
}

fn cache_file(cache: &Path) -> PathBuf {
    std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "bin"))
        .expect("a facts file")
}

#[test]
fn a_warm_run_prints_what_reading_every_file_prints_and_two_writers_leave_the_cache_whole() {
    let home = tempfile::tempdir().unwrap();
    tree(home.path(), 3000);
    // Aged, so both also save their done/ listings, each over the other's.
    age_done_dirs(home.path());
    let cache = home.path().join("cache");
    let (truth, _) = tasks_json(home.path(), &cache, &["--no-cache"]);
    assert!(!cache.exists(), "--no-cache writes no cache");
    // Two cold processes fill one cache at once.
    let spawn = || {
        leaseq(home.path(), &cache, &["tasks", "--lease", LEASE, "--details"]).stdout(Stdio::null()).spawn()
    };
    let (a, b) = (spawn().unwrap(), spawn().unwrap());
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let (warm, stderr) = tasks_json(home.path(), &cache, &[]);
    assert!(stderr.is_empty(), "a whole cache says nothing: {stderr}");
    assert_same_rows(&warm, &truth);
    let status = |extra: &[&str]| {
        let mut args = vec!["status", "--lease", LEASE, "--json"];
        args.extend_from_slice(extra);
        let out = run(home.path(), &cache, &args);
        let mut value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        value["nodes"].as_array_mut().unwrap().iter_mut().for_each(|n| {
            n.as_object_mut().unwrap().retain(|k, _| !k.contains("age"));
        });
        value
    };
    assert_eq!(status(&[]), status(&["--no-cache"]));
}

#[test]
fn a_damaged_cache_costs_time_says_so_once_and_changes_no_answer() {
    let home = tempfile::tempdir().unwrap();
    tree(home.path(), 1500);
    let cache = home.path().join("cache");
    let (truth, _) = tasks_json(home.path(), &cache, &["--no-cache"]);
    tasks_json(home.path(), &cache, &[]);
    let file = cache_file(&cache);
    let whole = std::fs::read(&file).unwrap();

    // Cut short mid-record.
    std::fs::write(&file, &whole[..whole.len() * 2 / 3]).unwrap();
    let (rows, stderr) = tasks_json(home.path(), &cache, &[]);
    assert_same_rows(&rows, &truth);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cut short") && stderr.contains("read instead"), "{stderr}");
    // ...and repaired by that run: the next says nothing.
    let (rows, stderr) = tasks_json(home.path(), &cache, &[]);
    assert_same_rows(&rows, &truth);
    assert_eq!(stderr, "");

    // A flipped byte in the middle.
    let mut flipped = std::fs::read(&file).unwrap();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x5a;
    std::fs::write(&file, &flipped).unwrap();
    let (rows, stderr) = tasks_json(home.path(), &cache, &[]);
    assert_same_rows(&rows, &truth);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    // Garbage for a file, and a directory where the file should be.
    std::fs::write(&file, b"not a cache").unwrap();
    let (rows, stderr) = tasks_json(home.path(), &cache, &[]);
    assert_same_rows(&rows, &truth);
    assert!(stderr.contains("not a leaseq facts file"), "{stderr}");
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap();
    let (rows, stderr) = tasks_json(home.path(), &cache, &[]);
    assert_same_rows(&rows, &truth);
    assert!(!stderr.is_empty(), "a cache that cannot be opened is said");
}

#[test]
fn a_run_dir_made_again_with_the_same_lease_id_does_not_see_the_old_facts() {
    let home = tempfile::tempdir().unwrap();
    tree(home.path(), 800);
    let cache = home.path().join("cache");
    tasks_json(home.path(), &cache, &[]);
    // The lease's run dir is deleted and another history takes its id.
    std::fs::remove_dir_all(home.path().join("runs").join(LEASE)).unwrap();
    std::fs::create_dir_all(home.path().join("runs/placeholder")).unwrap();
    tree(home.path(), 500);
    let (truth, _) = tasks_json(home.path(), &cache, &["--no-cache"]);
    let (rows, stderr) = tasks_json(home.path(), &cache, &[]);
    assert_same_rows(&rows, &truth);
    assert!(stderr.contains("another run directory"), "{stderr}");
}

/// Every node's `done/`, aged an hour, as a finished lease's history is.
fn age_done_dirs(home: &Path) -> Vec<PathBuf> {
    let done = home.join("runs").join(LEASE).join("done");
    let dirs: Vec<PathBuf> = std::fs::read_dir(&done).unwrap().map(|e| e.unwrap().path()).collect();
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for dir in &dirs {
        std::fs::File::open(dir).unwrap().set_modified(hour_ago).unwrap();
    }
    dirs
}

#[test]
fn saved_done_listings_are_used_until_done_changes_and_a_task_that_leaves_and_comes_back_is_shown() {
    let home = tempfile::tempdir().unwrap();
    tree(home.path(), 1200);
    let dirs = age_done_dirs(home.path());
    let cache = home.path().join("cache");
    let (truth, _) = tasks_json(home.path(), &cache, &["--no-cache"]);
    tasks_json(home.path(), &cache, &[]);
    let saved = std::fs::read_dir(&cache)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".done-"));
    assert_eq!(saved.count(), dirs.len(), "one saved listing per node");
    let (warm, stderr) = tasks_json(home.path(), &cache, &[]);
    assert_eq!(stderr, "");
    assert_same_rows(&warm, &truth);

    // A task's files leave one done/ (its mtime moves on): the saved
    // listing no longer stands in, and the task is not shown as if there.
    let aside = home.path().join("aside");
    std::fs::create_dir(&aside).unwrap();
    let moved: Vec<PathBuf> = {
        let mut files: Vec<PathBuf> =
            std::fs::read_dir(&dirs[0]).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        let stem = files[0].file_name().unwrap().to_string_lossy().split('.').next().unwrap().to_string();
        files.into_iter().filter(|f| f.file_name().unwrap().to_string_lossy().starts_with(&stem)).collect()
    };
    assert!(!moved.is_empty());
    for file in &moved {
        std::fs::rename(file, aside.join(file.file_name().unwrap())).unwrap();
    }
    let (truth_without, _) = tasks_json(home.path(), &cache, &["--no-cache"]);
    assert_ne!(truth_without, truth);
    let (warm, _) = tasks_json(home.path(), &cache, &[]);
    assert_same_rows(&warm, &truth_without);

    // ...and comes back: shown again, as the files say.
    for file in &moved {
        std::fs::rename(aside.join(file.file_name().unwrap()), file).unwrap();
    }
    let (warm, _) = tasks_json(home.path(), &cache, &[]);
    assert_same_rows(&warm, &truth);
    let (again, stderr) = tasks_json(home.path(), &cache, &[]);
    assert_same_rows(&again, &truth);
    assert_eq!(stderr, "");
}
