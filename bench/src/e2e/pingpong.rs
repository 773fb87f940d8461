//! The hardware's limit: a raw core-to-core ping-pong of one cache line between two pinned
//! threads. Each side owns a 128-byte-aligned line holding a counter and spins until the other
//! side's counter moves; one round trip is two cache-line transfers. Half the round trip is the
//! one-way floor that any hop between two cores (feed -> hedger, hedger -> gateway) pays.
//!
//! No shared-memory segment, no message, no clock read on the far side: nothing can be faster
//! between these two cores.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam::utils::CachePadded;
use hdrhistogram::Histogram;
use shm_layout::clock::now_ns;

use super::pin;
use super::report::new_hist;

/// What one ping-pong run measured.
#[derive(Debug)]
pub struct PingPong {
    /// Round-trip times, ns.
    pub rtt: Histogram<u64>,
    /// Half round trips (one-way estimate), ns.
    pub one_way: Histogram<u64>,
    /// Round trips measured (after warm-up).
    pub round_trips: u64,
}

/// Runs `round_trips` round trips (plus a tenth as warm-up) between a thread on `core_a` and
/// one on `core_b`, stopping early after `budget`.
pub fn run(
    core_a: Option<usize>,
    core_b: Option<usize>,
    round_trips: u64,
    budget: Duration,
) -> PingPong {
    let ping = CachePadded::new(AtomicU64::new(0));
    let pong = CachePadded::new(AtomicU64::new(0));
    let stop = CachePadded::new(AtomicU64::new(0));
    let warmup = round_trips / 10;
    let total = warmup + round_trips;
    std::thread::scope(|s| {
        s.spawn(|| {
            pin(core_b);
            let mut seen = 0u64;
            loop {
                let v = ping.load(Ordering::Acquire); // pairs with the Release store of `ping` below
                if v != seen {
                    seen = v;
                    pong.store(v, Ordering::Release); // pairs with the Acquire load of `pong` below
                } else if stop.load(Ordering::Relaxed) != 0 {
                    break;
                } else {
                    std::hint::spin_loop();
                }
            }
        });
        // The measuring side runs in its own thread too: pinning the caller would narrow the
        // affinity that the processes started later inherit.
        let a = s.spawn(|| {
            pin(core_a);
            let mut rtt = new_hist();
            let mut one_way = new_hist();
            let mut done = 0u64;
            let start = Instant::now();
            for i in 1..=total {
                let t0 = now_ns();
                ping.store(i, Ordering::Release); // pairs with the Acquire load of `ping` above
                while pong.load(Ordering::Acquire) != i {
                    std::hint::spin_loop();
                }
                let d = now_ns().saturating_sub(t0).max(1);
                if i > warmup {
                    rtt.saturating_record(d);
                    one_way.saturating_record((d / 2).max(1));
                    done += 1;
                }
                if i % 1024 == 0 && start.elapsed() > budget {
                    break;
                }
            }
            stop.store(1, Ordering::Relaxed);
            (rtt, one_way, done)
        });
        let (rtt, one_way, round_trips) = a.join().unwrap_or_else(|_| (new_hist(), new_hist(), 0));
        stop.store(1, Ordering::Relaxed);
        PingPong {
            rtt,
            one_way,
            round_trips,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ping_pong_counts_every_round_trip() {
        let p = run(None, None, 2000, Duration::from_secs(20));
        assert_eq!(p.round_trips, 2000);
        assert_eq!(p.rtt.len(), 2000);
    }
}
