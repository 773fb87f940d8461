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

/// The stderr of a static replay of `chain` with the positions file `pos` that must fail.
fn refused_replay(chain: &str, pos: &std::path::Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args(["replay", "--options-chain", chain, "--positions"])
        .arg(pos)
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

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
/// The Black-76 delta per contract of a Deribit options_chain row `r`, by hand with the normal
/// CDF `cdf`; `cols` are the row's timestamp, expiration (both us), mark_iv (%), underlying
/// price, strike and type columns.
fn row_delta<S: AsRef<str>>(r: &[S], cols: [usize; 6], cdf: fn(f64) -> f64) -> f64 {
    let [ts, exp, iv, f, k, ty] = cols;
    let p = |i: usize| r[i].as_ref().parse::<f64>().unwrap();
    let t_years = (p(exp) - p(ts)) / 1e6 / (365.0 * 86_400.0);
    let sigma = p(iv) / 100.0;
    let d1 = ((p(f) / p(k)).ln() + 0.5 * sigma * sigma * t_years) / (sigma * t_years.sqrt());
    if r[ty].as_ref() == "call" {
        cdf(d1)
    } else {
        cdf(d1) - 1.0
    }
}

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
        let delta = row_delta(&r, [ts, exp, iv, f, k, ty], norm_cdf);
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
    let err = refused_replay(CHAIN, f.path());
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

const FULL_2026: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/deribit-2026/options_chain_2026-02-02_full.csv"
);
const CHAIN_27MAR26: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/data/deribit-2026/options_chain_BTC_ETH_27MAR26.csv"
);

/// Standard normal CDF by Marsaglia's Taylor series ("Evaluating the Normal Distribution",
/// J. Stat. Software 11(4), 2004): about 1e-15 absolute, independent of the engine's erfc.
fn phi(x: f64) -> f64 {
    if x < -12.0 {
        return 0.0;
    }
    if x > 12.0 {
        return 1.0;
    }
    let (mut s, mut t, mut b, q, mut i) = (x, 0.0, x, x * x, 1.0);
    while s != t {
        t = s;
        i += 2.0;
        b *= q / i;
        s = t + b;
    }
    0.5 + s * (-0.5 * q - 0.918_938_533_204_672_7).exp()
}

/// Every 7th option of the full 2026-02-02 chain (BTC and ETH, all 12 expiries), with
/// quantities from -4 to +4 contracts: (symbol, qty, coin, Black-76 delta per contract).
fn full_chain_book() -> Vec<(String, f64, String, f64)> {
    let text = std::fs::read_to_string(FULL_2026).unwrap();
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| head.iter().position(|h| *h == n).unwrap();
    let (sym, ts, ty, k, exp, iv, f) = (
        col("symbol"),
        col("timestamp"),
        col("type"),
        col("strike_price"),
        col("expiration"),
        col("mark_iv"),
        col("underlying_price"),
    );
    let mut book = Vec::new();
    for (i, l) in lines.enumerate().filter(|(i, _)| i % 7 == 0) {
        let r: Vec<&str> = l.split(',').collect();
        let delta = row_delta(&r, [ts, exp, iv, f, k, ty], phi);
        let qty = [-4.0, -2.5, -1.0, 0.5, 1.5, 3.0, 4.0][(i / 7) % 7];
        let coin = r[sym].split('-').next().unwrap().to_string();
        book.push((r[sym].to_string(), qty, coin, delta));
    }
    book
}

fn book_file(book: &[(String, f64, String, f64)], extra: &[&str]) -> tempfile::NamedTempFile {
    let mut text = String::from("symbol,qty\n");
    for (s, q, _, _) in book {
        text += &format!("{s},{q}\n");
    }
    for s in extra {
        text += &format!("{s},1\n");
    }
    common::temp_file(&text)
}

