//! LOBSTER replay: a `message` file and its `orderbook` file read in lockstep.
//!
//! Each message row (Time, Type, OrderId, Size, Price, Direction) and the orderbook row after it
//! become: a `Trade` for executions (types 4 and 5; the aggressor is the opposite of the
//! resting order's Direction, as LOBSTER's readme explains), then a `Quote` of the best bid and
//! ask with up to 8 depth levels. Prices are dollars times 10000. `Time` is seconds after
//! midnight (New York time) with up to 9 decimals, turned into ns since the epoch with the date
//! from the file name (`AMZN_2012-06-21_...`) and [`LobsterOptions::utc_offset_s`].
//! Header rows (present in some uploads, absent from LOBSTER's own files) are skipped.
//! Dummy levels (price ±9999999999) are empty levels; a book without both sides gives no
//! quote, and the row is counted as [`RejectReason::OneSided`].
//!
//! # Pairing
//! Row k of the orderbook file is the book *after* message k, so a lost or split line in one
//! file (a bare CR inside a row, say) shifts every later pair and quietly publishes wrong
//! books. The source therefore checks that the files stay paired and stops at the first
//! mismatch ([`LobsterSource::pairing_error`], [`LobsterError::Pairing`]; the feed handler
//! exits with it): a message row without exactly 6 columns, an orderbook row with another
//! column count than the first, one file ending before the other, or a published limit
//! order (type 1) at a price inside the visible book that its book row does not show with at
//! least its size. Rows that are merely bad (a number that does not parse, a crossed book)
//! are still counted by reason and skipped.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use csv::ByteRecord;
use shm_layout::{
    InstrumentDef, InstrumentKind, MarketEvent, OptionType, Settlement, Side, DEPTH_LEVELS,
    NO_FORWARD,
};

use crate::instruments::{days_from_civil, Registry};
use crate::source::{invalid_reason, Depth, RejectReason, Rejects, Source, SourceEvent};
use crate::tardis::parse_f64;

