//! The gateway's loop body, independent of shared memory: orders in, venue, execs out.
//!
//! [`Gateway::step`] is one iteration: take orders (journal, then commit the ring slot), submit
//! them, poll the venue and the client flow into a bounded outbound queue, and publish that
//! queue into the execs ring (assign exec ids, journal, then push). The process adapts the
//! shared-memory rings to [`OrderSource`] and [`ExecSink`]; tests use plain queues.
//!
//! Back-pressure: when the execs ring is full, reports wait in the outbound queue (never
//! dropped); when that queue passes its high-water mark the gateway stops taking orders (the
//! hedger sees its orders ring fill), and when it is full it stops polling the venue and the
//! flow (reports wait inside the venue).

use crate::flow::OptionFlow;
use crate::journal::{Base, Journal, JournalError, OpenOrder, Replay};
use crate::sim::MarketView;
use crate::venue::{Venue, VenueReport};
use hdrhistogram::Histogram;
use shm_layout::{ExecEvent, ExecKind, HedgeOrder, OrderAction, RejectReason};
use std::collections::{HashMap, VecDeque};

/// Most orders taken from the ring per iteration.
pub const ORDER_BATCH: usize = 64;
/// Most exec events published per iteration (also the most that can be journaled but not
/// pushed when the gateway is killed).
pub const EXEC_BATCH: usize = 256;

/// Where orders come from (the orders ring's consumer end).
pub trait OrderSource {
    /// Next unread order without committing it.
    fn peek(&mut self) -> Option<HedgeOrder>;
    /// Commits the `n` oldest peeked orders.
    fn commit(&mut self, n: usize);
    /// Forgets uncommitted peeks.
    fn rewind(&mut self);
    /// Committed position (orders consumed over the ring's life).
    fn position(&self) -> u64;
}

/// Where exec events go (the execs ring's producer end).
pub trait ExecSink {
    /// Free slots.
    fn free(&self) -> usize;
    /// Pushes in order as many as fit; returns how many.
    fn push_batch(&mut self, msgs: &[ExecEvent]) -> usize;
    /// Messages ever pushed (persistent across restarts).
    fn position(&self) -> u64;
    /// Identity of this ring instance (e.g. its file's inode), so that a ring replaced while
    /// the gateway was down is told apart from the one the journal refers to; 0 = unknown.
    fn ring_id(&self) -> u64 {
        0
    }
}

/// Everything the gateway counts (copied into its shared-memory counters by the process).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GatewayStats {
    /// New orders taken from the ring.
    pub orders_received: u64,
    /// Cancel requests taken from the ring.
    pub cancel_requests: u64,
    /// Acks sent.
    pub acks: u64,
    /// Complete fills sent.
    pub fills: u64,
    /// Partial fills sent.
    pub partial_fills: u64,
    /// Cancelled reports sent (IOC remainders, cancels, recovery).
    pub cancels: u64,
    /// Rejects sent, indexed by `RejectReason as u8`.
    pub rejects: [u64; 16],
    /// Client option trades sent.
    pub option_trades: u64,
    /// Exec events pushed into the ring.
    pub execs_published: u64,
    /// Times the execs ring was found full with reports waiting (episodes, not iterations).
    pub execs_ring_full: u64,
    /// Largest outbound backlog seen.
    pub outbound_high_water: u64,
    /// Orders of a killed run ended by recovery (`GatewayRecovery`).
    pub recovered_orders: u64,
    /// Orders of a killed run handed to the venue to recover.
    pub venue_recovered_orders: u64,
    /// Journaled-but-unpushed execs pushed again at start-up.
    pub republished_execs: u64,
    /// Orders journaled but not committed by a killed run, skipped at start-up.
    pub replayed_orders_skipped: u64,
    /// Venue reports for orders the gateway does not know.
    pub unknown_order_reports: u64,
}

