//! The venue abstraction: where hedge orders go and where execution reports come from.
//!
//! The gateway's loop owns one [`Venue`] and drives it without ever blocking:
//!
//! 1. for every new order read from the orders ring it calls [`Venue::submit`] (or
//!    [`Venue::cancel`] for an [`OrderAction::Cancel`](shm_layout::OrderAction) request);
//! 2. on every iteration it calls [`Venue::poll`], which hands over the reports that are due;
//! 3. the gateway turns each [`VenueReport`] into an [`ExecEvent`](shm_layout::ExecEvent),
//!    assigns its `exec_id`, journals it, and publishes it into the execs ring.
//!
//! Two implementations exist: the built-in exchange simulator ([`crate::sim::SimVenue`]) and the
//! FIX 4.4 initiator (`crate::fix`).
//!
//! # Contract an implementation must keep
//! - `submit`, `cancel` and `poll` return quickly (no blocking I/O, no sleeping): network work
//!   is non-blocking and advanced inside `poll`.
//! - Every submitted order eventually gets exactly one terminal report
//!   ([`ExecKind::Fill`], [`ExecKind::Cancelled`] or [`ExecKind::Rejected`]), after any number of
//!   non-terminal ones ([`ExecKind::Ack`], [`ExecKind::PartialFill`]), in that order.
//! - Reports of one order are delivered in the order they happened.
//! - `qty` of a fill is the quantity of *this* fill; `leaves_qty` is what is still open after
//!   it (0 on a terminal report).
//! - The venue never invents `client_order_id`s: it echoes the order's.
//! - [`ExecKind::OptionTrade`] is never produced by a venue (client option flow is separate).

use shm_layout::counter_schema::CounterDef;
use shm_layout::{ExecKind, HedgeOrder, Liquidity, MarketEvent, RejectReason, Side};

/// One execution report from a venue, before the gateway gives it an `exec_id`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VenueReport {
    /// The order this report belongs to (echoed from [`HedgeOrder::client_order_id`]).
    pub client_order_id: u64,
    /// Instrument of the order.
    pub instrument_id: u32,
    /// What happened: `Ack`, `PartialFill`, `Fill`, `Cancelled` or `Rejected`.
    pub kind: ExecKind,
    /// The order's side.
    pub side: Side,
    /// Maker or taker for fills, [`Liquidity::None`] otherwise.
    pub liquidity: Liquidity,
    /// Why the order was rejected ([`RejectReason::None`] unless `kind == Rejected`; a
    /// `Cancelled` report may carry a reason too, e.g. [`RejectReason::GatewayRecovery`]).
    pub reject_reason: RejectReason,
    /// Quantity of this fill in contracts (0 for acks, cancels and rejects).
    pub qty: f64,
    /// Price of this fill (0 when not a fill).
    pub price: f64,
    /// Fee of this fill in the instrument's settlement currency (negative = rebate).
    pub fee: f64,
    /// Quantity still open after this report (0 on terminal reports).
    pub leaves_qty: f64,
    /// Venue timestamp if the venue gives one (ns since the Unix epoch), else 0.
    pub venue_ts_ns: u64,
}

impl VenueReport {
    /// A report with no fill fields set (acks, cancels, rejects).
    pub fn status(order: &HedgeOrder, side: Side, kind: ExecKind, reason: RejectReason) -> Self {
        VenueReport {
            client_order_id: order.client_order_id,
            instrument_id: order.instrument_id,
            kind,
            side,
            liquidity: Liquidity::None,
            reject_reason: reason,
            qty: 0.0,
            price: 0.0,
            fee: 0.0,
            leaves_qty: 0.0,
            venue_ts_ns: 0,
        }
    }

    /// A rejection of `order` with `reason` (terminal). An order whose side byte is invalid
    /// is reported with side [`Side::Buy`] (the hedger keys on `client_order_id`).
    pub fn reject(order: &HedgeOrder, reason: RejectReason) -> Self {
        let side = order.side().unwrap_or(Side::Buy);
        Self::status(order, side, ExecKind::Rejected, reason)
    }
}

