//! Closed-form European option prices and Greeks: Black-Scholes-Merton on a spot with a rate
//! and a continuous dividend (or carry) yield, and Black-76 on a forward.
//!
//! Both models share one generalized Black-Scholes kernel: Black-76 is BSM with the forward
//! as the "spot" and a carry yield equal to the rate, so the forward does not drift.
//!
//! # Conventions (every value is per option on 1 unit of underlying, in the premium currency
//! of the formula, i.e. the quote currency; see [`crate::settlement`] for inverse
//! options)
//! - `delta` = dV/dS (BSM, spot delta) or dV/dF (Black-76, the discounted forward delta
//!   `exp(-rT) N(d1)`), in units of the underlying.
//! - `gamma` = d2V/dS2 (or d2V/dF2), per unit of underlying.
//! - `vega` = dV/dsigma per 1.00 (100 vol points) of volatility;
//!   [`Greeks::vega_per_vol_point`] is per 0.01.
//! - `theta` = dV/dt as calendar time passes with the underlying (spot for BSM, forward for
//!   Black-76) held fixed, per year; [`Greeks::theta_per_day`] divides by 365.
//! - `speed` = d3V/dS3, `vanna` = d2V/dS dsigma (per 1.00 vol), `charm` = d(delta)/dt per year
//!   (calendar time passing).
//!
//! # Limits
//! Where the total standard deviation `sigma sqrt(T)` is below 1e-12 (expiry reached or zero
//! vol), the option is worth its discounted deterministic payoff: `delta` is the exact limit
//! (the discounted indicator of being in the money, half of it exactly at the money), and
//! `gamma`, `vega`, `speed`, `vanna` are 0 (their limits are concentrated at the strike).
//! Deep in or out of the money, the normal tails are computed without cancellation
//! ([`crate::normal`]), so prices and Greeks go smoothly to their limits and are never
//! NaN or infinite for inputs accepted by [`OptionInputs::validate`].

use super::error::PricingError;
use super::normal::{norm_cdf, norm_pdf};

/// Total standard deviation below which the option is treated as deterministic.
pub const MIN_STDDEV: f64 = 1e-12;
/// Largest volatility accepted (1000%).
pub const MAX_VOL: f64 = 10.0;
/// Largest time to expiry accepted, in years.
pub const MAX_T_YEARS: f64 = 100.0;
/// Largest |rate| or |dividend yield| accepted (continuously compounded, per year).
pub const MAX_ABS_RATE: f64 = 1.0;
/// Underlying and strike must lie within `[MIN_PRICE, MAX_PRICE]` (keeps every Greek finite).
pub const MIN_PRICE: f64 = 1e-100;
/// See [`MIN_PRICE`].
pub const MAX_PRICE: f64 = 1e100;

/// Call or put.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OptionType {
    /// Right to buy at the strike.
    Call,
    /// Right to sell at the strike.
    Put,
}

impl OptionType {
    /// +1 for a call, -1 for a put.
    #[inline]
    pub fn sign(self) -> f64 {
        match self {
            OptionType::Call => 1.0,
            OptionType::Put => -1.0,
        }
    }
}

/// Pricing model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Model {
    /// Black-Scholes-Merton on a spot with rate `r` and dividend/carry yield `q`.
    Bsm,
    /// Black-76 on a forward (or future) for the option's expiry, discounted at `r`.
    Black76,
}

/// Price and sensitivities of one option on 1 unit of underlying. See the module docs for the
/// conventions (units are in the field docs too).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Greeks {
    /// Option value in the quote currency.
    pub price: f64,
    /// dV/dS (BSM) or dV/dF (Black-76), in units of the underlying.
    pub delta: f64,
    /// d2V/dS2 (or d2V/dF2): change of delta per 1.0 move of the underlying.
    pub gamma: f64,
    /// dV/dsigma per 1.00 of volatility (divide by 100 for one vol point).
    pub vega: f64,
    /// dV/dt per year of calendar time, underlying held fixed (divide by 365 for one day).
    pub theta: f64,
    /// d3V/dS3: change of gamma per 1.0 move of the underlying.
    pub speed: f64,
    /// d2V/dS dsigma: change of delta per 1.00 of volatility.
    pub vanna: f64,
    /// d(delta)/dt per year of calendar time, underlying held fixed.
    pub charm: f64,
}

