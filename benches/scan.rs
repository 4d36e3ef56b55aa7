//! Scanning real generated trees: cold names-only index build, rescans
//! when nothing changed, and hydration (files read and parsed per second).
//!
//! cargo bench --bench scan   (LEASEQ_BENCH_SIZES=10000,100000 for fewer)

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use leaseq::cache::CacheUse;
use leaseq::engine::jobs::Job;
use leaseq::hydrate::{jobs_for, ReadJob};
use leaseq::oneshot::{build, Reads};
use leaseq::paths::{RunDir, UiConfig};
use leaseq::scan::{discover_nodes, FsSource, NodeScanner};

const NOW: i64 = 1_736_100_000;

fn scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("scan");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    let ui = UiConfig::default();
    for tasks in common::sizes(&[10_000, 100_000, 1_000_000]) {
        let (_, run) = common::generated_tree(tasks);
        group.throughput(Throughput::Elements(tasks as u64));
        group.bench_function(format!("cold_names_only_build/{tasks}"), |b| {
            // The index is kept (the TUI holds it, the CLI exits): its drop
            // is not part of the build a user waits for.
            b.iter_with_large_drop(|| build(&FsSource, &run, &ui, NOW, Reads::None, &CacheUse::Off))
        });

        let nodes = discover_nodes(&FsSource, &run).names;
        let mut scanners: Vec<NodeScanner> = nodes.iter().map(|n| NodeScanner::new(&run, n)).collect();
        for scanner in &mut scanners {
            scanner.round(&FsSource, true);
        }
        group.bench_function(format!("rescan_unchanged/{tasks}"), |b| {
            b.iter(|| {
                for scanner in &mut scanners {
                    black_box(scanner.round(&FsSource, false));
                }
            })
        });
        group.bench_function(format!("rescan_forced/{tasks}"), |b| {
            b.iter(|| {
                for scanner in &mut scanners {
                    black_box(scanner.round(&FsSource, true));
                }
            })
        });
    }
    group.finish();
}

/// The engine's read jobs, split over the cores as the one-shot commands run them.
fn read_parallel(jobs: &[ReadJob]) -> usize {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let chunk = jobs.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || Job::Read(part.to_vec()).execute(&FsSource, &RunDir("/".into()), NOW))
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).count()
    })
}

fn hydration(c: &mut Criterion) {
    let mut group = c.benchmark_group("hydrate");
    group.sample_size(10).warm_up_time(Duration::from_secs(1));
    let ui = UiConfig::default();
    for tasks in common::sizes(&[10_000, 100_000, 1_000_000]) {
        let (_, run) = common::generated_tree(tasks);
        let index = build(&FsSource, &run, &ui, NOW, Reads::None, &CacheUse::Off);
        let mut jobs: Vec<ReadJob> = Vec::new();
        for id in index.unread(usize::MAX, |_| false) {
            jobs_for(&index, &run, id, true, &mut jobs);
        }
        // A bounded sample keeps 10^6 runs short; the rate is per file.
        let sample = 20_000.min(jobs.len());
        let results: Vec<ReadJob> =
            jobs.iter().filter(|j| j.result.is_some()).take(sample).cloned().collect();
        let specs: Vec<ReadJob> = jobs.iter().filter(|j| j.result.is_none()).take(sample).cloned().collect();
        group.throughput(Throughput::Elements(results.len() as u64));
        group.bench_function(format!("results/{tasks}"), |b| b.iter(|| black_box(read_parallel(&results))));
        group.throughput(Throughput::Elements(specs.len() as u64));
        group.bench_function(format!("specs/{tasks}"), |b| b.iter(|| black_box(read_parallel(&specs))));
    }
    group.finish();
}

criterion_group!(benches, scan, hydration);
criterion_main!(benches);
