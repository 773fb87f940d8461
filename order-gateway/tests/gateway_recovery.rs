//! The gateway loop against in-memory rings: every order ends exactly once, exec ids only
//! grow, and a "kill" at the worst moments (journaled but not pushed, journaled but not
//! committed, orders in flight at the venue) loses and repeats nothing.

mod common;

use bytemuck::Zeroable;
use common::{ioc_order, linear_perp};
use order_gateway::gateway::{Gateway, GatewayLimits, OrderSource, VecExecs, VecOrders};
use order_gateway::journal::Journal;
use order_gateway::sim::{SimConfig, SimVenue};
use shm_layout::{ExecEvent, ExecKind, HedgeOrder, InstrumentDef, LastValue, RejectReason, Side};
use std::collections::HashMap;

type Market = Vec<Option<LastValue>>;

fn defs() -> Vec<InstrumentDef> {
    vec![linear_perp(0.001, 0.001)]
}

fn market(seq: u64) -> Market {
    let mut b = LastValue::zeroed();
    b.last_seq = seq;
    b.valid = LastValue::HAS_QUOTE;
    (b.bid_px, b.bid_qty, b.ask_px, b.ask_qty) = (99.5, 0.5, 100.0, 0.5);
    vec![Some(b)]
}

fn order(id: u64) -> HedgeOrder {
    let (side, px) = if id.is_multiple_of(2) {
        (Side::Buy, 100.0)
    } else {
        (Side::Sell, 99.5)
    };
    ioc_order(id, 0, side, 0.001 * (1 + id % 700) as f64, px)
}

fn sim() -> SimVenue<Market> {
    let cfg = SimConfig {
        latency_us: 30.0,
        jitter_us: 30.0,
        rate_limit_per_s: 0.0,
        ..SimConfig::default()
    };
    SimVenue::new(cfg, defs(), market(1))
}

type Setup = common::Rig<Market>;

fn setup() -> Setup {
    common::rig(market(1))
}

impl Setup {
    /// The gateway recovered from the journal at `now`.
    fn start(&mut self, now: u64) -> Gateway<SimVenue<Market>> {
        let (j, replay) = Journal::open(&self.path).unwrap();
        let limits = GatewayLimits {
            outbound_capacity: 1024,
            compact_after_records: 500,
            ..GatewayLimits::default()
        };
        let (o, e) = (&mut self.orders, &mut self.execs);
        Gateway::recover(sim(), None, j, replay, limits, o, e, now)
            .unwrap()
            .0
    }

    /// One step of `gw` at `now`.
    fn step(&mut self, gw: &mut Gateway<SimVenue<Market>>, now: u64) {
        gw.step(now, true, &mut self.orders, &mut self.execs, &self.market)
            .unwrap();
    }

    /// Steps `gw` `steps` times, `dt_ns` apart from `now` on; the last step's time.
    fn run_steps(
        &mut self,
        gw: &mut Gateway<SimVenue<Market>>,
        (mut now, dt_ns, steps): (u64, u64, u32),
    ) -> u64 {
        for _ in 0..steps {
            now += dt_ns;
            self.step(gw, now);
        }
        now
    }
}

/// Checks: ids strictly increasing, exactly one terminal per order id in `1..=n`.
fn check(execs: &[ExecEvent], n: u64) -> HashMap<u64, ExecKind> {
    for w in execs.windows(2) {
        assert!(w[1].exec_id == w[0].exec_id + 1, "ids {w:?}");
    }
    let mut terminal = HashMap::new();
    for e in execs {
        let k = e.kind().unwrap();
        if k.is_terminal() {
            assert!(
                terminal.insert(e.client_order_id, k).is_none(),
                "two terminal reports for order {}",
                e.client_order_id
            );
        }
    }
    assert_eq!(terminal.len() as u64, n, "one terminal report per order");
    assert!((1..=n).all(|id| terminal.contains_key(&id)));
    terminal
}

#[test]
fn every_order_ends_exactly_once_with_increasing_exec_ids() {
    let mut t = setup();
    let mut gw = t.start(0);
    let n = 2000u64;
    let mut now = 0u64;
    for id in 1..=n {
        t.orders.all.push(order(id));
        now += 7_000;
        t.step(&mut gw, now);
    }
    t.run_steps(&mut gw, (now, 100_000, 100));
    assert_eq!(gw.open_orders(), 0);
    assert_eq!(t.execs.all[0].exec_id, 1);
    check(&t.execs.all, n);
    assert!(gw.journal().records() < 2 * 500 + 600, "journal compacts");
}

