//! Task logs: following (`tail -f`) and paging `logs/<task_id>.out/.err`.
//!
//! Owns: reading log files by **polling from byte offsets with bounded
//! reads**. There is no inotify here: it does not see writes made by other
//! NFS clients. Each poll re-opens the file (NFS close-to-open consistency
//! then gives fresh attributes), `fstat`s it and reads only the bytes that
//! arrived, at most a given budget; a multi-GB log is never read whole, and
//! paging through it costs O(page), not O(file).
//!
//! Must not: run on the UI thread. Everything here blocks on file I/O
//! ([`LogTail::open`], [`LogTail::poll`], [`read_page`]); the UI reaches it
//! through [`follow`] (which runs every read on a bounded pool) or by
//! calling [`read_page`] on a blocking thread. Everything it returns is
//! sanitised with [`crate::sanitize`] (no terminal control sequences).
//!
//! Line rules, the same for following and paging: lines end at `\n`; a
//! trailing `\r` (CRLF) is dropped; a `\r` followed by more text restarts the
//! line, as a terminal would show it (progress bars keep the text after the
//! last `\r`); invalid UTF-8, NUL and other control bytes show as `�`; a line
//! is kept to [`MAX_LINE_BYTES`] raw bytes and shown to [`MAX_LINE_CHARS`]
//! characters, then ends with [`ELLIPSIS`].

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::sanitize::{clean_line, clean_log};

/// `ui.log_tail_lines`' default.
pub const DEFAULT_TAIL_LINES: usize = 200;
/// How much of the end of a file opening a tail reads.
pub const DEFAULT_INITIAL_BYTES: u64 = 256 << 10;
/// The most one poll reads; more than this arriving between two polls is
/// skipped (the newest bytes are kept).
pub const DEFAULT_POLL_BYTES: u64 = 1 << 20;
/// The default interval of [`follow`].
pub const DEFAULT_POLL_EVERY: Duration = Duration::from_millis(500);
/// Paging reads in chunks of this size.
pub const PAGE_CHUNK: u64 = 64 << 10;
/// A sensible `max_bytes` for [`read_page`].
pub const DEFAULT_PAGE_BYTES: u64 = 4 << 20;
/// Characters shown of one line.
pub const MAX_LINE_CHARS: usize = 4096;
/// Raw bytes kept of one line (escape sequences make raw lines longer than
/// what is shown).
pub const MAX_LINE_BYTES: usize = 64 << 10;
/// Marks a cut line, and a line whose start was not read.
pub const ELLIPSIS: char = '…';
/// A run of this many NUL bytes in newly arrived data is held back for one
/// poll: on NFS a writer's pages can reach the server out of order, and a
/// reader then briefly sees a page-sized hole of zeros that later fills in.
const NUL_HOLE: usize = 4096;
/// Bytes before the read offset remembered to notice a file that was
/// truncated and rewritten past the offset between two polls (a retry
/// reusing the same log path).
const FINGERPRINT: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Out,
    Err,
}

impl Stream {
    pub fn label(self) -> &'static str {
        match self {
            Stream::Out => "stdout",
            Stream::Err => "stderr",
        }
    }
}

/// Why a tail started again from the end of its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// The file was missing (or unreadable) and now is there.
    Appeared,
    /// It is shorter than what was already read.
    Truncated,
    /// The path names another file (new inode).
    Replaced,
    /// Same file, not shorter, but the bytes before the offset changed:
    /// truncated and rewritten between two polls.
    Rewritten,
}

/// What one [`LogTail::poll`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollOutcome {
    /// Anything [`LogTail::lines`] or the flags show changed.
    pub changed: bool,
    /// Complete lines added to the window (at most its capacity).
    pub new_lines: usize,
    /// Bytes read from the file by this poll.
    pub bytes_read: u64,
    /// Bytes that arrived but were skipped because more than the poll's
    /// budget arrived.
    pub skipped_bytes: u64,
    pub restarted: Option<Restart>,
}

// ---------------------------------------------------------------------------
// One line being assembled.

/// The raw bytes of one line, with `\r` handling and a byte cap.
#[derive(Debug, Clone, Default)]
struct LineBuf {
    bytes: Vec<u8>,
    /// Bytes were dropped after the cap.
    overlong: bool,
    /// The last byte pushed (kept or not) was `\r`.
    ends_with_cr: bool,
}

impl LineBuf {
    fn clear(&mut self) {
        self.bytes.clear();
        self.overlong = false;
        self.ends_with_cr = false;
    }

    fn is_empty(&self) -> bool {
        self.bytes.is_empty() && !self.overlong
    }

    /// Appends a piece of the line (no `\n` in it).
    fn push(&mut self, seg: &[u8]) {
        let Some(&last) = seg.last() else { return };
        // A `\r` followed by more text starts the line over.
        let restart = seg.windows(2).rposition(|w| w[0] == b'\r' && w[1] != b'\r').map(|i| i + 1);
        let seg = match restart {
            Some(at) => {
                self.clear();
                &seg[at..]
            }
            None if self.ends_with_cr && seg[0] != b'\r' => {
                self.clear();
                seg
            }
            None => seg,
        };
        self.ends_with_cr = last == b'\r';
        if self.overlong {
            return;
        }
        let room = MAX_LINE_BYTES - self.bytes.len();
        if seg.len() > room {
            self.bytes.extend_from_slice(&seg[..room]);
            self.overlong = true;
        } else {
            self.bytes.extend_from_slice(seg);
        }
    }

