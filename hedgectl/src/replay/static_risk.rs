//! Risk of a static book: an options chain and positions, no hedging.
//!
//! A chain file holds snapshots: rows sharing an exchange `timestamp` (Deribit's collectors
//! write one per run). The risk is taken *as of* a time: each position uses its instrument's
//! latest row whose `timestamp` is at or before that time. Without `--at`, that time is the
//! end of the file (every instrument's latest row); `--at TIME` picks another; with
//! `--each-snapshot`, one report per distinct `timestamp` of the file.
//!
//! Each row gives the forward `F = underlying_price`, `sigma = mark_iv / 100` and
//! `T = (expiration - timestamp) / 365 days`; the model delta is the Black-76 forward delta
//! `dV/dF` with `r = 0` (the engine's pricing module), gamma is per 1.0 of `F`, vega is quote
//! currency per vol point: the units Deribit publishes. Per underlying (the option's root
//! index: BTC, ETH, ...) the sums are `qty x contract multiplier x greek`. Where rows carry the
//! exchange's own greeks (`delta`, `gamma`, `vega` columns of the `options_chain` layout), the
//! same sums with them are reported beside ours, each over the positions whose row has that
//! greek, with that count (`exchange_*_positions`: the coverage), so that a chain where some
//! rows (or a whole column, as `gamma` in the 2026 Deribit files) lack them still compares.
//!
//! Positions that cannot be valued are never dropped silently: a symbol not in the chain, not
//! an option, with no valid row as of the time, or expired by then, is listed; all of them at
//! once in one error, or, with `--skip-missing`, in the report's `skipped` list.
//!
//! The model inputs come from the feed handler's Tardis source (same parsing, partial rows and
//! rejects as the live feed); the exchange greeks are not part of a normalized market event, so
//! they are read here from the same file by column name and matched by symbol and timestamp.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use engine::pricing::{black76_greeks, OptionType as PxType};
use feed_handler::instruments::{days_from_civil, Registry};
use feed_handler::source::{Source, SourceEvent};
use feed_handler::tardis::TardisSource;
use serde::Serialize;
use shm_layout::{InstrumentDef, InstrumentKind, OptionType};

use super::positions::Position;

/// Which snapshot(s) to value and what to do with positions that cannot be valued.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StaticOptions {
    /// As-of time, microseconds since the epoch (`None`: the end of the file).
    pub at_us: Option<u64>,
    /// One report per distinct `timestamp` of the file.
    pub each_snapshot: bool,
    /// Skip positions that cannot be valued (listed in `skipped`) instead of failing.
    pub skip_missing: bool,
}

/// Parses `--at`: microseconds since the epoch, or UTC `YYYY-MM-DDTHH:MM[:SS[.ffffff]][Z]`
/// (a space for the `T` is accepted).
///
/// # Errors
/// Any other text (the message shows both accepted forms).
pub fn parse_time_us(s: &str) -> Result<u64> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse().with_context(|| format!("--at {s}: out of range"));
    }
    let bad = || {
        anyhow::anyhow!(
            "--at {s}: expected microseconds since the epoch or UTC YYYY-MM-DDTHH:MM[:SS[.ffffff]]Z"
        )
    };
    let t = s.trim_end_matches('Z').replace(' ', "T");
    let (date, time) = t.split_once('T').ok_or_else(bad)?;
    let d: Vec<&str> = date.split('-').collect();
    let (sec_txt, frac) = match time.split_once('.') {
        Some((a, f)) => (a, f),
        None => (time, ""),
    };
    let h: Vec<&str> = sec_txt.split(':').collect();
    let num = |x: &str, max: i64| x.parse::<i64>().ok().filter(|v| (0..=max).contains(v));
    if d.len() != 3 || !(2..=3).contains(&h.len()) || frac.len() > 6 {
        return Err(bad());
    }
    let (y, mo, day) = (
        num(d[0], 9999).ok_or_else(bad)?,
        num(d[1], 12).filter(|m| *m >= 1).ok_or_else(bad)?,
        num(d[2], 31).filter(|x| *x >= 1).ok_or_else(bad)?,
    );
    let (hh, mm) = (
        num(h[0], 23).ok_or_else(bad)?,
        num(h[1], 59).ok_or_else(bad)?,
    );
    let ss = h.get(2).map_or(Some(0), |x| num(x, 60)).ok_or_else(bad)?;
    let us_frac = if frac.is_empty() {
        0
    } else {
        let f = num(frac, 999_999).ok_or_else(bad)?;
        f * 10_i64.pow(6 - frac.len() as u32)
    };
    let days = days_from_civil(y, mo as u32, day as u32);
    let secs = days * 86_400 + hh * 3_600 + mm * 60 + ss;
    u64::try_from(secs * 1_000_000 + us_frac).map_err(|_| bad())
}

