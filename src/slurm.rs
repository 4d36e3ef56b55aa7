//! Slurm leases through the Slurm CLI: their state, creating and releasing
//! them, and how often to ask.
//!
//! Owns: every call to the Slurm CLI (`squeue`, `scontrol`, `sbatch`,
//! `scancel`, `sinfo`), each under a timeout that kills the child's whole
//! process group; parsing their output; the lease-create form model
//! ([`LeaseRequest`]: validation, sbatch arguments, keeper script, preview);
//! and rate limiting of Slurm queries ([`SlurmPoller`], pure logic).
//! Every text field that came from Slurm passes through
//! [`crate::sanitize::clean_line`] before it leaves this module.
//!
//! Must not: be called from the UI thread. Every function that talks to
//! Slurm runs a child process and blocks (up to [`DEFAULT_TIMEOUT`]); the
//! UI asks a worker, and uses [`SlurmPoller`] to decide when.
//!
//! Slurm is asked about lease state only, never about task state. One
//! refresh costs one `squeue` call for all leases (plus, only for jobs whose
//! per-node GPU count squeue could not tell, at most
//! [`MAX_SCONTROL_PER_QUERY`] `scontrol` calls). A job Slurm has forgotten
//! (`Invalid job id specified`, or simply not listed) is
//! [`LeaseSlurmState::Gone`]: a state, not an error.

use crate::clock::unix_now;
use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::fmt;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::model::{LeaseEntry, LeaseMeta, SlurmLeaseMeta};
use crate::paths::{read_registry, write_atomic, write_registry, Roots, RunDir, UiConfig};
use crate::sanitize::clean_line;

/// How long any one Slurm command may run before it is killed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// At most this many `scontrol show job` calls per [`SlurmCli::query_leases`].
pub const MAX_SCONTROL_PER_QUERY: usize = 4;

/// Ids per `squeue -j` call; a user has far fewer leases than this, so a
/// refresh is one call.
const SQUEUE_IDS_PER_CALL: usize = 256;

/// The squeue fields we read, `|`-separated, the job name last: a name is the
/// only field that may contain `|`, so the line is split into at most
/// [`SQUEUE_FIELDS`] parts and the name keeps the rest.
/// `%A` job id (unique, also for array tasks), `%i` display id (`12_[0-2]`),
/// `%T` state, `%L` time left, `%D` nodes, `%r` reason, `%P` partition,
/// `%N` node list, `%b` TRES per node (`gres:gpu:2`), `%j` name.
pub const SQUEUE_FORMAT: &str = "%A|%i|%T|%L|%D|%r|%P|%N|%b|%j";
const SQUEUE_FIELDS: usize = 10;

// ---------------------------------------------------------------- errors

/// What can go wrong talking to Slurm. A job Slurm no longer knows is not an
/// error: it is [`LeaseSlurmState::Gone`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlurmError {
    /// The program is not on PATH (or not in [`SlurmCli::bin_dir`]).
    NotInstalled { program: String },
    /// The command ran and failed. `status` is None when a signal ended it.
    Failed { command: String, status: Option<i32>, stderr: String },
    /// The command did not finish in time and was killed (with its process
    /// group).
    Timeout { command: String, after: Duration },
    /// The controller does not answer: a command said "Unable to contact
    /// slurm controller", or timed out while `scontrol ping` says DOWN.
    /// (With the controller down, squeue takes ~18 s and sbatch ~9 s to
    /// give up, so it usually shows as a timeout first.)
    Unreachable { command: String, detail: String },
    /// The command could not be started for another reason than "not found".
    Spawn { command: String, error: String },
    /// The command succeeded but printed something we cannot use.
    Parse { command: String, output: String },
    /// A request or id we refuse before calling Slurm.
    Invalid(String),
    /// Reading or writing leaseq's own files failed.
    Io(String),
}

impl fmt::Display for SlurmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlurmError::NotInstalled { program } => {
                let what = match program.as_str() {
                    "squeue" => "Slurm lease state unavailable",
                    "sbatch" => "cannot create a Slurm lease",
                    "scancel" => "cannot release a Slurm lease",
                    "scontrol" => "Slurm job details unavailable",
                    _ => "Slurm unavailable",
                };
                write!(f, "{program} not found: {what} (is Slurm installed / on PATH?)")
            }
            SlurmError::Failed { command, status, stderr } => {
                let status = status.map_or("killed by a signal".to_string(), |c| format!("exit {c}"));
                if stderr.is_empty() {
                    write!(f, "`{command}` failed ({status})")
                } else {
                    write!(f, "`{command}` failed ({status}): {stderr}")
                }
            }
            SlurmError::Timeout { command, after } => {
                write!(f, "`{command}` did not answer within {}s and was killed", after.as_secs_f32())
            }
            SlurmError::Unreachable { command, detail } => {
                write!(f, "Slurm controller unreachable (`{command}`): {detail}")
            }
            SlurmError::Spawn { command, error } => write!(f, "cannot run `{command}`: {error}"),
            SlurmError::Parse { command, output } => {
                write!(f, "`{command}` printed something unexpected: {output:?}")
            }
            SlurmError::Invalid(message) | SlurmError::Io(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for SlurmError {}

// ---------------------------------------------------------------- job state

/// One Slurm job as squeue reports it. Text fields are terminal-safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlurmJob {
    /// The lease id asked for (the Slurm job id).
    pub id: String,
    /// RUNNING, PENDING, COMPLETING, COMPLETED, CANCELLED, TIMEOUT, FAILED, ...
    pub state: String,
    /// `%L` as Slurm prints it (`4:59`, `1:00:00`, `2-03:04:05`); None when
    /// unlimited, invalid, or the job has ended (squeue then prints a frozen
    /// or meaningless value). For a pending job it is the full time limit.
    pub time_left: Option<String>,
    /// Allocated nodes, or the minimum asked for by a pending job.
    pub nodes: u32,
    /// Why a job waits or ended (`Resources`, `PartitionNodeLimit`, ...);
    /// None for `None`.
    pub reason: Option<String>,
    pub name: String,
    pub partition: String,
    /// Empty until nodes are allocated.
    pub node_list: String,
    /// GPUs per node the job asked for (`--gpus-per-node`, `--gres=gpu:N`);
    /// None when it asked for none per node, or Slurm did not say.
    pub gpus_per_node: Option<u32>,
}

impl SlurmJob {
    /// [`SlurmJob::time_left`] as a duration.
    pub fn time_left_duration(&self) -> Option<Duration> {
        self.time_left.as_deref().and_then(parse_slurm_duration)
    }

    /// PENDING, RUNNING, COMPLETING, ...: the allocation exists or may still.
    pub fn is_active(&self) -> bool {
        state_rank(&self.state) < 3
    }
}

/// What Slurm says about one lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseSlurmState {
    Job(SlurmJob),
    /// Slurm forgot the job (finished longer than `MinJobAge` ago, or never
    /// existed): "Invalid job id specified", or not listed.
    Gone,
}

impl LeaseSlurmState {
    /// The state word to show: the job's state, or `GONE`.
    pub fn label(&self) -> &str {
        match self {
            LeaseSlurmState::Job(job) => &job.state,
            LeaseSlurmState::Gone => "GONE",
        }
    }

    pub fn job(&self) -> Option<&SlurmJob> {
        match self {
            LeaseSlurmState::Job(job) => Some(job),
            LeaseSlurmState::Gone => None,
        }
    }
}

/// True for a plain Slurm job id (digits), the only kind of id a Slurm
/// lease has.
pub fn is_job_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// Lower is more alive; used to pick one line when squeue lists several for
/// one id (array tasks).
fn state_rank(state: &str) -> u8 {
    match state {
        "RUNNING" => 0,
        "COMPLETING" | "CONFIGURING" | "STAGE_OUT" | "RESIZING" | "SIGNALING" | "STOPPED" => 1,
        "PENDING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "SUSPENDED" | "RESV_DEL_HOLD" => 2,
        _ => 3,
    }
}

/// States in which `%L` means nothing (the job is over or ending).
fn time_left_meaningless(state: &str) -> bool {
    state_rank(state) == 3 || matches!(state, "COMPLETING" | "STAGE_OUT")
}

// ---------------------------------------------------------------- parsers

/// Parses `squeue -h -o SQUEUE_FORMAT` output into one state per wanted id.
/// Lines of array tasks (`12_3`, `12_[4-7]`) and heterogeneous components
/// (`12+1`) count for their base id; if several lines map to one id the most
/// alive one wins. Lines that do not parse (cluster headers, noise) are
/// skipped. Wanted ids squeue did not list are [`LeaseSlurmState::Gone`].
pub fn parse_squeue(output: &str, wanted: &[&str]) -> HashMap<String, LeaseSlurmState> {
    let mut found: HashMap<String, SlurmJob> = HashMap::new();
    for line in output.lines() {
        let Some((key, job)) = parse_squeue_line(line, wanted) else { continue };
        match found.get(&key) {
            Some(old) if state_rank(&old.state) <= state_rank(&job.state) => {}
            _ => {
                found.insert(key, job);
            }
        }
    }
    wanted
        .iter()
        .map(|id| {
            let state = found.remove(*id).map_or(LeaseSlurmState::Gone, LeaseSlurmState::Job);
            (id.to_string(), state)
        })
        .collect()
}

fn parse_squeue_line(line: &str, wanted: &[&str]) -> Option<(String, SlurmJob)> {
    let line = line.trim_end_matches(['\r', '\n']);
    let fields: Vec<&str> = line.splitn(SQUEUE_FIELDS, '|').collect();
    let [unique, display, state, left, nodes, reason, partition, node_list, tres, name] = fields[..] else {
        return None;
    };
    let unique = unique.trim();
    let display = display.trim();
    let base = display.split(['_', '+']).next().unwrap_or(display);
    let key = if wanted.contains(&unique) {
        unique
    } else if wanted.contains(&base) {
        base
    } else {
        return None;
    };
    // A state is one upper-case word; anything else is not a squeue line.
    let state = state.trim();
    if state.is_empty() || !state.bytes().all(|b| b.is_ascii_uppercase() || b == b'_') {
        return None;
    }
    let state = state.to_string();
    let time_left = if time_left_meaningless(&state) { None } else { parse_time_left(left) };
    let job = SlurmJob {
        id: key.to_string(),
        time_left,
        nodes: leading_number(nodes.trim()).unwrap_or(0),
        reason: parse_reason(reason),
        name: clean_line(name),
        partition: null_to_empty(partition),
        node_list: null_to_empty(node_list),
        gpus_per_node: parse_gpus_per_node(tres),
        state,
    };
    Some((key.to_string(), job))
}

