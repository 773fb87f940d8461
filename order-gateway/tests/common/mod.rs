//! Set-up shared by the order-gateway integration tests: shared-memory namespaces in unique
//! /dev/shm temp dirs (removed on drop), the gateway binary and the QuickFIX acceptor as child
//! processes (killed on drop), and reading the gateway's counters and execs ring.
//!
//! Each test file uses only part of this (`mod common;`), hence the module-wide allow.
#![allow(dead_code)]

use bytemuck::Zeroable;
use order_gateway::gateway::{VecExecs, VecOrders};
use shm_layout::{
    names, CounterValue, CountersReader, ExecEvent, HedgeOrder, InstrumentDef, InstrumentKind,
    InstrumentTable, LastValue, LastValueTable, OpenOptions, OrderAction, OrderType, Side,
    SpscConsumer, SpscProducer, StalePolicy, TimeInForce,
};
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use testkit::ChildGuard;

pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Call first in every test that needs the QuickFIX test exchange. True (after saying so on
/// stderr) when `HEDGE_SKIP_QUICKFIX=1` asks to skip `what`; otherwise the exchange must be
/// there, and a missing one fails the test here, at its top, in one line naming the command
/// that installs it (never a silent pass, never a panic deep inside the test).
pub fn skip_quickfix(what: &str) -> bool {
    if std::env::var("HEDGE_SKIP_QUICKFIX").as_deref() == Ok("1") {
        eprintln!("SKIPPED: HEDGE_SKIP_QUICKFIX=1 set, {what} not run");
        return true;
    }
    acceptor_bin();
    false
}

/// The QuickFIX test exchange: `HEDGE_FIX_ACCEPTOR`, else `$HEDGE_QUICKFIX_DIR/bin`, else
/// what `scripts/setup-quickfix.sh` builds. Missing is a failure, not a silent pass.
pub fn acceptor_bin() -> PathBuf {
    let p = std::env::var_os("HEDGE_FIX_ACCEPTOR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HEDGE_QUICKFIX_DIR")
                .map(|d| PathBuf::from(d).join("bin/fix_acceptor"))
        })
        .unwrap_or_else(|| repo_root().join("target/quickfix/bin/fix_acceptor"));
    assert!(
        p.exists(),
        "QuickFIX test exchange not found at {}: run the tests with scripts/test.sh \
         (it installs it with scripts/setup-quickfix.sh), or set HEDGE_SKIP_QUICKFIX=1 to skip \
         the FIX tests",
        p.display()
    );
    p
}

/// Starts the QuickFIX acceptor on 127.0.0.1:`port` with its store (and logs) in `store`, and
/// waits for its READY line. Killed on drop; it also exits when our stdin pipe closes, so it
/// never outlives a crashed test.
pub fn start_acceptor(store: &Path, port: u16, username: &str, password: &str) -> ChildGuard {
    let mut child = Command::new(acceptor_bin())
        .args(["--port", &port.to_string()])
        .arg("--store")
        .arg(store)
        .arg("--spec")
        .arg(repo_root().join("scripts/fix/FIX44.xml"))
        .args(["--username", username, "--password", password])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn fix_acceptor");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(
        line.starts_with("READY"),
        "fix_acceptor did not start (got {line:?}); see {}/log, or rerun scripts/test.sh to rebuild it",
        store.display()
    );
    ChildGuard::adopt(child)
}

/// The `order-gateway` binary on namespace `dir`, parking when idle and waiting up to 20 s for
/// the segments it opens; the caller adds its own arguments and spawns it.
pub fn gateway_command(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_order-gateway"));
    c.arg("--shm-dir")
        .arg(dir)
        .args(["--idle", "backoff-park", "--open-wait-ms", "20000"])
        .stdin(Stdio::null());
    c
}

/// SIGTERM to the gateway, which must exit cleanly within 20 s.
pub fn sigterm(p: &mut ChildGuard) {
    let st = p.sigterm(Duration::from_secs(20));
    assert!(st.success(), "clean exit on SIGTERM: {st:?}");
}

/// The path `name` in a fresh temporary directory (removed with the returned guard, also when
/// the test fails).
pub fn temp_path(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    (dir, path)
}

/// What an in-process gateway test starts from: a journal path in a directory of its own
/// (removed on drop), empty in-memory rings, and the market the venue sees.
pub struct Rig<M> {
    pub _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub orders: VecOrders,
    pub execs: VecExecs,
    pub market: M,
}

