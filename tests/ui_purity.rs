//! The pump must never block: the UI module and the pump itself
//! (src/tui/mod.rs) may not touch the filesystem, start processes or
//! sleep. Their work goes to the background as requests; the trace and the
//! watchdog write from their own threads (src/tui/trace.rs). This is the
//! quick textual guard; tests/e2e_tmux.rs (`the_pump_thread_makes_no_
//! filesystem_calls_while_keys_are_pressed`) watches the pump thread's
//! system calls with strace, which covers whatever src/ui reaches in other
//! modules too.

use std::path::Path;

const FORBIDDEN: [&str; 7] =
    ["std::fs", "std::process", "thread::sleep", "File::open", "read_dir(", "Command::new", "smol::unblock"];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("list src/ui") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_ui_module_and_the_pump_do_no_io() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/ui"), &mut files);
    assert!(files.len() >= 5, "found the UI sources");
    files.push(root.join("src/tui/mod.rs"));
    let mut offences = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for pattern in FORBIDDEN {
                if code.contains(pattern) {
                    offences.push(format!("{}:{}: {}", file.display(), number + 1, line.trim()));
                }
            }
        }
    }
    assert!(offences.is_empty(), "I/O in src/ui or the pump:\n{}", offences.join("\n"));
}
