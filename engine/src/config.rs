//! The hedger's configuration: a TOML file, validated into typed policy and limit settings.
//!
//! Instruments are named by symbol; the hedger resolves them through the instruments segment
//! that the feed handler writes. Every error names the offending key
//! (`underlyings.BTC.policy.band: must be > 0, got -1`), in one line.
//!
//! The committed example `engine/config/hedger.example.toml` documents every key.

use crate::limits::LimitsConfig;
use crate::policy::{BandRule, ExecConfig, ExecStyle, PolicyConfig, RehedgeTarget, Trigger};
use serde::Deserialize;
use shm_layout::process::IdleStrategy;
use shm_layout::StalePolicy;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A configuration error naming the key at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("config {file}: {key}: {msg}")]
pub struct ConfigError {
    /// File (or `<cli>` for overrides).
    pub file: String,
    /// Dotted key path, e.g. `underlyings.BTC.policy.band`.
    pub key: String,
    /// What is wrong.
    pub msg: String,
}

/// Which clock gives "now" for time to expiry and the trading day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MarketClock {
    /// The host's wall clock (`CLOCK_REALTIME`, re-calibrated against the monotonic clock in
    /// idle time): live trading.
    #[default]
    Wall,
    /// The exchange timestamps of the market events (`exch_ts_ns`): for feeding recorded data
    /// (a Tardis or LOBSTER replay through the feed handler) to the live hedger, whose options
    /// would otherwise all look expired against today's date.
    Exchange,
}

/// `[shm]`: where the segments are.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShmSection {
    /// Namespace: segments live in `/dev/shm/<namespace>/` unless `dir` is set.
    pub namespace: String,
    /// Explicit segment directory (overrides `namespace`; e.g. a hugetlbfs mount).
    pub dir: Option<PathBuf>,
    /// Market-data ring name.
    pub md: String,
    /// Last-value table name.
    pub lvt: String,
    /// Instruments segment name.
    pub instruments: String,
    /// Orders ring name (created by the hedger).
    pub orders: String,
    /// Execs ring name.
    pub execs: String,
    /// Orders ring capacity (power of two).
    pub orders_capacity: usize,
    /// How long to wait for the feed's and gateway's segments at startup, ms.
    pub open_wait_ms: u64,
    /// Role name of the gateway's counters (heartbeat watched for auto-halt).
    pub gateway_role: String,
    /// Gateway heartbeat older than this halts hedging, ms.
    pub gateway_heartbeat_timeout_ms: u64,
    /// What to do with an orders/control segment whose creator (a previous hedger) is dead:
    /// `recover` (the default) adopts it, a restart that keeps unconsumed orders; `replace`
    /// deletes it and creates a fresh one; `fail` refuses to start.
    pub on_stale: StalePolicy,
}

impl Default for ShmSection {
    fn default() -> Self {
        ShmSection {
            namespace: "hedge".into(),
            dir: None,
            md: "md".into(),
            lvt: "lvt".into(),
            instruments: "instruments".into(),
            orders: "orders".into(),
            execs: "execs".into(),
            orders_capacity: 4096,
            open_wait_ms: 10_000,
            gateway_role: "gateway".into(),
            gateway_heartbeat_timeout_ms: 1_000,
            on_stale: StalePolicy::Recover,
        }
    }
}

/// `[runtime]`: thread, state and outputs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSection {
    /// Core to pin the loop to (none: not pinned).
    pub core: Option<usize>,
    /// Core for the hedger's side threads (session journal writer, state writer, histogram
    /// log), so that they never preempt the pinned loop (none: they run where the scheduler
    /// puts them, which may be the loop's core). Used only with `core`, and only when both
    /// cores are available to the process.
    pub housekeeping_core: Option<usize>,
    /// Idle strategy (phases: [`crate::hedger::live::IDLE_BACKOFF`]).
    pub idle: IdleStrategy,
    /// State directory (snapshot of positions, processed exec ids, orders in flight).
    pub state_dir: PathBuf,
    /// HdrHistogram interval log output (none: no latency log).
    pub histogram_path: Option<PathBuf>,
    /// Interval between histogram log entries, ms.
    pub histogram_interval_ms: u64,
    /// Interval between state snapshots when execs are pending, ms (one is also forced when an
    /// eighth of the execs ring, at least 512 reports, waits uncommitted). Each snapshot
    /// rewrites the whole state file, a line per held option: for 10,000 options at most
    /// 1.2 ms of the state writer thread (a whole save formatted from scratch, measured; the
    /// writer formats only the changed lines; none of it on the loop, which sends only the
    /// options changed), so the 5 ms default costs that thread up to a fifth of a core while
    /// execs flow. A longer interval costs only a longer re-delivery of reports after a crash
    /// (each skipped by its exec id), and holds more reports uncommitted in the execs ring.
    pub snapshot_interval_ms: u64,
    /// Interval of heartbeat and stats publication, ms.
    pub stats_interval_ms: u64,
    /// After a restart, hold hedging until no report for a previous run's order arrived for
    /// this long (orders in flight reconciled from the exec stream), ms.
    pub reconcile_quiet_ms: u64,
    /// After a restart, give up waiting for reports of the previous run's orders after this
    /// long (they are dropped from the in-flight table and counted), ms.
    pub reconcile_timeout_ms: u64,
    /// Whether to fsync the state snapshot (survives power loss, not only process crash).
    pub fsync: bool,
    /// `wall` (live) or `exchange` (recorded data replayed through the feed handler).
    pub market_clock: MarketClock,
    /// Record what the loop consumed into `<state_dir>/session/` so that
    /// `hedgectl replay --session` can reproduce its orders (`hedger::journal`).
    pub session_record: bool,
    /// A session journal file is closed at this size, MiB (then the next one is opened).
    pub session_file_max_mb: u64,
    /// Session journal files kept; the oldest are deleted beyond this.
    pub session_files_kept: usize,
    /// In-process recording queue between the loop and the journal writer thread, records
    /// of 80 bytes; when full, records are dropped and counted, never waited for.
    pub session_queue_records: usize,
}

