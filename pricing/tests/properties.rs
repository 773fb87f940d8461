//! Limits, robustness and internal consistency of the pricing functions: exact limits at
//! expiry and zero vol, no NaN or infinity anywhere in the accepted domain, typed errors for
//! invalid inputs, finite-difference checks of the higher-order Greeks, put-call parity,
//! implied-vol round trips, inverse (coin) deltas.

use pricing::{
    black76_greeks, black76_implied_vol, black76_price, bsm_greeks, inverse_greeks, Greeks, Model,
    OptionInputs, OptionType, PricingError,
};
use proptest::prelude::*;

fn all_finite(g: &Greeks) -> bool {
    [
        g.price, g.delta, g.gamma, g.vega, g.theta, g.speed, g.vanna, g.charm,
    ]
    .iter()
    .all(|x| x.is_finite())
}

#[test]
fn invalid_inputs_are_typed_errors() {
    let c = OptionType::Call;
    assert_eq!(
        bsm_greeks(c, -1.0, 100.0, 1.0, 0.2, 0.0, 0.0),
        Err(PricingError::BadUnderlying(-1.0))
    );
    assert_eq!(
        bsm_greeks(c, 100.0, 0.0, 1.0, 0.2, 0.0, 0.0),
        Err(PricingError::BadStrike(0.0))
    );
    assert!(matches!(
        bsm_greeks(c, 100.0, 100.0, f64::NAN, 0.2, 0.0, 0.0),
        Err(PricingError::BadTime(_))
    ));
    assert_eq!(
        bsm_greeks(c, 100.0, 100.0, -0.1, 0.2, 0.0, 0.0),
        Err(PricingError::BadTime(-0.1))
    );
    assert_eq!(
        bsm_greeks(c, 100.0, 100.0, 1.0, -0.2, 0.0, 0.0),
        Err(PricingError::BadVol(-0.2))
    );
    assert!(matches!(
        bsm_greeks(c, 100.0, 100.0, 1.0, f64::NAN, 0.0, 0.0),
        Err(PricingError::BadVol(_))
    ));
    assert_eq!(
        bsm_greeks(c, 100.0, 100.0, 1.0, 0.2, f64::INFINITY, 0.0),
        Err(PricingError::BadRate(f64::INFINITY))
    );
    assert!(matches!(
        bsm_greeks(c, 100.0, 100.0, 1.0, 0.2, 0.0, f64::NAN),
        Err(PricingError::BadDividend(_))
    ));
    assert!(matches!(
        black76_price(c, f64::NAN, 100.0, 1.0, 0.2, 0.0),
        Err(PricingError::BadUnderlying(_))
    ));
    assert!(matches!(
        black76_implied_vol(c, 100.0, 100.0, 1.0, 0.0, -1.0),
        Err(PricingError::BadPrice(_))
    ));
}

#[test]
fn expiry_and_zero_vol_give_exact_limits() {
    for (t, vol) in [(0.0, 0.3), (1.0, 0.0), (0.0, 0.0)] {
        let c = bsm_greeks(OptionType::Call, 110.0, 100.0, t, vol, 0.0, 0.0).unwrap();
        assert_eq!(c.price, 10.0);
        assert_eq!(c.delta, 1.0);
        assert_eq!((c.gamma, c.vega, c.speed, c.vanna), (0.0, 0.0, 0.0, 0.0));
        let p = bsm_greeks(OptionType::Put, 110.0, 100.0, t, vol, 0.0, 0.0).unwrap();
        assert_eq!((p.price, p.delta), (0.0, 0.0));
        let p = black76_greeks(OptionType::Put, 90.0, 100.0, t, vol, 0.0).unwrap();
        assert_eq!((p.price, p.delta), (10.0, -1.0));
        // Exactly at the money: the price is 0 and delta is the limit 1/2 from either side.
        let a = black76_greeks(OptionType::Call, 100.0, 100.0, t, vol, 0.0).unwrap();
        assert_eq!((a.price, a.delta), (0.0, 0.5));
    }
    // Zero vol with carry: the discounted deterministic payoff, and its exact time decay.
    let g = bsm_greeks(OptionType::Call, 100.0, 90.0, 1.0, 0.0, 0.05, 0.0).unwrap();
    let want = 100.0 - 90.0 * (-0.05f64).exp();
    assert!((g.price - want).abs() < 1e-12);
    assert!((g.theta - (-0.05 * 90.0 * (-0.05f64).exp())).abs() < 1e-12);
    // Approaching expiry, the Greeks converge to the limits continuously.
    let near = bsm_greeks(OptionType::Call, 110.0, 100.0, 1e-10, 0.3, 0.0, 0.0).unwrap();
    assert!((near.price - 10.0).abs() < 1e-12 && (near.delta - 1.0).abs() < 1e-12);
}