impl Greeks {
    /// Vega per volatility point (0.01).
    #[inline]
    pub fn vega_per_vol_point(&self) -> f64 {
        self.vega * 0.01
    }
    /// Theta per calendar day (1/365 year).
    #[inline]
    pub fn theta_per_day(&self) -> f64 {
        self.theta / 365.0
    }
    /// Charm per calendar day (1/365 year).
    #[inline]
    pub fn charm_per_day(&self) -> f64 {
        self.charm / 365.0
    }
}

/// All inputs of one European option valuation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptionInputs {
    /// BSM (spot) or Black-76 (forward).
    pub model: Model,
    /// Call or put.
    pub kind: OptionType,
    /// Spot price (BSM) or forward price for the expiry (Black-76).
    pub underlying: f64,
    /// Strike price.
    pub strike: f64,
    /// Time to expiry in years (0 = expiring now).
    pub t_years: f64,
    /// Volatility, 1.00 = 100% per sqrt(year).
    pub vol: f64,
    /// Continuously compounded rate per year (discounting; and drift for BSM).
    pub rate: f64,
    /// Continuously compounded dividend or carry yield per year (BSM only; ignored by
    /// Black-76, whose forward already contains the carry, but still validated).
    pub div: f64,
}

impl OptionInputs {
    /// A Black-76 option on `forward` (quote currency), strike in the quote currency,
    /// `t_years` in years, `vol` 1.00 = 100%, discounted at `rate` per year; no yield.
    pub const fn black76(
        kind: OptionType,
        forward: f64,
        strike: f64,
        t_years: f64,
        vol: f64,
        rate: f64,
    ) -> OptionInputs {
        OptionInputs {
            model: Model::Black76,
            kind,
            underlying: forward,
            strike,
            t_years,
            vol,
            rate,
            div: 0.0,
        }
    }

    /// Checks every input; see [`PricingError`] for the accepted ranges.
    ///
    /// # Errors
    /// The first invalid input, as a typed [`PricingError`].
    pub fn validate(&self) -> Result<(), PricingError> {
        validate_common(self.underlying, self.strike, self.t_years, self.rate)?;
        if !(0.0..=MAX_VOL).contains(&self.vol) {
            return Err(PricingError::BadVol(self.vol));
        }
        if !(-MAX_ABS_RATE..=MAX_ABS_RATE).contains(&self.div) {
            return Err(PricingError::BadDividend(self.div));
        }
        Ok(())
    }

    /// A Black-Scholes-Merton option on `spot` (quote currency), strike in the quote
    /// currency, `t_years` in years, `vol` 1.00 = 100%, rate `rate` and yield `div` per year.
    #[allow(clippy::too_many_arguments)]
    pub const fn bsm(
        kind: OptionType,
        spot: f64,
        strike: f64,
        t_years: f64,
        vol: f64,
        rate: f64,
        div: f64,
    ) -> OptionInputs {
        OptionInputs {
            model: Model::Bsm,
            kind,
            underlying: spot,
            strike,
            t_years,
            vol,
            rate,
            div,
        }
    }

    /// Price and all Greeks.
    ///
    /// # Errors
    /// An invalid input (see [`OptionInputs::validate`]).
    pub fn greeks(&self) -> Result<Greeks, PricingError> {
        self.validate()?;
        let (s, k, t) = (self.underlying, self.strike, self.t_years);
        Ok(gbs_greeks(
            self.kind,
            s,
            k,
            t,
            self.vol,
            self.rate,
            self.carry(),
        ))
    }

    /// Price only (cheaper than [`OptionInputs::greeks`]).
    ///
    /// # Errors
    /// An invalid input (see [`OptionInputs::validate`]).
    pub fn price(&self) -> Result<f64, PricingError> {
        self.validate()?;
        let (s, k, t) = (self.underlying, self.strike, self.t_years);
        Ok(gbs_price(
            self.kind,
            s,
            k,
            t,
            self.vol,
            self.rate,
            self.carry(),
        ))
    }

