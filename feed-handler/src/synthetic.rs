//! A deterministic synthetic market: underlyings following a jump-diffusion with volatility
//! spikes, a perpetual hedge instrument with a bid/ask book and depth, and an options chain
//! (several expiries, strikes around the money) whose marks follow a volatility smile that moves
//! with the underlying. Bursts and stress episodes (vol and spread blow-outs) come on a schedule.
//!
//! Everything is driven by one seed through a PRNG written here (xoshiro256** seeded with
//! splitmix64), so the event stream never changes with a dependency's version. Timestamps come
//! from a synthetic clock that advances `1 / rate` seconds per event (times the burst factor in a
//! burst); the runner paces publication by these timestamps, or publishes as fast as possible.
//!
//! The model, per event (events cycle through a fixed 20-slot mix by weight: hedge quotes,
//! index/forward prices, option marks):
//! - Underlying: log price with diffusion at `vol` x spike x stress over the elapsed market time
//!   (`time_warp` market seconds per synthetic second), triangular unit-variance innovations,
//!   Merton jumps (`jumps_per_minute`) that multiply a vol spike decaying with
//!   `spike_half_life_s`. Forward per expiry = index x (1 + carry x T).
//! - Hedge quotes (`<CUR>-PERPETUAL`): tick-rounded bid/ask around the index, half-spread
//!   `half_spread_bps` (x `stress_spread_mult` in stress), 8 persistent depth levels whose top
//!   and one deeper level are refreshed per quote; sizes divided by the spread multiplier in
//!   stress.
//! - Option marks (`<CUR>-<DDMMMYY>-<K>-C|P`, options on the `SYN.<CUR>-<DDMMMYY>` forward):
//!   vol from a smile in normalized moneyness ln(K/F)/sqrt(T) around the ATM vol, so it moves
//!   with the underlying; price Black-76 (the `pricing` crate, r = 0) divided by the
//!   forward, as Deribit quotes coin-settled options. For speed, a mark is a Taylor expansion
//!   around the option's last exact Black-76 valuation, repriced exactly past 0.5% in the
//!   forward, 1 vol point or 0.2% in time to expiry (within 5e-7 coin of exact; tested).
//! - Stress episodes (`stress_every_s`, `stress_len_s`) and bursts (`burst_every_s`,
//!   `burst_len_s`, `burst_factor` x rate) start after one period; events in stress carry
//!   `MarketEvent::FLAG_STRESS`.
//!
//! ```
//! use feed_handler::source::{Source, SourceEvent};
//! use feed_handler::synthetic::{SyntheticConfig, SyntheticSource};
//! let cfg = SyntheticConfig { seed: 42, ..SyntheticConfig::default() };
//! let (mut a, mut b) = (SyntheticSource::new(cfg.clone()), SyntheticSource::new(cfg));
//! let (mut x, mut y) = (SourceEvent::default(), SourceEvent::default());
//! for _ in 0..500 {
//!     assert!(a.next(&mut x) && b.next(&mut y));
//!     assert_eq!(x, y); // same seed, same market
//! }
//! let hedge = a.hedge_instrument(0);
//! assert_eq!(a.registry().get(hedge).unwrap().symbol(), "BTC-PERPETUAL");
//! ```

use pricing::time::S_PER_YEAR;
use serde::Deserialize;
use shm_layout::{InstrumentKind, MarketEvent, OptionType, DEPTH_LEVELS};

use crate::instruments::{format_deribit_date, parse_deribit_date, Registry};
use crate::source::{Depth, Rejects, Source, SourceEvent};

/// xoshiro256** (Blackman and Vigna, 2018), seeded with splitmix64. Small, fast, and fixed here
/// so that the synthetic market is reproducible forever.
#[derive(Debug, Clone)]
pub struct Xoshiro256 {
    s: [u64; 4],
    spare_normal: Option<f64>,
}

/// splitmix64 step (Steele, Lea and Flood), used to expand a seed.
pub fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Xoshiro256 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        let mut st = seed;
        let s = [
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
            splitmix64(&mut st),
        ];
        Xoshiro256 {
            s,
            spare_normal: None,
        }
    }

    /// Next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Marsaglia's polar method; the second value is kept for the next call).
    #[inline]
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let m = (-2.0 * s.ln() / s).sqrt();
                self.spare_normal = Some(v * m);
                return u * m;
            }
        }
    }
}

/// One underlying of the synthetic market.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct UnderlyingSpec {
    /// Currency, e.g. `BTC`: instruments are `BTC`, `BTC-PERPETUAL`, `SYN.BTC-<date>` and
    /// `BTC-<date>-<strike>-C|P` (Deribit specifications).
    pub currency: String,
    /// Starting index price (USD).
    pub spot: f64,
    /// Base annualized volatility of the diffusion (0.6 = 60%).
    pub vol: f64,
    /// Expected jumps per minute of synthetic clock.
    pub jumps_per_minute: f64,
    /// Mean jump, log-return.
    pub jump_mean: f64,
    /// Jump standard deviation, log-return.
    pub jump_std: f64,
    /// Annualized carry of the forwards over the index (contango), e.g. 0.05.
    pub carry: f64,
}

impl Default for UnderlyingSpec {
    fn default() -> Self {
        UnderlyingSpec {
            currency: "BTC".into(),
            spot: 60_000.0,
            vol: 0.6,
            jumps_per_minute: 0.5,
            jump_mean: -0.002,
            jump_std: 0.01,
            carry: 0.05,
        }
    }
}

/// Configuration of the synthetic market (also the `[synthetic]` table of the feed handler's
/// TOML config). Times are seconds of the synthetic clock unless said otherwise.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Seed: same seed, same event stream.
    pub seed: u64,
    /// Underlyings (default: one, BTC).
    pub underlyings: Vec<UnderlyingSpec>,
    /// Option expiries, days after the start (expiry at 08:00 UTC of that day).
    pub expiries_days: Vec<u32>,
    /// Strikes per expiry, centred on the starting forward.
    pub strikes_per_expiry: usize,
    /// Distance between strikes as a fraction of spot (rounded to a round number).
    pub strike_step: f64,
    /// Events per second of the synthetic clock (trade prints, see `trade_prob`, come on top),
    /// on average over each burst period: calm
    /// periods run at [`calm_rate`] and bursts `burst_factor` times faster, so that a run
    /// publishes `rate` events per second overall (a run shorter than one burst period, which
    /// begins calm, publishes less). `inf` publishes as fast as possible with timestamps
    /// 100 ns apart.
    pub rate: f64,
    /// Start of the synthetic clock, ns since the epoch (default 2026-01-02 00:00 UTC).
    pub start_ns: u64,
    /// Seconds of market time (for the diffusion and option expiry) per synthetic second: 60
    /// makes a one-minute demo show an hour of price moves.
    pub time_warp: f64,
    /// Vol spike multiplier applied after each jump (decays back to 1).
    pub spike_mult: f64,
    /// Half-life of a vol spike, seconds.
    pub spike_half_life_s: f64,
    /// A burst starts every this many seconds, first after one period (0 disables bursts).
    pub burst_every_s: f64,
    /// Burst length, seconds.
    pub burst_len_s: f64,
    /// Rate multiplier inside a burst.
    pub burst_factor: f64,
    /// A stress episode starts every this many seconds, first after one period (0 disables).
    pub stress_every_s: f64,
    /// Stress episode length, seconds.
    pub stress_len_s: f64,
    /// Volatility multiplier during stress.
    pub stress_vol_mult: f64,
    /// Spread multiplier (and depth divisor) during stress.
    pub stress_spread_mult: f64,
    /// Hedge instrument half-spread in basis points of mid (at least one tick).
    pub half_spread_bps: f64,
    /// Depth levels per side published with each hedge quote (1..=8).
    pub depth_levels: usize,
    /// Mean size per level, contracts.
    pub level_size: f64,
    /// Smile: skew (slope of vol in normalized moneyness ln(K/F)/sqrt(T)).
    pub smile_skew: f64,
    /// Smile: curvature.
    pub smile_curvature: f64,
    /// Event mix: weight of hedge instrument quotes.
    pub weight_quote: f64,
    /// Event mix: weight of index and forward prices.
    pub weight_price: f64,
    /// Event mix: weight of option marks.
    pub weight_mark: f64,
    /// Probability that a hedge quote is followed by a trade print at its touch (0 = no
    /// trades). Trades come from their own PRNG stream (seeded from `seed`), so the quotes,
    /// prices and marks of a seed do not depend on them beyond the 1 ns each trade takes.
    pub trade_prob: f64,
    /// Mean size of a trade print as a fraction of the touch's displayed size (sizes are
    /// uniform in `(0, 2 x trade_size_frac]` of it, whole contracts, at least 1, at most the
    /// touch: a print never sweeps the level).
    pub trade_size_frac: f64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            seed: 1,
            underlyings: vec![UnderlyingSpec::default()],
            expiries_days: vec![7, 30, 90],
            strikes_per_expiry: 9,
            strike_step: 0.05,
            rate: 1000.0,
            start_ns: 1_767_312_000_000_000_000,
            time_warp: 60.0,
            spike_mult: 1.5,
            spike_half_life_s: 20.0,
            burst_every_s: 10.0,
            burst_len_s: 0.5,
            burst_factor: 20.0,
            stress_every_s: 60.0,
            stress_len_s: 10.0,
            stress_vol_mult: 3.0,
            stress_spread_mult: 5.0,
            half_spread_bps: 1.0,
            depth_levels: DEPTH_LEVELS,
            level_size: 2000.0,
            smile_skew: -0.08,
            smile_curvature: 0.04,
            weight_quote: 0.5,
            weight_price: 0.1,
            weight_mark: 0.4,
            trade_prob: 0.5,
            trade_size_frac: 0.25,
        }
    }
}

