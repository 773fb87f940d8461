//! The hedger: one thread from market data to hedge order.
//!
//! - [`core::HedgerCore`]: the loop's state machine. [`core::HedgerCore::poll`] is the hot
//!   path (execs first, then one market event; risk update, decision, limits, publish). It is
//!   generic over its inputs and outputs ([`io`]), so the same code runs on shared-memory
//!   rings ([`live`]), on in-process queues in tests, and in replay.
//!   Its stage stamps come from a [`core::StageClock`]: the monotonic clock live,
//!   [`core::FixedClock`] in a replay on a recorded clock (every stamp, interval, rate limit,
//!   staleness and expiry check uses the given time, so the same inputs give the same orders).
//! - [`Housekeeping`]: everything off the hot path, run when the loop is idle (or every few
//!   hundred busy iterations): state snapshot (written by a thread), then exec commit
//!   ([`state`]), timer decisions
//!   (safety re-hedge, end of reconciliation), histogram export ([`latency`]).
//! - [`risk`]: the option book's incremental risk behind a trait.
//! - [`journal`]: the session journal: what the live loop's core consumed, in order, copied
//!   into fixed-size records on the hot path and written to `<state_dir>/session/` by a side
//!   thread, so that `hedgectl replay --session` reproduces every order bit for bit
//!   ([`core::HedgerCore::poll`] takes the recording or playback clock).
//! - [`live`]: the process's loop on shared memory; when an iteration finds no work it idles
//!   with `shm_layout::process::Idler` (busy-spin, spin-then-yield, backoff-park;
//!   [`live::IDLE_BACKOFF`]).
//!
//! # Example: the loop in process (as a replay or a test drives it)
//! ```
//! use bytemuck::Zeroable;
//! use engine::hedger::core::{hedge_instrument, HedgerCore, MonotonicClock, UnderlyingSetup};
//! use engine::hedger::io::{MemControl, MemExecs, MemMarket, MemOrders};
//! use engine::hedger::risk::BookRiskAdapter;
//! use engine::limits::LimitsConfig;
//! use engine::policy::{BandRule, PolicyConfig, RehedgeTarget};
//! use shm_layout::{clock, InstrumentDef, InstrumentKind, MarketEvent, Side};
//!
//! let mut index = InstrumentDef::zeroed();
//! index.kind = InstrumentKind::Index as u8;
//! index.set_symbol("BTC");
//! let mut perp = InstrumentDef::zeroed();
//! (perp.id, perp.kind, perp.settlement) = (1, InstrumentKind::Perpetual as u8, 1 /* linear */);
//! (perp.contract_multiplier, perp.lot_size, perp.min_qty, perp.tick_size) = (1.0, 0.001, 0.001, 0.5);
//! perp.set_symbol("BTC-PERP");
//! let setup = UnderlyingSetup {
//!     name: "BTC".into(),
//!     index_id: 0,
//!     hedge: hedge_instrument(&perp, "example").unwrap(),
//!     policy: PolicyConfig {
//!         rule: BandRule::Fixed { band: 1.0, target: RehedgeTarget::Zero },
//!         ..PolicyConfig::default()
//!     },
//!     limits: LimitsConfig::default(),
//!     rate: 0.0,
//!     initial_hedge_position: 2.5, // long 2.5 BTC of perp, no options: net delta +2.5
//! };
//! let (now, wall) = (clock::now_ns(), clock::wall_ns());
//! let risk = BookRiskAdapter::new(&[0], 2, 1, wall);
//! let mut core = HedgerCore::new(vec![index, perp], vec![setup], risk, now, wall);
//! let mut md = MemMarket::with_instruments(2);
//! md.events.push(MarketEvent::underlying_price(0, 0, clock::now_ns(), 10_000.0));
//! md.events.push(MarketEvent::quote(1, 0, clock::now_ns(), 9_999.5, 5.0, 10_000.0, 5.0));
//! let (mut execs, mut orders, ctl) = (MemExecs::default(), MemOrders::new(16), MemControl::default());
//! let now = clock::now_ns();
//! while core.poll(&mut md, &mut execs, &mut orders, &ctl, now, &MonotonicClock) > 0 {}
//! let order = orders.buf.pop_front().expect("outside the 1 BTC band: hedge to zero");
//! assert_eq!(order.side().unwrap(), Side::Sell);
//! assert!((order.qty - 2.5).abs() < 1e-9);
//! ```

pub mod core;
pub mod counters;
pub mod io;
pub mod journal;
pub mod latency;
pub mod live;
pub mod risk;
pub mod state;