/// Settings of the loop body.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GatewayLimits {
    /// Capacity of the outbound queue (reports waiting for ring space).
    pub outbound_capacity: usize,
    /// Compact the journal when it holds more records than this and nothing is waiting.
    pub compact_after_records: u64,
    /// With a new journal (first start, or its state directory was lost), exec ids start at
    /// `(id_epoch << 32) + execs ring position + 1`. The process passes the wall-clock second,
    /// so ids stay above any a previous gateway issued (at most 2^32 per run) even when all
    /// its state was wiped: a hedger that kept its last exec id still accepts them. 0 = start
    /// at 1 (tests).
    pub id_epoch: u64,
}

impl Default for GatewayLimits {
    fn default() -> Self {
        GatewayLimits {
            outbound_capacity: 65_536,
            compact_after_records: 200_000,
            id_epoch: 0,
        }
    }
}

/// Why the gateway loop stopped.
pub type GatewayError = JournalError;

/// What [`Gateway::recover`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RecoverySummary {
    /// Open orders ended with `GatewayRecovery`.
    pub orders_cancelled: u64,
    /// Open orders handed to the venue.
    pub orders_to_venue: u64,
    /// Execs pushed again.
    pub execs_republished: u64,
    /// Orders skipped on the orders ring (journaled, not committed).
    pub orders_skipped: u64,
    /// Whether the execs ring did not match the journal (fresh ring): exec ids continue
    /// above the journal's, unpushed journaled execs are dropped.
    pub execs_ring_reset: bool,
    /// Journal bytes cut off (torn last write).
    pub journal_truncated_bytes: u64,
}

/// The gateway: venue, flow, journal and outbound queue.
pub struct Gateway<V: Venue> {
    venue: V,
    flow: Option<OptionFlow>,
    journal: Journal,
    outbound: VecDeque<ExecEvent>,
    open: HashMap<u64, OpenOrder>,
    exec_id_offset: u64,
    last_exec_id: u64,
    execs_ring_id: u64,
    orders_buf: Vec<HedgeOrder>,
    batch: Vec<ExecEvent>,
    limits: GatewayLimits,
    ring_full: bool,
    stats: GatewayStats,
    /// Hedger publish (`HedgeOrder::publish_ts_ns`) to gateway read, ns; allocation-free
    /// recording into pre-sized buckets. Read and reset by the process once per interval.
    transit: Histogram<u64>,
    /// Feed receive (`HedgeOrder::feed_recv_ts_ns`) to gateway read, ns: the whole
    /// tick-to-order path, over the whole run (never reset; the end-to-end benchmark reads it).
    tick_to_order: Histogram<u64>,
}

/// Largest order transit time recorded (larger values are clamped), ns.
const TRANSIT_MAX_NS: u64 = 10_000_000_000;

/// The exec report of a venue report, before the gateway gives it an exec id and a time
/// (also how `hedgectl replay` turns the simulator's reports into the hedger's execs).
pub fn to_exec(r: &VenueReport) -> ExecEvent {
    ExecEvent {
        exec_id: 0,
        client_order_id: r.client_order_id,
        instrument_id: r.instrument_id,
        kind: r.kind as u8,
        side: r.side as u8,
        liquidity: r.liquidity as u8,
        reject_reason: r.reject_reason as u8,
        qty: r.qty,
        price: r.price,
        fee: r.fee,
        leaves_qty: r.leaves_qty,
        ts_ns: 0,
    }
}

/// Queues one report and updates the open-order table and counters.
fn queue_report(
    open: &mut HashMap<u64, OpenOrder>,
    outbound: &mut VecDeque<ExecEvent>,
    stats: &mut GatewayStats,
    r: &VenueReport,
) {
    match r.kind {
        ExecKind::Ack => stats.acks += 1,
        ExecKind::Fill => stats.fills += 1,
        ExecKind::PartialFill => stats.partial_fills += 1,
        ExecKind::Cancelled => stats.cancels += 1,
        ExecKind::Rejected => stats.rejects[(r.reject_reason as usize) & 15] += 1,
        ExecKind::OptionTrade => stats.option_trades += 1,
    }
    // A duplicate-id reject belongs to the second order, not to the open one.
    if r.reject_reason != RejectReason::DuplicateOrder {
        match open.get_mut(&r.client_order_id) {
            Some(o) => {
                if matches!(r.kind, ExecKind::Fill | ExecKind::PartialFill) {
                    o.filled_qty += r.qty;
                }
                if r.kind.is_terminal() {
                    open.remove(&r.client_order_id);
                }
            }
            None => stats.unknown_order_reports += 1,
        }
    }
    outbound.push_back(to_exec(r));
    stats.outbound_high_water = stats.outbound_high_water.max(outbound.len() as u64);
}

