//! Crash-safe state: a snapshot file replaced atomically, combined with the execs ring's
//! persistent consumer position.
//!
//! # Protocol (why nothing is lost or applied twice)
//! The loop *peeks* exec reports (advancing a private read cursor) and applies them in
//! memory. In idle time (or when many are pending) the driver writes the snapshot (positions,
//! the last applied `exec_id`, orders in flight, the client-order-id epoch) to `state.tmp`,
//! renames it over `state` (atomic on POSIX), and only then *commits* the reports in the ring.
//! - Crash before the rename: the old snapshot and the old ring position agree; the reports
//!   are delivered again and applied once.
//! - Crash between the rename and the commit: the reports are delivered again, but their
//!   `exec_id`s are not above the snapshot's `last_exec_id` (ids are strictly increasing),
//!   so they are skipped.
//!
//! A process crash (SIGKILL) keeps the page cache, so no fsync is needed for it; `fsync = true`
//! in the config adds one for power loss.
//!
//! Client order ids are `epoch << 32 | sequence`; each start persists `epoch + 1` before its
//! first order, so ids are unique and increasing across restarts without persisting every
//! order. Orders published after the last snapshot are not in it: their reports (an ack or
//! partial fill carries the open quantity) re-create them in flight, and hedging waits until
//! the previous run's orders are quiet (`reconcile_quiet_ms`) and the orders ring is drained.
//!
//! # Format (text, one record per line, `f64` printed round-trip exact)
//! ```text
//! hedger-state 4
//! epoch 3
//! last_exec_id 1234
//! underlying BTC <hedge_position> <utc_day> <filled_today>
//! option BTC-26JUN20-9000-C <qty>
//! settled BTC-29MAY20-9000-C <contracts> <settlement_px> <settled_at_ns>
//! inflight <client_order_id> BTC <signed_leaves> <limit_px>
//! end <checksum>
//! ```
//! `<checksum>` is the CRC-32 (IEEE, 8 hex digits) of every byte before the `end` line. The
//! snapshot is one record, replaced atomically, so one checksum covers all of it: a flipped
//! digit in a position (which would still parse) is refused, naming the file, never loaded as
//! a different book.
//! Version 4 changed the checksum from FNV-1a 64 (16 hex digits, version 3) to CRC-32: the
//! byte-at-a-time FNV took 430 us of each 1.16 ms snapshot of a 10,000-option book on the
//! state writer thread. Version 3 files are still read, with their FNV-1a checksum; a build
//! older than version 4 refuses a version 4 file (unsupported version), so a downgrade needs
//! the state of a version 3 build.
//! Version 2 added `settled` (option positions settled in cash at expiry, see
//! [`crate::risk::ExpirySettlement`]): a restart marks them settled again, so they are
//! neither resurrected nor settled twice. Version 1 files (no `settled` lines) are still
//! read (without a checksum); this build writes version 4.

use super::worker::ChannelThread;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// One underlying's persisted state.
#[derive(Debug, Clone, PartialEq)]
pub struct UnderlyingRecord {
    /// Underlying name.
    pub name: String,
    /// Hedge position, contracts.
    pub hedge_position: f64,
    /// UTC day of `filled_today`.
    pub utc_day: u64,
    /// Filled notional that day.
    pub filled_today: f64,
}

/// An order in flight.
#[derive(Debug, Clone, PartialEq)]
pub struct InflightRecord {
    /// Client order id.
    pub client_order_id: u64,
    /// Underlying name.
    pub underlying: String,
    /// Open quantity, signed (+ buy), contracts.
    pub signed_leaves: f64,
    /// Limit price.
    pub limit_px: f64,
}

/// An option position settled at expiry.
#[derive(Debug, Clone, PartialEq)]
pub struct SettledRecord {
    /// Option symbol.
    pub symbol: String,
    /// Position settled, contracts (signed).
    pub contracts: f64,
    /// Settlement price (the expiry's forward), quote currency.
    pub settlement_px: f64,
    /// Wall (or exchange) ns when it was settled.
    pub settled_at_ns: u64,
}