    /// The line as shown. A partial line does not show a UTF-8 sequence cut
    /// by the end of what was read so far.
    fn render(&self, partial: bool) -> String {
        let mut end = self.bytes.len();
        while end > 0 && self.bytes[end - 1] == b'\r' {
            end -= 1;
        }
        if partial && !self.overlong {
            end -= incomplete_utf8_suffix(&self.bytes[..end]);
        }
        let text = String::from_utf8_lossy(&self.bytes[..end]);
        cap_chars(clean_log(&text), self.overlong)
    }
}

/// Bytes at the end of `b` that start a UTF-8 sequence not complete yet.
fn incomplete_utf8_suffix(b: &[u8]) -> usize {
    for back in 1..=b.len().min(3) {
        let c = b[b.len() - back];
        if c & 0xC0 == 0x80 {
            continue;
        }
        let need = match c {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if need > back { back } else { 0 };
    }
    0
}

fn cap_chars(mut s: String, cut: bool) -> String {
    if let Some((at, _)) = s.char_indices().nth(MAX_LINE_CHARS) {
        s.truncate(at);
        s.push(ELLIPSIS);
    } else if cut {
        s.push(ELLIPSIS);
    }
    s
}

/// Renders one complete line's raw bytes (no `\n`).
fn render_line(raw: &[u8]) -> String {
    let mut line = LineBuf::default();
    line.push(raw);
    line.render(false)
}

/// Bytes that are not text: control bytes other than tab, newline, CR,
/// ESC, backspace and form feed; DEL; bytes of invalid UTF-8. A sequence
/// cut by the end of `data` is not counted.
fn count_non_text(data: &[u8]) -> u64 {
    let mut bad = data
        .iter()
        .filter(|&&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x1b | 0x08 | 0x0c)) || b == 0x7f)
        .count();
    let mut rest = data;
    while let Err(e) = std::str::from_utf8(rest) {
        let Some(len) = e.error_len() else { break };
        bad += len;
        rest = &rest[e.valid_up_to() + len..];
    }
    bad as u64
}

/// More than 30% of the bytes are not text (random bytes: about 60%).
fn looks_binary(non_text: u64, total: u64) -> bool {
    total > 0 && non_text * 10 > total * 3
}

/// Position of the `(n+1)`-th `\n` counted from the end.
fn nth_newline_from_end(data: &[u8], n: usize) -> Option<usize> {
    let mut seen = 0;
    for (i, &b) in data.iter().enumerate().rev() {
        if b == b'\n' {
            if seen == n {
                return Some(i);
            }
            seen += 1;
        }
    }
    None
}

