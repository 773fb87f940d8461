//! Tardis.dev CSV replay: `options_chain`, `quotes`, `book_snapshot_N`, `incremental_book_L2`
//! and `derivative_ticker`, plain or gzip, several files merged in timestamp order.
//!
//! The layout of each file is recognised from its header. Rows are ordered and paced by
//! `local_timestamp` (when Tardis saw the message: the replay clock, as Tardis recommends);
//! `timestamp` becomes the event's `exch_ts_ns`. Both are microseconds since the epoch.
//!
//! Timestamps must be before 2100-01-01 (4.1e15 microseconds); others are rejected as
//! [`RejectReason::TimestampRange`], and the conversion to nanoseconds is checked, so a
//! 19-digit value can neither wrap nor poison the time order of the rows after it.
//!
//! What each row becomes:
//! - `options_chain`: a row is taken apart and each valid part published, each invalid part
//!   counted by [`PartialReason`] (see [`crate::partial`]): an `UnderlyingPrice` for the row's
//!   `underlying_index` (Deribit's per-expiry forward `SYN.BTC-22MAY20`, or the future itself)
//!   when `underlying_price` is valid; an `OptionMark` (`mark_price`, `mark_iv / 100`,
//!   `underlying_price`) when all three are; a `Quote` when both `bid_price` and `ask_price` are
//!   positive and bid < ask (Deribit writes 0 or nothing for an empty side). A quote whose
//!   `bid_amount`/`ask_amount` are empty (or invalid) is published with sizes 0 and
//!   `MarketEvent::FLAG_SIZE_UNKNOWN`. The row is rejected only when none of these parts is valid.
//!   Exchange greeks do not travel in market events (static risk reads them from the file); an
//!   unparsable one is counted.
//! - Renames: an option's forward is the first underlying its rows name (`SYN.BTC-16JAN26`). When
//!   a later row names another underlying of the same expiry (`BTC-16JAN26`, once the future
//!   lists), its price is published for both, so the expiry's forward continues from the new
//!   underlying's first valid price; each switch is counted once and listed by
//!   [`TardisSource::renames`] (the feed handler prints it at the end, off the hot path).
//! - `derivative_ticker` (perpetuals and futures): one `UnderlyingPrice` for the instrument with
//!   `v = [mark_price (or last_price, flagged FLAG_LAST_PRICE, when there is no mark),
//!   funding_rate (fraction per 8 h, FLAG_FUNDING when present), index_price (0: absent),
//!   open_interest (0: absent)]`, and a `Quote` when optional `bid_price`/`ask_price` columns are
//!   filled (size-unknown unless `bid_amount`/`ask_amount` are).
//! - `quotes`: a `Quote`.
//! - `book_snapshot_N`: a `Quote` plus up to 8 depth levels per side.
//! - `incremental_book_L2`: updates a book per instrument; a `Quote` with depth after each batch
//!   of rows sharing a `local_timestamp` (one exchange message). A snapshot that starts after
//!   updates resets the book. An amount of 0 deletes the level.
//!
//! Deribit inverse perpetuals and futures quote `amount` in USD; it is converted to contracts
//! (divided by the contract multiplier, 10 USD for BTC) so that every quantity the feed publishes
//! is in contracts.
//!
//! Rows that are wrong are skipped and counted ([`RejectReason`]); other layouts' rows yield
//! either all their events or none.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use csv::ByteRecord;
use shm_layout::{InstrumentKind, MarketEvent, Settlement, DEPTH_LEVELS};

use crate::instruments::Registry;
use crate::partial::{PartialReason, Partials};
use crate::source::{invalid_reason, Depth, RejectReason, Rejects, Source, SourceEvent};

/// Opening a Tardis file failed. Row-level problems are never errors (they are rejects).
#[derive(Debug, thiserror::Error)]
pub enum TardisError {
    /// The file is missing or unreadable.
    #[error("cannot open {path}: {source}")]
    Open {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The header is unreadable or not a known Tardis layout.
    #[error("{path}: {msg}")]
    Header {
        /// File.
        path: PathBuf,
        /// What is wrong.
        msg: String,
    },
}

/// Which Tardis layout a file has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `options_chain`.
    OptionsChain,
    /// `quotes`.
    Quotes,
    /// `book_snapshot_N` with N levels.
    BookSnapshot(usize),
    /// `incremental_book_L2`.
    IncrementalL2,
    /// `derivative_ticker` (perpetuals and futures: mark, index, last, funding, open interest).
    DerivativeTicker,
}

/// Opens a file as buffered bytes, decompressing gzip (recognised by its magic bytes).
fn open_raw(path: &Path) -> Result<Box<dyn BufRead>, TardisError> {
    let file = File::open(path).map_err(|source| TardisError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut buf = BufReader::with_capacity(1 << 16, file);
    let head = buf.fill_buf().map_err(|source| TardisError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let gz = head.len() >= 2 && head[..2] == [0x1f, 0x8b];
    Ok(if gz {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::bufread::MultiGzDecoder::new(buf),
        ))
    } else {
        Box::new(buf)
    })
}

fn open_reader(path: &Path) -> Result<csv::Reader<Box<dyn BufRead>>, TardisError> {
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(open_raw(path)?))
}