/// Everything that must survive a crash.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PersistState {
    /// Client-order-id epoch of the run that wrote it.
    pub epoch: u64,
    /// Highest exec id applied.
    pub last_exec_id: u64,
    /// Per underlying.
    pub underlyings: Vec<UnderlyingRecord>,
    /// Non-zero option positions by symbol.
    pub options: Vec<(String, f64)>,
    /// Option positions settled at expiry (version 2).
    pub settled: Vec<SettledRecord>,
    /// Orders in flight.
    pub inflight: Vec<InflightRecord>,
}

/// Errors reading the state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// I/O.
    #[error("state file {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The writer thread failed (its first error).
    #[error("state writer: {0}")]
    Writer(String),
    /// Malformed content.
    #[error("state file {path}: line {line}: {msg}")]
    Parse {
        /// File.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
}

/// Version of the state format this build writes.
pub const STATE_VERSION: u32 = 4;

/// The checksum of `bytes` as a version `version` file writes it on its `end` line (detects
/// damage, not an adversary): CRC-32 from version 4, FNV-1a 64 in version 3.
fn checksum_hex(version: u32, bytes: &[u8]) -> String {
    if version >= 4 {
        format!("{:08x}", crc32fast::hash(bytes))
    } else {
        format!("{:016x}", fnv1a64(bytes))
    }
}

/// The version named on a state file's first line, if this build reads it (1 to
/// [`STATE_VERSION`]).
fn readable_version(field: Option<&str>) -> Option<u32> {
    field?
        .parse::<u32>()
        .ok()
        .filter(|v| (1..=STATE_VERSION).contains(v))
}

/// The error text for a version [`readable_version`] refuses.
fn unsupported_version() -> String {
    format!("unsupported version (this build reads 1 to {STATE_VERSION})")
}

/// FNV-1a 64 of `bytes`: the checksum of version 3 files.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The version, epoch, exec id and underlying lines: the start of every snapshot (`out`
/// cleared first). [`PersistState::encode`] and [`StateMirror::encode`] write the same
/// bytes through these.
fn write_head(out: &mut String, epoch: u64, last_exec_id: u64, underlyings: &[UnderlyingRecord]) {
    out.clear();
    let _ = writeln!(out, "hedger-state {STATE_VERSION}");
    let _ = writeln!(out, "epoch {epoch}");
    let _ = writeln!(out, "last_exec_id {last_exec_id}");
    for u in underlyings {
        let _ = writeln!(
            out,
            "underlying {} {:?} {} {:?}",
            u.name, u.hedge_position, u.utc_day, u.filled_today
        );
    }
}

fn write_option(out: &mut String, symbol: &str, contracts: f64) {
    let _ = writeln!(out, "option {symbol} {contracts:?}");
}

fn write_settled(out: &mut String, r: &SettledRecord) {
    let _ = writeln!(
        out,
        "settled {} {:?} {:?} {}",
        r.symbol, r.contracts, r.settlement_px, r.settled_at_ns
    );
}

/// The orders in flight and the `end` line with the checksum of everything before it.
fn write_tail(out: &mut String, inflight: &[InflightRecord]) {
    for o in inflight {
        let _ = writeln!(
            out,
            "inflight {} {} {:?} {:?}",
            o.client_order_id, o.underlying, o.signed_leaves, o.limit_px
        );
    }
    let sum = checksum_hex(STATE_VERSION, out.as_bytes());
    let _ = writeln!(out, "end {sum}");
}

impl PersistState {
    /// Serializes into `out` (cleared first).
    pub fn encode(&self, out: &mut String) {
        write_head(out, self.epoch, self.last_exec_id, &self.underlyings);
        for (s, q) in &self.options {
            write_option(out, s, *q);
        }
        for r in &self.settled {
            write_settled(out, r);
        }
        write_tail(out, &self.inflight);
    }