impl Default for RuntimeSection {
    fn default() -> Self {
        RuntimeSection {
            core: None,
            housekeeping_core: None,
            idle: IdleStrategy::SpinThenYield,
            state_dir: PathBuf::from("hedger-state"),
            histogram_path: None,
            histogram_interval_ms: 1_000,
            snapshot_interval_ms: 5,
            stats_interval_ms: 10,
            reconcile_quiet_ms: 200,
            reconcile_timeout_ms: 10_000,
            fsync: false,
            market_clock: MarketClock::Wall,
            session_record: true,
            session_file_max_mb: 64,
            session_files_kept: 16,
            session_queue_records: 1 << 16,
        }
    }
}

/// `[underlyings.<SYMBOL>.policy]`.
///
/// Every key is optional; a key that is set must belong to the policy `kind` (a `band` in a
/// `cost-aware` table is an error naming the key, never silently ignored). Defaults are in
/// [`PolicySection::DEFAULTS`]. The same table is written on the command line as a policy
/// spec, `KIND[:key=value,...]` ([`PolicySection::from_spec`]): one grammar for the live
/// hedger's file and `hedgectl replay`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// `none`, `fixed`, `whalley-wilmott` or `cost-aware`.
    pub kind: String,
    /// Fixed band half-width, underlying units.
    pub band: Option<f64>,
    /// Fixed band target: `zero` or `edge`.
    pub target: Option<String>,
    /// Whalley-Wilmott proportional cost (fraction).
    pub cost: Option<f64>,
    /// Risk aversion (Whalley-Wilmott and cost-aware), per unit of quote currency.
    pub risk_aversion: Option<f64>,
    /// Cost-aware: taker fee (fraction).
    pub taker_fee: Option<f64>,
    /// Cost-aware: stress weight of the realized-vol ratio.
    pub vol_stress_weight: Option<f64>,
    /// Cost-aware: stress weight of the spread ratio.
    pub spread_stress_weight: Option<f64>,
    /// Cost-aware: cap of the stress factor.
    pub max_stress: Option<f64>,
    /// Band floor, underlying units (model bands).
    pub min_band: Option<f64>,
    /// Band cap, underlying units (model bands).
    pub max_band: Option<f64>,
    /// Minimum interval between hedges, ms.
    pub min_interval_ms: Option<u64>,
    /// Safety re-hedge after this long without a hedge, ms (0 = off).
    pub max_interval_ms: Option<u64>,
    /// Limit offset beyond the touch, ticks.
    pub offset_ticks: Option<f64>,
    /// Price collar around mid, bps.
    pub collar_bps: Option<f64>,
    /// Fast EWMA weight.
    pub fast_alpha: Option<f64>,
    /// Slow EWMA weight.
    pub slow_alpha: Option<f64>,
    /// Cost-aware: holding horizon, ms (0 = off): within it after a hedge the band does not
    /// shrink below that hedge's and nothing is traded back unless delta leaves the outer band (2 x band, at most `max_band`).
    pub holding_horizon_ms: Option<u64>,
    /// Execution style: `ioc` (default), `passive` or `slices`.
    pub style: Option<String>,
    /// Passive: cross after the order rested this long, ms (default 2000).
    pub passive_timeout_ms: Option<u64>,
    /// Passive: cross at once when |delta without the resting order| exceeds this multiple of
    /// the band (default 2, > 1).
    pub cross_band: Option<f64>,
    /// Slices: child orders per hedge (default 4, 1..=100).
    pub slices: Option<u64>,
    /// Slices: time between child orders, ms (default 1000).
    pub slice_interval_ms: Option<u64>,
    /// Trigger besides the band breach: `band` (default, none besides), `fill`,
    /// `accumulated` or `timer`.
    pub trigger: Option<String>,
    /// Accumulated trigger: threshold, underlying units (default 1).
    pub accumulated: Option<f64>,
    /// Timer trigger: period, ms (default 10000).
    pub interval_ms: Option<u64>,
}

impl Default for PolicySection {
    fn default() -> Self {
        PolicySection {
            kind: "fixed".into(),
            band: None,
            target: None,
            cost: None,
            risk_aversion: None,
            taker_fee: None,
            vol_stress_weight: None,
            spread_stress_weight: None,
            max_stress: None,
            min_band: None,
            max_band: None,
            min_interval_ms: None,
            max_interval_ms: None,
            offset_ticks: None,
            collar_bps: None,
            fast_alpha: None,
            slow_alpha: None,
            holding_horizon_ms: None,
            style: None,
            passive_timeout_ms: None,
            cross_band: None,
            slices: None,
            slice_interval_ms: None,
            trigger: None,
            accumulated: None,
            interval_ms: None,
        }
    }
}

/// Default values of the policy keys (one place: the example config and the replay's help
/// quote these).
#[derive(Debug, Clone, Copy)]
pub struct PolicyDefaults {
    /// `band`.
    pub band: f64,
    /// `cost`.
    pub cost: f64,
    /// `risk_aversion`.
    pub risk_aversion: f64,
    /// `taker_fee`.
    pub taker_fee: f64,
    /// `vol_stress_weight`.
    pub vol_stress_weight: f64,
    /// `spread_stress_weight`.
    pub spread_stress_weight: f64,
    /// `max_stress`.
    pub max_stress: f64,
    /// `min_band`.
    pub min_band: f64,
    /// `max_band`.
    pub max_band: f64,
    /// `collar_bps`.
    pub collar_bps: f64,
    /// `fast_alpha`.
    pub fast_alpha: f64,
    /// `slow_alpha`.
    pub slow_alpha: f64,
    /// `holding_horizon_ms` (cost-aware).
    pub holding_horizon_ms: u64,
}

