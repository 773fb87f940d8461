//! Property tests: the incremental net delta of random books under random events stays
//! within its stated bound of a full recomputation after every event, and equals it (1e-9)
//! after exact re-evaluation.

use engine::pricing::{Model, OptionType, Settlement};
use engine::risk::{BookRisk, InverseDelta, OptionSpec, RiskConfig, NS_PER_YEAR};
use proptest::prelude::*;

const UND: u32 = 0;
const DAY_NS: u64 = 86_400_000_000_000;
const T0_NS: u64 = 1_600_000_000_000_000_000;

#[derive(Debug, Clone)]
struct OptGen {
    fwd: Option<usize>,
    expiry_days: u64,
    log_k: f64,
    vol: f64,
    call: bool,
    inverse: bool,
    mult_small: bool,
    qty: i32,
}

#[derive(Debug, Clone)]
enum Event {
    /// Underlying log-return (includes 10% gaps).
    Move(f64),
    /// One forward's log-return.
    ForwardMove(usize, f64),
    /// New vol of option (index mod n).
    Vol(usize, f64),
    /// Fill on option (index mod n).
    Fill(usize, i32),
    /// Time passes, in seconds.
    Time(u64),
    /// One idle step.
    Idle,
}

fn opt_gen() -> impl Strategy<Value = OptGen> {
    (
        prop::option::of(0usize..4),
        prop::sample::select(vec![2u64, 7, 30, 90, 365]),
        -1.0f64..1.0,
        0.1f64..2.0,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        -50i32..50,
    )
        .prop_map(
            |(fwd, expiry_days, log_k, vol, call, inverse, mult_small, qty)| OptGen {
                fwd,
                expiry_days,
                log_k,
                vol,
                call,
                inverse,
                mult_small,
                qty,
            },
        )
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        4 => (-0.002f64..0.002).prop_map(Event::Move),
        2 => (-0.03f64..0.03).prop_map(Event::Move),
        1 => prop::sample::select(vec![-0.1f64, 0.1, -0.105, 0.095]).prop_map(Event::Move),
        1 => (0usize..4, -0.01f64..0.01).prop_map(|(f, r)| Event::ForwardMove(f, r)),
        2 => (any::<usize>(), 0.1f64..2.0).prop_map(|(i, v)| Event::Vol(i, v)),
        2 => (any::<usize>(), -20i32..20).prop_map(|(i, q)| Event::Fill(i, q)),
        1 => (1u64..7200).prop_map(Event::Time),
        2 => Just(Event::Idle),
    ]
}

const FWD_DAYS: [u64; 4] = [2, 7, 30, 90];

fn build(opts: &[OptGen], inverse_delta: InverseDelta, rates: bool) -> BookRisk {
    let mut book = BookRisk::new(RiskConfig {
        delta_tolerance: 0.01,
        reeval_per_idle_step: 16,
        inverse_delta,
        max_options: opts.len() + 1,
        max_instrument_id: (opts.len() + 16) as u32,
    });
    book.advance_time(T0_NS);
    book.add_underlying(UND, 9000.0).unwrap();
    for (j, days) in FWD_DAYS.iter().enumerate() {
        let px = 9000.0 * (1.0 + 0.002 * j as f64);
        book.add_forward(1 + j as u32, UND, T0_NS + days * DAY_NS, px)
            .unwrap();
    }
    for (i, g) in opts.iter().enumerate() {
        let id = 8 + i as u32;
        let (forward_id, expiry_ns, model) = match g.fwd {
            Some(f) => (
                Some(1 + f as u32),
                T0_NS + FWD_DAYS[f] * DAY_NS,
                Model::Black76,
            ),
            None => (None, T0_NS + g.expiry_days * DAY_NS, Model::Bsm),
        };
        let spec = OptionSpec {
            id,
            underlying_id: UND,
            forward_id,
            strike: (9000.0 * g.log_k.exp()).round().max(1.0),
            expiry_ns,
            kind: if g.call {
                OptionType::Call
            } else {
                OptionType::Put
            },
            model,
            settlement: if g.inverse {
                Settlement::Inverse
            } else {
                Settlement::Linear
            },
            multiplier: if g.mult_small { 0.1 } else { 1.0 },
        };
        book.add_option(spec, g.vol).unwrap();
        book.add_position(id, f64::from(g.qty));
    }
    if rates {
        // Discounting and carry (BSM spot buckets drift with time).
        book.set_rates(UND, 0.04, 0.015).unwrap();
    }
    book
}

fn scale(book: &BookRisk, n: usize) -> f64 {
    let mut s = 1.0;
    for i in 0..n {
        s += book.position(8 + i as u32).unwrap_or(0.0).abs();
    }
    s
}

