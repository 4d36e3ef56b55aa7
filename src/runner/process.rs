//! Starting a task's command and signalling it.
//!
//! A task runs as `bash -lc <command>` in its own process group (its pgid
//! is its pid), so a cancel reaches everything it started, and a Ctrl-C
//! meant for the runner does not reach the task directly.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::model::TaskSpec;

/// Variables that describe the submitter's session, not the task: the
/// runner's own values (or none) apply instead.
const NOT_INHERITED: &[&str] = &["CUDA_VISIBLE_DEVICES", "PWD", "OLDPWD", "SHLVL", "_"];

/// What a task gets besides its spec.
pub struct Launch<'a> {
    pub spec: &'a TaskSpec,
    pub stdout: File,
    pub stderr: File,
    /// `CUDA_VISIBLE_DEVICES` for the task, when the node has GPUs.
    pub visible_devices: Option<String>,
    pub lease_id: &'a str,
    pub node: &'a str,
    pub stem: &'a str,
}

/// Starts the task; its cwd must exist (checked by the caller so the
/// message can say so).
pub fn spawn(launch: Launch) -> std::io::Result<Child> {
    let spec = launch.spec;
    let mut command = Command::new("bash");
    command
        .arg("-lc")
        .arg(&spec.command)
        .current_dir(Path::new(&spec.cwd))
        .stdin(Stdio::null())
        .stdout(launch.stdout)
        .stderr(launch.stderr)
        .process_group(0);
    for (key, value) in &spec.env {
        let session = NOT_INHERITED.contains(&key.as_str()) || key.starts_with("SLURM_");
        if !session && !key.is_empty() && !key.contains('=') && !key.contains('\0') && !value.contains('\0') {
            command.env(key, value);
        }
    }
    if let Some(devices) = launch.visible_devices {
        command.env("CUDA_VISIBLE_DEVICES", devices);
    }
    command
        .env("LEASEQ_TASK_ID", &spec.task_id)
        .env("LEASEQ_TASK", launch.stem)
        .env("LEASEQ_LEASE_ID", launch.lease_id)
        .env("LEASEQ_NODE", launch.node);
    command.spawn()
}

/// Sends `signal` to the task's whole process group. A group that is gone
/// already (ESRCH) is not an error.
pub fn signal_group(pgid: u32, signal: i32) {
    // SAFETY: kill(2) has no memory effects. A negative pid names the
    // process group spawn() created (process_group(0)); the lane signals
    // only tasks it has not seen end, and a group id cannot be reused while
    // any member lives, so at worst this reaches an empty group (ESRCH).
    unsafe {
        libc::kill(-(pgid as i32), signal);
    }
}

/// A signal's name for messages (`SIGTERM`), or its number.
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGQUIT => "SIGQUIT".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGPIPE => "SIGPIPE".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGUSR1 => "SIGUSR1".into(),
        libc::SIGUSR2 => "SIGUSR2".into(),
        other => format!("signal {other}"),
    }
}
