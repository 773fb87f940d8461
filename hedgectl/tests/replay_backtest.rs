//! `hedgectl replay` backtests: determinism, the real files, and position consistency.

mod common;

use common::{replay as run, temp_file as file};
use std::collections::BTreeMap;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data");

/// A `--json` report, checked for position consistency.
fn report(args: &[&str]) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&run(args)).unwrap();
    assert_consistent(&v);
    v
}

/// The `--json` report of a replay of the Tardis file `tardis` with the positions file `pos`,
/// and `args` (the policies, plots).
fn tardis_report(tardis: &str, pos: &tempfile::NamedTempFile, args: &[&str]) -> serde_json::Value {
    report(&tardis_args(tardis, pos, args))
}

/// The arguments of a `--json` replay of the Tardis file `tardis` with the positions file
/// `pos`, and `args`.
fn tardis_args<'a>(
    tardis: &'a str,
    pos: &'a tempfile::NamedTempFile,
    args: &[&'a str],
) -> Vec<&'a str> {
    let mut all = vec![
        "--tardis",
        tardis,
        "--positions",
        pos.path().to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    all.push("--json");
    all
}

/// Like `report`, and a second run of the same arguments gives the same bytes.
fn deterministic_report(args: &[&str]) -> serde_json::Value {
    let a = run(args);
    assert!(a == run(args));
    let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
    assert_consistent(&v);
    v
}

/// The last value of a report series.
fn last(series: &serde_json::Value) -> f64 {
    series.as_array().unwrap().last().unwrap().as_f64().unwrap()
}

/// final positions == initial positions + every simulated fill (hedge fills and client
/// option trades), per symbol, for every policy of the report.
fn assert_consistent(report: &serde_json::Value) {
    for p in report["policies"].as_array().unwrap() {
        let mut expect: BTreeMap<String, f64> = BTreeMap::new();
        for (s, q) in p["initial_positions"].as_object().unwrap() {
            *expect.entry(s.clone()).or_default() += q.as_f64().unwrap();
        }
        for f in p["fills"].as_array().unwrap() {
            *expect
                .entry(f["symbol"].as_str().unwrap().to_string())
                .or_default() += f["qty"].as_f64().unwrap();
        }
        let got = p["final_positions"].as_object().unwrap();
        for (s, q) in &expect {
            let g = got.get(s).and_then(|v| v.as_f64()).unwrap_or(0.0);
            assert!(
                (g - q).abs() < 1e-6,
                "{}: {s} final {g} expected {q}",
                p["policy"]
            );
        }
        for (s, g) in got {
            assert!(
                expect.contains_key(s) || g.as_f64().unwrap() == 0.0,
                "{s} appears from nowhere"
            );
        }
        // The hedge position the summary shows is the one the fills add up to.
        for (_, u) in p["underlyings"].as_object().unwrap() {
            let h = u["hedge_instrument"].as_str().unwrap();
            let fin = u["final_hedge_position"].as_f64().unwrap();
            assert!((fin - expect.get(h).copied().unwrap_or(0.0)).abs() < 1e-6);
        }
    }
}

/// One minute of the synthetic market (seed 11) with simulated client flow of mean size 1:
/// the market of the synthetic-replay tests, before their policies.
const SYNTHETIC_MINUTE: [&str; 7] = [
    "--synthetic-seed",
    "11",
    "--duration-s",
    "60",
    "--flow-sim",
    "--flow-size-mean",
    "1",
];

fn synthetic_args() -> Vec<&'static str> {
    let mut a = SYNTHETIC_MINUTE.to_vec();
    a.extend([
        "--policy",
        "fixed:band=1",
        "--policy",
        "cost-aware:risk_aversion=1e-4,max_band=5",
        "--json",
    ]);
    a
}

