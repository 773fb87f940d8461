//! Cash settlement at expiry: an expired position leaves the book's risk exactly, once, and is
//! recorded at its intrinsic value; the incremental sums still equal a full recomputation.

use engine::pricing::{Model, OptionType, Settlement};
use engine::risk::{BookRisk, ExpirySettlement, InverseDelta, OptionSpec, RiskConfig};
use proptest::prelude::*;

const UND: u32 = 0;
const SEC: u64 = 1_000_000_000;
const DAY_NS: u64 = 86_400 * SEC;
const T0_NS: u64 = 1_600_000_000_000_000_000;

fn spec(id: u32, fwd: u32, expiry_ns: u64, strike: f64, kind: OptionType) -> OptionSpec {
    OptionSpec {
        id,
        underlying_id: UND,
        forward_id: Some(fwd),
        strike,
        expiry_ns,
        kind,
        model: Model::Black76,
        settlement: Settlement::Linear,
        multiplier: 1.0,
    }
}

/// A book with one underlying at `price` and one expiry's forward (id 1) at the same price,
/// the clock at `T0_NS`.
fn one_expiry_book(max_options: usize, price: f64, expiry_ns: u64) -> BookRisk {
    let mut book = BookRisk::new(RiskConfig {
        max_options,
        max_instrument_id: 16,
        ..RiskConfig::default()
    });
    book.advance_time(T0_NS);
    book.add_underlying(UND, price).unwrap();
    book.add_forward(1, UND, expiry_ns, price).unwrap();
    book
}

/// [`one_expiry_book`] at `price` holding `options` (id, strike, kind) on forward 1, all
/// expiring at `expiry_ns`, at implied vol `iv` (1.00 = 100%).
fn expiring_options(
    price: f64,
    expiry_ns: u64,
    iv: f64,
    options: &[(u32, f64, OptionType)],
) -> BookRisk {
    let mut book = one_expiry_book(options.len(), price, expiry_ns);
    for &(id, strike, kind) in options {
        book.add_option(spec(id, 1, expiry_ns, strike, kind), iv)
            .unwrap();
    }
    book
}

