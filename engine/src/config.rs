//! The hedger's configuration: a TOML file, validated into typed policy and limit settings.
//!
//! Instruments are named by symbol; the hedger resolves them through the instruments segment
//! that the feed handler writes. Every error names the offending key
//! (`underlyings.BTC.policy.band: must be > 0, got -1`), in one line.
//!
//! The committed example `engine/config/hedger.example.toml` documents every key.

use crate::limits::LimitsConfig;
use crate::policy::{BandRule, PolicyConfig, RehedgeTarget};
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
    /// Idle strategy (phases: [`crate::hedger::live::IDLE_BACKOFF`]).
    pub idle: IdleStrategy,
    /// State directory (snapshot of positions, processed exec ids, orders in flight).
    pub state_dir: PathBuf,
    /// HdrHistogram interval log output (none: no latency log).
    pub histogram_path: Option<PathBuf>,
    /// Interval between histogram log entries, ms.
    pub histogram_interval_ms: u64,
    /// Interval between state snapshots when execs are pending, ms.
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
}

impl Default for RuntimeSection {
    fn default() -> Self {
        RuntimeSection {
            core: None,
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
        }
    }
}

/// `[underlyings.<SYMBOL>.policy]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// `fixed`, `whalley-wilmott` or `cost-aware`.
    pub kind: String,
    /// Fixed band half-width, underlying units.
    pub band: f64,
    /// Fixed band target: `zero` or `edge`.
    pub target: String,
    /// Whalley-Wilmott proportional cost (fraction).
    pub cost: f64,
    /// Risk aversion (Whalley-Wilmott and cost-aware).
    pub risk_aversion: f64,
    /// Cost-aware: taker fee (fraction).
    pub taker_fee: f64,
    /// Cost-aware: stress weight of the realized-vol ratio.
    pub vol_stress_weight: f64,
    /// Cost-aware: stress weight of the spread ratio.
    pub spread_stress_weight: f64,
    /// Cost-aware: cap of the stress factor.
    pub max_stress: f64,
    /// Band floor, underlying units.
    pub min_band: f64,
    /// Band cap, underlying units.
    pub max_band: f64,
    /// Minimum interval between hedges, ms.
    pub min_interval_ms: u64,
    /// Safety re-hedge after this long without a hedge, ms (0 = off).
    pub max_interval_ms: u64,
    /// Limit offset beyond the touch, ticks.
    pub offset_ticks: f64,
    /// Price collar around mid, bps.
    pub collar_bps: f64,
    /// Fast EWMA weight.
    pub fast_alpha: f64,
    /// Slow EWMA weight.
    pub slow_alpha: f64,
}

impl Default for PolicySection {
    fn default() -> Self {
        PolicySection {
            kind: "fixed".into(),
            band: 1.0,
            target: "zero".into(),
            cost: 0.0005,
            risk_aversion: 1e-4,
            taker_fee: 0.0005,
            vol_stress_weight: 1.0,
            spread_stress_weight: 1.0,
            max_stress: 5.0,
            min_band: 0.0,
            max_band: 1e9,
            min_interval_ms: 0,
            max_interval_ms: 0,
            offset_ticks: 0.0,
            collar_bps: 50.0,
            fast_alpha: 0.1,
            slow_alpha: 0.001,
        }
    }
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
}

