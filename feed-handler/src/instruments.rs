//! Instrument definitions: Deribit-style symbol parsing, the instrument registry (symbol -> dense
//! id) and the instruments file format.
//!
//! Ids are dense from 0 and equal the slot index in the instruments segment and the last-value
//! table, so a registry's [`Registry::defs`] can be written as-is into
//! `shm_layout::instruments::InstrumentTable`.
//!
//! Contract specifications follow Deribit's published ones (2020-2025) for BTC and ETH; other
//! currencies get ETH's. Anything else should come from an instruments file
//! ([`Registry::load_csv`]).
//!
//! ```
//! use feed_handler::instruments::Registry;
//! use shm_layout::{InstrumentKind, Settlement};
//! let mut reg = Registry::new();
//! let id = reg.resolve_deribit("BTC-22MAY20-9250-P").unwrap();
//! let def = reg.get(id).unwrap();
//! assert_eq!(def.kind(), Ok(InstrumentKind::Option));
//! assert_eq!(def.settlement(), Ok(Settlement::Inverse));
//! assert_eq!(def.strike, 9250.0);
//! // The option's underlying, the "BTC" index, was registered first.
//! assert_eq!(reg.get(def.underlying_id).unwrap().symbol(), "BTC");
//! ```

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

use shm_layout::{InstrumentDef, InstrumentKind, OptionType, Settlement, NO_FORWARD, SYMBOL_LEN};

/// Deribit's daily settlement and expiry time, 08:00 UTC, in seconds after midnight.
pub const DERIBIT_EXPIRY_SECS: u64 = 8 * 3600;

/// Why a symbol could not be turned into an instrument definition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SymbolError {
    /// Empty, too long for [`SYMBOL_LEN`], or not ASCII.
    #[error("symbol {0:?} is empty, longer than 48 bytes or not ASCII")]
    BadLength(String),
    /// Not one of the Deribit shapes (CUR, CUR-PERPETUAL, CUR-DDMMMYY, SYN.CUR-DDMMMYY,
    /// CUR-DDMMMYY-STRIKE-C|P).
    #[error("symbol {0:?} is not a Deribit-style instrument name")]
    Unparsable(String),
    /// The registry is fixed (loaded from an instruments file) and does not know the symbol.
    #[error("symbol {0:?} is not in the instruments file")]
    Unknown(String),
}

/// A parsed Deribit-style symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSymbol {
    /// Instrument kind.
    pub kind: InstrumentKind,
    /// Base currency, e.g. `BTC` (or `BTC_USDC` for linear USDC instruments).
    pub currency: String,
    /// Expiry, ns since the Unix epoch (08:00 UTC on the expiry date); 0 when none.
    pub expiry_ns: u64,
    /// Strike (options only, else 0).
    pub strike: f64,
    /// Call or put (options only).
    pub option_type: OptionType,
}

/// The workspace's one calendar (proleptic Gregorian, days since 1970-01-01).
pub use shm_layout::clock::{civil_from_days, days_from_civil};

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];

/// Parses a Deribit date code such as `22MAY20` or `5JUN20` into its expiry (08:00 UTC), ns.
pub fn parse_deribit_date(code: &str) -> Option<u64> {
    let b = code.as_bytes();
    let digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    if !(1..=2).contains(&digits) || b.len() != digits + 5 {
        return None;
    }
    let day: u32 = code[..digits].parse().ok()?;
    let mon = MONTHS
        .iter()
        .position(|m| *m == &code[digits..digits + 3])? as u32
        + 1;
    let yy: i64 = code[digits + 3..].parse().ok()?;
    if !code[digits + 3..].bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let dim = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][mon as usize - 1];
    if day == 0 || day > dim {
        return None;
    }
    let days = days_from_civil(2000 + yy, mon, day);
    Some((days as u64 * 86_400 + DERIBIT_EXPIRY_SECS) * 1_000_000_000)
}

