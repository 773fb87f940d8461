//! Execution styles: how a hedge decision becomes orders (IOC, passive then cross, slices),
//! and the one place orders and cancels are written to the orders ring.
//!
//! # Passive then cross
//! A passive hedge is a GTC limit at our own side's touch (the bid when buying). While it
//! rests the core sends no new order for that underlying; it works the order, on every
//! update and timer that evaluates the underlying, in this order:
//! - the delta it leaves uncovered (net delta without the resting quantity) is beyond
//!   `cross_band` times the band: cancel, then cross at once (reason `cross_band`). A
//!   decision taken with delta already beyond that outer band is not posted passive at all:
//!   it crosses at once (reason `cross_band`).
//! - it rested `passive_timeout` since the episode began: cancel, then cross with an IOC at
//!   the far touch (reason `cross_timeout`).
//! - **re-decided**: the policy's own [`HedgePolicy::decide`](crate::policy::HedgePolicy::decide)
//!   is asked about the uncovered delta, as if the order were not there (read-only: the
//!   policy state is not touched, so keeping or withdrawing the order is not a hedge
//!   decision and does not restart the cost-aware holding horizon):
//!   - it would not trade (inside its band, below the minimum size, or held by the holding
//!     horizon): cancel, and nothing replaces the order (cancel reason `withdraw`; the
//!     episode ends). If no hedge order of the underlying filled since the episode began,
//!     the episode traded nothing and the policy forgets its orders: its last hedge is the
//!     one before the episode again (side, band and target for the holding horizon, time
//!     for the minimum interval);
//!   - it would trade the other side: cancel, and when the report arrives the fresh decision
//!     posts that side (cancel reason `resize`);
//!   - it would trade the same side, but the order's leaves exceed what it wants by more than
//!     one lot and more than [`SHRINK_BAND_FRACTION`] of its band: cancel, and the fresh
//!     decision posts the smaller order (cancel reason `resize`);
//!   - otherwise (no book, price collar, minimum interval, or a small change) the order and
//!     its place in the queue are kept.
//! - the touch moved away (a better bid than ours when buying, a better ask when selling),
//!   or the order no longer brings net delta inside the band (more flow came): cancel, and
//!   when the cancel's report arrives decide afresh and post again (reason `passive`). The
//!   timeout runs from the first passive order of the episode, not from the replacement, so
//!   a market running away from us cannot keep us waiting forever.
//!
//! Cancels are counted by reason ([`ExecState::cancels_by_reason`]; counter
//! `passive_cancels`).
//!
//! The report that ends a passive order being cancelled (its `Cancelled`, or a fill that
//! raced the cancel) triggers the next decision at once, so the crossing IOC or the
//! replacement follows the venue's answer without waiting for the timer.
//!
//! The resting order is in the in-flight table like an IOC (its leaves count in net delta
//! and in-flight notional). A cancel changes nothing there: only the venue's reports do
//! (fills reduce the leaves, the `Cancelled` report removes the rest). A fill that races the
//! cancel (the order filled before the cancel reached the venue) is applied once, like any
//! fill, and ends the order; the venue then answers the cancel "unknown order" and sends
//! nothing. A cancel that overtakes its order (jitter) and is lost is re-sent every
//! `passive_timeout` while the order lives.
//!
//! # Slices
//! The hedge's quantity is split into `slices` IOC children `slice_interval` apart; each
//! later child takes `1/k` of what is still between net delta (with what is in flight) and
//! the first decision's target, `k` the children left; the program ends early when delta
//! reached the target. No new decision is taken while a program runs, unless delta leaves the
//! hard outer band (`cross_band` times the band, as for a passive order): the program then
//! ends and the decision taken at once crosses for the whole with one IOC (reason
//! `cross_band`). A decision taken with delta already beyond the outer band is not sliced.

use super::{HedgerCore, StageClock};
use crate::hedger::io::OrderSink;
use crate::hedger::risk::OptionRisk;
use crate::limits::{CheckContext, LimitBreach, OrderToCheck};
#[cfg(doc)]
use crate::policy::PolicyState;
use crate::policy::{
    Decision, ExecStyle, HedgeDecision, HedgeReason, HoldReason, LastHedge, RiskSnapshot,
};
use shm_layout::{HedgeOrder, LastValue, OrderAction, OrderType, Side, TimeInForce};

