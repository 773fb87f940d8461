//! The publisher: writes normalized events into the market-data broadcast ring and the
//! last-value table, the instrument definitions into their segment, and the feed handler's
//! counters and heartbeat.
//!
//! Hot path ([`Publisher::publish`]): validate, stamp `seq` and `recv_ts_ns`, apply the event to
//! the instrument's entry in the table in place (seqlock; only the words the event changes are
//! stored, see `LastValueTable::apply`), then publish the event into the ring. The table is written first, so a reader that sees an event
//! in the ring finds the table at least as new. No allocation, syscall, lock or logging: counts
//! are plain integers, copied into the shared counters by [`Publisher::flush_counters`] off the
//! hot path (every few thousand events or on idle).
//!
//! `seq` equals the ring position plus one, also across a restart that recovers the ring
//! (`StalePolicy::Recover`), so a reader can tell a gap from a restart.

use std::path::Path;

use shm_layout::clock::{now_ns, wall_ns};
use shm_layout::{
    names, BroadcastWriter, CounterSet, CountersWriter, DepthUpdate, InstrumentTable, LastValue,
    LastValueTable, MarketEvent, ProcessState, SegmentError, StalePolicy,
};

use crate::counters::FeedCounter as F;
use crate::counters::FeedCounter;
use crate::instruments::Registry;
use crate::partial::{PartialReason, Partials};
use crate::source::{RejectReason, Rejects, SourceEvent};

/// Counters role of the feed handler: its segment is `cnc-feed-handler`.
pub const ROLE: &str = "feed-handler";

/// Shared-memory counters of the feed handler ([`FeedCounter`], labels as in
/// `docs/operations.md`).
pub struct FeedCounters {
    /// The counters segment (heartbeat, state).
    pub cnc: CountersWriter,
    set: CounterSet<FeedCounter>,
}

impl FeedCounters {
    fn new(mut cnc: CountersWriter) -> Self {
        let set = cnc.register(&[]);
        FeedCounters { cnc, set }
    }
}

/// Where and how the segments are created.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    /// Slots in the market-data ring (a power of two).
    pub ring_capacity: usize,
    /// What to do with segments left by a dead feed handler.
    pub stale: StalePolicy,
}

impl Default for PublisherOptions {
    fn default() -> Self {
        PublisherOptions {
            ring_capacity: 1 << 18,
            stale: StalePolicy::Recover,
        }
    }
}

/// Statistics kept by the publisher (plain integers, hot path).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishStats {
    /// Events published.
    pub published: u64,
    /// Events published by kind (index = kind as u8).
    pub by_kind: [u64; 5],
    /// Events refused at publish time (invalid or unknown instrument): 0 unless a source
    /// broke its contract.
    pub refused: u64,
}

/// Publishes events into shared memory. One per process (it owns the writer ends).
pub struct Publisher {
    ring: BroadcastWriter<MarketEvent>,
    lvt: LastValueTable,
    instruments: InstrumentTable,
    /// Instruments in the registry (ids `0..n_instruments`).
    n_instruments: usize,
    seq: u64,
    stats: PublishStats,
    last_exch_ts_ns: u64,
    /// `DepthUpdate::ALL_CHANGED` once an event was refused (the table may then lack a depth
    /// the source believes published, so its "level unchanged" promises are ignored), else 0.
    no_promises: u32,
    counters: Option<FeedCounters>,
}

impl Publisher {
    /// Creates (or, per `opts.stale`, recovers) the `md`, `lvt` and `instruments` segments and
    /// the `cnc-feed-handler` counters in `dir` (created if missing, mode 0700).
    ///
    /// # Errors
    /// [`SegmentError`] (its message says what to do), e.g. another live feed handler owns the
    /// namespace, or a recovered table does not fit the instruments.
    pub fn create(
        dir: &Path,
        registry: &Registry,
        opts: &PublisherOptions,
    ) -> Result<Self, SegmentError> {
        create_dir(dir)?;
        let cnc = CountersWriter::create(dir, ROLE, opts.stale)?;
        cnc.set_state(ProcessState::Starting);
        let mut p = Self::create_without_counters(dir, registry, opts)?;
        p.counters = Some(FeedCounters::new(cnc));
        Ok(p)
    }

