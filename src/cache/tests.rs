use super::*;
use crate::index::LogPath;

fn facts(n: usize) -> Vec<Facts> {
    (0..n)
        .map(|i| Facts::Result {
            node: Arc::from("nodeA"),
            name: format!("{i:06}_T{i:06x}_2b7c9c9b-0000-4000-8000-{i:012}").into(),
            kind: ResultKind::Ran,
            result: ResultSummary {
                started_at: 1_736_000_000 + i as i64,
                finished_at: 1_736_000_100 + i as i64,
                exit_code: (i % 3) as i32,
                runtime_s: 1.5,
                stdout: LogPath::Derived,
                stderr: LogPath::Derived,
                command: Some(Arc::from(format!("echo {i}"))),
                gpus_assigned: None,
                cwd: None,
                gpus_requested: None,
                error: None,
            },
        })
        .collect()
}

fn load_all(cache: &FactsCache) -> (Vec<Facts>, Vec<String>) {
    let (mut all, mut problems, mut from) = (Vec::new(), Vec::new(), Some(0));
    while let Some(at) = from {
        let loaded = cache.load(at);
        all.extend(loaded.facts);
        problems.extend(loaded.problem);
        from = loaded.next;
    }
    (all, problems)
}

fn cache_in(dir: &Path) -> FactsCache {
    FactsCache::at(dir.join("facts.bin"), "runs/1 dev 1 ino 7".into())
}

#[test]
fn what_is_appended_loads_back_in_chunks() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = cache_in(tmp.path());
    assert_eq!(load_all(&cache), (vec![], vec![]), "no file yet: nothing, and nothing to say");
    let written = facts(LOAD_CHUNK + 10);
    cache.append(&written[..100]).unwrap();
    cache.append(&written[100..]).unwrap();
    let first = cache.load(0);
    assert_eq!(first.facts.len(), LOAD_CHUNK);
    assert!(first.next.is_some());
    let fresh = cache_in(tmp.path());
    assert_eq!(load_all(&fresh), (written, vec![]));
}

#[test]
fn a_truncated_file_keeps_its_whole_records_says_so_once_and_is_repaired_by_the_next_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = cache_in(tmp.path());
    let written = facts(50);
    cache.append(&written).unwrap();
    let len = std::fs::metadata(cache.path()).unwrap().len();
    let file = OpenOptions::new().write(true).open(cache.path()).unwrap();
    file.set_len(len - 7).unwrap();
    let reader = cache_in(tmp.path());
    let (loaded, problems) = load_all(&reader);
    assert_eq!(loaded, written[..49].to_vec());
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("cut short"), "{}", problems[0]);
    // A writer that never read the file cuts the torn record off first.
    let writer = cache_in(tmp.path());
    writer.append(&written[49..]).unwrap();
    assert_eq!(load_all(&cache_in(tmp.path())), (written, vec![]));
}

#[test]
fn a_corrupt_record_ends_what_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = cache_in(tmp.path());
    let written = facts(20);
    cache.append(&written).unwrap();
    let mut bytes = std::fs::read(cache.path()).unwrap();
    let at = bytes.len() - 30;
    bytes[at] ^= 0xff;
    std::fs::write(cache.path(), &bytes).unwrap();
    let (loaded, problems) = load_all(&cache_in(tmp.path()));
    assert_eq!(loaded, written[..19].to_vec());
    assert_eq!(problems.len(), 1);
    assert!(problems[0].contains("checksum"), "{}", problems[0]);
    // Garbage in place of the whole file.
    std::fs::write(cache.path(), b"\x00\x01garbage that is not ours at all").unwrap();
    let (loaded, problems) = load_all(&cache_in(tmp.path()));
    assert!(loaded.is_empty());
    assert!(problems[0].contains("not a leaseq facts file"), "{problems:?}");
}

