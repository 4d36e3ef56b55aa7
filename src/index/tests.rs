use super::*;
use crate::model::Heartbeat;

const U: &str = "00000000-0000-4000-8000-0000000000";

fn stem(seq: u32) -> String {
    format!("{seq:06}_T{seq:03}_{U}{seq:02}")
}
fn spec(seq: u32) -> String {
    format!("{}.json", stem(seq))
}
fn result(seq: u32) -> String {
    format!("{}.result.json", stem(seq))
}

fn changed(dir: QueueDir, added: Vec<String>, removed: Vec<String>) -> (QueueDir, DirOutcome) {
    let (mut added, mut removed) = (added, removed);
    added.sort();
    removed.sort();
    (dir, DirOutcome::changed(added, removed))
}

fn round(node: &str, dirs: Vec<(QueueDir, DirOutcome)>) -> Event {
    Event::Round(Round { node: node.into(), dirs })
}

fn state(index: &Index, seq: u32) -> TaskState {
    index.task(index.find(&stem(seq)).unwrap()).unwrap().state
}

fn hb(node: &str, ts: i64) -> Event {
    let beat = Heartbeat {
        node: node.into(),
        ts,
        running_task_id: None,
        pending_estimate: 0,
        runner_pid: 1,
        version: "t".into(),
        running_task_ids: Vec::new(),
        paused: false,
        stopped: false,
    };
    Event::Heartbeats(HeartbeatRound { beats: vec![(node.into(), Ok(beat))], dir_error: None })
}

fn done_ok(seq: u32, exit_code: i32) -> Event {
    Event::ResultRead {
        node: "a".into(),
        name: stem(seq).into(),
        kind: ResultKind::Ran,
        outcome: Ok(ResultSummary {
            started_at: 100 + i64::from(seq),
            finished_at: 200 + i64::from(seq),
            exit_code,
            runtime_s: 1.0,
            stdout: format!("logs/T{seq:03}.out").into(),
            stderr: format!("logs/T{seq:03}.err").into(),
            command: None,
            gpus_assigned: None,
            cwd: None,
            gpus_requested: None,
            error: None,
        }),
    }
}

/// Node `a`: tasks 1-2 pending, 3 running, 4-5 done.
fn small_index() -> Index {
    let mut index = Index::new(60);
    index.apply(Event::Tick(1000));
    index.apply(hb("a", 1000));
    index.apply(round(
        "a",
        vec![
            changed(QueueDir::Claimed, vec![spec(3)], vec![]),
            changed(QueueDir::Inbox, vec![spec(1), spec(2)], vec![]),
            changed(QueueDir::Done, vec![spec(4), result(4), spec(5), result(5)], vec![]),
        ],
    ));
    index
}

fn assert_counts_match_rows(index: &Index) {
    for state in TaskState::ALL {
        let view = ViewSpec { states: StateSet::of(&[state]), ..ViewSpec::default() };
        assert_eq!(index.all_in_view(&view).len() as u64, index.count(state), "{state}");
        for (node, _) in index.nodes() {
            let view = ViewSpec { node: Some(node), ..view };
            assert_eq!(index.all_in_view(&view).len() as u64, index.view_total(&view));
        }
    }
    assert_eq!(index.all_in_view(&ViewSpec::default()).len(), index.task_count());
}

#[test]
fn names_only_build_derives_states_and_counts() {
    let index = small_index();
    assert_eq!(index.task_count(), 5);
    assert_eq!(state(&index, 1), TaskState::Pending);
    assert_eq!(state(&index, 3), TaskState::Running);
    assert_eq!(state(&index, 4), TaskState::Done);
    assert_eq!(index.count(TaskState::Done), 2);
    assert_eq!(index.node(0).unwrap().count(TaskState::Pending), 2);
    assert!(index.feed().next().is_none(), "loading history is not news");
    assert_counts_match_rows(&index);
}

