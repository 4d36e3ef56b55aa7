//! Where a warm launch's time goes: each phase of building the index from a
//! generated tree and the cache a first launch left, alone on one thread.
//! Decoding the cache, folding its facts, listing every node's queue
//! directories (forced, as a first round is), the same rounds with the
//! `done/` listings a launch saved in the cache, folding those listings.
//!
//! cargo bench --bench phases   (LEASEQ_BENCH_SIZES=1000000 for one size;
//! the cache goes to target/bench-cache/<n>, filled by a first run)

mod common;

use std::time::Instant;

use leaseq::cache::{CacheUse, FactsCache};
use leaseq::index::{Event, Index};
use leaseq::scan::{discover_nodes, FsSource, NodeScanner, RunFs};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches`: the trees are too big to smoke-test
    }
    for tasks in common::sizes(&[100_000, 1_000_000]) {
        let (_, run) = common::generated_tree(tasks);
        let mut env = leaseq::paths::Env::from_process();
        env.leaseq_cache_dir = Some(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("target/bench-cache/{tasks}"))
                .into(),
        );
        let lease_id = "99887766".to_string();
        let cache = std::sync::Arc::new(FactsCache::for_run(&env, &lease_id, &run.0).expect("the cache"));
        if !cache.path().exists() {
            eprintln!("filling {} with a first launch (once)...", cache.path().display());
            let use_cache = CacheUse::For { env: env.clone(), lease_id };
            let ui = leaseq::paths::UiConfig::default();
            leaseq::oneshot::build(
                &FsSource,
                &run,
                &ui,
                1_736_100_000,
                leaseq::oneshot::Reads::All,
                &use_cache,
            );
        }
        let mut index = Index::new(60).with_details_limit(5000);
        index.apply(Event::Tick(1_736_100_000));
        let (mut from, mut decode, mut fold_facts, mut facts) = (Some(0), 0.0, 0.0, 0);
        while let Some(at) = from {
            let started = Instant::now();
            let loaded = cache.load(at);
            decode += started.elapsed().as_secs_f64();
            from = loaded.next;
            facts += loaded.facts.len();
            let started = Instant::now();
            index.apply(Event::Cached { facts: loaded.facts, at: loaded.at });
            fold_facts += started.elapsed().as_secs_f64();
        }
        let (mut list, mut fold_lists, mut readdir, mut from_saved) = (0.0, 0.0, 0.0, 0.0);
        for node in &discover_nodes(&FsSource, &run).names {
            // The directory read alone (the kernel's part, and the floor).
            let started = Instant::now();
            let names = FsSource.list_files(&run.queue(leaseq::paths::QueueDir::Done, node)).expect("done/");
            readdir += started.elapsed().as_secs_f64();
            drop(names);
            let mut scanner = NodeScanner::new(&run, node);
            let started = Instant::now();
            let listed = scanner.round(&FsSource, true);
            list += started.elapsed().as_secs_f64();
            // What a relaunch does: the saved done/ listing (saved here
            // first, by a round that lists, if no launch has yet).
            let saving = || NodeScanner::new(&run, node).with_saved_listings(Some(cache.clone()));
            saving().round(&FsSource, true);
            let started = Instant::now();
            let round = saving().round(&FsSource, true);
            from_saved += started.elapsed().as_secs_f64();
            assert_eq!(round, listed, "the saved listing is the listing");
            let started = Instant::now();
            index.apply(Event::Round(round));
            fold_lists += started.elapsed().as_secs_f64();
        }
        assert_eq!(index.unread_count(), 0, "the cache had every fact");
        println!(
            "phases/{tasks}: decode cache {decode:.2} s ({facts} facts), fold them {fold_facts:.2} s, \
             list queue dirs {list:.2} s (of which reading done/ {readdir:.2} s), \
             the same with saved done/ listings {from_saved:.2} s, fold listings {fold_lists:.2} s; \
             tasks {}",
            index.task_count()
        );
    }
}
