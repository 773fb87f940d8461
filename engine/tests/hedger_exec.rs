//! Execution styles in the live core: a passive order rests in the in-flight table, is
//! replaced when the touch moves away, crosses after its timeout; a fill that races the
//! cancel is applied exactly once, whatever order the venue's answers come in.

mod hedger_common;

use engine::limits::LimitsConfig;
use engine::policy::{BandRule, ExecConfig, ExecStyle, HedgeReason, PolicyConfig, RehedgeTarget};
use hedger_common::*;
use proptest::prelude::*;
use shm_layout::{ExecKind, HedgeOrder, OrderAction, Side, TimeInForce};

fn passive_policy() -> PolicyConfig {
    PolicyConfig {
        exec: ExecConfig {
            style: ExecStyle::Passive,
            passive_timeout_ns: 1_000_000_000,
            // Far: the tests below cross by timeout; the outer band has its own test.
            cross_band: 100.0,
            ..ExecConfig::default()
        },
        ..fixed_policy(0.5)
    }
}

/// A rig with a short call position (delta about -4.5 BTC) and the passive buy it posted.
fn rig_with_passive_buy() -> (Rig, HedgeOrder) {
    rig_with_passive_buy_under(open_limits())
}

/// [`rig_with_passive_buy`] under `limits`.
fn rig_with_passive_buy_under(limits: LimitsConfig) -> (Rig, HedgeOrder) {
    let mut r = rig(passive_policy(), limits);
    r.warm();
    r.client_buys_calls(10.0);
    let o = r.pop_order().expect("a hedge");
    (r, o)
}

/// Runs the timer past the passive timeout of `o`, checks the cancel it sends and answers it;
/// returns the time the timer ran at.
fn cancel_at_the_timeout(r: &mut Rig, o: &HedgeOrder) -> u64 {
    let later = r.now + 2_000_000_000;
    r.timer_at(later);
    let c = r.pop_order().expect("a cancel at the timeout");
    assert_eq!(c.action(), Ok(OrderAction::Cancel));
    r.cancelled(o);
    later
}

/// The next order is the IOC that crosses for the whole of the passive order `o`.
fn expect_cross_of(r: &mut Rig, o: &HedgeOrder) {
    let x = next_order(r, (TimeInForce::Ioc, 10_000.5), HedgeReason::CrossTimeout);
    assert_eq!(x.qty, o.qty);
}

#[test]
fn a_passive_hedge_rests_at_our_touch_and_counts_in_flight() {
    let (r, o) = rig_with_passive_buy();
    assert_eq!(o.side(), Ok(Side::Buy));
    assert_eq!(o.tif(), Ok(TimeInForce::Gtc));
    assert_eq!(o.limit_px, 9_999.5, "at the bid, not the ask");
    assert_eq!(
        r.core.sent_reason(o.client_order_id),
        Some(HedgeReason::Passive)
    );
    let u = &r.core.und[0];
    assert_eq!(u.inflight_qty, o.qty);
    assert!(
        u.net_delta.abs() <= 0.5,
        "in flight counts: {}",
        u.net_delta
    );
    assert_eq!(r.core.inflight_count(), 1);
}

/// The next order `r` sent, checked: its time in force and limit price, and the `reason` it was
/// sent for.
fn next_order(r: &mut Rig, (tif, limit_px): (TimeInForce, f64), reason: HedgeReason) -> HedgeOrder {
    let o = r
        .pop_order()
        .unwrap_or_else(|| panic!("no order sent for {reason:?}"));
    assert_eq!((o.tif(), o.limit_px), (Ok(tif), limit_px), "{reason:?}");
    assert_eq!(r.core.sent_reason(o.client_order_id), Some(reason));
    o
}

