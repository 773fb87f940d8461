//! `HedgerCore::poll` on `FixedClock`: the loop on an injected clock is deterministic and every
//! time-dependent decision follows the injected time, not the machine's clock.

use super::core::{FixedClock, HedgerCore, MdReject, Stats};
use super::io::{MemControl, MemExecs, MemMarket, MemOrders};
use super::risk::{BookRiskAdapter, OptionRisk};
use super::test_support::{btc_setup, def, fixed_band, BTC, DAY, PERP, T0};
use crate::limits::{LimitBreach, LimitsConfig};
use crate::policy::PolicyConfig;
use shm_layout::{ExecKind, HedgeOrder, InstrumentKind, MarketEvent, OptionType, Side};
use testkit::exec_event;

const SEC: u64 = 1_000_000_000;
const CALL: u32 = 2;

fn core(limits: LimitsConfig) -> HedgerCore<BookRiskAdapter> {
    // mono == wall: the injected time is also the wall time (expiry, trading day).
    core_at(limits, T0, T0)
}

/// A core whose clocks read `mono_ns` (monotonic) and `wall_ns` (wall) at construction.
fn core_at(limits: LimitsConfig, mono_ns: u64, wall_ns: u64) -> HedgerCore<BookRiskAdapter> {
    core_expiring(limits, mono_ns, wall_ns, T0 + 30 * DAY)
}

/// [`core_at`] with the call expiring at `expiry_ns`.
fn core_expiring(
    limits: LimitsConfig,
    mono_ns: u64,
    wall_ns: u64,
    expiry_ns: u64,
) -> HedgerCore<BookRiskAdapter> {
    core_discounted(limits, mono_ns, wall_ns, expiry_ns, 0.0)
}

/// [`core_expiring`] with the underlying's configured `rate` (per year).
fn core_discounted(
    limits: LimitsConfig,
    mono_ns: u64,
    wall_ns: u64,
    expiry_ns: u64,
    rate: f64,
) -> HedgerCore<BookRiskAdapter> {
    let mut call = def(CALL, "BTC-C-10000", InstrumentKind::Option);
    call.option_type = OptionType::Call as u8;
    call.strike = 10_000.0;
    call.expiry_ns = expiry_ns;
    call.lot_size = 0.1;
    call.min_qty = 0.1;
    let defs = vec![
        def(BTC, "BTC", InstrumentKind::Index),
        def(PERP, "BTC-PERP", InstrumentKind::Perpetual),
        call,
    ];
    let policy = PolicyConfig {
        rule: fixed_band(1.0),
        min_interval_ns: 2 * SEC,
        max_interval_ns: 30 * SEC,
        collar_bps: 50.0,
        ..PolicyConfig::default()
    };
    let mut setup = btc_setup(&defs, policy, limits);
    setup.rate = rate;
    let risk = BookRiskAdapter::new(&[BTC], 3, 4, T0);
    let mut c = HedgerCore::new(defs, vec![setup], risk, mono_ns, wall_ns);
    c.set_option_position("BTC-C-10000", -40.0).unwrap();
    c
}

/// The in-memory queues around a core: market data, execs, orders and the control block.
struct Queues {
    md: MemMarket,
    execs: MemExecs,
    orders: MemOrders,
    ctl: MemControl,
}

/// Polls `c` on the fixed clock `t` until it has nothing left to do.
fn drain_at<R: OptionRisk>(c: &mut HedgerCore<R>, q: &mut Queues, t: u64) {
    let (md, execs, orders) = (&mut q.md, &mut q.execs, &mut q.orders);
    while c.poll(md, execs, orders, &q.ctl, t, &FixedClock(t)) > 0 {}
}