/// Opening LOBSTER files failed.
#[derive(Debug, thiserror::Error)]
pub enum LobsterError {
    /// A file is missing or unreadable.
    #[error("cannot open {path}: {source}")]
    Open {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The message and orderbook files are out of step (see the module docs, "Pairing").
    #[error("LOBSTER files {} and {} are out of step at row {row}: {detail}; stopped there (the rows before it were published): a bare CR or a lost line in one file shifts every later pair, so fix the files", message.display(), orderbook.display())]
    Pairing {
        /// Message file.
        message: PathBuf,
        /// Orderbook file.
        orderbook: PathBuf,
        /// 1-based data row (header excluded) of the mismatch.
        row: u64,
        /// What does not match.
        detail: String,
    },
    /// The first row is not a LOBSTER row or header.
    #[error("{path}: {msg}")]
    Header {
        /// File.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

/// How to interpret LOBSTER files.
#[derive(Debug, Clone)]
pub struct LobsterOptions {
    /// Instrument symbol; default: the ticker from the message file name.
    pub symbol: Option<String>,
    /// Seconds to add to New York local time to get UTC: 4 h (EDT, the default) or 5 h (EST).
    pub utc_offset_s: i64,
    /// Tick size of the instrument definition.
    pub tick_size: f64,
}

impl Default for LobsterOptions {
    fn default() -> Self {
        LobsterOptions {
            symbol: None,
            utc_offset_s: 4 * 3600,
            tick_size: 0.01,
        }
    }
}

const PRICE_SCALE: f64 = 10_000.0;
const DUMMY: f64 = 9_999_999_999.0;

/// Parses `34200.01746` (seconds after midnight) into ns, exactly.
pub fn parse_time_ns(b: &[u8]) -> Option<u64> {
    let (int, frac) = match b.iter().position(|&c| c == b'.') {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &b""[..]),
    };
    if int.is_empty() || frac.len() > 9 {
        return None;
    }
    let secs = crate::tardis::parse_u64(int)?;
    let mut f: u64 = 0;
    for &c in frac {
        if !c.is_ascii_digit() {
            return None;
        }
        f = f * 10 + u64::from(c - b'0');
    }
    f *= 10u64.pow(9 - frac.len() as u32);
    secs.checked_mul(1_000_000_000)?.checked_add(f)
}

/// `(ticker, midnight UTC of the date in ns)` from a LOBSTER file name
/// `TICKER_YYYY-MM-DD_start_end_message_LEVEL.csv`.
pub fn parse_file_name(path: &Path) -> Option<(String, u64)> {
    let name = path.file_name()?.to_str()?;
    let mut parts = name.split('_');
    let ticker = parts.next()?.to_string();
    let date = parts.next()?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    if ticker.is_empty() || !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    let days = days_from_civil(y, m, day);
    Some((ticker, (days.max(0) as u64) * 86_400 * 1_000_000_000))
}

fn open_csv(path: &Path) -> Result<csv::Reader<BufReader<File>>, LobsterError> {
    let f = File::open(path).map_err(|source| LobsterError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(BufReader::with_capacity(1 << 16, f)))
}

/// LOBSTER message + orderbook replay (one instrument).
pub struct LobsterSource {
    msgs: csv::Reader<BufReader<File>>,
    book: csv::Reader<BufReader<File>>,
    mrec: ByteRecord,
    brec: ByteRecord,
    first: bool,
    done: bool,
    registry: Registry,
    id: u32,
    midnight_ns: u64,
    utc_offset_ns: i64,
    last_ts: u64,
    pending: [SourceEvent; 2],
    head: usize,
    len: usize,
    rejects: Rejects,
    rows: u64,
    /// Orderbook columns of the first row (every row must have as many).
    book_cols: usize,
    paths: [PathBuf; 2],
    /// Set at the first mismatch; the source then ends.
    pairing: Option<Box<LobsterError>>,
}

impl LobsterSource {
    /// Opens a message file and its orderbook file.
    ///
    /// # Errors
    /// [`LobsterError`] if a file is missing or unreadable.
    pub fn open(
        message: &Path,
        orderbook: &Path,
        opts: LobsterOptions,
    ) -> Result<Self, LobsterError> {
        let msgs = open_csv(message)?;
        let book = open_csv(orderbook)?;
        let (ticker, midnight_ns) = parse_file_name(message).unwrap_or(("LOBSTER".into(), 0));
        let symbol = opts.symbol.unwrap_or(ticker);
        let (registry, id) =
            single_spot_registry(&symbol, opts.tick_size).map_err(|msg| LobsterError::Header {
                path: message.to_path_buf(),
                msg,
            })?;
        let mut s = LobsterSource {
            msgs,
            book,
            mrec: ByteRecord::new(),
            brec: ByteRecord::new(),
            first: true,
            done: false,
            registry,
            id,
            midnight_ns,
            utc_offset_ns: opts.utc_offset_s * 1_000_000_000,
            last_ts: 0,
            pending: [SourceEvent::default(); 2],
            head: 0,
            len: 0,
            rejects: Rejects::default(),
            rows: 0,
            book_cols: 0,
            paths: [message.to_path_buf(), orderbook.to_path_buf()],
            pairing: None,
        };
        s.read_headers()?;
        s.book_cols = s.brec.len();
        Ok(s)
    }

    /// Reads the first row of each file and checks its column count. An empty or
    /// unreadable first line is a clear error, as for Tardis.
    fn read_headers(&mut self) -> Result<(), LobsterError> {
        let [message, orderbook] = self.paths.clone();
        for (path, rec_ok) in [
            (&message, self.msgs.read_byte_record(&mut self.mrec)),
            (&orderbook, self.book.read_byte_record(&mut self.brec)),
        ] {
            let msg = match rec_ok {
                Ok(true) => continue,
                Ok(false) => "empty file".to_string(),
                Err(e) => format!("unreadable first row: {e}"),
            };
            return Err(LobsterError::Header {
                path: path.clone(),
                msg,
            });
        }
        if self.mrec.len() != 6 {
            return Err(LobsterError::Header {
                path: message,
                msg: format!(
                    "expected 6 columns (Time,Type,OrderId,Size,Price,Direction), found {}",
                    self.mrec.len()
                ),
            });
        }
        if self.brec.len() < 4 || self.brec.len() & 3 != 0 {
            return Err(LobsterError::Header {
                path: orderbook,
                msg: format!("expected 4 x levels columns, found {}", self.brec.len()),
            });
        }
        Ok(())
    }

    /// The mismatch that stopped the source, if it stopped on one (check it once
    /// [`Source::next`] returns `false`).
    pub fn pairing_error(&self) -> Option<&LobsterError> {
        self.pairing.as_deref()
    }

    /// Takes the mismatch that stopped the source (for the caller to return it).
    pub fn take_pairing_error(&mut self) -> Option<LobsterError> {
        self.pairing.take().map(|b| *b)
    }

    /// Records the first mismatch and ends the source (cold: once per run).
    #[cold]
    fn out_of_step(&mut self, detail: String) {
        self.done = true;
        self.pairing = Some(Box::new(LobsterError::Pairing {
            message: self.paths[0].clone(),
            orderbook: self.paths[1].clone(),
            row: self.rows,
            detail,
        }));
    }

    /// Column counts of the current pair; `Err(detail)` if they cannot belong together.
    fn check_columns(&self) -> Result<(), String> {
        if self.mrec.len() != 6 {
            return Err(format!(
                "the message row has {} columns, not 6 (a split or joined line)",
                self.mrec.len()
            ));
        }
        if self.brec.len() != self.book_cols {
            return Err(format!(
                "the orderbook row has {} columns, not {} like the first (a split or joined line)",
                self.brec.len(),
                self.book_cols
            ));
        }
        Ok(())
    }

    /// Whether a limit order (type 1) is missing from its book row; if so the source stops.
    fn submission_out_of_step(&mut self, px: f64, size: f64, dir: Side) -> bool {
        match self.check_submission(px, size, dir) {
            Ok(()) => false,
            Err(detail) => {
                self.out_of_step(detail);
                true
            }
        }
    }

    /// A limit order (type 1) at `px` on side `dir` must be in the book row after it, with at
    /// least `size`, unless it lies beyond the levels the file shows. `Err(detail)` if not.
    fn check_submission(&self, px: f64, size: f64, dir: Side) -> Result<(), String> {
        let b = &self.brec;
        let col = if dir == Side::Buy { 2 } else { 0 };
        let mut worst: Option<f64> = None;
        let mut full = true;
        for l in 0..b.len() / 4 {
            let p = parse_f64(&b[4 * l + col])
                .ok()
                .flatten()
                .unwrap_or(f64::NAN);
            let q = parse_f64(&b[4 * l + col + 1]).ok().flatten().unwrap_or(0.0);
            if p.abs() >= DUMMY || !p.is_finite() {
                full = false;
                continue;
            }
            if p == px {
                return if q >= size {
                    Ok(())
                } else {
                    Err(format!(
                        "a limit order of {size} at {px} is shown with {q} only"
                    ))
                };
            }
            worst = Some(p);
        }
        // Beyond the deepest level shown: invisible in an N-level file.
        let beyond = match (worst, dir) {
            (Some(w), Side::Buy) => px < w,
            (Some(w), Side::Sell) => px > w,
            (None, _) => false,
        };
        if full && beyond {
            return Ok(());
        }
        let side = if dir == Side::Buy { "a bid" } else { "an ask" };
        Err(format!(
            "{side} limit order of {size} at {px} is missing from the book row after it"
        ))
    }

    fn row(&mut self) -> Result<(), RejectReason> {
        let m = &self.mrec;
        let b = &self.brec;
        let t = parse_time_ns(&m[0]).ok_or(RejectReason::Malformed)?;
        let ts = (self.midnight_ns as i64 + t as i64 + self.utc_offset_ns).max(0) as u64;
        if ts < self.last_ts {
            return Err(RejectReason::TimeBackwards);
        }
        let typ = crate::tardis::parse_u64(&m[1]).ok_or(RejectReason::Malformed)?;
        let size = parse_f64(&m[3])?.ok_or(RejectReason::Malformed)?;
        let px = parse_f64(&m[4])?.ok_or(RejectReason::Malformed)?;
        let dir = match &m[5] {
            b"1" => Side::Buy,
            b"-1" => Side::Sell,
            _ => return Err(RejectReason::Malformed),
        };
        let d = book_row(b)?;
        let q = MarketEvent::quote(
            self.id,
            ts,
            0,
            d.bids[0][0],
            d.bids[0][1],
            d.asks[0][0],
            d.asks[0][1],
        );
        if let Some(r) = invalid_reason(&q) {
            return Err(r);
        }
        if typ == 1 && self.submission_out_of_step(px, size, dir) {
            return Ok(());
        }
        let trade = if typ == 4 || typ == 5 {
            let t = MarketEvent::trade(self.id, ts, 0, px / PRICE_SCALE, size, dir.opposite());
            if let Some(r) = invalid_reason(&t) {
                return Err(r);
            }
            Some(t)
        } else if (1..=7).contains(&typ) {
            None
        } else {
            return Err(RejectReason::Malformed);
        };
        self.head = 0;
        if let Some(t) = trade {
            self.pending[self.len] = SourceEvent {
                event: t,
                source_ts_ns: ts,
                ..SourceEvent::default()
            };
            self.len += 1;
        }
        self.pending[self.len] = SourceEvent {
            event: q,
            source_ts_ns: ts,
            has_depth: true,
            depth: d,
        };
        self.len += 1;
        self.last_ts = ts;
        Ok(())
    }
}

impl Source for LobsterSource {
    fn registry(&self) -> &Registry {
        &self.registry
    }

    fn next(&mut self, out: &mut SourceEvent) -> bool {
        while self.len == 0 {
            if self.done {
                return false;
            }
            if self.first {
                self.first = false;
                // A header row (first field not a number) is skipped, not counted.
                if parse_time_ns(&self.mrec[0]).is_none() {
                    let mh = parse_time_ns(&self.mrec[0]).is_none();
                    let bh = self
                        .brec
                        .get(0)
                        .and_then(|f| parse_f64(f).ok().flatten())
                        .is_none();
                    if mh && bh {
                        continue;
                    }
                }
            } else {
                let m = self.msgs.read_byte_record(&mut self.mrec);
                let b = self.book.read_byte_record(&mut self.brec);
                match (m, b) {
                    (Ok(false), Ok(false)) => {
                        self.done = true;
                        return false;
                    }
                    (Ok(true), Ok(true)) => {}
                    (Err(e), _) | (_, Err(e)) => {
                        self.rows += 1;
                        self.rejects.add(RejectReason::Malformed);
                        if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                            self.done = true;
                        }
                        continue;
                    }
                    (Ok(m), _) => {
                        self.rows += 1;
                        let (ended, longer) = if m {
                            ("orderbook", "message")
                        } else {
                            ("message", "orderbook")
                        };
                        self.out_of_step(format!(
                            "the {ended} file ended, the {longer} file has more rows"
                        ));
                        return false;
                    }
                }
            }
            self.rows += 1;
            if let Err(detail) = self.check_columns() {
                self.out_of_step(detail);
                return false;
            }
            if let Err(r) = self.row() {
                self.rejects.add(r);
            }
        }
        *out = self.pending[self.head];
        self.head += 1;
        self.len -= 1;
        true
    }

    fn rejects(&self) -> Rejects {
        self.rejects
    }

    fn rows_read(&self) -> u64 {
        self.rows
    }
}

/// A registry holding one spot instrument, its own underlying: what a LOBSTER file pair
/// trades. Returns it and the instrument's id.
///
/// # Errors
/// A symbol that is empty, not ASCII or over 48 bytes.
fn single_spot_registry(symbol: &str, tick_size: f64) -> Result<(Registry, u32), String> {
    let mut def: InstrumentDef = bytemuck::Zeroable::zeroed();
    def.kind = InstrumentKind::Spot as u8;
    def.option_type = OptionType::None as u8;
    def.settlement = Settlement::Linear as u8;
    def.forward_id = NO_FORWARD;
    def.contract_multiplier = 1.0;
    def.tick_size = tick_size;
    def.lot_size = 1.0;
    def.min_qty = 1.0;
    if !def.set_symbol(symbol) || symbol.is_empty() {
        return Err(format!(
            "symbol {symbol:?} is empty, not ASCII or over 48 bytes"
        ));
    }
    let mut registry = Registry::new();
    let id = registry.insert(def).map_err(|e| e.to_string())?;
    registry.set_underlying(id, id);
    registry.fix();
    Ok((registry, id))
}

/// The depth of one orderbook row (ask price, ask size, bid price, bid size per level; prices
/// x 10 000; a dummy price marks an empty level), up to [`DEPTH_LEVELS`] contiguous levels
/// per side.
///
/// # Errors
/// A field that is not a number, not finite, or a non-positive price or negative size; a
/// side without a level.
#[inline]
fn book_row(b: &ByteRecord) -> Result<Depth, RejectReason> {
    let mut d = Depth::default();
    let levels = b.len() / 4;
    for l in 0..levels {
        let ap = parse_f64(&b[4 * l])?.ok_or(RejectReason::Malformed)?;
        let aq = parse_f64(&b[4 * l + 1])?.ok_or(RejectReason::Malformed)?;
        let bp = parse_f64(&b[4 * l + 2])?.ok_or(RejectReason::Malformed)?;
        let bq = parse_f64(&b[4 * l + 3])?.ok_or(RejectReason::Malformed)?;
        for (p, q, n, out) in [
            (ap, aq, &mut d.ask_levels, &mut d.asks),
            (bp, bq, &mut d.bid_levels, &mut d.bids),
        ] {
            if !p.is_finite() || !q.is_finite() {
                return Err(RejectReason::NonFinite);
            }
            if p.abs() >= DUMMY {
                continue;
            }
            if p <= 0.0 || q < 0.0 {
                return Err(RejectReason::NegativePrice);
            }
            if (*n as usize) < DEPTH_LEVELS && *n as usize == l {
                out[l] = [p / PRICE_SCALE, q];
                *n += 1;
            }
        }
    }
    if d.bid_levels == 0 || d.ask_levels == 0 {
        return Err(RejectReason::OneSided);
    }
    Ok(d)
}
