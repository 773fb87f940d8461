//! `hedgectl replay`: the hedger's own decision code on recorded or synthetic market data, in
//! one process, deterministically and as fast as possible, with a cost-and-risk report that
//! puts hedge policies side by side; and, with `--options-chain`, the risk of a static book.
//!
//! What is reused, not re-implemented: the feed handler's sources (Tardis CSV, LOBSTER, the
//! seeded synthetic market), the engine's `BookRisk`, `HedgePolicy::decide` and `Limits::check`
//! (the live hedger's decision code), the order gateway's exchange simulator (`SimVenue`:
//! latency, depth walk, fees, rejects) and client flow (`OptionFlow`), and the engine's
//! Black-76 pricing. See `docs/replay.md` for a worked example.

mod backtest;
mod plot;
mod positions;
mod report;
mod static_risk;

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use engine::config::{LimitsSection, PolicySection, UnderlyingSection};
use engine::risk::InverseDelta;
use feed_handler::instruments::Registry;
use feed_handler::lobster::{LobsterOptions, LobsterSource};
use feed_handler::source::Source;
use feed_handler::synthetic::{SyntheticConfig, SyntheticSource};
use feed_handler::tardis::{scan_instruments, TardisSource};
use order_gateway::flow::{BiasPhase, FlowConfig};
use order_gateway::sim::SimConfig;

use backtest::{Backtest, RunConfig};
use report::Report;