impl<V: Venue> Gateway<V> {
    /// Builds the gateway from a replayed journal and reconciles it with the rings: pushes
    /// again the execs journaled but not pushed, skips the orders journaled but not committed,
    /// and ends (or hands to the venue) the orders a killed run left open.
    ///
    /// # Errors
    /// Journal I/O errors.
    #[allow(clippy::too_many_arguments)]
    pub fn recover(
        mut venue: V,
        flow: Option<OptionFlow>,
        mut journal: Journal,
        replay: Replay,
        limits: GatewayLimits,
        orders: &mut dyn OrderSource,
        execs: &mut dyn ExecSink,
        now_ns: u64,
    ) -> Result<(Self, RecoverySummary), GatewayError> {
        let mut summary = RecoverySummary {
            journal_truncated_bytes: replay.truncated_bytes,
            ..RecoverySummary::default()
        };
        let cap = limits.outbound_capacity.max(EXEC_BATCH * 2);
        let mut outbound = VecDeque::with_capacity(cap * 2);
        let ids = recover_exec_ids(&replay, &limits, execs, &mut outbound, &mut summary);
        journal.append_base(&Base {
            exec_id_offset: ids.exec_id_offset,
            last_exec_id: ids.last_exec_id,
            orders_next_pos: replay.orders_next_pos.max(orders.position()),
            execs_ring_id: ids.ring_id,
        });
        journal.flush()?;
        summary.orders_skipped = skip_journaled_orders(&replay, orders);
        let mut stats = GatewayStats {
            republished_execs: summary.execs_republished,
            replayed_orders_skipped: summary.orders_skipped,
            ..GatewayStats::default()
        };
        let open = reopen_orders(
            &mut venue,
            &replay,
            now_ns,
            &mut outbound,
            &mut stats,
            &mut summary,
        );
        stats.recovered_orders = summary.orders_cancelled;
        stats.venue_recovered_orders = summary.orders_to_venue;
        let (exec_id_offset, last_exec_id, ring_id) =
            (ids.exec_id_offset, ids.last_exec_id, ids.ring_id);
        Ok((
            Gateway {
                venue,
                flow,
                journal,
                outbound,
                open,
                exec_id_offset,
                last_exec_id,
                execs_ring_id: ring_id,
                orders_buf: Vec::with_capacity(ORDER_BATCH),
                batch: Vec::with_capacity(EXEC_BATCH),
                limits: GatewayLimits {
                    outbound_capacity: cap,
                    ..limits
                },
                ring_full: false,
                stats,
                transit: Histogram::new_with_bounds(1, TRANSIT_MAX_NS, 3)
                    .expect("static histogram bounds are valid"),
                tick_to_order: Histogram::new_with_bounds(1, TRANSIT_MAX_NS, 3)
                    .expect("static histogram bounds are valid"),
            },
            summary,
        ))
    }

    /// Counters.
    pub fn stats(&self) -> &GatewayStats {
        &self.stats
    }

    /// Order transit times (hedger publish to gateway read) recorded since the last
    /// [`Gateway::reset_transit`], in ns.
    pub fn transit(&self) -> &Histogram<u64> {
        &self.transit
    }

    /// Tick-to-order times (feed receive to gateway read) of every order since the start, ns.
    pub fn tick_to_order(&self) -> &Histogram<u64> {
        &self.tick_to_order
    }

    /// Clears the transit histogram (start of a new reporting interval).
    pub fn reset_transit(&mut self) {
        self.transit.reset();
    }

    /// Orders accepted and not yet ended.
    pub fn open_orders(&self) -> usize {
        self.open.len()
    }

