//! The bridge process: one loop on one tokio thread that tails the journal, publishes risk
//! and heartbeats, applies firm control, and trips the fail-safe when the bus is lost.
//!
//! Order of a tick (every `poll`): bus state (fail-safe), journal -> `EXECS` (pipelined
//! publishes, then acks in order, then the position file), risk (on change or heartbeat),
//! heartbeat. Control entries are handled as soon as the watcher yields them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures::StreamExt as _;
use shm_layout::control::ControlBlock;
use shm_layout::counter_schema::{CounterDef as D, CounterSet};
use shm_layout::counters::{Counter, CountersWriter, Gauge, ProcessState};
use shm_layout::segment::OpenOptions;
use shm_layout::StalePolicy;

use crate::bus::{self, Bus, REQUEST_TIMEOUT};
use crate::local;
use crate::schema::{self, RiskMsg};
use crate::state::{self, Position};

/// Everything the bridge needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Host name (key and subject token).
    pub host: String,
    /// Namespace directory (segments of the local engine).
    pub dir: PathBuf,
    /// The gateway's journal.
    pub journal: PathBuf,
    /// Position file.
    pub state_file: PathBuf,
    /// NATS server URL.
    pub nats_url: String,
    /// Bus lost longer than this: the local hedger goes reduce-only.
    pub bus_timeout: Duration,
    /// Risk is re-published at least this often (the host heartbeat's period).
    pub heartbeat: Duration,
    /// Tick period of the loop.
    pub poll: Duration,
    /// JetStream duplicate window of the `EXECS` stream.
    pub dedup_window: Duration,
    /// Policy for a `cnc-risk-bridge` segment left by a dead bridge.
    pub on_stale: StalePolicy,
}

/// Default JetStream duplicate window of the `EXECS` stream: a bridge that restarts within
/// it re-sends its unacknowledged tail without creating duplicates.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(600);

/// Role of the bridge's counters segment.
pub const ROLE: &str = "risk-bridge";

struct Metrics {
    writer: CountersWriter,
    execs_published: Counter,
    execs_duplicate: Counter,
    exec_id_gaps: Counter,
    risk_updates: Counter,
    control_applied: Counter,
    control_rejected: Counter,
    budget_breaches: Counter,
    bus_errors: Counter,
    bus_connected: Gauge,
    failsafe: Gauge,
    last_acked_exec_id: Gauge,
}

shm_layout::counter_schema! {
    /// Every counter and gauge of the risk bridge (`cnc-risk-bridge`), declared once.
    pub enum BridgeCounter {
        /// Execs published to the bus.
        ExecsPublished = D::counter("execs_published", "execs", "Journal execs published to the bus (drop copy)"),
        /// Duplicates.
        ExecsDuplicate = D::counter("execs_duplicate", "execs", "Execs the bus already had (same exec id), not published twice"),
        /// Gaps.
        ExecIdGaps = D::counter("exec_id_gaps", "gaps", "Gaps in the journal's exec ids"),
        /// Risk updates.
        RiskUpdates = D::counter("risk_updates", "updates", "Risk snapshots published to the bus"),
        /// Control applied.
        ControlApplied = D::counter("control_applied", "commands", "Firm control commands applied to the control block"),
        /// Control rejected.
        ControlRejected = D::counter("control_rejected", "commands", "Firm control commands rejected as invalid"),
        /// Budget breaches.
        BudgetBreaches = D::counter("budget_breaches", "breaches", "Host net delta outside its firm budget"),
        /// Bus errors.
        BusErrors = D::counter("bus_errors", "errors", "Bus requests that failed"),
        /// Bus connected.
        BusConnected = D::gauge("bus_connected", "", "1 while connected to the bus"),
        /// Fail-safe.
        FailsafeReduceOnly = D::gauge("failsafe_reduce_only", "", "1 while the bridge holds the host reduce-only, by reason")
            .by("reason", &["bus_lost"]),
        /// Last acked exec id.
        LastAckedExecId = D::gauge("last_acked_exec_id", "", "Last exec id the bus acknowledged"),
    }
}

impl Metrics {
    fn new(cfg: &Config) -> anyhow::Result<Self> {
        use BridgeCounter as B;
        let mut w = CountersWriter::create(&cfg.dir, ROLE, cfg.on_stale)?;
        let set: CounterSet<BridgeCounter> = w.register(&[]);
        let c = |id| set.counter_at(id, 0, 0);
        let g = |id| set.gauge_at(id, 0, 0);
        let m = Metrics {
            execs_published: c(B::ExecsPublished),
            execs_duplicate: c(B::ExecsDuplicate),
            exec_id_gaps: c(B::ExecIdGaps),
            risk_updates: c(B::RiskUpdates),
            control_applied: c(B::ControlApplied),
            control_rejected: c(B::ControlRejected),
            budget_breaches: c(B::BudgetBreaches),
            bus_errors: c(B::BusErrors),
            bus_connected: g(B::BusConnected),
            failsafe: g(B::FailsafeReduceOnly),
            last_acked_exec_id: g(B::LastAckedExecId),
            writer: w,
        };
        Ok(m)
    }
}

