//! The facts file's bytes: a header naming the format version and the run
//! directory it describes, then records, each `len | checksum | payload`.
//!
//! Pure: encoding and decoding byte slices, no I/O. A record that does not
//! check out ends the readable part of the file (what follows it is read
//! from the run directory instead): the cache can cost time, never truth.

use std::sync::Arc;

use super::Facts;
use crate::index::{LogPath, ResultSummary, SpecSummary};
use crate::model::ResultKind;
use crate::names::{Packed, StoredName, PACKED_BYTES};
use crate::task_logs::LogStream;

/// Bumped whenever a record's layout changes: a file of another version is
/// ignored and replaced.
pub const VERSION: u32 = 2;
const MAGIC: &[u8; 8] = b"LQFACTS\0";
/// No record of ours comes near this; a length beyond it is corruption.
pub const MAX_RECORD: usize = 1 << 20;
/// `len` and `checksum` before each payload.
pub const RECORD_HEAD: usize = 8;

const TAG_SPEC: u8 = 1;
const TAG_RESULT: u8 = 2;

const NAME_PACKED: u8 = 0;
const NAME_TEXT: u8 = 1;

/// How a log path a result names is stored: most are one a runner derives
/// from the task's name and node, found again from them (`LogPath::Derived`).
const PATH_DERIVED: u8 = 1;
const PATH_LITERAL: u8 = 2;

/// FNV-1a, 32 bits: catches torn and flipped bytes; the file is ours, not
/// an adversary's, so a cryptographic hash buys nothing.
pub fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

/// The header for a run directory's identity.
pub fn header(identity: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + identity.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(identity.len() as u32).to_le_bytes());
    out.extend_from_slice(identity.as_bytes());
    out.extend_from_slice(&checksum(&out).to_le_bytes());
    out
}

/// Why a file's header is not one this build can use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer bytes than a header: an empty file, or one cut short.
    Short,
    NotOurs,
    Version(u32),
    OtherRun(String),
    Corrupt,
}

impl std::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderError::Short => f.write_str("it is empty or cut short"),
            HeaderError::NotOurs => f.write_str("it is not a leaseq facts file"),
            HeaderError::Version(v) => {
                write!(f, "it was written by another version (format {v}, this is {VERSION})")
            }
            HeaderError::OtherRun(id) => write!(f, "it describes another run directory ({id})"),
            HeaderError::Corrupt => f.write_str("its header is corrupt"),
        }
    }
}

/// Checks a header against the expected identity; the header's length.
pub fn check_header(bytes: &[u8], identity: &str) -> Result<usize, HeaderError> {
    if bytes.len() < 16 {
        return Err(if MAGIC.starts_with(bytes) { HeaderError::Short } else { HeaderError::NotOurs });
    }
    if &bytes[..8] != MAGIC {
        return Err(HeaderError::NotOurs);
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default());
    let len = u32::from_le_bytes(bytes[12..16].try_into().unwrap_or_default()) as usize;
    if len > 64 * 1024 {
        return Err(HeaderError::Corrupt);
    }
    let end = 16 + len;
    if bytes.len() < end + 4 {
        return Err(HeaderError::Short);
    }
    let stored = u32::from_le_bytes(bytes[end..end + 4].try_into().unwrap_or_default());
    if stored != checksum(&bytes[..end]) {
        return Err(HeaderError::Corrupt);
    }
    if version != VERSION {
        return Err(HeaderError::Version(version));
    }
    let found = String::from_utf8_lossy(&bytes[16..end]);
    if found != identity {
        return Err(HeaderError::OtherRun(found.into_owned()));
    }
    Ok(end + 4)
}