/// Column indexes of one file.
#[derive(Debug, Clone, Default)]
struct Cols {
    n: usize,
    exchange: usize,
    symbol: usize,
    timestamp: usize,
    local_timestamp: usize,
    // options_chain
    bid_price: usize,
    bid_amount: usize,
    ask_price: usize,
    ask_amount: usize,
    mark_price: usize,
    mark_iv: usize,
    underlying_index: usize,
    underlying_price: usize,
    // options_chain exchange greeks present in the header
    greeks: Vec<usize>,
    // derivative_ticker (None: no such column)
    funding_rate: usize,
    open_interest: Option<usize>,
    last_price: Option<usize>,
    index_price: Option<usize>,
    ticker_mark: Option<usize>,
    ticker_bid: Option<(usize, Option<usize>)>,
    ticker_ask: Option<(usize, Option<usize>)>,
    // incremental
    is_snapshot: usize,
    side: usize,
    price: usize,
    amount: usize,
    // snapshot: (price, amount) columns per level
    bids: Vec<(usize, usize)>,
    asks: Vec<(usize, usize)>,
}

fn detect(header: &ByteRecord, path: &Path) -> Result<(Layout, Cols), TardisError> {
    let names: Vec<String> = header
        .iter()
        .map(|h| String::from_utf8_lossy(h).trim().to_string())
        .collect();
    let pos = |n: &str| names.iter().position(|h| h == n);
    let bad = |msg: String| TardisError::Header {
        path: path.to_path_buf(),
        msg,
    };
    let need = |n: &str| pos(n).ok_or_else(|| bad(format!("header has no `{n}` column")));
    let mut c = Cols {
        n: names.len(),
        exchange: need("exchange")?,
        symbol: need("symbol")?,
        timestamp: need("timestamp")?,
        local_timestamp: need("local_timestamp")?,
        ..Cols::default()
    };
    if pos("mark_iv").is_some() {
        c.bid_price = need("bid_price")?;
        c.bid_amount = need("bid_amount")?;
        c.ask_price = need("ask_price")?;
        c.ask_amount = need("ask_amount")?;
        c.mark_price = need("mark_price")?;
        c.mark_iv = need("mark_iv")?;
        c.underlying_index = need("underlying_index")?;
        c.underlying_price = need("underlying_price")?;
        c.greeks = ["delta", "gamma", "vega", "theta", "rho"]
            .iter()
            .filter_map(|g| pos(g))
            .collect();
        return Ok((Layout::OptionsChain, c));
    }
    if let Some(f) = pos("funding_rate") {
        c.funding_rate = f;
        return ticker_cols(c, &pos).ok_or_else(|| {
            bad("derivative_ticker header has neither `mark_price` nor `last_price`".into())
        });
    }
    if pos("is_snapshot").is_some() {
        c.is_snapshot = need("is_snapshot")?;
        c.side = need("side")?;
        c.price = need("price")?;
        c.amount = need("amount")?;
        return Ok((Layout::IncrementalL2, c));
    }
    if pos("asks[0].price").is_some() {
        for i in 0.. {
            let (Some(ap), Some(aa), Some(bp), Some(ba)) = (
                pos(&format!("asks[{i}].price")),
                pos(&format!("asks[{i}].amount")),
                pos(&format!("bids[{i}].price")),
                pos(&format!("bids[{i}].amount")),
            ) else {
                break;
            };
            c.asks.push((ap, aa));
            c.bids.push((bp, ba));
        }
        return Ok((Layout::BookSnapshot(c.asks.len()), c));
    }
    if pos("bid_price").is_some() && pos("ask_price").is_some() {
        c.bid_price = need("bid_price")?;
        c.bid_amount = need("bid_amount")?;
        c.ask_price = need("ask_price")?;
        c.ask_amount = need("ask_amount")?;
        return Ok((Layout::Quotes, c));
    }
    Err(bad(format!(
        "header is not a known Tardis layout (options_chain, quotes, book_snapshot_N, incremental_book_L2, derivative_ticker): {}",
        names.join(",")
    )))
}

/// The optional columns of a `derivative_ticker` header; `None` without a price column.
fn ticker_cols(mut c: Cols, pos: &dyn Fn(&str) -> Option<usize>) -> Option<(Layout, Cols)> {
    c.open_interest = pos("open_interest");
    c.last_price = pos("last_price");
    c.index_price = pos("index_price");
    c.ticker_mark = pos("mark_price");
    c.ticker_bid = pos("bid_price").map(|p| (p, pos("bid_amount")));
    c.ticker_ask = pos("ask_price").map(|p| (p, pos("ask_amount")));
    (c.ticker_mark.is_some() || c.last_price.is_some()).then_some((Layout::DerivativeTicker, c))
}

/// Unsigned decimal integers (timestamps): the workspace's one checked parser.
pub(crate) use shm_layout::ascii::parse_u64;

/// First rejected Tardis timestamp: 2100-01-01T00:00:00Z in microseconds since the epoch.
pub const MAX_TS_US: u64 = 4_102_444_800_000_000;

