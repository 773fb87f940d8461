//! The loop end to end on in-process queues: every policy and every limit moves its counter,
//! bad market data is rejected and counted while the loop goes on, in-flight quantity is never
//! hedged twice and is released by rejects, partial fills and cancels.

mod hedger_common;

use engine::hedger::state::{StateStore, StateWriter};
use engine::hedger::Housekeeping;
use engine::limits::{LimitBreach, LimitsConfig, TradingMode};
use engine::policy::{BandRule, PolicyConfig};
use hedger_common::*;
use shm_layout::{ExecKind, MarketEvent, Side};

/// Short 10 calls: option delta about -5 BTC (premium-adjusted, coin).
fn short_calls(r: &mut Rig) {
    r.warm();
    r.client_buys_calls(10.0);
}

#[test]
fn fixed_band_hedges_once_and_the_fill_flattens_net_delta() {
    let mut r = rig(fixed_policy(0.5), open_limits());
    short_calls(&mut r);
    let u = &r.core.und[0];
    assert!(u.option_delta < -3.0, "{}", u.option_delta);
    assert!(
        u.gamma < 0.0 && u.vega < 0.0,
        "short calls: {} {}",
        u.gamma,
        u.vega
    );
    assert_eq!(u.hedges_band, 1);
    let o = r.pop_order().expect("one hedge");
    assert_eq!(o.side().unwrap(), Side::Buy);
    // Inverse perp, 10 USD per contract: |delta| * 10000 / 10 contracts, whole lots.
    let expect = (-r.core.und[0].option_delta * 1000.0).floor();
    assert!((o.qty - expect).abs() <= 1.0, "{} vs {expect}", o.qty);
    assert!(o.limit_px >= 10_000.5 && o.limit_px <= 10_000.0 * 1.005);
    assert!(o.hedger_read_ts_ns <= o.decision_ts_ns && o.decision_ts_ns <= o.publish_ts_ns);
    // In flight counts toward net delta: more market data does not hedge twice.
    r.feed(&[index(10_001.0), quote(9_999.5, 10_000.5), index(10_000.0)]);
    assert!(r.pop_order().is_none(), "hedged twice");
    assert!(r.core.und[0].net_delta.abs() < 0.01);
    r.fill(&o);
    assert_eq!(r.core.und[0].hedge_position, o.qty);
    assert_eq!(r.core.und[0].inflight_qty, 0.0);
    assert!(r.core.und[0].net_delta.abs() < 0.01);
    assert_eq!(r.core.stats.orders_filled, 1);
}

#[test]
fn rejects_partial_fills_and_cancels_release_in_flight_quantity() {
    let mut r = rig(fixed_policy(0.5), open_limits());
    short_calls(&mut r);
    let o = r.pop_order().unwrap();
    r.reject(&o);
    assert_eq!(r.core.stats.orders_rejected, 1);
    assert_eq!(r.core.und[0].inflight_qty, 0.0);
    r.feed(&[index(10_000.0)]);
    let o2 = r.pop_order().expect("re-hedged after the reject");
    assert!(o2.client_order_id > o.client_order_id);
    let half = (o2.qty / 2.0).floor();
    r.exec(
        ExecKind::PartialFill,
        o2.client_order_id,
        PERP,
        Side::Buy,
        half,
        o2.limit_px,
        o2.qty - half,
    );
    assert_eq!(r.core.und[0].inflight_qty, o2.qty - half);
    r.feed(&[index(10_000.0)]);
    assert!(r.pop_order().is_none());
    r.exec(
        ExecKind::Cancelled,
        o2.client_order_id,
        PERP,
        Side::Buy,
        0.0,
        0.0,
        0.0,
    );
    assert_eq!(r.core.und[0].inflight_qty, 0.0);
    assert_eq!(r.core.und[0].hedge_position, half);
    r.feed(&[index(10_000.0)]);
    let o3 = r.pop_order().expect("hedges the cancelled remainder");
    assert!((o3.qty - (o2.qty - half)).abs() <= 1.0);
}