/// Start of the first run of [`NUL_HOLE`] NUL bytes.
fn find_nul_hole(data: &[u8]) -> Option<usize> {
    let mut run = 0;
    for (i, &b) in data.iter().enumerate() {
        if b == 0 {
            run += 1;
            if run == NUL_HOLE {
                return Some(i + 1 - NUL_HOLE);
            }
        } else {
            run = 0;
        }
    }
    None
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The line a tail shows where it skipped bytes.
pub fn skipped_marker(bytes: u64) -> String {
    format!("[{ELLIPSIS} {} skipped {ELLIPSIS}]", human_bytes(bytes))
}

// ---------------------------------------------------------------------------
// File access.

/// Opens for reading without blocking on a FIFO someone put in place of a
/// log, and insists on a regular file.
/// Opens a log for reading: regular files only, checked on the opened
/// descriptor (a FIFO neither blocks the open nor is read; a device is
/// never read, nor becomes the controlling terminal).
pub fn open_regular(path: &Path) -> io::Result<(File, std::fs::Metadata)> {
    crate::store::open_regular_file(path).map_err(|e| match e {
        crate::store::OpenError::Io(e) => e,
        crate::store::OpenError::NotRegular(kind) => {
            io::Error::other(format!("is a {kind}, not a regular file"))
        }
    })
}

/// Reads `[start, end)`, or less if the file ends first.
fn read_range(file: &File, start: u64, end: u64) -> io::Result<Vec<u8>> {
    let want = end.saturating_sub(start) as usize;
    let mut buf = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[got..], start + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

fn describe(path: &Path, error: &io::Error) -> String {
    clean_line(&format!("{}: {error}", path.display()))
}

// ---------------------------------------------------------------------------
// Following one file.

/// The follow-mode state of one log file: the newest lines, sanitised, and
/// where to read next. Blocking: use it off the UI thread.
#[derive(Debug, Clone)]
pub struct LogTail {
    path: PathBuf,
    max_lines: usize,
    max_initial_bytes: u64,
    /// The next byte to read.
    offset: u64,
    /// Complete lines, sanitised, oldest first; at most `max_lines`.
    lines: VecDeque<String>,
    /// The last line, not terminated by `\n` yet.
    pending: LineBuf,
    file_len: u64,
    /// (dev, inode) of the file read so far.
    identity: Option<(u64, u64)>,
    /// The bytes just before `offset` (up to [`FINGERPRINT`]).
    fingerprint: Vec<u8>,
    /// A NUL run seen at this offset, held back once.
    held_hole: Option<u64>,
    truncated_front: bool,
    missing: bool,
    error: Option<String>,
    non_text: u64,
    text_total: u64,
    skipped_bytes: u64,
    restarts: u64,
    bytes_read_last: u64,
    bytes_read_total: u64,
    version: u64,
}

impl LogTail {
    /// Opens a tail on `path`, reading at most `max_initial_bytes` from the
    /// end of the file (plus [`FINGERPRINT`] bytes before them). Never
    /// fails: a missing file is [`missing`](Self::missing), an unreadable
    /// one has an [`error`](Self::error); [`poll`](Self::poll) retries.
    pub fn open(path: impl Into<PathBuf>, max_lines: usize, max_initial_bytes: u64) -> LogTail {
        let mut tail = LogTail {
            path: path.into(),
            max_lines: max_lines.max(1),
            max_initial_bytes,
            offset: 0,
            lines: VecDeque::new(),
            pending: LineBuf::default(),
            file_len: 0,
            identity: None,
            fingerprint: Vec::new(),
            held_hole: None,
            truncated_front: false,
            missing: false,
            error: None,
            non_text: 0,
            text_total: 0,
            skipped_bytes: 0,
            restarts: 0,
            bytes_read_last: 0,
            bytes_read_total: 0,
            version: 0,
        };
        tail.poll(0);
        tail
    }

    /// Reads what arrived since the last poll, at most `max_bytes_per_poll`
    /// bytes (with more, the oldest are skipped and a marker line says how
    /// many). A file that shrank or was replaced restarts from its end, as
    /// in [`open`](Self::open). Cost when nothing changed: one open and one
    /// `fstat`.
    pub fn poll(&mut self, max_bytes_per_poll: u64) -> PollOutcome {
        let version = self.version;
        let mut outcome = PollOutcome::default();
        self.bytes_read_last = 0;
        match open_regular(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // Missing is "unknown", not "gone" (NFS lag): keep the lines.
                self.set_missing(true);
                self.set_error(None);
            }
            Err(e) => {
                self.set_missing(false);
                self.set_error(Some(describe(&self.path, &e)));
            }
            Ok((file, meta)) => {
                self.set_missing(false);
                match self.read_new(&file, &meta, max_bytes_per_poll, &mut outcome) {
                    Ok(()) => self.set_error(None),
                    Err(e) => self.set_error(Some(describe(&self.path, &e))),
                }
            }
        }
        outcome.bytes_read = self.bytes_read_last;
        outcome.changed = self.version != version;
        outcome
    }

    fn read_new(
        &mut self,
        file: &File,
        meta: &std::fs::Metadata,
        max_bytes: u64,
        outcome: &mut PollOutcome,
    ) -> io::Result<()> {
        let identity = (meta.dev(), meta.ino());
        let len = meta.len();
        let restart = match self.identity {
            None => Some(Restart::Appeared),
            Some(id) if id != identity => Some(Restart::Replaced),
            Some(_) if len < self.offset => Some(Restart::Truncated),
            Some(_) => None,
        };
        if let Some(reason) = restart {
            return self.restart(file, identity, len, reason, outcome);
        }
        if len != self.file_len {
            self.file_len = len;
            self.version += 1;
        }
        if len == self.offset {
            return Ok(());
        }
        let arrived = len - self.offset;
        if arrived > max_bytes.max(1) {
            // Too much at once: keep the newest bytes only.
            let start = len - max_bytes.max(1);
            let skipped = start - self.offset;
            let pre = (FINGERPRINT as u64).min(start);
            let buf = self.read(file, start - pre, len)?;
            if buf.len() < pre as usize {
                return Ok(()); // it shrank under us: the next poll sees it
            }
            let (prefix, data) = buf.split_at(pre as usize);
            if !self.pending.is_empty() {
                self.pending.overlong = true;
                outcome.new_lines += self.finish_line();
            }
            self.push_line(skipped_marker(skipped));
            outcome.new_lines += 1;
            self.skipped_bytes += skipped;
            outcome.skipped_bytes = skipped;
            self.held_hole = None;
            let at_line_start = prefix.last().is_none_or(|&b| b == b'\n');
            outcome.new_lines += self.ingest_from(data, at_line_start);
            self.offset = start + data.len() as u64;
            self.fingerprint = buf[buf.len().saturating_sub(FINGERPRINT)..].to_vec();
            self.version += 1;
            return Ok(());
        }
        let pre = self.fingerprint.len() as u64;
        let buf = self.read(file, self.offset - pre, len)?;
        if buf.len() < pre as usize || buf[..pre as usize] != self.fingerprint[..] {
            return self.restart(file, identity, len, Restart::Rewritten, outcome);
        }
        let mut data = &buf[pre as usize..];
        if let Some(at) = find_nul_hole(data) {
            let hole = self.offset + at as u64;
            if self.held_hole != Some(hole) {
                self.held_hole = Some(hole);
                data = &data[..at];
            } else {
                self.held_hole = None;
            }
        }
        if data.is_empty() {
            return Ok(());
        }
        outcome.new_lines += self.ingest(data);
        self.advance(data);
        self.version += 1;
        Ok(())
    }

    /// Starts over from the end of the file, as `open` does.
    fn restart(
        &mut self,
        file: &File,
        identity: (u64, u64),
        len: u64,
        reason: Restart,
        outcome: &mut PollOutcome,
    ) -> io::Result<()> {
        let start = len.saturating_sub(self.max_initial_bytes);
        let pre = (FINGERPRINT as u64).min(start);
        let buf = self.read(file, start - pre, len)?;
        let pre = (pre as usize).min(buf.len());
        let (prefix, data) = buf.split_at(pre);
        self.lines.clear();
        self.pending.clear();
        self.non_text = 0;
        self.text_total = 0;
        self.held_hole = None;
        self.identity = Some(identity);
        self.file_len = len;
        self.truncated_front = start > 0;
        let at_line_start = start == 0 || prefix.last() == Some(&b'\n');
        outcome.new_lines += self.ingest_from(data, at_line_start);
        self.offset = start + data.len() as u64;
        self.fingerprint = buf[buf.len().saturating_sub(FINGERPRINT)..].to_vec();
        if reason != Restart::Appeared {
            self.restarts += 1;
        }
        self.version += 1;
        outcome.restarted = Some(reason);
        Ok(())
    }

    fn read(&mut self, file: &File, start: u64, end: u64) -> io::Result<Vec<u8>> {
        let buf = read_range(file, start, end)?;
        self.bytes_read_last += buf.len() as u64;
        self.bytes_read_total += buf.len() as u64;
        Ok(buf)
    }

    fn advance(&mut self, consumed: &[u8]) {
        self.offset += consumed.len() as u64;
        if consumed.len() >= FINGERPRINT {
            self.fingerprint.clear();
        } else {
            let keep = FINGERPRINT - consumed.len();
            let drop = self.fingerprint.len().saturating_sub(keep);
            self.fingerprint.drain(..drop);
        }
        let from = consumed.len().saturating_sub(FINGERPRINT);
        self.fingerprint.extend_from_slice(&consumed[from..]);
    }

    /// Ingests bytes that may start in the middle of a line: that first
    /// partial line is dropped, unless a `\r` in it starts a whole visible
    /// line (a progress bar); with no line end at all, the fragment is
    /// shown after an ellipsis.
    fn ingest_from(&mut self, data: &[u8], at_line_start: bool) -> usize {
        if at_line_start {
            return self.ingest(data);
        }
        self.truncated_front = true;
        let head_end = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
        let head = &data[..head_end];
        if let Some(cr) = head.windows(2).rposition(|w| w[0] == b'\r' && w[1] != b'\r') {
            return self.ingest(&data[cr + 1..]);
        }
        if head_end < data.len() {
            return self.ingest(&data[head_end + 1..]);
        }
        self.pending.clear();
        self.pending.push(ELLIPSIS.to_string().as_bytes());
        self.ingest(data)
    }

    /// Ingests bytes that continue the pending line. Returns the number of
    /// complete lines added.
    fn ingest(&mut self, mut data: &[u8]) -> usize {
        if data.is_empty() {
            return 0;
        }
        // Only the newest `max_lines` complete lines can survive: do not
        // render the others.
        if let Some(cut) = nth_newline_from_end(data, self.max_lines) {
            self.lines.clear();
            self.pending.clear();
            self.truncated_front = true;
            data = &data[cut + 1..];
        }
        self.non_text += count_non_text(data);
        self.text_total += data.len() as u64;
        let mut added = 0;
        for piece in data.split_inclusive(|&b| b == b'\n') {
            match piece.split_last() {
                Some((b'\n', line)) => {
                    self.pending.push(line);
                    added += self.finish_line();
                }
                _ => self.pending.push(piece),
            }
        }
        added
    }

    fn finish_line(&mut self) -> usize {
        let line = self.pending.render(false);
        self.pending.clear();
        self.push_line(line);
        1
    }

    fn push_line(&mut self, line: String) {
        self.lines.push_back(line);
        while self.lines.len() > self.max_lines {
            self.lines.pop_front();
            self.truncated_front = true;
        }
    }

    fn set_missing(&mut self, missing: bool) {
        if self.missing != missing {
            self.missing = missing;
            self.version += 1;
        }
    }

    fn set_error(&mut self, error: Option<String>) {
        if self.error != error {
            self.error = error;
            self.version += 1;
        }
    }

    /// The window: the newest complete lines and the partial last line, at
    /// most `max_lines` in all, sanitised.
    pub fn lines(&self) -> Vec<String> {
        let partial = self.partial_line();
        let total = self.lines.len() + usize::from(partial.is_some());
        let skip = total.saturating_sub(self.max_lines);
        self.lines.iter().skip(skip).cloned().chain(partial).collect()
    }

    /// The complete lines kept, oldest first.
    pub fn complete_lines(&self) -> impl ExactSizeIterator<Item = &str> + '_ {
        self.lines.iter().map(String::as_str)
    }

    /// The last line as far as it was written (no `\n` yet), if it shows
    /// anything.
    pub fn partial_line(&self) -> Option<String> {
        if self.pending.is_empty() {
            return None;
        }
        Some(self.pending.render(true)).filter(|line| !line.is_empty())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn max_lines(&self) -> usize {
        self.max_lines
    }
    /// The byte offset of the next read.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// The file's length at the last successful look.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }
    /// Older content exists before the first line kept.
    pub fn truncated_front(&self) -> bool {
        self.truncated_front
    }
    /// The file was not there at the last look.
    pub fn missing(&self) -> bool {
        self.missing
    }
    /// Why the file could not be read at the last look.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }
    /// More than 30% of the bytes read since the last (re)start are not
    /// text.
    pub fn binary(&self) -> bool {
        looks_binary(self.non_text, self.text_total)
    }
    /// Bytes skipped since opening because too much arrived at once.
    pub fn skipped_bytes(&self) -> u64 {
        self.skipped_bytes
    }
    /// Times the file was truncated, replaced or rewritten since opening.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }
    /// Bytes read by the last `open` or `poll`.
    pub fn bytes_read_last(&self) -> u64 {
        self.bytes_read_last
    }
    /// Bytes read since opening.
    pub fn bytes_read_total(&self) -> u64 {
        self.bytes_read_total
    }
    /// Changes whenever anything shown changes.
    pub fn version(&self) -> u64 {
        self.version
    }
}

// ---------------------------------------------------------------------------
// Following stdout and stderr merged.

/// Stdout and stderr followed together, lines interleaved in the order the
/// polls found them. Two files carry no common clock, so the order within
/// one poll cannot be known: lines that arrive in the same poll are listed
/// stdout first, then stderr (opening counts as one poll). When one stream
/// restarts (truncated, replaced), its old lines leave the list and its new
/// ones are appended. Partial last lines come after all complete lines,
/// stdout's first.
#[derive(Debug, Clone)]
pub struct MergedTail {
    out: LogTail,
    err: LogTail,
    lines: VecDeque<(Stream, String)>,
    max_lines: usize,
    truncated_front: bool,
}

impl MergedTail {
    pub fn open(
        out: impl Into<PathBuf>,
        err: impl Into<PathBuf>,
        max_lines: usize,
        max_initial_bytes: u64,
    ) -> MergedTail {
        let out = LogTail::open(out, max_lines, max_initial_bytes);
        let err = LogTail::open(err, max_lines, max_initial_bytes);
        let mut merged = MergedTail {
            out,
            err,
            lines: VecDeque::new(),
            max_lines: max_lines.max(1),
            truncated_front: false,
        };
        for stream in [Stream::Out, Stream::Err] {
            let n = merged.tail(stream).lines.len();
            merged.take_new(stream, n);
        }
        merged
    }

    /// Polls stdout, then stderr.
    pub fn poll(&mut self, max_bytes_per_poll: u64) -> (PollOutcome, PollOutcome) {
        let out = self.out.poll(max_bytes_per_poll);
        self.merge(Stream::Out, &out);
        let err = self.err.poll(max_bytes_per_poll);
        self.merge(Stream::Err, &err);
        (out, err)
    }

    fn merge(&mut self, stream: Stream, outcome: &PollOutcome) {
        if outcome.restarted.is_some() {
            self.lines.retain(|(s, _)| *s != stream);
            let n = self.tail(stream).lines.len();
            self.take_new(stream, n);
        } else {
            self.take_new(stream, outcome.new_lines);
        }
    }

    fn take_new(&mut self, stream: Stream, n: usize) {
        let tail = match stream {
            Stream::Out => &self.out,
            Stream::Err => &self.err,
        };
        let have = tail.lines.len();
        let n = n.min(have);
        self.lines.extend(tail.lines.range(have - n..).map(|line| (stream, line.clone())));
        while self.lines.len() > self.max_lines {
            self.lines.pop_front();
            self.truncated_front = true;
        }
    }

    pub fn tail(&self, stream: Stream) -> &LogTail {
        match stream {
            Stream::Out => &self.out,
            Stream::Err => &self.err,
        }
    }

    /// The window, at most `max_lines`, partial lines last.
    pub fn lines(&self) -> Vec<(Stream, String)> {
        let partials: Vec<(Stream, String)> = [Stream::Out, Stream::Err]
            .into_iter()
            .filter_map(|s| self.tail(s).partial_line().map(|line| (s, line)))
            .collect();
        let total = self.lines.len() + partials.len();
        let skip = total.saturating_sub(self.max_lines);
        self.lines.iter().skip(skip).cloned().chain(partials).collect()
    }

    /// Older content exists before the first line shown.
    pub fn truncated_front(&self) -> bool {
        self.truncated_front || self.out.truncated_front() || self.err.truncated_front()
    }
}

// ---------------------------------------------------------------------------
// Paging.

/// Where a page is anchored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageAnchor {
    /// The first lines of the file (`g`).
    Start,
    /// The last lines of the file (`G`).
    End,
    /// The lines just before this offset (PgUp: a page's `start`).
    Before(u64),
    /// The lines from this offset on (PgDn: a page's `end`).
    After(u64),
}