    /// As [`Publisher::create`] without a counters segment (tests, benchmarks, in-process use).
    ///
    /// # Errors
    /// As [`Publisher::create`].
    pub fn create_without_counters(
        dir: &Path,
        registry: &Registry,
        opts: &PublisherOptions,
    ) -> Result<Self, SegmentError> {
        create_dir(dir)?;
        let defs = registry.defs();
        let instruments = InstrumentTable::create(dir, names::INSTRUMENTS, defs, opts.stale)?;
        let lvt = LastValueTable::create(dir, names::LVT, defs.len().max(1), opts.stale)?;
        let ring =
            BroadcastWriter::<MarketEvent>::create(dir, names::MD, opts.ring_capacity, opts.stale)?;
        // Recovered segments: continue the sequence; the table keeps its entries (an entry left
        // mid-write by the dead process is rewritten whole by its next update).
        let seq = ring.position();
        Ok(Publisher {
            ring,
            lvt,
            instruments,
            n_instruments: defs.len(),
            seq,
            stats: PublishStats::default(),
            last_exch_ts_ns: 0,
            no_promises: 0,
            counters: None,
        })
    }

    /// Publishes one event stamped with `recv_ts_ns` (monotonic ns). Returns `false` (and counts
    /// it as refused) if the event is invalid or its instrument unknown. No allocation, syscall
    /// or lock.
    #[inline(always)]
    pub fn publish_at(&mut self, ev: &SourceEvent, recv_ts_ns: u64) -> bool {
        // Copied as 8-byte words (the source has just stored the event; a wider load spanning
        // two of its stores could not be forwarded from the store buffer and would stall).
        let w: &[u64; 8] = bytemuck::cast_ref(&ev.event);
        let e: MarketEvent =
            bytemuck::cast([self.seq + 1, w[1], recv_ts_ns, w[3], w[4], w[5], w[6], w[7]]);
        let id = e.instrument_id as usize;
        if id >= self.n_instruments || !e.is_valid() {
            self.stats.refused += 1;
            self.no_promises = DepthUpdate::ALL_CHANGED;
            return false;
        }
        if ev.has_depth {
            let d = DepthUpdate {
                bid_levels: ev.depth.bid_levels,
                ask_levels: ev.depth.ask_levels,
                bids: &ev.depth.bids,
                asks: &ev.depth.asks,
                // A source's "unchanged" promise holds only if the table has every depth it
                // sent: after a refused event, compare instead.
                bid_changed: ev.depth.bid_changed | self.no_promises,
                ask_changed: ev.depth.ask_changed | self.no_promises,
            };
            self.lvt.apply(e.instrument_id, &e, Some(&d));
        } else {
            self.lvt.apply(e.instrument_id, &e, None);
        }
        self.ring.publish(&e);
        self.seq += 1;
        self.last_exch_ts_ns = e.exch_ts_ns;
        self.stats.published += 1;
        self.stats.by_kind[usize::from(e.kind) % 5] += 1;
        true
    }

    /// Warms the cache lines that publishing `ev` will store to in the last-value table (a
    /// hint: nothing is written). For a source that knows an event before it may publish it
    /// (paced replay waiting for the event's time): the table's stores then hit the cache
    /// instead of missing ahead of the ring's, which on x86 wait for them
    /// ([`LastValueTable::prefetch_for_update`]). No allocation, syscall or lock.
    #[inline]
    pub fn prefetch(&self, ev: &SourceEvent) {
        self.lvt
            .prefetch_for_update(ev.event.instrument_id, ev.has_depth);
    }

    /// [`Publisher::publish_at`] stamped with the current monotonic time (vDSO clock read).
    #[inline]
    pub fn publish(&mut self, ev: &SourceEvent) -> bool {
        self.publish_at(ev, now_ns())
    }