#[test]
fn btc_eth_book_on_the_full_2026_chain_matches_black76_recomputed_by_hand() {
    let book = full_chain_book();
    assert!(book.len() >= 200, "{}", book.len());
    let pos = book_file(&book, &[]);
    let v = chain_report(FULL_2026, &pos);
    for coin in ["BTC", "ETH"] {
        let mine: Vec<_> = book.iter().filter(|b| b.2 == coin).collect();
        // Deribit BTC and ETH options: 1 coin per contract.
        let hand: f64 = mine.iter().map(|b| b.1 * b.3).sum();
        let u = &v["underlyings"][coin];
        let net = u["net_delta"].as_f64().unwrap();
        assert!(
            (net - hand).abs() <= 1e-6 * hand.abs(),
            "{coin}: net {net} hand {hand}"
        );
        assert_eq!(u["positions"].as_u64().unwrap(), mine.len() as u64);
        // The file has Deribit's delta and vega in every row but no gamma: coverage says so.
        assert_eq!(
            u["exchange_delta_positions"].as_u64().unwrap(),
            mine.len() as u64
        );
        assert_eq!(
            u["exchange_vega_positions"].as_u64().unwrap(),
            mine.len() as u64
        );
        assert_eq!(u["exchange_gamma_positions"].as_u64().unwrap(), 0);
        assert!(u.get("exchange_gamma").is_none(), "{u}");
        // PROVENANCE.md: Deribit's delta is Black-76's to 0.011 at most per contract here.
        let exch = u["exchange_net_delta"].as_f64().unwrap();
        let gross: f64 = mine.iter().map(|b| b.1.abs()).sum();
        assert!(
            (net - exch).abs() <= 0.011 * gross,
            "{coin}: {net} vs {exch}"
        );
    }
    assert_eq!(v["skipped"].as_array().unwrap().len(), 0);
}

#[test]
fn positions_that_cannot_be_valued_are_all_listed_in_one_error_or_skipped() {
    let book = full_chain_book();
    let missing = ["BTC-20FEB26-1-C", "ETH-99ZZZ26-1000-P", "BTC-27MAR26"];
    let pos = book_file(&book, &missing);
    let err = refused_replay(FULL_2026, pos.path());
    for m in missing {
        assert!(err.contains(m), "{err}");
    }
    assert!(
        err.contains("3 of") && err.contains("--skip-missing"),
        "{err}"
    );
    assert!(err.contains("not an option"), "{err}");
    let v: serde_json::Value = serde_json::from_str(&run(&[
        "--options-chain",
        FULL_2026,
        "--positions",
        pos.path().to_str().unwrap(),
        "--skip-missing",
        "--json",
    ]))
    .unwrap();
    let skipped: Vec<&str> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["symbol"].as_str().unwrap())
        .collect();
    assert_eq!(skipped, missing);
    let valued = v["underlyings"]["BTC"]["positions"].as_u64().unwrap()
        + v["underlyings"]["ETH"]["positions"].as_u64().unwrap();
    assert_eq!(valued, book.len() as u64);
}

#[test]
fn each_snapshot_reports_every_snapshot_and_at_picks_one() {
    let pos = common::temp_file(
        "symbol,qty\nBTC-27MAR26-80000-C,2\nETH-27MAR26-2500-P,-3\nBTC-27FEB26-80000-P,1\n",
    );
    let p = pos.path().to_str().unwrap();
    let each: serde_json::Value = serde_json::from_str(&run(&[
        "--options-chain",
        CHAIN_27MAR26,
        "--positions",
        p,
        "--each-snapshot",
        "--skip-missing",
        "--json",
    ]))
    .unwrap();
    let snaps = each["snapshots"].as_array().unwrap();
    assert_eq!(snaps.len(), 215, "PROVENANCE.md: 215 snapshot times");
    let times: Vec<u64> = snaps
        .iter()
        .map(|s| s["as_of_us"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]));
    // After 27FEB26 08:00 the 27FEB26 put is listed as expired, never valued.
    let last = &snaps[214];
    assert_eq!(last["skipped"][0]["symbol"], "BTC-27FEB26-80000-P");
    assert_eq!(last["skipped"][0]["reason"], "expired");
    let at = times[100].to_string();
    let one: serde_json::Value = serde_json::from_str(&run(&[
        "--options-chain",
        CHAIN_27MAR26,
        "--positions",
        p,
        "--at",
        &at,
        "--skip-missing",
        "--json",
    ]))
    .unwrap();
    assert_eq!(one, snaps[100]);
}
