//! `leaseq::logs` on real files: growth, huge sparse files, truncation and
//! replacement, progress bars, hostile bytes, missing files, paging, and
//! the background follower.

use leaseq::io_pool::IoPool;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::FutureExt;
use leaseq::logs::{
    read_page, skipped_marker, FollowEnd, FollowMode, FollowRequest, LogPaths, LogTail, LogUpdate,
    MergedTail, Page, PageAnchor, Restart, Stream, DEFAULT_INITIAL_BYTES, DEFAULT_POLL_BYTES, ELLIPSIS,
    PAGE_CHUNK,
};

const POLL: u64 = DEFAULT_POLL_BYTES;

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

fn append(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).create(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn growing_file_completes_partial_lines() {
    let tmp = dir();
    let path = tmp.path().join("T1.out");
    write(&path, b"");
    let mut tail = LogTail::open(&path, 200, DEFAULT_INITIAL_BYTES);
    assert!(tail.lines().is_empty());
    assert!(!tail.missing() && tail.error().is_none() && !tail.truncated_front());

    append(&path, b"epoch 1 loss=0.");
    assert!(tail.poll(POLL).changed);
    assert_eq!(tail.lines(), ["epoch 1 loss=0."]);
    append(&path, b"93\nepoch 2");
    let outcome = tail.poll(POLL);
    assert_eq!(outcome.new_lines, 1);
    assert_eq!(tail.lines(), ["epoch 1 loss=0.93", "epoch 2"]);
    append(&path, b" loss=0.71\n");
    tail.poll(POLL);
    assert_eq!(tail.lines(), ["epoch 1 loss=0.93", "epoch 2 loss=0.71"]);
    assert_eq!(tail.offset(), tail.file_len());
    assert_eq!(tail.offset(), std::fs::metadata(&path).unwrap().len());

    let outcome = tail.poll(POLL);
    assert!(!outcome.changed);
    assert_eq!(outcome.bytes_read, 0, "nothing new: no read at all");
}

#[test]
fn a_2gb_sparse_file_opens_instantly_and_reads_only_its_tail() {
    let tmp = dir();
    let path = tmp.path().join("big.out");
    let size = 2u64 << 30;
    {
        let file = File::create(&path).unwrap();
        file.set_len(size).unwrap();
    }
    append(&path, b"\nstep 999998 ok\nstep 999999 ok\nlast partial");
    let len = std::fs::metadata(&path).unwrap().len();

    let started = Instant::now();
    let mut tail = LogTail::open(&path, 200, DEFAULT_INITIAL_BYTES);
    let took = started.elapsed();
    eprintln!("open of a {len} byte sparse file: {took:?}, {} bytes read", tail.bytes_read_last());
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(tail.bytes_read_last() <= DEFAULT_INITIAL_BYTES + 16, "{}", tail.bytes_read_last());
    assert!(tail.bytes_read_last() >= DEFAULT_INITIAL_BYTES);
    // The zeros before the first newline were one partial line: dropped.
    assert_eq!(tail.lines(), ["step 999998 ok", "step 999999 ok", "last partial"]);
    assert!(tail.truncated_front());
    assert!(!tail.binary(), "the dropped zeros do not count");
    assert_eq!(tail.file_len(), len);

    append(&path, b" done\n");
    let outcome = tail.poll(POLL);
    assert_eq!(outcome.bytes_read, 6 + 16, "the new bytes and the fingerprint");
    assert_eq!(tail.lines().last().unwrap(), "last partial done");

    // Paging stays bounded too.
    let end = read_page(&path, PageAnchor::End, 50, 1 << 20);
    assert!(end.bytes_read <= 1 << 20);
    assert_eq!(end.lines.last().unwrap().text, "last partial done");
    let start = read_page(&path, PageAnchor::Start, 50, 1 << 20);
    assert_eq!(start.bytes_read, 1 << 20, "one line of zeros: one max_bytes piece");
    assert_eq!(start.lines.len(), 1);
    assert_eq!(start.end, 1 << 20);
    let middle = read_page(&path, PageAnchor::After(size / 2), 50, 1 << 20);
    assert_eq!(middle.bytes_read, 1 << 20);
}

#[test]
fn truncation_restarts_from_the_new_content() {
    let tmp = dir();
    let path = tmp.path().join("T2.out");
    write(&path, b"old 1\nold 2\nold 3\n");
    let mut tail = LogTail::open(&path, 200, DEFAULT_INITIAL_BYTES);
    assert_eq!(tail.lines().len(), 3);

    // `cmd > log` again: truncated, shorter.
    write(&path, b"new 1\n");
    let outcome = tail.poll(POLL);
    assert_eq!(outcome.restarted, Some(Restart::Truncated));
    assert_eq!(tail.lines(), ["new 1"]);
    assert!(!tail.truncated_front());
    append(&path, b"new 2\n");
    assert_eq!(tail.poll(POLL).restarted, None);
    assert_eq!(tail.lines(), ["new 1", "new 2"]);
    assert_eq!(tail.restarts(), 1);
}

#[test]
fn truncated_and_rewritten_past_the_offset_is_noticed() {
    let tmp = dir();
    let path = tmp.path().join("T3.out");
    write(&path, b"first run line 1\nfirst run line 2\n");
    let mut tail = LogTail::open(&path, 200, DEFAULT_INITIAL_BYTES);
    // Same inode, truncated and rewritten longer than before between polls.
    {
        let mut file = OpenOptions::new().write(true).truncate(true).open(&path).unwrap();
        file.write_all(b"second run, a longer first line\nsecond run line 2\nline 3\n").unwrap();
    }
    let outcome = tail.poll(POLL);
    assert_eq!(outcome.restarted, Some(Restart::Rewritten));
    assert_eq!(tail.lines(), ["second run, a longer first line", "second run line 2", "line 3"]);
}

#[test]
fn replacement_by_rename_restarts() {
    let tmp = dir();
    let path = tmp.path().join("T4.out");
    write(&path, b"a\nb\nc\nd\ne\n");
    let mut tail = LogTail::open(&path, 200, DEFAULT_INITIAL_BYTES);
    let fresh = tmp.path().join("T4.out.tmp");
    write(&fresh, b"replaced 1\nreplaced 2\nreplaced 3\n");
    std::fs::rename(&fresh, &path).unwrap();
    let outcome = tail.poll(POLL);
    assert_eq!(outcome.restarted, Some(Restart::Replaced));
    assert_eq!(tail.lines(), ["replaced 1", "replaced 2", "replaced 3"]);
}

#[test]
fn carriage_return_progress_bars_show_the_latest_state() {
    let tmp = dir();
    let path = tmp.path().join("T5.err");
    write(&path, b"downloading\n");
    let mut tail = LogTail::open(&path, 200, DEFAULT_INITIAL_BYTES);
    append(&path, b"\r  10%|#         |");
    tail.poll(POLL);
    assert_eq!(tail.lines(), ["downloading", "  10%|#         |"]);
    append(&path, b"\r  50%|#####     |\r  60%|######    |");
    tail.poll(POLL);
    assert_eq!(tail.lines(), ["downloading", "  60%|######    |"]);
    append(&path, b"\r 100%|##########|\r\n");
    tail.poll(POLL);
    assert_eq!(tail.lines(), ["downloading", " 100%|##########|"]);
    // Style that writes the \r after the text, and CRLF files.
    append(&path, b"1/3\r2/3\r");
    tail.poll(POLL);
    assert_eq!(tail.lines().last().unwrap(), "2/3");
    append(&path, b"3/3\r\nwindows line\r\n");
    tail.poll(POLL);
    assert_eq!(tail.lines()[2..], ["3/3", "windows line"]);
}

#[test]
fn a_progress_bar_without_newlines_opens_on_its_latest_state() {
    let tmp = dir();
    let path = tmp.path().join("tqdm.err");
    let mut bar = Vec::new();
    for i in 0..200_000 {
        bar.extend_from_slice(format!("\r{:>6}/200000 it", i + 1).as_bytes());
    }
    write(&path, &bar);
    assert!(bar.len() as u64 > DEFAULT_INITIAL_BYTES);
    let tail = LogTail::open(&path, 200, DEFAULT_INITIAL_BYTES);
    assert_eq!(tail.lines(), ["200000/200000 it"]);
}

#[test]
fn invalid_utf8_nul_and_binary() {
    let tmp = dir();
    let path = tmp.path().join("T6.out");
    write(&path, b"ok \xff\xfe bytes\nnul \x00 here\nbell \x07 and del \x7f\n");
    let tail = LogTail::open(&path, 200, DEFAULT_INITIAL_BYTES);
    assert_eq!(
        tail.lines(),
        ["ok \u{FFFD}\u{FFFD} bytes", "nul \u{FFFD} here", "bell \u{FFFD} and del \u{FFFD}"]
    );
    assert!(!tail.binary(), "a few odd bytes in text");

    let bin = tmp.path().join("core.out");
    let mut rng = 0x2545F4914F6CDD1Du64;
    let bytes: Vec<u8> = (0..100_000)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        })
        .collect();
    write(&bin, &bytes);
    let tail = LogTail::open(&bin, 200, DEFAULT_INITIAL_BYTES);
    assert!(tail.binary());
    for line in tail.lines() {
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
        assert!(line.chars().count() <= 4097);
    }
    let page = read_page(&bin, PageAnchor::Start, 20, 1 << 20);
    assert!(page.binary);
}

