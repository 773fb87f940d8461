//! The loop's state machine: execs, then market data, then risk, decision, limits, order.
//!
//! [`HedgerCore::poll`] is the hot path: it allocates nothing, takes no lock, makes no system
//! call except reading the vDSO clock, and formats nothing. Everything it counts lives in
//! plain fields ([`Stats`], per-underlying [`UnderlyingRuntime`]) that the driver publishes to
//! shared-memory counters in idle time. State persistence ([`HedgerCore::persist_state`]) and
//! histogram export are driver work, off the hot path.

use super::io::{ControlSource, ExecSource, MarketSource, MdPoll, OrderSink};
use super::latency::StageHistograms;
use super::risk::{OptionRisk, OptionSpec};
use super::state::{
    DirtyOptions, InflightRecord, OptionEntry, PersistState, SettledRecord, StateDelta,
    UnderlyingRecord,
};
use crate::limits::{LimitBreach, Limits, LimitsConfig, TradingMode};
use crate::policy::{
    BandRule, Decision, HedgeInstrument, HedgePolicy, HedgeReason, HoldReason, PolicyConfig,
    PolicyState, RiskSnapshot, Trigger,
};
use shm_layout::{
    ExecEvent, ExecKind, InstrumentDef, InstrumentKind, LastValue, MarketEvent, MarketEventKind,
};

mod exec;
mod rebuild;
use exec::Stamps;
pub use exec::{ExecState, CANCEL_LABELS, CANCEL_REASONS};

/// Where the loop takes its stage time stamps from (read, decision, publish).
///
/// Live, [`HedgerCore::poll`] reads the monotonic clock at each stage ([`MonotonicClock`], so
/// the stage histograms measure real latency); a replay on a recorded clock passes one
/// injected time for every stamp ([`FixedClock`]), so it is deterministic. A session recorder
/// wraps the monotonic clock and records every value it returns; a session replay plays those
/// values back in order.
pub trait StageClock {
    /// The current monotonic time, ns. Called on the hot path: no allocation, lock or
    /// system call beyond the vDSO clock read.
    fn now(&self) -> u64;
}

/// The vDSO monotonic clock (the live loop's stage stamps).
#[derive(Debug, Clone, Copy, Default)]
pub struct MonotonicClock;

impl StageClock for MonotonicClock {
    #[inline(always)]
    fn now(&self) -> u64 {
        shm_layout::clock::now_ns()
    }
}

/// A fixed, injected time, ns (replay, tests).
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub u64);

impl StageClock for FixedClock {
    #[inline(always)]
    fn now(&self) -> u64 {
        self.0
    }
}

/// Configuration of one hedged underlying, resolved against the instruments table.
#[derive(Debug, Clone)]
pub struct UnderlyingSetup {
    /// Name (the index symbol).
    pub name: String,
    /// Index instrument id.
    pub index_id: u32,
    /// Hedge instrument.
    pub hedge: HedgeInstrument,
    /// Policy.
    pub policy: PolicyConfig,
    /// Limits.
    pub limits: LimitsConfig,
    /// Rate.
    pub rate: f64,
    /// Hedge position at first start, contracts.
    pub initial_hedge_position: f64,
}

/// Why a market event was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MdReject {
    /// NaN or infinite field.
    NotFinite,
    /// Zero price.
    Zero,
    /// Negative price or size.
    Negative,
    /// Bid at or above ask.
    Crossed,
    /// Instrument id not in the instruments table.
    UnknownInstrument,
    /// Mark of an option past its expiry.
    ExpiredOption,
    /// Unknown event kind, or otherwise invalid (e.g. zero vol).
    Invalid,
}

impl MdReject {
    /// Every reason.
    pub const ALL: [MdReject; 7] = [
        MdReject::NotFinite,
        MdReject::Zero,
        MdReject::Negative,
        MdReject::Crossed,
        MdReject::UnknownInstrument,
        MdReject::ExpiredOption,
        MdReject::Invalid,
    ];
    /// Label.
    pub const fn name(self) -> &'static str {
        match self {
            MdReject::NotFinite => "nan",
            MdReject::Zero => "zero",
            MdReject::Negative => "negative",
            MdReject::Crossed => "crossed",
            MdReject::UnknownInstrument => "unknown_instrument",
            MdReject::ExpiredOption => "expired_option",
            MdReject::Invalid => "invalid",
        }
    }
}

/// Loop-wide counters (plain fields; published by the driver).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Market events read.
    pub md_events: u64,
    /// Laps.
    pub md_lapped: u64,
    /// Events lost in laps.
    pub md_lost: u64,
    /// Rejected events by [`MdReject`] index.
    pub md_rejected: [u64; 7],
    /// Events for instruments this hedger does not use.
    pub md_ignored: u64,
    /// Rebuilds from the last-value table.
    pub rebuilds: u64,
    /// Events skipped after a rebuild because the last values were already newer.
    pub md_older_than_rebuild: u64,
    /// Exec reports applied.
    pub execs_processed: u64,
    /// Exec reports skipped as already applied (exec id not above the last one).
    pub execs_duplicate: u64,
    /// Exec reports that could not be applied (bad enum, unknown instrument or order).
    pub execs_bad: u64,
    /// Client option trades.
    pub option_trades: u64,
    /// Client option trades for an option already expired (settled or past its expiry on
    /// the hedger's clock), executed before the expiry and delivered after it: kept in the
    /// option's settlement record at its settlement price, not added to risk.
    pub option_trades_expired: u64,
    /// Such trades that could not be kept (the option is not settled because the market clock
    /// is not known yet): not applied; reconcile with the venue.
    pub option_trades_unrecorded: u64,
    /// Orders published.
    pub orders_sent: u64,
    /// Orders completely filled.
    pub orders_filled: u64,
    /// Partial fills.
    pub orders_partially_filled: u64,
    /// Orders cancelled (IOC remainder).
    pub orders_cancelled: u64,
    /// Orders rejected by the venue or gateway.
    pub orders_rejected: u64,
    /// Publish attempts that found the orders ring full (hedging stops, alarm).
    pub orders_ring_full: u64,
    /// Decisions not sent because the in-flight table was full.
    pub inflight_full: u64,
    /// Orders of a previous run found in the exec stream while reconciling.
    pub reconciled_orders: u64,
    /// Orders of a previous run dropped from the in-flight table when reconciliation timed
    /// out (no terminal report arrived).
    pub reconcile_timeouts: u64,
    /// Cancels sent for orders of a previous run still in flight while reconciling.
    pub prev_run_cancels: u64,
}