#[test]
fn a_move_within_one_round_is_a_transition() {
    let mut index = small_index();
    index.apply(round(
        "a",
        vec![
            changed(QueueDir::Claimed, vec![spec(1)], vec![spec(3)]),
            changed(QueueDir::Inbox, vec![], vec![spec(1)]),
            changed(QueueDir::Done, vec![spec(3), result(3)], vec![]),
        ],
    ));
    assert_eq!(state(&index, 1), TaskState::Running);
    assert_eq!(state(&index, 3), TaskState::Done);
    index.apply(done_ok(3, 2));
    assert_eq!(state(&index, 3), TaskState::Failed);
    let feed: Vec<_> = index.feed().map(|t| (t.task, t.from, t.to)).collect();
    let t3 = index.find(&stem(3)).unwrap();
    assert!(feed.contains(&(t3, Some(TaskState::Running), TaskState::Failed)), "{feed:?}");
    assert_eq!(index.unaccounted_count(), 0);
    assert_counts_match_rows(&index);
}

#[test]
fn vanished_from_claimed_is_lost_after_two_rounds_and_recovers() {
    let mut index = small_index();
    index.apply(round("a", vec![changed(QueueDir::Claimed, vec![], vec![spec(3)])]));
    assert_eq!(state(&index, 3), TaskState::Running, "one round is not enough");
    index.apply(round("a", vec![(QueueDir::Claimed, DirOutcome::Unchanged)]));
    assert_eq!(state(&index, 3), TaskState::Lost);
    assert_counts_match_rows(&index);
    index.apply(round("a", vec![changed(QueueDir::Done, vec![result(3)], vec![])]));
    assert_eq!(state(&index, 3), TaskState::Done);
    assert_eq!(index.unaccounted_count(), 0);
}

#[test]
fn a_lagging_listing_never_leaves_a_terminal_state() {
    let mut index = small_index();
    index.apply(done_ok(4, 0));
    index.apply(round(
        "a",
        vec![
            changed(QueueDir::Done, vec![], vec![spec(4), result(4)]),
            changed(QueueDir::Claimed, vec![spec(4)], vec![]),
        ],
    ));
    assert_eq!(state(&index, 4), TaskState::Finished);
}

#[test]
fn a_failed_listing_keeps_the_previous_one() {
    let mut index = small_index();
    for _ in 0..3 {
        index.apply(round("a", vec![(QueueDir::Claimed, DirOutcome::Failed("ESTALE".into()))]));
    }
    assert_eq!(state(&index, 3), TaskState::Running);
    assert!(index.node(0).unwrap().has_scan_error());
    index.apply(round("a", vec![(QueueDir::Claimed, DirOutcome::Unchanged)]));
    assert!(!index.node(0).unwrap().has_scan_error());
}

#[test]
fn stale_or_missing_heartbeat_makes_running_stuck() {
    let mut index = small_index();
    index.apply(Event::Tick(1061));
    assert_eq!(state(&index, 3), TaskState::Stuck);
    assert!(matches!(index.node(0).unwrap().health, NodeHealth::Stale { age_s: 61 }));
    index.apply(hb("a", 1060));
    assert_eq!(state(&index, 3), TaskState::Running);
    index.apply(Event::Heartbeats(HeartbeatRound { beats: vec![], dir_error: None }));
    assert_eq!(state(&index, 3), TaskState::Stuck, "no heartbeat file");
    assert_counts_match_rows(&index);
}

#[test]
fn unreadable_files_keep_the_task_with_a_reason() {
    let mut index = small_index();
    index.apply(Event::SpecRead {
        node: "a".into(),
        name: stem(1).into(),
        outcome: Err("expected value at line 1 column 7".into()),
    });
    let task = index.task(index.find(&stem(1)).unwrap()).unwrap();
    assert_eq!(task.state, TaskState::Pending);
    assert!(task.problem().unwrap().contains("line 1"));
}

