//! The live hedger: shared-memory adapters for [`super::io`] and the process's run loop.
//!
//! The loop drives the core through the session recorder's wrappers
//! ([`super::journal`]); [`build_core`] is how a core starts, shared with the session
//! replay so that both start identically.

use super::core::{hedge_instrument, HedgerCore, SetupError, UnderlyingSetup};
use super::counters::{HedgerCounter, Metrics};
use super::io::{ControlSource, MarketSource, MdPoll};
use super::journal::{
    header_records, Header, JournalConfig, Record, RecordKind, Recorder, RecordingClock,
    RecordingControl, RecordingExecs, RecordingMarket, RecordingOrders, Tap, JOURNAL_VERSION,
};
use super::latency::IntervalLogThread;
use super::risk::BookRiskAdapter;
use super::state::{PersistState, StateStore, StateWriter};
use super::Housekeeping;
use crate::config::{HedgerConfig, RuntimeSection};
use crate::limits::TradingMode;
use anyhow::Context as _;
use shm_layout::agent::{Agent, AgentRunner, RunnerConfig};
use shm_layout::process::{Backoff, IdleStrategy, PinOutcome};
use shm_layout::{
    namespace_dir, BroadcastReader, ControlBlock, CountersReader, CountersWriter, ExecEvent,
    HedgeOrder, InstrumentKind, InstrumentTable, LastValue, LastValueTable, Liveness, MarketEvent,
    OpenOptions, Poll, ProcessState, SegmentError, SpscConsumer, SpscProducer, TradingState,
};
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Market data from the md ring and the last-value table.
pub struct ShmMarket {
    /// Ring reader.
    pub reader: BroadcastReader<MarketEvent>,
    /// Last values.
    pub lvt: LastValueTable,
}

impl MarketSource for ShmMarket {
    #[inline]
    fn poll(&mut self) -> MdPoll {
        match self.reader.poll() {
            Poll::Empty => MdPoll::Empty,
            Poll::Message(m) => MdPoll::Event(m),
            // Lapped: the core rebuilds from the last-value table, which holds every event
            // up to the writer's position (the feed writes the table before the ring), and
            // then skips the events the ring still holds that are older than what it rebuilt
            // from (`rebuilt_seq`). So go to the writer's position at once: reading from the
            // oldest readable event instead let the writer lap the reader again during or
            // right after the rebuild (a whole 10,000-option rebuild per lap at saturation).
            // The skipped events are counted as lost.
            Poll::Lapped { lost } => MdPoll::Lapped(lost + self.reader.skip_to_writer()),
        }
    }
    #[inline]
    fn last_value(&self, id: u32) -> Option<LastValue> {
        self.lvt.read(id)
    }
}

impl ControlSource for ControlBlock {
    #[inline]
    fn generation(&self) -> u64 {
        ControlBlock::generation(self)
    }
    #[inline]
    fn kill_switch(&self) -> bool {
        ControlBlock::kill_switch(self)
    }
    #[inline]
    fn trading_mode(&self, id: u32) -> TradingMode {
        match self.trading_state(id) {
            TradingState::Active => TradingMode::Active,
            TradingState::ReduceOnly => TradingMode::ReduceOnly,
            TradingState::Halted => TradingMode::Halted,
        }
    }
}

/// The hedger's idle phases (`runtime.idle`), Agrona's `BackoffIdleStrategy` with long spins:
/// 10 000 spins before `spin-then-yield` yields; `backoff-park` spins 10 000 times, yields 100
/// times, then sleeps 1, 2, 4 ... 512 us, then 1 ms between polls. The loop resets it whenever
/// an iteration did work.
pub const IDLE_BACKOFF: Backoff = Backoff {
    spins_before_yield: 10_000,
    park_spins: 10_000,
    park_yields: 100,
    first_park: Duration::from_micros(1),
    max_park: Duration::from_millis(1),
};

/// The segment directory of a config: `[shm] dir`, else `/dev/shm/<namespace>`.
///
/// # Errors
/// A namespace that is not `[A-Za-z0-9_-]{1,64}`.
pub fn segment_dir(cfg: &HedgerConfig) -> Result<PathBuf, shm_layout::NamespaceError> {
    match &cfg.shm.dir {
        Some(d) => Ok(d.clone()),
        None => namespace_dir(&cfg.shm.namespace),
    }
}

/// What a run did (printed at shutdown).
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// Loop counters.
    pub stats: super::core::Stats,
    /// Client-order-id epoch of this run.
    pub epoch: u64,
    /// Hedge positions by underlying.
    pub positions: Vec<(String, f64)>,
}

