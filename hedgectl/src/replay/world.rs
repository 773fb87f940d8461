//! The replay's world: the live hedger's `HedgerCore` between a recorded market and the order
//! gateway's simulated venue, on a discrete-event clock.
//!
//! Nothing here decides: the core decides (policy, limits, rounding, in-flight accounting,
//! reconcile, kill switch), exactly as in the live process; this module only moves messages
//! between the core's ring traits (`MarketSource`, `ExecSource`, `OrderSink`,
//! `ControlSource`, the in-process implementations of `engine::hedger::io`) and the venue,
//! and moves the clock. The clock jumps to the earliest of:
//! - the next market event (the source's clock),
//! - the next venue entry (an order reaching the matching engine, a report coming back: fills,
//!   the IOC remainder's cancel, rejects, each after the configured latency),
//! - the next client option trade (the gateway's `OptionFlow`, or a flow file),
//! - the next timer that can act: the live loop runs `on_timer` every
//!   [`TIMER_INTERVAL_NS`]; the replay runs the same timers on the same grid but skips the
//!   ones `HedgerCore::timer_due_ns` says cannot act.
//!
//! Execution reports get exec ids and timestamps here, as the gateway gives them.

use std::collections::VecDeque;

use engine::hedger::core::{FixedClock, HedgerCore};
use engine::hedger::io::{Consumer, MarketSource, MdPoll, MemControl, MemExecs, MemOrders};
use engine::hedger::risk::BookRiskAdapter;
use engine::policy::HedgeReason;
use feed_handler::source::Depth;
use order_gateway::flow::OptionFlow;
use order_gateway::sim::SimVenue;
use order_gateway::venue::Venue;
use shm_layout::{ExecEvent, HedgeOrder, LastValue, MarketEvent, MarketEventKind, OrderAction};

/// The live hedger's timer cadence (`Housekeeping` runs `on_timer` every millisecond).
pub const TIMER_INTERVAL_NS: u64 = 1_000_000;

/// Most client trades taken from the flow simulator per step (as the gateway bounds it).
const FLOW_BATCH: usize = 256;

/// The market as the core reads it: events in publish order and the last-value table (which
/// the simulated venue matches against, as the gateway reads the feed's table live).
#[derive(Debug, Default)]
pub struct ReplayMarket {
    queue: VecDeque<MarketEvent>,
    /// Last values by instrument id.
    pub lvt: Vec<Option<LastValue>>,
    seq: u64,
}

impl MarketSource for ReplayMarket {
    #[inline]
    fn poll(&mut self) -> MdPoll {
        self.queue.pop_front().map_or(MdPoll::Empty, MdPoll::Event)
    }
    fn last_value(&self, id: u32) -> Option<LastValue> {
        self.lvt.get(id as usize).copied().flatten()
    }
}

impl ReplayMarket {
    /// A market of `n` instruments.
    pub fn new(n: usize) -> Self {
        ReplayMarket {
            queue: VecDeque::with_capacity(1024),
            lvt: vec![None; n],
            seq: 0,
        }
    }

    /// The last value of an instrument.
    pub fn lv(&self, id: u32) -> Option<LastValue> {
        self.lvt.get(id as usize).copied().flatten()
    }

    /// Writes the event into the table (and the depth behind a quote), as the feed handler
    /// does before publishing, and queues it. Returns the stamped event.
    fn publish(&mut self, mut e: MarketEvent, depth: Option<&Depth>, now_ns: u64) -> MarketEvent {
        self.seq += 1;
        e.seq = self.seq;
        e.recv_ts_ns = now_ns;
        let id = e.instrument_id as usize;
        if let Some(slot) = self.lvt.get_mut(id) {
            let lv = slot.get_or_insert_with(|| {
                let mut l: LastValue = bytemuck::Zeroable::zeroed();
                l.instrument_id = e.instrument_id;
                l
            });
            lv.apply(&e);
            if e.kind == MarketEventKind::Quote as u8 {
                match depth {
                    Some(d) => {
                        lv.valid |= LastValue::HAS_DEPTH;
                        lv.bid_levels = d.bid_levels;
                        lv.ask_levels = d.ask_levels;
                        lv.bid_depth = d.bids;
                        lv.ask_depth = d.asks;
                    }
                    None => {
                        lv.valid &= !LastValue::HAS_DEPTH;
                        lv.bid_levels = 0;
                        lv.ask_levels = 0;
                    }
                }
            }
        }
        self.queue.push_back(e);
        e
    }
}

