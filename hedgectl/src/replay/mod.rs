//! `hedgectl replay`: the hedger's own decision code on recorded or synthetic market data, in
//! one process, deterministically and as fast as possible, with a cost-and-risk report that
//! puts hedge policies side by side; and, with `--options-chain`, the risk of a static book.
//!
//! What is reused, not re-implemented: the feed handler's sources (Tardis CSV, LOBSTER, the
//! seeded synthetic market), the engine's `BookRisk`, `HedgePolicy::decide` and `Limits::check`
//! (the live hedger's decision code), the order gateway's exchange simulator (`SimVenue`:
//! latency, depth walk, fees, rejects) and client flow (`OptionFlow`), and the engine's
//! Black-76 pricing. See `docs/replay.md` for a worked example.

mod accounts;
mod backtest;
mod frontier;
mod plot;
mod positions;
mod report;
mod session;
mod static_risk;
mod window;
mod world;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use engine::config::{HedgerConfig, LimitsSection, PolicySection};
use feed_handler::instruments::Registry;
use feed_handler::lobster::{LobsterOptions, LobsterSource};
use feed_handler::source::{Batched, Source};
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
    /// Replay a live hedger's session journal (`<state_dir>/session`): rebuild each run from
    /// its header, feed the recorded inputs back through the hedger's core and compare every
    /// order with the one sent live. Prints the orders reproduced and the first divergence;
    /// exit code 1 on a divergence. Takes only `--json` besides.
    #[arg(long, value_name = "DIR")]
    pub session: Option<PathBuf>,
    /// The live hedger's configuration (`hedger.toml`): its underlyings, hedge instruments,
    /// policies, limits and positions. Without it every underlying of the data is hedged with
    /// its perpetual under `--policy` and `--limits`; with it, `--policy`/`--limits` given on
    /// the command line override the file's for every underlying.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The order gateway's configuration: its `[sim]` table sets the venue (latency, fees,
    /// rate limit, price band); `--latency-us`, `--jitter-us`, `--taker-fee-bps` and
    /// `--sim-seed` given on the command line override it.
    #[arg(long, value_name = "FILE")]
    pub venue_config: Option<PathBuf>,
    /// Tardis `options_chain` CSV: with --positions and no market-data source, prints the static
    /// book's risk (Black-76 and, where present, the exchange's greeks) and exits.
    #[arg(long, value_name = "FILE")]
    pub options_chain: Option<PathBuf>,
    /// With --options-chain: value the book as of TIME (microseconds since the epoch or UTC
    /// `YYYY-MM-DDTHH:MM[:SS]Z`): each position's latest row at or before it.
    #[arg(
        long,
        value_name = "TIME",
        requires = "options_chain",
        conflicts_with = "each_snapshot"
    )]
    pub at: Option<String>,
    /// With --options-chain: one report per snapshot (distinct exchange timestamp) of the file.
    #[arg(long, requires = "options_chain")]
    pub each_snapshot: bool,
    /// With --options-chain: skip positions that cannot be valued and list them, instead of
    /// failing with the list.
    #[arg(long, requires = "options_chain")]
    pub skip_missing: bool,
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
    /// Start the replay at this exchange time (microseconds since the epoch or UTC
    /// `YYYY-MM-DDTHH:MM[:SS]Z`): earlier events are read and skipped, and the first snapshot
    /// at or after it starts the run (for snapshot data: options chains, tickers).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// End the replay before this exchange time (same forms as --from).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Hedge policy, repeatable for a side-by-side comparison: `KIND[:key=value,...]` with
    /// KIND `none` (never hedge: the baseline), `fixed`, `whalley-wilmott` or `cost-aware`
    /// and the keys of the hedger config's `[underlyings.X.policy]` table, parsed by the
    /// hedger's own parser (a key of another kind is an error). Default: the `--config`
    /// file's policies, else `fixed:band=1`.
    #[arg(long, value_name = "SPEC")]
    pub policy: Vec<String>,
    /// A grid of policies, repeatable: `KIND:key=v1,v2,...[,key2=w1,w2]` (any key may take a
    /// list; lists multiply). Every configuration runs over the same data, in parallel across
    /// cores, and the report's `frontier` puts hedging cost against tracking error; the
    /// `none` policy is added as the baseline.
    #[arg(long, value_name = "GRID")]
    pub sweep: Vec<String>,
    /// Write the PnL attribution over time (delta, gamma, vega, theta, costs, residual) as an
    /// SVG plot to FILE.
    #[arg(long, value_name = "FILE")]
    pub attribution_plot: Option<PathBuf>,
    /// Write the cost / tracking-error frontier as a plot to FILE: SVG, or PNG when FILE ends
    /// in `.png` (the same for --plot and --attribution-plot).
    #[arg(long, value_name = "FILE")]
    pub frontier_plot: Option<PathBuf>,
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
    /// Venue one-way latency, microseconds (default: the gateway's, 50).
    #[arg(long)]
    pub latency_us: Option<f64>,
    /// Venue latency jitter (uniform), microseconds (default: the gateway's, 20).
    #[arg(long)]
    pub jitter_us: Option<f64>,
    /// Venue taker fee, basis points (default: the gateway's, 5).
    #[arg(long)]
    pub taker_fee_bps: Option<f64>,
    /// Venue PRNG seed (latency jitter) (default: the gateway's, 1).
    #[arg(long)]
    pub sim_seed: Option<u64>,
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
    /// Sampling interval of the report's plotted time series, ms of replay time (every
    /// summary figure is taken after every event, whatever this is).
    #[arg(long, default_value_t = 1000)]
    pub sample_ms: u64,
    /// Bound of the plotted series: at most twice this many points per underlying (the
    /// sampling interval doubles when full).
    #[arg(long, default_value_t = 1000)]
    pub max_points: usize,
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

