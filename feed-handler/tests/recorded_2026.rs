//! Recorded exchange data as it really is: the 2026 Deribit files (prices without sizes,
//! `SYN.` underlyings that are renamed when the future lists, `derivative_ticker` files with
//! most columns empty) and Tardis timestamps out of range. See `../shared/data/PROVENANCE.md`.

mod common;

use common::write;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use feed_handler::partial::PartialReason;
use feed_handler::source::{RejectReason, Source, SourceEvent};
use feed_handler::tardis::{Layout, TardisSource};
use shm_layout::{InstrumentKind, LastValue, MarketEvent, MarketEventKind};

const BIN: &str = env!("CARGO_BIN_EXE_feed-handler");

fn data(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/")).join(rel)
}

fn drain(src: &mut dyn Source) -> Vec<MarketEvent> {
    let mut ev = SourceEvent::default();
    let mut out = Vec::new();
    while src.next(&mut ev) {
        assert!(ev.event.is_valid(), "{:?}", ev.event);
        out.push(ev.event);
    }
    out
}

fn kind_count(evs: &[MarketEvent], k: MarketEventKind) -> usize {
    evs.iter().filter(|e| e.kind() == Ok(k)).count()
}

#[test]
fn chain_27mar26_keeps_every_mark_and_flags_quotes_without_sizes() {
    let mut src = TardisSource::open(
        &[data("deribit-2026/options_chain_BTC_ETH_27MAR26.csv")],
        None,
    )
    .unwrap();
    let evs = drain(&mut src);
    let rows = src.rows_read();
    assert_eq!(rows, 76_718);
    let rejected = src.rejects().total();
    assert!(
        rejected * 20 <= rows,
        "{rejected} of {rows} rows rejected: {}",
        src.rejects()
    );
    // Every row has a mark, an IV and an underlying price (PROVENANCE.md).
    assert_eq!(kind_count(&evs, MarketEventKind::OptionMark), 76_718);
    assert_eq!(kind_count(&evs, MarketEventKind::UnderlyingPrice), 76_718);
    // Bid and ask both present: 76,718 - 12,913 empty bids - (ask empty, bid present) rows;
    // every such quote is size-unknown (no amounts in the file).
    let quotes: Vec<_> = evs
        .iter()
        .filter(|e| e.kind() == Ok(MarketEventKind::Quote))
        .collect();
    assert!(!quotes.is_empty());
    assert!(quotes
        .iter()
        .all(|q| q.flags & MarketEvent::FLAG_SIZE_UNKNOWN != 0 && q.v[1] == 0.0 && q.v[3] == 0.0));
    let p = src.partials();
    assert_eq!(p.get(PartialReason::QuoteSizeUnknown), quotes.len() as u64);
    assert_eq!(
        p.get(PartialReason::QuoteOneSided) + quotes.len() as u64,
        rows,
        "{p}"
    );
}

#[test]
fn size_unknown_flag_is_mirrored_in_the_last_value_and_cleared_by_a_sized_quote() {
    let mut lv: LastValue = bytemuck::Zeroable::zeroed();
    let mut q = MarketEvent::quote(1, 1, 1, 99.0, 0.0, 100.0, 0.0);
    q.flags |= MarketEvent::FLAG_SIZE_UNKNOWN;
    lv.apply(&q);
    assert!(!lv.quote_size_known());
    assert!(lv.valid & LastValue::HAS_QUOTE != 0);
    lv.apply(&MarketEvent::quote(1, 2, 2, 99.0, 3.0, 100.0, 4.0));
    assert!(lv.quote_size_known());
}

#[test]
fn perpetual_and_futures_files_load_as_derivative_ticker() {
    let perp = data("deribit-2026/perpetual_2026.csv");
    let fut = data("deribit-2026/futures_marks_2026.csv");
    let mut src = TardisSource::open(&[perp.clone(), fut.clone()], None).unwrap();
    assert!(src
        .layouts()
        .iter()
        .all(|(_, l)| *l == Layout::DerivativeTicker));
    let evs = drain(&mut src);
    assert_eq!(src.rows_read(), 430 + 2_778);
    assert_eq!(src.rejects().total(), 0, "{}", src.rejects());
    assert_eq!(evs.len(), 430 + 2_778);
    let reg = src.registry();
    let mut perps = 0;
    for e in &evs {
        let d = reg.get(e.instrument_id).unwrap();
        assert_eq!(e.kind(), Ok(MarketEventKind::UnderlyingPrice));
        // The files carry no funding, index or open interest.
        assert_eq!(e.as_ticker(), Some((None, None, None)));
        if d.kind() == Ok(InstrumentKind::Perpetual) {
            // Only last_price is filled for the perpetuals.
            assert!(e.flags & MarketEvent::FLAG_LAST_PRICE != 0);
            perps += 1;
        } else {
            assert_eq!(d.kind(), Ok(InstrumentKind::Future));
            assert_eq!(
                e.flags & MarketEvent::FLAG_LAST_PRICE,
                0,
                "futures carry a mark"
            );
        }
    }
    assert_eq!(perps, 430);
    // First perpetual row: BTC-PERPETUAL last 78926.0.
    let btc = reg.id_of("BTC-PERPETUAL").unwrap();
    let first = evs.iter().find(|e| e.instrument_id == btc).unwrap();
    assert_eq!(first.v[0], 78_926.0);
    assert_eq!(
        src.partials().get(PartialReason::TickerLastUnused),
        2_778,
        "every futures row has both a mark and a last price"
    );
}

