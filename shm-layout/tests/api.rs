//! Behaviour of the public API in one process: rings, tables, counters, control, header errors.

mod common;

use bytemuck::Zeroable;
use common::shm_dir;
use shm_layout::segment::header;
use shm_layout::*;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

fn ev(i: u64) -> MarketEvent {
    let mut e = MarketEvent::underlying_price(7, i, i, 100.0 + i as f64);
    e.seq = i;
    e
}

fn order(i: u64) -> HedgeOrder {
    let mut o = HedgeOrder::zeroed();
    o.client_order_id = i;
    o.qty = i as f64;
    o
}

/// Writes a private (0600) file, as a segment creator would.
fn write_private(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

fn poke(path: &Path, off: usize, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, off as u64).unwrap();
}

fn dead_pid() -> u32 {
    let mut c = std::process::Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

#[test]
fn broadcast_reader_sees_messages_in_order_then_empty() {
    let d = shm_dir();
    let (mut w, mut r) = md_ring(d.path());
    assert_eq!(r.poll(), Poll::Empty);
    for i in 0..5 {
        assert_eq!(w.publish(&ev(i)), i);
    }
    assert_eq!(r.lag(), 5);
    assert_eq!(r.writer_position(), 5);
    for i in 0..5 {
        assert_eq!(r.poll(), Poll::Message(ev(i)));
    }
    assert_eq!(r.poll(), Poll::Empty);
    w.publish_batch(&[ev(5), ev(6)]);
    assert_eq!(w.position(), 7);
    assert_eq!(r.poll(), Poll::Message(ev(5)));
    assert_eq!(r.position(), 6);
}

#[test]
fn lapped_reader_counts_lost_messages_exactly() {
    let d = shm_dir();
    let (_w, mut r) = lapped_md_ring(d.path());
    // Oldest intact is 30 + 1 - 8 = 23.
    assert_eq!(r.poll(), Poll::Lapped { lost: 23 });
    let mut got = vec![];
    while let Poll::Message(e) = r.poll() {
        got.push(e.seq);
    }
    assert_eq!(got, (23..30).collect::<Vec<_>>());
    // A late reader starting from the start sees the same window.
    let mut r2 =
        BroadcastReader::<MarketEvent>::open_from_start(d.path(), "md", OpenOptions::default())
            .unwrap();
    assert_eq!(r2.poll(), Poll::Message(ev(23)));
}

#[test]
fn ready_says_whether_poll_has_something_without_reading_it() {
    let d = shm_dir();
    let (mut w, mut r) = md_ring(d.path());
    assert!(!r.ready());
    w.publish(&ev(0));
    assert!(r.ready());
    assert!(r.ready(), "ready does not consume");
    assert_eq!(r.poll(), Poll::Message(ev(0)));
    assert!(!r.ready());
    for i in 1..20 {
        w.publish(&ev(i));
    }
    assert!(r.ready(), "a lap is something to poll");
    assert_eq!(r.position(), 1);
    assert_eq!(r.poll(), Poll::Lapped { lost: 12 });
}

#[test]
fn skip_to_writer_skips_and_counts_every_unread_message() {
    let d = shm_dir();
    let (mut w, mut r) = lapped_md_ring(d.path());
    assert_eq!(r.poll(), Poll::Lapped { lost: 23 });
    // 23..30 are still readable; skipping them counts them.
    assert_eq!(r.skip_to_writer(), 7);
    assert_eq!(r.poll(), Poll::Empty);
    assert_eq!(r.skip_to_writer(), 0);
    w.publish(&ev(30));
    assert_eq!(r.poll(), Poll::Message(ev(30)));
}

#[test]
fn spsc_push_pop_full_hands_message_back() {
    let d = shm_dir();
    let mut p =
        SpscProducer::<HedgeOrder>::create(d.path(), names::ORDERS, 4, StalePolicy::Fail).unwrap();
    let mut c =
        SpscConsumer::<HedgeOrder>::open(d.path(), names::ORDERS, OpenOptions::default()).unwrap();
    assert_eq!(c.pop(), None);
    for i in 0..4 {
        p.push(order(i)).unwrap();
    }
    assert_eq!(p.push(order(9)), Err(order(9)));
    assert_eq!(p.len(), 4);
    assert_eq!(c.len(), 4);
    assert_eq!(c.pop(), Some(order(0)));
    p.push(order(4)).unwrap();
    let mut out = [HedgeOrder::zeroed(); 8];
    assert_eq!(c.pop_batch(&mut out), 4);
    assert_eq!(&out[..4], &[order(1), order(2), order(3), order(4)]);
    assert_eq!(
        p.push_batch(&[order(5), order(6), order(7), order(8), order(9)]),
        4
    );
    assert_eq!(c.peek(), Some(order(5)));
    assert_eq!(c.peek(), Some(order(6)));
    c.commit(1);
    assert_eq!(c.position(), 6);
    drop(c);
    // A restarted consumer resumes at the committed position: 6 is read again, not lost.
    let mut c =
        SpscConsumer::<HedgeOrder>::open(d.path(), names::ORDERS, OpenOptions::default()).unwrap();
    assert_eq!(c.pop(), Some(order(6)));
    assert_eq!(c.pop(), Some(order(7)));
    c.rewind();
    assert_eq!(c.pop(), Some(order(8)));
    assert_eq!(c.pop(), None);
    assert!(c.is_empty());
}

#[test]
fn second_consumer_is_refused_while_first_is_attached() {
    let d = shm_dir();
    let _p = SpscProducer::<ExecEvent>::create(d.path(), "execs", 8, StalePolicy::Fail).unwrap();
    let c = SpscConsumer::<ExecEvent>::open(d.path(), "execs", OpenOptions::default()).unwrap();
    let e = SpscConsumer::<ExecEvent>::open(d.path(), "execs", OpenOptions::default())
        .err()
        .unwrap();
    assert!(matches!(e, SegmentError::InUse { pid, .. } if pid == std::process::id()));
    drop(c);
    SpscConsumer::<ExecEvent>::open(d.path(), "execs", OpenOptions::default()).unwrap();
}

#[test]
fn restarted_producer_recovers_unconsumed_messages() {
    let d = shm_dir();
    let mut p =
        SpscProducer::<HedgeOrder>::create(d.path(), "orders", 8, StalePolicy::Fail).unwrap();
    p.push(order(1)).unwrap();
    p.push(order(2)).unwrap();
    drop(p);
    poke(
        &d.path().join("orders"),
        header::CREATOR_PID,
        &dead_pid().to_le_bytes(),
    );
    let mut p =
        SpscProducer::<HedgeOrder>::create(d.path(), "orders", 8, StalePolicy::Recover).unwrap();
    assert_eq!(p.position(), 2);
    p.push(order(3)).unwrap();
    let mut c =
        SpscConsumer::<HedgeOrder>::open(d.path(), "orders", OpenOptions::default()).unwrap();
    let mut out = [HedgeOrder::zeroed(); 4];
    assert_eq!(c.pop_batch(&mut out), 3);
    assert_eq!(out[2], order(3));
}

#[test]
fn last_value_table_reads_what_was_written() {
    let d = shm_dir();
    let t = LastValueTable::create(d.path(), names::LVT, 16, StalePolicy::Fail).unwrap();
    let r = LastValueTable::open(d.path(), names::LVT, OpenOptions::default()).unwrap();
    assert_eq!(r.read(3), None);
    assert_eq!(r.read(99), None);
    let mut v = LastValue::zeroed();
    v.apply(&ev(4));
    assert!(t.write(3, &v));
    assert!(!t.write(16, &v));
    assert_eq!(r.read(3), Some(v));
    assert_eq!(r.capacity(), 16);
    assert_eq!(r.entry_seq(3), Some(2));
}

#[test]
fn instrument_table_round_trips_definitions() {
    let d = shm_dir();
    let defs: Vec<InstrumentDef> = (0..3)
        .map(|i| {
            let mut x = InstrumentDef::zeroed();
            x.id = i;
            x.strike = 1000.0 * i as f64;
            x.set_symbol(&format!("SYM{i}"));
            x
        })
        .collect();
    InstrumentTable::create(d.path(), names::INSTRUMENTS, &defs, StalePolicy::Fail).unwrap();
    let t = InstrumentTable::open(d.path(), names::INSTRUMENTS, OpenOptions::default()).unwrap();
    assert_eq!(t.defs(), &defs[..]);
    assert_eq!(t.get(2).unwrap().symbol(), "SYM2");
    assert_eq!(t.get(3), None);
    let mut bad = defs.clone();
    bad[1].id = 5;
    assert!(matches!(
        InstrumentTable::create(d.path(), "x", &bad, StalePolicy::Fail),
        Err(SegmentError::Corrupt { .. })
    ));
}

shm_layout::counter_schema! {
    /// A schema with each scope and a label set.
    enum TestSchema {
        /// Global counter.
        Sent = CounterDef::counter("orders_sent", "orders", "Hedge orders written to the ring"),
        /// Per-underlying gauge.
        Delta = CounterDef::gauge("net_delta", "contracts", "Net delta").per_underlying(),
        /// Per underlying and reason.
        Holds = CounterDef::counter("holds", "decisions", "Held decisions by reason")
            .per_underlying()
            .by("reason", &["band", "rate"]),
    }
}

/// The schema is the only declaration: the segment carries every label, kind, unit and help
/// text, and the handles index the right records.
#[test]
fn a_schema_registers_labels_units_and_help_and_indexes_its_records() {
    let d = shm_dir();
    let mut w = CountersWriter::create(d.path(), "hedger", StalePolicy::Fail).unwrap();
    let set = w.register::<TestSchema>(&["BTC", "ETH"]);
    set.add(TestSchema::Sent, 3);
    set.set_f64_at(TestSchema::Delta, 1, 0, -2.5);
    set.set_at(TestSchema::Holds, 1, 1, 9);
    let r = CountersReader::open(d.path(), "hedger", OpenOptions::default()).unwrap();
    let recs = r.records();
    let labels: Vec<&str> = recs.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "orders_sent",
            r#"net_delta{underlying="BTC"}"#,
            r#"net_delta{underlying="ETH"}"#,
            r#"holds{underlying="BTC",reason="band"}"#,
            r#"holds{underlying="BTC",reason="rate"}"#,
            r#"holds{underlying="ETH",reason="band"}"#,
            r#"holds{underlying="ETH",reason="rate"}"#,
        ]
    );
    assert_eq!(recs[0].value, CounterValue::Counter(3));
    assert_eq!((recs[0].unit.as_str(), recs[0].kind), ("orders", 1));
    assert_eq!(recs[0].help, "Hedge orders written to the ring");
    assert_eq!(recs[2].value, CounterValue::Gauge(-2.5));
    assert_eq!((recs[2].unit.as_str(), recs[2].kind), ("contracts", 2));
    assert_eq!(recs[6].value, CounterValue::Counter(9));
    assert_eq!(recs[1].value, CounterValue::Gauge(0.0));
    // Registering again (as a restarted process does) finds the same records and values.
    let again = w.register::<TestSchema>(&["BTC", "ETH"]);
    assert_eq!(again.get_at(TestSchema::Holds, 1, 1), 9);
    assert_eq!(r.records().len(), 7);
}