/// Options of `hedgectl replay`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
hedgectl replay --options-chain chain.csv --positions pos.csv --json\n  \
hedgectl replay --tardis chain.csv --positions pos.csv --policy fixed:band=0.5 --policy cost-aware:risk_aversion=1e-5\n  \
hedgectl replay --synthetic-seed 7 --duration-s 600 --flow-sim --policy fixed:band=1 --plot out.svg")]
pub struct ReplayArgs {
    /// Tardis `options_chain` CSV: with --positions and no market-data source, prints the static
    /// book's risk (Black-76 and, where present, the exchange's greeks) and exits.
    #[arg(long, value_name = "FILE")]
    pub options_chain: Option<PathBuf>,
    /// Initial positions, CSV `symbol,qty` (contracts, negative = short).
    #[arg(long, value_name = "FILE")]
    pub positions: Option<PathBuf>,
    /// Tardis CSV file(s) (options_chain, quotes, book_snapshot_N, incremental_book_L2; gzip
    /// ok), merged by local_timestamp. Repeatable.
    #[arg(long, value_name = "FILE")]
    pub tardis: Vec<PathBuf>,
    /// LOBSTER message file (its orderbook file is --lobster-orderbook).
    #[arg(long, value_name = "FILE", requires = "lobster_orderbook")]
    pub lobster_messages: Option<PathBuf>,
    /// LOBSTER orderbook file.
    #[arg(long, value_name = "FILE")]
    pub lobster_orderbook: Option<PathBuf>,
    /// Synthetic market with this seed.
    #[arg(long, value_name = "SEED")]
    pub synthetic_seed: Option<u64>,
    /// Synthetic market configuration, JSON with the keys of the feed handler's `[synthetic]`
    /// table (the seed comes from --synthetic-seed).
    #[arg(long, value_name = "FILE")]
    pub synthetic_config: Option<PathBuf>,
    /// Stop after this many seconds of source time (required for the synthetic market).
    #[arg(long, value_name = "SECS")]
    pub duration_s: Option<f64>,
    /// Stop after this many events.
    #[arg(long, value_name = "N")]
    pub max_events: Option<u64>,
    /// Hedge policy, repeatable for a side-by-side comparison: `KIND[:key=value,...]` with
    /// KIND `fixed`, `whalley-wilmott` or `cost-aware` and the keys of the hedger config's
    /// `[underlyings.X.policy]` table (band, target, cost, risk_aversion, taker_fee,
    /// vol_stress_weight, spread_stress_weight, max_stress, min_band, max_band,
    /// min_interval_ms, max_interval_ms, offset_ticks, collar_bps, fast_alpha, slow_alpha).
    #[arg(long, value_name = "SPEC", default_value = "fixed:band=1")]
    pub policy: Vec<String>,
    /// Limits, `key=value,...` with the keys of `[underlyings.X.limits]` (max_order_qty,
    /// max_position, max_orders_per_sec, order_burst, max_data_age_ms, ...).
    #[arg(long, value_name = "SPEC")]
    pub limits: Option<String>,
    /// Hedge instrument of an underlying, `UNDERLYING=SYMBOL` (default: UNDERLYING-PERPETUAL,
    /// or the underlying itself when it is a spot or perpetual). Repeatable.
    #[arg(long, value_name = "U=SYMBOL")]
    pub hedge: Vec<String>,
    /// Client option flow file, CSV `timestamp_ns,symbol,qty[,price]` (qty signed from the
    /// market maker's side; empty price = the mark).
    #[arg(long, value_name = "FILE")]
    pub flow: Option<PathBuf>,
    /// Simulated client option flow (the order gateway's Poisson flow).
    #[arg(long)]
    pub flow_sim: bool,
    /// Flow simulator: seed.
    #[arg(long, default_value_t = 7)]
    pub flow_seed: u64,
    /// Flow simulator: client trades per second.
    #[arg(long, default_value_t = 2.0)]
    pub flow_intensity: f64,
    /// Flow simulator: mean size, contracts.
    #[arg(long, default_value_t = 5.0)]
    pub flow_size_mean: f64,
    /// Flow simulator: directional bias |b| in [0,1], alternating sign every --flow-bias-secs.
    #[arg(long, default_value_t = 0.8)]
    pub flow_bias: f64,
    /// Flow simulator: length of each bias phase, seconds.
    #[arg(long, default_value_t = 120.0)]
    pub flow_bias_secs: f64,
    /// Venue one-way latency, microseconds.
    #[arg(long, default_value_t = 50.0)]
    pub latency_us: f64,
    /// Venue latency jitter (uniform), microseconds.
    #[arg(long, default_value_t = 20.0)]
    pub jitter_us: f64,
    /// Venue taker fee, basis points.
    #[arg(long, default_value_t = 5.0)]
    pub taker_fee_bps: f64,
    /// Venue PRNG seed (latency jitter).
    #[arg(long, default_value_t = 1)]
    pub sim_seed: u64,
    /// Modelled hedge book (when the data has no quotes for the hedge instrument): half-spread
    /// in bps of the reference price.
    #[arg(long, default_value_t = 2.5)]
    pub model_half_spread_bps: f64,
    /// Modelled hedge book: levels per side, one tick apart.
    #[arg(long, default_value_t = 8)]
    pub model_levels: usize,
    /// Modelled hedge book: contracts per level.
    #[arg(long, default_value_t = 5000.0)]
    pub model_level_qty: f64,
    /// Implied vol for options the data does not mark (e.g. options on a LOBSTER equity):
    /// BSM at this vol on the underlying's mid.
    #[arg(long, value_name = "VOL")]
    pub option_vol: Option<f64>,
    /// Contract multiplier of such options.
    #[arg(long, default_value_t = 100.0)]
    pub option_multiplier: f64,
    /// Delta of inverse options: `model` (dV/dF, consistent with the report's USD PnL) or
    /// `premium-adjusted` (the live hedger's default, coin-flat).
    #[arg(long, default_value = "model")]
    pub inverse_delta: String,
    /// Sampling interval of the report's time series, ms of replay time.
    #[arg(long, default_value_t = 1000)]
    pub sample_ms: u64,
    /// Write the JSON report to stdout (instead of the human summary).
    #[arg(long)]
    pub json: bool,
    /// Write the JSON report to FILE (the summary still goes to stdout).
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// Write an SVG plot (net delta, hedge position, cumulative cost over time) to FILE.
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
}