#[test]
fn hydration_queue_is_newest_first_and_drains() {
    let mut index = small_index();
    assert_eq!(index.unread_count(), 5);
    for seq in 1..=5 {
        index.apply(Event::SpecRead {
            node: "a".into(),
            name: stem(seq).into(),
            outcome: Ok(SpecSummary {
                created_at: i64::from(seq),
                command: "echo".into(),
                cwd: "/w".into(),
                gpus: 0,
            }),
        });
    }
    let unread: Vec<_> = index.unread(10, |_| false);
    assert_eq!(unread, vec![index.find(&stem(5)).unwrap(), index.find(&stem(4)).unwrap()]);
    index.apply(done_ok(4, 0));
    index.apply(done_ok(5, 0));
    assert_eq!(index.unread_count(), 0);
}

#[test]
fn pages_are_anchored_and_filtered() {
    let mut index = Index::new(60);
    let names: Vec<String> = (1..=100).map(spec).collect();
    index.apply(round("a", vec![changed(QueueDir::Inbox, names, vec![])]));
    let view = ViewSpec { order: Order::SeqInNode, ..ViewSpec::default() };
    let first = index.page(&view, None, true, true, 10);
    assert_eq!(first.len(), 10);
    assert_eq!(index.task(first[0]).unwrap().seq(), 1);
    let anchor = first[9];
    let next = index.page(&view, Some(anchor), true, false, 10);
    assert_eq!(index.task(next[0]).unwrap().seq(), 11);
    let back = index.page(&view, Some(next[0]), false, false, 3);
    let seqs: Vec<u64> = back.iter().map(|&id| index.task(id).unwrap().seq()).collect();
    assert_eq!(seqs, vec![10, 9, 8]);

    // The anchor's task changes state: the cursor stays on it.
    index.apply(round("a", vec![changed(QueueDir::Claimed, vec![spec(50)], vec![])]));
    index.apply(round("a", vec![changed(QueueDir::Inbox, vec![], vec![spec(50)])]));
    let running = ViewSpec { states: StateSet::of(&[TaskState::Running]), ..ViewSpec::default() };
    let at = index.find(&stem(50));
    assert_eq!(index.page(&running, at, true, true, 5), vec![at.unwrap()]);
    assert_eq!(index.view_total(&running), 1);
    assert_counts_match_rows(&index);
}

#[test]
fn the_default_view_across_nodes_is_every_task_in_state_then_newest_order() {
    // Three nodes, their tasks' times interleaved, several states each.
    let mut index = Index::new(60);
    index.apply(Event::Tick(10_000));
    for (n, node) in ["a", "b", "c"].iter().enumerate() {
        let mine: Vec<u32> = (1..=60).filter(|seq| *seq as usize % 3 == n).collect();
        let (mut done, mut inbox) = (vec![], vec![]);
        for &seq in &mine {
            if seq % 2 == 0 {
                done.extend([spec(seq), result(seq)]);
            } else {
                inbox.push(spec(seq));
            }
        }
        index.apply(round(
            node,
            vec![changed(QueueDir::Inbox, inbox, vec![]), changed(QueueDir::Done, done, vec![])],
        ));
        for seq in mine.into_iter().filter(|seq| seq % 2 == 0) {
            // Some finish, some fail; their start times interleave across nodes.
            let Event::ResultRead { name, kind, outcome, .. } = done_ok(seq, i32::from(seq % 4 == 0)) else {
                unreachable!()
            };
            index.apply(Event::ResultRead { node: (*node).into(), name, kind, outcome });
        }
    }
    let mut expected: Vec<TaskId> = (0..index.id_bound()).filter(|&id| index.task(id).is_some()).collect();
    let key = |id: &TaskId| {
        let t = index.task(*id).unwrap();
        (t.state, Reverse(t.sort_time()), *id)
    };
    expected.sort_by_key(key);
    assert_eq!(expected.len(), 60);
    let view = ViewSpec::default();
    assert_eq!(index.all_in_view(&view), expected);
    // From every anchor, both ways, with and without it, in short pages.
    for (i, &anchor) in expected.iter().enumerate() {
        assert_eq!(
            index.page(&view, Some(anchor), true, false, 7),
            expected[i + 1..].iter().take(7).copied().collect::<Vec<_>>()
        );
        assert_eq!(
            index.page(&view, Some(anchor), true, true, 7),
            expected[i..].iter().take(7).copied().collect::<Vec<_>>()
        );
        let before: Vec<TaskId> = expected[..i].iter().rev().take(7).copied().collect();
        assert_eq!(index.page(&view, Some(anchor), false, false, 7), before);
    }
    assert_eq!(
        index.page(&view, None, false, true, 3),
        expected.iter().rev().take(3).copied().collect::<Vec<_>>()
    );
    let failed = ViewSpec { states: StateSet::of(&[TaskState::Failed]), ..view };
    let failed_rows: Vec<TaskId> =
        expected.iter().copied().filter(|&id| index.task(id).unwrap().state == TaskState::Failed).collect();
    assert_eq!((index.all_in_view(&failed), index.view_total(&failed)), (failed_rows.clone(), 15));
    assert_counts_match_rows(&index);
}