/// A Tardis timestamp (microseconds since the epoch) as nanoseconds since the epoch:
/// [`RejectReason::Malformed`] if it does not parse, [`RejectReason::TimestampRange`] from
/// [`MAX_TS_US`] on (which also keeps the x1000 far from overflow).
#[inline]
pub(crate) fn ts_us_to_ns(b: &[u8]) -> Result<u64, RejectReason> {
    let us = parse_u64(b).ok_or(if !b.is_empty() && b.iter().all(u8::is_ascii_digit) {
        RejectReason::TimestampRange
    } else {
        RejectReason::Malformed
    })?;
    if us >= MAX_TS_US {
        return Err(RejectReason::TimestampRange);
    }
    us.checked_mul(1000).ok_or(RejectReason::TimestampRange)
}

/// Parses a float field: `Ok(None)` when empty, `Err(Malformed)` when unparsable. NaN and
/// infinities parse (they are rejected later as [`RejectReason::NonFinite`]).
#[inline]
pub(crate) fn parse_f64(b: &[u8]) -> Result<Option<f64>, RejectReason> {
    if b.is_empty() {
        return Ok(None);
    }
    let s = std::str::from_utf8(b).map_err(|_| RejectReason::Malformed)?;
    s.parse::<f64>()
        .map(Some)
        .map_err(|_| RejectReason::Malformed)
}

/// A price that must be present, finite and positive.
#[inline]
fn price(b: &[u8]) -> Result<f64, RejectReason> {
    match parse_f64(b)? {
        None => Err(RejectReason::Malformed),
        Some(v) if !v.is_finite() => Err(RejectReason::NonFinite),
        Some(v) if v <= 0.0 => Err(RejectReason::NegativePrice),
        Some(v) => Ok(v),
    }
}

/// A quantity that must be present, finite and non-negative.
#[inline]
fn qty(b: &[u8]) -> Result<f64, RejectReason> {
    match parse_f64(b)? {
        None => Err(RejectReason::Malformed),
        Some(v) if !v.is_finite() => Err(RejectReason::NonFinite),
        Some(v) if v < 0.0 => Err(RejectReason::NegativePrice),
        Some(v) => Ok(v),
    }
}

/// A price where 0 or empty means "no such side" (Deribit's options_chain).
#[inline]
fn optional_price(b: &[u8]) -> Result<Option<f64>, RejectReason> {
    match parse_f64(b)? {
        None => Ok(None),
        Some(v) if !v.is_finite() => Err(RejectReason::NonFinite),
        Some(v) if v < 0.0 => Err(RejectReason::NegativePrice),
        Some(0.0) => Ok(None),
        Some(v) => Ok(Some(v)),
    }
}

/// One side of an L2 book: levels sorted so that the best is last (cheap updates at the top).
#[derive(Debug, Clone, Default)]
struct BookSide {
    /// `(price, qty)`; bids ascending, asks descending, so the best level is at the end.
    levels: Vec<(f64, f64)>,
    bid: bool,
}

impl BookSide {
    fn set(&mut self, px: f64, q: f64) {
        let bid = self.bid;
        // Position where px belongs in the ordering (bids ascending, asks descending).
        let key = |p: f64| if bid { p } else { -p };
        let k = key(px);
        let i = self.levels.partition_point(|&(p, _)| key(p) < k);
        let found = i < self.levels.len() && self.levels[i].0 == px;
        if q == 0.0 {
            if found {
                self.levels.remove(i);
            }
        } else if found {
            self.levels[i].1 = q;
        } else {
            self.levels.insert(i, (px, q));
        }
    }
    fn best(&self) -> Option<(f64, f64)> {
        self.levels.last().copied()
    }
    fn fill(&self, out: &mut [[f64; 2]; DEPTH_LEVELS], scale: f64) -> u32 {
        let mut n = 0;
        for &(p, q) in self.levels.iter().rev().take(DEPTH_LEVELS) {
            out[n] = [p, q * scale];
            n += 1;
        }
        n as u32
    }
}

#[derive(Debug, Clone)]
struct Book {
    bids: BookSide,
    asks: BookSide,
    in_snapshot: bool,
}

impl Default for Book {
    fn default() -> Self {
        Book {
            bids: BookSide {
                levels: Vec::new(),
                bid: true,
            },
            asks: BookSide {
                levels: Vec::new(),
                bid: false,
            },
            in_snapshot: false,
        }
    }
}

const MAX_PENDING: usize = 4;

/// One input file being read.
struct FileReader {
    path: PathBuf,
    layout: Layout,
    cols: Cols,
    reader: csv::Reader<Box<dyn BufRead>>,
    record: ByteRecord,
    done: bool,
    last_local_ts: u64,
    pending: [SourceEvent; MAX_PENDING],
    head: usize,
    len: usize,
    // incremental_book_L2 batch state: (instrument, local ts, exch ts, qty scale)
    batch: Option<(u32, u64, u64, f64)>,
    books: Vec<Book>,
    rows: u64,
    partials: Partials,
    /// `(old forward id, new underlying id, first exch ts ns)` per rename seen, in order.
    renames: Vec<(u32, u32, u64)>,
}

