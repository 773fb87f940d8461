//! Risk of a static book: an options chain and positions, no hedging.
//!
//! For each position, the latest row of its instrument in the chain (the last `OptionMark`
//! the Tardis source yields for it, i.e. the greatest `local_timestamp`) gives the forward
//! `F = underlying_price`, `sigma = mark_iv / 100` and `T = (expiration - timestamp) / 365
//! days`; the model delta is the Black-76 forward delta `dV/dF` with `r = 0` (the engine's
//! pricing module), gamma is per 1.0 of `F`, vega is quote currency per vol point: the units
//! Deribit publishes. Per underlying the sums are `qty x contract multiplier x greek`.
//! Where the file carries the exchange's own greeks (`delta,gamma,vega` columns of the
//! `options_chain` layout), the same sums with them are reported beside ours
//! (`exchange_net_delta`, ...), so a user can check our numbers against the exchange's.
//!
//! The model inputs come from the feed handler's Tardis source (same parsing and rejects as
//! the live feed); the exchange greeks are not part of a normalized market event, so they are
//! read here from the same file by column name and matched to the mark by symbol and
//! exchange timestamp.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use engine::pricing::{black76_greeks, OptionType as PxType};
use feed_handler::source::{Source, SourceEvent};
use feed_handler::tardis::TardisSource;
use serde::Serialize;
use shm_layout::{InstrumentKind, OptionType};

use super::positions::Position;

const YEAR_NS: f64 = 365.0 * 86_400.0 * 1e9;

/// Greek sums of one underlying.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct StaticRisk {
    /// Sum of qty x multiplier x Black-76 forward delta, underlying units.
    pub net_delta: f64,
    /// Sum of qty x multiplier x Black-76 gamma (per 1.0 of the forward).
    pub gamma: f64,
    /// Sum of qty x multiplier x Black-76 vega, quote currency per vol point.
    pub vega: f64,
    /// Same as `net_delta` with the exchange's delta (None: the file has no greeks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_net_delta: Option<f64>,
    /// Same as `gamma` with the exchange's gamma.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_gamma: Option<f64>,
    /// Same as `vega` with the exchange's vega.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exchange_vega: Option<f64>,
    /// Positions counted.
    pub positions: usize,
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

/// The whole result.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StaticReport {
    /// Per underlying symbol.
    pub underlyings: BTreeMap<String, StaticRisk>,
    /// Per position.
    pub positions: Vec<PositionRisk>,
}

#[derive(Debug, Clone, Copy)]
struct ExchGreeks {
    delta: f64,
    gamma: f64,
    vega: f64,
}

/// Exchange greeks keyed by (symbol, timestamp column as in the file).
fn read_exchange_greeks(path: &Path) -> Result<Option<HashMap<(String, u64), ExchGreeks>>> {
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let h = rdr.headers()?.clone();
    let col = |n: &str| h.iter().position(|c| c == n);
    let (Some(si), Some(ti), Some(di), Some(gi), Some(vi)) = (
        col("symbol"),
        col("timestamp"),
        col("delta"),
        col("gamma"),
        col("vega"),
    ) else {
        return Ok(None);
    };
    let mut out = HashMap::new();
    for rec in rdr.records() {
        let Ok(rec) = rec else { continue };
        let num = |i: usize| rec.get(i).and_then(|s| s.parse::<f64>().ok());
        let (Some(ts), Some(delta), Some(gamma), Some(vega)) = (
            rec.get(ti).and_then(|s| s.parse::<u64>().ok()),
            num(di),
            num(gi),
            num(vi),
        ) else {
            continue;
        };
        out.insert(
            (rec.get(si).unwrap_or("").to_string(), ts),
            ExchGreeks { delta, gamma, vega },
        );
    }
    Ok(Some(out))
}