#[test]
fn synthetic_replay_is_byte_identical_and_consistent() {
    let a = run(&synthetic_args());
    let b = run(&synthetic_args());
    assert!(a == b, "two runs of the same inputs differ");
    let v: serde_json::Value = serde_json::from_slice(&a).unwrap();
    assert_eq!(v["policies"].as_array().unwrap().len(), 2);
    let p = &v["policies"][0];
    assert!(
        p["flow_trades"].as_u64().unwrap() > 10,
        "{}",
        p["flow_trades"]
    );
    let btc = &p["underlyings"]["BTC"];
    assert!(btc["summary"]["hedge_trades"].as_u64().unwrap() > 0);
    assert!(btc["fees"].as_f64().unwrap() > 0.0);
    assert_eq!(btc["hedge_book"], "recorded");
    assert_consistent(&v);
    // A different flow seed gives a different report (the seed is used).
    let mut args = synthetic_args();
    args.extend(["--flow-seed", "8"]);
    assert!(run(&args) != a);
}

#[test]
fn report_file_plot_and_summary_agree() {
    let dir = tempfile::tempdir().unwrap();
    let rep = dir.path().join("r.json");
    let svg = dir.path().join("p.svg");
    let mut args: Vec<&str> = synthetic_args();
    args.retain(|a| *a != "--json");
    args.extend([
        "--report",
        rep.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    let out = String::from_utf8(run(&args)).unwrap();
    assert!(
        out.contains("fixed:band=1") && out.contains("hedge cost"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&rep).unwrap()).unwrap();
    assert_consistent(&v);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
    assert!(s.contains("net delta") && s.contains("hedge position") && s.contains("cost"));
}

#[test]
fn deribit_chain_replay_hedges_on_a_modelled_book_deterministically() {
    let chain = format!("{DATA}/deribit/options_chain_2020-05-14.csv");
    let pos = file(
        "symbol,qty\nBTC-22MAY20-9250-P,-10\nBTC-22MAY20-12000-C,25\nBTC-26JUN20-10000-C,-5\nBTC-25SEP20-8000-P,3.5\n",
    );
    let policies = [
        "--policy",
        "fixed:band=0.5",
        "--policy",
        "cost-aware:risk_aversion=1e-4",
    ];
    let v = deterministic_report(&tardis_args(&chain, &pos, &policies));
    let p = &v["policies"][0];
    assert_eq!(p["source_rejects"], 0);
    let btc = &p["underlyings"]["BTC"];
    assert_eq!(btc["hedge_book"], "modelled");
    assert_eq!(btc["hedge_instrument"], "BTC-PERPETUAL");
    // The book is about 3.9 BTC long (options only, the live hedger's premium-adjusted coin
    // delta); the first rows hedge the part marked so far, so the largest unhedged delta is
    // the 2 BTC the first partial view held, and the fixed band brings it inside 0.5 BTC.
    let before = btc["summary"]["max_abs_net_delta"].as_f64().unwrap();
    assert!(before > 1.5 && before < 5.0, "{before}");
    let opt = btc["final_option_delta"].as_f64().unwrap();
    assert!(opt > 3.0 && opt < 5.0, "{opt}");
    let last = last(&btc["series"]["net_delta_after_hedging"]);
    assert!(last.abs() <= 0.5, "{last}");
}

#[test]
fn lobster_replay_hedges_model_marked_equity_options() {
    let m = format!("{DATA}/lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv");
    let o = format!("{DATA}/lobster/AMZN_2012-06-21_34200000_57600000_orderbook_1.csv");
    let pos = file("symbol,qty\nAMZN-20JUL12-220-C,-50\nAMZN-20JUL12-210-P,20\n");
    let flow = file(
        "timestamp_ns,symbol,qty,price\n1340298000000000000,AMZN-20JUL12-220-C,-10,\n1340305200000000000,AMZN-20JUL12-210-P,5,3.10\n",
    );
    let args = [
        "--lobster-messages",
        m.as_str(),
        "--lobster-orderbook",
        o.as_str(),
        "--positions",
        pos.path().to_str().unwrap(),
        "--flow",
        flow.path().to_str().unwrap(),
        "--option-vol",
        "0.35",
        "--policy",
        "fixed:band=100",
        "--sample-ms",
        "60000",
        "--json",
    ];
    let v = deterministic_report(&args);
    let p = &v["policies"][0];
    assert_eq!(p["flow_trades"], 2);
    let amzn = &p["underlyings"]["AMZN"];
    assert_eq!(amzn["hedge_book"], "recorded");
    assert!(amzn["summary"]["hedge_trades"].as_u64().unwrap() > 0);
    assert!(p["events"].as_u64().unwrap() > 50_000);
}

#[test]
fn tardis_book_and_quote_samples_hedge_a_perpetual_position() {
    // Binance BTCUSDT book_snapshot_5 (linear, 1 BTC per contract): long 3 BTC, band 0.5.
    let snap = format!("{DATA}/tardis/binance-futures_book_snapshot_5_BTCUSDT.csv");
    let pos = file("symbol,qty\nBTCUSDT,3\n");
    let v = tardis_report(&snap, &pos, &["--policy", "fixed:band=0.5"]);
    let p = &v["policies"][0];
    assert_eq!(p["source_rejects"], 0);
    let fills = p["fills"].as_array().unwrap();
    assert_eq!(fills.len(), 1, "{fills:?}");
    // Sold 3 at the recorded best bid, 5 bps taker fee in USDT.
    assert_eq!(fills[0]["qty"], -3.0);
    assert_eq!(fills[0]["price"], 11657.07);
    assert!((fills[0]["fee"].as_f64().unwrap() - 3.0 * 11657.07 * 5e-4).abs() < 1e-6);
    assert_eq!(p["final_positions"]["BTCUSDT"], 0.0);

    // Huobi BTC-USD quotes (an inverse swap, 10 rows, about 5,500 contracts on the ask):
    // short 50,000 contracts (5.8 BTC). The IOC orders take only what the recorded book
    // shows, once per book update, so 10 updates cannot cover the whole short: the report
    // says so instead of counting unfilled remainders as hedged.
    let quotes = format!("{DATA}/tardis/huobi-dm-swap_quotes_BTC-USD.csv");
    let pos = file("symbol,qty\nBTC-USD,-50000\n");
    let v = tardis_report(&quotes, &pos, &["--policy", "fixed:band=0.5"]);
    let p = &v["policies"][0];
    let u = &p["underlyings"]["BTC-USD"];
    let fills = p["fills"].as_array().unwrap();
    let bought: f64 = fills.iter().map(|f| f["qty"].as_f64().unwrap()).sum();
    assert!(bought > 20_000.0 && bought < 50_000.0, "{bought}");
    for f in fills {
        assert_eq!(f["side"], "buy");
        assert!(
            f["qty"].as_f64().unwrap() <= 5673.0,
            "more than the book showed: {f}"
        );
    }
    // Net delta = options (none) + the filled hedge only, in BTC at the mid: in flight is 0
    // once the venue has answered.
    let net = u["summary"]["final_net_delta"].as_f64().unwrap();
    // Huobi BTC-USD: 1 USD per contract here (the registry's contract size).
    let expect = (-50_000.0 + bought) / 8629.25;
    assert!((net - expect).abs() < 1e-6, "{net} vs {expect}");
    assert_eq!(u["final_hedge_inflight"], 0.0);
}

#[test]
fn an_option_expiring_during_the_replay_is_settled_and_its_hedge_unwound() {
    // Deribit rows (from options_chain_2020-05-14.csv) moved around the 14MAY20 08:00 UTC
    // expiry: long 10 calls 8875, about 475 in the money, marked 100 s before the expiry;
    // the replay goes on 10 minutes after it on another expiry's marks.
    let expiry = 1_589_443_200_000_000u64; // us
    let row = |ts: u64, rest: &str| {
        format!(
            "deribit,{},{ts},{ts},{}",
            rest.split_once(',').unwrap().0,
            rest.split_once(',').unwrap().1
        )
    };
    let call = "BTC-14MAY20-8875-C,call,8875.0,1589443200000000,24.7,0.041,0.0375,3.3,0.0,0.057,3.0,369.73,0.05088735,116.07,SYN.BTC-14MAY20,9350.14,0.9973,5e-05,0.0126,-0.73116,0.02324";
    let put = "BTC-22MAY20-9250-P,put,9250.0,1590134400000000,139.3,0.0485,0.042,15.5,80.07,0.045,0.5,85.17,0.04010621,76.87,SYN.BTC-22MAY20,9352.58,-0.43897,0.00037,5.49167,-26.07217,-0.99385";
    let mut csv = String::from("exchange,symbol,timestamp,local_timestamp,type,strike_price,expiration,open_interest,last_price,bid_price,bid_amount,bid_iv,ask_price,ask_amount,ask_iv,mark_price,mark_iv,underlying_index,underlying_price,delta,gamma,vega,theta,rho\n");
    csv += &row(expiry - 100_000_000, call);
    csv.push('\n');
    for k in 0..20u64 {
        csv += &row(expiry - 90_000_000 + k * 30_000_000, put);
        csv.push('\n');
    }
    let chain = file(&csv);
    let pos = file("symbol,qty\nBTC-14MAY20-8875-C,10\n");
    let v = tardis_report(
        chain.path().to_str().unwrap(),
        &pos,
        &["--policy", "fixed:band=0.5"],
    );
    let p = &v["policies"][0];
    assert_eq!(p["source_rejects"], 0);
    let fills = p["fills"].as_array().unwrap();
    let settle: Vec<_> = fills.iter().filter(|f| f["kind"] == "settlement").collect();
    assert_eq!(settle.len(), 1, "{fills:?}");
    assert_eq!(settle[0]["symbol"], "BTC-14MAY20-8875-C");
    assert_eq!(settle[0]["qty"], -10.0);
    // Per contract in coin: (F - K) / F at the forward the book had, about 0.05 BTC.
    let px = settle[0]["price"].as_f64().unwrap();
    assert!((px - 475.14 / 9350.14).abs() < 0.005, "{px}");
    assert!(settle[0]["ts_ns"].as_u64().unwrap() >= expiry * 1000);
    assert_eq!(p["final_positions"]["BTC-14MAY20-8875-C"], 0.0);
    // The calls' delta was hedged before the expiry and the hedge unwound after it: the
    // options' delta ends at 0 and so does the hedge (within the band).
    let btc = &p["underlyings"]["BTC"];
    let series = &btc["series"];
    let last = |k: &str| last(&series[k]);
    assert_eq!(last("net_delta_before_hedging"), 0.0);
    assert!(
        last("net_delta_after_hedging").abs() <= 0.5,
        "{}",
        last("net_delta_after_hedging")
    );
    let hedge_fills: Vec<_> = fills.iter().filter(|f| f["kind"] == "hedge").collect();
    assert!(
        hedge_fills
            .iter()
            .any(|f| f["qty"].as_f64().unwrap() < 0.0
                && f["ts_ns"].as_u64().unwrap() < expiry * 1000)
            && hedge_fills.iter().any(|f| f["qty"].as_f64().unwrap() > 0.0
                && f["ts_ns"].as_u64().unwrap() >= expiry * 1000),
        "hedged before the expiry, unwound after it: {hedge_fills:?}"
    );
}

/// The 2026 Deribit path to the 27MAR26 expiry, a short BTC and ETH straddle, a fixed 1-unit
/// band: the book ends hedged within the band plus one lot, and the net delta is recomputed
/// here independently: option deltas with Black-76 (premium-adjusted, in coin, as the live
/// hedger) from the last snapshot's rows, hedge positions from the report's fills.
#[test]
fn deribit_2026_short_straddles_end_within_the_band_recomputed_from_the_fills() {
    use engine::pricing::{black76_greeks, inverse_greeks, OptionType};
    let chain = format!("{DATA}/deribit-2026/options_chain_BTC_ETH_27MAR26.csv");
    let book = [
        ("BTC-27MAR26-70000-C", -10.0),
        ("BTC-27MAR26-70000-P", -10.0),
        ("ETH-27MAR26-2000-C", -100.0),
        ("ETH-27MAR26-2000-P", -100.0),
    ];
    let pos = file(
        &book.iter().fold("symbol,qty\n".to_string(), |s, (sym, q)| {
            s + &format!("{sym},{q}\n")
        }),
    );
    let v = tardis_report(&chain, &pos, &["--policy", "fixed:band=1"]);
    let p = &v["policies"][0];
    // The last snapshot's rows of the book's options: (mark_iv, underlying_price, T).
    let text = std::fs::read_to_string(&chain).unwrap();
    let last_ts = text
        .lines()
        .last()
        .unwrap()
        .split(',')
        .nth(2)
        .unwrap()
        .to_string();
    let mut marks = BTreeMap::new();
    for l in text
        .lines()
        .filter(|l| l.split(',').nth(2) == Some(last_ts.as_str()))
    {
        let c: Vec<&str> = l.split(',').collect();
        let t = (c[6].parse::<f64>().unwrap() - c[2].parse::<f64>().unwrap()) * 1e-6
            / (365.0 * 86_400.0);
        marks.insert(
            c[1].to_string(),
            (
                c[16].parse::<f64>().unwrap() / 100.0,
                c[18].parse::<f64>().unwrap(),
                t,
            ),
        );
    }
    for (under, perp, face) in [
        ("BTC", "BTC-PERPETUAL", 10.0),
        ("ETH", "ETH-PERPETUAL", 1.0),
    ] {
        let mut option_delta = 0.0;
        let mut fwd = 0.0;
        for (sym, q) in book.iter().filter(|(s, _)| s.starts_with(under)) {
            let (iv, f, t) = marks[*sym];
            let kind = if sym.ends_with("-C") {
                OptionType::Call
            } else {
                OptionType::Put
            };
            let strike: f64 = sym.split('-').nth(2).unwrap().parse().unwrap();
            let g = black76_greeks(kind, f, strike, t, iv, 0.0).unwrap();
            option_delta += q * inverse_greeks(&g, f).delta_premium_adjusted;
            fwd = f;
        }
        let hedge: f64 = p["fills"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["symbol"] == perp)
            .map(|f| f["qty"].as_f64().unwrap())
            .sum();
        // Every hedge fill says why its order was sent.
        for f in p["fills"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["symbol"] == perp)
        {
            assert!(f["reason"] == "band" || f["reason"] == "safety", "{f}");
        }
        let u = &p["underlyings"][under];
        assert_eq!(u["final_hedge_position"].as_f64().unwrap(), hedge);
        let (dpc, lot) = (face / fwd, face / fwd);
        let net = option_delta + hedge * dpc;
        let reported = u["summary"]["final_net_delta"].as_f64().unwrap();
        assert!(
            (net - reported).abs() < 0.02,
            "{under}: recomputed net delta {net}, reported {reported}"
        );
        assert!(
            net.abs() <= 1.0 + lot,
            "{under}: net delta {net} outside the band"
        );
        assert_eq!(u["final_hedge_inflight"], 0.0);
        assert!(u["summary"]["hedge_trades"].as_u64().unwrap() > 0);
    }
    // At most 5% of the rows rejected (partial rows keep their valid parts).
    let rows = v["source"]["rows"].as_f64().unwrap();
    let rejected: f64 = v["source"]["rejected"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_f64().unwrap())
        .sum();
    assert!(
        rejected <= 0.05 * rows,
        "{rejected} of {rows} rows rejected"
    );
}

/// A sweep runs every configuration of its grid over the same data, adds the `none`
/// baseline, and the frontier flags exactly the dominated ones.
#[test]
fn a_sweep_puts_every_configuration_on_the_cost_risk_frontier() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("f.svg");
    let png = dir.path().join("a.png");
    let v: serde_json::Value = serde_json::from_slice(&run(&[
        "--synthetic-seed",
        "5",
        "--duration-s",
        "30",
        "--flow-sim",
        "--sweep",
        "fixed:band=0.25,1,target=zero,edge",
        "--frontier-plot",
        svg.to_str().unwrap(),
        "--attribution-plot",
        png.to_str().unwrap(),
        "--json",
    ]))
    .unwrap();
    // The PNG is the attribution SVG rasterized: it decodes, and it is not blank.
    let img = resvg::tiny_skia::Pixmap::load_png(&png).unwrap();
    let inked = img
        .pixels()
        .iter()
        .filter(|p| (p.red(), p.green(), p.blue()) != (255, 255, 255))
        .count();
    assert!(
        img.width() >= 400 && inked * 100 > img.pixels().len(),
        "{inked}"
    );
    let f = v["frontier"].as_array().unwrap();
    let specs: Vec<&str> = f.iter().map(|p| p["spec"].as_str().unwrap()).collect();
    assert_eq!(
        specs,
        [
            "none",
            "fixed:band=0.25,target=zero",
            "fixed:band=0.25,target=edge",
            "fixed:band=1,target=zero",
            "fixed:band=1,target=edge"
        ]
    );
    assert_eq!(f[0]["family"], "none");
    assert_eq!(f[0]["hedging_cost"], 0.0);
    let pt = |p: &serde_json::Value| {
        (
            p["hedging_cost"].as_f64().unwrap(),
            p["tracking_error"].as_f64().unwrap(),
        )
    };
    for p in f {
        let (c, t) = pt(p);
        let dominated = f.iter().any(|o| {
            let (oc, ot) = pt(o);
            oc <= c && ot <= t && (oc < c || ot < t)
        });
        assert_eq!(p["dominated"].as_bool().unwrap(), dominated, "{p}");
    }
    // Hedging reduces the tracking error of the unhedged book.
    assert!(f.iter().skip(1).all(|p| pt(p).1 < pt(&f[0]).1));
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.starts_with("<svg") && s.matches("<circle").count() >= f.len());
}