/// A record whose kind this build does not know is still listed (raw word, its kind kept),
/// so a newer writer's counters are shown, not dropped.
#[test]
fn a_record_of_unknown_kind_is_listed_with_its_kind() {
    let d = shm_dir();
    let mut w = CountersWriter::create(d.path(), "gateway", StalePolicy::Fail).unwrap();
    w.counter("fills").add(4);
    w.counter("future_thing").add(11);
    let rec1 = shm_layout::counters::RECORDS_OFFSET + shm_layout::counters::RECORD_SIZE;
    poke(&d.path().join("cnc-gateway"), rec1 + 8, &7u32.to_le_bytes());
    let r = CountersReader::open(d.path(), "gateway", OpenOptions::default()).unwrap();
    let recs = r.records();
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[1].label, "future_thing");
    assert_eq!(
        (recs[1].kind, recs[1].value),
        (7, CounterValue::Counter(11))
    );
}

#[test]
fn counters_past_the_segments_capacity_work_and_are_counted_as_not_shown() {
    let d = shm_dir();
    let mut w = CountersWriter::create(d.path(), "many", StalePolicy::Fail).unwrap();
    let cap = shm_layout::counters::CAPACITY;
    let all: Vec<_> = (0..cap + 3).map(|i| w.counter(&format!("c{i}"))).collect();
    assert_eq!(w.not_shown(), 3);
    all[cap + 2].add(7);
    assert_eq!(all[cap + 2].get(), 7, "a counter not shown still counts");
    let r = CountersReader::open(d.path(), "many", OpenOptions::default()).unwrap();
    assert_eq!(r.snapshot().len(), cap);
    assert_eq!(
        w.counter("c0").get(),
        0,
        "a known label is found, not refused"
    );
    assert_eq!(w.not_shown(), 3);
}