#[test]
fn escape_sequences_are_stripped() {
    let tmp = dir();
    let path = tmp.path().join("T7.out");
    write(
        &path,
        b"\x1b[31mred\x1b[0m text\n\
          copy\x1b]52;c;cm0gLXJmIH4K\x07 blocked\n\
          st\x1b]52;c;cm0gLXJmIH4K\x1b\\ too\n\
          \x1b]0;my title\x07after title\n\
          \x1b[2J\x1b[Hcleared?\n\
          \xc2\x9b31mc1 csi\n",
    );
    let tail = LogTail::open(&path, 200, DEFAULT_INITIAL_BYTES);
    assert_eq!(tail.lines(), ["red text", "copy blocked", "st too", "after title", "cleared?", "c1 csi"]);
    let page = read_page(&path, PageAnchor::Start, 10, 1 << 20);
    let texts: Vec<&str> = page.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, tail.lines());
    for text in texts {
        assert!(!text.contains('\u{1b}'));
    }
}

#[test]
fn non_ascii_text_is_preserved_even_split_across_writes() {
    let tmp = dir();
    let path = tmp.path().join("T8.out");
    let text = "ünïcødé 日本語 🚀 done\n";
    let bytes = text.as_bytes();
    let rocket = text.find('🚀').unwrap();
    write(&path, &bytes[..rocket + 2]);
    let mut tail = LogTail::open(&path, 200, DEFAULT_INITIAL_BYTES);
    assert_eq!(tail.lines(), ["ünïcødé 日本語 "], "half a character is not shown yet");
    append(&path, &bytes[rocket + 2..]);
    tail.poll(POLL);
    assert_eq!(tail.lines(), ["ünïcødé 日本語 🚀 done"]);
}

