//! Crash safety with real processes: the test plays the feed handler (instruments, last-value
//! table, md ring) and the gateway (reads orders, writes execs, beats its heartbeat); the
//! hedger runs as a child process, is SIGKILLed mid-run while client option trades and fills
//! keep arriving, restarted, and finally stopped with SIGTERM. Its persisted positions must
//! equal what the exec stream says (what an uninterrupted run would hold): no fill lost or
//! applied twice; client order ids unique and increasing across the restart.

mod hedger_common;

use engine::hedger::state::StateStore;
use hedger_common::*;
use shm_layout::{
    BroadcastWriter, CountersWriter, ExecEvent, ExecKind, HedgeOrder, InstrumentTable, LastValue,
    LastValueTable, MarketEvent, OpenOptions, Side, SpscConsumer, SpscProducer, StalePolicy,
};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use testkit::ChildGuard;

/// Starts the hedger on the config `cfg`, its stderr into `log`; killed on drop.
fn spawn_hedger(cfg: &Path, log: &Path) -> ChildGuard {
    ChildGuard::spawn(
        Command::new(env!("CARGO_BIN_EXE_hedger"))
            .arg("--config")
            .arg(cfg),
        log,
    )
}

struct World {
    md: BroadcastWriter<MarketEvent>,
    lvt: LastValueTable,
    lv: Vec<LastValue>,
    execs: SpscProducer<ExecEvent>,
    cnc: CountersWriter,
    orders: Option<SpscConsumer<HedgeOrder>>,
    seq: u64,
    exec_id: u64,
    // What the exec stream says.
    option_qty: f64,
    hedge_qty: f64,
    coids: Vec<u64>,
}

impl ExecStream for World {
    fn next_exec_id(&mut self) -> u64 {
        self.exec_id += 1;
        self.exec_id
    }