#[test]
fn counters_are_visible_to_a_reader() {
    let d = shm_dir();
    let mut w = CountersWriter::create(d.path(), "hedger", StalePolicy::Fail).unwrap();
    let c = w.counter("orders_sent");
    let g = w.gauge("net_delta");
    c.inc();
    c.add(4);
    g.set(-1.5);
    assert_eq!(
        w.counter("orders_sent").get(),
        5,
        "same label, same counter"
    );
    w.set_state(ProcessState::Running);
    w.heartbeat();
    let r = CountersReader::open(d.path(), "hedger", OpenOptions::default()).unwrap();
    assert_eq!(r.pid(), std::process::id());
    assert_eq!(r.role(), "hedger");
    assert_eq!(r.state(), Some(ProcessState::Running));
    assert_eq!(
        r.snapshot(),
        vec![
            ("orders_sent".to_string(), CounterValue::Counter(5)),
            ("net_delta".to_string(), CounterValue::Gauge(-1.5)),
        ]
    );
    let now = clock::now_ns();
    assert_eq!(r.liveness(now, Duration::from_secs(60)), Liveness::Alive);
    assert_eq!(
        r.liveness(now + 120_000_000_000, Duration::from_secs(60)),
        Liveness::StaleHeartbeat
    );
    poke(
        &d.path().join("cnc-hedger"),
        header::CREATOR_PID,
        &dead_pid().to_le_bytes(),
    );
    assert_eq!(r.liveness(now, Duration::from_secs(60)), Liveness::Dead);
    CountersWriter::create(d.path(), "gateway", StalePolicy::Fail).unwrap();
    assert_eq!(list_roles(d.path()), vec!["gateway", "hedger"]);
}

