//! Property tests of wrap-around at arbitrary capacities, and torn-read stress tests of the
//! seqlock protocols with real threads.

mod common;

use bytemuck::Zeroable;
use common::shm_dir;
use proptest::prelude::*;
use shm_layout::*;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

fn order(i: u64) -> HedgeOrder {
    let mut o = HedgeOrder::zeroed();
    o.client_order_id = i;
    o.qty = i as f64;
    o
}

#[derive(Debug, Clone)]
enum Op {
    Push(usize),
    Pop(usize),
    PeekCommit(usize, usize),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1usize..40).prop_map(Op::Push),
        (1usize..40).prop_map(Op::Pop),
        (1usize..10, 0usize..12).prop_map(|(p, c)| Op::PeekCommit(p, c)),
        Just(Op::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The SPSC queue behaves like a bounded FIFO at any power-of-two capacity, across many
    /// wraps, batches, peeks and consumer restarts.
    #[test]
    fn spsc_matches_a_bounded_fifo_model(cap_log2 in 0u32..7, ops in prop::collection::vec(op(), 1..80)) {
        let cap = 1usize << cap_log2;
        let d = shm_dir();
        let mut p = SpscProducer::<HedgeOrder>::create(d.path(), "q", cap, StalePolicy::Fail).unwrap();
        let mut c = SpscConsumer::<HedgeOrder>::open(d.path(), "q", OpenOptions::default()).unwrap();
        let mut model: VecDeque<u64> = VecDeque::new();
        let mut next = 0u64;
        for op in ops {
            match op {
                Op::Push(n) => {
                    let batch: Vec<_> = (0..n as u64).map(|k| order(next + k)).collect();
                    let pushed = if n == 1 {
                        usize::from(p.push(batch[0]).is_ok())
                    } else {
                        p.push_batch(&batch)
                    };
                    prop_assert_eq!(pushed, n.min(cap - model.len()));
                    for k in 0..pushed as u64 { model.push_back(next + k); }
                    next += pushed as u64;
                }
                Op::Pop(n) => {
                    let mut out = vec![HedgeOrder::zeroed(); n];
                    let got = if n == 1 {
                        c.pop().map(|o| { out[0] = o; 1 }).unwrap_or(0)
                    } else {
                        c.pop_batch(&mut out)
                    };
                    prop_assert_eq!(got, n.min(model.len()));
                    for o in &out[..got] {
                        prop_assert_eq!(Some(o.client_order_id), model.pop_front());
                        prop_assert_eq!(o, &order(o.client_order_id));
                    }
                }
                Op::PeekCommit(peeks, commits) => {
                    let mut seen = vec![];
                    for _ in 0..peeks {
                        match c.peek() { Some(o) => seen.push(o.client_order_id), None => break }
                    }
                    let expect: Vec<u64> = model.iter().take(peeks).copied().collect();
                    prop_assert_eq!(&seen, &expect);
                    c.commit(commits);
                    for _ in 0..commits.min(seen.len()) { model.pop_front(); }
                    c.rewind();
                }
                Op::Restart => {
                    drop(c);
                    c = SpscConsumer::<HedgeOrder>::open(d.path(), "q", OpenOptions::default()).unwrap();
                }
            }
            prop_assert_eq!(p.len(), model.len());
            prop_assert_eq!(c.len(), model.len());
        }
    }

    /// A broadcast reader at any capacity either gets the message at its cursor or is told
    /// exactly how many it skipped; delivered + lost always equals what was published.
    #[test]
    fn broadcast_accounts_for_every_position(
        cap_log2 in 0u32..7,
        ops in prop::collection::vec((0usize..100, 0usize..100), 1..40),
    ) {
        let cap = 1u64 << cap_log2;
        let d = shm_dir();
        let mut w = BroadcastWriter::<MarketEvent>::create(d.path(), "md", cap as usize, StalePolicy::Fail).unwrap();
        let mut r = BroadcastReader::<MarketEvent>::open(d.path(), "md", OpenOptions::default()).unwrap();
        let (mut delivered, mut lost) = (0u64, 0u64);
        for (writes, polls) in ops {
            for _ in 0..writes {
                let mut e = MarketEvent::underlying_price(1, 0, 0, 1.0);
                e.seq = w.position();
                w.publish(&e);
            }
            let written = w.position();
            for _ in 0..polls {
                let c = r.position();
                match r.poll() {
                    Poll::Message(e) => {
                        prop_assert_eq!(e.seq, c);
                        prop_assert!(c + cap >= written, "overwritten message returned");
                        delivered += 1;
                    }
                    Poll::Lapped { lost: n } => {
                        prop_assert!(c + cap < written, "lapped although intact");
                        prop_assert_eq!(r.position(), c + n);
                        prop_assert!(r.position() <= written);
                        lost += n;
                    }
                    Poll::Empty => prop_assert_eq!(c, written),
                }
            }
            prop_assert_eq!(delivered + lost, r.position());
            prop_assert_eq!(r.lag(), written - r.position());
        }
    }
}

