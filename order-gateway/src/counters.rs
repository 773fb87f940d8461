//! The gateway's counters and gauges (`cnc-gateway`), declared once: [`GatewayCounter`] is the
//! only place their names, units and help texts are written. [`Counters`] copies the gateway's
//! plain stats into them by index once per heartbeat, off the per-order path; readers take
//! names, units and help from the segment.

use crate::gateway::{Gateway, GatewayStats};
use crate::venue::Venue;
use shm_layout::counter_schema::{CounterDef, CounterDef as D, CounterSet};
use shm_layout::{Counter, CountersWriter, RecordMeta};

/// `reason` values of `rejects`: [`shm_layout::RejectReason`] 1..=12 (wire order, `None` excluded), in
/// snake case (checked against the enum by a test).
pub const REJECT_REASONS: [&str; 12] = [
    "bad_tick",
    "bad_lot",
    "below_min_size",
    "price_outside_band",
    "unknown_instrument",
    "rate_limit",
    "no_liquidity",
    "invalid_order",
    "venue_other",
    "gateway_recovery",
    "duplicate_order",
    "not_connected",
];

shm_layout::counter_schema! {
    /// Every counter and gauge of the gateway itself (the venue adds its own, see
    /// [`Venue::for_each_counter`]).
    pub enum GatewayCounter {
        /// Orders received.
        OrdersReceived = D::counter("orders_received", "orders", "Hedge orders read from the orders ring"),
        /// Cancels.
        CancelRequests = D::counter("cancel_requests", "requests", "Cancel requests read from the orders ring"),
        /// Acks.
        Acks = D::counter("acks", "execs", "Orders acknowledged by the venue"),
        /// Fills.
        Fills = D::counter("fills", "execs", "Fills (complete) published"),
        /// Partial fills.
        PartialFills = D::counter("partial_fills", "execs", "Partial fills published"),
        /// Cancels.
        Cancels = D::counter("cancels", "execs", "Cancels published (IOC remainders included)"),
        /// Option trades.
        OptionTrades = D::counter("option_trades", "trades", "Client option trades published to the hedger"),
        /// Execs published.
        ExecsPublished = D::counter("execs_published", "execs", "Exec reports written to the execs ring"),
        /// Ring full.
        ExecsRingFull = D::counter("execs_ring_full", "events", "Times the execs ring was full (execs kept, retried)"),
        /// Recovered orders.
        RecoveredOrders = D::counter("recovered_orders", "orders", "Open orders recovered from the journal at start"),
        /// Venue-recovered orders.
        VenueRecoveredOrders = D::counter("venue_recovered_orders", "orders", "Recovered orders the venue still knew"),
        /// Republished execs.
        RepublishedExecs = D::counter("republished_execs", "execs", "Journalled execs republished after a restart"),
        /// Replayed orders skipped.
        ReplayedOrdersSkipped = D::counter("replayed_orders_skipped", "orders", "Orders read again after a restart, already handled"),
        /// Unknown order reports.
        UnknownOrderReports = D::counter("unknown_order_reports", "reports", "Venue reports for orders the gateway does not know"),
        /// Rejects by reason.
        Rejects = D::counter("rejects", "orders", "Orders rejected, by reason")
            .by("reason", &REJECT_REASONS),
        /// Open orders.
        OpenOrders = D::gauge("open_orders", "orders", "Orders at the venue, not yet final"),
        /// Backlog.
        OutboundBacklog = D::gauge("outbound_backlog", "execs", "Execs waiting for room in the execs ring"),
        /// Journal records.
        JournalRecords = D::gauge("journal_records", "records", "Records in the exec journal"),
        /// Transit p50.
        OrderTransitP50 = D::gauge("order_transit_p50_ns", "ns", "Hedger-to-gateway order transit, median of the last interval"),
        /// Transit p99.
        OrderTransitP99 = D::gauge("order_transit_p99_ns", "ns", "Hedger-to-gateway order transit, p99 of the last interval"),
        /// Transit max.
        OrderTransitMax = D::gauge("order_transit_max_ns", "ns", "Hedger-to-gateway order transit, max of the last interval"),
        /// A counter, not a gauge: exec ids exceed f64's 53-bit mantissa.
        LastExecId = D::counter("last_exec_id", "", "Last exec id published (a position, not a rate)"),
        /// Start-ups that stopped waiting for the venue to connect (`venue_connect_wait_ms`).
        VenueConnectTimeouts = D::counter("venue_connect_timeouts", "start-ups", "Start-ups that stopped waiting for the venue to connect"),
        /// 1 while the venue takes orders (FIX: logged on), else 0.
        VenueConnected = D::gauge("venue_connected", "", "1 while the venue takes orders (FIX: logged on)"),
        /// Trades the simulated venue read from the md ring ([`crate::md_trades`]).
        SimMdTrades = D::counter("sim_md_trades", "trades", "Trades read from the md ring and handed to the simulated venue"),
        /// md ring events the simulator's reader lost to laps (and skipped after them).
        SimMdLost = D::counter("sim_md_lost", "events", "md ring events the simulated venue's trade reader lost to laps"),
        /// 1 while the simulator reads trades from the md ring.
        SimMdAttached = D::gauge("sim_md_attached", "", "1 while the simulated venue reads trades from the md ring"),
    }
}

