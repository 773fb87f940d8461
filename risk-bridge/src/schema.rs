//! What travels on the bus: subjects, bucket names and the JSON message schemas.
//!
//! Every message is one JSON object. Numbers keep their units in their names (`_ns`, `_ms`,
//! `_lots`); deltas are in units of the underlying (the hedger's own unit).

use serde::{Deserialize, Serialize};

/// Stream holding every execution of every host (the firm's drop copy).
pub const EXECS_STREAM: &str = "EXECS";
/// Subject prefix of executions: `execs.<host>.<underlying>`.
pub const EXECS_SUBJECT_PREFIX: &str = "execs";
/// KV bucket of per-underlying risk: key `<host>.<underlying>`.
pub const RISK_BUCKET: &str = "risk";
/// KV bucket of per-host heartbeats: key `<host>`.
pub const HOSTS_BUCKET: &str = "hosts";
/// KV bucket of firm control commands: key `all` (every host) or `<host>`.
pub const CONTROL_BUCKET: &str = "control";
/// KV bucket of acknowledgements of control commands: key `<host>`.
pub const ACKS_BUCKET: &str = "control_acks";
/// Control key addressing every host.
pub const ALL_HOSTS: &str = "all";

/// One execution from the gateway's journal, as published to `execs.<host>.<underlying>`
/// with JetStream message id `<host>.<exec_id>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecMsg {
    /// Host (bridge) that published it.
    pub host: String,
    /// The gateway's exec id (unique and increasing per host).
    pub exec_id: u64,
    /// Hedge order it belongs to (0 for client option trades).
    pub client_order_id: u64,
    /// Instrument id on that host.
    pub instrument_id: u32,
    /// Underlying symbol (or id as text when the instruments table does not know it).
    pub underlying: String,
    /// `ack`, `fill`, `partial-fill`, `option-trade`, ... (shm-layout's `ExecKind` name).
    pub kind: String,
    /// Side name (`buy` / `sell`).
    pub side: String,
    /// Quantity in lots (contracts for options).
    pub qty_lots: f64,
    /// Price in quote currency.
    pub price: f64,
    /// Fee in quote currency.
    pub fee: f64,
    /// Gateway timestamp, ns of the host's monotonic clock.
    pub ts_ns: u64,
}

/// Risk of one underlying on one host (KV `risk`, key `<host>.<underlying>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskMsg {
    /// Host.
    pub host: String,
    /// Underlying symbol.
    pub underlying: String,
    /// Net delta (options + hedge + in flight), underlying units.
    pub net_delta: f64,
    /// Delta of the options alone.
    pub option_delta: f64,
    /// Hedge position, underlying units.
    pub hedge_position: f64,
    /// Hedge orders in flight on the host (all underlyings).
    pub orders_inflight: f64,
    /// Trading state in the control block (`active`, `reduce-only`, `halted`).
    pub trading_state: String,
    /// Firm budget for |net delta| (underlying units), if one is set.
    pub net_delta_budget: Option<f64>,
    /// |net delta| / budget, if a budget is set.
    pub budget_use: Option<f64>,
    /// Wall-clock time of the reading, ms since the Unix epoch.
    pub updated_unix_ms: u64,
}

/// Per-host heartbeat (KV `hosts`, key `<host>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatMsg {
    /// Host.
    pub host: String,
    /// Wall-clock time, ms since the Unix epoch.
    pub unix_ms: u64,
    /// Bridge process id.
    pub pid: u32,
    /// Kill switch of the local control block.
    pub kill_switch: bool,
    /// Why the bridge set the local hedger reduce-only by itself, if it did.
    pub failsafe: Option<String>,
    /// Highest exec id acknowledged by JetStream.
    pub last_exec_id: u64,
}

/// What a control command asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlAction {
    /// Kill switch on.
    Kill,
    /// Trading state halted.
    Halt,
    /// Trading state reduce-only.
    ReduceOnly,
    /// Trading state active; kill switch off when no underlying is named.
    Resume,
    /// Set (or clear, with `null`) the |net delta| budgets.
    Limits,
}

/// A firm control command (KV `control`, key `all` or `<host>`). Rejected whole when any
/// field is bad; never applied in part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlMsg {
    /// `all` or the host name; must equal the key it is stored under.
    pub host: String,
    /// What to do.
    pub action: ControlAction,
    /// Underlying symbols it applies to; all underlyings of the host when empty.
    #[serde(default)]
    pub underlyings: Vec<String>,
    /// For `limits`: budget for |net delta| of each named underlying (or each underlying),
    /// underlying units; `None` clears it. Finite and > 0.
    #[serde(default)]
    pub net_delta_budget: Option<f64>,
    /// Who sent it (free text for the log).
    #[serde(default)]
    pub issued_by: String,
}

/// A bridge's answer to a control command (KV `control_acks`, key `<host>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AckMsg {
    /// Host answering.
    pub host: String,
    /// KV revision of the command answered.
    pub revision: u64,
    /// Applied to the local control block (`true`) or rejected (`false`).
    pub applied: bool,
    /// Why it was rejected, or what it did.
    pub detail: String,
}

/// Makes `s` one NATS subject/key token: `[A-Za-z0-9_-]`, other characters become `_`.
pub fn token(s: &str) -> String {
    let t: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if t.is_empty() {
        "_".into()
    } else {
        t
    }
}

/// Whether `s` is a valid host name: 1-64 characters of `[A-Za-z0-9_-]`, not `all`.
pub fn valid_host(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && token(s) == s && s != ALL_HOSTS
}

/// Wall-clock ms since the Unix epoch.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
