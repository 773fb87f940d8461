//! Hedge policies: when to hedge, to what target, how much, at what price.
//!
//! Pure and allocation-free: no shared memory, no clock, no I/O. The live hedger
//! ([`crate::hedger`]) and the replay/backtest call the same [`HedgePolicy::decide`] with the
//! same inputs, so a backtest reproduces live decisions exactly.
//!
//! # Policies ([`BandRule`])
//! All bands are half-widths in **underlying units** of delta (BTC for a BTC book), around a
//! target net delta of zero. Net delta always includes the hedge position and the hedge
//! quantity in flight, so an order already sent is never sent twice.
//!
//! - **None**: never hedge. The baseline every backtest report can show (what the book's
//!   risk and PnL are with no hedging at all).
//! - **Fixed band**: hedge when `|net delta| > band`; trade back to zero or to the band's
//!   edge ([`RehedgeTarget`]). This is what the public Deribit hedgers and NautilusTrader's
//!   delta-neutral example do (a fixed threshold checked on a timer).
//! - **Whalley-Wilmott**: the asymptotic optimal no-transaction band for a proportional cost
//!   `lambda` and exponential utility with risk aversion `gamma` (A. E. Whalley and P. Wilmott,
//!   "An asymptotic analysis of an optimal hedging model for option pricing with transaction
//!   costs", Mathematical Finance 7(3), 1997):
//!   `H = (3/2 * exp(-r*tau) * lambda * S * Gamma^2 / gamma)^(1/3)`,
//!   with `S` the underlying price, `Gamma` the book's gamma (delta per unit of `S`), `tau`
//!   the (gamma-weighted) time to expiry in years. When outside, trade to the band's edge
//!   (the optimal control is a reflection at the boundary). Zakamouline (2006, "European
//!   option pricing and hedging with both fixed and proportional transaction costs", JEDC 30)
//!   confirms the cube-root dependence on `lambda*Gamma^2/gamma` for the proportional case.
//! - **Cost-aware buffer**: the Whalley-Wilmott band with `lambda` measured live from the
//!   hedge instrument's book: `lambda = (half spread / mid + taker fee + slippage) * stress`,
//!   where slippage is the relative cost of walking the hedge's size through the visible
//!   depth ([`slippage_fraction`]), and `stress >= 1` rises with realized volatility (fast
//!   vs slow EWMA of squared mid log-returns) and with spread widening (spread vs its slow
//!   EWMA) ([`MarketStats`]). Hedging is most expensive in a stressed market, so the band widens
//!   then; it is capped by `max_band` so risk never runs unbounded.
//!
//! # Timing
//! `min_interval_ns` between two hedges of one underlying (no hedge earlier, whatever the
//! band says), and a safety re-hedge to zero after `max_interval_ns` without a hedge when
//! the residual delta is tradable (at least the instrument's minimum size).
//!
//! # Orders
//! Limit IOC at the touch plus `offset_ticks` (buy at ask + offset, sell at bid - offset),
//! inside a collar of `collar_bps` around mid (never worse than that), rounded to the tick
//! towards the passive side; quantity rounded down to the lot size, minimum size respected.
//!
//! # Examples
//! ```
//! use engine::policy::*;
//! use shm_layout::LastValue;
//! use bytemuck::Zeroable;
//!
//! let instr = HedgeInstrument::linear(7, 0.001, 0.001, 0.001, 0.5);
//! let policy = HedgePolicy::new(
//!     PolicyConfig { rule: BandRule::Fixed { band: 1.0, target: RehedgeTarget::Zero },
//!                    ..PolicyConfig::default() },
//!     instr,
//! );
//! let mut book = LastValue::zeroed();
//! book.valid = LastValue::HAS_QUOTE;
//! (book.bid_px, book.bid_qty, book.ask_px, book.ask_qty) = (9999.5, 10.0, 10000.0, 10.0);
//! let state = PolicyState::default();
//! let risk = RiskSnapshot { net_delta: 2.5, gamma: 0.0, underlying_px: 10000.0, tau_years: 0.1, rate: 0.0 };
//! let d = policy.decide(&state, &risk, &book, 1_000_000_000).hedge().unwrap();
//! assert_eq!(d.side, shm_layout::Side::Sell);
//! assert!((d.qty_contracts - 2500.0).abs() < 1e-9); // 2.5 BTC in 0.001 BTC contracts
//! ```

use shm_layout::{LastValue, Side};

/// How a hedge instrument settles, which decides its delta per contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HedgeSettlement {
    /// PnL in quote currency; one contract is `contract_size` underlying units
    /// (delta per contract = `contract_size`).
    Linear,
    /// PnL in the coin; one contract is `contract_size` of quote-currency face value (Deribit's
    /// BTC-PERPETUAL: 10 USD). Delta per contract, in coin, is `contract_size / price`.
    Inverse,
}

/// The tradable instrument used to hedge one underlying (perpetual, future or spot).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HedgeInstrument {
    /// Instrument id in the instruments segment.
    pub instrument_id: u32,
    /// Linear or inverse.
    pub settlement: HedgeSettlement,
    /// Underlying units per contract (linear) or quote face value per contract (inverse).
    pub contract_size: f64,
    /// Quantity increment, contracts.
    pub lot_size: f64,
    /// Minimum order quantity, contracts.
    pub min_qty: f64,
    /// Price increment.
    pub tick_size: f64,
}

impl HedgeInstrument {
    /// A linear instrument.
    pub fn linear(id: u32, contract_size: f64, lot_size: f64, min_qty: f64, tick: f64) -> Self {
        HedgeInstrument {
            instrument_id: id,
            settlement: HedgeSettlement::Linear,
            contract_size,
            lot_size,
            min_qty,
            tick_size: tick,
        }
    }

    /// An inverse instrument (`face_value` in quote currency per contract).
    pub fn inverse(id: u32, face_value: f64, lot_size: f64, min_qty: f64, tick: f64) -> Self {
        HedgeInstrument {
            instrument_id: id,
            settlement: HedgeSettlement::Inverse,
            contract_size: face_value,
            lot_size,
            min_qty,
            tick_size: tick,
        }
    }

    /// Delta of one long contract in underlying units at `price`.
    #[inline]
    pub fn delta_per_contract(&self, price: f64) -> f64 {
        match self.settlement {
            HedgeSettlement::Linear => self.contract_size,
            HedgeSettlement::Inverse => self.contract_size / price,
        }
    }

