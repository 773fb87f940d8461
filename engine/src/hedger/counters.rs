//! The hedger's counters and gauges (`cnc-hedger`), declared once: this table is the only
//! place their names, units and help texts are written. [`Metrics::publish`] copies the core's
//! plain counts into them by index (relaxed stores, no string), off the per-event path;
//! `hedgectl stat` and the Prometheus export read names, units and help from the segment.

use super::core::{HedgerCore, MdReject, UnderlyingRuntime, CANCEL_LABELS, HOLD_LABELS};
use super::risk::{BookRiskAdapter, OptionRisk};
use super::Housekeeping;
use crate::limits::{LimitBreach, TradingMode};
use shm_layout::counter_schema::{CounterDef as D, CounterSet};
use shm_layout::CountersWriter;

/// `reason` values of `md_rejected` ([`MdReject::ALL`] order).
const MD_REJECT_NAMES: [&str; MdReject::ALL.len()] = shm_layout::label_values!(MdReject);
/// `limit` values of `limit_rejects` ([`LimitBreach::ALL`] order).
const LIMIT_NAMES: [&str; LimitBreach::ALL.len()] = shm_layout::label_values!(LimitBreach);
/// `reason` values of `hedges`.
const HEDGE_REASONS: [&str; 2] = ["band", "safety"];