/// Every field of a `LastValue` derived from one number, so a mixed copy is detected.
fn lv(i: u64) -> LastValue {
    let mut v = LastValue::zeroed();
    let x = i as f64;
    v.last_seq = i;
    v.exch_ts_ns = i;
    v.recv_ts_ns = !i;
    v.instrument_id = i as u32;
    v.valid = (i >> 32) as u32;
    for f in [
        &mut v.bid_px,
        &mut v.bid_qty,
        &mut v.ask_px,
        &mut v.ask_qty,
        &mut v.mark_px,
        &mut v.mark_iv,
        &mut v.mark_underlying_px,
        &mut v.price,
        &mut v.last_trade_px,
        &mut v.last_trade_qty,
    ] {
        *f = x;
    }
    v.bid_depth = [[x, x]; DEPTH_LEVELS];
    v.ask_depth = [[x, -x]; DEPTH_LEVELS];
    v
}

/// Two readers copy entry 1 while the writer stores values `1..=300_000` with `write` (a
/// whole entry, or an in-place partial update); each copy must equal `model` of its own
/// `last_seq` (never torn) and never go back in time, and the last value must be `model(N)`.
fn seqlock_stress(write: impl Fn(&LastValueTable, u64), model: impl Fn(u64) -> LastValue + Sync) {
    const N: u64 = 300_000;
    let d = shm_dir();
    let w = LastValueTable::create(d.path(), "lvt", 2, StalePolicy::Fail).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let r = LastValueTable::open(d.path(), "lvt", OpenOptions::default()).unwrap();
                    let (mut reads, mut last) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        if let Some(v) = r.read(1) {
                            assert_eq!(v, model(v.last_seq), "torn read");
                            assert!(v.last_seq >= last, "went back in time");
                            last = v.last_seq;
                            reads += 1;
                        }
                    }
                    reads
                })
            })
            .collect();
        for i in 1..=N {
            write(&w, i);
            if i & 1023 == 0 {
                std::thread::yield_now();
            }
        }
        stop.store(true, Ordering::Relaxed);
        for h in readers {
            h.join().unwrap();
        }
    });
    let r = LastValueTable::open(d.path(), "lvt", OpenOptions::default()).unwrap();
    assert_eq!(r.read(1), Some(model(N)));
}

#[test]
fn seqlock_readers_never_see_a_torn_last_value() {
    seqlock_stress(|w, i| assert!(w.write(1, &lv(i))), lv);
}

#[test]
fn broadcast_reader_lapped_continuously_never_returns_a_torn_message() {
    let d = shm_dir();
    let mut w =
        BroadcastWriter::<MarketEvent>::create(d.path(), "md", 4, StalePolicy::Fail).unwrap();
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut r =
                BroadcastReader::<MarketEvent>::open(d.path(), "md", OpenOptions::default())
                    .unwrap();
            let (mut msgs, mut lost) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                let c = r.position();
                match r.poll() {
                    Poll::Message(e) => {
                        assert_eq!(e.seq, c);
                        assert_eq!(e.v, [c as f64, -(c as f64), c as f64 * 2.0, 1.0], "torn");
                        assert_eq!(e.exch_ts_ns, !c);
                        msgs += 1;
                    }
                    Poll::Lapped { lost: n } => lost += n,
                    Poll::Empty => {}
                }
            }
            (msgs, lost)
        });
        for i in 0..2_000_000u64 {
            let mut e = MarketEvent::quote(1, !i, i, 0.0, 0.0, 0.0, 0.0);
            e.seq = i;
            e.v = [i as f64, -(i as f64), i as f64 * 2.0, 1.0];
            w.publish(&e);
        }
        stop.store(true, Ordering::Relaxed);
        let (msgs, lost) = reader.join().unwrap();
        assert!(msgs + lost <= 2_000_000);
    });
}

/// Depth levels (both sides) and the bid level count of a quote.
/// Bid depth, ask depth, bid level count (asks: `8 - n`).
type TestDepth = ([[f64; 2]; DEPTH_LEVELS], [[f64; 2]; DEPTH_LEVELS], u32);

