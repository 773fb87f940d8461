//! Simulated client option flow: where the market maker's inventory comes from.
//!
//! Clients arrive as a Poisson process (exponential gaps, mean `1 / intensity_per_s`). Each
//! picks one option (uniformly among the options that have a mark, optionally of one
//! underlying and within a moneyness range), a size (exponential, uniform or fixed, rounded
//! to the option's lot), and a direction: a client buys with probability `(1 + bias) / 2`,
//! where `bias` follows a schedule of phases (e.g. ten minutes of +0.8 then ten of -0.8). This
//! is the strong one-way flow that drifts the book's delta and makes the hedger trade against
//! the momentum. The market maker trades at the mark plus an edge (sells above, buys below),
//! rounded to the tick in its favour. Each trade is an [`ExecKind::OptionTrade`] exec event
//! whose `side` is the **market maker's** side.

use crate::rng::Rng;
use crate::sim::MarketView;
use bytemuck::Zeroable;
use serde::Deserialize;
use shm_layout::{ExecEvent, ExecKind, InstrumentDef, InstrumentKind, LastValue, Liquidity, Side};

/// How trade sizes are drawn.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SizeDist {
    /// Exponential with mean `size_mean`, capped at `size_max`.
    Exponential,
    /// Uniform in `[min_qty, size_max]`.
    Uniform,
    /// Always `size_mean`.
    Fixed,
}

/// One phase of the directional-bias schedule.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BiasPhase {
    /// How long the phase lasts, seconds.
    pub secs: f64,
    /// Client direction bias in `[-1, 1]`: +1 = clients only buy (the market maker sells).
    pub bias: f64,
}

/// Client flow settings (`[flow]` in the TOML config).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FlowConfig {
    /// Generate flow at all.
    pub enabled: bool,
    /// Mean arrivals per second.
    pub intensity_per_s: f64,
    /// Size distribution.
    pub size_dist: SizeDist,
    /// Mean (exponential) or fixed size, contracts.
    pub size_mean: f64,
    /// Largest size, contracts.
    pub size_max: f64,
    /// Market maker's edge over the mark, basis points of the mark.
    pub edge_bps: f64,
    /// Only options of this underlying instrument id (None = all).
    pub underlying_id: Option<u32>,
    /// Only options with `|ln(strike / forward)|` at most this (None = all).
    pub max_abs_log_moneyness: Option<f64>,
    /// Bias phases, cycled; empty = no bias (0).
    pub bias_schedule: Vec<BiasPhase>,
    /// PRNG seed.
    pub seed: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            enabled: true,
            intensity_per_s: 2.0,
            size_dist: SizeDist::Exponential,
            size_mean: 5.0,
            size_max: 50.0,
            edge_bps: 100.0,
            underlying_id: None,
            max_abs_log_moneyness: Some(0.3),
            bias_schedule: vec![
                BiasPhase {
                    secs: 120.0,
                    bias: 0.8,
                },
                BiasPhase {
                    secs: 120.0,
                    bias: -0.8,
                },
            ],
            seed: 7,
        }
    }
}

/// Counts kept by the flow generator.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FlowStats {
    /// Trades published.
    pub trades: u64,
    /// Arrivals skipped because the picked option had no usable mark.
    pub skipped_no_mark: u64,
    /// Client buys (market maker sells).
    pub client_buys: u64,
    /// Client sells (market maker buys).
    pub client_sells: u64,
}

/// The flow generator; call [`OptionFlow::poll`] every loop iteration.
pub struct OptionFlow {
    cfg: FlowConfig,
    options: Vec<InstrumentDef>,
    rng: Rng,
    start_ns: u64,
    next_ns: u64,
    cycle_secs: f64,
    stats: FlowStats,
}

impl OptionFlow {
    /// A generator over the options among `defs`, starting its clock at `now_ns`.
    pub fn new(cfg: FlowConfig, defs: &[InstrumentDef], now_ns: u64) -> Self {
        let options: Vec<InstrumentDef> = defs
            .iter()
            .filter(|d| d.kind() == Ok(InstrumentKind::Option))
            .filter(|d| cfg.underlying_id.is_none_or(|u| d.underlying_id == u))
            .copied()
            .collect();
        let cycle_secs = cfg.bias_schedule.iter().map(|p| p.secs.max(0.0)).sum();
        let mut f = OptionFlow {
            rng: Rng::new(cfg.seed),
            options,
            start_ns: now_ns,
            next_ns: now_ns,
            cycle_secs,
            cfg,
            stats: FlowStats::default(),
        };
        f.next_ns = now_ns + f.gap_ns();
        f
    }