/// Keys every policy kind takes (timing, order pricing, execution style and trigger).
const COMMON_POLICY_KEYS: [&str; 14] = [
    "min_interval_ms",
    "max_interval_ms",
    "offset_ticks",
    "collar_bps",
    "fast_alpha",
    "slow_alpha",
    "style",
    "passive_timeout_ms",
    "cross_band",
    "slices",
    "slice_interval_ms",
    "trigger",
    "accumulated",
    "interval_ms",
];

/// The keys of a policy kind besides [`COMMON_POLICY_KEYS`] (None: unknown kind).
fn kind_keys(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "none" => &[],
        "fixed" => &["band", "target"],
        "whalley-wilmott" => &["cost", "risk_aversion", "min_band", "max_band"],
        "cost-aware" => &[
            "risk_aversion",
            "taker_fee",
            "vol_stress_weight",
            "spread_stress_weight",
            "max_stress",
            "min_band",
            "max_band",
            "holding_horizon_ms",
        ],
        _ => return None,
    })
}

impl PolicySection {
    /// Defaults of the keys not set.
    pub const DEFAULTS: PolicyDefaults = PolicyDefaults {
        band: 1.0,
        cost: 0.0005,
        risk_aversion: 1e-4,
        taker_fee: 0.0005,
        vol_stress_weight: 1.0,
        spread_stress_weight: 1.0,
        max_stress: 5.0,
        min_band: 0.0,
        max_band: 1e9,
        collar_bps: 50.0,
        fast_alpha: 0.1,
        slow_alpha: 0.001,
        holding_horizon_ms: 30_000,
    };