    /// Quote-currency notional of `qty_contracts` at `price`.
    #[inline]
    pub fn notional(&self, qty_contracts: f64, price: f64) -> f64 {
        match self.settlement {
            HedgeSettlement::Linear => qty_contracts.abs() * self.contract_size * price,
            HedgeSettlement::Inverse => qty_contracts.abs() * self.contract_size,
        }
    }

    /// `qty` (non-negative) rounded down to a multiple of the lot size.
    #[inline]
    pub fn round_down_to_lot(&self, qty: f64) -> f64 {
        if self.lot_size <= 0.0 {
            return qty;
        }
        // The small epsilon absorbs binary rounding (2.5 / 0.001 = 2499.9999999999995).
        ((qty / self.lot_size) + 1e-9).floor() * self.lot_size
    }
}

/// Where a fixed band trades back to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RehedgeTarget {
    /// Back to zero net delta.
    Zero,
    /// Back to the band's edge (the smallest trade that re-enters the band).
    Edge,
}

/// The band rule of a policy (see the module docs for formulas and sources).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BandRule {
    /// Never hedge (not even the safety re-hedge): the unhedged baseline.
    None,
    /// Fixed half-width `band`, underlying units.
    Fixed {
        /// Half-width, underlying units.
        band: f64,
        /// Where to trade back to.
        target: RehedgeTarget,
    },
    /// Whalley-Wilmott band with a configured proportional cost.
    WhalleyWilmott {
        /// Proportional cost `lambda` of trading one unit of notional (0.0005 = 5 bps).
        cost: f64,
        /// Risk aversion `gamma` (per unit of quote currency).
        risk_aversion: f64,
    },
    /// Whalley-Wilmott band with `lambda` measured live from the book (cost-aware buffer).
    CostAware {
        /// Taker fee, fraction of notional (0.0005 = 5 bps).
        taker_fee: f64,
        /// Risk aversion `gamma` (per unit of quote currency).
        risk_aversion: f64,
        /// Stress factor per unit of (fast/slow realized vol ratio - 1).
        vol_stress_weight: f64,
        /// Stress factor per unit of (spread / slow EWMA spread - 1).
        spread_stress_weight: f64,
        /// Cap of the stress factor.
        max_stress: f64,
    },
}

/// Per-underlying policy configuration.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PolicyConfig {
    /// The band rule.
    pub rule: BandRule,
    /// Lower bound of the band (Whalley-Wilmott and cost-aware), underlying units: a
    /// zero-gamma book still tolerates this much delta.
    pub min_band: f64,
    /// Upper bound of the band (all model bands are capped here), underlying units.
    pub max_band: f64,
    /// No hedge earlier than this after the previous one, ns.
    pub min_interval_ns: u64,
    /// Safety re-hedge to zero after this long without a hedge, ns (0 = off).
    pub max_interval_ns: u64,
    /// Limit price offset beyond the touch, in ticks (buy at ask + offset).
    pub offset_ticks: f64,
    /// Price collar: the limit is never worse than this many bps from mid.
    pub collar_bps: f64,
    /// EWMA weight of a new observation for the fast statistics (0 < alpha <= 1).
    pub fast_alpha: f64,
    /// EWMA weight of a new observation for the slow (reference) statistics.
    pub slow_alpha: f64,
    /// Cost-aware: within this long after a hedge, the band is at least the band that hedge
    /// was sent at, and no hedge goes the other way unless delta leaves `max_band`, ns
    /// (0 = off). Stops a band that breathes with the spread from re-trading the same risk.
    pub holding_horizon_ns: u64,
    /// How a hedge is executed (IOC, passive then cross, slices) and what triggers it.
    pub exec: ExecConfig,
}

/// How the hedger works a hedge order (`style` in the policy table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecStyle {
    /// An IOC limit at the touch (plus `offset_ticks`): today's, the default.
    Ioc,
    /// A GTC limit at our own side's touch (the bid when buying), cancelled and replaced when
    /// the touch moves away from it, crossed (cancelled, then an IOC at the far touch) after
    /// `passive_timeout_ns` or at once when the delta it leaves uncovered is beyond
    /// `cross_band` times the band.
    Passive,
    /// The hedge split into `slices` IOC child orders, `slice_interval_ns` apart.
    Slices,
}

/// What makes the hedger consider a hedge (`trigger` in the policy table). Whatever the
/// trigger, a hedge goes to the policy's target (zero or the band's edge) and the safety
/// re-hedge (`max_interval`) still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Net delta outside the band (the default).
    Band,
    /// Each client option trade: hedge the book back to the target when it moves delta by at
    /// least one lot, band or not.
    Fill,
    /// Delta accumulated since the last hedge (|net delta - the last hedge's target|) above
    /// `accumulated`, underlying units.
    Accumulated,
    /// Every `interval_ns`, whatever the delta (at least one lot).
    Timer,
}

/// Execution settings of a policy (keys `style`, `passive_timeout_ms`, `cross_band`,
/// `slices`, `slice_interval_ms`, `trigger`, `accumulated`, `interval_ms`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExecConfig {
    /// Order style.
    pub style: ExecStyle,
    /// Passive: cross after a passive order rested this long, ns.
    pub passive_timeout_ns: u64,
    /// Passive: cross at once when |net delta without the resting order| exceeds this
    /// multiple of the band (> 1).
    pub cross_band: f64,
    /// Slices: child orders per hedge (>= 1).
    pub slices: u32,
    /// Slices: time between child orders, ns.
    pub slice_interval_ns: u64,
    /// Trigger.
    pub trigger: Trigger,
    /// Accumulated trigger: threshold, underlying units.
    pub accumulated: f64,
    /// Timer trigger: period, ns.
    pub interval_ns: u64,
}

impl Default for ExecConfig {
    fn default() -> Self {
        ExecConfig {
            style: ExecStyle::Ioc,
            passive_timeout_ns: 2_000_000_000,
            cross_band: 2.0,
            slices: 4,
            slice_interval_ns: 1_000_000_000,
            trigger: Trigger::Band,
            accumulated: 1.0,
            interval_ns: 10_000_000_000,
        }
    }
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            rule: BandRule::Fixed {
                band: 1.0,
                target: RehedgeTarget::Zero,
            },
            min_band: 0.0,
            max_band: f64::INFINITY,
            min_interval_ns: 0,
            max_interval_ns: 0,
            offset_ticks: 0.0,
            collar_bps: 50.0,
            fast_alpha: 0.1,
            slow_alpha: 0.001,
            holding_horizon_ns: 0,
            exec: ExecConfig::default(),
        }
    }
}