/// Resolves the config's underlyings against the instruments table.
///
/// # Errors
/// An unknown symbol or a wrong instrument kind, naming the config key.
pub fn resolve(
    cfg: &HedgerConfig,
    defs: &[shm_layout::InstrumentDef],
) -> Result<Vec<UnderlyingSetup>, SetupError> {
    let find = |sym: &str, key: String| {
        defs.iter()
            .find(|d| d.symbol() == sym)
            .copied()
            .ok_or(SetupError::UnknownSymbol {
                key,
                symbol: sym.into(),
            })
    };
    let mut out = Vec::new();
    for (name, u) in &cfg.underlyings {
        let idx = find(name, format!("underlyings.{name}"))?;
        // An index, or an instrument that is its own underlying (a spot equity, a perpetual
        // with no separate index in the data).
        if !matches!(
            idx.kind(),
            Ok(InstrumentKind::Index
                | InstrumentKind::Spot
                | InstrumentKind::Perpetual
                | InstrumentKind::Future)
        ) {
            return Err(SetupError::WrongKind {
                key: format!("underlyings.{name}"),
                symbol: name.clone(),
                kind: idx.kind().map_or("unknown kind", |k| k.name()),
                expected: "index, spot, perpetual or future",
            });
        }
        let hkey = format!("underlyings.{name}.hedge_instrument");
        let h = find(&u.hedge_instrument, hkey.clone())?;
        let hedge = hedge_instrument(&h, &hkey)?;
        if out
            .iter()
            .any(|s: &UnderlyingSetup| s.hedge.instrument_id == hedge.instrument_id)
        {
            // Fills are attributed to an underlying by their instrument: one owner each.
            return Err(SetupError::WrongKind {
                key: hkey,
                symbol: u.hedge_instrument.clone(),
                kind: "hedge instrument already used by another underlying",
                expected: "one hedge instrument per underlying",
            });
        }
        out.push(UnderlyingSetup {
            name: name.clone(),
            index_id: idx.id,
            hedge,
            policy: u
                .policy_config()
                .map_err(|(f, m)| SetupError::State(format!("{f}: {m}")))?,
            limits: u
                .limits_config()
                .map_err(|(f, m)| SetupError::State(format!("{f}: {m}")))?,
            rate: u.rate,
            initial_hedge_position: u.initial_hedge_position,
        });
    }
    Ok(out)
}