/// The market at T0: the perpetual's book around 10,000, the index at 10,000 and the call
/// marked at `call_vol` on a forward of 10,000.
fn open_at_t0(q: &mut Queues, call_vol: f64) {
    q.md.events.push(MarketEvent::quote(
        PERP, T0, T0, 9_999.5, 500.0, 10_000.0, 500.0,
    ));
    q.md.events
        .push(MarketEvent::underlying_price(BTC, T0, T0, 10_000.0));
    q.md.events.push(MarketEvent::option_mark(
        CALL, T0, T0, 0.02, call_vol, 10_000.0,
    ));
}

fn rig() -> Queues {
    Queues {
        md: MemMarket::with_instruments(3),
        execs: MemExecs::default(),
        orders: MemOrders::new(64),
        ctl: MemControl::default(),
    }
}

/// Everything observable after a scripted session.
#[derive(Debug, PartialEq)]
struct Outcome {
    orders: Vec<(u64, HedgeOrder)>,
    stats: Stats,
    hedge_position: f64,
    net_delta: f64,
    holds: [u64; 6],
    hedges: (u64, u64),
    limit_rejects: Vec<u64>,
    read_count: u64,
    order_count: u64,
}

/// 10 minutes of a moving market, one event every 100 ms, client option trades, fills of
/// every order on the next iteration, a timer every second.
fn session() -> Outcome {
    let mut c = core(LimitsConfig::default());
    let mut q = rig();
    let mut exec_id = 1;
    let mut out = Vec::new();
    for i in 0..6_000u64 {
        let now = T0 + i * 100_000_000;
        let x = (i as f64 * 0.01).sin() * 400.0 + (i as f64 * 0.137).cos() * 30.0;
        let e = match i % 4 {
            0 => MarketEvent::underlying_price(BTC, now, now, 10_000.0 + x),
            1 => MarketEvent::quote(
                PERP,
                now,
                now,
                10_000.0 + x - 0.5,
                50.0,
                10_000.0 + x + 0.5,
                50.0,
            ),
            2 => MarketEvent::option_mark(CALL, now, now, 0.05, 0.6 + x * 1e-4, 10_000.0 + x),
            _ => MarketEvent::underlying_price(7, now, now, 1.0), // unknown instrument
        };
        q.md.events.push(e);
        if i % 97 == 50 {
            let side = if i % 2 == 0 { Side::Buy } else { Side::Sell };
            q.execs.buf.push(exec_event(
                exec_id,
                ExecKind::OptionTrade,
                0,
                CALL,
                side,
                (5.0, 0.05, 0.0),
                now,
            ));
            exec_id += 1;
        }
        drain_at(&mut c, &mut q, now);
        if i % 10 == 0 {
            c.on_timer(&mut q.orders, now, &FixedClock(now));
        }
        // The gateway: fill every order at its limit on the next iteration.
        while let Some(o) = q.orders.buf.pop_front() {
            out.push((now, o));
            let kind = ExecKind::Fill;
            let side = o.side().unwrap();
            q.execs.buf.push(exec_event(
                exec_id,
                kind,
                o.client_order_id,
                o.instrument_id,
                side,
                (o.qty, o.limit_px, 0.0),
                now,
            ));
            exec_id += 1;
        }
    }
    let u = &c.und[0];
    Outcome {
        orders: out,
        stats: c.stats,
        hedge_position: u.hedge_position,
        net_delta: u.net_delta,
        holds: u.holds,
        hedges: (u.hedges_band, u.hedges_safety),
        limit_rejects: LimitBreach::ALL
            .iter()
            .map(|&b| c.limit_rejects(0, b))
            .collect(),
        read_count: c.latency.recv_to_read.len(),
        order_count: c.latency.read_to_decision.len(),
    }
}