/// A resting passive order is replaced by a smaller one only when the policy, re-deciding,
/// wants less than its leaves by more than this fraction of the band (and more than one lot).
///
/// Why a quarter: the policy itself leaves any delta inside its band untraded, so an
/// over-hedge of a quarter of the band is a risk it would never trade for; the replacement
/// would lose the order's place in the queue (the back of the queue again at the same price)
/// for a change the policy considers immaterial. One lot alone would replace on almost every
/// tick of gamma.
pub const SHRINK_BAND_FRACTION: f64 = 0.25;

/// Why a resting passive order is cancelled, as counted in
/// [`ExecState::cancels_by_reason`] (by [`HedgeReason`]), in the order of [`CANCEL_LABELS`].
pub const CANCEL_REASONS: [HedgeReason; 5] = [
    HedgeReason::Passive,
    HedgeReason::Resize,
    HedgeReason::CrossTimeout,
    HedgeReason::CrossBand,
    HedgeReason::Withdraw,
];

/// The labels of [`CANCEL_REASONS`] (counter `passive_cancels`, replay reports): `replace`
/// (the touch moved away, or more flow came), `resize` (the re-decision wants the other side
/// or materially less), `cross_timeout` and `cross_band` (the crossing IOC follows),
/// `withdraw` (the re-decision would not trade: nothing replaces the order).
pub const CANCEL_LABELS: [&str; 5] = [
    "replace",
    "resize",
    "cross_timeout",
    "cross_band",
    "withdraw",
];

/// Per-underlying execution state (plain fields, no allocation).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExecState {
    /// Client order id of the passive order resting (0: none).
    pub passive_coid: u64,
    /// Its side (+1 buy, -1 sell) and limit price.
    pub passive_sign: f64,
    /// Its limit price.
    pub passive_px: f64,
    /// When the first passive order of this episode was sent, ns (0: no episode); the
    /// timeout runs from here across replacements.
    pub episode_start_ns: u64,
    /// The policy's last hedge before this episode's first order: restored when the episode
    /// is withdrawn without a fill ([`PolicyState::undo_hedges_since`]).
    pub episode_before: LastHedge,
    /// A hedge order of this underlying filled (in part or whole) since the episode began.
    pub episode_filled: bool,
    /// When the last cancel of the passive order was sent, ns (0: none).
    pub cancel_sent_ns: u64,
    /// Why the resting order is being cancelled: `CrossTimeout`/`CrossBand` (the next order
    /// is the crossing IOC), `Passive` or `Resize` (replace), `Withdraw` (no replacement).
    /// Meaningful while `cancel_sent_ns != 0`, and carried to the next decision after the
    /// order ended (except `Withdraw`: nothing waits for that decision).
    pub cancel_for: Option<HedgeReason>,
    /// Slices: child orders still to send.
    pub slices_left: u32,
    /// Slices: when the next child is due, ns.
    pub next_slice_ns: u64,
    /// Slices: the program's target net delta, underlying units.
    pub slice_target: f64,
    /// Slices: side of the program (+1 buy, -1 sell).
    pub slice_sign: f64,
    /// Orders sent by [`HedgeReason`] (index of [`HedgeReason::ALL`]).
    pub sent_by_reason: [u64; HedgeReason::ALL.len()],
    /// Cancels sent (replacements, crosses, withdrawals, re-sent cancels).
    pub cancels_sent: u64,
    /// Cancels of a resting passive order decided, by why (index of [`HedgeReason::ALL`]; the
    /// reasons of [`CANCEL_REASONS`]); re-sent cancels are not counted again.
    pub cancels_by_reason: [u64; HedgeReason::ALL.len()],
    /// Passive orders that ended with a fill while their cancel was on its way.
    pub fill_raced_cancel: u64,
}

impl ExecState {
    /// Whether a passive order rests (or its cancel is on its way).
    #[inline]
    pub fn passive_live(&self) -> bool {
        self.passive_coid != 0
    }

    /// Cancels of resting passive orders by reason, in the order of [`CANCEL_LABELS`] (the
    /// counter `passive_cancels` and the replay report read them from here).
    pub fn cancel_counts(&self) -> [u64; CANCEL_REASONS.len()] {
        CANCEL_REASONS.map(|r| self.cancels_by_reason[r.index()])
    }
}

/// One order to send: what [`HedgerCore::send_order`] needs besides the underlying.
#[derive(Debug, Clone, Copy)]
pub(super) struct OrderPlan {
    pub side: Side,
    pub qty: f64,
    pub px: f64,
    pub tif: TimeInForce,
    pub reason: HedgeReason,
}