#[test]
fn itm_call_and_otm_put_settle_at_expiry_to_zero_risk_at_intrinsic_value() {
    let expiry = T0_NS + DAY_NS;
    let later = T0_NS + 30 * DAY_NS;
    let mut book = BookRisk::new(RiskConfig {
        inverse_delta: InverseDelta::Model,
        max_options: 8,
        max_instrument_id: 16,
        ..RiskConfig::default()
    });
    book.advance_time(T0_NS);
    book.add_underlying(UND, 10_000.0).unwrap();
    book.add_forward(1, UND, expiry, 10_000.0).unwrap();
    book.add_forward(2, UND, later, 10_050.0).unwrap();
    // Long 10 linear calls 1000 in the money, short 4 inverse puts 500 out of the money.
    book.add_option(spec(10, 1, expiry, 9_000.0, OptionType::Call), 0.6)
        .unwrap();
    book.add_option(
        OptionSpec {
            settlement: Settlement::Inverse,
            ..spec(11, 1, expiry, 9_500.0, OptionType::Put)
        },
        0.6,
    )
    .unwrap();
    // Another expiry that must not be touched: short 3 calls at the money.
    book.add_option(spec(12, 2, later, 10_000.0, OptionType::Call), 0.6)
        .unwrap();
    assert!(book.add_position(10, 10.0));
    assert!(book.add_position(11, -4.0));
    assert!(book.add_position(12, -3.0));
    assert_eq!(book.next_expiry_ns(), Some(expiry));

    // One minute before expiry: the call's delta is its position, the put's nothing.
    book.advance_time(expiry - 60 * SEC);
    book.force_reeval(UND);
    let before: Vec<_> = book.buckets(UND).collect();
    assert!((before[0].delta - 10.0).abs() < 1e-6, "{}", before[0].delta);
    assert!(book.settlement(10).is_none());
    let other_before = before[1];

    // The forward at settlement: 10 100.
    assert!(book.on_price(1, 10_100.0));
    book.advance_time(expiry + SEC);
    let after: Vec<_> = book.buckets(UND).collect();
    assert_eq!(after[0].delta, 0.0, "settled: exactly no delta");
    assert_eq!(after[0].gamma, 0.0);
    assert_eq!(after[0].vega, 0.0);
    assert_eq!(after[0].theta, 0.0);
    assert_eq!(after[0].delta_error_bound, 0.0);
    // The other expiry is what it was, up to one second of time decay.
    assert!((after[1].delta - other_before.delta).abs() < 1e-4);
    let r = *book.underlying(UND).unwrap();
    assert!((r.net_delta - after[1].delta).abs() < 1e-12);
    let exact = book.full_recompute(UND).unwrap();
    assert!((r.net_delta - exact.net_delta).abs() <= r.delta_error_bound + 1e-9);

    let call = book.settlement(10).unwrap();
    assert_eq!(call.style, ExpirySettlement::Cash);
    assert_eq!(call.contracts, 10.0);
    assert!((call.settlement_px - 10_100.0).abs() < 1e-8);
    assert!((call.value - 10.0 * 1_100.0).abs() < 1e-6, "{}", call.value);
    assert_eq!(call.value, call.value_quote);
    assert_eq!(call.settled_at_ns, expiry + SEC);
    let put = book.settlement(11).unwrap();
    assert_eq!(
        (put.contracts, put.value, put.value_quote),
        (-4.0, 0.0, 0.0)
    );
    assert_eq!(put.settlement, Settlement::Inverse);
    assert!(book.settlement(12).is_none());
    assert_eq!(book.position(10), Some(0.0));
    assert_eq!(book.position(11), Some(0.0));
    assert_eq!(book.next_expiry_ns(), Some(later));

    let t = *book.settlement_totals(UND).unwrap();
    assert_eq!(t.options_settled, 2);
    assert_eq!(t.net_contracts, 6.0);
    assert!((t.value_quote - 11_000.0).abs() < 1e-6);
    assert_eq!(t.value_coin, 0.0);

    // Settled is final: no new position, no re-settlement, nothing from idle work.
    assert!(!book.add_position(10, 1.0));
    assert!(!book.on_vol(10, 0.5));
    assert!(!book.restore_settlement(10, 10.0, 10_100.0, expiry));
    book.advance_time(expiry + 2 * DAY_NS);
    for _ in 0..4 {
        book.idle_step();
    }
    book.force_reeval(UND);
    assert_eq!(book.buckets(UND).next().unwrap().delta, 0.0);
    assert_eq!(book.settlement_totals(UND).unwrap().options_settled, 2);
    assert_eq!(book.settlement(10).unwrap().settled_at_ns, expiry + SEC);
}

#[test]
fn inverse_settlement_value_is_in_coin() {
    let expiry = T0_NS + DAY_NS;
    let mut book = one_expiry_book(2, 8_000.0, expiry);
    book.add_option(
        OptionSpec {
            settlement: Settlement::Inverse,
            multiplier: 0.1,
            ..spec(3, 1, expiry, 10_000.0, OptionType::Put)
        },
        0.8,
    )
    .unwrap();
    assert!(book.add_position(3, -20.0));
    book.advance_time(expiry);
    let s = book.settlement(3).unwrap();
    // Short 20 contracts of 0.1 BTC, 2 000 USD in the money at 8 000: -4 000 USD = -0.5 BTC.
    assert!((s.value_quote + 4_000.0).abs() < 1e-9);
    assert!((s.value + 0.5).abs() < 1e-12);
    assert!((book.settlement_totals(UND).unwrap().value_coin + 0.5).abs() < 1e-12);
    assert_eq!(book.underlying(UND).unwrap().net_delta, 0.0);
}

#[test]
fn a_restored_settlement_is_neither_resurrected_nor_settled_again() {
    let expiry = T0_NS + DAY_NS;
    let options = [
        (3, 9_000.0, OptionType::Call),
        (4, 9_000.0, OptionType::Put),
    ];
    let mut book = expiring_options(10_000.0, expiry, 0.5, &options);
    assert!(book.restore_settlement(3, -7.0, 10_200.0, expiry));
    assert!(!book.restore_settlement(3, -7.0, 10_200.0, expiry));
    assert!(!book.add_position(3, 1.0));
    assert!(book.add_position(4, 2.0));
    book.advance_time(expiry + SEC);
    let t = *book.settlement_totals(UND).unwrap();
    assert_eq!(
        t.options_settled, 2,
        "the restored one and the put, once each"
    );
    assert_eq!(t.net_contracts, -5.0);
    assert!((t.value_quote - (-7.0 * 1_200.0)).abs() < 1e-9);
    assert_eq!(book.settlement(3).unwrap().settled_at_ns, expiry);
}

