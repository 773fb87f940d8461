//! Fuzzed Tardis rows: partial (short) rows, NaN, infinities, negatives, huge numbers,
//! 19-digit timestamps, garbage, and the columns of the header in any order. Nothing panics,
//! nothing invalid is published, and every part of every row is accounted for: published, or
//! counted as dropped by reason, or the whole row counted as rejected by reason.

mod common;

use feed_handler::partial::{PartialReason, Partials};
use feed_handler::source::{Source, SourceEvent};
use feed_handler::tardis::TardisSource;
use proptest::prelude::*;

const CHAIN_COLS: &[&str] = &[
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "type",
    "strike_price",
    "expiration",
    "open_interest",
    "last_price",
    "bid_price",
    "bid_amount",
    "bid_iv",
    "ask_price",
    "ask_amount",
    "ask_iv",
    "mark_price",
    "mark_iv",
    "underlying_index",
    "underlying_price",
    "delta",
    "gamma",
    "vega",
    "theta",
    "rho",
];

const TICKER_COLS: &[&str] = &[
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "funding_timestamp",
    "funding_rate",
    "predicted_funding_rate",
    "open_interest",
    "last_price",
    "index_price",
    "mark_price",
    "bid_price",
    "ask_price",
];

/// Parts of an options_chain row that are dropped (not merely degraded) under each reason.
const DROPS: [PartialReason; 8] = [
    PartialReason::QuoteOneSided,
    PartialReason::QuoteCrossed,
    PartialReason::QuotePriceInvalid,
    PartialReason::MarkMissing,
    PartialReason::MarkInvalid,
    PartialReason::MarkNoUnderlying,
    PartialReason::UnderlyingMissing,
    PartialReason::UnderlyingInvalid,
];

/// A numeric field: mostly plausible numbers, often something wrong.
fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[0-9]{1,5}(\\.[0-9]{1,4})?",
        1 => Just(String::new()),
        1 => prop_oneof![
            Just("NaN".to_string()),
            Just("nan".to_string()),
            Just("inf".to_string()),
            Just("-inf".to_string()),
            Just("-1".to_string()),
            Just("-0.5".to_string()),
            Just("0".to_string()),
            Just("1e308".to_string()),
            Just("1e400".to_string()),
            Just("-1e400".to_string()),
            Just("abc".to_string()),
            Just("1.2.3".to_string()),
            Just("1769921642172460000".to_string()),
            Just("99999999999999999999999".to_string()),
        ],
    ]
}

/// A timestamp: 0 = this row's increasing time, otherwise something wrong.
fn timestamp() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        12 => Just(None),
        1 => Just(Some("1769921642172460000".to_string())),
        1 => Just(Some("99999999999999999999".to_string())),
        1 => Just(Some("4102444800000000".to_string())),
        1 => Just(Some(String::new())),
        1 => Just(Some("12x".to_string())),
        1 => Just(Some("5".to_string())),
    ]
}

/// One row as (canonical field values, timestamp override, columns cut from the end).
fn row(n_cols: usize) -> impl Strategy<Value = Row> {
    (
        proptest::collection::vec(number(), n_cols),
        timestamp(),
        prop_oneof![9 => Just(0usize), 1 => 1usize..6],
    )
}

/// One row of the file.
type Row = (Vec<String>, Option<String>, usize);

/// A fuzzed file of `cols`: the columns in a shuffled `order`, and 1 to 11 rows.
fn file_of(cols: &'static [&'static str]) -> impl Strategy<Value = (Vec<usize>, Vec<Row>)> {
    let order = Just((0..cols.len()).collect::<Vec<_>>()).prop_shuffle();
    (order, proptest::collection::vec(row(cols.len()), 1..12))
}

/// The fuzzed rows written as a Tardis file (columns in `order`) in a fresh directory, opened.
fn fuzzed_source(
    cols: &[&str],
    order: &[usize],
    rows: &[Row],
    fixed: &dyn Fn(&str, usize) -> Option<String>,
) -> (tempfile::TempDir, TardisSource) {
    let dir = tempfile::tempdir().unwrap();
    let p = common::write(dir.path(), "fuzz.csv", &file_text(cols, order, rows, fixed));
    let src = TardisSource::open(&[p], None).unwrap();
    (dir, src)
}

/// The file: header in `order`, rows with their fixed columns filled in.
fn file_text(
    cols: &[&str],
    order: &[usize],
    rows: &[Row],
    fixed: &dyn Fn(&str, usize) -> Option<String>,
) -> String {
    let header: Vec<&str> = order.iter().map(|&i| cols[i]).collect();
    let mut text = header.join(",") + "\n";
    for (k, (vals, ts, cut)) in rows.iter().enumerate() {
        let t = (1_769_921_642_172_460u64 + k as u64 * 1_000_000).to_string();
        let field = |i: usize| match cols[i] {
            "timestamp" | "local_timestamp" => ts.clone().unwrap_or_else(|| t.clone()),
            c => fixed(c, k).unwrap_or_else(|| vals[i].clone()),
        };
        let mut f: Vec<String> = order.iter().map(|&i| field(i)).collect();
        f.truncate(f.len() - cut);
        text += &(f.join(",") + "\n");
    }
    text
}

fn drain(src: &mut TardisSource) -> u64 {
    let mut ev = SourceEvent::default();
    let mut n = 0;
    while src.next(&mut ev) {
        assert!(ev.event.is_valid(), "invalid event {:?}", ev.event);
        n += 1;
    }
    n
}

fn drops(p: &Partials) -> u64 {
    DROPS.iter().map(|&r| p.get(r)).sum()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn fuzzed_options_chain_rows_publish_or_count_every_part(
        (order, rows) in file_of(CHAIN_COLS),
        bad_symbol in 0usize..40,
    ) {
        let fixed = |c: &str, k: usize| match c {
            "exchange" => Some("deribit".to_string()),
            "symbol" if k == bad_symbol => Some("BTC-27MAR26-x-C".to_string()),
            "symbol" => Some("BTC-27MAR26-80000-C".to_string()),
            "underlying_index" => Some("BTC-27MAR26".to_string()),
            "type" => Some("call".to_string()),
            _ => None,
        };
        let (_dir, mut src) = fuzzed_source(CHAIN_COLS, &order, &rows, &fixed);
        let events = drain(&mut src);
        let rejected = src.rejects().total();
        let read = src.rows_read();
        prop_assert_eq!(read, rows.len() as u64);
        prop_assert!(rejected <= read);
        // Three parts per used row (underlying price, mark, quote): each published or dropped
        // and counted under exactly one reason.
        let parts = src.partials();
        prop_assert_eq!(
            events + drops(&parts),
            3 * (read - rejected),
            "rejects {} partials {}", src.rejects(), parts
        );
        prop_assert!(parts.rows() <= read - rejected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn fuzzed_derivative_ticker_rows_never_panic_and_every_row_is_counted(
        (order, rows) in file_of(TICKER_COLS),
    ) {
        let fixed = |c: &str, _k: usize| match c {
            "exchange" => Some("deribit".to_string()),
            "symbol" => Some("BTC-PERPETUAL".to_string()),
            _ => None,
        };
        let (_dir, mut src) = fuzzed_source(TICKER_COLS, &order, &rows, &fixed);
        let events = drain(&mut src);
        let used = src.rows_read() - src.rejects().total();
        // A used row is one price event, a quote, or both.
        prop_assert!(used <= events && events <= 2 * used, "{} events, {} used", events, used);
    }
}
