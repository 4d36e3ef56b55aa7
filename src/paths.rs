//! Where leaseq's files live: the archive root, run directories, the local
//! lease's runtime dir, `config.json` (`ui.*` keys) and `index.json`.
//!
//! Owns: path rules of ON-DISK.md and atomic writes (temp dot-file + rename).
//! Reads the environment only through [`Env`], so the rules are testable.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::LeaseRegistry;
use crate::store::{read_record, RecordError};

/// config.json, index.json and meta/lease.json are small; 4 MiB is none of them.
pub const SMALL_RECORD_BYTES: u64 = 4 << 20;

/// The environment variables the path rules read.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub leaseq_home: Option<OsString>,
    pub leaseq_runtime_dir: Option<OsString>,
    pub xdg_runtime_dir: Option<OsString>,
    /// Where the warm-start cache lives (`$LEASEQ_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/leaseq`, else `~/.cache/leaseq`).
    pub leaseq_cache_dir: Option<OsString>,
    pub xdg_cache_home: Option<OsString>,
    pub home: Option<OsString>,
    pub uid: u32,
    pub hostname: String,
}

impl Env {
    pub fn from_process() -> Env {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Env {
            leaseq_home: var("LEASEQ_HOME"),
            leaseq_runtime_dir: var("LEASEQ_RUNTIME_DIR"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            leaseq_cache_dir: var("LEASEQ_CACHE_DIR"),
            xdg_cache_home: var("XDG_CACHE_HOME"),
            home: var("HOME"),
            // SAFETY: getuid has no preconditions and cannot fail.
            uid: unsafe { libc::getuid() },
            hostname: hostname(),
        }
    }
}

/// The short host name, as the existing tool puts in `local:<hostname>`.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // when the name fits, and we stop at the first NUL either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_string();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Resolved roots for one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roots {
    /// `$LEASEQ_HOME`, default `~/.leaseq`.
    pub archive: PathBuf,
    /// Parent of the local lease's live run dir.
    pub runtime: PathBuf,
    pub hostname: String,
}

impl Roots {
    pub fn resolve(env: &Env) -> Roots {
        let archive = match (&env.leaseq_home, &env.home) {
            (Some(home), _) => PathBuf::from(home),
            (None, Some(home)) => Path::new(home).join(".leaseq"),
            (None, None) => PathBuf::from(".leaseq"),
        };
        let runtime = match (&env.leaseq_runtime_dir, &env.xdg_runtime_dir) {
            (Some(dir), _) => PathBuf::from(dir),
            (None, Some(xdg)) => Path::new(xdg).join("leaseq"),
            (None, None) => PathBuf::from(format!("/tmp/leaseq/{}", env.uid)),
        };
        Roots { archive, runtime, hostname: env.hostname.clone() }
    }

    pub fn from_process() -> Roots {
        Roots::resolve(&Env::from_process())
    }

    /// The id of this host's local lease.
    pub fn local_lease_id(&self) -> String {
        format!("local:{}", self.hostname)
    }

    /// The run directory of a lease: the runtime dir for `local:<host>`
    /// leases, `<archive>/runs/<id>` for the rest. None for an id that is
    /// not a lease id ([`is_valid_lease_id`]): `../../x`, `/abs`, `""` never
    /// become a path.
    pub fn run_dir(&self, lease_id: &str) -> Option<PathBuf> {
        if !is_valid_lease_id(lease_id) {
            return None;
        }
        Some(if lease_id.starts_with("local:") {
            self.runtime.join(lease_id)
        } else {
            self.archive.join("runs").join(lease_id)
        })
    }

    /// Makes sure the local runtime dir is this user's own before anything
    /// runs from it: `/tmp/leaseq/<uid>` is in a directory anyone can write
    /// to, so another user could create it first and plant tasks that a
    /// local runner would then run as us. Creates it (mode 0700) when
    /// missing; refuses one that is a symlink, not ours, or writable by
    /// others.
    pub fn ensure_private_runtime(&self) -> Result<(), String> {
        ensure_private_dir(&self.runtime)
    }

    pub fn registry_path(&self) -> PathBuf {
        self.archive.join("index.json")
    }

    pub fn config_path(&self) -> PathBuf {
        self.archive.join("config.json")
    }
}