struct Bridge {
    cfg: Config,
    m: Metrics,
    pos: Position,
    cb: Option<ControlBlock>,
    client: async_nats::Client,
    bus: Option<Bus>,
    watch: Option<kv::Watch>,
    last_bus_ok: Instant,
    connected: bool,
    failsafe: Option<String>,
    journal_offset: u64,
    journal_file: u64,
    budgets: HashMap<String, f64>,
    last_risk: HashMap<String, RiskMsg>,
    last_heartbeat: Option<Instant>,
}

/// Runs the bridge until `shutdown` resolves.
///
/// # Errors
/// Bad host name, the position file unreadable, the counters segment in use by a live
/// bridge. Bus trouble is never an error: it is retried, counted and, past the timeout,
/// turns the host reduce-only.
pub async fn run(
    cfg: Config,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    if !schema::valid_host(&cfg.host) {
        anyhow::bail!(
            "host name '{}' must be 1-64 characters of [A-Za-z0-9_-] and not 'all'",
            cfg.host
        );
    }
    let pos = state::load(&cfg.state_file)?;
    let m = Metrics::new(&cfg)?;
    let client = bus::options(&format!("risk-bridge {}", cfg.host))
        .retry_on_initial_connect()
        .connect(cfg.nats_url.as_str())
        .await?;
    tracing::info!(host = %cfg.host, url = %cfg.nats_url, last_acked_exec_id = pos.last_acked_exec_id,
        last_control_revision = pos.last_control_revision, "risk-bridge starting");
    let mut b = Bridge {
        m,
        pos,
        cb: None,
        client,
        bus: None,
        watch: None,
        last_bus_ok: Instant::now(),
        connected: false,
        failsafe: None,
        journal_offset: 0,
        journal_file: 0,
        budgets: HashMap::new(),
        last_risk: HashMap::new(),
        last_heartbeat: None,
        cfg,
    };
    b.m.writer.set_state(ProcessState::Running);
    b.main_loop(shutdown).await;
    b.m.writer.set_state(ProcessState::Stopped);
    Ok(())
}

impl Bridge {
    async fn main_loop(&mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut tick = tokio::time::interval(self.cfg.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            let next = async {
                match self.watch.as_mut() {
                    Some(w) => w.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                entry = next => match entry {
                    Some(Ok(e)) => self.on_control(e).await,
                    Some(Err(e)) => {
                        tracing::warn!("control watch failed: {e}; re-subscribing");
                        self.watch = None;
                    }
                    None => self.watch = None,
                },
                _ = tick.tick() => self.on_tick().await,
            }
        }
        tracing::info!(host = %self.cfg.host, "risk-bridge stopping");
    }

    async fn on_tick(&mut self) {
        self.m.writer.heartbeat();
        if self.cb.is_none() {
            self.cb = ControlBlock::open(&self.cfg.dir, OpenOptions::default()).ok();
        }
        let connected = self.client.connection_state() == async_nats::connection::State::Connected;
        if connected && self.bus.is_none() {
            self.bus = match bus::declare(self.client.clone(), self.cfg.dedup_window).await {
                Ok(b) => Some(b),
                Err(e) => {
                    self.m.bus_errors.inc();
                    tracing::warn!("declaring stream and buckets: {e:#}");
                    None
                }
            };
        }
        if !connected {
            // The watcher's consumer may be gone with the server: re-subscribe on return.
            self.watch = None;
        }
        self.connected = connected && self.bus.is_some();
        if self.connected {
            self.last_bus_ok = Instant::now();
            self.m.bus_connected.set(1.0);
            self.ensure_watch().await;
            self.pump_journal().await;
            self.publish_risk().await;
        } else {
            self.m.bus_connected.set(0.0);
            self.check_failsafe();
        }
        self.check_resumed();
    }

    async fn ensure_watch(&mut self) {
        if self.watch.is_some() {
            return;
        }
        let Some(bus) = &self.bus else { return };
        match tokio::time::timeout(REQUEST_TIMEOUT, bus.control.watch_all()).await {
            Ok(Ok(w)) => self.watch = Some(w),
            Ok(Err(e)) => tracing::warn!("control watch: {e}"),
            Err(_) => tracing::warn!("control watch: timed out"),
        }
    }

    fn check_failsafe(&mut self) {
        let down = self.last_bus_ok.elapsed();
        if self.failsafe.is_some() || down < self.cfg.bus_timeout {
            return;
        }
        let reason = format!(
            "bus lost for {} ms (timeout {} ms): reduce-only until resume",
            down.as_millis(),
            self.cfg.bus_timeout.as_millis()
        );
        if let Some(cb) = &self.cb {
            let n = local::failsafe_reduce_only(cb, &local::underlyings(&self.cfg.dir));
            tracing::error!(host = %self.cfg.host, changed = n, "FAIL-SAFE: {reason}");
        } else {
            tracing::error!(host = %self.cfg.host, "FAIL-SAFE: {reason} (no control block yet)");
        }
        self.m.failsafe.set(1.0);
        self.failsafe = Some(reason);
    }

    /// A fail-safe ends when the operator (local `hedgectl resume` or `hedgectl firm resume`)
    /// has put every underlying back to active.
    fn check_resumed(&mut self) {
        let (Some(_), Some(cb)) = (&self.failsafe, &self.cb) else {
            return;
        };
        if self.connected && local::resumed(cb, &local::underlyings(&self.cfg.dir)) {
            tracing::info!(host = %self.cfg.host, "fail-safe cleared by resume");
            self.failsafe = None;
            self.m.failsafe.set(0.0);
        }
    }
}

mod control;
mod publish;
