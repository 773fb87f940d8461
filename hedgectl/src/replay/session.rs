//! `hedgectl replay --session DIR`: feeds a live hedger's session journal
//! (`engine::hedger::journal`) back through `HedgerCore` and checks that it sends the same
//! orders, bit for bit (instrument, side, quantity, price, client order id and the four
//! timestamps, since the stage clock is played back too).
//!
//! Every run (hedger start) of the journal is rebuilt from its own header exactly as the live
//! hedger started (`engine::hedger::live::build_core`: the same config resolution and state
//! restore), then driven by the recorded loop iterations and timer calls. The playback
//! wrappers below hand the core what it read live, in order; each read that does not match
//! the next record (a different decision takes a different path) stops the run at the first
//! divergence. A run that crashed (no `End` record) is checked up to where its journal ends;
//! a run with dropped records (`Gap`) is checked up to the gap.

use std::cell::{Cell, RefCell};
use std::path::Path;

use anyhow::{bail, Context, Result};
use engine::config::HedgerConfig;
use engine::hedger::core::{HedgerCore, StageClock};
use engine::hedger::io::{Consumer, ControlSource, MarketSource, MdPoll, Producer};
use engine::hedger::journal::{
    lv_from_parts, parse_header, read_session, Record, RecordKind, LV_PARTS, MD_WITH_STAMP,
};
use engine::hedger::live::{build_core, StartPoint};
use engine::hedger::risk::BookRiskAdapter;
use engine::hedger::state::PersistState;
use engine::limits::TradingMode;
use serde::Serialize;
use shm_layout::{ExecEvent, HedgeOrder, LastValue, MarketEvent};

/// An order as the report shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OrderView {
    /// Client order id.
    pub client_order_id: u64,
    /// Instrument id.
    pub instrument_id: u32,
    /// `buy` or `sell` (or the raw code).
    pub side: String,
    /// Contracts.
    pub qty: f64,
    /// Limit price.
    pub limit_px: f64,
    /// Feed receive, hedger read, decision and publish stamps, monotonic ns.
    pub ts_ns: [u64; 4],
}

impl OrderView {
    fn of(o: &HedgeOrder) -> Self {
        OrderView {
            client_order_id: o.client_order_id,
            instrument_id: o.instrument_id,
            side: match o.side() {
                Ok(s) => format!("{s:?}").to_lowercase(),
                Err(_) => format!("code {}", o.side),
            },
            qty: o.qty,
            limit_px: o.limit_px,
            ts_ns: [
                o.feed_recv_ts_ns,
                o.hedger_read_ts_ns,
                o.decision_ts_ns,
                o.publish_ts_ns,
            ],
        }
    }
}

/// The first point where the replay and the journal disagree.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    /// Index of the journal record (in the whole session, 0-based).
    pub record: usize,
    /// The order the live hedger sent there (None: it sent none).
    pub live: Option<OrderView>,
    /// The order the replay sent there (None: it sent none).
    pub replay: Option<OrderView>,
    /// What the replay expected and what the journal held.
    pub detail: String,
}

/// How a run's replay ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunEnd {
    /// The hedger stopped cleanly and every record was replayed.
    Clean,
    /// The hedger did not stop cleanly (crash, SIGKILL): checked up to the journal's end.
    Crashed,
    /// Records were dropped live (recording queue full): checked up to the gap.
    Gap {
        /// Record index of the gap.
        record: usize,
        /// Records dropped.
        dropped: u64,
    },
    /// Stopped at a divergence.
    Diverged,
}

