//! Bad input: each kind of bad row is skipped and counted under its reason, the good rows
//! around it are published, nothing invalid comes out, and nothing panics. Missing files and
//! unreadable headers are one clear error.

mod common;

use common::write;
use std::path::Path;

use feed_handler::instruments::Registry;
use feed_handler::lobster::{LobsterOptions, LobsterSource};
use feed_handler::partial::PartialReason;
use feed_handler::source::{RejectReason, Rejects, Source, SourceEvent};
use feed_handler::tardis::{TardisError, TardisSource};
use proptest::prelude::*;

const QUOTES_HEADER: &str =
    "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount";
const CHAIN_HEADER: &str = "exchange,symbol,timestamp,local_timestamp,type,strike_price,expiration,open_interest,last_price,bid_price,bid_amount,bid_iv,ask_price,ask_amount,ask_iv,mark_price,mark_iv,underlying_index,underlying_price,delta,gamma,vega,theta,rho";
const L2_HEADER: &str = "exchange,symbol,timestamp,local_timestamp,is_snapshot,side,price,amount";

fn run(src: &mut dyn Source) -> (usize, Rejects) {
    let mut ev = SourceEvent::default();
    let mut n = 0;
    while src.next(&mut ev) {
        assert!(
            ev.event.is_valid(),
            "invalid event published: {:?}",
            ev.event
        );
        n += 1;
    }
    (n, src.rejects())
}

fn quote(ts: u64, sym: &str, ask_amt: &str, ask: &str, bid: &str, bid_amt: &str) -> String {
    format!("deribit,{sym},{ts},{ts},{ask_amt},{ask},{bid},{bid_amt}\n")
}

/// One good quote row, then the bad row, then one more good row: 2 published, 1 rejected.
fn one_bad_quote_row(bad: &str) -> (usize, Rejects) {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{QUOTES_HEADER}\n{}{bad}{}",
        quote(1000, "BTC-PERPETUAL", "10", "100.5", "100", "20"),
        quote(3000, "BTC-PERPETUAL", "10", "101", "100.5", "20")
    );
    let p = write(dir.path(), "q.csv", &text);
    run(&mut TardisSource::open(&[p], None).unwrap())
}

/// One bad row between two good quotes: both good rows published, the bad one counted once,
/// under `reason` only.
fn assert_rejected_alone(bad: &str, reason: RejectReason) {
    let (n, r) = one_bad_quote_row(bad);
    assert_eq!(n, 2, "the good rows around {bad:?} are published");
    assert_eq!(r.get(reason), 1, "{bad:?}: {r}");
    assert_eq!(r.total(), 1, "{bad:?}: {r}");
}

fn assert_only(r: &Rejects, reason: RejectReason) {
    assert_eq!(r.get(reason), 1, "{r}");
    assert_eq!(r.total(), 1, "{r}");
}

#[test]
fn malformed_numbers_and_timestamps_are_counted_malformed() {
    for bad in [
        quote(2000, "BTC-PERPETUAL", "10", "abc", "100", "20"),
        "deribit,BTC-PERPETUAL,12x,2000,10,100.5,100,20\n".to_string(),
        quote(2000, "BTC-PERPETUAL", "", "100.5", "100", "20"),
    ] {
        assert_rejected_alone(&bad, RejectReason::Malformed);
    }
}

#[test]
fn wrong_column_counts_are_counted() {
    for bad in [
        "deribit,BTC-PERPETUAL,2000,2000,10,100.5,100\n",
        "deribit,BTC-PERPETUAL,2000,2000,10,100.5,100,20,extra\n",
        "garbage\n",
    ] {
        assert_rejected_alone(bad, RejectReason::ColumnCount);
    }
}

#[test]
fn nan_and_infinite_prices_are_counted_non_finite() {
    for px in ["NaN", "inf", "-inf"] {
        assert_rejected_alone(
            &quote(2000, "BTC-PERPETUAL", "10", px, "100", "20"),
            RejectReason::NonFinite,
        );
    }
}

