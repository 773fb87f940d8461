//! [`FixVenue`]: hedge orders to NewOrderSingle/OrderCancelRequest, ExecutionReports and
//! rejects back to [`VenueReport`]s.

use super::codec::{tag, Message, MsgWriter};
use super::config::FixConfig;
use super::counters::FixCounter;
use super::session::{SendError, Session, SessionEvent};
use super::store::StoreError;
use crate::venue::{Venue, VenueReport};
use shm_layout::counter_schema::{CounterDef, CounterSchema as _};
use shm_layout::{
    ExecKind, HedgeOrder, InstrumentDef, Liquidity, OrderType, RejectReason, Side, TimeInForce,
    SYMBOL_LEN,
};
use std::collections::VecDeque;

/// Application counters of the FIX venue (session counters are in [`Session::stats`]).
#[derive(Debug, Clone, Default)]
pub struct FixVenueStats {
    /// NewOrderSingles sent.
    pub orders_sent: u64,
    /// OrderCancelRequests sent.
    pub cancels_sent: u64,
    /// ExecutionReports received.
    pub exec_reports: u64,
    /// Orders rejected by the venue with an ExecutionReport (ExecType 8).
    pub venue_rejects: u64,
    /// Orders ended by a BusinessMessageReject (35=j).
    pub business_rejects: u64,
    /// Session-level Rejects (35=3) received.
    pub session_rejects: u64,
    /// OrderCancelRejects (35=9) received.
    pub cancel_rejects: u64,
    /// Orders rejected locally before sending (bad fields, unknown symbol, full table,
    /// not connected, send failure).
    pub local_rejects: u64,
    /// Orders ended because the counterparty never processed them (gap-filled).
    pub gap_filled_orders: u64,
    /// Reports for orders we do not track (e.g. PossDup copies after a restart).
    pub unknown_order_reports: u64,
    /// Application messages with missing or malformed fields.
    pub malformed_app_messages: u64,
    /// Application messages of types we do not handle.
    pub ignored_app_messages: u64,
    /// Orders taken over from a killed run (`recover_order`).
    pub recovered_orders: u64,
    /// OrderStatusRequests sent for them.
    pub status_requests_sent: u64,
    /// OrderStatus answers (ExecType I) received.
    pub status_reports: u64,
}

#[derive(Debug, Clone, Copy)]
struct OrderSlot {
    live: bool,
    cl_ord_id: u64,
    instrument_id: u32,
    side: Side,
    qty: f64,
    cum_qty: f64,
    /// MsgSeqNum the NewOrderSingle went out with.
    out_seq: u64,
    acked: bool,
    /// Taken over from a killed gateway run: its state is asked with an OrderStatusRequest.
    recovering: bool,
    /// The OrderStatusRequest went out in the current session.
    status_requested: bool,
}

const EMPTY_SLOT: OrderSlot = OrderSlot {
    live: false,
    cl_ord_id: 0,
    instrument_id: 0,
    side: Side::Buy,
    qty: 0.0,
    cum_qty: 0.0,
    out_seq: 0,
    acked: false,
    recovering: false,
    status_requested: false,
};

impl OrderSlot {
    /// A live slot for `order` on `side`, nothing filled, sent or acknowledged yet.
    #[inline]
    fn for_order(order: &HedgeOrder, side: Side) -> Self {
        OrderSlot {
            live: true,
            cl_ord_id: order.client_order_id,
            instrument_id: order.instrument_id,
            side,
            qty: order.qty,
            ..EMPTY_SLOT
        }
    }
}

/// Quantities below this are treated as zero (contracts are multiples of lot sizes far above).
const QTY_EPS: f64 = 1e-9;

/// The FIX 4.4 venue. Build with [`FixVenue::new`], hand it to the gateway loop as a
/// [`Venue`]; it connects in its first `poll`.
///
/// Symbols come from the instrument definitions (`InstrumentDef::symbol`); ClOrdID (11) is the
/// hedge order's `client_order_id` in decimal; a cancel's ClOrdID is `<id>-C`.
pub struct FixVenue {
    session: Session,
    app: App,
}