    /// Parses [`PersistState::encode`]'s output.
    ///
    /// # Errors
    /// A malformed or truncated file.
    pub fn decode(text: &str, path: &Path) -> Result<Self, StateError> {
        let err = |line: usize, msg: &str| StateError::Parse {
            path: path.into(),
            line,
            msg: msg.into(),
        };
        let mut st = PersistState::default();
        let mut ended = false;
        let mut version = 0;
        let mut line_start = 0;
        for (i, l) in text.lines().enumerate() {
            let start = line_start;
            line_start += l.len() + 1;
            let n = i + 1;
            let f: Vec<&str> = l.split_whitespace().collect();
            let num = |k: usize| -> Result<f64, StateError> {
                f.get(k)
                    .and_then(|s| s.parse::<f64>().ok())
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| err(n, "bad number"))
            };
            let int = |k: usize| -> Result<u64, StateError> {
                f.get(k)
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or_else(|| err(n, "bad integer"))
            };
            if ended {
                return Err(err(n, "a record after `end`"));
            }
            match f.first().copied() {
                Some("hedger-state") if n == 1 => {
                    version = readable_version(f.get(1).copied())
                        .ok_or_else(|| err(n, &unsupported_version()))?;
                }
                _ if n == 1 => return Err(err(n, "not a hedger state file")),
                Some("epoch") => st.epoch = int(1)?,
                Some("last_exec_id") => st.last_exec_id = int(1)?,
                Some("underlying") if f.len() == 5 => st.underlyings.push(UnderlyingRecord {
                    name: f[1].into(),
                    hedge_position: num(2)?,
                    utc_day: int(3)?,
                    filled_today: num(4)?,
                }),
                Some("option") if f.len() == 3 => st.options.push((f[1].into(), num(2)?)),
                Some("settled") if f.len() == 5 => st.settled.push(SettledRecord {
                    symbol: f[1].into(),
                    contracts: num(2)?,
                    settlement_px: num(3)?,
                    settled_at_ns: int(4)?,
                }),
                Some("inflight") if f.len() == 5 => st.inflight.push(InflightRecord {
                    client_order_id: int(1)?,
                    underlying: f[2].into(),
                    signed_leaves: num(3)?,
                    limit_px: num(4)?,
                }),
                Some("end") => {
                    ended = true;
                    if version >= 3 {
                        let want = checksum_hex(version, &text.as_bytes()[..start]);
                        if f.get(1) != Some(&want.as_str()) || f.len() != 2 {
                            return Err(err(
                                n,
                                "checksum mismatch: the file was damaged or edited after the hedger wrote it; restore it (never edit a snapshot by hand)",
                            ));
                        }
                    }
                }
                _ => return Err(err(n, "unknown record")),
            }
        }
        if !ended {
            return Err(err(text.lines().count(), "truncated (no `end`)"));
        }
        Ok(st)
    }
}

/// The state directory: `state` (current) and `state.tmp` (being written).
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    tmp: PathBuf,
    fsync: bool,
    buf: String,
}

