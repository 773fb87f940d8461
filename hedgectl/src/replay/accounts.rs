//! The backtest's books: cash, PnL, costs and the risk statistics of one underlying.
//!
//! Accounting only: every number here is derived from what the core did (its orders, the
//! execution reports it applied, its positions and its option risk); nothing here decides.
//!
//! # Conventions (quote currency, USD for Deribit)
//! - Options: value `qty x multiplier x unit value`; the unit value is Black-76 at the last
//!   mark's implied vol on the expiry's current forward (sticky strike between marks; at a
//!   mark it equals the mark), an inverse mark converted at its forward. Initial positions
//!   enter at their first value; client trades pay or receive their price.
//! - Hedge: linear `pos x multiplier x mid`; inverse (Deribit perpetual, face value per
//!   contract) `mid x sum(q x face / px) - sum(q x face)`, the USD value of the coin PnL.
//! - Costs: fees (coin fees at the fill price) plus slippage, the fill price against the
//!   hedge book's mid when the core sent the order (spread, depth walked and latency
//!   together). `pnl_hedge` is the hedge's PnL as if every fill had been at that mid, so
//!   `pnl_total = pnl_options + pnl_hedge - costs`.
//! - Net delta = options' delta (the core's risk book) + filled hedge position x delta per
//!   contract; orders in flight are reported apart (`hedge_inflight`), never counted as
//!   hedged.

use std::collections::BTreeMap;

use engine::policy::HedgeInstrument;
use shm_layout::{InstrumentDef, Settlement};

use super::backtest::Split;
use super::report::{Attribution, ExecSummary, Headline, Series, UnderlyingSummary};

/// Running statistics and cash of one hedged underlying.
#[derive(Debug)]
pub struct Account {
    /// Index symbol.
    pub name: String,
    /// Hedge instrument.
    pub hedge: InstrumentDef,
    /// Its contract terms.
    pub instrument: Option<HedgeInstrument>,
    /// Whether the hedge book came from the data or was modelled.
    pub book: &'static str,
    /// Options' cash (premiums paid/received, settlements), quote currency.
    pub cash_opt: f64,
    cash_h: f64,
    inv_a: f64,
    inv_b: f64,
    hedge_entered: bool,
    /// Fees, quote currency.
    pub fees: f64,
    /// Slippage against the decision mid, quote currency.
    pub slippage: f64,
    /// Filled notional, quote currency.
    pub volume: f64,
    /// Orders the core sent.
    pub trades: u64,
    /// Hedge position, contracts (from the fills).
    pub position: f64,
    // Statistics, sampled after every event.
    max_abs_net: f64,
    max_abs_net_incl: f64,
    outside_ns: u64,
    outside: bool,
    last_ts: u64,
    ref_px: f64,
    last_net: f64,
    /// Cumulative PnL of the residual net delta (net delta times the next move of the
    /// reference price), quote currency.
    pub delta_pnl: f64,
    te_sum_sq: f64,
    te_n: u64,
    /// PnL attribution so far (residual and total filled in at the end).
    pub attr: Attribution,
    /// Funding rate of the hedge instrument, fraction per 8 hours (positive: longs pay), from
    /// the data's ticker; 0 until it gives one.
    pub funding_rate_8h: f64,
    /// Funding received (negative: paid) on the hedge position, quote currency.
    pub funding: f64,
    /// The options' full revaluation since the last observation (first-order term, gamma,
    /// vega, theta), booked at the next one.
    pending: Split,
    /// The hedge's PnL at decision mids without funding at the last observation.
    prev_hedge_value: f64,
    /// Inverse hedge: the coin its USD value moves with beyond the delta the hedger counts
    /// (the coin PnL held), and the hedge mid, at the last observation.
    prev_coin_gap: (f64, f64),
    err_steps: Welford,
    pnl_steps: Welford,
    prev_pnl: Option<f64>,
    prev_err: Option<f64>,
    /// The last sample, for the final figures.
    pub last: Sample,
    /// Sampled series (bounded).
    pub series: Series,
    /// Execution figures so far (the carried-delta mean is finished in the summary).
    pub exec: ExecSummary,
    /// Passive orders resting now (sent, no terminal report yet).
    pub passive_live: usize,
    passive_live_before: bool,
    carried_int: f64,
    passive_ns: u64,
}

