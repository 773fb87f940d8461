//! The firm client: what `hedgectl firm` runs. It reads the `hosts` and `risk` buckets for a
//! firm-wide table, and writes control commands, waiting for every live host's ack.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use async_nats::jetstream::kv;
use futures::StreamExt as _;

use crate::bus::{self, Bus, REQUEST_TIMEOUT};
use crate::schema::{self, AckMsg, ControlAction, ControlMsg, HeartbeatMsg, RiskMsg, ALL_HOSTS};

/// A host whose heartbeat is older than this is not waited for (reported as not live).
pub const DEFAULT_LIVE_WITHIN: Duration = Duration::from_secs(5);

/// A firm client over one connection.
pub struct Firm {
    bus: Bus,
}

/// Every host and underlying, with ages, and the firm's net delta per underlying.
#[derive(Debug, Clone, Default)]
pub struct FirmStat {
    /// Heartbeats and their age in ms (the reader's wall clock minus the host's).
    pub hosts: Vec<(HeartbeatMsg, u64)>,
    /// Risk rows and their age in ms.
    pub rows: Vec<(RiskMsg, u64)>,
    /// Sum of net delta over hosts, by underlying (underlying units).
    pub firm_net_delta: BTreeMap<String, f64>,
}

/// How a command went.
#[derive(Debug, Clone, Default)]
pub struct CommandReport {
    /// KV revision of the command.
    pub revision: u64,
    /// Hosts the command was waited for (live ones addressed).
    pub waited_for: Vec<String>,
    /// Acks received.
    pub acks: Vec<AckMsg>,
    /// Live hosts that did not ack in time.
    pub missing: Vec<String>,
    /// Time from the write to the last ack (or the timeout).
    pub elapsed: Duration,
}

impl CommandReport {
    /// Every host acked and applied it.
    pub fn ok(&self) -> bool {
        self.missing.is_empty() && self.acks.iter().all(|a| a.applied)
    }
}

async fn entries<T: serde::de::DeserializeOwned>(store: &kv::Store) -> anyhow::Result<Vec<T>> {
    let mut keys = store.keys().await?;
    let mut out = Vec::new();
    while let Some(k) = keys.next().await {
        if let Some(v) = store.get(k?).await? {
            if let Ok(m) = serde_json::from_slice(&v) {
                out.push(m);
            }
        }
    }
    Ok(out)
}

impl Firm {
    /// Connects to `url` (no retry: a firm client wants to know now).
    ///
    /// # Errors
    /// The server cannot be reached or has no JetStream.
    pub async fn connect(url: &str) -> anyhow::Result<Firm> {
        let client =
            tokio::time::timeout(REQUEST_TIMEOUT, bus::options("hedgectl firm").connect(url))
                .await
                .map_err(|_| anyhow::anyhow!("NATS at {url}: connect timed out"))?
                .map_err(|e| {
                    anyhow::anyhow!(
                        "NATS at {url}: {e} (a local server: scripts/setup-nats.sh --start)"
                    )
                })?;
        Ok(Firm {
            bus: bus::declare(client, crate::bridge::DEFAULT_DEDUP_WINDOW).await?,
        })
    }

    /// Reads every heartbeat and risk row.
    ///
    /// # Errors
    /// Bus errors.
    pub async fn stat(&self) -> anyhow::Result<FirmStat> {
        let now = schema::unix_ms();
        let mut st = FirmStat::default();
        for hb in entries::<HeartbeatMsg>(&self.bus.hosts).await? {
            let age = now.saturating_sub(hb.unix_ms);
            st.hosts.push((hb, age));
        }
        for r in entries::<RiskMsg>(&self.bus.risk).await? {
            *st.firm_net_delta.entry(r.underlying.clone()).or_default() += r.net_delta;
            let age = now.saturating_sub(r.updated_unix_ms);
            st.rows.push((r, age));
        }
        st.hosts.sort_by(|a, b| a.0.host.cmp(&b.0.host));
        st.rows
            .sort_by(|a, b| (&a.0.underlying, &a.0.host).cmp(&(&b.0.underlying, &b.0.host)));
        Ok(st)
    }

