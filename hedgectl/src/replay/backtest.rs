//! The backtest loop: one process, one thread, deterministic, as fast as the CPU goes.
//!
//! Per source event, in this order (the live hedger's order: execs first, then market data):
//! 1. the simulated venue (`order_gateway::sim::SimVenue`) reports what is due by the event's
//!    time (fills, IOC cancels, rejects) after its latency; fills move the hedge position;
//! 2. client option flow due by then (the gateway's `OptionFlow` simulator, or a flow file)
//!    changes the option inventory;
//! 3. the event updates the last-value book (the venue's market view), the book risk
//!    (`engine::risk::BookRisk`: option marks, forwards, the underlying) and the hedge
//!    policy's market statistics;
//! 4. per underlying: the policy (`engine::policy::HedgePolicy::decide`) and the pre-trade
//!    limits (`engine::limits::Limits::check`) decide, and an IOC limit order goes to the
//!    venue, counted in flight until its terminal report.
//!
//! The replay clock is the source's clock (`SourceEvent::source_ts_ns`): latency, intervals,
//! rate limits and expiries all run on it, so a replay is exactly reproducible.
//!
//! # Accounting (quote currency, USD for Deribit)
//! - Options: value `qty x multiplier x mark` (an inverse mark in coin times its forward).
//!   Initial positions enter at their first mark; client trades pay or receive their price.
//!   Options without a recorded mark (LOBSTER) are marked with BSM at `--option-vol`.
//! - Hedge: linear `pos x multiplier x mid`; inverse (Deribit perpetual, face value per
//!   contract) `mid x sum(q x face / px) - sum(q x face)`, the USD value of the coin PnL.
//! - Costs: fees (coin fees at the fill price) plus slippage, the fill price against the
//!   hedge book's mid at the decision (spread, depth walked and latency together).
//!   `pnl_hedge` is the hedge's PnL as if every fill had been at that mid, so
//!   `pnl_total = pnl_options + pnl_hedge - costs`.
//! - Delta: inverse options contribute their model delta `dV/dF` (the USD value sensitivity,
//!   consistent with USD accounting) unless `--inverse-delta premium-adjusted`.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use bytemuck::Zeroable;
use engine::limits::{CheckContext, LimitBreach, Limits, LimitsConfig, OrderToCheck, TradingMode};
use engine::policy::{
    Decision, HedgeInstrument, HedgePolicy, PolicyConfig, PolicyState, RiskSnapshot,
};
use engine::pricing::{
    black76_price, bsm_price, Model, OptionType as PxType, Settlement as PxSettlement,
};
use engine::risk::{BookRisk, InverseDelta, OptionSpec, RiskConfig};
use feed_handler::instruments::parse_deribit_symbol;
use feed_handler::source::{Source, SourceEvent};
use order_gateway::flow::{FlowConfig, OptionFlow};
use order_gateway::sim::{SimConfig, SimVenue};
use order_gateway::venue::Venue;
use shm_layout::{
    ExecKind, HedgeOrder, InstrumentDef, InstrumentKind, LastValue, MarketEventKind, OptionType,
    OrderAction, OrderType, Settlement, Side, TimeInForce, NO_FORWARD,
};

use super::positions::{FlowTrade, Position};
use super::report::{Comparison, Fill, PolicyReport, Series, UnderlyingSummary};

const YEAR_NS: f64 = 365.0 * 86_400.0 * 1e9;
const DAY_NS: u64 = 86_400_000_000_000;

/// Everything a run needs besides the source.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Policy label (as given on the command line).
    pub policy_label: String,
    /// The policy configuration (the same for every underlying).
    pub policy: PolicyConfig,
    /// Limits (the same for every underlying).
    pub limits: LimitsConfig,
    /// Venue simulator.
    pub sim: SimConfig,
    /// Client flow simulator (None = off).
    pub flow_sim: Option<FlowConfig>,
    /// Client flow from a file.
    pub flow_file: Vec<FlowTrade>,
    /// Initial positions.
    pub positions: Vec<Position>,
    /// Explicit hedge instruments: underlying symbol -> hedge symbol.
    pub hedge_symbols: BTreeMap<String, String>,
    /// Half-spread (bps of the reference price) of a modelled hedge book.
    pub model_half_spread_bps: f64,
    /// Levels per side of a modelled hedge book.
    pub model_levels: usize,
    /// Contracts per level of a modelled hedge book.
    pub model_level_qty: f64,
    /// Vol for options without marks (BSM on the underlying).
    pub option_vol: Option<f64>,
    /// Contract multiplier of options that positions or flow add (LOBSTER).
    pub option_multiplier: f64,
    /// Sampling interval of the time series, ns.
    pub sample_ns: u64,
    /// Stop after this much source time, ns (0 = until the source ends).
    pub duration_ns: u64,
    /// Stop after this many events (0 = no limit).
    pub max_events: u64,
    /// Inverse options' delta.
    pub inverse_delta: InverseDelta,
}

#[derive(Debug, Clone, Copy)]
struct OrderState {
    under: usize,
    side: Side,
    qty: f64,
    filled: f64,
    decision_mid: f64,
}

/// One hedged underlying.
struct Under {
    root: u32,
    symbol: String,
    hedge: InstrumentDef,
    hedge_is_root: bool,
    policy: HedgePolicy,
    pstate: PolicyState,
    limits: Limits,
    registered: bool,
    ref_px: f64,
    ref_ts: u64,
    root_priced: bool,
    nearest_fwd: Option<u32>,
    modelled_book: bool,
    /// Model-marked options registered (first underlying price seen).
    model_registered: bool,
    recorded_quotes: bool,
    book_ts: u64,
    hedge_pos: f64,
    inflight: f64,
    inflight_notional: f64,
    // Accounting, USD.
    cash_h: f64,
    inv_a: f64,
    inv_b: f64,
    hedge_entered: bool,
    fees: f64,
    slippage: f64,
    trades: u64,
    volume: f64,
    // Statistics.
    max_abs_before: f64,
    max_abs_after: f64,
    outside_ns: u64,
    outside: bool,
    last_net: f64,
    /// Cumulative PnL of the residual net delta: sum of net delta (after decisions) times the
    /// next move of the underlying, quote currency.
    delta_pnl: f64,
    prev_err: Option<f64>,
    err_steps: Vec<f64>,
    last_band: f64,
    hold_counts: BTreeMap<&'static str, u64>,
    series: Series,
    prev_pnl: Option<f64>,
    pnl_steps: Vec<f64>,
}