/// The stage stamps of one decision.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamps {
    pub feed_recv_ns: u64,
    pub read_ns: u64,
    pub decision_ns: u64,
}

/// A cancel request for order `coid` (side from `sign`: +1 buy, -1 sell; its limit `px`).
pub(super) fn cancel_of(
    coid: u64,
    instrument_id: u32,
    sign: f64,
    px: f64,
    now_ns: u64,
) -> HedgeOrder {
    HedgeOrder {
        client_order_id: coid,
        instrument_id,
        side: if sign > 0.0 { Side::Buy } else { Side::Sell } as u8,
        order_type: OrderType::Limit as u8,
        tif: TimeInForce::Gtc as u8,
        action: OrderAction::Cancel as u8,
        qty: 0.0,
        limit_px: px,
        feed_recv_ts_ns: 0,
        hedger_read_ts_ns: now_ns,
        decision_ts_ns: now_ns,
        publish_ts_ns: now_ns,
    }
}

/// Our own side's touch (bid when buying, ask when selling).
#[inline]
fn own_touch(book: &LastValue, side: Side) -> f64 {
    match side {
        Side::Buy => book.bid_px,
        Side::Sell => book.ask_px,
    }
}

impl<R: OptionRisk> HedgerCore<R> {
    /// Turns a policy decision into the first order of its style and sends it.
    pub(super) fn execute_decision<O: OrderSink, T: StageClock>(
        &mut self,
        u: usize,
        d: &HedgeDecision,
        st: Stamps,
        orders: &mut O,
        clock: &T,
    ) {
        let x = &mut self.und[u];
        let cfg = x.policy.cfg.exec;
        // What the policy remembers before this order (a passive episode starting keeps it).
        let before = x.pstate.last_hedge();
        // A passive order cancelled to cross: this decision is the crossing IOC.
        let crossing = x.exec.cancel_for.take();
        let mut plan = OrderPlan {
            side: d.side,
            qty: d.qty_contracts,
            px: d.limit_px,
            tif: TimeInForce::Ioc,
            reason: d.reason,
        };
        // Delta already beyond the hard outer band: no time to wait at our touch.
        let beyond_outer = d.band > 0.0 && x.net_delta.abs() > cfg.cross_band * d.band;
        match (crossing, cfg.style) {
            (Some(r @ (HedgeReason::CrossTimeout | HedgeReason::CrossBand)), _) => {
                plan.reason = r;
            }
            (_, ExecStyle::Passive | ExecStyle::Slices) if beyond_outer => {
                plan.reason = HedgeReason::CrossBand;
            }
            (_, ExecStyle::Passive) => {
                plan.px = own_touch(&x.book, d.side);
                plan.tif = TimeInForce::Gtc;
                plan.reason = HedgeReason::Passive;
            }
            (_, ExecStyle::Slices) if cfg.slices > 1 => {
                let child = x
                    .policy
                    .instrument
                    .round_down_to_lot(d.qty_contracts / f64::from(cfg.slices));
                if child >= x.policy.instrument.min_qty && child > 0.0 {
                    plan.qty = child;
                    x.exec.slices_left = cfg.slices - 1;
                    x.exec.next_slice_ns = st.decision_ns.saturating_add(cfg.slice_interval_ns);
                    x.exec.slice_target = d.target_delta;
                    x.exec.slice_sign = d.side.sign();
                }
            }
            _ => {}
        }
        if crossing.is_none() && plan.tif == TimeInForce::Ioc {
            // Not part of a passive episode.
            x.exec.episode_start_ns = 0;
        }
        let Some(coid) = self.send_order(u, &plan, st, orders, clock) else {
            let x = &mut self.und[u];
            x.exec.slices_left = 0;
            // Refused (a limit, a full ring): a timed-out episode still owes its cross. Without
            // this, its next decision posted passive again, which the timeout cancelled at
            // once, and so on, while the cross never went. (A refused `cross_band` needs no
            // memory: the next decision crosses if delta is still beyond the outer band.)
            if crossing == Some(HedgeReason::CrossTimeout) {
                x.exec.cancel_for = crossing;
            }
            return;
        };
        let x = &mut self.und[u];
        x.pstate.on_hedge_decision(d);
        if plan.tif == TimeInForce::Gtc {
            x.exec.passive_coid = coid;
            x.exec.passive_sign = plan.side.sign();
            x.exec.passive_px = plan.px;
            x.exec.cancel_sent_ns = 0;
            if x.exec.episode_start_ns == 0 {
                x.exec.episode_start_ns = st.decision_ns;
                x.exec.episode_before = before;
                x.exec.episode_filled = false;
            }
        }
    }