shm_layout::counter_schema! {
    /// Every counter and gauge of the hedger.
    pub enum HedgerCounter {
        /// Market events read.
        MdEvents = D::counter("md_events", "events", "Market events read from the md ring"),
        /// Reader lapped.
        MdLapped = D::counter("md_lapped", "laps", "Times the feed handler lapped the hedger's md reader"),
        /// Events lost to laps.
        MdLost = D::counter("md_lost", "events", "Market events lost to laps (overwritten, or skipped to resume at the feed; state rebuilt)"),
        /// Events not used.
        MdIgnored = D::counter("md_ignored", "events", "Market events for instruments the hedger does not use"),
        /// Events rejected, by reason.
        MdRejected = D::counter("md_rejected", "events", "Market events rejected as bad input, by reason")
            .by("reason", &MD_REJECT_NAMES),
        /// Rebuilds.
        MdRebuilds = D::counter("md_rebuilds", "rebuilds", "Rebuilds of the market state from the last-value table"),
        /// Skipped stale events.
        MdOlderThanRebuild = D::counter("md_older_than_rebuild", "events", "Events no newer than the entry the last rebuild read for their instrument, skipped"),
        /// Execs applied.
        ExecsProcessed = D::counter("execs_processed", "execs", "Exec reports read from the execs ring"),
        /// Duplicate execs.
        ExecsDuplicate = D::counter("execs_duplicate", "execs", "Exec reports seen again (same exec id), applied once"),
        /// Bad execs.
        ExecsBad = D::counter("execs_bad", "execs", "Exec reports rejected as malformed"),
        /// Option trades.
        OptionTrades = D::counter("option_trades", "trades", "Client option trades applied to the inventory"),
        /// Option trades on expired options.
        OptionTradesExpired = D::counter("option_trades_expired", "trades", "Client option trades on options already expired"),
        /// Option trades not journalled.
        OptionTradesUnrecorded = D::counter("option_trades_unrecorded", "trades", "Client option trades not written to the state"),
        /// Orders sent.
        OrdersSent = D::counter("orders_sent", "orders", "Hedge orders written to the orders ring"),
        /// Orders filled.
        OrdersFilled = D::counter("orders_filled", "orders", "Hedge orders filled completely"),
        /// Orders partially filled.
        OrdersPartiallyFilled = D::counter("orders_partially_filled", "orders", "Hedge orders that received a partial fill"),
        /// Orders cancelled.
        OrdersCancelled = D::counter("orders_cancelled", "orders", "Hedge orders cancelled (IOC remainders included)"),
        /// Orders rejected.
        OrdersRejected = D::counter("orders_rejected", "orders", "Hedge orders rejected by the gateway or venue"),
        /// Ring full.
        OrdersRingFull = D::counter("orders_ring_full", "orders", "Hedges not sent: orders ring full (hedging held)"),
        /// In-flight table full.
        InflightFull = D::counter("inflight_full", "orders", "Hedges not sent: in-flight order table full"),
        /// Reconciled orders.
        ReconciledOrders = D::counter("reconciled_orders", "orders", "In-flight orders settled by reconciliation at start"),
        /// Reconcile timeouts.
        ReconcileTimeouts = D::counter("reconcile_timeouts", "timeouts", "Reconciliations that timed out"),
        PrevRunCancels = D::counter("prev_run_cancels", "cancels", "Cancels sent at start for orders of the previous run still in flight"),
        /// Orders in flight.
        OrdersInflight = D::gauge("orders_inflight", "orders", "Hedge orders sent and not yet final"),
        /// Kill switch.
        KillSwitch = D::gauge("kill_switch", "", "1 while the kill switch is on"),
        /// Gateway alive.
        GatewayAlive = D::gauge("gateway_alive", "", "1 while the gateway's heartbeat is fresh"),
        /// Reconciling.
        Reconciling = D::gauge("reconciling", "", "1 while in-flight orders are being reconciled"),
        /// State snapshots.
        StateSnapshots = D::counter("state_snapshots", "snapshots", "State snapshots written"),
        /// Forced re-evaluations.
        RiskForcedReevals = D::counter("risk_forced_reevals", "reevaluations", "Exact risk re-evaluations forced by the error bound"),
        /// Tick-to-order p50.
        TickToOrderP50 = D::gauge("tick_to_order_p50_ns", "ns", "Tick-to-order latency, median of the last interval"),
        /// Tick-to-order p99.
        TickToOrderP99 = D::gauge("tick_to_order_p99_ns", "ns", "Tick-to-order latency, p99 of the last interval"),
        /// Tick-to-order p99.9.
        TickToOrderP999 = D::gauge("tick_to_order_p999_ns", "ns", "Tick-to-order latency, p99.9 of the last interval"),
        /// md reader lag.
        MdReaderLag = D::gauge("md_reader_lag", "events", "md ring messages published and not yet read by the hedger"),
        /// Session records dropped.
        SessionRecordsDropped = D::counter("session_records_dropped", "records", "Session journal records dropped (queue full)"),
        /// Hedges by trigger.
        Hedges = D::counter("hedges", "orders", "Hedge orders sent, by trigger (band or safety re-hedge)")
            .per_underlying()
            .by("reason", &HEDGE_REASONS),
        /// Passive-order cancels by reason, all underlyings together (five more records per
        /// underlying would not fit the segment for 30 underlyings; the replay report has
        /// them per underlying).
        PassiveCancels = D::counter("passive_cancels", "cancels", "Cancels of resting passive hedges, all underlyings, by reason")
            .by("reason", &CANCEL_LABELS),
        /// Policy holds by reason.
        PolicyHolds = D::counter("policy_holds", "decisions", "Decisions where the policy held the hedge, by reason")
            .per_underlying()
            .by("reason", &HOLD_LABELS),
        /// Limit rejects by limit.
        LimitRejects = D::counter("limit_rejects", "orders", "Hedges refused by a risk limit, by limit")
            .per_underlying()
            .by("limit", &LIMIT_NAMES),
        /// Options' delta.
        OptionDelta = D::gauge("option_delta", "underlying units", "Delta of the options alone, before hedging").per_underlying(),
        /// Net delta.
        NetDelta = D::gauge("net_delta", "underlying units", "Net delta: options + hedge position + in flight").per_underlying(),
        /// Hedge position.
        HedgePosition = D::gauge("hedge_position", "underlying units", "Filled hedge position").per_underlying(),
        /// Gamma.
        Gamma = D::gauge("gamma", "delta per px", "Options' gamma").per_underlying(),
        /// Vega.
        Vega = D::gauge("vega", "per vol point", "Options' vega per vol point").per_underlying(),
        /// Band.
        Band = D::gauge("band", "underlying units", "Band half-width last computed").per_underlying(),
        /// Trading state.
        TradingState = D::gauge("trading_state", "", "What the hedger does: 0 active, 1 reduce-only, 2 halted (own halts too)").per_underlying(),
        /// Decisions held.
        HedgingHeld = D::counter("hedging_held", "decisions", "Decisions not evaluated: hedging held (rebuild, reconcile, ring full)").per_underlying(),
        /// Automatic halts.
        AutoHalts = D::counter("auto_halts", "halts", "Times the hedger halted itself (reject rate)").per_underlying(),
        /// Options settled.
        OptionsSettled = D::counter("options_settled", "positions", "Option positions settled in cash at expiry").per_underlying(),
        /// Settled position.
        SettledPosition = D::gauge("settled_position", "contracts", "Sum of the settled option positions (signed)").per_underlying(),
        /// Settled value.
        SettledValue = D::gauge("settled_value", "quote currency", "Sum of the settled option values").per_underlying(),
    }
}