#[test]
fn duplicate_exec_ids_are_skipped() {
    let mut r = rig(fixed_policy(0.5), open_limits());
    short_calls(&mut r);
    let before = r.core.option_position(CALL);
    r.next_exec_id = 1; // replay the same id
    r.client_buys_calls(10.0);
    assert_eq!(r.core.option_position(CALL), before);
    assert_eq!(r.core.stats.execs_duplicate, 1);
}

#[test]
fn whalley_wilmott_band_comes_from_gamma_and_trades_to_the_edge() {
    let p = PolicyConfig {
        rule: BandRule::WhalleyWilmott {
            cost: 0.0005,
            risk_aversion: 1e-3,
        },
        min_band: 0.01,
        max_band: 100.0,
        ..fixed_policy(1.0)
    };
    let mut r = rig(p, open_limits());
    short_calls(&mut r);
    let u = &r.core.und[0];
    assert!(u.band > 0.01 && u.band < 5.0, "band {}", u.band);
    assert_eq!(u.hedges_band, 1);
    // Trades to the edge: net delta after the order is -band.
    assert!(
        (u.net_delta + u.band).abs() < 0.01,
        "net {} band {}",
        u.net_delta,
        u.band
    );
}

#[test]
fn cost_aware_band_widens_when_the_market_is_stressed() {
    let p = PolicyConfig {
        fast_alpha: 0.5,
        slow_alpha: 0.01,
        ..cost_aware_policy(0.01, 100.0)
    };
    let mut r = rig(p, open_limits());
    short_calls(&mut r);
    let calm_band = r.core.und[0].band;
    assert_eq!(r.core.und[0].hedges_band, 1);
    let o = r.pop_order().unwrap();
    r.fill(&o);
    // Stress: wide, jumpy quotes.
    for i in 0..20 {
        let m = if i % 2 == 0 { 10_300.0 } else { 9_700.0 };
        r.feed(&[quote(m - 20.0, m + 20.0)]);
    }
    r.feed(&[quote(9_980.0, 10_020.0), index(10_000.0)]);
    let stressed = r.core.und[0].band;
    assert!(
        stressed > calm_band * 1.5,
        "calm {calm_band} stressed {stressed}"
    );
}

#[test]
fn safety_rehedge_fires_after_max_interval_and_min_interval_holds() {
    let mut p = fixed_policy(50.0);
    p.max_interval_ns = 60_000_000_000;
    p.min_interval_ns = 0;
    let mut r = rig(p, open_limits());
    short_calls(&mut r);
    assert!(r.pop_order().is_none(), "inside a 50 BTC band");
    let now = shm_layout::clock::now_ns();
    r.core.on_timer(&mut r.orders, now, &MonotonicClock);
    assert_eq!(r.core.und[0].hedges_safety, 0, "not due yet");
    // The timer is driven by the clock it is given: a minute later.
    r.core
        .on_timer(&mut r.orders, now + 61_000_000_000, &MonotonicClock);
    assert_eq!(r.core.und[0].hedges_safety, 1);
    let o = r.pop_order().unwrap();
    r.fill(&o);

    let mut p = fixed_policy(0.5);
    p.min_interval_ns = 60_000_000_000;
    let mut r = rig(p, open_limits());
    short_calls(&mut r);
    let o = r.pop_order().unwrap();
    r.fill(&o);
    r.client_buys_calls(10.0);
    assert!(r.pop_order().is_none());
    assert!(r.core.und[0].holds[1] >= 1, "min_interval hold counted");
}

fn breach(limits: LimitsConfig, setup: impl FnOnce(&mut Rig), b: LimitBreach) {
    let mut r = rig(fixed_policy(0.5), limits);
    r.warm();
    setup(&mut r);
    r.client_buys_calls(10.0);
    assert!(r.pop_order().is_none(), "{} let an order through", b.name());
    assert!(
        r.core.limit_rejects(0, b) >= 1,
        "{} did not count",
        b.name()
    );
    for other in LimitBreach::ALL {
        if other != b {
            assert_eq!(
                r.core.limit_rejects(0, other),
                0,
                "{} moved for {}",
                other.name(),
                b.name()
            );
        }
    }
}