/// The book's risk as the policy sees it (one underlying).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RiskSnapshot {
    /// Net delta in underlying units: options + hedge position + hedge quantity in flight.
    pub net_delta: f64,
    /// Book gamma: change of delta (underlying units) per unit of underlying price.
    pub gamma: f64,
    /// Underlying price (index or forward), quote currency.
    pub underlying_px: f64,
    /// Time to expiry used by Whalley-Wilmott's discount, years (gamma-weighted; 0 if none).
    pub tau_years: f64,
    /// Continuously compounded rate.
    pub rate: f64,
}

/// Live statistics of the hedge instrument's book that the cost-aware policy uses.
///
/// EWMAs per book update: `fast_var`/`slow_var` of squared mid log-returns (their ratio is
/// the realized-vol stress, scale-free so no annualization is needed), `slow_spread` of the
/// relative spread. Seeded by the first observation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MarketStats {
    /// Last mid seen.
    pub last_mid: f64,
    /// Fast EWMA of squared log returns.
    pub fast_var: f64,
    /// Slow EWMA of squared log returns.
    pub slow_var: f64,
    /// Slow EWMA of relative spread (spread / mid).
    pub slow_spread: f64,
    /// Observations so far.
    pub samples: u64,
}

impl MarketStats {
    /// Feeds one top-of-book observation.
    #[inline]
    pub fn observe(&mut self, bid: f64, ask: f64, fast_alpha: f64, slow_alpha: f64) {
        if !(bid > 0.0 && ask > bid && ask.is_finite()) {
            return;
        }
        let mid = 0.5 * (bid + ask);
        let spread = (ask - bid) / mid;
        if self.samples == 0 {
            self.slow_spread = spread;
        } else {
            let r = (mid / self.last_mid).ln();
            let r2 = r * r;
            if self.samples == 1 {
                self.fast_var = r2;
                self.slow_var = r2;
            } else {
                self.fast_var += fast_alpha * (r2 - self.fast_var);
                self.slow_var += slow_alpha * (r2 - self.slow_var);
            }
            self.slow_spread += slow_alpha * (spread - self.slow_spread);
        }
        self.last_mid = mid;
        self.samples += 1;
    }

    /// Realized-vol ratio fast/slow (1 when unknown).
    #[inline]
    pub fn vol_ratio(&self) -> f64 {
        if self.slow_var > 0.0 && self.fast_var.is_finite() {
            (self.fast_var / self.slow_var).sqrt()
        } else {
            1.0
        }
    }

    /// Spread ratio `spread / slow EWMA spread` (1 when unknown).
    #[inline]
    pub fn spread_ratio(&self, bid: f64, ask: f64) -> f64 {
        let mid = 0.5 * (bid + ask);
        if self.slow_spread > 0.0 && mid > 0.0 {
            ((ask - bid) / mid) / self.slow_spread
        } else {
            1.0
        }
    }
}

/// Mutable per-underlying policy state: last hedge time and book statistics.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PolicyState {
    /// Monotonic ns of the last hedge sent (None: never).
    pub last_hedge_ns: Option<u64>,
    /// When the state started (safety timer reference before the first hedge).
    pub started_ns: u64,
    /// Hedge book statistics.
    pub stats: MarketStats,
    /// Side of the last hedge: +1 bought, -1 sold, 0 none.
    pub last_hedge_sign: f64,
    /// Band half-width the last hedge was sent at, underlying units.
    pub last_hedge_band: f64,
    /// Target net delta of the last hedge (the accumulated trigger's reference), underlying
    /// units.
    pub last_hedge_target: f64,
    /// A client option trade arrived since the last decision (the fill trigger).
    pub option_fill_pending: bool,
}

impl PolicyState {
    /// Feeds a hedge-instrument book update into the statistics, which only the cost-aware
    /// band reads ([`HedgePolicy::band`]): under any other rule (fixed in production) a
    /// quote costs no logarithm and no division here, and `stats` stay at their default.
    #[inline]
    pub fn observe_book(&mut self, cfg: &PolicyConfig, bid: f64, ask: f64) {
        if matches!(cfg.rule, BandRule::CostAware { .. }) {
            self.stats.observe(bid, ask, cfg.fast_alpha, cfg.slow_alpha);
        }
    }

    /// Records that a hedge was sent at `now_ns`.
    #[inline]
    pub fn on_hedge_sent(&mut self, now_ns: u64) {
        self.last_hedge_ns = Some(now_ns);
    }

    /// Records the side and band of the hedge just sent (the holding horizon's memory).
    #[inline]
    pub fn on_hedge_decision(&mut self, d: &HedgeDecision) {
        self.last_hedge_sign = d.side.sign();
        self.last_hedge_band = d.band;
        self.last_hedge_target = d.target_delta;
    }

    /// What the state remembers of the last hedge: when, its side, band and target.
    #[inline]
    pub fn last_hedge(&self) -> LastHedge {
        LastHedge {
            at_ns: self.last_hedge_ns,
            sign: self.last_hedge_sign,
            band: self.last_hedge_band,
            target: self.last_hedge_target,
        }
    }

    /// Forgets the hedges sent since `before` was read ([`PolicyState::last_hedge`]): they
    /// traded nothing (a passive order withdrawn without a fill), so they neither hold the
    /// other side for the holding horizon, nor start the minimum interval, nor move the
    /// accumulated trigger's reference.
    #[inline]
    pub fn undo_hedges_since(&mut self, before: LastHedge) {
        self.last_hedge_ns = before.at_ns;
        self.last_hedge_sign = before.sign;
        self.last_hedge_band = before.band;
        self.last_hedge_target = before.target;
    }
}

/// The last hedge as [`PolicyState`] remembers it (see [`PolicyState::last_hedge`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LastHedge {
    /// Monotonic ns it was sent (None: never).
    pub at_ns: Option<u64>,
    /// Its side: +1 bought, -1 sold, 0 none.
    pub sign: f64,
    /// The band it was sent at, underlying units.
    pub band: f64,
    /// Its target net delta, underlying units.
    pub target: f64,
}

/// Why a hedge order was sent (one per order; the replay's `fills[].reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HedgeReason {
    /// Net delta outside the band.
    Band,
    /// Safety re-hedge after the maximum interval.
    Safety,
    /// A passive order at our touch (first, or a replacement after the touch moved away).
    Passive,
    /// The IOC that crossed after a passive order rested `passive_timeout`.
    CrossTimeout,
    /// The IOC that crossed because delta left the hard outer band (`cross_band`).
    CrossBand,
    /// Fill trigger: a client option trade.
    Fill,
    /// Accumulated-delta trigger.
    Accumulated,
    /// Timer trigger.
    Timer,
    /// A later child order of a sliced hedge.
    Slice,
    /// Not an order's reason: why a resting passive order was cancelled without a
    /// replacement. Re-deciding while it rested, the policy would no longer trade (client flow
    /// took the delta it leaves uncovered back inside the no-trade region). Counted with the
    /// other cancel reasons (`passive`: replace, `resize`, `cross_timeout`, `cross_band`).
    Withdraw,
    /// Not an order's reason: why a resting passive order was cancelled to be replaced after
    /// re-deciding while it rested: the policy would trade the other side, or materially less
    /// than the order's leaves. The replacement that follows is a `passive` order.
    Resize,
}

