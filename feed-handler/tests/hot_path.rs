//! The feed handler's per-event path neither allocates nor frees: the synthetic market's `next`
//! followed by `Publisher::publish_at` (validate, last-value table in place with depth promises,
//! ring), over a million events that include stress episodes, bursts, jumps and exact option
//! reprices, under `shm_layout::alloc_count`, which counts only on this test's thread. (That the table and
//! ring operations make no system call is proven in `shm-layout/tests/hot_path.rs` under seccomp
//! strict mode; the generator is arithmetic on its own state.)

use feed_handler::publish::{Publisher, PublisherOptions};
use feed_handler::source::{Source, SourceEvent};
use feed_handler::synthetic::{SyntheticConfig, SyntheticSource};
use shm_layout::alloc_count::{CountingAlloc, Region};
use shm_layout::StalePolicy;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

#[test]
fn synthetic_generate_and_publish_do_not_allocate() {
    let dir = testkit::shm::namespace_dir("fh-hot-");
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
    let region = Region::start();
    let mut stressed = 0u64;
    for i in 0..1_000_000u64 {
        s.next(&mut ev);
        assert!(p.publish_at(&ev, i));
        stressed += u64::from(s.in_stress());
    }
    let c = region.change();
    assert_eq!(
        (c.allocations, c.deallocations, c.reallocations),
        (0, 0, 0),
        "allocations per event"
    );
    assert_eq!(p.stats().published, 1_001_000);
    assert!(stressed > 0, "no stress episode was exercised");
    assert!(
        s.exact_reprices() > reprices_before,
        "no exact reprice was exercised"
    );
}