/// Per option instrument.
#[derive(Debug, Clone, Copy, Default)]
struct Opt {
    registered: bool,
    pending_qty: f64,
    entered: bool,
    under: Option<usize>,
    /// Its cash settlement at expiry is booked (cash and a `settlement` fill).
    settled: bool,
}

pub(crate) fn hedge_instrument(def: &InstrumentDef) -> HedgeInstrument {
    let mult = if def.contract_multiplier > 0.0 {
        def.contract_multiplier
    } else {
        1.0
    };
    let lot = if def.lot_size > 0.0 {
        def.lot_size
    } else {
        1.0
    };
    let min = def.min_qty.max(lot);
    if def.settlement() == Ok(Settlement::Inverse) {
        HedgeInstrument::inverse(def.id, mult, lot, min, def.tick_size)
    } else {
        HedgeInstrument::linear(def.id, mult, lot, min, def.tick_size)
    }
}

fn px_type(def: &InstrumentDef) -> PxType {
    if def.option_type() == Ok(OptionType::Call) {
        PxType::Call
    } else {
        PxType::Put
    }
}

/// Adds options named in positions or the flow file that the source does not define (e.g.
/// AMZN options over a LOBSTER file): parsed Deribit-style (`AMZN-20JUL12-220-C`), linear,
/// BSM on the underlying, marked at `--option-vol`.
fn extra_options(defs: &mut Vec<InstrumentDef>, symbols: &[&str], mult: f64) -> Result<()> {
    for &s in symbols {
        if defs.iter().any(|d| d.symbol() == s) {
            continue;
        }
        let p = parse_deribit_symbol(s).map_err(|e| anyhow::anyhow!("symbol {s}: {e}"))?;
        if p.kind != InstrumentKind::Option {
            bail!("symbol {s} is not in the market data and is not an option");
        }
        let root = defs
            .iter()
            .find(|d| d.symbol() == p.currency)
            .with_context(|| {
                format!(
                    "option {s}: its underlying {} is not in the market data",
                    p.currency
                )
            })?
            .id;
        let mut d = InstrumentDef::zeroed();
        d.id = defs.len() as u32;
        d.kind = InstrumentKind::Option as u8;
        d.option_type = p.option_type as u8;
        d.settlement = Settlement::Linear as u8;
        d.underlying_id = root;
        d.forward_id = NO_FORWARD;
        d.strike = p.strike;
        d.expiry_ns = p.expiry_ns;
        d.contract_multiplier = mult;
        d.tick_size = 0.01;
        d.lot_size = 1.0;
        d.min_qty = 1.0;
        d.set_symbol(s);
        defs.push(d);
    }
    Ok(())
}

/// The backtest state of one policy run.
pub struct Backtest {
    cfg: RunConfig,
    defs: Vec<InstrumentDef>,
    venue: SimVenue<Vec<Option<LastValue>>>,
    market: Vec<Option<LastValue>>,
    fwd_px: Vec<f64>,
    book: BookRisk,
    unders: Vec<Under>,
    under_of_root: Vec<Option<usize>>,
    opts: Vec<Opt>,
    orders: BTreeMap<u64, OrderState>,
    next_order_id: u64,
    flow: Option<OptionFlow>,
    flow_idx: usize,
    cash_opt: Vec<f64>,
    fills: Vec<Fill>,
    reports: Vec<order_gateway::venue::VenueReport>,
    initial: BTreeMap<String, f64>,
    seq: u64,
    start_ns: Option<u64>,
    now_ns: u64,
    next_sample_ns: u64,
    events: u64,
    flow_skipped: u64,
    reevals: u64,
    /// Option positions the book settled at expiry, all underlyings (to notice new ones).
    settled_seen: u64,
    venue_rejects: u64,
    limit_rejects: [u64; LimitBreach::ALL.len()],
}

