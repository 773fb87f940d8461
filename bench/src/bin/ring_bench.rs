//! Ring benchmark: round-trip and one-way latency, and throughput, of the shared-memory SPSC
//! queue and broadcast ring, between two pinned threads and between two pinned processes, side
//! by side in the same run with a raw one-cache-line ping-pong (the hardware's limit), rtrb,
//! crossbeam's `ArrayQueue` and (feature `iceoryx2-peer`) iceoryx2 publish-subscribe. All
//! messages are 64 bytes. Percentiles come from HdrHistograms; every latency figure is also
//! given as a ratio to the raw ping-pong measured in the same run, every throughput as a ratio to
//! rtrb's (threads) or to our SPSC's (processes, where rtrb cannot go).
//!
//! Run through `scripts/bench-rings.sh`, which builds in release mode and writes JSON.
#![forbid(unsafe_code)]

use anyhow::{bail, Context, Result};
use clap::Parser;
use crossbeam::queue::ArrayQueue;
use crossbeam::utils::CachePadded;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use shm_layout::clock::now_ns;
use shm_layout::probe::ProbeLine;
use shm_layout::{
    BroadcastReader, BroadcastWriter, OpenOptions, Poll, SpscConsumer, SpscProducer, StalePolicy,
};
use std::hint::spin_loop;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

/// 64 bytes: word 0 carries a sequence or a timestamp.
type Msg = [u64; 8];
const CAPACITY: usize = 1024;
/// Side A's send rate of the last throughput run (f64 bits), same process as the report.
static SENDER_RATE: AtomicU64 = AtomicU64::new(0);
const OPEN: OpenOptions = OpenOptions {
    wait: Duration::from_secs(30),
};

#[derive(Parser, Debug, Clone)]
#[command(about = "Shared-memory ring benchmark with peers side by side")]
struct Args {
    /// Measured round trips / one-way messages per transport.
    #[arg(long, default_value_t = 200_000)]
    iters: u64,
    /// Warm-up round trips / messages (not recorded).
    #[arg(long, default_value_t = 20_000)]
    warmup: u64,
    /// Messages per throughput run.
    #[arg(long, default_value_t = 5_000_000)]
    tput_msgs: u64,
    /// The two cores to pin to: `A,B`.
    #[arg(long, default_value = "0,1")]
    cores: String,
    /// `threads`, `processes` or `all`.
    #[arg(long, default_value = "all")]
    mode: String,
    /// Comma-separated subset of transports (default: all available).
    #[arg(long)]
    transports: Option<String>,
    /// Comma-separated subset of tests: round_trip, one_way, throughput (default: all).
    #[arg(long)]
    tests: Option<String>,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Internal: run as the child process of a process-mode measurement.
    #[arg(long, hide = true)]
    child: bool,
    #[arg(long, hide = true)]
    transport: Option<String>,
    #[arg(long, hide = true)]
    test: Option<String>,
    #[arg(long, hide = true)]
    dir: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------------
// Endpoints

trait Tx {
    fn try_send(&mut self, m: &Msg) -> bool;
}
trait Rx {
    fn try_recv(&mut self) -> Option<Msg>;
    /// Messages this receiver was told it lost (broadcast only).
    fn lost(&self) -> u64 {
        0
    }
    /// Position reached (messages delivered + lost), for lossy receivers.
    fn accounted(&self) -> Option<u64> {
        None
    }
}

impl Tx for SpscProducer<Msg> {
    #[inline]
    fn try_send(&mut self, m: &Msg) -> bool {
        self.push(*m).is_ok()
    }
}
impl Rx for SpscConsumer<Msg> {
    #[inline]
    fn try_recv(&mut self) -> Option<Msg> {
        self.pop()
    }
}
impl Tx for BroadcastWriter<Msg> {
    #[inline]
    fn try_send(&mut self, m: &Msg) -> bool {
        self.publish(m);
        true
    }
}
struct BcastRx {
    r: BroadcastReader<Msg>,
    lost: u64,
}
impl Rx for BcastRx {
    #[inline]
    fn try_recv(&mut self) -> Option<Msg> {
        loop {
            match self.r.poll() {
                Poll::Message(m) => return Some(m),
                Poll::Empty => return None,
                Poll::Lapped { lost } => self.lost += lost,
            }
        }
    }
    fn lost(&self) -> u64 {
        self.lost
    }
    fn accounted(&self) -> Option<u64> {
        Some(self.r.position())
    }
}
impl Tx for rtrb::Producer<Msg> {
    #[inline]
    fn try_send(&mut self, m: &Msg) -> bool {
        self.push(*m).is_ok()
    }
}
impl Rx for rtrb::Consumer<Msg> {
    #[inline]
    fn try_recv(&mut self) -> Option<Msg> {
        self.pop().ok()
    }
}
struct Aq(Arc<ArrayQueue<Msg>>);
impl Tx for Aq {
    #[inline]
    fn try_send(&mut self, m: &Msg) -> bool {
        self.0.push(*m).is_ok()
    }
}
impl Rx for Aq {
    #[inline]
    fn try_recv(&mut self) -> Option<Msg> {
        self.0.pop()
    }
}

#[cfg(feature = "iceoryx2-peer")]
mod iox {
    use super::{Msg, Rx, Tx, CAPACITY};
    use iceoryx2::port::backpressure_strategy::BackpressureStrategy;
    use iceoryx2::prelude::*;