impl StateStore {
    /// Opens (creating) the directory.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(dir: &Path, fsync: bool) -> Result<Self, StateError> {
        shm_layout::private::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.into(),
            source,
        })?;
        Ok(StateStore {
            path: dir.join("state"),
            tmp: dir.join("state.tmp"),
            fsync,
            buf: String::with_capacity(64 * 1024),
        })
    }

    /// Path of the current snapshot.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last snapshot, if any.
    ///
    /// # Errors
    /// Unreadable or malformed.
    pub fn load(&self) -> Result<Option<PersistState>, StateError> {
        match std::fs::read_to_string(&self.path) {
            Ok(t) => PersistState::decode(&t, &self.path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Io {
                path: self.path.clone(),
                source,
            }),
        }
    }

    /// Writes a snapshot atomically (write tmp, optional fsync, rename).
    ///
    /// # Errors
    /// I/O.
    pub fn save(&mut self, st: &PersistState) -> Result<(), StateError> {
        self.save_with(|out| st.encode(out))
    }

    /// [`StateStore::save`] of the text `encode` writes into the store's buffer (cleared by
    /// the encoder).
    ///
    /// # Errors
    /// I/O.
    pub fn save_with(&mut self, encode: impl FnOnce(&mut String)) -> Result<(), StateError> {
        encode(&mut self.buf);
        let io = |source| StateError::Io {
            path: self.tmp.clone(),
            source,
        };
        // Mode 0600 at creation: positions and orders are nobody else's business.
        let mut f = shm_layout::private::create_file(&self.tmp).map_err(io)?;
        f.write_all(self.buf.as_bytes()).map_err(io)?;
        if self.fsync {
            f.sync_all().map_err(io)?;
        }
        drop(f);
        std::fs::rename(&self.tmp, &self.path).map_err(|source| StateError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// One option in a [`StateDelta`]: its position and settlement as they are now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptionEntry {
    /// The option's index in the core's option list (the order of the snapshot's lines).
    pub opt: u32,
    /// Position, contracts (0: no `option` line).
    pub contracts: f64,
    /// Settlement: contracts settled, settlement price, settled at ns (None, or 0
    /// contracts: no `settled` line).
    pub settled: Option<(f64, f64, u64)>,
}

/// A snapshot as the loop submits it to the [`StateWriter`]: the small parts whole, and only
/// the options whose position or settlement changed since the previous delta (the first
/// delta has them all). Building one costs the loop O(options changed), not O(book): a
/// whole [`PersistState`] of a 10,000-option book took 0.21-0.24 ms of the loop (a string
/// per option) on every snapshot, a delta of 20 options 7-8 us (`hot_path`'s last line).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateDelta {
    /// Client-order-id epoch.
    pub epoch: u64,
    /// Highest exec id applied.
    pub last_exec_id: u64,
    /// Per underlying (all).
    pub underlyings: Vec<UnderlyingRecord>,
    /// Options changed since the previous delta.
    pub options: Vec<OptionEntry>,
    /// Orders in flight (all).
    pub inflight: Vec<InflightRecord>,
}

/// The writer's copy of the whole state, kept up to date by [`StateDelta`]s, with each
/// option's line formatted once when it changes. Encodes the same bytes as
/// [`PersistState::encode`] of the same state.
#[derive(Debug)]
pub struct StateMirror {
    symbols: Vec<String>,
    /// `option` line per option (empty when the position is 0).
    lines: Vec<String>,
    settled: Vec<Option<SettledRecord>>,
    epoch: u64,
    last_exec_id: u64,
    underlyings: Vec<UnderlyingRecord>,
    inflight: Vec<InflightRecord>,
}

impl StateMirror {
    /// An empty state over the options `symbols` (by option index).
    pub fn new(symbols: Vec<String>) -> Self {
        let n = symbols.len();
        StateMirror {
            symbols,
            lines: vec![String::new(); n],
            settled: vec![None; n],
            epoch: 0,
            last_exec_id: 0,
            underlyings: Vec::new(),
            inflight: Vec::new(),
        }
    }

    /// Applies a delta.
    ///
    /// # Errors
    /// An option index outside the symbols (nothing applied).
    pub fn apply(&mut self, d: StateDelta) -> Result<(), StateError> {
        if let Some(e) = d
            .options
            .iter()
            .find(|e| e.opt as usize >= self.symbols.len())
        {
            return Err(StateError::Writer(format!(
                "option index {} outside the {} options the writer was started with",
                e.opt,
                self.symbols.len()
            )));
        }
        self.epoch = d.epoch;
        self.last_exec_id = d.last_exec_id;
        self.underlyings = d.underlyings;
        self.inflight = d.inflight;
        for e in &d.options {
            let i = e.opt as usize;
            let line = &mut self.lines[i];
            line.clear();
            if e.contracts != 0.0 {
                write_option(line, &self.symbols[i], e.contracts);
            }
            self.settled[i] = e.settled.filter(|s| s.0 != 0.0).map(
                |(contracts, settlement_px, settled_at_ns)| SettledRecord {
                    symbol: self.symbols[i].clone(),
                    contracts,
                    settlement_px,
                    settled_at_ns,
                },
            );
        }
        Ok(())
    }

