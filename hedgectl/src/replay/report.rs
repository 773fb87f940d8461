//! The replay report: JSON (deterministic: ordered maps, no wall-clock fields) and the human
//! summary.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

/// Time series of one underlying, sampled every `--sample-ms` of replay time (columns), at
/// most `2 x --max-points` points (the interval doubles when full). For the plot only: every
/// figure of the summary is taken after every event, whatever the sampling.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Series {
    /// Seconds since the first event.
    pub t_s: Vec<f64>,
    /// Underlying reference price.
    pub underlying_px: Vec<f64>,
    /// Options' net delta (before hedging), underlying units.
    pub net_delta_before_hedging: Vec<f64>,
    /// Options + filled hedge position, underlying units: the risk actually held.
    pub net_delta: Vec<f64>,
    /// Options + hedge position + hedge in flight, underlying units (what the hedger
    /// decides on).
    pub net_delta_after_hedging: Vec<f64>,
    /// Hedge orders in flight, underlying units.
    pub hedge_inflight: Vec<f64>,
    /// The policy's band half-width at the last decision, underlying units.
    pub band: Vec<f64>,
    /// Options' gamma (delta per 1.0 of the underlying).
    pub gamma: Vec<f64>,
    /// Options' vega, quote currency per vol point.
    pub vega: Vec<f64>,
    /// Hedge position, contracts.
    pub hedge_position: Vec<f64>,
    /// Hedge position, underlying units.
    pub hedge_delta: Vec<f64>,
    /// Hedge orders sent so far.
    pub hedge_trades: Vec<u64>,
    /// Cumulative fees, quote currency.
    pub fees: Vec<f64>,
    /// Cumulative slippage against the decision mid, quote currency.
    pub slippage: Vec<f64>,
    /// Options PnL, quote currency.
    pub pnl_options: Vec<f64>,
    /// Hedge PnL at decision mids, quote currency.
    pub pnl_hedge: Vec<f64>,
    /// Cumulative costs (fees + slippage), quote currency.
    pub pnl_costs: Vec<f64>,
    /// pnl_options + pnl_hedge - pnl_costs.
    pub pnl_total: Vec<f64>,
    /// Cumulative PnL of the residual net delta (net delta after decisions times the
    /// underlying's next move), quote currency.
    pub pnl_residual_delta: Vec<f64>,
    /// Cumulative attribution (see [`Attribution`]): delta, quote currency.
    pub attr_delta: Vec<f64>,
    /// Gamma.
    pub attr_gamma: Vec<f64>,
    /// Vega.
    pub attr_vega: Vec<f64>,
    /// Theta.
    pub attr_theta: Vec<f64>,
    /// Coin frame + basis (see [`Attribution::coin_frame`], [`Attribution::basis`]).
    pub attr_basis: Vec<f64>,
    /// Fees + half-spread + slippage (negative: paid).
    pub attr_costs: Vec<f64>,
    /// Residual: total PnL minus every part.
    pub attr_residual: Vec<f64>,
}