/// Per-underlying runtime state (public for gauges and tests).
#[derive(Debug, Clone)]
pub struct UnderlyingRuntime {
    /// Setup.
    pub setup: UnderlyingSetup,
    /// Policy.
    pub policy: HedgePolicy,
    /// Policy state.
    pub pstate: PolicyState,
    /// Limits and their counters.
    pub limits: Limits,
    /// Hedge position, contracts.
    pub hedge_position: f64,
    /// Signed quantity in flight, contracts.
    pub inflight_qty: f64,
    /// Notional in flight, quote currency.
    pub inflight_notional: f64,
    /// Index price.
    pub index_px: f64,
    /// Monotonic receive time of the index price.
    pub index_ts_ns: u64,
    /// Hedge book (top of book from events, depth from the last-value table).
    pub book: LastValue,
    /// Monotonic receive time of the hedge book.
    pub book_ts_ns: u64,
    /// Held until rebuilt after a lap.
    pub rebuilding: bool,
    /// Trading state from the control block.
    pub mode: TradingMode,
    /// Hedges sent for the band.
    pub hedges_band: u64,
    /// Safety re-hedges sent.
    pub hedges_safety: u64,
    /// Policy holds by [`HoldReason`] (inside band, min interval, below min size, no book,
    /// collar).
    pub holds: [u64; 6],
    /// Decisions not evaluated because hedging was held (rebuild, reconcile, ring full).
    pub held: u64,
    /// Options' delta (before hedging), underlying units.
    pub option_delta: f64,
    /// Net delta (after hedging: + position + in flight), underlying units.
    pub net_delta: f64,
    /// Options' gamma.
    pub gamma: f64,
    /// Options' vega per vol point.
    pub vega: f64,
    /// Band half-width last computed.
    pub band: f64,
    /// Monotonic ns from which a timer decision may differ from the last one (a hedge held
    /// by the minimum interval or the order-rate limit, an exec that changed what is held or
    /// in flight); `u64::MAX`: only a market event or a control change can. See
    /// [`HedgerCore::timer_due_ns`].
    pub retry_at_ns: u64,
    /// Touched by an event of a snapshot batch not yet complete
    /// ([`MarketEvent::FLAG_BATCH_MORE`]): decided at the batch's last event.
    pub batch_pending: bool,
    /// Option positions settled in cash at expiry (including those restored from the state).
    pub options_settled: u64,
    /// Sum of the settled positions, contracts (signed).
    pub settled_position: f64,
    /// Sum of the settled values, quote currency (see [`crate::risk::SettledOption`]).
    pub settled_value: f64,
    /// Execution state: the passive order resting, the slice program, orders by reason.
    pub exec: ExecState,
}

const fn hold_index(h: HoldReason) -> usize {
    match h {
        HoldReason::InsideBand => 0,
        HoldReason::MinInterval => 1,
        HoldReason::BelowMinSize => 2,
        HoldReason::NoBook => 3,
        HoldReason::Collar => 4,
        HoldReason::Horizon => 5,
    }
}

/// Labels of [`UnderlyingRuntime::holds`].
pub const HOLD_LABELS: [&str; 6] = [
    "inside_band",
    "min_interval",
    "below_min_size",
    "no_book",
    "collar",
    "holding_horizon",
];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Role {
    None,
    Index(u16),
    /// A per-expiry forward (Deribit's SYN.BTC-<expiry>) of options of this underlying.
    Forward(u16),
    Hedge(u16),
    Option {
        und: u16,
        opt: u32,
    },
}

/// An order in flight.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Inflight {
    coid: u64,
    und: u16,
    sign: f64,
    leaves: f64,
    px: f64,
    /// When a cancel of this order was last sent, ns (0: never). Only orders of a previous
    /// run are cancelled from here ([`HedgerCore::cancel_previous_run`]); the passive order
    /// of this run is cancelled through its execution state.
    cancel_sent_ns: u64,
}

/// While reconciling, a cancel of a previous run's order that got no terminal report is
/// re-sent after this long (or after the reconcile quiet period, if longer).
pub const PREV_RUN_CANCEL_RESEND_NS: u64 = 100_000_000;

/// Orders whose reason [`HedgerCore::sent_reason`] remembers.
pub const SENT_REASONS: usize = 64;

/// Maximum orders in flight at once (all underlyings).
pub const MAX_INFLIGHT: usize = 256;

/// The hedger's loop state.
pub struct HedgerCore<R: OptionRisk> {
    defs: Vec<InstrumentDef>,
    /// Index in `defs` by symbol (the first definition of a symbol), for the start-up paths
    /// that name instruments (positions, a restored state): a scan per position made loading
    /// a 10,000-option book quadratic. Never read on the event path.
    by_symbol: std::collections::HashMap<String, usize>,
    roles: Vec<Role>,
    /// Per underlying.
    pub und: Vec<UnderlyingRuntime>,
    /// Option risk.
    pub risk: R,
    opt_ids: Vec<u32>,
    /// Options changed since the last [`HedgerCore::persist_delta`].
    persist_dirty: DirtyOptions,
    inflight: Vec<Inflight>,
    epoch: u64,
    next_seq: u64,
    last_exec_id: u64,
    uncommitted_execs: usize,
    kill: bool,
    ctl_gen: u64,
    /// Whether the gateway's heartbeat is fresh (set by the driver).
    pub gateway_alive: bool,
    ring_blocked: bool,
    reconciling: bool,
    reconcile_quiet_ns: u64,
    reconcile_deadline_ns: u64,
    last_prev_epoch_activity_ns: u64,
    wall_minus_mono: i128,
    /// Market time follows the events' exchange timestamps instead of the wall clock.
    exchange_clock: bool,
    /// Earliest expiry not yet settled by the risk book (wall ns): one comparison per
    /// decision, settlement once per expiry.
    next_settle_ns: u64,
    /// The market clock is known: always with the wall clock; in exchange-clock mode once
    /// an event with an exchange timestamp was read (until then the risk book's clock does
    /// not move and nothing settles: today's wall time would expire every recorded option).
    clock_ready: bool,
    rebuilt_seq: u64,
    /// Which marks the core holds, to reprice only changed options after a lap.
    memo: rebuild::RebuildMemo,
    /// Some underlying has `batch_pending` set.
    batch_open: bool,
    /// Why each of the last [`SENT_REASONS`] orders was sent, by client order id (one store
    /// per order; read by reports off the hot path).
    sent_reasons: [(u64, HedgeReason); SENT_REASONS],
    /// Counters.
    pub stats: Stats,
    /// Stage latency histograms.
    pub latency: StageHistograms,
}

/// Errors building a core.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SetupError {
    /// A symbol of the config is not in the instruments table.
    #[error("{key}: instrument `{symbol}` is not in the instruments segment")]
    UnknownSymbol {
        /// Config key.
        key: String,
        /// Symbol.
        symbol: String,
    },
    /// The instrument is of the wrong kind.
    #[error("{key}: instrument `{symbol}` is a {kind}, expected {expected}")]
    WrongKind {
        /// Config key.
        key: String,
        /// Symbol.
        symbol: String,
        /// Its kind.
        kind: &'static str,
        /// Expected kinds.
        expected: &'static str,
    },
    /// The state snapshot names something unknown.
    #[error("state: {0}")]
    State(String),
}

fn kind_name(d: &InstrumentDef) -> &'static str {
    d.kind().map_or("unknown kind", |k| k.name())
}

/// Resolves a hedge instrument's definition into a [`HedgeInstrument`].
///
/// # Errors
/// Not a perpetual, future or spot.
pub fn hedge_instrument(d: &InstrumentDef, key: &str) -> Result<HedgeInstrument, SetupError> {
    match d.kind() {
        Ok(InstrumentKind::Perpetual | InstrumentKind::Future | InstrumentKind::Spot) => {}
        _ => {
            return Err(SetupError::WrongKind {
                key: key.into(),
                symbol: d.symbol().into(),
                kind: kind_name(d),
                expected: "perpetual, future or spot",
            })
        }
    }
    let cs = d.multiplier();
    Ok(match d.settlement() {
        Ok(shm_layout::Settlement::Inverse) => {
            HedgeInstrument::inverse(d.id, cs, d.lot_size, d.min_qty, d.tick_size)
        }
        _ => HedgeInstrument::linear(d.id, cs, d.lot_size, d.min_qty, d.tick_size),
    })
}

