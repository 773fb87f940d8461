//! `hot_path`: where the hedger's time goes, per event kind (issue 22, item 1).
//!
//! Drives the real [`HedgerCore`] (built by the live hedger's own `build_core` from the same
//! configuration the e2e benchmark writes: a 10,000-option book, long one contract of every
//! option, hedged with BTC-PERPETUAL, fixed band) with the feed handler's synthetic market,
//! one event per `poll`, in process: no rings, no other process, so the figures are the
//! core's own cost. Every hedge order it sends comes back as a fill on the next step, a client
//! option trade arrives every [`TRADE_EVERY`] events and the timer runs every
//! [`TIMER_EVERY`], so the eight kinds of work the loop does are all measured:
//!
//! | kind | what the step is |
//! |---|---|
//! | `index` | underlying (index) price: incremental aggregate update + decision |
//! | `forward` | an expiry's forward price |
//! | `quote` | hedge instrument quote (book, policy state) + decision |
//! | `mark` | option mark: exact re-evaluation of that option + decision |
//! | `trade` | client option trade (exec ring): position change + decision |
//! | `fill` | fill of our hedge order (exec ring) |
//! | `timer` | timer decisions (`on_timer`) |
//! | `rebuild` | a lap (every [`LAP_EVERY`]): `--lap-lost` events lost, then the rebuild from the last-value table (only the changed options; every one with `--full-rebuild`) |
//!
//! Each step is one `#[inline(never)]` function named `step_<kind>`, so that
//! `valgrind --tool=callgrind --toggle-collect='*step_*'` counts exactly the instructions of
//! the measured steps (`scripts/bench-hot.sh` divides them by the counts printed here).
//! Wall time: every step is timed with `CLOCK_MONOTONIC` (read -> decision, including the
//! order write when one is sent) into an HdrHistogram per kind: every event, not a sample.
//! The clock pair's own cost is measured and printed beside it.
#![forbid(unsafe_code)]

#[path = "../e2e/market.rs"]
#[allow(dead_code)]
mod market;

use clap::Parser;
use engine::config::HedgerConfig;
use engine::hedger::core::{HedgerCore, MonotonicClock};
use engine::hedger::io::{Consumer, MarketSource, MdPoll, MemControl, MemOrders};
use engine::hedger::live::{build_core, StartPoint};
use engine::hedger::risk::{BookRiskAdapter, OptionRisk};
use feed_handler::source::{Source, SourceEvent};
use feed_handler::synthetic::SyntheticSource;
use hdrhistogram::Histogram;
use shm_layout::{clock, ExecEvent, ExecKind, InstrumentKind, LastValue, MarketEvent};
use shm_layout::{MarketEventKind, Side};
use std::process::ExitCode;
use testkit::ExecStream;

/// A client option trade every this many market events.
const TRADE_EVERY: u64 = 50;
/// The timer every this many market events.
const TIMER_EVERY: u64 = 1000;

/// Command line.
#[derive(Debug, Parser)]
#[command(about = "Per-event-kind cost of the hedger core on a large option book")]
struct Args {
    /// Options in the book.
    #[arg(long, default_value_t = 10_000)]
    options: usize,
    /// Market events measured (after the warm-up).
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Market events applied before measuring (default: 4 per option, so every option has a
    /// mark).
    #[arg(long)]
    warmup: Option<u64>,
    /// Fixed hedge band, BTC.
    #[arg(long, default_value_t = 0.15)]
    band: f64,
    /// Hedge with the cost-aware rule (the example configuration's parameters) instead of
    /// the fixed band.
    #[arg(long)]
    cost_aware: bool,
    /// Market seed.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Skip the per-step clock reads (for callgrind: instructions of the core only).
    #[arg(long)]
    no_clock: bool,
    /// Market events lost in each lap: written to the last-value table only, never read
    /// (an independent synthetic path of the same book, seed + 1). A lapped reader of the
    /// e2e feed's ring loses at least its capacity, 262,144; 0: the lap loses nothing.
    #[arg(long, default_value_t = 0)]
    lap_lost: u64,
    /// Make every lap a full rebuild (every option repriced), as before the selective one.
    #[arg(long)]
    full_rebuild: bool,
}

/// Kinds of step, in table order; `step_<name>` is the function that runs it.
const KINDS: [&str; NK] = [
    "index", "forward", "quote", "mark", "trade", "fill", "timer", "rebuild",
];
/// Number of kinds.
const NK: usize = 8;
/// A lap (and the rebuild of every instrument from the last values) every this many events.
const LAP_EVERY: u64 = 10_000;

/// One market event at a time (or a lap), and the last-value table the feed would keep.
#[derive(Debug, Default)]
struct Slot {
    next: Option<MarketEvent>,
    lap: bool,
    lvt: Vec<Option<LastValue>>,
}

impl Slot {
    /// Hands the core `e` next, and applies it to the last values (as the feed does).
    fn set(&mut self, e: MarketEvent) {
        self.lose(&e);
        self.next = Some(e);
    }