    /// Works the resting passive order of `u` (cancel to replace or to cross). Returns
    /// whether one is live (then no new decision is taken).
    pub(super) fn work_passive<O: OrderSink>(
        &mut self,
        u: usize,
        dpc: f64,
        now_ns: u64,
        orders: &mut O,
    ) -> bool {
        let x = &self.und[u];
        let e = x.exec;
        if !e.passive_live() {
            return false;
        }
        let cfg = x.policy.cfg.exec;
        if e.cancel_sent_ns != 0 {
            // Waiting for the venue's answer; re-send a cancel that may have been lost.
            if now_ns.saturating_sub(e.cancel_sent_ns) >= cfg.passive_timeout_ns {
                self.send_cancel(u, now_ns, orders);
            }
            return true;
        }
        let leaves = self
            .find_inflight(e.passive_coid)
            .map_or(0.0, |i| self.inflight[i].leaves);
        let uncovered = x.net_delta - e.passive_sign * leaves * dpc;
        let touch = own_touch(
            &x.book,
            if e.passive_sign > 0.0 {
                Side::Buy
            } else {
                Side::Sell
            },
        );
        let band = x.band;
        let why = if band > 0.0 && uncovered.abs() > cfg.cross_band * band {
            Some(HedgeReason::CrossBand)
        } else if now_ns.saturating_sub(e.episode_start_ns) >= cfg.passive_timeout_ns {
            Some(HedgeReason::CrossTimeout)
        } else if let Some(r) = self.redecide_passive(u, uncovered, leaves, dpc, now_ns) {
            Some(r)
        } else if (touch - e.passive_px) * e.passive_sign > 0.0
            || (band > 0.0 && x.net_delta.abs() > band)
        {
            // The touch moved away from us, or the order is no longer enough: replace.
            Some(HedgeReason::Passive)
        } else {
            None
        };
        if let Some(r) = why {
            let x = &mut self.und[u];
            x.exec.cancel_for = Some(r);
            x.exec.cancels_by_reason[r.index()] += 1;
            self.send_cancel(u, now_ns, orders);
        }
        true
    }

    /// Re-decides the resting passive order of `u` with the policy's own decision, taken on
    /// the delta it leaves `uncovered` (underlying units) as if it were not there; `leaves`
    /// in contracts, `dpc` the delta per contract. Read-only: the policy state is not
    /// touched. Returns why to cancel it (`Withdraw`, or `Resize` to replace it with the
    /// other side or a smaller order), or `None` to keep it.
    #[inline]
    fn redecide_passive(
        &self,
        u: usize,
        uncovered: f64,
        leaves: f64,
        dpc: f64,
        now_ns: u64,
    ) -> Option<HedgeReason> {
        let x = &self.und[u];
        let snap = self.risk_snapshot(u, uncovered);
        match x.policy.decide(&x.pstate, &snap, &x.book, now_ns) {
            // The policy would not trade: the order would trade risk that needs no trading.
            Decision::Hold(
                HoldReason::InsideBand | HoldReason::BelowMinSize | HoldReason::Horizon,
            ) => Some(HedgeReason::Withdraw),
            // No usable book or price, or too soon to decide anew: nothing to act on.
            Decision::Hold(_) => None,
            Decision::Hedge(d) if d.side.sign() != x.exec.passive_sign => Some(HedgeReason::Resize),
            Decision::Hedge(d) => {
                let inst = &x.policy.instrument;
                let excess = (leaves - d.qty_contracts) * dpc;
                let lot = inst.lot_size.max(inst.min_qty) * dpc;
                (excess > lot.max(SHRINK_BAND_FRACTION * d.band)).then_some(HedgeReason::Resize)
            }
        }
    }

    /// What the policy sees of `u` with net delta `net_delta` (underlying units): the one
    /// snapshot of a fresh decision and of a re-decision of a resting order.
    #[inline]
    pub(super) fn risk_snapshot(&self, u: usize, net_delta: f64) -> RiskSnapshot {
        let x = &self.und[u];
        RiskSnapshot {
            net_delta,
            gamma: x.gamma,
            underlying_px: if x.index_px > 0.0 {
                x.index_px
            } else {
                0.5 * (x.book.bid_px + x.book.ask_px)
            },
            tau_years: self.risk.tau_years(u),
            rate: x.setup.rate,
        }
    }