    /// Options the flow can trade.
    pub fn universe(&self) -> usize {
        self.options.len()
    }

    /// When the next client trade is due, monotonic ns (`None`: the flow is off). A
    /// discrete-event replay jumps its clock here.
    pub fn next_due_ns(&self) -> Option<u64> {
        (self.cfg.enabled && !self.options.is_empty() && self.cfg.intensity_per_s > 0.0)
            .then_some(self.next_ns)
    }

    /// Counts so far.
    pub fn stats(&self) -> FlowStats {
        self.stats
    }

    fn gap_ns(&mut self) -> u64 {
        if self.cfg.intensity_per_s <= 0.0 {
            return u64::MAX / 4;
        }
        (self.rng.exp(1.0 / self.cfg.intensity_per_s) * 1e9).max(1.0) as u64
    }

    /// The client bias in force at `now_ns`.
    pub fn bias_at(&self, now_ns: u64) -> f64 {
        if self.cycle_secs <= 0.0 {
            return 0.0;
        }
        let t = (now_ns.saturating_sub(self.start_ns) as f64 * 1e-9) % self.cycle_secs;
        let mut acc = 0.0;
        for p in &self.cfg.bias_schedule {
            acc += p.secs.max(0.0);
            if t < acc {
                return p.bias.clamp(-1.0, 1.0);
            }
        }
        0.0
    }

    fn size(&mut self, d: &InstrumentDef) -> f64 {
        let lot = d.lot();
        let min = d.min_qty.max(lot);
        let max = self.cfg.size_max.max(min);
        let raw = match self.cfg.size_dist {
            SizeDist::Exponential => self.rng.exp(self.cfg.size_mean.max(0.0)),
            SizeDist::Uniform => min + self.rng.next_f64() * (max - min),
            SizeDist::Fixed => self.cfg.size_mean,
        };
        let lots = (raw.clamp(min, max) / lot).round().max(1.0);
        lots * lot
    }

    fn usable(&self, d: &InstrumentDef, lv: &LastValue) -> bool {
        if lv.valid & LastValue::HAS_MARK == 0 || !(lv.mark_px > 0.0 && lv.mark_px.is_finite()) {
            return false;
        }
        match self.cfg.max_abs_log_moneyness {
            Some(m) if lv.mark_underlying_px > 0.0 && d.strike > 0.0 => {
                (d.strike / lv.mark_underlying_px).ln().abs() <= m
            }
            _ => true,
        }
    }