#[test]
fn deep_in_and_out_of_the_money_and_huge_vol_are_finite_and_bounded() {
    for &k in &[1e-6, 1e-3, 1.0, 50.0, 100.0, 200.0, 1e4, 1e8] {
        for &t in &[1e-8, 1.0 / 8760.0, 0.1, 1.0, 30.0, 100.0] {
            for &vol in &[0.0, 1e-6, 0.05, 1.0, 5.0, 10.0] {
                for kind in [OptionType::Call, OptionType::Put] {
                    for model in [Model::Bsm, Model::Black76] {
                        let inp = OptionInputs {
                            model,
                            kind,
                            underlying: 100.0,
                            strike: k,
                            t_years: t,
                            vol,
                            rate: 0.05,
                            div: 0.02,
                        };
                        let g = inp.greeks().unwrap();
                        assert!(all_finite(&g), "{inp:?} -> {g:?}");
                        assert!(g.price >= 0.0 && g.gamma >= 0.0 && g.vega >= 0.0, "{inp:?}");
                        match kind {
                            OptionType::Call => assert!((0.0..=1.0).contains(&g.delta)),
                            OptionType::Put => assert!((-1.0..=0.0).contains(&g.delta)),
                        }
                    }
                }
            }
        }
    }
    // 500% vol, 3 years: a call is worth almost the (discounted) underlying.
    let g = black76_greeks(OptionType::Call, 100.0, 100.0, 3.0, 5.0, 0.0).unwrap();
    assert!(g.price > 99.0 && g.price < 100.0);
}

#[test]
fn extreme_magnitudes_stay_finite() {
    for (s, k) in [
        (1e-100, 1e100),
        (1e100, 1e-100),
        (1e100, 1e100),
        (1e-100, 1e-100),
    ] {
        for kind in [OptionType::Call, OptionType::Put] {
            let g = bsm_greeks(kind, s, k, 100.0, 10.0, -1.0, 1.0).unwrap();
            assert!(all_finite(&g), "{s} {k} {g:?}");
            let g = bsm_greeks(kind, s, k, 1e-12, 1e-3, 1.0, -1.0).unwrap();
            assert!(all_finite(&g), "{s} {k} {g:?}");
        }
    }
}

fn inputs() -> impl Strategy<Value = OptionInputs> {
    (
        any::<bool>(),
        any::<bool>(),
        -1.5f64..1.5,
        (1.0f64 / 8760.0).ln()..3.0f64.ln(),
        0.05f64..3.0,
        -0.02f64..0.08,
        0.0f64..0.05,
    )
        .prop_map(|(bsm, call, lnk, lnt, vol, rate, div)| OptionInputs {
            model: if bsm { Model::Bsm } else { Model::Black76 },
            kind: if call {
                OptionType::Call
            } else {
                OptionType::Put
            },
            underlying: 100.0,
            strike: 100.0 * lnk.exp(),
            t_years: lnt.exp(),
            vol,
            rate,
            div,
        })
}

fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= abs + rel * a.abs().max(b.abs())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// delta, gamma, speed, vega, vanna, theta and charm against central differences of the
    /// price (or of the lower Greek).
    #[test]
    fn greeks_match_finite_differences(inp in inputs()) {
        let g = inp.greeks().unwrap();
        let at = |f: &dyn Fn(&mut OptionInputs)| {
            let mut x = inp;
            f(&mut x);
            x.greeks().unwrap()
        };
        // Step small against the option's own scale (F sigma sqrt T).
        let hs = 1e-3 * inp.underlying * (inp.vol * inp.t_years.sqrt()).min(1.0);
        let up = at(&|x| x.underlying += hs);
        let dn = at(&|x| x.underlying -= hs);
        let scale = inp.underlying;
        prop_assert!(close(g.delta, (up.price - dn.price) / (2.0 * hs), 1e-5, 1e-8));
        prop_assert!(close(g.gamma, (up.delta - dn.delta) / (2.0 * hs), 1e-4, 1e-8 / scale));
        prop_assert!(close(g.speed, (up.gamma - dn.gamma) / (2.0 * hs), 1e-3, 1e-7 / (scale * scale) + 1e-3 * g.gamma / scale));
        let hv = 1e-5;
        let vu = at(&|x| x.vol += hv);
        let vd = at(&|x| x.vol -= hv);
        prop_assert!(close(g.vega, (vu.price - vd.price) / (2.0 * hv), 1e-5, 1e-8 * scale));
        prop_assert!(close(g.vanna, (vu.delta - vd.delta) / (2.0 * hv), 1e-4, 1e-6));
        let ht = 1e-4 * inp.t_years;
        let tu = at(&|x| x.t_years += ht);
        let td = at(&|x| x.t_years -= ht);
        // theta and charm are d/dt of calendar time: minus d/dT.
        prop_assert!(close(g.theta, -(tu.price - td.price) / (2.0 * ht), 1e-4, 1e-7 * scale));
        prop_assert!(close(g.charm, -(tu.delta - td.delta) / (2.0 * ht), 1e-3, 1e-6 + 1e-3 * g.charm.abs()));
    }

    /// C - P = D (F - K), delta_C - delta_P = e^{-qT} (BSM) or e^{-rT} (Black-76).
    #[test]
    fn put_call_parity_holds(inp in inputs()) {
        let call = OptionInputs { kind: OptionType::Call, ..inp }.greeks().unwrap();
        let put = OptionInputs { kind: OptionType::Put, ..inp }.greeks().unwrap();
        let t = inp.t_years;
        let (fwd, dq) = match inp.model {
            Model::Bsm => (inp.underlying * ((inp.rate - inp.div) * t).exp(), (-inp.div * t).exp()),
            Model::Black76 => (inp.underlying, (-inp.rate * t).exp()),
        };
        let df = (-inp.rate * t).exp();
        prop_assert!(close(call.price - put.price, df * (fwd - inp.strike), 1e-12, 1e-11 * inp.underlying));
        prop_assert!(close(call.delta - put.delta, dq, 1e-13, 1e-14));
        prop_assert!(close(call.gamma, put.gamma, 1e-12, 0.0));
        prop_assert!(close(call.vega, put.vega, 1e-12, 0.0));
    }

    /// Implied vol reproduces the vol wherever the price carries information about it.
    #[test]
    fn implied_vol_round_trips(inp in inputs()) {
        let g = inp.greeks().unwrap();
        // Skip prices whose time value is below the double-precision resolution of the price.
        let intrinsic_free = g.vega * inp.vol;
        prop_assume!(intrinsic_free > 1e-9 * inp.underlying.max(inp.strike));
        let iv = inp.implied_vol(g.price).unwrap();
        let repriced = OptionInputs { vol: iv, ..inp }.price().unwrap();
        prop_assert!(close(repriced, g.price, 1e-12, 1e-13 * inp.underlying), "iv {iv} vol {}", inp.vol);
        // The vol itself is determined to the price's precision divided by vega.
        let vol_tol = 1e-12 * g.price.max(1e-300) / g.vega + 1e-10;
        prop_assert!((iv - inp.vol).abs() <= vol_tol.max(1e-10 * inp.vol), "iv {iv} vol {}", inp.vol);
    }

    /// Inverse options: premium-adjusted delta = forward d(premium in coin)/dF.
    #[test]
    fn premium_adjusted_delta_is_the_coin_value_sensitivity(inp in inputs()) {
        let inp = OptionInputs { model: Model::Black76, ..inp };
        let f = inp.underlying;
        let g = inp.greeks().unwrap();
        let inv = inverse_greeks(&g, f);
        let h = 1e-4 * f * (inp.vol * inp.t_years.sqrt()).min(1.0);
        let coin = |x: f64| OptionInputs { underlying: x, ..inp }.price().unwrap() / x;
        let d_coin = (coin(f + h) - coin(f - h)) / (2.0 * h);
        prop_assert!(close(inv.delta_premium_adjusted, f * d_coin, 1e-5, 1e-9));
        prop_assert!(close(inv.premium_coin, g.price / f, 1e-15, 0.0));
        prop_assert_eq!(inv.delta_model, g.delta);
    }
}

#[test]
fn implied_vol_rejects_arbitrage_violations() {
    let c = OptionType::Call;
    // Below intrinsic (forward 120, strike 100: intrinsic 20).
    assert!(matches!(
        black76_implied_vol(c, 120.0, 100.0, 1.0, 0.0, 19.0),
        Err(PricingError::BelowIntrinsic { .. })
    ));
    // At or above the forward.
    assert!(matches!(
        black76_implied_vol(c, 120.0, 100.0, 1.0, 0.0, 120.0),
        Err(PricingError::AboveMaximum { .. })
    ));
    // Exactly intrinsic: zero vol.
    assert_eq!(
        black76_implied_vol(c, 120.0, 100.0, 1.0, 0.0, 20.0),
        Ok(0.0)
    );
    // Expired: no information about vol.
    assert!(matches!(
        black76_implied_vol(c, 120.0, 100.0, 0.0, 0.0, 20.0),
        Err(PricingError::BadTime(_))
    ));
    // Deep out of the money, 1 hour, 300% vol: still found.
    let t = 1.0 / 8760.0;
    let p = black76_price(c, 100.0, 130.0, t, 3.0, 0.0).unwrap();
    let iv = black76_implied_vol(c, 100.0, 130.0, t, 0.0, p).unwrap();
    assert!((iv - 3.0).abs() < 1e-9, "{iv}");
}

/// Deep out-of-the-money prices keep their relative accuracy (no cancellation to zero):
/// reference values from mpmath at 60 digits (Black-76, r = 0).
#[test]
fn deep_out_of_the_money_prices_keep_relative_accuracy() {
    let cases = [
        (100.0, 130.0, 1.0 / 8760.0, 3.0, 5.893_469_435_244_536e-17),
        (100.0, 200.0, 0.01, 0.2, 1.409_759_184_996_158_7e-264),
        (100.0, 105.0, 0.01, 0.2, 0.004_946_019_467_194_996),
        (100.0, 300.0, 1.0, 0.5, 0.415_974_223_400_078_7),
        (100.0, 10_000.0, 3.0, 3.0, 93.186_676_222_297_58),
    ];
    for (f, k, t, vol, want) in cases {
        let got = black76_price(OptionType::Call, f, k, t, vol, 0.0).unwrap();
        assert!(
            ((got - want) / want).abs() < 1e-9,
            "{f} {k} {t} {vol}: {got} vs {want}"
        );
    }
}
