//! Configuration of the `order-gateway` process: a TOML file, overridden by command-line flags.
//!
//! ```toml
//! namespace = "hedge"          # segments in /dev/shm/hedge (or set shm_dir)
//! # shm_dir = "/mnt/huge/hedge"
//! # state_dir = "/var/lib/hedge/gateway"   # journal; default: the shm dir (same lifetime)
//! core = 3                     # pin to this core (warn and go on if impossible)
//! idle = "spin-then-yield"     # busy-spin | spin-then-yield | backoff-park
//! on_stale = "recover"         # execs ring + counters left by a dead gateway: recover | replace | fail
//! open_wait_ms = 10000         # how long to wait for orders / lvt / instruments to appear
//! execs_capacity = 65536       # execs ring slots (power of two)
//! venue = "sim"                # sim | fix
//! venue_connect_wait_ms = 5000 # at start-up, wait (bounded) for the venue (FIX Logon) before taking orders
//!
//! [sim]                        # see sim::SimConfig
//! latency_us = 50.0
//! jitter_us = 20.0
//! seed = 1
//! taker_fee_bps = 5.0
//! maker_fee_bps = -1.0
//! price_band_bps = 500.0
//! rate_limit_per_s = 200.0
//! rate_limit_burst = 50.0
//!
//! [flow]                       # see flow::FlowConfig
//! enabled = true
//! intensity_per_s = 2.0
//! size_dist = "exponential"    # exponential | uniform | fixed
//! size_mean = 5.0
//! size_max = 50.0
//! edge_bps = 100.0
//! bias_schedule = [ { secs = 120, bias = 0.8 }, { secs = 120, bias = -0.8 } ]
//! ```

use crate::flow::FlowConfig;
use crate::sim::SimConfig;
use clap::{Parser, ValueEnum};
use serde::Deserialize;
use shm_layout::process::IdleStrategy;
use shm_layout::StalePolicy;
use std::path::{Path, PathBuf};

/// Which venue to trade on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum VenueKind {
    /// The built-in exchange simulator.
    Sim,
    /// A FIX 4.4 counterparty (`[fix]` table).
    Fix,
}

/// The whole configuration. Its `Debug` (what `--print-config` prints) shows the `[fix]`
/// table with credentials redacted.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Namespace: segments live in `/dev/shm/<namespace>`.
    pub namespace: String,
    /// Segment directory; overrides `namespace`.
    pub shm_dir: Option<PathBuf>,
    /// Journal directory; default: the segment directory.
    pub state_dir: Option<PathBuf>,
    /// Core to pin the loop to.
    pub core: Option<usize>,
    /// Idle strategy (phases: [`shm_layout::process::Backoff::DEFAULT`]).
    pub idle: IdleStrategy,
    /// Segments of a dead previous gateway: `recover` (the default) adopts them (unconsumed
    /// execs and positions are kept), `replace` deletes them and creates fresh ones (exec ids
    /// still keep increasing via the journal), `fail` refuses to start.
    pub on_stale: StalePolicy,
    /// Bounded wait for the segments other processes create, milliseconds.
    pub open_wait_ms: u64,
    /// At start-up, the longest the gateway waits for the venue to be connected (FIX: Logon
    /// completed) before it takes orders, milliseconds. Meanwhile it heartbeats, publishes
    /// recovery reports and leaves orders in the ring; after it, new orders are rejected
    /// `NotConnected` until the venue is connected (counted in `venue_connect_timeouts`).
    pub venue_connect_wait_ms: u64,
    /// Execs ring capacity (power of two).
    pub execs_capacity: usize,
    /// Heartbeat and counter refresh period, milliseconds.
    pub heartbeat_ms: u64,
    /// On shutdown, how long to wait for orders in flight to finish, milliseconds.
    pub drain_ms: u64,
    /// Venue.
    pub venue: VenueKind,
    /// Simulator settings.
    pub sim: SimConfig,
    /// Client option flow settings.
    pub flow: FlowConfig,
    /// FIX settings, handed to the FIX adapter as they are.
    pub fix: Option<toml::Table>,
    /// At exit, write the run's order latencies (tags `recv_to_gateway`: feed receive to
    /// gateway read, the tick-to-order path; `publish_to_gateway`: hedger publish to gateway
    /// read) to this file as an HdrHistogram interval log. None: not written.
    pub latency_log: Option<PathBuf>,
}

