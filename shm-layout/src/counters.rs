//! Counters region: per-process liveness (pid, heartbeat, state) and named counters and gauges,
//! read by other processes without locks. The model is Aeron's CnC file and `AeronStat`.
//!
//! One segment per process, named `cnc-<role>`. Layout (after the 128-byte header, whose
//! `creator_pid` and `heartbeat_ns` are the process's liveness): at 128 `state` u32
//! ([`ProcessState`]), at 132 `num_counters` u32 (records allocated; Release after the record's
//! metadata is written), then at 256 `capacity` records of 256 bytes: `value` u64 at +0
//! (counter: u64; gauge: f64 bits), `kind` u32 at +8 (1 counter, 2 gauge), `label_len` u32 at
//! +12, `label` 112 bytes of UTF-8 at +16 (`name` or `name{key="value",...}`), `unit_len` u32
//! at +128, `help_len` u32 at +132, `unit` 24 bytes at +136, `help` 96 bytes at +160. The value
//! word is alone in its cache line (the metadata after it is written once, at registration),
//! so counters updated by different threads do not share a line.
//!
//! Processes declare their counters once, as a [`crate::counter_schema::CounterSchema`]
//! (see [`crate::counter_schema!`]); [`CountersWriter::register`] writes the labels, units and
//! help texts into the segment and returns the hot-path handles.

use crate::segment::{self, OpenOptions, Segment, SegmentError, SegmentKind, StalePolicy};
use crate::sync::{AtomicU64, Ordering};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

/// Offset of the process state word.
pub const STATE_OFFSET: usize = 128;
/// Offset of the number of allocated records.
pub const NUM_COUNTERS_OFFSET: usize = 132;
/// Offset of record 0.
pub const RECORDS_OFFSET: usize = 256;
/// Bytes per record.
pub const RECORD_SIZE: usize = 256;
/// Offset of `kind` in a record.
const KIND_AT: usize = 8;
/// Offset of `label_len` in a record (the label follows at [`LABEL_AT`]).
const LABEL_LEN_AT: usize = 12;
const LABEL_AT: usize = 16;
/// Offset of `unit_len` in a record.
const UNIT_LEN_AT: usize = 128;
/// Offset of `help_len` in a record.
const HELP_LEN_AT: usize = 132;
const UNIT_AT: usize = 136;
const HELP_AT: usize = 160;
/// Maximum label length in bytes (longer labels are truncated at a char boundary).
pub const LABEL_LEN: usize = 112;
/// Maximum unit length in bytes.
pub const UNIT_LEN: usize = 24;
/// Maximum help text length in bytes.
pub const HELP_LEN: usize = 96;
/// Records per counters segment.
pub const CAPACITY: usize = 1024;
/// Record kind: monotonically counted u64.
pub const KIND_COUNTER: u32 = 1;
/// Record kind: f64 gauge stored as bits.
pub const KIND_GAUGE: u32 = 2;

fn spec() -> segment::Spec {
    segment::Spec {
        kind: SegmentKind::Counters,
        msg_type: "CounterRecord",
        msg_size: RECORD_SIZE as u32,
        msg_align: 8,
        // Only CAPACITY records: readers index records 0..num_counters.min(CAPACITY).
        size_for: segment::fixed_records_size::<CAPACITY, RECORDS_OFFSET>,
    }
}

segment::word_enum! {
    /// Life-cycle state of a process, as published in its counters segment.
    pub enum ProcessState {
        /// Initializing.
        Starting = 1 => "starting",
        /// In its main loop.
        Running = 2 => "running",
        /// Shutting down.
        Stopping = 3 => "stopping",
        /// Exited cleanly.
        Stopped = 4 => "stopped",
    }
}

/// Whether a process looks alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// Process running and heartbeat fresh.
    Alive,
    /// Process running but its heartbeat is older than the threshold (stuck or not beating).
    StaleHeartbeat,
    /// Process gone (or its pid was reused by another process).
    Dead,
}