    pub struct IoxTx {
        _node: Node<ipc::Service>,
        p: iceoryx2::port::publisher::Publisher<ipc::Service, Msg, ()>,
    }
    pub struct IoxRx {
        _node: Node<ipc::Service>,
        s: iceoryx2::port::subscriber::Subscriber<ipc::Service, Msg, ()>,
    }

    fn service(
        node: &Node<ipc::Service>,
        name: &str,
    ) -> anyhow::Result<
        iceoryx2::service::port_factory::publish_subscribe::PortFactory<ipc::Service, Msg, ()>,
    > {
        let name: ServiceName = name.try_into().map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let mut attempt = 0;
        loop {
            // Both sides open_or_create concurrently; the loser may see "being created".
            let r = node
                .service_builder(&name)
                .publish_subscribe::<Msg>()
                .subscriber_max_buffer_size(CAPACITY)
                .history_size(0)
                .enable_safe_overflow(false)
                .max_publishers(1)
                .max_subscribers(1)
                .open_or_create();
            match r {
                Ok(s) => return Ok(s),
                Err(e) if attempt < 200 => {
                    attempt += 1;
                    let _ = e;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => anyhow::bail!("iceoryx2 service {name}: {e:?}"),
            }
        }
    }

    pub fn tx(name: &str) -> anyhow::Result<IoxTx> {
        let node = NodeBuilder::new()
            .create::<ipc::Service>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let p = service(&node, name)?
            .publisher_builder()
            .backpressure_strategy(BackpressureStrategy::RetryUntilDelivered)
            .create()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(IoxTx { _node: node, p })
    }

    pub fn rx(name: &str) -> anyhow::Result<IoxRx> {
        let node = NodeBuilder::new()
            .create::<ipc::Service>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let s = service(&node, name)?
            .subscriber_builder()
            .buffer_size(CAPACITY)
            .create()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(IoxRx { _node: node, s })
    }

    impl Tx for IoxTx {
        #[inline]
        fn try_send(&mut self, m: &Msg) -> bool {
            self.p.send_copy(*m).is_ok()
        }
    }
    impl Rx for IoxRx {
        #[inline]
        fn try_recv(&mut self) -> Option<Msg> {
            match self.s.receive() {
                Ok(Some(s)) => Some(*s.payload()),
                _ => None,
            }
        }
    }
}

/// One cache line, either on the heap (threads) or in a probe segment (processes).
trait Line: Send + Sync {
    fn w(&self, i: usize) -> &AtomicU64;
}
impl Line for CachePadded<[AtomicU64; 8]> {
    #[inline]
    fn w(&self, i: usize) -> &AtomicU64 {
        &self[i]
    }
}
impl Line for ProbeLine {
    #[inline]
    fn w(&self, i: usize) -> &AtomicU64 {
        self.word(i)
    }
}

// ---------------------------------------------------------------------------------------------
// The measurements. Side A is the initiator/sender (core A), side B the echo/receiver (core B).

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Test {
    Rtt,
    OneWay,
    Tput,
}

impl Test {
    fn name(self) -> &'static str {
        match self {
            Test::Rtt => "round_trip",
            Test::OneWay => "one_way",
            Test::Tput => "throughput",
        }
    }
    fn parse(s: &str) -> Result<Test> {
        Ok(match s {
            "round_trip" => Test::Rtt,
            "one_way" => Test::OneWay,
            "throughput" => Test::Tput,
            _ => bail!("unknown test {s}"),
        })
    }
}

/// What side B reports (one-way latency, throughput).
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
struct Report {
    latency: Option<Summary>,
    msgs_per_sec: Option<f64>,
    delivered: u64,
    lost: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy, Default)]
