//! Per-stage latency histograms and their HdrHistogram interval log.
//!
//! Stages (all monotonic ns, see `HedgeOrder`): feed receive to hedger read
//! (`recv_to_read`, every market event), hedger read to decision (`read_to_decision`, every
//! order), decision to publish (`decision_to_publish`) and the whole tick-to-order path
//! (`recv_to_publish`). Recording is a few array increments (no allocation: the histograms
//! are sized at startup and saturate at their maximum). The read stage, recorded on every
//! market event, counts into a plain array indexed exactly as HdrHistogram would
//! ([`ReadHistogram`]) and folds it into its `Histogram` off the hot path. At an interval and at shutdown the
//! loop hands copies to a writer thread that appends them, tagged by stage, to an interval
//! log in HdrHistogram's format (V2 compressed), readable by `HistogramLogProcessor` and the
//! other standard tools.

use super::worker::ChannelThread;
use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Stage names, in the order of [`StageHistograms::all`].
pub const STAGES: [&str; 4] = [
    "recv_to_read",
    "read_to_decision",
    "decision_to_publish",
    "recv_to_publish",
];

/// Largest value tracked, ns (60 s); larger values saturate.
pub const MAX_NS: u64 = 60_000_000_000;

/// Significant decimal digits of every stage histogram.
const SIGFIG: u8 = 3;

/// An empty stage histogram, 1 ns to [`MAX_NS`], [`SIGFIG`] significant digits.
fn stage_histogram() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, MAX_NS, SIGFIG).expect("static bounds are valid");
    h.auto(false);
    h
}

// HdrHistogram's layout for [1 ns, MAX_NS] at 3 significant digits, derived as the crate
// derives it (`Histogram::new_with_bounds`): unit magnitude floor(log2(1)) = 0; sub-buckets
// per bucket the smallest power of two >= 2 x 10^3, 2048 = 2^11, of which the upper half
// (1024 = 2^SUB_HALF_BITS) is new in each bucket after the first; buckets: 1 + the doublings
// of 2048 it takes to pass MAX_NS (2048 x 2^25 > 6e10), 26; slots (26 + 1) x 1024. A value
// v lands in bucket b = 53 - lzcnt(v | 2047) at sub-bucket v >> b, slot (b + 1) x 1024 +
// (v >> b) - 1024 = b x 1024 + (v >> b). The test `read_slots_are_hdrhistograms_buckets`
// checks every constant here against the crate, bucket by bucket.
/// log2 of the half sub-bucket count (1024).
const SUB_HALF_BITS: u32 = 10;
/// Values below 2048 are bucket 0 (unit resolution).
const SUB_MASK: u64 = (1 << (SUB_HALF_BITS + 1)) - 1;
/// `leading_zeros` of the largest bucket-0 value.
const LZ_BASE: u32 = 64 - (SUB_HALF_BITS + 1);
/// Buckets covering [0, MAX_NS].
const BUCKETS: usize = 26;
/// Count slots, as `Histogram::distinct_values` (27,648).
const READ_SLOTS: usize = (BUCKETS + 1) << SUB_HALF_BITS;
/// Where HdrHistogram's `saturating_record` puts a value past its last slot (>= 2^36 ns):
/// the slot of its highest trackable value, `MAX_NS` (values in (MAX_NS, 2^36) keep their
/// own slots there too, as here).
const SLOT_OF_MAX: usize = slot_unclamped(MAX_NS);

/// HdrHistogram's counts index of `v` (may be past the last slot).
#[inline]
const fn slot_unclamped(v: u64) -> usize {
    let bucket = LZ_BASE - (v | SUB_MASK).leading_zeros();
    ((bucket as usize) << SUB_HALF_BITS) + (v >> bucket) as usize
}