#[test]
fn negative_prices_and_quantities_are_counted() {
    for row in [
        quote(2000, "BTC-PERPETUAL", "10", "100.5", "-100", "20"),
        quote(2000, "BTC-PERPETUAL", "-10", "100.5", "100", "20"),
    ] {
        assert_rejected_alone(&row, RejectReason::NegativePrice);
    }
}

#[test]
fn crossed_and_locked_quotes_are_counted() {
    for (ask, bid) in [("100", "100.5"), ("100", "100")] {
        assert_rejected_alone(
            &quote(2000, "BTC-PERPETUAL", "10", ask, bid, "20"),
            RejectReason::Crossed,
        );
    }
}

#[test]
fn one_sided_quotes_are_counted() {
    assert_rejected_alone(
        &quote(2000, "BTC-PERPETUAL", "10", "100.5", "", ""),
        RejectReason::OneSided,
    );
}

#[test]
fn timestamps_going_backwards_are_counted() {
    assert_rejected_alone(
        &quote(500, "BTC-PERPETUAL", "10", "100.5", "100", "20"),
        RejectReason::TimeBackwards,
    );
}

#[test]
fn unparsable_deribit_symbols_are_counted() {
    for sym in [
        "BTC-99XYZ20-100-C",
        "btc-perpetual",
        "BTC-22MAY20-abc-P",
        "",
    ] {
        assert_rejected_alone(
            &quote(2000, sym, "10", "100.5", "100", "20"),
            RejectReason::UnparsableSymbol,
        );
    }
}

#[test]
fn symbols_missing_from_the_instruments_file_are_counted_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let inst = write(dir.path(), "inst.csv", "symbol\nBTC-PERPETUAL\n");
    let reg = Registry::load_csv(&inst).unwrap();
    let text = format!(
        "{QUOTES_HEADER}\n{}{}",
        quote(1000, "BTC-PERPETUAL", "10", "100.5", "100", "20"),
        quote(2000, "ETH-PERPETUAL", "10", "100.5", "100", "20"),
    );
    let p = write(dir.path(), "q.csv", &text);
    let mut src = TardisSource::open(&[p], Some(reg)).unwrap();
    let (n, r) = run(&mut src);
    assert_eq!(n, 1);
    assert_only(&r, RejectReason::UnknownSymbol);
    assert_eq!(src.registry().len(), 2); // BTC index + BTC-PERPETUAL, nothing added
}

#[test]
fn option_rows_with_zero_vol_or_bad_underlying_keep_their_valid_parts() {
    let dir = tempfile::tempdir().unwrap();
    let row = |ts: u64, iv: &str, under: &str| {
        format!("deribit,BTC-22MAY20-9250-P,{ts},{ts},put,9250.0,1590134400000000,139.3,0.0485,0.042,15.5,80.07,0.045,0.5,85.17,0.04010621,{iv},SYN.BTC-22MAY20,{under},-0.43897,0.00037,5.49167,-26.07217,-0.99385\n")
    };
    let text = format!(
        "{CHAIN_HEADER}\n{}{}{}{}{}{}",
        row(1, "76.87", "9352.58"),
        row(2, "0", "9352.58"),   // zero vol: no mark; forward and quote kept
        row(3, "76.87", "-1"),    // negative underlying: no forward, no mark; quote kept
        row(4, "NaN", "9352.58"), // NaN vol: no mark; forward and quote kept
        row(5, "76.87", "9352.58"),
        // nothing valid: no underlying, no quote -> the row is rejected
        "deribit,BTC-22MAY20-9250-P,6,6,put,9250.0,1590134400000000,139.3,0.0485,0,15.5,80.07,0,0.5,85.17,0.04,76.87,SYN.BTC-22MAY20,,-0.4,0.00037,5.49167,-26.07217,-0.99385\n",
    );
    let p = write(dir.path(), "c.csv", &text);
    let mut src = TardisSource::open(&[p], None).unwrap();
    let (n, r) = run(&mut src);
    assert_eq!(n, 3 + 2 + 1 + 2 + 3, "every valid part published");
    assert_eq!(r.get(RejectReason::Malformed), 1, "{r}");
    assert_eq!(r.total(), 1, "{r}");
    let p = src.partials();
    assert_eq!(p.get(PartialReason::MarkInvalid), 2, "{p}");
    assert_eq!(p.get(PartialReason::UnderlyingInvalid), 1, "{p}");
    assert_eq!(p.get(PartialReason::MarkNoUnderlying), 1, "{p}");
    assert_eq!(p.total(), 4, "{p}");
    assert_eq!(p.rows(), 3);
}