    /// Applies `e` to the last values only: an event the reader never sees (lost in a lap).
    fn lose(&mut self, e: &MarketEvent) {
        let id = e.instrument_id as usize;
        if id >= self.lvt.len() {
            self.lvt.resize(id + 1, None);
        }
        self.lvt[id]
            .get_or_insert_with(bytemuck::Zeroable::zeroed)
            .apply(e);
    }
}

impl MarketSource for Slot {
    #[inline]
    fn poll(&mut self) -> MdPoll {
        if std::mem::take(&mut self.lap) {
            return MdPoll::Lapped(1);
        }
        self.next.take().map_or(MdPoll::Empty, MdPoll::Event)
    }
    fn last_value(&self, id: u32) -> Option<LastValue> {
        self.lvt.get(id as usize).copied().flatten()
    }
}

/// One exec at a time, committed at once (a backtest without persistence does the same).
#[derive(Debug, Default)]
struct ExecSlot(Option<ExecEvent>);

impl Consumer<ExecEvent> for ExecSlot {
    #[inline]
    fn peek(&mut self) -> Option<ExecEvent> {
        self.0.take()
    }
    #[inline]
    fn commit(&mut self, _n: usize) {}
}

/// The core and its in-process inputs.
struct Rig {
    core: HedgerCore<BookRiskAdapter>,
    md: Slot,
    execs: ExecSlot,
    orders: MemOrders,
    ctl: MemControl,
    next_exec_id: u64,
    steps: [u64; NK],
    /// Sequence number of the last market event (delivered or lost).
    seq: u64,
    /// Where the events lost in a lap come from.
    lost_src: SyntheticSource,
}

impl Rig {
    /// `n` market events reach the last-value table but not the core, then the lap.
    fn lose(&mut self, n: u64) {
        let mut out = SourceEvent::default();
        for _ in 0..n {
            if !self.lost_src.next(&mut out) {
                break;
            }
            self.seq += 1;
            out.event.seq = self.seq;
            self.md.lose(&out.event);
        }
        self.md.lap = true;
    }