/// The lowest value of slot `i` (the inverse of [`slot_unclamped`]).
fn slot_value(i: usize) -> u64 {
    if i <= SUB_MASK as usize {
        return i as u64;
    }
    let bucket = (i >> SUB_HALF_BITS) - 1;
    (((i & ((1 << SUB_HALF_BITS) - 1)) + (1 << SUB_HALF_BITS)) as u64) << bucket
}

/// The read stage's histogram: every market event records here, so the hot path counts
/// into a fixed array with HdrHistogram's own index (about 10 instructions against about
/// 60 through `Histogram::saturating_record`: its `Option` index, bounds check, saturating
/// count, min/max and total updates) and [`ReadHistogram::fold`] moves the counts into the
/// `Histogram` off the hot path. Hand-written because hdrhistogram 7.6 exposes no record by
/// index. The folded histogram equals the one `saturating_record` would have built: same
/// counts per bucket, total, min and max (`PartialEq`), same V2 bytes.
pub struct ReadHistogram {
    /// Folded counts.
    hist: Histogram<u64>,
    /// Counts since the last fold, by HdrHistogram slot (allocated once, at start-up).
    pending: Box<[u64; READ_SLOTS]>,
    /// Values in `pending`.
    pending_n: u64,
}

impl ReadHistogram {
    /// Empty, with its count array allocated (start-up only).
    pub fn new() -> Self {
        ReadHistogram {
            hist: stage_histogram(),
            pending: zeroed_slots(),
            pending_n: 0,
        }
    }

    /// Records `ns` as `Histogram::saturating_record` would (no allocation, no branch but
    /// the clamp).
    #[inline]
    pub fn record(&mut self, ns: u64) {
        let i = slot_unclamped(ns);
        let i = if i < READ_SLOTS { i } else { SLOT_OF_MAX };
        self.pending[i] += 1;
        self.pending_n += 1;
    }

    /// Moves the pending counts into the histogram (off the hot path: scans 27,648 slots).
    pub fn fold(&mut self) {
        if self.pending_n == 0 {
            return;
        }
        fold_into(&mut self.hist, &mut self.pending);
        self.pending_n = 0;
    }

    /// The histogram, folded first.
    pub fn histogram(&mut self) -> &Histogram<u64> {
        self.fold();
        &self.hist
    }

    /// Values recorded (folded or not).
    pub fn len(&self) -> u64 {
        self.hist.len() + self.pending_n
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Clears it.
    pub fn reset(&mut self) {
        self.hist.reset();
        if self.pending_n != 0 {
            self.pending.fill(0);
            self.pending_n = 0;
        }
    }
}

impl Default for ReadHistogram {
    fn default() -> Self {
        Self::new()
    }
}

/// A folded copy (allocates: off the hot path).
impl Clone for ReadHistogram {
    fn clone(&self) -> Self {
        let mut hist = self.hist.clone();
        if self.pending_n != 0 {
            fold_into(&mut hist, &mut self.pending.clone());
        }
        ReadHistogram {
            hist,
            pending: zeroed_slots(),
            pending_n: 0,
        }
    }
}

impl std::fmt::Debug for ReadHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadHistogram")
            .field("hist", &self.hist)
            .field("pending_n", &self.pending_n)
            .finish()
    }
}

/// A zeroed count array on the heap (not through the stack: 221 KB).
fn zeroed_slots() -> Box<[u64; READ_SLOTS]> {
    vec![0u64; READ_SLOTS]
        .into_boxed_slice()
        .try_into()
        .expect("READ_SLOTS long")
}

/// Adds `counts` (by slot) into `h` and zeroes them.
fn fold_into(h: &mut Histogram<u64>, counts: &mut [u64; READ_SLOTS]) {
    for (i, c) in counts.iter_mut().enumerate() {
        if *c != 0 {
            h.saturating_record_n(slot_value(i), *c);
            *c = 0;
        }
    }
}