/// One run's result.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// First and last record index of the run.
    pub records: [usize; 2],
    /// Client-order-id epoch of the run.
    pub epoch: u64,
    /// Orders the live hedger sent in this run (Order records).
    pub orders_recorded: u64,
    /// Orders the replay sent identically.
    pub orders_reproduced: u64,
    /// How the replay ended.
    pub end: RunEnd,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct SessionReport {
    /// The session directory.
    pub session: String,
    /// Journal files read.
    pub files: usize,
    /// Records read.
    pub records: usize,
    /// Records before the first header (their run's header was rotated away; not replayed).
    pub orphan_records: usize,
    /// Per run, oldest first.
    pub runs: Vec<RunResult>,
    /// Sum over runs.
    pub orders_recorded: u64,
    /// Sum over runs.
    pub orders_reproduced: u64,
    /// The first divergence, if any.
    pub divergence: Option<Divergence>,
}

/// Why playback stopped inside a run.
#[derive(Debug)]
enum Stop {
    Divergence(Box<Divergence>),
    /// The journal ended inside an iteration (a crash cut its tail).
    Truncated,
}

/// The shared read position over one run's records.
struct Cursor<'r> {
    recs: &'r [Record],
    pos: usize,
    base: usize,
    stop: Option<Stop>,
    reproduced: u64,
    /// The read stamp carried by the last `Md` record, for the next clock read.
    stamp: Option<u64>,
}

impl<'r> Cursor<'r> {
    fn new(recs: &'r [Record], pos: usize, base: usize) -> Self {
        Cursor {
            recs,
            pos,
            base,
            stop: None,
            reproduced: 0,
            stamp: None,
        }
    }

    fn next_kind(&self) -> Option<RecordKind> {
        self.recs.get(self.pos).and_then(Record::kind)
    }

    /// The next record if it is of kind `k` (consumed).
    fn optional(&mut self, k: RecordKind) -> Option<Record> {
        if self.stop.is_some() || self.next_kind() != Some(k) {
            return None;
        }
        self.pos += 1;
        Some(self.recs[self.pos - 1])
    }

    /// The next record, which must be of kind `k`; anything else stops the run.
    fn required(&mut self, k: RecordKind) -> Option<Record> {
        if self.stop.is_some() {
            return None;
        }
        let r = self.optional(k);
        if r.is_none() {
            self.desync(&format!("{k:?}"), None);
        }
        r
    }

    fn desync(&mut self, wanted: &str, replay: Option<&HedgeOrder>) {
        if self.stop.is_some() {
            return;
        }
        let Some(r) = self.recs.get(self.pos) else {
            self.stop = Some(Stop::Truncated);
            return;
        };
        let live = (r.kind() == Some(RecordKind::Order)).then(|| OrderView::of(&r.msg()));
        let clock_live = r.kind() == Some(RecordKind::Stamp);
        let detail = match (&live, replay) {
            (Some(_), None) => format!("live sent an order here; the replay read {wanted}"),
            (None, Some(_)) => format!("the replay sent an order; live recorded {r:?} here"),
            _ if clock_live => format!(
                "live read the stage clock here (a decision the replay did not take); the replay read {wanted}"
            ),
            _ if wanted == "Stamp" => format!(
                "the replay read the stage clock (a decision live did not take); live recorded {r:?} here"
            ),
            _ => format!("the replay read {wanted}; live recorded {r:?} here"),
        };
        self.stop = Some(Stop::Divergence(Box::new(Divergence {
            record: self.base + self.pos,
            live,
            replay: replay.map(OrderView::of),
            detail,
        })));
    }
}

struct PlayMarket<'c, 'r>(&'c RefCell<Cursor<'r>>);