#[test]
fn incremental_book_is_maintained_and_a_crossed_batch_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let l = |ts: u64, snap: bool, side: &str, px: &str, amt: &str| {
        format!("deribit,BTC-PERPETUAL,{ts},{ts},{snap},{side},{px},{amt}\n")
    };
    let text = [
        L2_HEADER.to_string() + "\n",
        l(1, true, "ask", "101", "100"),
        l(1, true, "ask", "102", "200"),
        l(1, true, "bid", "100", "300"),
        l(1, true, "bid", "99", "400"),
        // Update: best ask removed, new bid level.
        l(2, false, "ask", "101", "0"),
        l(2, false, "bid", "100.5", "50"),
        // A crossing update (bid above the ask): the batch is rejected, the book kept.
        l(3, false, "bid", "103", "10"),
        // Fixed in the next message.
        l(4, false, "bid", "103", "0"),
        // A new snapshot resets the book.
        l(5, true, "ask", "200", "10"),
        l(5, true, "bid", "199", "20"),
    ]
    .concat();
    let p = write(dir.path(), "l2.csv", &text);
    let mut src = TardisSource::open(&[p], None).unwrap();
    let mut ev = SourceEvent::default();
    let mut evs = Vec::new();
    while src.next(&mut ev) {
        evs.push(ev);
    }
    let quotes: Vec<_> = evs.iter().map(|e| e.event.as_quote().unwrap()).collect();
    // Amounts are USD for Deribit inverse perpetuals: contracts = USD / 10.
    assert_eq!(
        quotes,
        vec![
            (100.0, 30.0, 101.0, 10.0),
            (100.5, 5.0, 102.0, 20.0),
            (100.5, 5.0, 102.0, 20.0),
            (199.0, 2.0, 200.0, 1.0),
        ]
    );
    let d = &evs[1].depth;
    assert_eq!((d.bid_levels, d.ask_levels), (3, 1));
    assert_eq!(&d.bids[..3], &[[100.5, 5.0], [100.0, 30.0], [99.0, 40.0]]);
    assert_eq!((evs[3].depth.bid_levels, evs[3].depth.ask_levels), (1, 1));
    assert_only(&src.rejects(), RejectReason::Crossed);
}

#[test]
fn missing_files_and_unreadable_headers_are_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.csv");
    let e = TardisSource::open(std::slice::from_ref(&missing), None)
        .err()
        .unwrap();
    assert!(matches!(e, TardisError::Open { .. }));
    assert!(e.to_string().contains("nope.csv"), "{e}");
    assert!(!e.to_string().contains('\n'));
    let empty = write(dir.path(), "empty.csv", "");
    let e = TardisSource::open(&[empty], None).err().unwrap();
    assert!(matches!(e, TardisError::Header { .. }), "{e}");
    let other = write(dir.path(), "other.csv", "a,b,c\n1,2,3\n");
    let e = TardisSource::open(&[other], None).err().unwrap();
    assert!(e.to_string().contains("no `exchange` column"), "{e}");
    let unknown = write(
        dir.path(),
        "u.csv",
        "exchange,symbol,timestamp,local_timestamp,x\n",
    );
    let e = TardisSource::open(&[unknown], None).err().unwrap();
    assert!(e.to_string().contains("not a known Tardis layout"), "{e}");
    assert!(LobsterSource::open(&missing, &missing, LobsterOptions::default()).is_err());
    let g = dir.path().join("g.csv.gz");
    std::fs::write(&g, b"\x1f\x8bnot really gzip").unwrap();
    assert!(TardisSource::open(&[g], None).is_err());
}