/// Longest period or length of any synthetic schedule (bursts, stress, spike half-life), s:
/// about 11.6 days, far beyond any run, and small enough that start + period stays in u64 ns.
pub const MAX_PERIOD_S: f64 = 1e6;
/// Highest nominal event rate, events/s (one event per ns).
pub const MAX_RATE_PER_S: f64 = 1e9;

/// `Err("synthetic.<key> = <v>: must be in <range>")` unless `lo <= v <= hi` (finite).
fn in_range(key: &str, v: f64, lo: f64, hi: f64, unit: &str) -> Result<(), String> {
    if v.is_finite() && (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(format!(
            "synthetic.{key} = {v}: must be in {lo}..={hi}{unit}"
        ))
    }
}

/// A period that may be 0 (off).
fn period(key: &str, v: f64) -> Result<(), String> {
    if v == 0.0 {
        return Ok(());
    }
    in_range(key, v, 1e-3, MAX_PERIOD_S, " s (or 0: off)")
}

impl SyntheticConfig {
    /// Checks every parameter's kind and range, so that no value makes the source spin,
    /// overflow its clock or publish invalid events (issue 21: `stress_every_s = 1e11` spun at
    /// 100% CPU, ignoring `--max-events` and SIGTERM).
    ///
    /// # Errors
    /// One line naming the first bad key, its value and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rate == f64::INFINITY || (self.rate > 0.0 && self.rate <= MAX_RATE_PER_S)) {
            return Err(format!(
                "synthetic.rate = {}: must be in (0, {MAX_RATE_PER_S}] events/s, or inf (max)",
                self.rate
            ));
        }
        if self.start_ns > 1 << 62 {
            return Err(format!(
                "synthetic.start_ns = {}: must be at most 2^62 ns (year 2116)",
                self.start_ns
            ));
        }
        in_range("time_warp", self.time_warp, 1e-6, 1e6, "")?;
        in_range("spike_mult", self.spike_mult, 1.0, 100.0, "")?;
        in_range(
            "spike_half_life_s",
            self.spike_half_life_s,
            1e-3,
            MAX_PERIOD_S,
            " s",
        )?;
        period("burst_every_s", self.burst_every_s)?;
        in_range("burst_len_s", self.burst_len_s, 0.0, MAX_PERIOD_S, " s")?;
        in_range("burst_factor", self.burst_factor, 1.0, 1e4, "")?;
        period("stress_every_s", self.stress_every_s)?;
        in_range("stress_len_s", self.stress_len_s, 0.0, MAX_PERIOD_S, " s")?;
        in_range("stress_vol_mult", self.stress_vol_mult, 1e-3, 100.0, "")?;
        in_range("stress_spread_mult", self.stress_spread_mult, 1.0, 1e3, "")?;
        in_range("half_spread_bps", self.half_spread_bps, 1e-6, 1e4, " bps")?;
        in_range("level_size", self.level_size, 1e-9, 1e12, " contracts")?;
        in_range("trade_prob", self.trade_prob, 0.0, 1.0, "")?;
        in_range("trade_size_frac", self.trade_size_frac, 1e-6, 0.5, "")?;
        in_range("strike_step", self.strike_step, 1e-4, 0.5, "")?;
        in_range("smile_skew", self.smile_skew, -10.0, 10.0, "")?;
        in_range("smile_curvature", self.smile_curvature, -10.0, 10.0, "")?;
        for (k, w) in [
            ("weight_quote", self.weight_quote),
            ("weight_price", self.weight_price),
            ("weight_mark", self.weight_mark),
        ] {
            in_range(k, w, 0.0, 1e6, "")?;
        }
        if self.weight_quote + self.weight_price + self.weight_mark <= 0.0 {
            return Err("synthetic.weight_*: at least one weight must be > 0".into());
        }
        if !(1..=DEPTH_LEVELS).contains(&self.depth_levels) {
            return Err(format!(
                "synthetic.depth_levels = {}: must be in 1..={DEPTH_LEVELS}",
                self.depth_levels
            ));
        }
        if !(1..=1000).contains(&self.strikes_per_expiry) {
            return Err(format!(
                "synthetic.strikes_per_expiry = {}: must be in 1..=1000",
                self.strikes_per_expiry
            ));
        }
        if self.expiries_days.len() > 64 || self.expiries_days.iter().any(|&d| d > 3650) {
            return Err(format!(
                "synthetic.expiries_days = {:?}: at most 64 expiries, each 0..=3650 days",
                self.expiries_days
            ));
        }
        self.validate_underlyings()
    }

    fn validate_underlyings(&self) -> Result<(), String> {
        if self.underlyings.is_empty() || self.underlyings.len() > 64 {
            return Err("synthetic.underlyings: 1 to 64 [[synthetic.underlyings]] tables".into());
        }
        for (i, u) in self.underlyings.iter().enumerate() {
            let k = |f: &str| format!("underlyings[{i}].{f}");
            if u.currency.is_empty() || !u.currency.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!(
                    "synthetic.{} = {:?}: must be 1 or more of A-Z a-z 0-9",
                    k("currency"),
                    u.currency
                ));
            }
            in_range(&k("spot"), u.spot, 1e-6, 1e12, " USD")?;
            in_range(&k("vol"), u.vol, 1e-4, 10.0, " (annualized)")?;
            in_range(&k("jumps_per_minute"), u.jumps_per_minute, 0.0, 1e4, "")?;
            in_range(&k("jump_mean"), u.jump_mean, -1.0, 1.0, " (log-return)")?;
            in_range(&k("jump_std"), u.jump_std, 0.0, 1.0, " (log-return)")?;
            in_range(&k("carry"), u.carry, -1.0, 1.0, " (annualized)")?;
        }
        Ok(())
    }
}

/// sqrt(6): the triangular innovation's scale for unit variance.
const SQRT_6: f64 = 2.449_489_742_783_178;
/// Shortest time to expiry used in pricing (one hour): an expired synthetic option keeps a
/// well-defined mark instead of a degenerate one.
const MIN_T_YEARS: f64 = 3600.0 / S_PER_YEAR;
/// Per-expiry time to expiry is refreshed when the synthetic clock moved this much (1 ms).
const EXPIRY_REFRESH_NS: u64 = 1_000_000;

/// Limits of the Taylor expansion of a mark around its last exact Black-76 price: beyond any
/// of them the option is repriced exactly. With these limits the expansion (third order in the
/// forward, second in vol, first in time, with the cross term) stays within about 1e-7 of the
/// forward of the exact price (tested).
const REPRICE_DF: f64 = 0.005;
const REPRICE_DVOL: f64 = 0.01;
const REPRICE_DT: f64 = 0.002;

/// Last exact valuation of an option and its sensitivities.
#[derive(Debug, Clone, Copy, Default)]
struct MarkCache {
    valid: bool,
    f: f64,
    iv: f64,
    t: f64,
    price: f64,
    delta: f64,
    gamma: f64,
    /// `speed / 6` (the third-order coefficient).
    speed_6: f64,
    /// `1 / f`.
    inv_f: f64,
    vega: f64,
    vanna: f64,
    volga: f64,
    /// dV/dT (T = time to expiry in years).
    dv_dt: f64,
}

#[derive(Debug, Clone, Copy)]
struct OptionSlot {
    id: u32,
    under: usize,
    expiry: usize,
    strike: f64,
    ln_strike: f64,
    call: bool,
    cache: MarkCache,
}

/// Quantities of one diffusion step that depend only on its length: most steps repeat a few
/// lengths (the clock advances a fixed amount per event), so they are computed once per length
/// instead of a division, a square root and an exponential per step (bit-identical results).
#[derive(Debug, Clone, Copy, Default)]
struct StepCache {
    /// Step length, synthetic ns (0: empty).
    dt_ns: u64,
    dt_y: f64,
    sqrt_dt_y: f64,
    /// Spike decay factor over the step (1 when spikes do not decay).
    decay: f64,
}