#[test]
fn derivative_ticker_carries_funding_index_open_interest_and_quotes() {
    let dir = tempfile::tempdir().unwrap();
    let text = "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,predicted_funding_rate,open_interest,last_price,index_price,mark_price,bid_price,ask_price\n\
        deribit,BTC-PERPETUAL,1769921642172460,1769921642172460,1769932800000000,0.0001,0.0002,500000,78926.0,78900.5,78910.25,78910.0,78910.5\n\
        deribit,BTC-PERPETUAL,1769921643172460,1769921643172460,,nan,,-5,,78901,78911,,\n";
    let p = write(dir.path(), "t.csv", text);
    let mut src = TardisSource::open(&[p], None).unwrap();
    let evs = drain(&mut src);
    assert_eq!(evs.len(), 3, "{evs:?}");
    // Row 1: the mark with funding 0.01% per 8 h, index, OI (500,000 USD = 50,000 contracts of
    // 10 USD), and a size-unknown quote.
    assert_eq!(evs[0].v[0], 78_910.25);
    assert_eq!(
        evs[0].as_ticker(),
        Some((Some(0.0001), Some(78_900.5), Some(50_000.0)))
    );
    assert_eq!(evs[1].as_quote(), Some((78_910.0, 0.0, 78_910.5, 0.0)));
    assert!(evs[1].flags & MarketEvent::FLAG_SIZE_UNKNOWN != 0);
    // Row 2: NaN funding and negative OI dropped and counted; the mark and index kept.
    assert_eq!(evs[2].v[0], 78_911.0);
    assert_eq!(evs[2].as_ticker(), Some((None, Some(78_901.0), None)));
    let p = src.partials();
    assert_eq!(p.get(PartialReason::TickerFieldInvalid), 2, "{p}");
    assert_eq!(p.get(PartialReason::TickerLastUnused), 1, "{p}");
    assert_eq!(p.get(PartialReason::QuoteSizeUnknown), 1, "{p}");
    assert_eq!(p.rows(), 2);
}

/// The 2026-02-02 full chain, then a second snapshot six hours later built from its 20FEB26
/// rows with the underlying renamed `SYN.X-20FEB26 -> X-20FEB26` (as Deribit did on 02-06) and
/// its price 1% higher.
fn chain_with_a_rename(dir: &Path) -> (PathBuf, PathBuf) {
    let full = data("deribit-2026/options_chain_2026-02-02_full.csv");
    let text = std::fs::read_to_string(&full).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let cols: Vec<&str> = header.split(',').collect();
    let col = |n: &str| cols.iter().position(|c| *c == n).unwrap();
    let (ts, lts, ui, up) = (
        col("timestamp"),
        col("local_timestamp"),
        col("underlying_index"),
        col("underlying_price"),
    );
    let mut out = format!("{header}\n");
    for l in lines {
        let mut f: Vec<String> = l.split(',').map(String::from).collect();
        if !f[ui].starts_with("SYN.") || !f[ui].ends_with("-20FEB26") {
            continue;
        }
        let later = f[ts].parse::<u64>().unwrap() + 6 * 3_600_000_000;
        f[ts] = later.to_string();
        f[lts] = later.to_string();
        f[ui] = f[ui].trim_start_matches("SYN.").to_string();
        f[up] = (f[up].parse::<f64>().unwrap() * 1.01).to_string();
        out.push_str(&f.join(","));
        out.push('\n');
    }
    (full, write(dir, "renamed.csv", &out))
}

#[test]
fn a_renamed_underlying_keeps_the_expiry_forward_continuous_and_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let (full, renamed) = chain_with_a_rename(dir.path());
    let mut src = TardisSource::open(&[full, renamed], None).unwrap();
    let reg = src.registry().clone();
    let mut ev = SourceEvent::default();
    let mut price: HashMap<u32, f64> = HashMap::new();
    let mut marks = 0;
    while src.next(&mut ev) {
        let e = ev.event;
        if let Some(p) = e.as_underlying_price() {
            price.insert(e.instrument_id, p);
        }
        if let Some((_, _, under)) = e.as_option_mark() {
            // The option's forward has the price its mark was computed with: the hedger's
            // forward-driven delta follows the market through the rename.
            let f = reg.get(e.instrument_id).unwrap().forward_id;
            let sym = reg.get(e.instrument_id).unwrap().symbol().to_string();
            assert_eq!(price.get(&f), Some(&under), "{sym}");
            marks += 1;
        }
    }
    assert_eq!(src.rejects().total(), 0, "{}", src.rejects());
    let btc = reg.id_of("BTC-20FEB26-80000-C").unwrap();
    let fwd = reg.get(btc).unwrap().forward_id;
    assert_eq!(reg.get(fwd).unwrap().symbol(), "SYN.BTC-20FEB26");
    let mut renames: Vec<(String, String)> =
        src.renames().into_iter().map(|(o, n, _)| (o, n)).collect();
    renames.sort();
    assert_eq!(
        renames,
        [
            ("SYN.BTC-20FEB26".to_string(), "BTC-20FEB26".to_string()),
            ("SYN.ETH-20FEB26".to_string(), "ETH-20FEB26".to_string()),
        ]
    );
    assert!(marks > 1_556);
}

