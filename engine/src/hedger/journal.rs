//! The session journal: what the live hedger's [`HedgerCore`] consumed, in order, so that
//! `hedgectl replay --session DIR` can feed it back through the same core and reproduce every
//! order bit for bit.
//!
//! # Recording, off the hot path
//! The loop's inputs are wrapped ([`RecordingMarket`], [`RecordingExecs`],
//! [`RecordingOrders`], [`RecordingControl`], [`RecordingClock`]); each wrapper copies what
//! the core read into a fixed-size [`Record`] and pushes it into a bounded in-process queue
//! through a [`Tap`] held in a `RefCell`. The queue is single-producer single-consumer with
//! batched publication ([`shm_layout::batch_queue`]): a push is an 80-byte store into the
//! next slot and a compare, with no allocation, lock, system call or compare-and-swap; the
//! loop makes its records visible with one store at the latest every
//! [`PUBLISH_EVERY_RECORDS`] records and at [`Tap::flush`], which the live loop calls after
//! its duties (its runner runs them after every iteration that found nothing to do, before
//! it idles).
//! A side thread ([`Recorder`]) wakes every 1 or 10 ms (by the rate records come at) and
//! writes everything published straight from the queue's slots to the file: one `write(2)` per contiguous run
//! (two when it wraps, one more at a file rotation), no per-record pop or copy. A full queue
//! never blocks the hot path: the record is dropped, counted ([`Tap::dropped`]) and, as soon
//! as there is room again, a [`RecordKind::Gap`] record says how many were lost, so a replay
//! knows the session is not reproducible from there.
//!
//! # What is recorded (in the order the core consumed it)
//! - a header at start (not hot path): journal version, the hedger's config text, the
//!   instrument definitions, the state the core started from, the clocks read at start;
//! - `Poll{now}` before the first other record of a loop iteration (empty polls leave
//!   nothing), `Md`, `Lapped`, `Exec`, every last-value read (`Lv`: the cost-aware band's
//!   depth, the rebuilds), every stage clock read (`Stamp`), control-word reads (only when the
//!   generation changed), `Pending` (orders ring occupancy the core asked for);
//! - the driver's calls: `Timer{now}` (`on_timer` then `idle_risk`), `Rebuild{now}`,
//!   `GatewayAlive` (on change), `Calibrate{mono, wall}` (once a second);
//! - `Order`: every order the core pushed and whether the ring took it, for comparison;
//! - `End` at a clean stop. A run that crashed has no `End`: its tail may be missing.
//!
//! # Files
//! `<state_dir>/session/journal-NNNNNNNNNN.bin` (0600, directory 0700, created with that
//! mode): a flat sequence of 80-byte little-endian [`Record`]s. Every run (process start)
//! begins a new file with its header; a file is closed at `session_file_max_mb` and the next
//! one opened; the oldest are deleted beyond `session_files_kept`. A run whose header was
//! rotated away cannot be replayed (the replay says so). Layout: `docs/operations.md`.

use super::core::StageClock;
use super::io::{Consumer, ControlSource, ExecSource, MarketSource, MdPoll, OrderSink, Producer};
use crate::limits::TradingMode;
use bytemuck::{Pod, Zeroable};
use shm_layout::batch_queue::{batch_queue, BatchConsumer, BatchProducer};
use shm_layout::{ExecEvent, HedgeOrder, InstrumentDef, LastValue};
use std::cell::{Cell, RefCell};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Version of the journal layout this build writes and reads. 2: a hold reads no decision
/// stamp, so a version-1 session's stamps would play back out of step (refused); an
/// iteration that begins with a market event is one `PollMd` record.
pub const JOURNAL_VERSION: u32 = 2;

/// Size of one record, bytes.
pub const RECORD_SIZE: usize = 80;

/// One journal record: a kind, a small and a 64-bit argument, a 64-byte payload.
#[derive(Clone, Copy, Pod, Zeroable, PartialEq, Eq)]
#[repr(C)]
pub struct Record {
    /// [`RecordKind`] as an integer.
    pub kind: u32,
    /// Kind-specific small argument (instrument id, flag, chunk index).
    pub small: u32,
    /// Kind-specific 64-bit argument (time ns, count, generation, length).
    pub value: u64,
    /// Kind-specific payload: a `MarketEvent`, `ExecEvent` or `HedgeOrder` (64 bytes each),
    /// a sixth of a `LastValue`, half an `InstrumentDef`, or 64 bytes of header text.
    pub payload: [u8; 64],
}

