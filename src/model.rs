//! The leaseq on-disk records (ON-DISK.md) and task-file names.
//!
//! Owns: serde types that read and write exactly what the existing leaseq
//! tool does, tolerant of missing optional fields and of unknown fields, and
//! the parsing of `<seq>_<task_id>_<uuid>` names. No I/O here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Parses a record: a JSON object only. serde reads a struct from a JSON
/// array too (`[1,2,3]` as started_at, finished_at, exit_code): a record
/// of ours is never one, so that is refused as malformed.
pub fn from_record<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> serde_json::Result<T> {
    let first = bytes.iter().copied().find(|b| !b.is_ascii_whitespace());
    if first != Some(b'{') {
        return Err(<serde_json::Error as serde::de::Error>::custom(
            "expected a JSON object (a record is never an array, a string or a number)",
        ));
    }
    serde_json::from_slice(bytes)
}

/// [`from_record`] for the records with objects inside (config.json,
/// index.json, meta/lease.json): serde would read a nested struct from an
/// array too (`{"ui":[1,1,1,true,1,1]}`), so every array in them must be
/// one of the lists the format has (`sbatch_args`). They are small; the
/// extra walk costs nothing that matters.
pub fn from_nested_record<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> serde_json::Result<T> {
    const LISTS: &[&str] = &["sbatch_args"];
    fn arrays_only_in_lists(value: &serde_json::Value, key: Option<&str>) -> bool {
        match value {
            serde_json::Value::Array(items) => {
                key.is_some_and(|k| LISTS.contains(&k))
                    && items.iter().all(|v| !v.is_array() && !v.is_object())
            }
            serde_json::Value::Object(map) => map.iter().all(|(k, v)| arrays_only_in_lists(v, Some(k))),
            _ => true,
        }
    }
    let value: serde_json::Value = from_record(bytes)?;
    if !arrays_only_in_lists(&value, None) {
        return Err(<serde_json::Error as serde::de::Error>::custom(
            "an array where the format has an object (only sbatch_args is a list)",
        ));
    }
    serde_json::from_value(value)
}

/// A task as submitted: the file that travels inbox -> claimed -> done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    pub task_id: String,
    pub idempotency_key: String,
    pub lease_id: String,
    pub target_node: String,
    pub seq: u64,
    pub uuid: String,
    pub created_at: i64,
    pub cwd: String,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub gpus: u32,
    pub command: String,
}

/// What a runner wrote after handling a task (`.result.json`, `.skipped.json`
/// or `.cancelled.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskResult {
    pub task_id: String,
    pub idempotency_key: String,
    pub node: String,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    #[serde(default)]
    pub stdout: String,
    #[serde(default)]
    pub stderr: String,
    #[serde(default)]
    pub runtime_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_requested: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_assigned: Option<String>,
    /// Why the task did not run or did not end by itself (a runner of this
    /// project writes it; older runners never do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The signal that ended the task, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
}

/// `hb/<node>.json`, replaced atomically by the node's runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: String,
    pub ts: i64,
    #[serde(default)]
    pub running_task_id: Option<String>,
    #[serde(default)]
    pub pending_estimate: u64,
    #[serde(default)]
    pub runner_pid: u32,
    #[serde(default)]
    pub version: String,
    /// Every running task's id (`running_task_id` holds the first, for
    /// readers that know only one slot).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub running_task_ids: Vec<String>,
    /// The lane is paused: the runner claims nothing new.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
    /// The runner's last heartbeat: it has exited (a clean stop).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

