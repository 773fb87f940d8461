//! Queue position of resting orders in the simulated venue: an order joins the back of the
//! queue at its price; trades there advance it; a trade through its price fills it; a size
//! decrease moves it as the configured model says.

mod common;

use bytemuck::Zeroable;
use order_gateway::sim::{QueueModel, SimConfig, SimVenue};
use order_gateway::{Venue, VenueReport};
use shm_layout::{ExecKind, HedgeOrder, LastValue, Liquidity, MarketEvent, Side, TimeInForce};

const PERP: u32 = 0;

/// Bid 99.5 x `bid_qty` / ask 100.0 x 10, sizes known, no depth.
fn book(seq: u64, bid_qty: f64) -> LastValue {
    let mut b = LastValue::zeroed();
    b.last_seq = seq;
    b.valid = LastValue::HAS_QUOTE;
    (b.bid_px, b.bid_qty, b.ask_px, b.ask_qty) = (99.5, bid_qty, 100.0, 10.0);
    b
}

fn venue(model: QueueModel) -> SimVenue<Vec<Option<LastValue>>> {
    let cfg = SimConfig {
        latency_us: 0.0,
        jitter_us: 0.0,
        rate_limit_per_s: 0.0,
        queue_model: model,
        ..SimConfig::default()
    };
    SimVenue::new(
        cfg,
        vec![common::linear_perp(1.0, 1.0)],
        vec![Some(book(1, 5.0))],
    )
}

/// A passive buy of `qty` at the bid (99.5), behind the 5 displayed there.
fn rest_buy(v: &mut SimVenue<Vec<Option<LastValue>>>, qty: f64) {
    let mut o: HedgeOrder = common::ioc_order(7, PERP, Side::Buy, qty, 99.5);
    o.tif = TimeInForce::Gtc as u8;
    v.submit(&o, 0);
    let out = poll(v, 0);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].kind, ExecKind::Ack);
    assert_eq!(v.resting(), 1);
}

/// A venue under `model` with a passive buy of 3 resting at the bid behind the 5 displayed.
fn resting_buy(model: QueueModel) -> SimVenue<Vec<Option<LastValue>>> {
    let mut v = venue(model);
    rest_buy(&mut v, 3.0);
    v
}

fn poll(v: &mut SimVenue<Vec<Option<LastValue>>>, now: u64) -> Vec<VenueReport> {
    let mut out = Vec::new();
    v.poll(now, &mut |r| out.push(r));
    out
}

fn filled(out: &[VenueReport]) -> f64 {
    out.iter()
        .filter(|r| matches!(r.kind, ExecKind::Fill | ExecKind::PartialFill))
        .map(|r| {
            assert_eq!(r.liquidity, Liquidity::Maker);
            assert_eq!(r.price, 99.5);
            r.qty
        })
        .sum()
}

/// The book now shows `bid_qty` at the bid (update `seq`), seen by a poll at `now`.
fn bid_shows(v: &mut SimVenue<Vec<Option<LastValue>>>, seq: u64, bid_qty: f64, now: u64) {
    v.market_mut()[0] = Some(book(seq, bid_qty));
    poll(v, now);
}

/// A trade printed at `px` (aggressor if known) at `now`, and what the poll then reports.
fn trade(
    v: &mut SimVenue<Vec<Option<LastValue>>>,
    (px, qty, aggressor): (f64, f64, Option<Side>),
    now: u64,
) -> Vec<VenueReport> {
    let mut e = MarketEvent::trade(PERP, now, now, px, qty, aggressor.unwrap_or(Side::Buy));
    if aggressor.is_none() {
        e.side = 0; // not known
    }
    v.on_trade(&e, now);
    poll(v, now)
}

/// A seller hits the bid (99.5, our price) for `qty` at `now`: how much of ours it filled.
fn sold_at_bid(v: &mut SimVenue<Vec<Option<LastValue>>>, qty: f64, now: u64) -> f64 {
    filled(&trade(v, (99.5, qty, Some(Side::Sell)), now))
}

#[test]
fn a_trade_ahead_advances_the_queue_and_fills_only_what_it_leaves() {
    let mut v = resting_buy(QueueModel::RiskAverse);
    // 4 of the 5 ahead of us trade: we are next, nothing filled.
    assert_eq!(sold_at_bid(&mut v, 4.0, 1), 0.0);
    // 3 more: 1 for the last one ahead, 2 for us.
    let out = trade(&mut v, (99.5, 3.0, Some(Side::Sell)), 2);
    assert_eq!(filled(&out), 2.0);
    assert_eq!(out[0].kind, ExecKind::PartialFill);
    assert_eq!(out[0].leaves_qty, 1.0);
    // A buyer lifting the ask cannot reach our bid.
    assert_eq!(
        filled(&trade(&mut v, (99.5, 10.0, Some(Side::Buy)), 3)),
        0.0
    );
    let out = trade(&mut v, (99.5, 1.0, None), 4);
    assert_eq!(filled(&out), 1.0);
    assert_eq!(out[0].kind, ExecKind::Fill);
    assert_eq!(v.resting(), 0);
}

