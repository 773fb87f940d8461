//! The exchange simulator: matches hedge orders against the book of the last-value table.
//!
//! # Model
//! - An order reaches the venue one *one-way latency* after `submit` (fixed + uniform jitter
//!   from a seeded PRNG), is matched against the book **as it is at arrival** (so latency costs
//!   what it costs in life), and its reports travel back one more one-way latency. Everything
//!   waits in one time-ordered queue (a binary heap keyed by due time and sequence), so the
//!   gateway's loop never blocks.
//! - Matching walks the opposite side: the top of book, then the depth levels that are worse
//!   than it (`LastValue::HAS_DEPTH`), filling at each level's price up to its displayed size,
//!   rounded down to the lot size. A top of book whose sizes are unknown (the feed's
//!   `FLAG_SIZE_UNKNOWN`, `LastValue::QUOTE_SIZE_UNKNOWN`: recorded prices without sizes) is
//!   taken as `unknown_size_qty` contracts at its price, never as deep liquidity. Liquidity taken from a book snapshot stays taken until the
//!   feed updates that instrument (`last_seq` / `recv_ts_ns` change), so two orders cannot both
//!   take the same displayed size.
//! - IOC: the remainder is cancelled. FOK: filled in full or cancelled without fills. GTC: the
//!   remainder rests at its limit (acked) at the back of the queue there, and fills as maker,
//!   at its limit: when trades at its price exhaust the queue ahead of it, when a trade prints
//!   through its price, or when the book crosses it ([`QueueModel`]; trades arrive through
//!   [`SimVenue::on_trade`], or from the last-value table's last trade without a trade feed).
//!   Market orders are IOC with a collar at the price band.
//! - Fees: taker fee on aggressive fills, maker fee on resting fills (negative = rebate), in the
//!   settlement currency: linear `qty * multiplier * price * bps`, inverse
//!   `qty * multiplier / price * bps` (coin), rounded to 1e-10.
//! - A cancel travels with the same latency as orders; one that overtakes its order (jitter)
//!   or finds it already ended is ignored, as a venue answers "unknown order".
//! - Rejects, checked in this order: invalid order, unknown (or non-tradable) instrument,
//!   duplicate client order id, rate limit (token bucket), below minimum size, bad lot, bad
//!   tick, no liquidity (no two-sided quote), price outside the band around mid.

use crate::rng::Rng;
use crate::venue::{Venue, VenueReport};
use serde::Deserialize;
use shm_layout::{
    ExecKind, HedgeOrder, InstrumentDef, InstrumentKind, LastValue, Liquidity, MarketEvent,
    OrderAction, OrderType, RejectReason, Settlement, Side, TimeInForce, DEPTH_LEVELS,
};
use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Where the simulator reads the current book of an instrument (the last-value table in the
/// process, a plain array in tests).
pub trait MarketView {
    /// The latest state of `instrument_id`, or `None` if never written.
    fn book(&self, instrument_id: u32) -> Option<LastValue>;
}

impl MarketView for Vec<Option<LastValue>> {
    fn book(&self, instrument_id: u32) -> Option<LastValue> {
        self.get(instrument_id as usize).copied().flatten()
    }
}

/// Simulator settings (`[sim]` in the TOML config).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Fixed one-way latency, gateway to venue and back each, in microseconds.
    pub latency_us: f64,
    /// Uniform jitter added to each one-way latency, `[0, jitter_us]`, in microseconds.
    pub jitter_us: f64,
    /// PRNG seed for the jitter.
    pub seed: u64,
    /// Taker fee in basis points of notional.
    pub taker_fee_bps: f64,
    /// Maker fee in basis points of notional (negative = rebate).
    pub maker_fee_bps: f64,
    /// Orders whose limit is further than this from mid (basis points) are rejected; market
    /// orders are collared at this distance.
    pub price_band_bps: f64,
    /// Token-bucket refill rate, orders per second (0 = no limit).
    pub rate_limit_per_s: f64,
    /// Token-bucket depth (burst), orders.
    pub rate_limit_burst: f64,
    /// Send an `Ack` for every accepted order (resting GTC orders are always acked).
    pub send_acks: bool,
    /// Most GTC orders resting at once; beyond it a GTC remainder is cancelled.
    pub max_resting: usize,
    /// Pre-sized capacity of the latency queue (entries); it grows past it if it must.
    pub queue_capacity: usize,
    /// Size, in contracts, assumed at the touch of a quote whose sizes are unknown (recorded
    /// prices without sizes, `LastValue::QUOTE_SIZE_UNKNOWN`): an order fills at most this much
    /// there per book update, then walks the depth, if any. 0 = such a quote fills nothing.
    pub unknown_size_qty: f64,
    /// Where a decrease of the displayed size at a resting order's price comes from (see
    /// [`QueueModel`]): `risk_averse` (default) or `prob`.
    pub queue_model: QueueModel,
    /// `prob` model: the exponent `n` of `f(x) = x^n` in the share of a decrease taken from
    /// behind us, `f(behind) / (f(behind) + f(ahead))`.
    pub queue_prob_power: f64,
}

