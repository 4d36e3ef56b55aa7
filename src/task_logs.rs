//! Where a task's stdout and stderr are.
//!
//! Owns: the naming rule of this project's runner (`logs/<node>/<stem>.out`,
//! one pair of files per task, so tasks whose 24-bit task ids collide never
//! share a log), the older runner's rule (`logs/<task_id>.out`), and the
//! choice between them for a task that has no result yet. A result names
//! its logs itself, and that name always wins. Paths are computed without
//! I/O; only [`LogLocation::resolve`] looks at the disk.

use std::path::{Path, PathBuf};

use crate::paths::RunDir;

/// Which of a task's two logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

impl LogStream {
    pub fn label(self) -> &'static str {
        match self {
            LogStream::Stdout => "stdout",
            LogStream::Stderr => "stderr",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            LogStream::Stdout => "out",
            LogStream::Stderr => "err",
        }
    }
}

/// The run-dir-relative path this project's runner writes a task's log to.
pub fn runner_log_relative(node: &str, stem: &str, stream: LogStream) -> String {
    format!("logs/{node}/{stem}.{}", stream.extension())
}

/// The run-dir-relative path the older runner writes (shared by every task
/// with the same task id).
pub fn legacy_log_relative(task_id: &str, stream: LogStream) -> String {
    format!("logs/{task_id}.{}", stream.extension())
}

/// Whether a path a result names is one either runner derives from the
/// task's name: then it need not be kept per task, and is found again by
/// [`LogLocation::of_task`] without it.
/// Compares piece by piece: it runs for every result read, and building
/// the two paths to compare with was four allocations each time.
pub fn is_derivable(path: &str, node: &str, stem: &str, task_id: &str, stream: LogStream) -> bool {
    let Some(inner) = path.strip_prefix("logs/").and_then(|p| p.strip_suffix(stream.extension())) else {
        return false;
    };
    let Some(inner) = inner.strip_suffix('.') else { return false };
    inner == task_id || inner.strip_prefix(node).and_then(|p| p.strip_prefix('/')) == Some(stem)
}

/// Where to look for one log of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLocation {
    /// The path the result names, or this project's per-task path.
    pub primary: PathBuf,
    /// The older runner's path, tried when `primary` does not exist (only
    /// for tasks without a result: a result's path is final).
    pub legacy: Option<PathBuf>,
}

impl LogLocation {
    /// A log whose path is known (from a result).
    pub fn exact(path: PathBuf) -> LogLocation {
        LogLocation { primary: path, legacy: None }
    }

    /// No log: the result names none (a task cancelled while pending) or
    /// names a path outside the run dir, which is never opened.
    pub fn none() -> LogLocation {
        LogLocation::exact(PathBuf::new())
    }

    pub fn is_none(&self) -> bool {
        self.primary.as_os_str().is_empty()
    }

    /// The log of a task: where its result says (`result_path`, relative,
    /// when its result names one), else the per-task path with the older
    /// runner's per-task-id path as the alternative (a task still running,
    /// or a result whose path either runner derives from the name).
    pub fn of_task(
        run: &RunDir,
        node: &str,
        stem: &str,
        task_id: &str,
        result_path: Option<&str>,
        stream: LogStream,
    ) -> LogLocation {
        match result_path {
            Some(path) => run.resolve_inside(path).map_or_else(LogLocation::none, LogLocation::exact),
            None => LogLocation {
                primary: run.resolve(&runner_log_relative(node, stem, stream)),
                legacy: Some(run.resolve(&legacy_log_relative(task_id, stream))),
            },
        }
    }

    /// The log of a task of an index snapshot.
    pub fn of_indexed(
        run: &RunDir,
        index: &crate::index::Index,
        task: &crate::index::Task,
        stream: LogStream,
    ) -> LogLocation {
        LogLocation::of_task(
            run,
            index.node_name(task.node),
            &task.name.text(),
            task.task_id(),
            task.result_log(stream),
            stream,
        )
    }

    /// The path to read now: `primary` if it exists, else `legacy` if that
    /// exists, else `primary` (a log not written yet). Blocking (a stat).
    pub fn resolve(&self) -> PathBuf {
        match &self.legacy {
            Some(legacy) if !exists(&self.primary) && exists(legacy) => legacy.clone(),
            _ => self.primary.clone(),
        }
    }
}

/// The offset where the last `lines` lines of a file start, reading
/// backwards in bounded chunks (a huge log is never read whole). A final
/// newline ends the last line; it does not start an empty one.
pub fn start_of_last_lines(file: &mut std::fs::File, lines: usize) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    const CHUNK: u64 = 64 << 10;
    let len = file.seek(SeekFrom::End(0))?;
    if lines == 0 {
        return Ok(len);
    }
    let mut end = len;
    let mut newlines = 0usize;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        for i in (0..n).rev() {
            let at = start + i as u64;
            if buf[i] == b'\n' && at != len - 1 {
                newlines += 1;
                if newlines == lines {
                    return Ok(at + 1);
                }
            }
        }
        end = start;
    }
    Ok(0)
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivable_paths_are_exactly_the_two_either_runner_writes() {
        let (node, stem, id) = ("nodeA", "000012_T014_u", "T014");
        for stream in [LogStream::Stdout, LogStream::Stderr] {
            assert!(is_derivable(&legacy_log_relative(id, stream), node, stem, id, stream));
            assert!(is_derivable(&runner_log_relative(node, stem, stream), node, stem, id, stream));
        }
        for other in [
            "logs/T014.err",
            "logs/T0140.out",
            "logs/nodeA/000012_T014_u.err",
            "logs/nodeB/000012_T014_u.out",
            "logs/nodeA000012_T014_u.out",
            "xlogs/T014.out",
            "logs/T014out",
            "logs/nodeA/x/000012_T014_u.out",
            "",
        ] {
            assert!(!is_derivable(other, node, stem, id, LogStream::Stdout), "{other}");
        }
    }

    #[test]
    fn a_result_path_wins_else_ours_then_the_legacy_one() {
        let tmp = tempfile::tempdir().unwrap();
        let run = RunDir(tmp.path().to_path_buf());
        let stem = "1_T1_x";
        let named = LogLocation::of_task(&run, "a", stem, "T1", Some("logs/T1.out"), LogStream::Stdout);
        assert_eq!(named.resolve(), tmp.path().join("logs/T1.out"));
        assert!(named.legacy.is_none());
        assert!(
            LogLocation::of_task(&run, "a", stem, "T1", Some(""), LogStream::Stdout).is_none(),
            "none named"
        );
        let escape = LogLocation::of_task(&run, "a", stem, "T1", Some("/etc/shadow"), LogStream::Stdout);
        assert!(escape.is_none(), "never outside the run dir");

        let running = LogLocation::of_task(&run, "a", stem, "T1", None, LogStream::Stderr);
        assert_eq!(running.resolve(), tmp.path().join("logs/a/1_T1_x.err"), "nothing written yet");
        std::fs::create_dir_all(tmp.path().join("logs")).unwrap();
        std::fs::write(tmp.path().join("logs/T1.err"), b"old").unwrap();
        assert_eq!(running.resolve(), tmp.path().join("logs/T1.err"), "the older runner's log");
        std::fs::create_dir_all(tmp.path().join("logs/a")).unwrap();
        std::fs::write(tmp.path().join("logs/a/1_T1_x.err"), b"ours").unwrap();
        assert_eq!(running.resolve(), tmp.path().join("logs/a/1_T1_x.err"), "ours first");
    }
}