impl FileReader {
    fn open(path: &Path) -> Result<Self, TardisError> {
        let mut reader = open_reader(path)?;
        let header = reader
            .byte_headers()
            .map_err(|e| TardisError::Header {
                path: path.to_path_buf(),
                msg: format!("unreadable header: {e}"),
            })?
            .clone();
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err(TardisError::Header {
                path: path.to_path_buf(),
                msg: "empty file: no header".into(),
            });
        }
        let (layout, cols) = detect(&header, path)?;
        Ok(FileReader {
            path: path.to_path_buf(),
            layout,
            cols,
            reader,
            record: ByteRecord::new(),
            done: false,
            last_local_ts: 0,
            pending: [SourceEvent::default(); MAX_PENDING],
            head: 0,
            len: 0,
            batch: None,
            books: Vec::new(),
            rows: 0,
            partials: Partials::default(),
            renames: Vec::with_capacity(64),
        })
    }

    #[inline]
    fn push(&mut self, e: SourceEvent) {
        debug_assert!(self.head + self.len < MAX_PENDING);
        self.pending[self.head + self.len] = e;
        self.len += 1;
    }

    /// Pushes `ev` if its event is valid, else returns why it is not.
    #[inline]
    fn push_valid(&mut self, ev: SourceEvent) -> Result<(), RejectReason> {
        match invalid_reason(&ev.event) {
            Some(r) => Err(r),
            None => {
                self.push(ev);
                Ok(())
            }
        }
    }

    fn qty_scale(reg: &Registry, id: u32, exchange: &[u8]) -> f64 {
        match reg.get(id) {
            Some(d)
                if exchange == b"deribit"
                    && d.settlement == Settlement::Inverse as u8
                    && (d.kind == InstrumentKind::Perpetual as u8
                        || d.kind == InstrumentKind::Future as u8)
                    && d.contract_multiplier > 0.0 =>
            {
                1.0 / d.contract_multiplier
            }
            _ => 1.0,
        }
    }

    fn resolve(reg: &Registry, sym: &[u8]) -> Result<u32, RejectReason> {
        reg.id(sym).ok_or(if reg.is_fixed() {
            RejectReason::UnknownSymbol
        } else {
            // Open registries were filled by a scan of every parsable symbol.
            RejectReason::UnparsableSymbol
        })
    }

    /// Parses the current record; pushes its events or returns why it is rejected.
    fn row(&mut self, reg: &Registry) -> Result<(), RejectReason> {
        let r = &self.record;
        let c = &self.cols;
        if r.len() != c.n {
            return Err(RejectReason::ColumnCount);
        }
        let exch_ts = ts_us_to_ns(&r[c.timestamp])?;
        let local_ts = ts_us_to_ns(&r[c.local_timestamp])?;
        if local_ts < self.last_local_ts {
            return Err(RejectReason::TimeBackwards);
        }
        let id = Self::resolve(reg, &r[c.symbol])?;
        let ev = SourceEvent {
            source_ts_ns: local_ts,
            ..SourceEvent::default()
        };
        match self.layout {
            Layout::OptionsChain => self.options_row(reg, id, exch_ts, ev)?,
            Layout::DerivativeTicker => self.ticker_row(reg, id, exch_ts, ev)?,
            Layout::Quotes => self.quotes_row(reg, id, exch_ts, ev)?,
            Layout::BookSnapshot(_) => self.snapshot_row(reg, id, exch_ts, ev)?,
            Layout::IncrementalL2 => self.incremental_row(reg, id, exch_ts, local_ts)?,
        }
        self.last_local_ts = local_ts;
        Ok(())
    }

    /// A `quotes` row: one top-of-book quote.
    fn quotes_row(
        &mut self,
        reg: &Registry,
        id: u32,
        exch_ts: u64,
        mut ev: SourceEvent,
    ) -> Result<(), RejectReason> {
        let (r, c) = (&self.record, &self.cols);
        let scale = Self::qty_scale(reg, id, &r[c.exchange]);
        let b = side_price(&r[c.bid_price])?;
        let a = side_price(&r[c.ask_price])?;
        let bq = qty(&r[c.bid_amount])? * scale;
        let aq = qty(&r[c.ask_amount])? * scale;
        ev.event = MarketEvent::quote(id, exch_ts, 0, b, bq, a, aq);
        self.push_valid(ev)
    }

    /// A `book_snapshot_N` row: the top of book with its depth.
    fn snapshot_row(
        &mut self,
        reg: &Registry,
        id: u32,
        exch_ts: u64,
        mut ev: SourceEvent,
    ) -> Result<(), RejectReason> {
        let (r, c) = (&self.record, &self.cols);
        let scale = Self::qty_scale(reg, id, &r[c.exchange]);
        let mut d = Depth::default();
        for (side, out, n) in [
            (&c.bids, &mut d.bids, &mut d.bid_levels),
            (&c.asks, &mut d.asks, &mut d.ask_levels),
        ] {
            for &(pi, ai) in side.iter() {
                if r[pi].is_empty() {
                    break;
                }
                let p = price(&r[pi])?;
                let q = qty(&r[ai])?;
                if (*n as usize) < DEPTH_LEVELS {
                    out[*n as usize] = [p, q * scale];
                    *n += 1;
                }
            }
        }
        if d.bid_levels == 0 || d.ask_levels == 0 {
            return Err(RejectReason::OneSided);
        }
        ev.event = MarketEvent::quote(
            id,
            exch_ts,
            0,
            d.bids[0][0],
            d.bids[0][1],
            d.asks[0][0],
            d.asks[0][1],
        );
        ev.has_depth = true;
        ev.depth = d;
        self.push_valid(ev)
    }

    /// An `incremental_book_L2` row: one level change applied to the instrument's book; the
    /// batch is published when it closes ([`Self::close_batch`]).
    fn incremental_row(
        &mut self,
        reg: &Registry,
        id: u32,
        exch_ts: u64,
        local_ts: u64,
    ) -> Result<(), RejectReason> {
        let (r, c) = (&self.record, &self.cols);
        let snap = match &r[c.is_snapshot] {
            b"true" | b"True" | b"1" => true,
            b"false" | b"False" | b"0" => false,
            _ => return Err(RejectReason::Malformed),
        };
        let bid = match &r[c.side] {
            b"bid" | b"buy" => true,
            b"ask" | b"sell" => false,
            _ => return Err(RejectReason::Malformed),
        };
        let p = price(&r[c.price])?;
        let q = qty(&r[c.amount])?;
        let scale = Self::qty_scale(reg, id, &r[c.exchange]);
        // `row_counting` closed the previous batch if this row starts a new message.
        if self.books.len() <= id as usize {
            self.books.resize_with(id as usize + 1, Book::default);
        }
        let book = &mut self.books[id as usize];
        if snap && !book.in_snapshot {
            book.bids.levels.clear();
            book.asks.levels.clear();
        }
        book.in_snapshot = snap;
        if bid {
            book.bids.set(p, q);
        } else {
            book.asks.set(p, q);
        }
        self.batch = Some((id, local_ts, exch_ts, scale));
        Ok(())
    }

    /// Ends the current incremental batch: pushes its top of book (with depth), if two-sided.
    /// Returns the reject reason for a batch that leaves the book one-sided or crossed.
    fn close_batch(&mut self) -> Option<RejectReason> {
        let (id, local_ts, exch_ts, scale) = self.batch.take()?;
        let book = &self.books[id as usize];
        let (Some((b, bq)), Some((a, aq))) = (book.bids.best(), book.asks.best()) else {
            return Some(RejectReason::OneSided);
        };
        let mut ev = SourceEvent {
            source_ts_ns: local_ts,
            event: MarketEvent::quote(id, exch_ts, 0, b, bq * scale, a, aq * scale),
            has_depth: true,
            ..SourceEvent::default()
        };
        ev.depth.bid_levels = book.bids.fill(&mut ev.depth.bids, scale);
        ev.depth.ask_levels = book.asks.fill(&mut ev.depth.asks, scale);
        self.push_valid(ev).err()
    }

    fn flush_batch(&mut self, rejects: &mut Rejects) {
        if let Some(r) = self.close_batch() {
            rejects.add(r);
        }
    }

    fn peek_ts(&self) -> Option<u64> {
        (self.len > 0).then(|| self.pending[self.head].source_ts_ns)
    }

    fn pop(&mut self) -> SourceEvent {
        let e = self.pending[self.head];
        self.head += 1;
        self.len -= 1;
        e
    }
}