#[test]
fn control_block_bumps_generation_on_every_write() {
    let d = shm_dir();
    let hedger = ControlBlock::create(d.path(), StalePolicy::Fail).unwrap();
    let ctl = ControlBlock::open(d.path(), OpenOptions::default()).unwrap();
    let g0 = hedger.generation();
    assert!(!hedger.kill_switch());
    assert_eq!(hedger.trading_state(5), TradingState::Active);
    ctl.set_kill_switch(true);
    assert!(ctl.set_trading_state(5, TradingState::ReduceOnly));
    assert!(!ctl.set_trading_state(1_000_000, TradingState::Halted));
    assert_eq!(hedger.generation(), g0 + 2);
    assert!(hedger.kill_switch());
    assert_eq!(hedger.trading_state(5), TradingState::ReduceOnly);
    assert_eq!(hedger.trading_state(1_000_000), TradingState::Halted);
}

#[test]
fn segments_are_created_owner_only() {
    let d = shm_dir();
    let _w = make_md(d.path());
    let mode = std::fs::metadata(d.path().join("md"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let leftovers: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary files left behind");
}

// ---- header error cases: each produces its own error ----

fn open_md(dir: &Path) -> Result<BroadcastReader<MarketEvent>, SegmentError> {
    BroadcastReader::<MarketEvent>::open(dir, "md", OpenOptions::default())
}

/// The error opening the `md` ring in `dir` gives (panics if it opens).
fn open_md_err(dir: &Path) -> SegmentError {
    open_md(dir).err().expect("the md ring opened")
}

/// Opening the `md` ring in `dir` fails with an error matching `pat`.
macro_rules! assert_md_open_fails {
    ($dir:expr, $pat:pat) => {{
        let e = open_md_err($dir);
        assert!(matches!(e, $pat), "{e:?}");
    }};
}

/// Overwrites the header bytes at `off` of the `md` segment in `dir` with `bytes`.
fn poke_md(dir: &Path, off: usize, bytes: &[u8]) {
    poke(&dir.join("md"), off, bytes);
}

fn make_md(dir: &Path) -> BroadcastWriter<MarketEvent> {
    BroadcastWriter::<MarketEvent>::create(dir, "md", 8, StalePolicy::Fail).unwrap()
}

/// A new 8-slot `md` ring in `dir` and a reader of it (at the writer's position).
fn md_ring(dir: &Path) -> (BroadcastWriter<MarketEvent>, BroadcastReader<MarketEvent>) {
    let w = make_md(dir);
    (w, open_md(dir).unwrap())
}

/// [`md_ring`] with messages 0..30 published past the reader, still at 0: it has been lapped
/// (the oldest intact message is 30 + 1 - 8 = 23).
fn lapped_md_ring(dir: &Path) -> (BroadcastWriter<MarketEvent>, BroadcastReader<MarketEvent>) {
    let (mut w, r) = md_ring(dir);
    for i in 0..30 {
        w.publish(&ev(i));
    }
    (w, r)
}

/// A valid `md` ring whose header bytes at `off` are then overwritten with `bytes`.
fn make_md_poked(dir: &Path, off: usize, bytes: &[u8]) -> BroadcastWriter<MarketEvent> {
    let w = make_md(dir);
    poke_md(dir, off, bytes);
    w
}

#[test]
fn open_missing_segment_is_missing() {
    let d = shm_dir();
    assert_md_open_fails!(d.path(), SegmentError::Missing { .. });
}

#[test]
fn open_waits_then_reports_not_initialized() {
    let d = shm_dir();
    let _w = make_md_poked(d.path(), header::INITIALIZED, &0u32.to_le_bytes());
    let t = std::time::Instant::now();
    let r = BroadcastReader::<MarketEvent>::open(
        d.path(),
        "md",
        OpenOptions::wait(Duration::from_millis(30)),
    );
    assert!(matches!(r, Err(SegmentError::NotInitialized { .. })));
    assert!(t.elapsed() >= Duration::from_millis(30));
    // A file shorter than a header is also "not initialized".
    write_private(&d.path().join("short"), b"abc");
    assert!(matches!(
        BroadcastReader::<MarketEvent>::open(d.path(), "short", OpenOptions::default()),
        Err(SegmentError::NotInitialized { .. })
    ));
}

#[test]
fn open_waits_for_a_segment_created_later() {
    let d = shm_dir();
    let dir = d.path().to_path_buf();
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        make_md(&dir)
    });
    let r = BroadcastReader::<MarketEvent>::open(
        d.path(),
        "md",
        OpenOptions::wait(Duration::from_secs(10)),
    );
    assert!(r.is_ok());
    drop(h.join());
}

