//! The standard normal distribution to full double precision.
//!
//! `erfc` is W. J. Cody's rational Chebyshev approximation (Cody, "Rational Chebyshev
//! approximations for the error function", Math. Comp. 23 (1969) 631-637; the coefficients
//! are those of his SPECFUN routine `CALERF`, netlib.org/specfun/erf). It is accurate to
//! about 1e-16 relative over the whole real line, including the far tail where
//! `1 - erf(x)` would cancel. The tail of the normal CDF is therefore computed directly as
//! `erfc(-x / sqrt 2) / 2`, never as `1 - something`.

/// 1 / sqrt(2 pi).
pub const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;
const INV_SQRT_PI: f64 = 0.564_189_583_547_756_3;
const FRAC_1_SQRT_2: f64 = std::f64::consts::FRAC_1_SQRT_2;

// Cody's coefficients, digits kept as published (the extra digits round to the same f64).

#[allow(clippy::excessive_precision)]
const A: [f64; 5] = [
    3.161_123_743_870_565_6,
    113.864_154_151_050_16,
    377.485_237_685_302_02,
    3_209.377_589_138_469_5,
    0.185_777_706_184_603_15,
];
#[allow(clippy::excessive_precision)]
const B: [f64; 4] = [
    23.601_290_952_344_122,
    244.024_637_934_444_17,
    1_282.616_526_077_372_3,
    2_844.236_833_439_170_6,
];
#[allow(clippy::excessive_precision)]
const C: [f64; 9] = [
    0.564_188_496_988_670_1,
    8.883_149_794_388_376,
    66.119_190_637_141_63,
    298.635_138_197_400_13,
    881.952_221_241_769_1,
    1_712.047_612_634_070_6,
    2_051.078_377_826_071_5,
    1_230.339_354_797_997_2,
    2.153_115_354_744_038_5e-8,
];
#[allow(clippy::excessive_precision)]
const D: [f64; 8] = [
    15.744_926_110_709_835,
    117.693_950_891_312_5,
    537.181_101_862_009_9,
    1_621.389_574_566_690_2,
    3_290.799_235_733_459_6,
    4_362.619_090_143_247,
    3_439.367_674_143_721_6,
    1_230.339_354_803_749_4,
];
#[allow(clippy::excessive_precision)]
const P: [f64; 6] = [
    0.305_326_634_961_232_36,
    0.360_344_899_949_804_45,
    0.125_781_726_111_229_26,
    0.016_083_785_148_742_275,
    6.587_491_615_298_378e-4,
    0.016_315_387_137_302_097,
];
#[allow(clippy::excessive_precision)]
const Q: [f64; 5] = [
    2.568_520_192_289_822,
    1.872_952_849_923_467_3,
    0.527_905_102_951_428_4,
    0.060_518_341_312_441_32,
    0.002_335_204_976_268_691_8,
];

/// `exp(-y * y)` without losing the low bits of `y * y` (Cody's splitting at 1/16).
///
/// `erfc` calls it for `0.46875 < y < 26.543` only (or NaN), where `y * 16` is below 425:
/// truncating through an integer gives exactly `trunc` (a NaN becomes 0, and the result
/// NaN all the same) without the libm call that `f64::trunc` is on x86-64 without SSE4.1.
///
/// `ysq` is a multiple of 1/16 below 26.6, so `exp(-ysq * ysq)` takes one of
/// [`EXP_NEG_SQ_STEPS`] values: they are computed once, by the same expression, and read
/// from a table (one exp per call instead of two; bit for bit the same).
#[inline]
fn exp_neg_sq(y: f64) -> f64 {
    let steps = trunc_small(y * 16.0);
    let ysq = steps / 16.0;
    let del = (y - ysq) * (y + ysq);
    let head = match exp_neg_sq_table().get(steps as usize) {
        Some(&e) => e,
        None => exp_neg_step(ysq),
    };
    head * (-del).exp()
}

/// Entries of the table of `exp(-(k/16)^2)`: every k that `erfc` reaches (y < 26.543).
pub const EXP_NEG_SQ_STEPS: usize = 425;

/// `exp(-ysq * ysq)`, the expression both the table and its fallback evaluate.
#[inline]
fn exp_neg_step(ysq: f64) -> f64 {
    (-ysq * ysq).exp()
}

/// Fills the tables behind [`erfc`] (425 exps, no allocation) if they are not yet: a
/// caller with a latency-critical loop calls it at start-up, so that no valuation on the
/// loop pays for it (`engine::risk::BookRisk::new` does). Idempotent and thread-safe.
pub fn fill_tables() {
    exp_neg_sq_table();
}

/// The table of `exp(-(k/16)^2)`, k < [`EXP_NEG_SQ_STEPS`]: filled on first use or by
/// [`fill_tables`], then one atomic load per read.
fn exp_neg_sq_table() -> &'static [f64; EXP_NEG_SQ_STEPS] {
    static TABLE: std::sync::OnceLock<[f64; EXP_NEG_SQ_STEPS]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| std::array::from_fn(|k| exp_neg_step(k as f64 / 16.0)))
}

/// `x.trunc()` for `0 <= x < 2^63` (and 0 for NaN), by the integer conversion.
#[inline]
fn trunc_small(x: f64) -> f64 {
    x as i64 as f64
}