#[test]
fn every_limit_blocks_and_counts_through_the_loop() {
    let l = open_limits();
    breach(
        LimitsConfig {
            max_order_qty: 100.0,
            ..l
        },
        |_| {},
        LimitBreach::OrderQty,
    );
    breach(
        LimitsConfig {
            max_order_notional: 1_000.0,
            ..l
        },
        |_| {},
        LimitBreach::OrderNotional,
    );
    breach(
        LimitsConfig {
            max_position: 100.0,
            ..l
        },
        |_| {},
        LimitBreach::Position,
    );
    breach(
        LimitsConfig {
            max_daily_notional: 1_000.0,
            ..l
        },
        |_| {},
        LimitBreach::DailyNotional,
    );
    breach(l, |r| r.ctl.set_kill(true), LimitBreach::KillSwitch);
    breach(
        l,
        |r| r.ctl.set_mode(BTC, TradingMode::Halted),
        LimitBreach::Halted,
    );
    breach(
        l,
        |r| r.ctl.set_mode(BTC, TradingMode::ReduceOnly),
        LimitBreach::ReduceOnly,
    );
    breach(
        l,
        |r| r.core.gateway_alive = false,
        LimitBreach::GatewayDown,
    );
    breach(
        LimitsConfig {
            max_data_age_ns: 1_000_000,
            ..l
        },
        |_| std::thread::sleep(std::time::Duration::from_millis(3)),
        LimitBreach::StaleData,
    );
    breach(
        LimitsConfig {
            max_rejects: 0,
            ..l
        },
        |r| r.exec(ExecKind::Rejected, 77, PERP, Side::Buy, 0.0, 0.0, 0.0),
        LimitBreach::RejectRate,
    );
    // Rate: a burst of one; the second order within the same instant is refused.
    let mut r = rig(
        fixed_policy(0.5),
        LimitsConfig {
            max_orders_per_sec: 0.001,
            order_burst: 1.0,
            ..l
        },
    );
    short_calls(&mut r);
    let o = r.pop_order().unwrap();
    r.reject(&o);
    r.feed(&[index(10_000.0)]);
    assert!(r.pop_order().is_none());
    assert!(r.core.limit_rejects(0, LimitBreach::Rate) >= 1);
}

#[test]
fn bad_market_data_is_rejected_counted_and_the_loop_goes_on() {
    let mut r = rig(fixed_policy(0.5), open_limits());
    r.warm();
    let t = shm_layout::clock::now_ns();
    let mut bad_kind = index(1.0);
    bad_kind.kind = 99;
    r.feed(&[
        MarketEvent::quote(PERP, 0, t, f64::NAN, 1.0, 10_000.0, 1.0),
        MarketEvent::underlying_price(BTC, 0, t, 0.0),
        MarketEvent::underlying_price(BTC, 0, t, -5.0),
        MarketEvent::quote(PERP, 0, t, 10_001.0, 1.0, 10_000.0, 1.0),
        MarketEvent::underlying_price(99, 0, t, 10_000.0),
        mark(EXPIRED, 0.8, 10_000.0),
        MarketEvent::option_mark(CALL, 0, t, 0.05, f64::INFINITY, 10_000.0),
        bad_kind,
    ]);
    let s = r.core.stats;
    // [nan, zero, negative, crossed, unknown_instrument, expired_option, invalid]
    assert_eq!(s.md_rejected, [2, 1, 1, 1, 1, 1, 1], "{s:?}");
    // State untouched by the bad events, and the loop still hedges.
    assert_eq!(r.core.und[0].index_px, 10_000.0);
    assert_eq!(r.core.und[0].book.bid_px, 9_999.5);
    r.client_buys_calls(10.0);
    assert!(r.pop_order().is_some());
}

#[test]
fn lapped_reader_rebuilds_from_the_last_value_table_and_resumes() {
    let mut r = rig(fixed_policy(0.5), open_limits());
    r.warm();
    for (i, mut e) in [index(12_000.0), quote(11_999.5, 12_000.5)]
        .into_iter()
        .enumerate()
    {
        e.seq = 6 + i as u64;
        r.lv(e.instrument_id, &e);
    }
    r.md.lap = Some(500);
    r.step();
    let s = r.core.stats;
    assert_eq!((s.md_lapped, s.md_lost, s.rebuilds), (1, 500, 1));
    assert_eq!(r.core.und[0].index_px, 12_000.0);
    assert_eq!(r.core.und[0].book.ask_px, 12_000.5);
    assert!(!r.core.und[0].rebuilding);
    // Events still in the ring but older than the rebuilt values are skipped.
    let mut old = index(9_000.0);
    old.seq = 5;
    let mut newer = index(12_100.0);
    newer.seq = 8;
    r.feed(&[old]);
    assert_eq!(r.core.und[0].index_px, 12_000.0);
    assert_eq!(r.core.stats.md_older_than_rebuild, 1);
    r.feed(&[newer]);
    assert_eq!(r.core.und[0].index_px, 12_100.0);
    r.client_buys_calls(10.0);
    assert!(r.pop_order().is_some());
}