impl MarketSource for PlayMarket<'_, '_> {
    fn poll(&mut self) -> MdPoll {
        let mut c = self.0.borrow_mut();
        if let Some(r) = c.optional(RecordKind::PollMd) {
            c.stamp = Some(r.value.saturating_add(u64::from(r.small)));
            return MdPoll::Event(r.msg::<MarketEvent>());
        }
        if let Some(r) = c.optional(RecordKind::Md) {
            if r.small == MD_WITH_STAMP {
                c.stamp = Some(r.value);
            }
            return MdPoll::Event(r.msg::<MarketEvent>());
        }
        match c.optional(RecordKind::Lapped) {
            Some(r) => MdPoll::Lapped(r.value),
            None => MdPoll::Empty,
        }
    }
    fn last_value(&self, id: u32) -> Option<LastValue> {
        let mut c = self.0.borrow_mut();
        if c.recs
            .get(c.pos)
            .is_some_and(|r| r.kind() == Some(RecordKind::LvNone) && r.small == id)
        {
            c.pos += 1;
            return None;
        }
        let mut parts = [Record::new(RecordKind::Lv, 0, 0); LV_PARTS];
        for p in &mut parts {
            *p = c.required(RecordKind::Lv)?;
        }
        match lv_from_parts(&parts).filter(|_| parts[0].small == id) {
            Some(lv) => Some(lv),
            None => {
                c.pos -= LV_PARTS;
                c.desync(&format!("the last value of instrument {id}"), None);
                None
            }
        }
    }
}

struct PlayExecs<'c, 'r>(&'c RefCell<Cursor<'r>>);

impl Consumer<ExecEvent> for PlayExecs<'_, '_> {
    fn peek(&mut self) -> Option<ExecEvent> {
        self.0
            .borrow_mut()
            .optional(RecordKind::Exec)
            .map(|r| r.msg::<ExecEvent>())
    }
    fn commit(&mut self, _n: usize) {}
}

struct PlayOrders<'c, 'r>(&'c RefCell<Cursor<'r>>);

impl Producer<HedgeOrder> for PlayOrders<'_, '_> {
    fn push(&mut self, order: HedgeOrder) -> Result<(), HedgeOrder> {
        let mut c = self.0.borrow_mut();
        if c.stop.is_some() {
            return Err(order);
        }
        if c.next_kind() != Some(RecordKind::Order) {
            c.desync("an order", Some(&order));
            return Err(order);
        }
        let r = c.recs[c.pos];
        let live: HedgeOrder = r.msg();
        if bytemuck::bytes_of(&live) != bytemuck::bytes_of(&order) {
            c.stop = Some(Stop::Divergence(Box::new(Divergence {
                record: c.base + c.pos,
                live: Some(OrderView::of(&live)),
                replay: Some(OrderView::of(&order)),
                detail: "the orders differ".into(),
            })));
            return Err(order);
        }
        c.pos += 1;
        c.reproduced += 1;
        if r.small == 1 {
            Ok(())
        } else {
            Err(order)
        }
    }
    fn pending(&self) -> usize {
        self.0
            .borrow_mut()
            .required(RecordKind::Pending)
            .map_or(0, |r| r.value as usize)
    }
}

struct PlayControl<'c, 'r>(&'c RefCell<Cursor<'r>>, Cell<u64>);

impl ControlSource for PlayControl<'_, '_> {
    fn generation(&self) -> u64 {
        if let Some(r) = self.0.borrow_mut().optional(RecordKind::Generation) {
            self.1.set(r.value);
        }
        self.1.get()
    }
    fn kill_switch(&self) -> bool {
        self.0
            .borrow_mut()
            .required(RecordKind::Kill)
            .is_some_and(|r| r.small == 1)
    }
    fn trading_mode(&self, _id: u32) -> TradingMode {
        self.0
            .borrow_mut()
            .required(RecordKind::Mode)
            .map_or(TradingMode::Active, |r| r.mode())
    }
}

struct PlayClock<'c, 'r>(&'c RefCell<Cursor<'r>>);

impl StageClock for PlayClock<'_, '_> {
    fn now(&self) -> u64 {
        let mut c = self.0.borrow_mut();
        match c.stamp.take() {
            Some(t) => t,
            None => c.required(RecordKind::Stamp).map_or(0, |r| r.value),
        }
    }
}