#[test]
fn the_touch_moving_away_cancels_and_the_cancel_report_brings_a_new_passive_order() {
    let (mut r, o) = rig_with_passive_buy();
    r.feed(&[quote(10_001.0, 10_002.0)]);
    let c = r.pop_order().expect("a cancel");
    assert_eq!(c.action(), Ok(OrderAction::Cancel));
    assert_eq!(c.client_order_id, o.client_order_id);
    assert!(
        r.pop_order().is_none(),
        "nothing new before the venue answers"
    );
    assert_eq!(
        r.core.und[0].inflight_qty, o.qty,
        "a cancel changes nothing in flight"
    );
    r.cancelled(&o);
    next_order(&mut r, (TimeInForce::Gtc, 10_001.0), HedgeReason::Passive);
    assert_eq!(r.core.inflight_count(), 1);
}

#[test]
fn after_the_timeout_the_passive_order_is_cancelled_then_crossed_with_an_ioc() {
    let (mut r, o) = rig_with_passive_buy();
    cancel_at_the_timeout(&mut r, &o);
    expect_cross_of(&mut r, &o);
}

#[test]
fn a_cross_refused_by_the_rate_limit_is_still_the_cross_when_tokens_return() {
    // One order per 10 s: the passive buy takes the only token, so the crossing IOC after the
    // timeout is refused; when the token is back the hedge still crosses (on main it was
    // posted passive again, on an episode already timed out: cancelled at once, forever).
    let (mut r, o) = rig_with_passive_buy_under(LimitsConfig {
        max_orders_per_sec: 0.1,
        order_burst: 1.0,
        ..open_limits()
    });
    assert_eq!(o.tif(), Ok(TimeInForce::Gtc));
    let later = cancel_at_the_timeout(&mut r, &o);
    assert!(r.pop_order().is_none(), "the cross is refused: no token");
    r.timer_at(later + 1_000_000_000);
    assert!(r.pop_order().is_none(), "still no token");
    r.timer_at(later + 12_000_000_000);
    expect_cross_of(&mut r, &o);
}

#[test]
fn a_breach_beyond_the_outer_band_crosses_at_once_and_a_small_one_rests() {
    let mut p = passive_policy();
    p.exec.cross_band = 5.0;
    let mut r = rig(p, open_limits());
    r.warm();
    // About -4.5 BTC of delta against a 0.5 band: beyond 5 x 0.5.
    r.client_buys_calls(10.0);
    let x = next_order(&mut r, (TimeInForce::Ioc, 10_000.5), HedgeReason::CrossBand);
    r.fill(&x);
    // About -0.9 BTC: outside the band, inside the outer band: rests.
    r.client_buys_calls(2.0);
    let o = r.pop_order().unwrap();
    assert_eq!((o.tif(), o.limit_px), (Ok(TimeInForce::Gtc), 9_999.5));
}

// Re-deciding while a passive order rests: the policy's own decision on the delta the order
// leaves uncovered (here the options' delta: no hedge is filled) withdraws, flips or shrinks it.

/// A passive rig under `p` after the client bought `calls` calls (about -0.45 BTC a call),
/// with the passive buy it posted.
fn passive_buy_after(p: PolicyConfig, calls: f64) -> (Rig, HedgeOrder) {
    let mut r = rig(p, open_limits());
    r.warm();
    r.client_buys_calls(calls);
    let o = r.pop_order().expect("a passive hedge");
    assert_eq!(
        (o.side(), o.tif(), r.core.sent_reason(o.client_order_id)),
        (
            Ok(Side::Buy),
            Ok(TimeInForce::Gtc),
            Some(HedgeReason::Passive)
        )
    );
    (r, o)
}

/// The cancel of `o` that `r` sent, and nothing else.
fn only_a_cancel_of(r: &mut Rig, o: &HedgeOrder) {
    let c = r.pop_order().expect("a cancel");
    assert_eq!(
        (c.action(), c.client_order_id),
        (Ok(OrderAction::Cancel), o.client_order_id)
    );
    assert!(
        r.pop_order().is_none(),
        "nothing new before the venue answers"
    );
}