/// Opens a segment, waiting up to `wait` for it to appear, in short steps so that a stop
/// request during startup is honoured at once (`Ok(None)`).
fn wait_open<T>(
    stop: &AtomicBool,
    wait: OpenOptions,
    open: impl Fn(OpenOptions) -> Result<T, SegmentError>,
) -> Result<Option<T>, SegmentError> {
    let deadline = std::time::Instant::now() + wait.wait;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match open(OpenOptions::wait(left.min(Duration::from_millis(50)))) {
            Ok(t) => return Ok(Some(t)),
            Err(SegmentError::Missing { .. } | SegmentError::NotInitialized { .. })
                if !left.is_zero() =>
            {
                if stop.load(Ordering::Relaxed) {
                    return Ok(None);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// What a core starts from: the instruments, the restored state (None: a first start), the
/// clocks read together at start and whether the orders ring held unconsumed orders.
#[derive(Debug, Clone)]
pub struct StartPoint<'a> {
    /// Instrument definitions (the instruments segment).
    pub defs: Vec<shm_layout::InstrumentDef>,
    /// The state snapshot to restore.
    pub state: Option<&'a PersistState>,
    /// Monotonic ns at start.
    pub mono_ns: u64,
    /// Wall ns at start.
    pub wall_ns: u64,
    /// The orders ring was not empty at a first start (reconcile before hedging).
    pub orders_pending: bool,
}

/// Builds the core as the live hedger starts it: config resolution, risk book, market clock,
/// then the restored state (and reconciliation) or the config's initial positions. The
/// session replay calls this too, with the journal's header, so both start identically.
///
/// # Errors
/// Config symbols unknown, a state naming what this configuration does not have.
pub fn build_core(
    cfg: &HedgerConfig,
    start: StartPoint<'_>,
) -> anyhow::Result<HedgerCore<BookRiskAdapter>> {
    let setups = resolve(cfg, &start.defs)?;
    let index_ids: Vec<u32> = setups.iter().map(|s| s.index_id).collect();
    let n_options = start
        .defs
        .iter()
        .filter(|d| d.kind() == Ok(InstrumentKind::Option))
        .count();
    let (now, wall) = (start.mono_ns, start.wall_ns);
    let risk = BookRiskAdapter::new(&index_ids, start.defs.len() as u32, n_options, wall);
    let mut core = HedgerCore::new(start.defs, setups, risk, now, wall);
    core.set_exchange_clock(cfg.runtime.market_clock == crate::config::MarketClock::Exchange);
    let quiet_ns = cfg.runtime.reconcile_quiet_ms * 1_000_000;
    let timeout_ns = cfg.runtime.reconcile_timeout_ms * 1_000_000;
    match start.state {
        Some(st) => {
            core.restore(st, now, quiet_ns)?;
            core.set_reconcile_timeout(now, timeout_ns);
        }
        None => {
            for p in &cfg.positions {
                core.set_option_position(&p.symbol, p.qty)?;
            }
            if start.orders_pending {
                core.begin_reconcile(now, quiet_ns);
                core.set_reconcile_timeout(now, timeout_ns);
            }
        }
    }
    Ok(core)
}

/// The segments the loop reads and writes.
struct Segments {
    cnc: CountersWriter,
    control: ControlBlock,
    orders: SpscProducer<HedgeOrder>,
    defs: Vec<shm_layout::InstrumentDef>,
    market: ShmMarket,
    execs: SpscConsumer<ExecEvent>,
}

/// Creates the hedger's segments and opens the feed's and the gateway's (None: stopped
/// while waiting).
fn open_segments(cfg: &HedgerConfig, stop: &AtomicBool) -> anyhow::Result<Option<Segments>> {
    let dir = segment_dir(cfg)?;
    shm_layout::private::create_dir_all(&dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let wait = OpenOptions::wait(Duration::from_millis(cfg.shm.open_wait_ms));
    let on_stale = cfg.shm.on_stale;
    let cnc = CountersWriter::create(&dir, super::ROLE, on_stale)
        .context("creating the hedger's counters segment")?;
    cnc.set_state(ProcessState::Starting);
    cnc.heartbeat();
    let control = ControlBlock::create(&dir, on_stale).context("creating the control block")?;
    let orders = SpscProducer::create(&dir, &cfg.shm.orders, cfg.shm.orders_capacity, on_stale)
        .context("creating the orders ring")?;
    let Some(instruments) = wait_open(stop, wait, |o| {
        InstrumentTable::open(&dir, &cfg.shm.instruments, o)
    })
    .context("opening the instruments segment (is the feed handler running?)")?
    else {
        return Ok(None);
    };
    let defs: Vec<_> = instruments.defs().to_vec();
    let Some(lvt) = wait_open(stop, wait, |o| LastValueTable::open(&dir, &cfg.shm.lvt, o))
        .context("opening the last-value table")?
    else {
        return Ok(None);
    };
    let Some(reader) = wait_open(stop, wait, |o| BroadcastReader::open(&dir, &cfg.shm.md, o))
        .context("opening the md ring")?
    else {
        return Ok(None);
    };
    let Some(execs) = wait_open(stop, wait, |o| {
        SpscConsumer::<ExecEvent>::open(&dir, &cfg.shm.execs, o)
    })
    .context("opening the execs ring (is the order gateway running?)")?
    else {
        return Ok(None);
    };
    Ok(Some(Segments {
        cnc,
        control,
        orders,
        defs,
        market: ShmMarket { reader, lvt },
        execs,
    }))
}

/// The session recorder of a config (None: `runtime.session_record = false`).
///
/// # Errors
/// The session directory or its first file cannot be created.
pub fn start_recorder(cfg: &HedgerConfig) -> anyhow::Result<Option<Recorder>> {
    let r = &cfg.runtime;
    if !r.session_record {
        return Ok(None);
    }
    let jc = JournalConfig {
        dir: r.state_dir.join("session"),
        file_max_bytes: r.session_file_max_mb.saturating_mul(1 << 20),
        files_kept: r.session_files_kept,
        queue_records: r.session_queue_records,
    };
    Recorder::start(&jc)
        .map(Some)
        .with_context(|| format!("starting the session journal in {}", jc.dir.display()))
}

/// The loop's inputs and outputs, each recording into the session journal.
struct Io<'t> {
    md: RecordingMarket<'t, ShmMarket>,
    execs: RecordingExecs<'t, SpscConsumer<ExecEvent>>,
    orders: RecordingOrders<'t, SpscProducer<HedgeOrder>>,
    ctl: RecordingControl<'t, ControlBlock>,
    clock: RecordingClock<'t>,
    tap: &'t RefCell<Tap>,
}

impl Io<'_> {
    /// Sets the core's view of the gateway's liveness, recording a change.
    fn set_gateway_alive(&self, core: &mut HedgerCore<BookRiskAdapter>, alive: bool) {
        if core.gateway_alive != alive {
            self.tap.borrow_mut().push_driver(Record::new(
                RecordKind::GatewayAlive,
                alive as u32,
                0,
            ));
            core.gateway_alive = alive;
        }
    }
}

/// Runs the hedger until `stop` is set: [`HedgerAgent`] on the [`AgentRunner`]. Startup
/// errors and state-write errors are returned; bad market data and rejects are counted, never
/// fatal.
///
/// # Errors
/// Segments missing or incompatible, config symbols unknown, state unreadable or unwritable.
pub fn run(cfg: &HedgerConfig, stop: &AtomicBool) -> anyhow::Result<RunSummary> {
    let Some(seg) = open_segments(cfg, stop)? else {
        return Ok(RunSummary {
            stats: Default::default(),
            epoch: 0,
            positions: Vec::new(),
        });
    };
    let now = shm_layout::clock::now_ns();
    let wall = shm_layout::clock::wall_ns();
    let mut store = StateStore::open(&cfg.runtime.state_dir, cfg.runtime.fsync)?;
    let restored = store.load()?;
    refuse_lost_state(cfg, &store, &seg, restored.is_some())?;
    let start = StartPoint {
        defs: seg.defs.clone(),
        state: restored.as_ref(),
        mono_ns: now,
        wall_ns: wall,
        orders_pending: restored.is_none() && !seg.orders.is_empty(),
    };
    let core = build_core(cfg, start.clone())?;
    warn_at_start(&core, &store, restored.as_ref());
    // Persist the new epoch before the first order: client order ids stay unique.
    store.save(&core.persist_state())?;

    pin_side_threads(&cfg.runtime);
    let mut recorder = start_recorder(cfg)?;
    let tap = RefCell::new(recorder.as_mut().map_or_else(Tap::off, Recorder::tap));
    tap.borrow_mut().set_blocking(true);
    if tap.borrow().is_on() {
        for r in header_records(&session_header(cfg, &start), &seg.defs) {
            tap.borrow_mut().push(r);
        }
    }
    let mut agent = HedgerAgent::new(cfg, core, seg, &tap, recorder, store, now)?;
    AgentRunner::new(runner_config(cfg)).run(&mut agent, stop)?;
    Ok(agent.summary())
}

/// Pins this thread to `housekeeping_core` before it starts the side threads (session journal
/// writer, state writer, histogram log), which inherit its affinity; the runner then pins it
/// to the loop's core. Only with a loop core, when both are available to the process (a loop
/// that could not have its core must not be left on the housekeeping one); otherwise a
/// warning and nothing changes.
fn pin_side_threads(r: &RuntimeSection) {
    let Some(hk) = r.housekeeping_core else {
        return;
    };
    let allowed = shm_layout::process::allowed_cores();
    let Some(core) = r
        .core
        .filter(|c| allowed.contains(c) && allowed.contains(&hk))
    else {
        eprintln!(
            "hedger: warning: runtime.housekeeping_core = {hk} ignored: it needs runtime.core, \
             and both among the process's cores ({allowed:?})"
        );
        return;
    };
    if core == hk {
        eprintln!("hedger: warning: runtime.housekeeping_core is the loop's core {core}: the side threads share it");
    }
    match shm_layout::process::pin_current_thread(Some(hk)) {
        o @ PinOutcome::Pinned(_) => {
            eprintln!("hedger: side threads (session journal, state, histogram log) {o}");
        }
        o => eprintln!("hedger: warning: side threads: {o}"),
    }
}

/// The runner's settings from the config: the hedger's core and idle strategy
/// ([`IDLE_BACKOFF`]), the heartbeat and counters every `stats_interval_ms`, duties every 256
/// busy cycles; no drain (orders in flight are reconciled at the next start).
pub fn runner_config(cfg: &HedgerConfig) -> RunnerConfig {
    RunnerConfig {
        core: cfg.runtime.core,
        idle: cfg.runtime.idle,
        backoff: IDLE_BACKOFF,
        heartbeat_interval_ns: cfg.runtime.stats_interval_ms * 1_000_000,
        status_interval_ns: 0,
        drain_timeout_ns: 0,
        duty_every_cycles: 256,
    }
}

/// No snapshot, yet a hedger consumed execs or wrote orders in these rings: the state was
/// lost. Starting at position 0 / epoch 1 would hedge a wrong book and reuse client order ids,
/// so refuse (issue 21, finding 6).
fn refuse_lost_state(
    cfg: &HedgerConfig,
    store: &StateStore,
    seg: &Segments,
    restored: bool,
) -> anyhow::Result<()> {
    if restored || (seg.orders.position() == 0 && seg.execs.position() == 0) {
        return Ok(());
    }
    anyhow::bail!(
        "hedger state {} is missing, but the rings in {} show a previous hedger's history ({} orders written, {} execs consumed): the state was lost; restore it, or start every process on a fresh namespace (--on-stale replace), never at position 0",
        store.path().display(),
        segment_dir(cfg)?.display(),
        seg.orders.position(),
        seg.execs.position()
    )
}

/// The start-up lines: refused definitions, the restored state.
fn warn_at_start(
    core: &HedgerCore<BookRiskAdapter>,
    store: &StateStore,
    restored: Option<&PersistState>,
) {
    if core.risk.setup_errors > 0 {
        eprintln!(
            "hedger: warning: the risk book refused {} option/forward definitions (bad strike or expiry); their positions read 0",
            core.risk.setup_errors
        );
    }
    if let Some(st) = restored {
        eprintln!(
            "hedger: restored state from {} (last exec id {}, {} orders in flight); reconciling before hedging",
            store.path().display(),
            st.last_exec_id,
            st.inflight.len()
        );
    }
}

/// The hedger as an [`Agent`]: each duty cycle is one [`HedgerCore::poll`] (execs, then
/// market data, decisions, orders); duties are the housekeeping (snapshots, timers, histogram
/// export) and the driver's (heartbeats, gateway liveness, wall-clock calibration). On stop it
/// polls no more; closing writes the final snapshot, the histograms and the session journal's
/// end.
pub struct HedgerAgent<'t> {
    core: HedgerCore<BookRiskAdapter>,
    io: Io<'t>,
    cnc: CountersWriter,
    metrics: Metrics,
    hk: Housekeeping,
    driver: Driver,
    recorder: Option<Recorder>,
    stopping: bool,
    /// Polls of the two rings that an idle [`HedgerAgent::do_work`] spins through before it
    /// returns: [`BUSY_SPIN_WAIT_POLLS`] with the busy-spin idle strategy, else 0.
    wait_polls: u32,
}

/// Busy-spin only: how many times an idle `do_work` looks at the md and execs rings (a few
/// loads each, [`BroadcastReader::ready`] and [`SpscConsumer::is_empty`]) before it returns
/// and lets the runner do its duties. A full idle cycle (two clock reads, the core's poll,
/// the housekeeping and driver duties, the runner's timers) took long enough that an event
/// waited half of one on average before it was read; a wait poll is a few loads and a pause,
/// like the raw ping-pong's spin. 64 of them keep the duties (timers, heartbeats) and the
/// control block's check within a few microseconds of their time.
const BUSY_SPIN_WAIT_POLLS: u32 = 64;

impl<'t> HedgerAgent<'t> {
    /// Wraps the segments in the session recorder's adapters, rebuilds the core's market view,
    /// registers the counters and starts the state writer and histogram log threads.
    fn new(
        cfg: &HedgerConfig,
        mut core: HedgerCore<BookRiskAdapter>,
        seg: Segments,
        tap: &'t RefCell<Tap>,
        recorder: Option<Recorder>,
        store: StateStore,
        start_ns: u64,
    ) -> anyhow::Result<Self> {
        let mut cnc = seg.cnc;
        let execs_capacity = seg.execs.capacity();
        let io = Io {
            md: RecordingMarket::new(seg.market, tap),
            execs: RecordingExecs::new(seg.execs, tap),
            orders: RecordingOrders::new(seg.orders, tap),
            ctl: RecordingControl::new(seg.control, tap),
            clock: RecordingClock::new(tap),
            tap,
        };
        let t = shm_layout::clock::now_ns();
        tap.borrow_mut()
            .push_driver(Record::new(RecordKind::Rebuild, 0, t));
        core.rebuild(&io.md, t);
        // Not before its heartbeat has been seen.
        io.set_gateway_alive(&mut core, false);
        tap.borrow_mut().set_blocking(false);
        let names: Vec<String> = core.und.iter().map(|u| u.setup.name.clone()).collect();
        let metrics = Metrics::new(&mut cnc, &names);
        Ok(HedgerAgent {
            hk: start_housekeeping(cfg, store, start_ns, core.option_symbols())?
                .for_execs_capacity(execs_capacity),
            driver: Driver::new(cfg, segment_dir(cfg)?),
            core,
            io,
            cnc,
            metrics,
            recorder,
            stopping: false,
            wait_polls: if cfg.runtime.idle == IdleStrategy::BusySpin {
                BUSY_SPIN_WAIT_POLLS
            } else {
                0
            },
        })
    }

    /// Spins until a ring has something to read, at most `wait_polls` times.
    #[inline]
    fn wait_for_input(&self) {
        let md = &self.io.md.inner.reader;
        let execs = &self.io.execs.inner;
        for _ in 0..self.wait_polls {
            if md.ready() || !execs.is_empty() {
                return;
            }
            std::hint::spin_loop();
        }
    }

    /// What the run did.
    fn summary(&self) -> RunSummary {
        RunSummary {
            stats: self.core.stats,
            epoch: self.core.epoch(),
            positions: self
                .core
                .und
                .iter()
                .map(|u| (u.setup.name.clone(), u.hedge_position))
                .collect(),
        }
    }
}

/// The housekeeping schedule with its state writer and histogram log threads.
fn start_housekeeping(
    cfg: &HedgerConfig,
    store: StateStore,
    start_ns: u64,
    option_symbols: Vec<String>,
) -> anyhow::Result<Housekeeping> {
    let hlog = match &cfg.runtime.histogram_path {
        Some(p) => Some(
            IntervalLogThread::start(p)
                .with_context(|| format!("creating histogram log {}", p.display()))?,
        ),
        None => None,
    };
    let writer =
        StateWriter::start(store, option_symbols).context("starting the state writer thread")?;
    Ok(Housekeeping::new(
        Some(writer),
        hlog,
        cfg.runtime.snapshot_interval_ms * 1_000_000,
        1_000_000,
        cfg.runtime.histogram_interval_ms * 1_000_000,
        start_ns,
    ))
}

impl Agent for HedgerAgent<'_> {
    type Error = anyhow::Error;

    fn name(&self) -> &str {
        super::ROLE
    }

    fn counters(&self) -> Option<&CountersWriter> {
        Some(&self.cnc)
    }

    #[inline]
    fn do_work(&mut self) -> anyhow::Result<usize> {
        if self.stopping {
            return Ok(0); // no poll after the stop request
        }
        // The iteration's time is read before the wait: `poll` uses it only for the
        // execs it applies (a market event gets its own read stamp, a lap its own clock
        // read), so it is at most the wait (64 polls, a few microseconds) old, and no clock
        // read stands between a market event's arrival and its read.
        let now = shm_layout::clock::now_ns();
        self.wait_for_input();
        let io = &mut self.io;
        io.tap.borrow_mut().begin_poll(now);
        Ok(self.core.poll(
            &mut io.md,
            &mut io.execs,
            &mut io.orders,
            &io.ctl,
            now,
            &io.clock,
        ))
    }

    fn on_duty(&mut self, now: u64) -> anyhow::Result<()> {
        let io = &mut self.io;
        let tap = io.tap;
        self.hk.run_with(
            &mut self.core,
            &mut io.execs,
            &mut io.orders,
            now,
            &io.clock,
            |t| {
                tap.borrow_mut()
                    .push_driver(Record::new(RecordKind::Timer, 0, t));
            },
        )?;
        self.driver.duties(&mut self.core, io, now);
        // The session journal's records are published in batches. The runner calls the
        // duties after every cycle without work, before it idles: what the loop and the
        // duties (timers, calibration) recorded goes out here, and nothing waits
        // unpublished while the loop sleeps.
        io.tap.borrow_mut().flush();
        Ok(())
    }

    fn publish_counters(&mut self, now: u64) {
        self.metrics.publish(&self.core, &self.hk, now);
        let lag = self.io.md.inner.reader.lag() as f64;
        self.metrics.0.set_f64(HedgerCounter::MdReaderLag, lag);
        let dropped = self.io.tap.borrow().dropped;
        self.metrics
            .0
            .set(HedgerCounter::SessionRecordsDropped, dropped);
        if dropped > 0 && !self.driver.journal_warned {
            self.driver.journal_warned = true;
            eprintln!("hedger: warning: session journal queue full, records dropped (counter session_records_dropped): the session is not reproducible past this point");
        }
    }

    fn on_stop(&mut self, _now: u64, _by_signal: bool) {
        self.stopping = true;
    }

    fn on_close(&mut self, _now: u64) -> anyhow::Result<()> {
        let now = shm_layout::clock::now_ns();
        self.hk.finish(&mut self.core, &mut self.io.execs, now)?;
        self.hk.export_histograms(&mut self.core, now);
        self.metrics.publish(&self.core, &self.hk, now);
        if let Some(h) = self.hk.hlog.take() {
            h.finish().context("writing the histogram log")?;
        }
        finish_recording(self.io.tap, self.recorder.take());
        Ok(())
    }
}