/// Formats an expiry (ns since the epoch) as a Deribit date code (`22MAY20`).
pub fn format_deribit_date(expiry_ns: u64) -> String {
    let (y, m, d) = civil_from_days((expiry_ns / 1_000_000_000 / 86_400) as i64);
    format!("{}{}{:02}", d, MONTHS[m as usize - 1], y.rem_euclid(100))
}

fn is_currency(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 16
        && s.bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_')
        && s.as_bytes()[0].is_ascii_uppercase()
}

/// Parses a Deribit-style symbol: `BTC` (index), `BTC-PERPETUAL`, `BTC-25DEC20` (future),
/// `SYN.BTC-22MAY20` (synthetic forward, an index), `BTC-16JAN26-90000-C` (option; a `d` in the
/// strike is a decimal point, as in `XRP_USDC-30MAY25-2d2-C`).
///
/// # Errors
/// [`SymbolError`] when the shape, date, strike or option type does not parse.
pub fn parse_deribit_symbol(symbol: &str) -> Result<ParsedSymbol, SymbolError> {
    if symbol.is_empty() || symbol.len() > SYMBOL_LEN || !symbol.is_ascii() {
        return Err(SymbolError::BadLength(symbol.to_string()));
    }
    let bad = || SymbolError::Unparsable(symbol.to_string());
    let (syn, rest) = match symbol.strip_prefix("SYN.") {
        Some(r) => (true, r),
        None => (false, symbol),
    };
    let parts: Vec<&str> = rest.split('-').collect();
    if !is_currency(parts[0]) {
        return Err(bad());
    }
    let currency = parts[0].to_string();
    let mut p = ParsedSymbol {
        kind: InstrumentKind::Index,
        currency,
        expiry_ns: 0,
        strike: 0.0,
        option_type: OptionType::None,
    };
    match (syn, parts.len()) {
        (false, 1) => {}
        (false, 2) if parts[1] == "PERPETUAL" => p.kind = InstrumentKind::Perpetual,
        (_, 2) => {
            p.expiry_ns = parse_deribit_date(parts[1]).ok_or_else(bad)?;
            p.kind = if syn {
                InstrumentKind::Index
            } else {
                InstrumentKind::Future
            };
        }
        (false, 4) => {
            p.kind = InstrumentKind::Option;
            p.expiry_ns = parse_deribit_date(parts[1]).ok_or_else(bad)?;
            let strike_txt = parts[2].replace('d', ".");
            if strike_txt.is_empty() || !strike_txt.bytes().all(|c| c.is_ascii_digit() || c == b'.')
            {
                return Err(bad());
            }
            p.strike = strike_txt.parse().map_err(|_| bad())?;
            if !(p.strike.is_finite() && p.strike > 0.0) {
                return Err(bad());
            }
            p.option_type = match parts[3] {
                "C" => OptionType::Call,
                "P" => OptionType::Put,
                _ => return Err(bad()),
            };
        }
        _ => return Err(bad()),
    }
    Ok(p)
}

/// Contract specification: `(contract_multiplier, tick_size, lot_size, min_qty, settlement)`.
///
/// Deribit: BTC and ETH options are inverse (premium in coin), 1 coin per contract, tick 0.0005
/// coin, lot 0.1 BTC / 1 ETH. BTC-PERPETUAL and BTC futures: inverse, 10 USD of face value per
/// contract, tick 0.5 USD; ETH: 1 USD, tick 0.05. `_USDC` instruments are linear.
pub fn deribit_spec(p: &ParsedSymbol) -> (f64, f64, f64, f64, Settlement) {
    let linear = p.currency.contains("_USD");
    let btc = p.currency == "BTC";
    let settle = if linear {
        Settlement::Linear
    } else {
        Settlement::Inverse
    };
    match p.kind {
        InstrumentKind::Option => {
            let lot = if btc { 0.1 } else { 1.0 };
            let tick = if linear { 0.01 } else { 0.0005 };
            (1.0, tick, lot, lot, settle)
        }
        InstrumentKind::Perpetual | InstrumentKind::Future => {
            if linear {
                (0.001, 0.5, 0.001, 0.001, settle)
            } else if btc {
                (10.0, 0.5, 1.0, 1.0, settle)
            } else {
                (1.0, 0.05, 1.0, 1.0, settle)
            }
        }
        _ => (1.0, 0.01, 0.0, 0.0, Settlement::Linear),
    }
}