    /// The policy kinds.
    pub const KINDS: [&'static str; 4] = ["none", "fixed", "whalley-wilmott", "cost-aware"];

    /// The keys that are set, by name.
    fn set_keys(&self) -> Vec<&'static str> {
        let f = |n: &'static str, set: bool| set.then_some(n);
        [
            f("band", self.band.is_some()),
            f("target", self.target.is_some()),
            f("cost", self.cost.is_some()),
            f("risk_aversion", self.risk_aversion.is_some()),
            f("taker_fee", self.taker_fee.is_some()),
            f("vol_stress_weight", self.vol_stress_weight.is_some()),
            f("spread_stress_weight", self.spread_stress_weight.is_some()),
            f("max_stress", self.max_stress.is_some()),
            f("min_band", self.min_band.is_some()),
            f("max_band", self.max_band.is_some()),
            f("min_interval_ms", self.min_interval_ms.is_some()),
            f("max_interval_ms", self.max_interval_ms.is_some()),
            f("offset_ticks", self.offset_ticks.is_some()),
            f("collar_bps", self.collar_bps.is_some()),
            f("fast_alpha", self.fast_alpha.is_some()),
            f("slow_alpha", self.slow_alpha.is_some()),
            f("holding_horizon_ms", self.holding_horizon_ms.is_some()),
            f("style", self.style.is_some()),
            f("passive_timeout_ms", self.passive_timeout_ms.is_some()),
            f("cross_band", self.cross_band.is_some()),
            f("slices", self.slices.is_some()),
            f("slice_interval_ms", self.slice_interval_ms.is_some()),
            f("trigger", self.trigger.is_some()),
            f("accumulated", self.accumulated.is_some()),
            f("interval_ms", self.interval_ms.is_some()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Parses a policy spec `KIND[:key=value,...]` (the keys of this table; the kind names
    /// the table's `kind`). Unknown keys and values of the wrong type are errors naming the
    /// key; range and kind checks happen in [`PolicySection::to_config`].
    ///
    /// # Errors
    /// `(key, message)`.
    pub fn from_spec(spec: &str) -> Result<Self, (String, String)> {
        let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
        let mut table = toml::Table::new();
        table.insert("kind".into(), toml::Value::String(kind.trim().into()));
        spec_pairs(rest, &mut table)?;
        let key = first_key(&table);
        toml::Value::Table(table)
            .try_into::<PolicySection>()
            .map_err(|e| spec_error(e, &key))
    }

    /// The typed policy configuration; on error `(field, message)`.
    ///
    /// # Errors
    /// The first invalid field: out of range, or a key of another policy kind.
    pub fn to_config(&self) -> Result<PolicyConfig, (&'static str, String)> {
        let p = self;
        let d = Self::DEFAULTS;
        self.check_kind_and_keys()?;
        let rule = match p.kind.as_str() {
            "none" => BandRule::None,
            "fixed" => BandRule::Fixed {
                band: positive("band", p.band.unwrap_or(d.band))?,
                target: match p.target.as_deref().unwrap_or("zero") {
                    "zero" => RehedgeTarget::Zero,
                    "edge" => RehedgeTarget::Edge,
                    t => return Err(("target", format!("must be `zero` or `edge`, got `{t}`"))),
                },
            },
            "whalley-wilmott" => BandRule::WhalleyWilmott {
                cost: positive("cost", p.cost.unwrap_or(d.cost))?,
                risk_aversion: positive(
                    "risk_aversion",
                    p.risk_aversion.unwrap_or(d.risk_aversion),
                )?,
            },
            _ => self.cost_aware_rule()?,
        };
        let min_band = non_negative("min_band", p.min_band.unwrap_or(d.min_band))?;
        let max_band = positive("max_band", p.max_band.unwrap_or(d.max_band))?;
        if max_band < min_band {
            return Err((
                "max_band",
                format!("must be >= min_band ({min_band}), got {max_band}"),
            ));
        }
        let (min_ms, max_ms) = (
            p.min_interval_ms.unwrap_or(0),
            p.max_interval_ms.unwrap_or(0),
        );
        if max_ms != 0 && max_ms < min_ms {
            return Err((
                "max_interval_ms",
                format!("must be 0 (off) or >= min_interval_ms ({min_ms}), got {max_ms}"),
            ));
        }
        Ok(PolicyConfig {
            rule,
            min_band,
            max_band,
            min_interval_ns: min_ms.saturating_mul(1_000_000),
            max_interval_ns: max_ms.saturating_mul(1_000_000),
            offset_ticks: non_negative("offset_ticks", p.offset_ticks.unwrap_or(0.0))?,
            collar_bps: positive("collar_bps", p.collar_bps.unwrap_or(d.collar_bps))?,
            fast_alpha: fraction("fast_alpha", p.fast_alpha.unwrap_or(d.fast_alpha))?,
            slow_alpha: fraction("slow_alpha", p.slow_alpha.unwrap_or(d.slow_alpha))?,
            holding_horizon_ns: self.holding_horizon_ns()?,
            exec: self.exec_config()?,
        })
    }

    /// A known kind, and no key of another kind.
    fn check_kind_and_keys(&self) -> Result<(), (&'static str, String)> {
        let p = self;
        let Some(own) = kind_keys(&p.kind) else {
            return Err((
                "kind",
                format!(
                    "must be one of {}, got `{}`",
                    Self::KINDS.join(", "),
                    p.kind
                ),
            ));
        };
        if let Some(k) = p
            .set_keys()
            .into_iter()
            .find(|k| !own.contains(k) && !COMMON_POLICY_KEYS.contains(k))
        {
            return Err((
                k,
                format!(
                    "does not apply to policy kind `{}` (its keys: {})",
                    p.kind,
                    own.iter()
                        .chain(COMMON_POLICY_KEYS.iter())
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// `holding_horizon_ms` in ns (cost-aware only; at most a day), else 0.
    fn holding_horizon_ns(&self) -> Result<u64, (&'static str, String)> {
        if self.kind != "cost-aware" {
            return Ok(0);
        }
        let ms = self
            .holding_horizon_ms
            .unwrap_or(Self::DEFAULTS.holding_horizon_ms);
        if ms > 86_400_000 {
            return Err((
                "holding_horizon_ms",
                format!("must be at most 86400000 (one day), got {ms}"),
            ));
        }
        Ok(ms * 1_000_000)
    }

    /// The execution keys (style and trigger), checked.
    fn exec_config(&self) -> Result<ExecConfig, (&'static str, String)> {
        let (p, d) = (self, ExecConfig::default());
        let ms = |key: &'static str, v: Option<u64>, dflt: u64| match v {
            None => Ok(dflt),
            Some(v) => duration_ms(key, v, 1).map(|v| v * 1_000_000),
        };
        let style = match p.style.as_deref().unwrap_or("ioc") {
            "ioc" => ExecStyle::Ioc,
            "passive" => ExecStyle::Passive,
            "slices" => ExecStyle::Slices,
            s => {
                return Err((
                    "style",
                    format!("must be `ioc`, `passive` or `slices`, got `{s}`"),
                ))
            }
        };
        let trigger = match p.trigger.as_deref().unwrap_or("band") {
            "band" => Trigger::Band,
            "fill" => Trigger::Fill,
            "accumulated" => Trigger::Accumulated,
            "timer" => Trigger::Timer,
            t => {
                return Err((
                    "trigger",
                    format!("must be `band`, `fill`, `accumulated` or `timer`, got `{t}`"),
                ))
            }
        };
        let cross_band = positive("cross_band", p.cross_band.unwrap_or(d.cross_band))?;
        if cross_band <= 1.0 {
            return Err(("cross_band", format!("must be > 1, got {cross_band}")));
        }
        let slices = p.slices.unwrap_or(u64::from(d.slices));
        if !(1..=100).contains(&slices) {
            return Err(("slices", format!("must be in 1..=100, got {slices}")));
        }
        Ok(ExecConfig {
            style,
            passive_timeout_ns: ms(
                "passive_timeout_ms",
                p.passive_timeout_ms,
                d.passive_timeout_ns,
            )?,
            cross_band,
            slices: slices as u32,
            slice_interval_ns: ms(
                "slice_interval_ms",
                p.slice_interval_ms,
                d.slice_interval_ns,
            )?,
            trigger,
            accumulated: positive("accumulated", p.accumulated.unwrap_or(d.accumulated))?,
            interval_ns: ms("interval_ms", p.interval_ms, d.interval_ns)?,
        })
    }

    fn cost_aware_rule(&self) -> Result<BandRule, (&'static str, String)> {
        let (p, d) = (self, Self::DEFAULTS);
        let max_stress = positive("max_stress", p.max_stress.unwrap_or(d.max_stress))?;
        if max_stress < 1.0 {
            return Err(("max_stress", format!("must be >= 1, got {max_stress}")));
        }
        Ok(BandRule::CostAware {
            taker_fee: non_negative("taker_fee", p.taker_fee.unwrap_or(d.taker_fee))?,
            risk_aversion: positive("risk_aversion", p.risk_aversion.unwrap_or(d.risk_aversion))?,
            vol_stress_weight: non_negative(
                "vol_stress_weight",
                p.vol_stress_weight.unwrap_or(d.vol_stress_weight),
            )?,
            spread_stress_weight: non_negative(
                "spread_stress_weight",
                p.spread_stress_weight.unwrap_or(d.spread_stress_weight),
            )?,
            max_stress,
        })
    }
}

/// `key=value,...` into a TOML table: numbers and booleans as such, anything else a string.
fn spec_pairs(s: &str, table: &mut toml::Table) -> Result<(), (String, String)> {
    for kv in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let Some((k, v)) = kv.split_once('=') else {
            return Err((kv.to_string(), format!("`{kv}` is not key=value")));
        };
        let (k, v) = (k.trim(), v.trim());
        let val = if let Ok(i) = v.parse::<i64>() {
            toml::Value::Integer(i)
        } else if let Ok(f) = v.parse::<f64>() {
            toml::Value::Float(f)
        } else if let Ok(b) = v.parse::<bool>() {
            toml::Value::Boolean(b)
        } else {
            toml::Value::String(v.to_string())
        };
        if table.insert(k.to_string(), val).is_some() {
            return Err((k.to_string(), "given twice".into()));
        }
    }
    Ok(())
}

/// The key a deserialization error is most likely about: the one it names, else the first.
fn first_key(t: &toml::Table) -> String {
    t.keys()
        .find(|k| *k != "kind")
        .cloned()
        .unwrap_or_else(|| "kind".into())
}

fn spec_error(e: toml::de::Error, fallback: &str) -> (String, String) {
    let msg = e.message().replace('\n', " ").trim().to_string();
    // serde names unknown fields as "unknown field `x`"; type errors name no field.
    let key = msg
        .split('`')
        .nth(1)
        .filter(|_| msg.starts_with("unknown field"))
        .unwrap_or(fallback)
        .to_string();
    (key, msg)
}

/// `[underlyings.<SYMBOL>.limits]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Max order quantity, contracts.
    pub max_order_qty: f64,
    /// Max order notional, quote currency.
    pub max_order_notional: f64,
    /// Max absolute hedge position incl. in flight, contracts.
    pub max_position: f64,
    /// Orders per second (token bucket rate).
    pub max_orders_per_sec: f64,
    /// Token bucket burst.
    pub order_burst: f64,
    /// Max traded notional per UTC day, quote currency.
    pub max_daily_notional: f64,
    /// Stale-data guard: max age of underlying price and hedge book, ms.
    pub max_data_age_ms: u64,
    /// Auto-halt: more than this many rejects...
    pub max_rejects: u32,
    /// ...within this window, ms...
    pub reject_window_ms: u64,
    /// ...halts the underlying for this long, ms.
    pub reject_halt_ms: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        let d = LimitsConfig::default();
        LimitsSection {
            max_order_qty: 1e12,
            max_order_notional: 1e15,
            max_position: 1e12,
            max_orders_per_sec: d.max_orders_per_sec,
            order_burst: d.order_burst,
            max_daily_notional: 1e18,
            max_data_age_ms: d.max_data_age_ns / 1_000_000,
            max_rejects: d.max_rejects,
            reject_window_ms: d.reject_window_ns / 1_000_000,
            reject_halt_ms: d.reject_halt_ns / 1_000_000,
        }
    }
}

/// `[underlyings.<SYMBOL>]`: one hedged underlying (the key is the index instrument's symbol).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnderlyingSection {
    /// Symbol of the hedge instrument (perpetual, future or spot).
    pub hedge_instrument: String,
    /// Hedge position at first start (contracts); ignored once a state snapshot exists.
    #[serde(default)]
    pub initial_hedge_position: f64,
    /// Rate for discounting (Whalley-Wilmott's exp(-r tau)) and pricing.
    #[serde(default)]
    pub rate: f64,
    /// Policy.
    #[serde(default)]
    pub policy: PolicySection,
    /// Limits.
    #[serde(default)]
    pub limits: LimitsSection,
}

/// `[[positions]]`: an initial option position (first start only).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PositionSection {
    /// Option symbol.
    pub symbol: String,
    /// Contracts, signed (+ long).
    pub qty: f64,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HedgerConfig {
    /// Segments.
    #[serde(default)]
    pub shm: ShmSection,
    /// Runtime.
    #[serde(default)]
    pub runtime: RuntimeSection,
    /// Hedged underlyings by index symbol.
    #[serde(default)]
    pub underlyings: BTreeMap<String, UnderlyingSection>,
    /// Initial option positions.
    #[serde(default)]
    pub positions: Vec<PositionSection>,
    /// The text this was parsed from (not a key): the session journal's header carries it so
    /// that a replay resolves the same configuration.
    #[serde(skip)]
    pub source_text: String,
}

impl HedgerConfig {
    /// Parses and validates TOML text; `file` names it in errors.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let mut cfg: HedgerConfig = toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .and_then(|s| shm_layout::toml_text::key_at(text, s.start))
                .unwrap_or_else(|| "<file>".into());
            ConfigError {
                file: file.into(),
                key,
                msg: e.message().replace('\n', " ").trim().to_string(),
            }
        })?;
        cfg.validate(file)?;
        cfg.source_text = text.to_string();
        Ok(cfg)
    }

    /// Reads, parses and validates a file.
    ///
    /// # Errors
    /// Unreadable file or invalid content, naming the key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: "<file>".into(),
            msg: format!("cannot read: {e}"),
        })?;
        Self::parse(&text, &file)
    }

    /// Validates values (ranges, names, consistency).
    ///
    /// # Errors
    /// The first invalid key.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: String, msg: String| ConfigError {
            file: file.into(),
            key,
            msg,
        };
        validate_shm(&self.shm).map_err(|(k, m)| err(format!("shm.{k}"), m))?;
        validate_runtime(&self.runtime).map_err(|(k, m)| err(format!("runtime.{k}"), m))?;
        if self.underlyings.is_empty() {
            return Err(err(
                "underlyings".into(),
                "at least one [underlyings.<SYMBOL>] table is required".into(),
            ));
        }
        if self.underlyings.len() > 256 {
            return Err(err("underlyings".into(), "at most 256 underlyings".into()));
        }
        for (name, u) in &self.underlyings {
            let k = |f: &str| format!("underlyings.{name}.{f}");
            if u.hedge_instrument.is_empty() {
                return Err(err(k("hedge_instrument"), "must not be empty".into()));
            }
            if !u.initial_hedge_position.is_finite() {
                return Err(err(k("initial_hedge_position"), "must be finite".into()));
            }
            if !(-crate::risk::RATE_LIMIT..=crate::risk::RATE_LIMIT).contains(&u.rate) {
                return Err(err(
                    k("rate"),
                    "must be a rate per year within [-1, 1] (0.05 = 5%)".into(),
                ));
            }
            u.policy_config()
                .map_err(|(f, m)| err(k(&format!("policy.{f}")), m))?;
            u.limits_config()
                .map_err(|(f, m)| err(k(&format!("limits.{f}")), m))?;
        }
        for (i, p) in self.positions.iter().enumerate() {
            if p.symbol.is_empty() {
                return Err(err(
                    format!("positions[{i}].symbol"),
                    "must not be empty".into(),
                ));
            }
            if !p.qty.is_finite() {
                return Err(err(format!("positions[{i}].qty"), "must be finite".into()));
            }
        }
        Ok(())
    }
}

