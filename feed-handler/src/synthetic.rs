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
//! Option marks are Black-76 prices (the engine's pricing module, r = 0) of the per-expiry
//! forward, divided by the forward for inverse (coin-settled) options, as Deribit quotes them.
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
    /// Events per second of the synthetic clock (the nominal rate); `inf` publishes as fast
    /// as possible with timestamps 100 ns apart.
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
        }
    }
}

const YEAR_S: f64 = 365.0 * 86_400.0;
/// Shortest time to expiry used in pricing (one hour): an expired synthetic option keeps a
/// well-defined mark instead of a degenerate one.
const MIN_T_YEARS: f64 = 3600.0 / YEAR_S;

#[derive(Debug, Clone)]
struct OptionSlot {
    id: u32,
    under: usize,
    expiry: usize,
    strike: f64,
    call: bool,
}

#[derive(Debug, Clone)]
struct UnderlyingState {
    spec: UnderlyingSpec,
    index_id: u32,
    perp_id: u32,
    forward_ids: Vec<u32>,
    /// Index price.
    spot: f64,
    /// Synthetic-clock ns of the last diffusion step.
    last_ns: u64,
    /// Current vol spike multiplier (>= 1).
    spike: f64,
    tick: f64,
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
    dt_ns: f64,
    frac_ns: f64,
    rr_quote: usize,
    rr_price: usize,
    rr_mark: usize,
    events: u64,
    cum_quote: f64,
    cum_price: f64,
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
        let rate = if cfg.rate.is_finite() && cfg.rate > 0.0 {
            cfg.rate
        } else {
            1e7
        };
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
            let cur = spec.currency.clone();
            let index_id = reg.resolve_deribit(&cur).unwrap_or(0);
            let perp_id = reg
                .resolve_deribit(&format!("{cur}-PERPETUAL"))
                .unwrap_or(0);
            let tick = reg.get(perp_id).map_or(0.5, |d| d.tick_size);
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
                                call,
                            });
                        }
                    }
                }
            }
            unders.push(UnderlyingState {
                spec: spec.clone(),
                index_id,
                perp_id,
                forward_ids,
                spot: spec.spot,
                last_ns: cfg.start_ns,
                spike: 1.0,
                tick,
            });
        }
        let wsum = (cfg.weight_quote + cfg.weight_price + cfg.weight_mark).max(1e-12);
        let cum_quote = cfg.weight_quote / wsum;
        let cum_price = cum_quote + cfg.weight_price / wsum;
        SyntheticSource {
            rng: Xoshiro256::new(cfg.seed),
            now_ns: cfg.start_ns,
            dt_ns: 1e9 / rate,
            frac_ns: 0.0,
            registry: reg,
            unders,
            options,
            expiry_ns,
            rr_quote: 0,
            rr_price: 0,
            rr_mark: 0,
            events: 0,
            cum_quote,
            cum_price,
            cfg,
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

    /// Seconds of synthetic clock since the start.
    fn elapsed_s(&self) -> f64 {
        (self.now_ns - self.cfg.start_ns) as f64 * 1e-9
    }

    fn in_window(t: f64, every: f64, len: f64, skip_first: bool) -> bool {
        if every <= 0.0 || len <= 0.0 {
            return false;
        }
        if skip_first && t < every {
            return false;
        }
        t % every < len
    }

    /// Whether the synthetic clock is inside a stress episode.
    pub fn in_stress(&self) -> bool {
        Self::in_window(
            self.elapsed_s(),
            self.cfg.stress_every_s,
            self.cfg.stress_len_s,
            true,
        )
    }

    fn in_burst(&self) -> bool {
        Self::in_window(
            self.elapsed_s(),
            self.cfg.burst_every_s,
            self.cfg.burst_len_s,
            true,
        )
    }

    /// Advances underlying `u`'s diffusion to the clock: GBM with Merton jumps over the elapsed
    /// market time (variance scales with time, so the lazy step is exact for the diffusion).
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
        let dt_s = (now - st.last_ns) as f64 * 1e-9;
        if dt_s <= 0.0 {
            return;
        }
        st.last_ns = now;
        let dt_y = dt_s * warp / YEAR_S;
        if half_life > 0.0 {
            st.spike = 1.0 + (st.spike - 1.0) * (-dt_s * std::f64::consts::LN_2 / half_life).exp();
        }
        let sigma = st.spec.vol * st.spike * stress_mult;
        let z = self.rng.normal();
        let mut lr = -0.5 * sigma * sigma * dt_y + sigma * dt_y.sqrt() * z;
        let p_jump = st.spec.jumps_per_minute / 60.0 * dt_s;
        if self.rng.uniform() < p_jump {
            lr += st.spec.jump_mean + st.spec.jump_std * self.rng.normal();
            st.spike = (st.spike * self.cfg.spike_mult).min(4.0);
        }
        st.spot *= lr.exp();
    }

    fn forward(&self, u: usize, e: usize) -> (f64, f64) {
        let st = &self.unders[u];
        let market_now_ns = self.cfg.start_ns as f64
            + (self.now_ns - self.cfg.start_ns) as f64 * self.cfg.time_warp;
        let t = ((self.expiry_ns[e] as f64 - market_now_ns) * 1e-9 / YEAR_S).max(MIN_T_YEARS);
        (st.spot * (1.0 + st.spec.carry * t), t)
    }

    fn quote(&mut self, u: usize, stress: bool, out: &mut SourceEvent) {
        let levels = self.cfg.depth_levels;
        let spread_mult = if stress {
            self.cfg.stress_spread_mult
        } else {
            1.0
        };
        let level_size = self.cfg.level_size / spread_mult;
        let st = &self.unders[u];
        let tick = st.tick;
        let mid = st.spot;
        let half = (mid * self.cfg.half_spread_bps * 1e-4 * spread_mult).max(tick);
        let bid = ((mid - half) / tick).floor() * tick;
        let ask = (((mid + half) / tick).ceil() * tick).max(bid + tick);
        let id = st.perp_id;
        let d: &mut Depth = &mut out.depth;
        d.bid_levels = levels as u32;
        d.ask_levels = levels as u32;
        for i in 0..levels {
            let off = i as f64 * tick;
            let f = 1.0 + i as f64 * 0.5;
            let bq = (level_size * f * (0.5 + self.rng.uniform()))
                .round()
                .max(1.0);
            let aq = (level_size * f * (0.5 + self.rng.uniform()))
                .round()
                .max(1.0);
            d.bids[i] = [bid - off, bq];
            d.asks[i] = [ask + off, aq];
        }
        out.has_depth = true;
        out.event = MarketEvent::quote(id, self.now_ns, 0, bid, d.bids[0][1], ask, d.asks[0][1]);
    }

    fn mark(&mut self, stress: bool, out: &mut SourceEvent) {
        let o = self.options[self.rr_mark].clone();
        self.rr_mark = (self.rr_mark + 1) % self.options.len();
        let (f, t) = self.forward(o.under, o.expiry);
        let st = &self.unders[o.under];
        let atm = st.spec.vol
            * st.spike
            * if stress {
                self.cfg.stress_vol_mult
            } else {
                1.0
            };
        let x = (o.strike / f).ln() / t.sqrt();
        let iv = (atm * (1.0 + self.cfg.smile_skew * x + self.cfg.smile_curvature * x * x))
            .clamp(0.05, 5.0);
        let kind = if o.call {
            engine::pricing::OptionType::Call
        } else {
            engine::pricing::OptionType::Put
        };
        let usd = engine::pricing::black76_price(kind, f, o.strike, t, iv, 0.0).unwrap_or(0.0);
        let coin = (usd / f).max(0.0);
        out.has_depth = false;
        out.event = MarketEvent::option_mark(o.id, self.now_ns, 0, coin, iv, f);
    }
}