/// A place that executes hedge orders: the simulator or a FIX counterparty.
///
/// See the [module docs](self) for the contract. All times are monotonic ns
/// ([`shm_layout::clock::now_ns`]) passed in by the caller, so implementations are
/// deterministic under test.
pub trait Venue {
    /// Short name for logs and counters ("sim", "fix").
    fn name(&self) -> &'static str;

    /// Non-blocking: accept a new order for execution (`order.action == New`). Its reports,
    /// including a rejection, come back through [`Venue::poll`], never synchronously.
    fn submit(&mut self, order: &HedgeOrder, now_ns: u64);

    /// Non-blocking: ask to cancel the open order `client_order_id`. If the order is still
    /// open, its terminal report is a `Cancelled` (or a `Fill` that raced the cancel); if it is
    /// unknown or already terminal, nothing is reported.
    fn cancel(&mut self, client_order_id: u64, now_ns: u64);

    /// Non-blocking: advance timers and I/O, and hand every report due by `now_ns` to `sink`,
    /// in order. Returns nothing; the gateway only stops calling `poll` while its own outbound
    /// queue is full (then reports must stay queued inside the venue).
    fn poll(&mut self, now_ns: u64, sink: &mut dyn FnMut(VenueReport));

    /// Whether new orders can be sent now. While `false`, the gateway rejects new orders itself
    /// with [`RejectReason::NotConnected`] instead of calling `submit`.
    fn is_connected(&self) -> bool {
        true
    }

    /// Called once per order at gateway start-up, before any `submit`, for each order the
    /// previous run had accepted but whose terminal report it had not published (it was
    /// killed). `filled_qty` is the quantity already reported filled for it.
    ///
    /// Return `true` if the venue will itself find out and report, through `poll`, what remains
    /// of the order (e.g. a FIX session that resends or queries its status); its reports must
    /// then cover only quantity beyond `filled_qty`. Return `false` (the default) and the
    /// gateway ends the order with a `Cancelled` report carrying
    /// [`RejectReason::GatewayRecovery`].
    fn recover_order(&mut self, order: &HedgeOrder, filled_qty: f64, now_ns: u64) -> bool {
        let _ = (order, filled_qty, now_ns);
        false
    }

    /// Called when the gateway stops cleanly (SIGINT/SIGTERM), e.g. to send a FIX Logout.
    /// Must return within a bounded time.
    fn shutdown(&mut self, now_ns: u64) {
        let _ = now_ns;
    }

    /// Hands every venue counter to `f` as `(declaration, label index, value)`, for the
    /// gateway's counters segment (`cnc-gateway`). Called off the per-order path (the process
    /// does it every 100 ms of its heartbeat), so it may loop over a few dozen values, but must
    /// not block.
    ///
    /// The declarations come from the venue's own counter schema
    /// ([`shm_layout::counter_schema!`]; names prefixed by the venue, e.g. `fix_logons`), so
    /// their units and help reach the segment; the label index is 0, or the value's index in
    /// the declaration's label set. The same instances in the same order on every call (the
    /// gateway registers one record per instance at start-up). Values count since the venue
    /// was created. Default: no counters (the simulator's outcomes are the gateway's own).
    fn for_each_counter(&self, f: &mut dyn FnMut(&'static CounterDef, usize, u64)) {
        let _ = f;
    }

    /// Whether the venue wants the market's trades from the md ring ([`Venue::on_md_trade`]):
    /// the simulator does (they move its resting orders' queue positions); a real venue does
    /// not (the default).
    fn wants_md_trades(&self) -> bool {
        false
    }

    /// A trade event read from the md ring, in ring order, at `now_ns`. Called on the
    /// gateway's loop: must not block or allocate. Default: ignored.
    fn on_md_trade(&mut self, e: &MarketEvent, now_ns: u64) {
        let _ = (e, now_ns);
    }

    /// Every trade with a feed sequence (`MarketEvent::seq`) up to `seq` has been handed to
    /// [`Venue::on_md_trade`] (called after each read of the md ring). Default: ignored.
    fn md_trades_through(&mut self, seq: u64) {
        let _ = seq;
    }
}