/// Queue-position model of a resting order (`[sim] queue_model`). A resting order joins the
/// back of the queue at its price (queue ahead = the displayed size there when it arrives);
/// a trade at its price advances it by the trade's size, and fills it by what the trade
/// leaves beyond the queue ahead; a trade at a worse price (the level was swept) or a quote
/// crossing its limit fills it. The models differ only in what a *decrease* of the
/// displayed size at its price, beyond the trades seen there, does:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueModel {
    /// Decreases come from behind us: the queue ahead only shrinks to the displayed size
    /// when the level falls below it (hftbacktest's `RiskAdverseQueueModel`).
    RiskAverse,
    /// A decrease comes from behind us with probability `f(behind) / (f(behind) +
    /// f(ahead))`, `f(x) = x^queue_prob_power`, and the queue ahead advances by the rest
    /// (hftbacktest's `ProbQueueModel` with `PowerProbQueueFunc`).
    Prob,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency_us: 50.0,
            jitter_us: 20.0,
            seed: 1,
            taker_fee_bps: 5.0,
            maker_fee_bps: -1.0,
            price_band_bps: 500.0,
            rate_limit_per_s: 200.0,
            rate_limit_burst: 50.0,
            send_acks: false,
            max_resting: 256,
            queue_capacity: 4096,
            unknown_size_qty: 1.0,
            queue_model: QueueModel::RiskAverse,
            queue_prob_power: 2.0,
        }
    }
}

/// Relative tolerance when checking that a price or quantity is a multiple of an increment.
const STEP_TOL: f64 = 1e-7;

/// `x / step` as an integer if `x` is a multiple of `step` (within [`STEP_TOL`]).
#[inline]
fn steps(x: f64, step: f64) -> Option<u64> {
    let n = x / step;
    let r = n.round();
    ((n - r).abs() <= STEP_TOL * r.max(1.0) && (0.0..9.0e15).contains(&r)).then_some(r as u64)
}

/// Whole lots available in `qty`, rounded down (a tiny tolerance absorbs float dust).
#[inline]
fn lots_down(qty: f64, lot: f64) -> u64 {
    if qty.is_nan() || qty <= 0.0 {
        return 0;
    }
    let n = qty / lot;
    (n + STEP_TOL * n.max(1.0)).floor().min(9.0e15) as u64
}

/// Fee of one fill in the settlement currency, rounded to 1e-10.
pub fn fee(def: &InstrumentDef, qty: f64, price: f64, bps: f64) -> f64 {
    let mult = def.multiplier();
    let notional = match def.settlement() {
        Ok(Settlement::Inverse) if price > 0.0 => qty * mult / price,
        _ => qty * mult * price,
    };
    let f = notional * bps * 1e-4;
    (f * 1e10).round() / 1e10
}

/// One price level on the side an order takes from.
#[derive(Debug, Clone, Copy, Default)]
struct Level {
    px: f64,
    qty: f64,
}

/// The levels an aggressive `side` order can take, best first: the top of book, then depth
/// levels strictly worse than the previous one. Returns how many were written. A top of book
/// of unknown size counts as `unknown_size_qty` contracts.
fn opposite_levels(
    book: &LastValue,
    side: Side,
    unknown_size_qty: f64,
    out: &mut [Level; DEPTH_LEVELS + 1],
) -> usize {
    let (top_px, top_qty, depth, n_depth) = match side {
        Side::Buy => (
            book.ask_px,
            book.ask_qty,
            &book.ask_depth,
            book.ask_levels as usize,
        ),
        Side::Sell => (
            book.bid_px,
            book.bid_qty,
            &book.bid_depth,
            book.bid_levels as usize,
        ),
    };
    let worse = |a: f64, b: f64| match side {
        Side::Buy => a > b,
        Side::Sell => a < b,
    };
    let mut n = 0;
    if book.valid & LastValue::HAS_QUOTE != 0 && top_px > 0.0 && top_px.is_finite() {
        let qty = if book.quote_size_known() {
            top_qty
        } else {
            unknown_size_qty
        };
        out[0] = Level { px: top_px, qty };
        n = 1;
    }
    if book.valid & LastValue::HAS_DEPTH != 0 {
        for lvl in depth.iter().take(n_depth.min(DEPTH_LEVELS)) {
            let (px, qty) = (lvl[0], lvl[1]);
            if !(px > 0.0 && px.is_finite() && qty.is_finite()) {
                continue;
            }
            if n == 0 || worse(px, out[n - 1].px) {
                out[n] = Level { px, qty };
                n += 1;
            }
        }
    }
    n
}

/// Liquidity this venue already took from the current snapshot of one instrument's book.
#[derive(Debug, Clone, Copy, Default)]
struct Taken {
    last_seq: u64,
    recv_ts_ns: u64,
    /// `[price, qty]` taken, per side (0 = from asks, 1 = from bids).
    levels: [[Level; DEPTH_LEVELS + 1]; 2],
    n: [usize; 2],
}