/// The PnL attribution's parts add up to the total PnL, for every policy and underlying, and
/// the costs parts are exactly the fees and slippage the fills paid.
#[test]
fn pnl_attribution_parts_sum_to_the_total() {
    let chain = format!("{DATA}/deribit/options_chain_2020-05-14.csv");
    let pos = file("symbol,qty\nBTC-22MAY20-9250-P,-10\nBTC-26JUN20-10000-C,-5\n");
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("a.svg");
    let v = tardis_report(
        &chain,
        &pos,
        &[
            "--policy",
            "fixed:band=0.2",
            "--policy",
            "none",
            "--attribution-plot",
            svg.to_str().unwrap(),
        ],
    );
    for p in v["policies"].as_array().unwrap() {
        for u in p["underlyings"].as_object().unwrap().values() {
            let a = &u["attribution"];
            let f = |k: &str| a[k].as_f64().unwrap();
            let parts = [
                "delta",
                "gamma",
                "vega",
                "theta",
                "coin_frame",
                "basis",
                "residual",
                "fees",
                "half_spread",
                "slippage",
                "funding",
            ];
            let sum: f64 = parts.iter().map(|k| f(k)).sum();
            assert!(
                (sum - f("total")).abs() < 1e-6 * f("total").abs().max(1.0),
                "{a}"
            );
            assert!((f("total") - u["summary"]["pnl_total"].as_f64().unwrap()).abs() < 1e-9);
            let paid = f("fees") + f("half_spread") + f("slippage");
            let cost = u["summary"]["total_hedge_cost"].as_f64().unwrap();
            assert!((paid + cost).abs() < 1e-6, "{paid} vs {cost}");
        }
    }
    let hedged = &v["policies"][0]["underlyings"]["BTC"]["attribution"];
    assert!(hedged["half_spread"].as_f64().unwrap() < 0.0, "{hedged}");
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(s.starts_with("<svg") && s.contains("residual"));
}