/// Complementary error function `erfc(x) = 1 - erf(x)`, relative error about 1e-16.
///
/// Returns 0 for `x > 26.55` (underflow), 2 for `x < -6.1`, and NaN only for NaN input.
#[inline]
pub fn erfc(x: f64) -> f64 {
    let y = x.abs();
    let result = if y <= 0.468_75 {
        // erfc = 1 - erf on the central interval, where erf is small enough not to cancel.
        let ysq = if y > 1.11e-16 { y * y } else { 0.0 };
        let mut xnum = A[4] * ysq;
        let mut xden = ysq;
        for i in 0..3 {
            xnum = (xnum + A[i]) * ysq;
            xden = (xden + B[i]) * ysq;
        }
        return 1.0 - x * (xnum + A[3]) / (xden + B[3]);
    } else if y <= 4.0 {
        let mut xnum = C[8] * y;
        let mut xden = y;
        for i in 0..7 {
            xnum = (xnum + C[i]) * y;
            xden = (xden + D[i]) * y;
        }
        exp_neg_sq(y) * (xnum + C[7]) / (xden + D[7])
    } else if y >= 26.543 {
        0.0
    } else {
        let ysq = 1.0 / (y * y);
        let mut xnum = P[5] * ysq;
        let mut xden = ysq;
        for i in 0..4 {
            xnum = (xnum + P[i]) * ysq;
            xden = (xden + Q[i]) * ysq;
        }
        let r = ysq * (xnum + P[4]) / (xden + Q[4]);
        exp_neg_sq(y) * (INV_SQRT_PI - r) / y
    };
    if x < 0.0 {
        2.0 - result
    } else {
        result
    }
}

/// Standard normal cumulative distribution `N(x)`, relative error about 1e-15 in both tails.
#[inline]
pub fn norm_cdf(x: f64) -> f64 {
    0.5 * erfc(-x * FRAC_1_SQRT_2)
}

/// Standard normal density `n(x) = exp(-x^2/2) / sqrt(2 pi)`.
#[inline]
pub fn norm_pdf(x: f64) -> f64 {
    INV_SQRT_2PI * (-0.5 * x * x).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values of erfc from CPython's `math.erfc` (correctly rounded to within 1 ulp).
    #[test]
    fn erfc_matches_high_precision_values() {
        let cases = [
            (0.0, 1.0),
            (0.1, 0.8875370839817152),
            (0.46875, 0.507386526782062),
            (0.5, 0.4795001221869535),
            (1.0, 0.15729920705028513),
            (2.0, 0.004677734981047265),
            (3.0, 2.2090496998585438e-05),
            (4.0, 1.541725790028002e-08),
            (4.5, 1.9661604415428873e-10),
            (5.0, 1.5374597944280351e-12),
            (10.0, 2.088487583762545e-45),
            (26.0, 5.663192408856143e-296),
            (-1.0, 1.842700792949715),
            (-3.0, 1.9999779095030015),
        ];
        for (x, want) in cases {
            let got = erfc(x);
            assert!(
                ((got - want) / want).abs() < 2e-15,
                "erfc({x}) = {got}, want {want}"
            );
        }
    }

    /// `exp_neg_sq`'s truncation is `f64::trunc` bit for bit on every `y * 16` erfc can
    /// reach (y in (0.46875, 26.543)): the values next to each integer, and a sweep.
    #[test]
    fn trunc_small_is_trunc_where_erfc_uses_it() {
        let mut xs = vec![0.0, 7.5, 424.688, 424.999_999_999_999_9];
        for k in 7..=425 {
            let k = f64::from(k);
            xs.extend([k, k.next_down(), k.next_up(), k + 0.5]);
        }
        let mut y = 0.468_75;
        while y < 26.543 {
            xs.push(y * 16.0);
            y += 0.000_123_7;
        }
        for x in xs {
            assert_eq!(trunc_small(x).to_bits(), x.trunc().to_bits(), "x = {x}");
        }
        assert!(exp_neg_sq(f64::NAN).is_nan());
    }

    /// The table's `exp(-ysq^2)` is the direct expression's, bit for bit, on a sweep of
    /// every interval erfc uses it on; and erfc reaches no step beyond the table.
    #[test]
    fn exp_neg_sq_from_the_table_is_the_two_exps_bit_for_bit() {
        let direct = |y: f64| {
            let ysq = (y * 16.0).trunc() / 16.0;
            let del = (y - ysq) * (y + ysq);
            (-ysq * ysq).exp() * (-del).exp()
        };
        let mut y: f64 = 0.468_75;
        while y < 26.543 {
            for y in [y, y.next_up()] {
                assert_eq!(exp_neg_sq(y).to_bits(), direct(y).to_bits(), "y = {y}");
            }
            y += 0.000_377_1;
        }
        assert!(trunc_small(26.543 * 16.0) < EXP_NEG_SQ_STEPS as f64);
    }

    #[test]
    fn norm_cdf_tails_are_symmetric_and_finite() {
        for i in -400..=400 {
            let x = f64::from(i) * 0.1;
            let s = norm_cdf(x) + norm_cdf(-x);
            assert!((s - 1.0).abs() < 1e-15, "x={x}");
        }
        assert_eq!(norm_cdf(-40.0), 0.0);
        assert_eq!(norm_cdf(40.0), 1.0);
        assert_eq!(norm_cdf(f64::INFINITY), 1.0);
        assert_eq!(norm_cdf(f64::NEG_INFINITY), 0.0);
    }
}