/// FxHash (rustc's hasher): symbols are short and trusted, so a tiny fast hash is right.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.write(&[i]);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.write(&(i as u64).to_le_bytes());
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Errors reading an instruments file.
#[derive(Debug, thiserror::Error)]
pub enum InstrumentsFileError {
    /// The file could not be read.
    #[error("cannot read instruments file {path}: {source}")]
    Io {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A line is wrong; the file is rejected as a whole (definitions must be exact).
    #[error("instruments file {path} line {line}: {msg}")]
    Line {
        /// File.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        msg: String,
    },
}

/// Symbol -> id map plus the definitions, ids dense from 0.
///
/// A registry is either open (sources add instruments as they discover symbols) or fixed
/// ([`Registry::fix`], e.g. after loading an instruments file): then unknown symbols are errors.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    defs: Vec<InstrumentDef>,
    by_symbol: FxMap<Box<[u8]>, u32>,
    fixed: bool,
}

impl Registry {
    /// An empty, open registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Refuses new symbols from now on.
    pub fn fix(&mut self) {
        self.fixed = true;
    }

    /// Whether new symbols are refused.
    pub fn is_fixed(&self) -> bool {
        self.fixed
    }

    /// Number of instruments.
    pub fn len(&self) -> usize {
        self.defs.len()
    }

    /// Whether no instrument is registered.
    pub fn is_empty(&self) -> bool {
        self.defs.is_empty()
    }

    /// All definitions; `defs()[i].id == i`.
    pub fn defs(&self) -> &[InstrumentDef] {
        &self.defs
    }

    /// Definition of `id`.
    pub fn get(&self, id: u32) -> Option<&InstrumentDef> {
        self.defs.get(id as usize)
    }

    /// Id of a symbol given as bytes (no allocation: usable per row).
    #[inline]
    pub fn id(&self, symbol: &[u8]) -> Option<u32> {
        self.by_symbol.get(symbol).copied()
    }

    /// Id of a symbol.
    #[inline]
    pub fn id_of(&self, symbol: &str) -> Option<u32> {
        self.id(symbol.as_bytes())
    }

    /// Adds a definition (its `id` is overwritten with the next dense id) and returns the id;
    /// returns the existing id if the symbol is already known.
    ///
    /// # Errors
    /// [`SymbolError::Unknown`] if the registry is fixed and the symbol new;
    /// [`SymbolError::BadLength`] for an empty symbol.
    pub fn insert(&mut self, mut def: InstrumentDef) -> Result<u32, SymbolError> {
        let sym = def.symbol().to_string();
        if sym.is_empty() {
            return Err(SymbolError::BadLength(sym));
        }
        if let Some(id) = self.id_of(&sym) {
            return Ok(id);
        }
        if self.fixed {
            return Err(SymbolError::Unknown(sym));
        }
        let id = self.defs.len() as u32;
        def.id = id;
        self.defs.push(def);
        self.by_symbol
            .insert(sym.into_bytes().into_boxed_slice(), id);
        Ok(id)
    }

    /// Sets the forward (per-expiry underlying) of an option.
    pub fn set_forward(&mut self, option_id: u32, forward_id: u32) {
        if let Some(d) = self.defs.get_mut(option_id as usize) {
            d.forward_id = forward_id;
        }
    }

    /// Overrides the underlying of an instrument.
    pub fn set_underlying(&mut self, id: u32, underlying_id: u32) {
        if let Some(d) = self.defs.get_mut(id as usize) {
            d.underlying_id = underlying_id;
        }
    }