/// A constructed path where the exact split is known: long 10 calls, one snapshot, then the
/// forward jumps 6% one microsecond later at the same implied vol, nothing hedged. The
/// options' whole PnL is the repriced change; vega is exactly 0, theta is that of one
/// microsecond, gamma is every order of the jump above the first (Black-76, computed here), and
/// the residual is rounding. (The Taylor attribution, 1/2 gamma x move^2, left the higher
/// orders and the premium-adjusted delta's part in the residual.)
#[test]
fn a_pure_forward_jump_has_no_vega_theta_or_residual() {
    use engine::pricing::{black76_greeks, black76_price, OptionType};
    let (expiry_us, t0_us) = (1_590_134_400_000_000u64, 1_589_443_200_000_000u64);
    let (k, vol, f0, f1) = (9_000.0, 0.8, 9_350.0, 9_911.0);
    let row = |ts: u64, fwd: f64| {
        format!(
            "deribit,BTC-22MAY20-9000-C,{ts},{ts},call,9000.0,{expiry_us},10,0.08,0.07,1,79,0.09,1,81,0.08,80.0,SYN.BTC-22MAY20,{fwd},0.6,0.0004,5.0,-40.0,0.5\n"
        )
    };
    let mut csv = String::from("exchange,symbol,timestamp,local_timestamp,type,strike_price,expiration,open_interest,last_price,bid_price,bid_amount,bid_iv,ask_price,ask_amount,ask_iv,mark_price,mark_iv,underlying_index,underlying_price,delta,gamma,vega,theta,rho\n");
    csv += &row(t0_us, f0);
    csv += &row(t0_us + 1, f1);
    let chain = file(&csv);
    let pos = file("symbol,qty\nBTC-22MAY20-9000-C,10\n");
    let v = tardis_report(chain.path().to_str().unwrap(), &pos, &["--policy", "none"]);
    let a = &v["policies"][0]["underlyings"]["BTC"]["attribution"];
    let f = |key: &str| a[key].as_f64().unwrap();
    let t = |us: u64| (expiry_us - us) as f64 * 1e3 / (365.0 * 86_400.0 * 1e9);
    let value = |fwd: f64, us: u64| {
        10.0 * black76_price(OptionType::Call, fwd, k, t(us), vol, 0.0).unwrap()
    };
    let total = value(f1, t0_us + 1) - value(f0, t0_us);
    assert!((f("total") - total).abs() < 1e-6, "{a} vs {total}");
    let g0 = black76_greeks(OptionType::Call, f0, k, t(t0_us), vol, 0.0).unwrap();
    let first = 10.0 * g0.delta * (f1 - f0);
    let gamma = value(f1, t0_us) - value(f0, t0_us) - first;
    assert!((f("gamma") - gamma).abs() < 1e-6, "{a} vs gamma {gamma}");
    assert_eq!(f("vega"), 0.0, "{a}");
    assert!(f("theta").abs() < 1e-6, "{a}");
    // delta + premium + basis is the first-order term on the option's own forward; premium is
    // the coin premium's move, V / F x the move.
    let premium = value(f0, t0_us) / f0 * (f1 - f0);
    assert!(
        (f("coin_frame") - premium).abs() < 1e-6,
        "{a} vs premium {premium}"
    );
    assert!(
        (f("delta") + f("coin_frame") + f("basis") - first).abs() < 1e-6,
        "{a} vs first {first}"
    );
    assert!(f("residual").abs() < 1e-6, "{a}");
}

