//! Cost per order of the gateway's loop body, in three layers measured in the same run:
//! 1. the simulator alone (validate, match against the book, queue the reports, deliver them);
//! 2. the full `Gateway::step` with the journal on tmpfs (`/dev/shm`): journal the order,
//!    commit, submit, poll, journal the reports, publish into an in-memory ring;
//! 3. the same with the journal on the default temp dir (usually a disk-backed file system).
//!
//! Run: `cargo run -p order-gateway --example gateway_throughput [orders]`
//! Prints ns per order for each layer; no shared-memory rings are involved (see the
//! end-to-end tests for those), so this isolates the gateway's own work.

use bytemuck::Zeroable;
use order_gateway::gateway::{Gateway, GatewayLimits, VecExecs, VecOrders};
use order_gateway::journal::Journal;
use order_gateway::sim::{SimConfig, SimVenue};
use order_gateway::Venue;
use shm_layout::{
    HedgeOrder, InstrumentDef, InstrumentKind, LastValue, OrderAction, OrderType, Side, TimeInForce,
};
use std::path::Path;
use std::time::Instant;

type Market = Vec<Option<LastValue>>;

fn setup() -> (Vec<InstrumentDef>, Market) {
    let perp = InstrumentDef::linear(0, InstrumentKind::Perpetual, 0, 0.5, 0.001);
    let mut b = LastValue::zeroed();
    b.valid = LastValue::HAS_QUOTE | LastValue::HAS_DEPTH;
    (b.bid_px, b.bid_qty, b.ask_px, b.ask_qty) = (99.5, 1e9, 100.0, 1e9);
    b.ask_levels = 3;
    b.bid_levels = 3;
    for i in 0..3 {
        b.ask_depth[i] = [100.0 + 0.5 * i as f64, 1e9];
        b.bid_depth[i] = [99.5 - 0.5 * i as f64, 1e9];
    }
    (vec![perp], vec![Some(b)])
}

fn order(id: u64) -> HedgeOrder {
    let buy = id.is_multiple_of(2);
    HedgeOrder {
        client_order_id: id,
        side: if buy { Side::Buy } else { Side::Sell } as u8,
        order_type: OrderType::Limit as u8,
        tif: TimeInForce::Ioc as u8,
        action: OrderAction::New as u8,
        qty: 0.001 * (1 + id % 100) as f64,
        limit_px: if buy { 100.0 } else { 99.5 },
        ..HedgeOrder::zeroed()
    }
}

fn cfg() -> SimConfig {
    SimConfig {
        latency_us: 0.0,
        jitter_us: 0.0,
        rate_limit_per_s: 0.0,
        ..SimConfig::default()
    }
}

fn sim_only(n: u64) -> f64 {
    let (defs, m) = setup();
    let mut v = SimVenue::new(cfg(), defs, m);
    let mut reports = 0u64;
    let t = Instant::now();
    for id in 1..=n {
        v.submit(&order(id), id);
        v.poll(id, &mut |_| reports += 1);
    }
    let ns = t.elapsed().as_nanos() as f64 / n as f64;
    assert_eq!(reports, n);
    ns
}

fn full(n: u64, dir: &Path) -> f64 {
    let (defs, m) = setup();
    let (j, r) = Journal::open(&dir.join("bench.journal")).unwrap();
    let mut orders = VecOrders::default();
    orders.all.reserve(n as usize);
    for id in 1..=n {
        orders.all.push(order(id));
    }
    let mut execs = VecExecs::default();
    execs.all.reserve(n as usize);
    let venue = SimVenue::new(cfg(), defs, m.clone());
    let (mut gw, _) = Gateway::recover(
        venue,
        None,
        j,
        r,
        GatewayLimits::default(),
        &mut orders,
        &mut execs,
        0,
    )
    .unwrap();
    let t = Instant::now();
    let mut now = 0;
    while (execs.all.len() as u64) < n {
        now += 1;
        gw.step(now, true, &mut orders, &mut execs, &m).unwrap();
    }
    t.elapsed().as_nanos() as f64 / n as f64
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let shm = testkit::shm::namespace_dir("ogw-bench-");
    let disk = tempfile::tempdir().unwrap();
    // Warm up once, then measure.
    sim_only(n / 10);
    let a = sim_only(n);
    let b = full(n, shm.path());
    let c = full(n, disk.path());
    println!("orders: {n} (IOC, one fill each, zero simulated latency)");
    println!("simulator alone:            {a:8.1} ns/order");
    println!(
        "gateway step, journal tmpfs:{b:8.1} ns/order  ({:.1}x the simulator)",
        b / a
    );
    println!(
        "gateway step, journal {}: {c:8.1} ns/order  ({:.1}x)",
        disk.path().display(),
        c / a
    );
}