#[test]
fn an_event_published_while_the_rebuild_read_the_table_is_applied() {
    // The rebuild reads the index's entry at seq 6; the feed then publishes an index at seq 7
    // and a quote at seq 9, and the rebuild reads the perpetual's entry at seq 9. The index at
    // seq 7 is below the highest entry read (9) but newer than the index the core holds.
    let mut r = rig(fixed_policy(0.5), open_limits());
    r.warm();
    let mut idx = index(12_000.0);
    idx.seq = 6;
    r.lv(BTC, &idx);
    let mut q = quote(12_049.5, 12_050.5);
    q.seq = 9;
    r.lv(PERP, &q);
    r.md.lap = Some(500);
    r.step();
    assert_eq!(r.core.und[0].index_px, 12_000.0);
    let mut during = index(12_050.0);
    during.seq = 7;
    let mut older = index(11_000.0);
    older.seq = 5;
    let mut old_quote = quote(11_999.5, 12_000.5);
    old_quote.seq = 8;
    r.feed(&[older, during, old_quote]);
    assert_eq!(r.core.und[0].index_px, 12_050.0, "seq 7 applied");
    assert_eq!(
        r.core.und[0].book.ask_px, 12_050.5,
        "seq 8 older than the quote read"
    );
    assert_eq!(r.core.stats.md_older_than_rebuild, 2);
}

#[test]
fn full_orders_ring_stops_hedging_and_alarms_until_drained() {
    let mut r = rig(fixed_policy(0.5), open_limits());
    r.orders = engine::hedger::io::MemOrders::new(1);
    short_calls(&mut r);
    let o = r.orders.buf[0];
    r.reject(&o);
    r.feed(&[index(10_000.0)]);
    assert_eq!(r.core.stats.orders_ring_full, 1);
    assert!(r.core.ring_blocked());
    r.feed(&[index(10_000.0), index(10_000.0)]);
    assert_eq!(r.core.stats.orders_ring_full, 1, "stopped: no retry storm");
    assert!(r.core.und[0].held >= 2);
    r.orders.buf.clear();
    let now = shm_layout::clock::now_ns();
    r.core.on_timer(&mut r.orders, now, &MonotonicClock);
    assert!(!r.core.ring_blocked());
    assert_eq!(r.orders.buf.len(), 1, "hedging resumed");
}

#[test]
fn restart_restores_positions_and_reconciles_orders_in_flight_before_hedging() {
    let mut r = rig(fixed_policy(0.5), open_limits());
    short_calls(&mut r);
    let o = r.pop_order().unwrap();
    let st = r.core.persist_state();
    assert_eq!(st.inflight.len(), 1);

    let mut r2 = rig(fixed_policy(0.5), open_limits());
    r2.next_exec_id = r.next_exec_id;
    r2.core
        .restore(&st, shm_layout::clock::now_ns(), 5_000_000)
        .unwrap();
    assert!(r2.core.epoch() > r.core.epoch());
    assert_eq!(r2.core.option_position(CALL), -10.0);
    assert!(r2.core.reconciling());
    r2.warm();
    assert!(r2.pop_order().is_none(), "no hedging while reconciling");
    // The previous run's order fills: position and in flight settle from the exec stream.
    r2.fill(&o);
    assert_eq!(r2.core.und[0].hedge_position, o.qty);
    assert_eq!(r2.core.inflight_count(), 0);
    std::thread::sleep(std::time::Duration::from_millis(6));
    let now = shm_layout::clock::now_ns();
    r2.core.on_timer(&mut r2.orders, now, &MonotonicClock);
    assert!(!r2.core.reconciling());
    r2.client_buys_calls(10.0);
    let o2 = r2.pop_order().expect("hedging resumed");
    assert!(
        o2.client_order_id > o.client_order_id,
        "ids increase across restarts"
    );
}