/// A field that must be a finite number, > 0 (or >= 0 with `zero_ok`); `Ok(None)` when empty.
#[inline]
fn field(b: &[u8], zero_ok: bool) -> Result<Option<f64>, RejectReason> {
    match parse_f64(b)? {
        None => Ok(None),
        Some(v) if !v.is_finite() => Err(RejectReason::NonFinite),
        Some(v) if v < 0.0 || (!zero_ok && v == 0.0) => Err(RejectReason::NegativePrice),
        Some(v) => Ok(Some(v)),
    }
}

/// Both values of a two-field part, or `None` with the part counted in `part`: as `invalid`
/// when either field does not parse, else as `missing` when either is empty.
#[inline]
fn both_fields<E1, E2>(
    fields: (Result<Option<f64>, E1>, Result<Option<f64>, E2>),
    invalid: PartialReason,
    missing: PartialReason,
    part: &mut Partials,
) -> Option<(f64, f64)> {
    match fields {
        (Ok(Some(x)), Ok(Some(y))) => Some((x, y)),
        (Err(_), _) | (_, Err(_)) => {
            part.add(invalid);
            None
        }
        _ => {
            part.add(missing);
            None
        }
    }
}

/// The quote part of a row: `Some(quote)` when both sides are priced and bid < ask, with the
/// sizes (x `scale`) when both are given and valid, else sizes 0 and
/// [`MarketEvent::FLAG_SIZE_UNKNOWN`]. Every dropped or degraded part is counted in `part`.
#[inline]
fn quote_part(
    id: u32,
    exch_ts: u64,
    (bid, bid_amt): (&[u8], Option<&[u8]>),
    (ask, ask_amt): (&[u8], Option<&[u8]>),
    scale: f64,
    part: &mut Partials,
) -> Option<MarketEvent> {
    let (b, a) = both_fields(
        (optional_price(bid), optional_price(ask)),
        PartialReason::QuotePriceInvalid,
        PartialReason::QuoteOneSided,
        part,
    )?;
    if b >= a {
        part.add(PartialReason::QuoteCrossed);
        return None;
    }
    let size = |x: Option<&[u8]>| x.map_or(Ok(None), |x| field(x, true));
    let mut q = match (size(bid_amt), size(ask_amt)) {
        (Ok(Some(bq)), Ok(Some(aq))) => {
            return Some(MarketEvent::quote(
                id,
                exch_ts,
                0,
                b,
                bq * scale,
                a,
                aq * scale,
            ))
        }
        (Err(_), _) | (_, Err(_)) => {
            part.add(PartialReason::QuoteSizeInvalid);
            MarketEvent::quote(id, exch_ts, 0, b, 0.0, a, 0.0)
        }
        _ => MarketEvent::quote(id, exch_ts, 0, b, 0.0, a, 0.0),
    };
    part.add(PartialReason::QuoteSizeUnknown);
    q.flags |= MarketEvent::FLAG_SIZE_UNKNOWN;
    Some(q)
}

