//! The operator commands against a namespace whose segments this test creates with the
//! shm-layout API (a stand-in for the three processes): `stat --once`, `positions`, `tail`,
//! `kill`/`halt`/`reduce-only`/`resume` and `export`, each through the real `hedgectl` binary.
//! The same commands against the real processes are in `ops_live.rs`.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Zeroable;
use common::{ok, scrape};
use shm_layout::control::{ControlBlock, TradingState};
use shm_layout::counters::{CountersWriter, ProcessState};
use shm_layout::segment::{names, StalePolicy};
use shm_layout::{BroadcastWriter, HedgeOrder, InstrumentTable, MarketEvent, SpscProducer};

fn hedgectl(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args(args)
        .arg("--shm-dir")
        .arg(dir)
        .output()
        .expect("run hedgectl")
}

/// A namespace with instruments, a hedger's counters, the control block, an md ring being
/// published by a thread, and three queued orders. Dropping it stops the thread and removes
/// the directory.
struct FakeEngine {
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    publisher: Option<std::thread::JoinHandle<()>>,
    control: ControlBlock,
    _keep: (InstrumentTable, SpscProducer<HedgeOrder>),
}

impl FakeEngine {
    fn start() -> FakeEngine {
        let dir = testkit::shm::namespace_dir("hedgectl-ops-");
        let d = dir.path();
        let defs = testkit::shm::index_and_perpetuals(&["BTC"]);
        let table =
            InstrumentTable::create(d, names::INSTRUMENTS, &defs, StalePolicy::Replace).unwrap();
        let control = ControlBlock::create(d, StalePolicy::Replace).unwrap();
        let mut orders =
            SpscProducer::<HedgeOrder>::create(d, names::ORDERS, 64, StalePolicy::Replace).unwrap();
        for i in 1..=3u64 {
            let mut o = HedgeOrder::zeroed();
            o.client_order_id = i;
            o.instrument_id = 1;
            o.side = shm_layout::Side::Buy as u8;
            o.order_type = shm_layout::OrderType::Limit as u8;
            o.tif = shm_layout::TimeInForce::Ioc as u8;
            o.action = shm_layout::OrderAction::New as u8;
            o.qty = 10.0 * i as f64;
            o.limit_px = 50_000.5;
            o.feed_recv_ts_ns = 1_000;
            o.publish_ts_ns = 4_500;
            orders.push(o).unwrap();
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, d2) = (Arc::clone(&stop), d.to_path_buf());
        let publisher = std::thread::spawn(move || {
            let mut cnc = CountersWriter::create(&d2, "hedger", StalePolicy::Replace).unwrap();
            let sent = cnc.counter("orders_sent");
            let lapped = cnc.counter("md_lapped");
            let rej = cnc.counter(r#"limit_rejects{limit="max_qty"}"#);
            let nd = cnc.gauge(r#"net_delta{underlying="BTC"}"#);
            let od = cnc.gauge(r#"option_delta{underlying="BTC"}"#);
            let band = cnc.gauge(r#"band{underlying="BTC"}"#);
            sent.add(3);
            rej.add(2);
            lapped.set(0);
            nd.set(0.25);
            od.set(-12.5);
            band.set(1.5);
            cnc.set_state(ProcessState::Running);
            let mut md =
                BroadcastWriter::<MarketEvent>::create(&d2, names::MD, 1024, StalePolicy::Replace)
                    .unwrap();
            let mut px = 50_000.0;
            while !s2.load(Ordering::Relaxed) {
                px += 0.5;
                let mut e =
                    MarketEvent::quote(1, 0, shm_layout::clock::now_ns(), px, 1.0, px + 0.5, 2.0);
                e.seq = md.position() + 1;
                md.publish(&e);
                cnc.heartbeat();
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        // Wait for the thread's segments.
        for _ in 0..500 {
            if d.join("md").exists() && d.join("cnc-hedger").exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(50));
        FakeEngine {
            dir,
            stop,
            publisher: Some(publisher),
            control,
            _keep: (table, orders),
        }
    }
    fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for FakeEngine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.publisher.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn stat_once_shows_liveness_counters_rings_and_risk() {
    let e = FakeEngine::start();
    let out = ok(hedgectl(e.dir(), &["stat", "--once"]));
    assert!(out.contains("hedger"), "{out}");
    assert!(out.contains("alive") && out.contains("running"), "{out}");
    assert!(
        out.contains("orders_sent") && out.contains("limit_rejects"),
        "{out}"
    );
    let orders = out.lines().find(|l| l.starts_with("orders ")).expect(&out);
    assert!(
        orders.contains("spsc") && orders.contains(" 3 "),
        "{orders}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("md ") && l.contains("broadcast")),
        "{out}"
    );
    let btc = out.lines().find(|l| l.starts_with("BTC ")).expect(&out);
    assert!(
        btc.contains("0.25") && btc.contains("-12.5") && btc.contains("active"),
        "{btc}"
    );
    assert!(out.contains("kill switch: off"), "{out}");
}

#[test]
fn positions_lists_each_underlying() {
    let e = FakeEngine::start();
    let out = ok(hedgectl(e.dir(), &["positions"]));
    assert!(out.contains("hedger pid"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("BTC ") && l.contains("-12.5")),
        "{out}"
    );
}

#[test]
fn tail_decodes_orders_without_consuming_and_md_with_its_own_reader() {
    let e = FakeEngine::start();
    let out = ok(hedgectl(e.dir(), &["tail", "orders", "-n", "10"]));
    let lines: Vec<&str> = out.lines().filter(|l| l.starts_with("order ")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(
        lines[0].contains("cid=1") && lines[0].contains("BTC-PERPETUAL"),
        "{out}"
    );
    assert!(
        lines[2].contains("30") && lines[2].contains("queued"),
        "{out}"
    );
    // Nothing was consumed: a second tail sees the same three.
    let again = ok(hedgectl(e.dir(), &["tail", "orders"]));
    assert_eq!(again.lines().filter(|l| l.starts_with("order ")).count(), 3);

    let md = ok(hedgectl(e.dir(), &["tail", "md", "-n", "3"]));
    let quotes: Vec<&str> = md.lines().filter(|l| l.starts_with("md seq=")).collect();
    assert_eq!(quotes.len(), 3, "{md}");
    assert!(quotes[0].contains("BTC-PERPETUAL quote"), "{md}");
}

#[test]
fn kill_halt_reduce_only_resume_write_the_control_block() {
    let e = FakeEngine::start();
    let out = ok(hedgectl(e.dir(), &["kill"]));
    assert!(out.contains("kill switch ON"), "{out}");
    assert!(e.control.kill_switch());

    ok(hedgectl(e.dir(), &["halt", "BTC"]));
    assert_eq!(e.control.trading_state(0), TradingState::Halted);
    ok(hedgectl(e.dir(), &["reduce-only", "BTC-PERPETUAL"]));
    assert_eq!(e.control.trading_state(0), TradingState::ReduceOnly);
    let stat = ok(hedgectl(e.dir(), &["stat", "--once"]));
    assert!(stat.contains("kill switch: ON"), "{stat}");
    assert!(
        stat.lines()
            .any(|l| l.starts_with("BTC ") && l.contains("reduce-only")),
        "{stat}"
    );

    let out = ok(hedgectl(e.dir(), &["resume"]));
    assert!(
        out.contains("BTC (id 0): active") && out.contains("kill switch off"),
        "{out}"
    );
    assert!(!e.control.kill_switch());
    assert_eq!(e.control.trading_state(0), TradingState::Active);

    let bad = hedgectl(e.dir(), &["halt", "DOGE"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown underlying 'DOGE'"));
}

#[test]
fn export_serves_prometheus_text_over_loopback() {
    let e = FakeEngine::start();
    let body = scrape(
        &[OsStr::new("--shm-dir"), e.dir().as_os_str()],
        Stdio::inherit(),
    );
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    assert!(body.contains("text/plain; version=0.0.4"), "{body}");
    assert!(
        body.contains("hedge_orders_sent_total{role=\"hedger\"} 3\n"),
        "{body}"
    );
    assert!(
        body.contains("hedge_limit_rejects_total{role=\"hedger\",limit=\"max_qty\"} 2\n"),
        "{body}"
    );
    assert!(
        body.contains("hedge_net_delta{role=\"hedger\",underlying=\"BTC\"} 0.25\n"),
        "{body}"
    );
    assert!(
        body.contains("hedge_process_up{role=\"hedger\"} 1\n"),
        "{body}"
    );
    assert!(body.contains("hedge_kill_switch 0\n"), "{body}");
    assert!(
        body.contains("hedge_ring_len{ring=\"orders\"} 3\n"),
        "{body}"
    );
}

#[test]
fn commands_on_a_missing_namespace_fail_with_one_clear_line() {
    let dir = tempfile::TempDir::new().unwrap();
    let gone = dir.path().join("nothing-here");
    let o = hedgectl(&gone, &["stat", "--once"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("does not exist") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn stat_refreshes_with_rates_until_interrupted() {
    let e = FakeEngine::start();
    let child = Command::new(env!("CARGO_BIN_EXE_hedgectl"))
        .args(["stat", "--interval-ms", "300", "--shm-dir"])
        .arg(e.dir())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{:?}", o.status);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.matches("PROCESS ").count() >= 2, "{out}");
    // From the second refresh on, counters have a rate column (orders_sent does not move: 0).
    let rated = out
        .lines()
        .filter(|l| l.starts_with("hedger") && l.contains("orders_sent"))
        .any(|l| l.trim_end().ends_with(" 0"));
    assert!(rated, "{out}");
}
