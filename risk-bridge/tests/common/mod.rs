//! Test rig of the risk-bridge tests: a private nats-server (free loopback port, temporary
//! store), simulated hosts (a namespace directory with the segments a hedger creates, written
//! with shm-layout's writers, and the gateway's real journal), and bridge processes. Every
//! guard kills and removes what it started when dropped, also when the test fails.
#![allow(dead_code)]

use std::fs::File;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytemuck::Zeroable;
use order_gateway::journal::Journal;
use shm_layout::control::ControlBlock;
use shm_layout::counters::{CountersWriter, Gauge, ProcessState};
use shm_layout::segment::{names, StalePolicy};
use shm_layout::{ExecEvent, ExecKind, InstrumentTable};

/// Polls `f` every 5 ms until it returns `Some`, or panics after `limit` naming `what`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn nats_server_bin() -> PathBuf {
    for p in [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ] {
        if Path::new(p).is_file() {
            return p.into();
        }
    }
    panic!("nats-server is not installed: run scripts/setup-nats.sh (Debian's nats-server 2.9)");
}

/// A nats-server with JetStream on 127.0.0.1:<free port>, store in a temporary directory.
pub struct NatsServer {
    pub port: u16,
    root: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    pub fn start() -> NatsServer {
        let root = tempfile::Builder::new()
            .prefix("risk-bridge-nats-")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = NatsServer {
            port,
            root,
            child: None,
        };
        s.resume();
        s
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and store.
    pub fn resume(&mut self) {
        assert!(self.child.is_none());
        let log = File::create(self.root.path().join("nats.log")).unwrap();
        let child = Command::new(nats_server_bin())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.root.path().join("store"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let port = self.port;
        wait_for("nats-server to listen", Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    /// Stops the server as an operator or systemd would (SIGTERM) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The gauges a hedger publishes for one underlying.
pub struct UndGauges {
    pub net_delta: Gauge,
    pub option_delta: Gauge,
    pub hedge_position: Gauge,
}

/// One simulated host: its own namespace directory (under /dev/shm), instruments BTC (0),
/// BTC-PERPETUAL (1), ETH (2), ETH-PERPETUAL (3), the control block, the hedger's counters and
/// the gateway's journal.
pub struct SimHost {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub control: ControlBlock,
    pub btc: UndGauges,
    pub eth: UndGauges,
    pub journal: Journal,
    pub next_exec_id: u64,
    _keep: (InstrumentTable, CountersWriter),
}

impl SimHost {
    pub fn new(name: &str) -> SimHost {
        let dir = testkit::shm::namespace_dir(&format!("risk-bridge-{name}-"));
        let d = dir.path();
        let defs = testkit::shm::index_and_perpetuals(&["BTC", "ETH"]);
        let table =
            InstrumentTable::create(d, names::INSTRUMENTS, &defs, StalePolicy::Fail).unwrap();
        let control = ControlBlock::create(d, StalePolicy::Fail).unwrap();
        let mut w = CountersWriter::create(d, "hedger", StalePolicy::Fail).unwrap();
        let mut und = |u: &str| UndGauges {
            net_delta: w.gauge(&format!("net_delta{{underlying=\"{u}\"}}")),
            option_delta: w.gauge(&format!("option_delta{{underlying=\"{u}\"}}")),
            hedge_position: w.gauge(&format!("hedge_position{{underlying=\"{u}\"}}")),
        };
        let (btc, eth) = (und("BTC"), und("ETH"));
        w.set_state(ProcessState::Running);
        w.heartbeat();
        let (journal, _) = Journal::open(&d.join("order-gateway.journal")).unwrap();
        SimHost {
            name: name.to_string(),
            dir,
            control,
            btc,
            eth,
            journal,
            next_exec_id: 1,
            _keep: (table, w),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Journals `n` fills (alternating BTC and ETH perpetual) with the next exec ids.
    pub fn fills(&mut self, n: u64) {
        for _ in 0..n {
            let id = self.next_exec_id;
            let e = ExecEvent {
                exec_id: id,
                client_order_id: id,
                instrument_id: if id.is_multiple_of(2) { 1 } else { 3 },
                kind: ExecKind::Fill as u8,
                side: shm_layout::Side::Buy as u8,
                qty: 1.0,
                price: 100.0 + id as f64,
                ts_ns: shm_layout::clock::now_ns(),
                ..ExecEvent::zeroed()
            };
            self.journal.append_exec(&e);
            self.next_exec_id += 1;
        }
        self.journal.flush().unwrap();
    }
}

/// A `risk-bridge` process for a host; SIGKILLed and reaped when dropped.
pub struct Bridge {
    pub child: Option<Child>,
    pub log: PathBuf,
}

impl Bridge {
    pub fn start(host: &SimHost, url: &str, bus_timeout_ms: u64) -> Bridge {
        let log = host
            .path()
            .join(format!("risk-bridge-{}.log", std::process::id()));
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_risk-bridge"))
            .args(["--host", &host.name, "--nats-url", url, "--poll-ms", "5"])
            .args([
                "--heartbeat-ms",
                "200",
                "--bus-timeout-ms",
                &bus_timeout_ms.to_string(),
            ])
            .arg("--shm-dir")
            .arg(host.path())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start risk-bridge");
        Bridge {
            child: Some(child),
            log,
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A current-thread runtime for the test's own NATS calls.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every message of the EXECS stream: `(Nats-Msg-Id, payload)`.
pub async fn stream_execs(url: &str) -> Vec<(String, risk_bridge::schema::ExecMsg)> {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut stream = js
        .get_stream(risk_bridge::schema::EXECS_STREAM)
        .await
        .unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let m = stream.get_raw_message(seq).await.unwrap();
        let id = m
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.to_string());
        let id = id.unwrap_or_else(|| panic!("no Nats-Msg-Id on message {seq}: {:?}", m.headers));
        out.push((id, serde_json::from_slice(&m.payload).unwrap()));
    }
    out
}