/// Registers with `risk` every option of a configured underlying, in instrument order, and
/// gives the options and their forwards their [`Role`]; returns the option index -> instrument
/// id table.
fn register_options<R: OptionRisk>(
    defs: &[InstrumentDef],
    und: &[UnderlyingRuntime],
    roles: &mut [Role],
    risk: &mut R,
) -> Vec<u32> {
    let mut opt_ids = Vec::new();
    for d in defs {
        if d.kind() != Ok(InstrumentKind::Option) {
            continue;
        }
        let Some(u) = und.iter().position(|x| x.setup.index_id == d.underlying_id) else {
            continue;
        };
        let kind = match d.option_type() {
            Ok(shm_layout::OptionType::Put) => crate::pricing::OptionType::Put,
            _ => crate::pricing::OptionType::Call,
        };
        let opt = risk.add_option(OptionSpec {
            instrument_id: d.id,
            underlying_id: d.underlying_id,
            forward_id: d.forward_id,
            underlying: u,
            kind,
            strike: d.strike,
            expiry_ns: d.expiry_ns,
            multiplier: d.multiplier(),
            inverse: d.settlement() == Ok(shm_layout::Settlement::Inverse),
        });
        debug_assert_eq!(opt, opt_ids.len());
        opt_ids.push(d.id);
        if d.forward_id != shm_layout::NO_FORWARD {
            if let Some(r @ Role::None) = roles.get_mut(d.forward_id as usize) {
                *r = Role::Forward(u as u16);
            }
        }
        if let Some(r) = roles.get_mut(d.id as usize) {
            *r = Role::Option {
                und: u as u16,
                opt: opt as u32,
            };
        }
    }
    opt_ids
}

impl UnderlyingRuntime {
    /// The runtime state of one configured underlying at start-up (`mono_ns`: the clock then).
    fn new(s: UnderlyingSetup, mono_ns: u64) -> Self {
        let mut pstate = PolicyState {
            started_ns: mono_ns,
            ..PolicyState::default()
        };
        pstate.last_hedge_ns = None;
        UnderlyingRuntime {
            policy: HedgePolicy::new(s.policy, s.hedge),
            pstate,
            limits: Limits::new(s.limits),
            hedge_position: s.initial_hedge_position,
            inflight_qty: 0.0,
            inflight_notional: 0.0,
            index_px: 0.0,
            index_ts_ns: 0,
            book: bytemuck::Zeroable::zeroed(),
            book_ts_ns: 0,
            rebuilding: false,
            mode: TradingMode::Active,
            hedges_band: 0,
            hedges_safety: 0,
            holds: [0; 6],
            held: 0,
            option_delta: 0.0,
            net_delta: 0.0,
            gamma: 0.0,
            vega: 0.0,
            band: 0.0,
            retry_at_ns: u64::MAX,
            batch_pending: false,
            options_settled: 0,
            settled_position: 0.0,
            settled_value: 0.0,
            exec: ExecState::default(),
            setup: s,
        }
    }
}

impl<R: OptionRisk> HedgerCore<R> {
    /// Builds the loop state from the instruments table and the underlyings' setup.
    /// Every option of a configured underlying is registered with `risk`.
    ///
    /// `mono_ns` and `wall_ns` are the clocks read together at startup (to derive wall time
    /// from the monotonic clock on the hot path).
    pub fn new(
        defs: Vec<InstrumentDef>,
        setups: Vec<UnderlyingSetup>,
        mut risk: R,
        mono_ns: u64,
        wall_ns: u64,
    ) -> Self {
        let mut roles = vec![Role::None; defs.len()];
        let mut und = Vec::with_capacity(setups.len());
        for (u, s) in setups.into_iter().enumerate() {
            if let Some(r) = roles.get_mut(s.index_id as usize) {
                *r = Role::Index(u as u16);
            }
            if let Some(r) = roles.get_mut(s.hedge.instrument_id as usize) {
                *r = Role::Hedge(u as u16);
            }
            // The book's options are discounted at the rate the policy's band uses.
            risk.set_rate(u, s.rate);
            und.push(UnderlyingRuntime::new(s, mono_ns));
        }
        let opt_ids = register_options(&defs, &und, &mut roles, &mut risk);
        let next_settle_ns = risk.next_expiry_ns();
        let memo = rebuild::RebuildMemo::new(&defs, &roles, &risk);
        let mut by_symbol = std::collections::HashMap::with_capacity(defs.len());
        for (i, d) in defs.iter().enumerate() {
            by_symbol.entry(d.symbol().to_string()).or_insert(i);
        }
        HedgerCore {
            memo,
            next_settle_ns,
            clock_ready: true,
            defs,
            by_symbol,
            roles,
            und,
            risk,
            persist_dirty: DirtyOptions::new(opt_ids.len()),
            opt_ids,
            inflight: Vec::with_capacity(MAX_INFLIGHT),
            epoch: 1,
            next_seq: 1,
            last_exec_id: 0,
            uncommitted_execs: 0,
            kill: false,
            ctl_gen: u64::MAX,
            gateway_alive: true,
            ring_blocked: false,
            reconciling: false,
            reconcile_quiet_ns: 0,
            reconcile_deadline_ns: u64::MAX,
            last_prev_epoch_activity_ns: mono_ns,
            wall_minus_mono: wall_ns as i128 - mono_ns as i128,
            exchange_clock: false,
            rebuilt_seq: 0,
            batch_open: false,
            sent_reasons: [(0, HedgeReason::Band); SENT_REASONS],
            stats: Stats::default(),
            latency: StageHistograms::new(),
        }
    }

    /// Instrument definitions.
    pub fn defs(&self) -> &[InstrumentDef] {
        &self.defs
    }

    /// The definition of `symbol` (the first, if the table repeats one). O(1).
    pub fn def_by_symbol(&self, symbol: &str) -> Option<&InstrumentDef> {
        self.by_symbol.get(symbol).map(|&i| &self.defs[i])
    }

    /// Sets an option position by symbol (startup).
    ///
    /// # Errors
    /// The symbol is not an option of a configured underlying.
    pub fn set_option_position(&mut self, symbol: &str, qty: f64) -> Result<(), SetupError> {
        let d = self.def_by_symbol(symbol);
        match d.map(|d| self.roles[d.id as usize]) {
            Some(Role::Option { opt, .. }) => {
                self.risk.set_position(opt as usize, qty);
                self.persist_dirty.mark(opt as usize);
                Ok(())
            }
            Some(_) => Err(SetupError::WrongKind {
                key: "positions".into(),
                symbol: symbol.into(),
                kind: d.map_or("?", kind_name),
                expected: "an option of a configured underlying",
            }),
            None => Err(SetupError::UnknownSymbol {
                key: "positions".into(),
                symbol: symbol.into(),
            }),
        }
    }

    /// Option position of an instrument id (0 if none).
    pub fn option_position(&self, instrument_id: u32) -> f64 {
        match self.roles.get(instrument_id as usize) {
            Some(Role::Option { opt, .. }) => self.risk.position(*opt as usize),
            _ => 0.0,
        }
    }

    /// Why the order `client_order_id` was sent, if it is one of the last [`SENT_REASONS`].
    pub fn sent_reason(&self, client_order_id: u64) -> Option<HedgeReason> {
        self.sent_reasons
            .iter()
            .find(|(c, _)| *c == client_order_id && *c != 0)
            .map(|(_, r)| *r)
    }

    /// How an option settled at expiry (None: not settled, or not an option of this book).
    pub fn option_settlement(&self, instrument_id: u32) -> Option<crate::risk::SettledOption> {
        match self.roles.get(instrument_id as usize) {
            Some(Role::Option { opt, .. }) => self.risk.settlement(*opt as usize),
            _ => None,
        }
    }

    /// Client order id epoch (bumped on every start).
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Highest exec id applied.
    pub fn last_exec_id(&self) -> u64 {
        self.last_exec_id
    }

    /// Exec reports read but not yet committed (to commit after persisting the state).
    pub fn uncommitted_execs(&self) -> usize {
        self.uncommitted_execs
    }

    /// Marks the read exec reports committed.
    pub fn execs_committed(&mut self) {
        self.uncommitted_execs = 0;
    }

    /// Orders in flight.
    pub fn inflight_count(&self) -> usize {
        self.inflight.len()
    }

