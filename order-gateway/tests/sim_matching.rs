//! Matching rules of the simulated venue on single orders.

mod common;

use bytemuck::Zeroable;
use order_gateway::sim::{fee, SimConfig, SimVenue};
use order_gateway::{Venue, VenueReport};
use shm_layout::{
    ExecKind, HedgeOrder, InstrumentDef, InstrumentKind, LastValue, Liquidity, OrderAction,
    OrderType, RejectReason, Settlement, Side, TimeInForce,
};

const PERP: u32 = 1;

fn defs() -> Vec<InstrumentDef> {
    let mut index = InstrumentDef::zeroed();
    index.id = 0;
    index.kind = InstrumentKind::Index as u8;
    let mut perp = common::linear_perp(0.001, 0.002);
    perp.id = PERP;
    let mut inv = perp;
    inv.id = 2;
    inv.settlement = Settlement::Inverse as u8;
    inv.contract_multiplier = 10.0;
    inv.lot_size = 1.0;
    inv.min_qty = 1.0;
    vec![index, perp, inv]
}

/// Bid 99.5 / ask 100.0, depth 3 levels each side.
fn book(seq: u64) -> LastValue {
    let mut b = LastValue::zeroed();
    b.last_seq = seq;
    b.valid = LastValue::HAS_QUOTE | LastValue::HAS_DEPTH;
    (b.bid_px, b.bid_qty, b.ask_px, b.ask_qty) = (99.5, 1.0, 100.0, 1.0);
    b.ask_levels = 3;
    b.ask_depth[0] = [100.0, 1.0];
    b.ask_depth[1] = [100.5, 2.0];
    b.ask_depth[2] = [101.0, 5.0];
    b.bid_levels = 3;
    b.bid_depth[0] = [99.5, 1.0];
    b.bid_depth[1] = [99.0, 0.0015];
    b.bid_depth[2] = [98.5, 3.0];
    b
}

fn cfg() -> SimConfig {
    SimConfig {
        latency_us: 0.0,
        jitter_us: 0.0,
        taker_fee_bps: 5.0,
        maker_fee_bps: -1.0,
        price_band_bps: 500.0,
        rate_limit_per_s: 0.0,
        ..SimConfig::default()
    }
}

/// [`cfg`] with a one-way latency of `latency_us` plus up to `jitter_us` of random jitter.
fn delayed(latency_us: f64, jitter_us: f64) -> SimConfig {
    SimConfig {
        latency_us,
        jitter_us,
        ..cfg()
    }
}

fn venue(c: SimConfig) -> SimVenue<Vec<Option<LastValue>>> {
    let mut b2 = book(1);
    b2.instrument_id = 2;
    SimVenue::new(c, defs(), vec![None, Some(book(1)), Some(b2)])
}

fn order(id: u64, side: Side, qty: f64, px: f64) -> HedgeOrder {
    HedgeOrder {
        client_order_id: id,
        instrument_id: PERP,
        side: side as u8,
        order_type: OrderType::Limit as u8,
        tif: TimeInForce::Ioc as u8,
        action: OrderAction::New as u8,
        qty,
        limit_px: px,
        ..HedgeOrder::zeroed()
    }
}

/// Like [`order`], with time in force `tif`.
fn order_with(tif: TimeInForce, id: u64, side: Side, qty: f64, px: f64) -> HedgeOrder {
    HedgeOrder {
        tif: tif as u8,
        ..order(id, side, qty, px)
    }
}

fn run(v: &mut SimVenue<Vec<Option<LastValue>>>, o: &HedgeOrder, now: u64) -> Vec<VenueReport> {
    v.submit(o, now);
    polled(v, now)
}

/// The reports a poll at `now` delivers.
fn polled(v: &mut SimVenue<Vec<Option<LastValue>>>, now: u64) -> Vec<VenueReport> {
    let mut out = Vec::new();
    v.poll(now, &mut |r| out.push(r));
    out
}