/// See [`Roots::ensure_private_runtime`].
pub fn ensure_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("creating {}: {e}", dir.display())),
    }
    let meta = std::fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let problem = if !meta.file_type().is_dir() {
        Some("is not a directory (a symlink?)".to_string())
    } else if meta.uid() != me {
        Some(format!("belongs to uid {}, not to you (uid {me})", meta.uid()))
    } else if meta.mode() & 0o022 != 0 {
        Some(format!("can be written by others (mode {:o})", meta.mode() & 0o777))
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(format!(
            "{} {problem}: tasks placed there would run as you; not using it (set LEASEQ_RUNTIME_DIR \
             to a directory of your own)",
            dir.display()
        )),
    }
}

/// Whether a node name can be a path component: what host names are
/// (letters, digits, `.`, `-`, `_`), not starting with `.` or `-`, at most
/// 255 bytes. Anything else never becomes a path.
pub fn is_valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with(['.', '-'])
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// Whether a lease id can be a path component: a Slurm job id (digits,
/// `_` for an array task) or `local:<host name>`.
pub fn is_valid_lease_id(id: &str) -> bool {
    match id.strip_prefix("local:") {
        Some(host) => is_valid_node_name(host),
        None => {
            !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_digit() || b == b'_')
                && id.as_bytes()[0].is_ascii_digit()
        }
    }
}

/// The queue directories of a run dir, in the order a node's round lists
/// them (see `scan::round`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueDir {
    Inbox,
    Claimed,
    Done,
}

impl QueueDir {
    pub const ALL: [QueueDir; 3] = [QueueDir::Inbox, QueueDir::Claimed, QueueDir::Done];

    pub fn name(self) -> &'static str {
        match self {
            QueueDir::Inbox => "inbox",
            QueueDir::Claimed => "claimed",
            QueueDir::Done => "done",
        }
    }
}

/// Paths inside one run directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir(pub PathBuf);

impl RunDir {
    pub fn queue(&self, dir: QueueDir, node: &str) -> PathBuf {
        self.0.join(dir.name()).join(node)
    }
    pub fn queue_root(&self, dir: QueueDir) -> PathBuf {
        self.0.join(dir.name())
    }
    pub fn hb_dir(&self) -> PathBuf {
        self.0.join("hb")
    }
    pub fn heartbeat(&self, node: &str) -> PathBuf {
        self.hb_dir().join(format!("{node}.json"))
    }
    pub fn control_root(&self) -> PathBuf {
        self.0.join("control")
    }
    pub fn control(&self, node: &str) -> PathBuf {
        self.control_root().join(node)
    }
    pub fn logs(&self) -> PathBuf {
        self.0.join("logs")
    }
    pub fn meta(&self) -> PathBuf {
        self.0.join("meta").join("lease.json")
    }
    /// The events log of a node (`events/<node>.jsonl`).
    pub fn events(&self, node: &str) -> PathBuf {
        self.0.join("events").join(format!("{node}.jsonl"))
    }
    /// A path a result names (`logs/T014.out`), relative to the run dir.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        self.0.join(relative)
    }
    /// [`RunDir::resolve`] for a path read from a record: None unless it is
    /// relative and stays inside the run dir (no `..`, not absolute, not
    /// empty), so a hostile record cannot make us open `/etc/shadow`.
    pub fn resolve_inside(&self, relative: &str) -> Option<PathBuf> {
        use std::path::Component;
        let path = Path::new(relative);
        let plain = !relative.is_empty()
            && !relative.contains('\0')
            && path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        plain.then(|| self.0.join(path))
    }
}

/// The TUI's keys in `config.json` (`{"ui": {...}}`), with the spec's
/// defaults for anything missing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UiConfig {
    pub refresh_s: u64,
    pub slurm_refresh_s: u64,
    pub hb_stale_s: u64,
    pub follow_auto_latest: bool,
    pub max_tasks_display: usize,
    pub log_tail_lines: usize,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            refresh_s: 2,
            slurm_refresh_s: 20,
            hb_stale_s: 60,
            follow_auto_latest: false,
            max_tasks_display: 5000,
            log_tail_lines: 200,
        }
    }
}

