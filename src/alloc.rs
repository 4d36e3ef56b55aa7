//! What the process asks of the C allocator (glibc malloc) to keep its
//! resident memory near what it really holds.

/// glibc gives each thread that allocates its own arena, up to 8 per
/// core: on a 64-core login node, hundreds of arenas, each keeping freed
/// memory of its own. Too few, and the threads share arenas and wait on
/// each other's arena locks: the pump can wait behind a background thread
/// preempted (it runs niced) while holding one. Sixteen is about
/// the threads a dashboard runs, glibc's own figure on two cores. At 10^6
/// tasks, against four arenas (`cargo bench --bench tui`, warm, three
/// runs each way alternated, six launches): key to frame inside p99
/// 4.3-6.0 ms (once 12.7) against 5.0-14.0 ms, RSS 259-269 against 265-280
/// MiB.
const MALLOC_ARENAS: libc::c_int = 16;

/// Blocks from this size up get their own mapping, given back whole when
/// freed. glibc raises this bound (up to 32 MB) each time such a block is
/// freed, and then the index's sorted arrays, remade as a history is folded
/// (megabytes each, a little bigger each time), are carved from the arenas
/// and leave holes there: a fixed bound keeps them out (one warm launch
/// at 10^6 tasks each way, VmRSS / VmHWM 12 s after ingest: 310 -> 298
/// MiB, peak 523 -> 443 MiB).
const MMAP_FROM_BYTES: libc::c_int = 256 * 1024;

/// Call before any thread is started.
pub fn tune_malloc() {
    // SAFETY: mallopt only sets allocator parameters.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_FROM_BYTES);
    }
}

/// Hands memory freed after a big ingest (listings, batches of facts,
/// snapshots the dashboard let go) back to the system, now and once more a
/// little later, when the last old snapshot is gone. malloc keeps freed
/// memory otherwise, and a dashboard that ingested a million tasks would
/// hold hundreds of megabytes it no longer uses. On its own thread: a trim
/// walks the whole heap.
pub fn give_back_freed_memory() {
    let trim = || {
        // SAFETY: malloc_trim only returns free pages to the system.
        unsafe {
            libc::malloc_trim(0);
        }
    };
    let _ = std::thread::Builder::new().name("trim".into()).spawn(move || {
        crate::io_pool::run_behind(crate::io_pool::Behind::Fold);
        trim();
        std::thread::sleep(std::time::Duration::from_secs(2));
        trim();
    });
}

/// Drops `value` on a background thread. An old index snapshot the
/// dashboard lets go can be the last owner of thousands of tree nodes
/// (what the fold copied since): freeing them on the pump is a stall a key
/// press would wait behind.
pub fn drop_elsewhere<T: Send + 'static>(value: T) {
    type Garbage = Box<dyn Send>;
    static BIN: std::sync::OnceLock<Option<std::sync::mpsc::Sender<Garbage>>> = std::sync::OnceLock::new();
    let bin = BIN.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Garbage>();
        let spawned = std::thread::Builder::new().name("leaseq-drop".into()).spawn(move || {
            crate::io_pool::run_behind(crate::io_pool::Behind::Fold);
            rx.into_iter().for_each(drop);
        });
        spawned.ok().map(|_| tx)
    });
    if let Some(bin) = bin {
        // A send fails only with the thread gone: then it is dropped here.
        let _ = bin.send(Box::new(value));
    }
}