    /// Whether hedging is held while reconciling after a restart.
    pub fn reconciling(&self) -> bool {
        self.reconciling
    }

    /// Whether the orders ring was found full (hedging stopped until it drains).
    pub fn ring_blocked(&self) -> bool {
        self.ring_blocked
    }

    /// Kill switch as last read.
    pub fn kill_switch(&self) -> bool {
        self.kill
    }

    /// Wall-clock ns derived from the monotonic clock.
    #[inline]
    pub fn wall_ns(&self, mono_ns: u64) -> u64 {
        (mono_ns as i128 + self.wall_minus_mono).max(0) as u64
    }

    /// Re-derives the wall/monotonic offset (idle time). Ignored in exchange-clock mode,
    /// where the market events set it.
    pub fn calibrate_wall(&mut self, mono_ns: u64, wall_ns: u64) {
        if !self.exchange_clock {
            self.wall_minus_mono = wall_ns as i128 - mono_ns as i128;
        }
    }

    /// Exchange-clock mode: "now" for time to expiry and the trading day is the exchange
    /// timestamp of the latest market event (plus the monotonic time since it was read), so
    /// that recorded data replayed through the feed handler is not all expired against today.
    pub fn set_exchange_clock(&mut self, on: bool) {
        self.exchange_clock = on;
        self.clock_ready = !on;
    }

    /// Idle-time risk work: exact re-evaluations of a few options, the risk book's clock
    /// moved to the market clock at monotonic `now_ns`, and the settlement of expiries it
    /// passed. Nothing (no clock move) before the market clock is known.
    pub fn idle_risk(&mut self, now_ns: u64) {
        if !self.clock_ready {
            return;
        }
        let wall = self.wall_ns(now_ns);
        self.risk.idle_step(wall);
        if wall >= self.next_settle_ns {
            self.settle_expired(wall);
        }
    }

    /// Settles every option expired at wall time `wall_ns` (see
    /// [`OptionRisk::settle_expired`]) and updates the per-underlying settlement gauges.
    /// The loop calls it before a decision once its clock passes the next expiry; the driver
    /// may call it at any time. No allocation.
    pub fn settle_expired(&mut self, wall_ns: u64) {
        if !self.clock_ready {
            return;
        }
        self.risk.settle_expired(wall_ns);
        self.persist_dirty.mark_all();
        self.next_settle_ns = self.risk.next_expiry_ns();
        self.refresh_settlement_gauges();
    }

    fn refresh_settlement_gauges(&mut self) {
        for (u, x) in self.und.iter_mut().enumerate() {
            let t = self.risk.settlement_totals(u);
            x.options_settled = t.options_settled;
            x.settled_position = t.net_contracts;
            x.settled_value = t.value_quote;
        }
    }

    /// The state to persist.
    pub fn persist_state(&self) -> PersistState {
        let mut options = Vec::new();
        let mut settled = Vec::new();
        for (opt, &id) in self.opt_ids.iter().enumerate() {
            let q = self.risk.position(opt);
            if q != 0.0 {
                options.push((self.defs[id as usize].symbol().to_string(), q));
            }
            if let Some(s) = self.risk.settlement(opt).filter(|s| s.contracts != 0.0) {
                settled.push(SettledRecord {
                    symbol: self.defs[id as usize].symbol().to_string(),
                    contracts: s.contracts,
                    settlement_px: s.settlement_px,
                    settled_at_ns: s.settled_at_ns,
                });
            }
        }
        PersistState {
            epoch: self.epoch,
            last_exec_id: self.last_exec_id,
            underlyings: self.underlying_records(),
            options,
            settled,
            inflight: self.inflight_records(),
        }
    }

    /// The state to persist as a [`StateDelta`]: only the options changed since the previous
    /// call (all of them on the first call and after a restore or a settlement), so that a
    /// snapshot costs the loop O(options changed). A [`super::state::StateMirror`] fed every
    /// delta in order encodes what [`HedgerCore::persist_state`] would.
    pub fn persist_delta(&mut self) -> StateDelta {
        let mut options = Vec::with_capacity(self.persist_dirty.len());
        let risk = &self.risk;
        self.persist_dirty.drain(|opt| {
            options.push(OptionEntry {
                opt: opt as u32,
                contracts: risk.position(opt),
                settled: risk
                    .settlement(opt)
                    .map(|s| (s.contracts, s.settlement_px, s.settled_at_ns)),
            });
        });
        StateDelta {
            epoch: self.epoch,
            last_exec_id: self.last_exec_id,
            underlyings: self.underlying_records(),
            options,
            inflight: self.inflight_records(),
        }
    }

    /// The options' symbols by option index (the [`super::state::StateWriter`]'s table).
    pub fn option_symbols(&self) -> Vec<String> {
        self.opt_ids
            .iter()
            .map(|&id| self.defs[id as usize].symbol().to_string())
            .collect()
    }

    fn underlying_records(&self) -> Vec<UnderlyingRecord> {
        self.und
            .iter()
            .map(|u| UnderlyingRecord {
                name: u.setup.name.clone(),
                hedge_position: u.hedge_position,
                utc_day: u.limits.day(),
                filled_today: u.limits.filled_today(),
            })
            .collect()
    }

    fn inflight_records(&self) -> Vec<InflightRecord> {
        self.inflight
            .iter()
            .map(|o| InflightRecord {
                client_order_id: o.coid,
                underlying: self.und[o.und as usize].setup.name.clone(),
                signed_leaves: o.sign * o.leaves,
                limit_px: o.px,
            })
            .collect()
    }

    /// Restores a persisted state and starts a new epoch; hedging is held until orders in
    /// flight of the previous run are reconciled from the exec stream (see
    /// [`HedgerCore::poll`]) and `quiet_ns` passed without a report for them.
    ///
    /// # Errors
    /// The state names an underlying or option this configuration does not have.
    pub fn restore(
        &mut self,
        st: &PersistState,
        now_ns: u64,
        quiet_ns: u64,
    ) -> Result<(), SetupError> {
        self.epoch = st.epoch + 1;
        self.last_exec_id = st.last_exec_id;
        for r in &st.underlyings {
            let u = self
                .und
                .iter_mut()
                .find(|u| u.setup.name == r.name)
                .ok_or_else(|| SetupError::State(format!("unknown underlying `{}`", r.name)))?;
            u.hedge_position = r.hedge_position;
            u.limits.restore_day(r.utc_day, r.filled_today);
        }
        for opt in 0..self.opt_ids.len() {
            self.risk.set_position(opt, 0.0);
        }
        self.persist_dirty.mark_all();
        for (sym, q) in &st.options {
            self.set_option_position(sym, *q)
                .map_err(|e| SetupError::State(e.to_string()))?;
        }
        for r in &st.settled {
            let opt = match self.def_by_symbol(&r.symbol) {
                Some(d) => match self.roles[d.id as usize] {
                    Role::Option { opt, .. } => opt as usize,
                    _ => {
                        return Err(SetupError::State(format!(
                            "settled `{}` is not an option of a configured underlying",
                            r.symbol
                        )))
                    }
                },
                None => {
                    return Err(SetupError::State(format!(
                        "settled option `{}` is not in the instruments segment",
                        r.symbol
                    )))
                }
            };
            // `false`: already settled (a duplicate line); never counted twice.
            self.risk
                .restore_settlement(opt, r.contracts, r.settlement_px, r.settled_at_ns);
        }
        self.refresh_settlement_gauges();
        for o in &st.inflight {
            let u = self
                .und
                .iter()
                .position(|u| u.setup.name == o.underlying)
                .ok_or_else(|| {
                    SetupError::State(format!("unknown underlying `{}`", o.underlying))
                })?;
            self.add_inflight(o.client_order_id, u as u16, o.signed_leaves, o.limit_px);
        }
        self.begin_reconcile(now_ns, quiet_ns);
        Ok(())
    }