/// Parses `KIND[:k=v,...]` into the hedger config's policy section.
fn parse_policy(spec: &str) -> Result<engine::policy::PolicyConfig> {
    let (kind, rest) = spec.split_once(':').unwrap_or((spec, ""));
    let mut obj = serde_json::Map::new();
    obj.insert("kind".into(), serde_json::Value::String(kind.trim().into()));
    kv_into(rest, &mut obj).with_context(|| format!("--policy {spec}"))?;
    let section: PolicySection = serde_json::from_value(serde_json::Value::Object(obj))
        .with_context(|| format!("--policy {spec}"))?;
    let u = UnderlyingSection {
        hedge_instrument: String::new(),
        initial_hedge_position: 0.0,
        rate: 0.0,
        policy: section,
        limits: LimitsSection::default(),
    };
    u.policy_config()
        .map_err(|(k, m)| anyhow::anyhow!("--policy {spec}: {k}: {m}"))
}

fn parse_limits(spec: Option<&str>) -> Result<engine::limits::LimitsConfig> {
    let mut obj = serde_json::Map::new();
    if let Some(s) = spec {
        kv_into(s, &mut obj).with_context(|| format!("--limits {s}"))?;
    }
    let limits: LimitsSection = serde_json::from_value(serde_json::Value::Object(obj))
        .with_context(|| format!("--limits {}", spec.unwrap_or("")))?;
    let u = UnderlyingSection {
        hedge_instrument: String::new(),
        initial_hedge_position: 0.0,
        rate: 0.0,
        policy: PolicySection::default(),
        limits,
    };
    u.limits_config()
        .map_err(|(k, m)| anyhow::anyhow!("--limits: {k}: {m}"))
}

fn kv_into(s: &str, obj: &mut serde_json::Map<String, serde_json::Value>) -> Result<()> {
    for kv in s.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .with_context(|| format!("`{kv}` is not key=value"))?;
        let v = v.trim();
        let val = match serde_json::from_str::<serde_json::Value>(v) {
            Ok(n @ serde_json::Value::Number(_)) => n,
            _ => serde_json::Value::String(v.to_string()),
        };
        obj.insert(k.trim().to_string(), val);
    }
    Ok(())
}

fn open_source(a: &ReplayArgs, extra_symbols: &[String]) -> Result<Box<dyn Source>> {
    let n = usize::from(!a.tardis.is_empty())
        + usize::from(a.lobster_messages.is_some())
        + usize::from(a.synthetic_seed.is_some());
    if n != 1 {
        bail!("give exactly one market data source: --tardis FILE..., --lobster-messages/--lobster-orderbook, or --synthetic-seed N");
    }
    if !a.tardis.is_empty() {
        let mut reg = Registry::new();
        scan_instruments(&a.tardis, &mut reg)?;
        // Hedge instruments the files do not quote (the options chain has no perpetual) are
        // registered so that a modelled book can stand in.
        for s in extra_symbols {
            if reg.id_of(s).is_none() {
                let _ = reg.resolve_deribit(s);
            }
        }
        return Ok(Box::new(TardisSource::open(&a.tardis, Some(reg))?));
    }
    if let Some(m) = &a.lobster_messages {
        let ob = a
            .lobster_orderbook
            .as_ref()
            .context("--lobster-orderbook missing")?;
        return Ok(Box::new(LobsterSource::open(
            m,
            ob,
            LobsterOptions::default(),
        )?));
    }
    let mut cfg = match &a.synthetic_config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            serde_json::from_str::<SyntheticConfig>(&text)
                .with_context(|| format!("{}: not a synthetic market configuration", p.display()))?
        }
        None => SyntheticConfig::default(),
    };
    cfg.seed = a.synthetic_seed.unwrap_or(cfg.seed);
    if a.duration_s.is_none() && a.max_events.is_none() {
        bail!("the synthetic market is endless: give --duration-s or --max-events");
    }
    Ok(Box::new(SyntheticSource::new(cfg)))
}

