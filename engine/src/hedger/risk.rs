//! The option book's risk as the hedger loop needs it, behind a small trait.
//!
//! [`OptionRisk`] is what the loop calls. [`BookRiskAdapter`] implements it on the engine's
//! incremental [`crate::risk::BookRisk`] (O(1) per event, rigorous delta error bound, exact
//! re-evaluation in idle time and forced when the bound exceeds its tolerance): that is what
//! the live hedger uses. [`LinearizedBook`] is a minimal first-order implementation kept as
//! an independent cross-check in tests:
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
    /// Option instrument id.
    pub instrument_id: u32,
    /// Underlying (index) instrument id.
    pub underlying_id: u32,
    /// Forward instrument id of the expiry, or `shm_layout::NO_FORWARD`.
    pub forward_id: u32,
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
    /// Sets the discount rate (per year, continuously compounded) of an underlying's
    /// options, the configured `underlyings.<name>.rate`: the same rate the policy's
    /// Whalley-Wilmott band discounts with. Called at startup, before options are added.
    fn set_rate(&mut self, underlying: usize, rate: f64);
    /// Registers an option; returns its handle. Called at startup only.
    fn add_option(&mut self, spec: OptionSpec) -> usize;
    /// Sets an option's position (contracts, signed).
    fn set_position(&mut self, opt: usize, qty: f64);
    /// Current position of an option.
    fn position(&self, opt: usize) -> f64;
    /// Whether the risk holds the option (`false`: its definition was refused at
    /// [`OptionRisk::add_option`], so its marks change nothing).
    fn holds_option(&self, _opt: usize) -> bool {
        true
    }
    /// A new mark: implied vol (fraction) and the forward for the option's expiry.
    fn on_mark(&mut self, opt: usize, iv: f64, forward: f64, now_wall_ns: u64);
    /// The underlying (index) moved.
    fn on_underlying(&mut self, underlying: usize, price: f64);
    /// A per-expiry forward instrument was quoted (default: ignored; marks carry forwards).
    fn on_forward(&mut self, _forward_id: u32, _price: f64) {}
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
    /// A rebuild of every mark starts (after a lap): the risk read before
    /// [`OptionRisk::end_rebuild`] may be stale (the core holds hedging meanwhile).
    fn begin_rebuild(&mut self) {}
    /// The rebuild is over: the risk is current again.
    fn end_rebuild(&mut self) {}
    /// Times an exact re-evaluation had to be forced on the event path (error bound above
    /// tolerance).
    fn forced_reevals(&self) -> u64 {
        0
    }
    /// Earliest expiry (wall ns) not yet settled; `u64::MAX` when none (or when the book does
    /// not settle: [`LinearizedBook`]). The loop compares its clock against it, so
    /// [`OptionRisk::settle_expired`] runs once per expiry, never per event.
    fn next_expiry_ns(&self) -> u64 {
        u64::MAX
    }
    /// Starts the book's clock at `now_wall_ns`, also backwards (the market clock became
    /// known: exchange-clock mode on recorded data). Never settles.
    fn start_clock(&mut self, _now_wall_ns: u64) {}
    /// Settles, in cash, every option whose expiry is at or before `now_wall_ns`: positions
    /// become settlement records and stop contributing risk. No allocation.
    fn settle_expired(&mut self, _now_wall_ns: u64) {}
    /// How an option settled (None: not settled).
    fn settlement(&self, _opt: usize) -> Option<crate::risk::SettledOption> {
        None
    }
    /// Settlement totals of an underlying.
    fn settlement_totals(&self, _underlying: usize) -> crate::risk::SettlementTotals {
        crate::risk::SettlementTotals::default()
    }
    /// Adds a trade delivered after its option settled to the settlement record (no risk);
    /// `false` if the option is not settled.
    fn add_settled_trade(&mut self, _opt: usize, _dqty_contracts: f64) -> bool {
        false
    }
    /// Restores a settlement recorded by an earlier run (restart); `false` if the option is
    /// already settled or unknown (never settles twice).
    fn restore_settlement(
        &mut self,
        _opt: usize,
        _contracts: f64,
        _settlement_px: f64,
        _settled_at_ns: u64,
    ) -> bool {
        false
    }
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
    /// Discount rate per underlying (Black-76's exp(-r T) on every Greek).
    rates: Vec<f64>,
    cursor: usize,
    /// Options re-evaluated per [`OptionRisk::idle_step`].
    pub idle_batch: usize,
}

