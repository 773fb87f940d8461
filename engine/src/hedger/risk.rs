//! The option book's risk as the hedger loop needs it, behind a small trait.
//!
//! [`OptionRisk`] is what the loop calls; [`LinearizedBook`] implements it with O(1) updates:
//! an option's greeks are evaluated exactly (Black-76 on the mark's forward) when its mark or
//! position changes, and an underlying move updates the aggregate delta from the aggregate
//! gamma, `delta(S) = sum_i q_i (delta_i - gamma_i S_i) + S sum_i q_i gamma_i`, exact to first
//! order; [`OptionRisk::idle_step`] re-evaluates a few options exactly per call so the
//! linearization error never accumulates. Inverse options use the premium-adjusted delta in
//! coin (see `pricing::settlement` for why).

use crate::pricing::{black76_greeks, inverse_greeks, OptionType};

/// Static description of an option the book may hold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptionSpec {
    /// Underlying slot (index of the hedged underlying in the hedger's config).
    pub underlying: usize,
    /// Call or put.
    pub kind: OptionType,
    /// Strike.
    pub strike: f64,
    /// Expiry, ns since the Unix epoch.
    pub expiry_ns: u64,
    /// Underlying units per contract.
    pub multiplier: f64,
    /// Coin-settled (premium-adjusted delta) or linear.
    pub inverse: bool,
}

/// Incremental risk of an option book, per underlying.
pub trait OptionRisk {
    /// Registers an option; returns its handle. Called at startup only.
    fn add_option(&mut self, spec: OptionSpec) -> usize;
    /// Sets an option's position (contracts, signed).
    fn set_position(&mut self, opt: usize, qty: f64);
    /// Current position of an option.
    fn position(&self, opt: usize) -> f64;
    /// A new mark: implied vol (fraction) and the forward for the option's expiry.
    fn on_mark(&mut self, opt: usize, iv: f64, forward: f64, now_wall_ns: u64);
    /// The underlying (index) moved.
    fn on_underlying(&mut self, underlying: usize, price: f64);
    /// Options' net delta of an underlying, in underlying units.
    fn delta(&self, underlying: usize) -> f64;
    /// Options' gamma of an underlying.
    fn gamma(&self, underlying: usize) -> f64;
    /// Options' vega per vol point of an underlying.
    fn vega(&self, underlying: usize) -> f64;
    /// Gamma-weighted time to expiry, years.
    fn tau_years(&self, underlying: usize) -> f64;
    /// Exact re-evaluation of a few options (idle time).
    fn idle_step(&mut self, now_wall_ns: u64);
}

#[derive(Debug, Clone, Copy, Default)]
struct OptState {
    qty: f64,
    iv: f64,
    fwd: f64,
    // The index price at evaluation time and the basis to scale the forward with it.
    s_ref: f64,
    delta: f64,
    gamma: f64,
    vega_pt: f64,
    tau: f64,
    marked: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Agg {
    a: f64, // sum q m (delta - gamma s_ref)
    g: f64, // sum q m gamma
    vega: f64,
    g_tau: f64, // sum |q m gamma| tau
    g_abs: f64,
    s: f64,
}

/// O(1) incremental book (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct LinearizedBook {
    specs: Vec<OptionSpec>,
    st: Vec<OptState>,
    agg: Vec<Agg>,
    cursor: usize,
    /// Options re-evaluated per [`OptionRisk::idle_step`].
    pub idle_batch: usize,
}

impl LinearizedBook {
    /// A book for `underlyings` underlyings.
    pub fn new(underlyings: usize) -> Self {
        LinearizedBook {
            agg: vec![Agg::default(); underlyings],
            idle_batch: 4,
            ..Default::default()
        }
    }

    #[inline]
    fn contrib(&mut self, i: usize, sign: f64) {
        let (sp, o) = (self.specs[i], self.st[i]);
        if !o.marked || o.qty == 0.0 {
            return;
        }
        let qm = sign * o.qty * sp.multiplier;
        let a = &mut self.agg[sp.underlying];
        a.a += qm * (o.delta - o.gamma * o.s_ref);
        a.g += qm * o.gamma;
        a.vega += qm * o.vega_pt;
        let g_abs = (qm * o.gamma).abs();
        a.g_tau += sign * g_abs * o.tau;
        a.g_abs += sign * g_abs;
    }