#[test]
fn kill_at_every_bad_moment_loses_and_repeats_nothing() {
    let mut t = setup();
    let n = 600u64;
    let mut next_id = 1u64;
    let mut now = 1_000u64;
    let mut restarts = 0;
    let mut gw = t.start(now);
    let mut step_no = 0u64;
    while t
        .execs
        .all
        .iter()
        .filter(|e| e.kind().unwrap().is_terminal())
        .count()
        < n as usize
        && step_no < 100_000
    {
        step_no += 1;
        now += 20_000;
        // A few orders per step, so that orders are in flight at each kill.
        for _ in 0..3 {
            if next_id <= n {
                t.orders.all.push(order(next_id));
                next_id += 1;
            }
        }
        t.step(&mut gw, now);
        if step_no.is_multiple_of(11) {
            // Kill. Sometimes the last pushes "did not happen" (journaled, not pushed) and the
            // last commit "did not happen" (journaled, not committed).
            drop(gw);
            restarts += 1;
            if restarts % 2 == 0 && !t.execs.all.is_empty() {
                let cut = (restarts % 5).min(t.execs.all.len());
                t.execs.all.truncate(t.execs.all.len() - cut);
            }
            if restarts % 3 == 0 && t.orders.head > 0 {
                t.orders.head -= 1;
            }
            t.orders.rewind();
            gw = t.start(now);
        }
    }
    assert!(restarts > 10);
    let terminal = check(&t.execs.all, n);
    let recovered = t
        .execs
        .all
        .iter()
        .filter(|e| e.reject_reason().unwrap() == RejectReason::GatewayRecovery)
        .count();
    assert!(recovered > 0, "some t.orders were in flight at a kill");
    assert!(terminal.values().any(|k| *k == ExecKind::Fill));
}

#[test]
fn full_execs_ring_holds_reports_and_counts_backpressure() {
    let mut t = setup();
    t.execs = VecExecs {
        free: 10,
        ..VecExecs::default()
    };
    let mut gw = t.start(0);
    for id in 1..=50 {
        t.orders.all.push(order(id));
    }
    let now = t.run_steps(&mut gw, (0, 1_000_000, 50));
    assert_eq!(t.execs.all.len(), 10);
    assert!(gw.backlog() >= 40);
    assert_eq!(gw.stats().execs_ring_full, 1);
    t.execs.free = usize::MAX;
    t.run_steps(&mut gw, (now, 1_000_000, 5));
    assert_eq!(gw.backlog(), 0);
    check(&t.execs.all, 50);
}

#[test]
fn replaced_execs_ring_gets_no_old_reports_and_ids_keep_increasing() {
    let mut t = setup();
    let mut gw = t.start(0);
    for id in 1..=20 {
        t.orders.all.push(order(id));
    }
    let now = t.run_steps(&mut gw, (0, 1_000_000, 20));
    drop(gw);
    let old_last = t.execs.all.last().unwrap().exec_id;
    // The execs ring is replaced by a fresh, empty one while the gateway is down.
    t.execs = VecExecs {
        ring_id: 2,
        ..VecExecs::default()
    };
    t.orders.all.push(order(21));
    let mut gw = t.start(now);
    t.run_steps(&mut gw, (now, 1_000_000, 5));
    assert!(!t.execs.all.is_empty());
    assert!(t.execs.all.iter().all(|e| e.client_order_id == 21));
    assert_eq!(t.execs.all[0].exec_id, old_last + 1);
}

#[test]
fn wiped_state_still_gives_higher_exec_ids_from_the_wall_clock_epoch() {
    let m = market(1);
    let mut last_id = 0;
    for epoch in [1_700_000_000u64, 1_700_000_001] {
        // Every restart here loses everything: journal and rings.
        let dir = tempfile::tempdir().unwrap();
        let (j, r) = Journal::open(&dir.path().join("j")).unwrap();
        let mut orders = VecOrders::default();
        let mut execs = VecExecs::default();
        let limits = GatewayLimits {
            id_epoch: epoch,
            ..GatewayLimits::default()
        };
        let (mut gw, _) =
            Gateway::recover(sim(), None, j, r, limits, &mut orders, &mut execs, 0).unwrap();
        orders.all.push(order(1));
        for t in 1..10 {
            gw.step(t * 1_000_000, true, &mut orders, &mut execs, &m)
                .unwrap();
        }
        assert_eq!(execs.all[0].exec_id, (epoch << 32) + 1);
        assert!(execs.all[0].exec_id > last_id);
        last_id = execs.all.last().unwrap().exec_id;
    }
}