const _: () = assert!(core::mem::size_of::<Record>() == RECORD_SIZE);

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match RecordKind::from_u32(self.kind) {
            Some(k) => write!(f, "{k:?}(small {}, value {})", self.small, self.value),
            None => write!(f, "unknown kind {}", self.kind),
        }
    }
}

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum RecordKind {
    /// Header text (JSON): `value` total bytes, `small` chunk index.
    Header = 1,
    /// Half an instrument definition: `small` = index * 2 + half.
    Def = 2,
    /// A loop iteration at monotonic `value` ns.
    Poll = 10,
    /// A market event (payload); `small` = [`MD_WITH_STAMP`]: `value` is the stamp of its
    /// read (the next clock read), which then has no `Stamp` record of its own.
    Md = 11,
    /// The md reader was lapped and lost `value` events.
    Lapped = 12,
    /// Part `value` (0..6) of instrument `small`'s last value.
    Lv = 13,
    /// Instrument `small` has no last value.
    LvNone = 14,
    /// An exec report (payload).
    Exec = 15,
    /// A stage clock read: `value` ns.
    Stamp = 16,
    /// `on_timer` then `idle_risk` at monotonic `value` ns.
    Timer = 17,
    /// Control-block generation `value` (recorded when it changed).
    Generation = 18,
    /// Kill switch read: `small` 1 = on.
    Kill = 19,
    /// Trading mode of underlying `small`: `value` 0 active, 1 reduce-only, 2 halted.
    Mode = 20,
    /// The driver set the gateway's liveness: `small` 1 = alive.
    GatewayAlive = 21,
    /// Wall-clock calibration: monotonic `value`, wall ns in the payload's first 8 bytes.
    Calibrate = 22,
    /// An order the core pushed (payload); `small` 1 = the ring took it, 0 = full.
    Order = 23,
    /// Orders ring occupancy the core read: `value`.
    Pending = 24,
    /// Rebuild from the last-value table at monotonic `value` ns.
    Rebuild = 25,
    /// `value` records were dropped here (the recording queue was full).
    Gap = 26,
    /// Clean end of the run.
    End = 27,
    /// A loop iteration at monotonic `value` ns whose first record is a market event
    /// (payload), read at stamp `value + small` ns: the `Poll`, the `Md` and its read stamp
    /// in one record (the common case; otherwise they are written as `Poll` and `Md`).
    PollMd = 28,
}

impl RecordKind {
    /// Checked conversion; unknown values are `None`.
    pub fn from_u32(v: u32) -> Option<Self> {
        use RecordKind::*;
        Some(match v {
            1 => Header,
            2 => Def,
            10 => Poll,
            11 => Md,
            12 => Lapped,
            13 => Lv,
            14 => LvNone,
            15 => Exec,
            16 => Stamp,
            17 => Timer,
            18 => Generation,
            19 => Kill,
            20 => Mode,
            21 => GatewayAlive,
            22 => Calibrate,
            23 => Order,
            24 => Pending,
            25 => Rebuild,
            26 => Gap,
            27 => End,
            28 => PollMd,
            _ => return None,
        })
    }
}

/// `small` of an `Md` record whose `value` is the stage stamp read right after it.
pub const MD_WITH_STAMP: u32 = 1;

/// 64-byte parts of a `LastValue`.
pub const LV_PARTS: usize = core::mem::size_of::<LastValue>() / 64;
const _: () = assert!(LV_PARTS * 64 == core::mem::size_of::<LastValue>());

impl Record {
    /// A record with an empty payload.
    #[inline]
    pub fn new(kind: RecordKind, small: u32, value: u64) -> Self {
        Record {
            kind: kind as u32,
            small,
            value,
            payload: [0; 64],
        }
    }

    /// A record carrying a 64-byte message.
    #[inline]
    pub fn with<T: Pod>(kind: RecordKind, small: u32, value: u64, msg: &T) -> Self {
        let mut r = Record::new(kind, small, value);
        r.payload.copy_from_slice(bytemuck::bytes_of(msg));
        r
    }

    /// The kind (None: unknown).
    #[inline]
    pub fn kind(&self) -> Option<RecordKind> {
        RecordKind::from_u32(self.kind)
    }

    /// The payload as a 64-byte message.
    #[inline]
    pub fn msg<T: Pod>(&self) -> T {
        bytemuck::pod_read_unaligned(&self.payload)
    }

    /// A trading mode as recorded.
    pub fn mode(&self) -> TradingMode {
        match self.value {
            1 => TradingMode::ReduceOnly,
            2 => TradingMode::Halted,
            _ => TradingMode::Active,
        }
    }
}

fn mode_code(m: TradingMode) -> u64 {
    match m {
        TradingMode::Active => 0,
        TradingMode::ReduceOnly => 1,
        TradingMode::Halted => 2,
    }
}

/// Records the loop's end of the queue publishes at the latest (20 KiB): the writer can
/// start on a long iteration's records (a rebuild reads every instrument's last value)
/// before the iteration ends. Smaller for a queue of fewer than 1,024 records.
pub const PUBLISH_EVERY_RECORDS: usize = 256;

/// The hot path's end of the recording queue (held in a `RefCell` shared by the wrappers).
#[derive(Debug)]
pub struct Tap {
    queue: Option<BatchProducer<Record>>,
    pending_poll: Option<u64>,
    /// A market event held back until the next record, with the `Poll` of its iteration
    /// (if not yet written): the loop stamps its read at once, and that stamp goes into the
    /// event's record (one record instead of two). Both are queued after the stamp, so the
    /// queue's cost is not inside the feed -> hedger stage.
    staged_md: Option<(Option<u64>, Record)>,
    gap: u64,
    blocking: bool,
    /// Records dropped because the queue was full (the session is not reproducible past the
    /// first one).
    pub dropped: u64,
    dropped_shared: Option<Arc<AtomicU64>>,
}

impl Tap {
    /// A tap that records nothing (recording off).
    pub fn off() -> Self {
        Self::new(None, None)
    }

    /// Whether records go anywhere.
    pub fn is_on(&self) -> bool {
        self.queue.is_some()
    }

    /// Startup and shutdown (not hot path): wait for room instead of dropping when the queue
    /// is full, and publish every record at once. Turning it off publishes what is queued.
    pub fn set_blocking(&mut self, on: bool) {
        self.blocking = on;
        self.flush();
    }

    /// Makes every record pushed so far visible to the writer thread (one store; nothing
    /// when there is nothing new). The loop calls it before it can idle: a record never
    /// waits unpublished while the loop sleeps.
    #[inline]
    pub fn flush(&mut self) {
        if let Some(q) = &mut self.queue {
            q.publish();
        }
    }