struct Summary {
    count: u64,
    mean_ns: f64,
    p50_ns: u64,
    p90_ns: u64,
    p99_ns: u64,
    p99_9_ns: u64,
    p99_99_ns: u64,
    max_ns: u64,
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("histogram bounds")
}

fn summary(h: &Histogram<u64>) -> Summary {
    Summary {
        count: h.len(),
        mean_ns: h.mean(),
        p50_ns: h.value_at_quantile(0.5),
        p90_ns: h.value_at_quantile(0.9),
        p99_ns: h.value_at_quantile(0.99),
        p99_9_ns: h.value_at_quantile(0.999),
        p99_99_ns: h.value_at_quantile(0.9999),
        max_ns: h.max(),
    }
}

#[inline]
fn send_spin<T: Tx>(tx: &mut T, m: &Msg) {
    while !tx.try_send(m) {
        spin_loop();
    }
}

#[inline]
fn recv_spin<R: Rx>(rx: &mut R) -> Msg {
    loop {
        if let Some(m) = rx.try_recv() {
            return m;
        }
        spin_loop();
    }
}

fn side_a<T: Tx, R: Rx>(test: Test, a: &Args, tx: &mut T, rx: &mut R) -> Option<Summary> {
    let total = a.warmup + a.iters;
    match test {
        Test::Rtt => {
            let mut h = histogram();
            let mut m: Msg = [0; 8];
            for i in 0..total {
                m[0] = i;
                let t0 = now_ns();
                send_spin(tx, &m);
                let r = recv_spin(rx);
                let t1 = now_ns();
                debug_assert_eq!(r[0], i);
                if i >= a.warmup {
                    h.record(t1 - t0).ok();
                }
            }
            Some(summary(&h))
        }
        Test::OneWay => {
            // Each message carries its send time; B records the one-way latency and answers, and
            // A sends the next one only then, so queueing never inflates the figure.
            let mut m: Msg = [0; 8];
            for i in 0..total {
                m[1] = i;
                m[0] = now_ns();
                send_spin(tx, &m);
                recv_spin(rx);
            }
            None
        }
        Test::Tput => {
            let mut m: Msg = [0; 8];
            let t0 = now_ns();
            for i in 0..a.tput_msgs {
                m[0] = i;
                send_spin(tx, &m);
            }
            let dt = (now_ns() - t0).max(1) as f64 * 1e-9;
            SENDER_RATE.store((a.tput_msgs as f64 / dt).to_bits(), Ordering::Relaxed);
            None
        }
    }
}

