//! The sources on the real files in `../shared/data`: every valid row becomes exactly the
//! events it should, with its values unchanged, and the rejects are exactly the bad rows.

use std::collections::HashMap;
use std::path::PathBuf;

use feed_handler::instruments::Registry;
use feed_handler::lobster::{LobsterOptions, LobsterSource};
use feed_handler::publish::{Publisher, PublisherOptions};
use feed_handler::source::{RejectReason, Source, SourceEvent};
use feed_handler::tardis::{Layout, TardisSource};
use shm_layout::{
    names, BroadcastReader, InstrumentKind, LastValueTable, MarketEvent, MarketEventKind,
    OpenOptions, Poll, Settlement, Side,
};

fn data(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/")).join(rel)
}

const CHAIN: &str = "deribit/options_chain_2020-05-14.csv";
const L2: &str = "tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv";
const SNAP: &str = "tardis/binance-futures_book_snapshot_5_BTCUSDT.csv";
const QUOTES: &str = "tardis/huobi-dm-swap_quotes_BTC-USD.csv";
const LOB_MSG: &str = "lobster/AMZN_2012-06-21_34200000_57600000_message_1.csv";
const LOB_BOOK: &str = "lobster/AMZN_2012-06-21_34200000_57600000_orderbook_1.csv";

fn drain(src: &mut dyn Source) -> Vec<SourceEvent> {
    let mut out = Vec::new();
    let mut ev = SourceEvent::default();
    while src.next(&mut ev) {
        out.push(ev);
    }
    out
}

/// A row of the options_chain file parsed independently of the crate (plain `split`).
struct ChainRow {
    symbol: String,
    ts_us: u64,
    bid: f64,
    bid_amt: f64,
    ask: f64,
    ask_amt: f64,
    mark: f64,
    iv_pct: f64,
    under_index: String,
    under_px: f64,
}

fn chain_rows() -> Vec<ChainRow> {
    let text = std::fs::read_to_string(data(CHAIN)).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let (sym, ts, bid, bida, ask, aska, mark, iv, ui, up) = (
        col("symbol"),
        col("local_timestamp"),
        col("bid_price"),
        col("bid_amount"),
        col("ask_price"),
        col("ask_amount"),
        col("mark_price"),
        col("mark_iv"),
        col("underlying_index"),
        col("underlying_price"),
    );
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let n = |i: usize| f[i].parse::<f64>().unwrap();
            ChainRow {
                symbol: f[sym].into(),
                ts_us: f[ts].parse().unwrap(),
                bid: n(bid),
                bid_amt: n(bida),
                ask: n(ask),
                ask_amt: n(aska),
                mark: n(mark),
                iv_pct: n(iv),
                under_index: f[ui].into(),
                under_px: n(up),
            }
        })
        .collect()
}

fn expected_chain_events(reg: &Registry) -> Vec<MarketEvent> {
    let mut out = Vec::new();
    for r in chain_rows() {
        let id = reg.id_of(&r.symbol).unwrap();
        let fwd = reg.id_of(&r.under_index).unwrap();
        let ts = r.ts_us * 1000;
        out.push(MarketEvent::underlying_price(fwd, ts, 0, r.under_px));
        out.push(MarketEvent::option_mark(
            id,
            ts,
            0,
            r.mark,
            r.iv_pct / 100.0,
            r.under_px,
        ));
        if r.bid > 0.0 && r.ask > 0.0 {
            out.push(MarketEvent::quote(
                id, ts, 0, r.bid, r.bid_amt, r.ask, r.ask_amt,
            ));
        }
    }
    out
}

#[test]
fn options_chain_rows_become_forward_mark_and_quote_events_exactly() {
    let mut src = TardisSource::open(&[data(CHAIN)], None).unwrap();
    assert_eq!(src.layouts()[0].1, Layout::OptionsChain);
    let got: Vec<MarketEvent> = drain(&mut src).iter().map(|e| e.event).collect();
    let want = expected_chain_events(src.registry());
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    assert_eq!(src.rejects().total(), 0, "{}", src.rejects());
    assert_eq!(src.rows_read(), 310);
    // 310 marks, 310 forward prices, and a quote for each of the 259 two-sided rows (51 rows
    // have no bid or no ask: Deribit writes 0).
    assert_eq!(got.len(), 310 + 310 + 259);
}