/// Depth of the `q`-th quote: level `j` of a side changes only on the quotes whose `q` is a
/// multiple of `j + 1` (bids) or `j + 2` (asks), and a level's price and size change apart, so
/// `apply` (which stores only the changed depth words) writes a varying subset of the levels.
fn partial_depth(q: u64) -> ([[f64; 2]; DEPTH_LEVELS], [[f64; 2]; DEPTH_LEVELS]) {
    let (mut bids, mut asks) = ([[0.0; 2]; DEPTH_LEVELS], [[0.0; 2]; DEPTH_LEVELS]);
    for j in 0..DEPTH_LEVELS {
        let (jb, ja) = (j as u64 + 1, j as u64 + 2);
        let (qb, qa) = (q - q % jb, q - q % ja);
        bids[j] = [(qb - qb % (2 * jb)) as f64 + j as f64 * 0.25, -(qb as f64)];
        asks[j] = [qa as f64 + 0.5, -((qa - qa % (2 * ja)) as f64) - j as f64];
    }
    (bids, asks)
}

/// Event `i` of the partial-update stress test: kinds cycle quote (with depth), mark, price,
/// trade; every value derived from `i`.
fn partial_event(i: u64) -> (MarketEvent, Option<TestDepth>) {
    let x = i as f64;
    let mut e = match i % 4 {
        0 => MarketEvent::quote(1, i, i, x, x + 0.5, x + 1.0, x + 1.5),
        1 => MarketEvent::option_mark(1, i, i, x, x * 0.5, x * 2.0),
        2 => MarketEvent::underlying_price(1, i, i, x),
        _ => MarketEvent::trade(1, i, i, x, -x, Side::Buy),
    };
    e.seq = i;
    let depth = i.is_multiple_of(4).then(|| {
        let (bids, asks) = partial_depth(i / 4);
        (bids, asks, ((i / 8) % 9) as u32)
    });
    (e, depth)
}

fn apply_partial(w: &LastValueTable, i: u64) {
    let (e, depth) = partial_event(i);
    let upd = depth.as_ref().map(|(bids, asks, n)| DepthUpdate {
        bid_levels: *n,
        ask_levels: 8 - *n,
        bids,
        asks,
        bid_changed: DepthUpdate::ALL_CHANGED,
        ask_changed: DepthUpdate::ALL_CHANGED,
    });
    assert!(w.apply(1, &e, upd.as_ref()));
}

/// The entry after events `1..=n`, built with `LastValue::apply` on a whole value: each group
/// holds its last event's values.
fn partial_model(n: u64) -> LastValue {
    let mut v = LastValue::zeroed();
    for i in n.saturating_sub(3).max(1)..=n {
        let (e, depth) = partial_event(i);
        v.apply(&e);
        if let Some((bids, asks, k)) = depth {
            v.bid_levels = k;
            v.ask_levels = 8 - k;
            v.bid_depth = bids;
            v.ask_depth = asks;
            v.valid |= LastValue::HAS_DEPTH;
        }
    }
    // The last four events cover every kind, so the valid bits are complete too.
    v
}

#[test]
fn partial_apply_equals_whole_value_apply() {
    let d = shm_dir();
    let w = LastValueTable::create(d.path(), "lvt", 2, StalePolicy::Fail).unwrap();
    assert_eq!(w.read(1), None);
    for i in 1..=50u64 {
        apply_partial(&w, i);
        assert_eq!(w.read(1), Some(partial_model(i)), "after event {i}");
    }
    // Out of range: ignored. Whole writes and partial updates mix.
    let (e, _) = partial_event(1);
    assert!(!w.apply(2, &e, None));
    w.write(1, &lv(7));
    let mut expect = lv(7);
    apply_partial(&w, 6); // a price
    expect.apply(&partial_event(6).0);
    assert_eq!(w.read(1), Some(expect));
    // A quote with depth over a whole write: only the differing depth words are stored, and
    // the result is still the whole-value apply.
    apply_partial(&w, 12);
    let (e, depth) = partial_event(12);
    let (bids, asks, k) = depth.unwrap();
    expect.apply(&e);
    (expect.bid_levels, expect.ask_levels) = (k, 8 - k);
    (expect.bid_depth, expect.ask_depth) = (bids, asks);
    expect.valid |= LastValue::HAS_DEPTH;
    assert_eq!(w.read(1), Some(expect));
    // Most depth levels repeat from one quote to the next (the case the test is about).
    let unchanged = |a: u64, b: u64| {
        let ((b1, a1), (b2, a2)) = (partial_depth(a), partial_depth(b));
        (0..DEPTH_LEVELS)
            .filter(|&j| b1[j] == b2[j] && a1[j] == a2[j])
            .count()
    };
    assert!((1..=20).all(|q| unchanged(q, q + 1) >= 2));
}

#[test]
fn seqlock_readers_never_see_a_torn_partially_updated_last_value() {
    seqlock_stress(apply_partial, partial_model);
}