impl Backtest {
    /// Sets up a run over the instruments of `src`.
    ///
    /// # Errors
    /// A position or flow symbol that is unknown, or no underlying to hedge.
    pub fn new(src_defs: &[InstrumentDef], cfg: RunConfig) -> Result<Self> {
        let mut defs = src_defs.to_vec();
        let mut named: Vec<&str> = cfg.positions.iter().map(|p| p.symbol.as_str()).collect();
        named.extend(cfg.flow_file.iter().map(|f| f.symbol.as_str()));
        let unknown: Vec<&str> = named
            .iter()
            .copied()
            .filter(|s| !defs.iter().any(|d| d.symbol() == *s))
            .collect();
        if !unknown.is_empty() {
            if cfg.option_vol.is_none() {
                bail!(
                    "symbol {} is not in the market data (give --option-vol to add options priced with BSM)",
                    unknown[0]
                );
            }
            extra_options(&mut defs, &unknown, cfg.option_multiplier)?;
        }
        // Underlyings: roots of options in the data or in the positions; with no options at all
        // (a LOBSTER file and no positions), the instruments that are their own underlying and
        // have a book (spot, perpetual).
        let mut roots: Vec<u32> = Vec::new();
        for d in &defs {
            if d.kind() == Ok(InstrumentKind::Option) && !roots.contains(&d.underlying_id) {
                roots.push(d.underlying_id);
            }
        }
        if roots.is_empty() {
            for d in &defs {
                // A perpetual or spot with a book is hedged as its own underlying (a Tardis
                // book file of BTC-PERPETUAL has no index price for BTC).
                if matches!(
                    d.kind(),
                    Ok(InstrumentKind::Spot | InstrumentKind::Perpetual)
                ) {
                    roots.push(d.id);
                }
            }
        }
        if roots.is_empty() {
            bail!("the market data defines no underlying to hedge");
        }
        roots.sort_unstable();
        let mut unders = Vec::new();
        let mut under_of_root = vec![None; defs.len()];
        for &root in &roots {
            let rdef = defs[root as usize];
            let symbol = rdef.symbol().to_string();
            let hedge = if let Some(h) = cfg.hedge_symbols.get(&symbol) {
                *defs.iter().find(|d| d.symbol() == h).with_context(|| {
                    format!("hedge instrument {h} of {symbol} is not in the market data")
                })?
            } else if matches!(
                rdef.kind(),
                Ok(InstrumentKind::Spot | InstrumentKind::Perpetual)
            ) {
                rdef
            } else {
                let perp = format!("{symbol}-PERPETUAL");
                *defs.iter().find(|d| d.symbol() == perp).with_context(|| {
                    format!(
                        "underlying {symbol}: no hedge instrument (give --hedge {symbol}=SYMBOL)"
                    )
                })?
            };
            under_of_root[root as usize] = Some(unders.len());
            unders.push(Under {
                root,
                symbol,
                hedge_is_root: hedge.id == root,
                policy: HedgePolicy::new(cfg.policy, hedge_instrument(&hedge)),
                hedge,
                pstate: PolicyState::default(),
                limits: Limits::new(cfg.limits),
                registered: false,
                ref_px: 0.0,
                ref_ts: 0,
                root_priced: false,
                nearest_fwd: None,
                modelled_book: false,
                model_registered: false,
                recorded_quotes: false,
                book_ts: 0,
                hedge_pos: 0.0,
                inflight: 0.0,
                inflight_notional: 0.0,
                cash_h: 0.0,
                inv_a: 0.0,
                inv_b: 0.0,
                hedge_entered: false,
                fees: 0.0,
                slippage: 0.0,
                trades: 0,
                volume: 0.0,
                max_abs_before: 0.0,
                max_abs_after: 0.0,
                outside_ns: 0,
                outside: false,
                last_net: 0.0,
                delta_pnl: 0.0,
                prev_err: None,
                err_steps: Vec::new(),
                last_band: 0.0,
                hold_counts: BTreeMap::new(),
                series: Series::default(),
                prev_pnl: None,
                pnl_steps: Vec::new(),
            });
        }
        let mut opts = vec![Opt::default(); defs.len()];
        let mut initial = BTreeMap::new();
        for p in &cfg.positions {
            let d = defs
                .iter()
                .find(|d| d.symbol() == p.symbol)
                .expect("added above");
            *initial.entry(p.symbol.clone()).or_insert(0.0) += p.qty;
            if d.kind() == Ok(InstrumentKind::Option) {
                opts[d.id as usize].pending_qty += p.qty;
            } else if let Some(u) = unders.iter_mut().find(|u| u.hedge.id == d.id) {
                u.hedge_pos += p.qty;
            } else {
                bail!(
                    "position {}: neither an option nor a hedge instrument",
                    p.symbol
                );
            }
        }
        for (i, d) in defs.iter().enumerate() {
            if d.kind() == Ok(InstrumentKind::Option) {
                opts[i].under = under_of_root
                    .get(d.underlying_id as usize)
                    .copied()
                    .flatten();
            }
        }
        let risk_cfg = RiskConfig {
            inverse_delta: cfg.inverse_delta,
            max_options: defs.len().max(16),
            max_instrument_id: (defs.len() as u32).max(16),
            ..RiskConfig::default()
        };
        let market: Vec<Option<LastValue>> = vec![None; defs.len()];
        let venue = SimVenue::new(cfg.sim.clone(), defs.clone(), market.clone());
        Ok(Backtest {
            book: BookRisk::new(risk_cfg),
            venue,
            market,
            fwd_px: vec![0.0; defs.len()],
            cash_opt: vec![0.0; unders.len()],
            unders,
            under_of_root,
            opts,
            orders: BTreeMap::new(),
            next_order_id: 1,
            flow: None,
            flow_idx: 0,
            fills: Vec::new(),
            reports: Vec::new(),
            initial,
            seq: 0,
            start_ns: None,
            now_ns: 0,
            next_sample_ns: 0,
            events: 0,
            flow_skipped: 0,
            reevals: 0,
            settled_seen: 0,
            venue_rejects: 0,
            limit_rejects: [0; LimitBreach::ALL.len()],
            defs,
            cfg,
        })
    }

    fn lv(&self, id: u32) -> Option<LastValue> {
        self.market.get(id as usize).copied().flatten()
    }

    /// Writes a book into our view and the simulator's (which only lends `market_mut`).
    fn put(&mut self, id: u32, lv: LastValue) {
        self.market[id as usize] = Some(lv);
        self.venue.market_mut()[id as usize] = Some(lv);
    }

    /// Runs the whole source through the loop.
    ///
    /// # Errors
    /// None today (bad rows are the source's rejects); kept for future checks.
    pub fn run(mut self, src: &mut dyn Source) -> Result<PolicyReport> {
        let mut ev = SourceEvent::default();
        while src.next(&mut ev) {
            let ts = ev.source_ts_ns.max(self.now_ns);
            let start = *self.start_ns.get_or_insert(ts);
            if self.cfg.duration_ns > 0 && ts.saturating_sub(start) > self.cfg.duration_ns {
                break;
            }
            if self.cfg.max_events > 0 && self.events >= self.cfg.max_events {
                break;
            }
            self.step(ts, &ev);
        }
        Ok(self.finish(src))
    }

    fn step(&mut self, ts: u64, ev: &SourceEvent) {
        if self.events == 0 {
            self.next_sample_ns = ts;
            if let Some(fc) = &self.cfg.flow_sim {
                self.flow = Some(OptionFlow::new(fc.clone(), &self.defs, ts));
            }
        }
        self.events += 1;
        // Time outside the band since the previous event.
        let dt = ts.saturating_sub(self.now_ns);
        if self.now_ns > 0 {
            for u in &mut self.unders {
                if u.outside {
                    u.outside_ns += dt;
                }
            }
        }
        self.now_ns = ts;
        self.poll_venue(ts);
        self.client_flow(ts);
        self.apply_event(ts, ev);
        self.book.advance_time(ts);
        self.book_settlements(ts);
        self.book.idle_step();
        // As the live hedger: an exact re-evaluation before deciding on a delta whose error
        // bound exceeds the configured tolerance.
        for i in 0..self.unders.len() {
            let root = self.unders[i].root;
            if self
                .book
                .underlying(root)
                .is_some_and(|r| !r.within_tolerance)
            {
                self.book.force_reeval(root);
                self.reevals += 1;
            }
        }
        for i in 0..self.unders.len() {
            self.decide(i, ts);
        }
        while ts >= self.next_sample_ns {
            self.sample(self.next_sample_ns.max(ts));
            self.next_sample_ns += self.cfg.sample_ns.max(1);
        }
    }