#[test]
fn option_definitions_link_their_per_expiry_forward_and_are_inverse() {
    let src = TardisSource::open(&[data(CHAIN)], None).unwrap();
    let reg = src.registry();
    for r in chain_rows() {
        let d = reg.get(reg.id_of(&r.symbol).unwrap()).unwrap();
        assert_eq!(d.kind(), Ok(InstrumentKind::Option));
        assert_eq!(d.settlement(), Ok(Settlement::Inverse));
        assert_eq!(reg.get(d.forward_id).unwrap().symbol(), r.under_index);
        assert_eq!(reg.get(d.underlying_id).unwrap().symbol(), "BTC");
        assert_eq!(d.contract_multiplier, 1.0);
    }
    // SYN.BTC-22MAY20 is an index, BTC-26JUN20 a future: both per-expiry underlyings.
    let syn = reg.get(reg.id_of("SYN.BTC-22MAY20").unwrap()).unwrap();
    assert_eq!(syn.kind(), Ok(InstrumentKind::Index));
    let fut = reg.get(reg.id_of("BTC-26JUN20").unwrap()).unwrap();
    assert_eq!(fut.kind(), Ok(InstrumentKind::Future));
    // The file's `expiration` column (us) equals the parsed expiry.
    let text = std::fs::read_to_string(data(CHAIN)).unwrap();
    let row = text.lines().nth(1).unwrap();
    let f: Vec<&str> = row.split(',').collect();
    let d = reg.get(reg.id_of(f[1]).unwrap()).unwrap();
    assert_eq!(d.expiry_ns, f[6].parse::<u64>().unwrap() * 1000);
}

#[test]
fn published_option_events_carry_the_rows_vol_and_underlying_price_exactly() {
    let dir = testkit::shm::namespace_dir("fh-test-");
    let mut src = TardisSource::open(&[data(CHAIN)], None).unwrap();
    let mut publ = Publisher::create_without_counters(
        dir.path(),
        src.registry(),
        &PublisherOptions::default(),
    )
    .unwrap();
    let mut ev = SourceEvent::default();
    while src.next(&mut ev) {
        assert!(publ.publish(&ev));
    }
    let mut reader = BroadcastReader::<MarketEvent>::open_from_start(
        dir.path(),
        names::MD,
        OpenOptions::default(),
    )
    .unwrap();
    let mut got = Vec::new();
    loop {
        match reader.poll() {
            Poll::Message(m) => got.push(m),
            Poll::Empty => break,
            Poll::Lapped { lost } => panic!("lapped, lost {lost}"),
        }
    }
    let want = expected_chain_events(src.registry());
    assert_eq!(got.len(), want.len());
    let mut last_mark: HashMap<u32, (f64, f64, f64)> = HashMap::new();
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.seq, i as u64 + 1);
        assert!(g.recv_ts_ns > 0);
        let mut g2 = *g;
        g2.seq = 0;
        g2.recv_ts_ns = 0;
        assert_eq!(&g2, w, "event {i}");
        if let Some(m) = g.as_option_mark() {
            last_mark.insert(g.instrument_id, m);
        }
    }
    // Rows' exact values, straight from the text.
    let reg = src.registry();
    let lvt = LastValueTable::open(dir.path(), names::LVT, OpenOptions::default()).unwrap();
    for r in chain_rows() {
        let id = reg.id_of(&r.symbol).unwrap();
        let (mark, iv, under) = last_mark[&id];
        // Each option appears once in the file.
        assert_eq!(iv, r.iv_pct / 100.0);
        assert_eq!(under, r.under_px);
        assert_eq!(mark, r.mark);
        let lv = lvt.read(id).unwrap();
        assert_eq!(
            (lv.mark_px, lv.mark_iv, lv.mark_underlying_px),
            (mark, iv, under)
        );
    }
}