impl UiConfig {
    /// Each key brought into a range that works (a refresh of 2^64 s, a
    /// staleness past i64, zero rows), with a message for each change.
    pub fn within_limits(mut self) -> (UiConfig, Vec<String>) {
        let mut changed = Vec::new();
        let mut clamp = |name: &str, value: &mut u64, low: u64, high: u64| {
            let fixed = (*value).clamp(low, high);
            if fixed != *value {
                changed.push(format!("ui.{name} = {value} is outside {low}..{high}; using {fixed}"));
                *value = fixed;
            }
        };
        clamp("refresh_s", &mut self.refresh_s, 1, 600);
        clamp("slurm_refresh_s", &mut self.slurm_refresh_s, 10, 300);
        clamp("hb_stale_s", &mut self.hb_stale_s, 5, 7 * 86_400);
        let mut rows = self.max_tasks_display as u64;
        clamp("max_tasks_display", &mut rows, 1, 10_000_000);
        self.max_tasks_display = rows as usize;
        let mut lines = self.log_tail_lines as u64;
        clamp("log_tail_lines", &mut lines, 1, 1_000_000);
        self.log_tail_lines = lines as usize;
        (self, changed)
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    ui: UiConfig,
}

/// Reads `config.json`. A missing file gives the defaults; a malformed one
/// gives the defaults and a message saying what was wrong and where.
pub fn load_ui_config(path: &Path) -> (UiConfig, Option<String>) {
    match read_record(path, SMALL_RECORD_BYTES) {
        Err(RecordError::NotFound) => (UiConfig::default(), None),
        Err(e) => (UiConfig::default(), Some(format!("{}; using defaults", e.describe(path)))),
        Ok(bytes) => match parse_ui_config(&bytes) {
            Ok(config) => {
                let (config, clamped) = config.within_limits();
                let problem =
                    (!clamped.is_empty()).then(|| format!("{}: {}", path.display(), clamped.join("; ")));
                (config, problem)
            }
            Err(e) => (UiConfig::default(), Some(format!("{}: {e}; using defaults", path.display()))),
        },
    }
}

pub fn parse_ui_config(bytes: &[u8]) -> Result<UiConfig, serde_json::Error> {
    crate::model::from_nested_record::<ConfigFile>(bytes).map(|file| file.ui)
}

/// Reads `index.json`; a missing file is an empty registry.
pub fn read_registry(path: &Path) -> Result<LeaseRegistry, String> {
    match read_record(path, SMALL_RECORD_BYTES) {
        Err(RecordError::NotFound) => Ok(LeaseRegistry::default()),
        Err(e) => Err(e.describe(path)),
        Ok(bytes) => crate::model::from_nested_record(&bytes).map_err(|e| format!("{}: {e}", path.display())),
    }
}

/// Writes `index.json` atomically.
pub fn write_registry(path: &Path, registry: &LeaseRegistry) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(registry).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// Writes a file as the protocol requires: a dot-file in the same directory,
/// fsync, then rename over the target, so readers see the old or the new
/// content and never a torn one. Creates the directory if needed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_file(path, bytes, true)
}

/// [`write_atomic`] without the fsync, for files that are rewritten every
/// few seconds and worthless after a crash (heartbeats): a slow disk must
/// not delay them.
pub fn write_atomic_volatile(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    replace_file(path, bytes, false)
}

