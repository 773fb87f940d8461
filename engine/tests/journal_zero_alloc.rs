//! Recording the session costs the hot path no allocation: 200,000 market events through
//! `HedgerCore::poll` on the recording wrappers (market events, the cost-aware band's
//! depth reads from the last-value table, execs, orders, stage stamps, timers), counted by
//! `shm_layout::alloc_count` on this thread only (the journal's queue is allocated once, at
//! the recorder's start; its writer thread writes from the queue's slots).

mod hedger_common;

use engine::hedger::io::MemOrders;
use engine::hedger::journal::{
    read_session, JournalConfig, Record, RecordKind, Recorder, RecordingClock, RecordingControl,
    RecordingExecs, RecordingMarket, RecordingOrders,
};
use engine::hedger::Housekeeping;
use hedger_common::*;
use shm_layout::alloc_count::{CountingAlloc, Region};
use shm_layout::{ExecEvent, ExecKind, Liquidity, MarketEvent};
use std::cell::RefCell;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const EVENTS: usize = 200_000;

fn events(t0: u64) -> Vec<MarketEvent> {
    (0..EVENTS)
        .map(|i| {
            let x = (i as f64 * 0.001).sin() * 300.0;
            let ts = t0 + i as u64;
            match i % 4 {
                0 => MarketEvent::underlying_price(BTC, 0, ts, 10_000.0 + x),
                1 => MarketEvent::quote(PERP, 0, ts, 1e4 + x - 0.5, 1e5, 1e4 + x + 0.5, 1e5),
                2 => MarketEvent::option_mark(CALL, 0, ts, 0.05, 0.8 + x * 1e-4, 10_000.0 + x),
                _ => MarketEvent::option_mark(PUT, 0, ts, 0.03, 0.8, 10_000.0 + x),
            }
        })
        .collect()
}

#[test]
fn recording_the_loop_allocates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut r = rig(cost_aware_policy(0.05, 3.0), open_limits());
    r.seed_last_values(true);
    r.warm();
    r.client_buys_calls(40.0);
    r.md.events = events(shm_layout::clock::now_ns());
    r.md.next = 0;
    r.execs.buf.reserve(EVENTS);
    let mut recorder = Recorder::start(&JournalConfig {
        dir: tmp.path().join("session"),
        file_max_bytes: 1 << 30,
        files_kept: 2,
        queue_records: 1 << 16,
    })
    .unwrap();
    let tap = RefCell::new(recorder.tap());
    let mut md = RecordingMarket::new(std::mem::take(&mut r.md), &tap);
    let mut execs = RecordingExecs::new(std::mem::take(&mut r.execs), &tap);
    let mut orders =
        RecordingOrders::new(std::mem::replace(&mut r.orders, MemOrders::new(0)), &tap);
    let ctl = RecordingControl::new(std::mem::take(&mut r.ctl), &tap);
    let clock = RecordingClock::new(&tap);
    let mut hk = Housekeeping::new(None, None, 1_000_000, 100_000, u64::MAX, r.now);
    let mut exec_id = r.next_exec_id;
    let core = &mut r.core;

    // Orders sent while warming up, before the recording wrappers.
    let sent_before = core.stats.orders_sent;
    let region = Region::start();
    let mut polls = 0u64;
    while md.inner.next < md.inner.events.len() {
        let now = shm_layout::clock::now_ns();
        tap.borrow_mut().begin_poll(now);
        let work = core.poll(&mut md, &mut execs, &mut orders, &ctl, now, &clock);
        polls += 1;
        // The test plays the gateway: every order filled.
        if let Some(o) = orders.inner.buf.pop_front() {
            execs.inner.buf.push(ExecEvent {
                exec_id,
                client_order_id: o.client_order_id,
                instrument_id: o.instrument_id,
                kind: ExecKind::Fill as u8,
                side: o.side,
                liquidity: Liquidity::Taker as u8,
                reject_reason: 0,
                qty: o.qty,
                price: o.limit_px,
                fee: 0.0,
                leaves_qty: 0.0,
                ts_ns: now,
            });
            exec_id += 1;
        }
        if work == 0 || polls.is_multiple_of(256) {
            let t = &tap;
            hk.run_with(core, &mut execs, &mut orders, now, &clock, |now| {
                t.borrow_mut()
                    .push_driver(Record::new(RecordKind::Timer, 0, now));
            })
            .unwrap();
            // As the live loop: records are published before it could idle.
            tap.borrow_mut().flush();
        }
    }
    let stats = region.change();
    let s = core.stats;
    let dropped = tap.borrow().dropped;
    assert_eq!(
        (stats.allocations, stats.reallocations),
        (0, 0),
        "the recording hot path allocated: {stats:?}"
    );
    assert!(s.md_events >= EVENTS as u64, "{s:?}");
    assert!(s.orders_sent > sent_before, "the loop hedged: {s:?}");
    tap.borrow_mut().flush();
    let written = recorder.finish().unwrap();
    let session = read_session(&tmp.path().join("session")).unwrap();
    assert_eq!(session.records.len() as u64, written);
    let count = |k: RecordKind| {
        session
            .records
            .iter()
            .filter(|x| x.kind() == Some(k))
            .count()
    };
    // Every event, order and depth read is in the journal unless the queue overflowed
    // (counted, and marked by Gap records).
    if dropped == 0 {
        // An iteration that begins with its event records it as `PollMd`, else `Md`.
        assert_eq!(count(RecordKind::Md) + count(RecordKind::PollMd), EVENTS);
        assert_eq!(count(RecordKind::Order) as u64, s.orders_sent - sent_before);
        assert!(
            count(RecordKind::Lv) >= 6 * EVENTS / 4,
            "depth reads recorded"
        );
    } else {
        assert!(count(RecordKind::Gap) > 0, "dropped records leave a gap");
    }
}