/// The PnL of one underlying under one policy, by cause, quote currency; the parts add up to
/// `total` exactly. The options are revalued in full at every observation with Black-76 (the
/// backtest's own valuation), one factor at a time in a fixed order: the underlying (each
/// option on its expiry's forward; the first-order term and the rest, `gamma`), then the
/// implied vol (`vega`), then the time (`theta`). The `residual` is what that does not
/// explain: client trades' edge against the value, a settlement against the last value, an
/// option whose inputs Black-76 rejects, inconsistent data.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Attribution {
    /// Net delta (options + filled hedge) before each move x the move of the reference price:
    /// the hedger's own view of its delta PnL (the tracking error's `pnl_residual_delta`).
    pub delta: f64,
    /// The options repriced at the new forward (old vol, old time) minus the first-order term:
    /// every order above the first, exactly.
    pub gamma: f64,
    /// The options repriced at the new implied vol (new forward, old time).
    pub vega: f64,
    /// The options repriced at the new time (new forward, new vol).
    pub theta: f64,
    /// The hedger counts delta in coin (a coin option's premium-adjusted delta, an inverse
    /// perpetual's delta at today's price: the book is kept flat in coin), the books are in
    /// USD: the coin options' premium and the inverse hedge's coin PnL, held as coin, x the
    /// move of their price. Unhedged on purpose; 0 for linear instruments.
    pub coin_frame: f64,
    /// The rest of the first-order PnL on each instrument's own price (options: Black-76 delta
    /// x the move of their expiry's forward; the hedge: its PnL at decision
    /// mids), less `coin_frame`, minus `delta`: forwards and the hedge's mid moving otherwise than the reference
    /// price, and the core's incremental delta against Black-76 at the state.
    pub basis: f64,
    /// Total PnL minus the other parts.
    pub residual: f64,
    /// Fees paid (negative).
    pub fees: f64,
    /// Half the hedge book's spread when each order was sent, times its fills (negative).
    pub half_spread: f64,
    /// Fill prices beyond the touch: depth walked, latency (negative when paid).
    pub slippage: f64,
    /// Funding on the hedge position (0 when the data gives no funding rate).
    pub funding: f64,
    /// Total PnL: options + hedge - costs.
    pub total: f64,
}

impl Attribution {
    /// The sum of every part but the residual.
    pub fn explained(&self) -> f64 {
        (self.delta + self.gamma + self.vega + self.theta + self.coin_frame + self.basis)
            + (self.fees + self.half_spread + self.slippage + self.funding)
    }
}

impl Series {
    /// Drops every other point (keeps the first and the odd-numbered ones' neighbours).
    pub fn keep_every_other(&mut self) {
        fn half<T: Copy>(v: &mut Vec<T>) {
            let mut i = 0;
            v.retain(|_| {
                i += 1;
                i % 2 == 1
            });
        }
        half(&mut self.t_s);
        half(&mut self.underlying_px);
        half(&mut self.net_delta_before_hedging);
        half(&mut self.net_delta);
        half(&mut self.net_delta_after_hedging);
        half(&mut self.hedge_inflight);
        half(&mut self.band);
        half(&mut self.gamma);
        half(&mut self.vega);
        half(&mut self.hedge_position);
        half(&mut self.hedge_delta);
        half(&mut self.hedge_trades);
        half(&mut self.fees);
        half(&mut self.slippage);
        half(&mut self.pnl_options);
        half(&mut self.pnl_hedge);
        half(&mut self.pnl_costs);
        half(&mut self.pnl_total);
        half(&mut self.pnl_residual_delta);
        half(&mut self.attr_delta);
        half(&mut self.attr_gamma);
        half(&mut self.attr_vega);
        half(&mut self.attr_theta);
        half(&mut self.attr_basis);
        half(&mut self.attr_costs);
        half(&mut self.attr_residual);
    }
}

/// The headline figures of one underlying under one policy (names kept stable for tools).
#[derive(Debug, Clone, Serialize)]
pub struct Headline {
    /// Net delta at the end: options + filled hedge, underlying units (in flight excluded).
    pub final_net_delta: f64,
    /// Largest |options + filled hedge| after any event, underlying units.
    pub max_abs_net_delta: f64,
    /// Fees + slippage (incl. half-spread) paid, quote currency.
    pub total_hedge_cost: f64,
    /// Hedge orders the core sent.
    pub hedge_trades: u64,
    /// Total PnL: options + hedge - costs, quote currency.
    pub pnl_total: f64,
}