/// Funding from a `derivative_ticker` file is charged on the hedge position: long 10,000
/// BTC-PERPETUAL contracts (10 USD face each: 100,000 USD) for 8 hours at 0.01% per 8 h pays
/// 10 USD, and the attribution's funding part says so.
#[test]
fn ticker_funding_is_charged_on_the_hedge_position() {
    let t0: u64 = 1_770_000_000_000_000; // us
    let h4: u64 = 4 * 3_600_000_000;
    let mut csv = String::from("exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,predicted_funding_rate,open_interest,last_price,index_price,mark_price\n");
    for k in 0..3 {
        let t = t0 + k * h4;
        csv += &format!("deribit,BTC-PERPETUAL,{t},{t},,0.0001,,1000,50000,50000,50000\n");
    }
    let ticker = file(&csv);
    let pos = file("symbol,qty\nBTC-PERPETUAL,10000\n");
    let v = tardis_report(ticker.path().to_str().unwrap(), &pos, &["--policy", "none"]);
    let u = &v["policies"][0]["underlyings"]["BTC-PERPETUAL"];
    let funding = u["funding"].as_f64().unwrap();
    assert!((funding + 10.0).abs() < 1e-6, "{funding}");
    assert!((u["attribution"]["funding"].as_f64().unwrap() - funding).abs() < 1e-9);
}