impl FileReader {
    /// The end of a row that is published: its present events in order, then its partial
    /// counts.
    #[inline]
    fn finish_row(
        &mut self,
        mut ev: SourceEvent,
        events: [Option<MarketEvent>; 2],
        part: Partials,
    ) {
        for e in events.into_iter().flatten() {
            ev.event = e;
            self.push(ev);
        }
        self.commit_partials(part);
    }

    /// Counts the row's dropped parts (when it was used at all).
    #[inline]
    fn commit_partials(&mut self, mut part: Partials) {
        if part.total() > 0 {
            part.add_row();
            self.partials.merge(&part);
        }
    }

    /// The mark part of an options_chain row (needs a valid underlying price `under`).
    #[inline]
    fn mark_part(
        &self,
        id: u32,
        exch_ts: u64,
        under: Option<f64>,
        part: &mut Partials,
    ) -> Option<MarketEvent> {
        let (r, c) = (&self.record, &self.cols);
        let (mp, iv) = both_fields(
            (field(&r[c.mark_price], true), field(&r[c.mark_iv], false)),
            PartialReason::MarkInvalid,
            PartialReason::MarkMissing,
            part,
        )?;
        let Some(under) = under else {
            part.add(PartialReason::MarkNoUnderlying);
            return None;
        };
        let m = MarketEvent::option_mark(id, exch_ts, 0, mp, iv / 100.0, under);
        if m.is_valid() {
            Some(m)
        } else {
            part.add(PartialReason::MarkInvalid);
            None
        }
    }

    /// An options_chain row: each valid part published, each invalid one counted; rejected only
    /// when no part is valid.
    fn options_row(
        &mut self,
        reg: &Registry,
        id: u32,
        exch_ts: u64,
        mut ev: SourceEvent,
    ) -> Result<(), RejectReason> {
        let fwd = Self::resolve(reg, &self.record[self.cols.underlying_index])?;
        let mut part = Partials::default();
        let under = match field(&self.record[self.cols.underlying_price], false) {
            Ok(Some(u)) => Ok(u),
            Ok(None) => {
                part.add(PartialReason::UnderlyingMissing);
                Err(RejectReason::Malformed)
            }
            Err(e) => {
                part.add(PartialReason::UnderlyingInvalid);
                Err(e)
            }
        };
        let mark = self.mark_part(id, exch_ts, under.ok(), &mut part);
        let (r, c) = (&self.record, &self.cols);
        let quote = quote_part(
            id,
            exch_ts,
            (&r[c.bid_price], Some(&r[c.bid_amount])),
            (&r[c.ask_price], Some(&r[c.ask_amount])),
            1.0,
            &mut part,
        );
        for &g in &c.greeks {
            match parse_f64(&r[g]) {
                Ok(None) => {}
                Ok(Some(v)) if v.is_finite() => {}
                _ => part.add(PartialReason::GreekInvalid),
            }
        }
        let under = match (under, quote) {
            (Err(e), None) => return Err(e),
            (u, _) => u.ok(),
        };
        if let Some(u) = under {
            ev.event = MarketEvent::underlying_price(fwd, exch_ts, 0, u);
            self.push(ev);
            if let Some(f) = self.renamed_forward(reg, id, fwd, exch_ts) {
                ev.event = MarketEvent::underlying_price(f, exch_ts, 0, u);
                self.push(ev);
            }
        }
        self.finish_row(ev, [mark, quote], part);
        Ok(())
    }

    /// The option's registered forward when this row names another underlying of the same
    /// expiry (a rename such as `SYN.BTC-16JAN26` -> `BTC-16JAN26`); records the first sight.
    #[inline]
    fn renamed_forward(
        &mut self,
        reg: &Registry,
        id: u32,
        under: u32,
        exch_ts: u64,
    ) -> Option<u32> {
        let opt = reg.get(id)?;
        let f = opt.forward_id;
        if f == under || f == shm_layout::NO_FORWARD {
            return None;
        }
        let fdef = reg.get(f)?;
        if fdef.expiry_ns == 0 || fdef.expiry_ns != opt.expiry_ns {
            return None;
        }
        if !self.renames.iter().any(|&(o, n, _)| o == f && n == under) {
            self.renames.push((f, under, exch_ts));
        }
        Some(f)
    }

