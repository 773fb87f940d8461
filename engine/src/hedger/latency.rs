//! Per-stage latency histograms and their HdrHistogram interval log.
//!
//! Stages (all monotonic ns, see `HedgeOrder`): feed receive to hedger read
//! (`recv_to_read`, every market event), hedger read to decision (`read_to_decision`, every
//! order), decision to publish (`decision_to_publish`) and the whole tick-to-order path
//! (`recv_to_publish`). Recording is a few array increments (no allocation: the histograms
//! are sized at startup and saturate at their maximum). At an interval and at shutdown the
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

/// The four stage histograms.
#[derive(Debug, Clone)]
pub struct StageHistograms {
    /// Feed receive to hedger read.
    pub recv_to_read: Histogram<u64>,
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
        let h = || {
            let mut h = Histogram::new_with_bounds(1, MAX_NS, 3).expect("static bounds are valid");
            h.auto(false);
            h
        };
        StageHistograms {
            recv_to_read: h(),
            read_to_decision: h(),
            decision_to_publish: h(),
            recv_to_publish: h(),
        }
    }

    /// The four, in [`STAGES`] order.
    pub fn all(&self) -> [&Histogram<u64>; 4] {
        [
            &self.recv_to_read,
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
                .saturating_record(read_ns.saturating_sub(recv_ns).max(1));
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
                    for iv in rx {
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
