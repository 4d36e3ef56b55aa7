//! Shared bench inputs: synthetic events (no disk) and generated trees
//! (cached under target/bench-trees, generated once per size).
#![allow(dead_code)]

use std::sync::Arc;

use leaseq::index::{DirOutcome, Event, Index, ResultSummary, Round, SpecSummary};
use leaseq::model::ResultKind;
use leaseq::paths::QueueDir;

pub const NODES: usize = 16;

pub fn node_name(node: usize) -> String {
    format!("node{node:02}")
}

/// The stem of done task `i` on its node, in the real tool's form.
pub fn stem(i: usize) -> String {
    let micros = 1_736_000_000_000_000u64 + i as u64 * 1_000;
    format!("{micros:016}_T{:06x}_{:08x}-0000-4000-8000-{:012x}", i & 0xff_ffff, i, i)
}

/// One names-only round per node listing `tasks` done tasks (spec +
/// result), as the first scan of a history produces.
pub fn done_rounds(tasks: usize) -> Vec<Event> {
    (0..NODES)
        .map(|node| {
            let mut added: Vec<String> = Vec::with_capacity(2 * tasks / NODES + 2);
            for i in (node..tasks).step_by(NODES) {
                let stem = stem(i);
                added.push(format!("{stem}.json"));
                added.push(format!("{stem}.result.json"));
            }
            added.sort_unstable();
            let dirs = vec![(QueueDir::Done, DirOutcome::changed(added, vec![]))];
            Event::Round(Round { node: node_name(node).into(), dirs })
        })
        .collect()
}

/// Number of names in events from [`done_rounds`].
pub fn names_in(events: &[Event]) -> u64 {
    events
        .iter()
        .map(|e| match e {
            Event::Round(r) => r
                .dirs
                .iter()
                .map(|(_, o)| match o {
                    DirOutcome::Changed { added, removed } => (added.len() + removed.len()) as u64,
                    _ => 0,
                })
                .sum(),
            _ => 0,
        })
        .sum()
}

pub fn names_only_index(tasks: usize) -> Index {
    let mut index = Index::new(60);
    index.apply(Event::Tick(1_736_100_000));
    for event in done_rounds(tasks) {
        index.apply(event);
    }
    index
}

const CWDS: [&str; 4] = ["/home/u/exp", "/home/u/exp/sweep", "/scratch/u/runs", "/home/u/other"];

/// Spec and result reads for every task of [`done_rounds`].
pub fn hydration_events(tasks: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(2 * tasks);
    for i in 0..tasks {
        let (node, name): (Arc<str>, leaseq::names::StoredName) =
            (node_name(i % NODES).into(), stem(i).into());
        events.push(Event::SpecRead {
            node: node.clone(),
            name: name.clone(),
            outcome: Ok(SpecSummary {
                created_at: 1_736_000_000 + i as i64,
                command: format!("python train.py --cfg cfgs/{}.yaml --seed {i}", i % 97).into(),
                cwd: CWDS[i % CWDS.len()].into(),
                gpus: 1,
            }),
        });
        let task_id = format!("T{:06x}", i & 0xff_ffff);
        events.push(Event::ResultRead {
            node,
            name,
            kind: ResultKind::Ran,
            outcome: Ok(ResultSummary {
                started_at: 1_736_000_100 + i as i64,
                finished_at: 1_736_000_200 + i as i64,
                exit_code: if i % 13 == 0 { 1 } else { 0 },
                runtime_s: 100.0,
                stdout: format!("logs/{task_id}.out").into(),
                stderr: format!("logs/{task_id}.err").into(),
                command: None,
                gpus_assigned: Some("0".into()),
                cwd: None,
                gpus_requested: None,
                error: None,
            }),
        });
    }
    events
}

pub fn hydrated_index(tasks: usize) -> Index {
    let mut index = names_only_index(tasks);
    for event in hydration_events(tasks) {
        index.apply(event);
    }
    index
}

/// A generated archive of `tasks` done tasks over [`NODES`] nodes, made
/// once and kept under target/bench-trees (a 10^6 tree takes a while).
pub fn generated_tree(tasks: usize) -> (std::path::PathBuf, leaseq::paths::RunDir) {
    use leaseq::sim::generate::{generate, GenerateOptions};
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-trees").join(tasks.to_string());
    let marker = root.join(".complete");
    let run = leaseq::paths::RunDir(root.join("runs").join("99887766"));
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&root);
        eprintln!("generating {tasks} tasks into {} (once)...", root.display());
        let options =
            GenerateOptions { tasks, nodes: NODES, now: 1_736_100_000, ..GenerateOptions::default() };
        let tree = generate(&root, &options).expect("generate bench tree");
        assert_eq!(tree.run_dir, run.0);
        std::fs::write(&marker, b"").expect("mark tree complete");
    }
    (root, run)
}

/// Tree sizes to measure: `LEASEQ_BENCH_SIZES=10000,100000` or the default.
pub fn sizes(default: &[usize]) -> Vec<usize> {
    match std::env::var("LEASEQ_BENCH_SIZES") {
        Ok(list) => list.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => default.to_vec(),
    }
}

/// The `p` quantile (0..=1) of sorted values, NaN for none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// CPU time (user + system, in clock ticks) a process has used so far.
pub fn proc_ticks(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after ")".
    fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}
