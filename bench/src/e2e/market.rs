//! The market both pipelines see: the feed handler's synthetic market with a book of N options
//! (10 expiries, N/20 strikes each, calls and puts), no bursts and no stress episodes (so the
//! offered rate is the rate asked for), and a clock that moves the same market time per event
//! at every rate (so that the share of events that trigger a hedge does not depend on the rate).
//!
//! The option book held: long one contract of every option (long straddles at every strike:
//! long gamma everywhere, so every underlying move changes the net delta), hedged from the
//! start by a perpetual position computed here with the engine's pricing.

use std::fmt::Write as _;

use engine::pricing::{black76_greeks, OptionType as PxType};
use feed_handler::source::Source;
use feed_handler::synthetic::{SyntheticConfig, SyntheticSource};
use shm_layout::{InstrumentDef, InstrumentKind, OptionType};

/// Market time per event, seconds: 6 ms, i.e. 60 s of market per second at 10k events/s.
pub const MARKET_SECS_PER_EVENT: f64 = 0.006;

/// Expiries of the book, days after the start.
pub const EXPIRIES_DAYS: [u32; 10] = [7, 14, 21, 30, 45, 60, 90, 120, 180, 270];

/// The synthetic market for `options` options at `rate` events/s (`inf` = as fast as possible),
/// its clock starting at `start_ns` (wall clock, so that no option has expired for the hedger).
pub fn synthetic_config(options: usize, rate: f64, start_ns: u64, seed: u64) -> SyntheticConfig {
    let strikes = (options / (2 * EXPIRIES_DAYS.len())).max(1);
    // The source uses 100 ns per event when unpaced.
    let eff_rate = if rate.is_finite() { rate } else { 1e7 };
    SyntheticConfig {
        seed,
        expiries_days: EXPIRIES_DAYS.to_vec(),
        strikes_per_expiry: strikes,
        // Strikes span about +-50% of spot.
        strike_step: 1.0 / strikes as f64,
        rate,
        start_ns,
        time_warp: MARKET_SECS_PER_EVENT * eff_rate,
        burst_every_s: 0.0,
        stress_every_s: 0.0,
        ..SyntheticConfig::default()
    }
}

/// The `[synthetic]` table of a feed-handler config file for this market.
pub fn feed_toml(c: &SyntheticConfig) -> String {
    let days: Vec<String> = c.expiries_days.iter().map(u32::to_string).collect();
    format!(
        "# Written by the e2e benchmark (bench/src/e2e/market.rs).\n[synthetic]\nseed = {}\nstart_ns = {}\n\
         expiries_days = [{}]\nstrikes_per_expiry = {}\nstrike_step = {}\ntime_warp = {}\n\
         rate = {}\nburst_every_s = 0.0\nstress_every_s = 0.0\n",
        c.seed,
        c.start_ns,
        days.join(", "),
        c.strikes_per_expiry,
        c.strike_step,
        c.time_warp,
        c.rate,
    )
}

/// The instruments of the market (same ids as the feed handler publishes).
pub fn instruments(c: &SyntheticConfig) -> (Vec<InstrumentDef>, f64) {
    let src = SyntheticSource::new(c.clone());
    let spot = c.underlyings.first().map_or(60_000.0, |u| u.spot);
    (src.registry().defs().to_vec(), spot)
}

/// Options of `defs`.
pub fn options(defs: &[InstrumentDef]) -> impl Iterator<Item = &InstrumentDef> {
    defs.iter()
        .filter(|d| d.kind() == Ok(InstrumentKind::Option))
}

/// Black-76 delta of one contract of option `d` at forward `f`, time `t_years`, vol `vol`,
/// in underlying units (inverse options: premium-adjusted, as the hedger counts them).
pub fn option_delta(d: &InstrumentDef, f: f64, t_years: f64, vol: f64) -> f64 {
    let kind = if d.option_type() == Ok(OptionType::Put) {
        PxType::Put
    } else {
        PxType::Call
    };
    let mult = d.multiplier();
    match black76_greeks(kind, f, d.strike, t_years.max(1e-6), vol, 0.0) {
        Ok(g) if d.settlement() == Ok(shm_layout::Settlement::Inverse) => {
            (g.delta - g.price / f) * mult
        }
        Ok(g) => g.delta * mult,
        Err(_) => 0.0,
    }
}

/// The hedging rule of the benchmark's hedger.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum BenchPolicy {
    /// A fixed band of `band` BTC, back to zero (the e2e benchmark's).
    Fixed { band: f64 },
    /// The cost-aware rule with the example configuration's parameters (the default policy
    /// of `engine/config/hedger.example.toml`): `hot_path --cost-aware` (the e2e binary,
    /// which compiles this module too, runs the fixed band only).
    #[allow(dead_code)]
    CostAware,
}