    /// Gives up reconciling `timeout_ns` after it began: orders of the previous run that
    /// never got a terminal report are then dropped from the in-flight table (counted in
    /// `reconcile_timeouts`) so that hedging is not held forever.
    pub fn set_reconcile_timeout(&mut self, now_ns: u64, timeout_ns: u64) {
        self.reconcile_deadline_ns = now_ns.saturating_add(timeout_ns);
    }

    /// Holds hedging until the previous run's orders are reconciled (also used on a first
    /// start over an existing orders ring).
    pub fn begin_reconcile(&mut self, now_ns: u64, quiet_ns: u64) {
        self.reconciling = true;
        self.reconcile_quiet_ns = quiet_ns;
        self.reconcile_deadline_ns = u64::MAX;
        self.last_prev_epoch_activity_ns = now_ns;
    }

    fn prev_run_cancel_resend_ns(&self) -> u64 {
        PREV_RUN_CANCEL_RESEND_NS.max(self.reconcile_quiet_ns)
    }

    /// Cancels every order of a previous run still in flight (restored from the state, or
    /// learnt from its reports), re-sending after [`PREV_RUN_CANCEL_RESEND_NS`]. This run does
    /// not know why those orders were sent: a passive order of the previous run would
    /// otherwise rest at the venue, holding hedging until the reconcile deadline and then
    /// leaving the in-flight table while it can still fill. The venue's answer (`Cancelled`,
    /// or the fill that raced the cancel) ends it as for any order; a cancel of an order that
    /// already ended is ignored by the gateway.
    fn cancel_previous_run<O: OrderSink>(&mut self, now_ns: u64, orders: &mut O) {
        let resend_ns = self.prev_run_cancel_resend_ns();
        for i in 0..self.inflight.len() {
            let o = self.inflight[i];
            if o.coid >> 32 >= self.epoch
                || (o.cancel_sent_ns != 0 && now_ns.saturating_sub(o.cancel_sent_ns) < resend_ns)
            {
                continue;
            }
            let instrument_id = self.und[o.und as usize].policy.instrument.instrument_id;
            let cancel = exec::cancel_of(o.coid, instrument_id, o.sign, o.px, now_ns);
            if orders.push(cancel).is_err() {
                self.stats.orders_ring_full += 1;
                self.ring_blocked = true;
                return;
            }
            self.inflight[i].cancel_sent_ns = now_ns.max(1);
            self.stats.prev_run_cancels += 1;
        }
    }

    #[inline]
    fn add_inflight(&mut self, coid: u64, und: u16, signed_leaves: f64, px: f64) -> bool {
        if self.inflight.len() >= MAX_INFLIGHT {
            return false;
        }
        let sign = if signed_leaves >= 0.0 { 1.0 } else { -1.0 };
        let leaves = signed_leaves.abs();
        self.inflight.push(Inflight {
            coid,
            und,
            sign,
            leaves,
            px,
            cancel_sent_ns: 0,
        });
        let u = &mut self.und[und as usize];
        u.inflight_qty += signed_leaves;
        u.inflight_notional += u.policy.instrument.notional(leaves, px);
        true
    }

    /// Sets the remaining quantity of an order in flight (removing it at zero).
    #[inline]
    fn set_leaves(&mut self, idx: usize, leaves: f64) {
        let o = self.inflight[idx];
        let leaves = leaves.max(0.0).min(o.leaves);
        let u = &mut self.und[o.und as usize];
        u.inflight_qty -= o.sign * (o.leaves - leaves);
        u.inflight_notional -= u.policy.instrument.notional(o.leaves - leaves, o.px);
        if leaves <= 0.0 {
            self.inflight.swap_remove(idx);
            if self.inflight.iter().all(|x| x.und != o.und) {
                // Remove accumulated rounding once nothing is in flight.
                u.inflight_qty = 0.0;
                u.inflight_notional = 0.0;
            }
        } else {
            self.inflight[idx].leaves = leaves;
        }
    }

    /// Applies a control-block change.
    #[inline]
    fn read_control<C: ControlSource>(&mut self, ctl: &C) {
        let g = ctl.generation();
        if g == self.ctl_gen {
            return;
        }
        self.ctl_gen = g;
        self.kill = ctl.kill_switch();
        for u in &mut self.und {
            u.mode = ctl.trading_mode(u.setup.index_id);
            // A kill switch lifted or a mode changed: the next timer decides again.
            u.retry_at_ns = 0;
        }
    }

    /// One loop iteration: control words, all available execs, one market event, and the
    /// decisions they trigger. Returns the amount of work done (0 = idle).
    ///
    /// `now_ns` (monotonic) times the exec reports (reject rate, reconciliation). The market
    /// event's read stamp and the decision and publish stamps come from `clock`, the one
    /// thing that differs between callers (there is one implementation):
    /// - live: [`MonotonicClock`], read as each stage happens, so the stage histograms
    ///   measure the real latency;
    /// - a replay on a recorded clock: [`FixedClock`]`(now_ns)`, so every time-dependent step
    ///   (exec handling, the stamps, min/max hedge interval, the order-rate token bucket, the
    ///   stale-data guard, expiry and trading day through [`HedgerCore::wall_ns`]) uses
    ///   `now_ns` and nothing else reads a clock: the same inputs and times give the same
    ///   orders and state (build the core with `mono_ns == wall_ns` so that `now_ns` is also
    ///   the wall time, e.g. exchange epoch ns);
    /// - a session recorder passes a clock that records what it returns, a session replay
    ///   one that plays it back.
    ///
    /// Allocation-free when `clock` is.
    #[inline(always)]
    pub fn poll<M, E, O, C, T>(
        &mut self,
        md: &mut M,
        execs: &mut E,
        orders: &mut O,
        ctl: &C,
        now_ns: u64,
        clock: &T,
    ) -> usize
    where
        M: MarketSource,
        E: ExecSource,
        O: OrderSink,
        C: ControlSource,
        T: StageClock,
    {
        self.read_control(ctl);
        let mut work = 0;
        // Execs first: a fill changes what we hold.
        while let Some(e) = execs.peek() {
            work += 1;
            self.on_exec(&e, now_ns, orders, clock);
            if work >= 64 {
                break;
            }
        }
        match md.poll() {
            MdPoll::Empty => {}
            MdPoll::Event(e) => {
                work += 1;
                let read_ns = clock.now();
                // The cost-aware band walks the hedge book's depth, which only the
                // last-value table carries: refresh it with the quote.
                if let Some(&Role::Hedge(u)) = self.roles.get(e.instrument_id as usize) {
                    let x = &mut self.und[u as usize];
                    if matches!(x.policy.cfg.rule, BandRule::CostAware { .. }) {
                        if let Some(lv) = md.last_value(e.instrument_id) {
                            x.book.valid = (x.book.valid & !LastValue::HAS_DEPTH)
                                | (lv.valid & LastValue::HAS_DEPTH);
                            x.book.bid_levels = lv.bid_levels;
                            x.book.ask_levels = lv.ask_levels;
                            x.book.bid_depth = lv.bid_depth;
                            x.book.ask_depth = lv.ask_depth;
                        }
                    }
                }
                self.on_market(&e, read_ns, orders, clock);
            }
            MdPoll::Lapped(lost) => {
                work += 1;
                self.on_lapped(lost, md, clock);
            }
        }
        work
    }

    /// Lapped: rebuild every underlying from the last-value table, holding hedging meanwhile.
    fn on_lapped<M: MarketSource, T: StageClock>(&mut self, lost: u64, md: &M, clock: &T) {
        self.stats.md_lapped += 1;
        self.stats.md_lost += lost;
        for u in &mut self.und {
            u.rebuilding = true;
        }
        self.rebuild_impl(md, clock.now());
    }