#[test]
fn very_long_lines_are_capped() {
    let tmp = dir();
    let path = tmp.path().join("T9.out");
    let mut content = vec![b'x'; 100_000];
    content.extend_from_slice(b"\nshort\n");
    write(&path, &content);
    let tail = LogTail::open(&path, 200, DEFAULT_INITIAL_BYTES);
    let lines = tail.lines();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].chars().count(), 4097);
    assert!(lines[0].ends_with(ELLIPSIS));
    assert_eq!(lines[1], "short");
}

#[test]
fn a_missing_file_that_appears_later() {
    let tmp = dir();
    let path = tmp.path().join("T10.out");
    let mut tail = LogTail::open(&path, 200, DEFAULT_INITIAL_BYTES);
    assert!(tail.missing());
    assert!(tail.error().is_none());
    assert!(tail.lines().is_empty());
    assert!(!tail.poll(POLL).changed);

    write(&path, b"hello\n");
    let outcome = tail.poll(POLL);
    assert_eq!(outcome.restarted, Some(Restart::Appeared));
    assert!(!tail.missing());
    assert_eq!(tail.lines(), ["hello"]);

    // Gone again (NFS lag or cleanup): missing, but what was read stays.
    std::fs::remove_file(&path).unwrap();
    assert!(tail.poll(POLL).changed);
    assert!(tail.missing());
    assert_eq!(tail.lines(), ["hello"]);
}

#[test]
fn unreadable_paths_report_an_error_and_never_block() {
    let tmp = dir();
    let fifo = tmp.path().join("fifo.out");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o644) }, 0);
    let tail = LogTail::open(&fifo, 200, DEFAULT_INITIAL_BYTES);
    assert!(tail.error().unwrap().contains("not a regular file"), "{:?}", tail.error());
    let page = read_page(&fifo, PageAnchor::End, 10, 1 << 20);
    assert!(page.error.is_some());

    let tail = LogTail::open(tmp.path(), 200, DEFAULT_INITIAL_BYTES);
    assert!(tail.error().is_some(), "a directory");
    assert!(!tail.missing());
}