    /// Reports waiting for space in the execs ring.
    pub fn backlog(&self) -> usize {
        self.outbound.len()
    }

    /// Highest exec id assigned.
    pub fn last_exec_id(&self) -> u64 {
        self.last_exec_id
    }

    /// The venue.
    pub fn venue(&self) -> &V {
        &self.venue
    }

    /// The venue, mutably.
    pub fn venue_mut(&mut self) -> &mut V {
        &mut self.venue
    }

    /// The client flow, if any.
    pub fn flow(&self) -> Option<&OptionFlow> {
        self.flow.as_ref()
    }

    /// The journal.
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// One loop iteration. `take_orders = false` stops consuming orders and generating client
    /// flow (used while shutting down: orders in flight still finish).
    /// Returns whether anything was done (for the idle strategy).
    ///
    /// # Errors
    /// Journal I/O errors: the gateway must stop, it can no longer promise exactly-once.
    pub fn step(
        &mut self,
        now_ns: u64,
        take_orders: bool,
        orders: &mut dyn OrderSource,
        execs: &mut dyn ExecSink,
        market: &dyn MarketView,
    ) -> Result<bool, GatewayError> {
        let mut work = false;
        let cap = self.limits.outbound_capacity;
        // 1. Orders: journal, then commit, then act.
        if take_orders && self.outbound.len() <= cap / 2 {
            self.orders_buf.clear();
            let base = orders.position();
            while self.orders_buf.len() < ORDER_BATCH {
                let Some(o) = orders.peek() else { break };
                let pos = base + self.orders_buf.len() as u64;
                // Every message, so that a restart can recognise each one it already took.
                self.journal.append_order(pos, &o);
                self.orders_buf.push(o);
            }
            if !self.orders_buf.is_empty() {
                work = true;
                self.journal.flush()?;
                orders.commit(self.orders_buf.len());
                for i in 0..self.orders_buf.len() {
                    let o = self.orders_buf[i];
                    if o.publish_ts_ns != 0 {
                        let transit = now_ns
                            .saturating_sub(o.publish_ts_ns)
                            .clamp(1, TRANSIT_MAX_NS);
                        let _ = self.transit.record(transit);
                    }
                    if o.feed_recv_ts_ns != 0 {
                        let t2o = now_ns
                            .saturating_sub(o.feed_recv_ts_ns)
                            .clamp(1, TRANSIT_MAX_NS);
                        let _ = self.tick_to_order.record(t2o);
                    }
                    self.handle_order(&o, now_ns);
                }
            }
        }
        // 2. Venue reports, unless the outbound queue is full (they wait in the venue).
        if self.outbound.len() + EXEC_BATCH < cap {
            let before = self.outbound.len();
            let (open, outbound, stats) = (&mut self.open, &mut self.outbound, &mut self.stats);
            self.venue.poll(now_ns, &mut |r| {
                queue_report(open, outbound, stats, &r);
            });
            // 3. Client option flow (none while shutting down).
            if let Some(flow) = self.flow.as_mut().filter(|_| take_orders) {
                let room = cap.saturating_sub(outbound.len() + EXEC_BATCH);
                flow.poll(now_ns, market, room.min(EXEC_BATCH), &mut |e| {
                    stats.option_trades += 1;
                    outbound.push_back(e);
                });
            }
            work |= self.outbound.len() != before;
        }
        // 4. Publish.
        work |= self.publish(now_ns, execs)?;
        if self.outbound.is_empty() && self.journal.records() > self.limits.compact_after_records {
            let base = Base {
                exec_id_offset: self.exec_id_offset,
                last_exec_id: self.last_exec_id,
                orders_next_pos: orders.position(),
                execs_ring_id: self.execs_ring_id,
            };
            self.journal.compact(&base, self.open.values())?;
        }
        Ok(work)
    }