    /// A loop iteration at monotonic `now_ns` begins: its `Poll` record is written before
    /// the first other record of the iteration, if any.
    #[inline]
    pub fn begin_poll(&mut self, now_ns: u64) {
        self.pending_poll = Some(now_ns);
    }

    /// Records a call of the driver (timer, rebuild, calibration...) made between loop
    /// iterations: the previous iteration recorded nothing, so its `Poll` is not written.
    #[inline]
    pub fn push_driver(&mut self, r: Record) {
        self.pending_poll = None;
        self.push(r);
    }

    /// Records `r` (after the pending `Poll`, if any). Never blocks on the hot path.
    ///
    /// An `Md` record is held until the next record; when that is the stage stamp of its
    /// read (always, in the loop), the stamp is stored in the `Md` record (`small` =
    /// [`MD_WITH_STAMP`], `value` = the stamp) and no `Stamp` record is written.
    #[inline]
    pub fn push(&mut self, r: Record) {
        if self.queue.is_none() {
            return;
        }
        if let Some((poll, mut md)) = self.staged_md.take() {
            if r.kind == RecordKind::Stamp as u32 {
                // The stamp's distance from the iteration's time, when it fits `small`.
                let after_poll = poll
                    .and_then(|now| r.value.checked_sub(now))
                    .and_then(|d| u32::try_from(d).ok());
                match (poll, after_poll) {
                    (Some(now), Some(d)) => {
                        md.kind = RecordKind::PollMd as u32;
                        (md.small, md.value) = (d, now);
                    }
                    (poll, _) => {
                        self.push_poll(poll);
                        (md.small, md.value) = (MD_WITH_STAMP, r.value);
                    }
                }
                self.push_raw(md);
                return;
            }
            self.push_poll(poll);
            self.push_raw(md);
        }
        if r.kind == RecordKind::Md as u32 {
            // Nothing is queued yet (not even the iteration's `Poll`): the loop reads its
            // stage stamp right after this, and the queue's pushes come after that stamp.
            self.staged_md = Some((self.pending_poll.take(), r));
            return;
        }
        let poll = self.pending_poll.take();
        self.push_poll(poll);
        self.push_raw(r);
    }

    /// Queues the `Poll` record of an iteration at `poll` ns, if one is owed.
    #[inline]
    fn push_poll(&mut self, poll: Option<u64>) {
        if let Some(now) = poll {
            self.push_raw(Record::new(RecordKind::Poll, 0, now));
        }
    }

    #[inline]
    fn push_raw(&mut self, r: Record) {
        let Some(q) = &mut self.queue else { return };
        if self.blocking {
            let mut r = r;
            // A full queue publishes what it holds, so the writer makes room.
            while let Err(back) = q.push(r) {
                r = back;
                std::thread::yield_now();
            }
            q.publish();
            return;
        }
        if self.gap > 0 {
            if q.push(Record::new(RecordKind::Gap, 0, self.gap)).is_err() {
                self.lost();
                return;
            }
            self.gap = 0;
        }
        if q.push(r).is_err() {
            self.lost();
        }
    }

    #[cold]
    fn lost(&mut self) {
        self.gap += 1;
        self.dropped += 1;
        if let Some(d) = &self.dropped_shared {
            d.store(self.dropped, Ordering::Relaxed);
        }
    }

    /// A tap feeding `queue` (tests read the queue's other end instead of a writer thread).
    pub fn on(queue: BatchProducer<Record>, dropped_shared: Option<Arc<AtomicU64>>) -> Self {
        Self::new(Some(queue), dropped_shared)
    }

    fn new(queue: Option<BatchProducer<Record>>, dropped_shared: Option<Arc<AtomicU64>>) -> Self {
        Tap {
            queue,
            pending_poll: None,
            staged_md: None,
            gap: 0,
            blocking: false,
            dropped: 0,
            dropped_shared,
        }
    }

    /// Records a last-value read.
    #[inline]
    pub fn push_lv(&mut self, id: u32, v: Option<LastValue>) {
        match v {
            None => self.push(Record::new(RecordKind::LvNone, id, 0)),
            Some(lv) => {
                let bytes = bytemuck::bytes_of(&lv);
                for (part, chunk) in bytes.chunks_exact(64).enumerate() {
                    let mut r = Record::new(RecordKind::Lv, id, part as u64);
                    r.payload.copy_from_slice(chunk);
                    self.push(r);
                }
            }
        }
    }
}

impl Drop for Tap {
    /// What was pushed is published: a tap dropped before [`Recorder::finish`] loses nothing.
    fn drop(&mut self) {
        self.flush();
    }
}

/// Rebuilds a last value from its [`LV_PARTS`] `Lv` records.
pub fn lv_from_parts(parts: &[Record]) -> Option<LastValue> {
    if parts.len() != LV_PARTS {
        return None;
    }
    let mut bytes = [0u8; core::mem::size_of::<LastValue>()];
    for (i, r) in parts.iter().enumerate() {
        if r.kind() != Some(RecordKind::Lv) || r.value != i as u64 {
            return None;
        }
        bytes[i * 64..(i + 1) * 64].copy_from_slice(&r.payload);
    }
    Some(bytemuck::pod_read_unaligned(&bytes))
}

/// A [`MarketSource`] that records what it returns.
pub struct RecordingMarket<'t, M> {
    /// The source.
    pub inner: M,
    tap: &'t RefCell<Tap>,
}

