//! The index: apply rate, snapshot cost and page queries at 10^4..10^6.
//!
//! cargo bench --bench index

mod common;

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use leaseq::index::{Index, Order, StateSet, TaskState, ViewSpec};

fn apply(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    group.sample_size(10);
    for tasks in common::sizes(&[10_000, 100_000, 1_000_000]) {
        let events = common::done_rounds(tasks);
        group.throughput(Throughput::Elements(common::names_in(&events)));
        group.bench_function(format!("names_only/{tasks}"), |b| {
            b.iter_batched(
                || events.clone(),
                |events| {
                    let mut index = Index::new(60);
                    for event in events {
                        index.apply(event);
                    }
                    index
                },
                BatchSize::LargeInput,
            )
        });
        let base = common::names_only_index(tasks);
        let reads = common::hydration_events(tasks);
        group.throughput(Throughput::Elements(reads.len() as u64));
        group.bench_function(format!("hydration_events/{tasks}"), |b| {
            b.iter_batched(
                || (base.clone(), reads.clone()),
                |(mut index, reads)| {
                    for event in reads {
                        index.apply(event);
                    }
                    index
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn snapshot_and_pages(c: &mut Criterion) {
    let mut group = c.benchmark_group("query");
    for tasks in common::sizes(&[10_000, 100_000, 1_000_000]) {
        let index = common::hydrated_index(tasks);
        group.bench_function(format!("snapshot/{tasks}"), |b| b.iter(|| black_box(index.clone())));

        let node = index.find_node(&common::node_name(3));
        let views = [
            ("all", ViewSpec::default()),
            ("finished", ViewSpec { states: StateSet::of(&[TaskState::Finished]), ..ViewSpec::default() }),
            ("failed", ViewSpec { states: StateSet::of(&[TaskState::Failed]), ..ViewSpec::default() }),
            ("node", ViewSpec { node, ..ViewSpec::default() }),
            (
                "node_failed",
                ViewSpec { node, states: StateSet::of(&[TaskState::Failed]), ..ViewSpec::default() },
            ),
            ("seq_in_node", ViewSpec { node, order: Order::SeqInNode, ..ViewSpec::default() }),
        ];
        for (label, view) in views {
            // Anchor on the task in the middle of the view.
            let middle = (index.view_total(&view) / 2) as usize;
            let anchor = index.page(&view, None, true, true, middle + 1).last().copied();
            let remaining = index.view_total(&view) as usize - middle;
            assert_eq!(index.page(&view, anchor, true, true, 50).len(), 50.min(remaining));
            group.bench_function(format!("page50/{label}/{tasks}"), |b| {
                b.iter(|| black_box(index.page(&view, anchor, true, true, 50)))
            });
            group.bench_function(format!("page50_backwards/{label}/{tasks}"), |b| {
                b.iter(|| black_box(index.page(&view, anchor, false, false, 50)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, apply, snapshot_and_pages);
criterion_main!(benches);
