//! End to end with real processes: this test plays the feed (instruments + last-value table)
//! and the hedger (creates the orders ring, reads the execs ring) around the real
//! `order-gateway` binary. Segments live in a unique temp dir under /dev/shm, removed on drop.

mod common;

use bytemuck::Zeroable;
use common::{gateway_command, gateway_counters, ioc_order, open_execs, sigterm, World};
use shm_layout::{
    CounterValue, CountersReader, ExecEvent, ExecKind, HedgeOrder, InstrumentDef, InstrumentKind,
    LastValue, OpenOptions, OptionType, ProcessState, Side, SpscConsumer, SpscProducer,
};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::ChildGuard;

fn spawn(dir: &Path, extra: &[&str]) -> ChildGuard {
    let child = gateway_command(dir)
        .args(["--rate-limit-per-s", "0"])
        .args(extra)
        .spawn()
        .expect("spawn order-gateway");
    ChildGuard::adopt(child)
}

/// The world, the gateway process on it (with `extra` arguments) and the hedger side reading
/// its execs.
fn start(extra: &[&str]) -> (World, PathBuf, ChildGuard, Hedger) {
    let w = world();
    let dir = w.dir.path().to_path_buf();
    let gw = spawn(&dir, extra);
    let h = Hedger::open(&dir);
    (w, dir, gw, h)
}

/// A perpetual with a two-level book and a call option with a mark.
fn world() -> World {
    let mut perp = common::linear_perp(0.001, 0.001);
    perp.set_symbol("BTC-PERP");
    let mut opt = InstrumentDef::zeroed();
    opt.id = 1;
    opt.kind = InstrumentKind::Option as u8;
    opt.option_type = OptionType::Call as u8;
    opt.strike = 100.0;
    opt.tick_size = 0.0005;
    opt.lot_size = 0.1;
    opt.min_qty = 0.1;
    opt.set_symbol("BTC-C-100");
    let mut b = LastValue::zeroed();
    b.last_seq = 1;
    b.valid = LastValue::HAS_QUOTE | LastValue::HAS_DEPTH;
    (b.bid_px, b.bid_qty, b.ask_px, b.ask_qty) = (99.5, 0.5, 100.0, 0.5);
    b.ask_levels = 2;
    b.ask_depth[0] = [100.0, 0.5];
    b.ask_depth[1] = [100.5, 0.7];
    b.bid_levels = 2;
    b.bid_depth[0] = [99.5, 0.5];
    b.bid_depth[1] = [99.0, 0.7];
    let mut m = LastValue::zeroed();
    m.instrument_id = 1;
    m.valid = LastValue::HAS_MARK;
    m.mark_px = 0.05;
    m.mark_iv = 0.6;
    m.mark_underlying_px = 100.0;
    World::create("ogw-e2e-", &[perp, opt], &[b, m])
}

fn order(id: u64) -> HedgeOrder {
    let buy = id.is_multiple_of(2);
    let side = if buy { Side::Buy } else { Side::Sell };
    let px = if buy { 100.5 } else { 99.0 };
    // Every 50th order has a bad tick: rejected.
    ioc_order(id, 0, side, 0.001 * (1 + id % 900) as f64, px).with_bad_tick_every(50)
}

trait BadTick {
    fn with_bad_tick_every(self, n: u64) -> Self;
}
impl BadTick for HedgeOrder {
    fn with_bad_tick_every(mut self, n: u64) -> Self {
        if self.client_order_id.is_multiple_of(n) {
            self.limit_px += 0.1;
        }
        self
    }
}

/// The hedger side: reads execs, checks ids, counts terminals per order.
struct Hedger {
    execs: SpscConsumer<ExecEvent>,
    last_id: u64,
    terminal: HashMap<u64, ExecKind>,
    option_trades: u64,
    rejects: u64,
    seen_ids: HashSet<u64>,
    received: u64,
    first_id: u64,
}