/// The hedger's role name: its counters segment (`cnc-hedger`), process state and agent are
/// found by it (as the feed handler's by `feed_handler::publish::ROLE`).
pub const ROLE: &str = "hedger";
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
mod worker;

use self::core::{HedgerCore, MonotonicClock, StageClock};
use self::io::{ExecSource, OrderSink};
use self::latency::{Interval, IntervalLogThread};
use self::risk::OptionRisk;
use self::state::{StateError, StateWriter};
use std::collections::VecDeque;
use std::time::Duration;

/// Execs pending commit that force a snapshot even before the snapshot interval, at least
/// (see [`force_snapshot_execs`]).
pub const FORCE_SNAPSHOT_EXECS: usize = 512;

/// Execs pending commit that force a snapshot before the interval, for an execs ring of
/// `capacity` slots: an eighth of the ring (at least [`FORCE_SNAPSHOT_EXECS`]). The force
/// exists so that uncommitted reports never fill the ring (the gateway cannot overwrite them):
/// with [`MAX_SNAPSHOTS_IN_FLIGHT`] snapshots in flight, at most five eighths of it are
/// uncommitted. A snapshot rewrites the whole book (at most 1.2 ms of the state writer for
/// 10,000 options: `snapshot_interval_ms`'s doc), so a fixed 512 on the default 65,536-slot ring forced one every 512
/// reports: 130 a second at saturation in the e2e benchmark, 30 ns of CPU per market event.
pub fn force_snapshot_execs(capacity: usize) -> usize {
    (capacity / 8).max(FORCE_SNAPSHOT_EXECS)
}

/// Snapshots submitted but not yet written, at most (back-pressure on a slow disk).
pub const MAX_SNAPSHOTS_IN_FLIGHT: usize = 4;

/// Off-hot-path work on a schedule.
#[derive(Debug)]
pub struct Housekeeping {
    /// State writer thread (None: no persistence, e.g. a backtest; execs are then committed
    /// at once).
    pub writer: Option<StateWriter>,
    /// Histogram log writer (None: no export).
    pub hlog: Option<IntervalLogThread>,
    /// Snapshot cadence while execs are pending, ns.
    pub snapshot_interval_ns: u64,
    /// Timer decisions cadence, ns.
    pub timer_interval_ns: u64,
    /// Histogram export cadence, ns.
    pub hist_interval_ns: u64,
    /// Execs pending commit that force a snapshot before the interval
    /// ([`FORCE_SNAPSHOT_EXECS`] unless set from the ring's capacity:
    /// [`Housekeeping::for_execs_capacity`]).
    pub force_snapshot_execs: usize,
    last_snapshot_ns: u64,
    last_timer_ns: u64,
    last_hist_ns: u64,
    hist_origin_ns: u64,
    /// Exec counts covered by each submitted, not yet written snapshot (oldest first).
    to_commit: VecDeque<usize>,
    acked: u64,
    /// Snapshots submitted.
    pub snapshots: u64,
    /// Feed receive to order publish of the last exported interval: p50, p99, p99.9, ns
    /// (0 when no order was sent).
    pub tick_to_order_ns: [u64; 3],
}

impl Housekeeping {
    /// A schedule starting at `now_ns`.
    pub fn new(
        writer: Option<StateWriter>,
        hlog: Option<IntervalLogThread>,
        snapshot_interval_ns: u64,
        timer_interval_ns: u64,
        hist_interval_ns: u64,
        now_ns: u64,
    ) -> Self {
        Housekeeping {
            writer,
            hlog,
            snapshot_interval_ns,
            timer_interval_ns,
            hist_interval_ns,
            force_snapshot_execs: FORCE_SNAPSHOT_EXECS,
            last_snapshot_ns: now_ns,
            last_timer_ns: now_ns,
            last_hist_ns: now_ns,
            hist_origin_ns: now_ns,
            to_commit: VecDeque::with_capacity(MAX_SNAPSHOTS_IN_FLIGHT + 1),
            acked: 0,
            snapshots: 0,
            tick_to_order_ns: [0; 3],
        }
    }

    /// Forces snapshots by the capacity of the execs ring ([`force_snapshot_execs`]).
    pub fn for_execs_capacity(mut self, capacity: usize) -> Self {
        self.force_snapshot_execs = force_snapshot_execs(capacity);
        self
    }

