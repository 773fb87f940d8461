//! The backtest: the live hedger's `HedgerCore` on recorded or synthetic market data, against
//! the order gateway's simulated venue, on a discrete-event clock ([`super::world`]).
//!
//! One code path: the core decides (policy, limits, lot rounding, notional at the limit
//! price, rate, in-flight accounting, kill switch), with the configuration resolved by the
//! live hedger's own `engine::hedger::live::resolve`. This module only
//! - builds the hedger's configuration when none is given (every underlying of the data,
//!   hedged with its perpetual, one policy for all),
//! - stands in for market data the recording lacks, stated in the report: a hedge book
//!   modelled around the reference price when the data has no quotes for the hedge
//!   instrument, and marks at `--option-vol` for options the data never marks,
//! - keeps the books ([`super::accounts`]) and writes the report.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Context, Result};
use bytemuck::Zeroable;
use engine::config::{
    HedgerConfig, LimitsSection, PolicySection, PositionSection, UnderlyingSection,
};
use engine::hedger::core::{HedgerCore, UnderlyingSetup, CANCEL_LABELS, HOLD_LABELS};
use engine::hedger::risk::{BookRiskAdapter, OptionRisk};
use engine::limits::LimitBreach;
use engine::policy::HedgeReason;
use engine::pricing::{black76_price, bsm_price, OptionType as PxType};
use feed_handler::instruments::parse_deribit_symbol;
use feed_handler::source::{Depth, Source, SourceEvent};
use order_gateway::flow::{FlowConfig, OptionFlow};
use order_gateway::sim::{SimConfig, SimVenue};
use shm_layout::{
    ExecEvent, ExecKind, InstrumentDef, InstrumentKind, LastValue, Liquidity, MarketEvent,
    MarketEventKind, OptionType, Settlement, Side, NO_FORWARD,
};

mod revalue;

use pricing::time::years_between_ns;
use revalue::OptionState;
pub use revalue::Split;

use super::accounts::{thin, Account, Sample};
use super::positions::{FlowTrade, Position};
use super::report::{Comparison, Fill, PolicyReport};
use super::world::World;

/// After the data ends, the venue is drained for at most this much replay time.
const DRAIN_NS: u64 = 10_000_000_000;

/// Everything a run needs besides the source.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Policy label (as given on the command line).
    pub policy_label: String,
    /// The live hedger's configuration (`--config`), or None to hedge every underlying of
    /// the data with `policy` and `limits`.
    pub hedger: Option<HedgerConfig>,
    /// The policy for every underlying (overrides the file's when given).
    pub policy: Option<PolicySection>,
    /// The limits for every underlying (overrides the file's when given).
    pub limits: Option<LimitsSection>,
    /// Venue simulator.
    pub sim: SimConfig,
    /// Client flow simulator (None = off).
    pub flow_sim: Option<FlowConfig>,
    /// Client flow from a file.
    pub flow_file: Vec<FlowTrade>,
    /// Initial positions (options, or a hedge instrument).
    pub positions: Vec<Position>,
    /// Explicit hedge instruments: underlying symbol -> hedge symbol.
    pub hedge_symbols: BTreeMap<String, String>,
    /// Half-spread (bps of the reference price) of a modelled hedge book.
    pub model_half_spread_bps: f64,
    /// Levels per side of a modelled hedge book.
    pub model_levels: usize,
    /// Contracts per level of a modelled hedge book.
    pub model_level_qty: f64,
    /// Vol for options the data never marks (Black-Scholes on the underlying).
    pub option_vol: Option<f64>,
    /// Contract multiplier of options that positions or flow add (LOBSTER).
    pub option_multiplier: f64,
    /// Sampling interval of the plotted series, ns.
    pub sample_ns: u64,
    /// Bound of the plotted series: at most twice this many points.
    pub max_points: usize,
    /// Stop after this much source time, ns (0 = until the source ends).
    pub duration_ns: u64,
    /// Stop after this many events (0 = no limit).
    pub max_events: u64,
}

/// The market the recording lacks, per underlying.
#[derive(Debug, Clone, Copy, Default)]
struct Model {
    /// The data quotes the hedge instrument: its book is recorded, not modelled.
    recorded_quotes: bool,
    /// The data prices the index itself: no modelled index.
    index_seen: bool,
    /// The underlying's reference price: the index, or the nearest expiry's forward.
    ref_px: f64,
    /// Expiry of the forward `ref_px` came from (0: the index).
    fwd_expiry_ns: u64,
    /// The hedge instrument's own price (a ticker's mark or last), 0 if none yet.
    hedge_px: f64,
    marks_done: bool,
}

impl Model {
    /// The price a modelled hedge book is quoted around.
    fn book_px(&self) -> f64 {
        if self.hedge_px > 0.0 {
            self.hedge_px
        } else {
            self.ref_px
        }
    }
}