/// One observation of an underlying's risk after an event.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// Time, ns.
    pub ts_ns: u64,
    /// Reference price of the underlying.
    pub ref_px: f64,
    /// Options' delta, underlying units.
    pub option_delta: f64,
    /// Options + filled hedge, underlying units.
    pub net_delta: f64,
    /// Hedge in flight, underlying units.
    pub inflight_delta: f64,
    /// The core's band at its last decision, underlying units.
    pub band: f64,
    /// One lot of the hedge in underlying units (the rounding slack of a hedge).
    pub lot_delta: f64,
    /// Options' gamma.
    pub gamma: f64,
    /// Options' vega per vol point.
    pub vega: f64,
    /// Hedge position in underlying units.
    pub hedge_delta: f64,
    /// Hedge position's notional, quote currency, signed (funding accrues on it).
    pub hedge_notional: f64,
}

/// Mean and variance in one pass (Welford), so no per-step vector is kept.
#[derive(Debug, Default, Clone, Copy)]
struct Welford {
    n: u64,
    mean: f64,
    m2: f64,
}

impl Welford {
    fn push(&mut self, x: f64) {
        self.n += 1;
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }
    fn std(&self) -> f64 {
        if self.n < 2 {
            0.0
        } else {
            (self.m2 / (self.n - 1) as f64).sqrt()
        }
    }
}

impl Account {
    /// A new account for underlying `name` hedged with `hedge`.
    pub fn new(
        name: String,
        hedge: InstrumentDef,
        instrument: HedgeInstrument,
        initial_position: f64,
    ) -> Self {
        Account {
            name,
            hedge,
            instrument: Some(instrument),
            book: "modelled",
            cash_opt: 0.0,
            cash_h: 0.0,
            inv_a: 0.0,
            inv_b: 0.0,
            hedge_entered: false,
            fees: 0.0,
            slippage: 0.0,
            volume: 0.0,
            trades: 0,
            position: initial_position,
            max_abs_net: 0.0,
            max_abs_net_incl: 0.0,
            outside_ns: 0,
            outside: false,
            last_ts: 0,
            ref_px: 0.0,
            last_net: 0.0,
            delta_pnl: 0.0,
            te_sum_sq: 0.0,
            te_n: 0,
            attr: Attribution::default(),
            funding_rate_8h: 0.0,
            funding: 0.0,
            pending: Split::default(),
            prev_hedge_value: 0.0,
            prev_coin_gap: (0.0, 0.0),
            err_steps: Welford::default(),
            pnl_steps: Welford::default(),
            prev_pnl: None,
            prev_err: None,
            last: Sample::default(),
            series: Series::default(),
            exec: ExecSummary::default(),
            passive_live: 0,
            passive_live_before: false,
            carried_int: 0.0,
            passive_ns: 0,
        }
    }

    fn inverse(&self) -> bool {
        self.hedge.settlement() == Ok(Settlement::Inverse)
    }

    fn mult(&self) -> f64 {
        self.instrument.map_or(1.0, |i| i.contract_size)
    }

    /// Whether the initial hedge position has been valued.
    pub fn hedge_entered(&self) -> bool {
        self.hedge_entered
    }

    /// Enters the initial hedge position (`initial`, contracts) at the first mid.
    pub fn enter_hedge(&mut self, initial: f64, mid: f64) {
        if self.hedge_entered || mid.is_nan() || mid <= 0.0 {
            return;
        }
        self.hedge_entered = true;
        let m = self.mult();
        if self.inverse() {
            self.inv_a += initial * m / mid;
            self.inv_b += initial * m;
        } else {
            self.cash_h -= initial * m * mid;
        }
    }

    /// A hedge fill: `signed_qty` contracts at `price`, fee in the settlement currency, the
    /// mid and the half spread (price units) of the hedge book when the order was sent.
    pub fn on_fill(
        &mut self,
        signed_qty: f64,
        price: f64,
        fee: f64,
        decision_mid: f64,
        half_spread: f64,
    ) {
        let m = self.mult();
        let half_cost = if self.inverse() {
            signed_qty.abs() * m * half_spread / price
        } else {
            signed_qty.abs() * m * half_spread
        };
        let slip_before = self.slippage;
        let fees_before = self.fees;
        self.position += signed_qty;
        let (fee_q, slip, notional) = if self.inverse() {
            self.inv_a += signed_qty * m / price;
            self.inv_b += signed_qty * m;
            (
                fee * price,
                signed_qty * m * (price - decision_mid) / price,
                signed_qty.abs() * m,
            )
        } else {
            self.cash_h -= signed_qty * m * price;
            (
                fee,
                signed_qty * m * (price - decision_mid),
                signed_qty.abs() * m * price,
            )
        };
        self.fees += fee_q;
        self.slippage += slip;
        self.volume += notional;
        self.attr.fees -= self.fees - fees_before;
        self.attr.half_spread -= half_cost;
        self.attr.slippage -= (self.slippage - slip_before) - half_cost;
    }