    /// Returns the id of a Deribit-style symbol, parsing and registering it (and its index
    /// underlying, e.g. `BTC`) when new.
    ///
    /// # Errors
    /// [`SymbolError`] if it does not parse, or the registry is fixed and it is unknown.
    pub fn resolve_deribit(&mut self, symbol: &str) -> Result<u32, SymbolError> {
        if let Some(id) = self.id_of(symbol) {
            return Ok(id);
        }
        if self.fixed {
            return Err(SymbolError::Unknown(symbol.to_string()));
        }
        let p = parse_deribit_symbol(symbol)?;
        let is_root_index = p.kind == InstrumentKind::Index && p.expiry_ns == 0;
        let underlying_id = if is_root_index {
            None
        } else {
            let root = p
                .currency
                .split('_')
                .next()
                .unwrap_or(&p.currency)
                .to_string();
            Some(self.resolve_deribit(&root)?)
        };
        let (mult, tick, lot, min_qty, settle) = deribit_spec(&p);
        let mut def = bytemuck::Zeroable::zeroed();
        let def_ref: &mut InstrumentDef = &mut def;
        def_ref.kind = p.kind as u8;
        def_ref.option_type = p.option_type as u8;
        def_ref.settlement = settle as u8;
        def_ref.forward_id = NO_FORWARD;
        def_ref.strike = p.strike;
        def_ref.expiry_ns = p.expiry_ns;
        def_ref.contract_multiplier = mult;
        def_ref.tick_size = tick;
        def_ref.lot_size = lot;
        def_ref.min_qty = min_qty;
        def_ref.set_symbol(symbol);
        let id = self.insert(def)?;
        let under = underlying_id.unwrap_or(id);
        self.set_underlying(id, under);
        Ok(id)
    }

    /// Returns the id of a non-Deribit symbol (e.g. Binance `BTCUSDT`, Huobi `BTC-USD`),
    /// registering it with generic defaults when new: perpetual on derivatives venues (venue
    /// name containing `swap`, `futures` or `perp`), spot otherwise; inverse when a derivative is
    /// quoted in `USD` (not `USDT`/`USDC`); multiplier 1, tick 0.01, lot 0.001. Use an
    /// instruments file for exact specifications.
    ///
    /// # Errors
    /// [`SymbolError`] for an empty/too long symbol or when fixed and unknown.
    pub fn resolve_generic(&mut self, exchange: &str, symbol: &str) -> Result<u32, SymbolError> {
        if let Some(id) = self.id_of(symbol) {
            return Ok(id);
        }
        if self.fixed {
            return Err(SymbolError::Unknown(symbol.to_string()));
        }
        if symbol.is_empty() || symbol.len() > SYMBOL_LEN || !symbol.is_ascii() {
            return Err(SymbolError::BadLength(symbol.to_string()));
        }
        let ex = exchange.to_ascii_lowercase();
        let derivative = ex.contains("swap") || ex.contains("futures") || ex.contains("perp");
        let inverse = derivative && symbol.ends_with("USD");
        let mut def: InstrumentDef = bytemuck::Zeroable::zeroed();
        def.kind = if derivative {
            InstrumentKind::Perpetual
        } else {
            InstrumentKind::Spot
        } as u8;
        def.option_type = OptionType::None as u8;
        def.settlement = if inverse {
            Settlement::Inverse
        } else {
            Settlement::Linear
        } as u8;
        def.forward_id = NO_FORWARD;
        def.contract_multiplier = 1.0;
        def.tick_size = 0.01;
        def.lot_size = 0.001;
        def.min_qty = 0.001;
        def.set_symbol(symbol);
        let id = self.insert(def)?;
        self.set_underlying(id, id);
        Ok(id)
    }

    /// Resolves a symbol seen on `exchange`: Deribit-style parsing for `deribit`, generic
    /// defaults otherwise.
    ///
    /// # Errors
    /// See [`Registry::resolve_deribit`] and [`Registry::resolve_generic`].
    pub fn resolve(&mut self, exchange: &str, symbol: &str) -> Result<u32, SymbolError> {
        if exchange.eq_ignore_ascii_case("deribit") {
            self.resolve_deribit(symbol)
        } else {
            self.resolve_generic(exchange, symbol)
        }
    }