/// Rebuilds the core a run started with, from its header; returns it and the number of
/// header records.
fn start_core(recs: &[Record], base: usize) -> Result<(HedgerCore<BookRiskAdapter>, usize)> {
    let (h, defs, n) = parse_header(recs, base)?;
    let cfg = HedgerConfig::parse(&h.config_text, "<journal header>")
        .map_err(|e| anyhow::anyhow!("record {base}: {e}"))?;
    let state = match &h.state_text {
        Some(t) => Some(
            PersistState::decode(t, Path::new("<journal header>"))
                .with_context(|| format!("record {base}: restored state"))?,
        ),
        None => None,
    };
    let core = build_core(
        &cfg,
        StartPoint {
            defs,
            state: state.as_ref(),
            mono_ns: h.start_mono_ns,
            wall_ns: h.start_wall_ns,
            orders_pending: h.orders_pending_at_start,
        },
    )
    .with_context(|| format!("record {base}: rebuilding the core"))?;
    Ok((core, n))
}

/// Replays one run (`recs` starts with its header; `base` is its first record's index).
///
/// # Errors
/// A malformed header.
pub fn replay_run(recs: &[Record], base: usize) -> Result<(RunResult, Option<Divergence>)> {
    let (mut core, n) = start_core(recs, base)?;
    let cur = RefCell::new(Cursor::new(recs, n, base));
    let (mut md, mut execs, mut orders) = (PlayMarket(&cur), PlayExecs(&cur), PlayOrders(&cur));
    let ctl = PlayControl(&cur, Cell::new(u64::MAX));
    let clock = PlayClock(&cur);
    let mut end = RunEnd::Crashed;
    loop {
        let r = {
            let mut c = cur.borrow_mut();
            let Some(r) = c.recs.get(c.pos).copied() else {
                break;
            };
            // A `PollMd` is also the iteration's market event: left for the core to read.
            if r.kind() != Some(RecordKind::PollMd) {
                c.pos += 1;
            }
            r
        };
        let t = r.value;
        match r.kind() {
            Some(RecordKind::Poll) => {
                core.poll(&mut md, &mut execs, &mut orders, &ctl, t, &clock);
            }
            Some(RecordKind::PollMd) => {
                let at = cur.borrow().pos;
                core.poll(&mut md, &mut execs, &mut orders, &ctl, t, &clock);
                let mut c = cur.borrow_mut();
                if c.pos == at && c.stop.is_none() {
                    c.desync("the core to read this iteration's market event", None);
                }
            }
            Some(RecordKind::Timer) => {
                core.on_timer(&mut orders, t, &clock);
                core.idle_risk(t);
            }
            Some(RecordKind::Rebuild) => core.rebuild(&md, t),
            Some(RecordKind::GatewayAlive) => core.gateway_alive = r.small == 1,
            Some(RecordKind::Calibrate) => {
                let wall = u64::from_le_bytes(r.payload[..8].try_into().unwrap_or([0; 8]));
                core.calibrate_wall(t, wall);
            }
            Some(RecordKind::Gap) => {
                let record = base + cur.borrow().pos - 1;
                end = RunEnd::Gap { record, dropped: t };
                break;
            }
            Some(RecordKind::End) => {
                end = RunEnd::Clean;
                break;
            }
            _ => {
                let mut c = cur.borrow_mut();
                c.pos -= 1;
                c.desync("a loop iteration or a driver call", None);
            }
        }
        if cur.borrow().stop.is_some() {
            break;
        }
    }
    let c = cur.into_inner();
    let divergence = match c.stop {
        Some(Stop::Divergence(d)) => {
            end = RunEnd::Diverged;
            Some(*d)
        }
        Some(Stop::Truncated) | None => None,
    };
    let result = RunResult {
        records: [base, base + recs.len().saturating_sub(1)],
        epoch: core.epoch(),
        orders_recorded: count_kind(recs, RecordKind::Order),
        orders_reproduced: c.reproduced,
        end,
    };
    Ok((result, divergence))
}

/// How many of `recs` are of kind `k`.
fn count_kind(recs: &[Record], k: RecordKind) -> u64 {
    recs.iter().filter(|r| r.kind() == Some(k)).count() as u64
}