fn check_within_bound(book: &BookRisk, n: usize, what: &str) -> Result<(), TestCaseError> {
    let inc = *book.underlying(UND).unwrap();
    let exact = book.full_recompute(UND).unwrap();
    let tol = inc.delta_error_bound + 1e-9 * scale(book, n);
    prop_assert!(
        (inc.net_delta - exact.net_delta).abs() <= tol,
        "after {what}: incremental {} exact {} bound {}",
        inc.net_delta,
        exact.net_delta,
        inc.delta_error_bound
    );
    prop_assert!(inc.net_delta.is_finite() && inc.delta_error_bound.is_finite());
    Ok(())
}

fn check_exact(book: &BookRisk, n: usize, what: &str) -> Result<(), TestCaseError> {
    let inc = *book.underlying(UND).unwrap();
    let exact = book.full_recompute(UND).unwrap();
    let tol = 1e-9 * scale(book, n);
    prop_assert!(
        (inc.net_delta - exact.net_delta).abs() <= tol,
        "after {what}: incremental {} exact {} (bound {})",
        inc.net_delta,
        exact.net_delta,
        inc.delta_error_bound
    );
    prop_assert!((inc.vega - exact.vega).abs() <= 1e-9 * scale(book, n) * 1e4);
    Ok(())
}

fn run(
    opts: Vec<OptGen>,
    events: Vec<Event>,
    inverse_delta: InverseDelta,
    rates: bool,
) -> Result<(), TestCaseError> {
    let n = opts.len();
    let mut book = build(&opts, inverse_delta, rates);
    check_exact(&book, n, "set-up")?;
    let mut now = T0_NS;
    let mut px = 9000.0f64;
    let mut fwd_px: Vec<f64> = book.buckets(UND).take(4).map(|b| b.forward).collect();
    for (k, ev) in events.iter().enumerate() {
        match *ev {
            Event::Move(r) => {
                let ratio = r.exp();
                px *= ratio;
                for f in &mut fwd_px {
                    *f *= ratio;
                }
                prop_assert!(book.on_price(UND, px));
            }
            Event::ForwardMove(f, r) => {
                fwd_px[f] *= r.exp();
                prop_assert!(book.on_price(1 + f as u32, fwd_px[f]));
            }
            Event::Vol(i, v) => {
                prop_assert!(book.on_vol(8 + (i % n) as u32, v));
            }
            Event::Fill(i, q) => {
                // An option of an expiry already passed is settled: its fills are refused.
                let id = 8 + (i % n) as u32;
                let settled = book.settlement(id).is_some();
                prop_assert_eq!(book.add_position(id, f64::from(q)), !settled);
            }
            Event::Time(secs) => {
                now += secs * 1_000_000_000;
                book.advance_time(now);
            }
            Event::Idle => {
                book.idle_step();
            }
        }
        check_within_bound(&book, n, &format!("event {k} {ev:?}"))?;
        if !book.underlying(UND).unwrap().within_tolerance {
            // What the hedger does then: re-evaluate the expiries over their share.
            let mut forced = book.clone();
            forced.force_reeval_over_bound(UND);
            let r = *forced.underlying(UND).unwrap();
            prop_assert!(
                r.within_tolerance,
                "bound {} after forcing",
                r.delta_error_bound
            );
            check_within_bound(&forced, n, &format!("force_reeval_over_bound after {k}"))?;
        }
    }
    // A whole idle sweep re-anchors every option at the current state: exact again.
    for _ in 0..(n / 16 + 2) {
        book.idle_step();
    }
    check_exact(&book, n, "a full idle sweep")?;
    book.force_reeval(UND);
    check_exact(&book, n, "force_reeval")?;
    prop_assert!(book.underlying(UND).unwrap().delta_error_bound <= 1e-12);
    let _ = NS_PER_YEAR;
    Ok(())
}