#[test]
fn snapshots_are_independent() {
    let mut index = small_index();
    let snapshot = index.clone();
    index.apply(round("a", vec![changed(QueueDir::Inbox, vec![spec(9)], vec![])]));
    assert_eq!(snapshot.task_count(), 5);
    assert_eq!(index.task_count(), 6);
}

#[test]
fn compacted_tasks_are_the_same_tasks_and_still_change_apart_from_snapshots() {
    let mut index = small_index();
    index.apply(done_ok(4, 0));
    let before = index.clone();
    index.compact_tasks();
    let tasks = |index: &Index| (0..index.id_bound()).map(|id| index.task(id).cloned()).collect::<Vec<_>>();
    assert_eq!(tasks(&index), tasks(&before));
    for view in [ViewSpec::default(), ViewSpec { order: Order::SeqInNode, ..ViewSpec::default() }] {
        assert_eq!(index.all_in_view(&view), before.all_in_view(&view));
    }
    assert_eq!(index.find(&stem(3)), before.find(&stem(3)));
    index.apply(done_ok(5, 2));
    assert_eq!(state(&index, 5), TaskState::Failed);
    assert_eq!(state(&before, 5), TaskState::Done, "the snapshot from before is untouched");
    assert_counts_match_rows(&index);
}

#[test]
fn unrecognised_names_are_counted_not_dropped() {
    let mut index = small_index();
    let junk = vec!["notes.txt".to_string(), ".tmp.x".to_string()];
    index.apply(round("a", vec![changed(QueueDir::Inbox, junk, vec![])]));
    assert_eq!(index.node(0).unwrap().unrecognised, 1);
}

#[test]
fn a_partial_round_shows_live_work_but_does_not_count_as_a_round() {
    let mut index = small_index();
    let partial = |dirs| Event::PartialRound(Round { node: "a".into(), dirs });
    // Task 3 leaves claimed/ (its result is in the done/ part, not listed yet).
    index.apply(partial(vec![changed(QueueDir::Claimed, vec![], vec![spec(3)])]));
    index.apply(partial(vec![(QueueDir::Claimed, DirOutcome::Unchanged)]));
    assert_eq!(state(&index, 3), TaskState::Running, "partial rounds never make a task LOST?");
    index.apply(round("a", vec![changed(QueueDir::Done, vec![spec(3), result(3)], vec![])]));
    assert_eq!(state(&index, 3), TaskState::Done);
    assert_eq!(index.node(0).unwrap().rounds, 2);
}

#[test]
fn a_node_first_listed_after_a_heartbeat_read_without_it_has_no_heartbeat() {
    let mut index = small_index();
    index.apply(round("b", vec![changed(QueueDir::Claimed, vec![spec(9)], vec![])]));
    assert_eq!(state(&index, 9), TaskState::Stuck, "no heartbeat file for b: its claimed task is STUCK");
}

fn cached(events: Vec<Event>) -> Event {
    Event::Cached { facts: events.iter().filter_map(crate::cache::Facts::of_event).collect(), at: Vec::new() }
}

fn fresh_with_heartbeat() -> Index {
    let mut index = Index::new(60);
    index.apply(Event::Tick(1000));
    index.apply(hb("a", 1000));
    index
}