/// One line of a page: its bytes are `[offset, end)` in the file (`end`
/// past its `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageLine {
    pub offset: u64,
    pub end: u64,
    pub text: String,
}

/// Consecutive lines of a file, covering exactly `[start, end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    pub lines: Vec<PageLine>,
    pub start: u64,
    pub end: u64,
    pub file_len: u64,
    pub at_start: bool,
    pub at_end: bool,
    pub bytes_read: u64,
    pub binary: bool,
    pub missing: bool,
    pub error: Option<String>,
}

/// Reads up to `lines` lines at `anchor`, reading at most `max_bytes` (in
/// [`PAGE_CHUNK`] chunks). Pages tile the file: `After(page.end)` and
/// `Before(page.start)` continue exactly where `page` ends and starts, with
/// no overlap and no gap. Offsets should come from earlier pages; one in
/// the middle of a line makes a page edge there (the line shows in two
/// pieces). A line longer than `max_bytes` is shown in pieces of
/// `max_bytes`. An unterminated last line is included. Never fails: a
/// missing file is `missing`, an unreadable one has an `error`. Blocking.
pub fn read_page(path: &Path, anchor: PageAnchor, lines: usize, max_bytes: u64) -> Page {
    let (file, meta) = match open_regular(path) {
        Ok(opened) => opened,
        Err(e) => {
            let missing = e.kind() == io::ErrorKind::NotFound;
            let error = (!missing).then(|| describe(path, &e));
            return Page { missing, error, at_start: true, at_end: true, ..Page::default() };
        }
    };
    let len = meta.len();
    let lines = lines.max(1);
    let max_bytes = max_bytes.max(1);
    let mut page = Page { file_len: len, ..Page::default() };
    let result = match anchor {
        PageAnchor::Start => page_forward(&file, 0, len, lines, max_bytes, &mut page),
        PageAnchor::After(at) => page_forward(&file, at.min(len), len, lines, max_bytes, &mut page),
        PageAnchor::End => page_backward(&file, len, lines, max_bytes, &mut page),
        PageAnchor::Before(at) => page_backward(&file, at.min(len), lines, max_bytes, &mut page),
    };
    if let Err(e) = result {
        page.error = Some(describe(path, &e));
    }
    page.at_start = page.start == 0;
    page.at_end = page.end >= len;
    page
}