/// Order state and report queue: a field of its own so that the session's callbacks can
/// borrow it while the session itself is borrowed.
struct App {
    symbols: Vec<([u8; SYMBOL_LEN], u8)>,
    orders: Vec<OrderSlot>,
    reports: VecDeque<VenueReport>,
    stats: FixVenueStats,
    last_reject_text: String,
}

impl std::fmt::Debug for FixVenue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixVenue")
            .field("session", &self.session)
            .field("stats", &self.app.stats)
            .finish_non_exhaustive()
    }
}

impl FixVenue {
    /// Creates the venue for the instruments `defs` (indexed by `InstrumentDef::id`).
    ///
    /// # Errors
    /// The configuration is invalid or the sequence-number file cannot be used.
    pub fn new(cfg: FixConfig, defs: &[InstrumentDef]) -> Result<Self, FixVenueError> {
        cfg.validate().map_err(FixVenueError::Config)?;
        let max = cfg.max_in_flight;
        let mut symbols = vec![([0u8; SYMBOL_LEN], 0u8); defs.len()];
        for d in defs {
            if let Some(s) = symbols.get_mut(d.id as usize) {
                let sym = d.symbol().as_bytes();
                if !sym.is_empty() && sym.len() <= SYMBOL_LEN && !sym.contains(&1) {
                    s.0[..sym.len()].copy_from_slice(sym);
                    s.1 = sym.len() as u8;
                }
            }
        }
        Ok(FixVenue {
            session: Session::new(cfg).map_err(FixVenueError::Store)?,
            app: App {
                symbols,
                orders: vec![EMPTY_SLOT; max],
                reports: VecDeque::with_capacity(4 * max),
                stats: FixVenueStats::default(),
                last_reject_text: String::with_capacity(256),
            },
        })
    }

    /// The session (state, sequence numbers, counters).
    pub fn session(&self) -> &Session {
        &self.session
    }
    /// Application counters.
    pub fn stats(&self) -> &FixVenueStats {
        &self.app.stats
    }
    /// Text of the last venue reject (ExecType 8, 35=3 or 35=j), for logs off the hot path.
    pub fn last_reject_text(&self) -> &str {
        &self.app.last_reject_text
    }
    /// Orders sent and not yet terminal.
    pub fn orders_in_flight(&self) -> usize {
        self.app.orders.iter().filter(|o| o.live).count()
    }

    fn drive_session(&mut self, now_ns: u64) {
        let app = &mut self.app;
        self.session.poll(now_ns, &mut |s, ev| app.on_event(s, ev));
    }
}

impl App {
    fn local_reject(&mut self, order: &HedgeOrder, reason: RejectReason) {
        self.stats.local_rejects += 1;
        self.reports.push_back(VenueReport::reject(order, reason));
    }

    fn slot_by_id(&mut self, id: u64) -> Option<usize> {
        self.orders.iter().position(|o| o.live && o.cl_ord_id == id)
    }

    fn report(&mut self, i: usize, kind: ExecKind, reason: RejectReason, fill: (f64, f64)) {
        let o = self.orders[i];
        let leaves = if kind.is_terminal() {
            0.0
        } else {
            (o.qty - o.cum_qty).max(0.0)
        };
        self.reports.push_back(VenueReport {
            client_order_id: o.cl_ord_id,
            instrument_id: o.instrument_id,
            kind,
            side: o.side,
            liquidity: if fill.0 > 0.0 {
                Liquidity::Taker
            } else {
                Liquidity::None
            },
            reject_reason: reason,
            qty: fill.0,
            price: fill.1,
            fee: 0.0,
            leaves_qty: leaves,
            venue_ts_ns: 0,
        });
        if kind.is_terminal() {
            self.orders[i] = EMPTY_SLOT;
        }
    }

