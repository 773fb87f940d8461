//! Fuzz targets (proptest) for the feed handler's inputs: LOBSTER message/orderbook pairs and
//! the TOML config (issue 21). Each run is bounded (3,000 + 2,000 cases, a few seconds), never
//! panics, publishes only valid events, and accounts for every input row: published, rejected
//! under a reason, or the one row where the files went out of step. The tallies by reason are
//! printed (`cargo test -p feed-handler --test fuzz_inputs -- --nocapture`).

use std::collections::BTreeMap;
use std::path::Path;

use feed_handler::lobster::{LobsterOptions, LobsterSource};
use feed_handler::run::{Config, RunError};
use feed_handler::source::{RejectReason, Source, SourceEvent};
use feed_handler::synthetic::SyntheticSource;
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use shm_layout::MarketEventKind;
use testkit::config_fuzz;

/// LOBSTER cases per run.
const LOBSTER_CASES: u32 = 3_000;
/// Feed config cases per run.
const CONFIG_CASES: u32 = 2_000;

/// One consistent message/book pair: a book, then a message that agrees with it.
fn pair() -> impl Strategy<Value = (u8, u32, bool, u32, u32, u32, u32)> {
    (
        prop_oneof![
            Just(1u8),
            Just(2),
            Just(3),
            Just(4),
            Just(5),
            Just(7),
            Just(9)
        ],
        1u32..200,
        any::<bool>(),
        2_000_000u32..2_010_000,
        1u32..50,
        1u32..500,
        1u32..500,
    )
}

/// A mutation of the files: where and how a byte-level accident hits them.
#[derive(Debug, Clone)]
enum Damage {
    None,
    /// A bare CR inside message row `row` at byte `at`.
    Cr {
        row: usize,
        at: usize,
    },
    /// A line lost from the message (true) or orderbook (false) file.
    Lose {
        msg: bool,
        row: usize,
    },
    /// A byte replaced by `b` in the message (true) or orderbook file.
    Byte {
        msg: bool,
        at: usize,
        b: u8,
    },
    /// The orderbook file cut short by `n` bytes.
    Cut {
        n: usize,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        3 => Just(Damage::None),
        1 => (0usize..40, 0usize..40).prop_map(|(row, at)| Damage::Cr { row, at }),
        1 => (any::<bool>(), 0usize..40).prop_map(|(msg, row)| Damage::Lose { msg, row }),
        3 => (any::<bool>(), 0usize..4000, any::<u8>()).prop_map(|(msg, at, b)| Damage::Byte { msg, at, b }),
        1 => (1usize..200).prop_map(|n| Damage::Cut { n }),
    ]
}

fn lobster_files(
    rows: &[(u8, u32, bool, u32, u32, u32, u32)],
    header: bool,
) -> (Vec<String>, Vec<String>) {
    let mut msg = Vec::new();
    let mut book = Vec::new();
    if header {
        msg.push("Time,Type,OrderId,Size,Price,Direction".to_string());
        book.push("BestAsk,BestAskVolume,BestBid,BestBidVolume".to_string());
    }
    for (i, &(typ, size, buy, bid, spread, bid_q, ask_q)) in rows.iter().enumerate() {
        let ask = bid + spread * 100;
        let (px, shown) = if buy { (bid, bid_q) } else { (ask, ask_q) };
        let size = if typ == 1 { size.min(shown) } else { size };
        let dir = if buy { "1" } else { "-1" };
        msg.push(format!(
            "{}.{:05},{typ},{},{size},{px},{dir}",
            34_200 + i,
            i * 7,
            1000 + i
        ));
        book.push(format!("{ask},{ask_q},{bid},{bid_q}"));
    }
    (msg, book)
}