#[test]
fn book_snapshot_rows_become_quotes_with_five_depth_levels() {
    let mut src = TardisSource::open(&[data(SNAP)], None).unwrap();
    assert_eq!(src.layouts()[0].1, Layout::BookSnapshot(5));
    let evs = drain(&mut src);
    assert_eq!(evs.len(), 10);
    assert_eq!(src.rejects().total(), 0);
    let first = &evs[0];
    assert_eq!(
        first.event.as_quote(),
        Some((11657.07, 10.896, 11657.08, 1.714))
    );
    assert!(first.has_depth);
    assert_eq!((first.depth.bid_levels, first.depth.ask_levels), (5, 5));
    assert_eq!(first.depth.bids[4], [11655.68, 0.111]);
    assert_eq!(first.depth.asks[4], [11657.92, 0.918]);
    assert_eq!(first.event.exch_ts_ns, 1_598_918_403_696_000_000);
    assert_eq!(first.source_ts_ns, 1_598_918_403_810_979_000);
    let d = src.registry().get(first.event.instrument_id).unwrap();
    assert_eq!(d.symbol(), "BTCUSDT");
    assert_eq!(d.kind(), Ok(InstrumentKind::Perpetual));
    assert_eq!(d.settlement(), Ok(Settlement::Linear));
}

#[test]
fn quotes_rows_become_quotes() {
    let mut src = TardisSource::open(&[data(QUOTES)], None).unwrap();
    assert_eq!(src.layouts()[0].1, Layout::Quotes);
    let evs = drain(&mut src);
    assert_eq!(evs.len(), 10);
    assert_eq!(
        evs[0].event.as_quote(),
        Some((8629.2, 806.0, 8629.3, 5494.0))
    );
    assert_eq!(
        src.registry()
            .get(evs[0].event.instrument_id)
            .unwrap()
            .settlement(),
        Ok(Settlement::Inverse)
    );
}

#[test]
fn incremental_sample_holds_only_asks_so_no_quote_is_published() {
    // The sample is the first 15 rows of a snapshot: all on the ask side. The book is built but
    // has no bid, so the one batch is counted one-sided and nothing is published.
    let mut src = TardisSource::open(&[data(L2)], None).unwrap();
    assert_eq!(src.layouts()[0].1, Layout::IncrementalL2);
    assert!(drain(&mut src).is_empty());
    assert_eq!(src.rows_read(), 15);
    assert_eq!(src.rejects().get(RejectReason::OneSided), 1);
    assert_eq!(src.rejects().total(), 1);
    let d = src
        .registry()
        .get(src.registry().id_of("BTC-PERPETUAL").unwrap())
        .unwrap();
    assert_eq!(d.settlement(), Ok(Settlement::Inverse));
}

#[test]
fn all_tardis_files_merge_in_local_timestamp_order() {
    let files = [data(CHAIN), data(L2), data(SNAP), data(QUOTES)];
    let mut src = TardisSource::open(&files, None).unwrap();
    let evs = drain(&mut src);
    assert_eq!(evs.len(), 879 + 10 + 10);
    assert!(evs
        .windows(2)
        .all(|w| w[0].source_ts_ns <= w[1].source_ts_ns));
    assert_eq!(src.rows_read(), 310 + 15 + 10 + 10);
    assert!(evs.iter().all(|e| e.event.is_valid()));
}

#[test]
fn gzip_files_give_the_same_events() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("chain.csv.gz");
    let raw = std::fs::read(data(CHAIN)).unwrap();
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&raw).unwrap();
    enc.finish().unwrap();
    let plain = drain(&mut TardisSource::open(&[data(CHAIN)], None).unwrap());
    let zipped = drain(&mut TardisSource::open(&[gz], None).unwrap());
    assert_eq!(plain, zipped);
}