/// Appends one record for `facts`.
pub fn encode(facts: &Facts, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0; RECORD_HEAD]);
    match facts {
        Facts::Spec { node, name, spec } => {
            out.push(TAG_SPEC);
            put_str(out, node);
            put_name(out, name);
            out.extend_from_slice(&spec.created_at.to_le_bytes());
            out.extend_from_slice(&spec.gpus.to_le_bytes());
            put_str(out, &spec.command);
            put_str(out, &spec.cwd);
        }
        Facts::Result { node, name, kind, result } => {
            out.push(TAG_RESULT);
            put_str(out, node);
            put_name(out, name);
            out.push(kind_code(*kind));
            out.extend_from_slice(&result.started_at.to_le_bytes());
            out.extend_from_slice(&result.finished_at.to_le_bytes());
            out.extend_from_slice(&result.exit_code.to_le_bytes());
            out.extend_from_slice(&result.runtime_s.to_le_bytes());
            put_path(out, &result.stdout, node, name, LogStream::Stdout);
            put_path(out, &result.stderr, node, name, LogStream::Stderr);
            put_opt(out, result.command.as_deref());
            put_opt(out, result.gpus_assigned.as_deref());
            put_opt(out, result.error.as_deref());
            put_opt(out, result.cwd.as_deref());
            match result.gpus_requested {
                None => out.push(0),
                Some(gpus) => {
                    out.push(1);
                    out.extend_from_slice(&gpus.to_le_bytes());
                }
            }
        }
    }
    let payload = &out[start + RECORD_HEAD..];
    let (len, sum) = (payload.len() as u32, checksum(payload));
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&sum.to_le_bytes());
}

/// What decoding the bytes after the header gave.
#[derive(Debug, Default)]
pub struct Decoded {
    pub facts: Vec<Facts>,
    /// Where each fact's record starts in the bytes decoded.
    pub at: Vec<usize>,
    /// Bytes taken by whole, good records.
    pub consumed: usize,
    /// The bytes end inside a record (more may follow in the file).
    pub partial: bool,
    /// A record did not check out: nothing after it can be trusted.
    pub corrupt: Option<String>,
}

/// Decodes whole records from `bytes`, at most `max`.
pub fn decode(bytes: &[u8], max: usize) -> Decoded {
    let mut out = Decoded::default();
    let mut at = 0;
    let mut last = Last::default();
    while out.facts.len() < max {
        let rest = &bytes[at..];
        if rest.is_empty() {
            break;
        }
        if rest.len() < RECORD_HEAD {
            out.partial = true;
            break;
        }
        let len = u32::from_le_bytes(rest[..4].try_into().unwrap_or_default()) as usize;
        let sum = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
        if len == 0 || len > MAX_RECORD {
            out.corrupt = Some(format!("a record claims {len} bytes"));
            break;
        }
        if rest.len() < RECORD_HEAD + len {
            out.partial = true;
            break;
        }
        let payload = &rest[RECORD_HEAD..RECORD_HEAD + len];
        if checksum(payload) != sum {
            out.corrupt = Some("a record's checksum does not match".into());
            break;
        }
        match parse(payload, &mut last) {
            Some(facts) => {
                out.facts.push(facts);
                out.at.push(at);
            }
            None => {
                out.corrupt = Some("a record does not parse".into());
                break;
            }
        }
        at += RECORD_HEAD + len;
        out.consumed = at;
    }
    out
}

/// The length a record at the start of `bytes` claims, when its head is there.
pub fn record_len(bytes: &[u8]) -> Option<usize> {
    let head: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(RECORD_HEAD + u32::from_le_bytes(head) as usize)
}

fn kind_code(kind: ResultKind) -> u8 {
    match kind {
        ResultKind::Ran => 0,
        ResultKind::Skipped => 1,
        ResultKind::Cancelled => 2,
    }
}

pub(super) fn put_str(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
}

/// A name as its packed bytes (no text to parse when read back), or as
/// text when it does not pack.
pub(super) fn put_name(out: &mut Vec<u8>, name: &StoredName) {
    match name {
        StoredName::Packed(packed) => {
            out.push(NAME_PACKED);
            out.extend_from_slice(&packed.to_bytes());
        }
        StoredName::Text(text) => {
            out.push(NAME_TEXT);
            put_str(out, text);
        }
    }
}

fn put_opt(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        None => out.push(0),
        Some(text) => {
            out.push(1);
            put_str(out, text);
        }
    }
}

fn put_path(out: &mut Vec<u8>, path: &LogPath, node: &str, name: &StoredName, stream: LogStream) {
    match path.unless_derivable_for(node, name, stream) {
        Some(path) => {
            out.push(PATH_LITERAL);
            put_str(out, path);
        }
        None => out.push(PATH_DERIVED),
    }
}

/// A cursor over one payload; every read is bounds-checked.
pub(super) struct Fields<'a> {
    bytes: &'a [u8],
}

/// The previous record's node and cwd: a node has thousands of records in
/// a row, and thousands of tasks share a few working directories, so equal
/// ones share one allocation (a relaunch at 10^6 tasks decodes 10^6
/// records or more; the allocator was the largest cost).
#[derive(Default)]
struct Last {
    node: Option<Arc<str>>,
    cwd: Option<Arc<str>>,
}