impl HedgeReason {
    /// Every reason.
    pub const ALL: [HedgeReason; 11] = [
        HedgeReason::Band,
        HedgeReason::Safety,
        HedgeReason::Passive,
        HedgeReason::CrossTimeout,
        HedgeReason::CrossBand,
        HedgeReason::Fill,
        HedgeReason::Accumulated,
        HedgeReason::Timer,
        HedgeReason::Slice,
        HedgeReason::Withdraw,
        HedgeReason::Resize,
    ];
    /// Position in [`HedgeReason::ALL`] (which lists the variants in declaration order, so
    /// the position is the discriminant; checked at compile time below).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Label (reports, counters).
    pub const fn name(self) -> &'static str {
        match self {
            HedgeReason::Band => "band",
            HedgeReason::Safety => "safety",
            HedgeReason::Passive => "passive",
            HedgeReason::CrossTimeout => "cross_timeout",
            HedgeReason::CrossBand => "cross_band",
            HedgeReason::Fill => "fill",
            HedgeReason::Accumulated => "accumulated",
            HedgeReason::Timer => "timer",
            HedgeReason::Slice => "slice",
            HedgeReason::Withdraw => "withdraw",
            HedgeReason::Resize => "resize",
        }
    }
}

// `HedgeReason::index` is the discriminant: `ALL` must list the variants in declaration order.
const _: () = {
    let mut i = 0;
    while i < HedgeReason::ALL.len() {
        assert!(HedgeReason::ALL[i] as usize == i);
        i += 1;
    }
};

/// Why no hedge is sent now (each is counted by the hedger).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldReason {
    /// Net delta inside the band (and no safety re-hedge due).
    InsideBand,
    /// Too soon after the previous hedge.
    MinInterval,
    /// The trade rounds to less than the lot or minimum size.
    BelowMinSize,
    /// The hedge book has no usable two-sided quote, or the risk input is not finite.
    NoBook,
    /// The touch is outside the price collar: the market is too wide to hedge now.
    Collar,
    /// Cost-aware: the trade would take back risk traded the other way within the holding
    /// horizon: held until the horizon ends or delta leaves the outer band ([`OUTER_BAND`]
    /// times the band, at most `max_band`).
    Horizon,
}

/// Within the cost-aware holding horizon, a hedge the other way is new risk (and sent) only
/// beyond this multiple of the band.
pub const OUTER_BAND: f64 = 2.0;

/// A hedge to send.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HedgeDecision {
    /// Buy or sell the hedge instrument.
    pub side: Side,
    /// Quantity, contracts, a positive multiple of the lot size, at least the minimum size.
    pub qty_contracts: f64,
    /// The same quantity as delta, underlying units (signed: + for buy).
    pub delta_change: f64,
    /// Limit price (IOC).
    pub limit_px: f64,
    /// Why.
    pub reason: HedgeReason,
    /// The band half-width in force, underlying units.
    pub band: f64,
    /// Target net delta.
    pub target_delta: f64,
    /// The proportional cost used (0 for the fixed band).
    pub lambda: f64,
}

/// The outcome of [`HedgePolicy::decide`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// Send this hedge.
    Hedge(HedgeDecision),
    /// Do nothing now.
    Hold(HoldReason),
}

impl Decision {
    /// The hedge, if any.
    #[inline]
    pub fn hedge(self) -> Option<HedgeDecision> {
        match self {
            Decision::Hedge(d) => Some(d),
            Decision::Hold(_) => None,
        }
    }
}

/// Relative slippage (fraction of `mid`) of taking `qty` contracts through `depth`
/// (`[price, qty]` levels, best first) beyond the touch `touch_px`: `|vwap - touch| / mid`.
/// Quantity beyond the visible depth is priced at the last visible level; an empty depth gives 0.
#[inline]
pub fn slippage_fraction(depth: &[[f64; 2]], touch_px: f64, qty: f64, mid: f64) -> f64 {
    if qty <= 0.0 || depth.is_empty() || mid <= 0.0 {
        return 0.0;
    }
    let mut left = qty;
    let mut cost = 0.0;
    let mut last_px = touch_px;
    for &[px, q] in depth {
        if !(px.is_finite() && px > 0.0 && q.is_finite() && q > 0.0) {
            break;
        }
        let take = if q < left { q } else { left };
        cost += take * (px - touch_px).abs();
        left -= take;
        last_px = px;
        if left <= 0.0 {
            break;
        }
    }
    if left > 0.0 {
        cost += left * (last_px - touch_px).abs();
    }
    cost / qty / mid
}

/// Slippage (fraction of `mid`) charged when the touch's size is unknown: one full spread,
/// `(ask - bid) / mid`, whatever the quantity, so a size-unknown quote never looks deeper than
/// a one-level book whose next level is a spread away.
#[inline]
pub fn unknown_size_slippage(bid: f64, ask: f64, mid: f64) -> f64 {
    if mid > 0.0 && ask > bid {
        (ask - bid) / mid
    } else {
        0.0
    }
}

/// Whalley-Wilmott half-width `(3/2 * exp(-r*tau) * lambda * S * Gamma^2 / gamma)^(1/3)`.
#[inline]
pub fn whalley_wilmott_band(
    lambda: f64,
    s: f64,
    gamma: f64,
    risk_aversion: f64,
    rate: f64,
    tau_years: f64,
) -> f64 {
    // exp(+-0) is exactly 1: at zero rate (every shipped configuration's) no exp per event
    // (a time that is not finite still gives NaN, as 0 x inf did).
    let disc = if rate == 0.0 && tau_years.is_finite() {
        1.0
    } else {
        (-rate * tau_years).exp()
    };
    let x = 1.5 * disc * lambda * s * gamma * gamma / risk_aversion;
    if x.is_finite() && x > 0.0 {
        x.cbrt()
    } else {
        0.0
    }
}

/// One underlying's hedge policy: configuration plus hedge instrument.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HedgePolicy {
    /// Configuration.
    pub cfg: PolicyConfig,
    /// Hedge instrument.
    pub instrument: HedgeInstrument,
}