#[test]
fn out_of_range_timestamps_are_rejected_and_do_not_poison_later_rows() {
    let dir = tempfile::tempdir().unwrap();
    let header =
        "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount";
    let row = |ts: &str| format!("deribit,BTC-PERPETUAL,{ts},{ts},10,100.5,100,20\n");
    let text = format!(
        "{header}\n{}{}{}{}",
        row("1769921642172460"),
        row("1769921642172460000"), // 19 digits: nanoseconds where microseconds belong
        row("99999999999999999999"), // 20 digits, over u64::MAX
        row("1769921643172460"),
    );
    let p = write(dir.path(), "q.csv", &text);
    let mut src = TardisSource::open(&[p], None).unwrap();
    let evs = drain(&mut src);
    assert_eq!(evs.len(), 2);
    let r = src.rejects();
    assert_eq!(r.get(RejectReason::TimestampRange), 2, "{r}");
    assert_eq!(r.get(RejectReason::TimeBackwards), 0, "{r}");
    assert_eq!(r.total(), 2, "{r}");
}

#[test]
fn a_day_long_gap_in_paced_replay_is_skipped_with_a_warning() {
    let data_dir = tempfile::tempdir().unwrap();
    let shm = testkit::shm::namespace_dir("fh-gap-");
    let header =
        "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount";
    let day_us: u64 = 86_400_000_000;
    let t0: u64 = 1_769_921_642_172_460;
    let text = format!(
        "{header}\nderibit,BTC-PERPETUAL,{t0},{t0},10,100.5,100,20\nderibit,BTC-PERPETUAL,{t1},{t1},10,101,100.5,20\n",
        t1 = t0 + day_us
    );
    let p = write(data_dir.path(), "gap.csv", &text);
    // The duration is only a safety stop so that a regression fails instead of hanging.
    let out = Command::new(BIN)
        .arg("--shm-dir")
        .arg(shm.path())
        .args(["--speed", "1", "--max-gap", "0.05", "--duration", "20"])
        .arg("tardis")
        .arg(&p)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout} {stderr}");
    assert!(stdout.contains("stopped (end of source)"), "{stdout}");
    assert!(stdout.contains("published 2 events"), "{stdout}");
    assert!(
        stdout.contains("gaps skipped 1 (longest 86400 s)"),
        "{stdout}"
    );
    assert!(stderr.contains("gap(s) in the recording"), "{stderr}");
}

#[test]
fn the_binary_reports_rows_used_in_part_by_reason_in_its_summary_and_counters() {
    use shm_layout::{CounterValue, CountersReader, OpenOptions};
    let shm = testkit::shm::namespace_dir("fh-partial-");
    let out = Command::new(BIN)
        .arg("--shm-dir")
        .arg(shm.path())
        .args(["--speed", "max", "tardis"])
        .arg(data("deribit-2026/options_chain_2026-02-02_full.csv"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("from 1556 rows"), "{stdout}");
    assert!(
        stdout.contains("rows used 1556 (1556 in part: quote_size_unknown="),
        "{stdout}"
    );
    assert!(stdout.contains("rejected 0 (none)"), "{stdout}");
    let c = CountersReader::open(shm.path(), "feed-handler", OpenOptions::default()).unwrap();
    let get = |label: &str| {
        c.snapshot()
            .into_iter()
            .find(|(l, _)| l == label)
            .map(|(_, v)| v)
    };
    assert_eq!(get("rows_partial"), Some(CounterValue::Counter(1556)));
    let unknown = match get("parts_dropped{reason=\"quote_size_unknown\"}") {
        Some(CounterValue::Counter(n)) => n,
        other => panic!("{other:?}"),
    };
    let one_sided = match get("parts_dropped{reason=\"quote_one_sided\"}") {
        Some(CounterValue::Counter(n)) => n,
        other => panic!("{other:?}"),
    };
    assert_eq!(unknown + one_sided, 1556);
    assert_eq!(get("underlying_renames"), Some(CounterValue::Counter(0)));
    // The last-value table (what the simulator and a lapped hedger read) keeps the flag.
    let lvt = shm_layout::LastValueTable::open(
        shm.path(),
        shm_layout::names::LVT,
        OpenOptions::default(),
    )
    .unwrap();
    let quoted: Vec<LastValue> = (0..lvt.capacity() as u32)
        .filter_map(|id| lvt.read(id))
        .filter(|lv| lv.valid & LastValue::HAS_QUOTE != 0)
        .collect();
    assert!(!quoted.is_empty());
    assert!(quoted.iter().all(|lv| !lv.quote_size_known()));
}