    /// Writes `msg` under its host key and waits up to `timeout` for the acks of every host
    /// addressed whose heartbeat is younger than `live_within`.
    ///
    /// # Errors
    /// An unknown host (no heartbeat ever), a bad host name, bus errors.
    pub async fn command(
        &self,
        msg: &ControlMsg,
        timeout: Duration,
        live_within: Duration,
    ) -> anyhow::Result<CommandReport> {
        let stat = self.stat().await?;
        let known: Vec<&str> = stat.hosts.iter().map(|(h, _)| h.host.as_str()).collect();
        if msg.host != ALL_HOSTS && !known.contains(&msg.host.as_str()) {
            anyhow::bail!(
                "unknown host '{}': no bridge has ever reported it (known: {})",
                msg.host,
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            );
        }
        let live_ms = live_within.as_millis() as u64;
        let waited_for: BTreeSet<String> = stat
            .hosts
            .iter()
            .filter(|(h, age)| *age <= live_ms && (msg.host == ALL_HOSTS || h.host == msg.host))
            .map(|(h, _)| h.host.clone())
            .collect();
        let mut acks_watch = self.bus.acks.watch_all().await?;
        let body = serde_json::to_vec(msg).expect("a ControlMsg always serializes");
        let start = Instant::now();
        let revision = self.bus.control.put(&msg.host, body.into()).await?;
        let mut acks: BTreeMap<String, AckMsg> = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + timeout;
        while acks.len() < waited_for.len() {
            let next = tokio::time::timeout_at(deadline, acks_watch.next()).await;
            let Ok(Some(Ok(e))) = next else { break };
            if let Ok(a) = serde_json::from_slice::<AckMsg>(&e.value) {
                if a.revision >= revision && waited_for.contains(&a.host) {
                    acks.insert(a.host.clone(), a);
                }
            }
        }
        Ok(CommandReport {
            revision,
            missing: waited_for
                .iter()
                .filter(|h| !acks.contains_key(*h))
                .cloned()
                .collect(),
            waited_for: waited_for.into_iter().collect(),
            acks: acks.into_values().collect(),
            elapsed: start.elapsed(),
        })
    }
}

/// Renders `hedgectl firm stat`.
pub fn render_stat(st: &FirmStat) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<16} {:>10} {:>8} {:<5} {:>12} FAIL-SAFE",
        "HOST", "AGE", "PID", "KILL", "LAST EXEC"
    );
    for (h, age) in &st.hosts {
        let _ = writeln!(
            s,
            "{:<16} {:>10} {:>8} {:<5} {:>12} {}",
            h.host,
            fmt_age(*age),
            h.pid,
            if h.kill_switch { "ON" } else { "off" },
            h.last_exec_id,
            h.failsafe.as_deref().unwrap_or("-")
        );
    }
    let _ = writeln!(
        s,
        "\n{:<12} {:<16} {:>12} {:>12} {:>12} {:>8} {:<12} {:>10} {:>8}",
        "UNDERLYING",
        "HOST",
        "NET DELTA",
        "OPT DELTA",
        "HEDGE POS",
        "INFLIGHT",
        "STATE",
        "BUDGET USE",
        "AGE"
    );
    for (r, age) in &st.rows {
        let _ = writeln!(
            s,
            "{:<12} {:<16} {:>12.4} {:>12.4} {:>12.4} {:>8} {:<12} {:>10} {:>8}",
            r.underlying,
            r.host,
            r.net_delta,
            r.option_delta,
            r.hedge_position,
            r.orders_inflight,
            r.trading_state,
            r.budget_use
                .map_or("-".to_string(), |u| format!("{:.0}%", u * 100.0)),
            fmt_age(*age)
        );
    }
    let _ = writeln!(s, "\n{:<12} {:>16}", "UNDERLYING", "FIRM NET DELTA");
    for (u, d) in &st.firm_net_delta {
        let _ = writeln!(s, "{u:<12} {d:>16.4}");
    }
    s
}

fn fmt_age(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", ms as f64 / 1000.0)
    }
}

/// Renders a command's outcome, one line per host.
pub fn render_report(action: ControlAction, r: &CommandReport) -> String {
    let mut s = format!(
        "{} (revision {}): {} of {} live host(s) acknowledged in {:.1} ms\n",
        serde_json::to_string(&action)
            .unwrap_or_default()
            .trim_matches('"'),
        r.revision,
        r.acks.len(),
        r.waited_for.len(),
        r.elapsed.as_secs_f64() * 1e3
    );
    for a in &r.acks {
        let verdict = if a.applied { "applied" } else { "REJECTED" };
        let _ = writeln!(s, "  {:<16} {verdict}: {}", a.host, a.detail);
    }
    for h in &r.missing {
        let _ = writeln!(s, "  {h:<16} NO ACK within the timeout");
    }
    s
}