impl<'t, M> RecordingMarket<'t, M> {
    /// Wraps `inner`.
    pub fn new(inner: M, tap: &'t RefCell<Tap>) -> Self {
        RecordingMarket { inner, tap }
    }
}

impl<M: MarketSource> MarketSource for RecordingMarket<'_, M> {
    #[inline]
    fn poll(&mut self) -> MdPoll {
        let p = self.inner.poll();
        match p {
            MdPoll::Empty => {}
            MdPoll::Event(e) => self
                .tap
                .borrow_mut()
                .push(Record::with(RecordKind::Md, 0, 0, &e)),
            MdPoll::Lapped(n) => self
                .tap
                .borrow_mut()
                .push(Record::new(RecordKind::Lapped, 0, n)),
        }
        p
    }
    #[inline]
    fn last_value(&self, id: u32) -> Option<LastValue> {
        let v = self.inner.last_value(id);
        self.tap.borrow_mut().push_lv(id, v);
        v
    }
}

/// An [`ExecSource`] that records every report it hands out.
pub struct RecordingExecs<'t, E> {
    /// The source.
    pub inner: E,
    tap: &'t RefCell<Tap>,
}

impl<'t, E> RecordingExecs<'t, E> {
    /// Wraps `inner`.
    pub fn new(inner: E, tap: &'t RefCell<Tap>) -> Self {
        RecordingExecs { inner, tap }
    }
}

impl<E: ExecSource> Consumer<ExecEvent> for RecordingExecs<'_, E> {
    #[inline]
    fn peek(&mut self) -> Option<ExecEvent> {
        let e = self.inner.peek();
        if let Some(e) = &e {
            self.tap
                .borrow_mut()
                .push(Record::with(RecordKind::Exec, 0, 0, e));
        }
        e
    }
    #[inline]
    fn commit(&mut self, n: usize) {
        self.inner.commit(n);
    }
}

/// An [`OrderSink`] that records every order pushed (and whether it was taken) and every
/// occupancy read.
pub struct RecordingOrders<'t, O> {
    /// The sink.
    pub inner: O,
    tap: &'t RefCell<Tap>,
}

impl<'t, O> RecordingOrders<'t, O> {
    /// Wraps `inner`.
    pub fn new(inner: O, tap: &'t RefCell<Tap>) -> Self {
        RecordingOrders { inner, tap }
    }
}

impl<O: OrderSink> Producer<HedgeOrder> for RecordingOrders<'_, O> {
    #[inline]
    fn push(&mut self, order: HedgeOrder) -> Result<(), HedgeOrder> {
        let r = self.inner.push(order);
        self.tap
            .borrow_mut()
            .push(Record::with(RecordKind::Order, r.is_ok() as u32, 0, &order));
        r
    }
    #[inline]
    fn pending(&self) -> usize {
        let n = self.inner.pending();
        self.tap
            .borrow_mut()
            .push(Record::new(RecordKind::Pending, 0, n as u64));
        n
    }
}

/// A [`ControlSource`] that records the generation when it changes and every word read.
pub struct RecordingControl<'t, C> {
    /// The control words.
    pub inner: C,
    tap: &'t RefCell<Tap>,
    last_generation: Cell<u64>,
}

impl<'t, C> RecordingControl<'t, C> {
    /// Wraps `inner`.
    pub fn new(inner: C, tap: &'t RefCell<Tap>) -> Self {
        RecordingControl {
            inner,
            tap,
            last_generation: Cell::new(u64::MAX),
        }
    }
}

impl<C: ControlSource> ControlSource for RecordingControl<'_, C> {
    #[inline]
    fn generation(&self) -> u64 {
        let g = self.inner.generation();
        if g != self.last_generation.get() {
            self.last_generation.set(g);
            self.tap
                .borrow_mut()
                .push(Record::new(RecordKind::Generation, 0, g));
        }
        g
    }
    fn kill_switch(&self) -> bool {
        let k = self.inner.kill_switch();
        self.tap
            .borrow_mut()
            .push(Record::new(RecordKind::Kill, k as u32, 0));
        k
    }
    fn trading_mode(&self, id: u32) -> TradingMode {
        let m = self.inner.trading_mode(id);
        self.tap
            .borrow_mut()
            .push(Record::new(RecordKind::Mode, id, mode_code(m)));
        m
    }
}

/// The vDSO monotonic clock, recording every value it returns.
pub struct RecordingClock<'t> {
    tap: &'t RefCell<Tap>,
}

impl<'t> RecordingClock<'t> {
    /// Records into `tap`.
    pub fn new(tap: &'t RefCell<Tap>) -> Self {
        RecordingClock { tap }
    }
}

impl StageClock for RecordingClock<'_> {
    #[inline]
    fn now(&self) -> u64 {
        let t = shm_layout::clock::now_ns();
        self.tap
            .borrow_mut()
            .push(Record::new(RecordKind::Stamp, 0, t));
        t
    }
}

/// What a run started from: everything a replay needs besides the records.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Header {
    /// [`JOURNAL_VERSION`] of the writer.
    pub journal_version: u32,
    /// The hedger's configuration file, as read (CLI overrides change only segment names,
    /// directories, pinning and logging, none of which the core sees).
    pub config_text: String,
    /// The restored state ([`super::state::PersistState::encode`] text); None on a first
    /// start (the config's positions are used).
    pub state_text: Option<String>,
    /// Monotonic ns read at start (the core's origin).
    pub start_mono_ns: u64,
    /// Wall ns read at start.
    pub start_wall_ns: u64,
    /// Whether the orders ring held unconsumed orders at a first start (reconcile first).
    pub orders_pending_at_start: bool,
    /// Number of instrument definitions (the `Def` records after the header).
    pub n_defs: u32,
}