fn apply(d: &Damage, msg: &mut Vec<String>, book: &mut Vec<String>) -> (String, String) {
    match d {
        Damage::Cr { row, at } if !msg.is_empty() => {
            let n = msg.len();
            let r = &mut msg[row % n];
            r.insert(at % (r.len() + 1), '\r');
        }
        Damage::Lose { msg: m, row } => {
            let f = if *m { &mut *msg } else { &mut *book };
            if !f.is_empty() {
                f.remove(row % f.len());
            }
        }
        _ => {}
    }
    let mut m = msg.join("\n") + "\n";
    let mut b = book.join("\n") + "\n";
    match d {
        Damage::Byte {
            msg: true,
            at,
            b: byte,
        } => replace_byte(&mut m, *at, *byte),
        Damage::Byte {
            msg: false,
            at,
            b: byte,
        } => replace_byte(&mut b, *at, *byte),
        Damage::Cut { n } => b.truncate(b.len().saturating_sub(*n)),
        _ => {}
    }
    (m, b)
}

/// Replaces the byte at `at` (mod len) by `byte` as a char, keeping the text valid UTF-8.
fn replace_byte(s: &mut String, at: usize, byte: u8) {
    if s.is_empty() {
        return;
    }
    let mut bytes = std::mem::take(s).into_bytes();
    let at = at % bytes.len();
    bytes[at] = byte;
    *s = String::from_utf8_lossy(&bytes).into_owned();
}

#[derive(Default)]
struct Tally {
    by_reason: BTreeMap<&'static str, u64>,
    rows: u64,
    quotes: u64,
    pairing_stops: u64,
    open_refused: u64,
}

fn lobster_case(
    dir: &Path,
    rows: &[(u8, u32, bool, u32, u32, u32, u32)],
    header: bool,
    d: &Damage,
    t: &mut Tally,
) -> Result<(), TestCaseError> {
    let (mut msg, mut book) = lobster_files(rows, header);
    let (m, b) = apply(d, &mut msg, &mut book);
    let mp = dir.join("X_2012-06-21_34200000_57600000_message_1.csv");
    let bp = dir.join("X_2012-06-21_34200000_57600000_orderbook_1.csv");
    std::fs::write(&mp, m).unwrap();
    std::fs::write(&bp, b).unwrap();
    let mut src = match LobsterSource::open(&mp, &bp, LobsterOptions::default()) {
        Ok(s) => s,
        Err(e) => {
            // A clear, one-line error about the first row or an empty file.
            prop_assert!(!e.to_string().contains('\n'), "{e}");
            t.open_refused += 1;
            return Ok(());
        }
    };
    let mut ev = SourceEvent::default();
    let mut quotes = 0u64;
    let mut guard = 0;
    while src.next(&mut ev) {
        prop_assert!(ev.event.is_valid(), "invalid event {:?}", ev.event);
        quotes += u64::from(ev.event.kind == MarketEventKind::Quote as u8);
        guard += 1;
        prop_assert!(guard < 10_000, "the source does not end");
    }
    let stopped = u64::from(src.pairing_error().is_some());
    let r = src.rejects();
    // Every row is accounted for: one quote per published row, a reason per rejected row,
    // and at most the one row where the files went out of step.
    prop_assert_eq!(quotes + r.total() + stopped, src.rows_read(), "{}", r);
    for reason in RejectReason::ALL {
        *t.by_reason.entry(reason.name()).or_default() += r.get(reason);
    }
    if let Some(e) = src.pairing_error() {
        prop_assert!(!e.to_string().contains('\n'), "{e}");
    }
    t.rows += src.rows_read();
    t.quotes += quotes;
    t.pairing_stops += stopped;
    Ok(())
}

#[test]
fn fuzz_lobster_pairs_never_panic_and_account_for_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut runner = TestRunner::new(RunnerConfig::with_cases(LOBSTER_CASES));
    let tally = std::cell::RefCell::new(Tally::default());
    let strategy = (
        proptest::collection::vec(pair(), 0..30),
        any::<bool>(),
        damage(),
    );
    runner
        .run(&strategy, |(rows, header, d)| {
            lobster_case(dir.path(), &rows, header, &d, &mut tally.borrow_mut())
        })
        .unwrap();
    let t = tally.into_inner();
    println!(
        "lobster fuzz: {LOBSTER_CASES} cases, {} rows, {} quotes, {} pairing stops, {} files refused at open, rejects by reason {:?}",
        t.rows, t.quotes, t.pairing_stops, t.open_refused, t.by_reason
    );
    assert!(
        t.pairing_stops > 0 && t.quotes > 0,
        "the generator reaches both outcomes"
    );
}