/// Runs `hedgectl replay`; returns the exit code.
///
/// # Errors
/// Bad arguments or unreadable inputs (one line for the user).
pub fn run(a: &ReplayArgs) -> Result<i32> {
    let positions = match &a.positions {
        Some(p) => positions::read_positions(p)?,
        None => Vec::new(),
    };
    let no_source =
        a.tardis.is_empty() && a.lobster_messages.is_none() && a.synthetic_seed.is_none();
    if let Some(chain) = &a.options_chain {
        if !no_source {
            bail!("--options-chain (static book risk) cannot be combined with a market data source; use --tardis to replay a chain");
        }
        if positions.is_empty() {
            bail!("--options-chain needs --positions FILE (CSV symbol,qty)");
        }
        let r = static_risk::static_risk(chain, &positions)?;
        if a.json {
            out(&(serde_json::to_string_pretty(&r)? + "\n"))?;
        } else {
            out(&static_risk::table(&r))?;
        }
        if let Some(path) = &a.report {
            std::fs::write(path, serde_json::to_string_pretty(&r)? + "\n")
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        return Ok(0);
    }
    let inverse_delta = match a.inverse_delta.as_str() {
        "model" => InverseDelta::Model,
        "premium-adjusted" => InverseDelta::PremiumAdjusted,
        o => bail!("--inverse-delta must be `model` or `premium-adjusted`, got `{o}`"),
    };
    let mut hedge_symbols = BTreeMap::new();
    for h in &a.hedge {
        let (u, s) = h
            .split_once('=')
            .with_context(|| format!("--hedge {h}: expected UNDERLYING=SYMBOL"))?;
        hedge_symbols.insert(u.to_string(), s.to_string());
    }
    let flow_file = match &a.flow {
        Some(p) => positions::read_flow(p)?,
        None => Vec::new(),
    };
    let limits = parse_limits(a.limits.as_deref())?;
    let policies = a
        .policy
        .iter()
        .map(|s| Ok((s.clone(), parse_policy(s)?)))
        .collect::<Result<Vec<_>>>()?;
    let sim = SimConfig {
        latency_us: a.latency_us,
        jitter_us: a.jitter_us,
        seed: a.sim_seed,
        taker_fee_bps: a.taker_fee_bps,
        // The policies' limit orders cross the book: no resting; no venue rate limit beyond
        // the hedger's own limits.
        rate_limit_per_s: 0.0,
        ..SimConfig::default()
    };
    let flow_sim = a.flow_sim.then(|| FlowConfig {
        enabled: true,
        intensity_per_s: a.flow_intensity,
        size_mean: a.flow_size_mean,
        seed: a.flow_seed,
        bias_schedule: vec![
            BiasPhase {
                secs: a.flow_bias_secs,
                bias: a.flow_bias,
            },
            BiasPhase {
                secs: a.flow_bias_secs,
                bias: -a.flow_bias,
            },
        ],
        ..FlowConfig::default()
    });
    // Hedge symbols to pre-register for a Tardis replay: explicit ones, and the Deribit
    // perpetual of every option currency in the files.
    let mut extra: Vec<String> = hedge_symbols.values().cloned().collect();
    if !a.tardis.is_empty() {
        let mut reg = Registry::new();
        scan_instruments(&a.tardis, &mut reg)?;
        for d in reg.defs() {
            if d.kind() == Ok(shm_layout::InstrumentKind::Option) {
                if let Some(root) = reg.get(d.underlying_id) {
                    let p = format!("{}-PERPETUAL", root.symbol());
                    if !extra.contains(&p) && !hedge_symbols.contains_key(root.symbol()) {
                        extra.push(p);
                    }
                }
            }
        }
    }
    let mut inputs = BTreeMap::new();
    let src_desc = if !a.tardis.is_empty() {
        format!(
            "tardis {}",
            a.tardis
                .iter()
                .map(|p| file_name(p))
                .collect::<Vec<_>>()
                .join(" ")
        )
    } else if let Some(m) = &a.lobster_messages {
        format!("lobster {}", file_name(m))
    } else {
        format!("synthetic seed {}", a.synthetic_seed.unwrap_or(0))
    };
    inputs.insert("source".to_string(), src_desc);
    if let Some(p) = &a.positions {
        inputs.insert("positions".into(), file_name(p));
    }
    if let Some(p) = &a.flow {
        inputs.insert("flow".into(), file_name(p));
    }
    if a.flow_sim {
        inputs.insert(
            "flow_sim".into(),
            format!(
                "seed {} intensity {}/s size {} bias +-{} every {} s",
                a.flow_seed, a.flow_intensity, a.flow_size_mean, a.flow_bias, a.flow_bias_secs
            ),
        );
    }
    inputs.insert(
        "venue".into(),
        format!(
            "latency {} us + jitter {} us, taker fee {} bps",
            a.latency_us, a.jitter_us, a.taker_fee_bps
        ),
    );
    let mut report = Report {
        inputs,
        comparison: Vec::new(),
        policies: Vec::new(),
    };
    for (label, policy) in policies {
        let mut src = open_source(a, &extra)?;
        let cfg = RunConfig {
            policy_label: label,
            policy,
            limits,
            sim: sim.clone(),
            flow_sim: flow_sim.clone(),
            flow_file: flow_file.clone(),
            positions: positions.clone(),
            hedge_symbols: hedge_symbols.clone(),
            model_half_spread_bps: a.model_half_spread_bps,
            model_levels: a.model_levels,
            model_level_qty: a.model_level_qty,
            option_vol: a.option_vol,
            option_multiplier: a.option_multiplier,
            sample_ns: a.sample_ms.max(1) * 1_000_000,
            duration_ns: a.duration_s.map_or(0, |d| (d * 1e9) as u64),
            max_events: a.max_events.unwrap_or(0),
            inverse_delta,
        };
        let bt = Backtest::new(src.registry().defs(), cfg)?;
        let t0 = std::time::Instant::now();
        let pr = bt.run(&mut *src)?;
        // Wall time goes to stderr only: the report stays byte-identical between runs.
        let secs = t0.elapsed().as_secs_f64();
        eprintln!(
            "replay {}: {} events in {:.2} s ({:.0} events/s)",
            pr.policy,
            pr.events,
            secs,
            pr.events as f64 / secs.max(1e-9)
        );
        report.comparison.push(pr.comparison.clone());
        report.policies.push(pr);
    }
    let json = serde_json::to_string_pretty(&report)? + "\n";
    if let Some(path) = &a.report {
        std::fs::write(path, &json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &a.plot {
        std::fs::write(path, plot::svg(&report))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if a.json {
        out(&json)?;
    } else {
        out(&report::summary(&report))?;
    }
    Ok(0)
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name().map_or_else(
        || p.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    )
}

/// Writes to stdout; a closed pipe (`| head`) is not an error.
fn out(text: &str) -> Result<()> {
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::policy::{BandRule, RehedgeTarget};

    #[test]
    fn policy_specs_parse_into_the_hedger_config_types() {
        let p = parse_policy("fixed:band=0.5,target=edge,min_interval_ms=250").unwrap();
        assert_eq!(
            p.rule,
            BandRule::Fixed {
                band: 0.5,
                target: RehedgeTarget::Edge
            }
        );
        assert_eq!(p.min_interval_ns, 250_000_000);
        let p = parse_policy("cost-aware:risk_aversion=1e-5,max_band=5").unwrap();
        assert!(
            matches!(p.rule, BandRule::CostAware { risk_aversion, .. } if risk_aversion == 1e-5)
        );
        assert_eq!(p.max_band, 5.0);
        assert!(parse_policy("whalley-wilmott").is_ok());
    }

    #[test]
    fn bad_policy_and_limit_specs_name_the_key() {
        let e = parse_policy("fixed:band=-1").unwrap_err().to_string();
        assert!(e.contains("band"), "{e}");
        let e = format!("{:#}", parse_policy("fixed:bnd=1").unwrap_err());
        assert!(e.contains("bnd"), "{e}");
        let e = format!("{:#}", parse_policy("fixed:band").unwrap_err());
        assert!(e.contains("key=value"), "{e}");
        let l = parse_limits(Some("max_orders_per_sec=5,order_burst=2")).unwrap();
        assert_eq!((l.max_orders_per_sec, l.order_burst), (5.0, 2.0));
        let e = parse_limits(Some("order_burst=0.5"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("order_burst"), "{e}");
    }
}