#[test]
fn cached_facts_show_nothing_until_a_listing_names_the_task() {
    let mut index = fresh_with_heartbeat();
    // Facts of tasks 4, 5 and 9; 9 is in no listing.
    index.apply(cached(vec![done_ok(4, 0), done_ok(5, 3), done_ok(9, 0)]));
    assert_eq!(index.task_count(), 0);
    assert_eq!(index.feed().count(), 0, "facts of tasks no listing showed are no news");
    assert_eq!(index.find(&stem(4)), None);
    assert_eq!(index.all_in_view(&ViewSpec::default()), Vec::<TaskId>::new());
    index.apply(round(
        "a",
        vec![changed(QueueDir::Done, vec![spec(4), result(4), spec(5), result(5)], vec![])],
    ));
    assert_eq!(index.task_count(), 2);
    assert_eq!(state(&index, 4), TaskState::Finished);
    assert_eq!(state(&index, 5), TaskState::Failed);
    assert_eq!(index.unread_count(), 2, "their specs are not cached: still owed");
    assert_eq!(index.find(&stem(9)), None, "a cached name no listing shows stays unseen");
    assert_counts_match_rows(&index);
}

#[test]
fn cached_facts_apply_to_tasks_already_listed_only_for_the_result_file_listed() {
    let mut index = small_index();
    // Task 4's result is listed; task 1 is pending (no result file).
    index.apply(cached(vec![done_ok(4, 2), done_ok(1, 0)]));
    assert_eq!(state(&index, 4), TaskState::Failed);
    assert_eq!(state(&index, 1), TaskState::Pending, "facts of a result no listing shows do not count");
    let task = index.task(index.find(&stem(1)).unwrap()).unwrap();
    assert_eq!((task.exit_code(), task.result_read), (None, ReadStatus::Unread));
    assert_counts_match_rows(&index);
}

#[test]
fn a_name_that_reappears_without_its_result_sheds_the_cached_result() {
    let mut index = fresh_with_heartbeat();
    index.apply(cached(vec![done_ok(7, 0)]));
    // The name comes back in inbox/, its result gone.
    index.apply(round("a", vec![changed(QueueDir::Inbox, vec![spec(7)], vec![])]));
    assert_eq!(state(&index, 7), TaskState::Pending);
    let task = index.task(index.find(&stem(7)).unwrap()).unwrap();
    assert_eq!((task.exit_code(), task.started_at, task.result_read), (None, 0, ReadStatus::Unread));
    // When it finishes again, its new result is read, not the cached one.
    index.apply(round("a", vec![changed(QueueDir::Done, vec![spec(7), result(7)], vec![])]));
    assert_eq!(state(&index, 7), TaskState::Done);
    assert!(index.unread_count() > 0);
    index.apply(done_ok(7, 5));
    assert_eq!(state(&index, 7), TaskState::Failed);
}

#[test]
fn a_cached_result_of_another_kind_is_not_used() {
    let mut index = fresh_with_heartbeat();
    index.apply(cached(vec![done_ok(8, 0)]));
    let cancelled = format!("{}.cancelled.json", stem(8));
    index.apply(round("a", vec![changed(QueueDir::Done, vec![spec(8), cancelled], vec![])]));
    assert_eq!(state(&index, 8), TaskState::Cancelled);
    let task = index.task(index.find(&stem(8)).unwrap()).unwrap();
    assert_eq!(
        task.result_read,
        ReadStatus::Unread,
        "the .cancelled.json is read, not the cached .result.json"
    );
}

fn spec_ok(seq: u32) -> Event {
    Event::SpecRead {
        node: "a".into(),
        name: stem(seq).into(),
        outcome: Ok(SpecSummary {
            created_at: 50 + i64::from(seq),
            command: format!("run {seq}").into(),
            cwd: "/w".into(),
            gpus: 0,
        }),
    }
}

fn command(index: &Index, seq: u32) -> Option<String> {
    index.task(index.find(&stem(seq)).unwrap()).unwrap().command().map(str::to_string)
}