#[test]
fn another_run_or_version_is_ignored_and_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let old_run = FactsCache::at(tmp.path().join("facts.bin"), "runs/1 dev 1 ino 6".into());
    old_run.append(&facts(5)).unwrap();
    let (loaded, problems) = load_all(&cache_in(tmp.path()));
    assert!(loaded.is_empty());
    assert!(problems[0].contains("another run directory"), "{problems:?}");
    let new_run = cache_in(tmp.path());
    new_run.append(&facts(2)).unwrap();
    assert_eq!(load_all(&cache_in(tmp.path())), (facts(2), vec![]));
    // Another format version.
    let mut bytes = std::fs::read(new_run.path()).unwrap();
    bytes[8] = 99;
    std::fs::write(new_run.path(), &bytes).unwrap();
    let (loaded, problems) = load_all(&cache_in(tmp.path()));
    assert!(loaded.is_empty());
    assert!(problems[0].contains("header is corrupt") || problems[0].contains("version"), "{problems:?}");
}

#[test]
fn two_writers_at_once_leave_every_record_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let written = facts(4000);
    std::thread::scope(|scope| {
        for half in written.chunks(2000) {
            let cache = cache_in(tmp.path());
            scope.spawn(move || {
                for batch in half.chunks(37) {
                    cache.append(batch).unwrap();
                }
            });
        }
    });
    let (mut loaded, problems) = load_all(&cache_in(tmp.path()));
    assert!(problems.is_empty(), "{problems:?}");
    loaded.sort_by(|a, b| a.name().cmp(b.name()));
    assert_eq!(loaded, written);
}

#[test]
fn a_symlinked_cache_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("elsewhere"), b"precious").unwrap();
    std::os::unix::fs::symlink(tmp.path().join("elsewhere"), tmp.path().join("facts.bin")).unwrap();
    let cache = cache_in(tmp.path());
    assert!(cache.append(&facts(1)).is_err());
    assert_eq!(std::fs::read(tmp.path().join("elsewhere")).unwrap(), b"precious");
    let (loaded, problems) = load_all(&cache);
    assert!(loaded.is_empty() && problems.len() == 1, "{problems:?}");
}

#[test]
fn the_location_follows_the_environment_and_names_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("runs/42");
    std::fs::create_dir_all(&run).unwrap();
    let env = Env { xdg_cache_home: Some(tmp.path().join("xdg").into()), ..Env::default() };
    let cache = FactsCache::for_run(&env, "42", &run).unwrap();
    assert!(cache.path().starts_with(tmp.path().join("xdg/leaseq")), "{}", cache.path().display());
    let own = Env { leaseq_cache_dir: Some(tmp.path().join("own").into()), ..env.clone() };
    assert!(FactsCache::for_run(&own, "42", &run).unwrap().path().starts_with(tmp.path().join("own")));
    // The same id for a run dir made again is another identity.
    let before = FactsCache::for_run(&env, "42", &run).unwrap();
    before.append(&facts(3)).unwrap();
    std::fs::remove_dir(&run).unwrap();
    std::fs::create_dir(tmp.path().join("runs/placeholder")).unwrap();
    std::fs::create_dir(&run).unwrap();
    let after = FactsCache::for_run(&env, "42", &run).unwrap();
    assert_eq!(after.path(), before.path());
    let (loaded, problems) = load_all(&after);
    assert!(loaded.is_empty(), "a run dir made again must not see the old facts");
    assert!(problems[0].contains("another run directory"), "{problems:?}");
}

#[test]
fn a_fifo_in_place_of_the_cache_never_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = cache_in(tmp.path());
    let fifo = std::ffi::CString::new(cache.path().as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let (loaded, problems) = load_all(&cache);
    assert!(loaded.is_empty());
    assert!(problems[0].contains("not a regular file"), "{problems:?}");
    assert!(cache.append(&facts(1)).is_err());
}

#[test]
fn records_are_read_back_where_loading_and_appending_said_they_are() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = cache_in(tmp.path());
    let written = facts(50);
    let mut at = cache.append(&written[..20]).unwrap();
    at.extend(cache.append(&written[20..]).unwrap());
    assert_eq!(at.len(), 50);
    let picked = [at[3], at[49], at[20]];
    let back = cache.read_records(&picked).unwrap();
    assert_eq!(back, vec![Some(written[3].clone()), Some(written[49].clone()), Some(written[20].clone())]);
    // Loading tells the same places.
    let loaded = cache_in(tmp.path()).load(0);
    assert_eq!(loaded.at, at);
    // A place that is not a record start, or past the end: nothing.
    let nowhere = cache.read_records(&[at[3] + 1, 1 << 40]).unwrap();
    assert_eq!(nowhere, vec![None, None]);
}