    /// Books the cash settlements the risk book made at expiries (as the live hedger: a
    /// settled position no longer has delta): the intrinsic value goes to the options' cash
    /// and a `settlement` fill takes the position to 0, so that final = initial + fills
    /// still holds. O(options) once per expiry with positions.
    fn book_settlements(&mut self, ts: u64) {
        let total: u64 = self
            .unders
            .iter()
            .filter_map(|u| self.book.settlement_totals(u.root))
            .map(|t| t.options_settled)
            .sum();
        if total == self.settled_seen {
            return;
        }
        self.settled_seen = total;
        for i in 0..self.opts.len() {
            let o = self.opts[i];
            let (Some(u), true, false) = (o.under, o.registered, o.settled) else {
                continue;
            };
            let Some(s) = self.book.settlement(i as u32) else {
                continue;
            };
            self.opts[i].settled = true;
            if s.contracts == 0.0 {
                continue;
            }
            self.cash_opt[u] += s.value_quote;
            self.fills.push(Fill {
                ts_ns: ts,
                symbol: self.defs[i].symbol().to_string(),
                kind: "settlement",
                qty: -s.contracts,
                // Per contract, in the option's premium currency (coin for inverse options).
                price: s.value / s.contracts,
                fee: 0.0,
            });
        }
    }

    fn poll_venue(&mut self, now: u64) {
        let mut reports = std::mem::take(&mut self.reports);
        reports.clear();
        self.venue.poll(now, &mut |r| reports.push(r));
        for &r in &reports {
            let Some(o) = self.orders.get(&r.client_order_id).copied() else {
                continue;
            };
            let sign = o.side.sign();
            match r.kind {
                ExecKind::Fill | ExecKind::PartialFill => {
                    let u = &mut self.unders[o.under];
                    let mult = u.policy.instrument.contract_size;
                    u.hedge_pos += sign * r.qty;
                    u.inflight -= sign * r.qty;
                    let inverse = u.hedge.settlement() == Ok(Settlement::Inverse);
                    let (fee_usd, slip, notional) = if inverse {
                        u.inv_a += sign * r.qty * mult / r.price;
                        u.inv_b += sign * r.qty * mult;
                        (
                            r.fee * r.price,
                            sign * r.qty * mult * (r.price - o.decision_mid) / r.price,
                            r.qty * mult,
                        )
                    } else {
                        u.cash_h -= sign * r.qty * mult * r.price;
                        (
                            r.fee,
                            sign * r.qty * mult * (r.price - o.decision_mid),
                            r.qty * mult * r.price,
                        )
                    };
                    u.inflight_notional = (u.inflight_notional - notional).max(0.0);
                    u.fees += fee_usd;
                    u.slippage += slip;
                    u.volume += notional;
                    u.limits.on_fill(now / DAY_NS, notional);
                    if let Some(st) = self.orders.get_mut(&r.client_order_id) {
                        st.filled += r.qty;
                    }
                    self.fills.push(Fill {
                        ts_ns: now,
                        symbol: u.hedge.symbol().to_string(),
                        kind: "hedge",
                        qty: sign * r.qty,
                        price: r.price,
                        fee: r.fee,
                    });
                    if r.kind == ExecKind::Fill {
                        self.release(r.client_order_id);
                    }
                }
                ExecKind::Cancelled | ExecKind::Rejected => {
                    if r.kind == ExecKind::Rejected {
                        self.venue_rejects += 1;
                        self.unders[o.under].limits.on_reject(now);
                    }
                    self.release(r.client_order_id);
                }
                _ => {}
            }
        }
        self.reports = reports;
    }

    /// Terminal report: what was not filled is no longer in flight.
    fn release(&mut self, id: u64) {
        if let Some(o) = self.orders.remove(&id) {
            let u = &mut self.unders[o.under];
            let rest = (o.qty - o.filled).max(0.0);
            u.inflight -= o.side.sign() * rest;
            if u.inflight.abs() < 1e-9 {
                u.inflight = 0.0;
                u.inflight_notional = 0.0;
            } else {
                let px = o.decision_mid;
                u.inflight_notional =
                    (u.inflight_notional - u.policy.instrument.notional(rest, px)).max(0.0);
            }
        }
    }

    fn client_flow(&mut self, now: u64) {
        let mut trades: Vec<(u32, f64, Option<f64>)> = Vec::new();
        if let Some(flow) = &mut self.flow {
            flow.poll(now, &self.market, 10_000, &mut |e| {
                let sign = Side::try_from(e.side).map_or(0.0, |s| s.sign());
                trades.push((e.instrument_id, sign * e.qty, Some(e.price)));
            });
        }
        while let Some(f) = self.cfg.flow_file.get(self.flow_idx) {
            if f.ts_ns > now {
                break;
            }
            self.flow_idx += 1;
            if let Some(d) = self.defs.iter().find(|d| d.symbol() == f.symbol) {
                trades.push((d.id, f.qty, f.price));
            }
        }
        for (id, qty, price) in trades {
            self.option_trade(now, id, qty, price);
        }
    }