/// Results of one underlying under one policy.
#[derive(Debug, Clone, Serialize)]
pub struct UnderlyingSummary {
    /// The headline figures.
    pub summary: Headline,
    /// Options' delta at the end, underlying units.
    pub final_option_delta: f64,
    /// The PnL by cause.
    pub attribution: Attribution,
    /// Funding received (negative: paid) on the hedge position, quote currency (0 when the
    /// data gives no funding rate).
    pub funding: f64,
    /// Hedge in flight at the end, underlying units (0 once the venue answered everything).
    pub final_hedge_inflight: f64,
    /// Hedge instrument symbol.
    pub hedge_instrument: String,
    /// `recorded` (from the data) or `modelled` (around the reference price).
    pub hedge_book: &'static str,
    /// Filled notional, quote currency.
    pub hedge_volume_notional: f64,
    /// Fees, quote currency.
    pub fees: f64,
    /// Slippage against the decision mid, quote currency.
    pub slippage: f64,
    /// Final options PnL.
    pub pnl_options: f64,
    /// Final hedge PnL (at decision mids).
    pub pnl_hedge: f64,
    /// Final costs.
    pub pnl_costs: f64,
    /// Standard deviation of the total PnL's change per sample interval (includes the
    /// options' vega and theta PnL, which no delta hedge removes).
    pub pnl_std: f64,
    /// Final PnL of the residual net delta (what the hedge policy leaves unhedged).
    pub pnl_residual_delta: f64,
    /// Standard deviation per sample interval of the residual-delta PnL: the hedging risk a
    /// policy controls (without the options' vol PnL and without costs, reported apart).
    pub hedge_error_std: f64,
    /// RMS over events of the hedged book's PnL (before costs) minus a costless continuous
    /// delta hedge's, i.e. of the cumulative residual-delta PnL, quote currency.
    pub tracking_error: f64,
    /// Largest |net delta incl. orders in flight| after any event, underlying units.
    pub max_abs_net_delta_incl_inflight: f64,
    /// Replay time with |net delta| (after decisions) outside the band, seconds.
    pub time_outside_band_s: f64,
    /// The same as a fraction of the replay's duration.
    pub time_outside_band_frac: f64,
    /// Hedge position at the end, contracts.
    pub final_hedge_position: f64,
    /// Policy hold reasons, counted per decision.
    pub holds: BTreeMap<String, u64>,
    /// How the hedges were executed: orders by reason, passive fill rate, crosses, the delta
    /// carried while a passive order rested.
    pub execution: ExecSummary,
    /// Time series.
    pub series: Series,
}

/// Execution figures of one underlying (all styles; the passive ones are 0 without passive
/// orders).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ExecSummary {
    /// Orders sent by reason (`band`, `safety`, `passive`, `cross_timeout`, `cross_band`,
    /// `fill`, `accumulated`, `timer`, `slice`).
    pub orders_by_reason: BTreeMap<String, u64>,
    /// Cancels of a resting passive order by reason (the hedger's `passive_cancels`):
    /// `replace` (the touch moved away, or more flow came), `resize` (re-deciding wanted the
    /// other side or a smaller order), `cross_timeout`, `cross_band`, `withdraw` (re-deciding,
    /// the policy would no longer trade: nothing replaced it). Only reasons that occurred.
    pub passive_cancels_by_reason: BTreeMap<String, u64>,
    /// Passive orders sent (first posts and replacements).
    pub passive_orders: u64,
    /// Contracts sent in passive orders.
    pub passive_sent_qty: f64,
    /// Contracts of passive orders filled (as maker).
    pub passive_filled_qty: f64,
    /// `passive_filled_qty / passive_sent_qty` (0 without passive orders). A replacement
    /// sends its quantity again, so this is per contract posted, not per hedge.
    pub passive_fill_rate: f64,
    /// Crossing IOCs after the passive timeout.
    pub crossed_timeout: u64,
    /// Crossing IOCs because delta left the outer band.
    pub crossed_band: u64,
    /// Replay time with a passive order resting, seconds.
    pub passive_resting_s: f64,
    /// Time-weighted mean |net delta| (options + filled hedge) while a passive order rested,
    /// underlying units: the delta carried while waiting.
    pub carried_abs_delta_mean: f64,
    /// Largest |net delta| while a passive order rested, underlying units.
    pub carried_abs_delta_max: f64,
}