/// A value read from a counters segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CounterValue {
    /// A counter.
    Counter(u64),
    /// A gauge.
    Gauge(f64),
}

/// Keeps the memory behind a [`Counter`]/[`Gauge`] alive.
enum Backing {
    Segment(#[allow(dead_code)] Arc<Segment>),
    Heap(#[allow(dead_code)] Arc<AtomicU64>),
}

/// A named u64 counter in shared memory. Relaxed atomics: no syscall, no lock.
#[derive(Clone)]
pub struct Counter {
    word: NonNull<AtomicU64>,
    _backing: Arc<Backing>,
}

// SAFETY: `word` points at an AtomicU64 kept alive by `_backing`; atomics are thread-safe.
unsafe impl Send for Counter {}
// SAFETY: as above.
unsafe impl Sync for Counter {}

impl Counter {
    #[inline]
    fn atomic(&self) -> &AtomicU64 {
        // SAFETY: `word` is valid and aligned while `_backing` lives (it lives as long as self).
        unsafe { self.word.as_ref() }
    }
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.atomic().fetch_add(n, Ordering::Relaxed);
    }
    /// Adds 1.
    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: u64) {
        self.atomic().store(v, Ordering::Relaxed);
    }
    /// Current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.atomic().load(Ordering::Relaxed)
    }
    /// A counter not backed by shared memory (tests, or when the segment is full).
    pub fn detached() -> Self {
        let a = Arc::new(AtomicU64::new(0));
        Counter {
            word: NonNull::from(&*a),
            _backing: Arc::new(Backing::Heap(a)),
        }
    }
}

/// A named f64 gauge in shared memory (stored as bits).
#[derive(Clone)]
pub struct Gauge(Counter);

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: f64) {
        self.0.set(v.to_bits());
    }
    /// Current value.
    #[inline]
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.get())
    }
    /// A gauge not backed by shared memory.
    pub fn detached() -> Self {
        Gauge(Counter::detached())
    }
    /// The gauge stored in `word` (f64 bits).
    pub(crate) fn from_word(word: Counter) -> Self {
        Gauge(word)
    }
}

/// The writer of one process's counters segment.
pub struct CountersWriter {
    seg: Arc<Segment>,
    /// Records asked for when the segment was full: they work in process but no reader
    /// sees them ([`CountersWriter::not_shown`]).
    not_shown: usize,
}

// SAFETY: the handle owns an Arc of the mapping; its methods use atomics only.
unsafe impl Send for CountersWriter {}
// SAFETY: as above; allocation (`counter`) takes `&mut self`.
unsafe impl Sync for CountersWriter {}

/// `s` cut to at most `max` bytes at a char boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// What a record describes besides its value: written once, at registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta<'a> {
    /// `name` or `name{key="value",...}` (Prometheus syntax).
    pub label: &'a str,
    /// [`KIND_COUNTER`] or [`KIND_GAUGE`].
    pub kind: u32,
    /// Unit of the value (`events`, `ns`, `lots`, ...; empty when dimensionless).
    pub unit: &'a str,
    /// One line for operators (Prometheus `# HELP`).
    pub help: &'a str,
}

/// One record as a reader sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CounterRecord {
    /// `name` or `name{key="value",...}`.
    pub label: String,
    /// The `kind` word as written: [`KIND_COUNTER`], [`KIND_GAUGE`], or a value this build does
    /// not know (then [`CounterRecord::value`] holds the raw word as a counter).
    pub kind: u32,
    /// The value, decoded by `kind`.
    pub value: CounterValue,
    /// Unit (empty if the writer gave none).
    pub unit: String,
    /// Help text (empty if the writer gave none).
    pub help: String,
}