    /// A derivative_ticker row: one underlying price (mark, else last) carrying funding, index
    /// and open interest, plus a quote when bid/ask columns are filled.
    fn ticker_row(
        &mut self,
        reg: &Registry,
        id: u32,
        exch_ts: u64,
        ev: SourceEvent,
    ) -> Result<(), RejectReason> {
        let (r, c) = (&self.record, &self.cols);
        let scale = Self::qty_scale(reg, id, &r[c.exchange]);
        let mut part = Partials::default();
        let opt = |i: Option<usize>, zero_ok: bool, part: &mut Partials| match i
            .map(|i| field(&r[i], zero_ok))
        {
            Some(Ok(v)) => v,
            None => None,
            Some(Err(_)) => {
                part.add(PartialReason::TickerFieldInvalid);
                None
            }
        };
        let mark = opt(c.ticker_mark, false, &mut part);
        let last = opt(c.last_price, false, &mut part);
        let index = opt(c.index_price, false, &mut part).unwrap_or(0.0);
        let oi = opt(c.open_interest, true, &mut part).unwrap_or(0.0) * scale;
        let mut price = match (mark, last) {
            (Some(m), l) => {
                if l.is_some() {
                    part.add(PartialReason::TickerLastUnused);
                }
                Some(MarketEvent::underlying_price(id, exch_ts, 0, m))
            }
            (None, Some(l)) => {
                let mut e = MarketEvent::underlying_price(id, exch_ts, 0, l);
                e.flags |= MarketEvent::FLAG_LAST_PRICE;
                Some(e)
            }
            (None, None) => None,
        };
        if let Some(e) = price.as_mut() {
            e.v[2] = index;
            e.v[3] = oi;
            match parse_f64(&r[c.funding_rate]) {
                Ok(None) => {}
                Ok(Some(f)) if f.is_finite() && f.abs() < 1.0 => {
                    e.v[1] = f;
                    e.flags |= MarketEvent::FLAG_FUNDING;
                }
                _ => part.add(PartialReason::TickerFieldInvalid),
            }
        }
        let quote = match (c.ticker_bid, c.ticker_ask) {
            (Some((bp, ba)), Some((ap, aa))) if !(r[bp].is_empty() && r[ap].is_empty()) => {
                quote_part(
                    id,
                    exch_ts,
                    (&r[bp], ba.map(|i| &r[i])),
                    (&r[ap], aa.map(|i| &r[i])),
                    scale,
                    &mut part,
                )
            }
            _ => None,
        };
        if price.is_none() && quote.is_none() {
            return Err(RejectReason::Malformed);
        }
        self.finish_row(ev, [price, quote], part);
        Ok(())
    }
}

/// A quote side's price: empty means the side is missing ([`RejectReason::OneSided`]).
#[inline]
fn side_price(b: &[u8]) -> Result<f64, RejectReason> {
    if b.is_empty() {
        return Err(RejectReason::OneSided);
    }
    price(b)
}

impl FileReader {
    /// Processes the current record: first closes the open incremental batch if the record
    /// starts a new exchange message (other time or instrument), counting a bad batch, then
    /// parses the row, counting a rejected one.
    fn row_counting(&mut self, reg: &Registry, rejects: &mut Rejects) {
        // Close the open batch first if this row starts a new message, counting a bad batch.
        if self.layout == Layout::IncrementalL2 {
            if let Some((bid_id, bts, _, _)) = self.batch {
                let r = &self.record;
                let c = &self.cols;
                let same = r.len() == c.n
                    && ts_us_to_ns(&r[c.local_timestamp]).ok() == Some(bts)
                    && reg.id(&r[c.symbol]) == Some(bid_id);
                if !same {
                    self.flush_batch(rejects);
                }
            }
        }
        if let Err(r) = self.row(reg) {
            rejects.add(r);
        }
    }
}

/// Scans files for symbols and registers them (the instrument table is written before the first
/// event). Options get their `forward_id` from the `underlying_index` column.
///
/// # Errors
/// [`TardisError`] when a file cannot be opened or has an unknown header.
pub fn scan_instruments(paths: &[PathBuf], reg: &mut Registry) -> Result<(), TardisError> {
    for p in paths {
        // The header and layout as the reader will see them.
        let (layout, c) = {
            let f = FileReader::open(p)?;
            (f.layout, f.cols.clone())
        };
        // Then a plain line scan picking the few columns needed (Tardis never quotes fields):
        // about twice as fast as a full CSV parse. A malformed line registers at most a
        // spurious instrument; the row itself is rejected by the real parse.
        let mut raw = open_raw(p)?;
        let mut line: Vec<u8> = Vec::with_capacity(512);
        let mut last: Vec<u8> = Vec::new();
        let mut spans: Vec<(usize, usize)> = Vec::with_capacity(32);
        let want = if layout == Layout::OptionsChain {
            c.underlying_index.max(c.symbol).max(c.exchange)
        } else {
            c.symbol.max(c.exchange)
        };
        let mut first = true;
        loop {
            line.clear();
            match raw.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            if std::mem::take(&mut first) {
                continue; // header
            }
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            // (start, end) of the first `want + 1` fields.
            spans.clear();
            let mut start = 0;
            for (i, &b) in body.iter().enumerate() {
                if b == b',' {
                    spans.push((start, i));
                    start = i + 1;
                    if spans.len() > want {
                        break;
                    }
                }
            }
            if spans.len() <= want {
                spans.push((start, body.len()));
            }
            if spans.len() <= want {
                continue;
            }
            let field = |i: usize| &body[spans[i].0..spans[i].1];
            let fields = [
                field(c.exchange),
                field(c.symbol),
                field(c.underlying_index.min(want)),
            ];
            let sym = fields[1];
            if sym == &last[..] && layout != Layout::OptionsChain {
                continue;
            }
            last.clear();
            last.extend_from_slice(sym);
            let (Ok(ex), Ok(sym)) = (std::str::from_utf8(fields[0]), std::str::from_utf8(sym))
            else {
                continue;
            };
            let Ok(id) = reg.resolve(ex, sym) else {
                continue;
            };
            if layout == Layout::OptionsChain {
                set_first_forward(reg, ex, id, fields[2]);
            }
        }
    }
    Ok(())
}