/// The journal header of a start.
fn session_header(cfg: &HedgerConfig, start: &StartPoint<'_>) -> Header {
    let state_text = start.state.map(|st| {
        let mut s = String::new();
        st.encode(&mut s);
        s
    });
    Header {
        journal_version: JOURNAL_VERSION,
        config_text: cfg.source_text.clone(),
        state_text,
        start_mono_ns: start.mono_ns,
        start_wall_ns: start.wall_ns,
        orders_pending_at_start: start.orders_pending,
        n_defs: start.defs.len() as u32,
    }
}

/// Records the clean end of the run and stops the journal writer (waiting for room: the loop
/// has stopped).
fn finish_recording(tap: &RefCell<Tap>, recorder: Option<Recorder>) {
    tap.borrow_mut().set_blocking(true);
    tap.borrow_mut()
        .push_driver(Record::new(RecordKind::End, 0, 0));
    let Some(r) = recorder else { return };
    let dropped = r.dropped();
    match r.finish() {
        Ok(_) if dropped > 0 => eprintln!(
            "hedger: warning: the session journal dropped {dropped} records (recording queue full): not reproducible past the first gap"
        ),
        Ok(_) => {}
        Err(e) => eprintln!("hedger: warning: the session journal could not be written: {e}"),
    }
}