    /// The `q` of the generalized Black-Scholes kernels: the yield for BSM, the rate for
    /// Black-76 (a forward grows at zero cost of carry).
    fn carry(&self) -> f64 {
        match self.model {
            Model::Bsm => self.div,
            Model::Black76 => self.rate,
        }
    }
}

pub(crate) fn validate_common(
    underlying: f64,
    strike: f64,
    t_years: f64,
    rate: f64,
) -> Result<(), PricingError> {
    if !(MIN_PRICE..=MAX_PRICE).contains(&underlying) {
        return Err(PricingError::BadUnderlying(underlying));
    }
    if !(MIN_PRICE..=MAX_PRICE).contains(&strike) {
        return Err(PricingError::BadStrike(strike));
    }
    if !(0.0..=MAX_T_YEARS).contains(&t_years) {
        return Err(PricingError::BadTime(t_years));
    }
    if !(-MAX_ABS_RATE..=MAX_ABS_RATE).contains(&rate) {
        return Err(PricingError::BadRate(rate));
    }
    Ok(())
}

/// Black-76 price of a European option on a forward, discounted at `rate`.
///
/// `forward` and `strike` in the quote currency, `t_years` in years, `vol` 1.00 = 100%.
///
/// # Errors
/// An invalid input (see [`OptionInputs::validate`]).
///
/// # Examples
/// ```
/// use pricing::{black76_price, OptionType};
/// let p = black76_price(OptionType::Call, 100.0, 100.0, 1.0, 0.2, 0.0).unwrap();
/// assert!((p - 7.965567455405804).abs() < 1e-12);
/// ```
pub fn black76_price(
    kind: OptionType,
    forward: f64,
    strike: f64,
    t_years: f64,
    vol: f64,
    rate: f64,
) -> Result<f64, PricingError> {
    OptionInputs::black76(kind, forward, strike, t_years, vol, rate).price()
}

/// Black-76 price and Greeks (delta = dV/dF, the discounted forward delta).
///
/// # Errors
/// An invalid input (see [`OptionInputs::validate`]).
pub fn black76_greeks(
    kind: OptionType,
    forward: f64,
    strike: f64,
    t_years: f64,
    vol: f64,
    rate: f64,
) -> Result<Greeks, PricingError> {
    OptionInputs::black76(kind, forward, strike, t_years, vol, rate).greeks()
}

/// Black-Scholes-Merton price and Greeks on a spot with rate `rate` and yield `div`.
///
/// # Errors
/// An invalid input (see [`OptionInputs::validate`]).
pub fn bsm_greeks(
    kind: OptionType,
    spot: f64,
    strike: f64,
    t_years: f64,
    vol: f64,
    rate: f64,
    div: f64,
) -> Result<Greeks, PricingError> {
    OptionInputs::bsm(kind, spot, strike, t_years, vol, rate, div).greeks()
}

/// Black-Scholes-Merton price.
///
/// # Errors
/// An invalid input (see [`OptionInputs::validate`]).
pub fn bsm_price(
    kind: OptionType,
    spot: f64,
    strike: f64,
    t_years: f64,
    vol: f64,
    rate: f64,
    div: f64,
) -> Result<f64, PricingError> {
    OptionInputs::bsm(kind, spot, strike, t_years, vol, rate, div).price()
}

/// d1, d2 (and whether the option is deterministic) at `x` = ln(F/K) and total standard
/// deviation `v`. For a deterministic option, d1 = d2 = +-inf (0 exactly at the money), so
/// N(d) gives the exact limit and n(d) is never used.
#[inline]
fn d1_d2(x: f64, v: f64) -> (f64, f64, bool) {
    if v < MIN_STDDEV {
        let d = if x > 0.0 {
            f64::INFINITY
        } else if x < 0.0 {
            f64::NEG_INFINITY
        } else {
            0.0
        };
        (d, d, true)
    } else {
        let d1 = x / v + 0.5 * v;
        (d1, d1 - v, false)
    }
}