/// What happened in one step, for the accounting (drained by the caller).
#[derive(Debug, Default)]
pub struct Happened {
    /// Orders the core sent, with the hedge book's last value when it sent them and why the
    /// core sent them.
    pub orders: Vec<(HedgeOrder, Option<LastValue>, Option<HedgeReason>)>,
    /// Execution reports delivered to the core (venue reports and client option trades).
    pub execs: Vec<ExecEvent>,
}

/// The core, its rings, the venue and the client flow, on one clock.
pub struct World {
    /// The live hedger's loop state.
    pub core: HedgerCore<BookRiskAdapter>,
    /// Market data as the core reads it.
    pub md: ReplayMarket,
    execs: MemExecs,
    orders: MemOrders,
    /// Operator control words (kill switch, trading modes).
    pub ctl: MemControl,
    venue: SimVenue<Vec<Option<LastValue>>>,
    flow: Option<OptionFlow>,
    flow_file: VecDeque<ExecEvent>,
    flow_file_ts: VecDeque<u64>,
    next_exec_id: u64,
    /// The clock, ns (the source's clock: ns since the epoch for recorded data).
    pub now_ns: u64,
    timer_origin_ns: u64,
    last_timer_ns: u64,
    /// Timers run.
    pub timers: u64,
    /// Run the timer at every grid point, as the live loop does, instead of only where
    /// `HedgerCore::timer_due_ns` says it can act (for the equivalence test).
    pub every_timer: bool,
    /// Something other than a timer arrived since the last `run_core`.
    touched: bool,
    /// What happened since the caller last drained it.
    pub happened: Happened,
}

impl World {
    /// A world starting at `now_ns`. `flow_file` holds client trades (as option-trade exec
    /// reports) with their times, in time order.
    pub fn new(
        core: HedgerCore<BookRiskAdapter>,
        venue: SimVenue<Vec<Option<LastValue>>>,
        flow: Option<OptionFlow>,
        flow_file: Vec<(u64, ExecEvent)>,
        orders_capacity: usize,
        now_ns: u64,
    ) -> Self {
        let n = core.defs().len();
        let (flow_file_ts, flow_file) = flow_file.into_iter().unzip();
        World {
            core,
            md: ReplayMarket::new(n),
            execs: MemExecs::default(),
            orders: MemOrders::new(orders_capacity),
            ctl: MemControl::default(),
            venue,
            flow,
            flow_file,
            flow_file_ts,
            next_exec_id: 0,
            now_ns,
            timer_origin_ns: now_ns,
            last_timer_ns: now_ns,
            timers: 0,
            every_timer: false,
            touched: false,
            happened: Happened::default(),
        }
    }

    /// Publishes a market event at the current time (into the table the core and the venue
    /// read, and the core's queue).
    pub fn publish(&mut self, e: MarketEvent, depth: Option<&Depth>) -> MarketEvent {
        self.touched = true;
        let e = self.md.publish(e, depth, self.now_ns);
        let id = e.instrument_id as usize;
        if let (Some(dst), Some(src)) = (self.venue.market_mut().get_mut(id), self.md.lvt.get(id)) {
            *dst = *src;
        }
        // Trades move the queues of resting orders (the venue's queue model).
        self.venue.on_trade(&e, self.now_ns);
        e
    }

    /// The next timer that can act (grid-aligned), if any.
    fn next_timer_ns(&self) -> Option<u64> {
        let due = if self.every_timer {
            0
        } else {
            self.core.timer_due_ns()
        };
        if due == u64::MAX {
            return None;
        }
        // The live timer runs on its grid, never twice within one interval, never in the past.
        let earliest = due
            .max(self.last_timer_ns + TIMER_INTERVAL_NS)
            .max(self.now_ns);
        let k = (earliest - self.timer_origin_ns).div_ceil(TIMER_INTERVAL_NS);
        Some(self.timer_origin_ns + k * TIMER_INTERVAL_NS)
    }