/// Greek sums of one underlying.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StaticRisk {
    /// Sum of qty x multiplier x Black-76 forward delta, underlying units.
    pub net_delta: f64,
    /// Sum of qty x multiplier x Black-76 gamma (per 1.0 of the forward).
    pub gamma: f64,
    /// Sum of qty x multiplier x Black-76 vega, quote currency per vol point.
    pub vega: f64,
    /// Same as `net_delta` with the exchange's delta, over the positions whose row has one
    /// (None: no row has one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_net_delta: Option<f64>,
    /// Same as `gamma` with the exchange's gamma, over the rows that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_gamma: Option<f64>,
    /// Same as `vega` with the exchange's vega, over the rows that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_vega: Option<f64>,
    /// Positions counted.
    pub positions: usize,
    /// Positions whose row has the exchange's delta (coverage of `exchange_net_delta`).
    pub exchange_delta_positions: usize,
    /// Positions whose row has the exchange's gamma.
    pub exchange_gamma_positions: usize,
    /// Positions whose row has the exchange's vega.
    pub exchange_vega_positions: usize,
    /// Largest |model delta - exchange delta| per contract among the positions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_abs_delta_diff: Option<f64>,
}

/// One position's line in the table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PositionRisk {
    /// Symbol.
    pub symbol: String,
    /// Contracts.
    pub qty: f64,
    /// Exchange timestamp of the row used, microseconds since the epoch.
    pub row_ts_us: u64,
    /// Forward (underlying_price of the row).
    pub forward: f64,
    /// Implied vol, fraction.
    pub mark_iv: f64,
    /// Years to expiry.
    pub t_years: f64,
    /// Black-76 forward delta per contract.
    pub delta: f64,
    /// The exchange's delta per contract, if present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_delta: Option<f64>,
}

/// A position that could not be valued, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SkippedPosition {
    /// Symbol as in the positions file.
    pub symbol: String,
    /// `not in the chain`, `not an option`, `no valid row as of the time`, `expired`.
    pub reason: &'static str,
}

/// The risk as of one time.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StaticReport {
    /// The as-of time, microseconds since the epoch (the latest row's timestamp when no time
    /// was given).
    pub as_of_us: u64,
    /// Per underlying symbol.
    pub underlyings: BTreeMap<String, StaticRisk>,
    /// Per position.
    pub positions: Vec<PositionRisk>,
    /// Positions not valued (only with `--skip-missing`; otherwise they are an error).
    pub skipped: Vec<SkippedPosition>,
}

/// One report, or one per snapshot (`--each-snapshot`: `{"snapshots": [...]}` in JSON).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum StaticOutput {
    /// As of one time.
    One(StaticReport),
    /// Every snapshot of the file, in time order.
    Each {
        /// The reports.
        snapshots: Vec<StaticReport>,
    },
}

/// The exchange's greeks of one row; each may be absent.
#[derive(Debug, Clone, Copy, Default)]
struct ExchGreeks {
    delta: Option<f64>,
    gamma: Option<f64>,
    vega: Option<f64>,
}

/// Exchange greeks keyed by (symbol, timestamp column as in the file); empty when the file has
/// no greek columns.
fn read_exchange_greeks(path: &Path) -> Result<HashMap<(String, u64), ExchGreeks>> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let h = rdr.headers()?.clone();
    let col = |n: &str| h.iter().position(|c| c == n);
    let mut out = HashMap::new();
    let (Some(si), Some(ti)) = (col("symbol"), col("timestamp")) else {
        return Ok(out);
    };
    let (di, gi, vi) = (col("delta"), col("gamma"), col("vega"));
    if di.is_none() && gi.is_none() && vi.is_none() {
        return Ok(out);
    }
    for rec in rdr.records() {
        let Ok(rec) = rec else { continue };
        let num = |i: Option<usize>| {
            i.and_then(|i| rec.get(i))
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|v| v.is_finite())
        };
        let Some(ts) = rec.get(ti).and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        let g = ExchGreeks {
            delta: num(di),
            gamma: num(gi),
            vega: num(vi),
        };
        out.insert((rec.get(si).unwrap_or("").to_string(), ts), g);
    }
    Ok(out)
}

/// Model inputs of one row: `(exch_ts_ns, mark_iv, forward)`.
type Row = (u64, f64, f64);