fn page_forward(
    file: &File,
    from: u64,
    len: u64,
    lines: usize,
    max_bytes: u64,
    page: &mut Page,
) -> io::Result<()> {
    let limit = len.min(from.saturating_add(max_bytes));
    let mut buf = Vec::new();
    let mut newlines = 0;
    let mut eof = false;
    while newlines < lines {
        let pos = from + buf.len() as u64;
        if pos >= limit {
            eof = pos >= len;
            break;
        }
        let chunk = read_range(file, pos, limit.min(pos + PAGE_CHUNK))?;
        if chunk.is_empty() {
            eof = true; // shrank under us
            break;
        }
        page.bytes_read += chunk.len() as u64;
        newlines += chunk.iter().filter(|&&b| b == b'\n').count();
        buf.extend_from_slice(&chunk);
    }
    // The first `lines` complete lines.
    let mut end = 0;
    for (count, (i, _)) in buf.iter().enumerate().filter(|(_, &b)| b == b'\n').enumerate() {
        if count == lines {
            break;
        }
        end = i + 1;
    }
    let complete = buf[..end].iter().filter(|&&b| b == b'\n').count();
    // The rest: the file's unterminated last line, or a piece of a line
    // longer than `max_bytes`; a line cut by the byte budget waits for the
    // next page.
    if complete < lines && end < buf.len() && (eof || end == 0) {
        end = buf.len();
    }
    page.start = from;
    fill(page, from, &buf[..end]);
    Ok(())
}

