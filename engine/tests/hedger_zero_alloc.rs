//! The hot path allocates nothing: 1,000,000+ market events (plus option trades, fills,
//! cancels, rejects and ring laps) through `HedgerCore::poll` and the no-store housekeeping,
//! under `shm_layout::alloc_count`, which counts only this thread's allocations (a process-wide
//! count also saw the test harness's threads and failed now and then on a loaded machine).

mod hedger_common;

use engine::hedger::Housekeeping;
use engine::policy::{ExecConfig, ExecStyle, HedgeReason, PolicyConfig};
use hedger_common::*;
use shm_layout::alloc_count::{CountingAlloc, Region};
use shm_layout::{ExecEvent, ExecKind, Liquidity, MarketEvent, OrderAction, Side, TimeInForce};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const EVENTS: usize = 1_000_000;

#[test]
fn one_million_events_through_the_loop_allocate_nothing() {
    // The fixed band, and the cost-aware band that reads the hedge book's depth from the
    // last-value table and walks it on every decision.
    drive(fixed_policy(0.5), false);
    drive(cost_aware_policy(0.05, 3.0), true);
    // Passive then cross: GTC orders rest, are cancelled and replaced as the touch moves,
    // are re-decided as client flow moves delta (withdrawn, resized), cross after a 1 ms
    // timeout; the test's gateway answers cancels with `Cancelled` or with a fill that raced
    // the cancel.
    let passive = PolicyConfig {
        exec: ExecConfig {
            style: ExecStyle::Passive,
            passive_timeout_ns: 1_000_000,
            cross_band: 4.0,
            ..ExecConfig::default()
        },
        ..fixed_policy(0.5)
    };
    drive(passive, false);
}