fn side_b<T: Tx, R: Rx>(test: Test, a: &Args, tx: &mut T, rx: &mut R) -> Report {
    let total = a.warmup + a.iters;
    match test {
        Test::Rtt => {
            for _ in 0..total {
                let m = recv_spin(rx);
                send_spin(tx, &m);
            }
            Report::default()
        }
        Test::OneWay => {
            let mut h = histogram();
            for _ in 0..total {
                let m = recv_spin(rx);
                let t = now_ns();
                if m[1] >= a.warmup {
                    h.record(t.saturating_sub(m[0])).ok();
                }
                send_spin(tx, &m);
            }
            Report {
                latency: Some(summary(&h)),
                delivered: total,
                ..Report::default()
            }
        }
        Test::Tput => {
            let n = a.tput_msgs;
            let mut got = 0u64;
            let first = recv_spin(rx);
            let t0 = now_ns();
            let mut last = first[0];
            got += 1;
            loop {
                let done = match rx.accounted() {
                    Some(pos) => pos >= n,
                    None => got >= n,
                };
                if done {
                    break;
                }
                if let Some(m) = rx.try_recv() {
                    debug_assert!(m[0] > last || rx.lost() > 0);
                    last = m[0];
                    got += 1;
                } else {
                    spin_loop();
                }
            }
            let dt = (now_ns() - t0).max(1) as f64 * 1e-9;
            Report {
                msgs_per_sec: Some((got - 1) as f64 / dt),
                delivered: got,
                lost: rx.lost(),
                latency: None,
            }
        }
    }
}

fn raw_side_a(test: Test, a: &Args, l: &dyn Line) -> Option<Summary> {
    let total = a.warmup + a.iters;
    let seq = l.w(0);
    match test {
        Test::Rtt => {
            // One line bounces between the cores: A writes an odd value, B answers with the next
            // even one.
            let mut h = histogram();
            for i in 0..total {
                let t0 = now_ns();
                seq.store(2 * i + 1, Ordering::Release);
                while seq.load(Ordering::Acquire) != 2 * i + 2 {
                    spin_loop();
                }
                let t1 = now_ns();
                if i >= a.warmup {
                    h.record(t1 - t0).ok();
                }
            }
            Some(summary(&h))
        }
        Test::OneWay => {
            for i in 0..total {
                l.w(1).store(now_ns(), Ordering::Relaxed);
                seq.store(2 * i + 1, Ordering::Release);
                while seq.load(Ordering::Acquire) != 2 * i + 2 {
                    spin_loop();
                }
            }
            None
        }
        Test::Tput => None,
    }
}

fn raw_side_b(test: Test, a: &Args, l: &dyn Line) -> Report {
    let total = a.warmup + a.iters;
    let seq = l.w(0);
    match test {
        Test::Rtt => {
            for i in 0..total {
                while seq.load(Ordering::Acquire) != 2 * i + 1 {
                    spin_loop();
                }
                seq.store(2 * i + 2, Ordering::Release);
            }
            Report::default()
        }
        Test::OneWay => {
            let mut h = histogram();
            for i in 0..total {
                while seq.load(Ordering::Acquire) != 2 * i + 1 {
                    spin_loop();
                }
                let t = now_ns();
                let sent = l.w(1).load(Ordering::Relaxed);
                if i >= a.warmup {
                    h.record(t.saturating_sub(sent)).ok();
                }
                seq.store(2 * i + 2, Ordering::Release);
            }
            Report {
                latency: Some(summary(&h)),
                delivered: total,
                ..Report::default()
            }
        }
        Test::Tput => Report::default(),
    }
}

// ---------------------------------------------------------------------------------------------
// Wiring each transport in threads and in processes.

const TRANSPORTS: &[&str] = &[
    "raw-line",
    "shm-spsc",
    "shm-broadcast",
    "rtrb",
    "crossbeam-arrayqueue",
    #[cfg(feature = "iceoryx2-peer")]
    "iceoryx2",
];

fn in_process_only(t: &str) -> bool {
    matches!(t, "rtrb" | "crossbeam-arrayqueue")
}

fn pin(core: usize) {
    let outcome = shm_layout::process::pin_current_thread(Some(core));
    if outcome.is_warning() {
        eprintln!("warning: {outcome}");
    }
}