    /// The options' full revaluation over the step to the next observation (position x
    /// multiplier x [`Split`]), quote currency.
    pub fn add_revaluation(&mut self, s: Split) {
        if s.total().is_finite() {
            self.pending.add(s);
        }
    }

    /// Books what is pending of the options' revaluation at the end, with no new observation
    /// (`hedge_mid`: the hedge book's mid now).
    pub fn book_pending(&mut self, hedge_mid: f64) {
        self.book_revaluation(0.0, hedge_mid);
    }

    /// Books the step's revaluation at an observation: gamma, vega and theta as repriced,
    /// `coin_frame` (coin options' premium and an inverse hedge's coin PnL, as coin, x the
    /// move), and as `basis` the rest of the first-order PnL on each instrument's own price
    /// (options on their expiry's forward; the hedge at `hedge_mid`: its PnL at decision mids
    /// without funding) minus the `delta` part (`delta_part`: net delta x the reference
    /// price's move).
    fn book_revaluation(&mut self, delta_part: f64, hedge_mid: f64) {
        let p = std::mem::take(&mut self.pending);
        let hedge_value = self.hedge_pnl(hedge_mid) - self.funding;
        let hedge_first = hedge_value - self.prev_hedge_value;
        self.prev_hedge_value = hedge_value;
        let (gap, mid0) = self.prev_coin_gap;
        let hedge_coin = if mid0 > 0.0 && hedge_mid > 0.0 {
            gap * (hedge_mid - mid0)
        } else {
            0.0
        };
        self.prev_coin_gap = if self.inverse() && self.hedge_entered && hedge_mid > 0.0 {
            (
                self.inv_a - self.position * self.mult() / hedge_mid,
                hedge_mid,
            )
        } else {
            (0.0, 0.0)
        };
        self.attr.gamma += p.gamma;
        self.attr.vega += p.vega;
        self.attr.theta += p.theta;
        self.attr.coin_frame += p.premium + hedge_coin;
        self.attr.basis += (p.first_order - p.premium) + (hedge_first - hedge_coin) - delta_part;
    }

    /// The hedge's value at `mid` plus the slippage (its PnL at decision mids), quote ccy.
    pub fn hedge_pnl(&self, mid: f64) -> f64 {
        let v = if !self.hedge_entered {
            0.0
        } else if self.inverse() {
            mid * self.inv_a - self.inv_b
        } else {
            self.cash_h + self.position * self.mult() * mid
        };
        v + self.slippage + self.funding
    }

    /// Costs so far: fees + slippage, quote currency.
    pub fn costs(&self) -> f64 {
        self.fees + self.slippage
    }

    /// Records the state after an event: extremes, time outside the band, residual-delta
    /// PnL, the attribution of the step (`hedge_mid`: the hedge book's mid now). Called after
    /// every event, so nothing depends on the sampling interval.
    pub fn observe(&mut self, s: Sample, hedge_mid: f64) {
        let dt_ns = if self.last_ts > 0 {
            s.ts_ns.saturating_sub(self.last_ts)
        } else {
            0
        };
        if self.outside {
            self.outside_ns += dt_ns;
        }
        self.last_ts = s.ts_ns;
        let mut delta_part = 0.0;
        if self.ref_px > 0.0 && s.ref_px > 0.0 {
            delta_part = self.last_net * (s.ref_px - self.ref_px);
            self.delta_pnl += delta_part;
            self.attr.delta += delta_part;
        }
        // Funding over the interval on the position held through it (longs pay a positive
        // rate), at the rate in force.
        let paid = self.last.hedge_notional * self.funding_rate_8h * dt_ns as f64 / 28_800e9;
        self.funding -= paid;
        self.attr.funding -= paid;
        self.book_revaluation(delta_part, hedge_mid);
        if s.ref_px > 0.0 {
            self.ref_px = s.ref_px;
        }
        // Tracking error: the hedged book's PnL before costs minus a costless continuous
        // delta hedge's is the residual delta's PnL so far.
        self.te_sum_sq += self.delta_pnl * self.delta_pnl;
        self.te_n += 1;
        if self.passive_live_before {
            self.passive_ns += dt_ns;
            self.carried_int += self.last_net.abs() * dt_ns as f64;
        }
        self.passive_live_before = self.passive_live > 0;
        if self.passive_live > 0 {
            self.exec.carried_abs_delta_max =
                self.exec.carried_abs_delta_max.max(s.net_delta.abs());
        }
        self.last_net = s.net_delta;
        self.max_abs_net = self.max_abs_net.max(s.net_delta.abs());
        self.max_abs_net_incl = self
            .max_abs_net_incl
            .max((s.net_delta + s.inflight_delta).abs());
        self.outside = s.net_delta.abs() > s.band + s.lot_delta;
        self.last = s;
    }