#[test]
fn a_page_sized_nul_hole_is_held_back_for_one_poll() {
    let tmp = dir();
    let path = tmp.path().join("nfs.out");
    write(&path, b"before\n");
    let mut tail = LogTail::open(&path, 200, DEFAULT_INITIAL_BYTES);
    // As an NFS reader may see it: the file grew, a page is still zeros.
    {
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(7 + 4096).unwrap();
    }
    append(&path, b"tail\n");
    tail.poll(POLL);
    assert_eq!(tail.offset(), 7, "held back at the hole");
    // The page arrives.
    {
        use std::os::unix::fs::FileExt;
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let mut page = vec![b'-'; 4096];
        page[4095] = b'\n';
        file.write_at(&page, 7).unwrap();
    }
    tail.poll(POLL);
    let lines = tail.lines();
    assert_eq!(lines[0], "before");
    assert_eq!(lines[1], "-".repeat(4095));
    assert_eq!(lines[2..], ["tail"]);
    // A hole that stays is accepted on the second look.
    let path2 = tmp.path().join("sparse.out");
    write(&path2, b"x\n");
    let mut tail = LogTail::open(&path2, 200, DEFAULT_INITIAL_BYTES);
    OpenOptions::new().write(true).open(&path2).unwrap().set_len(2 + 8192).unwrap();
    append(&path2, b"\nend\n");
    tail.poll(POLL);
    assert_eq!(tail.offset(), 2);
    tail.poll(POLL);
    assert_eq!(tail.lines().last().unwrap(), "end");
}

#[test]
fn a_flood_between_polls_is_skipped_and_says_so() {
    let tmp = dir();
    let path = tmp.path().join("flood.out");
    write(&path, b"start\n");
    let mut tail = LogTail::open(&path, 1000, DEFAULT_INITIAL_BYTES);
    let mut flood = Vec::new();
    for i in 0..400_000 {
        flood.extend_from_slice(format!("flood line {i:07}\n").as_bytes());
    }
    append(&path, &flood);
    let outcome = tail.poll(POLL);
    assert_eq!(outcome.skipped_bytes, flood.len() as u64 - POLL);
    assert!(outcome.bytes_read <= POLL + 16);
    let lines = tail.lines();
    assert_eq!(lines.len(), 1000);
    assert_eq!(lines.last().unwrap(), "flood line 0399999");
    assert!(tail.truncated_front());
    // Few enough lines after the gap: the marker shows where it is.
    let path2 = tmp.path().join("flood2.out");
    write(&path2, b"start\n");
    let mut tail = LogTail::open(&path2, 1000, DEFAULT_INITIAL_BYTES);
    append(&path2, &vec![b'#'; 3 << 20]);
    append(&path2, b"\nback to normal\n");
    tail.poll(POLL);
    let lines = tail.lines();
    assert_eq!(lines, ["start".to_string(), skipped_marker((3 << 20) + 16 - POLL), "back to normal".into()]);
}

#[test]
fn merged_tail_interleaves_out_then_err_per_poll() {
    let tmp = dir();
    let out = tmp.path().join("T.out");
    let err = tmp.path().join("T.err");
    write(&out, b"o1\n");
    let mut merged = MergedTail::open(&out, &err, 100, DEFAULT_INITIAL_BYTES);
    assert!(merged.tail(Stream::Err).missing());
    assert_eq!(merged.lines(), [(Stream::Out, "o1".to_string())]);
    append(&err, b"e1\n");
    merged.poll(POLL);
    append(&out, b"o2\npartial o");
    append(&err, b"e2\n");
    merged.poll(POLL);
    let lines = merged.lines();
    let got: Vec<(Stream, &str)> = lines.iter().map(|(s, l)| (*s, l.as_str())).collect();
    assert_eq!(
        got,
        [
            (Stream::Out, "o1"),
            (Stream::Err, "e1"),
            (Stream::Out, "o2"),
            (Stream::Err, "e2"),
            (Stream::Out, "partial o")
        ]
    );
    // stderr truncated: its old lines leave, its new ones come last.
    write(&err, b"E\n");
    merged.poll(POLL);
    let lines = merged.lines();
    let streams: Vec<Stream> = lines.iter().map(|(s, _)| *s).collect();
    assert_eq!(streams, [Stream::Out, Stream::Out, Stream::Err, Stream::Out]);
    assert_eq!(lines[2].1, "E");
    // Bounded.
    for i in 0..300 {
        append(&out, format!("x{i}\n").as_bytes());
        append(&err, format!("y{i}\n").as_bytes());
        if i % 7 == 0 {
            merged.poll(POLL);
        }
    }
    merged.poll(POLL);
    assert_eq!(merged.lines().len(), 100);
    assert!(merged.truncated_front());
}

