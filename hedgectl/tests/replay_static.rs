//! `hedgectl replay --options-chain FILE --positions FILE`: the static book's risk on the real
//! Deribit chain, against the exchange's own greeks and against a hand computation.

mod common;

use std::io::Write as _;
use std::process::Command;

const CHAIN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/deribit/options_chain_2020-05-14.csv"
);

/// (symbol, qty): calls and puts, four expiries, long and short. The 14MAY20 expiry (2.3 h
/// left, rows with zeroed greeks) is left out on purpose: PROVENANCE.md calls it degenerate.
const BOOK: &[(&str, f64)] = &[
    ("BTC-22MAY20-9250-P", -10.0),
    ("BTC-22MAY20-12000-C", 25.0),
    ("BTC-26JUN20-10000-C", -5.0),
    ("BTC-25SEP20-8000-P", 3.5),
    ("BTC-25DEC20-12000-C", -7.0),
    ("BTC-29MAY20-9000-P", 12.0),
];

fn positions_file() -> tempfile::NamedTempFile {
    let mut text = String::from("symbol,qty\n");
    for (s, q) in BOOK {
        text += &format!("{s},{q}\n");
    }
    common::temp_file(&text)
}

fn run(args: &[&str]) -> String {
    String::from_utf8(common::replay(args)).unwrap()
}

/// The `--json` risk report of `chain` with the positions in `pos`.
fn chain_report(chain: &str, pos: &tempfile::NamedTempFile) -> serde_json::Value {
    serde_json::from_str(&run(&[
        "--options-chain",
        chain,
        "--positions",
        pos.path().to_str().unwrap(),
        "--json",
    ]))
    .unwrap()
}

/// Normal CDF by Abramowitz and Stegun 7.1.26 (|error| < 1.5e-7): independent of the engine.
fn norm_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    if x >= 0.0 {
        0.5 * (1.0 + erf)
    } else {
        0.5 * (1.0 - erf)
    }
}

/// Latest row (greatest local_timestamp, later row on ties) per symbol, by hand.
fn hand_delta() -> f64 {
    let text = std::fs::read_to_string(CHAIN).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| head.iter().position(|h| *h == n).unwrap();
    let (sym, ts, lts, ty, k, exp, iv, f) = (
        col("symbol"),
        col("timestamp"),
        col("local_timestamp"),
        col("type"),
        col("strike_price"),
        col("expiration"),
        col("mark_iv"),
        col("underlying_price"),
    );
    let mut total = 0.0;
    for (s, q) in BOOK {
        let mut best: Option<(u64, Vec<String>)> = None;
        for l in text.lines().skip(1) {
            let r: Vec<&str> = l.split(',').collect();
            if r[sym] != *s {
                continue;
            }
            let t: u64 = r[lts].parse().unwrap();
            if best.as_ref().is_none_or(|(b, _)| t >= *b) {
                best = Some((t, r.iter().map(|x| x.to_string()).collect()));
            }
        }
        let r = best.unwrap().1;
        let p = |i: usize| r[i].parse::<f64>().unwrap();
        let t_years = (p(exp) - p(ts)) / 1e6 / (365.0 * 86_400.0);
        let sigma = p(iv) / 100.0;
        let d1 = ((p(f) / p(k)).ln() + 0.5 * sigma * sigma * t_years) / (sigma * t_years.sqrt());
        let delta = if r[ty] == "call" {
            norm_cdf(d1)
        } else {
            norm_cdf(d1) - 1.0
        };
        total += q * delta; // BTC options: 1 BTC per contract.
    }
    total
}

#[test]
fn static_book_delta_matches_exchange_and_hand_computation() {
    let pos = positions_file();
    let v = chain_report(CHAIN, &pos);
    let btc = &v["underlyings"]["BTC"];
    let net = btc["net_delta"].as_f64().unwrap();
    let exch = btc["exchange_net_delta"].as_f64().unwrap();
    assert!(btc["gamma"].as_f64().unwrap().is_finite());
    assert!(btc["vega"].as_f64().unwrap().is_finite());
    assert_eq!(btc["positions"].as_u64().unwrap(), BOOK.len() as u64);
    // PROVENANCE.md: Deribit's delta is Black-76's to 3e-4 at most per contract (5 decimals
    // of rounding included), so the book's difference is at most 3e-4 x sum |qty|.
    let gross: f64 = BOOK.iter().map(|(_, q)| q.abs()).sum();
    assert!(
        (net - exch).abs() <= 3e-4 * gross,
        "net {net} exchange {exch} tolerance {}",
        3e-4 * gross
    );
    // Hand computation: A&S normal CDF (1.5e-7) per contract.
    let hand = hand_delta();
    assert!((net - hand).abs() <= 2e-7 * gross, "net {net} hand {hand}");
}

#[test]
fn static_book_table_without_json_lists_every_position() {
    let pos = positions_file();
    let out = run(&[
        "--options-chain",
        CHAIN,
        "--positions",
        pos.path().to_str().unwrap(),
    ]);
    for (s, _) in BOOK {
        assert!(out.contains(s), "{out}");
    }
    assert!(
        out.contains("net_delta") && out.contains("exch_delta"),
        "{out}"
    );
}

#[test]
fn unknown_position_symbol_is_one_clear_error() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    writeln!(f, "symbol,qty\nBTC-22MAY20-1-C,1").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args(["replay", "--options-chain", CHAIN, "--positions"])
        .arg(f.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BTC-22MAY20-1-C"), "{err}");
}

#[test]
fn chain_without_exchange_greeks_gives_model_risk_only() {
    // The same chain cut after `underlying_price` (no delta/gamma/vega/theta/rho columns).
    let text = std::fs::read_to_string(CHAIN).unwrap();
    let mut cut = tempfile::NamedTempFile::new().unwrap();
    for l in text.lines() {
        let cols: Vec<&str> = l.split(',').collect();
        writeln!(cut, "{}", cols[..19].join(",")).unwrap();
    }
    cut.flush().unwrap();
    let pos = positions_file();
    let full = chain_report(CHAIN, &pos);
    let v = chain_report(cut.path().to_str().unwrap(), &pos);
    let btc = &v["underlyings"]["BTC"];
    assert!(btc.get("exchange_net_delta").is_none(), "{btc}");
    assert_eq!(btc["net_delta"], full["underlyings"]["BTC"]["net_delta"]);
}