/// A book of `options` random options and `events` random events on it.
fn book_and_events(
    options: std::ops::Range<usize>,
    events: std::ops::Range<usize>,
) -> impl Strategy<Value = (Vec<OptGen>, Vec<Event>)> {
    (
        prop::collection::vec(opt_gen(), options),
        prop::collection::vec(event(), events),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn small_books_stay_within_bound(
        (opts, events) in book_and_events(1..40, 1..60),
        pa in any::<bool>(),
        rates in any::<bool>(),
    ) {
        let conv = if pa { InverseDelta::PremiumAdjusted } else { InverseDelta::Model };
        run(opts, events, conv, rates)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]
    #[test]
    fn large_books_stay_within_bound(
        (opts, events) in book_and_events(1000..10_000, 1..15),
    ) {
        run(opts, events, InverseDelta::PremiumAdjusted, true)?;
    }
}

/// The bound is useful, not just valid: for a 0.5% move on a mixed book it is within a small
/// factor of the actual error and far below the size of the book.
#[test]
fn bound_is_tight_enough_to_act_on() {
    let day = DAY_NS;
    let mut book = BookRisk::new(RiskConfig::default());
    book.advance_time(T0_NS);
    book.add_underlying(UND, 9000.0).unwrap();
    book.add_forward(1, UND, T0_NS + 7 * day, 9010.0).unwrap();
    book.add_forward(2, UND, T0_NS + 90 * day, 9100.0).unwrap();
    let mut id = 10;
    let mut gross = 0.0;
    for (f, days) in [(1u32, 7u64), (2, 90)] {
        for k in [7000.0, 8500.0, 9000.0, 9500.0, 11000.0] {
            for (kind, settlement) in [
                (OptionType::Call, Settlement::Linear),
                (OptionType::Put, Settlement::Inverse),
            ] {
                let spec = OptionSpec {
                    id,
                    underlying_id: UND,
                    forward_id: Some(f),
                    strike: k,
                    expiry_ns: T0_NS + days * day,
                    kind,
                    model: Model::Black76,
                    settlement,
                    multiplier: 1.0,
                };
                book.add_option(spec, 0.7).unwrap();
                let q = if id % 3 == 0 { -10.0 } else { 7.0 };
                book.add_position(id, q);
                gross += f64::abs(q);
                id += 1;
            }
        }
    }
    book.on_price(UND, 9000.0 * 1.005);
    let inc = *book.underlying(UND).unwrap();
    let exact = book.full_recompute(UND).unwrap();
    let err = (inc.net_delta - exact.net_delta).abs();
    assert!(err <= inc.delta_error_bound);
    assert!(
        inc.delta_error_bound < 50.0 * err + 1e-9,
        "{inc:?} err {err}"
    );
    assert!(inc.delta_error_bound < 1e-4 * gross);
    assert!(inc.within_tolerance);
    // Buckets add up to the underlying.
    let sum: f64 = book.buckets(UND).map(|b| b.delta).sum();
    assert!((sum - inc.net_delta).abs() < 1e-9);
    // A 10% gap breaks the tolerance, and the forced path restores exactness.
    book.on_price(UND, 9000.0 * 1.1);
    assert!(!book.underlying(UND).unwrap().within_tolerance);
    book.force_reeval(UND);
    let inc = *book.underlying(UND).unwrap();
    let exact = book.full_recompute(UND).unwrap();
    assert!((inc.net_delta - exact.net_delta).abs() < 1e-9 * gross);
    assert!(inc.within_tolerance);
}

#[test]
fn set_up_errors_are_typed() {
    use engine::risk::RiskError;
    let mut book = BookRisk::new(RiskConfig {
        max_options: 1,
        max_instrument_id: 16,
        ..RiskConfig::default()
    });
    assert!(matches!(
        book.add_underlying(0, f64::NAN),
        Err(RiskError::BadPrice(_))
    ));
    assert_eq!(
        book.add_underlying(99, 1.0),
        Err(RiskError::IdOutOfRange(99))
    );
    book.add_underlying(0, 100.0).unwrap();
    assert_eq!(
        book.add_underlying(0, 100.0),
        Err(RiskError::DuplicateId(0))
    );
    assert_eq!(
        book.add_forward(1, 5, 10, 100.0),
        Err(RiskError::UnknownUnderlying(5))
    );
    book.add_forward(1, 0, DAY_NS, 100.0).unwrap();
    let spec = OptionSpec {
        id: 2,
        underlying_id: 0,
        forward_id: None,
        strike: 100.0,
        expiry_ns: DAY_NS,
        kind: OptionType::Call,
        model: Model::Black76,
        settlement: Settlement::Linear,
        multiplier: 1.0,
    };
    assert_eq!(
        book.add_option(spec, 0.5),
        Err(RiskError::ModelForwardMismatch(2))
    );
    let spec = OptionSpec {
        forward_id: Some(1),
        ..spec
    };
    assert_eq!(
        book.add_option(
            OptionSpec {
                strike: -1.0,
                ..spec
            },
            0.5
        ),
        Err(RiskError::BadStrike(-1.0))
    );
    assert_eq!(book.add_option(spec, 0.0), Err(RiskError::BadVol(0.0)));
    assert_eq!(
        book.add_option(
            OptionSpec {
                multiplier: 0.0,
                ..spec
            },
            0.5
        ),
        Err(RiskError::BadMultiplier(0.0))
    );
    assert!(matches!(
        book.add_option(
            OptionSpec {
                expiry_ns: 2 * DAY_NS,
                ..spec
            },
            0.5
        ),
        Err(RiskError::ExpiryMismatch { .. })
    ));
    book.add_option(spec, 0.5).unwrap();
    assert_eq!(
        book.add_option(OptionSpec { id: 3, ..spec }, 0.5),
        Err(RiskError::CapacityExceeded(1))
    );
    // Event calls reject bad input without changing anything.
    assert!(!book.add_position(7, 1.0));
    assert!(!book.add_position(2, f64::NAN));
    assert!(!book.on_vol(2, f64::INFINITY));
    assert!(!book.on_price(0, -1.0));
    assert!(!book.on_price(2, 100.0));
    assert_eq!(book.position(2), Some(0.0));
}