// ---------------------------------------------------------------------------
// Paging.

fn numbered_file(path: &Path, lines: usize) -> Vec<String> {
    let mut text = Vec::new();
    let mut expected = Vec::new();
    for i in 0..lines {
        // Varying lengths, some empty lines, some far longer than others.
        let line = match i % 11 {
            0 => String::new(),
            5 => format!("{i:06} {}", "long ".repeat(400)),
            _ => format!("{i:06} {}", "ab".repeat(i % 37)),
        };
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
        expected.push(line);
    }
    write(path, &text);
    expected
}

fn check_tiling(pages: &[Page], len: u64) -> Vec<String> {
    let mut at = 0;
    let mut texts = Vec::new();
    for page in pages {
        assert_eq!(page.start, at, "pages are contiguous");
        let mut line_at = page.start;
        for line in &page.lines {
            assert_eq!(line.offset, line_at, "lines are contiguous");
            assert!(line.end > line.offset);
            line_at = line.end;
            texts.push(line.text.clone());
        }
        assert_eq!(page.end, line_at);
        at = page.end;
    }
    assert_eq!(at, len, "the pages cover the file");
    texts
}

#[test]
fn paging_forward_and_backward_tiles_the_file() {
    let tmp = dir();
    let path = tmp.path().join("paged.out");
    let expected = numbered_file(&path, 5000);
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len > 10 * PAGE_CHUNK, "{len}");

    let max_bytes = 256 << 10;
    let mut pages = vec![read_page(&path, PageAnchor::Start, 37, max_bytes)];
    assert!(pages[0].at_start);
    while !pages.last().unwrap().at_end {
        let next = read_page(&path, PageAnchor::After(pages.last().unwrap().end), 37, max_bytes);
        assert!(next.bytes_read <= max_bytes);
        assert!(!next.lines.is_empty());
        pages.push(next);
    }
    assert!(pages.iter().all(|p| p.lines.len() == 37 || p.at_end));
    let texts = check_tiling(&pages, len);
    assert_eq!(texts.len(), expected.len());
    assert_eq!(texts, expected);

    let mut back = vec![read_page(&path, PageAnchor::End, 37, max_bytes)];
    assert!(back[0].at_end);
    assert_eq!(back[0].lines.last().unwrap().text, *expected.last().unwrap());
    while !back.last().unwrap().at_start {
        let prev = read_page(&path, PageAnchor::Before(back.last().unwrap().start), 37, max_bytes);
        assert!(prev.bytes_read <= max_bytes);
        assert!(!prev.lines.is_empty());
        back.push(prev);
    }
    back.reverse();
    assert!(back.iter().skip(1).all(|p| p.lines.len() == 37), "only the first page is short");
    assert_eq!(check_tiling(&back, len), expected);

    // PgDn then PgUp returns to the same page.
    let middle = read_page(&path, PageAnchor::After(pages[40].start), 37, max_bytes);
    assert_eq!(middle, pages[40]);
    let next = read_page(&path, PageAnchor::After(middle.end), 37, max_bytes);
    let up = read_page(&path, PageAnchor::Before(next.start), 37, max_bytes);
    assert_eq!(up.lines, middle.lines);
}