#[test]
fn lobster_rows_become_quotes_and_trades_in_dollars() {
    let mut src =
        LobsterSource::open(&data(LOB_MSG), &data(LOB_BOOK), LobsterOptions::default()).unwrap();
    let evs = drain(&mut src);
    assert_eq!(src.rejects().total(), 0, "{}", src.rejects());
    assert_eq!(src.rows_read(), 57_515);
    assert!(src.pairing_error().is_none(), "{:?}", src.pairing_error());
    let quotes = evs
        .iter()
        .filter(|e| e.event.kind == MarketEventKind::Quote as u8)
        .count();
    let trades: Vec<_> = evs
        .iter()
        .filter(|e| e.event.kind == MarketEventKind::Trade as u8)
        .collect();
    assert_eq!(quotes, 57_515);
    // Types 4 (8974) and 5 (2445) are executions.
    assert_eq!(trades.len(), 8974 + 2445);
    // First row: 34200.01746,5,0,1,2238200,-1 with book 2239500,100,2231800,100.
    let first_trade = trades[0];
    let (px, q, side) = first_trade.event.as_trade().unwrap();
    assert_eq!((px, q, side), (223.82, 1.0, Some(Side::Buy)));
    // 2012-06-21 09:30:00.01746 EDT = 13:30:00.01746 UTC.
    assert_eq!(first_trade.event.exch_ts_ns, 1_340_285_400_017_460_000);
    assert_eq!(
        evs[1].event.as_quote(),
        Some((223.18, 100.0, 223.95, 100.0))
    );
    assert_eq!(src.registry().defs()[0].symbol(), "AMZN");
    assert!(evs
        .windows(2)
        .all(|w| w[0].source_ts_ns <= w[1].source_ts_ns));
}

/// The first 3,000 rows of the real LOBSTER pair, with `damage` applied to the message rows,
/// written to a temporary directory (never into the project).
fn damaged_real_lobster(
    damage: impl FnOnce(&mut Vec<String>),
) -> (tempfile::TempDir, LobsterSource) {
    let dir = tempfile::tempdir().unwrap();
    let read = |rel: &str| -> Vec<String> {
        std::fs::read_to_string(data(rel))
            .unwrap()
            .lines()
            .take(3_001)
            .map(String::from)
            .collect()
    };
    let mut msg = read(LOB_MSG);
    damage(&mut msg);
    let book = read(LOB_BOOK);
    let m = dir
        .path()
        .join("AMZN_2012-06-21_34200000_57600000_message_1.csv");
    let b = dir
        .path()
        .join("AMZN_2012-06-21_34200000_57600000_orderbook_1.csv");
    std::fs::write(&m, msg.join("\n") + "\n").unwrap();
    std::fs::write(&b, book.join("\n") + "\n").unwrap();
    let src = LobsterSource::open(&m, &b, LobsterOptions::default()).unwrap();
    (dir, src)
}

#[test]
fn real_lobster_rows_split_by_a_bare_cr_stop_at_that_row_not_2452_wrong_quotes_later() {
    // Row 500 (line 501 after the header) gets a CR inside its OrderId field.
    let (_d, mut src) = damaged_real_lobster(|m| m[500] = m[500].replacen(',', ",1\r", 2));
    let evs = drain(&mut src);
    let e = src
        .pairing_error()
        .expect("stopped on the mismatch")
        .to_string();
    assert!(
        e.contains("out of step at row 500: the message row has"),
        "{e}"
    );
    assert!(evs.len() < 500 + 500, "nothing after row 500 is published");
}

#[test]
fn a_real_lobster_message_row_lost_is_caught_within_a_few_rows() {
    let (_d, mut src) = damaged_real_lobster(|m| {
        m.remove(1_000);
    });
    drain(&mut src);
    let e = src
        .pairing_error()
        .expect("stopped on the mismatch")
        .to_string();
    let row: u64 = e
        .split("at row ")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("{e}"));
    // Every row from 1,000 on is paired with the wrong book: the first limit order the next
    // book does not show stops it (at the latest, the files end apart at row 3,000).
    assert!((1_000..=3_000).contains(&row), "{e}");
    println!("lost message row 1000 detected at row {row}: {e}");
}