/// Computes the static book risk of `positions` from the options chain at `chain`.
///
/// # Errors
/// Unreadable file; a position whose symbol is not an option of the chain or has no valid
/// row; a row whose inputs the pricer rejects.
pub fn static_risk(chain: &Path, positions: &[Position]) -> Result<StaticReport> {
    let mut src = TardisSource::open(&[chain.to_path_buf()], None)?;
    let n = src.registry().len();
    // Latest (mark_iv, underlying_px, exch_ts_ns) per instrument.
    let mut latest: Vec<Option<(f64, f64, u64)>> = vec![None; n];
    let mut ev = SourceEvent::default();
    while src.next(&mut ev) {
        if let Some((_, iv, under)) = ev.event.as_option_mark() {
            if let Some(slot) = latest.get_mut(ev.event.instrument_id as usize) {
                *slot = Some((iv, under, ev.event.exch_ts_ns));
            }
        }
    }
    let exch = read_exchange_greeks(chain)?;
    let reg = src.registry();
    let mut report = StaticReport {
        underlyings: BTreeMap::new(),
        positions: Vec::new(),
    };
    for p in positions {
        let id = reg
            .id_of(&p.symbol)
            .with_context(|| format!("position {}: not in {}", p.symbol, chain.display()))?;
        let def = *reg.get(id).expect("id from the registry");
        if def.kind() != Ok(InstrumentKind::Option) {
            bail!("position {}: not an option", p.symbol);
        }
        let (iv, fwd, ts) = latest[id as usize]
            .with_context(|| format!("position {}: no valid row in the chain", p.symbol))?;
        let t_years = def.expiry_ns.saturating_sub(ts) as f64 / YEAR_NS;
        let kind = match def.option_type() {
            Ok(OptionType::Call) => PxType::Call,
            _ => PxType::Put,
        };
        let g = black76_greeks(kind, fwd, def.strike, t_years, iv, 0.0)
            .map_err(|e| anyhow::anyhow!("position {}: {e}", p.symbol))?;
        let m = p.qty * def.contract_multiplier;
        let under = reg
            .get(def.underlying_id)
            .map(|d| d.symbol().to_string())
            .unwrap_or_else(|| "?".into());
        let e = exch
            .as_ref()
            .and_then(|x| x.get(&(p.symbol.clone(), ts / 1000)).copied());
        let u = report.underlyings.entry(under).or_default();
        u.net_delta += m * g.delta;
        u.gamma += m * g.gamma;
        u.vega += m * g.vega_per_vol_point();
        u.positions += 1;
        if exch.is_some() {
            let e = e.with_context(|| {
                format!(
                    "position {}: exchange greeks of its latest row not found",
                    p.symbol
                )
            })?;
            *u.exchange_net_delta.get_or_insert(0.0) += m * e.delta;
            *u.exchange_gamma.get_or_insert(0.0) += m * e.gamma;
            *u.exchange_vega.get_or_insert(0.0) += m * e.vega;
            let d = (g.delta - e.delta).abs();
            let mx = u.max_abs_delta_diff.get_or_insert(0.0);
            *mx = mx.max(d);
        }
        report.positions.push(PositionRisk {
            symbol: p.symbol.clone(),
            qty: p.qty,
            forward: fwd,
            mark_iv: iv,
            t_years,
            delta: g.delta,
            exchange_delta: e.map(|e| e.delta),
        });
    }
    Ok(report)
}

fn opt(x: Option<f64>, prec: usize) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.prec$}"))
}

/// The human table.
pub fn table(r: &StaticReport) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
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
    let _ = writeln!(
        s,
        "{:<10} {:>5} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
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
            "{:<10} {:>5} {:>12.5} {:>12} {:>12.6} {:>12} {:>12.3} {:>12}",
            name,
            u.positions,
            u.net_delta,
            opt(u.exchange_net_delta, 5),
            u.gamma,
            opt(u.exchange_gamma, 6),
            u.vega,
            opt(u.exchange_vega, 3)
        );
    }
    s
}