fn replace_file(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let temp = temp_path_for(path);
    let result = (|| {
        // create_new: a temp name that exists (planted) is never written through.
        let mut file = std::fs::File::create_new(&temp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        std::fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// The temp dot-file a write of `path` goes through: `.tmp.<name>.<random>`
/// in the same directory (readers ignore dot-files).
pub fn temp_path_for(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    dir.join(format!(".tmp.{file_name}.{}", random_suffix()))
}

fn random_suffix() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// A random version-4 UUID in its text form.
pub fn new_uuid() -> String {
    let mut bytes: [u8; 16] = fastrand::u128(..).to_le_bytes();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Env {
        Env { home: Some("/home/u".into()), uid: 1000, hostname: "myhost".into(), ..Env::default() }
    }

    #[test]
    fn archive_defaults_to_dot_leaseq_and_honours_leaseq_home() {
        assert_eq!(Roots::resolve(&env()).archive, PathBuf::from("/home/u/.leaseq"));
        let custom = Env { leaseq_home: Some("/data/lq".into()), ..env() };
        assert_eq!(Roots::resolve(&custom).archive, PathBuf::from("/data/lq"));
    }

    #[test]
    fn runtime_dir_rules_in_order() {
        let roots = Roots::resolve(&env());
        assert_eq!(roots.run_dir("local:myhost").unwrap(), PathBuf::from("/tmp/leaseq/1000/local:myhost"));
        let xdg = Env { xdg_runtime_dir: Some("/run/user/1000".into()), ..env() };
        assert_eq!(
            Roots::resolve(&xdg).run_dir("local:myhost").unwrap(),
            PathBuf::from("/run/user/1000/leaseq/local:myhost")
        );
        let own = Env { leaseq_runtime_dir: Some("/rt".into()), ..xdg };
        assert_eq!(Roots::resolve(&own).run_dir("local:myhost").unwrap(), PathBuf::from("/rt/local:myhost"));
        assert_eq!(roots.run_dir("99887766").unwrap(), PathBuf::from("/home/u/.leaseq/runs/99887766"));
        for hostile in ["../../../x", "/etc", "", "local:../x"] {
            assert_eq!(roots.run_dir(hostile), None, "{hostile:?}");
        }
        assert_eq!(roots.local_lease_id(), "local:myhost");
    }

    #[test]
    fn config_defaults_and_partial_overrides() {
        assert_eq!(parse_ui_config(b"{}").unwrap(), UiConfig::default());
        let config = parse_ui_config(br#"{"ui":{"hb_stale_s":120},"other":1}"#).unwrap();
        assert_eq!(config.hb_stale_s, 120);
        assert_eq!(config.refresh_s, 2);
        assert!(parse_ui_config(br#"{"ui":{"refresh_s":"x"}}"#).is_err());
    }

    #[test]
    fn config_out_of_range_is_clamped_with_a_message() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.json");
        std::fs::write(
            &path,
            br#"{"ui":{"refresh_s":18446744073709551615,"hb_stale_s":9223372036854775808}}"#,
        )
        .unwrap();
        let (config, problem) = load_ui_config(&path);
        assert_eq!((config.refresh_s, config.hb_stale_s), (600, 7 * 86_400));
        let problem = problem.unwrap();
        assert!(problem.contains("ui.refresh_s") && problem.contains("ui.hb_stale_s"), "{problem}");
        let fifo = tmp.path().join("fifo.json");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        let (config, problem) = load_ui_config(&fifo);
        assert_eq!(config, UiConfig::default());
        assert!(problem.unwrap().contains("FIFO"));
    }

    #[test]
    fn registry_round_trips_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.json");
        assert_eq!(read_registry(&path).unwrap(), LeaseRegistry::default());
        let mut registry = LeaseRegistry { default_lease: Some("local:h".into()), ..Default::default() };
        registry.leases.insert("1".into(), Default::default());
        write_registry(&path, &registry).unwrap();
        assert_eq!(read_registry(&path).unwrap(), registry);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temp files left behind");
    }

    #[test]
    fn a_runtime_dir_others_can_write_to_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let fresh = tmp.path().join("leaseq/1000");
        ensure_private_dir(&fresh).unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777, 0o700);
        std::fs::set_permissions(&fresh, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(ensure_private_dir(&fresh).unwrap_err().contains("written by others"));
        let link = tmp.path().join("leaseq/1001");
        std::os::unix::fs::symlink(tmp.path(), &link).unwrap();
        assert!(ensure_private_dir(&link).unwrap_err().contains("not a directory"));
    }

    #[test]
    fn record_paths_stay_inside_the_run_dir() {
        let run = RunDir(PathBuf::from("/r"));
        assert_eq!(run.resolve_inside("logs/a/x.out"), Some(PathBuf::from("/r/logs/a/x.out")));
        for bad in ["", "/etc/shadow", "../x", "logs/../../x", "logs/\0"] {
            assert_eq!(run.resolve_inside(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn node_names_and_lease_ids_that_may_become_paths() {
        for good in ["nodeA", "gpu-01.cluster", "n_1", "vm"] {
            assert!(is_valid_node_name(good), "{good}");
        }
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "-n", "a b", "é", "a\0b"] {
            assert!(!is_valid_node_name(bad), "{bad:?}");
        }
        for good in ["99887766", "12_3", "local:myhost"] {
            assert!(is_valid_lease_id(good), "{good}");
        }
        for bad in ["", "../../x", "/abs", "local:", "local:../x", "_1", "abc"] {
            assert!(!is_valid_lease_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn uuids_are_well_formed() {
        let uuid = new_uuid();
        let stem = format!("1_T1_{uuid}");
        assert!(crate::model::TaskName::parse(&stem).is_some(), "{uuid}");
    }
}