#[test]
fn open_foreign_file_is_bad_magic() {
    let d = shm_dir();
    write_private(&d.path().join("md"), &[0xAB; 4096]);
    assert_md_open_fails!(d.path(), SegmentError::BadMagic { .. });
}

#[test]
fn open_other_version_is_version_mismatch() {
    let d = shm_dir();
    let _w = make_md_poked(d.path(), header::LAYOUT_VERSION, &99u32.to_le_bytes());
    let e = open_md_err(d.path());
    assert!(matches!(e, SegmentError::VersionMismatch { found: 99, .. }));
    assert!(e.to_string().contains("layout version 99"));
}

#[test]
fn open_other_layouts_is_fingerprint_mismatch() {
    let d = shm_dir();
    let _w = make_md_poked(d.path(), header::FINGERPRINT, &1u64.to_le_bytes());
    assert_md_open_fails!(d.path(), SegmentError::FingerprintMismatch { found: 1, .. });
}

#[test]
fn open_as_other_kind_or_type_is_wrong_kind() {
    let d = shm_dir();
    let _w = make_md(d.path());
    assert!(matches!(
        SpscConsumer::<MarketEvent>::open(d.path(), "md", OpenOptions::default()),
        Err(SegmentError::WrongKind { .. })
    ));
    let e = BroadcastReader::<HedgeOrder>::open(d.path(), "md", OpenOptions::default())
        .err()
        .unwrap();
    assert!(e.to_string().contains("broadcast<MarketEvent>"), "{e}");
}

