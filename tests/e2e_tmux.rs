//! End to end: the real binary in a real terminal (tmux) on a generated
//! tree. Navigates panes, filters, opens details, follows a growing log,
//! searches, quits, and checks the terminal is restored, also after
//! SIGTERM. The stall watchdog runs throughout and must report nothing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use leaseq::sim::generate::{generate, GenerateOptions};

mod common;
use common::tmux::{tmux, tmux_available, Session};

fn tree(dir: &Path, tasks: usize) -> PathBuf {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let options = GenerateOptions { tasks, nodes: 4, now, ..GenerateOptions::default() };
    generate(dir, &options).expect("generate").run_dir
}

/// The shell command: print a marker, run the dashboard, then report the
/// exit status and whether the terminal is back in cooked mode.
fn command(home: &Path, stall_log: &Path, extra: &str) -> String {
    format!(
        "echo BEFORE-TUI; env LEASEQ_HOME={} LEASEQ_STALL_MS=400 LEASEQ_STALL_LOG={} {} tui --lease 99887766 {extra}; \
         echo EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon'; sleep 120",
        home.display(),
        stall_log.display(),
        env!("CARGO_BIN_EXE_leaseq"),
    )
}

fn assert_restored(session: &Session, exit: &str) {
    // The shell prints the exit status, then the terminal mode (stty).
    let screen = session.wait_for("the shell after the dashboard", |s| {
        s.contains("EXIT=") && s.lines().any(|l| l.trim().ends_with("icanon"))
    });
    assert!(screen.contains(exit), "{screen}");
    assert!(screen.contains("BEFORE-TUI"), "the alternate screen was left: {screen}");
    let mode = screen.lines().find(|l| l.trim().ends_with("icanon")).unwrap_or_default().trim().to_string();
    assert_eq!(mode, "icanon", "the terminal is back in canonical mode: {screen}");
}

