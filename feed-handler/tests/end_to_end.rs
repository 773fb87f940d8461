//! The `feed-handler` binary against a temporary segment directory: the ring, the last-value
//! table, the instruments table and the counters read back by another "process" (this test).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use shm_layout::{
    names, BroadcastReader, CounterValue, CountersReader, InstrumentTable, LastValueTable,
    MarketEvent, OpenOptions, Poll, ProcessState,
};

const BIN: &str = env!("CARGO_BIN_EXE_feed-handler");

fn data(rel: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/")).join(rel)
}

/// The stdout of a run that must have exited 0 (else the test fails showing both streams).
fn success_stdout(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The feed-handler binary writing into the segment directory `shm_dir`.
fn feed_handler(shm_dir: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--shm-dir").arg(shm_dir);
    c
}

fn shm_dir() -> tempfile::TempDir {
    testkit::shm::namespace_dir("fh-e2e-")
}

fn read_all(dir: &Path) -> Vec<MarketEvent> {
    let mut r =
        BroadcastReader::<MarketEvent>::open_from_start(dir, names::MD, OpenOptions::default())
            .unwrap();
    let mut out = Vec::new();
    loop {
        match r.poll() {
            Poll::Message(m) => out.push(m),
            Poll::Empty => return out,
            Poll::Lapped { lost } => panic!("lapped: lost {lost}"),
        }
    }
}

fn counter(dir: &Path, label: &str) -> Option<CounterValue> {
    let c = CountersReader::open(dir, "feed-handler", OpenOptions::default()).unwrap();
    c.snapshot()
        .into_iter()
        .find(|(l, _)| l == label)
        .map(|(_, v)| v)
}

#[test]
fn tardis_replay_publishes_every_valid_row_into_the_ring_and_tables() {
    let dir = shm_dir();
    let out = feed_handler(dir.path())
        .args(["--speed", "max", "tardis"])
        .arg(data("deribit/options_chain_2020-05-14.csv"))
        .arg(data("tardis/binance-futures_book_snapshot_5_BTCUSDT.csv"))
        .arg(data("tardis/deribit_incremental_book_L2_BTC-PERPETUAL.csv"))
        .output()
        .unwrap();
    let stdout = success_stdout(&out);
    assert!(stdout.contains("published 889 events"), "{stdout}");
    let evs = read_all(dir.path());
    assert_eq!(evs.len(), 889);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e.seq, i as u64 + 1);
        assert!(e.is_valid());
    }
    let inst =
        InstrumentTable::open(dir.path(), names::INSTRUMENTS, OpenOptions::default()).unwrap();
    let lvt = LastValueTable::open(dir.path(), names::LVT, OpenOptions::default()).unwrap();
    assert_eq!(lvt.capacity(), inst.len());
    let defs = inst.defs();
    let perp = defs.iter().find(|d| d.symbol() == "BTCUSDT").unwrap();
    let lv = lvt.read(perp.id).unwrap();
    // Last book_snapshot row of the file, with its 5 levels.
    assert_eq!(lv.bid_levels, 5);
    assert_eq!(lv.ask_levels, 5);
    assert_eq!(lv.bid_px, lv.bid_depth[0][0]);
    let last = evs
        .iter()
        .rev()
        .find(|e| e.instrument_id == perp.id)
        .unwrap();
    assert_eq!(lv.last_seq, last.seq);
    for (name, want) in [
        ("events_published", 889),
        ("events_by_kind{kind=\"option_mark\"}", 310),
        // The incremental sample holds only asks: its one batch is counted one-sided.
        ("events_rejected{reason=\"one_sided\"}", 1),
        ("rows_read", 335),
    ] {
        assert_eq!(
            counter(dir.path(), name),
            Some(CounterValue::Counter(want)),
            "{name}"
        );
    }
    assert!(stdout.contains("rejected 1 (one_sided=1)"), "{stdout}");
    let c = CountersReader::open(dir.path(), "feed-handler", OpenOptions::default()).unwrap();
    assert_eq!(c.state(), Some(ProcessState::Stopped));
}

#[test]
fn synthetic_run_is_deterministic_and_a_restart_recovers_the_sequence() {
    let run = |dir: &Path| {
        let st = feed_handler(dir)
            .args([
                "--seed",
                "11",
                "--rate",
                "max",
                "--max-events",
                "5000",
                "synthetic",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    };
    let (a, b) = (shm_dir(), shm_dir());
    run(a.path());
    run(b.path());
    let (ea, eb) = (read_all(a.path()), read_all(b.path()));
    assert_eq!(ea.len(), 5000);
    let strip = |v: &[MarketEvent]| {
        v.iter()
            .map(|e| {
                let mut e = *e;
                e.recv_ts_ns = 0;
                e
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&ea), strip(&eb), "same seed, same events");
    // Restart on the same segments (default --on-stale recover): the sequence continues.
    run(a.path());
    let all = read_all(a.path());
    assert_eq!(all.len(), 10_000);
    assert!(all.iter().enumerate().all(|(i, e)| e.seq == i as u64 + 1));
}

#[test]
fn sigterm_stops_cleanly_with_a_summary() {
    let dir = shm_dir();
    let child = feed_handler(dir.path())
        .args([
            "--rate",
            "2000",
            "--stats-interval",
            "0",
            "--idle",
            "backoff-park",
            "synthetic",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait (bounded) until events flow.
    let t0 = Instant::now();
    loop {
        let n = BroadcastReader::<MarketEvent>::open_from_start(
            dir.path(),
            names::MD,
            OpenOptions::wait(Duration::from_secs(10)),
        )
        .map(|r| r.lag())
        .unwrap_or(0);
        if n > 10 || t0.elapsed() > Duration::from_secs(20) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // `kill` from procps/util-linux (unsafe libc::kill is forbidden in this crate).
    let st = match Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
    {
        Ok(st) => st,
        Err(e) => {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("skipped: no `kill` command ({e})");
            return;
        }
    };
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    let stdout = success_stdout(&out);
    assert!(stdout.contains("stopped (signal)"), "{stdout}");
    let c = CountersReader::open(dir.path(), "feed-handler", OpenOptions::default()).unwrap();
    assert_eq!(c.state(), Some(ProcessState::Stopped));
}

#[test]
fn a_missing_file_is_one_error_line_and_a_failure_exit() {
    let dir = shm_dir();
    let out = feed_handler(dir.path())
        .args(["tardis", "/nonexistent/options_chain.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("feed-handler: error: cannot open /nonexistent/options_chain.csv"));
}
