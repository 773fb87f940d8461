//! Initial positions and client option flow files.

use std::path::Path;

use anyhow::{bail, Context, Result};

/// One line of a positions file: `symbol,qty` (contracts, negative = short).
#[derive(Debug, Clone, PartialEq)]
pub struct Position {
    /// Instrument symbol (Deribit style for options and the hedge instrument).
    pub symbol: String,
    /// Contracts, signed.
    pub qty: f64,
}

fn reader(path: &Path) -> Result<csv::Reader<std::fs::File>> {
    csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_path(path)
        .with_context(|| format!("cannot open {}", path.display()))
}

fn column(headers: &csv::StringRecord, name: &str, path: &Path) -> Result<usize> {
    headers
        .iter()
        .position(|h| h.eq_ignore_ascii_case(name))
        .with_context(|| {
            format!(
                "{}: header has no `{name}` column (got `{}`)",
                path.display(),
                headers.iter().collect::<Vec<_>>().join(",")
            )
        })
}

/// Reads a positions CSV with the header `symbol,qty`. Several lines of one symbol add up.
///
/// # Errors
/// Missing file, a header without `symbol`/`qty`, or a line whose qty is not a finite number
/// (the error names the line).
pub fn read_positions(path: &Path) -> Result<Vec<Position>> {
    let mut rdr = reader(path)?;
    let headers = rdr.headers()?.clone();
    let (si, qi) = (
        column(&headers, "symbol", path)?,
        column(&headers, "qty", path)?,
    );
    let mut out: Vec<Position> = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let line = n + 2;
        let rec = rec.with_context(|| format!("{}: line {line}", path.display()))?;
        let symbol = rec.get(si).unwrap_or("").to_string();
        let qty_txt = rec.get(qi).unwrap_or("");
        let qty: f64 = qty_txt
            .parse()
            .ok()
            .filter(|q: &f64| q.is_finite())
            .with_context(|| {
                format!(
                    "{}: line {line}: qty `{qty_txt}` is not a finite number",
                    path.display()
                )
            })?;
        if symbol.is_empty() {
            bail!("{}: line {line}: empty symbol", path.display());
        }
        match out.iter_mut().find(|p| p.symbol == symbol) {
            Some(p) => p.qty += qty,
            None => out.push(Position { symbol, qty }),
        }
    }
    Ok(out)
}

/// One client option trade from a flow file: at `ts_ns` the market maker trades `qty`
/// contracts (signed from the market maker's side: + = the market maker buys) of `symbol` at
/// `price` (the option's quote units, coin for Deribit options), or at the mark when empty.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowTrade {
    /// Time, ns since the epoch (the replay clock).
    pub ts_ns: u64,
    /// Option symbol.
    pub symbol: String,
    /// Contracts, signed from the market maker's side.
    pub qty: f64,
    /// Price, or None for the current mark.
    pub price: Option<f64>,
}

/// Reads a flow CSV with the header `timestamp_ns,symbol,qty,price` (`price` optional),
/// sorted by time (stable).
///
/// # Errors
/// Missing file, bad header, or a bad number (the error names the line).
pub fn read_flow(path: &Path) -> Result<Vec<FlowTrade>> {
    let mut rdr = reader(path)?;
    let headers = rdr.headers()?.clone();
    let ti = column(&headers, "timestamp_ns", path)?;
    let si = column(&headers, "symbol", path)?;
    let qi = column(&headers, "qty", path)?;
    let pi = headers.iter().position(|h| h.eq_ignore_ascii_case("price"));
    let mut out = Vec::new();
    for (n, rec) in rdr.records().enumerate() {
        let line = n + 2;
        let rec = rec.with_context(|| format!("{}: line {line}", path.display()))?;
        let bad =
            |what: &str, v: &str| anyhow::anyhow!("{}: line {line}: {what} `{v}`", path.display());
        let t = rec.get(ti).unwrap_or("");
        let ts_ns: u64 = t.parse().map_err(|_| bad("timestamp_ns", t))?;
        let q = rec.get(qi).unwrap_or("");
        let qty: f64 = q
            .parse()
            .ok()
            .filter(|x: &f64| x.is_finite() && *x != 0.0)
            .ok_or_else(|| bad("qty", q))?;
        let price = match pi.and_then(|i| rec.get(i)).filter(|s| !s.is_empty()) {
            None => None,
            Some(p) => Some(
                p.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(|| bad("price", p))?,
            ),
        };
        out.push(FlowTrade {
            ts_ns,
            symbol: rec.get(si).unwrap_or("").to_string(),
            qty,
            price,
        });
    }
    out.sort_by_key(|f| f.ts_ns);
    Ok(out)
}