impl std::fmt::Debug for Config {
    /// Every field, with credential values in the `[fix]` table replaced by `<redacted>`
    /// ([`crate::fix::config::redacted_table`]). Destructured without `..`: a new field must be
    /// added here (and checked for secrets) or this does not compile.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Config {
            namespace,
            shm_dir,
            state_dir,
            core,
            idle,
            on_stale,
            open_wait_ms,
            venue_connect_wait_ms,
            execs_capacity,
            heartbeat_ms,
            drain_ms,
            venue,
            sim,
            flow,
            fix,
            latency_log,
        } = self;
        let fix = fix.as_ref().map(crate::fix::config::redacted_table);
        f.debug_struct("Config")
            .field("namespace", namespace)
            .field("shm_dir", shm_dir)
            .field("state_dir", state_dir)
            .field("core", core)
            .field("idle", idle)
            .field("on_stale", on_stale)
            .field("open_wait_ms", open_wait_ms)
            .field("venue_connect_wait_ms", venue_connect_wait_ms)
            .field("execs_capacity", execs_capacity)
            .field("heartbeat_ms", heartbeat_ms)
            .field("drain_ms", drain_ms)
            .field("venue", venue)
            .field("sim", sim)
            .field("flow", flow)
            .field("fix", &fix)
            .field("latency_log", latency_log)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            namespace: "hedge".into(),
            shm_dir: None,
            state_dir: None,
            core: None,
            idle: IdleStrategy::SpinThenYield,
            on_stale: StalePolicy::Recover,
            open_wait_ms: 10_000,
            venue_connect_wait_ms: 5_000,
            execs_capacity: 65_536,
            heartbeat_ms: 1,
            drain_ms: 500,
            venue: VenueKind::Sim,
            sim: SimConfig::default(),
            flow: FlowConfig::default(),
            fix: None,
            latency_log: None,
        }
    }
}

impl Config {
    /// The segment directory: `--shm-dir`, else `/dev/shm/<namespace>`.
    ///
    /// # Errors
    /// A namespace that is not `[A-Za-z0-9_-]{1,64}` (it could point outside /dev/shm).
    pub fn shm_dir(&self) -> Result<PathBuf, shm_layout::NamespaceError> {
        match &self.shm_dir {
            Some(d) => Ok(d.clone()),
            None => shm_layout::namespace_dir(&self.namespace),
        }
    }

    /// The journal file.
    ///
    /// # Errors
    /// As [`Config::shm_dir`] when no state directory is set.
    pub fn journal_path(&self) -> Result<PathBuf, shm_layout::NamespaceError> {
        let dir = match &self.state_dir {
            Some(d) => d.clone(),
            None => self.shm_dir()?,
        };
        Ok(dir.join("order-gateway.journal"))
    }

    /// Reads a TOML file.
    ///
    /// # Errors
    /// A message naming the file and the problem.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| format!("config {}: {}", path.display(), toml_error(&text, &e)))
    }

    /// Checks the kind and range of every key, so that no value wraps a timer, spins a loop
    /// or prices flow with NaN.
    ///
    /// # Errors
    /// One line naming the first bad key, its value and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        shm_layout::validate_namespace(&self.namespace).map_err(|e| format!("namespace: {e}"))?;
        if !self.execs_capacity.is_power_of_two() || !(512..=1 << 24).contains(&self.execs_capacity)
        {
            return Err(format!(
                "execs_capacity = {}: must be a power of two in 512..=16777216",
                self.execs_capacity
            ));
        }
        for (k, v, lo) in [
            ("open_wait_ms", self.open_wait_ms, 0),
            ("venue_connect_wait_ms", self.venue_connect_wait_ms, 0),
            ("drain_ms", self.drain_ms, 0),
        ] {
            in_range_u64(k, v, lo, MAX_DURATION_MS)?;
        }
        in_range_u64("heartbeat_ms", self.heartbeat_ms, 1, 60_000)?;
        self.validate_sim()?;
        self.validate_flow()?;
        if self.venue == VenueKind::Fix && self.fix.is_none() {
            return Err("venue = \"fix\" needs a [fix] table".into());
        }
        Ok(())
    }

    fn validate_sim(&self) -> Result<(), String> {
        let s = &self.sim;
        for (k, v, lo, hi) in [
            ("sim.latency_us", s.latency_us, 0.0, 1e7),
            ("sim.jitter_us", s.jitter_us, 0.0, 1e7),
            ("sim.taker_fee_bps", s.taker_fee_bps, -1e4, 1e4),
            ("sim.maker_fee_bps", s.maker_fee_bps, -1e4, 1e4),
            ("sim.price_band_bps", s.price_band_bps, 0.0, 1e5),
            ("sim.rate_limit_per_s", s.rate_limit_per_s, 0.0, 1e9),
            ("sim.rate_limit_burst", s.rate_limit_burst, 0.0, 1e9),
            ("sim.unknown_size_qty", s.unknown_size_qty, 0.0, 1e12),
        ] {
            in_range_f64(k, v, lo, hi)?;
        }
        in_range_u64("sim.max_resting", s.max_resting as u64, 0, 1 << 20)?;
        in_range_u64("sim.queue_capacity", s.queue_capacity as u64, 0, 1 << 24)
    }

    fn validate_flow(&self) -> Result<(), String> {
        let f = &self.flow;
        for (k, v, lo, hi) in [
            ("flow.intensity_per_s", f.intensity_per_s, 0.0, 1e6),
            ("flow.size_mean", f.size_mean, 0.0, 1e9),
            ("flow.size_max", f.size_max, 0.0, 1e12),
            ("flow.edge_bps", f.edge_bps, 0.0, 1e4),
        ] {
            in_range_f64(k, v, lo, hi)?;
        }
        if let Some(m) = f.max_abs_log_moneyness {
            in_range_f64("flow.max_abs_log_moneyness", m, 0.0, 100.0)?;
        }
        if let Some(p) = f
            .bias_schedule
            .iter()
            .find(|p| !(p.secs.is_finite() && (0.0..=1e9).contains(&p.secs) && p.bias.abs() <= 1.0))
        {
            return Err(format!(
                "flow.bias_schedule: {{ secs = {}, bias = {} }}: secs must be in 0..=1000000000, bias in -1..=1",
                p.secs, p.bias
            ));
        }
        Ok(())
    }
}