/// `%L`: None for `UNLIMITED`, `INVALID`, `NOT_SET`, `N/A` and empty;
/// otherwise the text as printed (when it looks like a Slurm duration).
pub fn parse_time_left(text: &str) -> Option<String> {
    let text = text.trim();
    parse_slurm_duration(text).map(|_| clean_line(text))
}

/// A Slurm duration as squeue/scontrol print it: `M:SS`, `MM:SS`,
/// `H:MM:SS`, `D-HH:MM:SS` (and `D-HH`, `D-HH:MM`).
/// None for `UNLIMITED`, `INVALID` and anything else.
pub fn parse_slurm_duration(text: &str) -> Option<Duration> {
    let (days, rest) = match text.split_once('-') {
        Some((d, rest)) => (digits(d)?, rest),
        None => (0, text),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let nums: Vec<u64> = parts.iter().map(|p| digits(p)).collect::<Option<_>>()?;
    let secs = match (text.contains('-'), nums.as_slice()) {
        (false, [m, s]) => m * 60 + s,
        (false, [h, m, s]) => h * 3600 + m * 60 + s,
        (true, [h]) => h * 3600,
        (true, [h, m]) => h * 3600 + m * 60,
        (true, [h, m, s]) => h * 3600 + m * 60 + s,
        _ => return None,
    };
    Some(Duration::from_secs(days * 86_400 + secs))
}

fn digits(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 12 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn leading_number(text: &str) -> Option<u32> {
    let end = text.bytes().position(|b| !b.is_ascii_digit()).unwrap_or(text.len());
    text[..end].parse().ok()
}

/// `%r`: `None`, `(null)` and empty are no reason; parentheses (as `%R`
/// prints them) are removed.
pub fn parse_reason(text: &str) -> Option<String> {
    let text = text.trim();
    let text = text.strip_prefix('(').and_then(|t| t.strip_suffix(')')).unwrap_or(text).trim();
    match text {
        "" | "None" | "(null)" | "null" => None,
        _ => Some(clean_line(text)),
    }
}

fn null_to_empty(text: &str) -> String {
    match text.trim() {
        "(null)" | "N/A" => String::new(),
        other => clean_line(other),
    }
}

/// GPUs per node from a TRES-per-node / gres string: `gres:gpu:2` (Slurm
/// 22.05), `gres/gpu:2` (23.x), `gpu:a100:4`, `gres/gpu=2`,
/// `gres:gpu:4,gres:nic:1`, `gres/gpu:a100:2(IDX:0-1)`. A gpu entry without
/// a count is 1 GPU. None for `N/A`, `(null)`, empty, or no gpu entry.
pub fn parse_gpus_per_node(text: &str) -> Option<u32> {
    let mut total: Option<u32> = None;
    for item in text.trim().split(',') {
        let item = item.split('(').next().unwrap_or(item).trim();
        let item = item.strip_prefix("gres:").or_else(|| item.strip_prefix("gres/")).unwrap_or(item);
        let mut parts = item.split([':', '=']);
        if parts.next() != Some("gpu") {
            continue;
        }
        // No count (`gpu`, or a type alone as in `gpu:a100`) is one GPU.
        let count = parts.next_back().and_then(|last| last.parse::<u32>().ok()).unwrap_or(1);
        total = Some(total.unwrap_or(0).saturating_add(count));
    }
    total
}

/// One line of `scontrol show -o job ID`, split at each ` Key=`: a word
/// starts a new pair only when it looks like `Key=` (letters, digits and
/// `_:/` before the `=`); other words belong to the previous value, so
/// values keep spaces (`JobName=a b`) and `=` (`TRES=cpu=1,node=1`).
/// Values are terminal-safe. Keys keep their order.
pub fn parse_scontrol_line(line: &str) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for word in line.trim_end_matches(['\r', '\n']).split(' ') {
        if let Some((key, value)) = word.split_once('=').filter(|(k, _)| is_scontrol_key(k)) {
            pairs.push((key.to_string(), value.to_string()));
        } else if let Some((_, value)) = pairs.last_mut() {
            value.push(' ');
            value.push_str(word);
        }
    }
    for (_, value) in &mut pairs {
        *value = clean_line(value.trim_end());
    }
    pairs
}

fn is_scontrol_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'/' | b'.'))
}

/// The job id `sbatch --parsable` printed: `12345` or `12345;cluster` on
/// the last non-empty line.
pub fn parse_sbatch_parsable(output: &str) -> Option<String> {
    let line = output.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let id = line.split(';').next()?.trim();
    is_job_id(id).then(|| id.to_string())
}

// ---------------------------------------------------------------- the CLI

/// How to run the Slurm CLI. `bin_dir: None` finds the programs on PATH;
/// `Some(dir)` runs `dir/<program>` only (tests point it at fakes or at an
/// empty directory, so they never touch the process environment).
#[derive(Debug, Clone)]
pub struct SlurmCli {
    pub bin_dir: Option<PathBuf>,
    pub timeout: Duration,
}

impl Default for SlurmCli {
    fn default() -> Self {
        SlurmCli { bin_dir: None, timeout: DEFAULT_TIMEOUT }
    }
}

/// What a finished command printed.
#[derive(Debug)]
struct Output {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl SlurmCli {
    pub fn with_bin_dir(dir: impl Into<PathBuf>) -> SlurmCli {
        SlurmCli { bin_dir: Some(dir.into()), ..SlurmCli::default() }
    }

    fn program_path(&self, program: &str) -> PathBuf {
        match &self.bin_dir {
            Some(dir) => dir.join(program),
            None => PathBuf::from(program),
        }
    }