#[test]
fn a_trade_through_our_price_fills_the_whole_order() {
    let mut v = resting_buy(QueueModel::RiskAverse);
    // A seller swept our level and printed below it: everyone at 99.5 was filled.
    let out = trade(&mut v, (99.0, 1.0, Some(Side::Sell)), 1);
    assert_eq!(filled(&out), 3.0);
    assert_eq!(out[0].kind, ExecKind::Fill);
    // A trade at a better price than ours (above our bid) does not.
    let mut v = resting_buy(QueueModel::RiskAverse);
    assert_eq!(
        filled(&trade(&mut v, (100.0, 5.0, Some(Side::Sell)), 1)),
        0.0
    );
}

#[test]
fn a_cancel_behind_us_does_not_advance_the_queue_risk_averse() {
    let mut v = resting_buy(QueueModel::RiskAverse);
    // The level grows to 9 (behind us), then shrinks to 6: from behind, the 5 ahead remain.
    bid_shows(&mut v, 2, 9.0, 1);
    bid_shows(&mut v, 3, 6.0, 2);
    assert_eq!(
        sold_at_bid(&mut v, 5.0, 3),
        0.0,
        "still 5 ahead before this trade"
    );
    assert_eq!(sold_at_bid(&mut v, 1.0, 4), 1.0);
}

#[test]
fn a_level_shrinking_below_the_queue_ahead_moves_us_up_risk_averse() {
    let mut v = resting_buy(QueueModel::RiskAverse);
    // Only 2 left displayed: at most 2 can be ahead of us.
    bid_shows(&mut v, 2, 2.0, 1);
    assert_eq!(sold_at_bid(&mut v, 4.0, 2), 2.0);
}

#[test]
fn a_traded_decrease_is_not_counted_again_as_a_cancel() {
    let mut v = resting_buy(QueueModel::Prob);
    // 2 trade at our price, then the book shows 3 (5 - 2): no cancel, 3 still ahead.
    assert_eq!(sold_at_bid(&mut v, 2.0, 1), 0.0);
    bid_shows(&mut v, 2, 3.0, 2);
    assert_eq!(sold_at_bid(&mut v, 3.0, 3), 0.0);
    assert_eq!(sold_at_bid(&mut v, 1.0, 4), 1.0);
}

#[test]
fn the_prob_model_takes_part_of_a_cancel_from_ahead() {
    // 5 ahead, nobody behind at the start: a cancel of 2 can only come from ahead.
    let mut v = resting_buy(QueueModel::Prob);
    bid_shows(&mut v, 2, 3.0, 1);
    assert_eq!(sold_at_bid(&mut v, 4.0, 2), 1.0, "3 ahead after the cancel");
    // Risk averse: the same book leaves min(5, 3) = 3 ahead too; with someone behind the
    // models differ: 5 ahead, 5 behind (level 10), 4 cancelled.
    for (model, expect) in [(QueueModel::RiskAverse, 0.0), (QueueModel::Prob, 2.0)] {
        let mut v = resting_buy(model);
        bid_shows(&mut v, 2, 10.0, 1);
        bid_shows(&mut v, 3, 6.0, 2);
        // Prob (n = 2): half of the 4 from ahead (5^2 / (5^2 + 5^2)): 3 ahead.
        assert_eq!(sold_at_bid(&mut v, 5.0, 3), expect, "{model:?}");
    }
}

#[test]
fn unknown_sizes_queue_behind_the_configured_size_and_only_trades_move_it() {
    let mut v = venue(QueueModel::Prob);
    let mut b = book(2, 0.0);
    b.valid |= LastValue::QUOTE_SIZE_UNKNOWN;
    v.market_mut()[0] = Some(b);
    rest_buy(&mut v, 3.0);
    // unknown_size_qty (1 contract by default) ahead; a size change is ignored.
    let mut b2 = b;
    b2.last_seq = 3;
    v.market_mut()[0] = Some(b2);
    poll(&mut v, 1);
    assert_eq!(sold_at_bid(&mut v, 2.0, 2), 1.0);
}

#[test]
fn an_order_queued_behind_an_assumed_size_moves_up_when_its_level_shows_less() {
    // A buy at 99.0, below the bid, with no depth shown: unknown_size_qty (1) assumed ahead.
    let mut v = venue(QueueModel::RiskAverse);
    let mut o: HedgeOrder = common::ioc_order(7, PERP, Side::Buy, 3.0, 99.0);
    o.tif = TimeInForce::Gtc as u8;
    v.submit(&o, 0);
    assert_eq!(poll(&mut v, 0)[0].kind, ExecKind::Ack);
    // The book now shows its level: 0.5 there, so at most 0.5 ahead.
    let mut b = book(2, 5.0);
    b.valid |= LastValue::HAS_DEPTH;
    b.bid_levels = 2;
    b.bid_depth[0] = [99.5, 5.0];
    b.bid_depth[1] = [99.0, 0.5];
    v.market_mut()[0] = Some(b);
    poll(&mut v, 1);
    let out = trade(&mut v, (99.0, 1.5, Some(Side::Sell)), 2);
    let filled: f64 = out
        .iter()
        .filter(|r| matches!(r.kind, ExecKind::Fill | ExecKind::PartialFill))
        .map(|r| r.qty)
        .sum();
    assert_eq!(filled, 1.0, "0.5 ahead, 1 for us");
}