#[derive(Debug, Clone)]
struct Opt {
    expiry: usize,
    log_k: f64,
    vol: f64,
    call: bool,
    inverse: bool,
    qty: i32,
}

fn opt() -> impl Strategy<Value = Opt> {
    (
        0usize..3,
        -0.5f64..0.5,
        0.2f64..1.5,
        any::<bool>(),
        any::<bool>(),
        -30i32..30,
    )
        .prop_map(|(expiry, log_k, vol, call, inverse, qty)| Opt {
            expiry,
            log_k,
            vol,
            call,
            inverse,
            qty,
        })
}

const EXPIRY_H: [u64; 3] = [6, 30, 24 * 40];

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Through expiries, with moves and fills around them: the incremental risk stays within
    /// its bound of a full recomputation, equals it after exact re-evaluation, settled
    /// expiries contribute exactly 0, and each position settles once at its intrinsic value.
    #[test]
    fn incremental_risk_equals_full_recompute_through_settlements(
        opts in prop::collection::vec(opt(), 1..30),
        steps in prop::collection::vec((1u64..20, -0.03f64..0.03, any::<usize>(), -5i32..5), 1..40),
        pa in any::<bool>(),
    ) {
        let n = opts.len();
        let mut book = BookRisk::new(RiskConfig {
            inverse_delta: if pa { InverseDelta::PremiumAdjusted } else { InverseDelta::Model },
            max_options: n,
            max_instrument_id: (n + 8) as u32,
            ..RiskConfig::default()
        });
        book.advance_time(T0_NS);
        book.add_underlying(UND, 9_000.0).unwrap();
        for (j, h) in EXPIRY_H.iter().enumerate() {
            book.add_forward(1 + j as u32, UND, T0_NS + h * 3_600 * SEC, 9_000.0 + 10.0 * j as f64)
                .unwrap();
        }
        let mut pos = vec![0.0f64; n];
        for (i, o) in opts.iter().enumerate() {
            let id = 8 + i as u32;
            book.add_option(
                OptionSpec {
                    settlement: if o.inverse { Settlement::Inverse } else { Settlement::Linear },
                    ..spec(
                        id,
                        1 + o.expiry as u32,
                        T0_NS + EXPIRY_H[o.expiry] * 3_600 * SEC,
                        (9_000.0 * o.log_k.exp()).round(),
                        if o.call { OptionType::Call } else { OptionType::Put },
                    )
                },
                o.vol,
            )
            .unwrap();
            prop_assert!(book.add_position(id, f64::from(o.qty)));
            pos[i] = f64::from(o.qty);
        }
        let mut now = T0_NS;
        let mut px = 9_000.0f64;
        // What each position settles at: recorded when its expiry passes, from the forward then.
        let mut expect_value = vec![None::<f64>; n];
        for (hours, ret, who, fill) in steps {
            px *= ret.exp();
            prop_assert!(book.on_price(UND, px));
            let i = who % n;
            let id = 8 + i as u32;
            let settled = book.settlement(id).is_some();
            prop_assert_eq!(book.add_position(id, f64::from(fill)), !settled);
            if !settled {
                pos[i] += f64::from(fill);
            }
            now += hours * 3_600 * SEC;
            let fwds: Vec<f64> = book.buckets(UND).map(|b| b.forward).collect();
            book.advance_time(now);
            for (k, o) in opts.iter().enumerate() {
                let exp = T0_NS + EXPIRY_H[o.expiry] * 3_600 * SEC;
                if exp <= now && expect_value[k].is_none() {
                    let f = fwds[o.expiry];
                    let k_ = (9_000.0 * o.log_k.exp()).round();
                    let w = if o.call { 1.0 } else { -1.0 };
                    expect_value[k] = Some(pos[k] * (w * (f - k_)).max(0.0));
                }
            }
            let inc = *book.underlying(UND).unwrap();
            let exact = book.full_recompute(UND).unwrap();
            let scale = 1.0 + pos.iter().map(|q| q.abs()).sum::<f64>();
            prop_assert!(
                (inc.net_delta - exact.net_delta).abs() <= inc.delta_error_bound + 1e-9 * scale,
                "incremental {} exact {} bound {}", inc.net_delta, exact.net_delta, inc.delta_error_bound
            );
            for b in book.buckets(UND) {
                if b.expiry_ns <= now {
                    prop_assert_eq!(b.delta, 0.0);
                    prop_assert_eq!(b.gamma, 0.0);
                    prop_assert_eq!(b.vega, 0.0);
                    prop_assert_eq!(b.delta_error_bound, 0.0);
                }
            }
        }
        book.force_reeval(UND);
        let inc = *book.underlying(UND).unwrap();
        let exact = book.full_recompute(UND).unwrap();
        let scale = 1.0 + pos.iter().map(|q| q.abs()).sum::<f64>();
        prop_assert!((inc.net_delta - exact.net_delta).abs() <= 1e-9 * scale);
        prop_assert!((inc.vega - exact.vega).abs() <= 1e-5 * scale);
        let mut count = 0;
        let mut total = 0.0;
        for (k, v) in expect_value.iter().enumerate() {
            let s = book.settlement(8 + k as u32);
            match v {
                Some(v) => {
                    let s = s.expect("expired: settled");
                    prop_assert_eq!(s.contracts, pos[k]);
                    prop_assert!((s.value_quote - v).abs() <= 1e-9 * (1.0 + v.abs()));
                    prop_assert_eq!(book.position(8 + k as u32), Some(0.0));
                    if pos[k] != 0.0 {
                        count += 1;
                        total += v;
                    }
                }
                None => prop_assert!(s.is_none()),
            }
        }
        let t = *book.settlement_totals(UND).unwrap();
        prop_assert_eq!(t.options_settled, count);
        prop_assert!((t.value_quote - total).abs() <= 1e-9 * (1.0 + total.abs()));
    }
}