/// Entries of the per-underlying [`StepCache`] table (direct-mapped on the step length).
const STEP_CACHE: usize = 8;

/// Time to expiry of one underlying's expiry, refreshed every [`EXPIRY_REFRESH_NS`].
#[derive(Debug, Clone, Copy, Default)]
struct ExpiryState {
    t: f64,
    inv_sqrt_t: f64,
    /// Forward / spot = 1 + carry * t.
    carry_factor: f64,
    ln_carry_factor: f64,
    refreshed_ns: u64,
}

#[derive(Debug, Clone)]
struct UnderlyingState {
    spec: UnderlyingSpec,
    index_id: u32,
    perp_id: u32,
    forward_ids: Vec<u32>,
    expiries: Vec<ExpiryState>,
    /// Index price and its log (the diffusion runs on the log).
    spot: f64,
    log_spot: f64,
    /// Synthetic-clock ns of the last diffusion step.
    last_ns: u64,
    /// Current vol spike multiplier (>= 1).
    spike: f64,
    tick: f64,
    /// `1 / tick` when `tick` is a power of two, where `x * (1 / tick)` equals `x / tick`
    /// exactly; 0 otherwise (divide).
    inv_tick_pow2: f64,
    /// Step quantities by step length.
    step_cache: [StepCache; STEP_CACHE],
    /// Diffusion steps taken.
    steps: u64,
    /// Synthetic-clock ns of the next jump (`u64::MAX`: none).
    next_jump_ns: u64,
    /// Resting size per depth level (contracts, before the stress divisor): levels persist
    /// between quotes, as on a real book; each quote refreshes the top and one deeper level.
    bid_sizes: [f64; DEPTH_LEVELS],
    ask_sizes: [f64; DEPTH_LEVELS],
    /// Published sizes (whole contracts, stress divisor applied), kept in step with the
    /// resting sizes so a quote only converts the levels it changed.
    bid_out: [f64; DEPTH_LEVELS],
    ask_out: [f64; DEPTH_LEVELS],
    /// Stress state the published sizes were computed for.
    out_stress: bool,
    /// Half-spread outside stress for the next quote: `half_spread_bps` of the last quote's mid.
    half_spread: f64,
    /// Price offset of depth level `i` from the best price: `i * tick`.
    ladder: [f64; DEPTH_LEVELS],
    /// Best bid and ask of the last quote (NaN before the first): with both unchanged, a quote
    /// tells the publisher that only its refreshed levels changed.
    last_bid: f64,
    last_ask: f64,
}

/// An on/off schedule on the synthetic clock (bursts, stress), in integer ns so that the check
/// per event is one comparison.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    every_ns: u64,
    len_ns: u64,
    next_start_ns: u64,
    active_until_ns: u64,
}

impl Schedule {
    fn new(start_ns: u64, every_s: f64, len_s: f64) -> Self {
        let every_ns = if every_s > 0.0 && len_s > 0.0 {
            (every_s * 1e9) as u64
        } else {
            0
        };
        Schedule {
            every_ns,
            len_ns: (len_s.max(0.0) * 1e9) as u64,
            // The first episode starts after one period: runs begin calm. Saturating: a period
            // past the end of u64 ns never starts (it used to wrap and spin, issue 21).
            next_start_ns: if every_ns > 0 {
                start_ns.saturating_add(every_ns)
            } else {
                u64::MAX
            },
            active_until_ns: 0,
        }
    }

    #[inline]
    fn active(&mut self, now: u64) -> bool {
        // Ends: `next_start_ns` grows by `every_ns > 0` each turn and saturates at u64::MAX,
        // which `now` (a u64 clock below it) never reaches.
        while now >= self.next_start_ns && self.next_start_ns != u64::MAX {
            self.active_until_ns = self.next_start_ns.saturating_add(self.len_ns);
            self.next_start_ns = self.next_start_ns.saturating_add(self.every_ns);
        }
        now < self.active_until_ns
    }
}

/// Events per second of the synthetic clock outside bursts: the configured `rate` (an
/// average) divided by `1 + duty (burst_factor - 1)`, where `duty = burst_len_s /
/// burst_every_s` is the fraction of time in a burst; `rate` itself when bursts are disabled,
/// and 1e7 (100 ns apart) for an `inf` rate.
pub fn calm_rate(cfg: &SyntheticConfig) -> f64 {
    if !(cfg.rate.is_finite() && cfg.rate > 0.0) {
        return 1e7;
    }
    let bursts = cfg.burst_every_s > 0.0 && cfg.burst_len_s > 0.0;
    let duty = if bursts {
        (cfg.burst_len_s / cfg.burst_every_s).min(1.0)
    } else {
        0.0
    };
    cfg.rate / (1.0 + duty * (cfg.burst_factor.max(1.0) - 1.0))
}

/// A clock step of `whole_ns + frac_q32 / 2^32` ns: the clock advances in 32.32 fixed point,
/// integer operations only (a float accumulator costs two int<->float conversions per event),
/// and a fractional step such as 1e9 / 3 ns per event does not drift (error < 2^-32 ns per event).
#[derive(Debug, Clone, Copy)]
struct ClockStep {
    whole_ns: u64,
    frac_q32: u64,
}

impl ClockStep {
    fn from_ns(ns: f64) -> Self {
        let ns = if ns.is_finite() { ns.max(0.0) } else { 0.0 };
        let whole = ns.floor();
        ClockStep {
            whole_ns: whole as u64,
            frac_q32: (((ns - whole) * 4_294_967_296.0).round() as u64).min(u64::from(u32::MAX)),
        }
    }
}

/// The synthetic market source. Infinite: the runner stops it (duration, max events, signal).
pub struct SyntheticSource {
    cfg: SyntheticConfig,
    rng: Xoshiro256,
    registry: Registry,
    unders: Vec<UnderlyingState>,
    options: Vec<OptionSlot>,
    expiry_ns: Vec<u64>,
    /// Synthetic clock, ns since the epoch.
    now_ns: u64,
    /// Fraction of a ns carried on the clock, in units of 2^-32 ns (< 2^32).
    frac_ns_q32: u64,
    /// Clock step per event outside and inside a burst.
    calm_step: ClockStep,
    burst_step: ClockStep,
    burst: Schedule,
    stress: Schedule,
    stress_now: bool,
    /// `1 / stress_spread_mult`, the depth size scale in stress (computed once, not per quote).
    inv_stress_spread: f64,
    /// Mean resting size per depth level (deeper levels are larger).
    level_base: [f64; DEPTH_LEVELS],
    rr_quote: usize,
    rr_price: usize,
    rr_mark: usize,
    events: u64,
    exact_reprices: u64,
    /// The event kinds of one mixing cycle (0 quote, 1 price, 2 mark), interleaved evenly by
    /// weight; cycled in order.
    pattern: Vec<u8>,
    pattern_pos: usize,
    /// Trade prints' own PRNG stream (aggressor, size, whether a quote prints one).
    trade_rng: Xoshiro256,
    /// The trade print to publish next (after the quote it follows), if any.
    pending_trade: Option<MarketEvent>,
    /// Trade prints published.
    trades: u64,
}

/// Length of the event-mix cycle: weights are resolved to 1/20.
const PATTERN_LEN: usize = 20;

/// Interleaves event kinds by weight over [`PATTERN_LEN`] slots (largest remainder first, then
/// spread like Bresenham's line), e.g. 0.5/0.1/0.4 -> Q M Q M Q P Q M Q M ... A fixed cycle
/// instead of a random draw per event: the same long-run mix, no draw, and branches that the
/// CPU predicts (a random kind per event costs a misprediction or two per event).
fn mix_pattern(weights: [f64; 3]) -> Vec<u8> {
    let total: f64 = weights.iter().map(|w| w.max(0.0)).sum::<f64>().max(1e-12);
    let mut counts = weights.map(|w| (w.max(0.0) / total * PATTERN_LEN as f64).round() as usize);
    let sum: usize = counts.iter().sum();
    if sum == 0 {
        counts[0] = PATTERN_LEN;
    }
    let n: usize = counts.iter().sum();
    let mut acc = [0.0f64; 3];
    (0..n)
        .map(|_| {
            for k in 0..3 {
                acc[k] += counts[k] as f64 / n as f64;
            }
            let k = (0..3)
                .max_by(|&a, &b| acc[a].total_cmp(&acc[b]).then(b.cmp(&a)))
                .unwrap_or(0);
            acc[k] -= 1.0;
            k as u8
        })
        .collect()
}