/// Longest duration any `*_ms` key accepts: 7 days, ms (so `ms * 1_000_000` cannot wrap).
pub const MAX_DURATION_MS: u64 = 7 * 24 * 3_600 * 1_000;

fn in_range_u64(key: &str, v: u64, lo: u64, hi: u64) -> Result<(), String> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(format!("{key} = {v}: must be in {lo}..={hi}"))
    }
}

fn in_range_f64(key: &str, v: f64, lo: f64, hi: f64) -> Result<(), String> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(format!(
            "{key} = {v}: must be a finite number in {lo}..={hi}"
        ))
    }
}

/// A TOML error without quoting the file: toml's own `Display` shows the offending source line,
/// which may be a credential (`password = hunter2` is a syntax error). Gives the line and column
/// and the message, with the values of credential-looking lines scrubbed from the message too.
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    use crate::fix::config::{is_credential_key, scrub};
    // Values of `key = value` lines whose key looks like a credential (raw and unquoted): the
    // file did not parse, so this is by line, not by table.
    let secrets: Vec<String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| is_credential_key(k))
        .flat_map(|(_, v)| {
            let v = v.trim();
            let unquoted = v.trim_matches(|c| c == '"' || c == '\'');
            [v.to_string(), unquoted.to_string()]
        })
        .collect();
    let msg = scrub(e.message().trim_end(), &secrets);
    match e.span() {
        Some(span) => {
            let (line, col) = shm_layout::toml_text::line_col(text, span.start);
            match shm_layout::toml_text::key_at(text, span.start) {
                Some(key) => format!("line {line}, column {col}, key {key}: {msg}"),
                None => format!("line {line}, column {col}: {msg}"),
            }
        }
        None => msg,
    }
}

