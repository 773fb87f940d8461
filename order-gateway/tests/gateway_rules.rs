//! Gateway-level rules: cancels, duplicate ids, a disconnected venue, invalid actions, and a
//! venue that recovers orders itself after a restart.

mod common;

use bytemuck::Zeroable;
use common::{ioc_order, linear_perp};
use order_gateway::gateway::{Gateway, GatewayLimits, OrderSource, RecoverySummary};
use order_gateway::journal::Journal;
use order_gateway::sim::{SimConfig, SimVenue};
use order_gateway::{Venue, VenueReport};
use shm_layout::{
    ExecEvent, ExecKind, HedgeOrder, LastValue, OrderAction, RejectReason, Side, TimeInForce,
};

type Market = Vec<Option<LastValue>>;

fn market() -> Market {
    let mut b = LastValue::zeroed();
    b.valid = LastValue::HAS_QUOTE;
    (b.bid_px, b.bid_qty, b.ask_px, b.ask_qty) = (99.5, 1.0, 100.0, 1.0);
    vec![Some(b)]
}

fn sim() -> SimVenue<Market> {
    let perp = linear_perp(0.001, 0.001);
    let cfg = SimConfig {
        latency_us: 10.0,
        jitter_us: 0.0,
        rate_limit_per_s: 0.0,
        ..SimConfig::default()
    };
    SimVenue::new(cfg, vec![perp], market())
}

fn order(id: u64, tif: TimeInForce, px: f64) -> HedgeOrder {
    HedgeOrder {
        tif: tif as u8,
        ..ioc_order(id, 0, Side::Buy, 0.5, px)
    }
}

type Setup = common::Rig<Market>;

fn setup() -> Setup {
    common::rig(market())
}

impl Setup {
    /// A gateway on `venue`, recovered from the journal.
    fn start<V: Venue>(&mut self, venue: V) -> (Gateway<V>, RecoverySummary) {
        let (j, r) = Journal::open(&self.path).unwrap();
        let (o, e) = (&mut self.orders, &mut self.execs);
        Gateway::recover(venue, None, j, r, GatewayLimits::default(), o, e, 0).unwrap()
    }

    /// A gateway on the simulated venue with order `id` resting (GTC at 99.0, below the ask),
    /// run to its ack.
    fn start_with_resting(&mut self, id: u64) -> Gateway<SimVenue<Market>> {
        let (mut gw, _) = self.start(sim());
        self.orders.all.push(order(id, TimeInForce::Gtc, 99.0));
        self.run(&mut gw, 0);
        gw
    }

    /// Ten steps of `gw`, 100 us apart after `from`.
    fn run<V: Venue>(&mut self, gw: &mut Gateway<V>, from: u64) {
        for i in 1..=10 {
            gw.step(
                from + i * 100_000,
                true,
                &mut self.orders,
                &mut self.execs,
                &self.market,
            )
            .unwrap();
        }
    }
}

/// A request to cancel order `id`.
fn cancel_of(id: u64) -> HedgeOrder {
    HedgeOrder {
        action: OrderAction::Cancel as u8,
        ..order(id, TimeInForce::Gtc, 99.0)
    }
}

fn kinds(e: &[ExecEvent], id: u64) -> Vec<(ExecKind, RejectReason)> {
    e.iter()
        .filter(|x| x.client_order_id == id)
        .map(|x| (x.kind().unwrap(), x.reject_reason().unwrap()))
        .collect()
}

#[test]
fn cancel_request_ends_a_resting_order() {
    let mut t = setup();
    let mut gw = t.start_with_resting(1);
    assert_eq!(
        kinds(&t.execs.all, 1),
        [(ExecKind::Ack, RejectReason::None)]
    );
    assert_eq!(gw.open_orders(), 1);
    t.orders.all.push(cancel_of(1));
    t.run(&mut gw, 10_000_000);
    assert_eq!(
        kinds(&t.execs.all, 1),
        [
            (ExecKind::Ack, RejectReason::None),
            (ExecKind::Cancelled, RejectReason::None)
        ]
    );
    assert_eq!(gw.open_orders(), 0);
    assert_eq!(gw.stats().cancel_requests, 1);
    // A cancel for an order that is not open reports nothing.
    t.orders.all.push(cancel_of(77));
    t.run(&mut gw, 20_000_000);
    assert!(kinds(&t.execs.all, 77).is_empty());
}

#[test]
fn duplicate_id_is_rejected_without_touching_the_open_order() {
    let mut t = setup();
    let mut gw = t.start_with_resting(5);
    t.orders.all.push(order(5, TimeInForce::Ioc, 100.0));
    t.run(&mut gw, 10_000_000);
    let k = kinds(&t.execs.all, 5);
    assert_eq!(
        k.last(),
        Some(&(ExecKind::Rejected, RejectReason::DuplicateOrder))
    );
    assert_eq!(gw.open_orders(), 1, "the resting order is still open");
    drop(gw);
    // After a restart the journal still knows order 5 is open: it is recovered.
    let (_, s) = t.start(sim());
    assert_eq!(s.orders_cancelled, 1);
}

