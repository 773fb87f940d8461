//! Shared fixture of the hedger tests: a BTC book on Deribit-like instruments.
#![allow(dead_code)]

use bytemuck::Zeroable;
use engine::hedger::core::{hedge_instrument, HedgerCore, UnderlyingSetup};
#[allow(unused_imports)] // each test file uses one or the other
pub use engine::hedger::core::{FixedClock, MonotonicClock};
use engine::hedger::io::{MemControl, MemExecs, MemMarket, MemOrders};
use engine::hedger::risk::BookRiskAdapter;
use engine::limits::LimitsConfig;
use engine::policy::{BandRule, PolicyConfig, RehedgeTarget};
use shm_layout::{
    ExecEvent, ExecKind, HedgeOrder, InstrumentDef, InstrumentKind, LastValue, MarketEvent,
    OptionType, Settlement, Side,
};
pub use testkit::ExecStream;

pub const BTC: u32 = 0;
pub const PERP: u32 = 1;
pub const CALL: u32 = 2;
pub const PUT: u32 = 3;
pub const EXPIRED: u32 = 4;
pub const ETH: u32 = 5;
/// SYN.BTC-30D: the forward of the options' expiry.
pub const FWD: u32 = 6;
pub const DAY_NS: u64 = 86_400_000_000_000;

fn def(id: u32, sym: &str, kind: InstrumentKind) -> InstrumentDef {
    let mut d = InstrumentDef::linear(id, kind, id, 0.5, 1.0);
    assert!(d.set_symbol(sym));
    d
}

/// BTC index, BTC-PERPETUAL (inverse, 10 USD), a call and a put 30 days out, an expired
/// call, and an ETH index nobody hedges.
pub fn defs(wall_ns: u64) -> Vec<InstrumentDef> {
    let idx = def(BTC, "BTC", InstrumentKind::Index);
    let mut perp = def(PERP, "BTC-PERPETUAL", InstrumentKind::Perpetual);
    perp.settlement = Settlement::Inverse as u8;
    perp.contract_multiplier = 10.0;
    perp.underlying_id = BTC;
    let mut fwd = def(FWD, "SYN.BTC-30D", InstrumentKind::Index);
    fwd.underlying_id = BTC;
    let opt = |id, sym, ty: OptionType, strike, expiry| {
        let mut d = def(id, sym, InstrumentKind::Option);
        d.forward_id = FWD;
        d.option_type = ty as u8;
        d.settlement = Settlement::Inverse as u8;
        d.underlying_id = BTC;
        d.strike = strike;
        d.expiry_ns = expiry;
        d.lot_size = 0.1;
        d.min_qty = 0.1;
        d.tick_size = 0.0005;
        d
    };
    vec![
        idx,
        perp,
        opt(
            CALL,
            "BTC-C-10000",
            OptionType::Call,
            10_000.0,
            wall_ns + 30 * DAY_NS,
        ),
        opt(
            PUT,
            "BTC-P-9000",
            OptionType::Put,
            9_000.0,
            wall_ns + 30 * DAY_NS,
        ),
        opt(
            EXPIRED,
            "BTC-C-OLD",
            OptionType::Call,
            10_000.0,
            wall_ns - DAY_NS,
        ),
        def(ETH, "ETH", InstrumentKind::Index),
        fwd,
    ]
}

pub fn fixed_policy(band: f64) -> PolicyConfig {
    PolicyConfig {
        rule: BandRule::Fixed {
            band,
            target: RehedgeTarget::Zero,
        },
        collar_bps: 50.0,
        ..PolicyConfig::default()
    }
}

/// The cost-aware band of the tests (Deribit-like taker fee, stress weights 1, at most 5x),
/// between `min_band` and `max_band` contracts.
pub fn cost_aware_policy(min_band: f64, max_band: f64) -> PolicyConfig {
    PolicyConfig {
        rule: BandRule::CostAware {
            taker_fee: 0.0005,
            risk_aversion: 1e-3,
            vol_stress_weight: 1.0,
            spread_stress_weight: 1.0,
            max_stress: 5.0,
        },
        min_band,
        max_band,
        ..fixed_policy(0.5)
    }
}

pub fn open_limits() -> LimitsConfig {
    LimitsConfig {
        max_orders_per_sec: 1e9,
        order_burst: 1e9,
        max_data_age_ns: 600_000_000_000,
        max_rejects: u32::MAX,
        ..LimitsConfig::default()
    }
}

impl ExecStream for Rig {
    fn next_exec_id(&mut self) -> u64 {
        self.next_exec_id += 1;
        self.next_exec_id - 1
    }

    /// Into the in-memory ring, then one step of the hedger.
    fn deliver(&mut self, e: ExecEvent) {
        self.execs.buf.push(e);
        self.step();
    }
}

pub struct Rig {
    pub core: HedgerCore<BookRiskAdapter>,
    pub md: MemMarket,
    pub execs: MemExecs,
    pub orders: MemOrders,
    pub ctl: MemControl,
    pub now: u64,
    pub wall: u64,
    pub next_exec_id: u64,
}