#[test]
fn open_truncated_or_grown_file_is_size_mismatch() {
    let d = shm_dir();
    let _w = make_md(d.path());
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(d.path().join("md"))
        .unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len + 4096).unwrap();
    assert_md_open_fails!(d.path(), SegmentError::SizeMismatch { .. });
    f.set_len(len).unwrap();
    assert!(open_md(d.path()).is_ok());
    poke_md(d.path(), header::CAPACITY, &7u64.to_le_bytes());
    assert_md_open_fails!(d.path(), SegmentError::SizeMismatch { .. });
}

#[test]
fn create_over_live_owner_is_in_use() {
    let d = shm_dir();
    let _w = make_md(d.path());
    for policy in [
        StalePolicy::Fail,
        StalePolicy::Recover,
        StalePolicy::Replace,
    ] {
        let e = BroadcastWriter::<MarketEvent>::create(d.path(), "md", 8, policy)
            .err()
            .unwrap();
        assert!(matches!(e, SegmentError::InUse { pid, .. } if pid == std::process::id()));
    }
}

#[test]
fn create_over_dead_owner_follows_stale_policy() {
    let d = shm_dir();
    let mut w = make_md(d.path());
    w.publish(&ev(1));
    drop(w);
    let dead = dead_pid();
    poke_md(d.path(), header::CREATOR_PID, &dead.to_le_bytes());
    let e = BroadcastWriter::<MarketEvent>::create(d.path(), "md", 8, StalePolicy::Fail)
        .err()
        .unwrap();
    assert!(matches!(e, SegmentError::Stale { pid, .. } if pid == dead));
    // Recover with another capacity is refused, not silently resized.
    assert!(matches!(
        BroadcastWriter::<MarketEvent>::create(d.path(), "md", 16, StalePolicy::Recover),
        Err(SegmentError::SizeMismatch { .. })
    ));
    let w =
        BroadcastWriter::<MarketEvent>::create(d.path(), "md", 8, StalePolicy::Recover).unwrap();
    assert_eq!(w.position(), 1, "recovered contents");
    drop(w);
    poke_md(d.path(), header::CREATOR_PID, &dead.to_le_bytes());
    let w =
        BroadcastWriter::<MarketEvent>::create(d.path(), "md", 16, StalePolicy::Replace).unwrap();
    assert_eq!(w.position(), 0, "fresh segment");
    assert_eq!(w.capacity(), 16);
}

#[test]
fn reused_pid_with_other_start_time_counts_as_dead() {
    let d = shm_dir();
    let w = make_md(d.path());
    drop(w);
    // Our own (live) pid, but a start time that is not ours: a recycled pid.
    poke_md(d.path(), header::CREATOR_START_TICKS, &1u64.to_le_bytes());
    assert!(matches!(
        BroadcastWriter::<MarketEvent>::create(d.path(), "md", 8, StalePolicy::Fail),
        Err(SegmentError::Stale { .. })
    ));
}

#[test]
fn non_power_of_two_capacity_is_refused() {
    let d = shm_dir();
    assert!(matches!(
        BroadcastWriter::<MarketEvent>::create(d.path(), "md", 10, StalePolicy::Fail),
        Err(SegmentError::SizeMismatch { .. })
    ));
    assert!(matches!(
        SpscProducer::<HedgeOrder>::create(d.path(), "o", 0, StalePolicy::Fail),
        Err(SegmentError::SizeMismatch { .. })
    ));
}

/// Shrinks `file` to `capacity` entries of `entry` bytes after `region` bytes, with a header
/// that agrees (capacity and total size): what another implementation could write.
fn shrink_consistently(file: &Path, region: usize, entry: usize, capacity: u64) {
    let total = (region + entry * capacity as usize) as u64;
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(total)
        .unwrap();
    poke(file, header::CAPACITY, &capacity.to_le_bytes());
    poke(file, header::TOTAL_SIZE, &total.to_le_bytes());
}