    /// Serializes into `out` (cleared first): [`PersistState::encode`]'s bytes.
    pub fn encode(&self, out: &mut String) {
        write_head(out, self.epoch, self.last_exec_id, &self.underlyings);
        for l in &self.lines {
            out.push_str(l);
        }
        for r in self.settled.iter().flatten() {
            write_settled(out, r);
        }
        write_tail(out, &self.inflight);
    }
}

/// The options whose position or settlement changed since the last [`StateDelta`]: marked
/// on the event path (no allocation: the list holds every option at most once, and has room
/// for all of them from the start).
#[derive(Debug)]
pub struct DirtyOptions {
    list: Vec<u32>,
    flag: Vec<bool>,
    all: bool,
}

impl DirtyOptions {
    /// `n` options, all dirty (the first delta carries the whole book).
    pub fn new(n: usize) -> Self {
        DirtyOptions {
            list: Vec::with_capacity(n),
            flag: vec![false; n],
            all: true,
        }
    }

    /// Option `opt` changed.
    #[inline]
    pub fn mark(&mut self, opt: usize) {
        if !self.all && !self.flag[opt] {
            self.flag[opt] = true;
            self.list.push(opt as u32);
        }
    }

    /// Any option may have changed (a restore, a settlement of an expiry).
    pub fn mark_all(&mut self) {
        self.all = true;
    }

    /// Options changed (all of them when any may have).
    pub fn len(&self) -> usize {
        if self.all {
            self.flag.len()
        } else {
            self.list.len()
        }
    }

    /// No option changed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` for every changed option (in option order when all changed) and forgets
    /// them.
    pub fn drain(&mut self, mut f: impl FnMut(usize)) {
        if self.all {
            (0..self.flag.len()).for_each(&mut f);
        } else {
            self.list.iter().for_each(|&o| f(o as usize));
        }
        for &o in &self.list {
            self.flag[o as usize] = false;
        }
        self.list.clear();
        self.all = false;
    }
}

/// A thread that writes snapshots, so the loop thread makes no file system call.
///
/// The loop submits a snapshot and keeps reading; it commits the exec reports a snapshot
/// covers only once [`StateWriter::written`] says that snapshot is on disk (snapshots are
/// written in submission order).
#[derive(Debug)]
pub struct StateWriter {
    worker: ChannelThread<StateDelta, ()>,
    written: std::sync::Arc<std::sync::atomic::AtomicU64>,
    error: std::sync::Arc<std::sync::Mutex<Option<String>>>,
    failed: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl StateWriter {
    /// Starts the writer thread owning `store`, for the options `symbols` (by option index:
    /// [`super::HedgerCore::option_symbols`]).
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub fn start(mut store: StateStore, symbols: Vec<String>) -> std::io::Result<Self> {
        use std::sync::atomic::Ordering;
        let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let error = std::sync::Arc::new(std::sync::Mutex::new(None));
        let failed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (w, e, f) = (written.clone(), error.clone(), failed.clone());
        let mut mirror = StateMirror::new(symbols);
        let worker = ChannelThread::spawn("hedger-state", move |rx| {
            for d in rx {
                let saved = mirror
                    .apply(d)
                    .and_then(|()| store.save_with(|out| mirror.encode(out)));
                match saved {
                    // Release: pairs with the Acquire in `written`: the file is renamed
                    // before the loop may commit the execs it covers.
                    Ok(()) => {
                        w.fetch_add(1, Ordering::Release);
                    }
                    Err(err) => {
                        if let Ok(mut g) = e.lock() {
                            *g = Some(err.to_string());
                        }
                        f.store(true, Ordering::Release);
                        return;
                    }
                }
            }
        })?;
        Ok(StateWriter {
            worker,
            written,
            error,
            failed,
        })
    }

    /// Queues a snapshot.
    pub fn submit(&self, d: StateDelta) {
        self.worker.send(d);
    }

    /// Snapshots written so far.
    #[inline]
    pub fn written(&self) -> u64 {
        // Acquire: pairs with the writer's Release after the rename.
        self.written.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The writer's error, if it failed.
    ///
    /// # Errors
    /// The first write error.
    #[inline]
    pub fn check(&self) -> Result<(), StateError> {
        if !self.failed.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let msg = self
            .error
            .lock()
            .ok()
            .and_then(|g| g.clone())
            .unwrap_or_else(|| "unknown error".into());
        Err(StateError::Writer(msg))
    }

    /// Writes everything queued and stops the thread.
    ///
    /// # Errors
    /// A write error.
    pub fn finish(mut self) -> Result<(), StateError> {
        self.worker.join();
        self.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn state_files_and_directories_are_created_owner_only() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a").join("state");
        let mut store = StateStore::open(&dir, false).unwrap();
        store.save(&PersistState::default()).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&root.path().join("a")), 0o700);
        assert_eq!(mode(store.path()), 0o600);
    }