impl LinearizedBook {
    /// A book for `underlyings` underlyings.
    pub fn new(underlyings: usize) -> Self {
        LinearizedBook {
            agg: vec![Agg::default(); underlyings],
            rates: vec![0.0; underlyings],
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
        let tau = crate::pricing::time::years_between_ns(now_wall_ns, sp.expiry_ns);
        let rate = self.rates[sp.underlying];
        if let Ok(g) = black76_greeks(sp.kind, fwd, sp.strike, tau, o.iv, rate) {
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
    fn set_rate(&mut self, underlying: usize, rate: f64) {
        if let Some(r) = self.rates.get_mut(underlying) {
            *r = rate;
        }
    }

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

/// [`OptionRisk`] on the engine's [`BookRisk`](crate::risk::BookRisk).
///
/// Expiries without a forward instrument (`forward_id == NO_FORWARD`) get a virtual forward
/// id above every instrument id; option marks set each expiry's forward (the mark's
/// `underlying_px`), and forwards move with the index in between. Until its first mark an
/// option is evaluated at a placeholder vol of 50% on a forward equal to the index.
#[derive(Debug)]
pub struct BookRiskAdapter {
    /// The book.
    pub book: crate::risk::BookRisk,
    und_ids: Vec<u32>,
    /// Whether each underlying has had a real price (until then it holds a placeholder).
    priced: Vec<bool>,
    all_priced: bool,
    opt_ids: Vec<u32>,
    /// Underlying slot of each option.
    opt_und: Vec<usize>,
    forwards: Vec<(u32, u64, u32)>, // (underlying id, expiry, forward id)
    next_virtual_forward: u32,
    tau: Vec<f64>,
    /// Times the bound exceeded the tolerance and an exact re-evaluation was forced.
    pub forced_reevals: u64,
    /// Options or forwards the book refused at set-up (bad definitions).
    pub setup_errors: u64,
    /// Between `begin_rebuild` and `end_rebuild` (the book batches its re-aggregation).
    rebuilding: bool,
}

impl BookRiskAdapter {
    /// A book for the given underlyings (index instrument ids, by slot); `max_instrument_id`
    /// bounds real ids (virtual forwards are numbered from it); `wall_ns` sets the clock.
    pub fn new(
        underlying_ids: &[u32],
        max_instrument_id: u32,
        max_options: usize,
        wall_ns: u64,
    ) -> Self {
        let cfg = crate::risk::RiskConfig {
            max_options: max_options.max(1),
            max_instrument_id: max_instrument_id + 4096,
            ..crate::risk::RiskConfig::default()
        };
        let mut book = crate::risk::BookRisk::new(cfg);
        book.advance_time(wall_ns);
        for &id in underlying_ids {
            // Placeholder price until the first index update.
            let _ = book.add_underlying(id, 1.0);
        }
        BookRiskAdapter {
            book,
            und_ids: underlying_ids.to_vec(),
            priced: vec![false; underlying_ids.len()],
            all_priced: underlying_ids.is_empty(),
            opt_und: Vec::new(),
            opt_ids: Vec::new(),
            forwards: Vec::new(),
            next_virtual_forward: max_instrument_id,
            tau: vec![0.0; underlying_ids.len()],
            forced_reevals: 0,
            rebuilding: false,
            setup_errors: 0,
        }
    }

    fn forward_for(&mut self, spec: &OptionSpec) -> u32 {
        if let Some(&(_, _, f)) = self
            .forwards
            .iter()
            .find(|(u, e, _)| *u == spec.underlying_id && *e == spec.expiry_ns)
        {
            return f;
        }
        let s = self
            .book
            .underlying(spec.underlying_id)
            .map_or(1.0, |u| u.price);
        // The instrument's own forward when it is free; a virtual one otherwise (none given,
        // or the feed names one forward for two expiries).
        let real = spec.forward_id != shm_layout::NO_FORWARD
            && !self.forwards.iter().any(|&(_, _, f)| f == spec.forward_id)
            && self
                .book
                .add_forward(spec.forward_id, spec.underlying_id, spec.expiry_ns, s)
                .is_ok();
        let f = if real {
            spec.forward_id
        } else {
            let f = self.next_virtual_forward;
            self.next_virtual_forward += 1;
            if self
                .book
                .add_forward(f, spec.underlying_id, spec.expiry_ns, s)
                .is_err()
            {
                self.setup_errors += 1;
            }
            f
        };
        self.forwards.push((spec.underlying_id, spec.expiry_ns, f));
        f
    }

    #[inline]
    fn risk(&self, u: usize) -> Option<&crate::risk::UnderlyingRisk> {
        self.book.underlying(self.und_ids[u])
    }

    /// Forces the exact path for every underlying whose delta error bound exceeds the
    /// tolerance (one flag test each; O(options) only when forced, which is rare).
    #[inline]
    fn enforce_tolerance(&mut self) {
        if self.rebuilding {
            // The aggregate is stale until `end_rebuild`, which checks.
            return;
        }
        for i in 0..self.und_ids.len() {
            let id = self.und_ids[i];
            if self
                .book
                .underlying(id)
                .is_some_and(|r| !r.within_tolerance)
            {
                self.book.force_reeval_over_bound(id);
                self.forced_reevals += 1;
            }
        }
    }
}

impl OptionRisk for BookRiskAdapter {
    fn set_rate(&mut self, underlying: usize, rate: f64) {
        // The configuration has checked the range the book accepts ([-1, 1] per year).
        if let Some(&id) = self.und_ids.get(underlying) {
            if self.book.set_rates(id, rate, 0.0).is_err() {
                self.setup_errors += 1;
            }
        }
    }

    fn add_option(&mut self, spec: OptionSpec) -> usize {
        let fwd = self.forward_for(&spec);
        let r = self.book.add_option(
            crate::risk::OptionSpec {
                id: spec.instrument_id,
                underlying_id: spec.underlying_id,
                forward_id: Some(fwd),
                strike: spec.strike,
                expiry_ns: spec.expiry_ns,
                kind: spec.kind,
                model: crate::pricing::Model::Black76,
                settlement: if spec.inverse {
                    crate::pricing::Settlement::Inverse
                } else {
                    crate::pricing::Settlement::Linear
                },
                multiplier: spec.multiplier,
            },
            0.5,
        );
        if r.is_err() {
            // Unpriceable definition (e.g. a zero strike): the option stays out of the
            // book, its position reads 0; counted.
            self.setup_errors += 1;
        }
        self.opt_ids.push(spec.instrument_id);
        self.opt_und.push(spec.underlying);
        self.opt_ids.len() - 1
    }

    #[inline]
    fn set_position(&mut self, opt: usize, qty: f64) {
        let id = self.opt_ids[opt];
        let cur = self.book.position(id).unwrap_or(0.0);
        self.book.add_position(id, qty - cur);
    }

    fn holds_option(&self, opt: usize) -> bool {
        self.book.position(self.opt_ids[opt]).is_some()
    }

    #[inline]
    fn position(&self, opt: usize) -> f64 {
        self.book.position(self.opt_ids[opt]).unwrap_or(0.0)
    }

    #[inline]
    fn on_mark(&mut self, opt: usize, iv: f64, forward: f64, _now_wall_ns: u64) {
        if !self.all_priced && forward > 0.0 && forward.is_finite() {
            // As in `on_forward`: a real price before the placeholder is ever used.
            let u = self.opt_und[opt];
            if !self.priced[u] {
                self.on_underlying(u, forward);
            }
        }
        self.book
            .on_mark(self.opt_ids[opt], iv.clamp(0.001, 10.0), forward);
        // A mark may move its expiry's forward: the bound holds after it too.
        self.enforce_tolerance();
    }

    #[inline]
    fn on_underlying(&mut self, u: usize, price: f64) {
        if !self.all_priced {
            self.priced[u] = true;
            self.all_priced = self.priced.iter().all(|&p| p);
        }
        let id = self.und_ids[u];
        self.book.on_price(id, price);
        // The bound must never exceed the tolerance: force the exact path (O(n), rare).
        self.enforce_tolerance();
    }

    #[inline]
    fn on_forward(&mut self, forward_id: u32, price: f64) {
        if !self.all_priced {
            // An underlying seen only through its forwards so far (an options chain without
            // index prices): it takes its first forward's price, never the placeholder, so
            // that deltas are per unit of a real price (dV/dS = dV/dF x F/S).
            if let Some(&(und, _, _)) = self.forwards.iter().find(|f| f.2 == forward_id) {
                if let Some(u) = self.und_ids.iter().position(|&x| x == und) {
                    if !self.priced[u] {
                        self.on_underlying(u, price);
                    }
                }
            }
        }
        self.book.on_price(forward_id, price);
        // A forward move is a price move of its expiry: the bound holds there too.
        self.enforce_tolerance();
    }

    #[inline]
    fn delta(&self, u: usize) -> f64 {
        self.risk(u).map_or(0.0, |r| r.net_delta)
    }

    #[inline]
    fn gamma(&self, u: usize) -> f64 {
        self.risk(u).map_or(0.0, |r| r.gamma)
    }

    #[inline]
    fn vega(&self, u: usize) -> f64 {
        self.risk(u).map_or(0.0, |r| r.vega * 0.01)
    }

    #[inline]
    fn tau_years(&self, u: usize) -> f64 {
        self.tau[u]
    }

    fn forced_reevals(&self) -> u64 {
        self.forced_reevals
    }

    #[inline]
    fn next_expiry_ns(&self) -> u64 {
        self.book.next_expiry_ns().unwrap_or(u64::MAX)
    }

    fn start_clock(&mut self, now_wall_ns: u64) {
        self.book.reset_time(now_wall_ns);
    }

    fn settle_expired(&mut self, now_wall_ns: u64) {
        self.book.advance_time(now_wall_ns);
        self.enforce_tolerance();
    }

    #[inline]
    fn settlement(&self, opt: usize) -> Option<crate::risk::SettledOption> {
        self.book.settlement(self.opt_ids[opt])
    }

    fn add_settled_trade(&mut self, opt: usize, dqty_contracts: f64) -> bool {
        self.book
            .add_settled_trade(self.opt_ids[opt], dqty_contracts)
    }

    #[inline]
    fn settlement_totals(&self, u: usize) -> crate::risk::SettlementTotals {
        self.book
            .settlement_totals(self.und_ids[u])
            .copied()
            .unwrap_or_default()
    }

    fn restore_settlement(
        &mut self,
        opt: usize,
        contracts: f64,
        settlement_px: f64,
        settled_at_ns: u64,
    ) -> bool {
        self.book
            .restore_settlement(self.opt_ids[opt], contracts, settlement_px, settled_at_ns)
    }

    fn begin_rebuild(&mut self) {
        self.rebuilding = true;
        self.book.begin_batch();
    }

    fn end_rebuild(&mut self) {
        self.rebuilding = false;
        self.book.end_batch();
        self.enforce_tolerance();
    }

    fn idle_step(&mut self, now_wall_ns: u64) {
        self.book.advance_time(now_wall_ns);
        self.book.idle_step();
        self.enforce_tolerance();
        for u in 0..self.und_ids.len() {
            let id = self.und_ids[u];
            let (mut gt, mut g) = (0.0, 0.0);
            for b in self.book.buckets(id) {
                gt += b.gamma.abs() * b.t_years;
                g += b.gamma.abs();
            }
            self.tau[u] = if g > 0.0 { gt / g } else { 0.0 };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Instrument 2 on underlying 0 (no forward), expiring 30 days after `now`.
    fn spec_30d(kind: OptionType, strike: f64, inverse: bool, now: u64) -> OptionSpec {
        OptionSpec {
            instrument_id: 2,
            underlying_id: 0,
            forward_id: shm_layout::NO_FORWARD,
            underlying: 0,
            kind,
            strike,
            expiry_ns: now + 30 * 86_400_000_000_000,
            multiplier: 1.0,
            inverse,
        }
    }

    #[test]
    fn linearized_delta_tracks_exact_delta_after_idle_reevaluation() {
        let mut b = LinearizedBook::new(1);
        let now = 1_600_000_000_000_000_000u64;
        let spec = spec_30d(OptionType::Call, 10_000.0, false, now);
        let i = b.add_option(OptionSpec {
            instrument_id: 2,
            underlying_id: 0,
            forward_id: shm_layout::NO_FORWARD,
            ..spec
        });
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

    #[test]
    fn book_risk_adapter_matches_the_linearized_book() {
        let now = 1_600_000_000_000_000_000u64;
        let spec = spec_30d(OptionType::Put, 9_000.0, true, now);
        let mut a = BookRiskAdapter::new(&[0], 8, 16, now);
        let mut l = LinearizedBook::new(1);
        let (ia, il) = (a.add_option(spec), l.add_option(spec));
        for r in [&mut a as &mut dyn OptionRisk, &mut l] {
            r.on_underlying(0, 10_000.0);
        }
        a.on_mark(ia, 0.8, 10_050.0, now);
        l.on_mark(il, 0.8, 10_050.0, now);
        a.set_position(ia, -7.0);
        l.set_position(il, -7.0);
        assert_eq!(a.position(ia), -7.0);
        assert!(
            (a.delta(0) - l.delta(0)).abs() < 1e-6,
            "{} {}",
            a.delta(0),
            l.delta(0)
        );
        a.on_underlying(0, 9_500.0);
        l.on_underlying(0, 9_500.0);
        a.idle_step(now);
        l.idle_step(now);
        assert!(
            (a.delta(0) - l.delta(0)).abs() < 0.01,
            "{} {}",
            a.delta(0),
            l.delta(0)
        );
        assert!(a.tau_years(0) > 0.07 && a.tau_years(0) < 0.09);
    }
}