/// The records of a header and the definitions.
pub fn header_records(h: &Header, defs: &[InstrumentDef]) -> Vec<Record> {
    let text = serde_json::to_vec(h).expect("a header serializes");
    let mut out = Vec::new();
    for (i, chunk) in text.chunks(64).enumerate() {
        let mut r = Record::new(RecordKind::Header, i as u32, text.len() as u64);
        r.payload[..chunk.len()].copy_from_slice(chunk);
        out.push(r);
    }
    for (i, d) in defs.iter().enumerate() {
        for (half, chunk) in bytemuck::bytes_of(d).chunks_exact(64).enumerate() {
            let mut r = Record::new(RecordKind::Def, (i * 2 + half) as u32, 0);
            r.payload.copy_from_slice(chunk);
            out.push(r);
        }
    }
    out
}

/// Errors reading a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file or directory could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A run's header is malformed.
    #[error("record {index}: bad header: {msg}")]
    BadHeader {
        /// Record index (in the whole session).
        index: usize,
        /// What is wrong.
        msg: String,
    },
}

/// Parses the header starting at `recs[0]`; returns it, the definitions and the number of
/// records used.
///
/// # Errors
/// Truncated or malformed header records, another journal version.
pub fn parse_header(
    recs: &[Record],
    index: usize,
) -> Result<(Header, Vec<InstrumentDef>, usize), JournalError> {
    let bad = |msg: String| JournalError::BadHeader { index, msg };
    let len = recs.first().map_or(0, |r| r.value as usize);
    let n = len.div_ceil(64);
    if n == 0
        || recs.len() < n
        || recs[..n]
            .iter()
            .any(|r| r.kind() != Some(RecordKind::Header))
    {
        return Err(bad("truncated header".into()));
    }
    let mut text = Vec::with_capacity(n * 64);
    for r in &recs[..n] {
        text.extend_from_slice(&r.payload);
    }
    text.truncate(len);
    let h: Header = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    if h.journal_version != JOURNAL_VERSION {
        return Err(bad(format!(
            "journal version {}, this build reads {JOURNAL_VERSION}",
            h.journal_version
        )));
    }
    let nd = h.n_defs as usize * 2;
    let defs_recs = recs
        .get(n..n + nd)
        .ok_or_else(|| bad("truncated definitions".into()))?;
    let mut defs = Vec::with_capacity(h.n_defs as usize);
    for pair in defs_recs.chunks_exact(2) {
        if pair.iter().any(|r| r.kind() != Some(RecordKind::Def)) {
            return Err(bad("definition records expected".into()));
        }
        let mut bytes = [0u8; 128];
        bytes[..64].copy_from_slice(&pair[0].payload);
        bytes[64..].copy_from_slice(&pair[1].payload);
        defs.push(bytemuck::pod_read_unaligned(&bytes));
    }
    Ok((h, defs, n + nd))
}

/// Where and how much to record (`[runtime]` keys `session_*`).
#[derive(Debug, Clone)]
pub struct JournalConfig {
    /// Directory (`<state_dir>/session`).
    pub dir: PathBuf,
    /// A file is closed once it holds this many bytes.
    pub file_max_bytes: u64,
    /// Files kept (the oldest are deleted beyond this).
    pub files_kept: usize,
    /// Capacity of the in-process queue, records (80 bytes each; rounded up to a power of
    /// two).
    pub queue_records: usize,
}

const FILE_PREFIX: &str = "journal-";
const FILE_SUFFIX: &str = ".bin";

/// The journal files of `dir`, oldest first.
///
/// # Errors
/// The directory cannot be read.
pub fn journal_files(dir: &Path) -> Result<Vec<PathBuf>, JournalError> {
    let io = |source| JournalError::Io {
        path: dir.into(),
        source,
    };
    let mut files: Vec<(u64, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io)? {
        let p = e.map_err(io)?.path();
        let idx = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(FILE_PREFIX))
            .and_then(|n| n.strip_suffix(FILE_SUFFIX))
            .and_then(|n| n.parse().ok());
        if let Some(i) = idx {
            files.push((i, p));
        }
    }
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Every record of a session directory, in order, and where each file starts.
#[derive(Debug, Default)]
pub struct Session {
    /// Records of every file, oldest file first.
    pub records: Vec<Record>,
    /// (first record index, path) of each file.
    pub files: Vec<(usize, PathBuf)>,
    /// Bytes of a torn last record ignored (a crash mid-write), summed over files.
    pub torn_bytes: usize,
}

/// Reads every journal file of `dir`.
///
/// # Errors
/// Unreadable directory or file.
pub fn read_session(dir: &Path) -> Result<Session, JournalError> {
    let mut s = Session::default();
    for p in journal_files(dir)? {
        let bytes = std::fs::read(&p).map_err(|source| JournalError::Io {
            path: p.clone(),
            source,
        })?;
        s.files.push((s.records.len(), p));
        let whole = bytes.len() / RECORD_SIZE * RECORD_SIZE;
        s.torn_bytes += bytes.len() - whole;
        s.records.extend(
            bytes[..whole]
                .chunks_exact(RECORD_SIZE)
                .map(bytemuck::pod_read_unaligned::<Record>),
        );
    }
    Ok(s)
}

/// The side thread that writes the recording queue to files.
#[derive(Debug)]
pub struct Recorder {
    /// The loop's end of the queue until [`Recorder::tap`] takes it (one producer).
    producer: Option<BatchProducer<Record>>,
    stop: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<std::io::Result<u64>>>,
}