/// One hedge fill or client option trade.
#[derive(Debug, Clone, Serialize)]
pub struct Fill {
    /// Replay time, ns since the epoch.
    pub ts_ns: u64,
    /// Instrument.
    pub symbol: String,
    /// `hedge`, `option` (a client trade) or `settlement` (an option position settled in cash
    /// at expiry: `qty` takes it to 0, `price` is the value per contract in the option's
    /// premium currency).
    pub kind: &'static str,
    /// `buy` or `sell` (the market maker's side).
    pub side: &'static str,
    /// Contracts, signed (+ = we bought).
    pub qty: f64,
    /// Price in the instrument's quote units.
    pub price: f64,
    /// Fee in the settlement currency.
    pub fee: f64,
    /// Hedge fills: why the hedger sent the order (`band`: net delta outside the band;
    /// `safety`: the safety re-hedge after `max_interval_ms`; `passive`: a passive order at
    /// our touch; `cross_timeout`/`cross_band`: the IOC that crossed after a passive order
    /// timed out / when delta left the outer band; `fill`, `accumulated`, `timer`: the
    /// trigger; `slice`: a later child of a sliced hedge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// One line of the side-by-side comparison (all underlyings added up).
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Policy label.
    pub policy: String,
    /// Hedge orders.
    pub hedge_trades: u64,
    /// Fees + slippage.
    pub total_hedge_cost: f64,
    /// Sum of the underlyings' PnL standard deviations.
    pub pnl_std: f64,
    /// Sum of the underlyings' hedging-error standard deviations.
    pub hedge_error_std: f64,
    /// Final total PnL.
    pub pnl_total: f64,
    /// Largest |net delta| of any underlying.
    pub max_abs_net_delta: f64,
    /// Longest time outside the band of any underlying, seconds.
    pub time_outside_band_s: f64,
}

impl Comparison {
    /// Adds up the underlyings.
    pub fn from_underlyings(policy: &str, u: &BTreeMap<String, UnderlyingSummary>) -> Self {
        Comparison {
            policy: policy.to_string(),
            hedge_trades: u.values().map(|x| x.summary.hedge_trades).sum(),
            total_hedge_cost: u.values().map(|x| x.summary.total_hedge_cost).sum(),
            pnl_std: u.values().map(|x| x.pnl_std).sum(),
            hedge_error_std: u.values().map(|x| x.hedge_error_std).sum(),
            pnl_total: u.values().map(|x| x.summary.pnl_total).sum(),
            max_abs_net_delta: u
                .values()
                .map(|x| x.summary.max_abs_net_delta)
                .fold(0.0, f64::max),
            time_outside_band_s: u
                .values()
                .map(|x| x.time_outside_band_s)
                .fold(0.0, f64::max),
        }
    }
}

/// The run of one policy.
#[derive(Debug, Clone, Serialize)]
pub struct PolicyReport {
    /// Policy label.
    pub policy: String,
    /// Source events replayed.
    pub events: u64,
    /// Timers the core ran (the live loop's 1 ms timer, skipped where it cannot act).
    pub timers: u64,
    /// Source rows rejected (bad input), all reasons.
    pub source_rejects: u64,
    /// Market events the core rejected or ignored, by reason (its own counters).
    pub core_md_rejects: BTreeMap<String, u64>,
    /// Replay time covered, seconds.
    pub duration_s: f64,
    /// First event, ns since the epoch.
    pub start_ns: u64,
    /// Orders the pre-trade limits rejected, by limit.
    pub limit_rejects: BTreeMap<String, u64>,
    /// Orders the venue simulator rejected.
    pub venue_rejects: u64,
    /// Client option trades applied.
    pub flow_trades: u64,
    /// Client trades skipped (no mark yet, or the option expired).
    pub flow_skipped: u64,
    /// Exact re-evaluations of the book risk forced because the incremental delta's error
    /// bound exceeded the tolerance (as the live hedger does).
    pub forced_reevaluations: u64,
    /// Summary line.
    pub comparison: Comparison,
    /// Per underlying.
    pub underlyings: BTreeMap<String, UnderlyingSummary>,
    /// Positions at the start, contracts.
    pub initial_positions: BTreeMap<String, f64>,
    /// Positions at the end, contracts (= initial + fills).
    pub final_positions: BTreeMap<String, f64>,
    /// Every hedge fill and client option trade, in time order.
    pub fills: Vec<Fill>,
}