/// Replays every run of a session directory.
///
/// # Errors
/// Unreadable journal, no run with a header, a malformed header.
pub fn replay_session(dir: &Path) -> Result<SessionReport> {
    let s = read_session(dir)?;
    let starts: Vec<usize> = s
        .records
        .iter()
        .enumerate()
        .filter(|(_, r)| r.kind() == Some(RecordKind::Header) && r.small == 0)
        .map(|(i, _)| i)
        .collect();
    if starts.is_empty() {
        bail!(
            "{}: no run header in {} records of {} journal files (is this <state_dir>/session?)",
            dir.display(),
            s.records.len(),
            s.files.len()
        );
    }
    let mut report = SessionReport {
        session: dir.display().to_string(),
        files: s.files.len(),
        records: s.records.len(),
        orphan_records: starts[0],
        runs: Vec::new(),
        orders_recorded: 0,
        orders_reproduced: 0,
        divergence: None,
    };
    for (k, &a) in starts.iter().enumerate() {
        let b = starts.get(k + 1).copied().unwrap_or(s.records.len());
        let (run, div) = replay_run(&s.records[a..b], a)?;
        report.orders_recorded += run.orders_recorded;
        report.orders_reproduced += run.orders_reproduced;
        report.runs.push(run);
        if report.divergence.is_none() {
            report.divergence = div;
        }
    }
    Ok(report)
}

fn describe(o: &Option<OrderView>) -> String {
    match o {
        None => "no order".into(),
        Some(o) => format!(
            "{} {} x {} @ {} coid {:#x} (ts {:?})",
            o.side, o.instrument_id, o.qty, o.limit_px, o.client_order_id, o.ts_ns
        ),
    }
}

/// The human summary.
pub fn summary(r: &SessionReport) -> String {
    let mut out = format!(
        "session {}: {} journal files, {} records, {} runs\n",
        r.session,
        r.files,
        r.records,
        r.runs.len()
    );
    if r.orphan_records > 0 {
        out += &format!(
            "  {} records before the first run header were not replayed (their header was rotated away)\n",
            r.orphan_records
        );
    }
    for (i, run) in r.runs.iter().enumerate() {
        let end = match &run.end {
            RunEnd::Clean => "stopped cleanly".to_string(),
            RunEnd::Crashed => "did not stop cleanly: checked up to the journal's end".into(),
            RunEnd::Gap { record, dropped } => format!(
                "NOT REPRODUCIBLE after record {record}: {dropped} records dropped live (recording queue full)"
            ),
            RunEnd::Diverged => "DIVERGED".into(),
        };
        out += &format!(
            "  run {} (epoch {}, records {}..{}): {} of {} orders reproduced; {end}\n",
            i + 1,
            run.epoch,
            run.records[0],
            run.records[1],
            run.orders_reproduced,
            run.orders_recorded
        );
    }
    out += &format!(
        "orders reproduced: {} of {}\n",
        r.orders_reproduced, r.orders_recorded
    );
    match &r.divergence {
        None => out += "divergences: 0\n",
        Some(d) => {
            out += &format!(
                "first divergence at record {}: {}\n  live sent:   {}\n  replay sent: {}\n",
                d.record,
                d.detail,
                describe(&d.live),
                describe(&d.replay)
            );
        }
    }
    out
}