#[test]
fn poll_at_is_deterministic_and_uses_only_the_injected_clock() {
    let a = session();
    let b = session();
    assert_eq!(
        a, b,
        "same inputs and times must give the same orders and state"
    );
    // Bitwise, not only ==: the report built on it must be byte-identical.
    let bytes = |o: &Outcome| -> Vec<u8> {
        o.orders
            .iter()
            .flat_map(|(_, x)| bytemuck::bytes_of(x).to_vec())
            .collect()
    };
    assert_eq!(bytes(&a), bytes(&b));

    assert!(
        a.orders.len() >= 5,
        "the session hedges: {}",
        a.orders.len()
    );
    assert!(a.hedges.0 > 0);
    // The option marks of 2026-01-02 were not called expired although the machine's wall
    // clock may be past the expiry: expiry is measured on the injected clock.
    assert_eq!(a.stats.md_rejected[MdReject::ExpiredOption as usize], 0);
    assert!(a.stats.md_rejected[MdReject::UnknownInstrument as usize] > 0);
    for (now, o) in &a.orders {
        // Every stamp is the injected time of the iteration that published it.
        assert_eq!(o.hedger_read_ts_ns, *now);
        assert_eq!(o.decision_ts_ns, *now);
        assert_eq!(o.publish_ts_ns, *now);
        assert!(o.feed_recv_ts_ns == 0 || o.feed_recv_ts_ns == *now);
    }
    // The minimum interval between hedges holds on the injected clock.
    for w in a.orders.windows(2) {
        assert!(w[1].0 - w[0].0 >= 2 * SEC, "{} then {}", w[0].0, w[1].0);
    }
    assert!(a.holds[1] > 0, "min_interval holds counted");
    // Fills bring the hedge position to what was sent.
    let sent: f64 = a
        .orders
        .iter()
        .map(|(_, o)| o.side().unwrap().sign() * o.qty)
        .sum();
    assert!((a.hedge_position - sent).abs() < 1e-9);
    // Histogram stamps are the injected ones too: every read was recorded (recv == read
    // gives the 1 ns floor), every order once.
    assert_eq!(a.read_count, a.stats.md_events);
    assert_eq!(a.order_count, a.orders.len() as u64);
}

#[test]
fn stale_guard_and_expiry_follow_the_injected_clock() {
    let limits = LimitsConfig {
        max_data_age_ns: 5 * SEC,
        ..LimitsConfig::default()
    };
    let mut c = core(limits);
    let mut q = rig();
    q.md.events
        .push(MarketEvent::underlying_price(BTC, T0, T0, 10_000.0));
    q.md.events.push(MarketEvent::quote(
        PERP, T0, T0, 9_999.5, 50.0, 10_000.5, 50.0,
    ));
    q.md.events
        .push(MarketEvent::option_mark(CALL, T0, T0, 0.05, 0.6, 10_000.0));
    // Before the hedge book arrives the loop cannot hedge; the option mark triggers the
    // first decision at T0 with a fresh book.
    let first_poll = T0 + SEC;
    drain_at(&mut c, &mut q, first_poll);
    assert_eq!(q.orders.buf.len(), 1, "fresh data at T0 + 1 s: hedged");
    assert_eq!(c.limit_rejects(0, LimitBreach::StaleData), 0);
    let o = q.orders.buf.pop_front().unwrap();
    q.execs.buf.push(exec_event(
        1,
        ExecKind::Fill,
        o.client_order_id,
        PERP,
        o.side().unwrap(),
        (o.qty, o.limit_px, 0.0),
        first_poll,
    ));
    // A client trade 10 s after the last market data: the same decision is now refused as
    // stale, by the injected clock alone (no real time passed).
    q.execs.buf.push(exec_event(
        2,
        ExecKind::OptionTrade,
        0,
        CALL,
        Side::Sell,
        (20.0, 0.05, 0.0),
        T0 + 10 * SEC,
    ));
    drain_at(&mut c, &mut q, T0 + 10 * SEC);
    assert!(q.orders.buf.is_empty());
    assert_eq!(c.limit_rejects(0, LimitBreach::StaleData), 1);
    // A mark after the option's expiry on the injected clock is rejected as expired.
    q.md.events.push(MarketEvent::option_mark(
        CALL,
        0,
        T0 + 31 * DAY,
        0.05,
        0.6,
        10_000.0,
    ));
    drain_at(&mut c, &mut q, T0 + 31 * DAY);
    assert_eq!(c.stats.md_rejected[MdReject::ExpiredOption as usize], 1);
}