/// Builds side `a` or `b` of a named transport living in `dir` and runs `f` on it.
fn with_named_endpoints<Out>(
    transport: &str,
    dir: &Path,
    side_is_a: bool,
    body: &mut dyn FnMut(&mut dyn TxRx) -> Out,
) -> Result<Out> {
    let (mine, theirs) = if side_is_a {
        ("ab", "ba")
    } else {
        ("ba", "ab")
    };
    match transport {
        "shm-spsc" => {
            let mut tx = SpscProducer::<Msg>::create(dir, mine, CAPACITY, StalePolicy::Replace)?;
            let mut rx = SpscConsumer::<Msg>::open(dir, theirs, OPEN)?;
            Ok(body(&mut Pair(&mut tx, &mut rx)))
        }
        "shm-broadcast" => {
            let mut tx = BroadcastWriter::<Msg>::create(dir, mine, CAPACITY, StalePolicy::Replace)?;
            let mut rx = BcastRx {
                r: BroadcastReader::<Msg>::open(dir, theirs, OPEN)?,
                lost: 0,
            };
            Ok(body(&mut Pair(&mut tx, &mut rx)))
        }
        #[cfg(feature = "iceoryx2-peer")]
        "iceoryx2" => {
            let tag = dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut tx = iox::tx(&format!("ring-bench/{tag}/{mine}"))?;
            let mut rx = iox::rx(&format!("ring-bench/{tag}/{theirs}"))?;
            Ok(body(&mut Pair(&mut tx, &mut rx)))
        }
        other => bail!("transport {other} has no named (cross-process) form"),
    }
}

/// Object-safe view of a (Tx, Rx) pair that dispatches to the monomorphized loops once.
trait TxRx {
    fn run_a(&mut self, test: Test, a: &Args) -> Option<Summary>;
    fn run_b(&mut self, test: Test, a: &Args) -> Report;
}
struct Pair<'a, T, R>(&'a mut T, &'a mut R);
impl<T: Tx, R: Rx> TxRx for Pair<'_, T, R> {
    fn run_a(&mut self, test: Test, a: &Args) -> Option<Summary> {
        side_a(test, a, self.0, self.1)
    }
    fn run_b(&mut self, test: Test, a: &Args) -> Report {
        side_b(test, a, self.0, self.1)
    }
}

fn shm_tempdir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("ring-bench-")
        .tempdir_in("/dev/shm")
        .context("tempdir in /dev/shm")
}

/// Side B on a thread of its own pinned to `cores.1` with its ends, side A on this thread
/// pinned to `cores.0` with its ends; both start together at `barrier`.
fn thread_pair<TA, RA, TB, RB>(
    test: Test,
    a: &Args,
    cores: (usize, usize),
    barrier: &Arc<Barrier>,
    (mut ta, mut ra): (TA, RA),
    (mut tb, mut rb): (TB, RB),
) -> (Option<Summary>, Report)
where
    TA: Tx,
    RA: Rx,
    TB: Tx + Send + 'static,
    RB: Rx + Send + 'static,
{
    let (b2, a2) = (barrier.clone(), a.clone());
    let hb = std::thread::spawn(move || {
        pin(cores.1);
        b2.wait();
        side_b(test, &a2, &mut tb, &mut rb)
    });
    pin(cores.0);
    barrier.wait();
    let sa = side_a(test, a, &mut ta, &mut ra);
    (sa, hb.join().expect("side b"))
}