/// The four stage histograms.
#[derive(Debug, Clone)]
pub struct StageHistograms {
    /// Feed receive to hedger read (every market event: see [`ReadHistogram`]).
    pub recv_to_read: ReadHistogram,
    /// Read to decision.
    pub read_to_decision: Histogram<u64>,
    /// Decision to publish.
    pub decision_to_publish: Histogram<u64>,
    /// Feed receive to publish.
    pub recv_to_publish: Histogram<u64>,
}

impl Default for StageHistograms {
    fn default() -> Self {
        Self::new()
    }
}

impl StageHistograms {
    /// Empty histograms, 1 ns to 60 s, 3 significant digits.
    pub fn new() -> Self {
        StageHistograms {
            recv_to_read: ReadHistogram::new(),
            read_to_decision: stage_histogram(),
            decision_to_publish: stage_histogram(),
            recv_to_publish: stage_histogram(),
        }
    }

    /// The four, in [`STAGES`] order (folds the read stage first).
    pub fn all(&mut self) -> [&Histogram<u64>; 4] {
        [
            self.recv_to_read.histogram(),
            &self.read_to_decision,
            &self.decision_to_publish,
            &self.recv_to_publish,
        ]
    }

    /// Records a market event read (no allocation).
    #[inline]
    pub fn record_read(&mut self, recv_ns: u64, read_ns: u64) {
        if recv_ns != 0 {
            self.recv_to_read
                .record(read_ns.saturating_sub(recv_ns).max(1));
        }
    }

    /// Records an order's stages (no allocation).
    #[inline]
    pub fn record_order(&mut self, o: &shm_layout::HedgeOrder) {
        let d = |a: u64, b: u64| b.saturating_sub(a).max(1);
        self.read_to_decision
            .saturating_record(d(o.hedger_read_ts_ns, o.decision_ts_ns));
        self.decision_to_publish
            .saturating_record(d(o.decision_ts_ns, o.publish_ts_ns));
        if o.feed_recv_ts_ns != 0 {
            self.recv_to_publish
                .saturating_record(d(o.feed_recv_ts_ns, o.publish_ts_ns));
        }
    }

    /// Clears all four.
    pub fn reset(&mut self) {
        self.recv_to_read.reset();
        self.read_to_decision.reset();
        self.decision_to_publish.reset();
        self.recv_to_publish.reset();
    }
}

/// One interval to log.
#[derive(Debug)]
pub struct Interval {
    /// Interval start, since the log's start.
    pub start: Duration,
    /// Interval length.
    pub length: Duration,
    /// The histograms.
    pub hists: StageHistograms,
}

/// A thread that appends intervals to an HdrHistogram interval log.
#[derive(Debug)]
pub struct IntervalLogThread {
    worker: ChannelThread<Interval, std::io::Result<()>>,
}