fn cancels(r: &Rig, why: HedgeReason) -> u64 {
    r.core.und[0].exec.cancels_by_reason[why.index()]
}

#[test]
fn flow_that_brings_the_uncovered_delta_inside_the_band_withdraws_the_passive_order() {
    // Hedge to the band's edge (0.5): about -0.9 BTC, a passive buy of about 0.4.
    let mut p = passive_policy();
    p.rule = BandRule::Fixed {
        band: 0.5,
        target: RehedgeTarget::Edge,
    };
    let (mut r, o) = passive_buy_after(p, 2.0);
    // The client sells one call back: uncovered about -0.45, inside the band, and net delta
    // (with the order) about -0.05, inside it too: no rule but the re-decision sees that the
    // order now trades risk the policy would not trade.
    r.client_sells_calls(1.0);
    let u = &r.core.und[0];
    assert!(u.option_delta.abs() < 0.5, "uncovered {}", u.option_delta);
    assert!(u.net_delta.abs() < 0.5, "net {}", u.net_delta);
    withdrawn(&mut r, &o);
    r.feed(&[quote(9_999.5, 10_000.5)]);
    let later = r.now + 500_000_000;
    r.timer_at(later);
    assert!(r.pop_order().is_none(), "and no new order follows");
    let e = &r.core.und[0].exec;
    assert_eq!(
        (e.passive_coid, e.episode_start_ns, e.cancel_for),
        (0, 0, None)
    );
    assert_eq!(r.core.inflight_count(), 0);
}

/// The resting order `o` is withdrawn (one cancel, reason `withdraw`), the venue answers,
/// and nothing replaces it.
fn withdrawn(r: &mut Rig, o: &HedgeOrder) {
    only_a_cancel_of(r, o);
    assert_eq!(cancels(r, HedgeReason::Withdraw), 1);
    r.cancelled(o);
    assert!(r.pop_order().is_none(), "withdrawn: nothing replaces it");
}

/// Cost-aware (band floored at 0.5, no stress in this quiet market), posted passive, a 10 s
/// holding horizon: within it, the side just hedged is not traded back.
fn cost_aware_passive_policy() -> PolicyConfig {
    PolicyConfig {
        holding_horizon_ns: 10_000_000_000,
        exec: passive_policy().exec,
        ..cost_aware_policy(0.5, 5.0)
    }
}

/// The cost-aware passive buy after the client bought two calls, withdrawn by the client
/// selling one back (uncovered inside the band), after the venue filled `filled` contracts of
/// it; returns the rig once the withdrawal's cancel is answered.
fn cost_aware_buy_withdrawn_after_filling(filled: f64) -> Rig {
    let (mut r, o) = passive_buy_after(cost_aware_passive_policy(), 2.0);
    if filled > 0.0 {
        r.on_order(
            ExecKind::PartialFill,
            &o,
            (filled, o.limit_px, o.qty - filled),
        );
        assert!(r.pop_order().is_none(), "a partial fill changes nothing");
    }
    r.client_sells_calls(1.0);
    withdrawn(&mut r, &o);
    // The client sells 2.5 more calls: long 1.5 calls, about +0.68 BTC uncovered, beyond the
    // 0.5 band and inside twice it, within the holding horizon of the buy.
    r.client_sells_calls(2.5);
    let u = &r.core.und[0];
    assert!(
        u.net_delta > 0.5 && u.net_delta < 1.0,
        "net {} (band {})",
        u.net_delta,
        u.band
    );
    r
}

#[test]
fn a_cost_aware_passive_order_withdrawn_unfilled_does_not_hold_the_other_side() {
    // Nothing was bought: selling now is not trading the buy back. Before, the withdrawn
    // order still counted as the last hedge and held the sell for the horizon.
    let mut r = cost_aware_buy_withdrawn_after_filling(0.0);
    let s = next_order(&mut r, (TimeInForce::Gtc, 10_000.5), HedgeReason::Passive);
    assert_eq!(s.side(), Ok(Side::Sell));
}