/// `*out = *e`, stored as eight whole 8-byte words rather than field by field: the publisher
/// copies the event right away with wide loads, which a CPU forwards from the store buffer only
/// from a store that covers them (the narrow stores of `instrument_id`, `kind`, `side` and
/// `flags` cost a store-forwarding stall of about 15 cycles per event there).
#[inline(always)]
fn store_event(out: &mut MarketEvent, e: &MarketEvent) {
    #[cfg(target_endian = "little")]
    {
        let v = e.v.map(f64::to_bits);
        let w3 = u64::from(e.instrument_id)
            | u64::from(e.kind) << 32
            | u64::from(e.side) << 40
            | u64::from(e.flags) << 48;
        *bytemuck::cast_mut::<MarketEvent, [u64; 8]>(out) = [
            e.seq,
            e.exch_ts_ns,
            e.recv_ts_ns,
            w3,
            v[0],
            v[1],
            v[2],
            v[3],
        ];
    }
    #[cfg(not(target_endian = "little"))]
    {
        *out = *e;
    }
}

/// Waiting time to the next jump of a Poisson process with `per_minute` jumps per minute of
/// synthetic clock, ns (at least 1; `u64::MAX` when there are no jumps).
fn jump_wait_ns(rng: &mut Xoshiro256, per_minute: f64) -> u64 {
    if !(per_minute.is_finite() && per_minute > 0.0) {
        return u64::MAX;
    }
    // 1 - u is in (0, 1]: the logarithm is finite.
    let wait_s = -(1.0 - rng.uniform()).ln() * 60.0 / per_minute;
    ((wait_s * 1e9) as u64).max(1)
}

fn round_step(x: f64) -> f64 {
    // 1, 2, 2.5, 5 x 10^k nearest below x.
    let p = 10f64.powf(x.log10().floor());
    let m = x / p;
    let nice = if m >= 5.0 {
        5.0
    } else if m >= 2.5 {
        2.5
    } else if m >= 2.0 {
        2.0
    } else {
        1.0
    };
    nice * p
}

impl SyntheticSource {
    /// Builds the market and its instruments (ids: per underlying the index, the perpetual,
    /// then per expiry its forward and its options, calls and puts by strike).
    pub fn new(mut cfg: SyntheticConfig) -> Self {
        if cfg.underlyings.is_empty() {
            cfg.underlyings.push(UnderlyingSpec::default());
        }
        cfg.depth_levels = cfg.depth_levels.clamp(1, DEPTH_LEVELS);
        let rate = calm_rate(&cfg);
        let mut reg = Registry::new();
        let start_day = cfg.start_ns / 86_400_000_000_000;
        let expiry_ns: Vec<u64> = cfg
            .expiries_days
            .iter()
            .map(|d| {
                let e = (start_day + u64::from(*d)) * 86_400_000_000_000;
                // Normalize through the Deribit date code so symbol and expiry agree.
                parse_deribit_date(&format_deribit_date(e)).unwrap_or(e)
            })
            .collect();
        let mut unders = Vec::new();
        let mut options = Vec::new();
        for (ui, spec) in cfg.underlyings.iter().enumerate() {
            let cur = &spec.currency;
            let index_id = reg.resolve_deribit(cur).unwrap_or(0);
            let perp_id = reg
                .resolve_deribit(&format!("{cur}-PERPETUAL"))
                .unwrap_or(0);
            let tick = reg.get(perp_id).map_or(0.5, |d| d.tick_size);
            let forward_ids = add_chain(&mut reg, &cfg, ui, &expiry_ns, &mut options);
            let mut u = UnderlyingState::new(spec, &cfg, tick, expiry_ns.len());
            (u.index_id, u.perp_id, u.forward_ids) = (index_id, perp_id, forward_ids);
            unders.push(u);
        }
        let mark_weight = if options.is_empty() {
            0.0
        } else {
            cfg.weight_mark
        };
        let pattern = mix_pattern([cfg.weight_quote, cfg.weight_price, mark_weight]);
        let mut s = SyntheticSource {
            rng: Xoshiro256::new(cfg.seed),
            now_ns: cfg.start_ns,
            frac_ns_q32: 0,
            calm_step: ClockStep::from_ns(1e9 / rate),
            burst_step: ClockStep::from_ns(1e9 / rate / cfg.burst_factor.max(1.0)),
            burst: Schedule::new(cfg.start_ns, cfg.burst_every_s, cfg.burst_len_s),
            stress: Schedule::new(cfg.start_ns, cfg.stress_every_s, cfg.stress_len_s),
            stress_now: false,
            inv_stress_spread: 1.0 / cfg.stress_spread_mult,
            level_base: std::array::from_fn(|i| Self::level_base(&cfg, i)),
            registry: reg,
            unders,
            options,
            expiry_ns,
            rr_quote: 0,
            rr_price: 0,
            rr_mark: 0,
            events: 0,
            exact_reprices: 0,
            pattern,
            pattern_pos: 0,
            trade_rng: Xoshiro256::new(cfg.seed ^ 0x7472_6164_6573),
            pending_trade: None,
            trades: 0,
            cfg,
        };
        s.seed_underlyings();
        s
    }