    fn handle_order(&mut self, o: &HedgeOrder, now_ns: u64) {
        match o.action() {
            Ok(OrderAction::Cancel) => {
                self.stats.cancel_requests += 1;
                if self.open.contains_key(&o.client_order_id) {
                    self.venue.cancel(o.client_order_id, now_ns);
                }
            }
            action => {
                self.stats.orders_received += 1;
                let reject = |reason| VenueReport::reject(o, reason);
                if self.open.contains_key(&o.client_order_id) {
                    let r = reject(RejectReason::DuplicateOrder);
                    queue_report(&mut self.open, &mut self.outbound, &mut self.stats, &r);
                    return;
                }
                self.open.insert(
                    o.client_order_id,
                    OpenOrder {
                        order: *o,
                        filled_qty: 0.0,
                    },
                );
                let r = if action.is_err() {
                    reject(RejectReason::InvalidOrder)
                } else if !self.venue.is_connected() {
                    reject(RejectReason::NotConnected)
                } else {
                    self.venue.submit(o, now_ns);
                    return;
                };
                queue_report(&mut self.open, &mut self.outbound, &mut self.stats, &r);
            }
        }
    }

    /// Assigns exec ids, journals and pushes as much of the outbound queue as fits.
    fn publish(&mut self, now_ns: u64, execs: &mut dyn ExecSink) -> Result<bool, GatewayError> {
        if self.outbound.is_empty() {
            return Ok(false);
        }
        let k = self.outbound.len().min(execs.free()).min(EXEC_BATCH);
        if k == 0 {
            if !self.ring_full {
                self.ring_full = true;
                self.stats.execs_ring_full += 1;
            }
            return Ok(false);
        }
        self.ring_full = false;
        let base = self.exec_id_offset + execs.position();
        self.batch.clear();
        for (i, e) in self.outbound.iter().take(k).enumerate() {
            let e = ExecEvent {
                exec_id: base + i as u64 + 1,
                ts_ns: now_ns,
                ..*e
            };
            self.journal.append_exec(&e);
            self.batch.push(e);
        }
        self.journal.flush()?;
        let pushed = execs.push_batch(&self.batch);
        self.outbound.drain(..pushed);
        self.last_exec_id = base + pushed as u64;
        self.stats.execs_published += pushed as u64;
        Ok(pushed > 0)
    }

    /// Stops the venue (FIX Logout); orders still open are recovered by the next start.
    pub fn shutdown(&mut self, now_ns: u64) {
        self.venue.shutdown(now_ns);
    }
}

/// An in-memory [`OrderSource`] for tests and replay.
#[derive(Debug, Default)]
pub struct VecOrders {
    /// Every order ever pushed.
    pub all: Vec<HedgeOrder>,
    /// Committed position.
    pub head: u64,
    read: u64,
}

impl OrderSource for VecOrders {
    fn peek(&mut self) -> Option<HedgeOrder> {
        let o = self.all.get(self.read as usize).copied()?;
        self.read += 1;
        Some(o)
    }
    fn commit(&mut self, n: usize) {
        self.head = (self.head + n as u64).min(self.read);
    }
    fn rewind(&mut self) {
        self.read = self.head;
    }
    fn position(&self) -> u64 {
        self.head
    }
}

/// An in-memory [`ExecSink`] for tests and replay.
#[derive(Debug)]
pub struct VecExecs {
    /// Everything pushed.
    pub all: Vec<ExecEvent>,
    /// Capacity left (decrement to simulate a full ring).
    pub free: usize,
    /// Ring identity reported by [`ExecSink::ring_id`].
    pub ring_id: u64,
}

impl ExecSink for VecExecs {
    fn free(&self) -> usize {
        self.free
    }
    fn push_batch(&mut self, msgs: &[ExecEvent]) -> usize {
        let n = msgs.len().min(self.free);
        self.all.extend_from_slice(&msgs[..n]);
        self.free -= n;
        n
    }
    fn position(&self) -> u64 {
        self.all.len() as u64
    }
    fn ring_id(&self) -> u64 {
        self.ring_id
    }
}

impl Default for VecExecs {
    fn default() -> Self {
        VecExecs {
            all: Vec::new(),
            free: usize::MAX,
            ring_id: 1,
        }
    }
}

/// The exec ids a recovered gateway continues from.
struct RecoveredIds {
    exec_id_offset: u64,
    last_exec_id: u64,
    /// The execs ring's identity (its file's inode; 0: unknown).
    ring_id: u64,
}