#[test]
fn lobster_bad_rows_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let msg = write(
        dir.path(),
        "X_2012-06-21_34200000_57600000_message_1.csv",
        "Time,Type,OrderId,Size,Price,Direction\n\
         34200.1,1,1,10,1000000,1\n\
         34200.2,4,1,5,1000000,1\n\
         34200.15,1,2,10,1000100,-1\n\
         34200.3,1,3,10,abc,-1\n\
         34200.4,1,4,10,1000100,-1\n\
         34200.5,1,5,10,1000100,-1\n\
         34200.7,1,7,10,1000100,-1\n",
    );
    let book = write(
        dir.path(),
        "X_2012-06-21_34200000_57600000_orderbook_1.csv",
        "BestAsk,BestAskVolume,BestBid,BestBidVolume\n\
         1000500,10,1000000,10\n\
         1000500,10,1000000,5\n\
         1000100,10,1000000,5\n\
         1000100,10,1000000,5\n\
         9999999999,0,1000000,5\n\
         1000000,10,1000100,5\n\
         1000100,10,1000000,5\n",
    );
    let mut src = LobsterSource::open(&msg, &book, LobsterOptions::default()).unwrap();
    let (n, r) = run(&mut src);
    // Good rows: 1 (quote), 2 (trade + quote), 7 (quote).
    assert_eq!(n, 4, "{r}");
    assert_eq!(r.get(RejectReason::TimeBackwards), 1, "{r}");
    assert_eq!(r.get(RejectReason::Malformed), 1, "{r}");
    assert_eq!(r.get(RejectReason::OneSided), 1, "{r}");
    assert_eq!(r.get(RejectReason::Crossed), 1, "{r}");
    assert_eq!(r.total(), 4);
    assert!(src.pairing_error().is_none());
}

/// Five paired rows: new bid, new ask, a trade, a new bid at a second level, a cancel.
const PAIRED_MSG: [&str; 5] = [
    "34200.1,1,1,10,1000000,1",
    "34200.2,1,2,20,1000500,-1",
    "34200.3,4,2,5,1000500,-1",
    "34200.4,1,3,7,999900,1",
    "34200.5,3,3,7,999900,1",
];
const PAIRED_BOOK: [&str; 5] = [
    "9999999999,0,1000000,10,9999999999,0,-9999999999,0",
    "1000500,20,1000000,10,9999999999,0,-9999999999,0",
    "1000500,15,1000000,10,9999999999,0,-9999999999,0",
    "1000500,15,1000000,10,9999999999,0,999900,7",
    "1000500,15,1000000,10,9999999999,0,-9999999999,0",
];

fn lobster_pair(dir: &Path, msg: &str, book: &str) -> LobsterSource {
    let m = write(dir, "X_2012-06-21_34200000_57600000_message_2.csv", msg);
    let b = write(dir, "X_2012-06-21_34200000_57600000_orderbook_2.csv", book);
    LobsterSource::open(&m, &b, LobsterOptions::default()).unwrap()
}

fn pairing_detail(src: &LobsterSource) -> String {
    src.pairing_error()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn lobster_files_in_step_publish_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut src = lobster_pair(
        dir.path(),
        &(PAIRED_MSG.join("\n") + "\n"),
        &(PAIRED_BOOK.join("\n") + "\n"),
    );
    let (n, r) = run(&mut src);
    // Row 1 is one-sided; rows 2, 4, 5 give a quote, row 3 a trade and a quote.
    assert_eq!((n, r.total()), (5, 1), "{r}");
    assert!(src.pairing_error().is_none());
}