    /// Rebuilds prices and marks from the last-value table (after a lap, or at startup), at
    /// monotonic time `now_ns` (the clock live, the recorded time in a replay).
    pub fn rebuild<M: MarketSource>(&mut self, md: &M, now_ns: u64) {
        self.rebuild_impl(md, now_ns);
    }

    #[inline]
    fn reject_md(&mut self, r: MdReject) {
        self.stats.md_rejected[r as usize] += 1;
    }

    /// Classifies an invalid event.
    #[inline]
    fn classify_invalid(e: &MarketEvent) -> MdReject {
        let v = match e.kind() {
            Ok(MarketEventKind::Quote) => &e.v[..],
            Ok(MarketEventKind::OptionMark) => &e.v[..3],
            Ok(MarketEventKind::UnderlyingPrice) => &e.v[..1],
            Ok(MarketEventKind::Trade) => &e.v[..2],
            Err(_) => return MdReject::Invalid,
        };
        if v.iter().any(|x| !x.is_finite()) {
            MdReject::NotFinite
        } else if v.iter().any(|&x| x < 0.0) {
            MdReject::Negative
        } else if e.kind() == Ok(MarketEventKind::Quote) && e.v[0] >= e.v[2] && e.v[0] > 0.0 {
            MdReject::Crossed
        } else if v.contains(&0.0) {
            MdReject::Zero
        } else {
            MdReject::Invalid
        }
    }

    /// Applies one market event and decides: at once, or, inside a snapshot batch
    /// ([`MarketEvent::FLAG_BATCH_MORE`]), at the batch's last event for every underlying the
    /// batch touched, so no decision sees a half-applied snapshot.
    #[inline]
    fn on_market<O: OrderSink, T: StageClock>(
        &mut self,
        e: &MarketEvent,
        read_ns: u64,
        orders: &mut O,
        clock: &T,
    ) {
        let touched = self.apply_market(e, read_ns);
        if e.flags & MarketEvent::FLAG_BATCH_MORE != 0 {
            if let Some(u) = touched {
                self.und[u as usize].batch_pending = true;
                self.batch_open = true;
            }
            return;
        }
        if self.batch_open {
            self.batch_open = false;
            for u in 0..self.und.len() {
                if self.und[u].batch_pending || touched == Some(u as u16) {
                    self.und[u].batch_pending = false;
                    self.maybe_hedge(u, e.recv_ts_ns, read_ns, orders, clock);
                }
            }
        } else if let Some(u) = touched {
            self.maybe_hedge(u as usize, e.recv_ts_ns, read_ns, orders, clock);
        }
    }

    /// Applies one market event to prices, book and risk; returns the underlying it moved
    /// (None: rejected, ignored or not this hedger's).
    #[inline]
    fn apply_market(&mut self, e: &MarketEvent, read_ns: u64) -> Option<u16> {
        self.stats.md_events += 1;
        self.latency.record_read(e.recv_ts_ns, read_ns);
        // After a rebuild the ring still holds events older than the last values just read:
        // applying them would move prices back in time. Older is per instrument: the feed
        // goes on while the rebuild reads the table entry by entry, so an event published
        // after its instrument's entry was read, but numbered below an entry read later,
        // is newer than what the core holds and is applied (with one maximum over all
        // entries it was skipped, and that instrument kept the older value until its next
        // update). Once past the highest entry read, the check is off (a feed restarted
        // from seq 1 later is not skipped).
        if self.rebuilt_seq != 0 && e.seq != 0 {
            if e.seq > self.rebuilt_seq {
                self.rebuilt_seq = 0;
            } else if self.memo.older_than_read(e.instrument_id, e.seq) {
                self.stats.md_older_than_rebuild += 1;
                return None;
            }
        }
        let Some(&role) = self.roles.get(e.instrument_id as usize) else {
            self.reject_md(MdReject::UnknownInstrument);
            return None;
        };
        if !e.is_valid() {
            let r = Self::classify_invalid(e);
            self.reject_md(r);
            return None;
        }
        if self.exchange_clock && e.exch_ts_ns != 0 {
            self.wall_minus_mono = e.exch_ts_ns as i128 - read_ns as i128;
            if !self.clock_ready {
                // Once: the risk book's clock starts at the market's.
                self.clock_ready = true;
                self.risk.start_clock(e.exch_ts_ns);
            }
        }
        self.apply_role(role, e, read_ns)
    }

    /// Applies a valid event of an instrument with role `role`; returns its underlying, or
    /// `None` when the event means nothing for the book (ignored or rejected, counted).
    #[inline]
    fn apply_role(&mut self, role: Role, e: &MarketEvent, read_ns: u64) -> Option<u16> {
        let u = match role {
            Role::None => {
                self.stats.md_ignored += 1;
                return None;
            }
            Role::Index(u) => {
                if let Some(px) = e.as_underlying_price() {
                    let x = &mut self.und[u as usize];
                    x.index_px = px;
                    x.index_ts_ns = e.recv_ts_ns;
                    self.risk.on_underlying(u as usize, px);
                } else {
                    self.stats.md_ignored += 1;
                    return None;
                }
                u
            }
            Role::Forward(u) => {
                let Some(px) = e.as_underlying_price() else {
                    self.stats.md_ignored += 1;
                    return None;
                };
                self.risk.on_forward(e.instrument_id, px);
                u
            }
            Role::Hedge(u) => {
                if e.kind == MarketEventKind::Quote as u8 {
                    let x = &mut self.und[u as usize];
                    x.book.apply(e);
                    x.book_ts_ns = e.recv_ts_ns;
                    x.pstate.observe_book(&x.policy.cfg, e.v[0], e.v[2]);
                    if x.setup.index_id == e.instrument_id {
                        // Hedged with the underlying itself (a spot or perpetual with no
                        // separate index): its mid is the underlying price.
                        let mid = 0.5 * (e.v[0] + e.v[2]);
                        x.index_px = mid;
                        x.index_ts_ns = e.recv_ts_ns;
                        self.risk.on_underlying(u as usize, mid);
                    }
                } else {
                    self.stats.md_ignored += 1;
                    return None;
                }
                u
            }
            Role::Option { und, opt } => {
                let Some((_, iv, fwd)) = e.as_option_mark() else {
                    self.stats.md_ignored += 1;
                    return None;
                };
                let wall = self.wall_ns(read_ns);
                if self.defs[e.instrument_id as usize].expiry_ns <= wall {
                    self.reject_md(MdReject::ExpiredOption);
                    return None;
                }
                self.risk.on_mark(opt as usize, iv, fwd, wall);
                self.memo.applied(e.instrument_id, e.seq);
                und
            }
        };
        Some(u)
    }

    #[inline]
    fn find_inflight(&self, coid: u64) -> Option<usize> {
        self.inflight.iter().position(|o| o.coid == coid)
    }

