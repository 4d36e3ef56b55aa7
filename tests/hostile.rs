//! Hostile input, made for real: FIFOs and device symlinks where records
//! should be, ids and paths that try to leave the archive, numbers that
//! overflow, names that are not UTF-8, records of the wrong shape, escape
//! and bidi characters headed for the terminal or a JSON consumer. Every
//! command returns within a bound, names the file and the reason, keeps
//! its counts exact, and writes nothing outside the archive.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{text, Lease, BIN};
use serde_json::Value;

const UUID: &str = "00000000-0000-4000-8000-000000000001";

fn mkfifo(path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo {}", path.display());
}

/// Runs the CLI with a deadline: a command that hangs fails the test
/// instead of hanging it.
fn within(lease: &Lease, args: &[&str], limit: Duration) -> (bool, String, String) {
    let mut child = Command::new(BIN)
        .env("HOME", lease.home())
        .env("LEASEQ_RUNTIME_DIR", lease.home().join("rt"))
        .env("XDG_CACHE_HOME", lease.home().join(".cache"))
        .env_remove("LEASEQ_CACHE_DIR")
        .arg("--home")
        .arg(lease.home())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (status.success(), text(&out.stdout), text(&out.stderr));
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("leaseq {args:?} did not return within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A run dir with one finished task (spec + result) on node `a`.
fn lease_with_a_done_task(id: &str) -> (Lease, String) {
    let lease = Lease::new(id);
    let stem = format!("0000000000000001_Tdone01_{UUID}");
    let done = lease.run_dir().join("done/a");
    std::fs::create_dir_all(&done).unwrap();
    let spec = format!(
        r#"{{"task_id":"Tdone01","idempotency_key":"k","lease_id":"{id}","target_node":"a","seq":1,"uuid":"{UUID}","created_at":1,"cwd":"/","command":"echo hi"}}"#
    );
    std::fs::write(done.join(format!("{stem}.json")), spec).unwrap();
    let result = r#"{"task_id":"Tdone01","idempotency_key":"k","node":"a","started_at":1,"finished_at":2,"exit_code":0,"stdout":"logs/Tdone01.out","stderr":"logs/Tdone01.err","runtime_s":1.0}"#;
    std::fs::write(done.join(format!("{stem}.result.json")), result).unwrap();
    (lease, stem)
}

fn run_arg(lease: &Lease) -> String {
    lease.run_dir().display().to_string()
}

const BOUND: Duration = Duration::from_secs(10);

#[test]
fn fifos_where_records_should_be_never_block_a_command() {
    let (lease, _) = lease_with_a_done_task("700");
    let run = lease.run_dir();
    mkfifo(&run.join(format!("done/a/0000000000000002_Tfifo02_{UUID}.result.json")));
    mkfifo(&run.join(format!("done/a/0000000000000002_Tfifo02_{UUID}.json")));
    mkfifo(&run.join("hb/a.json"));
    mkfifo(&run.join("meta/lease.json"));
    mkfifo(&lease.home().join("config.json"));
    mkfifo(&lease.home().join("index.json"));
    let (ok, out, err) = within(&lease, &["status", "--run-dir", &run_arg(&lease), "--json"], BOUND);
    assert!(ok, "{err}");
    assert!(err.contains("config.json") && err.contains("FIFO"), "the config problem is named: {err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["tasks"], 2, "both tasks counted");
    let errors = status["nodes"][0]["errors"].to_string();
    assert!(errors.contains("hb/a.json") && errors.contains("FIFO"), "{errors}");
    let (ok, out, _) = within(&lease, &["tasks", "--run-dir", &run_arg(&lease), "--json"], BOUND);
    assert!(ok);
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let fifo = rows.iter().find(|r| r["task_id"] == "Tfifo02").unwrap();
    assert!(fifo["problem"].as_str().unwrap().contains("FIFO"), "{fifo}");
    let (ok, _, err) = within(&lease, &["lease", "ls"], BOUND);
    assert!(ok && err.contains("index.json") && err.contains("FIFO"), "{err}");
}

#[test]
fn a_spec_that_is_a_symlink_to_a_terminal_is_not_read() {
    let (lease, _) = lease_with_a_done_task("701");
    let spec = lease.run_dir().join(format!("inbox/a/0000000000000003_Ttty003_{UUID}.json"));
    std::fs::create_dir_all(spec.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink("/dev/tty", &spec).unwrap();
    let (ok, out, _) =
        within(&lease, &["tasks", "--run-dir", &run_arg(&lease), "--json", "--details"], BOUND);
    assert!(ok);
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let tty = rows.iter().find(|r| r["task_id"] == "Ttty003").unwrap();
    assert!(tty["problem"].as_str().unwrap().contains("symbolic link"), "{tty}");
}

#[test]
fn ids_and_paths_from_files_never_leave_the_archive() {
    let (lease, stem) = lease_with_a_done_task("702");
    let outside = lease.home().parent().unwrap().join(format!("leaseq-escape-{}", std::process::id()));
    // A lookalike run dir where the hostile default points: a retry that
    // followed it would write outside/inbox/.
    let lookalike = outside.join("done/a");
    std::fs::create_dir_all(&lookalike).unwrap();
    std::fs::copy(
        lease.run_dir().join(format!("done/a/{stem}.json")),
        lookalike.join(format!("{stem}.json")),
    )
    .unwrap();
    let registry = format!(
        r#"{{"default_lease":"../../{0}","leases":{{"../../{0}":{{}},"/etc":{{}},"":{{}},"702":{{}}}}}}"#,
        outside.file_name().unwrap().to_str().unwrap()
    );
    std::fs::write(lease.home().join("index.json"), registry).unwrap();
    let (ok, out, err) = within(&lease, &["lease", "ls", "--json"], BOUND);
    assert!(ok, "{err}");
    assert!(err.contains("not a lease id"), "{err}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.iter().map(|r| r["lease"].as_str().unwrap()).collect::<Vec<_>>(), vec!["702"]);
    for bad in ["../../x", "/etc", ""] {
        let (ok, _, err) = within(&lease, &["tasks", "--lease", bad], BOUND);
        assert!(!ok && err.contains("not a lease id"), "{bad:?}: {err}");
        let (ok, _, err) = within(&lease, &["tui", "--lease", bad], BOUND);
        assert!(!ok && err.contains("not a lease id"), "tui {bad:?}: {err}");
    }
    let (ok, _, err) = within(&lease, &["tui", "--lease", "424242"], BOUND);
    assert!(!ok && err.contains("no lease 424242") && err.contains("702"), "{err}");
    // A result naming a log outside the run dir: never opened.
    let result = lease.run_dir().join(format!("done/a/{stem}.result.json"));
    let hostile = std::fs::read_to_string(&result).unwrap().replace("logs/Tdone01.out", "/etc/shadow");
    std::fs::write(&result, hostile).unwrap();
    let (ok, out, err) = within(&lease, &["logs", "--run-dir", &run_arg(&lease), "Tdone01"], BOUND);
    assert!(!ok && out.is_empty() && err.contains("names none"), "{out}{err}");
    // Commands that write, under the hostile default and with hostile ids:
    // the first goes to the one real lease, the others are refused.
    let escape = format!("../../{}", outside.file_name().unwrap().to_str().unwrap());
    let (ok, out, err) = within(&lease, &["retry", "Tdone01"], BOUND);
    assert!(ok && out.contains("queued again"), "{out}{err}");
    for args in [
        vec!["lease", "use", &escape],
        vec!["pause", "--lease", &escape, "a"],
        vec!["submit", "--lease", &escape, "--node", "a", "--", "true"],
    ] {
        let (ok, _, err) = within(&lease, &args, BOUND);
        assert!(!ok && err.contains("not a lease id"), "{args:?}: {err}");
    }
    let written_outside = outside.join("inbox").exists();
    std::fs::remove_dir_all(&outside).unwrap();
    assert!(!written_outside, "nothing was written outside the archive");
}

#[test]
fn huge_numbers_are_clamped_or_saturate_and_skew_is_shown() {
    let (lease, _) = lease_with_a_done_task("703");
    std::fs::write(
        lease.home().join("config.json"),
        r#"{"ui":{"refresh_s":18446744073709551615,"hb_stale_s":9223372036854775808}}"#,
    )
    .unwrap();
    let run = lease.run_dir();
    std::fs::create_dir_all(run.join("claimed/a")).unwrap();
    std::fs::create_dir_all(run.join("claimed/b")).unwrap();
    std::fs::create_dir_all(run.join("hb")).unwrap();
    let claimed = |node: &str, n: u32| {
        let stem = format!("000000000000001{n}_Trun00{n}_{UUID}");
        std::fs::write(run.join(format!("claimed/{node}/{stem}.json")), b"{}").unwrap();
    };
    claimed("a", 1);
    claimed("b", 2);
    std::fs::write(run.join("hb/a.json"), format!(r#"{{"node":"a","ts":{}}}"#, i64::MIN)).unwrap();
    std::fs::write(run.join("hb/b.json"), format!(r#"{{"node":"b","ts":{}}}"#, i64::MAX / 2)).unwrap();
    let (ok, out, err) = within(&lease, &["status", "--run-dir", &run_arg(&lease), "--json"], BOUND);
    assert!(ok, "{err}");
    assert!(err.contains("ui.refresh_s") && err.contains("ui.hb_stale_s"), "clamped with a message: {err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    let node =
        |name: &str| status["nodes"].as_array().unwrap().iter().find(|n| n["node"] == name).unwrap().clone();
    assert_eq!(node("a")["health"], "STALE", "ts = i64::MIN is ancient, not fresh");
    assert_eq!(node("a")["counts"]["STUCK"], 1);
    assert_eq!(node("b")["health"], "SKEW", "a heartbeat from the future is a warning");
    let (_, text_out, _) = within(&lease, &["status", "--run-dir", &run_arg(&lease)], BOUND);
    assert!(text_out.contains("clock skew"), "{text_out}");
}

#[test]
fn nothing_disappears_silently() {
    let (lease, _) = lease_with_a_done_task("704");
    let run = lease.run_dir();
    // A node directory whose name is not UTF-8.
    let bad_node = run.join("inbox").join(std::ffi::OsStr::from_bytes(b"node\xff"));
    std::fs::create_dir_all(&bad_node).unwrap();
    std::fs::write(bad_node.join(format!("0000000000000005_Tnode05_{UUID}.json")), b"{}").unwrap();
    // A task file whose name is not UTF-8, a result in inbox/, a result
    // that is a JSON array, a task whose spec and result are both broken.
    let inbox = run.join("inbox/a");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut raw = b"0000000000000006_T\xff006_".to_vec();
    raw.extend_from_slice(UUID.as_bytes());
    raw.extend_from_slice(b".json");
    std::fs::write(inbox.join(std::ffi::OsStr::from_bytes(&raw)), b"{}").unwrap();
    std::fs::write(inbox.join(format!("0000000000000007_Tres007_{UUID}.result.json")), b"{}").unwrap();
    let done = run.join("done/a");
    std::fs::write(done.join(format!("0000000000000008_Tarr008_{UUID}.result.json")), b"[1,2,3]").unwrap();
    std::fs::write(done.join(format!("0000000000000009_Tbad009_{UUID}.json")), b"{broken").unwrap();
    std::fs::write(done.join(format!("0000000000000009_Tbad009_{UUID}.result.json")), b"{broken too")
        .unwrap();
    let (ok, out, _) = within(&lease, &["status", "--run-dir", &run_arg(&lease), "--json"], BOUND);
    assert!(ok);
    let status: Value = serde_json::from_str(&out).unwrap();
    assert!(status["scan_error"].as_str().unwrap().contains("not a usable node name"), "{status}");
    let (_, text_out, _) = within(&lease, &["status", "--run-dir", &run_arg(&lease)], BOUND);
    assert!(
        text_out.contains("2 unrecognised file(s)"),
        "the non-UTF-8 name and the result in inbox/: {text_out}"
    );
    let (_, out, _) = within(&lease, &["tasks", "--run-dir", &run_arg(&lease), "--json", "--details"], BOUND);
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let row = |id: &str| rows.iter().find(|r| r["task_id"] == id).cloned().unwrap_or(Value::Null);
    assert!(row("Tres007").is_null(), "a result in inbox/ makes no task");
    assert!(
        row("Tarr008")["problem"].as_str().unwrap().contains("expected a JSON object"),
        "{}",
        row("Tarr008")
    );
    let both = row("Tbad009")["problem"].as_str().unwrap().to_string();
    assert!(both.contains("spec:") && both.contains("result:"), "both problems: {both}");
}

#[test]
fn what_reaches_a_terminal_or_a_json_reader_is_escaped() {
    let lease = Lease::new("705");
    let run = lease.run_dir();
    let inbox = run.join("inbox/a");
    std::fs::create_dir_all(&inbox).unwrap();
    let stem = format!("0000000000000010_Tesc010_{UUID}");
    let spec = serde_json::json!({
        "task_id": "Tesc010", "idempotency_key": "k", "lease_id": "705", "target_node": "a", "seq": 10,
        "uuid": UUID, "created_at": 1, "cwd": "/",
        "command": "echo \u{9b}2J \u{1b}]52;c;ZXZpbA==\u{7} evil\u{202e}txt.exe \u{200b}"
    });
    std::fs::write(inbox.join(format!("{stem}.json")), spec.to_string()).unwrap();
    let (_, out, _) = within(&lease, &["tasks", "--run-dir", &run_arg(&lease), "--json", "--details"], BOUND);
    assert!(!out.contains('\u{9b}') && !out.contains('\u{202e}') && !out.contains('\u{200b}'), "{out:?}");
    assert!(out.contains("\\u009b") && out.contains("\\u202e"), "escaped, not lost: {out}");
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert!(
        rows[0]["command"].as_str().unwrap().contains('\u{202e}'),
        "the JSON still says what the file says"
    );
    let (_, out, _) = within(&lease, &["tasks", "--run-dir", &run_arg(&lease), "--details"], BOUND);
    for bad in ['\u{9b}', '\u{1b}', '\u{202e}', '\u{200b}', '\u{7}'] {
        assert!(!out.contains(bad), "{bad:?} reached the text output: {out:?}");
    }
}

#[test]
fn a_heartbeat_dir_that_is_a_file_and_an_oversized_spec_say_so() {
    let (lease, _) = lease_with_a_done_task("706");
    let run = lease.run_dir();
    std::fs::write(run.join("hb"), b"not a directory").unwrap();
    let big = run.join(format!("done/a/0000000000000011_Tbig011_{UUID}.json"));
    let file = std::fs::File::create(&big).unwrap();
    file.set_len(50 << 20).unwrap();
    let (ok, out, _) = within(&lease, &["status", "--run-dir", &run_arg(&lease)], BOUND);
    assert!(ok);
    assert!(out.contains("hb") && out.contains("Not a directory"), "{out}");
    let (_, out, _) = within(&lease, &["tasks", "--run-dir", &run_arg(&lease), "--json", "--details"], BOUND);
    let rows: Vec<Value> = serde_json::from_str(&out).unwrap();
    let big = rows.iter().find(|r| r["task_id"] == "Tbig011").unwrap();
    assert!(big["problem"].as_str().unwrap().contains("16777216-byte limit"), "the cap is named: {big}");
}

#[test]
fn symlinked_node_dirs_stray_files_and_nested_arrays_are_reported() {
    let (lease, _) = lease_with_a_done_task("707");
    let run = lease.run_dir();
    std::fs::create_dir_all(run.join("inbox")).unwrap();
    std::os::unix::fs::symlink("/", run.join("inbox/rootfs")).unwrap();
    std::fs::write(run.join(format!("inbox/0000000000000012_Tstray12_{UUID}.json")), b"{}").unwrap();
    std::fs::write(lease.home().join("config.json"), br#"{"ui":[1,1,1,true,1,1]}"#).unwrap();
    let (ok, out, err) = within(&lease, &["status", "--run-dir", &run_arg(&lease), "--json"], BOUND);
    assert!(ok);
    assert!(
        err.contains("config.json") && err.contains("using defaults"),
        "a nested array is malformed: {err}"
    );
    let status: Value = serde_json::from_str(&out).unwrap();
    let problem = status["scan_error"].as_str().unwrap_or_default();
    assert!(problem.contains("2 entries that are not a node directory"), "{problem}");
    assert_eq!(status["tasks"], 1, "nothing under the symlink to / was scanned");
}