#[test]
fn a_cost_aware_passive_order_withdrawn_after_a_fill_still_holds_the_other_side() {
    // Part of it was bought: selling within the horizon would trade that back.
    let mut r = cost_aware_buy_withdrawn_after_filling(50.0);
    assert!(r.pop_order().is_none(), "held");
    // `holds` by `HOLD_LABELS`: the last is the holding horizon.
    let horizon = engine::hedger::core::HOLD_LABELS.len() - 1;
    assert_eq!(
        engine::hedger::core::HOLD_LABELS[horizon],
        "holding_horizon"
    );
    assert!(r.core.und[0].holds[horizon] > 0, "by the holding horizon");
    let later = r.now + 500_000_000;
    r.timer_at(later);
    assert!(r.pop_order().is_none(), "still held half a second later");
}

#[test]
fn flow_that_reverses_beyond_the_band_cancels_and_reposts_on_the_other_side() {
    let (mut r, o) = passive_buy_after(passive_policy(), 2.0);
    // About +0.9 BTC uncovered: beyond the band the other way.
    r.client_sells_calls(4.0);
    assert!(r.core.und[0].option_delta > 0.5);
    only_a_cancel_of(&mut r, &o);
    r.cancelled(&o);
    let s = next_order(&mut r, (TimeInForce::Gtc, 10_000.5), HedgeReason::Passive);
    assert_eq!(s.side(), Ok(Side::Sell));
    let u = &r.core.und[0];
    assert!(u.net_delta.abs() <= 0.5, "net {}", u.net_delta);
}

#[test]
fn a_fill_triggered_hedge_is_flipped_when_the_next_client_trade_reverses_the_delta() {
    // The fill trigger hedges each client trade to zero, inside the band too.
    let mut p = passive_policy();
    p.exec.trigger = engine::policy::Trigger::Fill;
    // About -0.18 BTC: a passive buy of about 0.18.
    let (mut r, o) = passive_buy_after(p, 0.4);
    // About +0.18 uncovered; net delta with the buy about +0.36, inside the 0.5 band: only
    // the re-decision sees that the trigger now wants to sell.
    r.client_sells_calls(0.8);
    let u = &r.core.und[0];
    assert!(
        u.option_delta > 0.0 && u.net_delta < 0.5,
        "{} {}",
        u.option_delta,
        u.net_delta
    );
    only_a_cancel_of(&mut r, &o);
    assert_eq!(cancels(&r, HedgeReason::Resize), 1);
    r.cancelled(&o);
    let s = next_order(&mut r, (TimeInForce::Gtc, 10_000.5), HedgeReason::Passive);
    assert_eq!(s.side(), Ok(Side::Sell));
}

#[test]
fn a_small_change_keeps_the_passive_order_and_a_material_one_replaces_it_smaller() {
    // About -4.5 BTC: a passive buy of about 4.5.
    let (mut r, o) = rig_with_passive_buy();
    // A tenth of a call back: the policy wants about 0.05 BTC less, under a quarter of the
    // band: the order keeps its place in the queue.
    r.client_sells_calls(0.1);
    assert!(r.pop_order().is_none(), "kept");
    r.feed(&[quote(9_999.5, 10_000.5)]);
    assert!(r.pop_order().is_none(), "kept");
    // One call more: about -4.05 uncovered, net delta about +0.45 (inside the band): the
    // order would over-hedge by about 0.45 BTC.
    r.client_sells_calls(1.0);
    let u = &r.core.und[0];
    assert!(u.net_delta.abs() < 0.5, "net {}", u.net_delta);
    let wanted = -u.option_delta;
    only_a_cancel_of(&mut r, &o);
    assert_eq!(cancels(&r, HedgeReason::Resize), 1);
    assert_eq!(cancels(&r, HedgeReason::Withdraw), 0);
    r.cancelled(&o);
    let s = next_order(&mut r, (TimeInForce::Gtc, 9_999.5), HedgeReason::Passive);
    assert_eq!(s.side(), Ok(Side::Buy));
    assert!(s.qty < o.qty, "{} < {}", s.qty, o.qty);
    let dpc = 10.0 / 10_000.0;
    assert!(
        (s.qty * dpc - wanted).abs() < 0.01,
        "{} for {wanted}",
        s.qty * dpc
    );
}