    /// Sends the next child of a running slice program when it is due. Returns whether a
    /// program runs (then no new decision is taken).
    pub(super) fn work_slices<O: OrderSink, T: StageClock>(
        &mut self,
        u: usize,
        dpc: f64,
        st: Stamps,
        orders: &mut O,
        clock: &T,
    ) -> bool {
        let x = &mut self.und[u];
        let e = x.exec;
        if e.slices_left == 0 {
            return false;
        }
        if x.band > 0.0 && x.net_delta.abs() > x.policy.cfg.exec.cross_band * x.band {
            // Flow took delta beyond the hard outer band while the program ran: it ends, and
            // the fresh decision taken now crosses for the whole (reason `cross_band`).
            x.exec.slices_left = 0;
            return false;
        }
        if st.read_ns < e.next_slice_ns {
            x.retry_at_ns = x.retry_at_ns.min(e.next_slice_ns);
            return true;
        }
        let side = if e.slice_sign > 0.0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let left = (e.slice_target - x.net_delta) * e.slice_sign;
        let inst = x.policy.instrument;
        let qty = if dpc > 0.0 && left > 0.0 {
            let per = left / dpc / f64::from(e.slices_left);
            inst.round_down_to_lot(per.max(inst.min_qty).max(inst.lot_size).min(left / dpc))
        } else {
            0.0
        };
        if qty <= 0.0 || qty < inst.min_qty {
            // Delta reached the target: the program ends.
            x.exec.slices_left = 0;
            return false;
        }
        x.exec.slices_left -= 1;
        x.exec.next_slice_ns = st
            .read_ns
            .saturating_add(x.policy.cfg.exec.slice_interval_ns);
        x.retry_at_ns = x.retry_at_ns.min(x.exec.next_slice_ns);
        let px = match side {
            Side::Buy => x.book.ask_px,
            Side::Sell => x.book.bid_px,
        };
        let plan = OrderPlan {
            side,
            qty,
            px,
            tif: TimeInForce::Ioc,
            reason: HedgeReason::Slice,
        };
        if self.send_order(u, &plan, st, orders, clock).is_none() {
            self.und[u].exec.slices_left = 0;
        }
        true
    }

    /// Checks limits and writes one new order (any style); records it in the in-flight
    /// table, the reason table and the counters. Returns its client order id, or `None`
    /// when a limit, the in-flight table or the ring refused it.
    pub(super) fn send_order<O: OrderSink, T: StageClock>(
        &mut self,
        u: usize,
        p: &OrderPlan,
        st: Stamps,
        orders: &mut O,
        clock: &T,
    ) -> Option<u64> {
        let x = &mut self.und[u];
        let signed = p.side.sign() * p.qty;
        let (bid, ask) = (x.book.bid_px, x.book.ask_px);
        let book_ok = x.book.valid & LastValue::HAS_QUOTE != 0 && bid > 0.0 && ask > bid;
        let ctx = CheckContext {
            now_ns: st.decision_ns,
            utc_day: ((st.decision_ns as i128 + self.wall_minus_mono).max(0) as u64)
                / 86_400_000_000_000,
            kill_switch: self.kill,
            gateway_alive: self.gateway_alive,
            mode: x.mode,
            underlying_ts_ns: if x.index_ts_ns != 0 {
                x.index_ts_ns
            } else {
                x.book_ts_ns
            },
            hedge_book_ts_ns: x.book_ts_ns,
            hedge_book_ok: book_ok,
            position_contracts: x.hedge_position + x.inflight_qty,
            inflight_notional: x.inflight_notional,
        };
        let check = OrderToCheck {
            signed_qty: signed,
            notional: x.policy.instrument.notional(p.qty, p.px),
        };
        if let Err(b) = x.limits.check(&ctx, &check) {
            // Time alone lifts these (tokens refill, the reject halt ends); the rest need
            // new data, a fill or a control change.
            if matches!(b, LimitBreach::Rate | LimitBreach::RejectRate) {
                x.retry_at_ns = 0;
            }
            return None;
        }
        if self.inflight.len() >= super::MAX_INFLIGHT {
            self.stats.inflight_full += 1;
            return None;
        }
        let coid = (self.epoch << 32) | (self.next_seq & 0xFFFF_FFFF);
        let mut order = HedgeOrder {
            client_order_id: coid,
            instrument_id: x.policy.instrument.instrument_id,
            side: p.side as u8,
            order_type: OrderType::Limit as u8,
            tif: p.tif as u8,
            action: OrderAction::New as u8,
            qty: p.qty,
            limit_px: p.px,
            feed_recv_ts_ns: st.feed_recv_ns,
            hedger_read_ts_ns: st.read_ns,
            decision_ts_ns: st.decision_ns,
            publish_ts_ns: 0,
        };
        order.publish_ts_ns = clock.now();
        if orders.push(order).is_err() {
            self.stats.orders_ring_full += 1;
            self.ring_blocked = true;
            return None;
        }
        self.record_sent(u, coid, p.reason, st.decision_ns);
        self.latency.record_order(&order);
        self.add_inflight(coid, u as u16, signed, p.px);
        Some(coid)
    }