/// Runs `hedgectl replay --session DIR`; exit code 1 on a divergence.
///
/// # Errors
/// Unreadable or malformed journal.
pub fn run(dir: &Path, json: bool) -> Result<i32> {
    let r = replay_session(dir)?;
    if json {
        super::out(&(serde_json::to_string_pretty(&r)? + "\n"))?;
    } else {
        super::out(&summary(&r))?;
    }
    Ok(if r.divergence.is_some() { 1 } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytemuck::Zeroable;
    use engine::hedger::io::{MemControl, MemExecs, MemMarket, MemOrders};
    use engine::hedger::journal::{
        header_records, Header, JournalConfig, Recorder, RecordingClock, RecordingControl,
        RecordingExecs, RecordingMarket, RecordingOrders, JOURNAL_VERSION,
    };
    use shm_layout::{clock, ExecKind, InstrumentDef, InstrumentKind};

    const CONFIG: &str = r#"
[underlyings.BTC]
hedge_instrument = "BTC-PERPETUAL"
initial_hedge_position = 2.5
[underlyings.BTC.policy]
kind = "fixed"
band = 1.0
min_interval_ms = 0
[underlyings.BTC.limits]
max_orders_per_sec = 100000.0
order_burst = 100000.0
"#;

    fn defs() -> Vec<InstrumentDef> {
        let mut index = InstrumentDef::zeroed();
        index.kind = InstrumentKind::Index as u8;
        index.set_symbol("BTC");
        let mut perp = InstrumentDef::zeroed();
        (perp.id, perp.kind, perp.settlement) = (1, InstrumentKind::Perpetual as u8, 1);
        (perp.contract_multiplier, perp.lot_size) = (1.0, 0.001);
        (perp.min_qty, perp.tick_size) = (0.001, 0.5);
        perp.set_symbol("BTC-PERPETUAL");
        vec![index, perp]
    }

    /// Runs a core in process on recording wrappers, as the live loop does: market events,
    /// every order cancelled by the "venue" (so the next event hedges again), a timer after
    /// each event. Returns the orders sent.
    fn record_session(dir: &Path) -> usize {
        let cfg = HedgerConfig::parse(CONFIG, "test").unwrap();
        let mut rec = Recorder::start(&JournalConfig {
            dir: dir.into(),
            file_max_bytes: 1 << 20,
            files_kept: 4,
            queue_records: 1 << 12,
        })
        .unwrap();
        let tap = RefCell::new(rec.tap());
        // Blocking: this test must not drop records.
        tap.borrow_mut().set_blocking(true);
        let (mono, wall) = (clock::now_ns(), clock::wall_ns());
        let start = StartPoint {
            defs: defs(),
            state: None,
            mono_ns: mono,
            wall_ns: wall,
            orders_pending: false,
        };
        let mut core = build_core(&cfg, start).unwrap();
        let header = Header {
            journal_version: JOURNAL_VERSION,
            config_text: cfg.source_text.clone(),
            state_text: None,
            start_mono_ns: mono,
            start_wall_ns: wall,
            orders_pending_at_start: false,
            n_defs: 2,
        };
        for r in header_records(&header, &defs()) {
            tap.borrow_mut().push(r);
        }
        let mut md = RecordingMarket::new(MemMarket::with_instruments(2), &tap);
        let mut execs = RecordingExecs::new(MemExecs::default(), &tap);
        let mut orders = RecordingOrders::new(MemOrders::new(64), &tap);
        let ctl = RecordingControl::new(MemControl::default(), &tap);
        let clk = RecordingClock::new(&tap);
        let t = clock::now_ns();
        tap.borrow_mut()
            .push_driver(Record::new(RecordKind::Rebuild, 0, t));
        core.rebuild(&md, t);
        let mut sent = 0;
        for i in 0..30u64 {
            let px = 10_000.0 + i as f64;
            let now = clock::now_ns();
            md.inner
                .events
                .push(MarketEvent::underlying_price(0, 0, now, px));
            md.inner
                .events
                .push(MarketEvent::quote(1, 0, now, px - 0.5, 5.0, px + 0.5, 5.0));
            for _ in 0..3 {
                let now = clock::now_ns();
                tap.borrow_mut().begin_poll(now);
                core.poll(&mut md, &mut execs, &mut orders, &ctl, now, &clk);
            }
            while let Some(o) = orders.inner.buf.pop_front() {
                sent += 1;
                let mut e = ExecEvent::zeroed();
                (e.exec_id, e.client_order_id) = (sent as u64, o.client_order_id);
                (e.instrument_id, e.kind, e.side) = (1, ExecKind::Cancelled as u8, o.side);
                execs.inner.buf.push(e);
            }
            let now = clock::now_ns();
            tap.borrow_mut()
                .push_driver(Record::new(RecordKind::Timer, 0, now));
            core.on_timer(&mut orders, now, &clk);
            core.idle_risk(now);
        }
        tap.borrow_mut()
            .push_driver(Record::new(RecordKind::End, 0, 0));
        rec.finish().unwrap();
        sent
    }

    /// The index of the `n`th record of kind `k` in the session's only file.
    fn nth(dir: &Path, k: RecordKind, n: usize) -> usize {
        let s = read_session(dir).unwrap();
        s.records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.kind() == Some(k))
            .nth(n)
            .unwrap()
            .0
    }

    fn alter(dir: &Path, index: usize, f: impl FnOnce(&mut Record)) {
        let files = engine::hedger::journal::journal_files(dir).unwrap();
        assert_eq!(files.len(), 1);
        let mut bytes = std::fs::read(&files[0]).unwrap();
        let at = index * engine::hedger::journal::RECORD_SIZE;
        let mut r: Record = bytemuck::pod_read_unaligned(&bytes[at..at + 80]);
        f(&mut r);
        bytes[at..at + 80].copy_from_slice(bytemuck::bytes_of(&r));
        std::fs::write(&files[0], bytes).unwrap();
    }

    /// Records a session, changes the payload (a `T`) of its `n`-th record of kind `k`, and
    /// replays it: that record's index and the replay's report.
    fn replay_altered<T: bytemuck::Pod>(
        k: RecordKind,
        n: usize,
        change: impl FnOnce(&mut T),
    ) -> (usize, SessionReport) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("session");
        record_session(&dir);
        let i = nth(&dir, k, n);
        alter(&dir, i, |r| {
            let mut m: T = r.msg();
            change(&mut m);
            r.payload.copy_from_slice(bytemuck::bytes_of(&m));
        });
        (i, replay_session(&dir).unwrap())
    }

    #[test]
    fn an_in_process_session_replays_every_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("session");
        let sent = record_session(&dir);
        assert!(sent >= 10, "the recorded session must trade: {sent}");
        let r = replay_session(&dir).unwrap();
        assert_eq!(r.divergence, None, "{}", summary(&r));
        assert_eq!(r.orders_recorded, sent as u64);
        assert_eq!(r.orders_reproduced, sent as u64);
        assert_eq!(r.runs[0].end, RunEnd::Clean);
    }

    #[test]
    fn an_altered_order_record_is_the_first_divergence() {
        let (i, r) = replay_altered(RecordKind::Order, 3, |o: &mut HedgeOrder| o.qty += 0.001);
        let d = r.divergence.clone().expect("an altered order diverges");
        assert_eq!(d.record, i);
        let (live, replay) = (d.live.unwrap(), d.replay.unwrap());
        assert!(
            (live.qty - replay.qty - 0.001).abs() < 1e-12,
            "{}",
            summary(&r)
        );
        assert_eq!(live.client_order_id, replay.client_order_id);
        assert_eq!(r.orders_reproduced, 3);
        assert_eq!(r.runs[0].end, RunEnd::Diverged);
    }

    #[test]
    fn an_altered_market_event_changes_the_next_order_and_is_reported() {
        // The 11th hedge quote, moved up by 1000: the next order's limit price differs.
        let (i, r) = replay_altered(RecordKind::PollMd, 21, |e: &mut MarketEvent| {
            e.v[0] += 1000.0;
            e.v[2] += 1000.0;
        });
        let d = r.divergence.expect("an altered market event diverges");
        assert!(d.record > i, "{d:?}");
        assert!(d.live.is_some() && d.replay.is_some(), "{d:?}");
        assert_ne!(d.live.unwrap().limit_px, d.replay.unwrap().limit_px);
    }
}