/// How long the writer thread sleeps after a pass that found less than an eighth of the
/// queue published, when records come fast: at two million records a second the queue
/// (65,536 by default) holds about 30 ms, and each wake writes about a millisecond of records
/// (some 150 KB at saturation) in one or two system calls instead of one per few records.
const WRITER_SLEEP_SHORT: Duration = Duration::from_millis(1);

/// The writer's sleep when a sleep this long would gather less than an eighth of the queue
/// at the rate of the last one (100k events/s: about 2,500 records). A wake costs the
/// thread tens of microseconds on a virtual machine whatever it writes; at a moderate rate
/// a 1 ms cadence made the wakes most of the writer's CPU. A jump to saturation during it
/// fills about a third of the default queue at most.
const WRITER_SLEEP_LONG: Duration = Duration::from_millis(10);

struct FileWriter {
    cfg: JournalConfig,
    next_index: u64,
    out: std::fs::File,
    bytes: u64,
}

impl FileWriter {
    fn open(cfg: JournalConfig) -> std::io::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&cfg.dir)?;
        let last = journal_files(&cfg.dir)
            .map_err(|e| std::io::Error::other(e.to_string()))?
            .last()
            .and_then(|p| p.file_name()?.to_str()?.get(8..18)?.parse::<u64>().ok());
        let next_index = last.map_or(1, |i| i + 1);
        let out = Self::create(&cfg, next_index)?;
        let w = FileWriter {
            cfg,
            next_index: next_index + 1,
            out,
            bytes: 0,
        };
        w.prune()?;
        Ok(w)
    }

    fn create(cfg: &JournalConfig, index: u64) -> std::io::Result<std::fs::File> {
        let path = cfg
            .dir
            .join(format!("{FILE_PREFIX}{index:010}{FILE_SUFFIX}"));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
    }

    fn prune(&self) -> std::io::Result<()> {
        let files =
            journal_files(&self.cfg.dir).map_err(|e| std::io::Error::other(e.to_string()))?;
        let excess = files.len().saturating_sub(self.cfg.files_kept.max(1));
        for p in &files[..excess] {
            std::fs::remove_file(p)?;
        }
        Ok(())
    }

    /// Writes `recs` as they lie in the queue, one `write(2)` per file they go to. A file
    /// takes records while it holds fewer than `file_max_bytes` (so a file ends at a record
    /// boundary, the first at or past the limit); the next file is opened for the next record.
    fn write_run(&mut self, mut recs: &[Record]) -> std::io::Result<()> {
        while !recs.is_empty() {
            if self.bytes >= self.cfg.file_max_bytes {
                self.out = Self::create(&self.cfg, self.next_index)?;
                self.next_index += 1;
                self.bytes = 0;
                self.prune()?;
            }
            // Records this file still takes (at least one: a limit of 0 is a record a file).
            let room = (self.cfg.file_max_bytes - self.bytes)
                .div_ceil(RECORD_SIZE as u64)
                .max(1);
            let take = recs.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            self.out.write_all(bytemuck::cast_slice(&recs[..take]))?;
            self.bytes += (take * RECORD_SIZE) as u64;
            recs = &recs[take..];
        }
        Ok(())
    }

    /// The writer thread's loop: everything published, every [`WRITER_SLEEP_SHORT`] or
    /// [`WRITER_SLEEP_LONG`] (at once while an eighth of the queue or more waits), until
    /// `stop`; then what remains. Returns the records written.
    fn run(mut self, mut queue: BatchConsumer<Record>, stop: &AtomicBool) -> std::io::Result<u64> {
        let (mut written, mut since_sleep) = (0u64, 0u64);
        let busy = queue.capacity() as u64 / 8;
        let mut sleep = WRITER_SLEEP_SHORT;
        loop {
            // SYNC POINT: Acquire pairs with the Release store in `Recorder::finish`, made
            // after the loop's last push and publication: all of it is drained below.
            let stopping = stop.load(Ordering::Acquire);
            let n = queue.consume(|run| self.write_run(run))? as u64;
            written += n;
            since_sleep += n;
            if stopping {
                if n == 0 {
                    return Ok(written);
                }
            } else if n < busy {
                // What a long sleep would gather at the rate of the last sleep.
                let long = WRITER_SLEEP_LONG.as_nanos() / sleep.as_nanos();
                sleep = if u128::from(since_sleep) * long < u128::from(busy) {
                    WRITER_SLEEP_LONG
                } else {
                    WRITER_SLEEP_SHORT
                };
                since_sleep = 0;
                std::thread::sleep(sleep);
            }
        }
    }
}

impl Recorder {
    /// Creates the directory and a new file (this run's first) and starts the writer thread.
    ///
    /// # Errors
    /// The directory or file cannot be created.
    pub fn start(cfg: &JournalConfig) -> std::io::Result<Self> {
        let cap = cfg.queue_records.max(64);
        let (producer, consumer) = batch_queue(cap, (cap / 4).min(PUBLISH_EVERY_RECORDS));
        let stop = Arc::new(AtomicBool::new(false));
        let w = FileWriter::open(cfg.clone())?;
        let s = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("hedger-journal".into())
            .spawn(move || w.run(consumer, &s))?;
        Ok(Recorder {
            producer: Some(producer),
            stop,
            dropped: Arc::new(AtomicU64::new(0)),
            thread: Some(thread),
        })
    }