impl Source for SyntheticSource {
    fn registry(&self) -> &Registry {
        &self.registry
    }

    fn next(&mut self, out: &mut SourceEvent) -> bool {
        // Advance the clock by one event (shorter steps inside a burst).
        let dt = if self.in_burst() {
            self.dt_ns / self.cfg.burst_factor.max(1.0)
        } else {
            self.dt_ns
        };
        self.frac_ns += dt;
        let whole = self.frac_ns.floor();
        self.frac_ns -= whole;
        self.now_ns += (whole as u64).max(1);
        let stress = self.in_stress();
        let r = self.rng.uniform();
        let n_under = self.unders.len();
        if r < self.cum_quote || (self.options.is_empty() && r >= self.cum_price) {
            let u = self.rr_quote;
            self.rr_quote = (u + 1) % n_under;
            self.advance(u, stress);
            self.quote(u, stress, out);
        } else if r < self.cum_price {
            // Index, then each expiry's forward, round robin over all underlyings.
            let per = 1 + self.expiry_ns.len();
            let k = self.rr_price;
            self.rr_price = (k + 1) % (per * n_under);
            let (u, j) = (k / per, k % per);
            self.advance(u, stress);
            out.has_depth = false;
            out.event = if j == 0 {
                MarketEvent::underlying_price(
                    self.unders[u].index_id,
                    self.now_ns,
                    0,
                    self.unders[u].spot,
                )
            } else {
                let (f, _) = self.forward(u, j - 1);
                MarketEvent::underlying_price(self.unders[u].forward_ids[j - 1], self.now_ns, 0, f)
            };
        } else {
            let u = self.options[self.rr_mark].under;
            self.advance(u, stress);
            self.mark(stress, out);
        }
        if stress {
            out.event.flags |= MarketEvent::FLAG_STRESS;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
            let (b, _, a, _) = e.event.as_quote().unwrap();
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