/// Generalized Black-Scholes price (unchecked inputs; Black-76 is `q = r`).
#[inline]
pub(crate) fn gbs_price(kind: OptionType, s: f64, k: f64, t: f64, vol: f64, r: f64, q: f64) -> f64 {
    let dr = (-r * t).exp();
    let dq = (-q * t).exp();
    let v = vol * t.sqrt();
    // ln(F/K) with F = S exp((r - q) T).
    let (d1, d2, _) = d1_d2((s / k).ln() + (r - q) * t, v);
    let p = match kind {
        OptionType::Call => s * dq * norm_cdf(d1) - k * dr * norm_cdf(d2),
        OptionType::Put => k * dr * norm_cdf(-d2) - s * dq * norm_cdf(-d1),
    };
    p.max(0.0)
}

/// Generalized Black-Scholes price and Greeks, with the conventions of [`Greeks`].
///
/// `s` is the spot (or forward), `k` the strike, `t` the time to expiry in years, `vol` the
/// annual volatility (0.25 = 25%), `r` and `q` the continuously compounded rate and carry
/// yield per year; Black-76 is `q = r`. The inputs are NOT validated: this is the unchecked
/// kernel that [`bsm_greeks`] and [`black76_greeks`] call after validation, exposed for the
/// engine's incremental risk, which validates once per option and then reprices in its loop
/// (through [`GbsTerms`], which computes only the Greeks asked for).
#[inline]
pub fn gbs_greeks(kind: OptionType, s: f64, k: f64, t: f64, vol: f64, r: f64, q: f64) -> Greeks {
    let at = GbsAt {
        s,
        k,
        t,
        sqrt_t: t.sqrt(),
        r,
        q,
        dr: (-r * t).exp(),
        dq: (-q * t).exp(),
    };
    GbsTerms::new(kind, &at, vol, (s / k).ln() + (r - q) * t).greeks()
}

/// The inputs of one generalized Black-Scholes valuation, with the factors that depend only
/// on time already evaluated: a caller that values many options of one expiry (the engine's
/// risk book) computes `sqrt_t`, `dr` and `dq` once per expiry and clock tick instead of once
/// per option. Unchecked, as [`gbs_greeks`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GbsAt {
    /// Spot (BSM) or forward (Black-76), quote currency.
    pub s: f64,
    /// Strike, quote currency.
    pub k: f64,
    /// Time to expiry, years.
    pub t: f64,
    /// `t.sqrt()`, exactly (the Greeks are bit for bit those of [`gbs_greeks`] only then).
    pub sqrt_t: f64,
    /// Discount rate per year, continuously compounded.
    pub r: f64,
    /// Carry yield per year (`r` for Black-76).
    pub q: f64,
    /// `(-r * t).exp()`, exactly.
    pub dr: f64,
    /// `(-q * t).exp()`, exactly.
    pub dq: f64,
}

/// d1, d2 and the normal distribution's values at them for one option: the transcendental
/// work of a valuation, done once, from which [`GbsTerms::greeks`] or single Greeks
/// ([`GbsTerms::vega`], [`GbsTerms::theta`]) take a few multiplications each. The values are
/// bit for bit those of [`gbs_greeks`] for the same inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GbsTerms {
    at: GbsAt,
    /// +1 for a call, -1 for a put.
    w: f64,
    /// Total standard deviation `vol * sqrt_t`.
    pub v: f64,
    /// d1 (+-inf, or 0 exactly at the money, for a deterministic option).
    pub d1: f64,
    /// d1 - v.
    pub d2: f64,
    /// `v` is below [`MIN_STDDEV`]: the option is worth its discounted payoff.
    pub deterministic: bool,
    /// N(w d1), the probability of the option's side at d1.
    pub nw1: f64,
    /// N(w d2).
    pub nw2: f64,
    /// n(d1), the normal density (0 for a deterministic option, where it is not used).
    pub pdf1: f64,
}

impl GbsTerms {
    /// The terms of a `kind` option at `at` with volatility `vol` (1.00 = 100%) and
    /// `x` = ln(F/K) = `(s / k).ln() + (r - q) * t` (a caller that holds ln(F/K) already
    /// passes it; for Black-76, `r - q` is 0 and `x` is `(s / k).ln()`).
    #[inline]
    pub fn new(kind: OptionType, at: &GbsAt, vol: f64, x: f64) -> GbsTerms {
        Self::with_sides(kind, at, vol, x, true, true)
    }

