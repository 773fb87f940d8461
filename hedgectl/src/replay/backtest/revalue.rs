//! Full-revaluation PnL attribution of one option between two observations.
//!
//! The value of one option moves from `(F0, vol0, t0)` to `(F1, vol1, t1)` (its expiry's
//! forward, its mark's implied vol, its time to expiry). It is repriced with Black-76 (the
//! pricing crate, rate 0, as the backtest values options and as the exchange marks them) one
//! factor at a time, in this order:
//!
//! 1. **underlying**: `V(F1, vol0, t0) - V(F0, vol0, t0)`, split into the first-order term
//!    `delta(F0, vol0, t0) x (F1 - F0)` and the rest, the **gamma** part (every order above the
//!    first, exactly, not 1/2 gamma x move^2);
//! 2. **vega**: `V(F1, vol1, t0) - V(F1, vol0, t0)`;
//! 3. **theta**: `V(F1, vol1, t1) - V(F1, vol1, t0)`.
//!
//! The four terms add up to `V(F1, vol1, t1) - V(F0, vol0, t0)` to rounding. Cross terms
//! (vanna, charm, ...) are not left over: each factor's step carries those with the factors
//! moved before it, which is what the order states.

use engine::pricing::{black76_greeks, black76_price, OptionType};

/// What one option's value depends on at an observation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptionState {
    /// Forward of the option's expiry, quote currency.
    pub fwd: f64,
    /// Implied vol of its last mark, 1.00 = 100%.
    pub vol: f64,
    /// Time to expiry, years (0 at and after the expiry: intrinsic value).
    pub t_years: f64,
}

/// The change of one option's value (per unit of underlying, quote currency) by factor.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Split {
    /// `delta(F0, vol0, t0) x (F1 - F0)`.
    pub first_order: f64,
    /// The underlying's move beyond the first order: `V(F1,vol0,t0) - V(F0,vol0,t0) - first_order`.
    pub gamma: f64,
    /// `V(F1, vol1, t0) - V(F1, vol0, t0)`.
    pub vega: f64,
    /// `V(F1, vol1, t1) - V(F1, vol1, t0)`.
    pub theta: f64,
    /// The part of `first_order` that a coin option's premium-adjusted delta leaves out:
    /// `V(F0, vol0, t0) / F0 x (F1 - F0)`, the move of the premium as coin (not a part of
    /// [`Split::total`]; the caller keeps it for inverse options only).
    pub premium: f64,
}

impl Split {
    /// Every part times `k` (position x contract multiplier).
    pub fn scaled(self, k: f64) -> Split {
        Split {
            first_order: self.first_order * k,
            gamma: self.gamma * k,
            vega: self.vega * k,
            theta: self.theta * k,
            premium: self.premium * k,
        }
    }

    /// Adds `o` part by part.
    pub fn add(&mut self, o: Split) {
        self.first_order += o.first_order;
        self.gamma += o.gamma;
        self.vega += o.vega;
        self.theta += o.theta;
        self.premium += o.premium;
    }

    /// The sum of the parts: the whole change of value.
    pub fn total(&self) -> f64 {
        self.first_order + self.gamma + self.vega + self.theta
    }
}

/// Splits the move of one option (`kind`, `strike`) from `from` to `to`, per unit of
/// underlying; None when Black-76 rejects an input (the move then stays in the residual).
pub fn split(kind: OptionType, strike: f64, from: OptionState, to: OptionState) -> Option<Split> {
    let px = |s: OptionState| black76_price(kind, s.fwd, strike, s.t_years, s.vol, 0.0).ok();
    let g0 = black76_greeks(kind, from.fwd, strike, from.t_years, from.vol, 0.0).ok()?;
    let moved = OptionState {
        fwd: to.fwd,
        ..from
    };
    let v_spot = if moved == from { g0.price } else { px(moved)? };
    let revolved = OptionState {
        vol: to.vol,
        ..moved
    };
    let v_vol = if revolved == moved {
        v_spot
    } else {
        px(revolved)?
    };
    let v_time = if to == revolved { v_vol } else { px(to)? };
    let first_order = g0.delta * (to.fwd - from.fwd);
    Some(Split {
        first_order,
        gamma: v_spot - g0.price - first_order,
        vega: v_vol - v_spot,
        theta: v_time - v_vol,
        premium: g0.price / from.fwd * (to.fwd - from.fwd),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FROM: OptionState = OptionState {
        fwd: 100_000.0,
        vol: 0.5,
        t_years: 0.1,
    };

    #[test]
    fn the_parts_add_up_to_the_repriced_change() {
        let to = OptionState {
            fwd: 94_000.0,
            vol: 0.62,
            t_years: 0.099,
        };
        let s = split(OptionType::Put, 95_000.0, FROM, to).unwrap();
        let v = |x: OptionState| {
            black76_price(OptionType::Put, x.fwd, 95_000.0, x.t_years, x.vol, 0.0).unwrap()
        };
        assert!((s.total() - (v(to) - v(FROM))).abs() < 1e-9, "{s:?}");
        assert!(s.gamma > 0.0 && s.vega > 0.0 && s.theta < 0.0, "{s:?}");
    }

    #[test]
    fn a_pure_forward_jump_is_first_order_and_gamma_only() {
        let to = OptionState {
            fwd: 106_000.0,
            ..FROM
        };
        let s = split(OptionType::Call, 100_000.0, FROM, to).unwrap();
        assert_eq!((s.vega, s.theta), (0.0, 0.0));
        // Every order above the first: more than the quadratic term for a 6% jump.
        let g = black76_greeks(
            OptionType::Call,
            FROM.fwd,
            100_000.0,
            FROM.t_years,
            0.5,
            0.0,
        )
        .unwrap();
        let taylor = 0.5 * g.gamma * 6_000.0 * 6_000.0;
        assert!((s.gamma - taylor).abs() > 1.0, "{} vs {taylor}", s.gamma);
    }
}