use HedgerCounter as H;

/// The hedger's counters in its `cnc-hedger` segment.
pub struct Metrics(pub CounterSet<HedgerCounter>);

impl Metrics {
    /// Registers the schema, one instance per underlying of `names` (startup).
    pub fn new(w: &mut CountersWriter, names: &[String]) -> Self {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Metrics(w.register(&names))
    }

    /// Copies the core's counts and gauges (relaxed stores by index; every housekeeping
    /// interval, not per event).
    pub fn publish(&self, c: &HedgerCore<BookRiskAdapter>, hk: &Housekeeping, now_ns: u64) {
        let m = &self.0;
        let s = &c.stats;
        for (id, v) in [
            (H::MdEvents, s.md_events),
            (H::MdLapped, s.md_lapped),
            (H::MdLost, s.md_lost),
            (H::MdIgnored, s.md_ignored),
            (H::MdRebuilds, s.rebuilds),
            (H::MdOlderThanRebuild, s.md_older_than_rebuild),
            (H::ExecsProcessed, s.execs_processed),
            (H::ExecsDuplicate, s.execs_duplicate),
            (H::ExecsBad, s.execs_bad),
            (H::OptionTrades, s.option_trades),
            (H::OptionTradesExpired, s.option_trades_expired),
            (H::OptionTradesUnrecorded, s.option_trades_unrecorded),
            (H::OrdersSent, s.orders_sent),
            (H::OrdersFilled, s.orders_filled),
            (H::OrdersPartiallyFilled, s.orders_partially_filled),
            (H::OrdersCancelled, s.orders_cancelled),
            (H::OrdersRejected, s.orders_rejected),
            (H::OrdersRingFull, s.orders_ring_full),
            (H::InflightFull, s.inflight_full),
            (H::ReconciledOrders, s.reconciled_orders),
            (H::ReconcileTimeouts, s.reconcile_timeouts),
            (H::PrevRunCancels, s.prev_run_cancels),
            (H::StateSnapshots, hk.snapshots),
            (H::RiskForcedReevals, c.risk.forced_reevals()),
        ] {
            m.set(id, v);
        }
        for (i, v) in s.md_rejected.iter().enumerate() {
            m.set_at(H::MdRejected, 0, i, *v);
        }
        for l in 0..CANCEL_LABELS.len() {
            let n = c.und.iter().map(|u| u.exec.cancel_counts()[l]).sum();
            m.set_at(H::PassiveCancels, 0, l, n);
        }
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        m.set_f64(H::OrdersInflight, c.inflight_count() as f64);
        m.set_f64(H::KillSwitch, flag(c.kill_switch()));
        m.set_f64(H::GatewayAlive, flag(c.gateway_alive));
        m.set_f64(H::Reconciling, flag(c.reconciling()));
        let p = [H::TickToOrderP50, H::TickToOrderP99, H::TickToOrderP999];
        for (id, v) in p.into_iter().zip(hk.tick_to_order_ns) {
            m.set_f64(id, v as f64);
        }
        for (i, u) in c.und.iter().enumerate().take(m.underlyings()) {
            // What the hedger does, not only what the operator asked: halted by itself when
            // the gateway's heartbeat stopped or rejects exceeded their rate.
            let auto_halted = !c.gateway_alive || u.limits.auto_halted(now_ns);
            self.publish_underlying(i, u, auto_halted);
        }
    }

