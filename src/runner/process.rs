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

/// Whether an environment variable describes the submitter's session
/// rather than the task (the job it was submitted from, its GPUs, its
/// shell's state): `submit` does not record these, and a spec that has
/// them (written by another tool) does not pass them on; the runner's own
/// values, or none, apply.
pub fn is_session_variable(key: &str) -> bool {
    key.starts_with("SLURM_") || matches!(key, "CUDA_VISIBLE_DEVICES" | "PWD" | "OLDPWD" | "SHLVL" | "_")
}

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
        if !is_session_variable(key)
            && !key.is_empty()
            && !key.contains('=')
            && !key.contains('\0')
            && !value.contains('\0')
        {
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
    // process group spawn() created (process_group(0)). Its id stays
    // reserved while the leader is unreaped, and the waiter reaps the
    // leader only after the group is empty and just before the lane drops
    // the task, so this never reaches another job's group.
    unsafe {
        libc::kill(-(pgid as i32), signal);
    }
}

/// Waits for the leader to exit without reaping it (`waitid` with
/// WNOWAIT): its zombie keeps the group id reserved while the rest of the
/// group is ended.
pub fn wait_leader(pid: u32) -> std::io::Result<std::process::ExitStatus> {
    use std::os::unix::process::ExitStatusExt;
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes only into `info`; P_PID with our child's pid.
        let rc = unsafe { libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if rc == 0 {
            // SAFETY: after a successful waitid with WEXITED, si_status and
            // si_code describe the exit.
            let (code, status) = unsafe { (info.si_code, info.si_status()) };
            let raw = if code == libc::CLD_EXITED { (status & 0xff) << 8 } else { status & 0x7f };
            return Ok(std::process::ExitStatus::from_raw(raw));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Whether a process other than a zombie is still in the group (from
/// /proc: a zombie leader does not count).
pub fn group_has_live_members(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else { return false };
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else { return false };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return false };
        // pid (comm) state ppid pgrp ...: comm may hold spaces and ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else { return false };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1);
        state != Some("Z") && pgrp == Some(pgid.to_string().as_str())
    })
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