    #[inline]
    fn evaluate(&mut self, i: usize, now_wall_ns: u64) {
        let sp = self.specs[i];
        let s_now = self.agg[sp.underlying].s;
        let o = &mut self.st[i];
        // Scale the forward with the index since the mark (basis kept constant in ratio).
        let fwd = if o.s_ref > 0.0 && s_now > 0.0 {
            o.fwd * s_now / o.s_ref
        } else {
            o.fwd
        };
        let tau = (sp.expiry_ns.saturating_sub(now_wall_ns)) as f64 / (365.0 * 86_400e9);
        if let Ok(g) = black76_greeks(sp.kind, fwd, sp.strike, tau, o.iv, 0.0) {
            let (delta, gamma) = if sp.inverse {
                let ig = inverse_greeks(&g, fwd);
                (ig.delta_premium_adjusted, ig.gamma_premium_adjusted)
            } else {
                (g.delta, g.gamma)
            };
            o.delta = delta;
            o.gamma = gamma;
            o.vega_pt = g.vega_per_vol_point();
            o.tau = tau;
            o.fwd = fwd;
            o.s_ref = if s_now > 0.0 { s_now } else { fwd };
            o.marked = true;
        }
    }
}

impl OptionRisk for LinearizedBook {
    fn add_option(&mut self, spec: OptionSpec) -> usize {
        self.specs.push(spec);
        self.st.push(OptState::default());
        self.specs.len() - 1
    }

    #[inline]
    fn set_position(&mut self, opt: usize, qty: f64) {
        self.contrib(opt, -1.0);
        self.st[opt].qty = qty;
        self.contrib(opt, 1.0);
    }

    #[inline]
    fn position(&self, opt: usize) -> f64 {
        self.st[opt].qty
    }

    #[inline]
    fn on_mark(&mut self, opt: usize, iv: f64, forward: f64, now_wall_ns: u64) {
        self.contrib(opt, -1.0);
        let o = &mut self.st[opt];
        o.iv = iv;
        o.fwd = forward;
        o.s_ref = 0.0; // the forward is current: no scaling
        self.evaluate(opt, now_wall_ns);
        self.contrib(opt, 1.0);
    }

    #[inline]
    fn on_underlying(&mut self, underlying: usize, price: f64) {
        self.agg[underlying].s = price;
    }

    #[inline]
    fn delta(&self, u: usize) -> f64 {
        let a = &self.agg[u];
        if a.s > 0.0 {
            a.a + a.g * a.s
        } else {
            a.a
        }
    }

    #[inline]
    fn gamma(&self, u: usize) -> f64 {
        self.agg[u].g
    }

    #[inline]
    fn vega(&self, u: usize) -> f64 {
        self.agg[u].vega
    }

    #[inline]
    fn tau_years(&self, u: usize) -> f64 {
        let a = &self.agg[u];
        if a.g_abs > 0.0 {
            (a.g_tau / a.g_abs).max(0.0)
        } else {
            0.0
        }
    }

    fn idle_step(&mut self, now_wall_ns: u64) {
        let n = self.specs.len();
        for _ in 0..self.idle_batch.min(n) {
            self.cursor = (self.cursor + 1) % n;
            let i = self.cursor;
            if self.st[i].marked && self.st[i].qty != 0.0 {
                self.contrib(i, -1.0);
                self.evaluate(i, now_wall_ns);
                self.contrib(i, 1.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linearized_delta_tracks_exact_delta_after_idle_reevaluation() {
        let mut b = LinearizedBook::new(1);
        let now = 1_600_000_000_000_000_000u64;
        let spec = OptionSpec {
            underlying: 0,
            kind: OptionType::Call,
            strike: 10_000.0,
            expiry_ns: now + 30 * 86_400_000_000_000,
            multiplier: 1.0,
            inverse: false,
        };
        let i = b.add_option(spec);
        b.on_underlying(0, 10_000.0);
        b.on_mark(i, 0.8, 10_000.0, now);
        b.set_position(i, 10.0);
        let d0 = b.delta(0);
        assert!((d0 - 10.0 * 0.5).abs() < 0.5, "{d0}");
        assert!(b.gamma(0) > 0.0);
        b.on_underlying(0, 10_100.0);
        let lin = b.delta(0);
        assert!((lin - (d0 + b.gamma(0) * 100.0)).abs() < 1e-9);
        b.idle_step(now);
        let exact = black76_greeks(OptionType::Call, 10_100.0, 10_000.0, 30.0 / 365.0, 0.8, 0.0)
            .unwrap()
            .delta
            * 10.0;
        assert!((b.delta(0) - exact).abs() < 1e-9);
        assert!((lin - exact).abs() < 0.01);
        b.set_position(i, 0.0);
        assert!(b.delta(0).abs() < 1e-9);
    }
}