    /// USD value of one contract of an option now (None: no mark and no model).
    ///
    /// Marked options are revalued between their marks with Black-76 at the last mark's
    /// implied vol on the current forward of their expiry (sticky strike): a chain snapshot
    /// marks each option rarely while the forwards move. At a mark this equals the mark (the
    /// exchange's mark price is Black-76 at mark_iv).
    fn option_unit_value(&self, id: u32) -> Option<f64> {
        let d = &self.defs[id as usize];
        let t = d.expiry_ns.saturating_sub(self.now_ns) as f64 / YEAR_NS;
        let mult = if d.contract_multiplier > 0.0 {
            d.contract_multiplier
        } else {
            1.0
        };
        let lv = self.lv(id).filter(|lv| lv.valid & LastValue::HAS_MARK != 0);
        if let Some(lv) = lv {
            let fwd = (d.forward_id != NO_FORWARD)
                .then(|| self.lv(d.forward_id))
                .flatten()
                .filter(|f| f.valid & LastValue::HAS_PRICE != 0)
                .map_or(lv.mark_underlying_px, |f| f.price);
            if let Ok(p) = black76_price(px_type(d), fwd, d.strike, t, lv.mark_iv, 0.0) {
                return Some(p * mult);
            }
            let m = if d.settlement() == Ok(Settlement::Inverse) {
                lv.mark_px * lv.mark_underlying_px
            } else {
                lv.mark_px
            };
            return Some(m * mult);
        }
        let vol = self.cfg.option_vol?;
        let u = self.opts[id as usize].under?;
        let s = self.unders[u].ref_px;
        if s.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return None;
        }
        bsm_price(px_type(d), s, d.strike, t, vol, 0.0, 0.0)
            .ok()
            .map(|p| p * mult)
    }

    fn option_trade(&mut self, now: u64, id: u32, qty: f64, price: Option<f64>) {
        let o = self.opts[id as usize];
        let (Some(u), true) = (o.under, o.registered) else {
            self.flow_skipped += 1;
            return;
        };
        let d = self.defs[id as usize];
        // Expired (settled in cash, or about to be at this time): no trade, as in the hedger.
        if d.expiry_ns <= now || self.book.settlement(id).is_some() {
            self.flow_skipped += 1;
            return;
        }
        let unit = match price {
            Some(p) => {
                let lv = self.lv(id);
                let conv = if d.settlement() == Ok(Settlement::Inverse) {
                    lv.map_or(0.0, |lv| lv.mark_underlying_px)
                } else {
                    1.0
                };
                p * conv * d.contract_multiplier
            }
            None => match self.option_unit_value(id) {
                Some(v) => v,
                None => {
                    self.flow_skipped += 1;
                    return;
                }
            },
        };
        self.cash_opt[u] -= qty * unit;
        self.book.add_position(id, qty);
        self.fills.push(Fill {
            ts_ns: now,
            symbol: d.symbol().to_string(),
            kind: "option",
            qty,
            price: price.unwrap_or(unit / d.contract_multiplier),
            fee: 0.0,
        });
    }

    fn ensure_underlying(&mut self, u: usize, px: f64) -> bool {
        if self.unders[u].registered {
            return true;
        }
        if !(px > 0.0 && px.is_finite()) {
            return false;
        }
        let root = self.unders[u].root;
        if self.book.add_underlying(root, px).is_err() {
            return false;
        }
        self.unders[u].registered = true;
        // Nearest forward (by expiry, among the forwards of this underlying).
        let now = self.now_ns;
        self.unders[u].nearest_fwd = self
            .defs
            .iter()
            .filter(|d| {
                d.underlying_id == root
                    && d.id != root
                    && d.expiry_ns > now
                    && matches!(d.kind(), Ok(InstrumentKind::Index | InstrumentKind::Future))
            })
            .min_by_key(|d| (d.expiry_ns, d.id))
            .map(|d| d.id);
        true
    }

    fn ensure_forward(&mut self, fwd: u32, px: f64) -> bool {
        let d = self.defs[fwd as usize];
        let Some(u) = self
            .under_of_root
            .get(d.underlying_id as usize)
            .copied()
            .flatten()
        else {
            return false;
        };
        if !self.ensure_underlying(u, px) {
            return false;
        }
        if self.book.on_price(fwd, px) {
            return true;
        }
        self.book
            .add_forward(fwd, d.underlying_id, d.expiry_ns, px)
            .is_ok()
    }

    fn register_option(&mut self, id: u32, iv: f64, fwd_px: f64) {
        let d = self.defs[id as usize];
        let Some(u) = self.opts[id as usize].under else {
            return;
        };
        let forward_id = (d.forward_id != NO_FORWARD).then_some(d.forward_id);
        if let Some(f) = forward_id {
            if !self.ensure_forward(f, fwd_px) {
                return;
            }
        } else if !self.ensure_underlying(u, fwd_px) {
            return;
        }
        let spec = OptionSpec {
            id,
            underlying_id: d.underlying_id,
            forward_id,
            strike: d.strike,
            expiry_ns: d.expiry_ns,
            kind: px_type(&d),
            model: if forward_id.is_some() {
                Model::Black76
            } else {
                Model::Bsm
            },
            settlement: if d.settlement() == Ok(Settlement::Inverse) {
                PxSettlement::Inverse
            } else {
                PxSettlement::Linear
            },
            multiplier: if d.contract_multiplier > 0.0 {
                d.contract_multiplier
            } else {
                1.0
            },
        };
        if self.book.add_option(spec, iv.clamp(0.001, 10.0)).is_ok() {
            self.opts[id as usize].registered = true;
        }
    }

    /// Enters pending (initial) option positions at their first value.
    fn enter_pending(&mut self, id: u32) {
        let o = self.opts[id as usize];
        if !o.registered || o.entered {
            return;
        }
        let Some(u) = o.under else { return };
        if self.book.settlement(id).is_some() {
            // Expired before it could be valued: nothing to enter.
            return;
        }
        let Some(unit) = self.option_unit_value(id) else {
            return;
        };
        self.opts[id as usize].entered = true;
        if o.pending_qty != 0.0 {
            self.cash_opt[u] -= o.pending_qty * unit;
            self.book.add_position(id, o.pending_qty);
        }
    }

    fn set_ref(&mut self, u: usize, px: f64, ts: u64) {
        let un = &mut self.unders[u];
        if un.ref_px > 0.0 {
            un.delta_pnl += un.last_net * (px - un.ref_px);
        }
        un.ref_px = px;
        un.ref_ts = ts;
        if !un.recorded_quotes && !un.hedge_is_root {
            self.model_hedge_book(u, ts);
        }
    }

    /// A hedge book around the reference price when the data has none for the hedge
    /// instrument (the Deribit options chain carries no perpetual quotes).
    fn model_hedge_book(&mut self, u: usize, ts: u64) {
        let (id, tick, ref_px) = {
            let un = &self.unders[u];
            (un.hedge.id, un.hedge.tick_size.max(1e-9), un.ref_px)
        };
        let half = (ref_px * self.cfg.model_half_spread_bps * 1e-4).max(tick);
        let bid = ((ref_px - half) / tick).floor() * tick;
        let ask = ((ref_px + half) / tick).ceil() * tick;
        let mut lv = self.lv(id).unwrap_or_else(LastValue::zeroed);
        self.seq += 1;
        lv.last_seq = self.seq;
        lv.exch_ts_ns = ts;
        lv.recv_ts_ns = ts;
        lv.instrument_id = id;
        lv.valid |= LastValue::HAS_QUOTE;
        let q = self.cfg.model_level_qty;
        (lv.bid_px, lv.bid_qty, lv.ask_px, lv.ask_qty) = (bid, q, ask, q);
        let n = self.cfg.model_levels.min(shm_layout::DEPTH_LEVELS);
        if n > 0 {
            lv.valid |= LastValue::HAS_DEPTH;
            lv.bid_levels = n as u32;
            lv.ask_levels = n as u32;
            for k in 0..n {
                lv.bid_depth[k] = [bid - k as f64 * tick, q];
                lv.ask_depth[k] = [ask + k as f64 * tick, q];
            }
        }
        self.put(id, lv);
        let un = &mut self.unders[u];
        un.modelled_book = true;
        un.book_ts = ts;
        let cfg = un.policy.cfg;
        un.pstate.observe_book(&cfg, bid, ask);
        self.enter_hedge(u);
    }

    /// Enters an initial hedge position at the first mid.
    fn enter_hedge(&mut self, u: usize) {
        let id = self.unders[u].hedge.id;
        let Some(mid) = self.lv(id).and_then(|lv| lv.mid()) else {
            return;
        };
        let un = &mut self.unders[u];
        if un.hedge_entered {
            return;
        }
        un.hedge_entered = true;
        let mult = un.policy.instrument.contract_size;
        if un.hedge.settlement() == Ok(Settlement::Inverse) {
            un.inv_a += un.hedge_pos * mult / mid;
            un.inv_b += un.hedge_pos * mult;
        } else {
            un.cash_h -= un.hedge_pos * mult * mid;
        }
    }

    fn apply_event(&mut self, ts: u64, ev: &SourceEvent) {
        let mut e = ev.event;
        let id = e.instrument_id;
        if id as usize >= self.defs.len() {
            return;
        }
        self.seq += 1;
        e.seq = self.seq;
        e.recv_ts_ns = ts;
        {
            let mut lv = self.lv(id).unwrap_or_else(|| {
                let mut l = LastValue::zeroed();
                l.instrument_id = id;
                l
            });
            lv.apply(&e);
            if ev.has_depth && e.kind == MarketEventKind::Quote as u8 {
                lv.valid |= LastValue::HAS_DEPTH;
                lv.bid_levels = ev.depth.bid_levels;
                lv.ask_levels = ev.depth.ask_levels;
                lv.bid_depth = ev.depth.bids;
                lv.ask_depth = ev.depth.asks;
            } else if e.kind == MarketEventKind::Quote as u8 {
                lv.valid &= !LastValue::HAS_DEPTH;
                lv.bid_levels = 0;
                lv.ask_levels = 0;
            }
            self.put(id, lv);
        }
        let d = self.defs[id as usize];
        match e.kind() {
            Ok(MarketEventKind::UnderlyingPrice) => {
                let px = e.v[0];
                if let Some(u) = self.under_of_root.get(id as usize).copied().flatten() {
                    if self.ensure_underlying(u, px) {
                        self.unders[u].root_priced = true;
                        self.book.on_price(id, px);
                        self.set_ref(u, px, ts);
                    }
                } else if let Some(u) = self
                    .under_of_root
                    .get(d.underlying_id as usize)
                    .copied()
                    .flatten()
                {
                    // A forward (or future) of an underlying.
                    let prev = self.fwd_px[id as usize];
                    if self.ensure_forward(id, px) {
                        self.fwd_px[id as usize] = px;
                        let un = &self.unders[u];
                        if !un.root_priced {
                            // No index price in the data: the nearest forward stands in for
                            // it, and any other forward moves it by its own relative move (the
                            // book's model: forwards move with the underlying).
                            let root_px = if un.nearest_fwd == Some(id) || un.nearest_fwd.is_none()
                            {
                                Some(px)
                            } else if prev > 0.0 && un.ref_px > 0.0 {
                                Some(un.ref_px * px / prev)
                            } else {
                                None
                            };
                            if let Some(rp) = root_px {
                                let root = un.root;
                                self.book.on_price(root, rp);
                                self.book.on_price(id, px);
                                self.set_ref(u, rp, ts);
                            }
                        }
                    }
                }
            }
            Ok(MarketEventKind::OptionMark) => {
                let (_, iv, fwd) = (e.v[0], e.v[1], e.v[2]);
                if self.opts[id as usize].registered {
                    self.book.on_mark(id, iv.clamp(0.001, 10.0), fwd);
                } else {
                    self.register_option(id, iv, fwd);
                }
                self.enter_pending(id);
            }
            Ok(MarketEventKind::Quote) => {
                let (b, a) = (e.v[0], e.v[2]);
                for u in 0..self.unders.len() {
                    if self.unders[u].hedge.id == id {
                        let un = &mut self.unders[u];
                        un.recorded_quotes = true;
                        un.book_ts = ts;
                        let cfg = un.policy.cfg;
                        un.pstate.observe_book(&cfg, b, a);
                        self.enter_hedge(u);
                    }
                    if self.unders[u].root == id && self.unders[u].hedge_is_root {
                        // A spot underlying (LOBSTER): its mid is the underlying price.
                        let mid = 0.5 * (b + a);
                        if self.ensure_underlying(u, mid) {
                            self.book.on_price(id, mid);
                            let un = &mut self.unders[u];
                            if un.ref_px > 0.0 {
                                un.delta_pnl += un.last_net * (mid - un.ref_px);
                            }
                            un.ref_px = mid;
                            un.ref_ts = ts;
                            // Options priced by the model enter once the underlying is known
                            // (one pass: later quotes skip the scan).
                            if self.cfg.option_vol.is_none() || self.unders[u].model_registered {
                                continue;
                            }
                            self.unders[u].model_registered = true;
                            for oid in 0..self.opts.len() {
                                let o = self.opts[oid];
                                if o.under == Some(u)
                                    && !o.registered
                                    && self.cfg.option_vol.is_some()
                                    && self
                                        .lv(oid as u32)
                                        .is_none_or(|l| l.valid & LastValue::HAS_MARK == 0)
                                {
                                    let vol = self.cfg.option_vol.unwrap_or(0.3);
                                    self.register_option(oid as u32, vol, mid);
                                    self.enter_pending(oid as u32);
                                }
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn tau_years(&self, root: u32) -> f64 {
        let (mut w, mut wt) = (0.0, 0.0);
        for b in self.book.buckets(root) {
            w += b.gamma.abs();
            wt += b.gamma.abs() * b.t_years;
        }
        if w > 0.0 {
            wt / w
        } else {
            0.0
        }
    }

    /// (options delta, gamma, vega per vol point, net delta incl. hedge and in flight, mid).
    fn risk_now(&self, u: usize) -> Option<(f64, f64, f64, f64, f64)> {
        let un = &self.unders[u];
        let r = self.book.underlying(un.root)?;
        let lv = self.lv(un.hedge.id)?;
        let mid = lv.mid()?;
        let dpc = un.policy.instrument.delta_per_contract(mid);
        let net = r.net_delta + (un.hedge_pos + un.inflight) * dpc;
        Some((r.net_delta, r.gamma, r.vega * 0.01, net, mid))
    }

    fn decide(&mut self, u: usize, now: u64) {
        let Some((_, gamma, _, net, mid)) = self.risk_now(u) else {
            return;
        };
        let Some(book) = self.lv(self.unders[u].hedge.id) else {
            return;
        };
        let tau = self.tau_years(self.unders[u].root);
        let un = &mut self.unders[u];
        let snap = RiskSnapshot {
            net_delta: net,
            gamma,
            underlying_px: if un.ref_px > 0.0 { un.ref_px } else { mid },
            tau_years: tau,
            rate: 0.0,
        };
        un.max_abs_before = un.max_abs_before.max(net.abs());
        let (band, _) = un.policy.band(&un.pstate, &snap, &book, -net);
        let decision = un.policy.decide(&un.pstate, &snap, &book, now);
        let mut after = net;
        match decision {
            Decision::Hedge(d) => {
                let signed = d.side.sign() * d.qty_contracts;
                let ctx = CheckContext {
                    now_ns: now,
                    utc_day: now / DAY_NS,
                    kill_switch: false,
                    gateway_alive: true,
                    mode: TradingMode::Active,
                    underlying_ts_ns: un.ref_ts,
                    hedge_book_ts_ns: un.book_ts,
                    hedge_book_ok: book.bid_px > 0.0 && book.ask_px > book.bid_px,
                    position_contracts: un.hedge_pos + un.inflight,
                    inflight_notional: un.inflight_notional,
                };
                let notional = un.policy.instrument.notional(d.qty_contracts, mid);
                match un.limits.check(
                    &ctx,
                    &OrderToCheck {
                        signed_qty: signed,
                        notional,
                    },
                ) {
                    Ok(()) => {
                        let id = self.next_order_id;
                        self.next_order_id += 1;
                        let order = HedgeOrder {
                            client_order_id: id,
                            instrument_id: un.hedge.id,
                            side: d.side as u8,
                            order_type: OrderType::Limit as u8,
                            tif: TimeInForce::Ioc as u8,
                            action: OrderAction::New as u8,
                            qty: d.qty_contracts,
                            limit_px: d.limit_px,
                            feed_recv_ts_ns: now,
                            hedger_read_ts_ns: now,
                            decision_ts_ns: now,
                            publish_ts_ns: now,
                        };
                        un.pstate.on_hedge_sent(now);
                        un.inflight += signed;
                        un.inflight_notional += notional;
                        un.trades += 1;
                        after = net + d.delta_change;
                        self.orders.insert(
                            id,
                            OrderState {
                                under: u,
                                side: d.side,
                                qty: d.qty_contracts,
                                filled: 0.0,
                                decision_mid: mid,
                            },
                        );
                        self.venue.submit(&order, now);
                    }
                    Err(b) => self.limit_rejects[b.index()] += 1,
                }
            }
            Decision::Hold(h) => {
                *un.hold_counts.entry(hold_name(h)).or_insert(0) += 1;
            }
        }
        un.max_abs_after = un.max_abs_after.max(after.abs());
        // One lot of slack: a hedge to the band's edge rounds to whole lots.
        let lot_delta =
            un.policy.instrument.lot_size * un.policy.instrument.delta_per_contract(mid);
        un.outside = after.abs() > band + lot_delta;
        un.last_net = after;
        un.last_band = band;
    }

    /// (options PnL, hedge PnL at decision mids, costs), USD.
    fn pnl(&self, u: usize) -> (f64, f64, f64) {
        let un = &self.unders[u];
        let mut value = 0.0;
        for (i, o) in self.opts.iter().enumerate() {
            if o.under != Some(u) || !o.registered {
                continue;
            }
            let q = self.book.position(i as u32).unwrap_or(0.0);
            if q != 0.0 {
                value += q * self.option_unit_value(i as u32).unwrap_or(0.0);
            }
        }
        let options = value + self.cash_opt[u];
        let mid = self.lv(un.hedge.id).and_then(|lv| lv.mid()).unwrap_or(0.0);
        let mult = un.policy.instrument.contract_size;
        let hedge_total = if !un.hedge_entered {
            0.0
        } else if un.hedge.settlement() == Ok(Settlement::Inverse) {
            mid * un.inv_a - un.inv_b
        } else {
            un.cash_h + un.hedge_pos * mult * mid
        };
        let costs = un.fees + un.slippage;
        (options, hedge_total + un.slippage, costs)
    }

    fn sample(&mut self, ts: u64) {
        let start = self.start_ns.unwrap_or(ts);
        for u in 0..self.unders.len() {
            let Some((opt_delta, gamma, vega, net, mid)) = self.risk_now(u) else {
                continue;
            };
            let (po, ph, pc) = self.pnl(u);
            let un = &mut self.unders[u];
            let total = po + ph - pc;
            if let Some(p) = un.prev_pnl {
                un.pnl_steps.push(total - p);
            }
            un.prev_pnl = Some(total);
            let err = un.delta_pnl;
            if let Some(p) = un.prev_err {
                un.err_steps.push(err - p);
            }
            un.prev_err = Some(err);
            let dpc = un.policy.instrument.delta_per_contract(mid);
            let s = &mut un.series;
            s.t_s.push((ts - start) as f64 * 1e-9);
            s.underlying_px.push(un.ref_px);
            s.net_delta_before_hedging.push(opt_delta);
            s.net_delta_after_hedging.push(net);
            s.band.push(un.last_band);
            s.gamma.push(gamma);
            s.vega.push(vega);
            s.hedge_position.push(un.hedge_pos);
            s.hedge_delta.push(un.hedge_pos * dpc);
            s.hedge_trades.push(un.trades);
            s.fees.push(un.fees);
            s.slippage.push(un.slippage);
            s.pnl_options.push(po);
            s.pnl_hedge.push(ph);
            s.pnl_costs.push(pc);
            s.pnl_total.push(total);
            s.pnl_residual_delta.push(un.delta_pnl);
        }
    }

    fn finish(mut self, src: &dyn Source) -> PolicyReport {
        // Drain the venue: every order in flight reaches its terminal report.
        let mut t = self.now_ns;
        for _ in 0..1000 {
            if self.orders.is_empty() {
                break;
            }
            t += 1_000_000;
            self.poll_venue(t);
        }
        self.sample(self.now_ns);
        let start = self.start_ns.unwrap_or(0);
        let mut underlyings = BTreeMap::new();
        let mut final_pos: BTreeMap<String, f64> = BTreeMap::new();
        for (i, o) in self.opts.iter().enumerate() {
            let q = if o.registered {
                self.book.position(i as u32).unwrap_or(0.0)
            } else {
                o.pending_qty
            };
            if q != 0.0 || self.initial.contains_key(self.defs[i].symbol()) {
                *final_pos
                    .entry(self.defs[i].symbol().to_string())
                    .or_insert(0.0) += q;
            }
        }
        for u in 0..self.unders.len() {
            let (po, ph, pc) = self.pnl(u);
            let un = &mut self.unders[u];
            if un.hedge_pos != 0.0 || self.initial.contains_key(un.hedge.symbol()) {
                *final_pos
                    .entry(un.hedge.symbol().to_string())
                    .or_insert(0.0) += un.hedge_pos;
            }
            let std = std_dev(&un.pnl_steps);
            let err_std = std_dev(&un.err_steps);
            let elapsed = self.now_ns.saturating_sub(start);
            underlyings.insert(
                un.symbol.clone(),
                UnderlyingSummary {
                    hedge_instrument: un.hedge.symbol().to_string(),
                    hedge_book: if un.recorded_quotes || un.hedge_is_root {
                        "recorded"
                    } else if un.modelled_book {
                        "modelled"
                    } else {
                        "none"
                    },
                    hedge_trades: un.trades,
                    hedge_volume_notional: un.volume,
                    fees: un.fees,
                    slippage: un.slippage,
                    total_hedge_cost: un.fees + un.slippage,
                    pnl_options: po,
                    pnl_hedge: ph,
                    pnl_costs: pc,
                    pnl_total: po + ph - pc,
                    pnl_std: std,
                    pnl_residual_delta: un.delta_pnl,
                    hedge_error_std: err_std,
                    max_abs_net_delta: un.max_abs_before,
                    max_abs_net_delta_after_hedging: un.max_abs_after,
                    time_outside_band_s: un.outside_ns as f64 * 1e-9,
                    time_outside_band_frac: if elapsed > 0 {
                        un.outside_ns as f64 / elapsed as f64
                    } else {
                        0.0
                    },
                    final_hedge_position: un.hedge_pos,
                    holds: un
                        .hold_counts
                        .iter()
                        .map(|(k, v)| (k.to_string(), *v))
                        .collect(),
                    series: std::mem::take(&mut un.series),
                },
            );
        }
        let limit_rejects = LimitBreach::ALL
            .iter()
            .filter(|b| self.limit_rejects[b.index()] > 0)
            .map(|b| (b.name().to_string(), self.limit_rejects[b.index()]))
            .collect();
        let comparison = Comparison::from_underlyings(&self.cfg.policy_label, &underlyings);
        PolicyReport {
            policy: self.cfg.policy_label.clone(),
            events: self.events,
            source_rejects: src.rejects().total(),
            duration_s: self.now_ns.saturating_sub(start) as f64 * 1e-9,
            start_ns: start,
            limit_rejects,
            venue_rejects: self.venue_rejects,
            flow_trades: self.fills.iter().filter(|f| f.kind == "option").count() as u64,
            flow_skipped: self.flow_skipped,
            forced_reevaluations: self.reevals,
            comparison,
            underlyings,
            initial_positions: self.initial.clone(),
            final_positions: final_pos,
            fills: std::mem::take(&mut self.fills),
        }
    }
}

/// Sample standard deviation (0 with fewer than two values).
fn std_dev(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let m = x.iter().sum::<f64>() / n;
    (x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0)).sqrt()
}

fn hold_name(h: engine::policy::HoldReason) -> &'static str {
    use engine::policy::HoldReason as H;
    match h {
        H::InsideBand => "inside_band",
        H::MinInterval => "min_interval",
        H::BelowMinSize => "below_min_size",
        H::NoBook => "no_book",
        H::Collar => "collar",
    }
}