    /// Each underlying's first jump time, expiry state and book sizes (random, from the
    /// seed).
    fn seed_underlyings(&mut self) {
        for u in 0..self.unders.len() {
            let wait = jump_wait_ns(&mut self.rng, self.unders[u].spec.jumps_per_minute);
            self.unders[u].next_jump_ns = self.cfg.start_ns.saturating_add(wait);
            for e in 0..self.expiry_ns.len() {
                self.refresh_expiry(u, e);
            }
            for i in 0..DEPTH_LEVELS {
                let b = self.level_base[i] * (0.5 + self.rng.uniform());
                let a = self.level_base[i] * (0.5 + self.rng.uniform());
                self.unders[u].bid_sizes[i] = b;
                self.unders[u].ask_sizes[i] = a;
            }
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &SyntheticConfig {
        &self.cfg
    }

    /// Id of the hedge instrument (perpetual) of underlying `i` (config order).
    pub fn hedge_instrument(&self, i: usize) -> u32 {
        self.unders[i].perp_id
    }

    /// Id of the index instrument of underlying `i`.
    pub fn index_instrument(&self, i: usize) -> u32 {
        self.unders[i].index_id
    }

    /// Current index price of underlying `i`.
    pub fn spot(&self, i: usize) -> f64 {
        self.unders[i].spot
    }

    /// Whether the synthetic clock is inside a stress episode.
    pub fn in_stress(&self) -> bool {
        self.stress_now
    }

    /// How many marks were priced exactly with Black-76 (the others are Taylor expansions
    /// around the last exact price, see the module docs).
    pub fn exact_reprices(&self) -> u64 {
        self.exact_reprices
    }

    /// Time to expiry in years for the synthetic clock (market time runs `time_warp` faster).
    fn years_to_expiry(&self, e: usize) -> f64 {
        let market_now_ns = self.cfg.start_ns as f64
            + (self.now_ns - self.cfg.start_ns) as f64 * self.cfg.time_warp;
        ((self.expiry_ns[e] as f64 - market_now_ns) * 1e-9 / S_PER_YEAR).max(MIN_T_YEARS)
    }

    fn refresh_expiry(&mut self, u: usize, e: usize) {
        let t = self.years_to_expiry(e);
        let carry_factor = 1.0 + self.unders[u].spec.carry * t;
        self.unders[u].expiries[e] = ExpiryState {
            t,
            inv_sqrt_t: 1.0 / t.sqrt(),
            carry_factor,
            ln_carry_factor: carry_factor.ln(),
            refreshed_ns: self.now_ns,
        };
    }

    /// Advances underlying `u`'s diffusion to the clock: GBM on the log price over the elapsed
    /// market time (variance scales with time, so the lazy step is exact for the diffusion),
    /// plus the Merton jumps that fell in the step.
    fn advance(&mut self, u: usize, stress: bool) {
        let now = self.now_ns;
        let warp = self.cfg.time_warp;
        let half_life = self.cfg.spike_half_life_s;
        let stress_mult = if stress {
            self.cfg.stress_vol_mult
        } else {
            1.0
        };
        let st = &mut self.unders[u];
        if now <= st.last_ns {
            return;
        }
        let delta = now - st.last_ns;
        st.last_ns = now;
        let slot = (delta.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - STEP_CACHE.trailing_zeros()))
            as usize
            % STEP_CACHE;
        if st.step_cache[slot].dt_ns != delta {
            let dt_s = delta as f64 * 1e-9;
            let dt_y = dt_s * warp / S_PER_YEAR;
            st.step_cache[slot] = StepCache {
                dt_ns: delta,
                dt_y,
                sqrt_dt_y: dt_y.sqrt(),
                decay: if half_life > 0.0 {
                    (-dt_s * std::f64::consts::LN_2 / half_life).exp()
                } else {
                    1.0
                },
            };
        }
        let c = st.step_cache[slot];
        let (dt_y, sqrt_dt_y) = (c.dt_y, c.sqrt_dt_y);
        if half_life > 0.0 && st.spike > 1.000_001 {
            st.spike = 1.0 + (st.spike - 1.0) * c.decay;
        }
        let sigma = st.spec.vol * st.spike * stress_mult;
        // Innovation: triangular with unit variance (sum of two uniforms from one draw). Much
        // cheaper than a normal draw; summed over the many ticks of any horizon that matters it
        // is Gaussian (central limit theorem); jumps supply the fat tails.
        // z = (u1 + u2 - 1) sqrt(6) with u1, u2 the two 32-bit halves / 2^32: the halves are
        // summed as integers and converted once, and everything but the draw is folded into
        // two coefficients (the quote that follows waits for this chain).
        let bits = self.rng.next_u64();
        let halves = ((bits >> 32) + (bits & 0xffff_ffff)) as i64 as f64;
        let a = sigma * sqrt_dt_y * SQRT_6;
        let mut lr = (-0.5 * sigma * sigma * dt_y - a) + a * (1.0 / 4_294_967_296.0) * halves;
        // Jumps: a Poisson process on the synthetic clock, drawn as exponential waiting times
        // (one comparison per step instead of a draw; any number of jumps per step).
        while now >= st.next_jump_ns {
            lr += st.spec.jump_mean + st.spec.jump_std * self.rng.normal();
            st.spike = (st.spike * self.cfg.spike_mult).min(4.0);
            st.next_jump_ns = st
                .next_jump_ns
                .saturating_add(jump_wait_ns(&mut self.rng, st.spec.jumps_per_minute));
        }
        st.log_spot += lr;
        st.steps += 1;
        // exp(lr) by its series for tick-sized moves (|lr| < 1e-3: error below 1e-13), resynced
        // from the log price every 4096 steps so rounding cannot accumulate.
        if lr.abs() < 1e-3 && st.steps & 4095 != 0 {
            // Estrin's scheme: three dependent steps instead of Horner's eight (the quote
            // that follows waits for the new price).
            let lr2 = lr * lr;
            let growth = (1.0 + lr) + lr2 * ((0.5 + lr * (1.0 / 6.0)) + lr2 * (1.0 / 24.0));
            st.spot *= growth;
        } else {
            st.spot = st.log_spot.exp();
        }
    }

    /// Mean resting size of depth level `i` (deeper levels are larger).
    fn level_base(cfg: &SyntheticConfig, i: usize) -> f64 {
        cfg.level_size * (1.0 + i as f64 * 0.5)
    }

    fn quote(&mut self, u: usize, stress: bool, out: &mut SourceEvent) -> MarketEvent {
        let levels = self.cfg.depth_levels;
        let spread_mult = if stress {
            self.cfg.stress_spread_mult
        } else {
            1.0
        };
        // One 64-bit draw: new top sizes (16 bits each), a deeper level to refresh, its size.
        let bits = self.rng.next_u64();
        let u16f = |k: u32| ((bits >> (16 * k)) & 0xffff) as f64 * (1.0 / 65536.0);
        let base0 = self.level_base[0];
        let deep = if levels > 1 {
            // Multiply-shift instead of a modulo: uniform enough over 256 values.
            1 + ((((bits >> 32) & 0xff) as usize * (levels - 1)) >> 8)
        } else {
            0
        };
        let deep_size = self.level_base[deep] * (0.5 + u16f(3));
        let deep_bid = bits & (1 << 40) != 0;
        let size_scale = if stress { self.inv_stress_spread } else { 1.0 };
        let half_spread_bps = self.cfg.half_spread_bps;
        // Through i64, not u64: x86-64 converts signed integers in one instruction each way.
        let whole = |x: f64| ((x * size_scale) as i64).max(1) as f64;
        let st = &mut self.unders[u];
        // Levels this quote changes (bit i: level i): the top and the refreshed deeper level,
        // or every level when the sizes or the price ladder moved.
        let (mut bid_changed, mut ask_changed) = if deep_bid {
            (1 | 1 << deep, 1)
        } else {
            (1, 1 | 1 << deep)
        };
        if st.out_stress != stress {
            // Stress toggled: every published size changes.
            for i in 0..DEPTH_LEVELS {
                st.bid_out[i] = whole(st.bid_sizes[i]);
                st.ask_out[i] = whole(st.ask_sizes[i]);
            }
            st.out_stress = stress;
            (bid_changed, ask_changed) = (Depth::ALL_CHANGED, Depth::ALL_CHANGED);
        }
        st.bid_sizes[0] = base0 * (0.5 + u16f(0));
        st.ask_sizes[0] = base0 * (0.5 + u16f(1));
        st.bid_out[0] = whole(st.bid_sizes[0]);
        st.ask_out[0] = whole(st.ask_sizes[0]);
        if deep_bid {
            st.bid_sizes[deep] = deep_size;
            st.bid_out[deep] = whole(deep_size);
        } else {
            st.ask_sizes[deep] = deep_size;
            st.ask_out[deep] = whole(deep_size);
        }
        let (bid, ask) = st.quote_prices(spread_mult, half_spread_bps);
        // A new best price moves the whole ladder (NaN before the first quote: unequal).
        if bid != st.last_bid {
            bid_changed = Depth::ALL_CHANGED;
            st.last_bid = bid;
        }
        if ask != st.last_ask {
            ask_changed = Depth::ALL_CHANGED;
            st.last_ask = ask;
        }
        st.write_depth(out, levels, [bid, ask], [bid_changed, ask_changed]);
        MarketEvent::quote(
            st.perp_id,
            self.now_ns,
            0,
            bid,
            out.depth.bids[0][1],
            ask,
            out.depth.asks[0][1],
        )
    }

    /// The trade print that follows quote `q`, if its draw says so: at the bid (a seller
    /// hits it) or the ask (a buyer lifts it), for a part of the displayed size there.
    fn trade_after(&mut self, q: &MarketEvent, stress: bool) -> Option<MarketEvent> {
        if self.cfg.trade_prob <= 0.0 || self.trade_rng.uniform() >= self.cfg.trade_prob {
            return None;
        }
        let bits = self.trade_rng.next_u64();
        let buyer = bits & 1 == 1;
        let frac =
            2.0 * self.cfg.trade_size_frac * (((bits >> 11) as f64 + 1.0) / (1u64 << 53) as f64);
        let (px, touch_qty, aggressor) = if buyer {
            (q.v[2], q.v[3], shm_layout::Side::Buy)
        } else {
            (q.v[0], q.v[1], shm_layout::Side::Sell)
        };
        let qty = (touch_qty * frac).floor().clamp(1.0, touch_qty.max(1.0));
        let mut t = MarketEvent::trade(q.instrument_id, q.exch_ts_ns, 0, px, qty, aggressor);
        if stress {
            t.flags |= MarketEvent::FLAG_STRESS;
        }
        Some(t)
    }

    /// Trade prints published so far.
    pub fn trades(&self) -> u64 {
        self.trades
    }

    fn mark(&mut self, stress: bool, out: &mut SourceEvent) -> MarketEvent {
        let k = self.rr_mark;
        self.rr_mark = if k + 1 == self.options.len() {
            0
        } else {
            k + 1
        };
        let (u, e) = (self.options[k].under, self.options[k].expiry);
        if self.now_ns - self.unders[u].expiries[e].refreshed_ns >= EXPIRY_REFRESH_NS {
            self.refresh_expiry(u, e);
        }
        let st = &self.unders[u];
        let ex = st.expiries[e];
        let f = st.spot * ex.carry_factor;
        let atm = st.spec.vol
            * st.spike
            * if stress {
                self.cfg.stress_vol_mult
            } else {
                1.0
            };
        let o = &mut self.options[k];
        // The mark waits on the price just moved: the expressions below are arranged so that
        // few operations depend on it in sequence (everything else is ready earlier).
        // x = (ln K - ln F) / sqrt(T), ln F = ln S + ln(carry).
        let x = (o.ln_strike - ex.ln_carry_factor) * ex.inv_sqrt_t - st.log_spot * ex.inv_sqrt_t;
        let (skew, curv) = (atm * self.cfg.smile_skew, atm * self.cfg.smile_curvature);
        let iv = ((atm + skew * x) + curv * (x * x)).clamp(0.05, 5.0);
        let c = &o.cache;
        let (df, dv, dt) = (f - c.f, iv - c.iv, ex.t - c.t);
        let usd = if c.valid
            && df.abs() <= REPRICE_DF * c.f
            && dv.abs() <= REPRICE_DVOL
            && dt.abs() <= REPRICE_DT * c.t
        {
            // The Taylor expansion of the module docs, in Estrin's form.
            let df2 = df * df;
            let in_f = (c.price + df * c.delta) + df2 * (0.5 * c.gamma + df * c.speed_6);
            let in_v = dv * (c.vega + c.vanna * df) + (dv * dv) * (0.5 * c.volga);
            (in_f + c.dv_dt * dt) + in_v
        } else {
            self.exact_reprices += 1;
            exact_mark(o, f, iv, ex.t)
        };
        // Inverse options are quoted in coin: premium / forward. 1/f by its series around the
        // cached 1/f (|r| <= REPRICE_DF = 0.005 after a Taylor mark, 0 after an exact one:
        // relative error below r^5 = 3e-12), a multiplication instead of a division.
        let (cf, inv_cf) = (o.cache.f, o.cache.inv_f);
        let inv_f = if o.cache.valid {
            let r = (f - cf) * inv_cf;
            inv_cf * (1.0 - r * (1.0 - r * (1.0 - r * (1.0 - r))))
        } else {
            1.0 / f
        };
        let coin = (usd * inv_f).max(0.0);
        out.has_depth = false;
        MarketEvent::option_mark(o.id, self.now_ns, 0, coin, iv, f)
    }
}

impl Source for SyntheticSource {
    fn registry(&self) -> &Registry {
        &self.registry
    }