#[test]
fn navigate_filter_details_follow_search_quit() {
    if !tmux_available() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let run = tree(home.path(), 20_000);
    let stall_log = home.path().join("stalls.log");
    let session = Session::start("leaseq-e2e-main", &command(home.path(), &stall_log, ""));

    let screen = session.wait_for("task rows", |s| s.contains("tasks") && s.contains(" of 20,"));
    assert!(screen.contains("nodes 4"), "{screen}");
    assert!(screen.contains("STALE"), "the generated stale node is marked: {screen}");

    // Quick filter: failed tasks only, then clear.
    session.keys(&["3"]);
    session.wait_for("the failed filter", |s| s.contains("state:FAIL"));
    session.keys(&["0"]);
    session.wait_for("filters cleared", |s| !s.contains("state:FAIL"));

    // Nodes pane: Enter filters the task list to that node.
    session.keys(&["BTab", "Enter"]);
    session.wait_for("the node filter", |s| s.contains("node:node00"));
    session.keys(&["Enter"]);

    // Details of the selected task.
    session.wait_for("details", |s| s.contains("task details"));
    session.wait_for("the spec read", |s| s.contains("variables (v shows)"));
    session.keys(&["Escape", "0"]);

    // Follow a running task's growing log.
    session.keys(&["2"]);
    session.wait_for("running filter", |s| s.contains("state:RUNN"));
    session.keys(&["F"]);
    let screen = session.wait_for("the log pane", |s| s.contains("[stdout]"));
    let task_id = screen
        .lines()
        .find_map(|l| l.split("[stdout] ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("followed task id")
        .to_string();
    let log = run.join("logs").join(format!("{task_id}.out"));
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
    writeln!(file, "e2e line one \x1b[31mred\x1b[0m").unwrap();
    session.wait_for("the first appended line", |s| s.contains("e2e line one red"));
    write!(file, "e2e partial ").unwrap();
    file.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    writeln!(file, "completed").unwrap();
    session.wait_for("the completed partial line", |s| s.contains("e2e partial completed"));

    // Search the whole history.
    session.keys(&["Tab", "/", "t", "r", "a", "i", "n", "Enter"]);
    session.wait_for("search results", |s| s.contains("/train") && !s.contains("searching…"));

    session.keys(&["q"]);
    assert_restored(&session, "EXIT=0");
    let stalls = std::fs::read_to_string(&stall_log).unwrap_or_default();
    assert!(stalls.is_empty(), "the pump stalled:\n{stalls}");
}

/// Sends `signal` to a dashboard in tmux: the terminal must be restored
/// and the exit status be 128+signal.
fn signal_restores_the_terminal(name: &str, signal: &str, exit: &str) {
    if !tmux_available() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    tree(home.path(), 500);
    let stall_log = home.path().join("stalls.log");
    let session = Session::start(name, &command(home.path(), &stall_log, "--max-tasks 100"));
    session.wait_for("task rows", |s| s.contains(" of "));
    // The pane's shell runs `env ... leaseq`, and env execs leaseq: the
    // dashboard is the shell's child.
    let shell = tmux(&["display", "-p", "-t", &session.name, "#{pane_pid}"]).trim().to_string();
    let child = Command::new("pgrep").args(["-P", &shell]).output().expect("pgrep");
    let pid = String::from_utf8_lossy(&child.stdout).lines().next().unwrap_or_default().trim().to_string();
    assert!(!pid.is_empty(), "the dashboard's pid");
    assert!(Command::new("kill").args([&format!("-{signal}"), &pid]).status().unwrap().success());
    assert_restored(&session, exit);
}

#[test]
fn sigterm_restores_the_terminal() {
    signal_restores_the_terminal("leaseq-e2e-sigterm", "TERM", "EXIT=143");
}

#[test]
fn sigquit_sighup_and_sigusr1_restore_the_terminal_too() {
    signal_restores_the_terminal("leaseq-e2e-sigquit", "QUIT", "EXIT=131");
    signal_restores_the_terminal("leaseq-e2e-sighup", "HUP", "EXIT=129");
    signal_restores_the_terminal("leaseq-e2e-sigusr1", "USR1", "EXIT=138");
}

#[test]
fn ctrl_z_suspends_with_the_terminal_restored_and_fg_redraws() {
    if !tmux_available() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    tree(home.path(), 500);
    let session = Session::start("leaseq-e2e-suspend", "env PS1='$ ' bash --norc --noprofile -i");
    session.wait_for("the shell prompt", |s| s.lines().any(|l| l.trim_end() == "$"));
    let run =
        format!("{} --home {} tui --lease 99887766", env!("CARGO_BIN_EXE_leaseq"), home.path().display());
    session.keys(&[&run, "Enter"]);
    session.wait_for("task rows", |s| s.contains(" of "));
    session.keys(&["C-z"]);
    session.wait_for("the shell's job control", |s| s.contains("Stopped"));
    session.keys(&["stty -a | tr ' ' '\\n' | grep -x -- '-\\?icanon'", "Enter"]);
    let screen = session.wait_for("the terminal mode", |s| s.lines().any(|l| l.trim() == "icanon"));
    assert!(!screen.contains("-icanon"), "cooked mode while suspended: {screen}");
    session.keys(&["fg", "Enter"]);
    session.wait_for("the dashboard redrawn", |s| s.contains(" of ") && s.contains("nodes"));
    session.keys(&["q"]);
    session.keys(&["echo EXIT=$?", "Enter"]);
    session.wait_for("a clean exit", |s| s.contains("EXIT=0"));
}

#[test]
fn a_hung_squeue_marks_only_slurm_rows_and_does_not_outlive_the_dashboard() {
    if !tmux_available() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join("runs/12345")).unwrap();
    let host = leaseq::paths::hostname();
    std::fs::create_dir_all(home.path().join("rt").join(format!("local:{host}"))).unwrap();
    let fakes = home.path().join("bin");
    std::fs::create_dir_all(&fakes).unwrap();
    let token = format!("leaseq-hang-{}", std::process::id());
    for program in ["squeue", "scontrol", "sinfo"] {
        let script = format!("#!/bin/bash\nexec -a {token}-{program} sleep 600\n");
        let path = fakes.join(program);
        std::fs::write(&path, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let hung = || {
        let out = Command::new("pgrep").args(["-f", &token]).output().expect("pgrep");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    let command = format!(
        "env PATH={}:$PATH LEASEQ_RUNTIME_DIR={} {} --home {} tui; echo EXIT=$?; sleep 60",
        fakes.display(),
        home.path().join("rt").display(),
        env!("CARGO_BIN_EXE_leaseq"),
        home.path().display()
    );
    let session = Session::start("leaseq-e2e-hung-slurm", &command);
    session.wait_for("the lease list", |s| s.contains("leases ["));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while hung() == 0 {
        assert!(std::time::Instant::now() < deadline, "squeue was never started: {}", session.screen());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The lease list and keys do not wait for it: the row is there, saying
    // Slurm has not answered.
    session.wait_for("the lease row while squeue hangs", |s| {
        s.lines().any(|l| l.contains("12345") && l.contains("no answer yet"))
    });
    assert!(hung() > 0, "squeue still hangs");
    let screen = session.screen();
    assert!(
        screen.lines().any(|l| l.contains(&format!("local:{host}")) && l.contains("RUNNING")),
        "the local lease is shown as usual: {screen}"
    );
    session.keys(&["?"]);
    session.wait_for("the help overlay", |s| s.contains("help"));
    session.keys(&["Escape", "q"]);
    session.wait_for("the dashboard to exit", |s| s.contains("EXIT=0"));
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    while hung() > 0 {
        assert!(std::time::Instant::now() < deadline, "{} Slurm command(s) outlived the dashboard", hung());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Threads of a process, from /proc.
fn threads_of(pid: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |tasks| tasks.count())
}

#[test]
fn a_hung_filesystem_keeps_the_dashboard_drawing_with_bounded_threads() {
    if !tmux_available() {
        return;
    }
    // The demo's simulated cluster goes on writing; the dashboard's own
    // filesystem calls hang after 3 s, as on a hung NFS mount.
    let home = tempfile::tempdir().unwrap();
    let command = format!(
        "env HOME={} {} demo --tasks 2345 --nodes 3 --stall-fs-after 3; echo EXIT=$?; sleep 60",
        home.path().display(),
        env!("CARGO_BIN_EXE_leaseq"),
    );
    let session = Session::start("leaseq-e2e-hung-fs", &command);
    session.wait_for("task rows", |s| s.contains("RUNNING") && s.contains("FAILED"));
    let pid = {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let out =
                Command::new("pgrep").args(["-f", "demo --tasks 2345 --nodes 3"]).output().expect("pgrep");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if let Some(pid) = text.lines().find(|l| !l.trim().is_empty()) {
                break pid.trim().to_string();
            }
            assert!(std::time::Instant::now() < deadline, "no dashboard process");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    // The stuck call is named in the status bar.
    session.wait_for("the stuck filesystem to be shown", |s| s.contains("fs=waiting("));
    let before = threads_of(&pid);
    // Keys that each need the filesystem: refresh, details of several
    // rows, filters; on a hung mount none may add a thread per key.
    for _ in 0..10 {
        session.keys(&["r", "Enter", "Escape", "j"]);
    }
    session.keys(&["2", "1"]);
    let after = threads_of(&pid);
    assert!(
        after <= before + leaseq::background::BACKGROUND_IO_THREADS,
        "threads grew from {before} to {after} with keys on a hung filesystem"
    );
    assert!(after < 40, "{after} threads");
    // Keys still work and the screen still draws.
    session.keys(&["?"]);
    session.wait_for("the help overlay while the filesystem hangs", |s| s.contains("help"));
    session.keys(&["Escape"]);
    let screen = session.wait_for("the status bar still saying so", |s| s.contains("fs=waiting("));
    // The filter keys worked from memory: the pending rows read before the hang.
    assert!(screen.contains("state:PEND") && screen.contains("PENDING"), "{screen}");
    session.keys(&["q"]);
    session.wait_for("the dashboard to exit despite hung calls", |s| s.contains("EXIT=0"));
}

/// Seconds since midnight of a `strace -tt` stamp (`HH:MM:SS.micros`).
fn stamp_seconds(stamp: &str) -> Option<f64> {
    let mut parts = stamp.split(':');
    let (h, m, s) = (parts.next()?.parse::<f64>().ok()?, parts.next()?.parse::<f64>().ok()?, parts.next()?);
    Some(h * 3600.0 + m * 60.0 + s.parse::<f64>().ok()?)
}

/// Now, as seconds since midnight UTC (strace prints local time; the
/// command below runs it with TZ=UTC).
fn now_seconds() -> f64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    (now.as_secs() % 86_400) as f64 + f64::from(now.subsec_micros()) / 1e6
}

/// The pump's own thread, watched from outside with strace while keys that
/// need files, logs, searches and actions are pressed: it makes no
/// filesystem call at all (everything goes to the engine and background
/// threads), whatever src/ui reaches in other modules.
#[test]
fn the_pump_thread_makes_no_filesystem_calls_while_keys_are_pressed() {
    if !tmux_available() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    tree(home.path(), 3_000);
    let trace = home.path().join("strace.log");
    let command = format!(
        "env TZ=UTC LEASEQ_HOME={} strace -f -tt -e trace=%file,getdents64 -o {} {} tui --lease 99887766; echo EXIT=$?; sleep 60",
        home.path().display(),
        trace.display(),
        env!("CARGO_BIN_EXE_leaseq"),
    );
    let session = Session::start("leaseq-e2e-pump-syscalls", &command);
    session.wait_for("task rows", |s| s.contains(" of 3,"));
    std::thread::sleep(Duration::from_millis(500));
    let from = now_seconds();
    let keys = [
        "j", "j", "k", "3", "0", "2", "1", "Enter", "Escape", "Tab", "Enter", "Escape", "Tab", "Tab", "/",
        "t", "r", "Enter", "Escape", "e", "Escape", "0", "F", "E", "A", "L", "Escape", "f", "?", "Escape",
        "r", "p", "p", "G", "g", "v", "Escape",
    ];
    session.keys(&keys);
    std::thread::sleep(Duration::from_millis(800));
    let to = now_seconds();
    session.keys(&["q"]);
    session.wait_for("the dashboard to exit", |s| s.contains("EXIT=0"));
    let log = std::fs::read_to_string(&trace).expect("strace wrote its log");
    // The first line is the dashboard's exec: its pid is the pump thread's.
    let pump = log.split_whitespace().next().expect("a traced call").to_string();
    let in_window: Vec<&str> = log
        .lines()
        .filter(|line| line.split_whitespace().next() == Some(pump.as_str()))
        .filter(|line| {
            line.split_whitespace().nth(1).and_then(stamp_seconds).is_some_and(|at| at >= from && at <= to)
        })
        .collect();
    // The terminal itself: crossterm opens /dev/tty to ask its size on
    // every draw (a device, never the run directory). That it shows up
    // proves the right thread and window are watched.
    let is_tty = |line: &&str| line.contains("\"/dev/tty\"") || line.contains("resumed>");
    assert!(in_window.iter().any(is_tty), "the pump drew while keys were pressed");
    // strace also logs signals delivered to the thread (`--- SIGCHLD ...`
    // when a Slurm query's child exits) and exits (`+++`): not calls.
    let is_call = |line: &&str| !matches!(line.split_whitespace().nth(2), Some("---" | "+++"));
    let calls: Vec<&str> = in_window.into_iter().filter(|line| !is_tty(line) && is_call(line)).collect();
    assert!(
        calls.is_empty(),
        "the pump thread touched the filesystem while keys were pressed:\n{}",
        calls.join("\n")
    );
    let others = log.lines().filter(|line| line.split_whitespace().next() != Some(pump.as_str())).count();
    assert!(others > 0, "the other threads' calls are traced (the filter is not empty by mistake)");
}

/// `--max-tasks` in a real terminal, on the relaunch that finds the cache:
/// at most N finished tasks keep their details once the history is in,
/// and the oldest rows, scrolled to, show their commands again.
#[test]
fn max_tasks_bounds_held_details_and_scrolled_rows_get_theirs_back() {
    if !tmux_available() {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    tree(home.path(), 2_000);
    let cache = home.path().join("cache");
    let trace = home.path().join("trace.log");
    let stall_log = home.path().join("stalls.log");
    let launch = |name: &str| {
        let _ = std::fs::remove_file(&trace);
        let extra = "--max-tasks 20";
        let command = format!(
            "export LEASEQ_TRACE_FILE={}; {}",
            trace.display(),
            command(home.path(), &stall_log, extra)
        );
        Session::start_with_cache(name, &cache, &command)
    };
    let ingested = || {
        let text = std::fs::read_to_string(&trace).unwrap_or_default();
        text.lines().find(|l| l.starts_with("ingested_ms")).map(str::to_string)
    };
    let figure = |line: &str, key: &str| -> usize {
        line.split_whitespace().skip_while(|w| *w != key).nth(1).and_then(|n| n.parse().ok()).unwrap()
    };

    // First launch: every file is read and saved to the cache.
    let first = launch("leaseq-e2e-max-tasks-1");
    first.wait_for("task rows", |s| s.contains(" of 2,0"));
    common::wait_until("the first launch's ingest", Duration::from_secs(60), || ingested().is_some());
    // Saving runs behind reading: give it a moment before quitting.
    std::thread::sleep(Duration::from_secs(3));
    first.keys(&["q"]);
    assert_restored(&first, "EXIT=0");
    drop(first);

    // Second launch: details come from the cache, and only 20 stay.
    let second = launch("leaseq-e2e-max-tasks-2");
    second.wait_for("task rows", |s| s.contains(" of 2,0"));
    common::wait_until("the second launch's ingest", Duration::from_secs(60), || ingested().is_some());
    let line = ingested().unwrap();
    assert!(figure(&line, "details_held") <= 20, "held details beyond the bound: {line}");
    // All but the bound, the live tasks and the rows on screen let go.
    assert!(figure(&line, "let_go") >= 2_000 - 20 - 100, "{line}");
    // The task pane's finished rows, as their words: STATE NODE TASK AGE
    // EXIT COMMAND...; a command let go is a lone `…`.
    let rows = |s: &str| -> Vec<Vec<String>> {
        s.lines()
            .filter_map(|l| l.split('│').nth(3))
            .map(|pane| pane.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .filter(|words| {
                words
                    .first()
                    .is_some_and(|w| ["FINISHED", "FAILED", "CANCELLED", "SKIPPED"].contains(&w.as_str()))
            })
            .collect()
    };
    let let_go = |row: &Vec<String>| row.len() == 6 && row[5] == "…";
    // The end of the list: the oldest finished tasks, whose details were
    // let go; once on screen they are fetched back from the cache.
    second.keys(&["G"]);
    let screen = second.wait_for("the oldest rows with their commands", |s| {
        let rows = rows(s);
        rows.len() >= 10 && !rows.iter().any(let_go)
    });
    assert!(screen.contains(" of 2,0"), "{screen}");
    second.keys(&["q"]);
    assert_restored(&second, "EXIT=0");
    let stalls = std::fs::read_to_string(&stall_log).unwrap_or_default();
    assert!(stalls.is_empty(), "the pump stalled:\n{stalls}");
}