/// Reconciles the journal's exec ids with the execs ring: execs journaled but not pushed go
/// out again with the same ids when the ring is the same one and they follow on; otherwise
/// (a replaced ring) ids continue above everything journaled and nothing old is pushed.
fn recover_exec_ids(
    replay: &Replay,
    limits: &GatewayLimits,
    execs: &mut dyn ExecSink,
    outbound: &mut VecDeque<ExecEvent>,
    summary: &mut RecoverySummary,
) -> RecoveredIds {
    let mut exec_id_offset = if replay.records == 0 {
        limits.id_epoch << 32
    } else {
        replay.exec_id_offset
    };
    let ring_id = execs.ring_id();
    let same_ring = replay.execs_ring_id == 0 || ring_id == 0 || replay.execs_ring_id == ring_id;
    let last_pub = exec_id_offset + execs.position();
    let mut last_exec_id = replay.last_exec_id.max(last_pub);
    if replay.last_exec_id > last_pub {
        let unpushed: Vec<&ExecEvent> = replay
            .execs
            .iter()
            .filter(|e| e.exec_id > last_pub)
            .collect();
        let contiguous = unpushed.first().map(|e| e.exec_id) == Some(last_pub + 1)
            && unpushed.len() <= EXEC_BATCH
            && unpushed.len() as u64 == replay.last_exec_id - last_pub;
        if same_ring && contiguous {
            // Same ids again: id = offset + ring position + 1 and the position has not moved.
            for e in unpushed {
                outbound.push_back(ExecEvent { exec_id: 0, ..*e });
            }
            summary.execs_republished = outbound.len() as u64;
            last_exec_id = last_pub;
        } else {
            // The execs ring is not the one the journal wrote to (replaced): keep ids
            // increasing above everything journaled; push nothing old into the new ring.
            exec_id_offset = replay.last_exec_id - execs.position();
            last_exec_id = replay.last_exec_id;
            summary.execs_ring_reset = true;
        }
    } else if !same_ring && execs.position() == 0 && replay.last_exec_id > 0 {
        exec_id_offset = replay.last_exec_id;
        summary.execs_ring_reset = true;
    }
    RecoveredIds {
        exec_id_offset,
        last_exec_id,
        ring_id,
    }
}

/// Skips the orders journaled but not committed when the previous run died (they are
/// already handled); returns how many.
fn skip_journaled_orders(replay: &Replay, orders: &mut dyn OrderSource) -> u64 {
    let start = orders.position();
    let mut skipped = 0usize;
    for pos in start..replay.orders_next_pos {
        match orders.peek() {
            Some(o) if replay.orders_by_pos.get(&pos) == Some(&o) => skipped += 1,
            _ => break,
        }
    }
    orders.commit(skipped);
    orders.rewind();
    skipped as u64
}

/// The orders a killed run left open, in client order id order: handed back to the venue
/// when it can take them over, else cancelled (`GatewayRecovery`) with a queued report.
fn reopen_orders<V: Venue>(
    venue: &mut V,
    replay: &Replay,
    now_ns: u64,
    outbound: &mut VecDeque<ExecEvent>,
    stats: &mut GatewayStats,
    summary: &mut RecoverySummary,
) -> HashMap<u64, OpenOrder> {
    let mut open: HashMap<u64, OpenOrder> = HashMap::with_capacity(4096);
    let mut left: Vec<OpenOrder> = replay.open.values().copied().collect();
    left.sort_by_key(|o| o.order.client_order_id);
    for o in left {
        open.insert(o.order.client_order_id, o);
        if venue.recover_order(&o.order, o.filled_qty, now_ns) {
            summary.orders_to_venue += 1;
        } else {
            summary.orders_cancelled += 1;
            let side = o.order.side().unwrap_or(shm_layout::Side::Buy);
            let r = VenueReport::status(
                &o.order,
                side,
                ExecKind::Cancelled,
                RejectReason::GatewayRecovery,
            );
            queue_report(&mut open, outbound, stats, &r);
        }
    }
    open
}