impl Taken {
    fn refresh(&mut self, book: &LastValue) {
        if self.last_seq != book.last_seq || self.recv_ts_ns != book.recv_ts_ns {
            *self = Taken {
                last_seq: book.last_seq,
                recv_ts_ns: book.recv_ts_ns,
                ..Taken::default()
            };
        }
    }
    fn slot(side: Side) -> usize {
        match side {
            Side::Buy => 0,
            Side::Sell => 1,
        }
    }
    fn get(&self, side: Side, px: f64) -> f64 {
        let s = Self::slot(side);
        self.levels[s][..self.n[s]]
            .iter()
            .find(|l| l.px == px)
            .map_or(0.0, |l| l.qty)
    }
    fn add(&mut self, side: Side, px: f64, qty: f64) {
        let s = Self::slot(side);
        if let Some(l) = self.levels[s][..self.n[s]].iter_mut().find(|l| l.px == px) {
            l.qty += qty;
        } else if self.n[s] < DEPTH_LEVELS + 1 {
            self.levels[s][self.n[s]] = Level { px, qty };
            self.n[s] += 1;
        }
    }
}

/// An order being matched against the book.
struct Taking<'a> {
    o: &'a HedgeOrder,
    side: Side,
    def: &'a InstrumentDef,
    /// Lot size, in contracts.
    lot: f64,
    back_ns: u64,
}

/// A GTC order resting on the simulated book.
#[derive(Debug, Clone, Copy)]
struct Resting {
    order: HedgeOrder,
    side: Side,
    limit_px: f64,
    leaves_lots: u64,
    /// Size ahead of us at our price, contracts.
    queue_ahead: f64,
    /// Displayed size at our price at the last book we saw (NaN: not known).
    level_qty: f64,
    /// Traded at our price since that book (so a decrease they explain is not a cancel).
    traded_since_book: f64,
    /// `last_seq` of the book last seen.
    seen_seq: u64,
    /// The last trade of the book last seen (`[price, qty]`): how a venue without a trade
    /// feed ([`SimVenue::on_trade`] never called) notices a new one in the last-value table.
    seen_trade: [f64; 2],
}

/// Displayed size on `side` at price `px`: the top or a depth level; 0 when `px` is better
/// than the best (nobody is there) or falls in a gap of the displayed ladder; NaN when the
/// sizes are unknown or `px` is beyond the last displayed level.
fn qty_at(book: &LastValue, side: Side, px: f64) -> f64 {
    let (top_px, top_qty, depth, n) = match side {
        Side::Buy => (book.bid_px, book.bid_qty, &book.bid_depth, book.bid_levels),
        Side::Sell => (book.ask_px, book.ask_qty, &book.ask_depth, book.ask_levels),
    };
    if book.valid & LastValue::HAS_QUOTE == 0 || !book.quote_size_known() {
        return f64::NAN;
    }
    let tol = 1e-9 * px.abs();
    // Positive when `a` is a better price than `b` for this side.
    let better = |a: f64, b: f64| (a - b) * side.sign();
    if (top_px - px).abs() <= tol {
        return top_qty;
    }
    if better(px, top_px) > tol {
        return 0.0;
    }
    if book.valid & LastValue::HAS_DEPTH == 0 {
        return f64::NAN;
    }
    let levels = &depth[..(n as usize).min(DEPTH_LEVELS)];
    if let Some(l) = levels.iter().find(|l| (l[0] - px).abs() <= tol) {
        return l[1];
    }
    match levels.last() {
        Some(last) if better(px, last[0]) > tol => 0.0,
        _ => f64::NAN,
    }
}

#[derive(Debug, Clone, Copy)]
enum Pending {
    /// The order reaches the venue.
    Arrive(HedgeOrder),
    /// A cancel request reaches the venue.
    Cancel(u64),
    /// A report reaches the gateway.
    Report(VenueReport),
}

/// A heap key: 24 bytes, so that sifting moves little; the payload waits in a slab.
#[derive(Debug, Clone, Copy)]
struct Entry {
    due_ns: u64,
    seq: u64,
    slot: u32,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.due_ns, self.seq) == (o.due_ns, o.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    /// Reversed, so that `BinaryHeap` (a max-heap) pops the earliest due, then lowest seq.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.due_ns, o.seq).cmp(&(self.due_ns, self.seq))
    }
}

/// Counts kept by the simulator (read by the process to publish counters).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SimStats {
    /// Orders that reached the matching engine.
    pub arrived: u64,
    /// Fill reports (partial or full).
    pub fills: u64,
    /// Rejected orders.
    pub rejects: u64,
    /// Orders (or remainders) cancelled.
    pub cancels: u64,
    /// Orders that rested on the book (GTC).
    pub rested: u64,
}

