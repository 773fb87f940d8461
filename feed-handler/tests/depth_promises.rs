//! The synthetic market tells the publisher which depth levels a quote changed, and the
//! publisher then stores only those. These tests hold the promise to account: after every
//! published quote the last-value table's depth equals the quote's whole depth, through stress
//! toggles and price moves; and after a refused event the publisher stops trusting promises.

use feed_handler::publish::{Publisher, PublisherOptions};
use feed_handler::source::{Depth, Source, SourceEvent};
use feed_handler::synthetic::{SyntheticConfig, SyntheticSource};
use shm_layout::{MarketEvent, StalePolicy, DEPTH_LEVELS};

fn shm_dir() -> tempfile::TempDir {
    testkit::shm::namespace_dir("fh-depth-")
}

fn publisher(dir: &std::path::Path, s: &SyntheticSource) -> Publisher {
    Publisher::create_without_counters(
        dir,
        s.registry(),
        &PublisherOptions {
            ring_capacity: 1 << 12,
            stale: StalePolicy::Fail,
        },
    )
    .unwrap()
}

fn assert_table_has_depth(p: &Publisher, ev: &SourceEvent, i: u64) {
    let lv = p.last_value(ev.event.instrument_id).unwrap();
    let d = &ev.depth;
    assert_eq!(
        (lv.bid_levels, lv.ask_levels),
        (d.bid_levels, d.ask_levels),
        "event {i}"
    );
    assert_eq!(lv.bid_depth, d.bids, "bids after event {i}");
    assert_eq!(lv.ask_depth, d.asks, "asks after event {i}");
}

#[test]
fn synthetic_depth_promises_hold_through_stress_and_price_moves() {
    let base = SyntheticConfig {
        // 2 ms per event: 100k events span about 100 s of synthetic clock, across stress
        // episodes (every 60 s for 10 s) and bursts.
        rate: 500.0,
        // Two underlyings: each hedge book keeps its own promise.
        underlyings: vec![Default::default(), underlying("ETH", 3000.0)],
        ..SyntheticConfig::default()
    };
    // Also a spread pinned at one tick, so that entering stress resizes every level without
    // moving a price.
    let pinned = SyntheticConfig {
        half_spread_bps: 1e-6,
        ..base.clone()
    };
    for cfg in [base, pinned] {
        let mut s = SyntheticSource::new(cfg);
        let dir = shm_dir();
        let mut p = publisher(dir.path(), &s);
        let mut ev = SourceEvent::default();
        let (mut partial, mut whole, mut stressed) = (0u64, 0u64, 0u64);
        for i in 0..100_000u64 {
            assert!(s.next(&mut ev));
            assert!(p.publish(&ev));
            if !ev.has_depth {
                continue;
            }
            assert_table_has_depth(&p, &ev, i);
            if ev.depth.bid_changed == Depth::ALL_CHANGED
                || ev.depth.ask_changed == Depth::ALL_CHANGED
            {
                whole += 1;
            } else {
                partial += 1;
            }
            stressed += u64::from(ev.event.flags & MarketEvent::FLAG_STRESS != 0);
        }
        // Both paths were exercised, in and out of stress.
        assert!(
            partial > 1000 && whole > 100,
            "partial {partial}, whole {whole}"
        );
        assert!(stressed > 1000, "stressed quotes {stressed}");
    }
}

fn underlying(cur: &str, spot: f64) -> feed_handler::synthetic::UnderlyingSpec {
    feed_handler::synthetic::UnderlyingSpec {
        currency: cur.to_string(),
        spot,
        ..Default::default()
    }
}

#[test]
fn after_a_refused_event_the_publisher_stops_trusting_promises() {
    let mut s = SyntheticSource::new(SyntheticConfig::default());
    let dir = shm_dir();
    let mut p = publisher(dir.path(), &s);
    let mut ev = SourceEvent::default();
    // First quote of the hedge instrument: a whole depth.
    while !ev.has_depth {
        assert!(s.next(&mut ev));
        assert!(p.publish(&ev));
    }
    assert_table_has_depth(&p, &ev, 0);
    // A crossed quote with a new ladder is refused: the table keeps the old depth.
    let mut bad = ev;
    for l in 0..DEPTH_LEVELS {
        bad.depth.bids[l][1] += 1.0;
        bad.depth.asks[l][1] += 1.0;
    }
    bad.event.v = [bad.event.v[2] + 1.0, 1.0, bad.event.v[2], 1.0];
    assert!(!p.publish(&bad));
    // The next quote claims only its top level changed relative to the refused one; the
    // table does not have that depth, so the publisher must compare every level.
    let mut next = bad;
    next.event = ev.event;
    next.depth.bids[0][1] += 1.0;
    next.depth.bid_changed = 1;
    next.depth.ask_changed = 0;
    assert!(p.publish(&next));
    assert_table_has_depth(&p, &next, 1);
}