/// Command line of `order-gateway`; flags override the config file.
#[derive(Debug, Parser)]
#[command(
    name = "order-gateway",
    version,
    about = "Consumes hedge orders from shared memory, executes them on a venue (simulator or FIX), publishes execs and client option flow."
)]
pub struct Cli {
    /// TOML config file.
    #[arg(long, short = 'c', env = "ORDER_GATEWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Namespace (segments in /dev/shm/NAMESPACE).
    #[arg(long, short = 'n')]
    pub namespace: Option<String>,
    /// Segment directory (overrides --namespace).
    #[arg(long)]
    pub shm_dir: Option<PathBuf>,
    /// Journal directory (default: the segment directory).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Pin the loop to this core (a missing core is a warning: the gateway runs unpinned).
    #[arg(long)]
    pub core: Option<usize>,
    /// Idle strategy when an iteration found no work [default: spin-then-yield].
    #[arg(long, value_enum, value_name = "STRATEGY")]
    pub idle: Option<IdleStrategy>,
    /// Segments left by a dead gateway [default: recover]; recover keeps unconsumed execs and
    /// positions, and after replace exec ids still keep increasing via the journal.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub on_stale: Option<StalePolicy>,
    /// Venue.
    #[arg(long, value_enum)]
    pub venue: Option<VenueKind>,
    /// Seed of the simulator's latency jitter and of the client flow.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulator one-way latency, microseconds.
    #[arg(long)]
    pub latency_us: Option<f64>,
    /// Simulator one-way jitter, microseconds.
    #[arg(long)]
    pub jitter_us: Option<f64>,
    /// Taker fee, basis points.
    #[arg(long, allow_hyphen_values = true)]
    pub taker_fee_bps: Option<f64>,
    /// Maker fee, basis points (negative = rebate).
    #[arg(long, allow_hyphen_values = true)]
    pub maker_fee_bps: Option<f64>,
    /// Venue rate limit, orders per second (0 = none).
    #[arg(long)]
    pub rate_limit_per_s: Option<f64>,
    /// Client option trades per second.
    #[arg(long)]
    pub flow_intensity: Option<f64>,
    /// Disable the client option flow.
    #[arg(long)]
    pub no_flow: bool,
    /// Bounded wait for segments created by other processes, milliseconds.
    #[arg(long)]
    pub open_wait_ms: Option<u64>,
    /// At start-up, longest wait for the venue to connect (FIX Logon) before taking orders,
    /// milliseconds (0 = do not wait).
    #[arg(long, value_name = "MS")]
    pub venue_connect_wait_ms: Option<u64>,
    /// At exit, write the run's order latencies (feed receive and hedger publish to gateway
    /// read) to FILE as an HdrHistogram interval log (tags recv_to_gateway, publish_to_gateway).
    #[arg(long, value_name = "FILE")]
    pub latency_log: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    pub print_config: bool,
}