    /// Emits every client trade due by `now_ns` (at most `max` of them, so a long stall
    /// cannot flood the ring; the rest follow on later calls).
    pub fn poll(
        &mut self,
        now_ns: u64,
        market: &dyn MarketView,
        max: usize,
        sink: &mut dyn FnMut(ExecEvent),
    ) {
        if !self.cfg.enabled || self.options.is_empty() {
            return;
        }
        let mut n = 0;
        while self.next_ns <= now_ns && n < max {
            let at = self.next_ns;
            self.next_ns = at.saturating_add(self.gap_ns());
            n += 1;
            let pick = self.rng.upto(self.options.len() as u64 - 1) as usize;
            let d = self.options[pick];
            let client_buys = self.rng.next_f64() < 0.5 * (1.0 + self.bias_at(at));
            let qty = self.size(&d);
            let Some(lv) = market.book(d.id).filter(|lv| self.usable(&d, lv)) else {
                self.stats.skipped_no_mark += 1;
                continue;
            };
            let mm_side = if client_buys { Side::Sell } else { Side::Buy };
            let edge = lv.mark_px * self.cfg.edge_bps * 1e-4;
            let raw = lv.mark_px - mm_side.sign() * edge;
            let price = if d.tick_size > 0.0 {
                let ticks = raw / d.tick_size;
                let t = match mm_side {
                    Side::Sell => ticks.ceil(),
                    Side::Buy => ticks.floor(),
                };
                t.max(1.0) * d.tick_size
            } else {
                raw
            };
            if client_buys {
                self.stats.client_buys += 1;
            } else {
                self.stats.client_sells += 1;
            }
            self.stats.trades += 1;
            sink(ExecEvent {
                kind: ExecKind::OptionTrade as u8,
                instrument_id: d.id,
                side: mm_side as u8,
                liquidity: Liquidity::Maker as u8,
                qty,
                price,
                ..ExecEvent::zeroed()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn option(id: u32, strike: f64) -> InstrumentDef {
        let mut d = InstrumentDef::zeroed();
        d.id = id;
        d.kind = InstrumentKind::Option as u8;
        d.strike = strike;
        d.tick_size = 0.0005;
        d.lot_size = 0.1;
        d.min_qty = 0.1;
        d
    }

    fn market() -> Vec<Option<LastValue>> {
        let mut v = vec![None; 4];
        for (id, px) in [(1u32, 0.05), (2, 0.01)] {
            let mut lv = LastValue::zeroed();
            lv.valid = LastValue::HAS_MARK;
            lv.mark_px = px;
            lv.mark_underlying_px = 100.0;
            v[id as usize] = Some(lv);
        }
        v
    }

    #[test]
    fn arrivals_follow_the_intensity_and_bias() {
        let cfg = FlowConfig {
            intensity_per_s: 100.0,
            max_abs_log_moneyness: None,
            bias_schedule: vec![BiasPhase {
                secs: 1000.0,
                bias: 0.6,
            }],
            ..FlowConfig::default()
        };
        let defs = [option(1, 100.0), option(2, 120.0), option(3, 90.0)];
        let mut f = OptionFlow::new(cfg, &defs, 0);
        let mut trades = Vec::new();
        let m = market();
        for s in 1..=100u64 {
            f.poll(s * 1_000_000_000, &m, 10_000, &mut |e| trades.push(e));
        }
        let st = f.stats();
        // ~10_000 arrivals, a third of them on option 3 that has no mark.
        let arrivals = st.trades + st.skipped_no_mark;
        assert!((9_000..11_000).contains(&arrivals), "{arrivals}");
        assert!(st.skipped_no_mark > 2_500 && st.skipped_no_mark < 4_200);
        let buy_frac = st.client_buys as f64 / st.trades as f64;
        assert!((buy_frac - 0.8).abs() < 0.03, "{buy_frac}");
        for e in &trades {
            assert_eq!(e.kind().unwrap(), ExecKind::OptionTrade);
            assert_eq!(e.client_order_id, 0);
            let lots = e.qty / 0.1;
            assert!((lots - lots.round()).abs() < 1e-9 && e.qty >= 0.1 && e.qty <= 50.0);
            let mark = if e.instrument_id == 1 { 0.05 } else { 0.01 };
            match e.side().unwrap() {
                Side::Sell => assert!(e.price > mark),
                Side::Buy => assert!(e.price < mark && e.price > 0.0),
            }
        }
    }

    #[test]
    fn bias_switches_on_schedule() {
        let cfg = FlowConfig {
            bias_schedule: vec![
                BiasPhase {
                    secs: 10.0,
                    bias: 1.0,
                },
                BiasPhase {
                    secs: 5.0,
                    bias: -1.0,
                },
            ],
            ..FlowConfig::default()
        };
        let f = OptionFlow::new(cfg, &[option(1, 100.0)], 1_000);
        let s = |x: f64| 1_000 + (x * 1e9) as u64;
        assert_eq!(f.bias_at(s(0.0)), 1.0);
        assert_eq!(f.bias_at(s(9.9)), 1.0);
        assert_eq!(f.bias_at(s(10.1)), -1.0);
        assert_eq!(f.bias_at(s(15.1)), 1.0);
    }

    #[test]
    fn moneyness_filter_skips_far_strikes() {
        let cfg = FlowConfig {
            intensity_per_s: 50.0,
            max_abs_log_moneyness: Some(0.1),
            ..FlowConfig::default()
        };
        let mut f = OptionFlow::new(cfg, &[option(1, 100.0), option(2, 150.0)], 0);
        let mut ids = Vec::new();
        f.poll(10_000_000_000, &market(), 10_000, &mut |e| {
            ids.push(e.instrument_id)
        });
        assert!(!ids.is_empty() && ids.iter().all(|&i| i == 1));
    }
}