/// Counters and control segments have one valid capacity (1024 records, 4096 ids): their
/// readers index up to it, so a smaller but self-consistent segment is refused at open
/// instead of being read past its end.
#[test]
fn counters_and_control_of_another_capacity_are_refused() {
    let d = shm_dir();
    let mut w = CountersWriter::create(d.path(), "feed", StalePolicy::Fail).unwrap();
    w.counter("events_published").inc();
    shrink_consistently(&d.path().join("cnc-feed"), 256, 64, 1);
    assert!(matches!(
        CountersReader::open(d.path(), "feed", OpenOptions::default()),
        Err(SegmentError::SizeMismatch { .. })
    ));
    let _c = ControlBlock::create(d.path(), StalePolicy::Fail).unwrap();
    shrink_consistently(&d.path().join("control"), 320, 1, 16);
    assert!(matches!(
        ControlBlock::open(d.path(), OpenOptions::default()),
        Err(SegmentError::SizeMismatch { .. })
    ));
}

#[test]
fn producer_reattaches_only_after_the_first_handle_is_gone() {
    let d = shm_dir();
    let mut p = SpscProducer::<HedgeOrder>::create(d.path(), "q", 8, StalePolicy::Fail).unwrap();
    p.push(order(1)).unwrap();
    assert!(matches!(
        SpscProducer::<HedgeOrder>::open(d.path(), "q", OpenOptions::default()),
        Err(SegmentError::InUse { .. })
    ));
    drop(p);
    let mut p = SpscProducer::<HedgeOrder>::open(d.path(), "q", OpenOptions::default()).unwrap();
    assert_eq!(p.position(), 1);
    p.push(order(2)).unwrap();
    let mut c = SpscConsumer::<HedgeOrder>::open(d.path(), "q", OpenOptions::default()).unwrap();
    assert!(c.producer_alive());
    assert_eq!(c.pop(), Some(order(1)));
    assert_eq!(c.pop(), Some(order(2)));
    drop(p);
    assert!(!c.producer_alive());
}

#[test]
fn depth_update_stores_the_promised_levels_and_compares_the_rest() {
    let d = shm_dir();
    let t = LastValueTable::create(d.path(), names::LVT, 4, StalePolicy::Fail).unwrap();
    let q = MarketEvent::quote(1, 10, 10, 99.0, 1.0, 101.0, 2.0);
    let ladder = |base: f64, step: f64| -> [[f64; 2]; DEPTH_LEVELS] {
        std::array::from_fn(|i| [base + step * i as f64, 10.0 + i as f64])
    };
    let apply = |bids: &[[f64; 2]; DEPTH_LEVELS], asks, bid_changed, ask_changed| {
        let u = DepthUpdate {
            bid_levels: DEPTH_LEVELS as u32,
            ask_levels: DEPTH_LEVELS as u32,
            bids,
            asks,
            bid_changed,
            ask_changed,
        };
        assert!(t.apply(1, &q, Some(&u)));
        let v = t.read(1).unwrap();
        (v.bid_depth, v.ask_depth)
    };
    // No promise: every word compared, the entry equals the update.
    let (b0, a0) = (ladder(99.0, -0.5), ladder(101.0, 0.5));
    let all = DepthUpdate::ALL_CHANGED;
    assert_eq!(apply(&b0, &a0, all, all), (b0, a0));
    // A truthful promise (bid levels 0 and 3, ask level 5 changed): the same result as without.
    let (mut b1, mut a1) = (b0, a0);
    b1[0][1] = 7.0;
    b1[3] = [97.0, 3.0];
    a1[5][1] = 55.0;
    assert_eq!(apply(&b1, &a1, 1 | 1 << 3, 1 << 5), (b1, a1));
    // The promise is taken at its word: a level named unchanged is not looked at (the single
    // writer's contract; the feed handler stops promising after it refuses an event).
    let mut b2 = b1;
    b2[0][1] = 8.0;
    b2[2][1] = 99.0;
    let (got_b, got_a) = apply(&b2, &a1, 1, 0);
    assert_eq!(got_b[0][1], 8.0);
    assert_eq!(got_b[2], b1[2], "level 2 was promised unchanged");
    assert_eq!(got_a, a1);
    // Without a promise again, the entry catches up.
    assert_eq!(apply(&b2, &a1, all, all), (b2, a1));
}