impl BenchPolicy {
    /// The `[underlyings.BTC.policy]` keys of the rule.
    fn toml(&self) -> String {
        match self {
            BenchPolicy::Fixed { band } => {
                format!("kind = \"fixed\"\nband = {band}\ntarget = \"zero\"\n")
            }
            BenchPolicy::CostAware => "kind = \"cost-aware\"\nrisk_aversion = 0.0001\n\
                 taker_fee = 0.0005\nvol_stress_weight = 1.0\nspread_stress_weight = 1.0\n\
                 max_stress = 5.0\nmin_band = 0.05\nmax_band = 5.0\n"
                .to_string(),
        }
    }
}

/// The hedger's config: BTC hedged with BTC-PERPETUAL by `policy` (the e2e benchmark: a
/// fixed band back to zero), no minimum interval, limits out of the way (the benchmark measures latency, not the
/// limits), and the option book (one contract long of each option) hedged from the start;
/// the side threads on `housekeeping_core` when one is given (`runtime.housekeeping_core`).
pub fn hedger_toml(
    defs: &[InstrumentDef],
    spot: f64,
    start_ns: u64,
    policy: BenchPolicy,
    housekeeping_core: Option<usize>,
) -> String {
    let mut delta = 0.0;
    for d in options(defs) {
        let t = engine::pricing::time::years_between_ns(start_ns, d.expiry_ns);
        delta += option_delta(d, spot, t, 0.6);
    }
    // BTC-PERPETUAL: 10 USD per contract, inverse: delta in BTC = qty * 10 / S.
    let perp = defs
        .iter()
        .find(|d| d.symbol() == "BTC-PERPETUAL")
        .map_or(10.0, |d| d.contract_multiplier.max(1e-9));
    let hedge = (-delta * spot / perp).round();
    let housekeeping =
        housekeeping_core.map_or(String::new(), |c| format!("housekeeping_core = {c}\n"));
    let policy_keys = policy.toml();
    let mut s = format!(
        r#"# Written by the e2e benchmark (bench/src/e2e/market.rs).
[shm]
open_wait_ms = 60000
on_stale = "replace"
orders_capacity = 65536
gateway_heartbeat_timeout_ms = 5000

[runtime]
{housekeeping}histogram_interval_ms = 1000
snapshot_interval_ms = 50

[underlyings.BTC]
hedge_instrument = "BTC-PERPETUAL"
initial_hedge_position = {hedge}

[underlyings.BTC.policy]
{policy_keys}min_interval_ms = 0
max_interval_ms = 0
collar_bps = 100.0

[underlyings.BTC.limits]
max_orders_per_sec = 10000000.0
order_burst = 1000000.0
max_data_age_ms = 60000
max_rejects = 1000000000
"#
    );
    for d in options(defs) {
        let _ = write!(
            s,
            "\n[[positions]]\nsymbol = \"{}\"\nqty = 1.0\n",
            d.symbol()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_thousand_options_in_the_book_and_in_the_hedger_config() {
        let c = synthetic_config(10_000, 1e4, 1_767_312_000_000_000_000, 1);
        let (defs, spot) = instruments(&c);
        assert_eq!(options(&defs).count(), 10_000);
        let toml = hedger_toml(
            &defs,
            spot,
            c.start_ns,
            BenchPolicy::Fixed { band: 0.05 },
            None,
        );
        assert_eq!(toml.matches("[[positions]]").count(), 10_000);
        let feed = feed_toml(&c);
        let p = std::env::temp_dir().join(format!("e2e-feed-{}.toml", std::process::id()));
        std::fs::write(&p, feed).unwrap();
        let back = feed_handler::run::Config::load(&p);
        std::fs::remove_file(&p).unwrap();
        assert_eq!(back.unwrap().synthetic, c);
        // The side threads' core lands in the hedger's [runtime] section.
        let pinned = hedger_toml(
            &defs,
            spot,
            c.start_ns,
            BenchPolicy::Fixed { band: 0.05 },
            Some(0),
        );
        let cfg = engine::config::HedgerConfig::parse(&pinned, "e2e-hedger.toml").unwrap();
        assert_eq!(cfg.runtime.housekeeping_core, Some(0));
        // hot_path --cost-aware: a valid config whose rule is the cost-aware one.
        let ca = hedger_toml(&defs, spot, c.start_ns, BenchPolicy::CostAware, None);
        let cfg = engine::config::HedgerConfig::parse(&ca, "e2e-hedger.toml").unwrap();
        assert_eq!(cfg.underlyings["BTC"].policy.kind, "cost-aware");
        assert_eq!(cfg.underlyings["BTC"].policy.risk_aversion, Some(1e-4));
    }
}