impl HedgePolicy {
    /// A policy.
    pub fn new(cfg: PolicyConfig, instrument: HedgeInstrument) -> Self {
        HedgePolicy { cfg, instrument }
    }

    /// The band half-width and the `lambda` behind it, for a trade of about `trade_delta`
    /// (underlying units) on `book`. Public for gauges and the backtest.
    ///
    /// Inlined: the fixed band is a constant (read twice per held event); the Whalley-Wilmott
    /// band and the cost-aware rule's live cost are computed out of line.
    #[inline]
    pub fn band(
        &self,
        state: &PolicyState,
        risk: &RiskSnapshot,
        book: &LastValue,
        trade_delta: f64,
    ) -> (f64, f64) {
        match self.cfg.rule {
            BandRule::None => (f64::INFINITY, 0.0),
            BandRule::Fixed { band, .. } => (band, 0.0),
            BandRule::WhalleyWilmott {
                cost,
                risk_aversion,
            } => self.ww_band(cost, risk_aversion, risk),
            BandRule::CostAware {
                taker_fee,
                risk_aversion,
                vol_stress_weight,
                spread_stress_weight,
                max_stress,
            } => {
                let lambda = self.live_lambda(
                    state,
                    book,
                    trade_delta,
                    taker_fee,
                    vol_stress_weight,
                    spread_stress_weight,
                    max_stress,
                );
                self.ww_band(lambda, risk_aversion, risk)
            }
        }
    }

    /// The Whalley-Wilmott band at proportional cost `lambda`, within the configured
    /// `min_band..=max_band`, and `lambda`.
    #[inline(never)]
    fn ww_band(&self, lambda: f64, risk_aversion: f64, risk: &RiskSnapshot) -> (f64, f64) {
        let h = whalley_wilmott_band(
            lambda,
            risk.underlying_px,
            risk.gamma,
            risk_aversion,
            risk.rate,
            risk.tau_years,
        );
        (h.max(self.cfg.min_band).min(self.cfg.max_band), lambda)
    }

    /// The live proportional cost of trading `trade_delta` (signed, underlying units) now.
    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn live_lambda(
        &self,
        state: &PolicyState,
        book: &LastValue,
        trade_delta: f64,
        taker_fee: f64,
        vol_w: f64,
        spread_w: f64,
        max_stress: f64,
    ) -> f64 {
        let (bid, ask) = (book.bid_px, book.ask_px);
        let mid = 0.5 * (bid + ask);
        let half_spread = 0.5 * (ask - bid) / mid;
        let qty = (trade_delta / self.instrument.delta_per_contract(mid)).abs();
        let slippage = if !book.quote_size_known() {
            // Recorded prices without sizes (`LastValue::QUOTE_SIZE_UNKNOWN`): no depth may be
            // assumed, so the whole trade is priced one full spread beyond the touch, as if the
            // touch were empty and the next level a spread away ([`unknown_size_slippage`]).
            unknown_size_slippage(bid, ask, mid)
        } else if book.valid & LastValue::HAS_DEPTH != 0 {
            if trade_delta >= 0.0 {
                let n = (book.ask_levels as usize).min(book.ask_depth.len());
                slippage_fraction(&book.ask_depth[..n], ask, qty, mid)
            } else {
                let n = (book.bid_levels as usize).min(book.bid_depth.len());
                slippage_fraction(&book.bid_depth[..n], bid, qty, mid)
            }
        } else {
            0.0
        };
        let s = &state.stats;
        let stress = 1.0
            + vol_w * (s.vol_ratio() - 1.0).max(0.0)
            + spread_w * (s.spread_ratio(bid, ask) - 1.0).max(0.0);
        let stress = stress.min(max_stress).max(1.0);
        (half_spread + taker_fee + slippage) * stress
    }

    /// The trigger other than the band that fires now, if any (the band breach is checked
    /// first by [`HedgePolicy::decide`] whatever the trigger).
    #[inline]
    fn triggered(&self, state: &PolicyState, net: f64, since_ns: u64) -> Option<HedgeReason> {
        let e = &self.cfg.exec;
        match e.trigger {
            Trigger::Band => None,
            Trigger::Fill => state.option_fill_pending.then_some(HedgeReason::Fill),
            Trigger::Accumulated => ((net - state.last_hedge_target).abs() > e.accumulated)
                .then_some(HedgeReason::Accumulated),
            Trigger::Timer => (since_ns >= e.interval_ns).then_some(HedgeReason::Timer),
        }
    }

    /// Decides whether to hedge now. Pure: same inputs, same answer.
    ///
    /// `risk.net_delta` must already include the hedge position and the quantity in flight.
    /// `book` is the hedge instrument's last value (top of book, and depth when
    /// `HAS_DEPTH` is set). `now_ns` is monotonic time.
    #[inline(always)]
    pub fn decide(
        &self,
        state: &PolicyState,
        risk: &RiskSnapshot,
        book: &LastValue,
        now_ns: u64,
    ) -> Decision {
        self.decide_with_band(state, risk, book, now_ns).0
    }