pub fn rig<M>(market: M) -> Rig<M> {
    let (_dir, path) = temp_path("gw.journal");
    let (orders, execs) = (VecOrders::default(), VecExecs::default());
    Rig {
        _dir,
        path,
        orders,
        execs,
        market,
    }
}

/// Sends orders `1..=n` in chunks of `chunk` ids: `send(ids)` for each chunk, and after every
/// chunk but the last `restart(k)`, the `k`-th kill and restart of the gateway. Returns the
/// number of restarts.
pub fn send_in_chunks_with_restarts(
    n: u64,
    chunk: u64,
    mut send: impl FnMut(std::ops::RangeInclusive<u64>),
    mut restart: impl FnMut(usize),
) -> usize {
    let mut next = 1u64;
    let mut kills = 0;
    while next <= n {
        let end = (next + chunk - 1).min(n);
        send(next..=end);
        next = end + 1;
        if next <= n {
            kills += 1;
            restart(kills);
        }
    }
    kills
}

/// A linear perpetual, 1 per contract, tick 0.5, id 0, no symbol.
pub fn linear_perp(lot_size: f64, min_qty: f64) -> InstrumentDef {
    InstrumentDef {
        min_qty,
        ..InstrumentDef::linear(0, InstrumentKind::Perpetual, 0, 0.5, lot_size)
    }
}

/// A new limit IOC order.
pub fn ioc_order(id: u64, instrument_id: u32, side: Side, qty: f64, px: f64) -> HedgeOrder {
    let mut o = HedgeOrder::zeroed();
    o.client_order_id = id;
    o.instrument_id = instrument_id;
    o.side = side as u8;
    o.order_type = OrderType::Limit as u8;
    o.tif = TimeInForce::Ioc as u8;
    o.action = OrderAction::New as u8;
    o.qty = qty;
    o.limit_px = px;
    o
}

/// The feed's and the hedger's segments around a gateway, in a unique temp dir under
/// /dev/shm (removed on drop): the instruments table, the last-value table and the orders
/// ring.
pub struct World {
    pub dir: tempfile::TempDir,
    pub _instruments: InstrumentTable,
    pub _lvt: LastValueTable,
    pub orders: SpscProducer<HedgeOrder>,
}

impl World {
    /// `defs` in the instruments table, `values[i]` in last-value slot `i` (of 4), an empty
    /// orders ring of 1024.
    pub fn create(prefix: &str, defs: &[InstrumentDef], values: &[LastValue]) -> World {
        let dir = testkit::shm::namespace_dir(prefix);
        let instruments =
            InstrumentTable::create(dir.path(), names::INSTRUMENTS, defs, StalePolicy::Fail)
                .unwrap();
        let lvt = LastValueTable::create(dir.path(), names::LVT, 4, StalePolicy::Fail).unwrap();
        for (slot, v) in values.iter().enumerate() {
            lvt.write(slot as u32, v);
        }
        let orders =
            SpscProducer::<HedgeOrder>::create(dir.path(), names::ORDERS, 1024, StalePolicy::Fail)
                .unwrap();
        World {
            dir,
            _instruments: instruments,
            _lvt: lvt,
            orders,
        }
    }
}

/// The execs ring the gateway creates, waiting up to 30 s for it.
pub fn open_execs(dir: &Path) -> SpscConsumer<ExecEvent> {
    SpscConsumer::open(
        dir,
        names::EXECS,
        OpenOptions::wait(Duration::from_secs(30)),
    )
    .expect("the gateway creates the execs ring")
}

/// The gateway's counters and gauges (`cnc-gateway`), by label; empty before it exists.
pub fn gateway_counters(dir: &Path) -> HashMap<String, f64> {
    let Ok(r) = CountersReader::open(dir, "gateway", OpenOptions::default()) else {
        return HashMap::new();
    };
    r.snapshot()
        .into_iter()
        .map(|(k, v)| match v {
            CounterValue::Counter(c) => (k, c as f64),
            CounterValue::Gauge(g) => (k, g),
        })
        .collect()
}

/// Polls the gateway's counters every 5 ms until `cond` holds and returns them; fails with
/// "`what`: <counters>" after `timeout`.
pub fn wait_for_counters(
    dir: &Path,
    what: &str,
    timeout: Duration,
    cond: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let until = Instant::now() + timeout;
    loop {
        let c = gateway_counters(dir);
        if cond(&c) {
            return c;
        }
        assert!(Instant::now() < until, "{what}: {c:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