/// `r` was refused as unsafe (`SegmentError::Unsafe`), with a message that says `says`.
fn assert_unsafe<T>(r: Result<T, SegmentError>, says: &str) {
    let e = match r {
        Err(e @ SegmentError::Unsafe { .. }) => e.to_string(),
        Err(e) => panic!("expected Unsafe, got {e}"),
        Ok(_) => panic!("expected Unsafe, got a segment"),
    };
    assert!(e.contains(says), "{e}");
}

/// A 1024-slot market data ring named `name` in `dir`.
fn create_1024(
    dir: &Path,
    name: &str,
    policy: StalePolicy,
) -> Result<BroadcastWriter<MarketEvent>, SegmentError> {
    BroadcastWriter::<MarketEvent>::create(dir, name, 1024, policy)
}

#[test]
fn a_fifo_at_a_segment_path_is_refused_without_blocking() {
    let d = shm_dir();
    let path = d.path().join("md");
    let st = std::process::Command::new("mkfifo")
        .arg("-m")
        .arg("600")
        .arg(&path)
        .status()
        .unwrap();
    assert!(st.success());
    // A blocking open(2) of a FIFO without a writer never returns: this would hang.
    assert_unsafe(open_md(d.path()), "is a FIFO");
    assert_unsafe(create_1024(d.path(), "md", StalePolicy::Fail), "is a FIFO");
    assert_unsafe(
        SpscConsumer::<HedgeOrder>::open(
            d.path(),
            "md",
            OpenOptions::wait(Duration::from_millis(10)),
        ),
        "is a FIFO",
    );
}

#[test]
fn directories_and_symlinks_at_a_segment_path_are_refused_by_name() {
    let d = shm_dir();
    std::fs::create_dir(d.path().join("md")).unwrap();
    assert_unsafe(open_md(d.path()), "is a directory");
    // A dangling link used to read "in use by live process 0".
    std::os::unix::fs::symlink(d.path().join("nowhere"), d.path().join("lvt")).unwrap();
    assert_unsafe(
        create_1024(d.path(), "lvt", StalePolicy::Fail),
        "symbolic link",
    );
    // A link to a real segment is not followed either.
    let _w = make_md(&d.path().join("real"));
    std::os::unix::fs::symlink(d.path().join("real/md"), d.path().join("link")).unwrap();
    assert_unsafe(
        BroadcastReader::<MarketEvent>::open(d.path(), "link", OpenOptions::default()),
        "symbolic link",
    );
    // Replace is the explicit way to clear such a name.
    let w = create_1024(d.path(), "lvt", StalePolicy::Replace);
    assert!(w.is_ok());
}

#[test]
fn a_segment_others_may_write_is_refused_not_reused() {
    let d = shm_dir();
    let w = make_md(d.path());
    let path = d.path().join("md");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_unsafe(open_md(d.path()), "has mode 0666");
    drop(w);
    assert_unsafe(
        create_1024(d.path(), "md", StalePolicy::Recover),
        "has mode 0666",
    );
}

#[test]
fn a_zeroed_file_is_not_reported_as_still_starting() {
    let d = shm_dir();
    write_private(&d.path().join("md"), &[0; 4096]);
    let e = open_md_err(d.path()).to_string();
    assert!(
        e.contains("no live process is creating it (creator pid 0)")
            && !e.contains("still starting"),
        "{e}"
    );
    let e = create_1024(d.path(), "md", StalePolicy::Fail)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("names no creator process") && !e.contains("process 0"),
        "{e}"
    );
}

#[test]
fn a_corrupted_counters_header_is_refused() {
    let d = shm_dir();
    let w = CountersWriter::create(d.path(), "gateway", StalePolicy::Fail).unwrap();
    let path = d.path().join("cnc-gateway");
    poke(&path, header::FINGERPRINT, &[0x5a; 8]);
    assert!(matches!(
        CountersReader::open(d.path(), "gateway", OpenOptions::default()),
        Err(SegmentError::FingerprintMismatch { .. })
    ));
    drop(w);
    poke(&path, header::CREATOR_PID, &0u32.to_le_bytes()); // its creator is gone
    poke(&path, header::MAGIC, &[0x5a; 8]);
    assert!(matches!(
        CountersWriter::create(d.path(), "gateway", StalePolicy::Recover),
        Err(SegmentError::BadMagic { .. })
    ));
}