/// The loop's idle-time duties besides housekeeping: heartbeats, the gateway's liveness,
/// the wall-clock calibration (once a second: the offset moves only with NTP slewing, and
/// each calibration is a journal record) and the counters.
struct Driver {
    dir: PathBuf,
    gateway_role: String,
    gateway: Option<CountersReader>,
    /// The last refusal of the gateway's counters segment, said once per distinct error.
    gateway_error: Option<String>,
    gw_timeout: Duration,
    stats_ns: u64,
    last_stats: u64,
    last_gateway_open: u64,
    last_calibrate: u64,
    journal_warned: bool,
}

/// Wall-clock calibration cadence, ns.
const CALIBRATE_INTERVAL_NS: u64 = 1_000_000_000;

impl Driver {
    fn new(cfg: &HedgerConfig, dir: PathBuf) -> Self {
        Driver {
            dir,
            gateway_role: cfg.shm.gateway_role.clone(),
            gateway: None,
            gateway_error: None,
            gw_timeout: Duration::from_millis(cfg.shm.gateway_heartbeat_timeout_ms),
            stats_ns: cfg.runtime.stats_interval_ms * 1_000_000,
            last_stats: 0,
            last_gateway_open: 0,
            last_calibrate: 0,
            journal_warned: false,
        }
    }