    fn remember_text(&mut self, msg: &Message) {
        self.last_reject_text.clear();
        if let Some(t) = msg.get(tag::TEXT) {
            let t = &t[..t.len().min(200)];
            self.last_reject_text.push_str(&String::from_utf8_lossy(t));
        }
    }

    fn on_app(&mut self, msg: &Message) {
        match msg.msg_type() {
            b"8" => self.on_exec_report(msg),
            b"9" => self.stats.cancel_rejects += 1,
            b"3" => {
                self.stats.session_rejects += 1;
                self.remember_text(msg);
                // Only a rejected NewOrderSingle ends an order; a rejected cancel leaves it.
                if let Ok(Some(ref_seq)) = msg.get_u64(tag::REF_SEQ_NUM) {
                    if let Some(i) = self
                        .orders
                        .iter()
                        .position(|o| o.live && o.out_seq == ref_seq)
                    {
                        self.report(i, ExecKind::Rejected, RejectReason::VenueOther, (0.0, 0.0));
                    }
                }
            }
            b"j" => {
                self.stats.business_rejects += 1;
                self.remember_text(msg);
                let by_id = msg
                    .get(tag::BUSINESS_REJECT_REF_ID)
                    .and_then(parse_cl_ord_id)
                    .and_then(|(id, is_cancel)| (!is_cancel).then_some(id))
                    .and_then(|id| self.slot_by_id(id));
                let by_seq = || {
                    let s = msg.get_u64(tag::REF_SEQ_NUM).ok().flatten()?;
                    self.orders.iter().position(|o| o.live && o.out_seq == s)
                };
                if let Some(i) = by_id.or_else(by_seq) {
                    self.report(i, ExecKind::Rejected, RejectReason::VenueOther, (0.0, 0.0));
                }
            }
            _ => self.stats.ignored_app_messages += 1,
        }
    }

    fn on_exec_report(&mut self, msg: &Message) {
        self.stats.exec_reports += 1;
        let id = msg
            .get(tag::ORIG_CL_ORD_ID)
            .and_then(parse_cl_ord_id)
            .or_else(|| msg.get(tag::CL_ORD_ID).and_then(parse_cl_ord_id))
            .map(|(id, _)| id);
        let (Some(id), Some(exec_type)) = (id, msg.get_char(tag::EXEC_TYPE)) else {
            self.stats.malformed_app_messages += 1;
            return;
        };
        let Some(i) = self.slot_by_id(id) else {
            self.stats.unknown_order_reports += 1;
            return;
        };
        let ord_status = msg.get_char(tag::ORD_STATUS);
        match exec_type {
            b'0' => {
                if !self.orders[i].acked {
                    self.orders[i].acked = true;
                    self.report(i, ExecKind::Ack, RejectReason::None, (0.0, 0.0));
                }
            }
            b'F' | b'1' | b'2' => self.on_fill(i, msg, ord_status),
            b'4' | b'C' | b'3' => {
                self.report(i, ExecKind::Cancelled, RejectReason::None, (0.0, 0.0))
            }
            b'8' => {
                self.stats.venue_rejects += 1;
                self.remember_text(msg);
                self.report(i, ExecKind::Rejected, RejectReason::VenueOther, (0.0, 0.0));
            }
            b'I' => self.on_status(i, msg, ord_status),
            _ => self.stats.ignored_app_messages += 1,
        }
    }