/// The simulated venue.
pub struct SimVenue<M: MarketView> {
    cfg: SimConfig,
    market: M,
    defs: Vec<InstrumentDef>,
    taken: Vec<Taken>,
    queue: BinaryHeap<Entry>,
    /// Payloads of queued entries, reused through `free_slots` (no allocation once warm).
    slab: Vec<Pending>,
    free_slots: Vec<u32>,
    seq: u64,
    rng: Rng,
    tokens: f64,
    tokens_ts_ns: u64,
    resting: Vec<Resting>,
    stats: SimStats,
    /// [`SimVenue::on_trade`] was called: trades come from the feed, not the table.
    trade_feed: bool,
    /// Set by a driver whose trades arrive behind the books it reads (the live gateway: the
    /// feed writes the last-value table before the md ring): every trade with `seq` up to
    /// this one has been handed to [`SimVenue::on_trade`]. A resting order does not move
    /// with a book newer than this until the trades before that book are in, so a trade and
    /// the size decrease it caused are netted ([`SimVenue::trades_through`]).
    trades_through_seq: Option<u64>,
}

impl<M: MarketView> SimVenue<M> {
    /// A simulator over `defs` (indexed by instrument id) reading books from `market`.
    pub fn new(cfg: SimConfig, defs: Vec<InstrumentDef>, market: M) -> Self {
        let rng = Rng::new(cfg.seed);
        SimVenue {
            taken: vec![Taken::default(); defs.len()],
            queue: BinaryHeap::with_capacity(cfg.queue_capacity.max(16)),
            slab: Vec::with_capacity(cfg.queue_capacity.max(16)),
            free_slots: Vec::with_capacity(cfg.queue_capacity.max(16)),
            resting: Vec::with_capacity(cfg.max_resting),
            tokens: cfg.rate_limit_burst,
            tokens_ts_ns: 0,
            seq: 0,
            rng,
            defs,
            market,
            cfg,
            stats: SimStats::default(),
            trade_feed: false,
            trades_through_seq: None,
        }
    }

    /// Counts so far.
    pub fn stats(&self) -> SimStats {
        self.stats
    }

    /// Entries waiting in the latency queue (orders in flight and reports on their way back).
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Orders resting on the book.
    pub fn resting(&self) -> usize {
        self.resting.len()
    }

    /// When the next queued entry (an order arriving, a cancel, a report coming back) is due,
    /// monotonic ns; `None` when nothing is queued. A discrete-event replay jumps its clock
    /// here. Resting orders fill only when the market moves, so a market event is their due
    /// time.
    pub fn next_due_ns(&self) -> Option<u64> {
        self.queue.peek().map(|e| e.due_ns)
    }

    /// The book source (e.g. to replace books in tests).
    pub fn market_mut(&mut self) -> &mut M {
        &mut self.market
    }

    fn one_way_ns(&mut self) -> u64 {
        let fixed = (self.cfg.latency_us.max(0.0) * 1e3) as u64;
        let jitter = (self.cfg.jitter_us.max(0.0) * 1e3) as u64;
        fixed + self.rng.upto(jitter)
    }

    fn enqueue(&mut self, due_ns: u64, what: Pending) {
        self.seq += 1;
        let slot = match self.free_slots.pop() {
            Some(i) => {
                self.slab[i as usize] = what;
                i
            }
            None => {
                self.slab.push(what);
                (self.slab.len() - 1) as u32
            }
        };
        self.queue.push(Entry {
            due_ns,
            seq: self.seq,
            slot,
        });
    }