    /// Runs `program args...` with stdin closed, in its own process group,
    /// and waits at most `self.timeout`; on timeout the whole group is
    /// killed (so a wrapper script's children die too).
    fn run(&self, program: &str, args: &[OsString]) -> Result<Output, SlurmError> {
        let command_text = display_command(program, args);
        let mut command = Command::new(self.program_path(program));
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env_remove("SQUEUE_FORMAT")
            .env_remove("SQUEUE_FORMAT2")
            .env_remove("SLURM_TIME_FORMAT")
            .process_group(0);
        let mut child = spawn_retrying(&mut command).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SlurmError::NotInstalled { program: program.to_string() },
            _ => SlurmError::Spawn { command: command_text.clone(), error: e.to_string() },
        })?;
        let _registered = ChildGroup::register(child.id() as i32);
        let started = Instant::now();
        let deadline = started + self.timeout;
        let (sender, receiver) = mpsc::channel::<(bool, Vec<u8>)>();
        for (is_stdout, pipe) in [
            (true, child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
            (false, child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>)),
        ] {
            let sender = sender.clone();
            if let Some(mut pipe) = pipe {
                std::thread::spawn(move || {
                    let mut bytes = Vec::new();
                    let _ = pipe.read_to_end(&mut bytes);
                    let _ = sender.send((is_stdout, bytes));
                });
            }
        }
        drop(sender);
        let pgid = child.id() as i32;
        let kill_group = || {
            // SAFETY: kill(2) with a negative pid signals the process group
            // we created for this child (process_group(0) above); its id
            // cannot be reused while the leader is unreaped or any member
            // lives, and ESRCH otherwise is harmless.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        };
        let timeout = |child: &mut std::process::Child| {
            kill_group();
            let _ = child.kill();
            let _ = child.wait();
            SlurmError::Timeout { command: command_text.clone(), after: self.timeout }
        };
        let mut pause = Duration::from_millis(1);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= deadline => return Err(timeout(&mut child)),
                Ok(None) => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(e) => {
                    kill_group();
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(SlurmError::Spawn { command: command_text, error: e.to_string() });
                }
            }
        };
        // The child is done; its pipes close unless something it started
        // still holds them: give that the rest of the time, then kill it.
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        for _ in 0..2 {
            let wait = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(50));
            match receiver.recv_timeout(wait) {
                Ok((true, bytes)) => stdout = bytes,
                Ok((false, bytes)) => stderr = bytes,
                Err(_) => {
                    kill_group();
                    return Err(SlurmError::Timeout { command: command_text, after: self.timeout });
                }
            }
        }
        Ok(Output {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        })
    }

    fn failed(program: &str, args: &[OsString], output: &Output) -> SlurmError {
        let command = display_command(program, args);
        let stderr = short_message(&output.stderr);
        if stderr.contains("Unable to contact slurm controller") {
            return SlurmError::Unreachable { command, detail: stderr };
        }
        SlurmError::Failed { command, status: output.status.code(), stderr }
    }

    /// [`SlurmCli::run`], but a timeout is reported as
    /// [`SlurmError::Unreachable`] when `scontrol ping` (fast even then)
    /// says the controller is down.
    fn run_diagnosed(&self, program: &str, args: &[OsString]) -> Result<Output, SlurmError> {
        match self.run(program, args) {
            Err(SlurmError::Timeout { command, after }) => match self.ping() {
                Err(SlurmError::Unreachable { detail, .. }) => Err(SlurmError::Unreachable {
                    command,
                    detail: format!("no answer within {}s; {detail}", after.as_secs_f32()),
                }),
                _ => Err(SlurmError::Timeout { command, after }),
            },
            other => other,
        }
    }

    /// The Slurm state of each lease, with ONE `squeue -h -t all -j
    /// id1,id2,...` call (ids that are not Slurm job ids, like
    /// `local:host`, are left out of the call and of the result). Ids squeue
    /// does not list, or calls it "Invalid job id", are `Gone`. For running
    /// or pending jobs whose GPUs-per-node squeue left blank, up to
    /// [`MAX_SCONTROL_PER_QUERY`] `scontrol show job` calls fill it in.
    pub fn query_leases(&self, ids: &[String]) -> Result<HashMap<String, LeaseSlurmState>, SlurmError> {
        let mut wanted: Vec<&str> = ids.iter().map(String::as_str).filter(|id| is_job_id(id)).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut states = HashMap::new();
        let mut blank_gres = Vec::new();
        for chunk in wanted.chunks(SQUEUE_IDS_PER_CALL) {
            let (chunk_states, chunk_blank) = self.squeue_chunk(chunk)?;
            states.extend(chunk_states);
            blank_gres.extend(chunk_blank);
        }
        for id in blank_gres.into_iter().take(MAX_SCONTROL_PER_QUERY) {
            if let Ok(Some(fields)) = self.scontrol_job(&id) {
                let gpus = fields.get("TresPerNode").and_then(|t| parse_gpus_per_node(t));
                if let Some(LeaseSlurmState::Job(job)) = states.get_mut(&id) {
                    job.gpus_per_node = gpus;
                }
            }
        }
        Ok(states)
    }

    /// One squeue call; also returns the ids of active jobs whose `%b` was
    /// blank (unknown, as opposed to `N/A`).
    #[allow(clippy::type_complexity)]
    fn squeue_chunk(
        &self,
        wanted: &[&str],
    ) -> Result<(HashMap<String, LeaseSlurmState>, Vec<String>), SlurmError> {
        if wanted.is_empty() {
            return Ok((HashMap::new(), Vec::new()));
        }
        let args: Vec<OsString> = ["-h", "-t", "all", "-j", &wanted.join(","), "-o", SQUEUE_FORMAT]
            .iter()
            .map(OsString::from)
            .collect();
        let output = self.run_diagnosed("squeue", &args)?;
        if !output.status.success() {
            if !is_invalid_job_id(&output.stderr) {
                return Err(Self::failed("squeue", &args, &output));
            }
            // Slurm 22.05 says this only for a single unknown id. Should a
            // version say it for a list, ask for each id alone (bounded by
            // the number of leases).
            if wanted.len() == 1 {
                return Ok((parse_squeue("", wanted), Vec::new()));
            }
            let mut states = HashMap::new();
            let mut blank = Vec::new();
            for id in wanted {
                let (one, one_blank) = self.squeue_chunk(&[id])?;
                states.extend(one);
                blank.extend(one_blank);
            }
            return Ok((states, blank));
        }
        let blank: Vec<String> = output
            .stdout
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.splitn(SQUEUE_FIELDS, '|').collect();
                let active = fields.get(2).is_some_and(|s| state_rank(s.trim()) < 3);
                let blank = fields.get(8).is_some_and(|g| g.trim().is_empty());
                (fields.len() == SQUEUE_FIELDS && active && blank && wanted.contains(&fields[0].trim()))
                    .then(|| fields[0].trim().to_string())
            })
            .collect();
        Ok((parse_squeue(&output.stdout, wanted), blank))
    }

    /// `scontrol show -o job ID` as key/value pairs; `Ok(None)` when Slurm
    /// no longer knows the job.
    pub fn scontrol_job(&self, id: &str) -> Result<Option<BTreeMap<String, String>>, SlurmError> {
        if !is_job_id(id) {
            return Err(not_a_job_id(id));
        }
        let args: Vec<OsString> = ["show", "-o", "job", id].iter().map(OsString::from).collect();
        let output = self.run("scontrol", &args)?;
        if !output.status.success() {
            return if is_invalid_job_id(&output.stderr) {
                Ok(None)
            } else {
                Err(Self::failed("scontrol", &args, &output))
            };
        }
        let line = output.stdout.lines().find(|l| l.starts_with("JobId=")).unwrap_or_default();
        if line.is_empty() {
            return Ok(None);
        }
        Ok(Some(parse_scontrol_line(line).into_iter().collect()))
    }

    /// `scontrol ping` (answers at once even when the controller is down):
    /// Ok when a controller is UP, [`SlurmError::Unreachable`] with its
    /// first line (`Slurmctld(primary) at vm is DOWN`) when none is.
    pub fn ping(&self) -> Result<(), SlurmError> {
        let args = [OsString::from("ping")];
        let output = self.run("scontrol", &args)?;
        if output.stdout.contains("is UP") {
            return Ok(());
        }
        let first = output.stdout.lines().chain(output.stderr.lines()).find(|l| !l.trim().is_empty());
        match first {
            Some(line) if output.stdout.contains(" is DOWN") || !output.status.success() => {
                Err(SlurmError::Unreachable { command: "scontrol ping".into(), detail: short_message(line) })
            }
            _ => Err(Self::failed("scontrol", &args, &output)),
        }
    }

    /// Submits the keeper: writes it to `<archive>/keepers/`, runs `sbatch
    /// --parsable`, then records the lease in `runs/<id>/meta/lease.json`
    /// and `index.json`. Returns the lease (job) id.
    pub fn create_lease(
        &self,
        req: &LeaseRequest,
        roots: &Roots,
        leaseq_bin: &Path,
    ) -> Result<String, SlurmError> {
        let script_path = keeper_path(roots, SystemTime::now());
        self.create_lease_at(req, roots, leaseq_bin, &script_path)
    }

    /// [`SlurmCli::create_lease`] with the keeper script path chosen by the
    /// caller (the one its preview showed).
    pub fn create_lease_at(
        &self,
        req: &LeaseRequest,
        roots: &Roots,
        leaseq_bin: &Path,
        script_path: &Path,
    ) -> Result<String, SlurmError> {
        req.validate().map_err(SlurmError::Invalid)?;
        for (what, path) in
            [("leaseq binary", leaseq_bin), ("keeper script", script_path), ("archive", &roots.archive)]
        {
            if path.to_str().is_none() {
                return Err(SlurmError::Invalid(format!(
                    "the {what} path {} is not UTF-8; cannot write it into a script",
                    path.display()
                )));
            }
        }
        // Refuse before submitting if the registry cannot be updated later.
        let registry_path = roots.registry_path();
        read_registry(&registry_path)
            .map_err(|e| SlurmError::Io(format!("cannot read the lease registry: {e}")))?;

        let script = req.keeper_script_for(leaseq_bin, Some(&roots.archive));
        write_atomic(script_path, script.as_bytes()).and_then(|()| set_mode(script_path, 0o755)).map_err(
            |e| SlurmError::Io(format!("cannot write keeper script {}: {e}", script_path.display())),
        )?;

        let submit = req.submit_args(script_path);
        let args: Vec<OsString> =
            submit.iter().map(OsString::from).chain([script_path.as_os_str().to_owned()]).collect();
        let output = self.run_diagnosed("sbatch", &args)?;
        if !output.status.success() {
            return Err(Self::failed("sbatch", &args, &output));
        }
        let id = parse_sbatch_parsable(&output.stdout).ok_or_else(|| SlurmError::Parse {
            command: display_command("sbatch", &args),
            output: clean_line(output.stdout.trim()),
        })?;

        let created_at = unix_now();
        let name = req.job_name();
        let meta = LeaseMeta::Slurm {
            lease_id: id.clone(),
            name: name.clone(),
            created_at,
            slurm: SlurmLeaseMeta { sbatch_args: submit.into_iter().filter(|a| a != "--parsable").collect() },
            mode: Some("exclusive-per-node".to_string()),
        };
        let recorded = (|| -> Result<(), String> {
            let dir = roots.run_dir(&id).ok_or_else(|| format!("{id:?} is not a lease id"))?;
            let meta_path = RunDir(dir).meta();
            let mut bytes = serde_json::to_vec_pretty(&meta).map_err(|e| e.to_string())?;
            bytes.push(b'\n');
            write_atomic(&meta_path, &bytes).map_err(|e| format!("{}: {e}", meta_path.display()))?;
            let mut registry = read_registry(&registry_path)?;
            registry.leases.insert(id.clone(), LeaseEntry { created_at: Some(created_at), name });
            write_registry(&registry_path, &registry).map_err(|e| format!("{}: {e}", registry_path.display()))
        })();
        recorded.map_err(|e| {
            SlurmError::Io(format!(
                "Slurm job {id} was submitted, but recording the lease failed: {e} \
                 (release it with scancel {id}, or fix the problem: its runners will still create runs/{id})"
            ))
        })?;
        Ok(id)
    }

    /// `scancel <id>`. Refuses ids that are not Slurm job ids (`local:...`).
    /// A job that already ended or that Slurm forgot is released already:
    /// Ok.
    pub fn release_lease(&self, id: &str) -> Result<(), SlurmError> {
        let id = id.trim();
        if !is_job_id(id) {
            return Err(not_a_job_id(id));
        }
        let args = [OsString::from(id)];
        let output = self.run_diagnosed("scancel", &args)?;
        if output.status.success()
            || is_invalid_job_id(&output.stderr)
            || output.stderr.contains("already completing or completed")
        {
            Ok(())
        } else {
            Err(Self::failed("scancel", &args, &output))
        }
    }
}

/// The process groups of the Slurm commands running now, so that none
/// outlives the dashboard: [`kill_running_commands`] ends them on exit.
/// `None` once the dashboard is exiting: a command started after that is
/// killed at once.
static RUNNING_GROUPS: std::sync::Mutex<Option<Vec<i32>>> = std::sync::Mutex::new(Some(Vec::new()));

/// A running command's group, listed while it runs.
struct ChildGroup(i32);

impl ChildGroup {
    fn register(pgid: i32) -> ChildGroup {
        match RUNNING_GROUPS.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(groups) => groups.push(pgid),
            // SAFETY: kill(2) on the group just created for this command.
            None => unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            },
        }
        ChildGroup(pgid)
    }
}

impl Drop for ChildGroup {
    fn drop(&mut self) {
        if let Some(groups) = RUNNING_GROUPS.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            groups.retain(|&g| g != self.0);
        }
    }
}