#[test]
fn exchange_clock_lets_recorded_data_through_that_the_wall_clock_calls_expired() {
    // The machine's wall clock reads a year after the recorded data: every option of the
    // recording has expired by it. Monotonic time starts small, as on a real host.
    let mono0 = 1_000 * SEC;
    let wall_now = T0 + 365 * DAY;
    let mark = |exch_ts_ns| MarketEvent::option_mark(CALL, exch_ts_ns, mono0, 0.05, 0.6, 10_000.0);

    let mut live = core_at(LimitsConfig::default(), mono0, wall_now);
    let mut q = rig();
    q.md.events.push(mark(T0));
    drain_at(&mut live, &mut q, mono0 + SEC);
    assert_eq!(live.stats.md_rejected[MdReject::ExpiredOption as usize], 1);

    let mut replay = core_at(LimitsConfig::default(), mono0, wall_now);
    replay.set_exchange_clock(true);
    // The idle-time wall calibration must not pull market time back to today.
    replay.calibrate_wall(mono0, wall_now);
    let mut q = rig();
    q.md.events.push(mark(T0));
    drain_at(&mut replay, &mut q, mono0 + SEC);
    assert_eq!(
        replay.stats.md_rejected[MdReject::ExpiredOption as usize],
        0
    );
    assert_eq!(
        replay.wall_ns(mono0 + SEC),
        T0,
        "market time is the event's exchange time"
    );
    // Past the option's expiry on the exchange clock, its marks are rejected again.
    q.md.events.push(mark(T0 + 31 * DAY));
    drain_at(&mut replay, &mut q, mono0 + 2 * SEC);
    assert_eq!(
        replay.stats.md_rejected[MdReject::ExpiredOption as usize],
        1
    );
}

/// The short 40 calls, 1 000 in the money, expire one minute after T0.
const EXPIRY: u64 = T0 + 60 * SEC;

/// The core holding the short 40 calls expiring at [`EXPIRY`], and its queues.
fn expiring_rig() -> (HedgerCore<BookRiskAdapter>, Queues) {
    (
        core_expiring(LimitsConfig::default(), T0, T0, EXPIRY),
        rig(),
    )
}

/// Index at 11 000, at `t`.
fn index_at(md: &mut MemMarket, t: u64) {
    md.events
        .push(MarketEvent::underlying_price(BTC, t, t, 11_000.0));
}

/// Index at 11 000 and a perpetual book around it, at `t`.
fn market_at(md: &mut MemMarket, t: u64) {
    index_at(md, t);
    md.events.push(MarketEvent::quote(
        PERP, t, t, 10_999.5, 100.0, 11_000.5, 100.0,
    ));
}

#[test]
fn a_settled_position_is_not_hedged_after_expiry() {
    let (mut c, mut q) = expiring_rig();
    // Before expiry the book knows the index (no hedge book yet): delta of -40 ITM calls.
    index_at(&mut q.md, T0);
    drain_at(&mut c, &mut q, T0 + 30 * SEC);
    assert!(
        (c.und[0].option_delta + 40.0).abs() < 1e-3,
        "{}",
        c.und[0].option_delta
    );
    assert!(q.orders.buf.is_empty(), "no hedge book yet");
    assert_eq!(c.und[0].options_settled, 0);

    // Two minutes later, past the expiry, the hedge book arrives: the calls were settled in
    // cash, so there is nothing to hedge (unsettled, they would read delta -40: buy 40).
    let t = T0 + 120 * SEC;
    market_at(&mut q.md, t);
    drain_at(&mut c, &mut q, t);
    c.on_timer(&mut q.orders, t, &FixedClock(t));
    assert!(
        q.orders.buf.is_empty(),
        "hedged a settled position: {:?}",
        q.orders.buf
    );
    let u = &c.und[0];
    assert_eq!(u.option_delta, 0.0);
    assert_eq!(u.gamma, 0.0);
    assert_eq!(u.net_delta, 0.0);
    assert_eq!(c.option_position(CALL), 0.0);
    assert_eq!(u.options_settled, 1);
    assert_eq!(u.settled_position, -40.0);
    assert!(
        (u.settled_value + 40.0 * 1_000.0).abs() < 1e-6,
        "{}",
        u.settled_value
    );
}

