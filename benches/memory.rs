//! Memory per task, names-only and hydrated, measured by counting the
//! bytes the allocator hands out (live bytes after the build).
//!
//! cargo bench --bench memory

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing:
    // run small then.
    let full = std::env::args().any(|a| a == "--bench");
    let sizes: &[usize] = if full { &[10_000, 100_000, 1_000_000] } else { &[10_000] };
    println!(
        "{:>9} {:>16} {:>16} {:>22}",
        "tasks", "names-only B/task", "hydrated B/task", "hydrated w/o commands"
    );
    for &tasks in sizes {
        let base = live();
        let mut index = common::names_only_index(tasks);
        let names_only = live() - base;
        let events = common::hydration_events(tasks);
        let command_bytes: usize = events
            .iter()
            .map(|e| match e {
                leaseq::index::Event::SpecRead { outcome: Ok(spec), .. } => spec.command.len() + 16,
                _ => 0,
            })
            .sum();
        for event in events {
            index.apply(event);
        }
        // Every event was consumed and dropped: what remains is the index.
        let hydrated = live() - base;
        let per = |bytes: isize| bytes as f64 / tasks as f64;
        println!(
            "{:>9} {:>16.0} {:>16.0} {:>22.0}",
            tasks,
            per(names_only),
            per(hydrated),
            per(hydrated - command_bytes as isize)
        );
        drop(index);
    }
}