/// Kills every Slurm command still running (their whole process groups):
/// the dashboard calls it as it exits, so a hung `squeue` or `scontrol` is
/// not left behind, re-parented to init.
pub fn kill_running_commands() {
    let groups = RUNNING_GROUPS.lock().unwrap_or_else(|e| e.into_inner()).take().unwrap_or_default();
    for pgid in groups {
        // SAFETY: kill(2) on a process group this process created for a
        // command (process_group(0)) that has not been reaped yet (its
        // entry is removed when its runner returns).
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// [`SlurmCli::query_leases`] with the programs found on PATH.
pub fn query_leases(ids: &[String]) -> Result<HashMap<String, LeaseSlurmState>, SlurmError> {
    SlurmCli::default().query_leases(ids)
}

/// [`SlurmCli::create_lease`] with the programs found on PATH.
pub fn create_lease(req: &LeaseRequest, roots: &Roots, leaseq_bin: &Path) -> Result<String, SlurmError> {
    SlurmCli::default().create_lease(req, roots, leaseq_bin)
}

/// [`SlurmCli::release_lease`] with the programs found on PATH.
pub fn release_lease(id: &str) -> Result<(), SlurmError> {
    SlurmCli::default().release_lease(id)
}

/// The runner a lease's keeper starts on each node: `LEASEQ_RUNNER` when
/// set (an override, e.g. a build on a shared path), else this binary.
pub fn runner_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("LEASEQ_RUNNER").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    std::env::current_exe()
        .map_err(|e| format!("cannot tell where this leaseq binary is ({e}); set LEASEQ_RUNNER"))
}

fn not_a_job_id(id: &str) -> SlurmError {
    let shown = clean_line(id);
    if id.starts_with("local:") {
        SlurmError::Invalid(format!(
            "{shown} is a local lease, not a Slurm job: only Slurm leases can be released (nothing to scancel)"
        ))
    } else {
        SlurmError::Invalid(format!("'{shown}' is not a Slurm job id (expected digits, e.g. 12345)"))
    }
}

fn is_invalid_job_id(stderr: &str) -> bool {
    stderr.contains("Invalid job id specified")
}

/// Retries a spawn that failed with ETXTBSY: an executable just written
/// (a fake in tests, the keeper never is) can still be open for writing in a
/// child another thread forked at that moment.
fn spawn_retrying(command: &mut Command) -> std::io::Result<std::process::Child> {
    let mut attempt = 0;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 20 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(5 * attempt));
            }
            other => return other,
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

/// Stderr as one terminal-safe line, at most ~400 characters.
fn short_message(text: &str) -> String {
    let cleaned = clean_line(text.trim());
    let cleaned = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    match cleaned.char_indices().nth(400) {
        Some((cut, _)) => format!("{}…", &cleaned[..cut]),
        None => cleaned,
    }
}

fn display_command(program: &str, args: &[OsString]) -> String {
    let mut text = program.to_string();
    for arg in args {
        text.push(' ');
        text.push_str(&shell_quote(&arg.to_string_lossy()));
    }
    clean_line(&text)
}