/// `meta/lease.json`, tagged by `lease_type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "lease_type", rename_all = "lowercase")]
pub enum LeaseMeta {
    Slurm {
        lease_id: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        #[serde(default)]
        created_at: i64,
        #[serde(default)]
        slurm: SlurmLeaseMeta,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<String>,
    },
    Local {
        lease_id: String,
        #[serde(default)]
        created_at: i64,
        #[serde(default)]
        local: LocalLeaseMeta,
    },
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlurmLeaseMeta {
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocalLeaseMeta {
    #[serde(default)]
    pub total_gpus: u32,
    #[serde(default = "one")]
    pub parallel: u32,
}

fn one() -> u32 {
    1
}

/// `<archive>/index.json`: the lease registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeaseRegistry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_lease: Option<String>,
    #[serde(default)]
    pub leases: BTreeMap<String, LeaseEntry>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LeaseEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `control/<node>/cancel_<task_id>_<uuid>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CancelRequest {
    pub task_id: String,
    pub requested_at: i64,
    /// The task's file stem, so that a cancel names one task even when task
    /// ids collide (ignored by older runners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

/// `control/<node>/pause.json` and `resume.json`. The later of the two
/// wins; `requested_at_us` (this project's addition) orders two markers of
/// the same second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlMarker {
    #[serde(default)]
    pub requested_at: i64,
    #[serde(default)]
    pub requested_at_us: u64,
}

impl ControlMarker {
    pub fn order(&self) -> (i64, u64) {
        (self.requested_at, self.requested_at_us)
    }
}

/// One line of `events/<node>.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunnerEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub data: serde_json::Value,
}

/// The identity of a task: its file name without `.json`,
/// `<seq>_<task_id>_<uuid>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskName<'a> {
    pub seq: u64,
    pub task_id: &'a str,
    pub uuid: &'a str,
    /// The uuid's 16 bytes when its hex is all lower case (the form names
    /// pack in, `names::Packed`), found by the same pass that checks its
    /// shape: a listing of a million names decodes each uuid once.
    pub lower_uuid: Option<[u8; 16]>,
}

const UUID_LEN: usize = 36;

impl<'a> TaskName<'a> {
    /// Parses a stem: seq = digits before the first `_`, uuid = the last 36
    /// characters, task id = what is between. Returns None for anything else.
    pub fn parse(stem: &'a str) -> Option<TaskName<'a>> {
        let (seq_text, rest) = stem.split_once('_')?;
        if seq_text.is_empty() || seq_text.len() > 20 || !seq_text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let seq = seq_text.parse().ok()?;
        // The uuid is ASCII: its start must be a character boundary, or the
        // name is not ours (and slicing there would split a character).
        if rest.len() < UUID_LEN + 2 || !rest.is_char_boundary(rest.len() - UUID_LEN) {
            return None;
        }
        let (id_part, uuid) = rest.split_at(rest.len() - UUID_LEN);
        let task_id = id_part.strip_suffix('_')?;
        // U+FFFD is what a name that is not UTF-8 becomes when listed: such
        // a file cannot be opened by that name, so it is not taken as a task
        // (it is counted as an unrecognised file instead).
        let unusable = if task_id.is_ascii() {
            task_id.bytes().any(|b| b.is_ascii_control() || b == b'/')
        } else {
            task_id.chars().any(|c| c == '\u{FFFD}' || c.is_control() || c == '/')
        };
        if task_id.is_empty() || unusable {
            return None;
        }
        let (bytes, lower) = uuid_bytes(uuid.as_bytes())?;
        Some(TaskName { seq, task_id, uuid, lower_uuid: lower.then_some(bytes) })
    }
}

/// Where a uuid's 32 hex digits are, around its dashes at 8, 13, 18, 23.
const UUID_DIGITS: [usize; 32] = {
    let mut at = [0; 32];
    let (mut i, mut pos) = (0, 0);
    while pos < UUID_LEN {
        if !matches!(pos, 8 | 13 | 18 | 23) {
            at[i] = pos;
            i += 1;
        }
        pos += 1;
    }
    at
};

/// A byte's hex value; upper-case digits are marked with `UPPER`, anything
/// else is `NOT_HEX`.
const HEX: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = match b as u8 {
            c @ b'0'..=b'9' => c - b'0',
            c @ b'a'..=b'f' => c - b'a' + 10,
            c @ b'A'..=b'F' => (c - b'A' + 10) | UPPER,
            _ => NOT_HEX,
        };
        b += 1;
    }
    table
};
const UPPER: u8 = 0x10;
const NOT_HEX: u8 = 0xff;

/// A uuid-shaped text's 16 bytes, and whether its hex is all lower case;
/// `None` for anything not uuid-shaped (36 bytes, hex with dashes at 8,
/// 13, 18 and 23, either case).
fn uuid_bytes(text: &[u8]) -> Option<([u8; 16], bool)> {
    if text.len() != UUID_LEN || [8, 13, 18, 23].iter().any(|&at| text[at] != b'-') {
        return None;
    }
    let (mut out, mut flags) = ([0u8; 16], 0u8);
    for (i, byte) in out.iter_mut().enumerate() {
        let hi = HEX[usize::from(text[UUID_DIGITS[2 * i]])];
        let lo = HEX[usize::from(text[UUID_DIGITS[2 * i + 1]])];
        flags |= hi | lo;
        *byte = (hi & 0x0f) << 4 | (lo & 0x0f);
    }
    if flags & !(UPPER | 0x0f) != 0 {
        return None;
    }
    Some((out, flags & UPPER == 0))
}