/// How the venue answers a passive order whose cancel is on its way.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// Filled in full before the cancel arrived (no `Cancelled` follows).
    FillRaces,
    /// Part filled, then the rest cancelled.
    PartialThenCancelled(u8),
    /// Cancelled without fills.
    Cancelled,
}

fn answer() -> impl Strategy<Value = (Answer, bool, bool)> {
    let a = prop_oneof![
        Just(Answer::FillRaces),
        (1u8..100).prop_map(Answer::PartialThenCancelled),
        Just(Answer::Cancelled),
    ];
    // Whether the gateway re-delivers the reports (same exec ids) after a restart of its
    // reader, and whether a stray late `Cancelled` for the order follows everything.
    (a, any::<bool>(), any::<bool>())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_fill_racing_a_cancel_is_applied_exactly_once((ans, redeliver, stray) in answer()) {
        let (mut r, o) = rig_with_passive_buy();
        // The touch moves away: the core cancels (to replace).
        r.feed(&[quote(10_001.0, 10_002.0)]);
        let c = r.pop_order().unwrap();
        prop_assert_eq!(c.action(), Ok(OrderAction::Cancel));
        let first = r.execs.buf.len();
        let filled = match ans {
            Answer::FillRaces => {
                r.fill(&o);
                o.qty
            }
            Answer::PartialThenCancelled(pct) => {
                let q = (o.qty * f64::from(pct) / 100.0).floor().max(1.0).min(o.qty - 1.0);
                r.exec(ExecKind::PartialFill, o.client_order_id, PERP, Side::Buy, q, o.limit_px, o.qty - q);
                r.cancelled(&o);
                q
            }
            Answer::Cancelled => {
                r.cancelled(&o);
                0.0
            }
        };
        if redeliver {
            // The same reports again (exec ids not above the last one): skipped.
            let again: Vec<_> = r.execs.buf[first..].to_vec();
            for mut e in again {
                e.exec_id = e.exec_id.min(r.core.last_exec_id());
                r.execs.buf.push(e);
            }
            r.step();
        }
        if stray {
            r.cancelled(&o);
        }
        // The timer decides again (as the live loop's 1 ms timer does).
        let now = r.now;
        r.timer_at(now);
        prop_assert_eq!(r.core.und[0].hedge_position, filled);
        // The resting order is gone from the in-flight table exactly once; what is in
        // flight now is only what the core sent after it (its replacement, at most one).
        let mut later = Vec::new();
        while let Some(n) = r.pop_order() {
            later.push(n);
        }
        prop_assert!(later.len() <= 1, "{later:?}");
        let sent: f64 = later.iter().map(|n| n.qty).sum();
        prop_assert_eq!(r.core.und[0].inflight_qty, sent);
        prop_assert_eq!(r.core.inflight_count(), later.len());
        prop_assert!(!r.core.und[0].exec.passive_live() || later.len() == 1);
        if let Some(n) = later.first() {
            // The replacement covers what the fills did not.
            prop_assert!((n.qty + filled - o.qty).abs() <= 1.0, "{} + {filled} vs {}", n.qty, o.qty);
            prop_assert_eq!(n.limit_px, 10_001.0);
        }
    }
}

/// Slices of 4 children 1 s apart on a fixed 0.5 BTC band, outer band `cross_band` x band.
fn slices_policy(cross_band: f64) -> PolicyConfig {
    PolicyConfig {
        exec: ExecConfig {
            style: ExecStyle::Slices,
            slices: 4,
            slice_interval_ns: 1_000_000_000,
            cross_band,
            ..ExecConfig::default()
        },
        ..fixed_policy(0.5)
    }
}