    /// Copies a source's partial-row counts (`parts_dropped{reason="..."}`, the
    /// [`PartialReason`] names, degraded parts such as `quote_size_unknown` included;
    /// `rows_partial`) and the paced-replay gaps skipped (`replay_gaps_skipped`) into the shared
    /// counters. Off the hot path, beside [`Publisher::flush_counters`].
    pub fn flush_partials(&self, partials: &Partials, gaps_skipped: u64) {
        let Some(c) = &self.counters else {
            return;
        };
        for (i, r) in PartialReason::ALL.iter().enumerate() {
            c.set.set_at(F::PartsDropped, 0, i, partials.get(*r));
        }
        c.set.set(F::RowsPartial, partials.rows());
        c.set.set(F::ReplayGapsSkipped, gaps_skipped);
    }

    /// Sets `underlying_renames`: the renames (`SYN.X -> X`) the source reported, each once.
    pub fn flush_renames(&self, renames: u64) {
        if let Some(c) = &self.counters {
            c.set.set(F::UnderlyingRenames, renames);
        }
    }

    /// Copies the counts into the shared counters (and the rejects of the source), sets the
    /// rate and lag gauges, and beats the heartbeat. Counters: `events_published`,
    /// `events_by_kind{kind="quote"|"option_mark"|"underlying_price"|"trade"}`,
    /// `events_rejected{reason="..."}` (the [`RejectReason`] names; `invalid_event` includes
    /// events refused at publish), `rows_read`; gauges: `publish_rate_per_s`,
    /// `source_lag_ns` and `source_lag_max_ns` (publish time behind the pacing schedule),
    /// `exchange_lag_ns` (wall clock behind the last event's exchange time). Off the hot path: call every few thousand
    /// events or when idle.
    pub fn flush_counters(&self, rejects: &Rejects, rows: u64, rate_per_s: f64, lag_ns: f64) {
        let Some(c) = &self.counters else {
            return;
        };
        c.set.set(F::EventsPublished, self.stats.published);
        // by_kind[0] is no kind (never published).
        for (k, n) in self.stats.by_kind[1..].iter().enumerate() {
            c.set.set_at(F::EventsByKind, 0, k, *n);
        }
        for (i, r) in RejectReason::ALL.iter().enumerate() {
            let extra = if *r == RejectReason::InvalidEvent {
                self.stats.refused
            } else {
                0
            };
            c.set
                .set_at(F::EventsRejected, 0, i, rejects.get(*r) + extra);
        }
        c.set.set(F::RowsRead, rows);
        c.set.set_f64(F::PublishRate, rate_per_s);
        c.set.set_f64(F::SourceLag, lag_ns);
        if lag_ns > c.set.get_f64(F::SourceLagMax) {
            c.set.set_f64(F::SourceLagMax, lag_ns);
        }
        // Wall clock minus the last event's exchange time: the feed's delay for a live or
        // live-like source (a synthetic market started now); for replays of old files it is
        // just the files' age.
        if self.last_exch_ts_ns > 0 {
            let lag = wall_ns().saturating_sub(self.last_exch_ts_ns) as f64;
            c.set.set_f64(F::ExchangeLag, lag);
        }
        self.heartbeat();
    }

    /// Beats the heartbeat of the counters and of the ring and table headers.
    pub fn heartbeat(&self) {
        if let Some(c) = &self.counters {
            c.cnc.heartbeat();
        }
        self.ring.heartbeat();
        self.lvt.heartbeat();
    }

    /// The counters segment (None: a publisher without one), whose heartbeat and process
    /// state the agent runner keeps.
    pub fn counters_writer(&self) -> Option<&CountersWriter> {
        self.counters.as_ref().map(|c| &c.cnc)
    }

    /// Publishes the process state (starting, running, stopping, stopped).
    pub fn set_state(&self, s: ProcessState) {
        if let Some(c) = &self.counters {
            c.cnc.set_state(s);
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> PublishStats {
        self.stats
    }

    /// Next ring position (= events in the ring since it was created).
    pub fn position(&self) -> u64 {
        self.ring.position()
    }

    /// The instruments table written at creation.
    pub fn instruments(&self) -> &InstrumentTable {
        &self.instruments
    }

    /// An instrument's last value, as published in the table (`None` if never written).
    pub fn last_value(&self, id: u32) -> Option<LastValue> {
        self.lvt.read(id)
    }
}

fn create_dir(dir: &Path) -> Result<(), SegmentError> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| SegmentError::Io {
            path: dir.to_path_buf(),
            source,
        })
}