/// Longest duration any `*_ms` key accepts: 7 days, ms. Bounds every `ms * 1_000_000` (no
/// overflow to a wrapped, tiny or zero timeout) and catches typos such as `2^63`.
pub const MAX_DURATION_MS: u64 = 7 * 24 * 3_600 * 1_000;

/// `v` in `lo..=MAX_DURATION_MS`, else `(key, message)` naming value and range.
fn duration_ms(key: &'static str, v: u64, lo: u64) -> Result<u64, (&'static str, String)> {
    if (lo..=MAX_DURATION_MS).contains(&v) {
        Ok(v)
    } else {
        Err((
            key,
            format!("must be in {lo}..={MAX_DURATION_MS} ms, got {v}"),
        ))
    }
}

/// Range and kind checks of `[shm]`; on error `(key, message)`.
fn validate_shm(s: &ShmSection) -> Result<(), (&'static str, String)> {
    for (k, v) in [
        ("namespace", &s.namespace),
        ("md", &s.md),
        ("lvt", &s.lvt),
        ("instruments", &s.instruments),
        ("orders", &s.orders),
        ("execs", &s.execs),
        ("gateway_role", &s.gateway_role),
    ] {
        // A segment name is a path component too: the namespace rule keeps `..` and `a/b`
        // from leaving the segment directory.
        if let Err(e) = shm_layout::validate_namespace(v) {
            return Err((
                k,
                format!("{}: got {v:?}, allowed [A-Za-z0-9_-]{{1,64}}", e.why),
            ));
        }
    }
    if !s.orders_capacity.is_power_of_two() || !(2..=1 << 24).contains(&s.orders_capacity) {
        return Err((
            "orders_capacity",
            format!(
                "must be a power of two in 2..=16777216, got {}",
                s.orders_capacity
            ),
        ));
    }
    duration_ms("open_wait_ms", s.open_wait_ms, 0)?;
    duration_ms(
        "gateway_heartbeat_timeout_ms",
        s.gateway_heartbeat_timeout_ms,
        1,
    )?;
    Ok(())
}