fn drive(policy: PolicyConfig, depth: bool) {
    let mut r = rig(policy, open_limits());
    r.seed_last_values(depth);
    r.warm();
    // Everything the loop will read is allocated up front.
    let t0 = shm_layout::clock::now_ns();
    let mut events = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS {
        let x = (i as f64 * 0.001).sin() * 300.0;
        let ts = t0 + i as u64;
        let e = match i % 8 {
            0 | 4 => MarketEvent::underlying_price(BTC, 0, ts, 10_000.0 + x),
            1 | 5 => MarketEvent::quote(
                PERP,
                0,
                ts,
                10_000.0 + x - 0.5,
                1e5,
                10_000.0 + x + 0.5,
                1e5,
            ),
            2 => MarketEvent::option_mark(CALL, 0, ts, 0.05, 0.8 + x * 1e-4, 10_000.0 + x),
            3 => MarketEvent::option_mark(PUT, 0, ts, 0.03, 0.8, 10_000.0 + x),
            6 if i % 1000 == 6 => MarketEvent::quote(PERP, 0, ts, f64::NAN, 1.0, 1.0, 1.0),
            6 if i % 1000 == 14 => MarketEvent::option_mark(EXPIRED, 0, ts, 0.01, 0.8, 10_000.0),
            _ => MarketEvent::underlying_price(ETH, 0, ts, 500.0),
        };
        events.push(e);
    }
    r.md.events = events;
    r.md.next = 0;
    r.execs.buf.reserve(EVENTS);
    let mut hk = Housekeeping::new(None, None, 1_000_000, 100_000, u64::MAX, r.now);
    let mut exec_id = r.next_exec_id;

    let region = Region::start();
    let started = std::time::Instant::now();
    let mut polls = 0u64;
    let mut laps = 0u64;
    let mut resting_qty = 0.0;
    while r.md.next < r.md.events.len() {
        let now = shm_layout::clock::now_ns();
        let work = r.core.poll(
            &mut r.md,
            &mut r.execs,
            &mut r.orders,
            &r.ctl,
            now,
            &MonotonicClock,
        );
        polls += 1;
        // The test plays the gateway: fill, partially fill + cancel, or reject each order.
        if let Some(mut o) = r.orders.buf.pop_front() {
            let side = o.side().unwrap();
            let cancel = o.action() == Ok(OrderAction::Cancel);
            if cancel {
                // The quantity resting is what the core sent (no partial fills of GTCs here).
                o.qty = resting_qty;
            } else if o.tif() == Ok(TimeInForce::Gtc) {
                // A passive order rests until the core cancels it.
                resting_qty = o.qty;
                continue;
            }
            let mut push = |kind: ExecKind, qty: f64, leaves: f64| {
                r.execs.buf.push(ExecEvent {
                    exec_id,
                    client_order_id: o.client_order_id,
                    instrument_id: o.instrument_id,
                    kind: kind as u8,
                    side: side as u8,
                    liquidity: Liquidity::Taker as u8,
                    reject_reason: if kind == ExecKind::Rejected { 7 } else { 0 },
                    qty,
                    price: o.limit_px,
                    fee: 0.0,
                    leaves_qty: leaves,
                    ts_ns: now,
                });
                exec_id += 1;
            };
            match o.client_order_id % 4 {
                _ if cancel && polls.is_multiple_of(2) => push(ExecKind::Cancelled, 0.0, 0.0),
                _ if cancel => push(ExecKind::Fill, o.qty, 0.0),
                0 => {
                    let half = (o.qty * 0.5).floor();
                    push(ExecKind::PartialFill, half, o.qty - half);
                    push(ExecKind::Cancelled, 0.0, 0.0);
                }
                1 => push(ExecKind::Rejected, 0.0, 0.0),
                _ => push(ExecKind::Fill, o.qty, 0.0),
            }
        }
        // Client option flow: alternately buys and sells calls.
        if polls.is_multiple_of(997) {
            r.execs.buf.push(ExecEvent {
                exec_id,
                client_order_id: 0,
                instrument_id: CALL,
                kind: ExecKind::OptionTrade as u8,
                side: if polls.is_multiple_of(2) {
                    Side::Sell
                } else {
                    Side::Buy
                } as u8,
                liquidity: 0,
                reject_reason: 0,
                qty: 5.0,
                price: 0.05,
                fee: 0.0,
                leaves_qty: 0.0,
                ts_ns: now,
            });
            exec_id += 1;
        }
        // A lap while events remain: the next poll reads it.
        if polls.is_multiple_of(200_000) && r.md.next < r.md.events.len() {
            r.md.lap = Some(1234);
            laps += 1;
        }
        if work == 0 || polls.is_multiple_of(256) {
            hk.run(&mut r.core, &mut r.execs, &mut r.orders, now)
                .unwrap();
        }
    }
    let stats = region.change();
    let elapsed = started.elapsed();
    let l = &r.core.latency;
    println!(
        "{:.0} ns per poll (incl. the test's gateway); read->decision p50 {} ns p99 {} ns; decision->publish p50 {} ns",
        elapsed.as_nanos() as f64 / polls as f64,
        l.read_to_decision.value_at_quantile(0.5),
        l.read_to_decision.value_at_quantile(0.99),
        l.decision_to_publish.value_at_quantile(0.5)
    );
    let s = r.core.stats;
    println!("{polls} polls, {s:?}, alloc stats {stats:?}");
    let u = &r.core.und[0];
    println!(
        "holds {:?} held {} limits {:?} net {} opt {} pos {} infl {}",
        u.holds,
        u.held,
        u.limits.counters,
        u.net_delta,
        u.option_delta,
        u.hedge_position,
        u.inflight_qty
    );
    assert!(s.md_events >= EVENTS as u64, "{s:?}");
    if policy.exec.style == ExecStyle::Passive {
        let e = &r.core.und[0].exec;
        println!("passive: {e:?}");
        assert!(
            e.cancels_sent > 100 && e.sent_by_reason[HedgeReason::Passive.index()] > 100,
            "{e:?}"
        );
        assert!(e.fill_raced_cancel > 10, "{e:?}");
        // The client flow re-decided resting orders: withdrawn and resized, allocation-free.
        assert!(
            e.cancels_by_reason[HedgeReason::Withdraw.index()] > 10
                && e.cancels_by_reason[HedgeReason::Resize.index()] > 10,
            "{e:?}"
        );
    }
    assert!(s.orders_sent > 1_000, "the loop really hedged: {s:?}");
    assert!(s.orders_filled > 100 && s.orders_cancelled > 100, "{s:?}");
    assert!(s.orders_rejected > 100 || policy.exec.style == ExecStyle::Passive);
    assert!(s.option_trades > 100);
    // Every lap injected was seen. How many there are depends on the polls the events take,
    // which the real clock's decisions move (5 on an idle machine; a parallel build once
    // made it another number and this assertion failed when it said 5).
    assert!(laps >= 4, "{laps} laps");
    assert_eq!(s.md_lapped, laps);
    assert!(s.md_rejected.iter().sum::<u64>() > 1_000);
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "the hot path allocated: {stats:?}"
    );
}