#[test]
fn paging_with_a_small_byte_budget_splits_long_lines_but_still_tiles() {
    let tmp = dir();
    let path = tmp.path().join("small.out");
    let expected = numbered_file(&path, 300);
    let len = std::fs::metadata(&path).unwrap().len();
    let budget = 1000; // the long lines are ~2 KB
    let mut pages = vec![read_page(&path, PageAnchor::Start, 10, budget)];
    while !pages.last().unwrap().at_end {
        let next = read_page(&path, PageAnchor::After(pages.last().unwrap().end), 10, budget);
        assert!(next.bytes_read <= budget);
        pages.push(next);
    }
    check_tiling(&pages, len);
    let mut back = vec![read_page(&path, PageAnchor::End, 10, budget)];
    while !back.last().unwrap().at_start {
        let prev = read_page(&path, PageAnchor::Before(back.last().unwrap().start), 10, budget);
        assert!(prev.bytes_read <= budget);
        back.push(prev);
    }
    back.reverse();
    check_tiling(&back, len);
    // Short lines still come out whole.
    let forward: Vec<String> = pages.iter().flat_map(|p| p.lines.iter().map(|l| l.text.clone())).collect();
    assert!(forward.contains(&expected[1]));
    assert!(forward.len() > expected.len(), "long lines came in pieces");
}

#[test]
fn paging_edge_cases() {
    let tmp = dir();
    let missing = read_page(&tmp.path().join("none.out"), PageAnchor::End, 10, 1 << 20);
    assert!(missing.missing && missing.error.is_none() && missing.lines.is_empty());

    let empty = tmp.path().join("empty.out");
    write(&empty, b"");
    let page = read_page(&empty, PageAnchor::End, 10, 1 << 20);
    assert!(page.lines.is_empty() && page.at_start && page.at_end);

    let unterminated = tmp.path().join("unterminated.out");
    write(&unterminated, b"a\nb\nno newline");
    let page = read_page(&unterminated, PageAnchor::End, 2, 1 << 20);
    let texts: Vec<&str> = page.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["b", "no newline"]);
    let page = read_page(&unterminated, PageAnchor::Start, 10, 1 << 20);
    assert_eq!(page.lines.len(), 3);
    assert!(page.at_end);
    // Offsets past the end are clamped.
    let page = read_page(&unterminated, PageAnchor::After(1 << 40), 10, 1 << 20);
    assert!(page.lines.is_empty() && page.at_end);
}

// ---------------------------------------------------------------------------
// The background follower.

fn recv_within(rx: &async_channel::Receiver<LogUpdate>, wait: Duration) -> Option<LogUpdate> {
    smol::block_on(async { rx.recv().await.ok() }.or(async {
        smol::Timer::after(wait).await;
        None
    }))
}

fn request(generation: u64, out: &Path, err: &Path, mode: FollowMode) -> FollowRequest {
    let paths = LogPaths { stdout: out.to_path_buf(), stderr: err.to_path_buf() };
    let mut req = FollowRequest::new(generation, paths, mode, 200);
    req.poll_every = Duration::from_millis(20);
    req
}

fn texts(update: &LogUpdate) -> Vec<&str> {
    update.lines.iter().map(|(_, l)| l.as_str()).collect()
}

#[test]
fn follow_sends_appends_and_stops_when_superseded() {
    let tmp = dir();
    let out: PathBuf = tmp.path().join("F.out");
    let err = tmp.path().join("F.err");
    write(&out, b"first\n");
    let current = Arc::new(AtomicU64::new(1));
    let (tx, rx) = async_channel::bounded(4);
    let ex = Arc::new(smol::Executor::new());
    let task = ex.spawn(leaseq::logs::follow(
        request(1, &out, &err, FollowMode::Single(Stream::Out)),
        current.clone(),
        tx,
        IoPool::new("test-follow", 2),
    ));
    let runner = {
        let ex = ex.clone();
        std::thread::spawn(move || smol::block_on(ex.run(task)))
    };

    let first = recv_within(&rx, Duration::from_secs(5)).expect("initial window");
    assert_eq!(first.generation, 1);
    assert_eq!(texts(&first), ["first"]);
    assert!(first.missing.is_empty());
    // Nothing changes: nothing is sent.
    assert!(recv_within(&rx, Duration::from_millis(150)).is_none());

    append(&out, b"second\nthi");
    let mut update = recv_within(&rx, Duration::from_secs(5)).expect("an update for the append");
    while texts(&update) != ["first", "second", "thi"] {
        update = recv_within(&rx, Duration::from_secs(5)).expect("the append, completed");
    }
    assert_eq!(update.file_len, 16);
    assert!(update.lines.iter().all(|(s, _)| *s == Stream::Out));

    current.store(2, Ordering::Release);
    let end = runner.join().unwrap();
    assert_eq!(end, FollowEnd::Superseded);
    append(&out, b"rd\n");
    assert!(recv_within(&rx, Duration::from_millis(100)).is_none(), "nothing after being superseded");
}