    #[inline]
    fn next(&mut self, out: &mut SourceEvent) -> bool {
        if let Some(mut t) = self.pending_trade.take() {
            // The print that follows the last quote, 1 ns after it.
            self.now_ns += 1;
            t.exch_ts_ns = self.now_ns;
            out.has_depth = false;
            store_event(&mut out.event, &t);
            out.source_ts_ns = self.now_ns;
            self.events += 1;
            self.trades += 1;
            return true;
        }
        // Advance the clock by one event (shorter steps inside a burst); at least 1 ns, so time
        // strictly increases.
        let step = if self.burst.active(self.now_ns) {
            self.burst_step
        } else {
            self.calm_step
        };
        let frac = self.frac_ns_q32 + step.frac_q32;
        self.frac_ns_q32 = frac & 0xffff_ffff;
        self.now_ns += (step.whole_ns + (frac >> 32)).max(1);
        let stress = self.stress.active(self.now_ns);
        self.stress_now = stress;
        let kind = self.pattern[self.pattern_pos];
        self.pattern_pos = if self.pattern_pos + 1 == self.pattern.len() {
            0
        } else {
            self.pattern_pos + 1
        };
        let n_under = self.unders.len();
        let mut event = if kind == 0 {
            let u = self.rr_quote;
            self.rr_quote = if u + 1 == n_under { 0 } else { u + 1 };
            self.advance(u, stress);
            let q = self.quote(u, stress, out);
            self.pending_trade = self.trade_after(&q, stress);
            q
        } else if kind == 1 {
            // Index, then each expiry's forward, round robin over all underlyings.
            let per = 1 + self.expiry_ns.len();
            let k = self.rr_price;
            self.rr_price = if k + 1 == per * n_under { 0 } else { k + 1 };
            let (u, j) = (k / per, k % per);
            self.advance(u, stress);
            out.has_depth = false;
            let st = &self.unders[u];
            if j == 0 {
                MarketEvent::underlying_price(st.index_id, self.now_ns, 0, st.spot)
            } else {
                let f = st.spot * st.expiries[j - 1].carry_factor;
                MarketEvent::underlying_price(st.forward_ids[j - 1], self.now_ns, 0, f)
            }
        } else {
            // Marks use the underlying's last tick (advanced by quote and price events).
            self.mark(stress, out)
        };
        if stress {
            event.flags |= MarketEvent::FLAG_STRESS;
        }
        store_event(&mut out.event, &event);
        out.source_ts_ns = self.now_ns;
        self.events += 1;
        true
    }

    fn rejects(&self) -> Rejects {
        Rejects::default()
    }

    fn rows_read(&self) -> u64 {
        self.events
    }
}

impl SyntheticSource {
    /// Kind of every instrument, for tests and tools.
    pub fn count_kind(&self, kind: InstrumentKind) -> usize {
        self.registry
            .defs()
            .iter()
            .filter(|d| d.kind == kind as u8)
            .count()
    }