/// Which of the three result files a name in `done/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResultKind {
    /// `.result.json`: the task ran; its exit code decides finished/failed.
    Ran,
    /// `.skipped.json`: duplicate idempotency key, not run.
    Skipped,
    /// `.cancelled.json`: cancelled while pending.
    Cancelled,
}

impl ResultKind {
    pub fn suffix(self) -> &'static str {
        match self {
            ResultKind::Ran => ".result.json",
            ResultKind::Skipped => ".skipped.json",
            ResultKind::Cancelled => ".cancelled.json",
        }
    }
}

/// What a file in a queue directory is, by its name alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Spec,
    Result(ResultKind),
}

/// A queue-directory file name split into the task stem and its kind.
/// Dot-files (temp files) and names that are not task files give None.
pub fn parse_entry(file_name: &str) -> Option<(&str, EntryKind)> {
    parse_task_entry(file_name).map(|(stem, _, kind)| (stem, kind))
}

/// As [`parse_entry`], with the stem's parts.
pub fn parse_task_entry(file_name: &str) -> Option<(&str, TaskName<'_>, EntryKind)> {
    if file_name.starts_with('.') {
        return None;
    }
    for kind in [ResultKind::Ran, ResultKind::Skipped, ResultKind::Cancelled] {
        if let Some(stem) = file_name.strip_suffix(kind.suffix()) {
            return TaskName::parse(stem).map(|name| (stem, name, EntryKind::Result(kind)));
        }
    }
    let stem = file_name.strip_suffix(".json")?;
    TaskName::parse(stem).map(|name| (stem, name, EntryKind::Spec))
}

/// The file name of a task's spec.
pub fn spec_file_name(stem: &str) -> String {
    format!("{stem}.json")
}

/// The file name of one of a task's files.
pub fn entry_file_name(stem: &str, kind: EntryKind) -> String {
    match kind {
        EntryKind::Spec => spec_file_name(stem),
        EntryKind::Result(result) => result_file_name(stem, result),
    }
}

