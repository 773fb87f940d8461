//! `BookRisk`'s event calls allocate nothing: 1,000,000 mixed events (underlying and forward
//! moves, fills, vol updates, marks, time and settlement at expiry, idle steps, reads) under a
//! counting global allocator that counts only this thread's allocations
//! (`shm_layout::alloc_count`; a process-wide count also saw the test harness's threads and
//! failed now and then on a loaded machine).

use engine::pricing::{Model, OptionType, Settlement};
use engine::risk::{BookRisk, OptionSpec, RiskConfig};
use shm_layout::alloc_count::{CountingAlloc, Region};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

const DAY_NS: u64 = 86_400_000_000_000;
const T0_NS: u64 = 1_600_000_000_000_000_000;

#[test]
fn one_million_risk_events_allocate_nothing() {
    let n = 2_000usize;
    let mut book = BookRisk::new(RiskConfig {
        max_options: n,
        max_instrument_id: (n + 16) as u32,
        ..RiskConfig::default()
    });
    book.advance_time(T0_NS);
    book.add_underlying(0, 9000.0).unwrap();
    for j in 0..4u32 {
        let expiry = T0_NS + u64::from(j + 1) * 30 * DAY_NS;
        book.add_forward(1 + j, 0, expiry, 9000.0 + f64::from(j))
            .unwrap();
    }
    for i in 0..n {
        let j = (i % 4) as u32;
        let bsm = i % 5 == 0;
        let spec = OptionSpec {
            id: 16 + i as u32,
            underlying_id: 0,
            forward_id: if bsm { None } else { Some(1 + j) },
            strike: 6000.0 + (i % 60) as f64 * 100.0,
            expiry_ns: T0_NS + u64::from(j + 1) * 30 * DAY_NS,
            kind: if i % 2 == 0 {
                OptionType::Call
            } else {
                OptionType::Put
            },
            model: if bsm { Model::Bsm } else { Model::Black76 },
            settlement: if i % 3 == 0 {
                Settlement::Inverse
            } else {
                Settlement::Linear
            },
            multiplier: 1.0,
        };
        book.add_option(spec, 0.6).unwrap();
        book.add_position(spec.id, (i % 21) as f64 - 10.0);
    }

    let region = Region::start();
    let mut px = 9000.0;
    let mut now = T0_NS;
    let mut acc = 0.0;
    for k in 0..1_000_000usize {
        let id = 16 + (k * 7919 % n) as u32;
        match k % 10 {
            0..=4 => {
                px *= if k & 1 == 0 { 1.0001 } else { 0.9999 };
                book.on_price(0, px);
            }
            5 => {
                book.add_position(id, if k & 2 == 0 { 1.0 } else { -1.0 });
            }
            6 => {
                book.on_vol(id, if k & 2 == 0 { 0.61 } else { 0.6 });
            }
            7 => {
                book.on_mark(id, 0.6, px * 1.001);
                book.on_price(1 + (k % 4) as u32, px * 1.002);
            }
            8 => {
                // Half way, two expiries pass: their settlement allocates nothing either.
                now += if k == 500_008 { 61 * DAY_NS } else { 1_000_000 };
                book.advance_time(now);
            }
            _ => {
                book.idle_step();
            }
        }
        if let Some(r) = book.underlying(0) {
            acc += r.net_delta + r.delta_error_bound;
        }
        if k % 10_000 == 0 {
            acc += book.buckets(0).map(|b| b.delta).sum::<f64>();
            book.force_reeval(0);
        }
    }
    let stats = region.change();
    black_box(acc);
    let settled = book.settlement_totals(0).unwrap().options_settled;
    assert!(settled > 0, "the 30- and 60-day expiries settled");
    assert!(book.settlement(16).is_some() && book.settlement(17).is_some());
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
}