/// The dotted key of the TOML line at byte `offset`: the last `[table]` header before it
/// plus the key on that line.
fn key_at(text: &str, offset: usize) -> String {
    let upto = &text[..offset.min(text.len())];
    let line_start = upto.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = text[line_start..line_end].trim();
    let mut table = String::new();
    for l in upto[..line_start].lines() {
        let l = l.trim();
        if l.starts_with('[') {
            table = l.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
    }
    if line.starts_with('[') {
        return line
            .trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string();
    }
    let key = line.split('=').next().unwrap_or("").trim();
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key.to_string(),
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

impl HedgerConfig {
    /// Parses and validates TOML text; `file` names it in errors.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key.
    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let cfg: HedgerConfig = toml::from_str(text).map_err(|e| {
            let key = e
                .span()
                .map(|s| key_at(text, s.start))
                .unwrap_or_else(|| "<file>".into());
            ConfigError {
                file: file.into(),
                key,
                msg: e.message().replace('\n', " ").trim().to_string(),
            }
        })?;
        cfg.validate(file)?;
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
        let s = &self.shm;
        for (k, v) in [
            ("namespace", &s.namespace),
            ("md", &s.md),
            ("lvt", &s.lvt),
            ("instruments", &s.instruments),
            ("orders", &s.orders),
            ("execs", &s.execs),
            ("gateway_role", &s.gateway_role),
        ] {
            if v.is_empty() || v.contains('/') {
                return Err(err(
                    format!("shm.{k}"),
                    format!("must be a non-empty name without '/', got {v:?}"),
                ));
            }
        }
        if !s.orders_capacity.is_power_of_two() || s.orders_capacity < 2 {
            return Err(err(
                "shm.orders_capacity".into(),
                format!("must be a power of two >= 2, got {}", s.orders_capacity),
            ));
        }
        let r = &self.runtime;
        for (k, v) in [
            ("histogram_interval_ms", r.histogram_interval_ms),
            ("snapshot_interval_ms", r.snapshot_interval_ms),
            ("stats_interval_ms", r.stats_interval_ms),
        ] {
            if v == 0 {
                return Err(err(format!("runtime.{k}"), "must be > 0".into()));
            }
        }
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
            if !u.rate.is_finite() {
                return Err(err(k("rate"), "must be finite".into()));
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
        let p = &self.policy;
        let rule = match p.kind.as_str() {
            "fixed" => BandRule::Fixed {
                band: positive("band", p.band)?,
                target: match p.target.as_str() {
                    "zero" => RehedgeTarget::Zero,
                    "edge" => RehedgeTarget::Edge,
                    t => return Err(("target", format!("must be `zero` or `edge`, got `{t}`"))),
                },
            },
            "whalley-wilmott" => BandRule::WhalleyWilmott {
                cost: positive("cost", p.cost)?,
                risk_aversion: positive("risk_aversion", p.risk_aversion)?,
            },
            "cost-aware" => BandRule::CostAware {
                taker_fee: non_negative("taker_fee", p.taker_fee)?,
                risk_aversion: positive("risk_aversion", p.risk_aversion)?,
                vol_stress_weight: non_negative("vol_stress_weight", p.vol_stress_weight)?,
                spread_stress_weight: non_negative("spread_stress_weight", p.spread_stress_weight)?,
                max_stress: {
                    let m = positive("max_stress", p.max_stress)?;
                    if m < 1.0 {
                        return Err(("max_stress", format!("must be >= 1, got {m}")));
                    }
                    m
                },
            },
            k => {
                return Err((
                    "kind",
                    format!("must be `fixed`, `whalley-wilmott` or `cost-aware`, got `{k}`"),
                ))
            }
        };
        let min_band = non_negative("min_band", p.min_band)?;
        let max_band = positive("max_band", p.max_band)?;
        if max_band < min_band {
            return Err((
                "max_band",
                format!("must be >= min_band ({min_band}), got {max_band}"),
            ));
        }
        if p.max_interval_ms != 0 && p.max_interval_ms < p.min_interval_ms {
            return Err((
                "max_interval_ms",
                format!(
                    "must be 0 (off) or >= min_interval_ms ({}), got {}",
                    p.min_interval_ms, p.max_interval_ms
                ),
            ));
        }
        Ok(PolicyConfig {
            rule,
            min_band,
            max_band,
            min_interval_ns: p.min_interval_ms.saturating_mul(1_000_000),
            max_interval_ns: p.max_interval_ms.saturating_mul(1_000_000),
            offset_ticks: non_negative("offset_ticks", p.offset_ticks)?,
            collar_bps: positive("collar_bps", p.collar_bps)?,
            fast_alpha: fraction("fast_alpha", p.fast_alpha)?,
            slow_alpha: fraction("slow_alpha", p.slow_alpha)?,
        })
    }

    /// The typed limits; on error `(field, message)`.
    ///
    /// # Errors
    /// The first invalid field of the limits table.
    pub fn limits_config(&self) -> Result<LimitsConfig, (&'static str, String)> {
        let l = &self.limits;
        if l.max_data_age_ms == 0 {
            return Err(("max_data_age_ms", "must be > 0".into()));
        }
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

    #[test]
    fn missing_underlyings_is_an_error() {
        let e = HedgerConfig::parse("", "t.toml").unwrap_err();
        assert_eq!(e.key, "underlyings");
    }
}