/// A rig on [`slices_policy`]`(cross_band)` after a client trade (delta about -4.5 BTC) and
/// the fill of the first hedge, sent for `reason` (`Band`: a slice programme's first child),
/// which it returns.
fn rig_after_first_hedge(cross_band: f64, reason: HedgeReason) -> (Rig, HedgeOrder) {
    let mut r = rig(slices_policy(cross_band), open_limits());
    r.warm();
    r.client_buys_calls(10.0);
    let first = r.pop_order().unwrap();
    assert_eq!(r.core.sent_reason(first.client_order_id), Some(reason));
    r.fill(&first);
    (r, first)
}

#[test]
fn slices_send_the_hedge_in_children_spaced_by_the_interval() {
    // Outer band far: this test slices; the outer band has its own tests.
    let (mut r, first) = rig_after_first_hedge(100.0, HedgeReason::Band);
    // Delta is still outside the band, but the next child waits for its time.
    r.feed(&[quote(9_999.5, 10_000.5)]);
    assert!(r.pop_order().is_none());
    let mut t = r.now;
    let mut children = vec![first];
    for _ in 0..3 {
        t += 1_000_000_000;
        r.timer_at(t);
        let c = r.pop_order().expect("the next child at its time");
        assert_eq!(
            r.core.sent_reason(c.client_order_id),
            Some(HedgeReason::Slice)
        );
        assert_eq!(c.tif(), Ok(TimeInForce::Ioc));
        r.fill(&c);
        children.push(c);
    }
    let total: f64 = children.iter().map(|c| c.qty).sum();
    assert!(
        children.iter().all(|c| c.qty <= total / 4.0 + 1.0),
        "{children:?}"
    );
    t += 1_000_000_000;
    r.timer_at(t);
    assert!(r.pop_order().is_none(), "the program ended");
    assert!(
        r.core.und[0].net_delta.abs() <= 0.01,
        "{}",
        r.core.und[0].net_delta
    );
}

#[test]
fn flow_beyond_the_outer_band_ends_a_slice_program_and_crosses_for_the_whole_at_once() {
    // Outer band 10 BTC (band 0.5): the first decision (-4.5 BTC) is sliced.
    let (mut r, _) = rig_after_first_hedge(20.0, HedgeReason::Band);
    // More flow, long before the next child is due: delta about -3.4 - 13.5 BTC.
    r.client_buys_calls(30.0);
    let cross = r
        .pop_order()
        .expect("the cross, without waiting for the child's time");
    assert_eq!(
        r.core.sent_reason(cross.client_order_id),
        Some(HedgeReason::CrossBand)
    );
    assert_eq!(cross.tif(), Ok(TimeInForce::Ioc));
    assert!(r.pop_order().is_none());
    r.fill(&cross);
    let u = &r.core.und[0];
    assert!(
        u.net_delta.abs() <= 0.5,
        "one IOC for the whole: {}",
        u.net_delta
    );
    assert_eq!(u.exec.slices_left, 0, "the program ended");
}

#[test]
fn a_decision_beyond_the_outer_band_is_not_sliced() {
    // Outer band 1 BTC (band 0.5); the flow takes delta to about -4.5 BTC.
    let (r, _) = rig_after_first_hedge(2.0, HedgeReason::CrossBand);
    assert!(r.core.und[0].net_delta.abs() <= 0.5);
    assert_eq!(r.core.und[0].exec.slices_left, 0);
}