    /// A fill report (ExecType F, or 1/2 of FIX 4.2 venues) for order slot `i`: a fill, a
    /// partial fill, or a partial fill then the cancel of the rest when the venue ended the
    /// order unfilled. A missing or non-finite LastQty/LastPx is malformed.
    fn on_fill(&mut self, i: usize, msg: &Message, ord_status: Option<u8>) {
        let (Ok(Some(last_qty)), Ok(Some(last_px))) =
            (msg.get_f64(tag::LAST_QTY), msg.get_f64(tag::LAST_PX))
        else {
            self.stats.malformed_app_messages += 1;
            return;
        };
        if !(last_qty > 0.0 && last_qty.is_finite() && last_px.is_finite()) {
            self.stats.malformed_app_messages += 1;
            return;
        }
        self.orders[i].acked = true;
        self.orders[i].cum_qty += last_qty;
        let o = self.orders[i];
        // LastLiquidityInd (851): 1 = we added liquidity (maker), else taker (an IOC
        // hedge crosses the spread). Commission (12) is the fee when given as an
        // absolute amount (CommType 13 = 3, or absent).
        let liquidity = match msg.get_char(tag::LAST_LIQUIDITY_IND) {
            Some(b'1') => Liquidity::Maker,
            _ => Liquidity::Taker,
        };
        let fee = match (msg.get_f64(tag::COMMISSION), msg.get_char(tag::COMM_TYPE)) {
            (Ok(Some(c)), None | Some(b'3')) if c.is_finite() => c,
            _ => 0.0,
        };
        let first_new = self.reports.len();
        let leaves = match msg.get_f64(tag::LEAVES_QTY) {
            Ok(Some(l)) => l,
            _ => o.qty - o.cum_qty,
        };
        let done_status = matches!(ord_status, Some(b'2' | b'4' | b'C' | b'3'));
        let fill = (last_qty, last_px);
        if leaves <= QTY_EPS && o.cum_qty >= o.qty - QTY_EPS {
            self.report(i, ExecKind::Fill, RejectReason::None, fill);
        } else if leaves <= QTY_EPS || done_status {
            // The venue ended the order with quantity unfilled (IOC remainder reported
            // on the fill itself): a partial fill, then the cancel of the rest.
            self.report(i, ExecKind::PartialFill, RejectReason::None, fill);
            self.report(i, ExecKind::Cancelled, RejectReason::None, (0.0, 0.0));
        } else {
            self.report(i, ExecKind::PartialFill, RejectReason::None, fill);
        }
        if let Some(r) = self.reports.get_mut(first_new) {
            r.liquidity = liquidity;
            r.fee = fee;
        }
    }

    /// An OrderStatus answer (ExecType I): reports the quantity filled beyond what was
    /// already reported (at the order's AvgPx and with fee 0: a status answer carries neither
    /// per-fill prices nor commissions), then the terminal state if the order is done.
    fn on_status(&mut self, i: usize, msg: &Message, ord_status: Option<u8>) {
        self.stats.status_reports += 1;
        let o = self.orders[i];
        let cum = msg
            .get_f64(tag::CUM_QTY)
            .ok()
            .flatten()
            .unwrap_or(o.cum_qty);
        let avg = msg.get_f64(tag::AVG_PX).ok().flatten().unwrap_or(0.0);
        let delta = cum - o.cum_qty;
        let filled_now = delta > QTY_EPS && avg.is_finite() && avg > 0.0;
        if filled_now {
            self.orders[i].cum_qty = cum;
        }
        let fill = if filled_now { (delta, avg) } else { (0.0, 0.0) };
        match ord_status {
            Some(b'2') if filled_now => {
                self.report(i, ExecKind::Fill, RejectReason::None, fill);
            }
            Some(b'2' | b'4' | b'C' | b'3') => {
                if filled_now {
                    self.report(i, ExecKind::PartialFill, RejectReason::None, fill);
                }
                self.report(i, ExecKind::Cancelled, RejectReason::None, (0.0, 0.0));
            }
            Some(b'8') => {
                if msg.get(tag::ORD_REJ_REASON) == Some(b"5") {
                    // Unknown order: it never reached the venue, nothing traded.
                    self.report(
                        i,
                        ExecKind::Cancelled,
                        RejectReason::GatewayRecovery,
                        (0.0, 0.0),
                    );
                } else {
                    self.stats.venue_rejects += 1;
                    self.remember_text(msg);
                    self.report(i, ExecKind::Rejected, RejectReason::VenueOther, (0.0, 0.0));
                }
            }
            _ => {
                // Still open (a GTC order): report what filled, keep waiting.
                if filled_now {
                    self.report(i, ExecKind::PartialFill, RejectReason::None, fill);
                }
                self.orders[i].recovering = false;
            }
        }
    }