    #[test]
    fn state_round_trips_exactly_and_truncation_is_detected() {
        let st = PersistState {
            epoch: 7,
            last_exec_id: 99,
            underlyings: vec![UnderlyingRecord {
                name: "BTC".into(),
                hedge_position: -1234.5678901234567,
                utc_day: 20000,
                filled_today: 0.1 + 0.2,
            }],
            options: vec![("BTC-X-C".into(), -3.0)],
            settled: vec![SettledRecord {
                symbol: "BTC-Y-P".into(),
                contracts: -2.5,
                settlement_px: 9123.456789012345,
                settled_at_ns: 1_590_739_200_000_000_000,
            }],
            inflight: vec![InflightRecord {
                client_order_id: (7 << 32) | 5,
                underlying: "BTC".into(),
                signed_leaves: -20.0,
                limit_px: 9999.5,
            }],
        };
        let dir = tempfile::tempdir().unwrap();
        let mut s = StateStore::open(dir.path(), false).unwrap();
        assert!(s.load().unwrap().is_none());
        s.save(&st).unwrap();
        assert_eq!(s.load().unwrap().unwrap(), st);
        let mut t = String::new();
        st.encode(&mut t);
        let cut = &t[..t.len() - 4];
        assert!(PersistState::decode(cut, Path::new("x")).is_err());
    }

    #[test]
    fn the_mirror_encodes_what_the_whole_state_encodes_and_refuses_an_unknown_option() {
        let syms = vec!["BTC-X-C".to_string(), "BTC-Y-P".into(), "BTC-Z-C".into()];
        let mut m = StateMirror::new(syms);
        let entry = |opt, contracts, settled| OptionEntry {
            opt,
            contracts,
            settled,
        };
        let head = |last_exec_id| StateDelta {
            epoch: 2,
            last_exec_id,
            underlyings: vec![UnderlyingRecord {
                name: "BTC".into(),
                hedge_position: -12.5,
                utc_day: 20000,
                filled_today: 0.1 + 0.2,
            }],
            ..StateDelta::default()
        };
        let mut d = head(1);
        d.options = vec![
            entry(0, -3.0, None),
            entry(1, 0.0, None),
            entry(2, 1.5, None),
        ];
        m.apply(d).unwrap();
        let mut d = head(2);
        d.options = vec![entry(2, 0.0, Some((1.5, 9123.5, 77))), entry(1, 4.0, None)];
        m.apply(d).unwrap();
        let (mut got, mut want) = (String::new(), String::new());
        m.encode(&mut got);
        let whole = PersistState {
            options: vec![("BTC-X-C".into(), -3.0), ("BTC-Y-P".into(), 4.0)],
            settled: vec![SettledRecord {
                symbol: "BTC-Z-C".into(),
                contracts: 1.5,
                settlement_px: 9123.5,
                settled_at_ns: 77,
            }],
            ..PersistState::decode(&got, Path::new("x")).unwrap()
        };
        whole.encode(&mut want);
        assert_eq!(got, want);
        assert_eq!(whole.last_exec_id, 2);
        let mut bad = head(3);
        bad.options = vec![entry(3, 1.0, None)];
        let e = m.apply(bad).unwrap_err().to_string();
        assert!(e.contains("option index 3 outside the 3 options"), "{e}");
        let mut again = String::new();
        m.encode(&mut again);
        assert_eq!(again, got, "a refused delta changes nothing");
    }