#[test]
fn a_trade_delivered_after_settlement_joins_the_settlement_record_not_the_risk() {
    let expiry = T0_NS + DAY_NS;
    let options = [
        (10, 9_000.0, OptionType::Call),
        (11, 11_000.0, OptionType::Call),
    ];
    let mut book = expiring_options(10_000.0, expiry, 0.6, &options);
    assert!(book.add_position(10, 10.0));
    // Not settled yet: nothing to add to.
    assert!(!book.add_settled_trade(10, 1.0));
    book.advance_time(expiry + SEC);
    let t0 = *book.settlement_totals(UND).unwrap();
    assert_eq!((t0.options_settled, t0.net_contracts), (1, 10.0));
    assert!((t0.value_quote - 10.0 * 1_000.0).abs() < 1e-6);

    // Sold 4 of the calls before the expiry, delivered after: the record holds 6, at the same
    // price; the risk is still exactly nothing.
    assert!(book.add_settled_trade(10, -4.0));
    let s = book.settlement(10).unwrap();
    assert_eq!(s.contracts, 6.0);
    assert!((s.value - 6.0 * 1_000.0).abs() < 1e-6);
    let t1 = *book.settlement_totals(UND).unwrap();
    assert_eq!((t1.options_settled, t1.net_contracts), (1, 6.0));
    assert!((t1.value_quote - 6.0 * 1_000.0).abs() < 1e-6);
    assert_eq!(book.position(10), Some(0.0));
    assert_eq!(book.underlying(UND).unwrap().net_delta, 0.0);

    // An option that had no position at expiry starts to count; one taken back to 0 stops.
    assert!(book.add_settled_trade(11, 2.0));
    assert_eq!(book.settlement_totals(UND).unwrap().options_settled, 2);
    assert!(book.add_settled_trade(10, -6.0));
    let t2 = *book.settlement_totals(UND).unwrap();
    assert_eq!((t2.options_settled, t2.net_contracts), (1, 2.0));
    assert_eq!(
        t2.value_quote, 0.0,
        "the remaining calls expired out of the money"
    );
    // Unknown options and non-finite quantities change nothing.
    assert!(!book.add_settled_trade(99, 1.0));
    assert!(!book.add_settled_trade(11, f64::NAN));
    assert_eq!(*book.settlement_totals(UND).unwrap(), t2);
}