    /// Adds a point to the series (`pnl` = options, hedge, costs).
    pub fn sample(&mut self, s: &Sample, start_ns: u64, pnl: (f64, f64, f64)) {
        let (po, ph, pc) = pnl;
        let total = po + ph - pc;
        if let Some(p) = self.prev_pnl {
            self.pnl_steps.push(total - p);
        }
        self.prev_pnl = Some(total);
        if let Some(p) = self.prev_err {
            self.err_steps.push(self.delta_pnl - p);
        }
        self.prev_err = Some(self.delta_pnl);
        let x = &mut self.series;
        x.t_s.push(s.ts_ns.saturating_sub(start_ns) as f64 * 1e-9);
        x.underlying_px.push(s.ref_px);
        x.net_delta_before_hedging.push(s.option_delta);
        x.net_delta.push(s.net_delta);
        x.net_delta_after_hedging
            .push(s.net_delta + s.inflight_delta);
        x.hedge_inflight.push(s.inflight_delta);
        x.band.push(s.band);
        x.gamma.push(s.gamma);
        x.vega.push(s.vega);
        x.hedge_position.push(self.position);
        x.hedge_delta.push(s.hedge_delta);
        x.hedge_trades.push(self.trades);
        x.fees.push(self.fees);
        x.slippage.push(self.slippage);
        x.pnl_options.push(po);
        x.pnl_hedge.push(ph);
        x.pnl_costs.push(pc);
        x.pnl_total.push(total);
        x.pnl_residual_delta.push(self.delta_pnl);
        let a = &self.attr;
        x.attr_delta.push(a.delta);
        x.attr_gamma.push(a.gamma);
        x.attr_vega.push(a.vega);
        x.attr_theta.push(a.theta);
        x.attr_basis.push(a.basis + a.coin_frame);
        x.attr_costs.push(a.fees + a.half_spread + a.slippage);
        x.attr_residual.push(total - a.explained());
    }

    /// The summary of this underlying (`pnl` = options, hedge, costs at the end).
    pub fn summary(
        &mut self,
        pnl: (f64, f64, f64),
        elapsed_ns: u64,
        holds: BTreeMap<String, u64>,
    ) -> UnderlyingSummary {
        let (po, ph, pc) = pnl;
        UnderlyingSummary {
            summary: Headline {
                final_net_delta: self.last.net_delta,
                max_abs_net_delta: self.max_abs_net,
                total_hedge_cost: self.costs(),
                hedge_trades: self.trades,
                pnl_total: po + ph - pc,
            },
            hedge_instrument: self.hedge.symbol().to_string(),
            hedge_book: self.book,
            final_option_delta: self.last.option_delta,
            final_hedge_inflight: self.last.inflight_delta,
            hedge_volume_notional: self.volume,
            fees: self.fees,
            slippage: self.slippage,
            pnl_options: po,
            pnl_hedge: ph,
            pnl_costs: pc,
            pnl_std: self.pnl_steps.std(),
            pnl_residual_delta: self.delta_pnl,
            funding: self.funding,
            attribution: {
                let mut a = self.attr;
                a.total = po + ph - pc;
                a.residual = a.total - a.explained();
                a
            },
            hedge_error_std: self.err_steps.std(),
            tracking_error: if self.te_n > 0 {
                (self.te_sum_sq / self.te_n as f64).sqrt()
            } else {
                0.0
            },
            max_abs_net_delta_incl_inflight: self.max_abs_net_incl,
            time_outside_band_s: self.outside_ns as f64 * 1e-9,
            time_outside_band_frac: if elapsed_ns > 0 {
                self.outside_ns as f64 / elapsed_ns as f64
            } else {
                0.0
            },
            final_hedge_position: self.position,
            holds,
            execution: {
                let mut e = std::mem::take(&mut self.exec);
                e.passive_resting_s = self.passive_ns as f64 * 1e-9;
                if self.passive_ns > 0 {
                    e.carried_abs_delta_mean = self.carried_int / self.passive_ns as f64;
                }
                if e.passive_sent_qty > 0.0 {
                    e.passive_fill_rate = e.passive_filled_qty / e.passive_sent_qty;
                }
                e
            },
            series: std::mem::take(&mut self.series),
        }
    }
}

/// Keeps at most `2 x cap` points: when full, every other point goes and the sampling
/// interval doubles (a two-week replay does not produce a multi-MB report).
pub fn thin(series: &mut Series, cap: usize) -> bool {
    if series.t_s.len() < 2 * cap.max(1) {
        return false;
    }
    series.keep_every_other();
    true
}