    #[inline(always)]
    fn poll(&mut self) -> usize {
        let now = clock::now_ns();
        self.core.poll(
            &mut self.md,
            &mut self.execs,
            &mut self.orders,
            &self.ctl,
            now,
            &MonotonicClock,
        )
    }
}

/// Defines `step_<kind>`: one poll, counted in `Rig::steps[$k]` (which also keeps the
/// bodies distinct, so the linker cannot fold them into one symbol and callgrind sees each).
macro_rules! poll_steps {
    ($($name:ident = $k:literal),*) => {$(
        #[inline(never)]
        fn $name(r: &mut Rig) -> usize {
            r.steps[$k] += 1;
            r.poll()
        }
    )*};
}
poll_steps!(
    step_index = 0,
    step_forward = 1,
    step_quote = 2,
    step_mark = 3,
    step_trade = 4,
    step_fill = 5,
    step_rebuild = 7
);

#[inline(never)]
fn step_timer(r: &mut Rig) -> usize {
    r.steps[6] += 1;
    let now = clock::now_ns();
    r.core.on_timer(&mut r.orders, now, &MonotonicClock);
    1
}

/// The market: pre-generated events, and each instrument's role for the table.
struct Market {
    events: Vec<MarketEvent>,
    kind_of: Vec<u8>,
    options: Vec<u32>,
}

/// Generates `n` synthetic events for the book and classifies each by instrument role.
fn market(args: &Args, start_ns: u64, n: u64) -> (Market, Vec<shm_layout::InstrumentDef>, f64) {
    let cfg = market::synthetic_config(args.options, f64::INFINITY, start_ns, args.seed);
    let (defs, spot) = market::instruments(&cfg);
    let mut src = SyntheticSource::new(cfg);
    let mut out = SourceEvent::default();
    let mut events = Vec::with_capacity(n as usize);
    for seq in 1..=n {
        if !src.next(&mut out) {
            break;
        }
        let mut e = out.event;
        e.seq = seq;
        events.push(e);
    }
    let hedge = defs.iter().position(|d| d.symbol() == "BTC-PERPETUAL");
    let index = defs
        .iter()
        .position(|d| d.kind() == Ok(InstrumentKind::Index));
    let kind_of = events
        .iter()
        .map(|e| {
            let id = Some(e.instrument_id as usize);
            match e.kind() {
                Ok(MarketEventKind::OptionMark) => 3,
                Ok(MarketEventKind::Quote) if id == hedge => 2,
                Ok(MarketEventKind::UnderlyingPrice) if id == index => 0,
                _ => 1,
            }
        })
        .collect();
    let options = market::options(&defs).map(|d| d.id).collect();
    let m = Market {
        events,
        kind_of,
        options,
    };
    (m, defs, spot)
}

/// Builds the core the way the live hedger does, from the e2e benchmark's configuration.
fn rig(
    args: &Args,
    defs: Vec<shm_layout::InstrumentDef>,
    spot: f64,
    start_ns: u64,
) -> anyhow::Result<Rig> {
    let policy = if args.cost_aware {
        market::BenchPolicy::CostAware
    } else {
        market::BenchPolicy::Fixed { band: args.band }
    };
    let toml = market::hedger_toml(&defs, spot, start_ns, policy, None);
    let cfg = HedgerConfig::parse(&toml, "hot_path.toml")?;
    let start = StartPoint {
        defs,
        state: None,
        mono_ns: clock::now_ns(),
        wall_ns: start_ns,
        orders_pending: false,
    };
    Ok(Rig {
        core: build_core(&cfg, start)?,
        md: Slot::default(),
        execs: ExecSlot::default(),
        orders: MemOrders::new(1 << 16),
        ctl: MemControl::default(),
        next_exec_id: 1,
        steps: [0; NK],
        seq: 0,
        lost_src: SyntheticSource::new(market::synthetic_config(
            args.options,
            f64::INFINITY,
            start_ns,
            args.seed + 1,
        )),
    })
}

/// The gateway's execution stream: the next report waits in the one-event slot for the step.
impl ExecStream for Rig {
    fn next_exec_id(&mut self) -> u64 {
        self.next_exec_id += 1;
        self.next_exec_id
    }