    /// Number of options of one type.
    pub fn count_options(&self, t: OptionType) -> usize {
        self.registry
            .defs()
            .iter()
            .filter(|d| d.option_type == t as u8)
            .count()
    }
}

/// Registers underlying `ui`'s forwards (one per expiry) and its options (calls and puts by
/// strike around the money), appending the options to `options`; returns the forward ids.
fn add_chain(
    reg: &mut Registry,
    cfg: &SyntheticConfig,
    ui: usize,
    expiry_ns: &[u64],
    options: &mut Vec<OptionSlot>,
) -> Vec<u32> {
    let spec = &cfg.underlyings[ui];
    let cur = &spec.currency;
    let step = round_step(spec.spot * cfg.strike_step.max(1e-4));
    let mut forward_ids = Vec::new();
    for (ei, &exp) in expiry_ns.iter().enumerate() {
        let code = format_deribit_date(exp);
        let fwd = reg
            .resolve_deribit(&format!("SYN.{cur}-{code}"))
            .unwrap_or(0);
        forward_ids.push(fwd);
        let atm = (spec.spot / step).round() * step;
        let n = cfg.strikes_per_expiry as i64;
        for k in 0..n {
            let strike = atm + (k - n / 2) as f64 * step;
            if strike <= 0.0 {
                continue;
            }
            for call in [true, false] {
                let cp = if call { "C" } else { "P" };
                let sym = format!("{cur}-{code}-{strike}-{cp}");
                if let Ok(id) = reg.resolve_deribit(&sym) {
                    reg.set_forward(id, fwd);
                    options.push(OptionSlot {
                        id,
                        under: ui,
                        expiry: ei,
                        strike,
                        ln_strike: strike.ln(),
                        call,
                        cache: MarkCache::default(),
                    });
                }
            }
        }
    }
    forward_ids
}

impl UnderlyingState {
    /// An underlying at its starting spot, with `n_expiries` expiries and the perpetual's
    /// tick; its instrument ids are set by the caller.
    fn new(spec: &UnderlyingSpec, cfg: &SyntheticConfig, tick: f64, n_expiries: usize) -> Self {
        UnderlyingState {
            spec: spec.clone(),
            index_id: 0,
            perp_id: 0,
            forward_ids: Vec::new(),
            expiries: vec![ExpiryState::default(); n_expiries],
            spot: spec.spot,
            log_spot: spec.spot.ln(),
            last_ns: cfg.start_ns,
            spike: 1.0,
            tick,
            inv_tick_pow2: if tick > 0.0
                && tick.is_normal()
                && tick.to_bits() & ((1 << 52) - 1) == 0
            {
                1.0 / tick
            } else {
                0.0
            },
            step_cache: [StepCache::default(); STEP_CACHE],
            steps: 0,
            next_jump_ns: u64::MAX,
            bid_sizes: [0.0; DEPTH_LEVELS],
            ask_sizes: [0.0; DEPTH_LEVELS],
            bid_out: [0.0; DEPTH_LEVELS],
            ask_out: [0.0; DEPTH_LEVELS],
            out_stress: true,
            half_spread: spec.spot * cfg.half_spread_bps * 1e-4,
            ladder: std::array::from_fn(|i| i as f64 * tick),
            last_bid: f64::NAN,
            last_ask: f64::NAN,
        }
    }
}

impl UnderlyingState {
    /// Writes the book of a quote at `bid`/`ask` ([best bid, best ask]) into `out`: `levels`
    /// levels per side on the tick ladder with the published sizes, and which levels changed
    /// (bit i: level i, per side).
    #[inline]
    fn write_depth(
        &self,
        out: &mut SourceEvent,
        levels: usize,
        [bid, ask]: [f64; 2],
        [bid_changed, ask_changed]: [u32; 2],
    ) {
        let d: &mut Depth = &mut out.depth;
        d.bid_levels = levels as u32;
        d.ask_levels = levels as u32;
        d.bid_changed = bid_changed;
        d.ask_changed = ask_changed;
        for i in 0..levels {
            d.bids[i] = [bid - self.ladder[i], self.bid_out[i]];
            d.asks[i] = [ask + self.ladder[i], self.ask_out[i]];
        }
        out.has_depth = true;
    }
}

/// An option's exact Black-76 price (quote currency) at forward `f`, vol `iv` and `t_years`,
/// refreshing its Taylor cache (the module docs); 0 with the cache invalid when the inputs
/// have no price.
#[inline]
fn exact_mark(o: &mut OptionSlot, f: f64, iv: f64, t_years: f64) -> f64 {
    let kind = if o.call {
        pricing::OptionType::Call
    } else {
        pricing::OptionType::Put
    };
    match pricing::black76_greeks(kind, f, o.strike, t_years, iv, 0.0) {
        Ok(g) => {
            let sd = iv * t_years.sqrt();
            let d1 = ((f / o.strike).ln() + 0.5 * sd * sd) / sd;
            let d2 = d1 - sd;
            o.cache = MarkCache {
                valid: true,
                f,
                iv,
                t: t_years,
                price: g.price,
                delta: g.delta,
                gamma: g.gamma,
                speed_6: g.speed / 6.0,
                inv_f: 1.0 / f,
                vega: g.vega,
                vanna: g.vanna,
                volga: g.vega * d1 * d2 / iv,
                // Greeks.theta is dV/d(calendar time) = -dV/dT.
                dv_dt: -g.theta,
            };
            g.price
        }
        Err(_) => {
            o.cache.valid = false;
            0.0
        }
    }
}

impl UnderlyingState {
    /// The best bid and ask of the next quote around the spot, on the tick grid, at least a
    /// tick apart; updates the half-spread for the quote after.
    #[inline]
    fn quote_prices(&mut self, spread_mult: f64, half_spread_bps: f64) -> (f64, f64) {
        let tick = self.tick;
        let inv = self.inv_tick_pow2;
        // x / tick, as a multiplication when that is exact (a power-of-two tick).
        let in_ticks = |x: f64| if inv != 0.0 { x * inv } else { x / tick };
        let mid = self.spot;
        // The half-spread is sized on the previous quote's mid (a relative difference of about
        // 1e-7), so that it is ready before this quote's price is.
        let half = (self.half_spread * spread_mult).max(tick);
        self.half_spread = mid * half_spread_bps * 1e-4;
        // floor/ceil by integer conversion (prices are positive): no libm call.
        let bid = in_ticks(mid - half) as i64 as f64 * tick;
        let a = in_ticks(mid + half);
        let at = a as i64 as f64;
        let ask = ((if at < a { at + 1.0 } else { at }) * tick).max(bid + tick);
        (bid, ask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shm_layout::Side;

    #[test]
    fn schedules_past_the_end_of_the_clock_never_start_and_never_spin() {
        // Not validated (a library user may build any config): the source must still publish.
        for (every, len) in [(1e11, 10.0), (1.7e10, 0.5), (1e300, 1e300), (f64::MAX, 1.0)] {
            let cfg = SyntheticConfig {
                stress_every_s: every,
                stress_len_s: len,
                burst_every_s: every,
                burst_len_s: len,
                ..SyntheticConfig::default()
            };
            let mut src = SyntheticSource::new(cfg);
            let mut ev = SourceEvent::default();
            for _ in 0..1_000 {
                assert!(src.next(&mut ev));
                assert!(ev.event.is_valid());
            }
            assert!(!src.in_stress());
        }
    }

    #[test]
    fn out_of_range_parameters_are_refused_naming_key_value_and_range() {
        let bad = |f: fn(&mut SyntheticConfig), want: &str| {
            let mut c = SyntheticConfig::default();
            f(&mut c);
            let e = c.validate().unwrap_err();
            assert!(e.starts_with(want) && !e.contains('\n'), "{e}");
        };
        bad(
            |c| c.stress_every_s = 1e11,
            "synthetic.stress_every_s = 100000000000: must be in 0.001..=1000000 s (or 0: off)",
        );
        bad(
            |c| c.burst_every_s = 1.7e10,
            "synthetic.burst_every_s = 17000000000: must be in",
        );
        bad(
            |c| c.half_spread_bps = f64::NAN,
            "synthetic.half_spread_bps = NaN: must be in",
        );
        bad(
            |c| c.half_spread_bps = -1.0,
            "synthetic.half_spread_bps = -1: must be in",
        );
        bad(
            |c| c.level_size = f64::INFINITY,
            "synthetic.level_size = inf: must be in",
        );
        bad(
            |c| c.rate = f64::NAN,
            "synthetic.rate = NaN: must be in (0, 1000000000] events/s",
        );
        bad(
            |c| c.depth_levels = 0,
            "synthetic.depth_levels = 0: must be in 1..=8",
        );
        bad(
            |c| c.underlyings[0].vol = -0.5,
            "synthetic.underlyings[0].vol = -0.5: must be in",
        );
        assert!(SyntheticConfig::default().validate().is_ok());
        let off = SyntheticConfig {
            stress_every_s: 0.0,
            burst_every_s: 0.0,
            rate: f64::INFINITY,
            ..SyntheticConfig::default()
        };
        assert!(off.validate().is_ok());
    }

    #[test]
    fn xoshiro_matches_reference_vector() {
        // splitmix64 with seed 0 gives 0xe220a8397b1dcdaf as its first output (reference C code).
        let mut s = 0u64;
        assert_eq!(splitmix64(&mut s), 0xe220_a839_7b1d_cdaf);
        let mut r = Xoshiro256::new(7);
        let a: Vec<u64> = (0..4).map(|_| r.next_u64()).collect();
        let mut r2 = Xoshiro256::new(7);
        let b: Vec<u64> = (0..4).map(|_| r2.next_u64()).collect();
        assert_eq!(a, b);
        let mean: f64 = (0..20_000).map(|_| r.uniform()).sum::<f64>() / 20_000.0;
        assert!((mean - 0.5).abs() < 0.02);
        let z: Vec<f64> = (0..20_000).map(|_| r.normal()).collect();
        let m = z.iter().sum::<f64>() / z.len() as f64;
        let v = z.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / z.len() as f64;
        assert!(m.abs() < 0.05 && (v - 1.0).abs() < 0.05, "{m} {v}");
    }

    #[test]
    fn chain_has_expiries_strikes_and_forwards() {
        let s = SyntheticSource::new(SyntheticConfig::default());
        assert_eq!(s.count_options(OptionType::Call), 27);
        assert_eq!(s.count_options(OptionType::Put), 27);
        assert_eq!(s.count_kind(InstrumentKind::Perpetual), 1);
        // BTC index + 3 forwards.
        assert_eq!(s.count_kind(InstrumentKind::Index), 4);
        for d in s.registry().defs() {
            if d.kind == InstrumentKind::Option as u8 {
                let f = s.registry().get(d.forward_id).unwrap();
                assert!(f.symbol().starts_with("SYN.BTC-"));
                assert_eq!(f.expiry_ns, d.expiry_ns);
            }
        }
    }

    #[test]
    fn every_event_is_valid_and_time_increases() {
        let cfg = SyntheticConfig {
            stress_every_s: 0.02,
            stress_len_s: 0.01,
            rate: 100_000.0,
            underlyings: vec![
                UnderlyingSpec::default(),
                UnderlyingSpec {
                    currency: "ETH".into(),
                    spot: 3000.0,
                    ..UnderlyingSpec::default()
                },
            ],
            ..SyntheticConfig::default()
        };
        let mut s = SyntheticSource::new(cfg);
        let mut e = SourceEvent::default();
        let mut last = 0;
        let (mut stress, mut kinds) = (0, [0usize; 5]);
        for _ in 0..50_000 {
            assert!(s.next(&mut e));
            assert!(e.event.is_valid(), "{:?}", e.event);
            assert!(e.source_ts_ns > last);
            last = e.source_ts_ns;
            assert!((e.event.instrument_id as usize) < s.registry().len());
            if e.event.flags & MarketEvent::FLAG_STRESS != 0 {
                stress += 1;
            }
            kinds[e.event.kind as usize] += 1;
            if e.has_depth {
                let d = &e.depth;
                for i in 1..d.bid_levels as usize {
                    assert!(d.bids[i][0] < d.bids[i - 1][0]);
                    assert!(d.asks[i][0] > d.asks[i - 1][0]);
                }
            }
        }
        assert!(stress > 0);
        assert!(kinds[1] > 0 && kinds[2] > 0 && kinds[3] > 0);
    }

    /// `hedgectl demo --md-rate 20000` published 38.5k events/s: bursts (20x for 0.5 s every
    /// 10 s) came on top of the asked rate. Counted over whole burst periods (by the synthetic
    /// timestamps the runner paces by), the source keeps the asked rate, with or without bursts.
    #[test]
    fn the_asked_rate_is_kept_on_average_over_whole_burst_periods() {
        for (burst_factor, rate) in [(20.0, 2000.0), (1.0, 3000.0), (5.0, 777.0)] {
            let cfg = SyntheticConfig {
                rate,
                burst_factor,
                // Trade prints come on top of the asked rate.
                trade_prob: 0.0,
                ..SyntheticConfig::default()
            };
            let every_ns = (cfg.burst_every_s * 1e9) as u64;
            // Bursts start after one calm period: count two whole periods after it.
            let (from, to) = (cfg.start_ns + every_ns, cfg.start_ns + 3 * every_ns);
            let mut s = SyntheticSource::new(cfg.clone());
            let mut e = SourceEvent::default();
            let (mut in_window, mut in_bursts) = (0u64, 0u64);
            while s.next(&mut e) && e.source_ts_ns < to {
                if e.source_ts_ns >= from {
                    in_window += 1;
                    let into_period = (e.source_ts_ns - cfg.start_ns) % every_ns;
                    in_bursts += u64::from(into_period < (cfg.burst_len_s * 1e9) as u64);
                }
            }
            let expected = rate * 2.0 * cfg.burst_every_s;
            assert!(
                (in_window as f64 - expected).abs() <= expected * 1e-3 + 1.0,
                "factor {burst_factor}: {in_window} events in 2 periods, asked {expected}"
            );
            // Bursts still burst: their share of events is factor x their share of time.
            let duty = cfg.burst_len_s / cfg.burst_every_s;
            let share = burst_factor * duty / (1.0 + duty * (burst_factor - 1.0));
            let got = in_bursts as f64 / in_window as f64;
            assert!(
                (got - share).abs() < 1e-3,
                "factor {burst_factor}: burst share {got}"
            );
        }
    }

    #[test]
    fn stress_widens_the_spread() {
        let cfg = SyntheticConfig {
            stress_every_s: 1.0,
            stress_len_s: 0.5,
            burst_every_s: 0.0,
            rate: 10_000.0,
            weight_quote: 1.0,
            weight_price: 0.0,
            weight_mark: 0.0,
            ..SyntheticConfig::default()
        };
        let mut s = SyntheticSource::new(cfg);
        let mut e = SourceEvent::default();
        let (mut calm, mut nc, mut hot, mut nh) = (0.0, 0, 0.0, 0);
        for _ in 0..20_000 {
            s.next(&mut e);
            let Some((b, _, a, _)) = e.event.as_quote() else {
                assert!(e.event.as_trade().is_some());
                continue;
            };
            if e.event.flags & MarketEvent::FLAG_STRESS != 0 {
                hot += a - b;
                nh += 1;
            } else {
                calm += a - b;
                nc += 1;
            }
        }
        assert!(nh > 0 && nc > 0);
        assert!(hot / nh as f64 > 3.0 * calm / nc as f64);
    }

    #[test]
    fn marks_match_exact_black76_at_their_vol_and_forward() {
        let cfg = SyntheticConfig {
            rate: 1000.0,
            stress_every_s: 5.0,
            stress_len_s: 1.0,
            trade_prob: 0.0,
            ..SyntheticConfig::default()
        };
        let mut s = SyntheticSource::new(cfg);
        let mut e = SourceEvent::default();
        let mut worst: f64 = 0.0;
        let mut marks = 0;
        for _ in 0..60_000 {
            s.next(&mut e);
            let Some((coin, iv, f)) = e.event.as_option_mark() else {
                continue;
            };
            marks += 1;
            let d = *s.registry().get(e.event.instrument_id).unwrap();
            let kind = if d.option_type == OptionType::Call as u8 {
                pricing::OptionType::Call
            } else {
                pricing::OptionType::Put
            };
            let t =
                s.unders[0].expiries[s.expiry_ns.iter().position(|&x| x == d.expiry_ns).unwrap()].t;
            let exact = pricing::black76_price(kind, f, d.strike, t, iv, 0.0).unwrap() / f;
            worst = worst.max((coin - exact.max(0.0)).abs());
        }
        assert!(marks > 20_000);
        // Taylor marks within 5e-7 coin (0.03 USD at 60k, 1/1000 of a tick) of the exact price.
        assert!(worst < 5e-7, "worst mark error {worst} coin");
        assert!(
            s.exact_reprices() < marks / 2,
            "{} exact of {marks}",
            s.exact_reprices()
        );
    }

    #[test]
    fn realized_volatility_matches_the_configured_volatility() {
        let cfg = SyntheticConfig {
            rate: 1000.0,
            weight_quote: 0.0,
            weight_price: 1.0,
            weight_mark: 0.0,
            expiries_days: vec![],
            stress_every_s: 0.0,
            burst_every_s: 0.0,
            underlyings: vec![UnderlyingSpec {
                jumps_per_minute: 0.0,
                ..UnderlyingSpec::default()
            }],
            ..SyntheticConfig::default()
        };
        let warp = cfg.time_warp;
        let mut s = SyntheticSource::new(cfg);
        let mut e = SourceEvent::default();
        let (mut last, mut sum_sq) = (60_000f64.ln(), 0.0);
        let n = 400_000;
        for _ in 0..n {
            s.next(&mut e);
            let lp = e.event.as_underlying_price().unwrap().ln();
            sum_sq += (lp - last) * (lp - last);
            last = lp;
        }
        let years = n as f64 / 1000.0 * warp / S_PER_YEAR;
        let vol = (sum_sq / years).sqrt();
        assert!((vol - 0.6).abs() < 0.01, "realized vol {vol}");
        // The series-updated price stays on the log price.
        assert!((s.spot(0).ln() - s.unders[0].log_spot).abs() < 1e-12);
    }

    #[test]
    fn trades_print_at_the_touch_of_the_quote_before_them_deterministically() {
        let run = |trade_prob: f64| {
            let cfg = SyntheticConfig {
                seed: 11,
                trade_prob,
                ..SyntheticConfig::default()
            };
            let mut s = SyntheticSource::new(cfg);
            let mut e = SourceEvent::default();
            let mut out = Vec::new();
            for _ in 0..20_000 {
                assert!(s.next(&mut e));
                out.push(e.event);
            }
            (out, s.trades())
        };
        let (a, trades) = run(0.5);
        assert_eq!(run(0.5).0, a, "same seed, same prints");
        assert!(trades > 3_000, "{trades} trades");
        let (mut buys, mut sells) = (0, 0);
        for w in a.windows(2) {
            let Some((px, qty, side)) = w[1].as_trade() else {
                continue;
            };
            let (bid, bid_qty, ask, ask_qty) = w[0].as_quote().expect("a trade follows a quote");
            assert_eq!(w[1].instrument_id, w[0].instrument_id);
            assert_eq!(w[1].exch_ts_ns, w[0].exch_ts_ns + 1);
            match side {
                Some(Side::Buy) => {
                    buys += 1;
                    assert!(px == ask && qty >= 1.0 && qty <= ask_qty);
                }
                Some(Side::Sell) => {
                    sells += 1;
                    assert!(px == bid && qty >= 1.0 && qty <= bid_qty);
                }
                None => panic!("a synthetic trade has an aggressor"),
            }
        }
        assert!(buys > 1_000 && sells > 1_000, "{buys} buys, {sells} sells");
        // Without trades, the other events are those of the same seed (1 ns apart per print).
        let (plain, none) = run(0.0);
        assert_eq!(none, 0);
        let others: Vec<_> = a.iter().filter(|e| e.as_trade().is_none()).collect();
        for (x, y) in others.iter().zip(&plain).take(1000) {
            assert_eq!((x.instrument_id, x.kind), (y.instrument_id, y.kind));
        }
    }

    #[test]
    fn event_mix_follows_the_weights() {
        assert_eq!(mix_pattern([0.5, 0.1, 0.4]).len(), PATTERN_LEN);
        let p = mix_pattern([0.5, 0.1, 0.4]);
        let count = |k| p.iter().filter(|&&x| x == k).count();
        assert_eq!((count(0), count(1), count(2)), (10, 2, 8));
        assert_eq!(mix_pattern([1.0, 0.0, 0.0]), vec![0; PATTERN_LEN]);
        assert!(mix_pattern([0.0, 0.0, 0.0]).iter().all(|&k| k == 0));
        // Spread, not blocks: never three of a kind in a row.
        assert!(
            p.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])),
            "{p:?}"
        );
    }

    #[test]
    fn smile_moves_with_the_underlying() {
        // OTM put vol above ATM vol (negative skew) for every mark.
        let cfg = SyntheticConfig {
            weight_quote: 0.0,
            weight_price: 0.0,
            weight_mark: 1.0,
            stress_every_s: 0.0,
            ..SyntheticConfig::default()
        };
        let mut s = SyntheticSource::new(cfg);
        let mut e = SourceEvent::default();
        for _ in 0..200 {
            s.next(&mut e);
            let (m, iv, f) = e.event.as_option_mark().unwrap();
            let d = *s.registry().get(e.event.instrument_id).unwrap();
            assert!(m >= 0.0 && iv > 0.0 && f > 0.0);
            let x = (d.strike / f).ln();
            if x < -0.1 {
                assert!(iv > 0.6, "put wing vol {iv} at moneyness {x}");
            }
        }
    }
}