/// Stores the length of `s` at `len_at` and its bytes from `at`.
///
/// # Safety
/// `len_at` is 4-aligned and `len_at + 4` and `at + s.len()` are inside the mapping (a record
/// `< CAPACITY` and `s` cut to its field's length).
unsafe fn store_str(mem: &crate::sync::Mem, len_at: usize, at: usize, s: &str) {
    // SAFETY: the caller's contract.
    unsafe {
        mem.u32_at(len_at).store(s.len() as u32, Ordering::Relaxed);
        for (j, b) in s.bytes().enumerate() {
            mem.u8_at(at + j).store(b, Ordering::Relaxed);
        }
    }
}

/// Loads the string of at most `max` bytes whose length is at `len_at` and bytes from `at`.
///
/// # Safety
/// `len_at` is 4-aligned and `len_at + 4` and `at + max` are inside the mapping.
unsafe fn load_str(mem: &crate::sync::Mem, len_at: usize, at: usize, max: usize) -> Vec<u8> {
    // SAFETY: the caller's contract; the length is clamped to the field's size.
    let len = unsafe { mem.u32_at(len_at) }.load(Ordering::Relaxed) as usize;
    (0..len.min(max))
        // SAFETY: byte `j < max` of the field, inside the record.
        .map(|j| unsafe { mem.u8_at(at + j) }.load(Ordering::Relaxed))
        .collect()
}

impl CountersWriter {
    /// Creates `cnc-<role>` in `dir` (state [`ProcessState::Starting`]).
    ///
    /// # Errors
    /// As any segment creation (in use by a live process of the same role, stale per policy).
    pub fn create(dir: &Path, role: &str, stale: StalePolicy) -> Result<Self, SegmentError> {
        let name = segment::names::counters(role);
        let (seg, recovered) =
            segment::create(dir, &name, &spec(), CAPACITY as u64, stale, &|mem| {
                // SAFETY: STATE_OFFSET inside the fresh mapping.
                unsafe { mem.u32_at(STATE_OFFSET) }
                    .store(ProcessState::Starting as u32, Ordering::Relaxed);
            })?;
        let w = CountersWriter {
            seg: Arc::new(seg),
            not_shown: 0,
        };
        if recovered {
            w.set_state(ProcessState::Starting);
        }
        Ok(w)
    }

    fn record(&self, i: usize) -> usize {
        RECORDS_OFFSET + i * RECORD_SIZE
    }

    /// The index of the record with this label and kind among the first `n`, if any.
    fn find(&self, n: usize, label: &str, kind: u32) -> Option<usize> {
        let mem = &self.seg.mem;
        (0..n.min(CAPACITY)).find(|&i| {
            let r = self.record(i);
            // SAFETY: record `i < CAPACITY` inside the region.
            let k = unsafe { mem.u32_at(r + KIND_AT) }.load(Ordering::Relaxed);
            // SAFETY: the label field of record `i < CAPACITY`.
            k == kind
                && unsafe { load_str(mem, r + LABEL_LEN_AT, r + LABEL_AT, LABEL_LEN) }
                    == label.as_bytes()
        })
    }