/// `--from`/`--to` replay a window of the 2026 path (the week of 2026-02-04, BTC -6% in one
/// snapshot): every fill is inside the window, the snapshots before it are read and skipped
/// (counted), and the window's used events are fewer than the whole path's. A window that ends
/// before it starts is an error.
#[test]
fn a_time_window_replays_only_its_snapshots() {
    let chain = format!("{DATA}/deribit-2026/options_chain_BTC_ETH_27MAR26.csv");
    let pos = file("symbol,qty\nBTC-27MAR26-80000-C,-20\nBTC-27MAR26-80000-P,-20\n");
    let base = tardis_args(&chain, &pos, &["--policy", "fixed:band=0.5"]);
    let mut args = base.clone();
    args.extend(["--from", "2026-02-04T00:00Z", "--to", "2026-02-09T00:00Z"]);
    let v = report(&args);
    let (from_ns, to_ns) = (1_770_163_200_000_000_000u64, 1_770_595_200_000_000_000u64);
    let before = v["source"]["before_window"].as_u64().unwrap();
    let used = v["source"]["used"].as_u64().unwrap();
    assert!(before > 0, "{}", v["source"]);
    let fills = v["policies"][0]["fills"].as_array().unwrap();
    assert!(!fills.is_empty());
    for f in fills {
        let t = f["ts_ns"].as_u64().unwrap();
        assert!(
            (from_ns..to_ns).contains(&t),
            "fill at {t} outside the window"
        );
    }
    let whole = report(&base);
    assert!(whole["source"].get("before_window").is_none());
    assert!(used + before < whole["source"]["used"].as_u64().unwrap());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .arg("replay")
        .args(&base)
        .args(["--from", "2026-02-09T00:00Z", "--to", "2026-02-04T00:00Z"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--from must be before --to"));
}

/// Passive then cross on the synthetic market (which prints trades, so queues move): the
/// hedger ends within its band, every hedge fill says why its order was sent, and the
/// report's execution figures add up with the fills.
#[test]
fn passive_then_cross_ends_within_the_band_and_its_fills_carry_the_reasons() {
    let mut args = SYNTHETIC_MINUTE.to_vec();
    args.extend([
        "--policy",
        "fixed:band=1,style=passive,passive_timeout_ms=500,cross_band=3",
        "--json",
    ]);
    let v = deterministic_report(&args);
    let p = &v["policies"][0];
    let u = &p["underlyings"]["BTC"];
    let final_net = u["summary"]["final_net_delta"].as_f64().unwrap()
        + u["final_hedge_inflight"].as_f64().unwrap();
    // One lot of the inverse perpetual (10 USD) is far below 0.01 BTC.
    assert!(final_net.abs() <= 1.01, "final net delta {final_net}");
    let hedge_fills: Vec<_> = p["fills"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "hedge")
        .collect();
    let count = |r: &str| hedge_fills.iter().filter(|f| f["reason"] == r).count();
    assert!(count("passive") > 0, "passive orders filled");
    assert!(
        count("cross_band") + count("cross_timeout") > 0,
        "and crosses filled"
    );
    for f in &hedge_fills {
        let r = f["reason"].as_str().unwrap();
        assert!(
            ["passive", "cross_band", "cross_timeout", "safety"].contains(&r),
            "{f}"
        );
    }
    let e = &u["execution"];
    let by_reason: u64 = e["orders_by_reason"]
        .as_object()
        .unwrap()
        .values()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(by_reason, u["summary"]["hedge_trades"].as_u64().unwrap());
    let passive_filled: f64 = hedge_fills
        .iter()
        .filter(|f| f["reason"] == "passive")
        .map(|f| f["qty"].as_f64().unwrap().abs())
        .sum();
    assert_eq!(e["passive_filled_qty"].as_f64().unwrap(), passive_filled);
    let rate = e["passive_fill_rate"].as_f64().unwrap();
    assert!(rate > 0.0 && rate <= 1.0, "{rate}");
    assert!(e["passive_resting_s"].as_f64().unwrap() > 0.0);
    assert!(
        e["carried_abs_delta_max"].as_f64().unwrap()
            >= e["carried_abs_delta_mean"].as_f64().unwrap()
    );
    // The cancels by reason: each passive order is cancelled for one reason at most (a
    // re-sent cancel is not counted again), and the reasons are the hedger's.
    let cancels = e["passive_cancels_by_reason"].as_object().unwrap();
    for r in cancels.keys() {
        assert!(
            [
                "replace",
                "resize",
                "cross_timeout",
                "cross_band",
                "withdraw"
            ]
            .contains(&r.as_str()),
            "{r}"
        );
    }
    let n: u64 = cancels.values().map(|n| n.as_u64().unwrap()).sum();
    assert!(n > 0 && n <= e["passive_orders"].as_u64().unwrap(), "{e}");
    assert_eq!(v["frontier"][0]["style"], "passive");
}