/// Every valid mark of the chain, per instrument in time order, and the registry.
fn read_marks(chain: &Path) -> Result<(Registry, Vec<Vec<Row>>)> {
    let mut src = TardisSource::open(&[chain.to_path_buf()], None)?;
    let mut rows: Vec<Vec<Row>> = vec![Vec::new(); src.registry().len()];
    let mut ev = SourceEvent::default();
    while src.next(&mut ev) {
        if let Some((_, iv, under)) = ev.event.as_option_mark() {
            if let Some(v) = rows.get_mut(ev.event.instrument_id as usize) {
                v.push((ev.event.exch_ts_ns, iv, under));
            }
        }
    }
    for v in &mut rows {
        v.sort_by_key(|r| r.0);
    }
    Ok((src.registry().clone(), rows))
}

/// The chain, its exchange greeks and the positions, ready to value as of any time.
struct Book<'a> {
    reg: Registry,
    rows: Vec<Vec<Row>>,
    exch: HashMap<(String, u64), ExchGreeks>,
    positions: &'a [Position],
}

/// A position's option and model inputs as of `at_ns`, or why it has none.
fn lookup(b: &Book<'_>, p: &Position, at_ns: u64) -> Result<(InstrumentDef, Row), &'static str> {
    let id = b.reg.id_of(&p.symbol).ok_or("not in the chain")?;
    let def = *b.reg.get(id).ok_or("not in the chain")?;
    if def.kind() != Ok(InstrumentKind::Option) {
        return Err("not an option");
    }
    let rows = &b.rows[id as usize];
    let n = rows.partition_point(|r| r.0 <= at_ns);
    let row = *rows[..n].last().ok_or("no valid row as of the time")?;
    if def.expiry_ns <= at_ns.max(row.0) {
        return Err("expired");
    }
    Ok((def, row))
}

/// Adds one position's greeks to its underlying's sums and returns its line.
fn value_position(
    b: &Book<'_>,
    p: &Position,
    def: &InstrumentDef,
    (ts, iv, fwd): Row,
    report: &mut StaticReport,
) -> Result<PositionRisk> {
    let t_years = pricing::time::years_between_ns(ts, def.expiry_ns);
    let kind = match def.option_type() {
        Ok(OptionType::Call) => PxType::Call,
        _ => PxType::Put,
    };
    let g = black76_greeks(kind, fwd, def.strike, t_years, iv, 0.0)
        .map_err(|e| anyhow::anyhow!("position {}: {e}", p.symbol))?;
    let m = p.qty * def.contract_multiplier;
    let under = b
        .reg
        .get(def.underlying_id)
        .map_or_else(|| "?".into(), |d| d.symbol().to_string());
    let e = b
        .exch
        .get(&(p.symbol.clone(), ts / 1000))
        .copied()
        .unwrap_or_default();
    let u = report.underlyings.entry(under).or_default();
    u.net_delta += m * g.delta;
    u.gamma += m * g.gamma;
    u.vega += m * g.vega_per_vol_point();
    u.positions += 1;
    if let Some(d) = e.delta {
        *u.exchange_net_delta.get_or_insert(0.0) += m * d;
        u.exchange_delta_positions += 1;
        let mx = u.max_abs_delta_diff.get_or_insert(0.0);
        *mx = mx.max((g.delta - d).abs());
    }
    if let Some(x) = e.gamma {
        *u.exchange_gamma.get_or_insert(0.0) += m * x;
        u.exchange_gamma_positions += 1;
    }
    if let Some(x) = e.vega {
        *u.exchange_vega.get_or_insert(0.0) += m * x;
        u.exchange_vega_positions += 1;
    }
    Ok(PositionRisk {
        symbol: p.symbol.clone(),
        qty: p.qty,
        row_ts_us: ts / 1000,
        forward: fwd,
        mark_iv: iv,
        t_years,
        delta: g.delta,
        exchange_delta: e.delta,
    })
}

/// The report as of `at_ns`; positions that cannot be valued are collected in `skipped`.
fn report_at(b: &Book<'_>, at_ns: u64) -> Result<StaticReport> {
    let mut report = StaticReport {
        as_of_us: at_ns / 1000,
        underlyings: BTreeMap::new(),
        positions: Vec::new(),
        skipped: Vec::new(),
    };
    for p in b.positions {
        match lookup(b, p, at_ns) {
            Ok((def, row)) => {
                let line = value_position(b, p, &def, row, &mut report)?;
                report.positions.push(line);
            }
            Err(reason) => report.skipped.push(SkippedPosition {
                symbol: p.symbol.clone(),
                reason,
            }),
        }
    }
    Ok(report)
}

/// One error listing every position that could not be valued, unless `--skip-missing`.
fn check_skipped(r: &StaticReport, chain: &Path, skip_missing: bool) -> Result<()> {
    if skip_missing || r.skipped.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = r
        .skipped
        .iter()
        .map(|s| format!("{} ({})", s.symbol, s.reason))
        .collect();
    bail!(
        "{} of {} positions cannot be valued from {} as of {} us: {} (use --skip-missing to skip and list them)",
        r.skipped.len(),
        r.skipped.len() + r.positions.len(),
        chain.display(),
        r.as_of_us,
        list.join(", ")
    )
}

/// Computes the static book risk of `positions` from the options chain at `chain`.
///
/// # Errors
/// Unreadable file; positions that cannot be valued (all listed in one message) unless
/// `skip_missing`; a row whose inputs the pricer rejects.
pub fn static_risk(
    chain: &Path,
    positions: &[Position],
    o: &StaticOptions,
) -> Result<StaticOutput> {
    let (reg, rows) = read_marks(chain)?;
    let book = Book {
        reg,
        rows,
        exch: read_exchange_greeks(chain)?,
        positions,
    };
    if o.each_snapshot {
        let mut times: Vec<u64> = book.rows.iter().flatten().map(|r| r.0).collect();
        times.sort_unstable();
        times.dedup();
        let mut snapshots = Vec::with_capacity(times.len());
        for t in times {
            let r = report_at(&book, t)?;
            check_skipped(&r, chain, o.skip_missing)?;
            snapshots.push(r);
        }
        return Ok(StaticOutput::Each { snapshots });
    }
    let at_ns = match o.at_us {
        Some(us) => us.saturating_mul(1000),
        None => book.rows.iter().flatten().map(|r| r.0).max().unwrap_or(0),
    };
    let r = report_at(&book, at_ns)?;
    check_skipped(&r, chain, o.skip_missing)?;
    Ok(StaticOutput::One(r))
}

fn opt(x: Option<f64>, prec: usize) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.prec$}"))
}