impl Last {
    fn share(slot: &mut Option<Arc<str>>, text: &str) -> Arc<str> {
        match slot {
            Some(same) if **same == *text => same.clone(),
            _ => slot.insert(Arc::from(text)).clone(),
        }
    }
}

impl<'a> Fields<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Fields<'a> {
        Fields { bytes }
    }
    /// Every byte was read.
    pub(super) fn is_done(&self) -> bool {
        self.bytes.is_empty()
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Some(head)
    }
    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(super) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(super) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(super) fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn f64(&mut self) -> Option<f64> {
        Some(f64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(super) fn text(&mut self) -> Option<&'a str> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }
    fn str(&mut self) -> Option<Arc<str>> {
        self.text().map(Arc::from)
    }
    pub(super) fn name(&mut self) -> Option<StoredName> {
        match self.u8()? {
            NAME_PACKED => {
                Packed::from_bytes(self.take(PACKED_BYTES)?.try_into().ok()?).map(StoredName::Packed)
            }
            // Text only for what does not pack: a packable one is corrupt
            // (two forms of one name would not compare equal).
            NAME_TEXT => Some(StoredName::new(self.text()?)).filter(|n| matches!(n, StoredName::Text(_))),
            _ => None,
        }
    }
    fn opt(&mut self) -> Option<Option<Arc<str>>> {
        match self.u8()? {
            0 => Some(None),
            1 => self.str().map(Some),
            _ => None,
        }
    }
    fn path(&mut self) -> Option<LogPath> {
        match self.u8()? {
            PATH_DERIVED => Some(LogPath::Derived),
            PATH_LITERAL => self.str().map(LogPath::Named),
            _ => None,
        }
    }
}

fn parse(payload: &[u8], last: &mut Last) -> Option<Facts> {
    let mut f = Fields { bytes: payload };
    let tag = f.u8()?;
    let node = Last::share(&mut last.node, f.text()?);
    let name = f.name()?;
    let facts = match tag {
        TAG_SPEC => {
            let created_at = f.i64()?;
            let gpus = f.u32()?;
            let command = f.str()?;
            let cwd = Last::share(&mut last.cwd, f.text()?);
            Facts::Spec { node, name, spec: SpecSummary { created_at, command, cwd, gpus } }
        }
        TAG_RESULT => {
            let kind = match f.u8()? {
                0 => ResultKind::Ran,
                1 => ResultKind::Skipped,
                2 => ResultKind::Cancelled,
                _ => return None,
            };
            let (started_at, finished_at) = (f.i64()?, f.i64()?);
            let (exit_code, runtime_s) = (f.i32()?, f.f64()?);
            let (stdout, stderr) = (f.path()?, f.path()?);
            let (command, gpus_assigned, error) = (f.opt()?, f.opt()?, f.opt()?);
            let cwd = match f.u8()? {
                0 => None,
                1 => Some(Last::share(&mut last.cwd, f.text()?)),
                _ => return None,
            };
            let gpus_requested = match f.u8()? {
                0 => None,
                1 => Some(f.u32()?),
                _ => return None,
            };
            let result = ResultSummary {
                started_at,
                finished_at,
                exit_code,
                runtime_s,
                stdout,
                stderr,
                command,
                cwd,
                gpus_requested,
                gpus_assigned,
                error,
            };
            Facts::Result { node, name, kind, result }
        }
        _ => return None,
    };
    f.bytes.is_empty().then_some(facts)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> Vec<Facts> {
        let name = StoredName::new("0001736381200123456_Tab12cd_2b7c9c9b-0000-4000-8000-000000000001");
        let node: Arc<str> = Arc::from("nodeA");
        vec![
            Facts::Spec {
                node: node.clone(),
                name: name.clone(),
                spec: SpecSummary {
                    created_at: 1_736_381_200,
                    command: Arc::from("python train.py --lr 3e-4 # é"),
                    cwd: Arc::from("/scratch/x"),
                    gpus: 2,
                },
            },
            Facts::Result {
                node: node.clone(),
                name: name.clone(),
                kind: ResultKind::Ran,
                result: ResultSummary {
                    started_at: 1_736_381_300,
                    finished_at: 1_736_381_400,
                    exit_code: 3,
                    runtime_s: 100.5,
                    stdout: LogPath::Derived,
                    stderr: "elsewhere/err.txt".into(),
                    command: None,
                    gpus_assigned: Some(Arc::from("0,1")),
                    cwd: Some(Arc::from("/scratch/x")),
                    gpus_requested: Some(2),
                    error: Some(Arc::from("exited 3")),
                },
            },
        ]
    }

    #[test]
    fn records_round_trip_and_derived_paths_are_not_kept() {
        let facts = sample();
        let mut bytes = Vec::new();
        facts.iter().for_each(|f| encode(f, &mut bytes));
        let decoded = decode(&bytes, usize::MAX);
        assert_eq!(decoded.facts, facts);
        assert_eq!((decoded.consumed, decoded.partial, decoded.corrupt), (bytes.len(), false, None));
        // Either runner's path, as a result wrote it, is stored as derived.
        let Facts::Result { node, name, kind, result } = &facts[1] else { panic!("a result") };
        for written in [
            crate::task_logs::runner_log_relative(node, &name.text(), LogStream::Stdout),
            crate::task_logs::legacy_log_relative("Tab12cd", LogStream::Stdout),
        ] {
            let named = ResultSummary { stdout: written.into(), ..result.clone() };
            let fact = Facts::Result { node: node.clone(), name: name.clone(), kind: *kind, result: named };
            let mut again = Vec::new();
            encode(&fact, &mut again);
            assert_eq!(decode(&again, 1).facts, [facts[1].clone()]);
        }
    }

    #[test]
    fn names_are_packed_or_text_and_one_name_has_one_form() {
        let spec = |name: StoredName| Facts::Spec {
            node: Arc::from("n"),
            name,
            spec: SpecSummary { created_at: 1, command: Arc::from("x"), cwd: Arc::from("/"), gpus: 0 },
        };
        let odd = StoredName::new("000012_Long_task_id_2b7c9c9b-0000-4000-8000-000000000001");
        assert!(matches!(odd, StoredName::Text(_)));
        let mut bytes = Vec::new();
        encode(&spec(odd.clone()), &mut bytes);
        assert_eq!(decode(&bytes, 1).facts, [spec(odd)]);
        // A name that packs, written as text (no writer does): refused.
        let packable = "000012_T014_2b7c9c9b-0000-4000-8000-000000000001";
        let mut forged = Vec::new();
        encode(&spec(StoredName::Text(packable.into())), &mut forged);
        assert!(decode(&forged, 1).corrupt.is_some());
    }

    #[test]
    fn a_cut_record_is_partial_and_a_flipped_byte_is_corrupt() {
        let mut bytes = Vec::new();
        sample().iter().for_each(|f| encode(f, &mut bytes));
        let first = record_len(&bytes).unwrap();
        let cut = decode(&bytes[..bytes.len() - 3], usize::MAX);
        assert_eq!((cut.facts.len(), cut.consumed, cut.partial), (1, first, true));
        let mut flipped = bytes.clone();
        flipped[first + 20] ^= 0x40;
        let bad = decode(&flipped, usize::MAX);
        assert_eq!(bad.facts.len(), 1);
        assert!(bad.corrupt.is_some());
    }

    #[test]
    fn headers_name_version_and_run() {
        let h = header("/runs/1 dev 1 ino 2");
        assert_eq!(check_header(&h, "/runs/1 dev 1 ino 2"), Ok(h.len()));
        assert!(matches!(check_header(&h, "/runs/1 dev 1 ino 3"), Err(HeaderError::OtherRun(_))));
        assert_eq!(check_header(&h[..h.len() - 1], "x"), Err(HeaderError::Short));
        assert_eq!(check_header(b"", "x"), Err(HeaderError::Short));
        assert_eq!(check_header(b"{\"not\": \"ours\"} and more", "x"), Err(HeaderError::NotOurs));
        let mut other = h.clone();
        other[8] = 9;
        assert_eq!(check_header(&other, "/runs/1 dev 1 ino 2"), Err(HeaderError::Corrupt));
        let mut v1 = h[..h.len() - 4].to_vec();
        v1[8] = 1;
        let sum = checksum(&v1);
        v1.extend_from_slice(&sum.to_le_bytes());
        assert_eq!(check_header(&v1, "/runs/1 dev 1 ino 2"), Err(HeaderError::Version(1)));
    }
}