    /// Sends an OrderStatusRequest for every recovered order not yet asked in this session.
    fn request_statuses(&mut self, session: &mut Session, now_ns: u64) {
        for i in 0..self.orders.len() {
            let o = self.orders[i];
            if !(o.live && o.recovering && !o.status_requested) {
                continue;
            }
            let Some(&(sym, sym_len)) = self.symbols.get(o.instrument_id as usize) else {
                continue;
            };
            let mut t = [0u8; 20];
            let id = super::codec::fmt_u64(o.cl_ord_id, &mut t);
            let r = session.send_app(b"H", now_ns, |w: &mut MsgWriter| {
                w.str(tag::CL_ORD_ID, id)
                    .str(tag::SYMBOL, &sym[..sym_len as usize])
                    .char(tag::SIDE, if o.side == Side::Buy { b'1' } else { b'2' });
            });
            if r.is_ok() {
                self.orders[i].status_requested = true;
                self.stats.status_requests_sent += 1;
            }
        }
    }

    fn on_gap_filled(&mut self, begin: u64, end: u64) {
        for i in 0..self.orders.len() {
            let o = self.orders[i];
            if o.live && !o.acked && o.out_seq >= begin && o.out_seq <= end {
                self.stats.gap_filled_orders += 1;
                self.report(
                    i,
                    ExecKind::Rejected,
                    RejectReason::NotConnected,
                    (0.0, 0.0),
                );
            }
        }
    }

    fn on_event(&mut self, session: &mut Session, ev: SessionEvent) {
        match ev {
            SessionEvent::App(m) => self.on_app(m),
            SessionEvent::GapFilled { begin, end } => {
                self.on_gap_filled(begin, end);
                // An OrderStatusRequest sent before the counterparty's ResendRequest may have
                // been gap-filled over (we never resend application messages): ask again.
                let mut again = false;
                for o in self.orders.iter_mut().filter(|o| o.live && o.recovering) {
                    o.status_requested = false;
                    again = true;
                }
                if again {
                    self.request_statuses(session, shm_layout::clock::now_ns());
                }
            }
            SessionEvent::LoggedOn => self.request_statuses(session, shm_layout::clock::now_ns()),
            SessionEvent::Disconnected => {
                // Whatever happened to orders in flight while we were away, ask at the next
                // Logon (answers are cumulative, so resent reports cannot double-count).
                for o in self.orders.iter_mut().filter(|o| o.live) {
                    o.recovering = true;
                    o.status_requested = false;
                }
            }
        }
    }
}

/// Why a [`FixVenue`] could not be created.
#[derive(Debug, thiserror::Error)]
pub enum FixVenueError {
    /// A configuration value is invalid.
    #[error("invalid FIX configuration: {0}")]
    Config(String),
    /// The sequence-number file cannot be used.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Parses our ClOrdID forms: `<id>` and `<id>-C` (a cancel). Returns `(id, is_cancel)`.
fn parse_cl_ord_id(v: &[u8]) -> Option<(u64, bool)> {
    match v.strip_suffix(b"-C") {
        Some(base) => super::codec::parse_u64(base).map(|id| (id, true)),
        None => super::codec::parse_u64(v).map(|id| (id, false)),
    }
}

impl Venue for FixVenue {
    fn name(&self) -> &'static str {
        "fix"
    }