    /// [`HedgePolicy::decide`], and the band [`HedgePolicy::band`] gave for hedging to zero
    /// (`-risk.net_delta`) when the decision computed it (before the holding horizon's
    /// floor): the hedger shows that band on a hold without computing it a second time (for
    /// the cost-aware rule, the live cost and a Whalley-Wilmott band per event).
    #[inline(always)]
    pub fn decide_with_band(
        &self,
        state: &PolicyState,
        risk: &RiskSnapshot,
        book: &LastValue,
        now_ns: u64,
    ) -> (Decision, Option<f64>) {
        let (bid, ask) = (book.bid_px, book.ask_px);
        let book_ok =
            book.valid & LastValue::HAS_QUOTE != 0 && bid > 0.0 && ask > bid && ask.is_finite();
        let risk_ok = risk.net_delta.is_finite()
            && risk.gamma.is_finite()
            && risk.underlying_px > 0.0
            && risk.underlying_px.is_finite();
        if !(book_ok && risk_ok) {
            return (Decision::Hold(HoldReason::NoBook), None);
        }
        let cfg = &self.cfg;
        if cfg.rule == BandRule::None {
            return (Decision::Hold(HoldReason::InsideBand), None);
        }
        let net = risk.net_delta;
        let mid = 0.5 * (bid + ask);
        let dpc = self.instrument.delta_per_contract(mid);

        // The trade we would make if we hedged to zero sizes the slippage estimate.
        let (mut band, lambda) = self.band(state, risk, book, -net);
        let shown = Some(band);
        let since = now_ns.saturating_sub(state.last_hedge_ns.unwrap_or(state.started_ns));
        let holding = matches!(cfg.rule, BandRule::CostAware { .. })
            && state.last_hedge_ns.is_some()
            && since < cfg.holding_horizon_ns;
        if holding {
            // Within the horizon the band does not shrink below the last hedge's.
            band = band.max(state.last_hedge_band);
        }
        let Some((target, reason)) = self.target(state, net, band, since, dpc) else {
            return (Decision::Hold(HoldReason::InsideBand), shown);
        };
        if let Some(last) = state.last_hedge_ns {
            if now_ns.saturating_sub(last) < cfg.min_interval_ns {
                return (Decision::Hold(HoldReason::MinInterval), shown);
            }
        }
        let delta_change = target - net;
        let side = if delta_change > 0.0 {
            Side::Buy
        } else {
            Side::Sell
        };
        if holding
            && side.sign() == -state.last_hedge_sign
            && net.abs() <= (OUTER_BAND * band).min(cfg.max_band)
        {
            // Trading back what was just traded: not within the horizon, unless delta leaves
            // the outer band (twice the band, at most `max_band`): then it is new risk.
            return (Decision::Hold(HoldReason::Horizon), shown);
        }
        let qty = self.instrument.round_down_to_lot(delta_change.abs() / dpc);
        if qty.is_nan() || qty <= 0.0 || qty < self.instrument.min_qty {
            return (Decision::Hold(HoldReason::BelowMinSize), shown);
        }
        let Some(limit_px) = self.limit_px(side, bid, ask) else {
            return (Decision::Hold(HoldReason::Collar), shown);
        };
        let hedge = Decision::Hedge(HedgeDecision {
            side,
            qty_contracts: qty,
            delta_change: side.sign() * qty * dpc,
            limit_px,
            reason,
            band,
            target_delta: target,
            lambda,
        });
        (hedge, shown)
    }

    /// Where to hedge to: with net delta `net` outside the `band`, to zero or the band's edge;
    /// `since` the last hedge past `max_interval_ns`, a safety hedge to zero of at least one
    /// minimum order (`dpc`: delta per contract); inside the band, to zero when a trigger
    /// fires. None: hold inside the band.
    #[inline]
    fn target(
        &self,
        state: &PolicyState,
        net: f64,
        band: f64,
        since: u64,
        dpc: f64,
    ) -> Option<(f64, HedgeReason)> {
        let cfg = &self.cfg;
        if net.abs() > band {
            let target = match cfg.rule {
                BandRule::Fixed {
                    target: RehedgeTarget::Zero,
                    ..
                } => 0.0,
                _ => band.copysign(net),
            };
            Some((target, HedgeReason::Band))
        } else if cfg.max_interval_ns > 0
            && since >= cfg.max_interval_ns
            && net.abs() >= self.instrument.min_qty.max(self.instrument.lot_size) * dpc
        {
            Some((0.0, HedgeReason::Safety))
        } else {
            // Inside the band: a trigger hedges back to zero (the edge is outward from here).
            self.triggered(state, net, since)
                .map(|reason| (0.0, reason))
        }
    }