/// One policy run.
pub struct Backtest {
    cfg: RunConfig,
    defs: Vec<InstrumentDef>,
    setups: Vec<UnderlyingSetup>,
    positions: Vec<PositionSection>,
    world: Option<World>,
    accounts: Vec<Account>,
    models: Vec<Model>,
    /// Underlying slot of each instrument's role (options, index, hedge, forwards).
    under_of: Vec<Option<usize>>,
    initial_opt: Vec<f64>,
    entered: Vec<bool>,
    settled_booked: Vec<bool>,
    settled_seen: u64,
    /// Per order in flight: underlying, mid and half spread of the hedge book when sent, and
    /// why the core sent it.
    order_mid: HashMap<u64, (usize, f64, f64, &'static str)>,
    fills: Vec<Fill>,
    flow_trades: u64,
    flow_skipped: u64,
    venue_rejects: u64,
    start_ns: Option<u64>,
    next_sample_ns: u64,
    sample_ns: u64,
    events: u64,
    /// The last source event said more of its snapshot follows: no observation until the
    /// snapshot is whole (as the core decides only then).
    mid_batch: bool,
    /// Options of each underlying.
    options_of: Vec<Vec<u32>>,
    /// Per instrument: an option held at its last revaluation, (position, state).
    revalued: Vec<Option<(f64, OptionState)>>,
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
/// on the underlying, marked at `--option-vol`.
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

/// The underlyings of the data: roots of its options, or, with no options at all, the
/// instruments that are their own underlying (spot, perpetual).
fn roots(defs: &[InstrumentDef]) -> Vec<u32> {
    let mut roots: Vec<u32> = Vec::new();
    for d in defs {
        if d.kind() == Ok(InstrumentKind::Option) && !roots.contains(&d.underlying_id) {
            roots.push(d.underlying_id);
        }
    }
    if roots.is_empty() {
        roots = defs
            .iter()
            .filter(|d| {
                matches!(
                    d.kind(),
                    Ok(InstrumentKind::Spot | InstrumentKind::Perpetual)
                )
            })
            .map(|d| d.id)
            .collect();
    }
    roots.sort_unstable();
    roots
}

/// The hedger configuration of a run: the given file, or one table per underlying of the
/// data (hedged with its perpetual, or itself when it is a spot or perpetual); the policy
/// and limits of the command line override the file's. Positions of a hedge instrument
/// become its `initial_hedge_position`.
fn hedger_config(defs: &[InstrumentDef], cfg: &RunConfig) -> Result<HedgerConfig> {
    let mut h = match &cfg.hedger {
        Some(h) => h.clone(),
        None => {
            let mut h = HedgerConfig::default();
            for root in roots(defs) {
                let r = &defs[root as usize];
                let sym = r.symbol().to_string();
                let hedge = match cfg.hedge_symbols.get(&sym) {
                    Some(s) => s.clone(),
                    None if matches!(
                        r.kind(),
                        Ok(InstrumentKind::Spot | InstrumentKind::Perpetual)
                    ) =>
                    {
                        sym.clone()
                    }
                    None => format!("{sym}-PERPETUAL"),
                };
                h.underlyings.insert(
                    sym,
                    UnderlyingSection {
                        hedge_instrument: hedge,
                        initial_hedge_position: 0.0,
                        rate: 0.0,
                        policy: PolicySection::default(),
                        limits: LimitsSection::default(),
                    },
                );
            }
            h
        }
    };
    if h.underlyings.is_empty() {
        bail!("the market data defines no underlying to hedge");
    }
    for u in h.underlyings.values_mut() {
        if let Some(p) = &cfg.policy {
            u.policy = p.clone();
        }
        if let Some(l) = &cfg.limits {
            u.limits = l.clone();
        }
    }
    for p in &cfg.positions {
        if let Some(u) = h
            .underlyings
            .values_mut()
            .find(|u| u.hedge_instrument == p.symbol)
        {
            u.initial_hedge_position += p.qty;
        } else {
            h.positions.push(PositionSection {
                symbol: p.symbol.clone(),
                qty: p.qty,
            });
        }
    }
    h.validate("replay").map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(h)
}

/// The market data's instruments, plus an option for every symbol the positions or the flow
/// file name that the data lacks (priced with `--option-vol`; an error without it).
fn defs_with_named_options(
    src_defs: &[InstrumentDef],
    cfg: &RunConfig,
) -> Result<Vec<InstrumentDef>> {
    let mut defs = src_defs.to_vec();
    let mut named: Vec<&str> = cfg.positions.iter().map(|p| p.symbol.as_str()).collect();
    named.extend(cfg.flow_file.iter().map(|f| f.symbol.as_str()));
    let unknown: Vec<&str> = named
        .into_iter()
        .filter(|s| !defs.iter().any(|d| d.symbol() == *s))
        .collect();
    if !unknown.is_empty() {
        if cfg.option_vol.is_none() {
            bail!(
                "symbol {} is not in the market data (give --option-vol to add options priced with Black-Scholes)",
                unknown[0]
            );
        }
        extra_options(&mut defs, &unknown, cfg.option_multiplier)?;
    }
    Ok(defs)
}

impl Backtest {
    /// Sets up a run over the instruments of the source.
    ///
    /// # Errors
    /// An unknown position or flow symbol, an underlying or hedge instrument the data does
    /// not define, an invalid policy or limit.
    pub fn new(src_defs: &[InstrumentDef], cfg: RunConfig) -> Result<Self> {
        let defs = defs_with_named_options(src_defs, &cfg)?;
        let hcfg = hedger_config(&defs, &cfg)?;
        let setups =
            engine::hedger::live::resolve(&hcfg, &defs).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut under_of = vec![None; defs.len()];
        let mut accounts = Vec::new();
        for (u, s) in setups.iter().enumerate() {
            under_of[s.index_id as usize] = Some(u);
            under_of[s.hedge.instrument_id as usize] = Some(u);
            accounts.push(Account::new(
                s.name.clone(),
                defs[s.hedge.instrument_id as usize],
                s.hedge,
                s.initial_hedge_position,
            ));
        }
        for d in &defs {
            if d.kind() == Ok(InstrumentKind::Option) {
                let u = setups.iter().position(|s| s.index_id == d.underlying_id);
                under_of[d.id as usize] = u;
                if d.forward_id != NO_FORWARD {
                    if let Some(slot) = under_of.get_mut(d.forward_id as usize) {
                        *slot = slot.or(u);
                    }
                }
            }
        }
        let mut initial_opt = vec![0.0; defs.len()];
        for p in &hcfg.positions {
            if let Some(d) = defs.iter().find(|d| d.symbol() == p.symbol) {
                initial_opt[d.id as usize] += p.qty;
            }
        }
        let n = defs.len();
        let sample_ns = cfg.sample_ns.max(1);
        let mut options_of = vec![Vec::new(); setups.len()];
        for d in &defs {
            if let (Ok(InstrumentKind::Option), Some(u)) = (d.kind(), under_of[d.id as usize]) {
                options_of[u].push(d.id);
            }
        }
        Ok(Backtest {
            options_of,
            revalued: vec![None; n],
            models: vec![Model::default(); setups.len()],
            positions: hcfg.positions.clone(),
            setups,
            world: None,
            accounts,
            under_of,
            initial_opt,
            entered: vec![false; n],
            settled_booked: vec![false; n],
            settled_seen: 0,
            order_mid: HashMap::new(),
            fills: Vec::new(),
            flow_trades: 0,
            flow_skipped: 0,
            venue_rejects: 0,
            start_ns: None,
            next_sample_ns: 0,
            sample_ns,
            events: 0,
            mid_batch: false,
            defs,
            cfg,
        })
    }

    /// Builds the core and its world at the first event's time.
    fn start(&mut self, t0: u64) -> Result<()> {
        let index_ids: Vec<u32> = self.setups.iter().map(|s| s.index_id).collect();
        let n_opt = self
            .defs
            .iter()
            .filter(|d| d.kind() == Ok(InstrumentKind::Option))
            .count();
        let risk = BookRiskAdapter::new(&index_ids, self.defs.len() as u32, n_opt, t0);
        // Monotonic = wall = the source's clock: expiries and the trading day follow the data.
        let mut core = HedgerCore::new(self.defs.clone(), self.setups.clone(), risk, t0, t0);
        for p in &self.positions {
            core.set_option_position(&p.symbol, p.qty)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let venue = SimVenue::new(
            self.cfg.sim.clone(),
            self.defs.clone(),
            vec![None; self.defs.len()],
        );
        let flow = self
            .cfg
            .flow_sim
            .clone()
            .map(|fc| OptionFlow::new(fc, &self.defs, t0));
        let mut file = Vec::new();
        for f in &self.cfg.flow_file {
            let Some(d) = self.defs.iter().find(|d| d.symbol() == f.symbol) else {
                continue;
            };
            if !(f.qty.is_finite() && f.qty != 0.0) {
                continue;
            }
            let side = if f.qty > 0.0 { Side::Buy } else { Side::Sell };
            file.push((
                f.ts_ns,
                ExecEvent {
                    kind: ExecKind::OptionTrade as u8,
                    instrument_id: d.id,
                    side: side as u8,
                    liquidity: Liquidity::Maker as u8,
                    qty: f.qty.abs(),
                    price: f.price.unwrap_or(f64::NAN),
                    ..ExecEvent::zeroed()
                },
            ));
        }
        file.sort_by_key(|(t, _)| *t);
        self.world = Some(World::new(core, venue, flow, file, 4096, t0));
        self.start_ns = Some(t0);
        self.next_sample_ns = t0;
        Ok(())
    }

    /// Runs the whole source through the world.
    ///
    /// # Errors
    /// A position the hedger refuses (not an option of a configured underlying).
    pub fn run(mut self, src: &mut dyn Source) -> Result<PolicyReport> {
        let mut ev = SourceEvent::default();
        let mut pending = src.next(&mut ev);
        let mut last_md_ns = 0u64;
        if pending {
            self.start(ev.source_ts_ns)?;
        }
        let Some(start) = self.start_ns else {
            bail!("the market data source yielded no event");
        };
        loop {
            let now = self.world().now_ns;
            if pending
                && ((self.cfg.duration_ns > 0
                    && ev.source_ts_ns.saturating_sub(start) > self.cfg.duration_ns)
                    || (self.cfg.max_events > 0 && self.events >= self.cfg.max_events))
            {
                pending = false;
            }
            let md_ts = pending.then(|| ev.source_ts_ns.max(now));
            let flow_until = md_ts.unwrap_or(last_md_ns);
            let due = self.world().next_due_ns(flow_until);
            let t = match (md_ts, due) {
                (Some(m), Some(d)) => m.min(d),
                (Some(m), None) => m,
                (None, Some(d)) if self.world().venue_busy() && d <= last_md_ns + DRAIN_NS => d,
                _ => break,
            };
            self.world_mut().advance(t, flow_until);
            self.refresh_model_books();
            if md_ts == Some(t) {
                last_md_ns = t;
                self.mid_batch = ev.event.flags & MarketEvent::FLAG_BATCH_MORE != 0;
                self.on_source_event(&ev);
                self.events += 1;
                pending = src.next(&mut ev);
            }
            self.world_mut().run_core();
            self.account_step();
        }
        Ok(self.finish(src))
    }

    fn world(&self) -> &World {
        self.world.as_ref().expect("started")
    }

    fn world_mut(&mut self) -> &mut World {
        self.world.as_mut().expect("started")
    }

    /// Publishes a source event and whatever the recording lacks that it implies (a
    /// modelled hedge quote, model marks), as one batch with it.
    fn on_source_event(&mut self, ev: &SourceEvent) {
        let e = ev.event;
        let mut extra: Vec<(MarketEvent, Option<Depth>)> = Vec::new();
        if let Some(u) = self
            .under_of
            .get(e.instrument_id as usize)
            .copied()
            .flatten()
        {
            self.model_market(u, &e, &mut extra);
        }
        let batch = e.flags & MarketEvent::FLAG_BATCH_MORE;
        let mut first = e;
        if !extra.is_empty() {
            first.flags |= MarketEvent::FLAG_BATCH_MORE;
        }
        let depth = ev.has_depth.then_some(&ev.depth);
        let w = self.world_mut();
        w.publish(first, depth);
        let k = extra.len();
        for (i, (mut x, d)) in extra.into_iter().enumerate() {
            x.flags = (x.flags & !MarketEvent::FLAG_BATCH_MORE)
                | if i + 1 < k {
                    MarketEvent::FLAG_BATCH_MORE
                } else {
                    batch
                };
            w.publish(x, d.as_ref());
        }
        if e.kind == MarketEventKind::OptionMark as u8 {
            self.enter_initial(e.instrument_id);
        }
    }

    /// The modelled part of the market for underlying `u` after event `e`.
    fn model_market(
        &mut self,
        u: usize,
        e: &MarketEvent,
        out: &mut Vec<(MarketEvent, Option<Depth>)>,
    ) {
        let (hedge_id, index_id) = (self.setups[u].hedge.instrument_id, self.setups[u].index_id);
        let id = e.instrument_id;
        let d = self.defs[id as usize];
        let now = self.world().now_ns;
        let m = &mut self.models[u];
        let mut book_moved = false;
        if id == hedge_id {
            match e.kind() {
                Ok(MarketEventKind::Quote) => m.recorded_quotes = true,
                Ok(MarketEventKind::UnderlyingPrice | MarketEventKind::Trade)
                    if e.v[0] > 0.0 && e.v[0].is_finite() =>
                {
                    m.hedge_px = e.v[0];
                    book_moved = true;
                    if e.kind == MarketEventKind::UnderlyingPrice as u8
                        && e.flags & MarketEvent::FLAG_FUNDING != 0
                        && e.v[1].is_finite()
                    {
                        // A ticker's funding rate, fraction per 8 h: charged on the position.
                        self.accounts[u].funding_rate_8h = e.v[1];
                    }
                }
                _ => {}
            }
            if index_id == hedge_id && e.kind == MarketEventKind::Quote as u8 {
                m.ref_px = 0.5 * (e.v[0] + e.v[2]);
            }
        } else if id == index_id {
            if let Some(p) = e.as_underlying_price().filter(|p| *p > 0.0) {
                m.index_seen = true;
                m.ref_px = p;
                m.fwd_expiry_ns = 0;
                book_moved = m.hedge_px == 0.0;
            }
        } else if d.kind() != Ok(InstrumentKind::Option) && !m.index_seen {
            // A forward of this underlying and no index in the data (an options chain): the
            // nearest unexpired expiry's forward stands for the index, published as such, so
            // that the core's deltas are per unit of a price that moves.
            let Some(p) = e
                .as_underlying_price()
                .filter(|p| *p > 0.0 && p.is_finite())
            else {
                return;
            };
            let nearer = d.expiry_ns <= m.fwd_expiry_ns || m.fwd_expiry_ns <= now;
            if d.expiry_ns <= now || !nearer {
                return;
            }
            m.fwd_expiry_ns = d.expiry_ns;
            m.ref_px = p;
            book_moved = m.hedge_px == 0.0;
            if index_id != hedge_id {
                out.push((
                    MarketEvent::underlying_price(index_id, e.exch_ts_ns, 0, p),
                    None,
                ));
            }
        } else {
            return;
        }
        let m = self.models[u];
        if book_moved && !m.recorded_quotes && m.book_px() > 0.0 {
            out.push(self.model_quote(hedge_id, m.book_px(), e.exch_ts_ns));
        }
        if self.cfg.option_vol.is_some() && !m.marks_done && m.ref_px > 0.0 {
            self.models[u].marks_done = true;
            self.model_marks(u, m.ref_px, e.exch_ts_ns, out);
        }
    }

    /// A modelled hedge book stands for a market that refills: after our fills on it, the
    /// same book is quoted again (the venue keeps liquidity it filled taken until the
    /// instrument's next update).
    fn refresh_model_books(&mut self) {
        if self.world().happened.execs.is_empty() {
            return;
        }
        let mut refresh = vec![false; self.setups.len()];
        for e in &self.world().happened.execs {
            if matches!(e.kind(), Ok(ExecKind::Fill | ExecKind::PartialFill)) {
                if let Some(u) = self
                    .under_of
                    .get(e.instrument_id as usize)
                    .copied()
                    .flatten()
                {
                    refresh[u] |= !self.models[u].recorded_quotes
                        && e.instrument_id == self.setups[u].hedge.instrument_id;
                }
            }
        }
        for (u, r) in refresh.into_iter().enumerate() {
            if r && self.models[u].book_px() > 0.0 {
                let (e, d) = self.model_quote(
                    self.setups[u].hedge.instrument_id,
                    self.models[u].book_px(),
                    0,
                );
                self.world_mut().publish(e, d.as_ref());
            }
        }
    }

    /// A hedge book around `ref_px` when the data has none for the hedge instrument (the
    /// Deribit options chain carries no perpetual quotes): `--model-levels` levels one tick
    /// apart of `--model-level-qty` each, `--model-half-spread-bps` from the reference.
    fn model_quote(&self, id: u32, ref_px: f64, exch_ts: u64) -> (MarketEvent, Option<Depth>) {
        let tick = self.defs[id as usize].tick_size.max(1e-9);
        let half = (ref_px * self.cfg.model_half_spread_bps * 1e-4).max(tick);
        let bid = ((ref_px - half) / tick).floor() * tick;
        let ask = ((ref_px + half) / tick).ceil() * tick;
        let q = self.cfg.model_level_qty;
        let n = self.cfg.model_levels.min(shm_layout::DEPTH_LEVELS);
        let depth = (n > 0).then(|| {
            let mut d = Depth {
                bid_levels: n as u32,
                ask_levels: n as u32,
                ..Depth::default()
            };
            for k in 0..n {
                d.bids[k] = [bid - k as f64 * tick, q];
                d.asks[k] = [ask + k as f64 * tick, q];
            }
            d
        });
        (MarketEvent::quote(id, exch_ts, 0, bid, q, ask, q), depth)
    }

    /// Marks at `--option-vol` for the options of `u` the data does not mark (BSM on the
    /// underlying, once: the risk book moves their forwards with the underlying after).
    fn model_marks(
        &self,
        u: usize,
        s: f64,
        exch_ts: u64,
        out: &mut Vec<(MarketEvent, Option<Depth>)>,
    ) {
        let vol = self.cfg.option_vol.unwrap_or(0.3);
        let now = self.world().now_ns;
        for d in &self.defs {
            if d.kind() != Ok(InstrumentKind::Option) || self.under_of[d.id as usize] != Some(u) {
                continue;
            }
            if self
                .world()
                .md
                .lv(d.id)
                .is_some_and(|l| l.valid & LastValue::HAS_MARK != 0)
            {
                continue;
            }
            let t = years_between_ns(now, d.expiry_ns);
            if let Ok(p) = bsm_price(px_type(d), s, d.strike, t, vol, 0.0, 0.0) {
                out.push((
                    MarketEvent::option_mark(d.id, exch_ts, 0, p.max(1e-12), vol, s),
                    None,
                ));
            }
        }
    }

    /// What an option's value depends on now (None: never marked): the last mark's implied
    /// vol, its expiry's current forward (the mark's underlying price when the data has no
    /// forward for it), the time to expiry.
    fn option_state(&self, id: u32) -> Option<OptionState> {
        let w = self.world();
        let d = &self.defs[id as usize];
        let lv =
            w.md.lv(id)
                .filter(|lv| lv.valid & LastValue::HAS_MARK != 0)?;
        let fwd = (d.forward_id != NO_FORWARD)
            .then(|| w.md.lv(d.forward_id))
            .flatten()
            .filter(|f| f.valid & LastValue::HAS_PRICE != 0)
            .map_or(lv.mark_underlying_px, |f| f.price);
        Some(OptionState {
            fwd,
            vol: lv.mark_iv,
            t_years: years_between_ns(w.now_ns, d.expiry_ns),
        })
    }

    /// Value of one contract of an option now, quote currency (None: never marked).
    ///
    /// Black-76 at the last mark's implied vol on its expiry's current forward (sticky
    /// strike): a chain marks each option rarely while the forwards move; at a mark this is
    /// the mark (the exchange's mark is Black-76 at mark_iv).
    fn unit_value(&self, id: u32) -> Option<f64> {
        let d = &self.defs[id as usize];
        let s = self.option_state(id)?;
        if let Ok(p) = black76_price(px_type(d), s.fwd, d.strike, s.t_years, s.vol, 0.0) {
            return Some(p * d.multiplier());
        }
        let lv = self.world().md.lv(id)?;
        let m = if d.settlement() == Ok(Settlement::Inverse) {
            lv.mark_px * lv.mark_underlying_px
        } else {
            lv.mark_px
        };
        Some(m * d.multiplier())
    }

    /// Revalues the options of `u` held at their last revaluation from that state to now,
    /// factor by factor ([`revalue`]), into the account; then records the state of every
    /// option held now (the position after this step's trades and settlements).
    ///
    /// An option whose forward, vol and position did not change is left for later unless
    /// `all` (a plotted sample, the end): only its time moved, and the time part of its next
    /// revaluation covers the whole interval at once (the sum is the same; repricing every
    /// held option after every event made a synthetic replay four times slower).
    fn revalue(&mut self, u: usize, all: bool) {
        for k in 0..self.options_of[u].len() {
            let id = self.options_of[u][k];
            let d = self.defs[id as usize];
            let now = self.option_state(id);
            let q = self.world().core.option_position(id);
            let prev = self.revalued[id as usize];
            if let (Some((q0, from)), Some(to)) = (prev, now) {
                if !all && q == q0 && to.fwd == from.fwd && to.vol == from.vol {
                    continue;
                }
                if let Some(mut s) = revalue::split(px_type(&d), d.strike, from, to) {
                    if d.settlement() != Ok(Settlement::Inverse) {
                        s.premium = 0.0;
                    }
                    self.accounts[u].add_revaluation(s.scaled(q0 * d.multiplier()));
                }
            }
            self.revalued[id as usize] = now.filter(|_| q != 0.0).map(|s| (q, s));
        }
    }

    /// Enters an initial option position at its first value.
    fn enter_initial(&mut self, id: u32) {
        let i = id as usize;
        if self.entered[i] || self.initial_opt[i] == 0.0 {
            return;
        }
        let Some(u) = self.under_of[i] else { return };
        if self.world().core.option_settlement(id).is_some() {
            self.entered[i] = true;
            return;
        }
        if let Some(v) = self.unit_value(id) {
            self.entered[i] = true;
            self.accounts[u].cash_opt -= self.initial_opt[i] * v;
            // Revalued from the state it entered at, not from the end of its snapshot.
            self.revalued[i] = self.option_state(id).map(|s| (self.initial_opt[i], s));
        }
    }

    /// Books what the last step did: orders, fills, client trades, settlements; observes
    /// the risk after the event; samples the series when due.
    fn account_step(&mut self) {
        let happened = std::mem::take(&mut self.world_mut().happened);
        for (o, book, reason) in &happened.orders {
            if let Some(u) = self
                .under_of
                .get(o.instrument_id as usize)
                .copied()
                .flatten()
            {
                let mid = book.and_then(|b| b.mid()).unwrap_or(o.limit_px);
                let half = book.map_or(0.0, |b| 0.5 * (b.ask_px - b.bid_px).max(0.0));
                let why = reason.map_or("unknown", HedgeReason::name);
                let a = &mut self.accounts[u];
                a.trades += 1;
                *a.exec.orders_by_reason.entry(why.to_string()).or_insert(0) += 1;
                match reason {
                    Some(HedgeReason::Passive) => {
                        a.exec.passive_orders += 1;
                        a.exec.passive_sent_qty += o.qty;
                        a.passive_live += 1;
                    }
                    Some(HedgeReason::CrossTimeout) => a.exec.crossed_timeout += 1,
                    Some(HedgeReason::CrossBand) => a.exec.crossed_band += 1,
                    _ => {}
                }
                self.order_mid
                    .insert(o.client_order_id, (u, mid, half, why));
            }
        }
        for u in 0..self.accounts.len() {
            if !self.accounts[u].hedge_entered() {
                let id = self.setups[u].hedge.instrument_id;
                if let Some(mid) = self.world().md.lv(id).and_then(|l| l.mid()) {
                    self.accounts[u].enter_hedge(self.setups[u].initial_hedge_position, mid);
                }
            }
        }
        for e in &happened.execs {
            self.account_exec(e);
        }
        self.book_settlements();
        if self.mid_batch {
            return;
        }
        let now = self.world().now_ns;
        let sample_due = now >= self.next_sample_ns;
        for u in 0..self.accounts.len() {
            self.revalue(u, sample_due);
            let s = self.sample_of(u, now);
            let mid = self.hedge_mid(u);
            self.accounts[u].observe(s, mid);
        }
        if sample_due {
            self.sample_all(now);
            self.next_sample_ns = now + self.sample_ns;
        }
    }

    fn account_exec(&mut self, e: &ExecEvent) {
        let (Ok(kind), Ok(side)) = (e.kind(), e.side()) else {
            return;
        };
        let now = self.world().now_ns;
        match kind {
            ExecKind::Fill | ExecKind::PartialFill => {
                let Some(&(u, mid, half, why)) = self.order_mid.get(&e.client_order_id) else {
                    return;
                };
                let a = &mut self.accounts[u];
                a.on_fill(side.sign() * e.qty, e.price, e.fee, mid, half);
                if why == HedgeReason::Passive.name() {
                    a.exec.passive_filled_qty += e.qty;
                }
                if kind == ExecKind::Fill {
                    self.end_order(e.client_order_id);
                }
                self.fills.push(Fill {
                    ts_ns: now,
                    symbol: self.accounts[u].hedge.symbol().to_string(),
                    kind: "hedge",
                    side: side_name(side),
                    qty: side.sign() * e.qty,
                    price: e.price,
                    fee: e.fee,
                    reason: Some(why),
                });
            }
            ExecKind::Cancelled | ExecKind::Rejected => {
                if kind == ExecKind::Rejected {
                    self.venue_rejects += 1;
                }
                self.end_order(e.client_order_id);
            }
            ExecKind::OptionTrade => self.account_option_trade(e, side),
            ExecKind::Ack => {}
        }
    }

    /// An order's terminal report: it is no longer live (a passive one stops resting).
    fn end_order(&mut self, client_order_id: u64) {
        if let Some((u, _, _, why)) = self.order_mid.remove(&client_order_id) {
            if why == HedgeReason::Passive.name() {
                let a = &mut self.accounts[u];
                a.passive_live = a.passive_live.saturating_sub(1);
            }
        }
    }

    fn account_option_trade(&mut self, e: &ExecEvent, side: Side) {
        let id = e.instrument_id;
        let d = self.defs[id as usize];
        let Some(u) = self.under_of[id as usize] else {
            self.flow_skipped += 1;
            return;
        };
        let w = self.world();
        // The core keeps an expired option's late trade out of the risk (settlement record).
        if d.expiry_ns <= w.now_ns || w.core.option_settlement(id).is_some() {
            self.flow_skipped += 1;
            return;
        }
        let unit = if e.price.is_finite() {
            let conv = if d.settlement() == Ok(Settlement::Inverse) {
                w.md.lv(id).map_or(0.0, |lv| lv.mark_underlying_px)
            } else {
                1.0
            };
            e.price * conv * d.multiplier()
        } else {
            self.unit_value(id).unwrap_or(0.0)
        };
        let (q, now) = (side.sign() * e.qty, w.now_ns);
        self.accounts[u].cash_opt -= q * unit;
        self.flow_trades += 1;
        self.fills.push(Fill {
            ts_ns: now,
            symbol: d.symbol().to_string(),
            kind: "option",
            side: side_name(side),
            qty: q,
            price: unit / d.multiplier(),
            fee: 0.0,
            reason: None,
        });
    }

    /// Books the cash settlements the core's risk book made at expiries (intrinsic value to
    /// the options' cash, a `settlement` fill taking the position to 0).
    fn book_settlements(&mut self) {
        let total: u64 = self
            .world()
            .core
            .und
            .iter()
            .map(|x| x.options_settled)
            .sum();
        if total == self.settled_seen {
            return;
        }
        self.settled_seen = total;
        let now = self.world().now_ns;
        for i in 0..self.defs.len() {
            let (Some(u), false) = (self.under_of[i], self.settled_booked[i]) else {
                continue;
            };
            if self.defs[i].kind() != Ok(InstrumentKind::Option) {
                continue;
            }
            let Some(s) = self.world().core.option_settlement(i as u32) else {
                continue;
            };
            self.settled_booked[i] = true;
            if s.contracts == 0.0 {
                continue;
            }
            self.accounts[u].cash_opt += s.value_quote;
            self.fills.push(Fill {
                ts_ns: now,
                symbol: self.defs[i].symbol().to_string(),
                kind: "settlement",
                side: if s.contracts > 0.0 { "sell" } else { "buy" },
                qty: -s.contracts,
                price: s.value / s.contracts,
                fee: 0.0,
                reason: None,
            });
        }
    }

    /// The risk of underlying `u` now, from the core.
    fn sample_of(&self, u: usize, now: u64) -> Sample {
        let w = self.world();
        let x = &w.core.und[u];
        let inst = x.policy.instrument;
        let mid =
            w.md.lv(inst.instrument_id)
                .and_then(|l| l.mid())
                .unwrap_or(self.models[u].book_px());
        let dpc = if mid > 0.0 {
            inst.delta_per_contract(mid)
        } else {
            0.0
        };
        let option_delta = w.core.risk.delta(u);
        let hedge_delta = x.hedge_position * dpc;
        // The notional is the one the limits use: linear qty x size x price, inverse face.
        let hedge_notional = x.hedge_position.signum() * inst.notional(x.hedge_position.abs(), mid);
        Sample {
            ts_ns: now,
            ref_px: if x.index_px > 0.0 {
                x.index_px
            } else {
                self.models[u].ref_px
            },
            option_delta,
            net_delta: option_delta + hedge_delta,
            inflight_delta: x.inflight_qty * dpc,
            band: x.band,
            lot_delta: inst.lot_size * dpc,
            gamma: w.core.risk.gamma(u),
            vega: w.core.risk.vega(u),
            hedge_delta,
            hedge_notional,
        }
    }

    /// (options PnL, hedge PnL at decision mids, costs), quote currency.
    fn pnl(&self, u: usize) -> (f64, f64, f64) {
        let w = self.world();
        let mut value = 0.0;
        for d in &self.defs {
            if self.under_of[d.id as usize] != Some(u) || d.kind() != Ok(InstrumentKind::Option) {
                continue;
            }
            let q = w.core.option_position(d.id);
            if q != 0.0 {
                value += q * self.unit_value(d.id).unwrap_or(0.0);
            }
        }
        let a = &self.accounts[u];
        (
            value + a.cash_opt,
            a.hedge_pnl(self.hedge_mid(u)),
            a.costs(),
        )
    }

    /// The mid of `u`'s hedge book now (the modelled book's price before it has quotes).
    fn hedge_mid(&self, u: usize) -> f64 {
        self.world()
            .md
            .lv(self.accounts[u].hedge.id)
            .and_then(|l| l.mid())
            .unwrap_or(self.models[u].book_px())
    }

    fn sample_all(&mut self, now: u64) {
        let start = self.start_ns.unwrap_or(now);
        for u in 0..self.accounts.len() {
            let s = self.accounts[u].last;
            let pnl = self.pnl(u);
            self.accounts[u].sample(&s, start, pnl);
            if thin(&mut self.accounts[u].series, self.cfg.max_points) && u == 0 {
                self.sample_ns *= 2;
            }
        }
    }

    /// The positions the run started from (options from the config, hedges from the setups)
    /// and those it ended with (every one that is not zero or was held at the start), by
    /// symbol.
    fn initial_and_final_positions(&self) -> (BTreeMap<String, f64>, BTreeMap<String, f64>) {
        let w = self.world();
        let mut initial = BTreeMap::new();
        let mut final_pos = BTreeMap::new();
        for p in &self.positions {
            *initial.entry(p.symbol.clone()).or_insert(0.0) += p.qty;
        }
        for (u, s) in self.setups.iter().enumerate() {
            let sym = self.defs[s.hedge.instrument_id as usize]
                .symbol()
                .to_string();
            if s.initial_hedge_position != 0.0 {
                initial.insert(sym.clone(), s.initial_hedge_position);
            }
            if w.core.und[u].hedge_position != 0.0 || initial.contains_key(&sym) {
                final_pos.insert(sym, w.core.und[u].hedge_position);
            }
        }
        for d in &self.defs {
            let q = w.core.option_position(d.id);
            if d.kind() == Ok(InstrumentKind::Option)
                && (q != 0.0 || initial.contains_key(d.symbol()))
            {
                final_pos.insert(d.symbol().to_string(), q);
            }
        }
        (initial, final_pos)
    }

    fn finish(mut self, src: &dyn Source) -> PolicyReport {
        let now = self.world().now_ns;
        for u in 0..self.accounts.len() {
            self.revalue(u, true);
            let mid = self.hedge_mid(u);
            self.accounts[u].book_pending(mid);
        }
        self.sample_all(now);
        let start = self.start_ns.unwrap_or(now);
        let mut underlyings = BTreeMap::new();
        let mut limit_rejects: BTreeMap<String, u64> = BTreeMap::new();
        for u in 0..self.accounts.len() {
            let pnl = self.pnl(u);
            let w = self.world();
            let x = &w.core.und[u];
            let holds = HOLD_LABELS
                .iter()
                .zip(x.holds)
                .filter(|(_, n)| *n > 0)
                .map(|(l, n)| (l.to_string(), n))
                .collect();
            for b in LimitBreach::ALL {
                let n = w.core.limit_rejects(u, b);
                if n > 0 {
                    *limit_rejects.entry(b.name().to_string()).or_insert(0) += n;
                }
            }
            let book = if self.models[u].recorded_quotes {
                "recorded"
            } else {
                "modelled"
            };
            let cancels = CANCEL_LABELS
                .iter()
                .zip(x.exec.cancel_counts())
                .filter(|(_, n)| *n > 0)
                .map(|(l, n)| (l.to_string(), n))
                .collect();
            let a = &mut self.accounts[u];
            a.book = book;
            let mut s = a.summary(pnl, now.saturating_sub(start), holds);
            s.execution.passive_cancels_by_reason = cancels;
            underlyings.insert(a.name.clone(), s);
        }
        let (initial, final_pos) = self.initial_and_final_positions();
        let w = self.world();
        let core_md_rejects = engine::hedger::core::MdReject::ALL
            .iter()
            .map(|r| (r.name().to_string(), w.core.stats.md_rejected[*r as usize]))
            .filter(|(_, n)| *n > 0)
            .collect();
        let comparison = Comparison::from_underlyings(&self.cfg.policy_label, &underlyings);
        PolicyReport {
            policy: self.cfg.policy_label.clone(),
            events: self.events,
            timers: w.timers,
            source_rejects: src.rejects().total(),
            core_md_rejects,
            duration_s: now.saturating_sub(start) as f64 * 1e-9,
            start_ns: start,
            limit_rejects,
            venue_rejects: self.venue_rejects,
            flow_trades: self.flow_trades,
            flow_skipped: self.flow_skipped,
            forced_reevaluations: w.core.risk.forced_reevals,
            comparison,
            underlyings,
            initial_positions: initial,
            final_positions: final_pos,
            fills: std::mem::take(&mut self.fills),
        }
    }
}

fn side_name(s: Side) -> &'static str {
    match s {
        Side::Buy => "buy",
        Side::Sell => "sell",
    }
}