    fn take_token(&mut self, now_ns: u64) -> bool {
        if self.cfg.rate_limit_per_s <= 0.0 {
            return true;
        }
        let dt = now_ns.saturating_sub(self.tokens_ts_ns) as f64 * 1e-9;
        self.tokens_ts_ns = self.tokens_ts_ns.max(now_ns);
        self.tokens = (self.tokens + dt * self.cfg.rate_limit_per_s).min(self.cfg.rate_limit_burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Checks everything but liquidity; returns the decoded order or the reject reason.
    fn validate(
        &mut self,
        o: &HedgeOrder,
        now_ns: u64,
    ) -> Result<(Side, OrderType, TimeInForce, InstrumentDef, u64), RejectReason> {
        let (Ok(side), Ok(ot), Ok(tif), Ok(OrderAction::New)) =
            (o.side(), o.order_type(), o.tif(), o.action())
        else {
            return Err(RejectReason::InvalidOrder);
        };
        if !(o.qty.is_finite() && o.qty > 0.0)
            || (ot == OrderType::Limit && !(o.limit_px.is_finite() && o.limit_px > 0.0))
        {
            return Err(RejectReason::InvalidOrder);
        }
        let def = match self.defs.get(o.instrument_id as usize) {
            Some(d) if d.id == o.instrument_id && d.kind() != Ok(InstrumentKind::Index) => *d,
            _ => return Err(RejectReason::UnknownInstrument),
        };
        if o.client_order_id == 0
            || self
                .resting
                .iter()
                .any(|r| r.order.client_order_id == o.client_order_id)
        {
            return Err(RejectReason::DuplicateOrder);
        }
        if !self.take_token(now_ns) {
            return Err(RejectReason::RateLimit);
        }
        if o.qty < def.min_qty * (1.0 - STEP_TOL) {
            return Err(RejectReason::BelowMinSize);
        }
        let lot = def.lot();
        let Some(lots) = steps(o.qty, lot) else {
            return Err(RejectReason::BadLot);
        };
        if lots == 0 {
            return Err(RejectReason::BelowMinSize);
        }
        if ot == OrderType::Limit
            && def.tick_size > 0.0
            && steps(o.limit_px, def.tick_size).is_none()
        {
            return Err(RejectReason::BadTick);
        }
        Ok((side, ot, tif, def, lots))
    }

    /// Matches one order that just reached the venue at `t_ns`; its reports are queued to
    /// arrive back at `back_ns`.
    fn execute(&mut self, o: &HedgeOrder, t_ns: u64, back_ns: u64) {
        self.stats.arrived += 1;
        let (side, ot, tif, def, lots) = match self.validate(o, t_ns) {
            Ok(v) => v,
            Err(reason) => {
                self.reject(o, reason, back_ns);
                return;
            }
        };
        let lot = def.lot();
        let Some((book, limit)) = self.priced(o, side, ot, back_ns) else {
            return;
        };
        let tif = if ot == OrderType::Market && tif == TimeInForce::Gtc {
            TimeInForce::Ioc
        } else {
            tif
        };
        let mut levels = [Level::default(); DEPTH_LEVELS + 1];
        let n = opposite_levels(&book, side, self.cfg.unknown_size_qty, &mut levels);
        let levels = &levels[..n];
        let slot = o.instrument_id as usize;
        self.taken[slot].refresh(&book);
        let (avail, total) = self.available(levels, side, limit, slot, lot);
        if self.cfg.send_acks {
            self.ack(o, side, o.qty, back_ns);
        }
        if tif == TimeInForce::Fok && total < lots {
            self.cancel_report(o, side, back_ns);
            return;
        }
        let fill = Taking {
            o,
            side,
            def: &def,
            lot,
            back_ns,
        };
        let leaves = self.take(&fill, levels, &avail, lots);
        if leaves == 0 {
            return;
        }
        self.rest_or_cancel(o, side, tif, limit, leaves, lot, &book, back_ns);
    }

    /// Queues a reject.
    fn reject(&mut self, o: &HedgeOrder, reason: RejectReason, back_ns: u64) {
        self.stats.rejects += 1;
        self.enqueue(back_ns, Pending::Report(VenueReport::reject(o, reason)));
    }

    /// Queues an ack with `leaves_qty` left.
    fn ack(&mut self, o: &HedgeOrder, side: Side, leaves_qty: f64, back_ns: u64) {
        let ack = VenueReport::status(o, side, ExecKind::Ack, RejectReason::None);
        self.enqueue(back_ns, Pending::Report(VenueReport { leaves_qty, ..ack }));
    }

    /// Queues the cancel of the order's remainder.
    fn cancel_report(&mut self, o: &HedgeOrder, side: Side, back_ns: u64) {
        self.stats.cancels += 1;
        let r = VenueReport::status(o, side, ExecKind::Cancelled, RejectReason::None);
        self.enqueue(back_ns, Pending::Report(r));
    }

    /// The book and the order's limit price: its own for a limit order inside the price band
    /// around the mid, the band's edge for a market order. None (the reject queued): no
    /// two-sided quote, or a limit outside the band.
    fn priced(
        &mut self,
        o: &HedgeOrder,
        side: Side,
        ot: OrderType,
        back_ns: u64,
    ) -> Option<(LastValue, f64)> {
        let (book, mid) = match self.market.book(o.instrument_id) {
            Some(b)
                if b.valid & LastValue::HAS_QUOTE != 0
                    && b.bid_px > 0.0
                    && b.ask_px > b.bid_px
                    && b.ask_px.is_finite() =>
            {
                (b, 0.5 * (b.bid_px + b.ask_px))
            }
            _ => {
                self.reject(o, RejectReason::NoLiquidity, back_ns);
                return None;
            }
        };
        let band = mid * self.cfg.price_band_bps * 1e-4;
        let limit = match ot {
            OrderType::Limit => {
                if (o.limit_px - mid).abs() > band + 1e-12 * mid {
                    self.reject(o, RejectReason::PriceOutsideBand, back_ns);
                    return None;
                }
                o.limit_px
            }
            OrderType::Market => mid + side.sign() * band,
        };
        Some((book, limit))
    }

    /// Lots available per level within `limit` (minus what earlier orders took), and their
    /// sum.
    fn available(
        &self,
        levels: &[Level],
        side: Side,
        limit: f64,
        slot: usize,
        lot: f64,
    ) -> ([u64; DEPTH_LEVELS + 1], u64) {
        let crosses = |px: f64| match side {
            Side::Buy => px <= limit * (1.0 + 1e-12),
            Side::Sell => px >= limit * (1.0 - 1e-12),
        };
        let mut avail = [0u64; DEPTH_LEVELS + 1];
        let mut total = 0u64;
        for (i, level) in levels.iter().enumerate() {
            if !crosses(level.px) {
                break;
            }
            let left = level.qty - self.taken[slot].get(side, level.px);
            avail[i] = lots_down(left, lot);
            total += avail[i];
        }
        (avail, total)
    }

    /// Takes up to `lots` from the levels, best first, queueing a fill per level; returns
    /// the lots left.
    fn take(&mut self, t: &Taking<'_>, levels: &[Level], avail: &[u64], lots: u64) -> u64 {
        let (o, side, lot) = (t.o, t.side, t.lot);
        let slot = o.instrument_id as usize;
        let mut leaves = lots;
        for (level, &avail) in levels.iter().zip(avail) {
            if leaves == 0 {
                break;
            }
            if avail == 0 {
                continue;
            }
            let take = avail.min(leaves);
            leaves -= take;
            let qty = take as f64 * lot;
            let px = level.px;
            self.taken[slot].add(side, px, qty);
            self.stats.fills += 1;
            let kind = if leaves == 0 {
                ExecKind::Fill
            } else {
                ExecKind::PartialFill
            };
            let rep = VenueReport {
                kind,
                liquidity: Liquidity::Taker,
                qty,
                price: px,
                fee: fee(t.def, qty, px, self.cfg.taker_fee_bps),
                leaves_qty: leaves as f64 * lot,
                ..VenueReport::status(o, side, kind, RejectReason::None)
            };
            self.enqueue(t.back_ns, Pending::Report(rep));
        }
        leaves
    }

    /// The remainder of an order after matching: a GTC rests at the back of the queue at its
    /// price (acked), anything else is cancelled.
    #[allow(clippy::too_many_arguments)]
    fn rest_or_cancel(
        &mut self,
        o: &HedgeOrder,
        side: Side,
        tif: TimeInForce,
        limit: f64,
        leaves: u64,
        lot: f64,
        book: &LastValue,
        back_ns: u64,
    ) {
        if tif == TimeInForce::Gtc && self.resting.len() < self.cfg.max_resting {
            self.stats.rested += 1;
            if !self.cfg.send_acks {
                let ack = VenueReport::status(o, side, ExecKind::Ack, RejectReason::None);
                self.enqueue(
                    back_ns,
                    Pending::Report(VenueReport {
                        leaves_qty: leaves as f64 * lot,
                        ..ack
                    }),
                );
            }
            let at = qty_at(book, side, limit);
            let ahead = if at.is_nan() {
                self.cfg.unknown_size_qty
            } else {
                at
            };
            self.resting.push(Resting {
                order: *o,
                side,
                limit_px: limit,
                leaves_lots: leaves,
                queue_ahead: ahead,
                level_qty: at,
                traded_since_book: 0.0,
                seen_seq: book.last_seq,
                seen_trade: [book.last_trade_px, book.last_trade_qty],
            });
        } else {
            self.stats.cancels += 1;
            let r = VenueReport::status(o, side, ExecKind::Cancelled, RejectReason::None);
            self.enqueue(back_ns, Pending::Report(r));
        }
    }

    fn cancel_resting(&mut self, client_order_id: u64, back_ns: u64) {
        if let Some(i) = self
            .resting
            .iter()
            .position(|r| r.order.client_order_id == client_order_id)
        {
            let r = self.resting.swap_remove(i);
            self.stats.cancels += 1;
            let rep =
                VenueReport::status(&r.order, r.side, ExecKind::Cancelled, RejectReason::None);
            self.enqueue(back_ns, Pending::Report(rep));
        }
    }

    /// A trade printed on the venue (`e` of kind trade: price, size, aggressor if known;
    /// any other kind is ignored): advances the queue of the resting orders it can reach and
    /// fills them as the queue model says. A driver that has the trade feed (the replay)
    /// calls this for every trade of an instrument; without it, the venue notices trades from
    /// the last-value table's last trade (see [`SimVenue::poll`]), missing those the table
    /// overwrote between two polls.
    ///
    /// A trade whose `seq` (non-zero) is not newer than the book a resting order last moved
    /// with (or joined on) is already in that book (the size it took is gone from the level)
    /// and does not move that order again.
    pub fn on_trade(&mut self, e: &MarketEvent, now_ns: u64) {
        if let Some((px, qty, aggressor)) = e.as_trade() {
            self.trade_feed = true;
            self.apply_trade(e.instrument_id, (px, qty, e.seq), aggressor, now_ns);
        }
    }

    /// Says that every trade with a `seq` up to `seq` has been handed to
    /// [`SimVenue::on_trade`], for a driver whose books (the last-value table) can be newer
    /// than the trades it has read (the live gateway reading the md ring, which the feed
    /// writes after the table). From the first call on, trades come only from the feed (the
    /// table's last trade is no longer looked at), and a resting order moves with a new book
    /// only once the trades up to that book's `last_seq` are in: the decrease a trade caused
    /// is then netted against it (`traded_since_book`), never counted as a cancel too.
    pub fn trades_through(&mut self, seq: u64) {
        self.trade_feed = true;
        self.trades_through_seq = Some(seq);
    }

    /// A trade `(price, qty, seq)` (`seq` 0: not known) against the resting orders.
    fn apply_trade(
        &mut self,
        instrument_id: u32,
        (px, qty, seq): (f64, f64, u64),
        aggressor: Option<Side>,
        now_ns: u64,
    ) {
        if !(px.is_finite() && px > 0.0 && qty.is_finite() && qty > 0.0) {
            return;
        }
        let mut i = 0;
        while i < self.resting.len() {
            let r = &mut self.resting[i];
            // A buy aggressor lifts asks: it cannot reach a resting bid (and the reverse). A
            // trade already in the book the order last saw moved it there.
            if r.order.instrument_id != instrument_id
                || aggressor == Some(r.side)
                || (seq != 0 && seq <= r.seen_seq)
            {
                i += 1;
                continue;
            }
            let tol = 1e-9 * px;
            let through = (r.limit_px - px) * r.side.sign() > tol;
            let fill_qty = if through {
                f64::INFINITY
            } else if (px - r.limit_px).abs() <= tol {
                r.queue_ahead -= qty;
                r.traded_since_book += qty;
                (-r.queue_ahead).max(0.0)
            } else {
                0.0
            };
            if fill_qty > 0.0 && self.fill_resting(i, fill_qty, now_ns) {
                continue;
            }
            i += 1;
        }
    }

    /// Fills up to `qty` contracts (whole lots) of resting order `i` as maker at its limit;
    /// returns whether the order ended (and was removed).
    fn fill_resting(&mut self, i: usize, qty: f64, now_ns: u64) -> bool {
        let r = self.resting[i];
        let def = self.defs[r.order.instrument_id as usize];
        let lot = def.lot();
        let lots = if qty.is_infinite() {
            r.leaves_lots
        } else {
            lots_down(qty, lot).min(r.leaves_lots)
        };
        self.resting[i].queue_ahead = 0.0;
        if lots == 0 {
            return false;
        }
        self.maker_fill(i, lots, now_ns)
    }

    /// Fills `lots` of resting order `i` as maker at its limit: queues the report and removes
    /// the order when nothing is left (else lowers its leaves); returns whether it ended.
    fn maker_fill(&mut self, i: usize, lots: u64, now_ns: u64) -> bool {
        let r = self.resting[i];
        self.report_resting_fill(&r, lots, now_ns);
        let leaves = r.leaves_lots - lots;
        if leaves == 0 {
            self.resting.swap_remove(i);
            true
        } else {
            self.resting[i].leaves_lots = leaves;
            false
        }
    }

    /// Queues the maker fill report of `lots` of resting order `r`.
    fn report_resting_fill(&mut self, r: &Resting, lots: u64, now_ns: u64) {
        let def = self.defs[r.order.instrument_id as usize];
        let lot = def.lot();
        let leaves = r.leaves_lots - lots;
        let qty = lots as f64 * lot;
        let kind = if leaves == 0 {
            ExecKind::Fill
        } else {
            ExecKind::PartialFill
        };
        self.stats.fills += 1;
        let rep = VenueReport {
            liquidity: Liquidity::Maker,
            qty,
            price: r.limit_px,
            fee: fee(&def, qty, r.limit_px, self.cfg.maker_fee_bps),
            leaves_qty: leaves as f64 * lot,
            ..VenueReport::status(&r.order, r.side, kind, RejectReason::None)
        };
        let back = now_ns + self.one_way_ns();
        self.enqueue(back, Pending::Report(rep));
    }

    /// Moves the queue of resting order `i` with a new book: a trade noticed in the table
    /// (without a trade feed), then a decrease of the displayed size at its price beyond
    /// the trades seen there, as [`SimConfig::queue_model`] says. Sizes unknown: only
    /// trades move the queue. Returns whether the order ended.
    fn requeue(&mut self, i: usize, book: &LastValue, now_ns: u64) -> bool {
        let r = self.resting[i];
        self.resting[i].seen_seq = book.last_seq;
        let trade = [book.last_trade_px, book.last_trade_qty];
        if !self.trade_feed && book.valid & LastValue::HAS_TRADE != 0 && trade != r.seen_trade {
            self.resting[i].seen_trade = trade;
            let before = self.resting.len();
            let t = (trade[0], trade[1], 0);
            self.apply_trade(r.order.instrument_id, t, None, now_ns);
            if self.resting.len() < before {
                return true;
            }
        }
        let r = &mut self.resting[i];
        let new_qty = qty_at(book, r.side, r.limit_px);
        if new_qty.is_nan() {
            r.traded_since_book = 0.0;
            return false;
        }
        let prev = if r.level_qty.is_nan() {
            new_qty
        } else {
            r.level_qty
        };
        r.level_qty = new_qty;
        if new_qty == prev {
            // Nothing changed at our price (the book moved elsewhere, or it is the trade's
            // own event and the decrease it caused comes with a later quote): the trades
            // seen stay to net that decrease, as hftbacktest nets its trades against the next
            // depth update at the order's price.
            r.queue_ahead = r.queue_ahead.min(new_qty).max(0.0);
            return false;
        }
        let cancelled = prev - new_qty - r.traded_since_book;
        r.traded_since_book = 0.0;
        if cancelled > 0.0 && self.cfg.queue_model == QueueModel::Prob {
            let n = self.cfg.queue_prob_power;
            let ahead = r.queue_ahead.max(0.0);
            let behind = (prev - ahead).max(0.0);
            let (fa, fb) = (ahead.powf(n), behind.powf(n));
            let from_behind = if fa + fb > 0.0 { fb / (fa + fb) } else { 1.0 };
            // What behind us cannot hold came from ahead too.
            let from_ahead =
                (1.0 - from_behind) * cancelled + (from_behind * cancelled - behind).max(0.0);
            r.queue_ahead = ahead - from_ahead;
        }
        r.queue_ahead = r.queue_ahead.min(new_qty).max(0.0);
        false
    }

    /// Resting orders against the current books: queue positions move with each new book
    /// ([`SimVenue::requeue`]), and an order the opposite side now crosses fills as maker at
    /// its limit against the displayed liquidity.
    fn check_resting(&mut self, now_ns: u64) {
        let mut i = 0;
        while i < self.resting.len() {
            let r = self.resting[i];
            let Some(book) = self.market.book(r.order.instrument_id) else {
                i += 1;
                continue;
            };
            // Behind the trade feed's position, the book waits for the trades before it.
            let trades_in = self.trades_through_seq.is_none_or(|s| book.last_seq <= s);
            if book.last_seq != r.seen_seq && trades_in && self.requeue(i, &book, now_ns) {
                continue;
            }
            if self.cross_resting(i, &book, now_ns) {
                continue;
            }
            i += 1;
        }
    }

    /// Fills resting order `i` against the opposite side when it crosses its limit (the
    /// market traded through us); returns whether the order ended.
    fn cross_resting(&mut self, i: usize, book: &LastValue, now_ns: u64) -> bool {
        let r = self.resting[i];
        let def = self.defs[r.order.instrument_id as usize];
        let lot = def.lot();
        let mut levels = [Level::default(); DEPTH_LEVELS + 1];
        let n = opposite_levels(book, r.side, self.cfg.unknown_size_qty, &mut levels);
        let slot = r.order.instrument_id as usize;
        self.taken[slot].refresh(book);
        let mut leaves = r.leaves_lots;
        let mut filled = 0u64;
        for lvl in &levels[..n] {
            let through = match r.side {
                Side::Buy => lvl.px <= r.limit_px,
                Side::Sell => lvl.px >= r.limit_px,
            };
            if !through || leaves == 0 {
                break;
            }
            let take = lots_down(lvl.qty - self.taken[slot].get(r.side, lvl.px), lot).min(leaves);
            self.taken[slot].add(r.side, lvl.px, take as f64 * lot);
            leaves -= take;
            filled += take;
        }
        if filled == 0 {
            return false;
        }
        self.maker_fill(i, filled, now_ns)
    }
}

impl<M: MarketView> Venue for SimVenue<M> {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn wants_md_trades(&self) -> bool {
        true
    }

    fn on_md_trade(&mut self, e: &MarketEvent, now_ns: u64) {
        self.on_trade(e, now_ns);
    }

    fn md_trades_through(&mut self, seq: u64) {
        self.trades_through(seq);
    }

    fn submit(&mut self, order: &HedgeOrder, now_ns: u64) {
        let due = now_ns + self.one_way_ns();
        self.enqueue(due, Pending::Arrive(*order));
    }

    fn cancel(&mut self, client_order_id: u64, now_ns: u64) {
        let due = now_ns + self.one_way_ns();
        self.enqueue(due, Pending::Cancel(client_order_id));
    }

    fn poll(&mut self, now_ns: u64, sink: &mut dyn FnMut(VenueReport)) {
        if !self.resting.is_empty() {
            self.check_resting(now_ns);
        }
        while let Some(top) = self.queue.peek() {
            if top.due_ns > now_ns {
                break;
            }
            let Some(e) = self.queue.pop() else { break };
            let what = self.slab[e.slot as usize];
            self.free_slots.push(e.slot);
            match what {
                Pending::Report(r) => sink(r),
                Pending::Arrive(o) => {
                    let back = e.due_ns + self.one_way_ns();
                    self.execute(&o, e.due_ns, back);
                }
                Pending::Cancel(id) => {
                    let back = e.due_ns + self.one_way_ns();
                    self.cancel_resting(id, back);
                }
            }
        }
    }
}