impl IntervalLogThread {
    /// Creates (truncates) the log at `path` and starts the writer thread.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn start(path: &Path) -> std::io::Result<Self> {
        let file = shm_layout::private::create_file(path)?;
        let start = SystemTime::now();
        let worker = ChannelThread::spawn(
            "hedger-hlog",
            move |rx: std::sync::mpsc::Receiver<Interval>| -> std::io::Result<()> {
                let mut out = std::io::BufWriter::new(file);
                let mut ser = V2DeflateSerializer::new();
                {
                    let mut log = IntervalLogWriterBuilder::new()
                        .add_comment("hedger stage latencies, ns; tags: recv_to_read read_to_decision decision_to_publish recv_to_publish")
                        .with_start_time(start)
                        .with_base_time(start)
                        .with_max_value_divisor(1.0)
                        .begin_log_with(&mut out, &mut ser)?;
                    for mut iv in rx {
                        for (name, h) in STAGES.iter().zip(iv.hists.all()) {
                            if h.is_empty() {
                                continue;
                            }
                            log.write_histogram(h, iv.start, iv.length, Tag::new(name))
                                .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
                        }
                    }
                }
                out.flush()
            },
        )?;
        Ok(IntervalLogThread { worker })
    }

    /// Queues an interval (allocation happens here, off the hot path).
    pub fn send(&self, iv: Interval) {
        self.worker.send(iv);
    }

    /// Flushes and stops the thread.
    ///
    /// # Errors
    /// A write error of the log.
    pub fn finish(mut self) -> std::io::Result<()> {
        self.worker
            .join()
            .unwrap_or_else(|| Err(std::io::Error::other("hlog thread panicked")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};

    /// Values at and around every bucket edge, the saturation edges, every value of the
    /// unit-resolution range and a log-spread pseudo-random sweep.
    fn sweep() -> Vec<u64> {
        let mut v: Vec<u64> = (0..=4_200).collect();
        for k in 0..64 {
            let p = 1u64 << k;
            v.extend([p - 1, p, p + 1, p + p / 3, p | (p - 1)]);
        }
        v.extend([
            MAX_NS - 1,
            MAX_NS,
            MAX_NS + 1,
            (1 << 36) - 1,
            1 << 36,
            u64::MAX,
        ]);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.push(x >> (x % 64));
        }
        v
    }

    fn v2_bytes(h: &Histogram<u64>) -> Vec<u8> {
        use hdrhistogram::serialization::{Serializer, V2Serializer};
        let mut out = Vec::new();
        V2Serializer::new().serialize(h, &mut out).unwrap();
        out
    }

    #[test]
    fn read_slots_are_hdrhistograms_buckets() {
        let mut reference = stage_histogram();
        assert_eq!(READ_SLOTS, reference.distinct_values());
        let mut r = ReadHistogram::new();
        for (n, &v) in sweep().iter().enumerate() {
            reference.saturating_record(v);
            r.record(v);
            if v <= MAX_NS {
                let i = slot_unclamped(v);
                assert_eq!(slot_value(i), reference.lowest_equivalent(v), "value {v}");
                assert_eq!(slot_unclamped(slot_value(i)), i, "value {v}");
            }
            if n % 50_000 == 0 {
                r.fold(); // folds in between keep the sum
            }
        }
        assert_eq!(r.len(), reference.len());
        let copy = r.clone();
        // PartialEq: total, min, max and the count of every bucket, bit for bit.
        assert!(r.histogram() == &reference);
        assert!(copy.hist == reference);
        for i in 0..READ_SLOTS {
            let v = slot_value(i);
            assert_eq!(r.hist.count_at(v), reference.count_at(v), "slot {i}");
        }
        assert_eq!(v2_bytes(r.histogram()), v2_bytes(&reference));
        r.reset();
        assert!(r.is_empty() && r.histogram().is_empty());
    }

    #[test]
    fn record_read_skips_unstamped_events_and_floors_at_one_ns() {
        let mut h = StageHistograms::new();
        h.record_read(0, 5_000);
        assert!(h.recv_to_read.is_empty());
        h.record_read(900, 800);
        h.record_read(100, 2_148);
        let r = h.recv_to_read.histogram();
        assert_eq!((r.len(), r.min(), r.count_at(1)), (2, 1, 1));
        assert_eq!(r.count_at(2_048), 1);
    }

    #[test]
    fn interval_log_round_trips_through_the_standard_reader() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.hlog");
        let t = IntervalLogThread::start(&p).unwrap();
        let mut h = StageHistograms::new();
        h.record_read(100, 1_100);
        h.record_read(100, 2_100);
        t.send(Interval {
            start: Duration::from_secs(1),
            length: Duration::from_secs(1),
            hists: h.clone(),
        });
        t.finish().unwrap();
        let text = std::fs::read(&p).unwrap();
        let mut tags = 0;
        for e in IntervalLogIterator::new(&text) {
            if let Ok(LogEntry::Interval(iv)) = e {
                assert_eq!(
                    iv.tag().map(|t| t.as_str().to_string()).as_deref(),
                    Some("recv_to_read")
                );
                tags += 1;
            }
        }
        assert_eq!(tags, 1);
    }
}