/// Ten finished tasks; the cache holds the specs of 1-8 (at 1000 + seq).
fn bounded_index(limit: usize) -> Index {
    let mut index = fresh_with_heartbeat().with_details_limit(limit);
    let names: Vec<String> = (1..=10).flat_map(|s| [spec(s), result(s)]).collect();
    index.apply(round("a", vec![changed(QueueDir::Done, names, vec![])]));
    let specs: Vec<Event> = (1..=8).map(spec_ok).collect();
    let at = (1..=8u32).map(|s| 1000 + u64::from(s)).collect();
    let facts = specs.iter().filter_map(crate::cache::Facts::of_event).collect();
    index.apply(Event::Cached { facts, at });
    for seq in 1..=10 {
        index.apply(done_ok(seq, 0));
    }
    index.apply(spec_ok(9));
    index.apply(spec_ok(10));
    index
}

#[test]
fn details_beyond_the_limit_are_let_go_oldest_first_and_only_when_the_cache_has_them() {
    let index = bounded_index(3);
    assert_eq!(index.details_held(), 3);
    // Newest first: 8, 7, 6 keep theirs; 9 and 10 are not in the cache yet.
    for seq in [6, 7, 8, 9, 10] {
        assert_eq!(command(&index, seq), Some(format!("run {seq}")), "task {seq}");
    }
    for seq in 1..=5 {
        let task = index.task(index.find(&stem(seq)).unwrap()).unwrap();
        assert!(task.details_dropped && task.command().is_none() && task.cwd().is_none(), "task {seq}");
        assert_eq!(task.state, TaskState::Finished, "state, times and exit code stay");
        assert_eq!(task.exit_code(), Some(0));
    }
    assert_counts_match_rows(&index);
    assert_eq!(index.task_count(), 10, "every task stays listed and counted");
}

#[test]
fn saved_details_become_droppable_and_on_screen_ones_stay_and_come_back() {
    let mut index = bounded_index(3);
    // 9 and 10 are saved: five now hold details the cache can give back.
    index.apply(Event::CacheStored(vec![(stem(9).into(), 2009), (stem(10).into(), 2010)]));
    assert_eq!(index.details_held(), 3);
    assert_eq!(command(&index, 6), None, "the oldest holders let go");
    // Tasks 1 and 2 come on screen: fetched again, they stay while shown.
    let on_screen = vec![index.find(&stem(1)).unwrap(), index.find(&stem(2)).unwrap()];
    index.apply(Event::OnScreen(on_screen));
    let recalled: Vec<Event> = [1, 2].into_iter().map(spec_ok).collect();
    index.apply(Event::Recalled(recalled.iter().filter_map(crate::cache::Facts::of_event).collect()));
    assert_eq!(command(&index, 1).as_deref(), Some("run 1"));
    assert_eq!(command(&index, 2).as_deref(), Some("run 2"));
    assert_eq!(index.details_held(), 3, "others let go to make room");
    assert_eq!((command(&index, 8), command(&index, 9)), (None, None));
    // Scrolled to task 8: 1 and 2 are no longer shown and are the oldest,
    // so they make room first.
    index.apply(Event::OnScreen(vec![index.find(&stem(8)).unwrap()]));
    let recalled: Vec<Event> = vec![spec_ok(8)];
    index.apply(Event::Recalled(recalled.iter().filter_map(crate::cache::Facts::of_event).collect()));
    assert_eq!(command(&index, 8).as_deref(), Some("run 8"));
    assert_eq!(command(&index, 1), None);
    assert_eq!(command(&index, 10).as_deref(), Some("run 10"));
    assert_eq!(index.details_held(), 3);
    assert_counts_match_rows(&index);
}

#[test]
fn without_a_limit_every_detail_is_held() {
    let mut index = fresh_with_heartbeat();
    let names: Vec<String> = (1..=4).flat_map(|s| [spec(s), result(s)]).collect();
    index.apply(round("a", vec![changed(QueueDir::Done, names, vec![])]));
    let facts = (1..=4).map(spec_ok).collect::<Vec<_>>();
    let at = (1..=4u32).map(u64::from).collect();
    index
        .apply(Event::Cached { facts: facts.iter().filter_map(crate::cache::Facts::of_event).collect(), at });
    (1..=4).for_each(|s| index.apply(done_ok(s, 0)));
    assert!((1..=4).all(|s| command(&index, s).is_some()));
}

