//! `leaseq logs` and `leaseq follow`: a task's stdout or stderr, whole,
//! its last lines, or followed as it grows until the task ends.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::resolve::TaskRef;
use crate::hydrate::read_result_summary;
use crate::index::TaskState;
use crate::model::result_file_name;
use crate::paths::{QueueDir, RunDir};
use crate::task_logs::{start_of_last_lines, LogLocation, LogStream};

/// How often `follow` looks for new output and for the task's end.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// The most `follow` copies per poll, so a log that grows by gigabytes
/// cannot make it hold a huge buffer.
const FOLLOW_CHUNK: u64 = 1 << 20;

/// The task's result, when it has one.
fn result_of(run: &RunDir, task: &TaskRef) -> Option<crate::index::ResultSummary> {
    let kind = crate::control::existing_result(&crate::scan::FsSource, run, &task.node, &task.name)?;
    let path = run.queue(QueueDir::Done, &task.node).join(result_file_name(&task.name, kind));
    read_result_summary(&crate::scan::FsSource, &path).ok()
}

/// Where the task's log is now; None when its result names none.
pub fn log_path(run: &RunDir, task: &TaskRef, stream: LogStream) -> Option<PathBuf> {
    log_path_for(run, task, result_of(run, task).as_ref(), stream)
}

/// [`log_path`] with the task's result already read.
fn log_path_for(
    run: &RunDir,
    task: &TaskRef,
    result: Option<&crate::index::ResultSummary>,
    stream: LogStream,
) -> Option<PathBuf> {
    // A path either runner derives from the name is looked for as for a
    // running task (the older runner's results name `logs/<task_id>.out`).
    let named = result.and_then(|r| {
        let path = match stream {
            LogStream::Stdout => &r.stdout,
            LogStream::Stderr => &r.stderr,
        };
        path.unless_derivable(&task.node, &task.name, &task.task_id, stream).map(|p| &**p)
    });
    let location = LogLocation::of_task(run, &task.node, &task.name, &task.task_id, named, stream);
    (!location.is_none()).then(|| location.resolve())
}

/// A writer that cleans log bytes for a terminal: escape sequences and
/// control characters removed, newlines kept (see `sanitize::clean_log`).
pub struct TerminalSafe<W: Write>(pub W);

impl<W: Write> Write for TerminalSafe<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = crate::sanitize::clean_log(&String::from_utf8_lossy(buf));
        self.0.write_all(text.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `leaseq logs TASK [--err] [--tail N]`: the bytes as the task wrote them.
pub fn print_log(
    run: &RunDir,
    task: &TaskRef,
    stream: LogStream,
    tail: Option<usize>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let path = log_path(run, task, stream).ok_or_else(|| no_log(task, stream))?;
    let mut file = open_log(&path, task)?;
    if let Some(lines) = tail {
        let start = start_of_last_lines(&mut file, lines).map_err(|e| format!("{}: {e}", path.display()))?;
        file.seek(SeekFrom::Start(start)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    std::io::copy(&mut file, out).map(|_| ()).map_err(|e| io_or_pipe(&path, e))
}

fn no_log(task: &TaskRef, stream: LogStream) -> String {
    format!("{} ({}) has no {} log: its result names none", task.task_id, task.state, stream.label())
}

fn open_log(path: &Path, task: &TaskRef) -> Result<std::fs::File, String> {
    crate::logs::open_regular(path).map(|(file, _)| file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{} ({}) has no log at {} yet{}",
            task.task_id,
            task.state,
            path.display(),
            if task.state == TaskState::Pending { ": it has not started" } else { "" }
        ),
        _ => format!("{}: {e}", path.display()),
    })
}

fn io_or_pipe(path: &Path, e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        String::new()
    } else {
        format!("{}: {e}", path.display())
    }
}

/// `leaseq follow`: prints the log's last `tail` lines, then what is
/// appended, until the task has a result and its log has been read to the
/// end (a task without a result is followed however long it runs).
pub fn follow_log(
    run: &RunDir,
    task: &TaskRef,
    stream: LogStream,
    tail: usize,
    out: &mut dyn Write,
) -> Result<(), String> {
    let mut path = log_path(run, task, stream).unwrap_or_default();
    let mut offset: Option<u64> = None;
    let mut waited_note = false;
    loop {
        let result = result_of(run, task);
        let ended = result.is_some();
        if ended {
            // The result may name the log (a different path for the older runner).
            let final_path = log_path_for(run, task, result.as_ref(), stream).unwrap_or_default();
            if final_path.as_os_str().is_empty() {
                return Err(no_log(task, stream));
            }
            if final_path != path {
                path = final_path;
                offset = None;
            }
        }
        match crate::logs::open_regular(&path) {
            Ok((mut file, meta)) => {
                let len = meta.len();
                let from = match offset {
                    Some(at) if at <= len => at,
                    Some(_) => {
                        let _ = writeln!(
                            out,
                            "\n[leaseq: {} was truncated; following from its start]",
                            path.display()
                        );
                        0
                    }
                    None => start_of_last_lines(&mut file, tail).unwrap_or(0),
                };
                file.seek(SeekFrom::Start(from)).map_err(|e| format!("{}: {e}", path.display()))?;
                let mut chunk = file.take(FOLLOW_CHUNK);
                let copied = std::io::copy(&mut chunk, out).map_err(|e| io_or_pipe(&path, e))?;
                out.flush().map_err(|e| io_or_pipe(&path, e))?;
                offset = Some(from + copied);
                if copied == FOLLOW_CHUNK {
                    continue; // more is there already
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !waited_note {
                    eprintln!("leaseq: waiting for {} to appear", path.display());
                    waited_note = true;
                }
            }
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        if ended {
            return Ok(());
        }
        std::thread::sleep(FOLLOW_POLL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn last_lines(text: &str, n: usize) -> String {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), text).unwrap();
        let mut file = std::fs::File::open(tmp.path()).unwrap();
        let start = start_of_last_lines(&mut file, n).unwrap();
        text[start as usize..].to_string()
    }

    #[test]
    fn a_terminal_gets_the_log_without_its_escape_sequences() {
        let mut out = TerminalSafe(Vec::new());
        out.write_all(b"\x1b]0;title\x07\x1b]52;c;ZXZpbA==\x07\x1b[31mred\x1b[0m\nnext\n").unwrap();
        assert_eq!(String::from_utf8(out.0).unwrap(), "red\nnext\n");
    }

    #[test]
    fn tail_counts_lines_from_the_end() {
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc\n");
        assert_eq!(last_lines("a\nb\nc", 2), "b\nc");
        assert_eq!(last_lines("a\nb\n", 5), "a\nb\n");
        assert_eq!(last_lines("a\nb\n", 0), "");
        let long: String = (0..100_000).map(|i| format!("{i}\n")).collect();
        assert_eq!(last_lines(&long, 3), "99997\n99998\n99999\n");
    }
}