    fn deliver(&mut self, e: ExecEvent) {
        self.execs.0 = Some(e);
    }
}

/// Per-kind results.
struct Tally {
    count: [u64; NK],
    hist: Vec<Histogram<u64>>,
    sent: [u64; NK],
    with_order: Histogram<u64>,
    without_order: Histogram<u64>,
}

impl Tally {
    fn new() -> Self {
        let h = || Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static bounds");
        Tally {
            count: [0; NK],
            hist: (0..NK).map(|_| h()).collect(),
            sent: [0; NK],
            with_order: h(),
            without_order: h(),
        }
    }
}

/// Runs one step of kind `k`, timed unless `no_clock`; returns the orders it sent.
fn timed(r: &mut Rig, k: usize, t: &mut Tally, no_clock: bool) -> u64 {
    let sent0 = r.core.stats.orders_sent;
    let t0 = if no_clock { 0 } else { clock::now_ns() };
    match k {
        0 => step_index(r),
        1 => step_forward(r),
        2 => step_quote(r),
        3 => step_mark(r),
        4 => step_trade(r),
        5 => step_fill(r),
        7 => step_rebuild(r),
        _ => step_timer(r),
    };
    let sent = r.core.stats.orders_sent - sent0;
    if !no_clock {
        let ns = clock::now_ns().saturating_sub(t0).max(1);
        t.hist[k].saturating_record(ns);
        if k < 6 {
            let h = if sent > 0 {
                &mut t.with_order
            } else {
                &mut t.without_order
            };
            h.saturating_record(ns);
        }
    }
    t.count[k] += 1;
    t.sent[k] += sent;
    sent
}

/// Hands every order the core sent back to it as a complete fill, one step each.
fn fill_orders(r: &mut Rig, t: &mut Tally, no_clock: bool) {
    while let Some(o) = r.orders.buf.pop_front() {
        r.on_order(ExecKind::Fill, &o, (o.qty, o.limit_px, 0.0));
        timed(r, 5, t, no_clock);
        r.core.execs_committed();
    }
}

/// The measured run: every market event, then the fills of what it sent, a client option
/// trade every [`TRADE_EVERY`] events and the timer every [`TIMER_EVERY`].
fn measure(r: &mut Rig, m: &Market, from: usize, args: &Args) -> Tally {
    let no_clock = args.no_clock;
    let mut t = Tally::new();
    for (i, e) in m.events.iter().enumerate().skip(from) {
        let mut e = *e;
        e.recv_ts_ns = clock::now_ns();
        r.seq += 1;
        e.seq = r.seq;
        r.md.set(e);
        timed(r, m.kind_of[i] as usize, &mut t, no_clock);
        fill_orders(r, &mut t, no_clock);
        let n = i as u64 + 1;
        if n.is_multiple_of(TRADE_EVERY) {
            let id = m.options[(n / TRADE_EVERY) as usize * 7919 % m.options.len()];
            let side = if n.is_multiple_of(2 * TRADE_EVERY) {
                Side::Buy
            } else {
                Side::Sell
            };
            r.exec(ExecKind::OptionTrade, 0, id, side, 1.0, 0.01, 0.0);
            timed(r, 4, &mut t, no_clock);
            r.core.execs_committed();
            fill_orders(r, &mut t, no_clock);
        }
        if n.is_multiple_of(TIMER_EVERY) {
            timed(r, 6, &mut t, no_clock);
            fill_orders(r, &mut t, no_clock);
        }
        if n.is_multiple_of(LAP_EVERY) {
            r.lose(args.lap_lost);
            if args.full_rebuild {
                r.core.forget_applied_marks();
            }
            timed(r, 7, &mut t, no_clock);
        }
    }
    t
}

/// Median cost of one back-to-back pair of clock reads, ns.
fn clock_pair_ns() -> u64 {
    let mut h = Histogram::<u64>::new_with_bounds(1, 1_000_000_000, 3).expect("static bounds");
    for _ in 0..100_000 {
        let a = clock::now_ns();
        let b = clock::now_ns();
        h.saturating_record(b.saturating_sub(a).max(1));
    }
    h.value_at_quantile(0.5)
}

fn print(t: &Tally, args: &Args, wall_s: f64) {
    println!("hot_path: {} options, {} market events measured, clock pair {} ns (median, included in every figure below)", args.options, args.events, clock_pair_ns());
    println!("| kind | count | orders sent | mean ns | p50 | p90 | p99 | p99.9 | max |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let row = |name: &str, c: u64, s: u64, h: &Histogram<u64>| {
        println!(
            "| {name} | {c} | {s} | {:.0} | {} | {} | {} | {} | {} |",
            h.mean(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        );
    };
    for (k, name) in KINDS.iter().enumerate() {
        row(name, t.count[k], t.sent[k], &t.hist[k]);
    }
    let sent: u64 = t.sent.iter().sum();
    row(
        "events that sent an order",
        t.with_order.len(),
        sent,
        &t.with_order,
    );
    row(
        "events that sent none",
        t.without_order.len(),
        0,
        &t.without_order,
    );
    let steps: u64 = t.count.iter().sum();
    println!(
        "wall {wall_s:.3} s for {steps} steps: {:.0} ns per step incl. the bench's own work",
        wall_s * 1e9 / steps as f64
    );
    for (k, name) in KINDS.iter().enumerate() {
        println!("count {name} {}", t.count[k]);
    }
}

/// Client option trades between two snapshots in [`snapshot_cost`] (the e2e's flow sends a
/// few per snapshot; a snapshot is forced every 512 execs or 5 ms).
const TRADES_PER_SNAPSHOT: usize = 20;

/// The loop's part of a state snapshot on this book, both ways in the same run: the whole
/// state (`persist_state`, a string per held option: what the loop built for every snapshot
/// before) against the delta of the options changed since the previous snapshot
/// (`persist_delta`, what it builds now; the writer thread keeps the rest). Medians of 101,
/// wall clock (not under callgrind's toggle).
fn snapshot_cost(r: &mut Rig, m: &Market) {
    drop(r.core.persist_delta()); // the first delta carries the whole book
    let (mut whole, mut delta) = (Vec::new(), Vec::new());
    for i in 0..101 {
        for k in 0..TRADES_PER_SNAPSHOT {
            let id = m.options[(i * TRADES_PER_SNAPSHOT + k) * 7919 % m.options.len()];
            r.exec(ExecKind::OptionTrade, 0, id, Side::Buy, 1.0, 0.01, 0.0);
            r.poll();
            r.core.execs_committed();
            r.orders.buf.clear();
        }
        let t = std::time::Instant::now();
        let d = r.core.persist_delta();
        delta.push(t.elapsed().as_nanos());
        let t = std::time::Instant::now();
        let w = r.core.persist_state();
        whole.push(t.elapsed().as_nanos());
        assert_eq!(d.options.len(), TRADES_PER_SNAPSHOT);
        drop((d, w));
    }
    whole.sort_unstable();
    delta.sort_unstable();
    let (w, d) = (whole[50] as f64, delta[50] as f64);
    println!(
        "snapshot, the loop's part, {} trades since the last: whole state {:.1} us, delta {:.2} us ({:.0}x less), medians of 101",
        TRADES_PER_SNAPSHOT,
        w / 1e3,
        d / 1e3,
        w / d.max(1.0)
    );
}

fn run(args: &Args) -> anyhow::Result<()> {
    let start_ns = clock::wall_ns();
    let warmup = args.warmup.unwrap_or(4 * args.options as u64);
    let (m, defs, spot) = market(args, start_ns, warmup + args.events);
    let mut r = rig(args, defs, spot, start_ns)?;
    // Warm-up: not through the step functions, so callgrind does not count it.
    for e in &m.events[..warmup as usize] {
        r.seq = e.seq;
        r.md.set(*e);
        r.poll();
        while let Some(o) = r.orders.buf.pop_front() {
            r.on_order(ExecKind::Fill, &o, (o.qty, o.limit_px, 0.0));
            r.poll();
            r.core.execs_committed();
        }
    }
    let t0 = std::time::Instant::now();
    let t = measure(&mut r, &m, warmup as usize, args);
    println!(
        "laps {}: {} events lost each, {} options repriced by rebuilds{}; {} forced re-evaluations",
        t.count[7],
        args.lap_lost,
        r.core.rebuild_repriced(),
        if args.full_rebuild {
            " (full rebuilds)"
        } else {
            ""
        },
        r.core.risk.forced_reevals()
    );
    print(&t, args, t0.elapsed().as_secs_f64());
    snapshot_cost(&mut r, &m);
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hot_path: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
