//! Implied volatility from a price: a safeguarded Newton iteration with a bisection fallback.
//!
//! The price is first reduced to the undiscounted out-of-the-money option on the forward
//! (put-call parity removes the intrinsic value, which would otherwise drown the time value
//! deep in the money). The out-of-the-money price `c(v)` of the total standard deviation
//! `v = sigma sqrt(T)` rises monotonically from 0 to its bound (F for a call, K for a put);
//! it is convex below `v_c = sqrt(2 |ln(F/K)|)` and concave above, so Newton started at the
//! inflection point `v_c` converges monotonically (Jaeckel, "By implication", 2006). For
//! small prices the iteration runs on `ln c(v)`, which is nearly linear in `1/v` deep out of
//! the money. Every step is kept inside a bracket `[lo, hi]` that always contains the root;
//! a step that leaves it is replaced by bisection, so the solver cannot diverge.

use super::black::{validate_common, Model, OptionInputs, OptionType, MAX_ABS_RATE, MAX_VOL};
use super::error::PricingError;
use super::normal::{norm_cdf, norm_pdf};

const MAX_ITER: usize = 100;

/// Undiscounted out-of-the-money Black price on forward `f` as a function of the total
/// standard deviation `v`, with its derivative dc/dv.
#[inline]
fn otm_price_and_vega(kind: OptionType, f: f64, k: f64, x: f64, v: f64) -> (f64, f64) {
    if v <= 0.0 {
        return (0.0, 0.0);
    }
    let d1 = x / v + 0.5 * v;
    let d2 = d1 - v;
    let c = match kind {
        OptionType::Call => f * norm_cdf(d1) - k * norm_cdf(d2),
        OptionType::Put => k * norm_cdf(-d2) - f * norm_cdf(-d1),
    };
    (c.max(0.0), f * norm_pdf(d1))
}

impl OptionInputs {
    /// The volatility (1.00 = 100%) at which this option is worth `price` (same currency and
    /// discounting as [`OptionInputs::price`]). The `vol` field is ignored.
    ///
    /// Returns 0 when the price equals the discounted intrinsic value. Relative accuracy of
    /// the repriced option is about 1e-14 where the option's vega is not negligible.
    ///
    /// # Errors
    /// An invalid input; `t_years == 0` ([`PricingError::BadTime`]); a price below intrinsic
    /// value or above the price at vol [`MAX_VOL`].
    pub fn implied_vol(&self, price: f64) -> Result<f64, PricingError> {
        validate_common(self.underlying, self.strike, self.t_years, self.rate)?;
        if self.t_years <= 0.0 {
            return Err(PricingError::BadTime(self.t_years));
        }
        if !(price >= 0.0 && price.is_finite()) {
            return Err(PricingError::BadPrice(price));
        }
        let q = match self.model {
            Model::Bsm => {
                if !(-MAX_ABS_RATE..=MAX_ABS_RATE).contains(&self.div) {
                    return Err(PricingError::BadDividend(self.div));
                }
                self.div
            }
            Model::Black76 => self.rate,
        };
        let t = self.t_years;
        let dr = (-self.rate * t).exp();
        let f = self.underlying * ((self.rate - q) * t).exp();
        let k = self.strike;
        let x = (self.underlying / k).ln() + (self.rate - q) * t;
        let p = price / dr;
        // Reduce to the out-of-the-money option by put-call parity.
        let (otm, intrinsic) = if x > 0.0 {
            (
                OptionType::Put,
                if self.kind == OptionType::Call {
                    f - k
                } else {
                    0.0
                },
            )
        } else {
            (
                OptionType::Call,
                if self.kind == OptionType::Put {
                    k - f
                } else {
                    0.0
                },
            )
        };
        let target = p - intrinsic;
        // Tolerate rounding of the intrinsic value itself.
        let tol0 = 4.0 * f64::EPSILON * (f.max(k));
        if target < -tol0 {
            return Err(PricingError::BelowIntrinsic {
                price,
                intrinsic: intrinsic * dr,
            });
        }
        if target <= 0.0 {
            return Ok(0.0);
        }
        let sqrt_t = t.sqrt();
        let v_max = MAX_VOL * sqrt_t;
        let (c_max, _) = otm_price_and_vega(otm, f, k, x, v_max);
        if target > c_max {
            return Err(PricingError::AboveMaximum {
                price,
                bound: (c_max + intrinsic) * dr,
            });
        }
        let bound = if otm == OptionType::Call { f } else { k };
        let use_log = target < 0.05 * bound;
        let ln_target = target.ln();
        let (mut lo, mut hi) = (0.0_f64, v_max);
        let vc = (2.0 * x.abs()).sqrt();
        let mut v = if vc > 0.0 && vc < v_max {
            vc
        } else {
            // At the money: c ~ F v / sqrt(2 pi).
            (target / bound * 2.506_628_274_631_000_5).clamp(1e-8, v_max)
        };
        for _ in 0..MAX_ITER {
            let (c, dc) = otm_price_and_vega(otm, f, k, x, v);
            if c < target {
                lo = v;
            } else {
                hi = v;
            }
            if c == target {
                break;
            }
            let step = if use_log {
                if c > 0.0 && dc > 0.0 {
                    (ln_target - c.ln()) * c / dc
                } else {
                    f64::NAN
                }
            } else if dc > 0.0 {
                (target - c) / dc
            } else {
                f64::NAN
            };
            let mut next = v + step;
            if !(next > lo && next < hi) {
                next = 0.5 * (lo + hi);
            }
            let done = (next - v).abs() <= 1e-15 * v.max(1e-300) || hi - lo <= 1e-16 * hi;
            v = next;
            if done {
                break;
            }
        }
        Ok(v / sqrt_t)
    }
}

/// Black-76 implied volatility of an option on a forward, from its price discounted at `rate`.
///
/// # Errors
/// See [`OptionInputs::implied_vol`].
///
/// # Examples
/// ```
/// use pricing::{black76_implied_vol, black76_price, OptionType};
/// let p = black76_price(OptionType::Put, 9000.0, 8000.0, 0.25, 0.8, 0.0).unwrap();
/// let iv = black76_implied_vol(OptionType::Put, 9000.0, 8000.0, 0.25, 0.0, p).unwrap();
/// assert!((iv - 0.8).abs() < 1e-12);
/// ```
pub fn black76_implied_vol(
    kind: OptionType,
    forward: f64,
    strike: f64,
    t_years: f64,
    rate: f64,
    price: f64,
) -> Result<f64, PricingError> {
    // The vol is what is solved for: the input's is ignored.
    OptionInputs::black76(kind, forward, strike, t_years, 0.0, rate).implied_vol(price)
}