    /// [`GbsTerms::new`] for a caller that reads one side's probability only, at zero carry
    /// (`at.r == 0` and `at.q == 0`: a crypto book's rate): `nw1` alone when `side_d2` is
    /// false (a plain delta), `nw2` alone when it is true (a premium-adjusted delta). The
    /// other is left 0 instead of costing an `erfc`: it enters [`GbsTerms::theta`] only
    /// multiplied by a rate of 0, so the vega and the theta are bit for bit those of
    /// [`GbsTerms::new`], and so are `d1`, `d2`, `pdf1` and the side read. The price (and
    /// [`GbsTerms::greeks`]) need both sides: not from these terms.
    #[inline]
    pub fn new_zero_carry_one_side(
        kind: OptionType,
        at: &GbsAt,
        vol: f64,
        x: f64,
        side_d2: bool,
    ) -> GbsTerms {
        debug_assert!(at.r == 0.0 && at.q == 0.0, "zero carry only");
        Self::with_sides(kind, at, vol, x, !side_d2, side_d2)
    }

    /// The terms, with N(w d1) and N(w d2) only where asked (0 where not).
    #[inline(always)]
    fn with_sides(
        kind: OptionType,
        at: &GbsAt,
        vol: f64,
        x: f64,
        side_d1: bool,
        side_d2: bool,
    ) -> GbsTerms {
        let v = vol * at.sqrt_t;
        let (d1, d2, deterministic) = d1_d2(x, v);
        let w = kind.sign();
        GbsTerms {
            at: *at,
            w,
            v,
            d1,
            d2,
            deterministic,
            nw1: if side_d1 { norm_cdf(w * d1) } else { 0.0 },
            nw2: if side_d2 { norm_cdf(w * d2) } else { 0.0 },
            pdf1: if deterministic { 0.0 } else { norm_pdf(d1) },
        }
    }

    /// dV/dsigma per 1.00 of volatility (0 for a deterministic option).
    #[inline]
    pub fn vega(&self) -> f64 {
        if self.deterministic {
            return 0.0;
        }
        self.at.s * (self.at.dq * self.pdf1) * self.at.sqrt_t
    }

    /// dV/dt per year of calendar time, the underlying (spot or forward) held fixed.
    #[inline]
    pub fn theta(&self) -> f64 {
        let theta_carry = self.theta_carry();
        if self.deterministic {
            return theta_carry;
        }
        let a = &self.at;
        // -S dq n(d1) sigma / (2 sqrt T) written with v = sigma sqrt T.
        -a.s * (a.dq * self.pdf1) * self.v / (2.0 * a.t) + theta_carry
    }

    /// The theta terms that do not involve the density.
    #[inline]
    fn theta_carry(&self) -> f64 {
        let a = &self.at;
        self.w * (a.q * a.s * a.dq * self.nw1 - a.r * a.k * a.dr * self.nw2)
    }

    /// Price and every Greek, with the conventions of [`Greeks`].
    #[inline]
    pub fn greeks(&self) -> Greeks {
        let (a, w) = (&self.at, self.w);
        let (s, k, t, r, q, dq) = (a.s, a.k, a.t, a.r, a.q, a.dq);
        let (nw1, d1, d2, v) = (self.nw1, self.d1, self.d2, self.v);
        let price = (w * (s * dq * nw1 - k * a.dr * self.nw2)).max(0.0);
        let delta = w * dq * nw1;
        let charm_carry = w * q * dq * nw1;
        if self.deterministic {
            return Greeks {
                price,
                delta,
                theta: self.theta_carry(),
                charm: charm_carry,
                ..Greeks::default()
            };
        }
        let dq_pdf1 = dq * self.pdf1;
        let gamma = dq_pdf1 / (s * v);
        let speed = -gamma / s * (d1 / v + 1.0);
        // -dq n(d1) d2 / sigma written with v.
        let vanna = -dq_pdf1 * d2 * a.sqrt_t / v;
        // -dq n(d1) (2 (r - q) T - d2 v) / (2 T v).
        let charm = charm_carry - dq_pdf1 * ((r - q) / v - d2 / (2.0 * t));
        Greeks {
            price,
            delta,
            gamma,
            vega: self.vega(),
            theta: self.theta(),
            speed,
            vanna,
            charm,
        }
    }
}