    /// Bookkeeping of an order just written: reason, sequence, counters, policy clock.
    fn record_sent(&mut self, u: usize, coid: u64, reason: HedgeReason, decision_ns: u64) {
        self.sent_reasons[(self.next_seq as usize) % super::SENT_REASONS] = (coid, reason);
        self.next_seq += 1;
        self.stats.orders_sent += 1;
        let x = &mut self.und[u];
        match reason {
            HedgeReason::Band => x.hedges_band += 1,
            HedgeReason::Safety => x.hedges_safety += 1,
            _ => {}
        }
        x.exec.sent_by_reason[reason.index()] += 1;
        x.pstate.on_hedge_sent(decision_ns);
    }

    /// Writes a cancel of the passive order of `u`. A full ring blocks hedging as for
    /// orders; the cancel is then re-sent by [`HedgerCore::work_passive`] after the timeout.
    fn send_cancel<O: OrderSink>(&mut self, u: usize, now_ns: u64, orders: &mut O) {
        let x = &mut self.und[u];
        let e = x.exec;
        let order = cancel_of(
            e.passive_coid,
            x.policy.instrument.instrument_id,
            e.passive_sign,
            e.passive_px,
            now_ns,
        );
        // Counted as sent even when the ring is full: the re-send clock starts either way.
        x.exec.cancel_sent_ns = now_ns.max(1);
        x.exec.cancels_sent += 1;
        x.retry_at_ns = x
            .retry_at_ns
            .min(now_ns.saturating_add(x.policy.cfg.exec.passive_timeout_ns));
        if orders.push(order).is_err() {
            self.stats.orders_ring_full += 1;
            self.ring_blocked = true;
        }
    }

    /// After a report of `coid` was applied: if it ended the passive order of `u`, the
    /// episode moves on (cross, replace, or done) at the next decision.
    /// Returns whether to decide at once (a cross or a replacement is waiting for it).
    pub(super) fn after_order_report(&mut self, u: usize, coid: u64, filled: bool) -> bool {
        if self.und[u].exec.passive_coid != coid || self.find_inflight(coid).is_some() {
            return false;
        }
        let x = &mut self.und[u];
        if filled && x.exec.cancel_sent_ns != 0 {
            x.exec.fill_raced_cancel += 1;
        }
        if x.exec.cancel_for == Some(HedgeReason::Withdraw) {
            // Withdrawn: nothing replaces it, the episode is over (the next decision, at the
            // next update or timer, starts afresh). If nothing of it filled, it traded no
            // risk: the policy forgets its orders, which would otherwise hold the other side
            // for the cost-aware holding horizon and start the minimum interval.
            x.exec.cancel_for = None;
            x.exec.episode_start_ns = 0;
            if !x.exec.episode_filled {
                x.pstate.undo_hedges_since(x.exec.episode_before);
            }
        }
        if filled && x.exec.cancel_for.is_none() {
            // Filled in full at our price: the episode is over.
            x.exec.episode_start_ns = 0;
        }
        x.exec.passive_coid = 0;
        x.exec.cancel_sent_ns = 0;
        x.retry_at_ns = 0;
        x.exec.cancel_for.is_some()
    }

    /// When the execution state of `u` next needs the timer (passive timeout, a cancel to
    /// re-send, the next slice), ns; `u64::MAX`: none.
    pub(super) fn exec_due_ns(&self, u: usize) -> u64 {
        let x = &self.und[u];
        let (e, cfg) = (&x.exec, &x.policy.cfg.exec);
        let mut due = u64::MAX;
        if e.passive_live() {
            let from = if e.cancel_sent_ns != 0 {
                e.cancel_sent_ns
            } else {
                e.episode_start_ns
            };
            due = from.saturating_add(cfg.passive_timeout_ns);
        }
        if e.slices_left > 0 {
            due = due.min(e.next_slice_ns);
        }
        due
    }
}