#[test]
fn the_fill_trigger_hedges_a_client_trade_inside_the_band() {
    let trig = |trigger| PolicyConfig {
        exec: ExecConfig {
            trigger,
            ..ExecConfig::default()
        },
        ..fixed_policy(5.0)
    };
    // About -0.9 BTC: inside a 5 BTC band.
    let mut band = rig(trig(engine::policy::Trigger::Band), open_limits());
    band.warm();
    band.client_buys_calls(2.0);
    assert!(band.pop_order().is_none());
    let mut fill = rig(trig(engine::policy::Trigger::Fill), open_limits());
    fill.warm();
    fill.client_buys_calls(2.0);
    let o = fill.pop_order().expect("hedged on the fill");
    assert_eq!(
        fill.core.sent_reason(o.client_order_id),
        Some(HedgeReason::Fill)
    );
    fill.fill(&o);
    // A market event alone does not trigger again.
    fill.feed(&[quote(9_999.5, 10_000.5)]);
    assert!(fill.pop_order().is_none());
}

#[test]
fn the_accumulated_and_timer_triggers_fire_inside_the_band() {
    let mut p = fixed_policy(5.0);
    p.exec.trigger = engine::policy::Trigger::Accumulated;
    p.exec.accumulated = 1.5;
    let mut r = rig(p, open_limits());
    r.warm();
    r.client_buys_calls(2.0); // about -0.9: below the threshold
    assert!(r.pop_order().is_none());
    r.client_buys_calls(2.0); // about -1.8: above it
    let o = r.pop_order().expect("accumulated");
    assert_eq!(
        r.core.sent_reason(o.client_order_id),
        Some(HedgeReason::Accumulated)
    );

    let mut p = fixed_policy(5.0);
    p.exec.trigger = engine::policy::Trigger::Timer;
    p.exec.interval_ns = 10_000_000_000;
    let mut r = rig(p, open_limits());
    r.warm();
    r.client_buys_calls(2.0);
    assert!(r.pop_order().is_none());
    let due = r.core.timer_due_ns();
    assert!(due > r.now && due <= r.now + 10_000_000_000, "{due}");
    r.timer_at(due);
    let o = r.pop_order().expect("timer");
    assert_eq!(
        r.core.sent_reason(o.client_order_id),
        Some(HedgeReason::Timer)
    );
}

/// A passive order of the previous run still rests at the venue after a restart: the new run
/// does not know why it was sent, so it cancels it while reconciling (once, re-sent only
/// after `PREV_RUN_CANCEL_RESEND_NS`); the venue's `Cancelled` ends it, and hedging resumes
/// after the quiet period instead of at the reconcile deadline (which would drop the order
/// from the in-flight table while it could still fill).
#[test]
fn a_restart_cancels_the_previous_runs_resting_order_and_resumes_hedging() {
    let (r, o) = rig_with_passive_buy();
    let st = r.core.persist_state();
    let mut r2 = rig(passive_policy(), open_limits());
    r2.next_exec_id = r.next_exec_id;
    let now = r2.now;
    r2.core.restore(&st, now, 1_000_000).unwrap();
    r2.core.set_reconcile_timeout(now, 60_000_000_000);
    r2.warm();
    assert_eq!(r2.core.timer_due_ns(), 0, "the cancel is due at once");
    r2.timer_at(now + 1_000);
    let c = r2
        .pop_order()
        .expect("a cancel of the previous run's order");
    assert_eq!(c.action(), Ok(OrderAction::Cancel));
    assert_eq!(
        (c.client_order_id, c.side()),
        (o.client_order_id, Ok(Side::Buy))
    );
    assert_eq!(r2.core.stats.prev_run_cancels, 1);
    r2.timer_at(now + 2_000);
    assert!(
        r2.pop_order().is_none(),
        "not re-sent before the re-send interval"
    );
    assert!(r2.core.reconciling());
    r2.cancelled(&o);
    assert_eq!(r2.core.inflight_count(), 0);
    r2.timer_at(now + 10_000_000);
    assert!(!r2.core.reconciling());
    let n = r2.pop_order().expect("hedging resumed");
    assert_eq!(n.action(), Ok(OrderAction::New));
    assert!(n.client_order_id > o.client_order_id);
    assert_eq!(r2.core.stats.reconcile_timeouts, 0);
}