pub fn rig(policy: PolicyConfig, limits: LimitsConfig) -> Rig {
    let now = shm_layout::clock::now_ns();
    let wall = shm_layout::clock::wall_ns();
    let defs = defs(wall);
    let hedge = hedge_instrument(&defs[PERP as usize], "t").unwrap();
    let setup = UnderlyingSetup {
        name: "BTC".into(),
        index_id: BTC,
        hedge,
        policy,
        limits,
        rate: 0.0,
        initial_hedge_position: 0.0,
    };
    let core = HedgerCore::new(
        defs,
        vec![setup],
        BookRiskAdapter::new(&[BTC], 7, 16, wall),
        now,
        wall,
    );
    Rig {
        core,
        md: MemMarket::with_instruments(7),
        execs: MemExecs::default(),
        orders: MemOrders::new(1024),
        ctl: MemControl::default(),
        now,
        wall,
        next_exec_id: 1,
    }
}

pub fn quote(bid: f64, ask: f64) -> MarketEvent {
    MarketEvent::quote(PERP, 0, shm_layout::clock::now_ns(), bid, 1e6, ask, 1e6)
}

pub fn index(px: f64) -> MarketEvent {
    MarketEvent::underlying_price(BTC, 0, shm_layout::clock::now_ns(), px)
}

pub fn mark(id: u32, iv: f64, fwd: f64) -> MarketEvent {
    MarketEvent::option_mark(id, 0, shm_layout::clock::now_ns(), 0.05, iv, fwd)
}

impl Rig {
    /// Feeds events one by one through the loop.
    pub fn feed(&mut self, evs: &[MarketEvent]) {
        for e in evs {
            self.md.events.push(*e);
            self.step();
        }
    }

    /// One loop iteration at the current clock.
    pub fn step(&mut self) -> usize {
        self.now = shm_layout::clock::now_ns();
        self.core.poll(
            &mut self.md,
            &mut self.execs,
            &mut self.orders,
            &self.ctl,
            self.now,
            &MonotonicClock,
        )
    }

    /// A normal market: index 10000, perp 9999.5/10000.5, both options marked at 80%.
    pub fn warm(&mut self) {
        self.feed(&[
            index(10_000.0),
            quote(9_999.5, 10_000.5),
            mark(CALL, 0.8, 10_000.0),
            mark(PUT, 0.8, 10_000.0),
        ]);
    }

    /// The venue rejects order `o` (no liquidity).
    pub fn reject(&mut self, o: &HedgeOrder) {
        self.on_order(ExecKind::Rejected, o, (0.0, 0.0, 0.0));
    }

    /// The core's timer at `t` on the fixed clock (every stamp `t`), as a replay drives it.
    pub fn timer_at(&mut self, t: u64) {
        self.core.on_timer(&mut self.orders, t, &FixedClock(t));
    }

    /// The venue's answer to a cancel of `o`: the rest of it cancelled.
    pub fn cancelled(&mut self, o: &HedgeOrder) {
        self.on_order(ExecKind::Cancelled, o, (0.0, 0.0, 0.0));
    }

    /// The market maker sells `qty` calls to a client (short calls: negative delta).
    pub fn client_buys_calls(&mut self, qty: f64) {
        self.exec(ExecKind::OptionTrade, 0, CALL, Side::Sell, qty, 0.05, 0.0);
    }

    /// The market maker buys `qty` calls from a client (long calls: positive delta).
    pub fn client_sells_calls(&mut self, qty: f64) {
        self.exec(ExecKind::OptionTrade, 0, CALL, Side::Buy, qty, 0.05, 0.0);
    }

    pub fn pop_order(&mut self) -> Option<HedgeOrder> {
        self.orders.buf.pop_front()
    }

    /// Fills an order completely.
    pub fn fill(&mut self, o: &HedgeOrder) {
        self.on_order(ExecKind::Fill, o, (o.qty, o.limit_px, 0.0));
    }

    /// The last-value table holds the index, the hedge quote and both marks; with `depth`,
    /// also eight levels of 300 contracts a side on the perpetual.
    pub fn seed_last_values(&mut self, depth: bool) {
        for e in [
            index(10_000.0),
            quote(9_999.5, 10_000.5),
            mark(CALL, 0.8, 10_000.0),
            mark(PUT, 0.8, 10_000.0),
        ] {
            self.lv(e.instrument_id, &e);
        }
        if depth {
            let lv = self.md.lvt[PERP as usize].as_mut().unwrap();
            lv.valid |= LastValue::HAS_DEPTH;
            (lv.bid_levels, lv.ask_levels) = (8, 8);
            for k in 0..8 {
                lv.bid_depth[k] = [9_999.5 - k as f64, 300.0];
                lv.ask_depth[k] = [10_000.5 + k as f64, 300.0];
            }
        }
    }

    pub fn lv(&mut self, id: u32, e: &MarketEvent) {
        let mut lv = self.md.lvt[id as usize].unwrap_or_else(LastValue::zeroed);
        lv.apply(e);
        self.md.lvt[id as usize] = Some(lv);
    }
}
