//! Where the synthetic loop's time goes, per event kind: the default mix, then streams of one
//! kind only (hedge quotes with depth, index/forward prices, option marks on the default chain
//! and on a two-option chain), each timed as the generator alone and as the binary's loop
//! (`publish_loop`, generate + validate + last-value table + ring); their difference is the
//! publisher's share. ns per event, per on-CPU second, fastest of 15 runs. A diagnostic for
//! tuning, not a target: the targets are in `feed_bench`.
//!
//! Run: `taskset -c 1 cargo run --release -p feed-handler --example feed_kinds -- [EVENTS]`
//! (default 10,000,000 per run). Segments go to a directory in /dev/shm, removed after.
use feed_handler::publish::{Publisher, PublisherOptions};
use feed_handler::run::{publish_loop, Config};
use feed_handler::source::{Source, SourceEvent};
use feed_handler::synthetic::{SyntheticConfig, SyntheticSource};
use shm_layout::StalePolicy;
use std::sync::atomic::AtomicBool;

/// This thread's on-CPU ns (`/proc/thread-self/schedstat`; updated at scheduler ticks, so runs
/// should last well over 4 ms).
fn cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split(' ').next().and_then(|v| v.parse().ok()))
        .unwrap_or(0)
}
/// Fastest of `n` runs.
fn best<F: FnMut() -> f64>(n: usize, mut f: F) -> f64 {
    (0..n).map(|_| f()).fold(f64::MAX, f64::min)
}

fn main() {
    let events: u64 = std::env::args()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    for (name, w) in [
        ("mix", [0.5, 0.1, 0.4]),
        ("quote", [1.0, 0.0, 0.0]),
        ("price", [0.0, 1.0, 0.0]),
        ("mark", [0.0, 0.0, 1.0]),
        ("mark2", [0.0, 0.0, 1.0]),
    ] {
        let few = name == "mark2";
        let cfg = SyntheticConfig {
            strikes_per_expiry: if few { 1 } else { 9 },
            expiries_days: if few { vec![30] } else { vec![7, 30, 90] },
            rate: f64::INFINITY,
            weight_quote: w[0],
            weight_price: w[1],
            weight_mark: w[2],
            ..SyntheticConfig::default()
        };
        let gen = best(15, || {
            let mut s = SyntheticSource::new(cfg.clone());
            let mut ev = SourceEvent::default();
            let mut x = 0.0;
            let t = cpu_ns();
            for _ in 0..events {
                s.next(&mut ev);
                x += ev.event.v[0];
            }
            std::hint::black_box(x);
            (cpu_ns() - t) as f64 / events as f64
        });
        let full = best(15, || {
            // Removed when dropped, also on a panic.
            let tmp = tempfile::Builder::new()
                .prefix("feed-kinds-")
                .tempdir_in("/dev/shm")
                .expect("a directory in /dev/shm");
            let dir = tmp.path();
            let mut s = SyntheticSource::new(cfg.clone());
            let mut p = Publisher::create_without_counters(
                dir,
                s.registry(),
                &PublisherOptions {
                    ring_capacity: 1 << 18,
                    stale: StalePolicy::Replace,
                },
            )
            .unwrap();
            let run_cfg = Config {
                max_events: Some(events),
                speed: None,
                stats_interval_s: 0.0,
                synthetic: cfg.clone(),
                ..Config::default()
            };
            let stop = AtomicBool::new(false);
            let t = cpu_ns();
            publish_loop(&run_cfg, &mut s, &mut p, &stop, dir);
            (cpu_ns() - t) as f64 / events as f64
        });
        println!(
            "{name:6} gen {gen:5.1} ns  gen+pub {full:5.1} ns  pub {:5.1} ns",
            full - gen
        );
    }
}