    fn submit(&mut self, order: &HedgeOrder, now_ns: u64) {
        let (Ok(side), Ok(ord_type), Ok(tif)) = (order.side(), order.order_type(), order.tif())
        else {
            return self.app.local_reject(order, RejectReason::InvalidOrder);
        };
        let qty_ok = order.qty.is_finite() && order.qty > 0.0 && order.qty < 1e10;
        let px_ok = ord_type == OrderType::Market
            || (order.limit_px.is_finite() && order.limit_px > 0.0 && order.limit_px < 1e10);
        if !qty_ok || !px_ok {
            return self.app.local_reject(order, RejectReason::InvalidOrder);
        }
        let Some(&(sym, sym_len)) = self
            .app
            .symbols
            .get(order.instrument_id as usize)
            .filter(|s| s.1 > 0)
        else {
            return self
                .app
                .local_reject(order, RejectReason::UnknownInstrument);
        };
        if self.app.slot_by_id(order.client_order_id).is_some() {
            return self.app.local_reject(order, RejectReason::DuplicateOrder);
        }
        let Some(slot) = self.app.orders.iter().position(|o| !o.live) else {
            return self.app.local_reject(order, RejectReason::RateLimit);
        };
        let mut id = [0u8; 20];
        let id = super::codec::fmt_u64(order.client_order_id, &mut id);
        let r = self.session.send_app(b"D", now_ns, |w: &mut MsgWriter| {
            w.str(tag::CL_ORD_ID, id)
                .str(tag::SYMBOL, &sym[..sym_len as usize])
                .char(tag::SIDE, if side == Side::Buy { b'1' } else { b'2' })
                .timestamp(tag::TRANSACT_TIME, shm_layout::clock::wall_ns())
                .decimal(tag::ORDER_QTY, order.qty);
            match ord_type {
                OrderType::Limit => {
                    w.char(tag::ORD_TYPE, b'2')
                        .decimal(tag::PRICE, order.limit_px);
                }
                OrderType::Market => {
                    w.char(tag::ORD_TYPE, b'1');
                }
            }
            w.char(
                tag::TIME_IN_FORCE,
                match tif {
                    TimeInForce::Ioc => b'3',
                    TimeInForce::Gtc => b'1',
                    TimeInForce::Fok => b'4',
                },
            );
        });
        match r {
            Ok(seq) => {
                self.app.stats.orders_sent += 1;
                self.app.orders[slot] = OrderSlot {
                    out_seq: seq,
                    ..OrderSlot::for_order(order, side)
                };
                // Out now, not at the next poll: the order is latency-critical.
                let app = &mut self.app;
                self.session.flush(now_ns, &mut |s, ev| app.on_event(s, ev));
            }
            Err(SendError::NotConnected) => {
                self.app.local_reject(order, RejectReason::NotConnected)
            }
            Err(SendError::Encode(_)) => self.app.local_reject(order, RejectReason::InvalidOrder),
            Err(SendError::Backpressure) => self.app.local_reject(order, RejectReason::RateLimit),
            Err(SendError::Store) => self.app.local_reject(order, RejectReason::NotConnected),
        }
    }

    fn cancel(&mut self, client_order_id: u64, now_ns: u64) {
        let Some(i) = self.app.slot_by_id(client_order_id) else {
            return;
        };
        let o = self.app.orders[i];
        let Some(&(sym, sym_len)) = self.app.symbols.get(o.instrument_id as usize) else {
            return;
        };
        let mut t1 = [0u8; 20];
        let orig = super::codec::fmt_u64(o.cl_ord_id, &mut t1);
        let mut t2 = [0u8; 24];
        t2[..orig.len()].copy_from_slice(orig);
        t2[orig.len()..orig.len() + 2].copy_from_slice(b"-C");
        let cancel_id = &t2[..orig.len() + 2];
        let r = self.session.send_app(b"F", now_ns, |w: &mut MsgWriter| {
            w.str(tag::ORIG_CL_ORD_ID, orig)
                .str(tag::CL_ORD_ID, cancel_id)
                .str(tag::SYMBOL, &sym[..sym_len as usize])
                .char(tag::SIDE, if o.side == Side::Buy { b'1' } else { b'2' })
                .timestamp(tag::TRANSACT_TIME, shm_layout::clock::wall_ns())
                .decimal(tag::ORDER_QTY, o.qty);
        });
        if r.is_ok() {
            self.app.stats.cancels_sent += 1;
            let app = &mut self.app;
            self.session.flush(now_ns, &mut |s, ev| app.on_event(s, ev));
        }
    }