    /// The hot path's end of the queue.
    ///
    /// # Panics
    /// When called twice: the queue has one producer.
    pub fn tap(&mut self) -> Tap {
        let producer = self
            .producer
            .take()
            .expect("Recorder::tap: the session journal's queue has one producer");
        Tap::on(producer, Some(Arc::clone(&self.dropped)))
    }

    /// Records dropped so far (queue full).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Whether the writer thread stopped (an I/O error; [`Recorder::finish`] returns it).
    pub fn failed(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Writes what is published and stops the thread; returns the records written. The
    /// tap publishes in blocking mode ([`Tap::set_blocking`]) and at [`Tap::flush`]; records
    /// pushed after that are not written.
    ///
    /// # Errors
    /// A write error of the thread.
    pub fn finish(mut self) -> std::io::Result<u64> {
        // SYNC POINT: Release pairs with the writer's Acquire load in `FileWriter::run`:
        // every publication before it is drained.
        self.stop.store(true, Ordering::Release);
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| std::io::Error::other("journal writer panicked"))?,
            None => Ok(0),
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The market event's record and its iteration's `Poll` are queued only once the read
    /// stamp comes: the loop reads the stamp right after the event, and nothing is pushed
    /// into the queue in between. The order of the records is the same as before.
    #[test]
    fn a_market_event_queues_nothing_before_its_read_stamp() {
        let (mut q, mut tap, e) = tap_after_md(16, 7);
        assert!(
            drain(&mut tap, &mut q).is_empty(),
            "nothing queued before the stamp"
        );
        tap.push(Record::new(RecordKind::Stamp, 0, 9));
        assert_eq!(
            drain_fields(&mut tap, &mut q),
            [(Some(RecordKind::PollMd), 2, 7)]
        );
        // An event followed by something else than its stamp (and a driver call) keeps the
        // order Poll, Md, then the rest.
        tap.begin_poll(10);
        tap.push(Record::with(RecordKind::Md, 0, 0, &e));
        tap.push_driver(Record::new(RecordKind::Timer, 0, 11));
        assert_eq!(
            drain_fields(&mut tap, &mut q),
            [
                (Some(RecordKind::Poll), 0, 10),
                (Some(RecordKind::Md), 0, 0),
                (Some(RecordKind::Timer), 0, 11)
            ]
        );
    }

    fn cfg(dir: &Path, file_max_bytes: u64, files_kept: usize) -> JournalConfig {
        JournalConfig {
            dir: dir.join("session"),
            file_max_bytes,
            files_kept,
            queue_records: 1024,
        }
    }

    #[test]
    fn files_are_owner_only_rotated_and_pruned() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cfg(tmp.path(), 10 * RECORD_SIZE as u64, 3);
        let mut rec = Recorder::start(&c).unwrap();
        let mut tap = rec.tap();
        tap.set_blocking(true);
        for i in 0..45 {
            tap.push(Record::new(RecordKind::Stamp, 0, i));
        }
        assert_eq!(rec.finish().unwrap(), 45);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&c.dir), 0o700);
        let files = journal_files(&c.dir).unwrap();
        assert_eq!(files.len(), 3, "{files:?}");
        assert!(files.iter().all(|f| mode(f) == 0o600));
        let s = read_session(&c.dir).unwrap();
        // 45 records, 10 per file: files 3, 4, 5 kept (20..45).
        let values: Vec<u64> = s.records.iter().map(|r| r.value).collect();
        assert_eq!(values, (20..45).collect::<Vec<_>>());
    }

    /// A tap feeding a queue of `cap` records (a power of two) that the test reads instead
    /// of a writer thread; the tap publishes only when the test flushes it or it is full.
    fn queued_tap(cap: usize) -> (BatchConsumer<Record>, Tap) {
        let (p, c) = batch_queue(cap, usize::MAX);
        (c, Tap::on(p, None))
    }

    /// Flushes the tap and takes every record it published.
    fn drain(tap: &mut Tap, q: &mut BatchConsumer<Record>) -> Vec<Record> {
        tap.flush();
        let mut got = Vec::new();
        q.consume(|run| {
            got.extend_from_slice(run);
            Ok::<_, ()>(())
        })
        .unwrap();
        got
    }

    /// A tap of `cap` records whose loop iteration at `poll_ns` began with a market event
    /// (returned), not yet followed by its read stamp.
    fn tap_after_md(
        cap: usize,
        poll_ns: u64,
    ) -> (BatchConsumer<Record>, Tap, shm_layout::MarketEvent) {
        let (q, mut tap) = queued_tap(cap);
        let e = shm_layout::MarketEvent::underlying_price(1, 5, 6, 100.0);
        tap.begin_poll(poll_ns);
        tap.push(Record::with(RecordKind::Md, 0, 0, &e));
        (q, tap, e)
    }

    /// [`drain`], each record as its kind, small and value.
    fn drain_fields(
        tap: &mut Tap,
        q: &mut BatchConsumer<Record>,
    ) -> Vec<(Option<RecordKind>, u32, u64)> {
        drain(tap, q)
            .into_iter()
            .map(|r| (r.kind(), r.small, r.value))
            .collect()
    }

    #[test]
    fn a_full_queue_drops_counts_and_marks_a_gap() {
        let (mut q, mut tap) = queued_tap(4);
        tap.begin_poll(7);
        for i in 0..6 {
            tap.push(Record::new(RecordKind::Stamp, 0, i));
        }
        // Poll + 3 stamps fit; 3 dropped.
        assert_eq!(tap.dropped, 3);
        let got = drain(&mut tap, &mut q);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].kind(), Some(RecordKind::Poll));
        tap.push(Record::new(RecordKind::Stamp, 0, 99));
        let got = drain(&mut tap, &mut q);
        assert_eq!(got[0], Record::new(RecordKind::Gap, 0, 3));
        assert_eq!(got[1].value, 99);
    }

    /// Records pushed stay invisible to the writer until the loop flushes (or a batch of
    /// [`PUBLISH_EVERY_RECORDS`] fills); flushing and dropping the tap publish them.
    #[test]
    fn records_reach_the_writer_at_a_flush_and_when_the_tap_is_dropped() {
        let (p, q) = batch_queue(1024, PUBLISH_EVERY_RECORDS);
        let mut tap = Tap::on(p, None);
        for i in 0..PUBLISH_EVERY_RECORDS as u64 + 3 {
            tap.push(Record::new(RecordKind::Stamp, 0, i));
        }
        assert_eq!(
            q.len(),
            PUBLISH_EVERY_RECORDS,
            "a full batch is published by itself"
        );
        tap.flush();
        assert_eq!(q.len(), PUBLISH_EVERY_RECORDS + 3);
        tap.push(Record::new(RecordKind::End, 0, 0));
        drop(tap);
        assert_eq!(q.len(), PUBLISH_EVERY_RECORDS + 4);
    }

    /// A run of records published at once is split exactly at the file size limit: each
    /// file holds the records that start before the limit (11 for 10 records and a byte),
    /// none torn, in order across files.
    #[test]
    fn a_published_run_is_split_at_the_file_limit_on_a_record_boundary() {
        let tmp = tempfile::tempdir().unwrap();
        let c = cfg(tmp.path(), 10 * RECORD_SIZE as u64 + 1, 10);
        let mut rec = Recorder::start(&c).unwrap();
        let mut tap = rec.tap();
        for i in 0..45 {
            tap.push(Record::new(RecordKind::Stamp, 0, i));
        }
        tap.flush();
        assert_eq!(rec.finish().unwrap(), 45);
        let sizes: Vec<u64> = journal_files(&c.dir)
            .unwrap()
            .iter()
            .map(|f| std::fs::metadata(f).unwrap().len() / RECORD_SIZE as u64)
            .collect();
        assert_eq!(sizes, [11, 11, 11, 11, 1]);
        let s = read_session(&c.dir).unwrap();
        assert_eq!(s.torn_bytes, 0);
        let values: Vec<u64> = s.records.iter().map(|r| r.value).collect();
        assert_eq!(values, (0..45).collect::<Vec<_>>());
    }

    #[test]
    fn a_market_event_and_its_read_stamp_share_one_record() {
        let (mut q, mut tap, e) = tap_after_md(64, 5);
        tap.push(Record::new(RecordKind::Stamp, 0, 7));
        tap.push(Record::new(RecordKind::Stamp, 0, 8));
        tap.push(Record::with(RecordKind::Md, 0, 0, &e));
        tap.push_driver(Record::new(RecordKind::End, 0, 0));
        let got = drain(&mut tap, &mut q);
        let kinds: Vec<_> = got.iter().map(|r| r.kind().unwrap()).collect();
        use RecordKind::*;
        assert_eq!(kinds, [PollMd, Stamp, Md, End]);
        assert_eq!(
            (got[0].small, got[0].value),
            (2, 5),
            "read 2 ns after the poll at 5"
        );
        assert_eq!(got[0].msg::<shm_layout::MarketEvent>(), e);
        assert_eq!((got[2].small, got[2].value), (0, 0), "no stamp followed");
        // Not the iteration's first record (an exec came first): `Md` with its stamp; and a
        // stamp more than u32::MAX ns after the poll: `Poll`, then `Md` with its stamp.
        let (mut q, mut tap) = queued_tap(64);
        tap.begin_poll(5);
        tap.push(Record::new(RecordKind::Exec, 0, 0));
        tap.push(Record::with(RecordKind::Md, 0, 0, &e));
        tap.push(Record::new(RecordKind::Stamp, 0, 7));
        tap.begin_poll(10);
        tap.push(Record::with(RecordKind::Md, 0, 0, &e));
        tap.push(Record::new(RecordKind::Stamp, 0, 10 + (1 << 32)));
        assert_eq!(
            drain_fields(&mut tap, &mut q),
            [
                (Some(Poll), 0, 5),
                (Some(Exec), 0, 0),
                (Some(Md), MD_WITH_STAMP, 7),
                (Some(Poll), 0, 10),
                (Some(Md), MD_WITH_STAMP, 10 + (1 << 32))
            ]
        );
    }

    #[test]
    fn empty_polls_leave_nothing_and_header_round_trips() {
        let (mut q, mut tap) = queued_tap(64);
        tap.begin_poll(1);
        tap.begin_poll(2);
        assert!(drain(&mut tap, &mut q).is_empty());
        let h = Header {
            journal_version: JOURNAL_VERSION,
            config_text: "[underlyings.BTC]\nhedge_instrument = \"P\"\n".repeat(5),
            state_text: None,
            start_mono_ns: 5,
            start_wall_ns: 6,
            orders_pending_at_start: true,
            n_defs: 2,
        };
        let mut d = InstrumentDef::zeroed();
        d.set_symbol("BTC");
        let recs = header_records(&h, &[d, d]);
        let (h2, defs, n) = parse_header(&recs, 0).unwrap();
        assert_eq!((h2, n), (h, recs.len()));
        assert_eq!(defs[1].symbol(), "BTC");
        assert!(parse_header(&recs[..recs.len() - 1], 0).is_err());
    }
}