use GatewayCounter as G;

/// Reads one counter out of the stats.
type StatFn = fn(&GatewayStats) -> u64;

/// The counters copied from [`GatewayStats`], continuing from a previous run's values.
const FROM_STATS: [(GatewayCounter, StatFn); 14] = [
    (G::OrdersReceived, |s| s.orders_received),
    (G::CancelRequests, |s| s.cancel_requests),
    (G::Acks, |s| s.acks),
    (G::Fills, |s| s.fills),
    (G::PartialFills, |s| s.partial_fills),
    (G::Cancels, |s| s.cancels),
    (G::OptionTrades, |s| s.option_trades),
    (G::ExecsPublished, |s| s.execs_published),
    (G::ExecsRingFull, |s| s.execs_ring_full),
    (G::RecoveredOrders, |s| s.recovered_orders),
    (G::VenueRecoveredOrders, |s| s.venue_recovered_orders),
    (G::RepublishedExecs, |s| s.republished_execs),
    (G::ReplayedOrdersSkipped, |s| s.replayed_orders_skipped),
    (G::UnknownOrderReports, |s| s.unknown_order_reports),
];

/// Shared-memory counters, continuing from the values a previous run left.
pub(crate) struct Counters {
    pub(crate) w: CountersWriter,
    set: CounterSet<GatewayCounter>,
    /// Values a previous run left, per [`FROM_STATS`] entry.
    stat_base: [u64; FROM_STATS.len()],
    /// Values a previous run left, per [`REJECT_REASONS`] entry.
    reject_base: [u64; REJECT_REASONS.len()],
    /// Values a previous run left of `sim_md_trades` and `sim_md_lost`.
    md_base: [u64; 2],
    /// The venue's own counters ([`Venue::for_each_counter`], e.g. `fix_*`): declaration,
    /// label index, handle and the value a previous run left, in the order the venue gives them.
    pub(crate) venue: Vec<(&'static CounterDef, usize, Counter, u64)>,
}

impl Counters {
    pub(crate) fn new<V: Venue>(mut w: CountersWriter, venue: &V) -> Self {
        let set: CounterSet<GatewayCounter> = w.register(&[]);
        let stat_base = FROM_STATS.map(|(id, _)| set.get(id));
        let md_base = [set.get(G::SimMdTrades), set.get(G::SimMdLost)];
        let mut reject_base = [0; REJECT_REASONS.len()];
        for (i, b) in reject_base.iter_mut().enumerate() {
            *b = set.get_at(G::Rejects, 0, i);
        }
        let mut venue_list: Vec<(&'static CounterDef, usize, Counter, u64)> = Vec::new();
        venue.for_each_counter(&mut |def, by, _| {
            if !venue_list.iter().any(|e| same(e.0, e.1, def, by)) {
                let value = def.by.and_then(|b| b.values.get(by).copied());
                let c = w.record_meta(RecordMeta {
                    label: &def.label(None, value),
                    kind: def.kind.word(),
                    unit: def.unit,
                    help: def.help,
                });
                let base = c.get();
                venue_list.push((def, by, c, base));
            }
        });
        Counters {
            w,
            set,
            stat_base,
            reject_base,
            md_base,
            venue: venue_list,
        }
    }

    /// Counts a start-up that stopped waiting for the venue.
    pub(crate) fn venue_connect_timeout(&self) {
        self.set.add(G::VenueConnectTimeouts, 1);
    }

    /// Copies the stats (a few relaxed stores; done once per heartbeat, not per order).
    pub(crate) fn publish<V: Venue>(&self, gw: &Gateway<V>) {
        let s = gw.stats();
        for ((id, f), base) in FROM_STATS.iter().zip(self.stat_base) {
            self.set.set(*id, base + f(s));
        }
        for (i, base) in self.reject_base.iter().enumerate() {
            // Slot i is RejectReason i + 1 (`None` has no slot).
            self.set
                .set_at(G::Rejects, 0, i, base + s.rejects[(i + 1) & 15]);
        }
        self.set.set_f64(G::OpenOrders, gw.open_orders() as f64);
        self.set.set_f64(G::OutboundBacklog, gw.backlog() as f64);
        self.set
            .set_f64(G::JournalRecords, gw.journal().records() as f64);
        self.set.set(G::LastExecId, gw.last_exec_id());
        let connected = if gw.venue().is_connected() { 1.0 } else { 0.0 };
        self.set.set_f64(G::VenueConnected, connected);
        self.w.heartbeat();
    }

    /// Copies the simulator's md ring reader's counts (`None`: no reader, a FIX venue).
    pub(crate) fn publish_md(&self, md: Option<&crate::md_trades::MdTrades>) {
        let Some(md) = md else { return };
        self.set.set(G::SimMdTrades, self.md_base[0] + md.trades());
        self.set.set(G::SimMdLost, self.md_base[1] + md.lost());
        let attached = if md.attached() { 1.0 } else { 0.0 };
        self.set.set_f64(G::SimMdAttached, attached);
    }

    /// Copies the venue's counters (a virtual call and a few dozen relaxed stores: done every
    /// `VENUE_COUNTERS_NS`, off the per-order path). Labels come in the order they came at
    /// start-up, so each is found at its index; a label out of place is searched for, an
    /// unknown one is ignored (no allocation here).
    pub(crate) fn publish_venue<V: Venue>(&self, venue: &V) {
        let mut i = 0usize;
        venue.for_each_counter(&mut |def, by, v| {
            let entry = match self.venue.get(i) {
                Some(e) if same(e.0, e.1, def, by) => Some(e),
                _ => self.venue.iter().find(|e| same(e.0, e.1, def, by)),
            };
            if let Some((_, _, c, base)) = entry {
                c.set(base.saturating_add(v));
            }
            i += 1;
        });
    }

    /// Publishes the order transit percentiles of the interval that just ended (if it saw
    /// orders; otherwise the previous interval's values stay).
    pub(crate) fn publish_transit(&self, h: &hdrhistogram::Histogram<u64>) {
        if h.is_empty() {
            return;
        }
        self.set
            .set_f64(G::OrderTransitP50, h.value_at_quantile(0.5) as f64);
        self.set
            .set_f64(G::OrderTransitP99, h.value_at_quantile(0.99) as f64);
        self.set.set_f64(G::OrderTransitMax, h.max() as f64);
    }
}

/// Whether two venue counter instances are the same (same name and label index).
fn same(a: &CounterDef, a_by: usize, b: &CounterDef, b_by: usize) -> bool {
    a_by == b_by && a.name == b.name
}

/// `BadTick` -> `bad_tick`.
#[cfg(test)]
fn snake(name: &str) -> String {
    let mut s = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimVenue;
    use crate::venue::VenueReport;
    use shm_layout::CounterSchema as _;
    use shm_layout::RejectReason;
    use shm_layout::{HedgeOrder, LastValue, OpenOptions};

    shm_layout::counter_schema! {
        /// A venue's schema.
        enum X {
            /// One.
            One = D::counter("x_one", "things", "First venue counter"),
            /// Two, by side.
            Two = D::counter("x_two", "things", "Second venue counter").by("side", &["a", "b"]),
        }
    }

    /// A venue with counters whose values (and, to test the fallback, order) can be changed.
    struct CountingVenue(std::cell::Cell<u64>, std::cell::Cell<bool>);
    impl Venue for CountingVenue {
        fn name(&self) -> &'static str {
            "counting"
        }
        fn submit(&mut self, _: &HedgeOrder, _: u64) {}
        fn cancel(&mut self, _: u64, _: u64) {}
        fn poll(&mut self, _: u64, _: &mut dyn FnMut(VenueReport)) {}
        fn for_each_counter(&self, f: &mut dyn FnMut(&'static CounterDef, usize, u64)) {
            let (one, two) = (X::One.def(), X::Two.def());
            let v = self.0.get();
            if self.1.get() {
                f(two, 1, 2 * v);
                f(one, 0, v);
            } else {
                f(one, 0, v);
                f(two, 1, 2 * v);
            }
            f(one, 0, v); // a repeated instance gets one counter
        }
    }

    #[test]
    fn venue_counters_are_published_into_the_counters_segment() {
        let dir = testkit::shm::namespace_dir("ogw-run-cnc-");
        let read = || -> std::collections::HashMap<String, u64> {
            let r = shm_layout::CountersReader::open(dir.path(), "gateway", OpenOptions::default())
                .unwrap();
            r.snapshot()
                .into_iter()
                .filter_map(|(k, v)| match v {
                    shm_layout::CounterValue::Counter(c) => Some((k, c)),
                    shm_layout::CounterValue::Gauge(_) => None,
                })
                .collect()
        };
        let venue = CountingVenue(std::cell::Cell::new(0), std::cell::Cell::new(false));
        {
            let w = CountersWriter::create(dir.path(), "gateway", shm_layout::StalePolicy::Fail)
                .unwrap();
            let c = Counters::new(w, &venue);
            assert_eq!(c.venue.len(), 2);
            venue.0.set(5);
            c.publish_venue(&venue);
            assert_eq!((read()["x_one"], read()[r#"x_two{side="b"}"#]), (5, 10));
            venue.1.set(true); // out of order: still found by label
            venue.0.set(6);
            c.publish_venue(&venue);
            assert_eq!((read()["x_one"], read()[r#"x_two{side="b"}"#]), (6, 12));
        }
        // The simulator has none (the trait's default).
        let sim = SimVenue::new(
            crate::sim::SimConfig::default(),
            Vec::new(),
            Vec::<Option<LastValue>>::new(),
        );
        let mut n = 0;
        sim.for_each_counter(&mut |_, _, _| n += 1);
        assert_eq!(n, 0);
    }

    #[test]
    fn reject_reasons_become_snake_case_labels() {
        assert_eq!(snake("BadTick"), "bad_tick");
        assert_eq!(snake("PriceOutsideBand"), "price_outside_band");
    }

    /// The const reason names are the enum's, in wire order: a reason added to
    /// [`RejectReason`] without its label fails here.
    #[test]
    fn reject_reason_labels_follow_the_wire_enum() {
        let names: Vec<String> = RejectReason::ALL[1..]
            .iter()
            .map(|r| snake(r.name()))
            .collect();
        assert_eq!(names, REJECT_REASONS);
        assert!(RejectReason::ALL[1..]
            .iter()
            .enumerate()
            .all(|(i, r)| *r as usize == i + 1));
    }
}