    /// Over the real execs ring, waiting while it is full.
    fn deliver(&mut self, e: ExecEvent) {
        let t0 = Instant::now();
        while self.execs.push(e).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(10), "execs ring stuck");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl World {
    fn publish(&mut self, mut e: MarketEvent) {
        self.seq += 1;
        e.seq = self.seq;
        e.recv_ts_ns = shm_layout::clock::now_ns();
        let lv = &mut self.lv[e.instrument_id as usize];
        lv.apply(&e);
        self.lvt.write(e.instrument_id, lv);
        self.md.publish(&e);
    }

    fn market_tick(&mut self, i: u64) {
        let m = 10_000.0 + ((i % 40) as f64 - 20.0) * 5.0;
        self.publish(MarketEvent::underlying_price(BTC, 0, 0, m));
        self.publish(MarketEvent::quote(PERP, 0, 0, m - 0.5, 1e6, m + 0.5, 1e6));
        self.publish(MarketEvent::option_mark(CALL, 0, 0, 0.05, 0.8, m));
        self.publish(MarketEvent::option_mark(PUT, 0, 0, 0.03, 0.8, m));
    }

    /// Plays the gateway for whatever orders are there: full fill, or partial + cancel.
    fn gateway(&mut self, dir: &Path) {
        self.cnc.heartbeat();
        if self.orders.is_none() {
            self.orders = SpscConsumer::open(dir, "orders", OpenOptions::default()).ok();
        }
        let Some(orders) = self.orders.as_mut() else {
            return;
        };
        let mut got = Vec::new();
        while let Some(o) = orders.pop() {
            got.push(o);
        }
        for o in got {
            self.coids.push(o.client_order_id);
            let side = o.side().unwrap();
            self.on_order(ExecKind::Ack, &o, (0.0, o.limit_px, o.qty));
            if o.client_order_id % 3 == 0 {
                let half = (o.qty / 2.0).floor();
                self.on_order(ExecKind::PartialFill, &o, (half, o.limit_px, o.qty - half));
                self.on_order(ExecKind::Cancelled, &o, (0.0, 0.0, 0.0));
                self.hedge_qty += side.sign() * half;
            } else {
                self.on_order(ExecKind::Fill, &o, (o.qty, o.limit_px, 0.0));
                self.hedge_qty += side.sign() * o.qty;
            }
        }
    }

    fn client_trade(&mut self, i: u64) {
        let side = if i.is_multiple_of(3) {
            Side::Buy
        } else {
            Side::Sell
        };
        let q = 1.0 + (i % 5) as f64;
        self.exec(ExecKind::OptionTrade, 0, CALL, side, q, 0.05, 0.0);
        self.option_qty += side.sign() * q;
    }

    /// Runs the market and the gateway for `ms`, a client trade every few ticks.
    fn run_for(&mut self, dir: &Path, ms: u64, trades: bool) {
        let t0 = Instant::now();
        let mut i = 0;
        while t0.elapsed() < Duration::from_millis(ms) {
            i += 1;
            self.market_tick(i);
            if trades && i % 5 == 0 {
                self.client_trade(i);
            }
            self.gateway(dir);
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A temporary directory (segments `seg/`, state `state/`, `hedger.toml`) and the world
/// playing the feed and the gateway in it.
fn setup(prefix: &str) -> (tempfile::TempDir, World, InstrumentTable) {
    let tmp = testkit::shm::namespace_dir(prefix);
    let seg = tmp.path().join("seg");
    std::fs::create_dir_all(&seg).unwrap();
    let state = tmp.path().join("state");
    let hlog = tmp.path().join("lat.hlog");
    let cfg = tmp.path().join("hedger.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[shm]
dir = "{seg}"
open_wait_ms = 10000
gateway_heartbeat_timeout_ms = 2000
on_stale = "recover"
[runtime]
idle = "backoff-park"
state_dir = "{state}"
histogram_path = "{hlog}"
histogram_interval_ms = 100
reconcile_quiet_ms = 50
[underlyings.BTC]
hedge_instrument = "BTC-PERPETUAL"
[underlyings.BTC.policy]
kind = "fixed"
band = 0.3
[underlyings.BTC.limits]
max_orders_per_sec = 1000.0
order_burst = 100.0
max_data_age_ms = 5000
[[positions]]
symbol = "BTC-C-10000"
qty = -20.0
"#,
            seg = seg.display(),
            state = state.display(),
            hlog = hlog.display()
        ),
    )
    .unwrap();

    let wall = shm_layout::clock::wall_ns();
    let defs = defs(wall);
    let instruments =
        InstrumentTable::create(&seg, "instruments", &defs, StalePolicy::Replace).unwrap();
    let mut w = World {
        md: BroadcastWriter::create(&seg, "md", 1 << 12, StalePolicy::Replace).unwrap(),
        lvt: LastValueTable::create(&seg, "lvt", defs.len(), StalePolicy::Replace).unwrap(),
        lv: vec![bytemuck::Zeroable::zeroed(); defs.len()],
        execs: SpscProducer::create(&seg, "execs", 1 << 12, StalePolicy::Replace).unwrap(),
        cnc: CountersWriter::create(&seg, "gateway", StalePolicy::Replace).unwrap(),
        orders: None,
        seq: 0,
        exec_id: 1000,
        option_qty: -20.0,
        hedge_qty: 0.0,
        coids: Vec::new(),
    };
    w.market_tick(0);
    (tmp, w, instruments)
}

/// Starts the hedger on `tmp`'s `hedger.toml` (its log `run1.log`) and plays 1.5 s of market
/// and client flow into `tmp`'s segments, the gateway answering: the hedger must have hedged.
fn first_run(tmp: &Path, w: &mut World) -> ChildGuard {
    let log = tmp.join("run1.log");
    let h = spawn_hedger(&tmp.join("hedger.toml"), &log);
    w.run_for(&tmp.join("seg"), 1500, true);
    assert!(
        !w.coids.is_empty(),
        "the hedger hedged in its first run: {}",
        std::fs::read_to_string(&log).unwrap()
    );
    h
}

#[test]
fn sigkill_and_restart_lose_nothing_and_apply_nothing_twice() {
    let (tmp, mut w, _instruments) = setup("hedger-crash-");
    let seg = tmp.path().join("seg");
    let state = tmp.path().join("state");
    let hlog = tmp.path().join("lat.hlog");
    let cfg = tmp.path().join("hedger.toml");

    let mut h = first_run(tmp.path(), &mut w);
    let before_crash = w.coids.len();
    // Crash with execs in flight; flow keeps coming while it is down.
    for i in 0..20 {
        w.client_trade(1000 + i);
    }
    h.sigkill();
    w.run_for(&seg, 200, true);

    let mut h = spawn_hedger(&cfg, &tmp.path().join("run2.log"));
    w.run_for(&seg, 1500, true);
    assert!(
        w.coids.len() > before_crash,
        "hedging resumed after the restart"
    );
    // Let everything settle: no more flow; the hedger consumes and commits every exec.
    let t0 = Instant::now();
    while !w.execs.is_empty() || t0.elapsed() < Duration::from_millis(300) {
        w.run_for(&seg, 20, false);
        assert!(t0.elapsed() < Duration::from_secs(20), "execs not consumed");
    }
    let st = h.sigterm(Duration::from_secs(20));
    let log2 = std::fs::read_to_string(tmp.path().join("run2.log")).unwrap();
    assert!(st.success(), "clean shutdown: {st:?} {log2}");
    assert!(log2.contains("stopped cleanly"), "{log2}");

    let s = StateStore::open(&state, false)
        .unwrap()
        .load()
        .unwrap()
        .unwrap();
    let opt: f64 = s
        .options
        .iter()
        .filter(|(k, _)| k == "BTC-C-10000")
        .map(|(_, q)| q)
        .sum();
    assert_eq!(
        opt, w.option_qty,
        "option inventory equals the exec stream's"
    );
    assert_eq!(
        s.underlyings[0].hedge_position, w.hedge_qty,
        "hedge position equals the fills'"
    );
    assert_eq!(s.last_exec_id, w.exec_id);
    // Orders the gateway finished are not in flight any more (an order sent after the
    // gateway's last pass legitimately is).
    for o in &s.inflight {
        assert!(
            !w.coids.contains(&o.client_order_id),
            "{o:?} finished but still in flight"
        );
    }
    assert!(s.epoch >= 2);
    let mut sorted = w.coids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted, w.coids,
        "client order ids unique and increasing across the restart"
    );
    println!("orders {} (before crash {before_crash}), option qty {}, hedge qty {}, last exec {}, epoch {}\nrun2: {log2}", w.coids.len(), w.option_qty, w.hedge_qty, w.exec_id, s.epoch);
    let hl = std::fs::read_to_string(&hlog).unwrap();
    assert!(
        hl.contains("#[StartTime:") && hl.contains("Tag=recv_to_read"),
        "{hl}"
    );
}

#[test]
fn lost_state_with_history_in_the_rings_is_refused_not_restarted_at_zero() {
    let (tmp, mut w, _instruments) = setup("hedger-lost-state-");
    let seg = tmp.path().join("seg");
    let cfg = tmp.path().join("hedger.toml");
    let mut h = first_run(tmp.path(), &mut w);
    assert!(h.sigterm(Duration::from_secs(20)).success());
    std::fs::remove_dir_all(tmp.path().join("state")).unwrap();
    w.gateway(&seg); // orders the first run sent just before it stopped
    let orders_before = w.coids.len();

    let log = tmp.path().join("run2.log");
    let mut h = spawn_hedger(&cfg, &log);
    let t0 = Instant::now();
    let st = loop {
        w.run_for(&seg, 20, true);
        if let Some(st) = h.try_wait() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the hedger neither refused nor stopped"
        );
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!st.success(), "{text}");
    assert!(
        text.contains("is missing, but the rings in") && text.contains("the state was lost"),
        "{text}"
    );
    assert_eq!(
        w.coids.len(),
        orders_before,
        "no order (and no reused client order id) was sent"
    );
}