    /// At the stats cadence: the control block's heartbeat, the gateway's liveness (its
    /// counters segment opened, retried once a second), the wall-clock calibration. The
    /// counters segment's heartbeat and the counters are the runner's
    /// ([`HedgerAgent::publish_counters`]).
    fn duties(&mut self, core: &mut HedgerCore<BookRiskAdapter>, io: &mut Io<'_>, now: u64) {
        if now.saturating_sub(self.last_stats) < self.stats_ns {
            return;
        }
        self.last_stats = now;
        io.ctl.inner.heartbeat();
        // A missing gateway is retried once a second (open is a few system calls).
        if self.gateway.is_none() && now.saturating_sub(self.last_gateway_open) >= 1_000_000_000 {
            self.last_gateway_open = now;
            self.gateway = self.open_gateway();
        }
        let liveness = self
            .gateway
            .as_ref()
            .map(|g| g.liveness(now, self.gw_timeout));
        io.set_gateway_alive(core, liveness == Some(Liveness::Alive));
        if liveness == Some(Liveness::Dead) {
            self.gateway = None; // a restarted gateway creates a new segment
        }
        if now.saturating_sub(self.last_calibrate) >= CALIBRATE_INTERVAL_NS {
            self.last_calibrate = now;
            let wall = shm_layout::clock::wall_ns();
            let mut r = Record::new(RecordKind::Calibrate, 0, now);
            r.payload[..8].copy_from_slice(&wall.to_le_bytes());
            io.tap.borrow_mut().push_driver(r);
            core.calibrate_wall(now, wall);
        }
    }