/// Quotes a word for a POSIX shell: as it is when it is only safe
/// characters, else in single quotes (a `'` becomes `'\''`).
pub fn shell_quote(word: &str) -> String {
    let safe =
        !word.is_empty() && word.bytes().all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
    if safe {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

// ---------------------------------------------------------------- the form

/// The "create Slurm lease" form (TUI screen 4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// The job name; None or empty for none.
    pub name: Option<String>,
    pub nodes: u32,
    /// A Slurm time limit: minutes, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`,
    /// `D-HH:MM:SS`.
    pub time: String,
    pub partition: Option<String>,
    pub qos: Option<String>,
    pub account: Option<String>,
    pub constraint: Option<String>,
    pub reservation: Option<String>,
    /// 0 = no GPUs asked for.
    pub gpus_per_node: u32,
    /// More sbatch arguments, one per entry (`--mem=100G`, `--exclusive`).
    pub extra_args: Vec<String>,
}

impl Default for LeaseRequest {
    fn default() -> Self {
        LeaseRequest {
            name: None,
            nodes: 1,
            time: "1:00:00".to_string(),
            partition: None,
            qos: None,
            account: None,
            constraint: None,
            reservation: None,
            gpus_per_node: 0,
            extra_args: Vec::new(),
        }
    }
}

/// sbatch options the form sets, or that would break the lease (a job array
/// has no single job id, `--wrap` replaces the keeper, `--test-only` and
/// `--parsable` change what sbatch prints). Long name, short letter, and the
/// form field to use instead.
const RESERVED_OPTIONS: &[(&str, Option<char>, &str)] = &[
    ("--nodes", Some('N'), "use the nodes field"),
    ("--time", Some('t'), "use the time field"),
    ("--job-name", Some('J'), "use the name field"),
    ("--partition", Some('p'), "use the partition field"),
    ("--qos", Some('q'), "use the qos field"),
    ("--account", Some('A'), "use the account field"),
    ("--constraint", Some('C'), "use the constraint field"),
    ("--reservation", None, "use the reservation field"),
    ("--gpus-per-node", None, "use the gpus-per-node field"),
    ("--array", Some('a'), "a lease is one job, not an array"),
    ("--wrap", None, "the keeper script is the job"),
    ("--parsable", None, "leaseq adds it itself"),
    ("--test-only", None, "it would not submit anything"),
];

fn non_empty(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl LeaseRequest {
    fn job_name(&self) -> Option<String> {
        non_empty(&self.name).map(str::to_string)
    }

    fn option_fields(&self) -> [(&'static str, Option<&str>); 5] {
        [
            ("partition", non_empty(&self.partition)),
            ("qos", non_empty(&self.qos)),
            ("account", non_empty(&self.account)),
            ("constraint", non_empty(&self.constraint)),
            ("reservation", non_empty(&self.reservation)),
        ]
    }

    /// Checks the form; the message says which field is wrong and how.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(name) = non_empty(&self.name) {
            if name.chars().any(char::is_control) {
                return Err("name: control characters are not allowed".to_string());
            }
            if name.chars().count() > 200 {
                return Err("name: at most 200 characters".to_string());
            }
        }
        if self.nodes == 0 {
            return Err("nodes: at least 1".to_string());
        }
        if self.nodes > 100_000 {
            return Err(format!("nodes: {} is more than any cluster has", self.nodes));
        }
        let time = self.time.trim();
        if time.is_empty() {
            return Err("time: required (e.g. 12:00:00, 90, 2-00:00:00)".to_string());
        }
        match parse_time_limit(time) {
            Some(0) => return Err("time: must be more than zero".to_string()),
            Some(_) => {}
            None => {
                return Err(format!(
                "time: '{}' is not a Slurm time; use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS",
                clean_line(time)
            ))
            }
        }
        for (field, value) in self.option_fields() {
            if let Some(value) = value {
                if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
                    return Err(format!("{field}: spaces and control characters are not allowed"));
                }
                if value.starts_with('-') {
                    return Err(format!("{field}: must not start with '-'"));
                }
            }
        }
        if self.gpus_per_node > 1024 {
            return Err(format!("gpus-per-node: {} is more than any node has", self.gpus_per_node));
        }
        self.validate_extra_args()
    }

    fn validate_extra_args(&self) -> Result<(), String> {
        let mut expects_value = false;
        for (i, arg) in self.extra_args.iter().enumerate() {
            let n = i + 1;
            if arg.trim().is_empty() {
                return Err(format!("extra argument {n} is empty (remove it)"));
            }
            if arg.chars().any(char::is_control) {
                return Err(format!("extra argument {n}: control characters are not allowed"));
            }
            if !arg.starts_with('-') {
                if !expects_value {
                    return Err(format!(
                        "extra argument {n} ('{}') is not an option: each entry is one sbatch argument \
                         such as --mem=100G",
                        clean_line(arg)
                    ));
                }
                expects_value = false;
                continue;
            }
            let option = arg.split('=').next().unwrap_or(arg);
            if option.chars().any(char::is_whitespace) {
                return Err(format!(
                    "extra argument {n} ('{}'): write the value after '=' (--mem=100G) or in its own entry",
                    clean_line(arg)
                ));
            }
            for (long, short, instead) in RESERVED_OPTIONS {
                let short_hit =
                    short.is_some_and(|c| !arg.starts_with("--") && arg.chars().nth(1) == Some(c));
                if option == *long || short_hit {
                    return Err(format!(
                        "extra argument {n} ({}): not allowed here, {instead}",
                        clean_line(arg)
                    ));
                }
            }
            // `--opt value` / `-o value`: the next entry may be the value.
            expects_value = !arg.contains('=') && (arg.starts_with("--") || arg.chars().count() == 2);
        }
        Ok(())
    }

    /// The sbatch options for this request, in a fixed order, then the
    /// extra arguments as given: `--nodes=4 --time=12:00:00
    /// [--job-name=..] [--gpus-per-node=N] [--partition=..] [--qos=..]
    /// [--account=..] [--constraint=..] [--reservation=..] extra...`.
    pub fn sbatch_args(&self) -> Vec<String> {
        let mut args = vec![format!("--nodes={}", self.nodes), format!("--time={}", self.time.trim())];
        if let Some(name) = self.job_name() {
            args.push(format!("--job-name={name}"));
        }
        if self.gpus_per_node > 0 {
            args.push(format!("--gpus-per-node={}", self.gpus_per_node));
        }
        for (field, value) in self.option_fields() {
            if let Some(value) = value {
                args.push(format!("--{field}={value}"));
            }
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// Everything between `sbatch` and the script: `--parsable`,
    /// [`LeaseRequest::sbatch_args`], and `--output=<keepers>/<script
    /// stem>-%j.out` unless the extra arguments set the output.
    pub fn submit_args(&self, script_path: &Path) -> Vec<String> {
        let mut args = vec!["--parsable".to_string()];
        args.extend(self.sbatch_args());
        let sets_output = self
            .extra_args
            .iter()
            .any(|a| a == "-o" || a.starts_with("--output") || (a.starts_with("-o") && !a.starts_with("--")));
        if !sets_output {
            args.push(format!("--output={}", keeper_output_pattern(script_path)));
        }
        args
    }

    /// The exact sbatch command line, shell-quoted, for the form's preview
    /// pane (terminal-safe even for a form that does not validate yet).
    pub fn preview(&self, script_path: &Path) -> String {
        let mut words = vec!["sbatch".to_string()];
        words.extend(self.submit_args(script_path).iter().map(|a| shell_quote(a)));
        words.push(shell_quote(&script_path.to_string_lossy()));
        clean_line(&words.join(" "))
    }

    /// The keeper script: starts one `leaseq run` per allocated node and
    /// holds the allocation until they exit or the lease is released. The
    /// sbatch options are on sbatch's command line, not in `#SBATCH` lines.
    pub fn keeper_script(&self, leaseq_bin: &Path) -> String {
        self.keeper_script_for(leaseq_bin, None)
    }

    /// [`LeaseRequest::keeper_script`] that also pins `LEASEQ_HOME`, so the
    /// runners write where this archive is even if sbatch's environment
    /// export is restricted.
    pub fn keeper_script_for(&self, leaseq_bin: &Path, archive: Option<&Path>) -> String {
        let bin = shell_quote(&leaseq_bin.to_string_lossy());
        let home = archive
            .map(|a| format!("export LEASEQ_HOME={}\n", shell_quote(&a.to_string_lossy())))
            .unwrap_or_default();
        let gpus = if self.gpus_per_node > 0 {
            format!(" --gpus-per-node={}", self.gpus_per_node)
        } else {
            String::new()
        };
        format!(
            r#"#!/bin/bash
# leaseq keeper (generated by leaseq {version}). Submitted with `sbatch --parsable <options>
# <this file>`: the options are on sbatch's command line. It starts one runner per allocated
# node and holds the allocation until the runners exit or the lease is released
# (scancel <job id>, or `x` in the TUI).
set -u
{home}LEASEQ_BIN={bin}
nodes=${{SLURM_JOB_NUM_NODES:-1}}
echo "leaseq keeper: job ${{SLURM_JOB_ID:-?}} on ${{SLURM_JOB_NODELIST:-?}} ($nodes nodes), $(date -u +%Y-%m-%dT%H:%M:%SZ)"
# One task per node. The node name is resolved by each task on its own node
# (`srun <leaseq> run --lease $SLURM_JOB_ID --node $(hostname)`), hence bash -c.
srun --nodes="$nodes" --ntasks="$nodes" --ntasks-per-node=1{gpus} --kill-on-bad-exit=0 \
    /bin/bash -c 'exec "$0" run --lease "$SLURM_JOB_ID" --node "$(hostname)"' "$LEASEQ_BIN" &
wait "$!"
status=$?
echo "leaseq keeper: runners exited with status $status, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
exit "$status"
"#,
            version = env!("CARGO_PKG_VERSION"),
        )
    }
}

/// A Slurm time limit in seconds: `M`, `M:S`, `H:M:S`, `D-H`, `D-H:M`,
/// `D-H:M:S`. `UNLIMITED`/`INFINITE` are accepted as `u64::MAX`.
pub fn parse_time_limit(text: &str) -> Option<u64> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("unlimited") || text.eq_ignore_ascii_case("infinite") {
        return Some(u64::MAX);
    }
    if !text.contains('-') && !text.contains(':') {
        return digits(text).map(|m| m * 60);
    }
    parse_slurm_duration(text).map(|d| d.as_secs())
}

/// Where a keeper script submitted at `now` is written:
/// `<archive>/keepers/keeper-YYYYMMDD-HHMMSS-<4 hex>.sh` (UTC).
pub fn keeper_path(roots: &Roots, now: SystemTime) -> PathBuf {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rest = secs % 86_400;
    let name = format!(
        "keeper-{y:04}{mo:02}{d:02}-{:02}{:02}{:02}-{:04x}.sh",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        fastrand::u16(..)
    );
    roots.archive.join("keepers").join(name)
}

/// sbatch's `--output` for a keeper: beside the script, `-%j.out` for the
/// job id; `%` in the path itself is escaped as `%%`.
fn keeper_output_pattern(script_path: &Path) -> String {
    let stem = script_path.with_extension("");
    format!("{}-%j.out", stem.to_string_lossy().replace('%', "%%"))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

// ---------------------------------------------------------------- rate limiting

/// Fastest and slowest regular Slurm refresh (`ui.slurm_refresh_s` is
/// clamped to this range).
pub const MIN_REFRESH: Duration = Duration::from_secs(10);
pub const MAX_REFRESH: Duration = Duration::from_secs(300);
/// "Refresh now" starts at most one query per this long.
pub const FORCE_MIN_GAP: Duration = Duration::from_secs(2);
/// Back-off after errors doubles the interval up to this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// A query that has not reported back after this long no longer blocks new
/// ones (the CLI's own timeout is far shorter).
const IN_FLIGHT_LIMIT: Duration = Duration::from_secs(120);

/// When to ask Slurm. Pure logic: the caller reports what it does.
///
/// ```text
/// if poller.due(now) { poller.started(now); spawn query; }
/// ... query ends ... poller.finished(Instant::now(), result.is_ok());
/// key `r`:          poller.refresh_now();
/// ```
/// Regular queries run every `ui.slurm_refresh_s` (clamped to 10-300 s)
/// after the previous one finished; after N failures in a row the interval
/// is doubled N times (up to [`MAX_BACKOFF`]). "Refresh now" makes a query
/// due as soon as [`FORCE_MIN_GAP`] has passed since the last one started.
/// Never two queries at once.
#[derive(Debug, Clone)]
pub struct SlurmPoller {
    interval: Duration,
    last_start: Option<Instant>,
    last_finish: Option<Instant>,
    in_flight: bool,
    forced: bool,
    failures: u32,
}

impl SlurmPoller {
    pub fn new(slurm_refresh_s: u64) -> SlurmPoller {
        let interval = Duration::from_secs(slurm_refresh_s).clamp(MIN_REFRESH, MAX_REFRESH);
        SlurmPoller {
            interval,
            last_start: None,
            last_finish: None,
            in_flight: false,
            forced: false,
            failures: 0,
        }
    }

    pub fn from_config(config: &UiConfig) -> SlurmPoller {
        SlurmPoller::new(config.slurm_refresh_s)
    }

    /// The regular interval (after clamping).
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Failed queries in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// The current wait between regular queries: the interval, doubled per
    /// failure in a row, at most [`MAX_BACKOFF`] (or the interval if that
    /// is longer).
    pub fn delay(&self) -> Duration {
        let factor = 1u32 << self.failures.min(16);
        self.interval.saturating_mul(factor).min(MAX_BACKOFF.max(self.interval))
    }

    fn in_flight_at(&self, now: Instant) -> bool {
        self.in_flight && self.last_start.is_some_and(|s| now.saturating_duration_since(s) < IN_FLIGHT_LIMIT)
    }

    /// When the next query becomes due (None: now — nothing was asked yet).
    pub fn next_due(&self) -> Option<Instant> {
        let last_start = self.last_start?;
        let regular = self.last_finish.unwrap_or(last_start).max(last_start) + self.delay();
        if self.forced {
            Some(regular.min(last_start + FORCE_MIN_GAP))
        } else {
            Some(regular)
        }
    }

    /// Should a query start now?
    pub fn due(&self, now: Instant) -> bool {
        !self.in_flight_at(now) && self.next_due().is_none_or(|at| now >= at)
    }

    /// The user asked for a refresh: it becomes due once [`FORCE_MIN_GAP`]
    /// has passed since the last query started (at once if it has).
    pub fn refresh_now(&mut self) {
        self.forced = true;
    }

    /// A query was started at `now`.
    pub fn started(&mut self, now: Instant) {
        self.last_start = Some(now);
        self.in_flight = true;
        self.forced = false;
    }

    /// The query started last finished at `now`, well or not.
    pub fn finished(&mut self, now: Instant, ok: bool) {
        self.in_flight = false;
        self.last_finish = Some(now);
        self.failures = if ok { 0 } else { self.failures.saturating_add(1) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paths::Env;

    // ------------------------------------------------------------ recorded output

    /// Real `squeue -h -t all -j ... -o SQUEUE_FORMAT` lines from the local
    /// Slurm 22.05.8 (SLURM-LOCAL.md and our own runs): a completed smoke
    /// job, a job asking for 2 nodes on a 1-node cluster, a running job
    /// whose name contains `|` and a space, a running GPU job, an array.
    const RECORDED: &str = "\
1|1|COMPLETED|1:00|1|None|debug|vm|N/A|start-slurm-smoke
3|3|PENDING|1:00:00|2|PartitionNodeLimit|debug||N/A|wrap
2|2|RUNNING|4:59|1|None|debug|vm|N/A|a|b c
9|9|RUNNING|2:58|1|None|debug|vm|gres:gpu:1|g
10|10|PENDING|3:00|1|Resources|debug||gres:gpu:2|wrap
";

    const ARRAY: &str = "\
4|4_2|PENDING|2:00|1|Resources|debug||N/A|wrap
6|4_1|RUNNING|2:00|1|None|debug|vm|N/A|wrap
5|4_0|RUNNING|2:00|1|None|debug|vm|N/A|wrap
";

    const CANCELLED: &str = "\
2|2|CANCELLED|4:49|1|None|debug|vm|N/A|a|b c
3|3|CANCELLED|1:00:00|2|PartitionNodeLimit|debug||N/A|wrap
7|7|COMPLETED|UNLIMITED|1|None|debug|vm|N/A|wrap
12|12|COMPLETING|364-23:59:59|1|None|debug|vm|N/A|wrap
";

    /// `scontrol show -o job 2` for the running job above.
    const SCONTROL: &str = "JobId=2 JobName=a|b c UserId=root(0) GroupId=root(0) MCS_label=N/A Priority=4294901758 Nice=0 Account=(null) QOS=(null) JobState=RUNNING Reason=None Dependency=(null) Requeue=1 Restarts=0 BatchFlag=1 Reboot=0 ExitCode=0:0 RunTime=00:00:01 TimeLimit=00:05:00 TimeMin=N/A SubmitTime=2026-11-26T04:22:33 EligibleTime=2026-11-26T04:22:33 AccrueTime=2026-11-26T04:22:33 StartTime=2026-11-26T04:22:34 EndTime=2026-11-26T04:27:34 Deadline=N/A SuspendTime=None SecsPreSuspend=0 LastSchedEval=2026-11-26T04:22:34 Scheduler=Main Partition=debug AllocNode:Sid=localhost:23364 ReqNodeList=(null) ExcNodeList=(null) NodeList=vm BatchHost=vm NumNodes=1 NumCPUs=1 NumTasks=1 CPUs/Task=1 ReqB:S:C:T=0:0:*:* TRES=cpu=1,node=1,billing=1 Socks/Node=* NtasksPerN:B:S:C=0:0:*:* CoreSpec=* MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0 Features=(null) DelayBoot=00:00:00 OverSubscribe=OK Contiguous=0 Licenses=(null) Network=(null) Command=(null) WorkDir=/tmp StdErr=/tmp/slurm-2.out StdIn=/dev/null StdOut=/tmp/slurm-2.out Power= \n";

    fn job(states: &HashMap<String, LeaseSlurmState>, id: &str) -> SlurmJob {
        match states.get(id) {
            Some(LeaseSlurmState::Job(job)) => job.clone(),
            other => panic!("{id}: {other:?}"),
        }
    }

    #[test]
    fn parses_recorded_squeue_lines() {
        let states = parse_squeue(RECORDED, &["1", "2", "3", "9", "10", "77"]);
        assert_eq!(states.len(), 6);
        let running = job(&states, "2");
        assert_eq!(
            running,
            SlurmJob {
                id: "2".into(),
                state: "RUNNING".into(),
                time_left: Some("4:59".into()),
                nodes: 1,
                reason: None,
                name: "a|b c".into(),
                partition: "debug".into(),
                node_list: "vm".into(),
                gpus_per_node: None,
            }
        );
        assert_eq!(running.time_left_duration(), Some(Duration::from_secs(299)));
        let pending = job(&states, "3");
        assert_eq!(pending.state, "PENDING");
        assert_eq!(pending.reason.as_deref(), Some("PartitionNodeLimit"));
        assert_eq!((pending.nodes, pending.node_list.as_str()), (2, ""));
        assert_eq!(pending.time_left.as_deref(), Some("1:00:00"), "a pending job shows its limit");
        assert_eq!(job(&states, "9").gpus_per_node, Some(1));
        assert_eq!(job(&states, "10").gpus_per_node, Some(2));
        let done = job(&states, "1");
        assert_eq!((done.state.as_str(), done.time_left.as_deref()), ("COMPLETED", None));
        assert_eq!(states["77"], LeaseSlurmState::Gone, "not listed: gone");
    }

    #[test]
    fn ended_jobs_have_no_time_left() {
        let states = parse_squeue(CANCELLED, &["2", "3", "7", "12"]);
        for id in ["2", "3", "7", "12"] {
            assert_eq!(job(&states, id).time_left, None, "{id}");
        }
        assert_eq!(job(&states, "12").state, "COMPLETING");
        assert_eq!(job(&states, "3").reason.as_deref(), Some("PartitionNodeLimit"));
    }

    #[test]
    fn array_lines_count_for_their_base_id_and_the_most_alive_wins() {
        let states = parse_squeue(ARRAY, &["4"]);
        assert_eq!(job(&states, "4").state, "RUNNING");
        // Asking for an array task's own id finds it by %A.
        let states = parse_squeue(ARRAY, &["6"]);
        assert_eq!(job(&states, "6").state, "RUNNING");
        let bracket = "12|12_[0-2]|PENDING|10:00|1|(Priority)|debug|(null)|(null)|arr\n";
        let states = parse_squeue(bracket, &["12"]);
        let pending = job(&states, "12");
        assert_eq!(pending.reason.as_deref(), Some("Priority"));
        assert_eq!((pending.node_list.as_str(), pending.gpus_per_node), ("", None));
        let het = "20|20+0|RUNNING|1:00|1|None|debug|vm|N/A|het\n";
        assert_eq!(job(&parse_squeue(het, &["20"]), "20").state, "RUNNING");
    }

    #[test]
    fn junk_lines_are_skipped_and_fields_are_terminal_safe() {
        let text = "CLUSTER: other\n\n5|5|RUNNING\nnot|a|job\n\
                    8|8|RUNNING|UNLIMITED|1|None|de\u{1b}[31mbug|vm|N/A|evil\u{1b}]0;title\u{7}name\tx\n\
                    9|9|r\u{1b}[2Jun|1:00|1|None|debug|vm|N/A|x\n";
        let states = parse_squeue(text, &["5", "8", "9"]);
        assert_eq!(states["5"], LeaseSlurmState::Gone);
        assert_eq!(states["9"], LeaseSlurmState::Gone, "a state with escapes is not a state");
        let evil = job(&states, "8");
        assert_eq!((evil.name.as_str(), evil.partition.as_str()), ("evilname x", "debug"));
        assert_eq!(evil.time_left, None, "UNLIMITED");
        assert_eq!(LeaseSlurmState::Gone.label(), "GONE");
    }

    #[test]
    fn durations_and_time_left() {
        let cases = [
            ("0:05", Some(5)),
            ("4:59", Some(299)),
            ("10:00", Some(600)),
            ("1:00:00", Some(3600)),
            ("2-03:04:05", Some(2 * 86_400 + 3 * 3600 + 4 * 60 + 5)),
            ("364-23:59:59", Some(364 * 86_400 + 86_399)),
            ("1-12", Some(86_400 + 12 * 3600)),
            ("UNLIMITED", None),
            ("INVALID", None),
            ("NOT_SET", None),
            ("", None),
            ("1:2:3:4", None),
            ("-1:00", None),
        ];
        for (text, secs) in cases {
            assert_eq!(parse_slurm_duration(text).map(|d| d.as_secs()), secs, "{text}");
        }
        assert_eq!(parse_time_left(" 4:59 "), Some("4:59".into()));
        assert_eq!(parse_time_left("UNLIMITED"), None);
        assert_eq!(parse_time_left("INVALID"), None);
    }

    #[test]
    fn gpus_per_node_forms() {
        let cases = [
            ("gres:gpu:1", Some(1)),
            ("gres:gpu:2", Some(2)),
            ("gres/gpu:4", Some(4)),
            ("gres/gpu=8", Some(8)),
            ("gpu:a100:4", Some(4)),
            ("gres:gpu:a100:2,gres:nic:1", Some(2)),
            ("gres/gpu:tesla:2(IDX:0-1)", Some(2)),
            ("gres:gpu", Some(1)),
            ("gres:gpu:a100", Some(1)),
            ("gres:nic:1", None),
            ("N/A", None),
            ("(null)", None),
            ("", None),
        ];
        for (text, gpus) in cases {
            assert_eq!(parse_gpus_per_node(text), gpus, "{text}");
        }
    }

    #[test]
    fn reasons() {
        assert_eq!(parse_reason("None"), None);
        assert_eq!(parse_reason("(null)"), None);
        assert_eq!(parse_reason("(Resources)"), Some("Resources".into()));
        assert_eq!(
            parse_reason("ReqNodeNotAvail, UnavailableNodes:n[1-2]"),
            Some("ReqNodeNotAvail, UnavailableNodes:n[1-2]".into())
        );
    }

    #[test]
    fn parses_recorded_scontrol_line() {
        let pairs = parse_scontrol_line(SCONTROL);
        let map: BTreeMap<_, _> = pairs.iter().cloned().collect();
        assert_eq!(pairs[0], ("JobId".into(), "2".into()));
        assert_eq!(map["JobName"], "a|b c", "a value with a space");
        assert_eq!(map["TRES"], "cpu=1,node=1,billing=1", "a value with '='");
        assert_eq!(map["AllocNode:Sid"], "localhost:23364");
        assert_eq!(map["NtasksPerN:B:S:C"], "0:0:*:*");
        assert_eq!(map["CPUs/Task"], "1");
        assert_eq!(map["JobState"], "RUNNING");
        assert_eq!(map["TimeLimit"], "00:05:00");
        assert_eq!(map["Power"], "", "an empty last value");
        let gpu = parse_scontrol_line("JobId=9 JobName=g TRES=cpu=1,node=1,billing=1 TresPerNode=gres:gpu:1");
        let gpu: BTreeMap<_, _> = gpu.into_iter().collect();
        assert_eq!(parse_gpus_per_node(&gpu["TresPerNode"]), Some(1));
        assert!(parse_scontrol_line("").is_empty());
        assert!(parse_scontrol_line("garbage words =x").is_empty());
    }

    #[test]
    fn sbatch_parsable_output() {
        assert_eq!(parse_sbatch_parsable("12345\n"), Some("12345".into()));
        assert_eq!(parse_sbatch_parsable("12345;cluster\n"), Some("12345".into()));
        assert_eq!(parse_sbatch_parsable("note\n678\n\n"), Some("678".into()));
        assert_eq!(parse_sbatch_parsable("Submitted batch job 5\n"), None);
        assert_eq!(parse_sbatch_parsable(""), None);
        assert!(is_job_id("99887766") && !is_job_id("local:h") && !is_job_id("12_3") && !is_job_id(""));
    }

    // ------------------------------------------------------------ the form

    fn request() -> LeaseRequest {
        LeaseRequest {
            name: Some("expA".into()),
            nodes: 4,
            time: "12:00:00".into(),
            ..LeaseRequest::default()
        }
    }

    #[test]
    fn sbatch_args_in_order() {
        assert_eq!(request().sbatch_args(), ["--nodes=4", "--time=12:00:00", "--job-name=expA"]);
        let full = LeaseRequest {
            gpus_per_node: 8,
            partition: Some("gpu".into()),
            qos: Some("high".into()),
            account: Some("proj1".into()),
            constraint: Some("a100&ib".into()),
            reservation: Some("maint".into()),
            extra_args: vec!["--mem=100G".into(), "--exclusive".into()],
            ..request()
        };
        assert_eq!(
            full.sbatch_args(),
            [
                "--nodes=4",
                "--time=12:00:00",
                "--job-name=expA",
                "--gpus-per-node=8",
                "--partition=gpu",
                "--qos=high",
                "--account=proj1",
                "--constraint=a100&ib",
                "--reservation=maint",
                "--mem=100G",
                "--exclusive"
            ]
        );
        let plain = LeaseRequest { name: Some("  ".into()), partition: Some(String::new()), ..request() };
        assert_eq!(plain.sbatch_args(), ["--nodes=4", "--time=12:00:00"], "empty fields are unset");
        assert_eq!(plain.validate(), Ok(()));
    }

    #[test]
    fn validation_messages() {
        let bad = |change: fn(&mut LeaseRequest), needle: &str| {
            let mut req = request();
            change(&mut req);
            let err = req.validate().expect_err(needle);
            assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        };
        bad(|r| r.nodes = 0, "nodes: at least 1");
        bad(|r| r.time = String::new(), "time: required");
        bad(|r| r.time = "12h".into(), "is not a Slurm time");
        bad(|r| r.time = "0".into(), "more than zero");
        bad(|r| r.name = Some("a\nb".into()), "name: control");
        bad(|r| r.partition = Some("a b".into()), "partition: spaces");
        bad(|r| r.account = Some("--x".into()), "account: must not start");
        bad(|r| r.extra_args = vec!["--nodes=2".into()], "use the nodes field");
        bad(|r| r.extra_args = vec!["-N2".into()], "use the nodes field");
        bad(|r| r.extra_args = vec!["--array=0-3".into()], "not an array");
        bad(|r| r.extra_args = vec!["--wrap".into(), "x".into()], "keeper script is the job");
        bad(|r| r.extra_args = vec!["--mem 100G".into()], "after '='");
        bad(|r| r.extra_args = vec!["100G".into()], "is not an option");
        bad(|r| r.extra_args = vec![String::new()], "is empty");
        bad(|r| r.extra_args = vec!["--comment=a\u{1b}b".into()], "control");
        for time in ["90", "30:00", "12:00:00", "2-00", "2-00:30", "2-00:30:00", "UNLIMITED"] {
            let req = LeaseRequest { time: time.into(), ..request() };
            assert_eq!(req.validate(), Ok(()), "{time}");
        }
        let ok = LeaseRequest {
            extra_args: vec!["--mem".into(), "100G".into(), "--exclusive".into(), "--comment=a b".into()],
            ..request()
        };
        assert_eq!(ok.validate(), Ok(()));
    }

    #[test]
    fn keeper_script_runs_one_runner_per_node_and_quotes_paths() {
        let bin = Path::new("/opt/it's here/leaseq");
        let script = request().keeper_script(bin);
        assert!(script.starts_with("#!/bin/bash\n"));
        assert!(!script.contains("#SBATCH"));
        assert!(script.contains(r#"LEASEQ_BIN='/opt/it'\''s here/leaseq'"#), "{script}");
        assert!(script.contains(r#"exec "$0" run --lease "$SLURM_JOB_ID" --node "$(hostname)""#));
        assert!(script.contains("--ntasks-per-node=1"));
        assert!(script.contains("wait \"$!\""));
        assert!(!script.contains("LEASEQ_HOME"));
        let gpu = LeaseRequest { gpus_per_node: 2, ..request() }
            .keeper_script_for(bin, Some(Path::new("/home/u/.leaseq")));
        assert!(gpu.contains("export LEASEQ_HOME=/home/u/.leaseq\n"));
        assert!(gpu.contains("--gpus-per-node=2"));
        let check = Command::new("bash").arg("-n").arg("-c").arg(&gpu).status().unwrap();
        assert!(check.success(), "bash -n rejects the keeper script");
    }

    #[test]
    fn preview_is_the_exact_shell_quoted_command() {
        let script = Path::new("/home/u/.leaseq/keepers/keeper-20260101-000000-abcd.sh");
        let req = LeaseRequest { name: Some("my exp".into()), ..request() };
        assert_eq!(
            req.preview(script),
            "sbatch --parsable --nodes=4 --time=12:00:00 '--job-name=my exp' \
             --output=/home/u/.leaseq/keepers/keeper-20260101-000000-abcd-%j.out \
             /home/u/.leaseq/keepers/keeper-20260101-000000-abcd.sh"
        );
        let own_output = LeaseRequest { extra_args: vec!["--output=/tmp/k.out".into()], ..request() };
        assert!(!own_output.preview(script).contains("keeper-20260101-000000-abcd-%j.out"));
        let odd = Path::new("/data/100%/k.sh");
        assert!(request().submit_args(odd).contains(&"--output=/data/100%%/k-%j.out".to_string()));
        let evil = LeaseRequest { name: Some("x\u{1b}[2Jy".into()), ..request() };
        assert!(!evil.preview(script).contains('\u{1b}'));
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn keeper_paths_are_dated() {
        let roots = Roots::resolve(&Env { leaseq_home: Some("/a".into()), ..Env::default() });
        let at = UNIX_EPOCH + Duration::from_secs(1_736_380_000);
        let path = keeper_path(&roots, at);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("keeper-20250108-234640-") && name.ends_with(".sh"), "{name}");
        assert_eq!(path.parent().unwrap(), Path::new("/a/keepers"));
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    // ------------------------------------------------------------ fake CLIs

    /// A temp dir of fake Slurm programs.
    struct Fakes {
        dir: tempfile::TempDir,
    }

    impl Fakes {
        fn new() -> Fakes {
            Fakes { dir: tempfile::tempdir().unwrap() }
        }
        fn add(&self, program: &str, body: &str) -> &Self {
            let path = self.dir.path().join(program);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            set_mode(&path, 0o755).unwrap();
            self
        }
        fn cli(&self) -> SlurmCli {
            SlurmCli::with_bin_dir(self.dir.path())
        }
        fn path(&self, name: &str) -> PathBuf {
            self.dir.path().join(name)
        }
    }

    #[test]
    fn missing_programs_are_not_installed() {
        let empty = tempfile::tempdir().unwrap();
        let cli = SlurmCli::with_bin_dir(empty.path());
        let err = cli.query_leases(&["1".into()]).unwrap_err();
        assert_eq!(err, SlurmError::NotInstalled { program: "squeue".into() });
        assert_eq!(
            err.to_string(),
            "squeue not found: Slurm lease state unavailable (is Slurm installed / on PATH?)"
        );
        let err = cli.release_lease("1").unwrap_err();
        assert!(err.to_string().starts_with("scancel not found: cannot release"), "{err}");
        let roots =
            Roots::resolve(&Env { leaseq_home: Some(empty.path().join("h").into()), ..Env::default() });
        let err = cli.create_lease(&request(), &roots, Path::new("/bin/true")).unwrap_err();
        assert!(err.to_string().starts_with("sbatch not found: cannot create"), "{err}");
        assert!(!roots.registry_path().exists());
    }

    #[test]
    fn one_squeue_call_for_all_ids_and_no_call_for_none() {
        let fakes = Fakes::new();
        let log = fakes.path("calls");
        fakes.add(
            "squeue",
            &format!(
                "echo \"$@\" >> '{}'\nprintf '%s\\n' '5|5|RUNNING|9:00|2|None|p|n[1-2]|gres/gpu:4|x' \
                 '6|6|PENDING|1:00:00|2|(Resources)|p||N/A|y'",
                log.display()
            ),
        );
        let cli = fakes.cli();
        let ids: Vec<String> = ["6", "5", "7", "local:h", "5"].iter().map(|s| s.to_string()).collect();
        let states = cli.query_leases(&ids).unwrap();
        let calls = std::fs::read_to_string(&log).unwrap();
        assert_eq!(calls, format!("-h -t all -j 5,6,7 -o {SQUEUE_FORMAT}\n"));
        assert_eq!(states.len(), 3, "local:h is not asked about");
        assert_eq!(job(&states, "5").gpus_per_node, Some(4));
        assert_eq!(job(&states, "6").reason.as_deref(), Some("Resources"));
        assert_eq!(states["7"], LeaseSlurmState::Gone);
        assert!(cli.query_leases(&["local:h".into()]).unwrap().is_empty());
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1, "no call without job ids");
    }

    #[test]
    fn invalid_job_id_is_gone_not_an_error() {
        let fakes = Fakes::new();
        fakes.add("squeue", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1");
        let states = fakes.cli().query_leases(&["99999".into()]).unwrap();
        assert_eq!(states["99999"], LeaseSlurmState::Gone);
        // Several ids: asked one by one (a Slurm that errs for lists).
        let states = fakes.cli().query_leases(&["1".into(), "2".into()]).unwrap();
        assert_eq!(states.values().filter(|s| **s == LeaseSlurmState::Gone).count(), 2);
        fakes.add("scontrol", "echo 'slurm_load_jobs error: Invalid job id specified' >&2; exit 1");
        assert_eq!(fakes.cli().scontrol_job("99999"), Ok(None));
    }

    #[test]
    fn other_failures_keep_command_status_and_clean_stderr() {
        let fakes = Fakes::new();
        fakes.add(
            "squeue",
            "printf 'slurm_load_jobs error: Zero Bytes were\\033[31m transmitted or received\\n' >&2; exit 1",
        );
        match fakes.cli().query_leases(&["1".into()]).unwrap_err() {
            SlurmError::Failed { command, status, stderr } => {
                assert!(command.starts_with("squeue -h -t all -j 1 -o "), "{command}");
                assert_eq!(status, Some(1));
                assert_eq!(stderr, "slurm_load_jobs error: Zero Bytes were transmitted or received");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_hanging_command_is_killed_with_its_children() {
        let fakes = Fakes::new();
        let pid_file = fakes.path("pid");
        fakes.add("squeue", &format!("sleep 30 &\necho $! > '{}'\nwait", pid_file.display()));
        let cli = SlurmCli { timeout: Duration::from_millis(300), ..fakes.cli() };
        let started = Instant::now();
        let err = cli.query_leases(&["1".into()]).unwrap_err();
        assert!(matches!(err, SlurmError::Timeout { .. }), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(err.to_string().contains("did not answer within 0.3s"), "{err}");
        let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        // SAFETY: kill with signal 0 only checks whether the pid exists.
        while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(status.is_empty() || status.contains(") Z "), "the grandchild sleep survived: {status}");
    }

    #[test]
    fn an_unreachable_controller_is_named_as_such() {
        let fakes = Fakes::new();
        // Recorded: what squeue and scontrol ping say with slurmctld stopped.
        fakes.add(
            "squeue",
            "echo 'slurm_load_jobs error: Unable to contact slurm controller (connect failure)' >&2; exit 1",
        );
        fakes.add(
            "scontrol",
            "printf 'Slurmctld(primary) at vm is DOWN\n*****\n** RESTORE SLURMCTLD DAEMON TO SERVICE **\n'; exit 1",
        );
        let err = fakes.cli().query_leases(&["1".into()]).unwrap_err();
        assert!(matches!(err, SlurmError::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().starts_with("Slurm controller unreachable (`squeue -h"), "{err}");
        let err = fakes.cli().ping().unwrap_err();
        assert_eq!(
            err,
            SlurmError::Unreachable {
                command: "scontrol ping".into(),
                detail: "Slurmctld(primary) at vm is DOWN".into()
            }
        );
        // squeue hangs (it retries for ~18 s): a timeout, diagnosed by ping.
        fakes.add("squeue", "exec sleep 30");
        let cli = SlurmCli { timeout: Duration::from_millis(200), ..fakes.cli() };
        match cli.query_leases(&["1".into()]).unwrap_err() {
            SlurmError::Unreachable { detail, .. } => {
                assert_eq!(detail, "no answer within 0.2s; Slurmctld(primary) at vm is DOWN")
            }
            other => panic!("{other:?}"),
        }
        fakes.add("scontrol", "echo 'Slurmctld(primary) at vm is UP'");
        assert_eq!(fakes.cli().ping(), Ok(()));
        assert!(matches!(cli.query_leases(&["1".into()]), Err(SlurmError::Timeout { .. })));
    }

    #[test]
    fn a_child_that_leaves_a_daemon_holding_stdout_does_not_hang() {
        let fakes = Fakes::new();
        fakes.add("squeue", "echo '1|1|RUNNING|1:00|1|None|p|n|N/A|x'\n(sleep 30) &\nexit 0");
        let cli = SlurmCli { timeout: Duration::from_millis(500), ..fakes.cli() };
        let started = Instant::now();
        let result = cli.query_leases(&["1".into()]);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(result, Err(SlurmError::Timeout { .. })), "{result:?}");
    }

    #[test]
    fn scontrol_fills_gpus_only_when_squeue_left_them_blank() {
        let fakes = Fakes::new();
        let log = fakes.path("scontrol-calls");
        fakes.add(
            "squeue",
            "printf '%s\\n' '1|1|RUNNING|1:00|1|None|p|n||a' '2|2|RUNNING|1:00|1|None|p|n|N/A|b' \
             '3|3|COMPLETED|1:00|1|None|p|n||c'",
        );
        fakes.add(
            "scontrol",
            &format!(
                "echo \"$@\" >> '{}'\necho 'JobId=1 JobName=a TresPerNode=gres:gpu:3 Power='",
                log.display()
            ),
        );
        let states = fakes.cli().query_leases(&["1".into(), "2".into(), "3".into()]).unwrap();
        assert_eq!(job(&states, "1").gpus_per_node, Some(3));
        assert_eq!(job(&states, "2").gpus_per_node, None);
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "show -o job 1\n", "one call, for job 1 only");
    }

    #[test]
    fn release_refuses_non_job_ids_and_tolerates_ended_jobs() {
        let fakes = Fakes::new();
        let log = fakes.path("scancel-calls");
        fakes.add("scancel", &format!("echo \"$@\" >> '{}'", log.display()));
        let cli = fakes.cli();
        let err = cli.release_lease("local:myhost").unwrap_err();
        assert!(matches!(err, SlurmError::Invalid(_)));
        assert!(err.to_string().contains("local:myhost is a local lease"), "{err}");
        let err = cli.release_lease("12; rm -rf /").unwrap_err();
        assert!(err.to_string().contains("is not a Slurm job id"), "{err}");
        assert!(!log.exists(), "scancel was not run");
        cli.release_lease(" 4242 ").unwrap();
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "4242\n");
        fakes.add(
            "scancel",
            "echo 'scancel: error: Kill job error on job id 5: Job/step already completing or completed' >&2; exit 1",
        );
        assert_eq!(fakes.cli().release_lease("5"), Ok(()));
        fakes.add("scancel", "echo 'scancel: error: Access/permission denied' >&2; exit 1");
        assert!(matches!(fakes.cli().release_lease("5"), Err(SlurmError::Failed { .. })));
    }

    fn roots_in(dir: &Path) -> Roots {
        Roots::resolve(&Env {
            leaseq_home: Some(dir.join("home").into()),
            leaseq_runtime_dir: Some(dir.join("rt").into()),
            hostname: "h".into(),
            ..Env::default()
        })
    }

    #[test]
    fn create_lease_writes_keeper_meta_and_index() {
        let fakes = Fakes::new();
        let argv = fakes.path("sbatch-argv");
        fakes.add("sbatch", &format!("printf '%s\\n' \"$@\" > '{}'\necho '4242;cluster'", argv.display()));
        let roots = roots_in(fakes.dir.path());
        let mut registry =
            crate::model::LeaseRegistry { default_lease: Some("local:h".into()), ..Default::default() };
        registry.leases.insert("local:h".into(), LeaseEntry::default());
        write_registry(&roots.registry_path(), &registry).unwrap();

        let req = LeaseRequest { nodes: 1, time: "5".into(), ..request() };
        let id = fakes.cli().create_lease(&req, &roots, Path::new("/opt/leaseq bin/leaseq")).unwrap();
        assert_eq!(id, "4242");

        let argv = std::fs::read_to_string(&argv).unwrap();
        let argv: Vec<&str> = argv.lines().collect();
        assert_eq!(&argv[..4], ["--parsable", "--nodes=1", "--time=5", "--job-name=expA"]);
        let script = Path::new(argv.last().unwrap());
        assert_eq!(script.parent().unwrap(), roots.archive.join("keepers"));
        assert!(argv[4].starts_with("--output=") && argv[4].ends_with("-%j.out"));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(script).unwrap().permissions().mode() & 0o777, 0o755);
        let text = std::fs::read_to_string(script).unwrap();
        assert!(text.contains("LEASEQ_BIN='/opt/leaseq bin/leaseq'"));
        assert!(text.contains(&format!("export LEASEQ_HOME={}", roots.archive.display())));

        let meta: LeaseMeta =
            serde_json::from_slice(&std::fs::read(RunDir(roots.run_dir("4242").unwrap()).meta()).unwrap())
                .unwrap();
        match meta {
            LeaseMeta::Slurm { lease_id, name, created_at, slurm, mode } => {
                assert_eq!((lease_id.as_str(), name.as_deref()), ("4242", Some("expA")));
                assert!(created_at > 1_700_000_000);
                assert_eq!(&slurm.sbatch_args[..3], ["--nodes=1", "--time=5", "--job-name=expA"]);
                assert!(!slurm.sbatch_args.contains(&"--parsable".to_string()));
                assert_eq!(mode.as_deref(), Some("exclusive-per-node"));
            }
            other => panic!("{other:?}"),
        }
        let raw = std::fs::read_to_string(RunDir(roots.run_dir("4242").unwrap()).meta()).unwrap();
        assert!(raw.contains("\"created_at\": 1") && !raw.contains("\"created_at\": 1."), "integer seconds");
        let registry = read_registry(&roots.registry_path()).unwrap();
        assert_eq!(registry.default_lease.as_deref(), Some("local:h"), "default kept");
        assert!(registry.leases.contains_key("local:h"), "existing entry kept");
        assert_eq!(registry.leases["4242"].name.as_deref(), Some("expA"));
    }

    #[test]
    fn failed_or_refused_submissions_record_nothing() {
        let fakes = Fakes::new();
        fakes.add(
            "sbatch",
            "echo 'sbatch: error: Batch job submission failed: Requested node configuration is not available' >&2; exit 1",
        );
        let roots = roots_in(fakes.dir.path());
        let err = fakes.cli().create_lease(&request(), &roots, Path::new("/bin/true")).unwrap_err();
        match &err {
            SlurmError::Failed { stderr, status, .. } => {
                assert!(stderr.contains("Requested node configuration is not available"));
                assert_eq!(*status, Some(1));
            }
            other => panic!("{other:?}"),
        }
        assert!(!roots.registry_path().exists() && !roots.archive.join("runs").exists());

        let invalid = LeaseRequest { nodes: 0, ..request() };
        let err = fakes.cli().create_lease(&invalid, &roots, Path::new("/bin/true")).unwrap_err();
        assert_eq!(err, SlurmError::Invalid("nodes: at least 1".into()));

        fakes.add("sbatch", "echo 'Submitted batch job 7'");
        let err = fakes.cli().create_lease(&request(), &roots, Path::new("/bin/true")).unwrap_err();
        assert!(matches!(err, SlurmError::Parse { .. }), "{err:?}");

        std::fs::write(roots.registry_path(), b"{not json").unwrap();
        fakes.add("sbatch", "echo 1; touch submitted");
        let err = fakes.cli().create_lease(&request(), &roots, Path::new("/bin/true")).unwrap_err();
        assert!(err.to_string().contains("cannot read the lease registry"), "{err}");
    }

    // ------------------------------------------------------------ poller

    #[test]
    fn poller_interval_is_clamped_and_defaults_to_20s() {
        assert_eq!(SlurmPoller::from_config(&UiConfig::default()).interval(), Duration::from_secs(20));
        assert_eq!(SlurmPoller::new(0).interval(), MIN_REFRESH);
        assert_eq!(SlurmPoller::new(3).interval(), Duration::from_secs(10));
        assert_eq!(SlurmPoller::new(10_000).interval(), MAX_REFRESH);
    }

    #[test]
    fn poller_regular_schedule_and_no_overlap() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = SlurmPoller::new(20);
        assert!(p.due(t0), "first query at once");
        p.started(t0);
        assert!(!p.due(t0 + s(100)), "never two at once");
        p.finished(t0 + s(1), true);
        assert!(!p.due(t0 + s(20)));
        assert!(p.due(t0 + s(21)), "interval counts from the end of the last query");
        assert_eq!(p.next_due(), Some(t0 + s(21)));
    }

    #[test]
    fn poller_refresh_now_is_rate_limited_to_one_per_2s() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut p = SlurmPoller::new(20);
        p.started(t0);
        p.finished(t0 + ms(10), true);
        p.refresh_now();
        assert!(!p.due(t0 + ms(1999)));
        assert!(p.due(t0 + ms(2000)));
        p.started(t0 + ms(2000));
        p.finished(t0 + ms(2010), true);
        assert!(!p.due(t0 + ms(2500)), "served: back to the regular schedule");
        p.refresh_now();
        p.refresh_now();
        assert!(!p.due(t0 + ms(3999)));
        assert!(p.due(t0 + ms(4000)));
        // A refresh asked for long after the last query is due at once.
        let mut q = SlurmPoller::new(300);
        q.started(t0);
        q.finished(t0, true);
        q.refresh_now();
        assert!(q.due(t0 + ms(60_000)));
    }

    #[test]
    fn poller_backs_off_exponentially_after_errors_and_recovers() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = SlurmPoller::new(20);
        let mut now = t0;
        let mut waits = Vec::new();
        for _ in 0..7 {
            p.started(now);
            p.finished(now, false);
            let next = p.next_due().unwrap();
            waits.push((next - now).as_secs());
            assert!(!p.due(next - s(1)));
            now = next;
        }
        assert_eq!(waits, [40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(p.failures(), 7);
        p.refresh_now();
        assert!(p.due(now + s(2)), "a user refresh still works, once per 2 s");
        p.started(now);
        p.finished(now, true);
        assert_eq!(p.failures(), 0);
        assert_eq!(p.next_due(), Some(now + s(20)));
    }

    #[test]
    fn poller_stuck_in_flight_recovers() {
        let t0 = Instant::now();
        let mut p = SlurmPoller::new(10);
        p.started(t0);
        assert!(!p.due(t0 + Duration::from_secs(119)));
        assert!(p.due(t0 + IN_FLIGHT_LIMIT));
    }
}