struct Down;
impl Venue for Down {
    fn name(&self) -> &'static str {
        "down"
    }
    fn submit(&mut self, _: &HedgeOrder, _: u64) {
        panic!("never called while disconnected")
    }
    fn cancel(&mut self, _: u64, _: u64) {}
    fn poll(&mut self, _: u64, _: &mut dyn FnMut(VenueReport)) {}
    fn is_connected(&self) -> bool {
        false
    }
}

#[test]
fn disconnected_venue_and_invalid_action_are_rejected_by_the_gateway() {
    let mut t = setup();
    let (mut gw, _) = t.start(Down);
    t.orders.all.push(order(1, TimeInForce::Ioc, 100.0));
    t.orders.all.push(HedgeOrder {
        action: 9,
        ..order(2, TimeInForce::Ioc, 100.0)
    });
    t.run(&mut gw, 0);
    assert_eq!(
        kinds(&t.execs.all, 1),
        [(ExecKind::Rejected, RejectReason::NotConnected)]
    );
    assert_eq!(
        kinds(&t.execs.all, 2),
        [(ExecKind::Rejected, RejectReason::InvalidOrder)]
    );
    assert_eq!(gw.open_orders(), 0);
}

/// A venue that remembers nothing but claims it will recover orders, then ends them.
#[derive(Default)]
struct Recovering {
    pending: Vec<(HedgeOrder, f64)>,
}
impl Venue for Recovering {
    fn name(&self) -> &'static str {
        "recovering"
    }
    fn submit(&mut self, _: &HedgeOrder, _: u64) {}
    fn cancel(&mut self, _: u64, _: u64) {}
    fn poll(&mut self, _: u64, sink: &mut dyn FnMut(VenueReport)) {
        for (o, filled) in self.pending.drain(..) {
            let mut r = VenueReport::status(&o, Side::Buy, ExecKind::Fill, RejectReason::None);
            r.qty = o.qty - filled;
            r.price = 100.0;
            sink(r);
        }
    }
    fn recover_order(&mut self, order: &HedgeOrder, filled_qty: f64, _: u64) -> bool {
        self.pending.push((*order, filled_qty));
        true
    }
}

#[test]
fn a_venue_may_recover_open_orders_itself() {
    let mut t = setup();
    let (mut gw, _) = t.start(Recovering::default());
    t.orders.all.push(order(3, TimeInForce::Ioc, 100.0));
    t.run(&mut gw, 0);
    assert!(t.execs.all.is_empty(), "the venue never answered");
    drop(gw);
    let (mut gw, s) = t.start(Recovering::default());
    assert_eq!((s.orders_to_venue, s.orders_cancelled), (1, 0));
    t.run(&mut gw, 10_000_000);
    assert_eq!(
        kinds(&t.execs.all, 3),
        [(ExecKind::Fill, RejectReason::None)]
    );
    assert_eq!(gw.open_orders(), 0);
}

#[test]
fn a_batch_journaled_but_not_committed_is_taken_once_even_with_cancels_and_duplicates() {
    let mut t = setup();
    let (mut gw, _) = t.start(sim());
    t.orders.all.push(order(1, TimeInForce::Gtc, 99.0));
    t.orders.all.push(cancel_of(2));
    t.orders.all.push(order(1, TimeInForce::Ioc, 100.0)); // duplicate id
    t.orders.all.push(order(3, TimeInForce::Ioc, 100.0));
    gw.step(1, true, &mut t.orders, &mut t.execs, &t.market)
        .unwrap();
    drop(gw);
    // The commit "did not happen": the whole batch is in the ring again.
    t.orders.head = 0;
    t.orders.rewind();
    let (mut gw, s) = t.start(sim());
    assert_eq!(s.orders_skipped, 4);
    t.run(&mut gw, 1_000_000);
    for id in [1, 3] {
        let t: Vec<_> = kinds(&t.execs.all, id)
            .into_iter()
            .filter(|(k, r)| k.is_terminal() && *r != RejectReason::DuplicateOrder)
            .collect();
        assert_eq!(t.len(), 1, "order {id}: {t:?}");
    }
    assert!(kinds(&t.execs.all, 2).is_empty());
    assert_eq!(gw.open_orders(), 0);
}

#[test]
fn tick_to_order_is_measured_from_the_feed_stamp_over_the_whole_run() {
    let mut t = setup();
    let (mut gw, _) = t.start(sim());
    // Read at 100_000 ns (first step of `run`): 40 us after the feed stamp, 10 us after publish.
    t.orders.all.push(HedgeOrder {
        feed_recv_ts_ns: 60_000,
        publish_ts_ns: 90_000,
        ..order(1, TimeInForce::Ioc, 100.0)
    });
    // No feed stamp (a timer-driven order): not counted as tick-to-order.
    t.orders.all.push(order(2, TimeInForce::Ioc, 100.0));
    t.run(&mut gw, 0);
    assert_eq!(gw.tick_to_order().len(), 1);
    let h = gw.tick_to_order();
    assert!(h.equivalent(h.max(), 40_000), "max {}", h.max());
    assert_eq!(gw.transit().len(), 1);
    gw.reset_transit();
    assert_eq!(
        gw.tick_to_order().len(),
        1,
        "never reset by the per-interval transit reset"
    );
}
