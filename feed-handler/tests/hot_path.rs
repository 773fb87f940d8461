//! The feed handler's per-event path neither allocates nor frees: the synthetic market's `next`
//! followed by `Publisher::publish_at` (validate, last-value table in place with depth promises,
//! ring), over a million events that include stress episodes, bursts, jumps and exact option
//! reprices. A counting global allocator counts only on this test's thread: a process-wide count
//! (`stats_alloc`) also sees the test harness's main thread, which allocates while the test
//! thread starts, and failed that way under load. (That the table and
//! ring operations make no system call is proven in `shm-layout/tests/hot_path.rs` under seccomp
//! strict mode; the generator is arithmetic on its own state.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use feed_handler::publish::{Publisher, PublisherOptions};
use feed_handler::source::{Source, SourceEvent};
use feed_handler::synthetic::{SyntheticConfig, SyntheticSource};
use shm_layout::StalePolicy;

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards to the system allocator; only adds a counter.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if COUNTING.with(|c| c.get()) {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn synthetic_generate_and_publish_do_not_allocate() {
    let dir = tempfile::Builder::new()
        .prefix("fh-hot-")
        .tempdir_in("/dev/shm")
        .unwrap();
    // 1 ms per event: a million events span stress episodes, bursts and jumps.
    let mut s = SyntheticSource::new(SyntheticConfig {
        rate: 1000.0,
        ..SyntheticConfig::default()
    });
    let mut p = Publisher::create_without_counters(
        dir.path(),
        s.registry(),
        &PublisherOptions {
            ring_capacity: 1 << 12,
            stale: StalePolicy::Fail,
        },
    )
    .unwrap();
    let mut ev = SourceEvent::default();
    let reprices_before = s.exact_reprices();
    // Warm-up outside the count (first touches of pages, lazy statics).
    for i in 0..1000u64 {
        s.next(&mut ev);
        assert!(p.publish_at(&ev, i));
    }
    COUNTING.with(|c| c.set(true));
    let mut stressed = 0u64;
    for i in 0..1_000_000u64 {
        s.next(&mut ev);
        assert!(p.publish_at(&ev, i));
        stressed += u64::from(s.in_stress());
    }
    COUNTING.with(|c| c.set(false));
    assert_eq!(ALLOCS.load(Ordering::Relaxed), 0, "allocations per event");
    assert_eq!(p.stats().published, 1_001_000);
    assert!(stressed > 0, "no stress episode was exercised");
    assert!(
        s.exact_reprices() > reprices_before,
        "no exact reprice was exercised"
    );
}