/// Range checks of `[runtime]`; on error `(key, message)`.
fn validate_runtime(r: &RuntimeSection) -> Result<(), (&'static str, String)> {
    duration_ms("histogram_interval_ms", r.histogram_interval_ms, 1)?;
    duration_ms("snapshot_interval_ms", r.snapshot_interval_ms, 1)?;
    duration_ms("stats_interval_ms", r.stats_interval_ms, 1)?;
    duration_ms("reconcile_quiet_ms", r.reconcile_quiet_ms, 0)?;
    duration_ms("reconcile_timeout_ms", r.reconcile_timeout_ms, 0)?;
    if r.state_dir.as_os_str().is_empty() {
        return Err(("state_dir", "must not be empty".into()));
    }
    if r.session_file_max_mb == 0 || r.session_file_max_mb > 1 << 20 {
        return Err((
            "session_file_max_mb",
            format!("must be in 1..=1048576, got {}", r.session_file_max_mb),
        ));
    }
    if r.session_files_kept == 0 || r.session_files_kept > 1 << 16 {
        return Err((
            "session_files_kept",
            format!("must be in 1..=65536, got {}", r.session_files_kept),
        ));
    }
    if !(64..=1 << 26).contains(&r.session_queue_records) {
        return Err((
            "session_queue_records",
            format!("must be in 64..=67108864, got {}", r.session_queue_records),
        ));
    }
    Ok(())
}

fn positive(name: &'static str, v: f64) -> Result<f64, (&'static str, String)> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err((name, format!("must be > 0, got {v}")))
    }
}

fn non_negative(name: &'static str, v: f64) -> Result<f64, (&'static str, String)> {
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err((name, format!("must be >= 0, got {v}")))
    }
}

fn fraction(name: &'static str, v: f64) -> Result<f64, (&'static str, String)> {
    if v.is_finite() && v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err((name, format!("must be in (0, 1], got {v}")))
    }
}

impl UnderlyingSection {
    /// The typed policy configuration; on error `(field, message)`.
    ///
    /// # Errors
    /// The first invalid field of the policy table.
    pub fn policy_config(&self) -> Result<PolicyConfig, (&'static str, String)> {
        self.policy.to_config()
    }

    /// The typed limits; on error `(field, message)`.
    ///
    /// # Errors
    /// The first invalid field of the limits table.
    pub fn limits_config(&self) -> Result<LimitsConfig, (&'static str, String)> {
        self.limits.to_config()
    }
}

impl LimitsSection {
    /// Parses a limits spec `key=value,...` (the keys of this table), as `hedgectl replay
    /// --limits` takes it.
    ///
    /// # Errors
    /// `(key, message)` for an unknown key or a value of the wrong type.
    pub fn from_spec(spec: &str) -> Result<Self, (String, String)> {
        let mut table = toml::Table::new();
        spec_pairs(spec, &mut table)?;
        let key = table.keys().next().cloned().unwrap_or_default();
        toml::Value::Table(table)
            .try_into::<LimitsSection>()
            .map_err(|e| spec_error(e, &key))
    }