impl Hedger {
    fn open(dir: &Path) -> Hedger {
        let execs = open_execs(dir);
        Hedger {
            execs,
            last_id: 0,
            terminal: HashMap::new(),
            option_trades: 0,
            rejects: 0,
            seen_ids: HashSet::new(),
            received: 0,
            first_id: 0,
        }
    }
    fn drain(&mut self) -> usize {
        let mut n = 0;
        while let Some(e) = self.execs.pop() {
            n += 1;
            assert!(
                e.exec_id > self.last_id,
                "exec ids must increase: {} after {}",
                e.exec_id,
                self.last_id
            );
            assert!(self.seen_ids.insert(e.exec_id));
            if self.received == 0 {
                self.first_id = e.exec_id;
            }
            self.received += 1;
            self.last_id = e.exec_id;
            let k = e.kind().unwrap();
            match k {
                ExecKind::OptionTrade => self.option_trades += 1,
                k if k.is_terminal() => {
                    if k == ExecKind::Rejected {
                        self.rejects += 1;
                    }
                    let prev = self.terminal.insert(e.client_order_id, k);
                    assert!(prev.is_none(), "order {} ended twice", e.client_order_id);
                }
                _ => {}
            }
        }
        n
    }
    fn wait_terminals(&mut self, n: usize, deadline: Instant) {
        while self.terminal.len() < n {
            assert!(
                Instant::now() < deadline,
                "only {} of {n} orders ended",
                self.terminal.len()
            );
            if self.drain() == 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

fn push_all(
    orders: &mut SpscProducer<HedgeOrder>,
    ids: std::ops::RangeInclusive<u64>,
    h: &mut Hedger,
) {
    for id in ids {
        let mut o = order(id);
        o.publish_ts_ns = shm_layout::clock::now_ns();
        loop {
            match orders.push(o) {
                Ok(()) => break,
                Err(back) => {
                    o = back;
                    h.drain();
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
}

/// Waits until the gateway process `p` says Running in its counters segment.
fn wait_running(dir: &Path, p: &ChildGuard) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = CountersReader::open(dir, "gateway", OpenOptions::default()) {
            if r.pid() == p.pid() && r.state() == Some(ProcessState::Running) {
                return;
            }
        }
        assert!(Instant::now() < until, "gateway did not reach Running");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn n_orders_in_exactly_n_terminal_reports_out() {
    let (mut w, dir, mut gw, mut h) = start(&[
        "--flow-intensity",
        "200",
        "--seed",
        "5",
        "--latency-us",
        "50",
        "--jitter-us",
        "100",
    ]);
    let n = 3000u64;
    push_all(&mut w.orders, 1..=n, &mut h);
    h.wait_terminals(n as usize, Instant::now() + Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(50));
    h.drain();
    assert_eq!(h.terminal.len(), n as usize);
    assert_eq!(h.rejects, n / 50, "the bad-tick orders, and only them");
    assert!(h.option_trades > 0, "client flow is published");
    assert!(h.terminal.values().any(|k| *k == ExecKind::Fill));
    sigterm(&mut gw);
    h.drain();
    // Counters survive the process, for hedgectl stat.
    let c = counters(&dir);
    assert_eq!(c["orders_received"], n);
    assert_eq!(c["rejects{reason=\"bad_tick\"}"], n / 50);
    assert_eq!(c["option_trades"], h.option_trades);
    assert_eq!(c["execs_published"], h.received);
    // A fresh journal starts exec ids at (wall-clock second << 32) + 1.
    assert!(h.first_id > 1 << 32);
    let g = gateway_counters(&dir);
    assert!(g["order_transit_max_ns"] > 0.0, "transit measured: {g:?}");
    assert!(g["order_transit_p50_ns"] <= g["order_transit_max_ns"]);
}

fn counters(dir: &Path) -> HashMap<String, u64> {
    let r = CountersReader::open(dir, "gateway", OpenOptions::default()).unwrap();
    r.snapshot()
        .into_iter()
        .filter_map(|(k, v)| match v {
            CounterValue::Counter(c) => Some((k, c)),
            CounterValue::Gauge(_) => None,
        })
        .collect()
}

#[test]
fn sigterm_drains_orders_in_flight_so_a_restart_recovers_nothing() {
    let args = ["--no-flow", "--latency-us", "5000", "--jitter-us", "5000"];
    let (mut w, dir, mut gw, mut h) = start(&args);
    let n = 800u64;
    push_all(&mut w.orders, 1..=n, &mut h);
    let until = Instant::now() + Duration::from_secs(20);
    while h.terminal.is_empty() && Instant::now() < until {
        h.drain();
        std::thread::sleep(Duration::from_micros(200));
    }
    sigterm(&mut gw);
    let mut gw = spawn(&dir, &args);
    wait_running(&dir, &gw);
    h.wait_terminals(n as usize, Instant::now() + Duration::from_secs(120));
    sigterm(&mut gw);
    h.drain();
    assert_eq!(h.terminal.len(), n as usize);
    assert_eq!(
        counters(&dir)["recovered_orders"],
        0,
        "nothing was left open"
    );
}

#[test]
fn sigkill_and_restart_mid_stream_loses_and_duplicates_nothing() {
    let args = ["--no-flow", "--latency-us", "2000", "--jitter-us", "3000"];
    let (mut w, dir, mut gw, mut h) = start(&args);
    let n = 4000u64;
    let chunk = 500u64;
    let kills = common::send_in_chunks_with_restarts(
        n,
        chunk,
        |ids| {
            push_all(&mut w.orders, ids, &mut h);
            // Wait until the gateway is busy with this chunk (some of it ended, the rest in
            // flight at the venue or still in the ring), then kill -9 without warning.
            let before = h.terminal.len();
            let until = Instant::now() + Duration::from_secs(20);
            while h.terminal.len() < before + (chunk as usize) / 4 && Instant::now() < until {
                if h.drain() == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        },
        |_| {
            gw.sigkill();
            gw = spawn(&dir, &args);
        },
    );
    h.wait_terminals(n as usize, Instant::now() + Duration::from_secs(120));
    std::thread::sleep(Duration::from_millis(50));
    h.drain();
    assert!(kills >= 5);
    assert_eq!(h.terminal.len(), n as usize);
    assert!((1..=n).all(|id| h.terminal.contains_key(&id)));
    sigterm(&mut gw);
}

#[test]
fn full_execs_ring_holds_reports_until_the_hedger_reads_again() {
    let mut w = world();
    let dir = w.dir.path().to_path_buf();
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("gw.toml");
    std::fs::write(&cfg, "execs_capacity = 512\n[flow]\nenabled = false\n").unwrap();
    let mut gw = spawn(
        &dir,
        &["--config", cfg.to_str().unwrap(), "--latency-us", "10"],
    );
    let mut h = Hedger::open(&dir);
    let n = 2000u64;
    // The hedger does not read while the orders go in.
    for id in 1..=n {
        let mut o = order(id);
        while let Err(back) = w.orders.push(o) {
            o = back;
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    common::wait_for_counters(
        &dir,
        "gateway never held a backlog",
        Duration::from_secs(60),
        |c| {
            c.get("orders_received") == Some(&(n as f64))
                && c.get("execs_ring_full").is_some_and(|v| *v >= 1.0)
                && c.get("outbound_backlog").is_some_and(|v| *v > 0.0)
        },
    );
    h.wait_terminals(n as usize, Instant::now() + Duration::from_secs(120));
    sigterm(&mut gw);
    h.drain();
    assert_eq!(h.terminal.len(), n as usize);
}

#[test]
fn a_second_gateway_on_the_same_namespace_refuses_to_start() {
    let w = world();
    let dir = w.dir.path().to_path_buf();
    let mut first = spawn(&dir, &["--no-flow"]);
    wait_running(&dir, &first);
    let out = Command::new(env!("CARGO_BIN_EXE_order-gateway"))
        .arg("--shm-dir")
        .arg(&dir)
        .args(["--no-flow", "--open-wait-ms", "100"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("order-gateway: error:"), "{err}");
    sigterm(&mut first);
}