/// Registers an option's underlying (`underlying_index`) as its forward unless it has one: the
/// first underlying named is the option's forward; a later one of the same expiry is a rename
/// (see the module docs).
fn set_first_forward(reg: &mut Registry, exchange: &str, id: u32, underlying: &[u8]) {
    let Ok(u) = std::str::from_utf8(underlying) else {
        return;
    };
    let Ok(fwd) = reg.resolve(exchange, u) else {
        return;
    };
    if reg.get(id).is_some_and(|d| {
        d.kind() == Ok(InstrumentKind::Option) && d.forward_id == shm_layout::NO_FORWARD
    }) {
        reg.set_forward(id, fwd);
    }
}

/// Several Tardis files merged in `local_timestamp` order (ties: file order).
pub struct TardisSource {
    files: Vec<FileReader>,
    registry: Registry,
    rejects: Rejects,
}

impl TardisSource {
    /// Opens the files. With `registry = None`, instruments are discovered by scanning the files
    /// first (Deribit symbols parsed, other venues' symbols registered with defaults); with a
    /// registry (e.g. from an instruments file, [`Registry::load_csv`]), it is fixed and rows of
    /// other symbols are rejected as [`RejectReason::UnknownSymbol`].
    ///
    /// # Errors
    /// [`TardisError`] for a missing or unreadable file or header (one clear line).
    pub fn open(paths: &[PathBuf], registry: Option<Registry>) -> Result<Self, TardisError> {
        let registry = match registry {
            Some(mut r) => {
                r.fix();
                r
            }
            None => {
                let mut r = Registry::new();
                scan_instruments(paths, &mut r)?;
                r
            }
        };
        let files = paths
            .iter()
            .map(|p| FileReader::open(p))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TardisSource {
            files,
            registry,
            rejects: Rejects::default(),
        })
    }

    /// Underlying renames seen so far, each once, in the order first seen:
    /// `(old forward symbol, new underlying symbol, exchange time of the first row, ns)`.
    pub fn renames(&self) -> Vec<(String, String, u64)> {
        let name = |id: u32| {
            self.registry
                .get(id)
                .map_or_else(|| format!("#{id}"), |d| d.symbol().to_string())
        };
        let mut out: Vec<(String, String, u64)> = Vec::new();
        for f in &self.files {
            for &(o, n, ts) in &f.renames {
                let (o, n) = (name(o), name(n));
                if !out.iter().any(|(a, b, _)| *a == o && *b == n) {
                    out.push((o, n, ts));
                }
            }
        }
        out
    }

    /// Layout of each file, in the order given.
    pub fn layouts(&self) -> Vec<(PathBuf, Layout)> {
        self.files
            .iter()
            .map(|f| (f.path.clone(), f.layout))
            .collect()
    }
}

impl Source for TardisSource {
    fn registry(&self) -> &Registry {
        &self.registry
    }

    fn next(&mut self, out: &mut SourceEvent) -> bool {
        let mut best: Option<(usize, u64)> = None;
        for i in 0..self.files.len() {
            let f = &mut self.files[i];
            if f.len == 0 {
                f.head = 0;
                while f.len == 0 && !f.done {
                    match f.reader.read_byte_record(&mut f.record) {
                        Ok(true) => {
                            f.rows += 1;
                            f.row_counting(&self.registry, &mut self.rejects);
                        }
                        Ok(false) => {
                            f.done = true;
                            f.flush_batch(&mut self.rejects);
                        }
                        Err(e) => {
                            f.rows += 1;
                            self.rejects.add(RejectReason::Malformed);
                            if matches!(e.kind(), csv::ErrorKind::Io(_)) {
                                f.done = true;
                                f.flush_batch(&mut self.rejects);
                            }
                        }
                    }
                }
            }
            if let Some(ts) = f.peek_ts() {
                if best.is_none_or(|(_, b)| ts < b) {
                    best = Some((i, ts));
                }
            }
        }
        match best {
            Some((i, _)) => {
                *out = self.files[i].pop();
                true
            }
            None => false,
        }
    }

    fn rejects(&self) -> Rejects {
        self.rejects
    }

    fn partials(&self) -> Partials {
        let mut p = Partials::default();
        for f in &self.files {
            p.merge(&f.partials);
        }
        p
    }

    fn renames_seen(&self) -> u64 {
        self.renames().len() as u64
    }
    fn rows_read(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }
}