    /// Loads an instruments file and returns a fixed registry.
    ///
    /// The format is CSV with a header:
    /// `symbol,kind,option_type,settlement,underlying,forward,strike,expiry_ns,contract_multiplier,tick_size,lot_size,min_qty`.
    /// `kind` is one of `option, future, perpetual, spot, index`; `option_type` `call`, `put`
    /// or empty; `settlement` `linear` or `inverse`; `underlying` and `forward` are symbols of
    /// other lines (empty: itself / none); `expiry_ns` ns since the epoch or a Deribit date code
    /// (`22MAY20`, 08:00 UTC). A line holding only a symbol is parsed Deribit-style. Lines
    /// starting with `#` are comments. Ids follow line order.
    ///
    /// # Errors
    /// [`InstrumentsFileError`] naming the file and line.
    pub fn load_csv(path: &Path) -> Result<Registry, InstrumentsFileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| InstrumentsFileError::Io {
            path: p.clone(),
            source,
        })?;
        Self::parse_csv(&text, &p)
    }

    /// [`Registry::load_csv`] on text already read; `origin` names it in errors.
    ///
    /// # Errors
    /// [`InstrumentsFileError::Line`].
    pub fn parse_csv(text: &str, origin: &str) -> Result<Registry, InstrumentsFileError> {
        let mut reg = Registry::new();
        let err = |line: usize, msg: String| InstrumentsFileError::Line {
            path: origin.to_string(),
            line,
            msg,
        };
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let Some((hl, header)) = lines.next() else {
            return Err(err(1, "empty file: expected a header line".into()));
        };
        let cols: Vec<&str> = header.split(',').map(str::trim).collect();
        if cols.first() != Some(&"symbol") {
            return Err(err(
                hl,
                format!("header must start with `symbol`, found {header:?}"),
            ));
        }
        let col = |name: &str| cols.iter().position(|c| *c == name);
        let idx: Vec<Option<usize>> = [
            "kind",
            "option_type",
            "settlement",
            "underlying",
            "forward",
            "strike",
            "expiry_ns",
            "contract_multiplier",
            "tick_size",
            "lot_size",
            "min_qty",
        ]
        .iter()
        .map(|n| col(n))
        .collect();
        // Pass 1: definitions; underlying/forward links resolved in pass 2.
        let mut links: Vec<(usize, u32, String, String)> = Vec::new();
        for (ln, line) in lines {
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            let get = |i: Option<usize>| i.and_then(|i| f.get(i)).copied().unwrap_or("");
            let sym = f[0];
            let only_symbol = f.iter().skip(1).all(|s| s.is_empty());
            if only_symbol {
                reg.resolve_deribit(sym)
                    .map_err(|e| err(ln, e.to_string()))?;
                continue;
            }
            let d = row_def(sym, &get, &idx).map_err(|m| err(ln, m))?;
            if reg.id_of(sym).is_some() {
                return Err(err(ln, format!("duplicate symbol {sym}")));
            }
            let id = reg.insert(d).map_err(|e| err(ln, e.to_string()))?;
            links.push((ln, id, get(idx[3]).to_string(), get(idx[4]).to_string()));
        }
        reg.link(links).map_err(|(ln, m)| err(ln, m))?;
        if reg.is_empty() {
            return Err(err(hl, "no instruments defined".into()));
        }
        reg.fix();
        Ok(reg)
    }

    /// Pass 2 of [`Registry::parse_csv`]: each `(line, id, underlying, forward)` link
    /// resolved by symbol (an empty underlying: the instrument is its own).
    fn link(&mut self, links: Vec<(usize, u32, String, String)>) -> Result<(), (usize, String)> {
        for (ln, id, under, fwd) in links {
            let u = if under.is_empty() {
                id
            } else {
                self.id_of(&under)
                    .ok_or_else(|| (ln, format!("underlying {under:?} is not defined")))?
            };
            self.set_underlying(id, u);
            if !fwd.is_empty() {
                let f = self
                    .id_of(&fwd)
                    .ok_or_else(|| (ln, format!("forward {fwd:?} is not defined")))?;
                self.set_forward(id, f);
            }
        }
        Ok(())
    }

    /// Writes the registry in the instruments file format ([`Registry::load_csv`]).
    pub fn to_csv(&self) -> String {
        let mut s = String::from(
            "symbol,kind,option_type,settlement,underlying,forward,strike,expiry_ns,contract_multiplier,tick_size,lot_size,min_qty\n",
        );
        for d in &self.defs {
            let kind = d
                .kind()
                .map(|k| k.name().to_ascii_lowercase())
                .unwrap_or_default();
            let ot = match d.option_type() {
                Ok(OptionType::Call) => "call",
                Ok(OptionType::Put) => "put",
                _ => "",
            };
            let st = match d.settlement() {
                Ok(Settlement::Inverse) => "inverse",
                _ => "linear",
            };
            let under = self.get(d.underlying_id).map(|u| u.symbol()).unwrap_or("");
            let fwd = self.get(d.forward_id).map(|u| u.symbol()).unwrap_or("");
            s.push_str(&format!(
                "{},{kind},{ot},{st},{under},{fwd},{},{},{},{},{},{}\n",
                d.symbol(),
                d.strike,
                d.expiry_ns,
                d.contract_multiplier,
                d.tick_size,
                d.lot_size,
                d.min_qty
            ));
        }
        s
    }
}