    /// Copies one underlying's counts and gauges.
    fn publish_underlying(&self, i: usize, u: &UnderlyingRuntime, auto_halted: bool) {
        let m = &self.0;
        m.set_at(H::Hedges, i, 0, u.hedges_band);
        m.set_at(H::Hedges, i, 1, u.hedges_safety);
        for (r, v) in u.holds.iter().enumerate() {
            m.set_at(H::PolicyHolds, i, r, *v);
        }
        for (l, v) in u.limits.counters.rejected.iter().enumerate() {
            m.set_at(H::LimitRejects, i, l, *v);
        }
        for (id, v) in [
            (H::OptionDelta, u.option_delta),
            (H::NetDelta, u.net_delta),
            (H::HedgePosition, u.hedge_position),
            (H::Gamma, u.gamma),
            (H::Vega, u.vega),
            (H::Band, u.band),
            (H::SettledPosition, u.settled_position),
            (H::SettledValue, u.settled_value),
        ] {
            m.set_f64_at(id, i, 0, v);
        }
        let state = match u.mode {
            _ if auto_halted => 2.0,
            TradingMode::Active => 0.0,
            TradingMode::ReduceOnly => 1.0,
            TradingMode::Halted => 2.0,
        };
        m.set_f64_at(H::TradingState, i, 0, state);
        m.set_at(H::HedgingHeld, i, 0, u.held);
        m.set_at(H::AutoHalts, i, 0, u.limits.counters.auto_halts);
        m.set_at(H::OptionsSettled, i, 0, u.options_settled);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_layout::counter_schema::CounterSchema;
    use shm_layout::{CountersReader, OpenOptions, StalePolicy};

    /// Every record the hedger registers, for 30 underlyings with 16-byte symbols, fits the
    /// segment uncut and carries a help text; names are unique.
    #[test]
    fn the_schema_fits_the_segment_for_30_underlyings_with_help_everywhere() {
        let dir = testkit::shm::namespace_dir("hedger-schema-");
        let mut w = CountersWriter::create(dir.path(), "hedger", StalePolicy::Replace).unwrap();
        let names: Vec<String> = (0..30).map(|i| format!("UNDERLYING-{i:05}")).collect();
        let _m = Metrics::new(&mut w, &names);
        let recs = CountersReader::open(dir.path(), "hedger", OpenOptions::default())
            .unwrap()
            .records();
        let per_und: usize = HedgerCounter::DEFS
            .iter()
            .filter(|d| d.scope == shm_layout::Scope::PerUnderlying)
            .map(|d| d.width())
            .sum();
        let global: usize = HedgerCounter::DEFS
            .iter()
            .filter(|d| d.scope == shm_layout::Scope::Global)
            .map(|d| d.width())
            .sum();
        assert_eq!(recs.len(), global + 30 * per_und, "a record did not fit");
        for r in &recs {
            assert!(
                r.label.ends_with('}') || !r.label.contains('{'),
                "cut: {}",
                r.label
            );
            assert!(!r.help.is_empty(), "{} has no help", r.label);
        }
        let mut defs: Vec<&str> = HedgerCounter::DEFS.iter().map(|d| d.name).collect();
        defs.sort_unstable();
        defs.dedup();
        assert_eq!(defs.len(), HedgerCounter::DEFS.len(), "duplicate names");
    }
}