    /// The typed limits; on error `(field, message)`.
    ///
    /// # Errors
    /// The first invalid field of the limits table.
    pub fn to_config(&self) -> Result<LimitsConfig, (&'static str, String)> {
        let l = self;
        duration_ms("max_data_age_ms", l.max_data_age_ms, 1)?;
        duration_ms("reject_window_ms", l.reject_window_ms, 0)?;
        duration_ms("reject_halt_ms", l.reject_halt_ms, 0)?;
        Ok(LimitsConfig {
            max_order_qty: positive("max_order_qty", l.max_order_qty)?,
            max_order_notional: positive("max_order_notional", l.max_order_notional)?,
            max_position: positive("max_position", l.max_position)?,
            max_orders_per_sec: positive("max_orders_per_sec", l.max_orders_per_sec)?,
            order_burst: {
                let b = positive("order_burst", l.order_burst)?;
                if b < 1.0 {
                    return Err(("order_burst", format!("must be >= 1, got {b}")));
                }
                b
            },
            max_daily_notional: positive("max_daily_notional", l.max_daily_notional)?,
            max_data_age_ns: l.max_data_age_ms.saturating_mul(1_000_000),
            max_rejects: l.max_rejects,
            reject_window_ns: l.reject_window_ms.saturating_mul(1_000_000),
            reject_halt_ns: l.reject_halt_ms.saturating_mul(1_000_000),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[underlyings.BTC]
hedge_instrument = "BTC-PERPETUAL"
"#;

    #[test]
    fn minimal_config_gets_defaults() {
        let c = HedgerConfig::parse(MIN, "t.toml").unwrap();
        assert_eq!(c.shm.namespace, "hedge");
        assert_eq!(c.runtime.idle, IdleStrategy::SpinThenYield);
        let u = &c.underlyings["BTC"];
        assert!(matches!(
            u.policy_config().unwrap().rule,
            BandRule::Fixed { .. }
        ));
    }

    #[test]
    fn example_config_is_valid() {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/config/hedger.example.toml");
        let c = HedgerConfig::load(Path::new(p)).unwrap();
        assert!(!c.underlyings.is_empty());
    }

    #[test]
    fn namespaces_and_segment_names_outside_the_directory_are_refused() {
        for (key, bad) in [
            ("namespace", ".."),
            ("namespace", "."),
            ("namespace", ""),
            ("namespace", "../../tmp/X"),
            ("orders", ".."),
        ] {
            let t = format!("[shm]\n{key} = {bad:?}\n{MIN}");
            let e = HedgerConfig::parse(&t, "h.toml").unwrap_err();
            assert_eq!(e.key, format!("shm.{key}"), "{e}");
            assert!(e.msg.contains("[A-Za-z0-9_-]{1,64}"), "{e}");
        }
    }

    #[test]
    fn durations_beyond_7_days_are_refused_with_key_value_and_range() {
        for (table, key) in [
            ("shm", "open_wait_ms"),
            ("shm", "gateway_heartbeat_timeout_ms"),
            ("runtime", "reconcile_quiet_ms"),
            ("runtime", "reconcile_timeout_ms"),
            ("runtime", "snapshot_interval_ms"),
        ] {
            let t = format!("[{table}]\n{key} = 9223372036854775807\n{MIN}");
            let e = HedgerConfig::parse(&t, "h.toml").unwrap_err().to_string();
            assert!(
                e.contains(&format!("config h.toml: {table}.{key}: must be in "))
                    && e.contains("..=604800000 ms, got 9223372036854775807")
                    && !e.contains('\n'),
                "{e}"
            );
        }
        let t = format!("{MIN}[underlyings.BTC.limits]\nreject_halt_ms = 9223372036854775807\n");
        let e = HedgerConfig::parse(&t, "h.toml").unwrap_err();
        assert_eq!(e.key, "underlyings.BTC.limits.reject_halt_ms");
    }

    #[test]
    fn bad_value_names_the_key() {
        let t = format!("{MIN}[underlyings.BTC.policy]\nband = -1.0\n");
        let e = HedgerConfig::parse(&t, "t.toml").unwrap_err();
        assert_eq!(e.key, "underlyings.BTC.policy.band");
        assert!(e.to_string().contains("must be > 0"), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn wrong_type_and_unknown_key_name_the_key() {
        let t = format!("{MIN}[underlyings.BTC.limits]\nmax_order_qty = \"x\"\n");
        let e = HedgerConfig::parse(&t, "t.toml").unwrap_err();
        assert_eq!(e.key, "underlyings.BTC.limits.max_order_qty", "{e}");
        assert!(!e.to_string().contains('\n'));
        let t = format!("{MIN}[runtime]\nidel = \"busy-spin\"\n");
        let e = HedgerConfig::parse(&t, "t.toml").unwrap_err();
        assert_eq!(e.key, "runtime.idel", "{e}");
        let t = "[runtime]\nidle = \"spin-forever\"\n".to_string() + MIN;
        let e = HedgerConfig::parse(&t, "t.toml").unwrap_err();
        assert_eq!(e.key, "runtime.idle", "{e}");
        assert!(e.msg.contains(r#""spin-forever""#), "{e}");
        let t = "[shm]\non_stale = \"keep\"\n".to_string() + MIN;
        let e = HedgerConfig::parse(&t, "t.toml").unwrap_err();
        assert_eq!(e.key, "shm.on_stale", "{e}");
        assert!(e.msg.contains(r#""keep""#), "{e}");
    }

    /// The rate reaches the option book, which accepts [-1, 1] per year: outside it (5 for
    /// 5%, a NaN) the config is refused, naming the key, not the book at start-up.
    #[test]
    fn a_rate_outside_the_books_range_names_the_key() {
        for bad in ["5.0", "-1.5", "nan", "inf"] {
            let t = format!("{MIN}rate = {bad}\n");
            let e = HedgerConfig::parse(&t, "t.toml").unwrap_err();
            assert_eq!(e.key, "underlyings.BTC.rate", "{e}");
            assert!(e.msg.contains("within [-1, 1]"), "{e}");
        }
        let t = format!("{MIN}rate = 0.05\n");
        let cfg = HedgerConfig::parse(&t, "t.toml").unwrap();
        assert_eq!(cfg.underlyings["BTC"].rate, 0.05);
    }

    #[test]
    fn missing_underlyings_is_an_error() {
        let e = HedgerConfig::parse("", "t.toml").unwrap_err();
        assert_eq!(e.key, "underlyings");
    }

    #[test]
    fn a_key_of_another_policy_kind_is_an_error_naming_it() {
        let t =
            format!("{MIN}[underlyings.BTC.policy]\nkind = \"cost-aware\"\ntarget = \"edge\"\n");
        let e = HedgerConfig::parse(&t, "t.toml").unwrap_err();
        assert_eq!(e.key, "underlyings.BTC.policy.target", "{e}");
        assert!(
            e.msg.contains("does not apply to policy kind `cost-aware`"),
            "{e}"
        );
        let t = format!("{MIN}[underlyings.BTC.policy]\nkind = \"fixed\"\nrisk_aversion = 1e-5\n");
        let e = HedgerConfig::parse(&t, "t.toml").unwrap_err();
        assert_eq!(e.key, "underlyings.BTC.policy.risk_aversion", "{e}");
        let t = format!("{MIN}[underlyings.BTC.policy]\nkind = \"fixed\"\nband = nan\n");
        let e = HedgerConfig::parse(&t, "t.toml").unwrap_err();
        assert_eq!(e.key, "underlyings.BTC.policy.band", "{e}");
    }

    #[test]
    fn execution_keys_apply_to_every_kind_and_are_checked() {
        let c = PolicySection::from_spec(
            "cost-aware:style=passive,passive_timeout_ms=500,cross_band=3,trigger=accumulated,accumulated=0.5",
        )
        .unwrap()
        .to_config()
        .unwrap();
        assert_eq!(c.exec.style, ExecStyle::Passive);
        assert_eq!(c.exec.passive_timeout_ns, 500_000_000);
        assert_eq!(c.exec.cross_band, 3.0);
        assert_eq!(
            (c.exec.trigger, c.exec.accumulated),
            (Trigger::Accumulated, 0.5)
        );
        let d = PolicySection::from_spec("fixed")
            .unwrap()
            .to_config()
            .unwrap();
        assert_eq!(d.exec, ExecConfig::default());
        assert_eq!(d.exec.style, ExecStyle::Ioc);
        for (spec, key) in [
            ("fixed:style=fok", "style"),
            ("fixed:trigger=often", "trigger"),
            ("fixed:style=passive,cross_band=1", "cross_band"),
            ("fixed:style=slices,slices=0", "slices"),
            (
                "fixed:style=passive,passive_timeout_ms=0",
                "passive_timeout_ms",
            ),
        ] {
            let (k, msg) = PolicySection::from_spec(spec)
                .unwrap()
                .to_config()
                .unwrap_err();
            assert_eq!(k, key, "{spec}: {msg}");
        }
    }

    #[test]
    fn policy_specs_are_the_toml_table_in_one_line() {
        let p = PolicySection::from_spec("fixed:band=0.5,target=edge,min_interval_ms=250")
            .unwrap()
            .to_config()
            .unwrap();
        assert_eq!(
            p.rule,
            BandRule::Fixed {
                band: 0.5,
                target: RehedgeTarget::Edge
            }
        );
        assert_eq!(p.min_interval_ns, 250_000_000);
        let p = PolicySection::from_spec("cost-aware:risk_aversion=1e-5,max_band=5")
            .unwrap()
            .to_config()
            .unwrap();
        assert!(
            matches!(p.rule, BandRule::CostAware { risk_aversion, .. } if risk_aversion == 1e-5)
        );
        assert_eq!(p.max_band, 5.0);
        let none = PolicySection::from_spec("none")
            .unwrap()
            .to_config()
            .unwrap();
        assert_eq!(none.rule, BandRule::None);
        let (k, m) = PolicySection::from_spec("none:band=1")
            .unwrap()
            .to_config()
            .unwrap_err();
        assert_eq!((k, m.contains("does not apply")), ("band", true));
        let (k, _) = PolicySection::from_spec("fixed:bnd=1").unwrap_err();
        assert_eq!(k, "bnd");
        let (k, _) = PolicySection::from_spec("fixed:band=x").unwrap_err();
        assert_eq!(k, "band");
        let (k, m) = PolicySection::from_spec("fixed:band").unwrap_err();
        assert!(k == "band" && m.contains("key=value"), "{k} {m}");
        let (k, _) = PolicySection::from_spec("fixd")
            .unwrap()
            .to_config()
            .unwrap_err();
        assert_eq!(k, "kind");
        let l = LimitsSection::from_spec("max_orders_per_sec=5,order_burst=2")
            .unwrap()
            .to_config()
            .unwrap();
        assert_eq!((l.max_orders_per_sec, l.order_burst), (5.0, 2.0));
        let (k, _) = LimitsSection::from_spec("order_burst=0.5")
            .unwrap()
            .to_config()
            .unwrap_err();
        assert_eq!(k, "order_burst");
        let (k, _) = LimitsSection::from_spec("max_positoin=1").unwrap_err();
        assert_eq!(k, "max_positoin");
    }
}