#[test]
fn a_late_option_trade_in_an_expired_option_is_kept_in_its_settlement_not_in_risk() {
    let (mut c, mut q) = expiring_rig();
    let t = T0 + 120 * SEC;
    market_at(&mut q.md, t);
    drain_at(&mut c, &mut q, t);
    assert!(q.orders.buf.is_empty());
    // Settled at expiry: the short 40 calls, 1,000 in the money.
    assert_eq!(c.und[0].settled_position, -40.0);
    assert!((c.und[0].settled_value + 40.0 * 1_000.0).abs() < 1e-6);
    q.execs.buf.push(exec_event(
        1,
        ExecKind::OptionTrade,
        0,
        CALL,
        Side::Sell,
        (25.0, 0.05, 0.0),
        t,
    ));
    drain_at(&mut c, &mut q, t + SEC);
    assert_eq!(c.stats.option_trades_expired, 1);
    assert_eq!(c.stats.option_trades_unrecorded, 0);
    assert_eq!(c.stats.option_trades, 0);
    assert_eq!(c.stats.execs_processed, 1);
    assert_eq!(c.option_position(CALL), 0.0, "not added to risk");
    assert_eq!(c.und[0].option_delta, 0.0);
    assert!(q.orders.buf.is_empty(), "no hedge for a settled trade");
    // The fill is not lost: the settlement record and the gauges hold it, at the same
    // settlement price.
    assert_eq!(c.und[0].settled_position, -65.0);
    assert!((c.und[0].settled_value + 65.0 * 1_000.0).abs() < 1e-6);
    assert_eq!(c.und[0].options_settled, 1, "still one option");
    // A restart keeps it: the persisted record has the trade in it (and the exec id is
    // committed with it, so it is not applied twice).
    let saved = c.persist_state();
    assert_eq!(saved.settled.len(), 1);
    assert_eq!(saved.settled[0].contracts, -65.0);
}