    /// The gateway's counters segment, if it is there.
    fn open_gateway(&mut self) -> Option<CountersReader> {
        match CountersReader::open(&self.dir, &self.gateway_role, OpenOptions::default()) {
            Ok(g) => Some(g),
            // Not up yet: normal at start-up. Anything else (a corrupt or foreign cnc
            // segment) keeps hedging halted and says why, once per distinct error.
            Err(SegmentError::Missing { .. } | SegmentError::NotInitialized { .. }) => None,
            Err(e) => {
                let msg = e.to_string();
                if self.gateway_error.as_deref() != Some(msg.as_str()) {
                    eprintln!("hedger: gateway counters refused, hedging stays halted: {msg}");
                    self.gateway_error = Some(msg);
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_layout::process::{IdleAction, Idler};
    use shm_layout::{BroadcastWriter, StalePolicy};

    /// The affinity a thread started after `pin_side_threads(r)` inherits (on a thread of its
    /// own, so the test's thread keeps its affinity).
    fn side_thread_cores(r: RuntimeSection) -> Vec<usize> {
        std::thread::spawn(move || {
            pin_side_threads(&r);
            std::thread::spawn(shm_layout::process::allowed_cores)
                .join()
                .unwrap()
        })
        .join()
        .unwrap()
    }

    /// With a loop core and a housekeeping core, the side threads start on the housekeeping
    /// core; without a loop core, or with a core the process may not use, nothing changes.
    #[test]
    fn side_threads_start_on_the_housekeeping_core_only_beside_a_pinned_loop() {
        let all = shm_layout::process::allowed_cores();
        let [hk, core, ..] = all[..] else {
            eprintln!("one core: nothing to separate ({all:?})");
            return;
        };
        let rt = |core, housekeeping_core| RuntimeSection {
            core,
            housekeeping_core,
            ..RuntimeSection::default()
        };
        assert_eq!(side_thread_cores(rt(Some(core), Some(hk))), [hk]);
        assert_eq!(side_thread_cores(rt(None, Some(hk))), all);
        assert_eq!(side_thread_cores(rt(Some(core), Some(100_000))), all);
        assert_eq!(side_thread_cores(rt(Some(core), None)), all);
    }

    /// A lapped hedger goes to the writer's position: the events between the oldest one
    /// still in the ring and the writer are counted as lost, not read (they are older than
    /// the last-value table the core rebuilds from).
    #[test]
    fn a_lapped_market_source_resumes_at_the_writer_and_counts_what_it_skipped() {
        let dir = testkit::shm::namespace_dir("hedger-lap-");
        let mut w =
            BroadcastWriter::<MarketEvent>::create(dir.path(), "md", 8, StalePolicy::Fail).unwrap();
        let lvt = LastValueTable::create(dir.path(), "lvt", 4, StalePolicy::Fail).unwrap();
        let reader =
            BroadcastReader::<MarketEvent>::open(dir.path(), "md", OpenOptions::default()).unwrap();
        let mut md = ShmMarket { reader, lvt };
        let ev = |i: u64| {
            let mut e = MarketEvent::underlying_price(1, i, i, 100.0 + i as f64);
            e.seq = i + 1;
            e
        };
        for i in 0..30 {
            w.publish(&ev(i));
        }
        assert_eq!(md.poll(), MdPoll::Lapped(30));
        assert_eq!(md.poll(), MdPoll::Empty);
        w.publish(&ev(30));
        assert_eq!(md.poll(), MdPoll::Event(ev(30)));
    }

    #[test]
    fn hedger_idles_10000_spins_then_100_yields_then_parks_from_1_us() {
        let mut idle = Idler::new(IdleStrategy::BackoffPark, IDLE_BACKOFF);
        let a: Vec<IdleAction> = (0..10_102).map(|_| idle.idle()).collect();
        assert!(a[..10_000].iter().all(|x| *x == IdleAction::Spin));
        assert!(a[10_000..10_100].iter().all(|x| *x == IdleAction::Yield));
        let us = Duration::from_micros;
        assert_eq!(
            a[10_100..],
            [IdleAction::Park(us(1)), IdleAction::Park(us(2))]
        );
        idle.reset();
        assert_eq!(idle.idle(), IdleAction::Spin, "work resets the backoff");
    }
}