/// A warm rig (band 50, open limits) whose housekeeping snapshots into `dir` through the
/// state writer thread, every `interval_ns` while execs are pending.
fn rig_with_state_writer(dir: &std::path::Path, interval_ns: u64) -> (Rig, Housekeeping) {
    let mut r = rig(fixed_policy(50.0), open_limits());
    let store = StateStore::open(dir, false).unwrap();
    let writer = StateWriter::start(store, r.core.option_symbols()).unwrap();
    let hk = Housekeeping::new(Some(writer), None, interval_ns, u64::MAX, u64::MAX, r.now);
    r.warm();
    (r, hk)
}

/// One housekeeping pass (snapshot if due, commit what is written) at the current time;
/// the snapshots submitted so far.
fn run_housekeeping(r: &mut Rig, hk: &mut Housekeeping) -> u64 {
    hk.run(
        &mut r.core,
        &mut r.execs,
        &mut r.orders,
        shm_layout::clock::now_ns(),
    )
    .unwrap();
    hk.snapshots
}

/// The final snapshot, written synchronously, and every exec committed.
fn finish_housekeeping(r: &mut Rig, hk: &mut Housekeeping) {
    hk.finish(&mut r.core, &mut r.execs, shm_layout::clock::now_ns())
        .unwrap();
}

/// On the default 65,536-slot execs ring a snapshot is forced by 8,192 uncommitted reports,
/// not by 512 (each one rewrites the whole book); a small ring still forces at 512.
#[test]
fn a_snapshot_is_forced_by_an_eighth_of_the_execs_ring() {
    use engine::hedger::force_snapshot_execs;
    assert_eq!(force_snapshot_execs(65_536), 8_192);
    assert_eq!(force_snapshot_execs(4_096), 512);
    assert_eq!(force_snapshot_execs(512), 512);
    let dir = tempfile::tempdir().unwrap();
    // No interval: only the count forces a snapshot.
    let (mut r, hk) = rig_with_state_writer(dir.path(), u64::MAX);
    let mut hk = hk.for_execs_capacity(65_536);
    for i in 0..8_191 {
        if i % 2 == 0 {
            r.client_buys_calls(0.1);
        } else {
            r.client_sells_calls(0.1);
        }
    }
    assert_eq!(r.core.uncommitted_execs(), 8_191);
    assert_eq!(
        run_housekeeping(&mut r, &mut hk),
        0,
        "512, 4,096 or 8,191 reports force nothing"
    );
    r.client_buys_calls(0.1);
    assert_eq!(
        run_housekeeping(&mut r, &mut hk),
        1,
        "the 8,192nd report forces the snapshot"
    );
    finish_housekeeping(&mut r, &mut hk);
}

#[test]
fn execs_are_committed_only_once_the_snapshot_covering_them_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (mut r, mut hk) = rig_with_state_writer(dir.path(), 0);
    r.client_buys_calls(3.0);
    assert_eq!((r.execs.head, r.core.uncommitted_execs()), (0, 1));
    let t0 = std::time::Instant::now();
    while r.execs.head == 0 {
        run_housekeeping(&mut r, &mut hk);
        assert!(t0.elapsed().as_secs() < 5, "never committed");
    }
    assert_eq!(r.execs.head, 1);
    let st = StateStore::open(dir.path(), false)
        .unwrap()
        .load()
        .unwrap()
        .expect("written before the commit");
    assert_eq!(st.options, vec![("BTC-C-10000".to_string(), -3.0)]);
    assert_eq!(st.last_exec_id, 1);
    finish_housekeeping(&mut r, &mut hk);
}