#[test]
fn a_restart_keeps_a_settled_option_settled() {
    let (mut c, mut q) = expiring_rig();
    index_at(&mut q.md, T0);
    drain_at(&mut c, &mut q, T0 + SEC);
    // A snapshot from before the expiry, for the crash case below.
    let before = c.persist_state();
    assert_eq!(before.options, vec![("BTC-C-10000".to_string(), -40.0)]);
    let t = T0 + 120 * SEC;
    market_at(&mut q.md, t);
    drain_at(&mut c, &mut q, t);
    assert_eq!(c.und[0].options_settled, 1);
    let st = c.persist_state();
    assert!(st.options.is_empty(), "settled: no position persisted");
    assert_eq!(st.settled.len(), 1);
    assert_eq!(st.settled[0].symbol, "BTC-C-10000");
    assert_eq!(st.settled[0].contracts, -40.0);
    // Through the file format.
    let mut text = String::new();
    st.encode(&mut text);
    let st = super::state::PersistState::decode(&text, std::path::Path::new("state")).unwrap();

    // Restart later (its config still says short 40 calls): the snapshot wins, the option
    // stays settled, once, and is not hedged.
    let t2 = t + 60 * SEC;
    let mut r = core_expiring(LimitsConfig::default(), t2, t2, EXPIRY);
    r.restore(&st, t2, 0).unwrap();
    assert_eq!(r.option_position(CALL), 0.0);
    assert_eq!(r.und[0].options_settled, 1);
    assert_eq!(r.und[0].settled_position, -40.0);
    let mut q = rig();
    market_at(&mut q.md, t2);
    drain_at(&mut r, &mut q, t2);
    r.on_timer(&mut q.orders, t2 + SEC, &FixedClock(t2 + SEC));
    r.on_timer(&mut q.orders, t2 + 2 * SEC, &FixedClock(t2 + 2 * SEC));
    assert!(!r.reconciling());
    assert!(q.orders.buf.is_empty(), "{:?}", q.orders.buf);
    assert_eq!(r.und[0].options_settled, 1, "not settled twice");
    assert_eq!(r.und[0].option_delta, 0.0);
    // The next snapshot still says settled: no resurrection over restarts.
    assert_eq!(r.persist_state().settled, st.settled);
    assert!(r.persist_state().options.is_empty());

    // A crash whose last snapshot predates the expiry: the position comes back from it and
    // settles once when the restarted loop's clock passes the expiry.
    let mut k = core_expiring(LimitsConfig::default(), t2, t2, EXPIRY);
    k.restore(&before, t2, 0).unwrap();
    let mut q = rig();
    market_at(&mut q.md, t2);
    drain_at(&mut k, &mut q, t2);
    k.on_timer(&mut q.orders, t2 + SEC, &FixedClock(t2 + SEC));
    assert_eq!(k.und[0].options_settled, 1);
    assert_eq!(k.option_position(CALL), 0.0);
    assert!(q.orders.buf.is_empty(), "{:?}", q.orders.buf);
}

#[test]
fn exchange_clock_does_not_settle_recorded_options_against_the_wall_clock() {
    // The host's wall clock is a year after the recording; the call expires 30 days after
    // the recording's start. Idle work before the first event must not settle it.
    let mono0 = 1_000 * SEC;
    let wall_now = T0 + 365 * DAY;
    let mut c = core_at(LimitsConfig::default(), mono0, wall_now);
    c.set_exchange_clock(true);
    c.idle_risk(mono0 + SEC);
    let mut q = rig();
    c.on_timer(&mut q.orders, mono0 + SEC, &FixedClock(mono0 + SEC));
    assert_eq!(c.und[0].options_settled, 0);
    q.md.events
        .push(MarketEvent::underlying_price(BTC, T0, mono0, 10_000.0));
    drain_at(&mut c, &mut q, mono0 + 2 * SEC);
    c.idle_risk(mono0 + 3 * SEC);
    assert_eq!(c.und[0].options_settled, 0);
    assert_eq!(c.option_position(CALL), -40.0);
    // Past the expiry on the exchange clock it settles.
    q.md.events.push(MarketEvent::underlying_price(
        BTC,
        T0 + 31 * DAY,
        mono0,
        10_000.0,
    ));
    drain_at(&mut c, &mut q, mono0 + 4 * SEC);
    assert_eq!(c.und[0].options_settled, 1);
    assert_eq!(c.option_position(CALL), 0.0);
}

/// The configured rate reaches the option book, not only the policy's band: a linear call's
/// Black-76 delta is exp(-r T) N(d1), so at 5% and 30 days the book's delta is the undiscounted
/// one times exp(-0.05 x 30/365).
#[test]
fn the_configured_rate_discounts_the_books_delta() {
    let delta_at = |rate: f64| {
        let expiry = T0 + 30 * DAY;
        let mut c = core_discounted(LimitsConfig::default(), T0, T0, expiry, rate);
        let mut q = rig();
        open_at_t0(&mut q, 0.5);
        drain_at(&mut c, &mut q, T0);
        assert_eq!(c.risk.setup_errors, 0);
        c.risk.delta(0)
    };
    let (flat, discounted) = (delta_at(0.0), delta_at(0.05));
    let want = flat * (-0.05f64 * 30.0 / 365.0).exp();
    assert!(flat < 0.0, "short 40 calls: {flat}");
    assert!(
        (discounted - want).abs() <= 1e-9 * want.abs(),
        "{discounted} vs {want} (undiscounted {flat})"
    );
}