/// A result as the older tool's runner writes it: naming the command.
fn done_with_command(seq: u32) -> Event {
    let Event::ResultRead { node, name, kind, outcome: Ok(mut result) } = done_ok(seq, 0) else {
        unreachable!()
    };
    result.command = Some(format!("run {seq}").into());
    result.cwd = Some("/exp".into());
    result.gpus_requested = Some(2);
    Event::ResultRead { node, name, kind, outcome: Ok(result) }
}

#[test]
fn a_finished_tasks_result_is_read_first_and_its_spec_only_if_the_result_names_no_command() {
    let mut index = fresh_with_heartbeat();
    let names: Vec<String> = (1..=2).flat_map(|s| [spec(s), result(s)]).collect();
    index.apply(round("a", vec![changed(QueueDir::Done, names, vec![])]));
    let task = |index: &Index, seq| index.task(index.find(&stem(seq)).unwrap()).unwrap().clone();
    // Both files unread: the result is owed, the spec waits for it.
    assert!(task(&index, 1).result_owed() && !task(&index, 1).spec_owed());
    index.apply(done_with_command(1));
    index.apply(done_ok(2, 0));
    let (one, two) = (task(&index, 1), task(&index, 2));
    assert_eq!((one.command(), one.cwd(), one.gpus), (Some("run 1"), Some("/exp"), 2));
    assert!(!one.needs_read(), "the result said it all: the spec is not read");
    assert!(two.spec_owed(), "a result without the command sends the reader to the spec");
    assert_eq!(index.unread_count(), 1);
    index.apply(spec_ok(2));
    assert_eq!((index.unread_count(), command(&index, 2).as_deref()), (0, Some("run 2")));
    // A spec read anyway (not owed) stands over what the result repeated.
    index.apply(spec_ok(1));
    assert_eq!((task(&index, 1).cwd(), task(&index, 1).gpus), (Some("/w"), 0));
}

#[test]
fn details_from_a_results_record_are_let_go_and_recalled_from_it() {
    let mut index = fresh_with_heartbeat().with_details_limit(1);
    let names: Vec<String> = (1..=3).flat_map(|s| [spec(s), result(s)]).collect();
    index.apply(round("a", vec![changed(QueueDir::Done, names, vec![])]));
    let facts: Vec<crate::cache::Facts> =
        (1..=3).map(done_with_command).filter_map(|e| crate::cache::Facts::of_event(&e)).collect();
    index.apply(Event::Cached { facts: facts.clone(), at: vec![101, 102, 103] });
    assert_eq!((index.details_held(), index.details_let_go()), (1, 2));
    let one = index.task(index.find(&stem(1)).unwrap()).unwrap();
    assert!(one.details_dropped && one.details_at == 101 && !one.needs_read(), "{one:?}");
    index.apply(Event::OnScreen(vec![index.find(&stem(1)).unwrap()]));
    index.apply(Event::Recalled(vec![facts[0].clone()]));
    assert_eq!(command(&index, 1).as_deref(), Some("run 1"));
    assert_counts_match_rows(&index);
}

