//! The has-stderr filter on a generated tree: every task known to have
//! failed comes at once from exit codes, before any err file is looked at;
//! then the err files of the tasks that ran, a few hundred at a time, with
//! progress; pending tasks are never looked at.

use std::sync::Arc;
use std::time::{Duration, Instant};

use leaseq::background::Background;
use leaseq::index::{TaskState, ViewSpec};
use leaseq::oneshot::{build, Reads};
use leaseq::paths::{Roots, RunDir, UiConfig};
use leaseq::scan::FsSource;
use leaseq::sim::generate::{generate, GenerateOptions};
use leaseq::task_logs::{LogLocation, LogStream};
use leaseq::ui::messages::{Reply, Request, SearchQuery};

#[test]
fn has_stderr_answers_from_exit_codes_first_then_err_files_with_progress() {
    let home = tempfile::tempdir().unwrap();
    let options =
        GenerateOptions { tasks: 3_000, nodes: 3, now: 1_736_100_000, ..GenerateOptions::default() };
    let tree = generate(home.path(), &options).unwrap();
    let run = RunDir(tree.run_dir.clone());
    let index = Arc::new(build(
        &FsSource,
        &run,
        &UiConfig::default(),
        1_736_100_000,
        Reads::All,
        &leaseq::cache::CacheUse::Off,
    ));
    let failed: Vec<_> = (0..index.task_count() as u32)
        .filter(|&id| {
            index
                .task(id)
                .is_some_and(|t| t.state == TaskState::Failed || t.exit_code().is_some_and(|c| c != 0))
        })
        .collect();
    assert!(failed.len() > 50, "the tree has failures: {}", failed.len());

    let roots =
        Roots { archive: home.path().join("a"), runtime: home.path().join("rt"), hostname: "h".into() };
    let (tx, rx) = async_channel::unbounded();
    let background = Background::start(roots, UiConfig::default(), Arc::new(FsSource), tx);
    let query = SearchQuery::HasStderr(run.clone());
    background.send(Request::Search {
        generation: 7,
        snapshot: index.clone(),
        view: ViewSpec::default(),
        query,
        cache: None,
    });

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stages = Vec::new();
    let mut matches = Vec::new();
    loop {
        let reply = smol::block_on(async {
            futures_lite::FutureExt::or(async { rx.recv().await.ok() }, async {
                smol::Timer::after(Duration::from_secs(5)).await;
                None
            })
            .await
        });
        assert!(Instant::now() < deadline, "the search never ended");
        let Some(reply) = reply else { continue };
        let Reply::Matches { generation, ids, progress } = reply else { continue };
        assert_eq!(generation, 7);
        assert_eq!(progress.total, index.task_count(), "progress is out of the whole view");
        if stages.last() != Some(&progress.stage) {
            stages.push(progress.stage);
            if progress.stage == "err files" {
                let mut known = matches.clone();
                known.sort_unstable();
                let mut want = failed.clone();
                want.sort_unstable();
                assert_eq!(known, want, "every failure came from exit codes before any file was looked at");
            }
        }
        matches.extend(ids);
        if progress.done {
            break;
        }
    }
    assert_eq!(stages, vec!["exit codes", "err files"]);
    for &id in &matches {
        let task = index.task(id).unwrap();
        assert_ne!(task.state, TaskState::Pending, "a pending task has no err file to look at");
        let known_failure = failed.contains(&id);
        let err = LogLocation::of_indexed(&run, &index, task, LogStream::Stderr).resolve();
        let has_text = std::fs::metadata(&err).is_ok_and(|m| m.len() > 0);
        assert!(known_failure || has_text, "{} matched without failing or writing stderr", task.name);
    }
    let unique: std::collections::HashSet<_> = matches.iter().collect();
    assert_eq!(unique.len(), matches.len(), "no task listed twice");
}