    /// One exec report: deduplicated by exec id, decoded, then applied by kind.
    #[inline]
    fn on_exec<O: OrderSink, T: StageClock>(
        &mut self,
        e: &ExecEvent,
        now_ns: u64,
        orders: &mut O,
        clock: &T,
    ) {
        self.uncommitted_execs += 1;
        if e.exec_id <= self.last_exec_id {
            self.stats.execs_duplicate += 1;
            return;
        }
        self.last_exec_id = e.exec_id;
        self.stats.execs_processed += 1;
        let (Ok(kind), Ok(side)) = (e.kind(), e.side()) else {
            self.stats.execs_bad += 1;
            return;
        };
        let role = self
            .roles
            .get(e.instrument_id as usize)
            .copied()
            .unwrap_or(Role::None);
        let prev_epoch = e.client_order_id >> 32 < self.epoch && e.client_order_id != 0;
        if prev_epoch {
            self.last_prev_epoch_activity_ns = now_ns;
        }
        match kind {
            ExecKind::OptionTrade => self.on_option_trade(e, side, role, now_ns, orders, clock),
            ExecKind::Ack => {
                if self.find_inflight(e.client_order_id).is_none() && prev_epoch {
                    if let Role::Hedge(u) = role {
                        self.stats.reconciled_orders += 1;
                        self.add_inflight(
                            e.client_order_id,
                            u,
                            side.sign() * e.leaves_qty,
                            e.price,
                        );
                    }
                }
            }
            ExecKind::Fill | ExecKind::PartialFill => {
                let u = self.on_hedge_fill(e, kind, side, role, prev_epoch, now_ns);
                self.decide_after_order(u, e, orders, clock);
            }
            ExecKind::Cancelled | ExecKind::Rejected => {
                let u = self.on_order_end(e, kind, role, now_ns);
                self.decide_after_order(u, e, orders, clock);
            }
        }
    }

    /// A report that ended a passive order being cancelled: decide now (the cross or the
    /// replacement), unless a snapshot batch is open (then the batch's end decides).
    #[inline]
    fn decide_after_order<O: OrderSink, T: StageClock>(
        &mut self,
        u: Option<usize>,
        e: &ExecEvent,
        orders: &mut O,
        clock: &T,
    ) {
        let Some(u) = u else { return };
        if !self.after_order_report(u, e.client_order_id, e.kind == ExecKind::Fill as u8) {
            return;
        }
        if self.batch_open {
            self.und[u].batch_pending = true;
        } else {
            let read = clock.now();
            self.maybe_hedge(u, e.ts_ns, read, orders, clock);
        }
    }

    /// A client option trade: inventory (or the settlement record of an expired option),
    /// then a decision (the fill trigger's).
    #[inline]
    fn on_option_trade<O: OrderSink, T: StageClock>(
        &mut self,
        e: &ExecEvent,
        side: shm_layout::Side,
        role: Role,
        now_ns: u64,
        orders: &mut O,
        clock: &T,
    ) {
        let Role::Option { und, opt } = role else {
            self.stats.execs_bad += 1;
            return;
        };
        if !(e.qty.is_finite() && e.qty > 0.0) {
            self.stats.execs_bad += 1;
            return;
        }
        // Cash-settled at expiry: a trade in it now cannot be risk (it would be a phantom
        // delta forever). It was executed before the expiry and delivered late: kept in the
        // option's settlement record (settled first if the loop has not yet), counted for the
        // operator to reconcile with the venue.
        let wall = self.wall_ns(now_ns);
        let settled = self.risk.settlement(opt as usize).is_some();
        if settled || self.defs[e.instrument_id as usize].expiry_ns <= wall {
            if !settled {
                self.settle_expired(wall);
            }
            if self
                .risk
                .add_settled_trade(opt as usize, side.sign() * e.qty)
            {
                self.persist_dirty.mark(opt as usize);
                self.stats.option_trades_expired += 1;
                self.refresh_settlement_gauges();
            } else {
                // Not settled (the market clock is not known yet): nowhere to keep it.
                self.stats.option_trades_unrecorded += 1;
            }
            return;
        }
        self.stats.option_trades += 1;
        let q = self.risk.position(opt as usize) + side.sign() * e.qty;
        self.risk.set_position(opt as usize, q);
        self.persist_dirty.mark(opt as usize);
        self.und[und as usize].pstate.option_fill_pending = true;
        if self.batch_open {
            // Mid-snapshot: decided with the rest of the batch.
            self.und[und as usize].batch_pending = true;
        } else {
            let read = clock.now();
            self.maybe_hedge(und as usize, e.ts_ns, read, orders, clock);
        }
    }

    /// A fill of a hedge order: position (once per exec id), fill limits, the order's
    /// leaves in flight, and the passive order's episode.
    #[inline]
    fn on_hedge_fill(
        &mut self,
        e: &ExecEvent,
        kind: ExecKind,
        side: shm_layout::Side,
        role: Role,
        prev_epoch: bool,
        now_ns: u64,
    ) -> Option<usize> {
        let Role::Hedge(u) = role else {
            self.stats.execs_bad += 1;
            return None;
        };
        if !(e.qty.is_finite() && e.qty >= 0.0) {
            self.stats.execs_bad += 1;
            return None;
        }
        let day = self.wall_ns(now_ns) / 86_400_000_000_000;
        let x = &mut self.und[u as usize];
        x.hedge_position += side.sign() * e.qty;
        x.retry_at_ns = 0;
        if e.qty > 0.0 {
            x.exec.episode_filled = true;
        }
        let notional = x.policy.instrument.notional(e.qty, e.price);
        x.limits.on_fill(day, notional);
        let terminal = kind == ExecKind::Fill;
        if terminal {
            self.stats.orders_filled += 1;
        } else {
            self.stats.orders_partially_filled += 1;
        }
        match self.find_inflight(e.client_order_id) {
            Some(i) => {
                let leaves = if terminal { 0.0 } else { e.leaves_qty };
                self.set_leaves(i, leaves);
            }
            None => {
                if !terminal && prev_epoch && e.leaves_qty > 0.0 {
                    self.stats.reconciled_orders += 1;
                    self.add_inflight(e.client_order_id, u, side.sign() * e.leaves_qty, e.price);
                }
            }
        }
        Some(u as usize)
    }

    /// A cancel (IOC remainder, a passive order cancelled) or a reject: what was in flight
    /// is not any more.
    #[inline]
    fn on_order_end(
        &mut self,
        e: &ExecEvent,
        kind: ExecKind,
        role: Role,
        now_ns: u64,
    ) -> Option<usize> {
        if kind == ExecKind::Rejected {
            self.stats.orders_rejected += 1;
            if let Role::Hedge(u) = role {
                self.und[u as usize].limits.on_reject(now_ns);
            } else if let Some(i) = self.find_inflight(e.client_order_id) {
                let u = self.inflight[i].und;
                self.und[u as usize].limits.on_reject(now_ns);
            }
        } else {
            self.stats.orders_cancelled += 1;
        }
        if let Some(i) = self.find_inflight(e.client_order_id) {
            // What was in flight is not any more: the next timer decides again.
            let u = self.inflight[i].und as usize;
            self.und[u].retry_at_ns = 0;
            self.set_leaves(i, 0.0);
            return Some(u);
        }
        None
    }

    /// Earliest monotonic time at which [`HedgerCore::on_timer`] (with
    /// [`HedgerCore::idle_risk`]) may act differently from the decisions already taken:
    /// `0` for "at the next timer", `u64::MAX` when only a market event, an exec or a
    /// control change can make a difference. The live loop runs its timer every millisecond
    /// regardless; a discrete-event replay jumps to this time instead of stepping through
    /// timers that cannot act. Covers: a hedge held by the minimum interval or the order
    /// rate, an exec that changed the position or what is in flight, the safety re-hedge
    /// (`max_interval`), reconciliation (quiet period and deadline), a full orders ring,
    /// and the next expiry to settle. Not covered: the slow drift of the options' delta with
    /// time alone between events (the replay takes it at the next event).
    pub fn timer_due_ns(&self) -> u64 {
        if self.ring_blocked {
            return 0;
        }
        let mut due = u64::MAX;
        if self.reconciling {
            due = due.min(self.reconcile_deadline_ns).min(
                self.last_prev_epoch_activity_ns
                    .saturating_add(self.reconcile_quiet_ns),
            );
            for o in self.inflight.iter().filter(|o| o.coid >> 32 < self.epoch) {
                due = due.min(match o.cancel_sent_ns {
                    0 => 0,
                    t => t.saturating_add(self.prev_run_cancel_resend_ns()),
                });
            }
        }
        if self.clock_ready && self.next_settle_ns != u64::MAX {
            let mono = self.next_settle_ns as i128 - self.wall_minus_mono;
            due = due.min(mono.clamp(0, u64::MAX as i128) as u64);
        }
        for (u, x) in self.und.iter().enumerate() {
            due = due.min(x.retry_at_ns).min(self.exec_due_ns(u));
            let cfg = &x.policy.cfg;
            if cfg.max_interval_ns > 0 && cfg.rule != BandRule::None {
                let since = x.pstate.last_hedge_ns.unwrap_or(x.pstate.started_ns);
                due = due.min(since.saturating_add(cfg.max_interval_ns));
            }
            if cfg.exec.trigger == Trigger::Timer && cfg.rule != BandRule::None {
                let since = x.pstate.last_hedge_ns.unwrap_or(x.pstate.started_ns);
                due = due.min(since.saturating_add(cfg.exec.interval_ns));
            }
        }
        due
    }

