//! The ring's own one-way latency, stamped as the pipeline stamps it: the baseline that the
//! pipeline's "feed publish -> hedger read" stage is compared with.
//!
//! The raw ping-pong's one-way is half a round trip: no clock read sits between the two
//! transfers it halves, and its single cache line bounces between two cores that do nothing
//! else. The pipeline's stage is one clock read on the feed's core before the publish and one
//! on the hedger's core after the read, through a broadcast ring of the feed's capacity, one
//! event every 1/rate seconds. This baseline is exactly that and nothing more: a writer thread
//! on the feed's core stamps `now_ns()` into a 64-byte message right before
//! `BroadcastWriter::publish` at the same pace, a reader thread on the hedger's core spins on
//! `BroadcastReader::poll` and stamps `now_ns()` right after it. What the pipeline adds on top
//! (the feed's last-value table and counters, the hedger's loop, journal and dispatch) is the
//! difference between the two.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use shm_layout::clock::now_ns;
use shm_layout::{BroadcastReader, BroadcastWriter, OpenOptions, Poll, StalePolicy};

use super::pin;
use super::report::new_hist;

/// 64 bytes, the size of a `MarketEvent`: word 0 is the writer's stamp, word 1 the index.
type Msg = [u64; 8];

/// What one run measured.
#[derive(Debug)]
pub struct RingHop {
    /// Writer stamp (before publish) to reader stamp (after poll), ns.
    pub one_way: Histogram<u64>,
    /// Messages measured (after warm-up).
    pub messages: u64,
    /// Messages the reader lost to laps (0 unless a thread was descheduled for a whole ring).
    pub lost: u64,
}

/// Publishes `messages` (plus a tenth as warm-up) every `interval_ns` from a thread on
/// `core_w` into a ring of `capacity` slots read by a thread on `core_r`, stopping after
/// `budget`.
///
/// # Errors
/// The ring's segment cannot be created in /dev/shm (or the temporary directory).
pub fn run(
    cores: (Option<usize>, Option<usize>),
    capacity: usize,
    messages: u64,
    interval_ns: u64,
    budget: Duration,
) -> anyhow::Result<RingHop> {
    let dir = tempfile::Builder::new()
        .prefix("e2e-ringhop-")
        .tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())?;
    let mut w = BroadcastWriter::<Msg>::create(dir.path(), "md", capacity, StalePolicy::Fail)?;
    let mut r = BroadcastReader::<Msg>::open(dir.path(), "md", OpenOptions::default())?;
    let warmup = messages / 10;
    let total = warmup + messages;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        let reader = s.spawn(|| {
            pin(cores.1);
            let mut h = new_hist();
            let (mut seen, mut lost) = (0u64, 0u64);
            while seen + lost < total {
                // Loaded before the poll: once it is set, every message is published, so an
                // empty poll after it means everything was read.
                let stopping = stop.load(std::sync::atomic::Ordering::Acquire);
                match r.poll() {
                    Poll::Message(m) => {
                        let t = now_ns();
                        if m[1] >= warmup {
                            h.saturating_record(t.saturating_sub(m[0]).max(1));
                        }
                        seen += 1;
                    }
                    Poll::Lapped { lost: n } => lost += n,
                    // Everything published is read: the writer stopped early (budget).
                    Poll::Empty if stopping => break,
                    Poll::Empty => std::hint::spin_loop(),
                }
            }
            (h, lost)
        });
        // The writer runs in its own thread: pinning the caller would narrow the affinity
        // that the processes started later inherit.
        let writer = s.spawn(|| {
            pin(cores.0);
            let start = Instant::now();
            let mut due = now_ns();
            for i in 0..total {
                due += interval_ns;
                while now_ns() < due {
                    std::hint::spin_loop();
                }
                let mut m: Msg = [0; 8];
                m[1] = i;
                m[0] = now_ns();
                w.publish(&m);
                if i % 1024 == 0 && start.elapsed() > budget {
                    break;
                }
            }
        });
        let _ = writer.join();
        // Release: pairs with the reader's Acquire load; every publish is before it, so a
        // reader that then finds the ring empty has read everything.
        stop.store(true, std::sync::atomic::Ordering::Release);
        reader.join().unwrap_or_else(|_| (new_hist(), 0))
    });
    let (one_way, lost) = out;
    Ok(RingHop {
        messages: one_way.len(),
        one_way,
        lost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_after_the_warm_up_is_measured() {
        // The ring holds every message: nothing can be lost, whatever the scheduling.
        let h = run((None, None), 4096, 2000, 1_000, Duration::from_secs(20)).unwrap();
        assert_eq!((h.messages, h.lost), (2000, 0));
    }
}
