//! Pricing and risk core benchmarks (issue 3).
//!
//! - one option's full Greeks (BSM, all eight values), a Black-76 price, an implied vol;
//! - per-event risk updates (underlying move, fill, vol update) for books of 10, 1k, 10k and
//!   100k options against a full recomputation of the same book, in the same run; the
//!   medians and their ratio are printed before criterion's own measurements.
//!
//! Run: `cargo bench -p bench --bench pricing -- --warm-up-time 1 --measurement-time 2`

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use engine::pricing::{
    black76_implied_vol, black76_price, bsm_greeks, Model, OptionType, Settlement,
};
use engine::risk::{BookRisk, InverseDelta, OptionSpec, RiskConfig};

const DAY_NS: u64 = 86_400_000_000_000;
const T0_NS: u64 = 1_600_000_000_000_000_000;
const EXPIRIES_DAYS: [u64; 8] = [1, 2, 7, 14, 30, 60, 90, 180];

/// Small deterministic generator (xorshift64*), so every run builds the same books.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A BTC-like book: 8 expiries with their forwards, Black-76 inverse and linear options,
/// calls and puts, strikes spread around the forward, random positions.
fn book(n: usize) -> BookRisk {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut b = BookRisk::new(RiskConfig {
        delta_tolerance: 0.01,
        reeval_per_idle_step: 8,
        inverse_delta: InverseDelta::PremiumAdjusted,
        max_options: n,
        max_instrument_id: (n + 64) as u32,
    });
    b.advance_time(T0_NS);
    b.add_underlying(0, 9000.0).expect("underlying");
    for (j, d) in EXPIRIES_DAYS.iter().enumerate() {
        b.add_forward(
            1 + j as u32,
            0,
            T0_NS + d * DAY_NS,
            9000.0 * (1.0 + 0.001 * j as f64),
        )
        .expect("forward");
    }
    for i in 0..n {
        let j = i % EXPIRIES_DAYS.len();
        let spec = OptionSpec {
            id: 64 + i as u32,
            underlying_id: 0,
            forward_id: Some(1 + j as u32),
            strike: (9000.0 * (rng.next() * 1.2 - 0.6).exp()).round(),
            expiry_ns: T0_NS + EXPIRIES_DAYS[j] * DAY_NS,
            kind: if rng.next() < 0.5 {
                OptionType::Call
            } else {
                OptionType::Put
            },
            model: Model::Black76,
            settlement: if rng.next() < 0.7 {
                Settlement::Inverse
            } else {
                Settlement::Linear
            },
            multiplier: 1.0,
        };
        b.add_option(spec, 0.4 + rng.next()).expect("option");
        b.add_position(spec.id, (rng.next() * 100.0 - 50.0).round());
    }
    b
}

/// Median of `batches` batch means, ns per call.
fn median_ns(batches: usize, per_batch: usize, mut f: impl FnMut(usize)) -> f64 {
    let mut v: Vec<f64> = (0..batches)
        .map(|k| {
            let t = Instant::now();
            for i in 0..per_batch {
                f(k * per_batch + i);
            }
            t.elapsed().as_nanos() as f64 / per_batch as f64
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn one_option(c: &mut Criterion) {
    let mut g = c.benchmark_group("pricing");
    g.bench_function("bsm_full_greeks", |b| {
        b.iter(|| {
            bsm_greeks(
                black_box(OptionType::Call),
                black_box(100.0),
                black_box(105.0),
                black_box(0.5),
                black_box(0.25),
                black_box(0.03),
                black_box(0.01),
            )
        })
    });
    // The put of the Black-76 benchmarks: forward 9000, strike 8000, 0.25 years, vol 0.8,
    // rate 0.
    let (f, k, t, vol, r) = (9000.0, 8000.0, 0.25, 0.8, 0.0);
    g.bench_function("black76_price", |b| {
        b.iter(|| {
            let (f, k, t, vol, r) = black_box((f, k, t, vol, r));
            black76_price(black_box(OptionType::Put), f, k, t, vol, r)
        })
    });
    let p = black76_price(OptionType::Put, f, k, t, vol, r).expect("price");
    g.bench_function("black76_implied_vol", |b| {
        b.iter(|| {
            let (f, k, t, r, p) = black_box((f, k, t, r, p));
            black76_implied_vol(black_box(OptionType::Put), f, k, t, r, p)
        })
    });
    g.finish();
}

fn risk_events(c: &mut Criterion) {
    let sizes = [10usize, 1_000, 10_000, 100_000];
    println!("\nper-event risk update vs full recomputation (median ns per call, same run):");
    println!(
        "{:>8} {:>10} {:>10} {:>10} {:>14} {:>16}",
        "options", "move", "fill", "vol", "full_recompute", "full/move ratio"
    );
    for &n in &sizes {
        let mut b = book(n);
        let mv = median_ns(51, 2000, |i| {
            let px = if i & 1 == 0 { 9000.9 } else { 8999.1 };
            black_box(b.on_price(0, px));
        });
        let fill = median_ns(51, 2000, |i| {
            let id = 64 + (i * 7919 % n) as u32;
            black_box(b.add_position(id, if i & 1 == 0 { 1.0 } else { -1.0 }));
        });
        let vol = median_ns(51, 2000, |i| {
            let id = 64 + (i * 7919 % n) as u32;
            black_box(b.on_vol(id, if i & 1 == 0 { 0.61 } else { 0.6 }));
        });
        let reps = (200_000 / n).clamp(1, 2000);
        let full = median_ns(11, reps, |_| {
            black_box(b.full_recompute(0));
        });
        println!(
            "{n:>8} {mv:>10.1} {fill:>10.1} {vol:>10.1} {full:>14.0} {:>16.0}",
            full / mv
        );
    }
    println!();

    let mut g = c.benchmark_group("risk");
    for &n in &sizes {
        let mut b = book(n);
        let mut i = 0u64;
        g.bench_with_input(BenchmarkId::new("underlying_move", n), &n, |bch, _| {
            bch.iter(|| {
                i += 1;
                let px = if i & 1 == 0 { 9000.9 } else { 8999.1 };
                black_box(b.on_price(0, px))
            })
        });
        g.bench_with_input(BenchmarkId::new("fill", n), &n, |bch, &n| {
            bch.iter(|| {
                i += 1;
                let id = 64 + (i as usize * 7919 % n) as u32;
                black_box(b.add_position(id, if i & 1 == 0 { 1.0 } else { -1.0 }))
            })
        });
        g.bench_with_input(BenchmarkId::new("vol_update", n), &n, |bch, &n| {
            bch.iter(|| {
                i += 1;
                let id = 64 + (i as usize * 7919 % n) as u32;
                black_box(b.on_vol(id, if i & 1 == 0 { 0.61 } else { 0.6 }))
            })
        });
        g.bench_with_input(BenchmarkId::new("full_recompute", n), &n, |bch, _| {
            bch.iter(|| black_box(b.full_recompute(0)))
        });
    }
    g.finish();
}

criterion_group!(benches, one_option, risk_events);
criterion_main!(benches);