    /// Timer-driven decisions (safety re-hedge, reconciliation end, passive and slice
    /// work): call in idle time. `now_ns` times the timers and the decisions' read stamp; the
    /// decision and publish stamps come from `clock` ([`MonotonicClock`] live,
    /// [`FixedClock`]`(now_ns)` on a recorded clock; see [`HedgerCore::poll`]).
    pub fn on_timer<O: OrderSink, T: StageClock>(
        &mut self,
        orders: &mut O,
        now_ns: u64,
        clock: &T,
    ) {
        if self.ring_blocked && orders.pending() == 0 {
            self.ring_blocked = false;
        }
        if self.reconciling {
            self.cancel_previous_run(now_ns, orders);
        }
        if self.reconciling && now_ns >= self.reconcile_deadline_ns {
            let epoch = self.epoch;
            while let Some(i) = self.inflight.iter().position(|o| o.coid >> 32 < epoch) {
                self.stats.reconcile_timeouts += 1;
                self.set_leaves(i, 0.0);
            }
            self.reconciling = false;
        }
        if self.reconciling
            && !self.inflight.iter().any(|o| o.coid >> 32 < self.epoch)
            && orders.pending() == 0
            && now_ns.saturating_sub(self.last_prev_epoch_activity_ns) >= self.reconcile_quiet_ns
        {
            self.reconciling = false;
        }
        for u in 0..self.und.len() {
            self.maybe_hedge(u, 0, now_ns, orders, clock);
        }
    }

    /// Evaluates one underlying: risk, then the working order (a resting passive order, a
    /// slice program) or a new decision, limits, publish.
    #[inline]
    fn maybe_hedge<O: OrderSink, T: StageClock>(
        &mut self,
        u: usize,
        feed_recv_ns: u64,
        read_ns: u64,
        orders: &mut O,
        clock: &T,
    ) {
        let dpc = self.refresh_net_delta(u, read_ns);
        let x = &mut self.und[u];
        x.retry_at_ns = u64::MAX;
        if x.rebuilding || self.reconciling || self.ring_blocked {
            x.held += 1;
            return;
        }
        if self.work_passive(u, dpc, read_ns, orders) {
            return;
        }
        let mut st = Stamps {
            feed_recv_ns,
            read_ns,
            decision_ns: read_ns,
        };
        if self.work_slices(u, dpc, st, orders, clock) {
            return;
        }
        let snap = self.risk_snapshot(u, self.und[u].net_delta);
        let x = &mut self.und[u];
        let (decision, band) = x
            .policy
            .decide_with_band(&x.pstate, &snap, &x.book, read_ns);
        match decision {
            Decision::Hold(h) => self.on_hold(u, h, &snap, band),
            Decision::Hedge(d) => {
                // The decision stamp, only for an order: a hold reads no clock (and records
                // no stamp in the session journal).
                st.decision_ns = clock.now();
                let x = &mut self.und[u];
                x.band = d.band;
                x.pstate.option_fill_pending = false;
                self.execute_decision(u, &d, st, orders, clock);
                let x = &mut self.und[u];
                x.net_delta = x.option_delta + (x.hedge_position + x.inflight_qty) * dpc;
            }
        }
    }

    /// Settles expiries due, then refreshes the options' greeks and net delta (with the
    /// hedge position and what is in flight) of `u`; returns the hedge's delta per contract
    /// (0 without a usable book).
    #[inline]
    fn refresh_net_delta(&mut self, u: usize, read_ns: u64) -> f64 {
        // Settle expiries first: one comparison, settlement O(options of the expiry) once.
        let wall = self.wall_ns(read_ns);
        if wall >= self.next_settle_ns && self.clock_ready {
            self.settle_expired(wall);
        }
        let option_delta = self.risk.delta(u);
        let gamma = self.risk.gamma(u);
        let vega = self.risk.vega(u);
        let x = &mut self.und[u];
        x.option_delta = option_delta;
        x.gamma = gamma;
        x.vega = vega;
        let (bid, ask) = (x.book.bid_px, x.book.ask_px);
        let book_ok = x.book.valid & LastValue::HAS_QUOTE != 0 && bid > 0.0 && ask > bid;
        let dpc = if book_ok {
            x.policy.instrument.delta_per_contract(0.5 * (bid + ask))
        } else {
            0.0
        };
        x.net_delta = option_delta + (x.hedge_position + x.inflight_qty) * dpc;
        dpc
    }

    /// A decision to hold: counted by reason; when the timer should look again; the band
    /// shown (`band`: the one the decision computed for `snap`, if it did); a passive
    /// episode or a trigger that no longer applies is dropped.
    #[inline]
    fn on_hold(&mut self, u: usize, h: HoldReason, snap: &RiskSnapshot, band: Option<f64>) {
        let x = &mut self.und[u];
        x.holds[hold_index(h)] += 1;
        let last = x.pstate.last_hedge_ns.unwrap_or(0);
        match h {
            HoldReason::MinInterval => {
                x.retry_at_ns = last.saturating_add(x.policy.cfg.min_interval_ns);
            }
            HoldReason::Horizon => {
                x.retry_at_ns = last.saturating_add(x.policy.cfg.holding_horizon_ns);
            }
            HoldReason::InsideBand | HoldReason::BelowMinSize => {
                // Nothing left to hedge: no cross or replacement pending, no fill trigger.
                x.exec.cancel_for = None;
                x.exec.episode_start_ns = 0;
                x.pstate.option_fill_pending = false;
            }
            _ => {}
        }
        if matches!(x.policy.cfg.rule, BandRule::Fixed { .. }) || h == HoldReason::InsideBand {
            // `snap.net_delta` is `x.net_delta`: the decision's band for hedging to zero.
            x.band =
                band.unwrap_or_else(|| x.policy.band(&x.pstate, snap, &x.book, -x.net_delta).0);
        }
        if x.policy.cfg.exec.trigger == Trigger::Timer && x.policy.cfg.rule != BandRule::None {
            let since = x.pstate.last_hedge_ns.unwrap_or(x.pstate.started_ns);
            x.retry_at_ns = x
                .retry_at_ns
                .min(since.saturating_add(x.policy.cfg.exec.interval_ns));
        }
    }

    /// The breach counters of an underlying, by [`LimitBreach`].
    pub fn limit_rejects(&self, u: usize, b: LimitBreach) -> u64 {
        self.und[u].limits.counters.get(b)
    }
}

impl<R: OptionRisk> std::fmt::Debug for HedgerCore<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HedgerCore")
            .field("epoch", &self.epoch)
            .field("last_exec_id", &self.last_exec_id)
            .field("inflight", &self.inflight.len())
            .field("stats", &self.stats)
            .finish()
    }
}