    /// Commits the execs of every snapshot the writer has finished.
    ///
    /// # Errors
    /// The writer failed.
    fn commit_written<E: ExecSource>(&mut self, execs: &mut E) -> Result<(), StateError> {
        if let Some(w) = &self.writer {
            w.check()?;
            let written = w.written();
            while self.acked < written {
                if let Some(n) = self.to_commit.pop_front() {
                    execs.commit(n);
                }
                self.acked += 1;
            }
        }
        Ok(())
    }

    /// Submits a snapshot of the state; the execs it covers are committed once it is written.
    ///
    /// # Errors
    /// The writer failed earlier.
    pub fn snapshot<R: OptionRisk, E: ExecSource>(
        &mut self,
        core: &mut HedgerCore<R>,
        execs: &mut E,
        now_ns: u64,
    ) -> Result<(), StateError> {
        self.last_snapshot_ns = now_ns;
        match &self.writer {
            // Without a writer (backtest, tests) nothing is built: no allocation here.
            None => execs.commit(core.uncommitted_execs()),
            Some(w) => {
                w.submit(core.persist_delta());
                self.to_commit.push_back(core.uncommitted_execs());
                self.snapshots += 1;
            }
        }
        core.execs_committed();
        self.commit_written(execs)
    }

    /// Final snapshot at shutdown: written synchronously, then every exec committed.
    ///
    /// # Errors
    /// A write error.
    pub fn finish<R: OptionRisk, E: ExecSource>(
        &mut self,
        core: &mut HedgerCore<R>,
        execs: &mut E,
        now_ns: u64,
    ) -> Result<(), StateError> {
        self.snapshot(core, execs, now_ns)?;
        if let Some(w) = self.writer.take() {
            w.finish()?;
            while let Some(n) = self.to_commit.pop_front() {
                execs.commit(n);
            }
        }
        Ok(())
    }

    /// Runs whatever is due.
    ///
    /// # Errors
    /// A snapshot write failed.
    pub fn run<R: OptionRisk, E: ExecSource, O: OrderSink>(
        &mut self,
        core: &mut HedgerCore<R>,
        execs: &mut E,
        orders: &mut O,
        now_ns: u64,
    ) -> Result<(), StateError> {
        self.run_with(core, execs, orders, now_ns, &MonotonicClock, |_| {})
    }

    /// [`Housekeeping::run`] with the timer's stage stamps from `clock`
    /// ([`HedgerCore::on_timer`]); `on_timer(now_ns)` is called just before the timer
    /// runs (the session recorder writes its `Timer` record there).
    ///
    /// # Errors
    /// A snapshot write failed.
    pub fn run_with<R: OptionRisk, E: ExecSource, O: OrderSink, T: StageClock>(
        &mut self,
        core: &mut HedgerCore<R>,
        execs: &mut E,
        orders: &mut O,
        now_ns: u64,
        clock: &T,
        on_timer: impl FnOnce(u64),
    ) -> Result<(), StateError> {
        self.commit_written(execs)?;
        let pending = core.uncommitted_execs();
        if pending > 0
            && self.to_commit.len() < MAX_SNAPSHOTS_IN_FLIGHT
            && (pending >= self.force_snapshot_execs
                || now_ns.saturating_sub(self.last_snapshot_ns) >= self.snapshot_interval_ns)
        {
            self.snapshot(core, execs, now_ns)?;
        }
        if now_ns.saturating_sub(self.last_timer_ns) >= self.timer_interval_ns {
            self.last_timer_ns = now_ns;
            on_timer(now_ns);
            core.on_timer(orders, now_ns, clock);
            core.idle_risk(now_ns);
        }
        if self.hlog.is_some() && now_ns.saturating_sub(self.last_hist_ns) >= self.hist_interval_ns
        {
            self.export_histograms(core, now_ns);
        }
        Ok(())
    }

    /// Sends the current interval's histograms to the log and resets them.
    pub fn export_histograms<R: OptionRisk>(&mut self, core: &mut HedgerCore<R>, now_ns: u64) {
        if let Some(log) = &self.hlog {
            // Folded here, in place: the copy sent then carries no pending counts (no copy of
            // the 221 KB count array to fold, and nothing for the reset below to clear).
            core.latency.recv_to_read.fold();
            log.send(Interval {
                start: Duration::from_nanos(self.last_hist_ns.saturating_sub(self.hist_origin_ns)),
                length: Duration::from_nanos(now_ns.saturating_sub(self.last_hist_ns)),
                hists: core.latency.clone(),
            });
        }
        let h = &core.latency.recv_to_publish;
        self.tick_to_order_ns = if h.is_empty() {
            [0; 3]
        } else {
            [
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
            ]
        };
        core.latency.reset();
        self.last_hist_ns = now_ns;
    }
}