/// The loop sends the state writer only the options changed since the last snapshot; every
/// file the writer saves must still be the whole state, byte for byte what
/// `PersistState::encode` makes of `persist_state()`: through trades that open, change and
/// close positions, a restore (every option replaced), the settlement of an expiry and a
/// late trade in a settled option (its settlement record).
#[test]
fn every_snapshot_saved_is_the_whole_state_though_the_loop_sends_only_changes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut r, mut hk) = rig_with_state_writer(dir.path(), 0);
    let saved_equals_state = |r: &mut Rig, hk: &mut Housekeeping, step: &str| {
        hk.snapshot(&mut r.core, &mut r.execs, shm_layout::clock::now_ns())
            .unwrap();
        let w = hk.writer.as_ref().unwrap();
        let t0 = std::time::Instant::now();
        while w.written() < hk.snapshots {
            assert!(t0.elapsed().as_secs() < 5, "{step}: snapshot never written");
            std::thread::yield_now();
        }
        let mut want = String::new();
        r.core.persist_state().encode(&mut want);
        let got = std::fs::read_to_string(dir.path().join("state")).unwrap();
        assert_eq!(got, want, "{step}");
    };
    saved_equals_state(&mut r, &mut hk, "first snapshot");
    r.client_buys_calls(3.0);
    saved_equals_state(&mut r, &mut hk, "a call opened");
    r.exec(ExecKind::OptionTrade, 0, PUT, Side::Buy, 2.0, 0.01, 0.0);
    r.client_buys_calls(1.5);
    saved_equals_state(&mut r, &mut hk, "a put opened, the call changed");
    r.client_sells_calls(4.5);
    saved_equals_state(&mut r, &mut hk, "the call closed");
    let mut other = r.core.persist_state();
    other.options = vec![("BTC-C-10000".into(), 7.0)];
    let now = shm_layout::clock::now_ns();
    r.core.restore(&other, now, 0).unwrap();
    saved_equals_state(&mut r, &mut hk, "a restore replaced the book");
    assert!(r.core.persist_state().settled.is_empty());
    r.exec(ExecKind::OptionTrade, 0, PUT, Side::Sell, 0.5, 0.01, 0.0);
    saved_equals_state(&mut r, &mut hk, "a trade after the restore");
    // Both options expire 30 days out: settle them as the loop would then.
    r.core.settle_expired(r.wall + 31 * DAY_NS);
    assert_eq!(r.core.persist_state().settled.len(), 2, "both settled");
    saved_equals_state(&mut r, &mut hk, "an expiry settled the positions");
    r.exec(ExecKind::OptionTrade, 0, PUT, Side::Sell, 1.0, 0.01, 0.0);
    saved_equals_state(&mut r, &mut hk, "a late trade in a settled option");
    finish_housekeeping(&mut r, &mut hk);
}

#[test]
fn reconciliation_gives_up_on_orders_that_never_report() {
    let mut r = rig(fixed_policy(0.5), open_limits());
    short_calls(&mut r);
    assert!(r.pop_order().is_some());
    let st = r.core.persist_state();
    let mut r2 = rig(fixed_policy(0.5), open_limits());
    let now = shm_layout::clock::now_ns();
    r2.core.restore(&st, now, 0).unwrap();
    r2.core.set_reconcile_timeout(now, 1_000_000);
    r2.core.on_timer(&mut r2.orders, now, &MonotonicClock);
    assert!(r2.core.reconciling(), "the order is still in flight");
    std::thread::sleep(std::time::Duration::from_millis(2));
    r2.core
        .on_timer(&mut r2.orders, shm_layout::clock::now_ns(), &MonotonicClock);
    assert!(!r2.core.reconciling());
    assert_eq!(r2.core.stats.reconcile_timeouts, 1);
    assert_eq!(r2.core.inflight_count(), 0);
}

#[test]
fn forward_quotes_move_the_options_of_their_expiry() {
    let mut r = rig(fixed_policy(50.0), open_limits());
    short_calls(&mut r);
    assert_eq!(r.core.risk.setup_errors, 0);
    let before = r.core.und[0].option_delta;
    let ignored = r.core.stats.md_ignored;
    r.feed(&[MarketEvent::underlying_price(
        FWD,
        0,
        shm_layout::clock::now_ns(),
        11_000.0,
    )]);
    let after = r.core.und[0].option_delta;
    assert_eq!(
        r.core.stats.md_ignored, ignored,
        "the forward is not ignored"
    );
    assert!(
        after < before - 1.0,
        "short calls lose delta when the forward rallies: {before} -> {after}"
    );
}