/// What the source read (the first policy's run; every run reads the same data).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceCounts {
    /// Data rows read.
    pub rows: u64,
    /// Rows rejected, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Events the source yielded (published to the hedger).
    pub used: u64,
    /// Events read and skipped before `--from`.
    #[serde(skip_serializing_if = "is_zero")]
    pub before_window: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// What was replayed (the command's inputs).
    pub inputs: BTreeMap<String, String>,
    /// What the source read.
    pub source: SourceCounts,
    /// Each run's hedging cost against its tracking error, dominated ones flagged.
    pub frontier: Vec<super::frontier::Point>,
    /// Side by side: one line per policy.
    pub comparison: Vec<Comparison>,
    /// Per policy.
    pub policies: Vec<PolicyReport>,
}

/// The human summary.
pub fn summary(r: &Report) -> String {
    let mut s = String::new();
    for (k, v) in &r.inputs {
        let _ = writeln!(s, "{k}: {v}");
    }
    let _ = writeln!(
        s,
        "source: {} rows read, {} events used, rejected {}",
        r.source.rows,
        r.source.used,
        if r.source.rejected.is_empty() {
            "none".to_string()
        } else {
            r.source
                .rejected
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    );
    for p in &r.policies {
        let _ = writeln!(
            s,
            "\npolicy {}: {} events over {:.1} s, {} source rejects, {} client option trades",
            p.policy, p.events, p.duration_s, p.source_rejects, p.flow_trades
        );
        if !p.limit_rejects.is_empty() || p.venue_rejects > 0 {
            let _ = writeln!(
                s,
                "  limit rejects: {:?}; venue rejects: {}",
                p.limit_rejects, p.venue_rejects
            );
        }
        for (name, u) in &p.underlyings {
            let _ = writeln!(
                s,
                "  {name} (hedge {} on a {} book): {} hedges, volume {:.0}, fees {:.2}, slippage {:.2}, cost {:.2}",
                u.hedge_instrument,
                u.hedge_book,
                u.summary.hedge_trades,
                u.hedge_volume_notional,
                u.fees,
                u.slippage,
                u.summary.total_hedge_cost
            );
            let _ = writeln!(
                s,
                "    PnL: options {:.2} + hedge {:.2} - costs {:.2} = {:.2}; std per sample {:.2}; hedging error std {:.2}",
                u.pnl_options, u.pnl_hedge, u.pnl_costs, u.summary.pnl_total, u.pnl_std, u.hedge_error_std
            );
            let _ = writeln!(
                s,
                "    net delta (options + filled hedge): final {:.4}, max |.| {:.4} (incl. in flight {:.4}); outside the band {:.1} s ({:.1}%); final hedge {:.4} contracts",
                u.summary.final_net_delta,
                u.summary.max_abs_net_delta,
                u.max_abs_net_delta_incl_inflight,
                u.time_outside_band_s,
                100.0 * u.time_outside_band_frac,
                u.final_hedge_position
            );
        }
    }
    comparison_table(&mut s, &r.comparison);
    s
}

/// The side-by-side table of the summary: one line per policy.
fn comparison_table(s: &mut String, comparison: &[Comparison]) {
    let _ = writeln!(
        s,
        "\n{:<44} {:>7} {:>12} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "policy",
        "hedges",
        "hedge cost",
        "hedge err sd",
        "PnL std",
        "PnL",
        "max|delta|",
        "outside s"
    );
    for c in comparison {
        let _ = writeln!(
            s,
            "{:<44} {:>7} {:>12.2} {:>12.2} {:>12.2} {:>12.2} {:>10.4} {:>10.1}",
            c.policy,
            c.hedge_trades,
            c.total_hedge_cost,
            c.hedge_error_std,
            c.pnl_std,
            c.pnl_total,
            c.max_abs_net_delta,
            c.time_outside_band_s
        );
    }
}