/// The one report in `r` (there must be exactly one).
fn only(r: &[VenueReport]) -> &VenueReport {
    assert_eq!(r.len(), 1, "{r:?}");
    &r[0]
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn ioc_buy_walks_levels_and_cancels_remainder() {
    let mut v = venue(cfg());
    let r = run(&mut v, &order(1, Side::Buy, 5.0, 100.5), 0);
    let kinds: Vec<_> = r.iter().map(|r| r.kind).collect();
    assert_eq!(
        kinds,
        [
            ExecKind::PartialFill,
            ExecKind::PartialFill,
            ExecKind::Cancelled
        ]
    );
    assert!(close(r[0].qty, 1.0) && close(r[0].price, 100.0) && close(r[0].leaves_qty, 4.0));
    assert!(close(r[1].qty, 2.0) && close(r[1].price, 100.5) && close(r[1].leaves_qty, 2.0));
    assert_eq!(r[0].liquidity, Liquidity::Taker);
    assert!(close(r[2].leaves_qty, 0.0) && r[2].qty == 0.0);
    assert!(r
        .iter()
        .all(|x| x.client_order_id == 1 && x.side == Side::Buy));
}

#[test]
fn order_filled_completely_ends_with_fill() {
    let mut v = venue(cfg());
    let r = run(&mut v, &order(1, Side::Buy, 2.5, 101.0), 0);
    assert_eq!(r.len(), 2);
    assert_eq!(r[1].kind, ExecKind::Fill);
    assert!(close(r[1].qty, 1.5) && close(r[1].price, 100.5) && r[1].leaves_qty == 0.0);
}

#[test]
fn taker_fee_is_bps_of_notional_linear_and_inverse() {
    let mut v = venue(cfg());
    let r = run(&mut v, &order(1, Side::Buy, 1.0, 100.0), 0);
    assert_eq!(r[0].kind, ExecKind::Fill);
    assert!(close(r[0].fee, 1.0 * 100.0 * 5e-4), "fee {}", r[0].fee);
    // Inverse: 10 USD per contract, 3 contracts at 100 -> 0.3 coin notional.
    let d = defs()[2];
    assert!(close(fee(&d, 3.0, 100.0, 5.0), 0.3 * 5e-4));
    // Rebates are negative.
    assert!(fee(&defs()[1], 1.0, 100.0, -1.0) < 0.0);
}

#[test]
fn displayed_size_is_rounded_down_to_lots() {
    let mut v = venue(cfg());
    // Bid depth level 2 shows 0.0015, lot 0.001: only 0.001 is takeable there.
    let r = run(&mut v, &order(1, Side::Sell, 1.5, 99.0), 0);
    assert_eq!(r[0].kind, ExecKind::PartialFill);
    assert!(close(r[0].qty, 1.0) && close(r[0].price, 99.5));
    assert!(close(r[1].qty, 0.001) && close(r[1].price, 99.0));
    assert_eq!(r[2].kind, ExecKind::Cancelled);
}

#[test]
fn liquidity_taken_stays_taken_until_the_book_updates() {
    let mut v = venue(cfg());
    let r = run(&mut v, &order(1, Side::Buy, 1.0, 100.0), 0);
    assert_eq!(r[0].kind, ExecKind::Fill);
    let r = run(&mut v, &order(2, Side::Buy, 1.0, 100.0), 1);
    let kind = only(&r).kind;
    assert_eq!(kind, ExecKind::Cancelled, "the 100.0 level was consumed");
    v.market_mut()[1] = Some(book(2));
    let r = run(&mut v, &order(3, Side::Buy, 1.0, 100.0), 2);
    assert_eq!(r[0].kind, ExecKind::Fill, "a fresh book shows size again");
}

#[test]
fn fok_fills_all_or_nothing() {
    let mut v = venue(cfg());
    let o = order_with(TimeInForce::Fok, 1, Side::Buy, 9.0, 101.0);
    assert_eq!(only(&run(&mut v, &o, 0)).kind, ExecKind::Cancelled);
    let o = order_with(TimeInForce::Fok, 2, Side::Buy, 8.0, 101.0);
    let r = run(&mut v, &o, 0);
    assert_eq!(r.last().unwrap().kind, ExecKind::Fill);
    assert!(close(r.iter().map(|r| r.qty).sum::<f64>(), 8.0));
}

#[test]
fn market_order_is_collared_at_the_band() {
    let mut c = cfg();
    c.price_band_bps = 60.0; // mid 99.75 -> collar 100.3485: only the 100.0 level.
    let mut v = venue(c);
    let mut o = order(1, Side::Buy, 3.0, 0.0);
    o.order_type = OrderType::Market as u8;
    let r = run(&mut v, &o, 0);
    assert_eq!(r.len(), 2);
    assert!(close(r[0].qty, 1.0) && close(r[0].price, 100.0));
    assert_eq!(r[1].kind, ExecKind::Cancelled);
}

#[test]
fn gtc_remainder_rests_and_fills_as_maker_when_the_book_crosses() {
    let mut v = venue(cfg());
    let o = order_with(TimeInForce::Gtc, 1, Side::Buy, 1.0, 99.5);
    assert_eq!(only(&run(&mut v, &o, 0)).kind, ExecKind::Ack);
    assert_eq!(v.resting(), 1);
    let mut b = book(5);
    (b.bid_px, b.ask_px, b.ask_qty) = (99.0, 99.5, 0.4);
    b.valid = LastValue::HAS_QUOTE;
    v.market_mut()[1] = Some(b);
    let out = polled(&mut v, 10);
    assert_eq!(out[0].kind, ExecKind::PartialFill);
    assert_eq!(out[0].liquidity, Liquidity::Maker);
    assert!(close(out[0].qty, 0.4) && close(out[0].price, 99.5) && out[0].fee < 0.0);
    v.cancel(1, 11);
    assert_eq!(only(&polled(&mut v, 11)).kind, ExecKind::Cancelled);
    assert_eq!(v.resting(), 0);
}

fn reject_of(v: &mut SimVenue<Vec<Option<LastValue>>>, o: HedgeOrder) -> RejectReason {
    let r = run(v, &o, 0);
    assert_eq!(only(&r).kind, ExecKind::Rejected);
    r[0].reject_reason
}

#[test]
fn each_reject_reason() {
    let mut v = venue(cfg());
    for (id, qty, px, reason) in [
        (1, 1.0, 100.2, RejectReason::BadTick),
        (2, 1.0005, 100.0, RejectReason::BadLot),
        (3, 0.001, 100.0, RejectReason::BelowMinSize),
        (4, 1.0, 120.0, RejectReason::PriceOutsideBand),
    ] {
        let o = order(id, Side::Buy, qty, px);
        assert_eq!(reject_of(&mut v, o), reason, "{qty} at {px}");
    }
    let mut o = order(5, Side::Buy, 1.0, 100.0);
    o.instrument_id = 9;
    assert_eq!(reject_of(&mut v, o), RejectReason::UnknownInstrument);
    o.instrument_id = 0; // the index is not tradable
    assert_eq!(reject_of(&mut v, o), RejectReason::UnknownInstrument);
    let mut o = order(6, Side::Buy, f64::NAN, 100.0);
    assert_eq!(reject_of(&mut v, o), RejectReason::InvalidOrder);
    o.qty = 1.0;
    o.side = 7;
    assert_eq!(reject_of(&mut v, o), RejectReason::InvalidOrder);
    v.market_mut()[1] = None;
    assert_eq!(
        reject_of(&mut v, order(7, Side::Buy, 1.0, 100.0)),
        RejectReason::NoLiquidity
    );
}

#[test]
fn rate_limit_rejects_beyond_the_burst_and_refills() {
    let mut c = cfg();
    c.rate_limit_per_s = 10.0;
    c.rate_limit_burst = 2.0;
    let mut v = venue(c);
    let o = |id| order(id, Side::Buy, 0.002, 99.5);
    assert_eq!(run(&mut v, &o(1), 0)[0].kind, ExecKind::Cancelled);
    assert_eq!(run(&mut v, &o(2), 0)[0].kind, ExecKind::Cancelled);
    assert_eq!(reject_of(&mut v, o(3)), RejectReason::RateLimit);
    // 100 ms later one token is back.
    assert_eq!(run(&mut v, &o(4), 100_000_000)[0].kind, ExecKind::Cancelled);
}

#[test]
fn latency_delays_reports_without_blocking() {
    let mut v = venue(delayed(100.0, 50.0));
    v.submit(&order(1, Side::Buy, 1.0, 100.0), 1_000);
    let early = polled(&mut v, 1_000 + 199_000);
    assert!(early.is_empty(), "two one-way latencies of at least 100 us");
    assert_eq!(only(&polled(&mut v, 1_000 + 300_000)).kind, ExecKind::Fill);
    assert_eq!(v.in_flight(), 0);
}

#[test]
fn same_seed_gives_same_latencies() {
    let times = |seed| {
        let mut v = venue(SimConfig {
            seed,
            ..delayed(10.0, 1000.0)
        });
        let mut seen = Vec::new();
        for i in 0..20u64 {
            v.submit(&order(i + 1, Side::Buy, 0.002, 99.0), 0);
        }
        for t in (0..3_000_000).step_by(1000) {
            v.poll(t, &mut |r| seen.push((t, r.client_order_id)));
        }
        seen
    };
    assert_eq!(times(42), times(42));
    assert_ne!(times(42), times(43));
}

/// Bid 99.5 / ask 100.0 from a recording without sizes: quantities 0 meaning "unknown".
/// A venue whose perpetual's book has prices without sizes; a touch fills at most
/// `unknown_size_qty` contracts.
fn size_unknown_venue(unknown_size_qty: f64) -> SimVenue<Vec<Option<LastValue>>> {
    let c = SimConfig {
        unknown_size_qty,
        ..cfg()
    };
    SimVenue::new(c, defs(), vec![None, Some(size_unknown_book(1)), None])
}

fn size_unknown_book(seq: u64) -> LastValue {
    let mut b = LastValue::zeroed();
    b.last_seq = seq;
    b.instrument_id = PERP;
    b.valid = LastValue::HAS_QUOTE | LastValue::QUOTE_SIZE_UNKNOWN;
    (b.bid_px, b.bid_qty, b.ask_px, b.ask_qty) = (99.5, 0.0, 100.0, 0.0);
    b
}

#[test]
fn size_unknown_touch_fills_only_the_configured_default_size() {
    let mut v = size_unknown_venue(2.0);
    let r = run(&mut v, &order(1, Side::Buy, 5.0, 100.0), 0);
    let kinds: Vec<_> = r.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [ExecKind::PartialFill, ExecKind::Cancelled]);
    assert!(close(r[0].qty, 2.0) && close(r[0].price, 100.0), "{r:?}");
    // The 2 contracts stay taken until the feed updates the instrument.
    let r = run(&mut v, &order(2, Side::Buy, 1.0, 100.0), 0);
    let cancel = only(&r);
    assert_eq!(cancel.kind, ExecKind::Cancelled);
    assert!(close(cancel.leaves_qty, 0.0) && cancel.qty == 0.0);
}

#[test]
fn size_unknown_touch_with_zero_default_fills_nothing() {
    let mut v = size_unknown_venue(0.0);
    let r = run(&mut v, &order(1, Side::Sell, 1.0, 99.5), 0);
    assert!(r.iter().all(|x| x.qty == 0.0), "{r:?}");
    assert_eq!(r.last().map(|x| x.kind), Some(ExecKind::Cancelled));
}