/// The file name of a task's result of the given kind.
pub fn result_file_name(stem: &str, kind: ResultKind) -> String {
    format!("{stem}{}", kind.suffix())
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: &str = "2b7c9c9b-1234-4cde-8f00-0123456789ab";

    /// The plain reading of the rule `uuid_bytes` implements with tables.
    fn uuid_by_the_rule(text: &[u8]) -> Option<([u8; 16], bool)> {
        let shaped = text.len() == 36
            && text.iter().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => *b == b'-',
                _ => b.is_ascii_hexdigit(),
            });
        if !shaped {
            return None;
        }
        let digits: Vec<u8> = text.iter().copied().filter(|&b| b != b'-').collect();
        let value = |b: u8| (b as char).to_digit(16).unwrap() as u8;
        let mut out = [0u8; 16];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = value(digits[2 * i]) << 4 | value(digits[2 * i + 1]);
        }
        Some((out, !text.iter().any(|b| b.is_ascii_uppercase())))
    }

    #[test]
    fn uuid_bytes_follow_the_rule_for_any_text() {
        let alphabet: Vec<u8> =
            b"0123456789abcdefABCDEFgG-_ z/".iter().copied().chain([0x00, 0x7f, 0xc3, 0xff]).collect();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut shaped = 0;
        for round in 0..200_000 {
            let mut text: Vec<u8> = UUID.as_bytes().to_vec();
            // Mostly near-uuids (a few bytes changed), some other lengths.
            for _ in 0..rng.usize(0..4) {
                let at = rng.usize(0..text.len());
                text[at] = alphabet[rng.usize(0..alphabet.len())];
            }
            if round % 10 == 0 {
                text.truncate(rng.usize(0..=36));
            }
            if round % 3 == 0 {
                text.make_ascii_uppercase();
            }
            let expected = uuid_by_the_rule(&text);
            shaped += usize::from(expected.is_some());
            assert_eq!(uuid_bytes(&text), expected, "{:?}", String::from_utf8_lossy(&text));
        }
        assert!(shaped > 10_000, "the cases must include uuids ({shaped})");
    }

    #[test]
    fn parses_both_seq_forms() {
        let padded = format!("000012_T014_{UUID}");
        let name = TaskName::parse(&padded).unwrap();
        assert_eq!((name.seq, name.task_id, name.uuid), (12, "T014", UUID));

        let micros = format!("0001736381200123456_Tab12cd_{UUID}");
        let name = TaskName::parse(&micros).unwrap();
        assert_eq!((name.seq, name.task_id), (1_736_381_200_123_456, "Tab12cd"));
    }

    #[test]
    fn task_id_may_contain_underscores() {
        let stem = format!("7_my_task_{UUID}");
        assert_eq!(TaskName::parse(&stem).unwrap().task_id, "my_task");
    }

    #[test]
    fn rejects_malformed_names() {
        for bad in [
            String::new(),
            "x_T1_".to_string(),
            format!("_T1_{UUID}"),
            format!("12__{UUID}"),
            format!("12_T1{UUID}"),
            "12_T1_not-a-uuid-at-all-but-36-chars-xx".to_string(),
            format!("1a_T1_{UUID}"),
        ] {
            assert!(TaskName::parse(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn non_ascii_never_panics() {
        for text in ["é_é_é", "1_ééééééééééééééééééééééééééééééééééé", "1_x_ü"]
        {
            let _ = TaskName::parse(text);
        }
    }

    #[test]
    fn entry_kinds() {
        let stem = format!("000012_T014_{UUID}");
        assert_eq!(parse_entry(&format!("{stem}.json")), Some((stem.as_str(), EntryKind::Spec)));
        assert_eq!(
            parse_entry(&format!("{stem}.result.json")),
            Some((stem.as_str(), EntryKind::Result(ResultKind::Ran)))
        );
        assert_eq!(
            parse_entry(&format!("{stem}.cancelled.json")),
            Some((stem.as_str(), EntryKind::Result(ResultKind::Cancelled)))
        );
        assert_eq!(parse_entry(&format!(".tmp.{stem}.json.{UUID}")), None);
        assert_eq!(parse_entry("notes.txt"), None);
    }

    #[test]
    fn records_tolerate_missing_optional_and_unknown_fields() {
        let spec: TaskSpec = serde_json::from_str(
            r#"{"task_id":"T014","idempotency_key":"k","lease_id":"1","target_node":"a",
                "seq":12,"uuid":"u","created_at":1,"cwd":"/","command":"echo","future":true}"#,
        )
        .unwrap();
        assert!(spec.env.is_empty());
        assert_eq!(spec.gpus, 0);

        let result: TaskResult = serde_json::from_str(
            r#"{"task_id":"T014","idempotency_key":"k","node":"a","started_at":1,
                "finished_at":2,"exit_code":-1,"stdout":"","stderr":"","runtime_s":0.0}"#,
        )
        .unwrap();
        assert_eq!(result.command, None);

        let hb: Heartbeat = serde_json::from_str(r#"{"node":"a","ts":5,"running_task_id":null}"#).unwrap();
        assert_eq!(hb.running_task_id, None);

        let meta: LeaseMeta = serde_json::from_str(
            r#"{"lease_type":"local","lease_id":"local:h","created_at":1,"local":{"total_gpus":8,"parallel":1}}"#,
        )
        .unwrap();
        assert!(matches!(meta, LeaseMeta::Local { .. }));
    }

    #[test]
    fn nested_records_refuse_arrays_where_objects_belong() {
        assert!(from_nested_record::<LeaseMeta>(
            br#"{"lease_type":"local","lease_id":"local:h","local":[4,2]}"#
        )
        .is_err());
        assert!(from_nested_record::<LeaseRegistry>(br#"{"leases":{"1":[5,"x"]}}"#).is_err());
        let meta = br#"{"lease_type":"slurm","lease_id":"7","slurm":{"sbatch_args":["--nodes=1"]}}"#;
        assert!(from_nested_record::<LeaseMeta>(meta).is_ok());
    }

    #[test]
    fn a_record_is_an_object_never_an_array() {
        assert!(from_record::<TaskResult>(b"[1,2,3]").is_err());
        let result = from_record::<Heartbeat>(b" \n {\"node\":\"a\",\"ts\":1}");
        assert_eq!(result.unwrap().ts, 1);
        assert!(from_record::<Heartbeat>(b"").is_err());
    }

    #[test]
    fn timestamps_must_be_integers_like_the_existing_tool() {
        let float_ts = r#"{"node":"a","ts":5.5}"#;
        assert!(serde_json::from_str::<Heartbeat>(float_ts).is_err());
    }
}