    /// Finds the record of `meta` (same label and kind, left by a previous run) or appends
    /// it; a found record gets this build's unit and help. Startup only.
    fn allocate(&mut self, meta: RecordMeta<'_>) -> Counter {
        let label = truncate(meta.label, LABEL_LEN);
        let mem = &self.seg.mem;
        // SAFETY: offset inside the validated region.
        let num = unsafe { mem.u32_at(NUM_COUNTERS_OFFSET) };
        let n = num.load(Ordering::Acquire) as usize;
        let i = match self.find(n, label, meta.kind) {
            Some(i) => i,
            None if n < CAPACITY => n,
            None => {
                self.not_shown += 1;
                return Counter::detached();
            }
        };
        let r = self.record(i);
        if i == n {
            // SAFETY: record `n < CAPACITY` inside the region; not yet visible to readers
            // (num_counters is still n).
            unsafe {
                mem.u64_at(r).store(0, Ordering::Relaxed);
                mem.u32_at(r + KIND_AT).store(meta.kind, Ordering::Relaxed);
            }
            // SAFETY: the label field of record `n`, the label cut to LABEL_LEN.
            unsafe { store_str(mem, r + LABEL_LEN_AT, r + LABEL_AT, label) };
        }
        // SAFETY: the unit and help fields of record `i < CAPACITY`, each string cut to its
        // field. A found record is already visible: a reader may see a torn unit or help
        // while a restarted process rewrites them (tools only; the values are unaffected).
        unsafe {
            store_str(
                mem,
                r + UNIT_LEN_AT,
                r + UNIT_AT,
                truncate(meta.unit, UNIT_LEN),
            );
            store_str(
                mem,
                r + HELP_LEN_AT,
                r + HELP_AT,
                truncate(meta.help, HELP_LEN),
            );
        }
        if i == n {
            // SYNC POINT: Release; pairs with the Acquire load of num_counters in
            // `CountersReader::records`: the metadata is visible before the record is.
            num.store(n as u32 + 1, Ordering::Release);
        }
        // SAFETY: record inside the region, 8-aligned; kept alive by the Arc in the Counter.
        let word = NonNull::from(unsafe { mem.u64_at(r) });
        Counter {
            word,
            _backing: Arc::new(Backing::Segment(self.seg.clone())),
        }
    }

    /// Allocates (or finds) the record `meta` (startup, not hot path). When the segment is
    /// full the counter still works but is not visible to other processes. Processes declare
    /// their counters as a schema and call [`CountersWriter::register`]; this is for values
    /// only known at run time (e.g. a venue's own counters) and for tools.
    pub fn record_meta(&mut self, meta: RecordMeta<'_>) -> Counter {
        self.allocate(meta)
    }

    /// Registers every counter of schema `S`, once per underlying of `underlyings` for
    /// per-underlying ones, and returns their hot-path handles (startup, not hot path).
    pub fn register<S: crate::counter_schema::CounterSchema>(
        &mut self,
        underlyings: &[&str],
    ) -> crate::counter_schema::CounterSet<S> {
        crate::counter_schema::CounterSet::build(underlyings, &mut |meta| self.allocate(meta))
    }

    /// Allocates (or finds) the counter `label`, without unit or help (tests and ad-hoc tools;
    /// processes declare a schema and call [`CountersWriter::register`]).
    pub fn counter(&mut self, label: &str) -> Counter {
        self.allocate(RecordMeta {
            label,
            kind: KIND_COUNTER,
            unit: "",
            help: "",
        })
    }

    /// Allocates (or finds) the gauge `label`.
    pub fn gauge(&mut self, label: &str) -> Gauge {
        Gauge(self.allocate(RecordMeta {
            label,
            kind: KIND_GAUGE,
            unit: "",
            help: "",
        }))
    }

    /// How many counters were registered after the segment's [`CAPACITY`] records were used:
    /// they count in process but `hedgectl stat` and the Prometheus export cannot see them.
    /// The agent runner prints a warning naming this number at start.
    pub fn not_shown(&self) -> usize {
        self.not_shown
    }

    /// Stores `now_ns()` in the heartbeat word (call every 1-10 ms of idle).
    #[inline]
    pub fn heartbeat(&self) {
        self.seg.heartbeat();
    }

    /// Publishes the process state.
    pub fn set_state(&self, state: ProcessState) {
        // SAFETY: offset inside the validated region.
        // SYNC POINT: Release; pairs with the Acquire load in `CountersReader::state`.
        unsafe { self.seg.mem.u32_at(STATE_OFFSET) }.store(state as u32, Ordering::Release);
    }
}

/// A reader of another process's counters segment.
pub struct CountersReader {
    seg: Segment,
    role: String,
}