/// Parses `KIND[:k=v,...]` with the hedger config's own grammar
/// (`engine::config::PolicySection::from_spec`): the same keys, defaults and checks. Returns
/// the section (the run applies it to every underlying), checked once here.
fn parse_policy(spec: &str) -> Result<PolicySection> {
    parse_section("--policy", spec, PolicySection::from_spec, |s| {
        s.to_config().map(drop)
    })
}

/// Parses `key=value,...` with the hedger config's limits grammar, checked once here.
fn parse_limits(spec: &str) -> Result<LimitsSection> {
    parse_section("--limits", spec, LimitsSection::from_spec, |s| {
        s.to_config().map(drop)
    })
}

/// A config section parsed from the `spec` of option `flag` and checked (`check`: it converts
/// to its config); either error names the option, the spec and the offending key.
fn parse_section<S>(
    flag: &str,
    spec: &str,
    parse: fn(&str) -> Result<S, (String, String)>,
    check: fn(&S) -> Result<(), (&'static str, String)>,
) -> Result<S> {
    let section = parse(spec).map_err(|(k, m)| anyhow::anyhow!("{flag} {spec}: {k}: {m}"))?;
    check(&section).map_err(|(k, m)| anyhow::anyhow!("{flag} {spec}: {k}: {m}"))?;
    Ok(section)
}

/// Opens the run's market data source. `tardis_registry` is the Tardis files' instruments,
/// scanned once for all runs ([`tardis_registry`]).
fn open_source(a: &ReplayArgs, tardis_registry: Option<&Registry>) -> Result<Box<dyn Source>> {
    let n = usize::from(!a.tardis.is_empty())
        + usize::from(a.lobster_messages.is_some())
        + usize::from(a.synthetic_seed.is_some());
    if n != 1 {
        bail!("give exactly one market data source: --tardis FILE..., --lobster-messages/--lobster-orderbook, or --synthetic-seed N");
    }
    if let Some(reg) = tardis_registry.filter(|_| !a.tardis.is_empty()) {
        return Ok(Box::new(Batched::new(TardisSource::open(
            &a.tardis,
            Some(reg.clone()),
        )?)));
    }
    if let Some(m) = &a.lobster_messages {
        let ob = a
            .lobster_orderbook
            .as_ref()
            .context("--lobster-orderbook missing")?;
        return Ok(Box::new(Batched::new(LobsterSource::open(
            m,
            ob,
            LobsterOptions::default(),
        )?)));
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
    if let Some(dir) = &a.session {
        return session::run(dir, a.json);
    }
    let positions = match &a.positions {
        Some(p) => positions::read_positions(p)?,
        None => Vec::new(),
    };
    if let Some(chain) = &a.options_chain {
        return static_book_risk(a, chain, &positions);
    }
    let hedger = match &a.config {
        Some(p) => Some(HedgerConfig::load(p).map_err(|e| anyhow::anyhow!("{e}"))?),
        None => None,
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
    let limits = a.limits.as_deref().map(parse_limits).transpose()?;
    let policies = policies_to_run(a)?;
    let sim = venue_config(a)?;
    let registry = tardis_registry(a, &hedge_symbols, hedger.as_ref())?;
    let mut report = Report {
        inputs: describe_inputs(a, &sim),
        source: report::SourceCounts::default(),
        frontier: Vec::new(),
        comparison: Vec::new(),
        policies: Vec::new(),
    };
    let base = RunConfig {
        policy_label: String::new(),
        hedger,
        policy: None,
        limits,
        sim,
        flow_sim: flow_sim_config(a),
        flow_file,
        positions,
        hedge_symbols,
        model_half_spread_bps: a.model_half_spread_bps,
        model_levels: a.model_levels,
        model_level_qty: a.model_level_qty,
        option_vol: a.option_vol,
        option_multiplier: a.option_multiplier,
        sample_ns: a.sample_ms.max(1) * 1_000_000,
        max_points: a.max_points.max(2),
        duration_ns: a.duration_s.map_or(0, |d| (d * 1e9) as u64),
        max_events: a.max_events.unwrap_or(0),
    };
    let runs = run_all(a, registry.as_ref(), &base, policies)?;
    for (i, (pr, counts)) in runs.into_iter().enumerate() {
        if i == 0 {
            report.source = counts;
        }
        report.comparison.push(pr.comparison.clone());
        report.policies.push(pr);
    }
    report.frontier = frontier::frontier(&report.policies);
    write_outputs(a, &report)?;
    Ok(0)
}

/// `--options-chain`: the risk of the `--positions` book on a chain snapshot, no market
/// replay; returns the exit code.
fn static_book_risk(
    a: &ReplayArgs,
    chain: &Path,
    positions: &[positions::Position],
) -> Result<i32> {
    if !(a.tardis.is_empty() && a.lobster_messages.is_none() && a.synthetic_seed.is_none()) {
        bail!("--options-chain (static book risk) cannot be combined with a market data source; use --tardis to replay a chain");
    }
    if positions.is_empty() {
        bail!("--options-chain needs --positions FILE (CSV symbol,qty)");
    }
    let opts = static_risk::StaticOptions {
        at_us: a
            .at
            .as_deref()
            .map(static_risk::parse_time_us)
            .transpose()?,
        each_snapshot: a.each_snapshot,
        skip_missing: a.skip_missing,
    };
    let r = static_risk::static_risk(chain, positions, &opts)?;
    if a.json {
        out(&(serde_json::to_string_pretty(&r)? + "\n"))?;
    } else {
        out(&static_risk::table(&r))?;
    }
    if let Some(path) = &a.report {
        std::fs::write(path, serde_json::to_string_pretty(&r)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(0)
}

/// The policies to compare, labelled: `--policy` specs and the `--sweep` grids (with the
/// unhedged `none` baseline), else the config's own policy, else `fixed:band=1`.
fn policies_to_run(a: &ReplayArgs) -> Result<Vec<(String, Option<PolicySection>)>> {
    let mut policies: Vec<(String, Option<PolicySection>)> = Vec::new();
    let mut specs: Vec<String> = a.policy.clone();
    for grid in &a.sweep {
        specs.extend(frontier::expand(grid)?);
    }
    if !a.sweep.is_empty() && !specs.iter().any(|s| s.trim() == "none") {
        specs.insert(0, "none".into());
    }
    for spec in &specs {
        policies.push((spec.clone(), Some(parse_policy(spec)?)));
    }
    if policies.is_empty() {
        match &a.config {
            Some(p) => policies.push((format!("config {}", file_name(p)), None)),
            None => policies.push(("fixed:band=1".into(), Some(parse_policy("fixed:band=1")?))),
        }
    }
    Ok(policies)
}

/// `--flow-sim`: simulated client flow, its bias flipping sign every `--flow-bias-secs`.
fn flow_sim_config(a: &ReplayArgs) -> Option<FlowConfig> {
    a.flow_sim.then(|| FlowConfig {
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
    })
}

/// The plots and the JSON report asked for, then the report (JSON or the summary) on stdout.
fn write_outputs(a: &ReplayArgs, report: &Report) -> Result<()> {
    if let Some(path) = &a.attribution_plot {
        plot::write_plot(path, &plot::attribution_svg(report))?;
    }
    if let Some(path) = &a.frontier_plot {
        plot::write_plot(path, &frontier::svg(&report.frontier))?;
    }
    let json = serde_json::to_string_pretty(report)? + "\n";
    if let Some(path) = &a.report {
        std::fs::write(path, &json).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &a.plot {
        plot::write_plot(path, &plot::svg(report))?;
    }
    if a.json {
        out(&json)
    } else {
        out(&report::summary(report))
    }
}

/// One policy's run over its own copy of the source.
fn run_one(
    a: &ReplayArgs,
    registry: Option<&Registry>,
    base: &RunConfig,
    label: String,
    policy: Option<PolicySection>,
) -> Result<(report::PolicyReport, report::SourceCounts)> {
    let (from_ns, to_ns) = window_ns(a)?;
    let mut src = window::Window::new(open_source(a, registry)?, from_ns, to_ns);
    let cfg = RunConfig {
        policy_label: label,
        policy,
        ..base.clone()
    };
    let bt = Backtest::new(src.registry().defs(), cfg)?;
    let t0 = std::time::Instant::now();
    let pr = bt.run(&mut src)?;
    let counts = report::SourceCounts {
        rows: src.rows_read(),
        rejected: src
            .rejects()
            .nonzero()
            .into_iter()
            .map(|(r, n)| (r.name().to_string(), n))
            .collect(),
        used: pr.events,
        before_window: src.before,
    };
    // Wall time goes to stderr only: the report stays byte-identical between runs.
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "replay {}: {} events in {:.2} s ({:.0} events/s)",
        pr.policy,
        pr.events,
        secs,
        pr.events as f64 / secs.max(1e-9)
    );
    Ok((pr, counts))
}

/// `--from` / `--to` as exchange-time ns (`0` and `u64::MAX` when absent).
fn window_ns(a: &ReplayArgs) -> Result<(u64, u64)> {
    let ns = |t: &Option<String>, flag: &str| -> Result<Option<u64>> {
        t.as_deref()
            .map(|s| {
                static_risk::parse_time_us(s)
                    .map(|us| us.saturating_mul(1_000))
                    .with_context(|| format!("{flag} {s}"))
            })
            .transpose()
    };
    let from = ns(&a.from, "--from")?.unwrap_or(0);
    let to = ns(&a.to, "--to")?.unwrap_or(u64::MAX);
    if from >= to {
        bail!("--from must be before --to");
    }
    Ok((from, to))
}

/// Runs every policy, in parallel across the machine's cores (each run is one thread over
/// its own copy of the source); results in the order given.
fn run_all(
    a: &ReplayArgs,
    registry: Option<&Registry>,
    base: &RunConfig,
    policies: Vec<(String, Option<PolicySection>)>,
) -> Result<Vec<(report::PolicyReport, report::SourceCounts)>> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(policies.len())
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let slots: Vec<std::sync::Mutex<Option<Result<_>>>> = policies
        .iter()
        .map(|_| std::sync::Mutex::new(None))
        .collect();
    std::thread::scope(|sc| {
        for _ in 0..workers {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((label, policy)) = policies.get(i) else {
                    break;
                };
                let r = run_one(a, registry, base, label.clone(), policy.clone());
                if let Ok(mut slot) = slots[i].lock() {
                    *slot = Some(r);
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|m| {
            m.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(anyhow::anyhow!("a replay run did not finish")))
        })
        .collect()
}

/// The venue: the gateway's `[sim]` table (or its defaults), command-line overrides.
fn venue_config(a: &ReplayArgs) -> Result<SimConfig> {
    let mut sim = match &a.venue_config {
        Some(p) => {
            order_gateway::config::Config::from_file(p)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
                .sim
        }
        None => SimConfig {
            // No venue rate limit beyond the hedger's own limits unless configured.
            rate_limit_per_s: 0.0,
            ..SimConfig::default()
        },
    };
    if let Some(v) = a.latency_us {
        sim.latency_us = v;
    }
    if let Some(v) = a.jitter_us {
        sim.jitter_us = v;
    }
    if let Some(v) = a.taker_fee_bps {
        sim.taker_fee_bps = v;
    }
    if let Some(v) = a.sim_seed {
        sim.seed = v;
    }
    Ok(sim)
}

/// Hedge symbols to pre-register for a Tardis replay: explicit ones, the config's, and the
/// Deribit perpetual of every option currency in the files.
/// The Tardis files' instruments (None without `--tardis`), scanned once for every run, with
/// the hedge instruments the files do not quote registered so that a modelled book can stand
/// in (the options chain has no perpetual): explicit ones, the config's, and the Deribit
/// perpetual of every option currency in the files.
fn tardis_registry(
    a: &ReplayArgs,
    hedge_symbols: &BTreeMap<String, String>,
    hedger: Option<&HedgerConfig>,
) -> Result<Option<Registry>> {
    if a.tardis.is_empty() {
        return Ok(None);
    }
    let mut reg = Registry::new();
    scan_instruments(&a.tardis, &mut reg)?;
    let mut extra: Vec<String> = hedge_symbols.values().cloned().collect();
    if let Some(h) = hedger {
        extra.extend(h.underlyings.values().map(|u| u.hedge_instrument.clone()));
    }
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
    for s in &extra {
        if reg.id_of(s).is_none() {
            let _ = reg.resolve_deribit(s);
        }
    }
    Ok(Some(reg))
}

fn describe_inputs(a: &ReplayArgs, sim: &SimConfig) -> BTreeMap<String, String> {
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
    if let Some(p) = &a.config {
        inputs.insert("config".into(), file_name(p));
    }
    if let Some(p) = &a.positions {
        inputs.insert("positions".into(), file_name(p));
    }
    if let Some(p) = &a.flow {
        inputs.insert("flow".into(), file_name(p));
    }
    if let Some(t) = &a.from {
        inputs.insert("from".into(), t.clone());
    }
    if let Some(t) = &a.to {
        inputs.insert("to".into(), t.clone());
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
            "latency {} us + jitter {} us, taker fee {} bps, maker fee {} bps; IOC remainder cancelled; modelled hedge book {} bps half-spread x {} levels x {} contracts",
            sim.latency_us,
            sim.jitter_us,
            sim.taker_fee_bps,
            sim.maker_fee_bps,
            a.model_half_spread_bps,
            a.model_levels,
            a.model_level_qty
        ),
    );
    inputs
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