fn run_threads(transport: &str, test: Test, a: &Args, cores: (usize, usize)) -> Result<Outcome> {
    let barrier = Arc::new(Barrier::new(2));
    if transport == "raw-line" {
        if test == Test::Tput {
            return Ok(Outcome::NotApplicable("a single line has no throughput"));
        }
        let line: Arc<CachePadded<[AtomicU64; 8]>> = Arc::new(CachePadded::new(Default::default()));
        let (l2, b2, a2) = (line.clone(), barrier.clone(), a.clone());
        let hb = std::thread::spawn(move || {
            pin(cores.1);
            b2.wait();
            raw_side_b(test, &a2, &*l2)
        });
        pin(cores.0);
        barrier.wait();
        let sa = raw_side_a(test, a, &*line);
        let rb = hb.join().expect("side b");
        return Ok(Outcome::from(sa, rb));
    }
    if in_process_only(transport) {
        let (sa, rb) = match transport {
            "rtrb" => {
                let (ta, rb_) = rtrb::RingBuffer::<Msg>::new(CAPACITY);
                let (tb, ra) = rtrb::RingBuffer::<Msg>::new(CAPACITY);
                thread_pair(test, a, cores, &barrier, (ta, ra), (tb, rb_))
            }
            _ => {
                let ab = Arc::new(ArrayQueue::<Msg>::new(CAPACITY));
                let ba = Arc::new(ArrayQueue::<Msg>::new(CAPACITY));
                let a_ends = (Aq(ab.clone()), Aq(ba.clone()));
                thread_pair(test, a, cores, &barrier, a_ends, (Aq(ba), Aq(ab)))
            }
        };
        return Ok(Outcome::from(sa, rb));
    }
    let dir = shm_tempdir()?;
    let (d2, b2, a2, t2) = (
        dir.path().to_path_buf(),
        barrier.clone(),
        a.clone(),
        transport.to_string(),
    );
    let hb = std::thread::spawn(move || -> Result<Report> {
        pin(cores.1);
        with_named_endpoints(&t2, &d2, false, &mut |ep: &mut dyn TxRx| {
            b2.wait();
            ep.run_b(test, &a2)
        })
    });
    pin(cores.0);
    let sa = with_named_endpoints(transport, dir.path(), true, &mut |ep: &mut dyn TxRx| {
        barrier.wait();
        ep.run_a(test, a)
    })?;
    let rb = hb.join().expect("side b")?;
    Ok(Outcome::from(sa, rb))
}