    /// The order's limit price: the touch plus `offset_ticks`, within the collar around the
    /// mid, on the tick grid. Rounded to the tick on the passive side (stays inside the
    /// collar); if that no longer reaches the touch (an off-grid touch), the touch itself is
    /// rounded aggressively. None: even that is outside the collar.
    #[inline]
    fn limit_px(&self, side: Side, bid: f64, ask: f64) -> Option<f64> {
        let cfg = &self.cfg;
        let mid = 0.5 * (bid + ask);
        let tick = self.instrument.tick_size;
        let collar = cfg.collar_bps * 1e-4 * mid;
        let floor_tick = |p: f64| {
            if tick > 0.0 {
                ((p / tick) + 1e-9).floor() * tick
            } else {
                p
            }
        };
        let ceil_tick = |p: f64| {
            if tick > 0.0 {
                ((p / tick) - 1e-9).ceil() * tick
            } else {
                p
            }
        };
        match side {
            Side::Buy => {
                let cap = mid + collar;
                let px = floor_tick((ask + cfg.offset_ticks * tick).min(cap));
                if px >= ask {
                    return Some(px);
                }
                let px = ceil_tick(ask);
                (px <= cap).then_some(px)
            }
            Side::Sell => {
                let floor = mid - collar;
                let px = ceil_tick((bid - cfg.offset_ticks * tick).max(floor));
                if px <= bid {
                    return Some(px);
                }
                let px = floor_tick(bid);
                (px >= floor).then_some(px)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;

    fn book(bid: f64, ask: f64) -> LastValue {
        let mut b = LastValue::zeroed();
        b.valid = LastValue::HAS_QUOTE;
        (b.bid_px, b.bid_qty, b.ask_px, b.ask_qty) = (bid, 5.0, ask, 5.0);
        b
    }

    fn risk(net: f64, gamma: f64) -> RiskSnapshot {
        RiskSnapshot {
            net_delta: net,
            gamma,
            underlying_px: 10_000.0,
            tau_years: 0.1,
            rate: 0.0,
        }
    }

    fn linear() -> HedgeInstrument {
        HedgeInstrument::linear(1, 1.0, 0.001, 0.001, 0.5)
    }

    fn fixed(target: RehedgeTarget) -> HedgePolicy {
        HedgePolicy::new(
            PolicyConfig {
                rule: BandRule::Fixed { band: 1.0, target },
                ..PolicyConfig::default()
            },
            linear(),
        )
    }

    #[test]
    fn fixed_band_holds_inside_and_hedges_to_zero_outside() {
        let p = fixed(RehedgeTarget::Zero);
        let s = PolicyState::default();
        let b = book(9999.5, 10000.0);
        assert_eq!(
            p.decide(&s, &risk(0.9, 0.0), &b, 0),
            Decision::Hold(HoldReason::InsideBand)
        );
        let d = p.decide(&s, &risk(1.5, 0.0), &b, 0).hedge().unwrap();
        assert_eq!(d.side, Side::Sell);
        assert!((d.qty_contracts - 1.5).abs() < 1e-12);
        assert_eq!(d.limit_px, 9999.5);
        assert_eq!(d.reason, HedgeReason::Band);
    }

    #[test]
    fn fixed_band_to_edge_trades_only_the_excess() {
        let p = fixed(RehedgeTarget::Edge);
        let d = p
            .decide(
                &PolicyState::default(),
                &risk(-1.75, 0.0),
                &book(9999.5, 10000.5),
                0,
            )
            .hedge()
            .unwrap();
        assert_eq!(d.side, Side::Buy);
        assert!((d.qty_contracts - 0.75).abs() < 1e-12);
        assert_eq!(d.target_delta, -1.0);
    }

    #[test]
    fn whalley_wilmott_band_matches_formula_and_widens_with_gamma() {
        let h = whalley_wilmott_band(0.001, 10_000.0, 0.002, 1e-4, 0.05, 0.5);
        let expect = (1.5 * (-0.025f64).exp() * 0.001 * 10_000.0 * 4e-6 / 1e-4).cbrt();
        assert!((h - expect).abs() < 1e-12);
        let p = HedgePolicy::new(
            PolicyConfig {
                rule: BandRule::WhalleyWilmott {
                    cost: 0.001,
                    risk_aversion: 1e-4,
                },
                min_band: 0.01,
                max_band: 100.0,
                ..PolicyConfig::default()
            },
            linear(),
        );
        let s = PolicyState::default();
        let b = book(9999.5, 10000.0);
        let (h1, _) = p.band(&s, &risk(0.0, 0.001), &b, 0.0);
        let (h2, _) = p.band(&s, &risk(0.0, 0.004), &b, 0.0);
        assert!(h2 > h1);
        // Zero gamma: the floor.
        assert_eq!(p.band(&s, &risk(0.0, 0.0), &b, 0.0).0, 0.01);
        // Outside: trade to the edge.
        let d = p.decide(&s, &risk(5.0, 0.001), &b, 0).hedge().unwrap();
        assert!((d.target_delta - h1).abs() < 1e-12);
        assert!((d.qty_contracts - p.instrument.round_down_to_lot(5.0 - h1)).abs() < 1e-9);
    }

    /// Only the cost-aware band reads the book statistics: under another rule a quote
    /// leaves them untouched (no logarithm per quote); under the cost-aware one it feeds them.
    #[test]
    fn only_the_cost_aware_band_feeds_the_book_statistics() {
        for (p, fed) in [(fixed(RehedgeTarget::Zero), false), (cost_aware(), true)] {
            let mut s = PolicyState::default();
            for m in [10_000.0, 10_010.0, 9_990.0] {
                s.observe_book(&p.cfg, m - 0.5, m + 0.5);
            }
            assert_eq!(s.stats != MarketStats::default(), fed, "{:?}", p.cfg.rule);
        }
    }

    /// [`cost_aware`] with a state that has seen 200 calm books: 10000 +- 1, spread 1.
    fn calm_cost_aware() -> (HedgePolicy, PolicyState) {
        let p = cost_aware();
        let mut s = PolicyState::default();
        for i in 0..200 {
            let m = 10_000.0 + if i % 2 == 0 { 1.0 } else { -1.0 };
            s.observe_book(&p.cfg, m - 0.5, m + 0.5);
        }
        (p, s)
    }

    fn cost_aware() -> HedgePolicy {
        HedgePolicy::new(
            PolicyConfig {
                rule: BandRule::CostAware {
                    taker_fee: 0.0005,
                    risk_aversion: 1e-4,
                    vol_stress_weight: 1.0,
                    spread_stress_weight: 1.0,
                    max_stress: 4.0,
                },
                min_band: 0.01,
                max_band: 3.0,
                fast_alpha: 0.5,
                slow_alpha: 0.01,
                ..PolicyConfig::default()
            },
            linear(),
        )
    }

    #[test]
    fn size_unknown_quote_costs_a_full_spread_and_never_looks_deep() {
        let (p, s) = calm_cost_aware();
        // A known top of book without depth: no slippage charged.
        let deep = book(9999.5, 10000.5);
        let (_, l_deep) = p.band(&s, &risk(0.0, 0.002), &deep, -1.0);
        // The same prices with unknown sizes (recorded without amounts).
        let mut unknown = deep;
        unknown.valid |= LastValue::QUOTE_SIZE_UNKNOWN;
        let (_, l_unknown) = p.band(&s, &risk(0.0, 0.002), &unknown, -1.0);
        let spread = 1.0 / 10_000.0;
        // One spread more, times the (near 1) stress factor of the calm state.
        assert!(
            (l_unknown - l_deep - spread).abs() < 1e-8,
            "{l_unknown} vs {l_deep}"
        );
        assert_eq!(unknown_size_slippage(9999.5, 10000.5, 10_000.0), spread);
    }

    #[test]
    fn cost_aware_band_widens_with_spread_depth_and_stress_and_is_capped() {
        let (p, s) = calm_cost_aware();
        let calm = book(9999.5, 10000.5);
        let (h_calm, l_calm) = p.band(&s, &risk(0.0, 0.002), &calm, -1.0);
        assert!(
            (l_calm - (0.5 / 10_000.0 + 0.0005)).abs() < 1e-6,
            "{l_calm}"
        );
        // Thin depth: slippage raises lambda.
        let mut thin = calm;
        thin.valid |= LastValue::HAS_DEPTH;
        thin.bid_levels = 2;
        thin.bid_depth[0] = [9999.5, 0.5];
        thin.bid_depth[1] = [9990.0, 10.0];
        let (h_thin, l_thin) = p.band(&s, &risk(0.0, 0.002), &thin, -1.0);
        assert!(l_thin > l_calm && h_thin > h_calm);
        // Stress: big moves and a wide spread.
        let mut st = s;
        for i in 0..20 {
            let m = 10_000.0 + if i % 2 == 0 { 100.0 } else { -100.0 };
            st.observe_book(&p.cfg, m - 10.0, m + 10.0);
        }
        let wide = book(9990.0, 10010.0);
        let (h_st, l_st) = p.band(&st, &risk(0.0, 0.002), &wide, -1.0);
        assert!(l_st > l_thin && h_st > h_calm);
        // Stress is capped at 4x the unstressed cost.
        let unstressed = 10.0 / 10_000.0 + 0.0005;
        assert!(l_st <= 4.0 * unstressed + 1e-12);
        // Huge gamma: band capped at max_band.
        assert_eq!(p.band(&st, &risk(0.0, 10.0), &wide, -1.0).0, 3.0);
    }

    #[test]
    fn slippage_walks_depth_and_prices_the_remainder_at_the_last_level() {
        let depth = [[100.0, 1.0], [101.0, 1.0]];
        assert_eq!(slippage_fraction(&depth, 100.0, 1.0, 100.0), 0.0);
        assert!((slippage_fraction(&depth, 100.0, 2.0, 100.0) - 0.005).abs() < 1e-12);
        assert!((slippage_fraction(&depth, 100.0, 4.0, 100.0) - 0.0075).abs() < 1e-12);
    }

    #[test]
    fn min_interval_blocks_and_safety_rehedge_fires_after_max_interval() {
        let mut p = fixed(RehedgeTarget::Zero);
        p.cfg.min_interval_ns = 1_000;
        p.cfg.max_interval_ns = 1_000_000;
        let mut s = PolicyState::default();
        s.on_hedge_sent(10_000);
        let b = book(9999.5, 10000.5);
        assert_eq!(
            p.decide(&s, &risk(2.0, 0.0), &b, 10_500),
            Decision::Hold(HoldReason::MinInterval)
        );
        assert!(p.decide(&s, &risk(2.0, 0.0), &b, 11_000).hedge().is_some());
        // Inside the band: nothing until max interval, then back to zero.
        assert_eq!(
            p.decide(&s, &risk(0.5, 0.0), &b, 500_000),
            Decision::Hold(HoldReason::InsideBand)
        );
        let d = p
            .decide(&s, &risk(0.5, 0.0), &b, 1_010_000)
            .hedge()
            .unwrap();
        assert_eq!(d.reason, HedgeReason::Safety);
        assert!((d.qty_contracts - 0.5).abs() < 1e-12);
        // Residual below the minimum size: no safety hedge.
        assert_eq!(
            p.decide(&s, &risk(0.0001, 0.0), &b, 1_010_000),
            Decision::Hold(HoldReason::InsideBand)
        );
    }

    #[test]
    fn quantities_round_to_lot_and_respect_min_size() {
        let mut p = fixed(RehedgeTarget::Edge);
        p.instrument.lot_size = 0.1;
        p.instrument.min_qty = 0.5;
        let b = book(9999.5, 10000.5);
        let s = PolicyState::default();
        assert_eq!(
            p.decide(&s, &risk(1.3, 0.0), &b, 0),
            Decision::Hold(HoldReason::BelowMinSize)
        );
        let d = p.decide(&s, &risk(1.57, 0.0), &b, 0).hedge().unwrap();
        assert!((d.qty_contracts - 0.5).abs() < 1e-12);
    }

    #[test]
    fn inverse_instrument_converts_delta_to_face_value_contracts() {
        let mut p = fixed(RehedgeTarget::Zero);
        p.instrument = HedgeInstrument::inverse(2, 10.0, 1.0, 1.0, 0.5);
        let d = p
            .decide(
                &PolicyState::default(),
                &risk(2.0, 0.0),
                &book(9999.5, 10000.5),
                0,
            )
            .hedge()
            .unwrap();
        // 2 BTC at 10000 = 20000 USD = 2000 contracts of 10 USD.
        assert!((d.qty_contracts - 2000.0).abs() < 1e-9);
        assert!((d.delta_change + 2.0).abs() < 1e-9);
        assert_eq!(p.instrument.notional(2000.0, 10_000.0), 20_000.0);
    }

    #[test]
    fn limit_price_uses_offset_and_collar() {
        let mut p = fixed(RehedgeTarget::Zero);
        p.cfg.offset_ticks = 2.0;
        p.cfg.collar_bps = 100.0;
        let s = PolicyState::default();
        let d = p
            .decide(&s, &risk(-2.0, 0.0), &book(9999.5, 10000.0), 0)
            .hedge()
            .unwrap();
        assert_eq!(d.limit_px, 10001.0);
        // A spread wider than the collar: hold.
        p.cfg.collar_bps = 1.0;
        assert_eq!(
            p.decide(&s, &risk(-2.0, 0.0), &book(9990.0, 10010.0), 0),
            Decision::Hold(HoldReason::Collar)
        );
        // Offset capped by the collar: 1 bp of 10000 = 1.0 above mid.
        let d = p
            .decide(&s, &risk(2.0, 0.0), &book(9999.5, 10000.5), 0)
            .hedge()
            .unwrap();
        assert_eq!(d.limit_px, 9999.0);
    }

    #[test]
    fn bad_inputs_hold_without_panicking() {
        let p = fixed(RehedgeTarget::Zero);
        let s = PolicyState::default();
        assert_eq!(
            p.decide(&s, &risk(f64::NAN, 0.0), &book(9999.5, 10000.5), 0),
            Decision::Hold(HoldReason::NoBook)
        );
        assert_eq!(
            p.decide(&s, &risk(2.0, 0.0), &book(101.0, 99.0), 0),
            Decision::Hold(HoldReason::NoBook)
        );
        assert_eq!(
            p.decide(&s, &risk(2.0, 0.0), &LastValue::zeroed(), 0),
            Decision::Hold(HoldReason::NoBook)
        );
    }

    /// Cost-aware with a holding horizon: a hedge is not traded back within the horizon
    /// unless delta leaves twice the band; after the horizon it is.
    #[test]
    fn cost_aware_does_not_trade_back_within_its_holding_horizon() {
        let p = HedgePolicy::new(
            PolicyConfig {
                rule: BandRule::CostAware {
                    taker_fee: 5e-4,
                    risk_aversion: 1e-4,
                    vol_stress_weight: 0.0,
                    spread_stress_weight: 0.0,
                    max_stress: 1.0,
                },
                // Zero gamma: the model band is 0, floored at 0.5.
                min_band: 0.5,
                max_band: 5.0,
                holding_horizon_ns: 10_000_000_000,
                ..PolicyConfig::default()
            },
            linear(),
        );
        let b = book(9_999.5, 10_000.0);
        let mut st = PolicyState::default();
        let first = p.decide(&st, &risk(-0.8, 0.0), &b, 1_000).hedge().unwrap();
        assert_eq!(first.side, Side::Buy);
        st.on_hedge_sent(1_000);
        st.on_hedge_decision(&first);
        // Delta swings to +0.8: outside the 0.5 band, inside twice it: held.
        assert_eq!(
            p.decide(&st, &risk(0.8, 0.0), &b, 2_000),
            Decision::Hold(HoldReason::Horizon)
        );
        // Beyond twice the band it is new risk: hedged.
        assert_eq!(
            p.decide(&st, &risk(1.2, 0.0), &b, 2_000)
                .hedge()
                .unwrap()
                .side,
            Side::Sell
        );
        // More of the same direction is not held.
        assert!(p.decide(&st, &risk(-0.8, 0.0), &b, 2_000).hedge().is_some());
        // After the horizon, trading back is allowed.
        assert!(p
            .decide(&st, &risk(0.8, 0.0), &b, 1_000 + 10_000_000_000)
            .hedge()
            .is_some());
    }
}