    fn poll(&mut self, now_ns: u64, sink: &mut dyn FnMut(VenueReport)) {
        self.drive_session(now_ns);
        while let Some(r) = self.app.reports.pop_front() {
            sink(r);
        }
    }

    fn is_connected(&self) -> bool {
        self.session.is_active()
    }

    /// Takes over an order of a killed run: asks the venue for its state with an
    /// OrderStatusRequest (35=H) at the next Logon and reports only quantity beyond
    /// `filled_qty`. An order the venue does not know (OrdRejReason 5) ends `Cancelled` with
    /// `GatewayRecovery`; reports the venue resends in the meantime are applied normally.
    fn recover_order(&mut self, order: &HedgeOrder, filled_qty: f64, _now_ns: u64) -> bool {
        let Ok(side) = order.side() else {
            return false;
        };
        let known_symbol = self
            .app
            .symbols
            .get(order.instrument_id as usize)
            .is_some_and(|s| s.1 > 0);
        if !known_symbol || self.app.slot_by_id(order.client_order_id).is_some() {
            return false;
        }
        let Some(slot) = self.app.orders.iter().position(|o| !o.live) else {
            return false;
        };
        self.app.orders[slot] = OrderSlot {
            cum_qty: filled_qty.max(0.0),
            acked: true,
            recovering: true,
            ..OrderSlot::for_order(order, side)
        };
        self.app.stats.recovered_orders += 1;
        if self.session.is_active() {
            self.app
                .request_statuses(&mut self.session, shm_layout::clock::now_ns());
        }
        true
    }

    fn shutdown(&mut self, _now_ns: u64) {
        let app = &mut self.app;
        self.session
            .logout("gateway shutdown", &mut |s, ev| app.on_event(s, ev));
    }

    /// Every counter (session, decoder, application) of [`FixCounter`], by index.
    fn for_each_counter(&self, f: &mut dyn FnMut(&'static CounterDef, usize, u64)) {
        use FixCounter as X;
        let s = self.session.stats();
        let a = &self.app.stats;
        for (id, v) in [
            (X::MsgsIn, s.msgs_in),
            (X::MsgsOut, s.msgs_out),
            (X::DecodeRejected, s.decode.total_rejected()),
            (X::ConnectAttempts, s.connect_attempts),
            (X::ConnectFailures, s.connect_failures),
            (X::Logons, s.logons),
            (X::Disconnects, s.disconnects),
            (X::ResendRequestsSent, s.resend_requests_sent),
            (X::ResendRequestsReceived, s.resend_requests_received),
            (X::GapFillsSent, s.gap_fills_sent),
            (X::SequenceResetsReceived, s.sequence_resets_received),
            (X::DuplicatesIgnored, s.duplicates_ignored),
            (X::OutOfOrderDropped, s.out_of_order_dropped),
            (X::SeqTooLow, s.seq_too_low),
            (X::WrongCompId, s.wrong_comp_id),
            (X::TestRequestsSent, s.test_requests_sent),
            (X::LogoutsReceived, s.logouts_received),
            (X::SendOverflows, s.send_overflows),
            (X::StoreErrors, s.store_errors),
            (X::OrdersSent, a.orders_sent),
            (X::CancelsSent, a.cancels_sent),
            (X::ExecReports, a.exec_reports),
            (X::VenueRejects, a.venue_rejects),
            (X::BusinessRejects, a.business_rejects),
            (X::SessionRejects, a.session_rejects),
            (X::CancelRejects, a.cancel_rejects),
            (X::LocalRejects, a.local_rejects),
            (X::GapFilledOrders, a.gap_filled_orders),
            (X::UnknownOrderReports, a.unknown_order_reports),
            (X::MalformedAppMessages, a.malformed_app_messages),
            (X::RecoveredOrders, a.recovered_orders),
            (X::StatusRequestsSent, a.status_requests_sent),
        ] {
            f(id.def(), 0, v);
        }
        for (i, v) in s.decode.rejected.iter().enumerate() {
            f(X::DecodeErrors.def(), i, *v);
        }
    }
}