#[test]
fn a_bare_cr_splitting_a_message_row_stops_at_that_row() {
    let dir = tempfile::tempdir().unwrap();
    let mut msg = PAIRED_MSG.map(String::from);
    msg[1] = "34200.2,1,2\r,20,1000500,-1".into();
    let mut src = lobster_pair(
        dir.path(),
        &(msg.join("\n") + "\n"),
        &(PAIRED_BOOK.join("\n") + "\n"),
    );
    let (n, _) = run(&mut src);
    assert_eq!(n, 0, "nothing after the split is published");
    let e = pairing_detail(&src);
    assert!(
        e.contains("out of step at row 2: the message row has 3 columns, not 6"),
        "{e}"
    );
    assert!(
        e.contains("message_2.csv") && e.contains("orderbook_2.csv"),
        "{e}"
    );
}

#[test]
fn a_lost_line_is_caught_by_the_books_or_the_row_count() {
    let dir = tempfile::tempdir().unwrap();
    // Message 2 is lost: message 3 (a trade) meets book 2, message 4 meets book 3, which
    // lacks its bid at 999900.
    let msg: Vec<&str> = PAIRED_MSG
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, m)| *m)
        .collect();
    let mut src = lobster_pair(
        dir.path(),
        &(msg.join("\n") + "\n"),
        &(PAIRED_BOOK.join("\n") + "\n"),
    );
    run(&mut src);
    let e = pairing_detail(&src);
    assert!(
        e.contains("row 3: a bid limit order of 7 at 999900 is missing from the book row after it"),
        "{e}"
    );
    // A book row lost at the end: the files end apart.
    let mut src = lobster_pair(
        dir.path(),
        &(PAIRED_MSG.join("\n") + "\n"),
        &(PAIRED_BOOK[..4].join("\n") + "\n"),
    );
    run(&mut src);
    let e = pairing_detail(&src);
    assert!(
        e.contains("row 5: the orderbook file ended, the message file has more rows"),
        "{e}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Arbitrary bytes after a valid header: never a panic, never an invalid event, and every
    /// row is either published or counted.
    #[test]
    fn garbage_rows_never_panic_nor_publish_invalid_events(
        lines in proptest::collection::vec(
            prop_oneof![
                "[ -~]{0,80}",
                "deribit,BTC-PERPETUAL,[0-9]{1,5},[0-9]{1,5},[-0-9.a-z]{0,6},[-0-9.a-z]{0,6},[-0-9.a-z]{0,6},[-0-9.a-z]{0,6}",
            ],
            0..40,
        )
    ) {
        let dir = tempfile::tempdir().unwrap();
        let text = format!("{QUOTES_HEADER}\n{}\n", lines.join("\n"));
        let p = write(dir.path(), "q.csv", &text);
        let mut src = TardisSource::open(&[p], None).unwrap();
        let (n, r) = run(&mut src);
        prop_assert_eq!(n as u64 + r.total(), src.rows_read());
    }
}

#[test]
fn wide_files_with_the_symbol_far_right_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let extra: Vec<String> = (0..40).map(|i| format!("x{i}")).collect();
    let header = format!(
        "{},exchange,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount,symbol",
        extra.join(",")
    );
    let pad = vec!["0"; 40].join(",");
    let text = format!(
        "{header}\n{pad},deribit,1,1,10,100.5,100,20,BTC-PERPETUAL\n{pad},deribit,2,2,10,100.5,100,20\n"
    );
    let p = write(dir.path(), "wide.csv", &text);
    let mut src = TardisSource::open(&[p], None).unwrap();
    let (n, r) = run(&mut src);
    assert_eq!(n, 1);
    assert_only(&r, RejectReason::ColumnCount);
}