#[test]
fn follow_merged_reports_missing_files_and_stops_when_the_receiver_goes() {
    let tmp = dir();
    let out = tmp.path().join("M.out");
    let err = tmp.path().join("M.err");
    let current = Arc::new(AtomicU64::new(7));
    let (tx, rx) = async_channel::bounded(1);
    let req = request(7, &out, &err, FollowMode::Merged);
    let runner = std::thread::spawn(move || {
        smol::block_on(leaseq::logs::follow(req, current, tx, IoPool::new("test-follow", 2)))
    });

    let first = recv_within(&rx, Duration::from_secs(5)).unwrap();
    assert_eq!(first.missing, [out.clone(), err.clone()]);
    assert!(first.lines.is_empty());

    write(&out, b"o1\n");
    write(&err, b"e1\n");
    let mut update = recv_within(&rx, Duration::from_secs(5)).unwrap();
    while !update.missing.is_empty() || update.lines.len() < 2 {
        update = recv_within(&rx, Duration::from_secs(5)).unwrap();
    }
    assert_eq!(update.lines, [(Stream::Out, "o1".to_string()), (Stream::Err, "e1".to_string())]);
    assert_eq!(update.restarts, 0, "appearing is not a restart");

    drop(rx);
    assert_eq!(runner.join().unwrap(), FollowEnd::Closed);
}

#[test]
fn follow_that_is_superseded_before_it_starts_reads_nothing() {
    let tmp = dir();
    let out = tmp.path().join("S.out");
    write(&out, b"x\n");
    let current = Arc::new(AtomicU64::new(5));
    let (tx, rx) = async_channel::bounded(1);
    let end = smol::block_on(leaseq::logs::follow(
        request(4, &out, &out, FollowMode::Merged),
        current,
        tx,
        IoPool::new("test-follow", 2),
    ));
    assert_eq!(end, FollowEnd::Superseded);
    assert!(rx.try_recv().is_err());
}

// ---------------------------------------------------------------------------
// Measurements (run with `--ignored --nocapture`).

#[test]
#[ignore]
fn measure_large_files() {
    let tmp = dir();
    let path = tmp.path().join("large.out");
    {
        let mut file = std::io::BufWriter::new(File::create(&path).unwrap());
        for i in 0..4_000_000u64 {
            writeln!(
                file,
                "{i:09} step loss=0.{:04} \x1b[32mok\x1b[0m {}",
                i % 9973,
                "x".repeat((i % 50) as usize)
            )
            .unwrap();
        }
    }
    let len = std::fs::metadata(&path).unwrap().len();
    eprintln!("file: {:.1} MiB", len as f64 / (1 << 20) as f64);

    let t = Instant::now();
    let mut tail = LogTail::open(&path, 200, DEFAULT_INITIAL_BYTES);
    eprintln!("open: {:?}, {} bytes read", t.elapsed(), tail.bytes_read_last());
    let t = Instant::now();
    for _ in 0..1000 {
        tail.poll(POLL);
    }
    eprintln!("idle poll: {:?} each", t.elapsed() / 1000);

    let mut flood = Vec::new();
    for i in 0..200_000 {
        flood.extend_from_slice(format!("flood {i}\n").as_bytes());
    }
    append(&path, &flood);
    let t = Instant::now();
    let outcome = tail.poll(POLL);
    eprintln!(
        "poll after a {} byte burst: {:?}, read {}, skipped {}",
        flood.len(),
        t.elapsed(),
        outcome.bytes_read,
        outcome.skipped_bytes
    );

    for (name, anchor) in [
        ("start", PageAnchor::Start),
        ("end", PageAnchor::End),
        ("after middle", PageAnchor::After(len / 2)),
        ("before middle", PageAnchor::Before(len / 2)),
    ] {
        let t = Instant::now();
        let page = read_page(&path, anchor, 60, 4 << 20);
        eprintln!(
            "page {name}: {:?}, {} lines, {} bytes read",
            t.elapsed(),
            page.lines.len(),
            page.bytes_read
        );
    }
    let t = Instant::now();
    let mut page = read_page(&path, PageAnchor::End, 60, 4 << 20);
    let mut n = 0;
    while !page.at_start && n < 1000 {
        page = read_page(&path, PageAnchor::Before(page.start), 60, 4 << 20);
        n += 1;
    }
    eprintln!("{n} PgUp pages from the end: {:?} each", t.elapsed() / n.max(1));
}