    #[test]
    fn version_1_files_still_load_without_settlements() {
        let v1 = "hedger-state 1\nepoch 2\nlast_exec_id 5\noption BTC-X-C -3.0\nend\n";
        let st = PersistState::decode(v1, Path::new("x")).unwrap();
        assert_eq!(st.options, vec![("BTC-X-C".to_string(), -3.0)]);
        assert!(st.settled.is_empty());
        let mut t = String::new();
        st.encode(&mut t);
        assert!(t.starts_with(&format!("hedger-state {STATE_VERSION}\n")));
        let v9 = "hedger-state 9\nend\n";
        assert!(PersistState::decode(v9, Path::new("x")).is_err());
    }

    #[test]
    fn the_checksums_are_the_standard_crc32_and_fnv1a64() {
        // The published check values: CRC-32 (IEEE) of "123456789", FNV-1a 64 of "a".
        assert_eq!(checksum_hex(4, b"123456789"), "cbf43926");
        assert_eq!(checksum_hex(3, b"a"), "af63dc4c8601ec8c");
    }

    #[test]
    fn version_3_files_load_with_their_fnv_checksum_and_are_checked_by_it() {
        let body = "hedger-state 3\nepoch 4\nlast_exec_id 1234\noption BTC-X-C -30.0\n";
        let v3 = format!("{body}end {:016x}\n", fnv1a64(body.as_bytes()));
        let st = PersistState::decode(&v3, Path::new("x")).unwrap();
        assert_eq!(
            (st.epoch, st.last_exec_id, st.options.clone()),
            (4, 1234, vec![("BTC-X-C".to_string(), -30.0)])
        );
        let bad = v3.replace("-30.0", "-80.0");
        assert!(PersistState::decode(&bad, Path::new("x")).is_err());
        // A version 3 header with a version 4 (CRC-32) checksum is damage too.
        let crc = format!("{body}end {:08x}\n", crc32fast::hash(body.as_bytes()));
        assert!(PersistState::decode(&crc, Path::new("x")).is_err());
    }

    #[test]
    fn a_snapshot_damaged_after_writing_is_refused_naming_file_and_line() {
        let st = PersistState {
            epoch: 4,
            last_exec_id: 1234,
            options: vec![("BTC-X-C".into(), -30.0)],
            ..PersistState::default()
        };
        let mut t = String::new();
        st.encode(&mut t);
        assert_eq!(PersistState::decode(&t, Path::new("x")).unwrap(), st);
        // One flipped digit still parses as a valid, different book.
        let bad = t.replace("-30.0", "-80.0");
        let e = PersistState::decode(&bad, Path::new("/s/state")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("state file /s/state: line 5: checksum mismatch"),
            "{msg}"
        );
        let extra = format!("{t}option BTC-Y-C 1.0\n");
        assert!(PersistState::decode(&extra, Path::new("x")).is_err());
        let no_sum = t.replace(&t[t.find("end").unwrap()..], "end\n");
        assert!(PersistState::decode(&no_sum, Path::new("x")).is_err());
    }
}