/// A snapshot's events carry `FLAG_BATCH_MORE` on all but the last: the core applies them all
/// and decides once, on the whole snapshot, never on a half-applied one.
#[test]
fn a_snapshot_batch_is_decided_once_at_its_last_event() {
    let run = |batched: bool| {
        let mut c = core(LimitsConfig::default());
        let mut q = rig();
        let more = |mut e: MarketEvent| {
            if batched {
                e.flags |= MarketEvent::FLAG_BATCH_MORE;
            }
            e
        };
        // One snapshot: the perp book, the index, then the call's mark. The half-applied view
        // (book only: the call still at its placeholder vol, the index unknown) is a
        // different delta from the whole snapshot's.
        q.md.events.push(more(MarketEvent::quote(
            PERP, T0, T0, 9_999.5, 500.0, 10_000.0, 500.0,
        )));
        q.md.events
            .push(more(MarketEvent::underlying_price(BTC, T0, T0, 10_000.0)));
        q.md.events
            .push(MarketEvent::option_mark(CALL, T0, T0, 0.02, 0.2, 10_000.0));
        drain_at(&mut c, &mut q, T0);
        let whole_delta = c.risk.delta(0);
        (
            q.orders.buf.iter().copied().collect::<Vec<_>>(),
            whole_delta,
        )
    };
    let (whole, delta) = run(true);
    assert_eq!(
        whole.len(),
        1,
        "one decision for the whole snapshot: {whole:?}"
    );
    // Linear perp, 1 BTC per contract: the order is the whole snapshot's delta, to the lot.
    assert!(
        (whole[0].qty - delta.abs()).abs() <= 0.001 + 1e-9,
        "{} vs {delta}",
        whole[0].qty
    );
    let (piecewise, _) = run(false);
    assert!(
        (piecewise[0].qty - whole[0].qty).abs() > 0.1,
        "without the flag the first, half-applied view is hedged: {} vs {}",
        piecewise[0].qty,
        whole[0].qty
    );
}

/// `timer_due_ns` says when a timer can act: never while nothing is pending, at the end of
/// the minimum interval when a hedge was held by it.
#[test]
fn timer_due_follows_what_is_pending() {
    let mut c = core(LimitsConfig::default());
    let mut q = rig();
    open_at_t0(&mut q, 0.6);
    drain_at(&mut c, &mut q, T0);
    let sent = q.orders.buf.pop_front().expect("short 40 calls: hedged");
    assert!(q.orders.buf.is_empty());
    // Only the safety re-hedge (30 s after the hedge) is pending.
    assert_eq!(c.timer_due_ns(), sent.decision_ts_ns + 30 * SEC);
    // The order is cancelled unfilled: the next timer decides again at once (0)...
    let side = sent.side().unwrap();
    let cancel = exec_event(
        1,
        ExecKind::Cancelled,
        sent.client_order_id,
        PERP,
        side,
        (0.0, 0.0, 0.0),
        T0,
    );
    q.execs.buf.push(cancel);
    let t1 = T0 + SEC / 2;
    drain_at(&mut c, &mut q, t1);
    assert_eq!(c.timer_due_ns(), 0);
    // ...and is held by the 2 s minimum interval: due at its end, not before.
    c.on_timer(&mut q.orders, t1, &FixedClock(t1));
    assert!(q.orders.buf.is_empty());
    assert_eq!(c.timer_due_ns(), sent.decision_ts_ns + 2 * SEC);
    c.on_timer(
        &mut q.orders,
        sent.decision_ts_ns + 2 * SEC,
        &FixedClock(sent.decision_ts_ns + 2 * SEC),
    );
    assert_eq!(q.orders.buf.len(), 1, "re-sent once the interval passed");
}