impl CountersReader {
    /// Opens `cnc-<role>` read-only.
    ///
    /// # Errors
    /// Every open error of [`SegmentError`].
    pub fn open(dir: &Path, role: &str, opts: OpenOptions) -> Result<Self, SegmentError> {
        let name = segment::names::counters(role);
        Ok(CountersReader {
            seg: segment::open(dir, &name, &spec(), opts, false)?,
            role: role.to_string(),
        })
    }

    /// The role this segment belongs to (`cnc-<role>`).
    pub fn role(&self) -> &str {
        &self.role
    }

    /// The process's pid.
    pub fn pid(&self) -> u32 {
        self.seg.creator_pid()
    }

    /// Last heartbeat (monotonic ns).
    pub fn heartbeat_ns(&self) -> u64 {
        self.seg.heartbeat_ns()
    }

    /// Published state (`None` if the word holds an unknown value).
    pub fn state(&self) -> Option<ProcessState> {
        // SAFETY: offset inside the validated region.
        // SYNC POINT: Acquire; pairs with `CountersWriter::set_state`.
        ProcessState::from_u32(unsafe { self.seg.mem.u32_at(STATE_OFFSET) }.load(Ordering::Acquire))
    }

    /// Liveness at monotonic time `now_ns`: dead if the pid is gone (or reused), stale if the
    /// heartbeat is older than `stale_after`.
    pub fn liveness(&self, now_ns: u64, stale_after: Duration) -> Liveness {
        if !self.seg.creator_alive() {
            Liveness::Dead
        } else if now_ns.saturating_sub(self.heartbeat_ns()) > stale_after.as_nanos() as u64 {
            Liveness::StaleHeartbeat
        } else {
            Liveness::Alive
        }
    }

    /// Every counter and gauge with its label (allocates; for tools, not the hot path).
    pub fn snapshot(&self) -> Vec<(String, CounterValue)> {
        self.records()
            .into_iter()
            .map(|r| (r.label, r.value))
            .collect()
    }

    /// Every record with its label, kind, unit and help (allocates; for tools, not the hot
    /// path). Records of a kind this build does not know are kept, their raw word a counter.
    pub fn records(&self) -> Vec<CounterRecord> {
        let mem = &self.seg.mem;
        // SAFETY: offset inside the validated region.
        // SYNC POINT: Acquire; pairs with the Release store in `CountersWriter::allocate`.
        let n = unsafe { mem.u32_at(NUM_COUNTERS_OFFSET) }.load(Ordering::Acquire) as usize;
        let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
        (0..n.min(CAPACITY))
            .map(|i| {
                let r = RECORDS_OFFSET + i * RECORD_SIZE;
                // SAFETY: record `i < CAPACITY` inside the region.
                let (v, kind) = unsafe {
                    (
                        mem.u64_at(r).load(Ordering::Relaxed),
                        mem.u32_at(r + KIND_AT).load(Ordering::Relaxed),
                    )
                };
                let value = if kind == KIND_GAUGE {
                    CounterValue::Gauge(f64::from_bits(v))
                } else {
                    CounterValue::Counter(v)
                };
                // SAFETY: the three string fields of record `i < CAPACITY`.
                let (label, unit, help) = unsafe {
                    (
                        load_str(mem, r + LABEL_LEN_AT, r + LABEL_AT, LABEL_LEN),
                        load_str(mem, r + UNIT_LEN_AT, r + UNIT_AT, UNIT_LEN),
                        load_str(mem, r + HELP_LEN_AT, r + HELP_AT, HELP_LEN),
                    )
                };
                CounterRecord {
                    label: text(label),
                    kind,
                    value,
                    unit: text(unit),
                    help: text(help),
                }
            })
            .collect()
    }
}

/// Roles with a counters segment (`cnc-*`) in `dir`, sorted.
pub fn list_roles(dir: &Path) -> Vec<String> {
    let mut roles: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_prefix(segment::names::COUNTERS_PREFIX))
                .map(str::to_owned)
        })
        .collect();
    roles.sort();
    roles
}