fn page_backward(file: &File, to: u64, lines: usize, max_bytes: u64, page: &mut Page) -> io::Result<()> {
    let floor = to.saturating_sub(max_bytes);
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut pos = to;
    // `\n`s before the last line's own terminator: each starts a line.
    let mut starts = 0;
    while pos > floor && starts < lines {
        let from = floor.max(pos.saturating_sub(PAGE_CHUNK));
        let chunk = read_range(file, from, pos)?;
        if chunk.len() as u64 != pos - from {
            return Err(io::Error::other("file shrank while paging"));
        }
        page.bytes_read += chunk.len() as u64;
        let own_terminator = usize::from(pos == to && chunk.last() == Some(&b'\n'));
        starts += chunk.iter().filter(|&&b| b == b'\n').count() - own_terminator;
        chunks.push(chunk);
        pos = from;
    }
    let buf: Vec<u8> = chunks.into_iter().rev().flatten().collect();
    let body = match buf.split_last() {
        Some((b'\n', body)) => body,
        _ => &buf[..],
    };
    let separators: Vec<usize> =
        body.iter().enumerate().filter(|(_, &b)| b == b'\n').map(|(i, _)| i).collect();
    let start = if separators.len() >= lines {
        separators[separators.len() - lines] + 1
    } else if pos == 0 {
        0
    } else if let Some(&first) = separators.first() {
        first + 1 // the oldest line did not fit in `max_bytes`
    } else {
        0 // one line longer than `max_bytes`: its last piece
    };
    page.start = pos + start as u64;
    fill(page, page.start, &buf[start..]);
    Ok(())
}

/// Splits `bytes` (starting at file offset `at`) into page lines.
fn fill(page: &mut Page, at: u64, bytes: &[u8]) {
    let mut offset = at;
    for piece in bytes.split_inclusive(|&b| b == b'\n') {
        let end = offset + piece.len() as u64;
        let raw = piece.strip_suffix(b"\n").unwrap_or(piece);
        page.lines.push(PageLine { offset, end, text: render_line(raw) });
        offset = end;
    }
    page.end = offset;
    page.binary = looks_binary(count_non_text(bytes), bytes.len() as u64);
}

// ---------------------------------------------------------------------------
// The background follower.

/// A task's two log files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPaths {
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

impl LogPaths {
    pub fn get(&self, stream: Stream) -> &Path {
        match stream {
            Stream::Out => &self.stdout,
            Stream::Err => &self.stderr,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowMode {
    Single(Stream),
    Merged,
}

/// What to follow. A newer request supersedes an older one: the caller
/// stores the newer generation in the shared counter given to [`follow`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowRequest {
    pub generation: u64,
    pub paths: LogPaths,
    pub mode: FollowMode,
    pub poll_every: Duration,
    pub max_lines: usize,
    pub max_initial_bytes: u64,
    pub max_bytes_per_poll: u64,
}

impl FollowRequest {
    /// A request with the default interval and byte budgets.
    pub fn new(generation: u64, paths: LogPaths, mode: FollowMode, max_lines: usize) -> FollowRequest {
        FollowRequest {
            generation,
            paths,
            mode,
            poll_every: DEFAULT_POLL_EVERY,
            max_lines,
            max_initial_bytes: DEFAULT_INITIAL_BYTES,
            max_bytes_per_poll: DEFAULT_POLL_BYTES,
        }
    }
}

/// The followed window as it is now (a state, not a delta: a dropped
/// update loses nothing). Text is sanitised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogUpdate {
    pub generation: u64,
    pub lines: Vec<(Stream, String)>,
    pub truncated_front: bool,
    /// Followed files that are not there (yet).
    pub missing: Vec<PathBuf>,
    pub error: Option<String>,
    pub binary: bool,
    /// Bytes skipped since the follow started (too much at once).
    pub skipped_bytes: u64,
    /// Length of the followed file (merged: of both).
    pub file_len: u64,
    /// Times a followed file was truncated, replaced or rewritten.
    pub restarts: u64,
}

/// Why [`follow`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowEnd {
    /// A newer generation was set.
    Superseded,
    /// The receiver is gone.
    Closed,
}

enum Follower {
    Single(Stream, Box<LogTail>),
    Merged(Box<MergedTail>),
}

impl Follower {
    fn open(req: &FollowRequest) -> Follower {
        match req.mode {
            FollowMode::Single(stream) => Follower::Single(
                stream,
                Box::new(LogTail::open(req.paths.get(stream), req.max_lines, req.max_initial_bytes)),
            ),
            FollowMode::Merged => Follower::Merged(Box::new(MergedTail::open(
                &req.paths.stdout,
                &req.paths.stderr,
                req.max_lines,
                req.max_initial_bytes,
            ))),
        }
    }