impl Cli {
    /// The effective configuration: file (or defaults), then flags.
    ///
    /// # Errors
    /// Unreadable or invalid config.
    pub fn resolve(&self) -> Result<Config, String> {
        let mut c = match &self.config {
            Some(p) => Config::from_file(p)?,
            None => Config::default(),
        };
        if let Some(v) = &self.namespace {
            c.namespace = v.clone();
        }
        if let Some(v) = &self.shm_dir {
            c.shm_dir = Some(v.clone());
        }
        if let Some(v) = &self.state_dir {
            c.state_dir = Some(v.clone());
        }
        c.core = self.core.or(c.core);
        c.idle = self.idle.unwrap_or(c.idle);
        c.on_stale = self.on_stale.unwrap_or(c.on_stale);
        c.venue = self.venue.unwrap_or(c.venue);
        if let Some(s) = self.seed {
            c.sim.seed = s;
            c.flow.seed = s.wrapping_add(1);
        }
        c.sim.latency_us = self.latency_us.unwrap_or(c.sim.latency_us);
        c.sim.jitter_us = self.jitter_us.unwrap_or(c.sim.jitter_us);
        c.sim.taker_fee_bps = self.taker_fee_bps.unwrap_or(c.sim.taker_fee_bps);
        c.sim.maker_fee_bps = self.maker_fee_bps.unwrap_or(c.sim.maker_fee_bps);
        c.sim.rate_limit_per_s = self.rate_limit_per_s.unwrap_or(c.sim.rate_limit_per_s);
        c.flow.intensity_per_s = self.flow_intensity.unwrap_or(c.flow.intensity_per_s);
        if self.no_flow {
            c.flow.enabled = false;
        }
        c.open_wait_ms = self.open_wait_ms.unwrap_or(c.open_wait_ms);
        c.venue_connect_wait_ms = self
            .venue_connect_wait_ms
            .unwrap_or(c.venue_connect_wait_ms);
        if let Some(v) = &self.latency_log {
            c.latency_log = Some(v.clone());
        }
        c.validate().map_err(|e| match &self.config {
            Some(p) => format!("config {}: {e}", p.display()),
            None => e,
        })?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_values_are_refused_naming_file_key_value_and_range() {
        let dir = tempfile::tempdir().unwrap();
        for (text, want) in [
            (
                "[flow]\nedge_bps = nan\n",
                "flow.edge_bps = NaN: must be a finite number in 0..=10000",
            ),
            ("[flow]\nedge_bps = -5.0\n", "flow.edge_bps = -5: must be"),
            ("[flow]\nedge_bps = inf\n", "flow.edge_bps = inf: must be"),
            (
                "heartbeat_ms = 9223372036854775807\n",
                "heartbeat_ms = 9223372036854775807: must be in 1..=60000",
            ),
            (
                "drain_ms = 9223372036854775807\n",
                "drain_ms = 9223372036854775807: must be in 0..=604800000",
            ),
            ("[sim]\nlatency_us = -1.0\n", "sim.latency_us = -1: must be"),
        ] {
            let p = dir.path().join("gw.toml");
            std::fs::write(&p, text).unwrap();
            let cli = Cli::parse_from(["order-gateway", "--config", p.to_str().unwrap()]);
            let e = cli.resolve().unwrap_err();
            let head = format!("config {}: {want}", p.display());
            assert!(e.starts_with(&head) && !e.contains('\n'), "{text:?}: {e}");
        }
    }

    #[test]
    fn namespaces_outside_dev_shm_are_refused() {
        for bad in ["../../tmp/X", "", ".", ".."] {
            let cli = Cli::parse_from(["order-gateway", "--namespace", bad]);
            let e = cli.resolve().unwrap_err();
            assert!(
                e.contains("namespace") && e.contains("is not allowed"),
                "{bad:?}: {e}"
            );
            let c = Config {
                namespace: bad.into(),
                ..Config::default()
            };
            assert!(c.shm_dir().is_err() && c.journal_path().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn example_config_in_the_docs_parses() {
        let doc = include_str!("config.rs");
        let toml: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start().to_string() + "\n")
            .collect();
        let c: Config = toml::from_str(&toml).unwrap();
        c.validate().unwrap();
        assert_eq!(c.core, Some(3));
        assert_eq!(c.flow.bias_schedule.len(), 2);
        assert_eq!(c.idle, IdleStrategy::SpinThenYield);
    }

    #[test]
    fn shipped_example_config_parses_and_equals_the_defaults() {
        let text = include_str!("../config/order-gateway.toml");
        let c: Config = toml::from_str(text).unwrap();
        c.validate().unwrap();
        let d = Config::default();
        assert_eq!(c.sim, d.sim);
        assert_eq!(c.flow, d.flow);
        assert_eq!((c.idle, c.on_stale, c.venue), (d.idle, d.on_stale, d.venue));
        assert_eq!(
            (c.execs_capacity, c.open_wait_ms, c.venue_connect_wait_ms),
            (d.execs_capacity, d.open_wait_ms, d.venue_connect_wait_ms)
        );
    }

    #[test]
    fn config_errors_give_the_place_but_never_a_credential() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gw.toml");
        for (text, line) in [
            ("venue = \"fix\"\n[fix]\npassword = hunter2-x\n", 3),
            (
                "[fix]\nPassWord = \"hunter2-x\"\nPassWord = \"hunter2-x\"\n",
                3,
            ),
            ("namespace = \"a\"\npassword = \"hunter2-x\"\n", 2),
        ] {
            std::fs::write(&p, text).unwrap();
            let e = Config::from_file(&p).unwrap_err();
            assert!(!e.contains("hunter2"), "{e}");
            assert!(e.contains(&format!("line {line},")), "{e}");
        }
    }

    #[test]
    fn flags_override_the_file_and_bad_values_are_named() {
        let cli = Cli::parse_from([
            "order-gateway",
            "--shm-dir",
            "/tmp/x",
            "--seed",
            "9",
            "--maker-fee-bps",
            "-2.5",
            "--no-flow",
            "--venue-connect-wait-ms",
            "250",
        ]);
        let c = cli.resolve().unwrap();
        assert_eq!(c.venue_connect_wait_ms, 250);
        assert_eq!(c.shm_dir().unwrap(), PathBuf::from("/tmp/x"));
        assert_eq!(
            c.journal_path().unwrap(),
            PathBuf::from("/tmp/x/order-gateway.journal")
        );
        assert_eq!(c.sim.seed, 9);
        assert_eq!(c.sim.maker_fee_bps, -2.5);
        assert!(!c.flow.enabled);
        let cli = Cli::parse_from([
            "order-gateway",
            "--idle",
            "backoff-park",
            "--on-stale",
            "fail",
        ]);
        let c = cli.resolve().unwrap();
        assert_eq!(
            (c.idle, c.on_stale),
            (IdleStrategy::BackoffPark, StalePolicy::Fail)
        );
        let e = Cli::try_parse_from(["order-gateway", "--idle", "busyspin"]).unwrap_err();
        assert!(e.to_string().contains("busyspin"), "{e}");
        let e = toml::from_str::<Config>("on_stale = \"keep\"").unwrap_err();
        assert!(
            e.to_string().contains(r#"unknown stale policy "keep""#),
            "{e}"
        );
        let bad: Result<Config, _> = toml::from_str("execs_capacity = 1000\nbogus = 1");
        assert!(bad.unwrap_err().to_string().contains("bogus"));
        let c = Config {
            execs_capacity: 1000,
            ..Config::default()
        };
        assert!(c.validate().unwrap_err().contains("execs_capacity"));
    }
}