/// The human table of one report.
fn report_table(s: &mut String, r: &StaticReport, with_positions: bool) {
    use std::fmt::Write as _;
    let _ = writeln!(s, "as of {} us (exchange timestamp)", r.as_of_us);
    if with_positions {
        let _ = writeln!(
            s,
            "{:<24} {:>10} {:>10} {:>8} {:>9} {:>10} {:>10}",
            "position", "qty", "forward", "iv", "T(y)", "delta", "exch_delta"
        );
        for p in &r.positions {
            let _ = writeln!(
                s,
                "{:<24} {:>10.2} {:>10.2} {:>8.4} {:>9.5} {:>10.5} {:>10}",
                p.symbol,
                p.qty,
                p.forward,
                p.mark_iv,
                p.t_years,
                p.delta,
                opt(p.exchange_delta, 5)
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "{:<10} {:>5} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}  exchange coverage d/g/v",
        "underlying",
        "pos",
        "net_delta",
        "exch_delta",
        "gamma",
        "exch_gamma",
        "vega/pt",
        "exch_vega"
    );
    for (name, u) in &r.underlyings {
        let _ = writeln!(
            s,
            "{:<10} {:>5} {:>12.5} {:>12} {:>12.6} {:>12} {:>12.3} {:>12}  {}/{}/{} of {}",
            name,
            u.positions,
            u.net_delta,
            opt(u.exchange_net_delta, 5),
            u.gamma,
            opt(u.exchange_gamma, 6),
            u.vega,
            opt(u.exchange_vega, 3),
            u.exchange_delta_positions,
            u.exchange_gamma_positions,
            u.exchange_vega_positions,
            u.positions
        );
    }
    for k in &r.skipped {
        let _ = writeln!(s, "skipped {} ({})", k.symbol, k.reason);
    }
}

/// The human table: positions and sums for one report; sums only, per snapshot, for many.
pub fn table(r: &StaticOutput) -> String {
    let mut s = String::new();
    match r {
        StaticOutput::One(r) => report_table(&mut s, r, true),
        StaticOutput::Each { snapshots } => {
            for r in snapshots {
                report_table(&mut s, r, false);
                s.push('\n');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_accepts_microseconds_and_utc_times() {
        // 2026-02-02T09:39:00Z = 1770025140 s.
        for (text, us) in [
            ("1770025140888145", 1_770_025_140_888_145),
            ("2026-02-02T09:39:00Z", 1_770_025_140_000_000),
            ("2026-02-02 09:39:00.888145", 1_770_025_140_888_145),
            ("2026-02-02T09:39", 1_770_025_140_000_000),
        ] {
            assert_eq!(parse_time_us(text).unwrap(), us, "{text}");
        }
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00Z",
            "2026-02-02",
            "2026-02-02T25:00",
        ] {
            assert!(parse_time_us(bad).is_err(), "{bad}");
        }
    }
}
