//! `hedgectl greeks`: a Greeks calculator over CSV.
//!
//! Input (a file given with `--input`, or stdin) has the header
//! `model,type,underlying,strike,t_years,vol,rate,div` (model `bsm` or `black76`; type `call`
//! or `put`; underlying is the spot for bsm and the forward for black76; vol 0.25 = 25%;
//! rate and div continuously compounded per year; div is ignored by black76). Output (stdout)
//! repeats the columns and adds `price,delta,gamma,vega,theta`: vega per 1.00 of vol, theta
//! per year (calendar time, underlying held fixed); black76 delta is the discounted forward
//! delta dV/dF. A bad row is reported on stderr with its row number and the reason and
//! skipped; the other rows are still written; the exit code is then 1.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context as _};
use pricing::{Model, OptionInputs, OptionType};

/// Arguments of `hedgectl greeks`.
#[derive(Debug, clap::Args)]
pub struct GreeksArgs {
    /// CSV file to read (default: stdin).
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
}

const HEADER: [&str; 8] = [
    "model",
    "type",
    "underlying",
    "strike",
    "t_years",
    "vol",
    "rate",
    "div",
];

/// Runs the command: returns the process exit code (0, or 1 when a row was rejected).
///
/// # Errors
/// Unreadable input, a missing or wrong header, or a write error on stdout.
pub fn run(args: &GreeksArgs) -> anyhow::Result<i32> {
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    let bad = match &args.input {
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open input {}", path.display()))?;
            convert(std::io::BufReader::new(file), stdout.lock(), stderr.lock())?
        }
        None => convert(std::io::stdin().lock(), stdout.lock(), stderr.lock())?,
    };
    Ok(if bad == 0 { 0 } else { 1 })
}

fn parse_row(fields: &[&str]) -> Result<OptionInputs, String> {
    if fields.len() != HEADER.len() {
        return Err(format!(
            "expected {} columns, found {}",
            HEADER.len(),
            fields.len()
        ));
    }
    let model = match fields[0].to_ascii_lowercase().as_str() {
        "bsm" => Model::Bsm,
        "black76" => Model::Black76,
        other => return Err(format!("model {other:?} is not bsm or black76")),
    };
    let kind = match fields[1].to_ascii_lowercase().as_str() {
        "call" => OptionType::Call,
        "put" => OptionType::Put,
        other => return Err(format!("type {other:?} is not call or put")),
    };
    let mut nums = [0.0f64; 6];
    for (j, n) in nums.iter_mut().enumerate() {
        let text = fields[2 + j];
        *n = text
            .parse::<f64>()
            .map_err(|_| format!("{} {text:?} is not a number", HEADER[2 + j]))?;
    }
    let inputs = OptionInputs {
        model,
        kind,
        underlying: nums[0],
        strike: nums[1],
        t_years: nums[2],
        vol: nums[3],
        rate: nums[4],
        div: nums[5],
    };
    inputs.validate().map_err(|e| e.to_string())?;
    Ok(inputs)
}

/// Converts CSV from `input` to `out`, reporting bad rows on `err`. Returns the number of
/// rejected rows.
fn convert(input: impl BufRead, mut out: impl Write, mut err: impl Write) -> anyhow::Result<usize> {
    let mut lines = input.lines();
    let header = match lines.next() {
        Some(h) => h.context("cannot read the header")?,
        None => bail!("empty input: expected the header {}", HEADER.join(",")),
    };
    let cols: Vec<&str> = header.trim().split(',').map(str::trim).collect();
    if cols != HEADER {
        bail!(
            "header is {:?}, expected {}",
            header.trim(),
            HEADER.join(",")
        );
    }
    writeln!(out, "{},price,delta,gamma,vega,theta", HEADER.join(","))?;
    let mut bad = 0;
    for (i, line) in lines.enumerate() {
        let row = i + 1;
        let line = line.with_context(|| format!("cannot read row {row}"))?;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let fields: Vec<&str> = text.split(',').map(str::trim).collect();
        match parse_row(&fields).and_then(|inp| inp.greeks().map_err(|e| e.to_string())) {
            Ok(g) => writeln!(
                out,
                "{},{},{},{},{},{}",
                fields.join(","),
                g.price,
                g.delta,
                g.gamma,
                g.vega,
                g.theta
            )?,
            Err(reason) => {
                bad += 1;
                writeln!(
                    err,
                    "hedgectl greeks: row {row} (line {}): {reason}",
                    row + 1
                )?;
            }
        }
    }
    out.flush()?;
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_rows_are_reported_and_skipped() {
        let input = "model,type,underlying,strike,t_years,vol,rate,div\n\
                     black76,call,100,100,1,0.2,0,0\n\
                     bsm,put,100,-5,1,0.2,0,0\n\
                     bsm,call,100,110,0.5,0.3,0.05,0.01\n";
        let mut out = Vec::new();
        let mut err = Vec::new();
        let bad = convert(input.as_bytes(), &mut out, &mut err).unwrap();
        assert_eq!(bad, 1);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.lines().count(), 3);
        assert!(out
            .lines()
            .nth(1)
            .unwrap()
            .starts_with("black76,call,100,100,1,0.2,0,0,7.96556745540"));
        let err = String::from_utf8(err).unwrap();
        assert!(err.contains("row 2"), "{err}");
        assert!(err.contains("strike"), "{err}");
    }

    #[test]
    fn wrong_header_is_an_error() {
        let mut out = Vec::new();
        let mut err = Vec::new();
        assert!(convert("a,b\n1,2\n".as_bytes(), &mut out, &mut err).is_err());
    }
}