#[test]
fn with_no_details_held_a_results_record_gives_none_and_the_row_can_fetch_them() {
    // `status` and `--max-tasks 0`: what the cache can give back is let go
    // (the index does not even take it, which only costs less: the same
    // holds either way); a live task keeps its details, a row on screen
    // gets them.
    let mut index = fresh_with_heartbeat().with_details_limit(0);
    let names: Vec<String> = (1..=3).flat_map(|s| [spec(s), result(s)]).collect();
    index.apply(round("a", vec![changed(QueueDir::Done, names, vec![])]));
    index.apply(round("a", vec![changed(QueueDir::Inbox, vec![spec(4)], vec![])]));
    index.apply(Event::OnScreen(vec![index.find(&stem(3)).unwrap()]));
    let facts: Vec<crate::cache::Facts> =
        (1..=3).map(done_with_command).filter_map(|e| crate::cache::Facts::of_event(&e)).collect();
    index.apply(Event::Cached { facts: facts.clone(), at: vec![101, 102, 103] });
    index.apply(spec_ok(4));
    let task = |seq| index.task(index.find(&stem(seq)).unwrap()).unwrap().clone();
    for seq in [1, 2] {
        let t = task(seq);
        assert!(t.details.is_none() && t.details_dropped && t.details_at == 100 + u64::from(seq), "{t:?}");
        assert!(!t.needs_read() && t.exit_code() == Some(0) && t.state == TaskState::Finished);
    }
    assert_eq!(command(&index, 3).as_deref(), Some("run 3"), "on screen: held");
    assert_eq!(command(&index, 4).as_deref(), Some("run 4"), "live: held");
    // Task 3 holds its details while on screen (held, never let go then).
    assert_eq!((index.details_held(), index.details_let_go()), (1, 2));
    index.apply(Event::OnScreen(vec![index.find(&stem(1)).unwrap()]));
    index.apply(Event::Recalled(vec![facts[0].clone()]));
    assert_eq!(command(&index, 1).as_deref(), Some("run 1"));
    assert_counts_match_rows(&index);
}

/// A page computed from the views themselves, past the remembered ones.
fn fresh_page(
    index: &Index,
    view: &ViewSpec,
    anchor: Option<TaskId>,
    forward: bool,
    limit: usize,
) -> Vec<TaskId> {
    let anchor = anchor.and_then(|id| index.task(id).map(|t| (id, t)));
    let state_of = |id: TaskId| index.tasks[id as usize].state;
    index.views.page(view, anchor, forward, true, limit, &state_of)
}

#[test]
fn remembered_pages_follow_every_change_and_every_copy() {
    let mut index = Index::new(60);
    let names: Vec<String> = (1..=40).map(spec).collect();
    index.apply(round("a", vec![changed(QueueDir::Inbox, names, vec![])]));
    let views = [
        ViewSpec::default(),
        ViewSpec { order: Order::SeqInNode, ..ViewSpec::default() },
        ViewSpec { states: StateSet::of(&[TaskState::Running]), ..ViewSpec::default() },
    ];
    let agree = |index: &Index| {
        for view in &views {
            for anchor in [None, index.find(&stem(7)), index.find(&stem(30))] {
                for forward in [true, false] {
                    let expected = fresh_page(index, view, anchor, forward, 12);
                    assert_eq!(index.page(view, anchor, forward, true, 12), expected);
                    // Asked again: from what is remembered, the same.
                    assert_eq!(index.page(view, anchor, forward, true, 12), expected);
                }
            }
        }
    };
    agree(&index);
    let snapshot = index.clone();
    // Task 7 is claimed: the pages change, the snapshot's do not.
    index.apply(round("a", vec![changed(QueueDir::Claimed, vec![spec(7)], vec![])]));
    index.apply(round("a", vec![changed(QueueDir::Inbox, vec![], vec![spec(7)])]));
    agree(&index);
    agree(&snapshot);
    let running = &views[2];
    assert_eq!(index.page(running, None, true, true, 5), vec![index.find(&stem(7)).unwrap()]);
    assert!(snapshot.page(running, None, true, true, 5).is_empty());
    // Two copies changed apart share what they remember, never a page.
    let mut other = index.clone();
    index.apply(round("a", vec![changed(QueueDir::Claimed, vec![spec(30)], vec![])]));
    other.apply(round("a", vec![changed(QueueDir::Claimed, vec![spec(8)], vec![])]));
    agree(&index);
    agree(&other);
    assert_ne!(index.page(running, None, true, true, 5), other.page(running, None, true, true, 5));
    // A heartbeat moves no task: the pages stay remembered, and right.
    index.apply(hb("a", 1000));
    agree(&index);
}