    /// The earliest time something other than the market is due: a venue entry, a client
    /// trade, a timer. `flow_until_ns` bounds the client flow (it ends with the data).
    pub fn next_due_ns(&self, flow_until_ns: u64) -> Option<u64> {
        let flow = self
            .flow
            .as_ref()
            .and_then(OptionFlow::next_due_ns)
            .filter(|&t| t <= flow_until_ns);
        let file = self.flow_file_ts.front().copied();
        [self.venue.next_due_ns(), flow, file, self.next_timer_ns()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the venue still has orders or reports on their way.
    pub fn venue_busy(&self) -> bool {
        self.venue.next_due_ns().is_some()
    }

    fn push_exec(&mut self, mut e: ExecEvent) {
        self.touched = true;
        self.next_exec_id += 1;
        e.exec_id = self.next_exec_id;
        e.ts_ns = self.now_ns;
        self.execs.buf.push(e);
        self.happened.execs.push(e);
    }

    /// Moves the clock to `t_ns` and delivers what is due by then: venue reports and client
    /// trades become exec reports in the core's queue.
    pub fn advance(&mut self, t_ns: u64, flow_until_ns: u64) {
        self.now_ns = self.now_ns.max(t_ns);
        let now = self.now_ns;
        let mut reports = Vec::new();
        self.venue.poll(now, &mut |r| reports.push(r));
        for r in reports {
            self.push_exec(order_gateway::gateway::to_exec(&r));
        }
        if now <= flow_until_ns {
            let mut trades = Vec::new();
            if let Some(f) = self.flow.as_mut() {
                f.poll(now, &self.md.lvt, FLOW_BATCH, &mut |e| trades.push(e));
            }
            for e in trades {
                self.push_exec(e);
            }
        }
        while self.flow_file_ts.front().is_some_and(|&t| t <= now) {
            self.flow_file_ts.pop_front();
            if let Some(e) = self.flow_file.pop_front() {
                self.push_exec(e);
            }
        }
    }

    /// Runs the core until it is idle, then the timer if one is due now, and sends the
    /// orders it wrote to the venue. Before an event, the core's idle work runs as the live
    /// loop runs it in the gap before the event arrives (the risk book's clock moves to now,
    /// a few options are re-evaluated exactly, expiries passed are settled).
    pub fn run_core(&mut self) {
        let now = self.now_ns;
        if std::mem::take(&mut self.touched) {
            self.core.idle_risk(now);
        }
        while self.core.poll(
            &mut self.md,
            &mut self.execs,
            &mut self.orders,
            &self.ctl,
            now,
            &FixedClock(now),
        ) > 0
        {}
        if self.next_timer_ns().is_some_and(|t| t <= now) {
            self.core.on_timer(&mut self.orders, now, &FixedClock(now));
            self.last_timer_ns = now;
            self.timers += 1;
        }
        // No state file: what the core read is committed at once (Housekeeping without a
        // writer does the same).
        self.execs.commit(self.core.uncommitted_execs());
        self.core.execs_committed();
        if self.execs.head == self.execs.buf.len() {
            self.execs.buf.clear();
            (self.execs.head, self.execs.read) = (0, 0);
        }
        while let Some(o) = self.orders.buf.pop_front() {
            if o.action() == Ok(OrderAction::Cancel) {
                // As the gateway does: a cancel goes to the venue, it is not an order.
                self.venue.cancel(o.client_order_id, now);
                continue;
            }
            let book = self.md.lv(o.instrument_id);
            let reason = self.core.sent_reason(o.client_order_id);
            self.venue.submit(&o, now);
            self.happened.orders.push((o, book, reason));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;
    use engine::hedger::core::{hedge_instrument, UnderlyingSetup};
    use engine::limits::LimitsConfig;
    use engine::policy::{BandRule, PolicyConfig, RehedgeTarget};
    use order_gateway::sim::SimConfig;
    use proptest::prelude::*;
    use shm_layout::{
        ExecKind, InstrumentDef, InstrumentKind, Liquidity, OptionType, Settlement, Side,
        NO_FORWARD,
    };

    const T0: u64 = 1_700_000_000_000_000_000;
    const DAY: u64 = 86_400_000_000_000;

    fn defs() -> Vec<InstrumentDef> {
        let mut index = InstrumentDef::zeroed();
        (index.id, index.kind) = (0, InstrumentKind::Index as u8);
        index.set_symbol("BTC");
        let mut perp = InstrumentDef::zeroed();
        (perp.id, perp.kind, perp.settlement) =
            (1, InstrumentKind::Perpetual as u8, Settlement::Linear as u8);
        (
            perp.contract_multiplier,
            perp.lot_size,
            perp.min_qty,
            perp.tick_size,
        ) = (1.0, 0.001, 0.001, 0.5);
        perp.set_symbol("BTC-PERPETUAL");
        let mut out = vec![index, perp];
        for (i, (strike, put)) in [(9_000.0, true), (10_000.0, false), (11_000.0, false)]
            .into_iter()
            .enumerate()
        {
            let mut o = InstrumentDef::zeroed();
            o.id = 2 + i as u32;
            o.kind = InstrumentKind::Option as u8;
            o.option_type = if put {
                OptionType::Put
            } else {
                OptionType::Call
            } as u8;
            o.settlement = Settlement::Linear as u8;
            (o.underlying_id, o.forward_id) = (0, NO_FORWARD);
            (o.strike, o.expiry_ns, o.contract_multiplier) = (strike, T0 + 30 * DAY, 1.0);
            (o.tick_size, o.lot_size, o.min_qty) = (0.1, 0.1, 0.1);
            o.set_symbol(&format!("BTC-OPT-{i}"));
            out.push(o);
        }
        out
    }

    /// One input of the random market: at `dt_us` after the previous one, an index move
    /// (bps), a perp quote (spread ticks, size), an option mark (option, vol) or a client
    /// trade (option, signed qty).
    #[derive(Debug, Clone)]
    enum Input {
        Index(i32),
        Quote(u8, u16),
        Mark(u8, u8),
        Trade(u8, i8),
    }

    fn input() -> impl Strategy<Value = (u32, Input)> {
        let kind = prop_oneof![
            (-30i32..30).prop_map(Input::Index),
            (1u8..6, 1u16..400).prop_map(|(s, q)| Input::Quote(s, q)),
            (0u8..3, 30u8..120).prop_map(|(o, v)| Input::Mark(o, v)),
            (0u8..3, -20i8..20).prop_map(|(o, q)| Input::Trade(o, q)),
        ];
        (50u32..20_000, kind)
    }

    fn policy() -> impl Strategy<Value = PolicyConfig> {
        (
            0.05f64..2.0,
            0u64..50,
            any::<bool>(),
            0u64..3,
            any::<bool>(),
        )
            .prop_map(|(band, min_ms, edge, max_s, cost_aware)| PolicyConfig {
                rule: if cost_aware {
                    BandRule::CostAware {
                        taker_fee: 5e-4,
                        risk_aversion: 1e-4,
                        vol_stress_weight: 1.0,
                        spread_stress_weight: 1.0,
                        max_stress: 5.0,
                    }
                } else {
                    BandRule::Fixed {
                        band,
                        target: if edge {
                            RehedgeTarget::Edge
                        } else {
                            RehedgeTarget::Zero
                        },
                    }
                },
                min_band: 0.01,
                max_band: 3.0,
                min_interval_ns: min_ms * 1_000_000,
                max_interval_ns: max_s * 1_000_000_000,
                ..PolicyConfig::default()
            })
    }

    /// Replays `inputs` through a world; `every_timer` runs the live loop's timer at every
    /// millisecond instead of only where it can act. Returns the orders the core sent.
    fn replay(inputs: &[(u32, Input)], policy: PolicyConfig, every_timer: bool) -> Vec<HedgeOrder> {
        let d = defs();
        let setup = UnderlyingSetup {
            name: "BTC".into(),
            index_id: 0,
            hedge: hedge_instrument(&d[1], "test").unwrap(),
            policy,
            limits: LimitsConfig {
                max_orders_per_sec: 200.0,
                order_burst: 5.0,
                ..LimitsConfig::default()
            },
            rate: 0.0,
            initial_hedge_position: 0.3,
        };
        let risk = BookRiskAdapter::new(&[0], d.len() as u32, 3, T0);
        let mut core = HedgerCore::new(d.clone(), vec![setup], risk, T0, T0);
        core.set_option_position("BTC-OPT-1", -2.0).unwrap();
        let venue = SimVenue::new(SimConfig::default(), d.clone(), vec![None; d.len()]);
        let mut w = World::new(core, venue, None, Vec::new(), 64, T0);
        w.every_timer = every_timer;
        let (mut t, mut px) = (T0, 10_000.0f64);
        let mut trades = Vec::new();
        let mut events = Vec::new();
        for (dt, i) in inputs {
            t += u64::from(*dt) * 1_000;
            match *i {
                Input::Index(bps) => {
                    px *= 1.0 + f64::from(bps) * 1e-4;
                    events.push((t, MarketEvent::underlying_price(0, t, 0, px)));
                }
                Input::Quote(s, q) => {
                    let mid = (px / 0.5).round() * 0.5;
                    let h = f64::from(s) * 0.5;
                    let q = f64::from(q) * 0.01;
                    events.push((t, MarketEvent::quote(1, t, 0, mid - h, q, mid + h, q)));
                }
                Input::Mark(o, v) => {
                    let iv = f64::from(v) / 100.0;
                    events.push((
                        t,
                        MarketEvent::option_mark(2 + u32::from(o), t, 0, 100.0, iv, px),
                    ));
                }
                Input::Trade(o, q) if q != 0 => {
                    let side = if q > 0 { Side::Buy } else { Side::Sell };
                    trades.push((
                        t,
                        ExecEvent {
                            kind: ExecKind::OptionTrade as u8,
                            instrument_id: 2 + u32::from(o),
                            side: side as u8,
                            liquidity: Liquidity::Maker as u8,
                            qty: f64::from(q.unsigned_abs()) * 0.1,
                            price: 100.0,
                            ..ExecEvent::zeroed()
                        },
                    ));
                }
                Input::Trade(..) => {}
            }
        }
        w.flow_file_ts = trades.iter().map(|x| x.0).collect();
        w.flow_file = trades.into_iter().map(|x| x.1).collect();
        let end = t + 1_000_000_000;
        let mut next = 0;
        loop {
            let md = events.get(next).map(|e| e.0.max(w.now_ns));
            let t = match (md, w.next_due_ns(end)) {
                (Some(m), Some(d)) => m.min(d),
                (Some(m), None) => m,
                (None, Some(d)) if d <= end => d,
                _ => break,
            };
            w.advance(t, end);
            if md == Some(t) {
                w.publish(events[next].1, None);
                next += 1;
            }
            w.run_core();
        }
        w.happened.orders.into_iter().map(|(o, ..)| o).collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

        /// The discrete-event replay, which runs the timer only where `timer_due_ns` says it
        /// can act, sends exactly the orders of the live loop's schedule (a timer every
        /// millisecond), on random markets, client trades and policies.
        #[test]
        fn skipping_idle_timers_never_changes_an_order(
            inputs in proptest::collection::vec(input(), 1..300),
            policy in policy(),
        ) {
            let live = replay(&inputs, policy, true);
            let fast = replay(&inputs, policy, false);
            let key = |o: &HedgeOrder| (o.client_order_id, o.side, o.qty, o.limit_px, o.decision_ts_ns);
            let first_diff = live
                .iter()
                .map(key)
                .zip(fast.iter().map(key))
                .position(|(a, b)| a != b);
            prop_assert!(
                first_diff.is_none() && live.len() == fast.len(),
                "{} live orders, {} replayed; first divergence at {:?}: live {:?} replay {:?}",
                live.len(),
                fast.len(),
                first_diff,
                first_diff.and_then(|i| live.get(i)).map(key),
                first_diff.and_then(|i| fast.get(i)).map(key)
            );
        }
    }
}