    /// Polls; true if anything shown changed.
    fn poll(&mut self, max_bytes: u64) -> bool {
        match self {
            Follower::Single(_, tail) => tail.poll(max_bytes).changed,
            Follower::Merged(merged) => {
                let (out, err) = merged.poll(max_bytes);
                out.changed || err.changed
            }
        }
    }

    fn update(&self, generation: u64) -> LogUpdate {
        let (lines, tails, truncated_front): (_, Vec<&LogTail>, _) = match self {
            Follower::Single(stream, tail) => (
                tail.lines().into_iter().map(|line| (*stream, line)).collect(),
                vec![&**tail],
                tail.truncated_front(),
            ),
            Follower::Merged(merged) => {
                (merged.lines(), vec![&merged.out, &merged.err], merged.truncated_front())
            }
        };
        let errors: Vec<&str> = tails.iter().filter_map(|t| t.error()).collect();
        LogUpdate {
            generation,
            lines,
            truncated_front,
            missing: tails.iter().filter(|t| t.missing()).map(|t| t.path().to_path_buf()).collect(),
            error: (!errors.is_empty()).then(|| errors.join("; ")),
            binary: tails.iter().any(|t| t.binary()),
            skipped_bytes: tails.iter().map(|t| t.skipped_bytes()).sum(),
            file_len: tails.iter().map(|t| t.file_len()).sum(),
            restarts: tails.iter().map(|t| t.restarts()).sum(),
        }
    }
}