/// One definition row of an instruments file (the columns after `symbol`, found through
/// `get` at the header's indices `idx`: kind, option_type, settlement, underlying, forward,
/// strike, expiry_ns, contract_multiplier, tick_size, lot_size, min_qty), without its links.
///
/// # Errors
/// The message naming the bad column and value.
fn row_def<'a>(
    sym: &str,
    get: &dyn Fn(Option<usize>) -> &'a str,
    idx: &[Option<usize>],
) -> Result<InstrumentDef, String> {
    let num = |i: Option<usize>, name: &str| -> Result<f64, String> {
        let s = get(i);
        if s.is_empty() {
            return Ok(0.0);
        }
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(format!("{name} {s:?} is not a non-negative number")),
        }
    };
    let mut d: InstrumentDef = bytemuck::Zeroable::zeroed();
    d.kind = match get(idx[0]).to_ascii_lowercase().as_str() {
        "option" => InstrumentKind::Option,
        "future" => InstrumentKind::Future,
        "perpetual" => InstrumentKind::Perpetual,
        "spot" => InstrumentKind::Spot,
        "index" => InstrumentKind::Index,
        k => return Err(format!("unknown kind {k:?}")),
    } as u8;
    d.option_type = match get(idx[1]).to_ascii_lowercase().as_str() {
        "" | "none" => OptionType::None,
        "call" | "c" => OptionType::Call,
        "put" | "p" => OptionType::Put,
        k => return Err(format!("unknown option_type {k:?}")),
    } as u8;
    d.settlement = match get(idx[2]).to_ascii_lowercase().as_str() {
        "" | "linear" => Settlement::Linear,
        "inverse" => Settlement::Inverse,
        k => return Err(format!("unknown settlement {k:?}")),
    } as u8;
    if (d.kind == InstrumentKind::Option as u8) != (d.option_type != 0) {
        return Err("options need option_type call|put, others none".into());
    }
    d.strike = num(idx[5], "strike")?;
    let exp = get(idx[6]);
    d.expiry_ns = if exp.is_empty() {
        0
    } else if let Ok(v) = exp.parse::<u64>() {
        v
    } else {
        parse_deribit_date(exp)
            .ok_or_else(|| format!("expiry {exp:?} is neither ns nor DDMMMYY"))?
    };
    d.contract_multiplier = num(idx[7], "contract_multiplier")?;
    if d.contract_multiplier == 0.0 {
        d.contract_multiplier = 1.0;
    }
    d.tick_size = num(idx[8], "tick_size")?;
    d.lot_size = num(idx[9], "lot_size")?;
    d.min_qty = num(idx[10], "min_qty")?;
    d.forward_id = NO_FORWARD;
    if !d.set_symbol(sym) || sym.is_empty() {
        return Err(format!("symbol {sym:?} empty, non-ASCII or over 48 bytes"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deribit_shapes_parse() {
        let o = parse_deribit_symbol("BTC-16JAN26-90000-C").unwrap();
        assert_eq!(o.kind, InstrumentKind::Option);
        assert_eq!(o.strike, 90000.0);
        assert_eq!(o.option_type, OptionType::Call);
        // 2026-01-16 08:00 UTC
        assert_eq!(o.expiry_ns, 1_768_550_400_000_000_000);
        let p = parse_deribit_symbol("BTC-PERPETUAL").unwrap();
        assert_eq!(p.kind, InstrumentKind::Perpetual);
        let f = parse_deribit_symbol("BTC-25DEC20").unwrap();
        assert_eq!(f.kind, InstrumentKind::Future);
        let s = parse_deribit_symbol("SYN.BTC-22MAY20").unwrap();
        assert_eq!(s.kind, InstrumentKind::Index);
        // 2020-05-22 08:00 UTC = 1590134400 s: the options_chain file's `expiration` column.
        assert_eq!(s.expiry_ns, 1_590_134_400_000_000_000);
        assert_eq!(
            parse_deribit_symbol("BTC").unwrap().kind,
            InstrumentKind::Index
        );
        let d = parse_deribit_symbol("XRP_USDC-30MAY25-2d2-P").unwrap();
        assert_eq!(d.strike, 2.2);
        assert_eq!(format_deribit_date(s.expiry_ns), "22MAY20");
        assert_eq!(
            format_deribit_date(parse_deribit_date("5JUN20").unwrap()),
            "5JUN20"
        );
    }

    #[test]
    fn malformed_symbols_are_rejected() {
        for s in [
            "",
            "btc",
            "BTC-32MAY20",
            "BTC-22XYZ20",
            "BTC-22MAY20-abc-C",
            "BTC-22MAY20-9000-X",
            "BTC-22MAY20-9000",
            "BTC--C",
            "SYN.BTC",
            "BTC-22MAY20-0-C",
            "BTC-29FEB2X",
        ] {
            assert!(parse_deribit_symbol(s).is_err(), "{s}");
        }
    }

    #[test]
    fn registry_ids_are_dense_and_inverse_specs_apply() {
        let mut r = Registry::new();
        let perp = r.resolve_deribit("BTC-PERPETUAL").unwrap();
        let idx = r.id_of("BTC").unwrap();
        assert_eq!((idx, perp), (0, 1));
        let d = r.get(perp).unwrap();
        assert_eq!(d.settlement(), Ok(Settlement::Inverse));
        assert_eq!(d.contract_multiplier, 10.0);
        assert_eq!(d.underlying_id, idx);
        assert_eq!(r.get(idx).unwrap().underlying_id, idx);
        assert_eq!(r.resolve_deribit("BTC-PERPETUAL").unwrap(), perp);
        for (i, d) in r.defs().iter().enumerate() {
            assert_eq!(d.id as usize, i);
        }
        r.fix();
        assert!(matches!(
            r.resolve_deribit("ETH"),
            Err(SymbolError::Unknown(_))
        ));
    }

    #[test]
    fn instruments_file_round_trips() {
        let mut r = Registry::new();
        let o = r.resolve_deribit("BTC-22MAY20-9250-P").unwrap();
        let f = r.resolve_deribit("SYN.BTC-22MAY20").unwrap();
        r.set_forward(o, f);
        r.resolve_generic("binance-futures", "BTCUSDT").unwrap();
        let text = r.to_csv();
        let back = Registry::parse_csv(&text, "mem").unwrap();
        assert!(back.is_fixed());
        assert_eq!(back.defs(), r.defs());
        let only = Registry::parse_csv("symbol\nBTC-PERPETUAL\n", "mem").unwrap();
        assert_eq!(only.len(), 2);
        assert!(Registry::parse_csv("symbol,kind\nX,weird\n", "mem").is_err());
        assert!(Registry::parse_csv("", "mem").is_err());
    }
}