/// Values a config key may be given: valid ones, edges and nonsense.
fn toml_value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0.01f64..100.0).prop_map(|v| format!("{v:?}")),
        2 => (1u64..1_000).prop_map(|v| v.to_string()),
        1 => edge_value(),
    ]
}

fn edge_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        Just("9223372036854775807".to_string()),
        Just("1e11".to_string()),
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("\"..\"".to_string()),
        Just("\"\"".to_string()),
        Just("true".to_string()),
        Just("[1, 2]".to_string()),
        (-1e12f64..1e12).prop_map(|v| format!("{v:?}")),
        (0u64..100_000).prop_map(|v| v.to_string()),
        "\"[a-z./-]{0,12}\"",
    ]
}

const FEED_KEYS: &[&str] = &[
    "namespace",
    "ring_capacity",
    "speed",
    "duration_s",
    "max_events",
    "stats_interval_s",
    "hold",
    "idle",
    "on_stale",
    "bogus_key",
];
const SYNTHETIC_KEYS: &[&str] = &[
    "seed",
    "rate",
    "time_warp",
    "spike_mult",
    "spike_half_life_s",
    "burst_every_s",
    "burst_len_s",
    "burst_factor",
    "stress_every_s",
    "stress_len_s",
    "stress_vol_mult",
    "stress_spread_mult",
    "half_spread_bps",
    "depth_levels",
    "level_size",
    "strike_step",
    "strikes_per_expiry",
    "smile_skew",
    "weight_quote",
    "weight_mark",
    "start_ns",
    "typo_s",
];
const SOURCE_KEYS: &[&str] = &[
    "kind",
    "files",
    "message",
    "orderbook",
    "utc_offset_s",
    "speed",
];

fn feed_config() -> impl Strategy<Value = String> {
    let line = |keys: &'static [&'static str]| {
        (0..keys.len(), toml_value()).prop_map(move |(k, v)| format!("{} = {v}\n", keys[k]))
    };
    (
        proptest::collection::vec(line(FEED_KEYS), 0..3),
        proptest::collection::vec(line(SOURCE_KEYS), 0..2),
        proptest::collection::vec(line(SYNTHETIC_KEYS), 0..4),
        prop_oneof![
            Just(""),
            Just("kind = \"synthetic\"\n"),
            Just("kind = \"lobster\"\n")
        ],
    )
        .prop_map(|(top, src, syn, kind)| {
            let mut seen = std::collections::HashSet::new();
            let mut keep = |l: &String| seen.insert(l.split('=').next().unwrap_or("").to_string());
            let top: String = top.iter().filter(|l| keep(l)).cloned().collect();
            let src: String = src
                .iter()
                .filter(|l| keep(l) && !l.starts_with("kind"))
                .cloned()
                .collect();
            let syn: String = syn.iter().filter(|l| keep(l)).cloned().collect();
            format!("{top}[source]\n{kind}{src}[synthetic]\n{syn}")
        })
}

#[test]
fn fuzz_feed_config_refuses_on_one_line_and_what_it_accepts_runs() {
    config_fuzz::run("feed", CONFIG_CASES, feed_config(), |text| {
        let parsed = Config::parse(text, "fuzz.toml");
        config_fuzz::judge(text, parsed, "config: fuzz.toml: ", key_of, |c| {
            runs(text, c)
        })
    });
}

/// The key a refusal names after the file (the reason).
fn key_of(_: &RunError, rest: &str) -> Result<String, TestCaseError> {
    let key = match rest.split('`').nth(1) {
        Some(k) if rest.starts_with("line") => k,
        _ => rest.split([' ', ':']).next().unwrap_or(""),
    };
    Ok(key.into())
}

/// What an accepted feed config (from file `text`) guarantees.
fn runs(text: &str, c: Config) -> Result<(), TestCaseError> {
    // An accepted synthetic market publishes valid events and never spins.
    let mut src = SyntheticSource::new(c.synthetic);
    let mut ev = SourceEvent::default();
    for _ in 0..200 {
        prop_assert!(src.next(&mut ev));
        prop_assert!(ev.event.is_valid(), "{text:?}: {:?}", ev.event);
    }
    Ok(())
}