/// Follows `req` until a newer generation is stored in `current` or the
/// receiver is dropped: opens the file(s), sends the window, then polls
/// every `req.poll_every` and sends the window again whenever it changed.
/// Run it on the caller's executor (`ex.spawn(follow(..)).detach()`) or
/// thread (`smol::block_on`); every read runs on `pool` (as "follow" work
/// of its generation: a newer follower's read replaces this one's if both
/// wait), so a hung NFS
/// read holds one of the pool's threads, never the executor. Cancellation
/// is cooperative: it is checked before each poll and before each send, so
/// a superseded follower sends nothing more and ends within one interval
/// (or when a hung read returns).
pub async fn follow(
    req: FollowRequest,
    current: Arc<AtomicU64>,
    tx: async_channel::Sender<LogUpdate>,
    pool: crate::io_pool::IoPool,
) -> FollowEnd {
    let generation = req.generation;
    let live = || {
        if tx.is_closed() {
            Err(FollowEnd::Closed)
        } else if current.load(Ordering::Acquire) != generation {
            Err(FollowEnd::Superseded)
        } else {
            Ok(())
        }
    };
    if let Err(end) = live() {
        return end;
    }
    let opening = req.clone();
    let opened = pool.run(crate::io_pool::JobKey::new("follow", generation), move || {
        let follower = Follower::open(&opening);
        let update = follower.update(opening.generation);
        (follower, update)
    });
    let Some((mut follower, first)) = opened.await else { return FollowEnd::Superseded };
    if let Err(end) = live() {
        return end;
    }
    if tx.send(first.clone()).await.is_err() {
        return FollowEnd::Closed;
    }
    let mut last = first;
    loop {
        smol::Timer::after(req.poll_every).await;
        if let Err(end) = live() {
            return end;
        }
        let max_bytes = req.max_bytes_per_poll;
        let polled = pool.run(crate::io_pool::JobKey::new("follow", generation), move || {
            let update = follower.poll(max_bytes).then(|| follower.update(generation));
            (follower, update)
        });
        let Some((polled, update)) = polled.await else { return FollowEnd::Superseded };
        follower = polled;
        if let Err(end) = live() {
            return end;
        }
        if let Some(update) = update.filter(|u| *u != last) {
            if tx.send(update.clone()).await.is_err() {
                return FollowEnd::Closed;
            }
            last = update;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn buf_of(pieces: &[&[u8]]) -> LineBuf {
        let mut line = LineBuf::default();
        for piece in pieces {
            line.push(piece);
        }
        line
    }

    #[test]
    fn carriage_returns_keep_the_last_text() {
        assert_eq!(render_line(b"10%\r20%\r30%"), "30%");
        assert_eq!(render_line(b"done\r"), "done", "CRLF");
        assert_eq!(render_line(b"50%\r\r"), "50%");
        assert_eq!(render_line(b"\r 1/3\r 2/3\r 3/3"), " 3/3");
        // Split across reads, with the \r at the end of one read.
        assert_eq!(buf_of(&[b"10%\r", b"20%\r", b"30%"]).render(false), "30%");
        assert_eq!(buf_of(&[b"10%", b"\r", b"\r", b"2"]).render(true), "2");
        assert_eq!(buf_of(&[b"10%\r"]).render(true), "10%");
    }

    #[test]
    fn escapes_are_stripped_and_text_preserved() {
        assert_eq!(render_line(b"\x1b[31mred\x1b[0m"), "red");
        assert_eq!(render_line(b"a\x1b]52;c;ZXZpbA==\x07b"), "ab");
        assert_eq!(render_line(b"\x1b]0;title\x07x"), "x");
        assert_eq!(render_line("résumé ✓ 日本語".as_bytes()), "résumé ✓ 日本語");
        assert_eq!(render_line(b"a\x00b\xffc"), "a\u{FFFD}b\u{FFFD}c");
        assert_eq!(render_line(b"a\tb"), "a    b");
    }

    #[test]
    fn partial_lines_hide_a_cut_utf8_sequence() {
        let euro = "€".as_bytes();
        let line = buf_of(&[b"cost ", &euro[..2]]);
        assert_eq!(line.render(true), "cost ");
        assert_eq!(buf_of(&[b"cost ", euro]).render(true), "cost €");
        assert_eq!(incomplete_utf8_suffix(b"ab"), 0);
        assert_eq!(incomplete_utf8_suffix(&euro[..1]), 1);
        assert_eq!(incomplete_utf8_suffix(euro), 0);
    }

    #[test]
    fn long_lines_are_capped() {
        let long = vec![b'x'; MAX_LINE_CHARS * 3];
        let shown = render_line(&long);
        assert_eq!(shown.chars().count(), MAX_LINE_CHARS + 1);
        assert!(shown.ends_with(ELLIPSIS));
        let huge = buf_of(&[&vec![b'y'; MAX_LINE_BYTES * 2], b"tail"]);
        assert_eq!(huge.bytes.len(), MAX_LINE_BYTES, "raw bytes bounded");
        assert!(huge.render(false).ends_with(ELLIPSIS));
        // A \r after the cap still restarts the line.
        let restarted = buf_of(&[&vec![b'y'; MAX_LINE_BYTES * 2], b"\rfresh"]);
        assert_eq!(restarted.render(false), "fresh");
    }

    #[test]
    fn non_text_is_counted() {
        assert_eq!(count_non_text(b"plain text\n\t\x1b[0m"), 0);
        assert_eq!(count_non_text("ünïcode".as_bytes()), 0);
        assert_eq!(count_non_text(b"\x00\x01\xff\xfe"), 4);
        assert_eq!(count_non_text(&"€".as_bytes()[..2]), 0, "cut at the end: not counted");
        assert!(looks_binary(count_non_text(&[0u8; 100]), 100));
        assert!(!looks_binary(count_non_text(b"one NUL \x00 in a long enough line of text"), 42));
    }

    #[test]
    fn newline_positions_from_the_end() {
        assert_eq!(nth_newline_from_end(b"a\nb\nc\n", 0), Some(5));
        assert_eq!(nth_newline_from_end(b"a\nb\nc\n", 2), Some(1));
        assert_eq!(nth_newline_from_end(b"a\nb\nc\n", 3), None);
        assert_eq!(nth_newline_from_end(b"", 0), None);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(3 << 20), "3.0 MiB");
        assert_eq!(skipped_marker(2048), "[… 2.0 KiB skipped …]");
    }

    fn temp_log(content: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("T1.out");
        std::fs::write(&path, content).unwrap();
        (dir, path)
    }

    fn append(path: &Path, bytes: &[u8]) {
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(bytes).unwrap();
    }

    #[test]
    fn partial_line_completed_by_a_later_write() {
        let (_dir, path) = temp_log(b"one\ntw");
        let mut tail = LogTail::open(&path, 10, DEFAULT_INITIAL_BYTES);
        assert_eq!(tail.lines(), ["one", "tw"]);
        assert_eq!(tail.complete_lines().count(), 1);
        append(&path, b"o\nthr");
        let outcome = tail.poll(DEFAULT_POLL_BYTES);
        assert!(outcome.changed);
        assert_eq!(outcome.new_lines, 1);
        assert_eq!(outcome.bytes_read, 5 + FINGERPRINT.min(6) as u64);
        assert_eq!(tail.lines(), ["one", "two", "thr"]);
        assert!(!tail.poll(DEFAULT_POLL_BYTES).changed, "nothing new");
        assert_eq!(tail.bytes_read_last(), 0);
    }

    #[test]
    fn the_window_is_bounded_and_marks_older_content() {
        let text: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let (_dir, path) = temp_log(text.as_bytes());
        let mut tail = LogTail::open(&path, 10, DEFAULT_INITIAL_BYTES);
        assert_eq!(tail.lines().len(), 10);
        assert_eq!(tail.lines()[0], "line 90");
        assert!(tail.truncated_front());
        append(&path, b"line 100\npart");
        tail.poll(DEFAULT_POLL_BYTES);
        let lines = tail.lines();
        assert_eq!(lines.len(), 10, "the partial line counts in the window");
        assert_eq!(lines.last().unwrap(), "part");
        assert_eq!(lines[8], "line 100");
    }

    #[test]
    fn a_flood_is_skipped_with_a_marker() {
        let (_dir, path) = temp_log(b"start\n");
        let mut tail = LogTail::open(&path, 50, DEFAULT_INITIAL_BYTES);
        let flood: String = (0..20_000).map(|i| format!("flood {i:05}\n")).collect();
        append(&path, flood.as_bytes());
        let outcome = tail.poll(4096);
        assert!(outcome.skipped_bytes > 0);
        assert_eq!(outcome.skipped_bytes, flood.len() as u64 - 4096);
        assert!(outcome.bytes_read <= 4096 + FINGERPRINT as u64);
        let lines = tail.lines();
        assert_eq!(lines.last().unwrap(), "flood 19999");
        assert_eq!(tail.skipped_bytes(), outcome.skipped_bytes);
        // 4096 bytes hold 341 lines: the window shows the newest 50.
        assert!(!lines.iter().any(|l| l.starts_with('[')), "marker evicted by newer lines");
        assert!(lines.iter().all(|l| l.starts_with("flood ") && l.len() == 11), "{lines:?}");
    }

    #[test]
    fn a_small_flood_keeps_the_marker_visible() {
        let (_dir, path) = temp_log(b"start\n");
        let mut tail = LogTail::open(&path, 50, DEFAULT_INITIAL_BYTES);
        append(&path, &[b'z'; 10_000]);
        append(&path, b"\nafter\n");
        tail.poll(100);
        let lines = tail.lines();
        assert_eq!(lines[0], "start");
        assert_eq!(lines[1], skipped_marker(10_007 - 100));
        assert_eq!(lines.last().unwrap(), "after");
    }
}