fn wait_file(path: &Path, child: &mut std::process::Child) -> Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        if let Some(st) = child.try_wait()? {
            bail!("child exited early: {st}");
        }
        if std::time::Instant::now() > deadline {
            bail!("child did not get ready");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

fn run_processes(transport: &str, test: Test, a: &Args, cores: (usize, usize)) -> Result<Outcome> {
    if in_process_only(transport) {
        return Ok(Outcome::NotApplicable("heap queue: in-process only"));
    }
    if transport == "raw-line" && test == Test::Tput {
        return Ok(Outcome::NotApplicable("a single line has no throughput"));
    }
    let dir = shm_tempdir()?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .args([
            "--child",
            "--transport",
            transport,
            "--test",
            test.name(),
            "--iters",
            &a.iters.to_string(),
            "--warmup",
            &a.warmup.to_string(),
            "--tput-msgs",
            &a.tput_msgs.to_string(),
            "--cores",
            &format!("{},{}", cores.0, cores.1),
            "--dir",
        ])
        .arg(dir.path())
        .spawn()?;
    pin(cores.0);
    let ready = dir.path().join("ready");
    let sa = if transport == "raw-line" {
        let line = ProbeLine::create(dir.path(), "line", StalePolicy::Replace)?;
        std::fs::write(dir.path().join("line-ready"), b"")?;
        wait_file(&ready, &mut child)?;
        raw_side_a(test, a, &line)
    } else {
        let go = dir.path().join("go");
        with_named_endpoints(transport, dir.path(), true, &mut |ep: &mut dyn TxRx| {
            if wait_file(&ready, &mut child).is_err() {
                return None;
            }
            let _ = std::fs::write(&go, b"");
            ep.run_a(test, a)
        })?
    };
    let st = child.wait()?;
    if !st.success() {
        bail!("child failed: {st}");
    }
    let rb: Report = serde_json::from_slice(&std::fs::read(dir.path().join("report.json"))?)?;
    Ok(Outcome::from(sa, rb))
}

fn child_main(a: &Args) -> Result<()> {
    let cores = parse_cores(&a.cores)?;
    pin(cores.1);
    let dir = a.dir.clone().context("--dir")?;
    let test = Test::parse(a.test.as_deref().context("--test")?)?;
    let transport = a.transport.clone().context("--transport")?;
    let ready = dir.join("ready");
    let report = if transport == "raw-line" {
        while !dir.join("line-ready").exists() {
            std::thread::sleep(Duration::from_millis(1));
        }
        let line = ProbeLine::open(&dir, "line", OPEN)?;
        std::fs::write(&ready, b"")?;
        raw_side_b(test, a, &line)
    } else {
        let go = dir.join("go");
        with_named_endpoints(&transport, &dir, false, &mut |ep: &mut dyn TxRx| {
            let _ = std::fs::write(&ready, b"");
            while !go.exists() {
                std::thread::sleep(Duration::from_micros(200));
            }
            ep.run_b(test, a)
        })?
    };
    std::fs::write(dir.join("report.json"), serde_json::to_vec(&report)?)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Results

#[derive(Debug, Clone)]
enum Outcome {
    Latency(Summary),
    Throughput {
        msgs_per_sec: f64,
        lost: u64,
        sender_msgs_per_sec: f64,
    },
    NotApplicable(&'static str),
}

impl Outcome {
    fn from(sa: Option<Summary>, rb: Report) -> Outcome {
        if let Some(s) = sa {
            Outcome::Latency(s)
        } else if let Some(s) = rb.latency {
            Outcome::Latency(s)
        } else if let Some(r) = rb.msgs_per_sec {
            Outcome::Throughput {
                msgs_per_sec: r,
                lost: rb.lost,
                sender_msgs_per_sec: f64::from_bits(SENDER_RATE.swap(0, Ordering::Relaxed)),
            }
        } else {
            Outcome::NotApplicable("no result")
        }
    }
}

#[derive(Serialize)]
struct Row {
    mode: String,
    test: String,
    transport: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency: Option<Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p50_ratio_to_raw: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_ratio_to_raw: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    msgs_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lost: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sender_msgs_per_sec: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    throughput_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    throughput_baseline: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    not_applicable: Option<String>,
}

fn parse_cores(s: &str) -> Result<(usize, usize)> {
    let v: Vec<usize> = s
        .split(',')
        .map(|x| x.trim().parse())
        .collect::<Result<_, _>>()
        .context("--cores A,B")?;
    if v.len() != 2 {
        bail!("--cores takes two cores, A,B");
    }
    Ok((v[0], v[1]))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn main() -> Result<()> {
    let a = Args::parse();
    if a.child {
        return child_main(&a);
    }
    let cores = parse_cores(&a.cores)?;
    let transports: Vec<String> = match &a.transports {
        Some(s) => s.split(',').map(str::to_string).collect(),
        None => TRANSPORTS.iter().map(|s| s.to_string()).collect(),
    };
    let modes: Vec<&str> = match a.mode.as_str() {
        "all" => vec!["threads", "processes"],
        m @ ("threads" | "processes") => vec![m],
        m => bail!("unknown mode {m}"),
    };
    println!(
        "ring_bench: 64-byte messages, capacity {CAPACITY}, cores A={} B={} ({} online, {}), iters {} (+{} warm-up), throughput {} msgs",
        cores.0,
        cores.1,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model(),
        a.iters,
        a.warmup,
        a.tput_msgs
    );
    let tests: Vec<Test> = match &a.tests {
        Some(s) => s.split(',').map(Test::parse).collect::<Result<_>>()?,
        None => vec![Test::Rtt, Test::OneWay, Test::Tput],
    };
    let mut rows: Vec<Row> = vec![];
    for mode in &modes {
        for &test in &tests {
            let mut results: Vec<(String, Outcome)> = vec![];
            for t in &transports {
                let r = if *mode == "threads" {
                    run_threads(t, test, &a, cores)
                } else {
                    run_processes(t, test, &a, cores)
                };
                let r = r.with_context(|| format!("{mode} {} {t}", test.name()))?;
                results.push((t.clone(), r));
            }
            let raw = results.iter().find_map(|(t, o)| match o {
                Outcome::Latency(s) if t == "raw-line" => Some(*s),
                _ => None,
            });
            let (base_name, base_tput) = if *mode == "threads" {
                ("rtrb", "rtrb")
            } else {
                ("shm-spsc", "shm-spsc")
            };
            let base = results.iter().find_map(|(t, o)| match o {
                Outcome::Throughput { msgs_per_sec, .. } if t == base_tput => Some(*msgs_per_sec),
                _ => None,
            });
            println!("\n== {mode}: {} ==", test.name());
            for (t, o) in results {
                let mut row = Row {
                    mode: mode.to_string(),
                    test: test.name().into(),
                    transport: t.clone(),
                    latency: None,
                    p50_ratio_to_raw: None,
                    p99_ratio_to_raw: None,
                    msgs_per_sec: None,
                    lost: None,
                    sender_msgs_per_sec: None,
                    throughput_ratio: None,
                    throughput_baseline: None,
                    not_applicable: None,
                };
                match o {
                    Outcome::Latency(s) => {
                        row.latency = Some(s);
                        row.p50_ratio_to_raw = raw.map(|r| s.p50_ns as f64 / r.p50_ns as f64);
                        row.p99_ratio_to_raw = raw.map(|r| s.p99_ns as f64 / r.p99_ns as f64);
                        println!(
                            "{t:>22}  p50 {:>7} ns  p90 {:>7}  p99 {:>7}  p99.9 {:>8}  p99.99 {:>8}  max {:>9}  mean {:>8.1}  p50/raw {:>5.2}  p99/raw {:>5.2}",
                            s.p50_ns, s.p90_ns, s.p99_ns, s.p99_9_ns, s.p99_99_ns, s.max_ns, s.mean_ns,
                            row.p50_ratio_to_raw.unwrap_or(f64::NAN),
                            row.p99_ratio_to_raw.unwrap_or(f64::NAN),
                        );
                    }
                    Outcome::Throughput {
                        msgs_per_sec,
                        lost,
                        sender_msgs_per_sec,
                    } => {
                        row.msgs_per_sec = Some(msgs_per_sec);
                        row.lost = Some(lost);
                        row.sender_msgs_per_sec = Some(sender_msgs_per_sec);
                        row.throughput_ratio = base.map(|b| msgs_per_sec / b);
                        row.throughput_baseline = Some(base_name.into());
                        println!(
                            "{t:>22}  {:>8.2} M msgs/s received  ratio to {base_name} {:>5.2}  (sender {:>8.2} M msgs/s){}",
                            msgs_per_sec / 1e6,
                            row.throughput_ratio.unwrap_or(f64::NAN),
                            sender_msgs_per_sec / 1e6,
                            if lost > 0 {
                                format!("  (reader lapped: {lost} lost; the writer never waits)")
                            } else {
                                String::new()
                            }
                        );
                    }
                    Outcome::NotApplicable(why) => {
                        row.not_applicable = Some(why.into());
                        println!("{t:>22}  n/a ({why})");
                    }
                }
                rows.push(row);
            }
        }
    }
    if let Some(path) = &a.json {
        let doc = serde_json::json!({
            "benchmark": "ring_bench",
            "message_bytes": 64,
            "capacity": CAPACITY,
            "cores": [cores.0, cores.1],
            "online_cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "cpu_model": cpu_model(),
            "iters": a.iters,
            "warmup": a.warmup,
            "tput_msgs": a.tput_msgs,
            "wall_time_ns": shm_layout::clock::wall_ns(),
            "results": rows,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)?;
        println!("\nJSON: {}", path.display());
    }
    Ok(())
}
